"""Scaled dot-product attention, its softmax and its masks: the reference answers.

Taught in notebook 02 (attention) and 03 (multi-head attention: heads, projections,
cross-attention); reused by 05 (transformer blocks), 06 (BERT), 07 (GPT, causal
masks, the key/value cache), 09 (CLIP) and 10 (efficient attention).

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
import torch.nn as nn
import torch.nn.functional as F

from .kernels import flash_attention

__all__ = [
    "softmax",
    "scaled_dot_product_attention",
    "attention",
    "softmax_torch",
    "causal_mask",
    "padding_mask",
    "mask_to_bias",
    "qk_variance",
    "split_heads",
    "merge_heads",
    "offset_causal_mask",
    "KVCache",
    "MultiHeadAttention",
    "use_flash_attention",
    "mha_param_count",
    "load_torch_mha",
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
    dropout_p: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Batched scaled dot-product attention in torch.

    Args:
        q: ``(..., n_q, d_k)``; k: ``(..., n_k, d_k)``; v: ``(..., n_k, d_v)``.
        mask: boolean, broadcastable to ``(..., n_q, n_k)``, ``True`` = may
            attend; or a float bias (``0`` / ``-inf``) added to the scores.
        is_causal: also apply :func:`causal_mask` (top-left aligned, as torch does).
        scale: the factor on the scores; ``1 / sqrt(d_k)`` by default.
        need_weights: also return the attention weights.
        dropout_p: dropout on the attention weights (training only; the
            returned weights are the ones before dropout).

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
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal, scale=scale,
                                              dropout_p=dropout_p), None

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
    dropped = F.dropout(weights, dropout_p) if dropout_p > 0 else weights
    return dropped @ v, weights                         # (..., n_q, d_v)


# ------------------------------------------------------------ multi-head ---

def split_heads(x, n_heads: int):
    """``(B, T, d_model) -> (B, n_heads, T, d_head)`` with ``d_head = d_model // n_heads``.

    Works on numpy arrays and torch tensors alike.  The reshape cuts each
    position's ``d_model`` features into ``n_heads`` consecutive chunks,
    ``(B, T, h, d_head)``; the transpose then moves the head axis in front of
    the sequence axis so that attention's matrix products run over ``T`` per head.
    Reshaping straight to ``(B, h, T, d_head)`` would keep the numbers in memory
    order and mix positions into heads: the classic bug.
    """
    B, T, d_model = x.shape
    if d_model % n_heads:
        raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
    return x.reshape(B, T, n_heads, d_model // n_heads).swapaxes(1, 2)   # (B, h, T, d_head)


def merge_heads(x):
    """``(B, n_heads, T, d_head) -> (B, T, n_heads * d_head)``: the inverse of :func:`split_heads`."""
    B, h, T, d_head = x.shape
    x = x.swapaxes(1, 2)                                                  # (B, T, h, d_head)
    if isinstance(x, torch.Tensor):
        x = x.contiguous()
    return x.reshape(B, T, h * d_head)


def offset_causal_mask(n_q: int, n_k: int, device: torch.device | str | None = None) -> torch.Tensor:
    """``(n_q, n_k)`` boolean: the ``n_q`` queries are the LAST ``n_q`` of ``n_k`` positions, so query ``i``
    (position ``n_k - n_q + i``) may see keys ``j <= n_k - n_q + i``. With ``n_q == n_k`` it is
    :func:`causal_mask`'s triangle; one new query against a cache sees every key."""
    return torch.ones(n_q, n_k, dtype=torch.bool, device=device).tril(diagonal=n_k - n_q)


