"""Efficient attention: the online softmax, tiled (FlashAttention) attention in torch, and a Triton kernel.

Taught in notebook 10 (efficient attention); measured in 08 (scaling); used by every
attention layer of the package through :func:`transformer_course.attention.use_flash_attention`.

Attention's cost is mostly memory traffic, not arithmetic: the plain version writes the
``(n_q, n_k)`` score matrix, reads it back for the softmax, writes the weights and reads
them again for the weighted sum of values.  FlashAttention (Dao et al. 2022, "FlashAttention:
Fast and Memory-Efficient Exact Attention with IO-Awareness"; Dao 2023, FlashAttention-2) never
writes that matrix: it walks over tiles of keys, keeps a running maximum ``m``, a running sum
``l`` of exponentials and an unnormalised output per query, rescales them when the maximum
grows (the *online softmax*, Milakov & Gimelshein 2018), and divides once at the end.  The
backward pass recomputes each tile's weights from the saved log-sum-exp ``m + log l``
instead of storing them.

Shapes: ``q (B, H, n_q, d)``, ``k (B, H, n_k, d)``, ``v (B, H, n_k, d_v)``; the output is
``(B, H, n_q, d_v)`` and the log-sum-exp ``(B, H, n_q)`` (natural log, of the scaled scores;
float32, or float64 for float64 inputs).  ``causal`` follows :func:`torch.nn.functional.scaled_dot_product_attention`: query
``i`` sees keys ``j <= i`` (top-left aligned), so no row is ever empty.  An optional boolean
``mask`` (``True`` = may attend) broadcasts to ``(B, H, n_q, n_k)``; a row it empties gives a
zero output, as in :func:`transformer_course.attention.attention`.

- :func:`online_softmax`: softmax statistics in one pass over blocks.
- :func:`tiled_attention_forward` / :func:`tiled_attention_backward`: the algorithm in plain
  torch, two loops over tiles; no tensor it creates has ``n_q * n_k`` entries per head.
- :func:`triton_attention_forward`: the same forward as one Triton kernel (pointer arithmetic
  and masks; float32 accumulators; tiles above the causal diagonal skipped).  Triton is an
  optional extra (``pip install -e ".[gpu]"``, Linux); without it this module still imports.
  With ``TRITON_INTERPRET=1`` set before Triton is imported, CPU tensors run the kernel under
  Triton's interpreter (slow; for small sizes and tests).
- :func:`flash_attention`: the entry point.  Triton on CUDA when Triton is installed, the
  tiled torch path otherwise, with the same results and a backward pass either way.
- :func:`naive_attention`, :class:`TensorWatch` and :func:`peak_memory`: the plain version and
  the tools that measure what each version allocates.
"""
from __future__ import annotations

import math
import os
import weakref
from typing import Any, Callable

import torch

try:                                    # optional: the GPU extra (Linux); everything else works without it
    import triton
    import triton.language as tl
except Exception:                       # pragma: no cover - absent, or broken: the course must still import
    triton = None
    tl = None

__all__ = [
    "online_softmax",
    "naive_attention",
    "tiled_attention_forward",
    "tiled_attention_backward",
    "TiledAttention",
    "triton_available",
    "triton_attention_forward",
    "triton_kernel_source",
    "flash_attention",
    "TensorWatch",
    "peak_memory",
]

LOG2E = 1.4426950408889634              # log2(e): the kernel works in base 2 (exp2 is one instruction)


# ----------------------------------------------------------- online softmax ---

def online_softmax(x: torch.Tensor, block_size: int = 128) -> torch.Tensor:
    """Softmax over the last axis, its statistics gathered in one pass over blocks of ``block_size``.

    For each block the running maximum ``m`` may grow; the running sum ``l`` of ``exp(x - m)``
    was computed against the old maximum, so it is rescaled by ``exp(m_old - m_new)`` before the
    block's own terms are added.  After the pass, ``softmax(x) = exp(x - m) / l``.
    Each row needs at least one finite value.
    """
    _check_block(block_size, "block_size")
    m = torch.full(x.shape[:-1], -math.inf, dtype=x.dtype, device=x.device)   # running max
    l = torch.zeros(x.shape[:-1], dtype=x.dtype, device=x.device)            # running sum of exp(x - m)
    for start in range(0, x.shape[-1], block_size):
        block = x[..., start:start + block_size]
        m_new = torch.maximum(m, block.amax(dim=-1))
        l = l * torch.exp(m - m_new) + torch.exp(block - m_new[..., None]).sum(dim=-1)
        m = m_new
    return torch.exp(x - m[..., None]) / l[..., None]


