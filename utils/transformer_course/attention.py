"""Scaled dot-product attention, its softmax and its masks: the reference answers.

Taught in notebook 02 (attention); reused by 03 (multi-head attention), 05
(transformer blocks), 07 (GPT, causal masks) and 10 (efficient attention).

Shapes follow one convention everywhere::

    q: (..., n_q, d_k)    k: (..., n_k, d_k)    v: (..., n_k, d_v)
    scores, weights: (..., n_q, n_k)            output: (..., n_q, d_v)

where ``...`` is any number of leading batch / head axes that broadcast.

Mask convention (the same as the boolean ``attn_mask`` of
:func:`torch.nn.functional.scaled_dot_product_attention`): a **boolean** array
broadcastable to ``(..., n_q, n_k)`` in which ``True`` means *this query may
attend to this key*.  A query that may attend to no key at all gets an all-zero
weight row and an all-zero output, which is what torch's fused attention returns.

The numpy functions are the ones the notebook teaches; :func:`attention` is the
torch version the later notebooks build on.  Like nanoGPT's ``forward``, it keeps
the fused path and the plain path side by side behind one interface.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "softmax",
    "scaled_dot_product_attention",
    "attention",
    "softmax_torch",
    "causal_mask",
    "padding_mask",
    "mask_to_bias",
    "qk_variance",
]


# --------------------------------------------------------------------- numpy ---

def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax of ``x`` along ``axis``.

    Subtracting the maximum first changes nothing mathematically
    (``exp(x - m) / sum exp(x - m) == exp(x) / sum exp(x)``) but keeps ``exp``
    from overflowing on large logits (``exp(1000)`` is ``inf`` in float64).

    A slice that is entirely ``-inf`` (a query that may attend to nothing) gives
    zeros, not NaN: its maximum is ``-inf`` and ``-inf - (-inf)`` would be NaN,
    so the shift uses 0 there instead.
    """
    x = np.asarray(x)
    x = x.astype(np.result_type(x.dtype, np.float32), copy=False)  # ints and lists become floats
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)               # all -inf slice: shift by 0
    e = np.exp(x - m)
    total = np.sum(e, axis=axis, keepdims=True)
    return e / np.where(total == 0, 1.0, total)        # 0 / 1 = 0 for empty slices


