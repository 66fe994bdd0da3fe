"""Telling attention where tokens are: sinusoidal, learned and rotary positions.

Taught in notebook 04 (positional encoding); used by 05 (the encoder-decoder's
sinusoidal positions), 06 (BERT's learned positions), 07 (GPT-2's learned
positions) and 09 (the ViT's learned patch positions).

Attention by itself is permutation-equivariant: shuffle the tokens and the
outputs shuffle the same way (:func:`permutation_gap` measures it).  The three
ways to break the symmetry:

- **sinusoidal** (Vaswani et al. 2017, section 3.5): add a fixed table,
  ``PE[p, 2i] = sin(p / 10000^(2i/d))`` and ``PE[p, 2i+1] = cos(p / 10000^(2i/d))``;
- **learned** (BERT, GPT-2): add a trained ``(max_positions, d)`` table;
- **rotary**, RoPE (Su et al. 2021, "RoFormer"): rotate each query and key by an
  angle proportional to its position, so that ``q_m . k_n`` depends on ``m - n``
  only.  Pairs of features are rotated together.  The paper pairs neighbours
  ``(x_0, x_1), (x_2, x_3), ...`` (the *interleaved* layout); transformers' Llama
  code pairs the two halves ``(x_0, x_{d/2}), (x_1, x_{d/2+1}), ...`` (the
  *split-halves* layout, via ``rotate_half``).  Both rotate the same pairs by
  the same angles once the features are permuted (:func:`interleaved_to_halves`),
  so a model trained in one layout needs its q/k weights permuted to run in the other.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

__all__ = [
    "sinusoidal_table",
    "SinusoidalPositions",
    "LearnedPositions",
    "rope_inverse_frequencies",
    "rope_cos_sin",
    "rotate_half",
    "apply_rope",
    "apply_rope_interleaved",
    "interleaved_to_halves",
    "halves_to_interleaved",
    "permutation_gap",
]

ROPE_BASE = 10_000.0  # the paper's base, and Llama's default rope_theta


# ----------------------------------------------------------- sinusoidal ---

def sinusoidal_table(n_positions: int, d_model: int, base: float = 10_000.0) -> np.ndarray:
    """The ``(n_positions, d_model)`` sinusoidal table of "Attention Is All You Need".

    Column ``2i`` holds ``sin(p * w_i)`` and column ``2i + 1`` holds
    ``cos(p * w_i)``, with frequencies ``w_i = base^(-2i / d_model)``: one pair
    of columns per frequency, from one cycle per ``2 pi`` positions down to one
    per ``2 pi * base``.  ``d_model`` must be even.  Vectorised: one outer
    product, no Python loop.
    """
    if d_model % 2:
        raise ValueError(f"d_model must be even, got {d_model}")
    positions = np.arange(n_positions, dtype=np.float64)[:, None]        # (P, 1)
    two_i = np.arange(0, d_model, 2, dtype=np.float64)                   # 0, 2, 4, ...: 2i already
    frequencies = base ** (-two_i / d_model)                             # (d/2,)
    angles = positions * frequencies                                     # (P, d/2)
    table = np.empty((n_positions, d_model))
    table[:, 0::2] = np.sin(angles)
    table[:, 1::2] = np.cos(angles)
    return table


class SinusoidalPositions(nn.Module):
    """Adds the fixed sinusoidal table to ``(B, T, d_model)`` embeddings (no parameters)."""

    def __init__(self, max_positions: int, d_model: int) -> None:
        super().__init__()
        self.register_buffer("table", torch.tensor(sinusoidal_table(max_positions, d_model), dtype=torch.float32),
                             persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T = x.shape[-2]
        if T > self.table.shape[0]:
            raise ValueError(f"sequence of length {T} is longer than max_positions={self.table.shape[0]}")
        return x + self.table[:T].to(x.dtype)


class LearnedPositions(nn.Module):
    """Adds a trained ``(max_positions, d_model)`` table to ``(B, T, d_model)`` embeddings.

    The table is an :class:`torch.nn.Embedding` looked up at positions
    ``0 .. T-1`` (``offset ..`` when decoding with a cache), as in BERT and GPT-2;
    it cannot represent positions beyond ``max_positions``.
    """

    def __init__(self, max_positions: int, d_model: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(max_positions, d_model)

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        T = x.shape[-2]
        if offset + T > self.embedding.num_embeddings:
            raise ValueError(f"positions up to {offset + T - 1} do not fit max_positions="
                             f"{self.embedding.num_embeddings}")
        positions = torch.arange(offset, offset + T, device=x.device)
        return x + self.embedding(positions)


# ----------------------------------------------------------------- RoPE ---

def rope_inverse_frequencies(d_head: int, base: float = ROPE_BASE, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The ``d_head / 2`` rotation speeds ``theta_i = base^(-2i / d_head)`` (radians per position)."""
    if d_head % 2:
        raise ValueError(f"d_head must be even, got {d_head}")
    return base ** (-torch.arange(0, d_head, 2, dtype=dtype) / d_head)