# ------------------------------------------------------------ plain attention ---

def naive_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False,
                    scale: float | None = None) -> torch.Tensor:
    """Attention the way notebook 02 writes it: the whole ``(n_q, n_k)`` score matrix, then softmax, then values."""
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = q @ k.transpose(-2, -1) * scale                                  # (..., n_q, n_k)
    if causal:
        allowed = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool, device=q.device).tril()
        scores = scores.masked_fill(~allowed, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


# ------------------------------------------------------- tiled, plain torch ---

def _check_block(size: int, name: str) -> None:
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"{name} must be a positive integer, got {size!r}")


def _tile_mask(i0: int, i1: int, j0: int, j1: int, causal: bool, mask: torch.Tensor | None,
               device: torch.device) -> torch.Tensor | None:
    """Which keys ``j0:j1`` the queries ``i0:i1`` may see, or ``None`` when all of them."""
    allowed = None
    if causal and j1 - 1 > i0:          # only tiles that cross the diagonal hold a masked pair
        rows = torch.arange(i0, i1, device=device)[:, None]
        cols = torch.arange(j0, j1, device=device)[None, :]
        allowed = cols <= rows                                                # (i1-i0, j1-j0)
    if mask is not None:
        tile = mask[..., i0:i1, j0:j1]
        allowed = tile if allowed is None else allowed & tile
    return allowed