def scaled_dot_product_attention(
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    mask: np.ndarray | None = None,
    scale: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    r"""Attention in numpy: :math:`\mathrm{softmax}(QK^\top/\sqrt{d_k})\,V`.

    Args:
        q: queries ``(..., n_q, d_k)``.
        k: keys ``(..., n_k, d_k)``.
        v: values ``(..., n_k, d_v)``.
        mask: optional boolean array broadcastable to ``(..., n_q, n_k)``;
            ``True`` where the query may attend to the key.
        scale: the factor on the scores; ``1 / sqrt(d_k)`` by default.

    Returns:
        ``(output, weights)`` of shapes ``(..., n_q, d_v)`` and ``(..., n_q, n_k)``.
    """
    q, k, v = np.asarray(q), np.asarray(k), np.asarray(v)
    d_k = q.shape[-1]
    scale = 1.0 / math.sqrt(d_k) if scale is None else scale
    scores = (q @ np.swapaxes(k, -1, -2)) * scale       # (..., n_q, n_k)
    if mask is not None:
        scores = np.where(np.asarray(mask, dtype=bool), scores, -np.inf)
    weights = softmax(scores, axis=-1)                  # over keys: each row sums to 1
    return weights @ v, weights                         # (..., n_q, d_v), (..., n_q, n_k)


def causal_mask(n: int, device: torch.device | str | None = None) -> np.ndarray | torch.Tensor:
    """The ``(n, n)`` boolean mask letting position ``i`` attend to positions ``j <= i``.

    Lower triangle including the diagonal (a token may look at itself and the
    past, never the future).  A numpy array by default; a torch tensor on
    ``device`` when one is given.
    """
    if device is not None:
        return torch.ones(n, n, dtype=torch.bool, device=device).tril()
    return np.tril(np.ones((n, n), dtype=bool))


def padding_mask(lengths, max_len: int):
    """Boolean mask of shape ``(B, 1, max_len)``: ``True`` at the real (non-padding) keys.

    Sequence ``b`` holds ``lengths[b]`` real tokens followed by padding.  The
    middle axis of size 1 stands for "every query": the mask broadcasts against
    scores of shape ``(B, n_q, n_k)``.  For scores with a head axis,
    ``(B, h, n_q, n_k)``, insert one more axis: ``padding_mask(...)[:, None]``
    has shape ``(B, 1, 1, max_len)``.

    Returns a torch tensor when ``lengths`` is one (on its device), numpy otherwise.
    """
    if isinstance(lengths, torch.Tensor):
        positions = torch.arange(max_len, device=lengths.device)
        return (positions[None, :] < lengths[:, None])[:, None, :]
    lengths = np.asarray(lengths)
    return (np.arange(max_len)[None, :] < lengths[:, None])[:, None, :]


def mask_to_bias(mask):
    """Turn a boolean mask into an additive bias: ``0.0`` where ``True``, ``-inf`` where ``False``.

    Adding the bias to the scores before the softmax has the effect of the mask.
    Select, do not multiply: ``(1 - mask) * -inf`` is NaN wherever the mask is
    ``True``, because ``0 * inf`` is NaN in IEEE arithmetic.

    Works on numpy arrays (returns float64) and torch tensors (returns
    ``dtype`` float32 unless ``torch.get_default_dtype()`` says otherwise).
    """
    if isinstance(mask, torch.Tensor):
        zero = torch.zeros((), dtype=torch.get_default_dtype(), device=mask.device)
        return torch.where(mask.bool(), zero, zero - math.inf)
    return np.where(np.asarray(mask, dtype=bool), 0.0, -np.inf)


def qk_variance(d_k: int, n_samples: int = 20_000, seed: int = 0) -> tuple[float, float]:
    """Measure ``Var(q . k)`` and ``Var(q . k / sqrt(d_k))`` for random vectors.

    ``q`` and ``k`` have independent standard-normal entries (mean 0, variance 1),
    so ``q . k`` is a sum of ``d_k`` independent products of variance 1: its
    variance is ``d_k``, and dividing by ``sqrt(d_k)`` brings it back to 1.

    Returns ``(variance of the raw dot products, variance of the scaled ones)``.
    """
    gen = np.random.default_rng(seed)
    q = gen.standard_normal((n_samples, d_k))
    k = gen.standard_normal((n_samples, d_k))
    dots = np.einsum("nd,nd->n", q, k)                  # n_samples dot products
    return float(dots.var()), float((dots / math.sqrt(d_k)).var())


# --------------------------------------------------------------------- torch ---

def softmax_torch(scores: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """:func:`torch.softmax` that returns zeros, not NaN, for an all ``-inf`` slice."""
    m = scores.amax(dim=dim, keepdim=True).detach()
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    e = torch.exp(scores - m)
    total = e.sum(dim=dim, keepdim=True)
    return e / torch.where(total == 0, torch.ones_like(total), total)


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    is_causal: bool = False,
    scale: float | None = None,
    need_weights: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Batched scaled dot-product attention in torch.

    Args:
        q: ``(..., n_q, d_k)``; k: ``(..., n_k, d_k)``; v: ``(..., n_k, d_v)``.
        mask: boolean, broadcastable to ``(..., n_q, n_k)``, ``True`` = may
            attend; or a float bias (``0`` / ``-inf``) added to the scores.
        is_causal: also apply :func:`causal_mask` (top-left aligned, as torch does).
        scale: the factor on the scores; ``1 / sqrt(d_k)`` by default.
        need_weights: also return the attention weights.

    Returns:
        ``(output, weights)``: output ``(..., n_q, d_v)``; weights
        ``(..., n_q, n_k)`` when ``need_weights`` is true, else ``None``.

    Without ``need_weights`` this calls the fused
    :func:`torch.nn.functional.scaled_dot_product_attention`, which never
    materialises the ``(n_q, n_k)`` matrix on kernels that support it; with it,
    the plain path below computes the same thing step by step.
    """
    n_q, n_k = q.shape[-2], k.shape[-2]
    if is_causal and mask is not None:                  # sdpa takes one or the other
        causal = torch.ones(n_q, n_k, dtype=torch.bool, device=q.device).tril()
        mask = mask & causal if mask.dtype == torch.bool else mask.masked_fill(~causal, -math.inf)
        is_causal = False

    if not need_weights:
        # fast path: fused kernel (flash / memory-efficient on GPUs, a fused loop on CPUs)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal, scale=scale), None

    # plain path: every step visible
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = (q @ k.transpose(-2, -1)) * scale          # (..., n_q, n_k)
    if is_causal:
        mask = torch.ones(n_q, n_k, dtype=torch.bool, device=q.device).tril()
    if mask is not None:
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, -math.inf)
        else:
            scores = scores + mask
    weights = softmax_torch(scores, dim=-1)             # (..., n_q, n_k), rows sum to 1 (or 0)
    return weights @ v, weights                         # (..., n_q, d_v)
