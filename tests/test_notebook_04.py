"""End to end, notebook 04: planted positional-encoding mistakes lose their points, with hints.

One student notebook, otherwise filled with the solution code, gets a typical wrong answer
in every exercise and is graded once through `transformer-course check`. The checks are
tested mistake by mistake in test_grading_positional_encoding.py; this makes sure the hints reach a
learner through the real grading path (and that the notebook survives wrong answers in the
cells that use them).
"""
from __future__ import annotations

import pytest

from notebook_tools import assert_lost_with_hints, by_id, check, fill_student

pytestmark = pytest.mark.slow

WRONG_04 = {
    # review 04, finding 1: layer(x)[0] "to unpack a tuple" compares the first sequence only
    "permutation_gap": (
        "def permutation_gap(layer, x, perm):\n"
        "    with torch.no_grad():\n"
        "        a = layer(x)[0]\n"
        "        b = layer(x[:, perm])[0]\n"
        "    return float((b[torch.argsort(perm)] - a).abs().max())\n"),
    # COURSE.md's common bug: arange(0, d, 2) is already 2i, and the exponent doubles it
    "sinusoidal_table": (
        "def sinusoidal_table(n_positions, d_model, base=10000.0):\n"
        "    p = np.arange(n_positions)[:, None]\n"
        "    i = np.arange(0, d_model, 2)\n"
        "    angles = p / base ** (2 * i / d_model)\n"
        "    table = np.zeros((n_positions, d_model))\n"
        "    table[:, 0::2] = np.sin(angles)\n"
        "    table[:, 1::2] = np.cos(angles)\n"
        "    return table\n"),
    # a buffer, not a parameter: the table would never train
    "learned_positions": (
        "class LearnedPositions(nn.Module):\n"
        "    def __init__(self, max_positions, d_model):\n"
        "        super().__init__()\n"
        "        self.register_buffer('table', torch.randn(max_positions, d_model))\n\n"
        "    def forward(self, x, offset=0):\n"
        "        T = x.shape[-2]\n"
        "        if offset + T > self.table.shape[0]:\n"
        "            raise ValueError('too long')\n"
        "        return x + self.table[offset:offset + T]\n"),
    # the RoFormer paper's interleaved pairs where the oracle uses split halves
    "rotate_half": (
        "def rotate_half(x):\n"
        "    out = torch.empty_like(x)\n"
        "    out[..., 0::2] = -x[..., 1::2]\n"
        "    out[..., 1::2] = x[..., 0::2]\n"
        "    return out\n"),
    # wrong frequencies: the even index used twice again
    "rope_cos_sin": (
        "def rope_cos_sin(n_positions, d_head, base=10000.0):\n"
        "    i = torch.arange(0, d_head, 2, dtype=torch.float64)\n"
        "    angles = torch.arange(n_positions, dtype=torch.float64)[:, None] * base ** (-2 * i / d_head)\n"
        "    angles = torch.cat([angles, angles], dim=-1)\n"
        "    return angles.cos().float(), angles.sin().float()\n"),
    # apply_rope itself is right, but it uses the wrong rotate_half above
    # interleaved_to_halves: the inverse permutation
    "interleaved_to_halves": (
        "def interleaved_to_halves(x):\n"
        "    half = x.shape[-1] // 2\n"
        "    return torch.stack([x[..., :half], x[..., half:]], dim=-1).reshape(x.shape)\n"),
}


def test_positional_encoding_mistakes_lose_their_points_with_hints(tmp_path):
    result = by_id(check(fill_student("04_positional_encoding", tmp_path, replace=WRONG_04)))
    expected_words = {
        "permutation_gap_test": "only the first sequence of the batch",
        "sinusoidal_table_test": "even index twice",
        "learned_positions_test": "buffer",
        "rotate_half_test": "INTERLEAVED",
        "rope_cos_sin_test": "even index twice",
        "apply_rope_test": "your rotate_half from exercise 4 fails its checks",
        "interleaved_to_halves_test": "inverse permutation",
    }
    assert_lost_with_hints(result, expected_words)
