"""End to end for notebook 05: planted mistakes cost their exercise's points, with a hint.

The student notebook, filled with the solution code, gets one typical mistake per exercise,
each chosen so that it does not break the later exercises that build on it (the trained model
uses pre-LN blocks, ReLU, eps = 1e-5 and no memory mask), and is graded once through
`transformer-course check`. The checks are tested mistake by mistake in test_grading_transformer_blocks.py.
"""
from __future__ import annotations

import pytest

from notebook_tools import assert_lost_with_hints, by_id, check, fill_student, planted

pytestmark = pytest.mark.slow

NAME = "05_transformer_blocks"


def _replace(grade_id: str, old: str, new: str) -> str:
    return planted(NAME, grade_id, old, new)


def test_block_mistakes_lose_their_points_with_hints(tmp_path):
    wrong = {
        # eps hard-coded: right for the blocks (eps 1e-5), wrong for BERT's 1e-12
        "layer_norm": _replace("layer_norm", "torch.sqrt(var + eps)", "torch.sqrt(var + 1e-5)"),
        # GELU requested, ReLU used (the model trains with ReLU, so it is unaffected)
        "feed_forward": _replace("feed_forward", 'F.gelu(h) if self.activation == "gelu" else F.relu(h)', "F.relu(h)"),
        # post-LN with the residual added after the norm (the model is pre-LN)
        "encoder_block": _replace("encoder_block", "x = self.norm1(x + self.self_attn(x, mask=mask)[0])",
                                  "x = x + self.norm1(self.self_attn(x, mask=mask)[0])"),
        # memory mask ignored (the model has no padding)
        "decoder_block": _replace("decoder_block", "self.cross_attn(self.norm2(x), memory, mask=memory_mask)",
                                  "self.cross_attn(self.norm2(x), memory)").replace(
                                      "self.cross_attn(x, memory, mask=memory_mask)", "self.cross_attn(x, memory)"),
        # the unshifted target: perfect training loss, useless greedy decoding
        "seq2seq_loss": _replace("seq2seq_loss", "logits = model(src, tgt_in)", "logits = model(src, tgt)"),
    }
    result = by_id(check(fill_student(NAME, tmp_path, replace=wrong)))
    expected_words = {
        "layer_norm_test": "hard-code 1e-5",
        "feed_forward_test": "activation",
        "encoder_block_test": "residual is added after the norm",
        "decoder_block_test": "memory_mask is ignored",
        "seq2seq_loss_test": "shifted right",
        "train_test": "UNSHIFTED",
    }
    assert_lost_with_hints(result, expected_words)