def rope_cos_sin(n_positions: int | torch.Tensor, d_head: int, base: float = ROPE_BASE,
                 dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosines and sines for RoPE in the split-halves layout, each ``(T, d_head)``.

    ``n_positions``: a count (positions ``0 .. n-1``) or a tensor of positions.
    Row ``p`` is ``[p theta_0, ..., p theta_{d/2-1}]`` repeated twice, so that
    feature ``i`` and feature ``i + d/2`` share an angle: the layout of
    transformers' ``LlamaRotaryEmbedding``.
    """
    positions = (n_positions.to(torch.float64) if isinstance(n_positions, torch.Tensor)
                 else torch.arange(int(n_positions), dtype=torch.float64))
    angles = torch.outer(positions, rope_inverse_frequencies(d_head, base))   # (T, d/2), float64
    angles = torch.cat([angles, angles], dim=-1)                             # (T, d)
    return angles.cos().to(dtype), angles.sin().to(dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """``[x1, x2] -> [-x2, x1]`` on the last axis, halves ``x1 = x[..., :d/2]``, ``x2 = x[..., d/2:]``."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` (``(..., T, d_head)``) by its positions' angles, split-halves layout.

    For each ``i < d/2`` the pair ``(x_i, x_{i+d/2})`` turns by ``p theta_i``::

        x_i'       = x_i cos - x_{i+d/2} sin
        x_{i+d/2}' = x_{i+d/2} cos + x_i sin

    which is ``x * cos + rotate_half(x) * sin`` with the repeated cos/sin of
    :func:`rope_cos_sin`.  ``cos`` and ``sin`` broadcast against ``x``.
    """
    return x * cos + rotate_half(x) * sin


def apply_rope_interleaved(x: torch.Tensor, positions: torch.Tensor | int, base: float = ROPE_BASE) -> torch.Tensor:
    """RoPE as the RoFormer paper writes it: neighbouring pairs ``(x_{2i}, x_{2i+1})`` turn by ``p theta_i``.

    ``positions``: a tensor of ``T`` positions, or the count ``T`` for positions ``0 .. T-1``
    (as in :func:`rope_cos_sin`).
    """
    T, d = x.shape[-2], x.shape[-1]
    if not isinstance(positions, torch.Tensor):
        if int(positions) != T:
            raise ValueError(f"{int(positions)} positions for a sequence of length {T}")
        positions = torch.arange(T)
    angles = torch.outer(positions.to(torch.float64), rope_inverse_frequencies(d, base)).to(x.dtype)  # (T, d/2)
    cos, sin = angles.cos(), angles.sin()
    even, odd = x[..., 0::2], x[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = even * cos - odd * sin
    out[..., 1::2] = odd * cos + even * sin
    return out


def interleaved_to_halves(x: torch.Tensor) -> torch.Tensor:
    """Reorder features ``[x0, x1, x2, x3, ...] -> [x0, x2, ..., x1, x3, ...]`` (evens, then odds).

    Then ``apply_rope(interleaved_to_halves(x)) == interleaved_to_halves(apply_rope_interleaved(x))``:
    the two layouts are the same rotation with the features listed in a different order.
    """
    return torch.cat([x[..., 0::2], x[..., 1::2]], dim=-1)


def halves_to_interleaved(x: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`interleaved_to_halves`."""
    half = x.shape[-1] // 2
    out = torch.empty_like(x)
    out[..., 0::2], out[..., 1::2] = x[..., :half], x[..., half:]
    return out


# ----------------------------------------------------- order-blindness ---

def permutation_gap(layer, x: torch.Tensor, generator: torch.Generator | None = None) -> float:
    """``max |layer(x[:, perm])[:, inverse] - layer(x)|`` for one random permutation of positions.

    Close to 0 (rounding only) for a layer that is permutation-equivariant, such
    as self-attention without positions; far from 0 once positions are added.
    ``layer`` maps ``(B, T, d) -> (B, T, d)`` (a tuple result: its first element).
    """
    perm = torch.randperm(x.shape[1], generator=generator)
    first = lambda out: out[0] if isinstance(out, tuple) else out  # noqa: E731
    with torch.no_grad():
        plain = first(layer(x))
        shuffled = first(layer(x[:, perm]))
    return float((shuffled[:, torch.argsort(perm)] - plain).abs().max())
