"""End to end: the mistakes COURSE.md names cost their exercise's points, with a hint.

Each test plants several typical wrong answers (one per exercise) into the student
notebook, otherwise filled with the solution code, and grades it through
`transformer-course check` once.  The checks are tested mistake by mistake, far more
finely and far faster, in test_attention.py and test_rnn.py; this makes sure the hints
reach a learner through the real grading path.
"""
from __future__ import annotations

import pytest

from notebook_tools import assert_lost_with_hints, by_id, check, fill_student

pytestmark = pytest.mark.slow

WRONG_02 = {
    # softmax without subtracting the maximum: overflows on logits of about 1000
    "softmax": "def softmax(x, axis=-1):\n    e = np.exp(x)\n    return e / e.sum(axis=axis, keepdims=True)\n",
    # torch attention without the 1/sqrt(d_k) scale
    "attention_torch": (
        "def attention_torch(q, k, v, mask=None):\n"
        "    scores = q @ k.transpose(-2, -1)\n"
        "    if mask is not None:\n"
        "        scores = scores.masked_fill(~mask, float('-inf'))\n"
        "    w = torch.softmax(scores, dim=-1)\n"
        "    return w @ v, w\n"),
    # causal mask on the wrong triangle
    "causal_mask": "def causal_mask(n):\n    return np.triu(np.ones((n, n), dtype=bool))\n",
    # the NaN padding bias: (1 - mask) * -inf gives 0 * inf = NaN where attention is allowed
    "padding_mask": (
        "def padding_mask(lengths, max_len):\n"
        "    positions = np.arange(max_len)\n"
        "    return (positions[None, :] < np.asarray(lengths)[:, None])[:, None, :]\n\n"
        "def mask_to_bias(mask):\n"
        "    return (1 - mask.astype(float)) * -np.inf\n"),
    # the theory instead of a measurement
    "qk_variance": "def qk_variance(d_k, n_samples=20_000, seed=0):\n    return float(d_k), 1.0\n",
}


def test_attention_mistakes_lose_their_points_with_hints(tmp_path):
    result = by_id(check(fill_student("02_attention", tmp_path, replace=WRONG_02)))
    expected_words = {
        "softmax_test": "maximum",
        "attention_torch_test": "sqrt(d_k)",
        "causal_mask_test": "triangle",
        "padding_mask_test": "NaN",
        "qk_variance_test": "seed",
    }
    assert_lost_with_hints(result, expected_words)
