"""End to end for notebook 03: planted mistakes cost their exercise's points, with a hint.

One student notebook, filled with the solution code except for one typical wrong answer per
exercise, graded once through `transformer-course check`. The checks are tested mistake by
mistake in test_grading_multi_head_attention.py; this makes sure the hints reach a learner through the real
grading path (the later, dependent cells run on the wrong answers too).
"""
from __future__ import annotations

import pytest
from notebook_tools import assert_lost_with_hints, by_id, check, fill_student

pytestmark = pytest.mark.slow

WRONG_03 = {
    # merge with a reshape but no transpose
    "split_heads": (
        "def split_heads(x, n_heads):\n"
        "    B, T, d_model = x.shape\n"
        "    return x.reshape(B, T, n_heads, d_model // n_heads).swapaxes(1, 2)\n\n"
        "def merge_heads(x):\n"
        "    B, h, T, d_head = x.shape\n"
        "    return x.reshape(B, T, h * d_head)\n"),
    # a 2-D np.dot on 4-D arrays (and its own correct merge, so the blame is not what fails it)
    "mha_numpy": (
        "def multi_head_attention_np(x, w_q, w_k, w_v, w_o, n_heads):\n"
        "    B, T, d = x.shape\n"
        "    q, k, v = (np.swapaxes((x @ w).reshape(B, T, n_heads, d // n_heads), 1, 2) for w in (w_q, w_k, w_v))\n"
        "    weights = softmax(np.dot(q, np.swapaxes(k, -1, -2)) / math.sqrt(d // n_heads), axis=-1)\n"
        "    out = np.dot(weights, v)\n"
        "    return np.swapaxes(out, 1, 2).reshape(B, T, d) @ w_o, weights\n"),
    # 1/sqrt(d_model) instead of 1/sqrt(d_head), and cross-attention keys/values projected from x
    # (graded by two cells: without masks, and with masks)
    "multi_head_attention": (
        "class MultiHeadAttention(nn.Module):\n"
        "    def __init__(self, d_model, n_heads, *, bias=True, dropout=0.0):\n"
        "        super().__init__()\n"
        "        self.d_model, self.n_heads, self.d_head = d_model, n_heads, d_model // n_heads\n"
        "        self.q_proj = nn.Linear(d_model, d_model, bias=bias)\n"
        "        self.k_proj = nn.Linear(d_model, d_model, bias=bias)\n"
        "        self.v_proj = nn.Linear(d_model, d_model, bias=bias)\n"
        "        self.out_proj = nn.Linear(d_model, d_model, bias=bias)\n"
        "        self.dropout = dropout\n\n"
        "    def forward(self, x, memory=None, *, mask=None, is_causal=False, need_weights=False):\n"
        "        B, T, d = x.shape\n"
        "        h, dh = self.n_heads, self.d_head\n"
        "        q, k, v = (p(x).reshape(B, T, h, dh).transpose(1, 2) for p in (self.q_proj, self.k_proj, self.v_proj))\n"
        "        scores = q @ k.transpose(-2, -1) / math.sqrt(self.d_model)\n"
        "        if mask is not None:\n"
        "            scores = scores.masked_fill(~(mask[:, None] if mask.dim() == 3 else mask), float('-inf'))\n"
        "        if is_causal:\n"
        "            scores = scores.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float('-inf'))\n"
        "        w = torch.softmax(scores, dim=-1)\n"
        "        return self.out_proj((w @ v).transpose(1, 2).reshape(B, T, d)), w\n"),
    # a count that grows with the number of heads
    "param_count": "def mha_param_count(d_model, n_heads, bias=True):\n"
                   "    return n_heads * (4 * d_model * d_model) + (4 * d_model if bias else 0)\n",
}


def test_multi_head_mistakes_lose_their_points_with_hints(tmp_path):
    result = by_id(check(fill_student("03_multi_head_attention", tmp_path, replace=WRONG_03)))
    expected_words = {
        "split_heads_test": "merge_heads reshaped",
        "mha_numpy_test": "np.dot",
        "multi_head_attention_test": "sqrt(d_model)",   # the first mistake the check meets
        # the masks cell starts with cross-attention, where keys from x cannot meet a (B, 1, T_k) mask
        "multi_head_attention_masks_test": "come from `memory`",
        "param_count_test": "number of heads",
    }
    assert_lost_with_hints(result, expected_words)
