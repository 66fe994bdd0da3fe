"""End to end for notebook 07: planted mistakes cost their exercise's points, with a hint.

The student notebook, filled with the solution code, gets one typical mistake in most exercises,
each chosen so that the model still trains (the forward pass and the loader stay right), and is
graded once through `transformer-course check`. The checks are tested mistake by mistake in
test_grading_gpt.py.
"""
from __future__ import annotations

import pytest

from notebook_tools import assert_lost_with_hints, by_id, check, fill_student, planted

pytestmark = pytest.mark.slow

NAME = "07_gpt"


def _replace(grade_id: str, old: str, new: str) -> str:
    return planted(NAME, grade_id, old, new)


def test_gpt_mistakes_lose_their_points_with_hints(tmp_path):
    wrong = {
        # the diagonal excluded from the causal mask
        "causal_attention": _replace("causal_attention", ".tril()", ".tril(-1)"),
        # the tied matrix counted twice
        "count_parameters": _replace("count_parameters", "sum(p.numel() for p in model.parameters())",
                                     "sum(p.numel() for p in model.state_dict().values())"),
        # labels not shifted
        "next_token_loss": _replace("next_token_loss", "F.cross_entropy(logits[:, :-1].reshape(-1, V), idx[:, 1:].reshape(-1))",
                                    "F.cross_entropy(logits.reshape(-1, V), idx.reshape(-1))"),
        # removed tokens set to 0 instead of -inf
        "top_k_filter": _replace("top_k_filter", 'logits.masked_fill(logits < kth, float("-inf"))',
                                 "logits.masked_fill(logits < kth, 0.0)"),
        # the token that crosses p is dropped
        "top_p_filter": _replace("top_p_filter", "(torch.cumsum(probs, dim=-1) - probs) >= p",
                                 "torch.cumsum(probs, dim=-1) > p"),
        # temperature applied after the softmax
        "sample_next": _replace("sample_next", "torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator)",
                                "torch.multinomial(torch.softmax(logits * temperature, dim=-1) / temperature, 1, "
                                "generator=generator)"),
        # the cache's causal mask not offset for the new queries
        "kv_cache": _replace("kv_cache", ".tril(diagonal=n_k - n_q)", ".tril()"),
        # a cache that recomputes everything anyway
        "generate": _replace("generate", "model(idx if step == 0 else idx[:, -1:], kv_caches=caches)",
                             "model(idx, kv_caches=[KVCache() for _ in range(model.config.n_layer)])"),
    }
    result = by_id(check(fill_student(NAME, tmp_path, replace=wrong)))
    expected_words = {
        "causal_attention_test": "diagonal is excluded",
        "count_parameters_test": "counted twice",
        "next_token_loss_test": "not shifted",
        "top_k_filter_test": "not 0",
        "top_p_filter_test": "crosses p",
        "kv_cache_test": "the mask is not offset",
        # sample_next is wrong too, but it uses the broken filters: its check sends the learner there first
        "sample_next_test": "your top_k_filter from exercise 6 fails its checks, and sample_next uses it",
        # generate (decorated with @torch.no_grad()) is wrong too, and it uses the broken sample_next; the
        # recomputing cache's own hint is tested in test_grading_gpt.py
        "generate_test": "your sample_next from exercise 8 fails its checks, and generate uses it",
    }
    assert_lost_with_hints(result, expected_words)
    for grade_id in ("gpt_forward_test", "load_gpt2_weights_test", "trained_gpt_test"):
        assert result[grade_id]["passed"], (grade_id, result[grade_id]["message"])