def _expand_mask(mask: torch.Tensor | None, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor | None:
    """The mask as a ``(..., n_q, n_k)`` view (no copy), so that tiles can be sliced out of it."""
    if mask is None:
        return None
    return mask.expand(*torch.broadcast_shapes(mask.shape, q.shape[:-1] + (k.shape[-2],)))


def _accumulator_dtype(q: torch.Tensor) -> torch.dtype:
    """float32 running statistics for float16/bfloat16/float32 inputs (as the GPU kernels keep), float64 for float64."""
    return torch.float64 if q.dtype == torch.float64 else torch.float32


def _key_end(i1: int, n_k: int, causal: bool) -> int:
    """Keys past ``i1 - 1`` are hidden from every query of the tile ``i0:i1`` when causal: skip their tiles."""
    return min(n_k, i1) if causal else n_k


@torch.no_grad()
def tiled_attention_forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, causal: bool = False,
                            scale: float | None = None, mask: torch.Tensor | None = None,
                            block_q: int = 64, block_k: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """FlashAttention's forward pass in plain torch: ``(output, logsumexp)``.

    For each tile of ``block_q`` queries, walk over the tiles of ``block_k`` keys keeping per
    query the running maximum ``m``, the running sum ``l`` and the unnormalised output ``acc``
    (all float32); divide by ``l`` once at the end.  The largest tensor it creates is a
    ``(B, H, block_q, block_k)`` tile.  Returns the output in ``q``'s dtype and the
    log-sum-exp ``m + log l`` of each row (``-inf`` for a row the mask empties).
    """
    _check_block(block_q, "block_q")
    _check_block(block_k, "block_k")
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    n_q, n_k = q.shape[-2], k.shape[-2]
    acc_dtype = _accumulator_dtype(q)
    mask = _expand_mask(mask, q, k)
    out = torch.empty(*q.shape[:-1], v.shape[-1], dtype=q.dtype, device=q.device)
    lse = torch.empty(q.shape[:-1], dtype=acc_dtype, device=q.device)
    for i0 in range(0, n_q, block_q):
        i1 = min(i0 + block_q, n_q)
        qi = q[..., i0:i1, :].to(acc_dtype)                                    # (B, H, bq, d)
        m = torch.full(qi.shape[:-1], -math.inf, dtype=acc_dtype, device=q.device)    # (B, H, bq)
        l = torch.zeros(qi.shape[:-1], dtype=acc_dtype, device=q.device)
        acc = torch.zeros(*qi.shape[:-1], v.shape[-1], dtype=acc_dtype, device=q.device)  # (B, H, bq, d_v)
        for j0 in range(0, _key_end(i1, n_k, causal), block_k):
            j1 = min(j0 + block_k, n_k)
            s = qi @ k[..., j0:j1, :].to(acc_dtype).transpose(-2, -1) * scale  # (B, H, bq, bk)
            allowed = _tile_mask(i0, i1, j0, j1, causal, mask, q.device)
            if allowed is not None:
                s = s.masked_fill(~allowed, -math.inf)
            m_new = torch.maximum(m, s.amax(dim=-1))
            m_safe = torch.where(torch.isinf(m_new), 0.0, m_new)            # a row with nothing seen yet
            p = torch.exp(s - m_safe[..., None])                              # (B, H, bq, bk)
            alpha = torch.exp(m - m_safe)                                     # rescales what was summed so far
            l = l * alpha + p.sum(dim=-1)
            acc = acc * alpha[..., None] + p @ v[..., j0:j1, :].to(acc_dtype)
            m = m_new
        out[..., i0:i1, :] = (acc / torch.where(l == 0, 1.0, l)[..., None]).to(q.dtype)
        lse[..., i0:i1] = m + torch.log(l)                                    # -inf where l == 0
    return out, lse


@torch.no_grad()
def tiled_attention_backward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, out: torch.Tensor,
                             lse: torch.Tensor, dout: torch.Tensor, *, causal: bool = False,
                             scale: float | None = None, mask: torch.Tensor | None = None,
                             block_q: int = 64, block_k: int = 64
                             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The gradients ``(dq, dk, dv)`` by recomputation, tile by tile.

    Each tile's weights come back exactly from the saved log-sum-exp, ``P = exp(S - lse)``;
    then ``dV += P^T dO``, ``dP = dO V^T``, ``dS = P * (dP - D)`` with ``D = rowsum(dO * O)``
    (the softmax's Jacobian applied row by row: ``sum_j P_ij dP_ij = dO_i . O_i``), and
    ``dQ += dS K * scale``, ``dK += dS^T Q * scale``.
    """
    _check_block(block_q, "block_q")
    _check_block(block_k, "block_k")
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    n_q, n_k = q.shape[-2], k.shape[-2]
    acc_dtype = _accumulator_dtype(q)
    mask = _expand_mask(mask, q, k)
    dq = torch.zeros(q.shape, dtype=acc_dtype, device=q.device)
    dk = torch.zeros(k.shape, dtype=acc_dtype, device=q.device)
    dv = torch.zeros(v.shape, dtype=acc_dtype, device=q.device)
    dout = dout.to(acc_dtype)
    D = (dout * out.to(acc_dtype)).sum(dim=-1)                                # (B, H, n_q)
    lse = torch.where(torch.isinf(lse), math.inf, lse).to(acc_dtype)          # empty rows: P = exp(-inf) = 0
    for i0 in range(0, n_q, block_q):
        i1 = min(i0 + block_q, n_q)
        qi, doi = q[..., i0:i1, :].to(acc_dtype), dout[..., i0:i1, :]
        for j0 in range(0, _key_end(i1, n_k, causal), block_k):
            j1 = min(j0 + block_k, n_k)
            kj, vj = k[..., j0:j1, :].to(acc_dtype), v[..., j0:j1, :].to(acc_dtype)
            s = qi @ kj.transpose(-2, -1) * scale                             # (B, H, bq, bk)
            allowed = _tile_mask(i0, i1, j0, j1, causal, mask, q.device)
            if allowed is not None:
                s = s.masked_fill(~allowed, -math.inf)
            p = torch.exp(s - lse[..., i0:i1, None])                          # the forward's weights, recomputed
            dv[..., j0:j1, :] += p.transpose(-2, -1) @ doi
            dp = doi @ vj.transpose(-2, -1)
            ds = p * (dp - D[..., i0:i1, None])
            dq[..., i0:i1, :] += ds @ kj * scale
            dk[..., j0:j1, :] += ds.transpose(-2, -1) @ qi * scale
    return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype)


class TiledAttention(torch.autograd.Function):
    """Attention whose forward is tiled (torch, or the Triton kernel) and whose backward recomputes.

    ``TiledAttention.apply(q, k, v, causal, scale, mask, forward_fn)``: ``forward_fn(q, k, v,
    causal=, scale=, mask=)`` returns ``(output, logsumexp)``.  Only ``q``, ``k``, ``v`` get gradients.
    """

    @staticmethod
    def forward(ctx, q, k, v, causal, scale, mask, forward_fn):
        out, lse = forward_fn(q, k, v, causal=causal, scale=scale, mask=mask)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.causal, ctx.scale, ctx.mask = causal, scale, mask
        return out

    @staticmethod
    def backward(ctx, dout):
        q, k, v, out, lse = ctx.saved_tensors
        blocks = _torch_blocks(q)
        dq, dk, dv = tiled_attention_backward(q, k, v, out, lse, dout, causal=ctx.causal, scale=ctx.scale,
                                              mask=ctx.mask, **blocks)
        return dq, dk, dv, None, None, None, None


def _torch_blocks(q: torch.Tensor) -> dict:
    """Tile sizes for the torch path.  Each tile costs a few operator calls, so larger tiles run faster
    until they stop fitting in cache: 256 x 128 was the fastest of 64 to 512 on a 2-core CPU (2.7x
    faster than 64 x 64 at T = 2048); a GPU's launches cost more, so it takes larger ones."""
    return dict(block_q=512, block_k=256) if q.is_cuda else dict(block_q=256, block_k=128)


# ---------------------------------------------------------------- Triton ---

def triton_available() -> bool:
    """Whether Triton is installed (the ``gpu`` extra)."""
    return triton is not None


def _flash_forward_kernel(
        Q, K, V, O, LSE,
        stride_qb, stride_qh, stride_qt, stride_qd,
        stride_kb, stride_kh, stride_kt, stride_kd,
        stride_vb, stride_vh, stride_vt, stride_vd,
        stride_ob, stride_oh, stride_ot, stride_od,
        n_heads, n_q, n_k, scale_log2,
        D_QK: tl.constexpr, D_V: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, CAUSAL: tl.constexpr, IEEE: tl.constexpr):
    """One program: ``BLOCK_M`` queries of one (batch, head), against every tile of keys they may see."""
    start_m = tl.program_id(0)
    bh = tl.program_id(1)
    b = bh // n_heads
    h = bh % n_heads
    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)                         # query rows of this program
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    offs_dv = tl.arange(0, BLOCK_DV)
    row_ok = offs_m < n_q

    q_ptrs = Q + b * stride_qb + h * stride_qh + offs_m[:, None] * stride_qt + offs_d[None, :] * stride_qd
    q = tl.load(q_ptrs, mask=row_ok[:, None] & (offs_d[None, :] < D_QK), other=0.0)   # (BLOCK_M, BLOCK_D)

    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)                   # running max (base 2)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)                                 # running sum
    acc = tl.zeros([BLOCK_M, BLOCK_DV], dtype=tl.float32)                       # unnormalised output

    k_base = K + b * stride_kb + h * stride_kh
    v_base = V + b * stride_vb + h * stride_vh
    hi = n_k
    if CAUSAL:                         # tiles whose first key is past this program's last query are skipped
        hi = tl.minimum(n_k, (start_m + 1) * BLOCK_M)
    for start_n in range(0, hi, BLOCK_N):
        cols = start_n + offs_n
        col_ok = cols < n_k
        kt_ptrs = k_base + cols[None, :] * stride_kt + offs_d[:, None] * stride_kd
        kt = tl.load(kt_ptrs, mask=col_ok[None, :] & (offs_d[:, None] < D_QK), other=0.0)  # (BLOCK_D, BLOCK_N)
        if IEEE:
            s = tl.dot(q, kt, input_precision="ieee")
        else:
            s = tl.dot(q, kt)
        s = s * scale_log2                                                       # scores in base-2 units
        allowed = col_ok[None, :]
        if CAUSAL:
            allowed = allowed & (cols[None, :] <= offs_m[:, None])
        s = tl.where(allowed, s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))       # finite: key 0 is in the first tile and every row sees it
        alpha = tl.exp2(m_i - m_new)                                             # rescale the old sum
        p = tl.exp2(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        v_ptrs = v_base + cols[:, None] * stride_vt + offs_dv[None, :] * stride_vd
        v = tl.load(v_ptrs, mask=col_ok[:, None] & (offs_dv[None, :] < D_V), other=0.0)  # (BLOCK_N, BLOCK_DV)
        if IEEE:
            acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision="ieee")
        else:
            acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
        m_i = m_new

    acc = acc / l_i[:, None]                                                     # the one division
    o_ptrs = O + b * stride_ob + h * stride_oh + offs_m[:, None] * stride_ot + offs_dv[None, :] * stride_od
    tl.store(o_ptrs, acc.to(O.dtype.element_ty), mask=row_ok[:, None] & (offs_dv[None, :] < D_V))
    lse = (m_i + tl.log2(l_i)) / 1.4426950408889634                              # natural log, as torch's
    tl.store(LSE + bh * n_q + offs_m, lse, mask=row_ok)