class KVCache:
    """Keys and values of the positions seen so far, for one attention layer.

    The hook :class:`MultiHeadAttention` calls while decoding: ``update(k, v)``
    appends the new positions' keys and values (``(B, h, t_new, d_head)``) along
    the sequence axis and returns all of them, so each new token attends to
    every earlier one without recomputing their projections.  Notebook 07 uses
    one cache per layer to generate text.
    """

    def __init__(self) -> None:
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None

    def __len__(self) -> int:
        return 0 if self.k is None else self.k.shape[-2]

    def update(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.k is None:
            self.k, self.v = k, v
        else:
            self.k = torch.cat([self.k, k], dim=-2)
            self.v = torch.cat([self.v, v], dim=-2)
        return self.k, self.v

    def causal_mask(self, n_q: int, device: torch.device | str | None = None) -> torch.Tensor:
        """The causal mask of the ``n_q`` newest positions against all ``len(self)`` cached ones (the new
        included): ``(n_q, len(self))`` boolean, query ``i`` (position ``len - n_q + i``) may see key ``j``
        when ``j <= len - n_q + i``. For a prompt (``n_q == len``) it is the usual lower triangle; for one
        new token, a row of ``True``."""
        return offset_causal_mask(n_q, len(self), device)


def _as_head_mask(mask: torch.Tensor | None) -> torch.Tensor | None:
    """Let ``(B, n_q, n_k)`` masks (e.g. :func:`padding_mask`) broadcast over heads."""
    if mask is not None and mask.dim() == 3:
        return mask[:, None]                                              # (B, 1, n_q, n_k)
    return mask


class MultiHeadAttention(nn.Module):
    """Multi-head attention for self-attention and cross-attention.

    ``h`` heads each attend in a ``d_head = d_model / h`` dimensional subspace;
    their outputs are concatenated and mixed by ``out_proj``.  Parameters: four
    ``d_model x d_model`` projections (``q_proj``, ``k_proj``, ``v_proj``,
    ``out_proj``) and their biases, ``4 d_model^2 + 4 d_model`` in all, whatever
    the number of heads (:func:`mha_param_count`).

    ``forward(x, memory=None, *, mask=None, is_causal=False, need_weights=False,
    kv_cache=None, rotary=None)``:

    - ``x``: queries' source ``(B, T_q, d_model)``; ``memory``: keys' and values'
      source ``(B, T_k, d_model)`` for cross-attention (``None``: self-attention).
    - ``mask``: boolean, ``True`` = may attend, broadcastable to
      ``(B, h, T_q, T_k)``; a ``(B, 1, T_k)`` :func:`padding_mask` or a
      ``(T_q, T_k)`` :func:`causal_mask` both work.
    - ``is_causal``: position ``i`` attends to keys ``j <= i`` (counting cached
      keys: with a cache the new queries are the last ``T_q`` positions).
    - ``kv_cache``: a :class:`KVCache` (or anything with ``update(k, v)``); the
      new keys/values are appended and attention runs over all of them.
    - ``rotary``: ``(cos, sin)`` of shape ``(T_max, d_head)`` from
      :func:`transformer_course.positions.rope_cos_sin`, applied to queries and
      keys after the head split (RoPE, notebook 04); with a cache, rows
      ``len(cache) ..`` are used.

    Returns ``(output (B, T_q, d_model), weights (B, h, T_q, T_k) or None)``.

    ``backend``: ``"sdpa"`` (default) calls :func:`attention`, i.e. torch's fused kernel;
    ``"flash"`` calls :func:`transformer_course.kernels.flash_attention` (the course's tiled
    path, or its Triton kernel on a GPU), except where weights are asked for, a float mask is
    given or dropout is active, which take the plain path.
    :func:`use_flash_attention` switches a whole model.
    """

    backend = "sdpa"

    def __init__(self, d_model: int, n_heads: int, *, bias: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
        self.d_model, self.n_heads, self.d_head = d_model, n_heads, d_model // n_heads
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)
        self.dropout = dropout

    def _can_fuse_qkv(self) -> bool:
        """True when q/k/v_proj are plain :class:`torch.nn.Linear` layers without hooks, so that one stacked
        matrix product computes exactly what calling them would (a replaced or hooked projection is called)."""
        projs = (self.q_proj, self.k_proj, self.v_proj)
        return (all(type(p) is nn.Linear and not (p._forward_hooks or p._forward_pre_hooks) for p in projs)
                and len({p.bias is None for p in projs}) == 1)

    def _qkv(self, x: torch.Tensor):
        """``q_proj(x), k_proj(x), v_proj(x)`` from one ``(3 d, d)`` matrix product."""
        weight = torch.cat([self.q_proj.weight, self.k_proj.weight, self.v_proj.weight])
        bias = None if self.q_proj.bias is None else torch.cat([self.q_proj.bias, self.k_proj.bias,
                                                                 self.v_proj.bias])
        return F.linear(x, weight, bias).split(self.d_model, dim=-1)

    def forward(self, x: torch.Tensor, memory: torch.Tensor | None = None, *, mask: torch.Tensor | None = None,
                is_causal: bool = False, need_weights: bool = False, kv_cache=None, rotary=None):
        source = x if memory is None else memory
        if memory is None and self._can_fuse_qkv():
            # self-attention: the three projections as one matrix product (the same parameters, stacked)
            q, k, v = (split_heads(t, self.n_heads) for t in self._qkv(x))
        else:
            q = split_heads(self.q_proj(x), self.n_heads)                 # (B, h, T_q, d_head)
            k = split_heads(self.k_proj(source), self.n_heads)            # (B, h, T_k, d_head)
            v = split_heads(self.v_proj(source), self.n_heads)            # (B, h, T_k, d_head)
        if rotary is not None:
            from .positions import apply_rope                             # positions imports nothing from here
            offset = len(kv_cache) if kv_cache is not None else 0
            cos, sin = rotary
            q_cos, q_sin = cos[..., offset:offset + q.shape[-2], :], sin[..., offset:offset + q.shape[-2], :]
            q, k = apply_rope(q, q_cos, q_sin), apply_rope(k, q_cos, q_sin)
        if kv_cache is not None:
            k, v = kv_cache.update(k, v)                                  # (B, h, T_past + T_q, d_head)
        mask = _as_head_mask(mask)
        n_q, n_k = q.shape[-2], k.shape[-2]
        if is_causal and n_q != n_k:
            # new queries are the last n_q positions: query i may see keys j <= i + (n_k - n_q); a cache that
            # knows how (the course's, or the one a learner writes in notebook 07) builds that mask itself
            if kv_cache is not None and hasattr(kv_cache, "causal_mask"):
                causal = kv_cache.causal_mask(n_q, device=x.device)
            else:
                causal = offset_causal_mask(n_q, n_k, x.device)
            mask = causal if mask is None else mask & causal
            is_causal = False
        dropout_p = self.dropout if self.training else 0.0
        if (self.backend == "flash" and not need_weights and dropout_p == 0.0
                and (mask is None or mask.dtype == torch.bool)):
            out, weights = flash_attention(q, k, v, causal=is_causal, mask=mask), None
        else:
            out, weights = attention(q, k, v, mask, is_causal=is_causal, need_weights=need_weights,
                                     dropout_p=dropout_p)
        return self.out_proj(merge_heads(out)), weights                  # (B, T_q, d_model)


def use_flash_attention(model: nn.Module, enabled: bool = True) -> nn.Module:
    """Switch every :class:`MultiHeadAttention` in ``model`` to
    :func:`transformer_course.kernels.flash_attention` (``enabled=False``: back to
    ``scaled_dot_product_attention``).  A layer asked for its weights, given a float mask or
    running dropout on its weights still takes the plain path.  Returns ``model``."""
    for module in model.modules():
        if isinstance(module, MultiHeadAttention):
            module.backend = "flash" if enabled else "sdpa"
    return model


def mha_param_count(d_model: int, n_heads: int, bias: bool = True) -> int:
    """Parameters of :class:`MultiHeadAttention`: ``4 d^2 (+ 4 d)``, independent of ``n_heads``.

    Splitting ``d_model`` into heads reshapes the projections' outputs; it adds
    no weights.
    """
    if d_model % n_heads:
        raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
    return 4 * d_model * d_model + (4 * d_model if bias else 0)


@torch.no_grad()
def load_torch_mha(mine: MultiHeadAttention, theirs: nn.MultiheadAttention) -> MultiHeadAttention:
    """Copy a :class:`torch.nn.MultiheadAttention`'s weights into ``mine``.

    torch stores the three input projections stacked in one
    ``in_proj_weight`` of shape ``(3 d, d)`` (queries, keys, values in that
    order) and the output projection in ``out_proj``.
    """
    if theirs.in_proj_weight is None:
        raise ValueError("only torch MultiheadAttention with kdim == vdim == embed_dim is supported")
    w_q, w_k, w_v = theirs.in_proj_weight.chunk(3, dim=0)
    for proj, w in ((mine.q_proj, w_q), (mine.k_proj, w_k), (mine.v_proj, w_v)):
        proj.weight.copy_(w)
    if theirs.in_proj_bias is not None:
        b_q, b_k, b_v = theirs.in_proj_bias.chunk(3)
        for proj, b in ((mine.q_proj, b_q), (mine.k_proj, b_k), (mine.v_proj, b_v)):
            proj.bias.copy_(b)
    mine.out_proj.weight.copy_(theirs.out_proj.weight)
    if theirs.out_proj.bias is not None:
        mine.out_proj.bias.copy_(theirs.out_proj.bias)
    return mine
