"""End to end for notebook 10: planted mistakes cost their exercise's points, with a hint.

The student notebook, filled with the solution code, gets one typical mistake (COURSE.md's list for efficient
attention) in each exercise and is graded once through `transformer-course check`. The checks are tested
mistake by mistake in test_grading_efficient_attention.py.
"""
from __future__ import annotations

import pytest

from notebook_tools import assert_lost_with_hints, by_id, check, fill_student, planted

pytestmark = pytest.mark.slow

NAME = "10_efficient_attention"


def test_efficient_attention_mistakes_lose_their_points_with_hints(tmp_path):
    wrong = {
        # the running sum not rescaled when the maximum grows
        "online_softmax": planted(NAME, "online_softmax",
                                  "l = l * torch.exp(m - m_new) + torch.exp(block - m_new[..., None]).sum(dim=-1)",
                                  "l = l + torch.exp(block - m_new[..., None]).sum(dim=-1)"),
        # the log-sum-exp of the last key tile only
        "tiled_attention": planted(NAME, "tiled_attention", "            m = m_new\n",
                                   "            m = m_new\n            last = (m_new, p.sum(dim=-1))\n")
        .replace("lse[..., i0:i1] = m + torch.log(l)", "lse[..., i0:i1] = last[0] + torch.log(last[1])"),
        # D = rowsum(dO * O) left out
        "tiled_attention_backward": planted(NAME, "tiled_attention_backward", "ds = p * (dp - D[..., i0:i1, None])",
                                            "ds = p * dp"),
    }
    result = by_id(check(fill_student(NAME, tmp_path, replace=wrong)))
    assert_lost_with_hints(result, {
        "online_softmax_test": "not rescaled",
        "tiled_attention_test": "last key tile only",
        "tiled_attention_backward_test": "D = rowsum(dO * O) is missing",
    })


def test_final_division_forgotten_and_mask_on_the_wrong_tiles(tmp_path):
    wrong = {
        "tiled_attention": planted(NAME, "tiled_attention", "out[..., i0:i1, :] = acc / l[..., None]",
                                   "out[..., i0:i1, :] = acc"),
        "tiled_attention_backward": planted(NAME, "tiled_attention_backward", "if causal and j1 - 1 > i0:",
                                            "if False:"),
    }
    result = by_id(check(fill_student(NAME, tmp_path, replace=wrong)))
    assert_lost_with_hints(result, {
        "tiled_attention_test": "final division is missing",
        "tiled_attention_backward_test": "causal mask too",
    })
    assert result["online_softmax_test"]["passed"]