# Triton decides when a function is decorated, and when its own library is imported, whether it
# compiles for the GPU or runs under its interpreter (TRITON_INTERPRET=1, read then): set the
# variable before the first import of Triton (notebook 10's first cell and tests/conftest.py do).
TRITON_INTERPRET = triton is not None and os.environ.get("TRITON_INTERPRET", "0") == "1"
_flash_forward = triton.jit(_flash_forward_kernel) if triton is not None else None

def triton_kernel_source() -> str:
    """The Triton kernel's source, to read (notebook 10 prints it)."""
    import inspect

    return inspect.getsource(_flash_forward_kernel)


_TRITON_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def _triton_unsupported(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask) -> str | None:
    """Why the Triton kernel cannot take these inputs, or ``None`` when it can."""
    if triton is None:
        return "Triton is not installed"
    if mask is not None:
        return "the kernel takes no mask (only causal=)"
    if not (q.dtype == k.dtype == v.dtype) or q.dtype not in _TRITON_DTYPES:
        return f"dtype {q.dtype} (the kernel takes float16, bfloat16 or float32, the same for q, k, v)"
    if q.device.type not in ("cuda", "cpu"):
        return f"device {q.device.type}"
    if q.device.type == "cpu" and not TRITON_INTERPRET:
        return ("CPU tensors need Triton's interpreter: set TRITON_INTERPRET=1 before Triton is first "
                "imported (restart the kernel, set it, then import)")
    if TRITON_INTERPRET and q.dtype != torch.float32:
        return f"{q.dtype} under Triton's interpreter, which computes with numpy (no bfloat16): use float32"
    if max(q.shape[-1], v.shape[-1]) > 256:
        return f"head size {max(q.shape[-1], v.shape[-1])} > 256"
    return None


