"""End to end for notebook 06: planted mistakes cost their exercise's points, with a hint.

The student notebook, filled with the solution code, gets one typical mistake in most exercises
and is graded once through `transformer-course check`. The name mapping stays right, so the
encoder loads and its test must blame the broken embeddings of exercise 1. The checks are tested
mistake by mistake in test_grading_bert.py.
"""
from __future__ import annotations

import pytest

from notebook_tools import assert_lost_with_hints, by_id, check, fill_student, planted

pytestmark = pytest.mark.slow

NAME = "06_bert"


def _replace(grade_id: str, old: str, new: str) -> str:
    return planted(NAME, grade_id, old, new)


def test_bert_mistakes_lose_their_points_with_hints(tmp_path):
    wrong = {
        # the segment ids ignored: right for single sentences, wrong for every pair
        "bert_embeddings": _replace("bert_embeddings", "+ self.token_type_embeddings(token_type_ids))",
                                    "+ self.token_type_embeddings(torch.zeros_like(input_ids)))"),
        # selection from every position, special tokens included
        "mlm_mask": _replace("mlm_mask", "(torch.rand(input_ids.shape, generator=generator) < p) & ~special",
                             "(torch.rand(input_ids.shape, generator=generator) < p)"),
        # padding in the mean
        "sentence_embedding": _replace("sentence_embedding", "mean = (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)",
                                       "mean = hidden.mean(dim=1)"),
        # ranked by the raw dot product
        "semantic_search": _replace("semantic_search", "return torch.topk(q @ c.T,", "return torch.topk(query @ corpus.T,"),
        # the trainable layers taken as layers[-n:], which is every layer for n = 0
        "sentence_classifier": _replace("sentence_classifier", """        n_frozen = len(encoder.layers) - n_trainable_layers
        for module in [encoder.embeddings, *encoder.layers[:n_frozen]]:
            for p in module.parameters():
                p.requires_grad_(False)""", """        for p in encoder.parameters():
            p.requires_grad_(False)
        for p in encoder.layers[-n_trainable_layers:].parameters():
            p.requires_grad_(True)"""),
        # softmax before cross-entropy
        "mlm_loss": _replace("mlm_loss", "F.cross_entropy(logits.reshape(-1, logits.shape[-1])",
                             "F.cross_entropy(logits.softmax(-1).reshape(-1, logits.shape[-1])"),
    }
    result = by_id(check(fill_student(NAME, tmp_path, replace=wrong)))
    expected_words = {
        "bert_embeddings_test": "token_type_ids argument is ignored",
        "mlm_mask_test": "special tokens",
        "loaded_encoder_test": "your BertEmbeddings from exercise 1 fails its checks, and the minilm you built",
        "sentence_embedding_test": "padding tokens are included",
        "semantic_search_test": "raw dot product",
        "mlm_loss_test": "do not apply softmax",
        "sentence_classifier_test": "layers[-0:] is the WHOLE list",
    }
    assert_lost_with_hints(result, expected_words)
    assert result["name_mapping_test"]["passed"], result["name_mapping_test"]["message"]
    # the slice is right for the two layers the notebook trains: the fine-tuned classifier earns its points
    assert result["fine_tuned_test"]["passed"], result["fine_tuned_test"]["message"]