def triton_attention_forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, causal: bool = False,
                             scale: float | None = None, mask: torch.Tensor | None = None,
                             block_m: int | None = None, block_n: int | None = None
                             ) -> tuple[torch.Tensor, torch.Tensor]:
    """The forward pass as one Triton kernel: ``(output, logsumexp)``, like :func:`tiled_attention_forward`.

    CUDA tensors run the compiled kernel; with ``TRITON_INTERPRET=1`` set before Triton was
    imported, CPU tensors run it under Triton's interpreter (float32 only; seconds for a few
    hundred positions).  Inputs need not be contiguous: the kernel walks
    them by their strides.  Raises ``ValueError`` for inputs it does not take (see
    :func:`flash_attention`, which falls back to the torch path instead).
    """
    _check_attention_inputs(q, k, v, mask)
    why = _triton_unsupported(q, k, v, mask)
    if why is not None:
        raise ValueError(f"the Triton kernel cannot run here: {why}")
    B, H, n_q, d = q.shape
    n_k, d_v = k.shape[-2], v.shape[-1]
    scale = 1.0 / math.sqrt(d) if scale is None else float(scale)
    out = torch.empty(B, H, n_q, d_v, dtype=q.dtype, device=q.device)
    lse = torch.empty(B, H, n_q, dtype=torch.float32, device=q.device)
    if n_q == 0:
        return out, lse
    d_max = max(d, d_v)
    args = (q, k, v, out, lse, *q.stride(), *k.stride(), *v.stride(), *out.stride(), H, n_q, n_k, scale * LOG2E)
    consts = dict(D_QK=d, D_V=d_v, BLOCK_D=max(16, triton.next_power_of_2(d)),
                  BLOCK_DV=max(16, triton.next_power_of_2(d_v)), CAUSAL=bool(causal), IEEE=q.dtype == torch.float32)
    if TRITON_INTERPRET:                # small tiles: the interpreter's cost grows with a tile's size
        block_m, block_n = block_m or 16, block_n or 16
        _flash_forward[(triton.cdiv(n_q, block_m), B * H)](*args, **consts, BLOCK_M=block_m, BLOCK_N=block_n)
        return out, lse
    for config in _gpu_configs(d_max, q.element_size(), block_m, block_n):
        try:
            _flash_forward[(triton.cdiv(n_q, config["BLOCK_M"]), B * H)](*args, **consts, **config)
            return out, lse
        except triton.runtime.errors.OutOfResources:
            continue                    # too much shared memory for this GPU: try smaller tiles
    raise RuntimeError(f"the Triton kernel found no tile size that fits this GPU for head size {d_max}")


def _gpu_configs(d_max: int, element_size: int, block_m: int | None, block_n: int | None) -> list[dict]:
    """Tile sizes and launch settings to try in order, largest first.  The first follows the Triton tutorial's
    choice for Hopper (128 x 64 tiles, 3 pipeline stages); float32 tiles and large heads take twice the shared
    memory, so smaller tiles follow for GPUs with less of it."""
    wide = d_max * element_size > 256               # head rows over 256 bytes: fp32 beyond 64, 16-bit beyond 128
    warps = 4 if d_max <= 64 else 8
    candidates = [(128, 64, 3), (64, 64, 2), (64, 32, 2), (32, 32, 1)]
    if wide:
        candidates = candidates[1:]
    configs = [dict(BLOCK_M=block_m or m, BLOCK_N=block_n or n, num_warps=warps, num_stages=stages)
               for m, n, stages in candidates]
    return [c for i, c in enumerate(configs) if c not in configs[:i]]


# ------------------------------------------------------------ entry point ---

def _check_attention_inputs(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor) or t.dim() != 4:
            shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"{name} must be a (B, H, T, D) tensor, got {shape}")
    if q.shape[:2] != k.shape[:2] or k.shape[:2] != v.shape[:2]:
        raise ValueError(f"q, k and v must share (B, H): got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k must have the same head size: {q.shape[-1]} != {k.shape[-1]}")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"k and v must have the same length: {k.shape[-2]} != {v.shape[-2]}")
    if k.shape[-2] == 0:
        raise ValueError("attention over an empty sequence: k and v have no positions to attend to")
    if not (q.device == k.device == v.device):
        raise ValueError(f"q, k and v are on different devices: {q.device}, {k.device}, {v.device}")
    if mask is not None:
        target = (q.shape[0], q.shape[1], q.shape[2], k.shape[2])
        if mask.dtype != torch.bool:
            raise ValueError(f"mask must be boolean (True = may attend), got {mask.dtype}")
        try:
            torch.broadcast_shapes(mask.shape, target)
        except RuntimeError:
            raise ValueError(f"mask of shape {tuple(mask.shape)} does not broadcast to (B, H, n_q, n_k) = "
                             f"{target}") from None


def flash_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, causal: bool = False,
                    scale: float | None = None, mask: torch.Tensor | None = None,
                    backend: str = "auto") -> torch.Tensor:
    """Exact attention without the ``(n_q, n_k)`` matrix, differentiable: ``(B, H, n_q, d_v)``.

    ``backend="auto"`` runs the Triton kernel on CUDA tensors when Triton is installed and the
    inputs suit it, and the tiled torch path otherwise (CPU, MPS, float64, a ``mask``, no
    Triton): the same numbers up to rounding.  ``"torch"`` forces the torch path; ``"triton"``
    forces the kernel (on CPU tensors under Triton's interpreter, ``TRITON_INTERPRET=1``) and
    raises when it cannot run.
    The backward pass recomputes the weights tile by tile from the saved log-sum-exp.

    Bad input (not 4-D, different ``(B, H)`` or head sizes, no keys, a mask that does not
    broadcast) raises ``ValueError``.  An empty query sequence gives an empty output.
    """
    _check_attention_inputs(q, k, v, mask)
    if backend not in ("auto", "torch", "triton"):
        raise ValueError(f"backend must be 'auto', 'torch' or 'triton', got {backend!r}")
    if mask is not None:
        mask = mask.to(q.device)
    use_triton = backend == "triton" or (backend == "auto" and q.is_cuda and _triton_unsupported(q, k, v, mask) is None)
    if use_triton:
        forward = triton_attention_forward
    else:
        blocks = _torch_blocks(q)

        def forward(q, k, v, **kw):
            return tiled_attention_forward(q, k, v, **kw, **blocks)
    return TiledAttention.apply(q, k, v, bool(causal), scale, mask, forward)


# ---------------------------------------------------------- measuring memory ---

class TensorWatch(torch.utils._python_dispatch.TorchDispatchMode):
    """Watches every tensor the operators inside it create: the peak of the bytes alive at once
    (``peak``), the largest tensor with memory of its own (``largest_shape``, ``largest_numel``;
    views such as an expanded mask or a slice are not new memory), and the most entries one tensor
    holds in its last two axes (``largest_matrix``, ``largest_matrix_shape``: a score matrix per head
    is ``n_q * n_k`` however the batch and heads are laid out before them).

    It sees what operators return, not a fused kernel's private scratch, and not the tensors
    created by a Triton kernel (which bypasses torch's operators)."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, int] = {}
        self.current = 0
        self.peak = 0
        self.largest_numel = 0
        self.largest_shape: tuple[int, ...] = ()
        self.largest_matrix = 0                     # the most entries in the last two axes of one tensor
        self.largest_matrix_shape: tuple[int, ...] = ()

    def _track(self, t: torch.Tensor) -> None:
        try:
            storage = t.untyped_storage()
        except (RuntimeError, NotImplementedError):
            return
        key = storage.data_ptr()
        if key == 0 or key in self.live:
            return                      # a view of memory already counted (an expanded mask, a slice)
        if t.numel() > self.largest_numel:
            self.largest_numel, self.largest_shape = t.numel(), tuple(t.shape)
        trailing = math.prod(t.shape[-2:])
        if trailing > self.largest_matrix:
            self.largest_matrix, self.largest_matrix_shape = trailing, tuple(t.shape)
        size = storage.nbytes()
        self.live[key] = size
        self.current += size
        self.peak = max(self.peak, self.current)
        weakref.finalize(storage, self._release, key)

    def _release(self, key: int) -> None:
        self.current -= self.live.pop(key, 0)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in torch.utils._pytree.tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self._track(t)
        return out


def peak_memory(fn: Callable[[], Any], device: torch.device | str = "cpu") -> int:
    """Peak bytes of the tensors ``fn()`` allocates beyond what existed before: the CUDA allocator's
    peak on a GPU; on a CPU, the peak of the bytes alive at once among the tensors its operators
    create (:class:`TensorWatch`)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        out = fn()
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) - before
        del out
        return int(peak)
    with TensorWatch() as watch:
        out = fn()
        peak = watch.peak
    del out
    return int(peak)

