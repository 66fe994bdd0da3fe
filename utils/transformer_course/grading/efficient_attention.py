"""Checks for notebook 10 (efficient attention: the online softmax, tiled attention forward and backward).

The oracles are torch's: ``torch.softmax``, ``scaled_dot_product_attention`` and ``torch.logsumexp`` for the
forward pass, autograd through ``scaled_dot_product_attention`` for the backward, all in float64.  The
learner's code is watched while it runs (:class:`~transformer_course.kernels.TensorWatch`): a "tiled"
answer that creates a tensor as large as the ``(n_q, n_k)`` score matrix fails, and an online softmax
that reduces over more than one block at a time is not one pass over blocks.

Every listed mistake (COURSE.md: the running sum not rescaled when the maximum changes, the final
division forgotten, the causal mask on the wrong tiles, the log-sum-exp of the last block only) is a
variant computed here on the check's own inputs, named when the learner's output reproduces it.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .. import kernels as ref
from .core import (FUSED_ATTENTION, call, diagnose, expect_close, expect_tensor, fail, forbidden, passed, rng,
                   worked_example)

__all__ = [
    "online_softmax_example", "online_softmax",
    "tiled_attention_example", "tiled_attention",
    "tiled_attention_backward_example", "tiled_attention_backward",
]

# float64 inputs; every listed mistake is off by far more
TOL = dict(atol=1e-8, rtol=1e-7)

_FORBID_SOFTMAX = (forbidden(torch, "softmax", "logsumexp") + forbidden(F, "softmax", "log_softmax")
                   + forbidden(torch.Tensor, "softmax", "logsumexp", "numpy")
                   + forbidden(ref, "online_softmax"))
_FORBID_ATTENTION = (FUSED_ATTENTION + forbidden(torch.Tensor, "numpy")
                     + forbidden(ref, "tiled_attention_forward", "tiled_attention_backward", "flash_attention",
                                 "triton_attention_forward", "naive_attention", "online_softmax"))

# ------------------------------------------------------- 1. online softmax ---

HINT_NO_RESCALE = (
    "the running sum is not rescaled when the running maximum grows: the terms summed so far are exp(x - m_old); "
    "multiply l by exp(m_old - m_new) before adding the new block's exp(x - m_new)."
)
HINT_RESCALE_SIGN = "the rescaling factor is upside down: it is exp(m_old - m_new) (at most 1), not exp(m_new - m_old)."
HINT_LAST_BLOCK_SUM = (
    "l holds the last block's sum only: it must accumulate over every block (l = l * rescale + this block's sum)."
)
HINT_NO_DIVISION = "the final division is missing: after the pass, softmax = exp(x - m) / l."
HINT_NO_MAX = (
    "exp of a large logit overflows (exp(1000) is inf): subtract the running maximum, exp(x - m), as the "
    "stable softmax of notebook 02 does."
)
HINT_NAN = (
    "NaN comes from inf - inf or 0 * inf. At the start m = -inf and l = 0, and exp(m - m_new) = exp(-inf) = 0 is "
    "what makes the first block work: check the signs of the exponents, and that each block's terms are "
    "exp(block - m_new)."
)
HINT_WHOLE_ROW = (
    "one pass over blocks reads block_size values at a time: keep a running max and sum and update them block "
    "by block (x[..., start:start + block_size]) instead of reducing over whole rows."
)


def _softmax_variants(x: torch.Tensor, block: int) -> list[tuple[str, torch.Tensor]]:
    """The listed mistakes, each as the output it gives on ``x``."""
    def stats(rescale):
        m = torch.full(x.shape[:-1], -math.inf, dtype=x.dtype)
        l = torch.zeros(x.shape[:-1], dtype=x.dtype)
        for start in range(0, x.shape[-1], block):
            b = x[..., start:start + block]
            m_new = torch.maximum(m, b.amax(-1))
            l = rescale(l, m, m_new) + torch.exp(b - m_new[..., None]).sum(-1)
            m = m_new
        return m, l

    out = []
    for hint, rescale in ((HINT_NO_RESCALE, lambda l, m, m_new: l),
                          (HINT_RESCALE_SIGN, lambda l, m, m_new: l * torch.exp(m_new - m)),    # 0 * inf: NaN
                          (HINT_LAST_BLOCK_SUM, lambda l, m, m_new: torch.zeros_like(l))):
        m, l = stats(rescale)
        out.append((hint, torch.exp(x - m[..., None]) / l[..., None]))
    m, _ = stats(lambda l, m, m_new: l * torch.exp(m - m_new))
    out.append((HINT_NO_DIVISION, torch.exp(x - m[..., None])))
    return out


class _Reductions(torch.utils._python_dispatch.TorchDispatchMode):
    """Records the longest stretch of the last axis any reduction reads, and any softmax operator run, by
    whatever route the learner's code reached it (``torch.special.softmax``, ``nn.Softmax()``, ...)."""

    SOFTMAXES = {"_softmax", "_log_softmax", "logsumexp", "_safe_softmax"}
    REDUCTIONS = {"amax", "amin", "max", "min", "sum", "mean", "cumsum", "sort", "topk", "cummax"} | SOFTMAXES

    def __init__(self) -> None:
        super().__init__()
        self.widest = 0
        self.softmax: str | None = None

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.__name__.split(".")[0]
        if name in self.SOFTMAXES:
            self.softmax = self.softmax or f"torch.ops.aten.{name}"
        if name in self.REDUCTIONS and args and isinstance(args[0], torch.Tensor) and args[0].dim() > 0:
            self.widest = max(self.widest, int(args[0].shape[-1]))
        return func(*args, **(kwargs or {}))


def _check_softmax_case(fn: Callable, x: torch.Tensor, block: int, label: str) -> None:
    what = f"online_softmax ({label})"
    with _Reductions() as seen:
        out = call(fn, x.clone(), block, what=what, forbid=_FORBID_SOFTMAX)
    if seen.softmax:
        fail(f"{what} runs {seen.softmax}, which computes the very thing this exercise asks you to write.",
             "keep the running maximum and sum yourself, block by block, with exp, maximum and sum.")
    out = expect_tensor(out, what)
    if tuple(out.shape) != tuple(x.shape):
        fail(f"{what} has shape {tuple(out.shape)}, expected {tuple(x.shape)} (the same as x).")
    mistakes = [(h, v.numpy()) for h, v in _softmax_variants(x, block)]
    bad_rows = ~torch.isfinite(out.detach()).all(dim=-1)
    if bad_rows.any():
        where = f"{what} contains NaN or infinity for logits up to {x[bad_rows].abs().max().item():.0f}."
        if not (bad_rows & (x.abs().amax(dim=-1) <= 80)).any():
            fail(where, HINT_NO_MAX)                 # only rows with huge logits: exp overflowed
        diagnose(out.detach().numpy(), mistakes, what, **TOL)
        fail(where, HINT_NAN)
    expect_close(out, torch.softmax(x, -1).numpy(), what, mistakes=mistakes, **TOL)
    if seen.widest > block and x.shape[-1] > block:
        fail(f"{what} gives the right numbers, but it reduces over {seen.widest} values at once with "
             f"block_size={block}.", HINT_WHOLE_ROW)


def online_softmax_example(fn: Callable) -> None:
    """Visible: the row 1, 2, ..., 6 in blocks of 2 (the maximum grows in every block), and the same row plus 999."""
    x = torch.arange(1.0, 7.0, dtype=torch.float64)[None]
    x = torch.cat([x, x + 999.0])
    with worked_example("blocks [1, 2], [3, 4], [5, 6]. After block 1: m = 2, l = e^-1 + e^0 = 1.3679. "
                        "Block 2 raises m to 4: l = 1.3679 * e^(2-4) + e^-1 + e^0 = 1.5530. Block 3 raises m to 6: "
                        "l = 1.5530 * e^-2 + 1.3679 = 1.5780. Then softmax = exp(x - 6) / 1.5780: "
                        "[0.0043, 0.0116, 0.0315, 0.0858, 0.2331, 0.6337], as torch.softmax gives. The second row, "
                        "1000..1005, has the same softmax: exp(1005) overflows, exp(1005 - m) does not."):
        _check_softmax_case(fn, x, 2, "worked example: 1..6 and 1000..1005, blocks of 2")
    passed("online_softmax (worked example)")


def online_softmax(fn: Callable) -> None:
    """Hidden: random rows, block sizes that do and do not divide the length, rising rows, huge logits."""
    gen = rng()
    for _ in range(2):
        shape = (int(gen.integers(1, 4)), int(gen.integers(2, 4)), int(gen.integers(20, 90)))
        x = torch.from_numpy(gen.standard_normal(shape) * 4)
        block = int(gen.integers(3, 12))
        _check_softmax_case(fn, x, block, f"x {tuple(x.shape)}, block_size {block}")
    rising = torch.from_numpy(np.sort(gen.standard_normal((3, 40)) * 5, axis=-1))
    _check_softmax_case(fn, rising, 7, "rows sorted in increasing order, block_size 7")
    huge = torch.from_numpy(gen.standard_normal((2, 30)) * 3 + 1000.0)
    _check_softmax_case(fn, huge, 8, "logits near 1000, block_size 8")
    single = torch.from_numpy(gen.standard_normal((2, 10)))
    _check_softmax_case(fn, single, 64, "block_size larger than the row")
    passed("online_softmax (random rows, rising rows, logits of 1000)")


# ---------------------------------------------------- 2. tiled forward ---

HINT_ACC_NO_RESCALE = (
    "when the running maximum grows, what was accumulated so far was computed against the old maximum: rescale "
    "BOTH the running sum l and the output accumulator by exp(m_old - m_new) before adding the new tile."
)
HINT_FWD_NO_DIVISION = "the final division is missing: the output is acc / l, once, after the last key tile."
HINT_MASK_LOCAL = (
    "the causal mask is applied in tile coordinates (the same triangle in every tile): whether query i may see "
    "key j depends on their positions in the whole sequence, j <= i, with i and j counted from 0 of the sequence."
)
HINT_MASK_DIAGONAL = (
    "tiles that straddle the diagonal are not masked: skipping the tiles above the diagonal is not enough; in a "
    "tile with some key positions j > i, those pairs must be set to -inf."
)
HINT_CAUSAL_IGNORED = "causal=True gives the unmasked answer: query i may only see keys j <= i."
HINT_LSE_LAST = (
    "the log-sum-exp is that of the last key tile only: return m + log(l) with the running m and l of the whole "
    "row, after every tile."
)
HINT_LSE_NO_MAX = "the log-sum-exp is m + log(l): log(l) alone forgets the maximum that was factored out."
HINT_NO_SCALE = "the scores are q @ k^T / sqrt(d): the scale is missing."
HINT_FULL_MATRIX = (
    "a tiled attention never holds the whole (n_q, n_k) matrix: work on one (block_q, block_k) tile of scores at "
    "a time, keeping only running statistics per query."
)


def _variant_forward(q, k, v, causal: bool, bq: int, bk: int, mistake: str | None = None):
    """The tiled forward with one listed mistake (``None``: correct); float64, ``(out, lse)``."""
    n_q, n_k, d = q.shape[-2], k.shape[-2], q.shape[-1]
    scale = 1.0 if mistake == "no_scale" else 1 / math.sqrt(d)
    out = torch.zeros(*q.shape[:-1], v.shape[-1], dtype=q.dtype)
    lse = torch.zeros(q.shape[:-1], dtype=q.dtype)
    for i0 in range(0, n_q, bq):
        i1 = min(i0 + bq, n_q)
        m = torch.full(q.shape[:-2] + (i1 - i0,), -math.inf, dtype=q.dtype)
        l = torch.zeros_like(m)
        acc = torch.zeros(*m.shape, v.shape[-1], dtype=q.dtype)
        skip = causal and mistake not in ("causal_ignored",)
        last = None
        for j0 in range(0, min(n_k, i1) if skip else n_k, bk):
            j1 = min(j0 + bk, n_k)
            s = q[..., i0:i1, :] @ k[..., j0:j1, :].transpose(-2, -1) * scale
            if causal and mistake == "mask_local":
                s = s.masked_fill(~torch.ones(i1 - i0, j1 - j0, dtype=torch.bool).tril(), -math.inf)
            elif causal and mistake == "mask_local_diagonal":
                if j1 - 1 > i0:
                    s = s.masked_fill(torch.arange(j1 - j0)[None, :] > torch.arange(i1 - i0)[:, None], -math.inf)
            elif causal and mistake not in ("mask_diagonal", "causal_ignored"):
                rows = torch.arange(i0, i1)[:, None]
                s = s.masked_fill(torch.arange(j0, j1)[None, :] > rows, -math.inf)
            m_new = torch.maximum(m, s.amax(-1))
            safe = torch.where(torch.isinf(m_new), 0.0, m_new)
            p = torch.exp(s - safe[..., None])
            alpha = torch.exp(m - safe)
            if mistake == "no_rescale":
                l, acc = l + p.sum(-1), acc + p @ v[..., j0:j1, :]
            elif mistake == "no_rescale_acc":
                l, acc = l * alpha + p.sum(-1), acc + p @ v[..., j0:j1, :]
            else:
                l, acc = l * alpha + p.sum(-1), acc * alpha[..., None] + p @ v[..., j0:j1, :]
            m = m_new
            last = (safe, p.sum(-1))
        out[..., i0:i1, :] = acc if mistake == "no_division" else acc / l[..., None]
        if mistake == "lse_last":
            lse[..., i0:i1] = last[0] + torch.log(last[1])
        elif mistake == "lse_no_max":
            lse[..., i0:i1] = torch.log(l)
        else:
            lse[..., i0:i1] = m + torch.log(l)
    return out, lse


_FORWARD_MISTAKES = {
    "no_rescale": HINT_ACC_NO_RESCALE, "no_rescale_acc": HINT_ACC_NO_RESCALE, "no_division": HINT_FWD_NO_DIVISION,
    "mask_local": HINT_MASK_LOCAL, "mask_local_diagonal": HINT_MASK_LOCAL, "mask_diagonal": HINT_MASK_DIAGONAL,
    "causal_ignored": HINT_CAUSAL_IGNORED, "no_scale": HINT_NO_SCALE,
}
_CAUSAL_ONLY = ("mask_local", "mask_local_diagonal", "mask_diagonal", "causal_ignored")
_LSE_MISTAKES = {"lse_last": HINT_LSE_LAST, "lse_no_max": HINT_LSE_NO_MAX}


def _expect_no_full_matrix(watch: ref.TensorWatch, q, k, what: str) -> None:
    """No tensor may hold n_q * n_k entries in its last two axes: that is a whole score matrix per head (or all
    heads' matrices flattened together); a tile, a strip of block_q rows or the output holds fewer."""
    n_q, n_k = q.shape[-2], k.shape[-2]
    if watch.largest_matrix >= n_q * n_k:
        fail(f"{what} created a tensor of shape {watch.largest_matrix_shape} (torch may flatten the batch and heads "
             f"into its first axis): its last two axes hold at least a whole (n_q, n_k) = ({n_q}, {n_k}) score "
             f"matrix.", HINT_FULL_MATRIX)


def _check_forward_case(fn: Callable, q, k, v, causal: bool, bq: int, bk: int, label: str) -> None:
    what = f"tiled_attention ({label})"
    with ref.TensorWatch() as watch:
        result = call(fn, q.clone(), k.clone(), v.clone(), causal=causal, block_q=bq, block_k=bk, what=what,
                      forbid=_FORBID_ATTENTION)
    if not (isinstance(result, tuple) and len(result) == 2):
        fail(f"{what} returned {type(result).__name__}, expected a pair (output, logsumexp).",
             "return out, lse: the log-sum-exp per query is what the backward pass needs.")
    out, lse = (expect_tensor(t, f"{what}: {name}") for t, name in zip(result, ("output", "logsumexp")))
    want_shape = tuple(q.shape[:-1]) + (v.shape[-1],)
    if tuple(out.shape) != want_shape:
        fail(f"{what}: the output has shape {tuple(out.shape)}, expected (B, H, n_q, d_v) = {want_shape}.")
    if tuple(lse.shape) != tuple(q.shape[:-1]):
        fail(f"{what}: the log-sum-exp has shape {tuple(lse.shape)}, expected (B, H, n_q) = {tuple(q.shape[:-1])}.")
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    variants = [(hint, _variant_forward(q, k, v, causal, bq, bk, m)[0].numpy())
                for m, hint in _FORWARD_MISTAKES.items() if causal or m not in _CAUSAL_ONLY]
    expect_close(out.detach(), expected.numpy(), f"{what}: output against scaled_dot_product_attention",
                 mistakes=variants, **TOL)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if causal:
        scores = scores.masked_fill(~torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool).tril(), -math.inf)
    lse_variants = [(hint, _variant_forward(q, k, v, causal, bq, bk, m)[1].numpy()) for m, hint in _LSE_MISTAKES.items()]
    lse_variants.append(("the log-sum-exp is in base 2; torch.logsumexp uses the natural log.",
                         (torch.logsumexp(scores, -1) / math.log(2)).numpy()))
    expect_close(lse.detach(), torch.logsumexp(scores, -1).numpy(), f"{what}: log-sum-exp against torch.logsumexp",
                 mistakes=lse_variants, **TOL)
    _expect_no_full_matrix(watch, q, k, what)


def _qkv(gen: np.random.Generator, B: int, H: int, n_q: int, n_k: int, d: int, d_v: int | None = None,
         spread: float = 1.0):
    return tuple(torch.from_numpy(gen.standard_normal(shape) * spread)
                 for shape in ((B, H, n_q, d), (B, H, n_k, d), (B, H, n_k, d_v or d)))


def tiled_attention_example(fn: Callable) -> None:
    """Visible: one head, 8 queries and keys of size 4, query tiles of 4 and key tiles of 3, plain and causal."""
    gen = np.random.default_rng(10)
    q, k, v = _qkv(gen, 1, 1, 8, 8, 4, spread=2.0)
    with worked_example("8 queries in two tiles of 4 (positions 0-3, 4-7), against three tiles of keys (0-2, 3-5, "
                        "6-7). Without the mask every query tile meets every key tile. With causal=True the first "
                        "query tile skips keys 6-7 entirely; in the tiles that straddle the diagonal, the pairs with "
                        "key position j > query position i are masked, positions counted in the whole sequence "
                        "(query 4 meets keys 3-5 and sees 3 and 4, not 5). The output must equal "
                        "scaled_dot_product_attention and the log-sum-exp torch.logsumexp(q @ k^T / 2, dim=-1)."):
        for causal in (False, True):
            _check_forward_case(fn, q, k, v, causal, 4, 3, f"worked example, causal={causal}, block_q=4, block_k=3")
    passed("tiled_attention (worked example, plain and causal)")


def tiled_attention(fn: Callable) -> None:
    """Hidden: random shapes, lengths that are not multiples of the tiles, n_q != n_k, d_v != d, causal or not,
    and the tensors it creates watched."""
    gen = rng()
    cases = [(False, 48, 80), (True, 64, 64), (True, 50, 70), (False, 37, 37), (True, 70, 45)]
    for causal, n_q, n_k in cases:
        bq, bk = int(gen.choice([8, 16])), int(gen.choice([10, 12]))      # unequal: tile-local masks show
        d = int(gen.integers(4, 17))
        q, k, v = _qkv(gen, int(gen.integers(1, 3)), int(gen.integers(1, 4)), n_q, n_k, d, d + 2, spread=2.0)
        _check_forward_case(fn, q, k, v, causal, bq, bk,
                            f"q {tuple(q.shape)}, k {tuple(k.shape)}, causal={causal}, block_q={bq}, block_k={bk}")
    passed("tiled_attention (random shapes and tiles, causal and not; no score matrix in memory)")


# --------------------------------------------------- 3. backward by recomputation ---

HINT_NO_D = (
    "dS = P * (dP - D): the row term D = rowsum(dO * O) is missing. It comes from the softmax's Jacobian "
    "(dS_ij = P_ij (dP_ij - sum_k P_ik dP_ik)), and sum_k P_ik dP_ik = dO_i . O_i."
)
HINT_D_WRONG = "D is rowsum(dO * O), the elementwise product of the output's gradient and the output, summed over d_v."
HINT_BWD_NO_SCALE = "the scores were scaled by 1/sqrt(d): dQ and dK carry that factor too (dQ += dS @ K * scale)."
HINT_P_UNNORMALISED = (
    "the recomputed weights must be the forward's: P = exp(S - lse), with lse the saved log-sum-exp of the whole "
    "row. exp(S) alone, or a softmax within the tile, is not."
)
HINT_BWD_NO_MASK = "with causal=True the recomputed scores need the causal mask too (j > i set to -inf, so P_ij = 0)."


def _variant_backward(q, k, v, out, lse, dout, causal: bool, bq: int, bk: int, mistake: str | None = None):
    n_q, n_k = q.shape[-2], k.shape[-2]
    scale = 1 / math.sqrt(q.shape[-1])
    dq, dk, dv = torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v)
    D = {"no_D": torch.zeros_like(lse), "D_wrong": dout.sum(-1)}.get(mistake, (dout * out).sum(-1))
    for i0 in range(0, n_q, bq):
        i1 = min(i0 + bq, n_q)
        for j0 in range(0, n_k if mistake == "no_mask_no_skip" or not causal else min(n_k, i1), bk):
            j1 = min(j0 + bk, n_k)
            s = q[..., i0:i1, :] @ k[..., j0:j1, :].transpose(-2, -1) * scale
            if causal and mistake == "mask_local_diagonal":
                if j1 - 1 > i0:
                    s = s.masked_fill(torch.arange(j1 - j0)[None, :] > torch.arange(i1 - i0)[:, None], -math.inf)
            elif causal and mistake not in ("no_mask", "no_mask_no_skip"):
                s = s.masked_fill(torch.arange(j0, j1)[None, :] > torch.arange(i0, i1)[:, None], -math.inf)
            if mistake == "p_tile_softmax":
                p = torch.nan_to_num(torch.softmax(s, -1))
            else:
                p = torch.exp(s - lse[..., i0:i1, None])
            dv[..., j0:j1, :] += p.transpose(-2, -1) @ dout[..., i0:i1, :]
            dp = dout[..., i0:i1, :] @ v[..., j0:j1, :].transpose(-2, -1)
            ds = p * (dp - D[..., i0:i1, None])
            factor = 1.0 if mistake == "no_scale" else scale
            dq[..., i0:i1, :] += ds @ k[..., j0:j1, :] * factor
            dk[..., j0:j1, :] += ds.transpose(-2, -1) @ q[..., i0:i1, :] * factor
    return dq, dk, dv


_BACKWARD_MISTAKES = {"no_D": HINT_NO_D, "D_wrong": HINT_D_WRONG, "no_scale": HINT_BWD_NO_SCALE,
                      "p_tile_softmax": HINT_P_UNNORMALISED, "no_mask": HINT_BWD_NO_MASK,
                      "no_mask_no_skip": HINT_BWD_NO_MASK, "mask_local_diagonal": HINT_MASK_LOCAL}


def _check_backward_case(fn: Callable, q, k, v, causal: bool, bq: int, bk: int, label: str,
                         gen: np.random.Generator) -> None:
    what = f"tiled_attention_backward ({label})"
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    out = F.scaled_dot_product_attention(*leaves, is_causal=causal)
    dout = torch.from_numpy(gen.standard_normal(tuple(out.shape)))
    out.backward(dout)
    expected = [t.grad for t in leaves]
    out = out.detach()
    _, lse = ref.tiled_attention_forward(q, k, v, causal=causal)
    with ref.TensorWatch() as watch:
        result = call(fn, q.clone(), k.clone(), v.clone(), out.clone(), lse.clone(), dout.clone(), causal=causal,
                      block_q=bq, block_k=bk, what=what, forbid=_FORBID_ATTENTION)
    if not (isinstance(result, tuple) and len(result) == 3):
        fail(f"{what} returned {type(result).__name__}, expected three tensors (dq, dk, dv).")
    grads = [expect_tensor(t, f"{what}: d{name}") for t, name in zip(result, "qkv")]
    variants = {m: _variant_backward(q, k, v, out, lse, dout, causal, bq, bk, m) for m in _BACKWARD_MISTAKES
                if causal or not m.startswith(("no_mask", "mask_local"))}
    for i, (name, got, want) in enumerate(zip("qkv", grads, expected)):
        if tuple(got.shape) != tuple(want.shape):
            fail(f"{what}: d{name} has shape {tuple(got.shape)}, expected {tuple(want.shape)} (the shape of {name}).")
        expect_close(got.detach(), want.numpy(), f"{what}: d{name} against autograd",
                     mistakes=[(_BACKWARD_MISTAKES[m], var[i].numpy()) for m, var in variants.items()], **TOL)
    _expect_no_full_matrix(watch, q, k, what)


def tiled_attention_backward_example(fn: Callable) -> None:
    """Visible: one head, 6 positions of size 4, query tiles of 3 and key tiles of 2, plain and causal, against
    autograd."""
    gen = np.random.default_rng(11)
    q, k, v = _qkv(gen, 1, 1, 6, 6, 4)
    with worked_example("the check runs scaled_dot_product_attention forward with autograd on, calls backward with a "
                        "random dO, and compares your (dq, dk, dv) with the gradients autograd finds. It passes you "
                        "the forward's output and its log-sum-exp, so P = exp(q k^T / 2 - lse) recomputes the "
                        "forward's weights exactly."):
        for causal in (False, True):
            _check_backward_case(fn, q, k, v, causal, 3, 2, f"worked example, causal={causal}, block_q=3, block_k=2",
                                 gen)
    passed("tiled_attention_backward (worked example, plain and causal)")


def tiled_attention_backward(fn: Callable) -> None:
    """Hidden: random shapes and tiles, causal and not, against autograd, the tensors it creates watched."""
    gen = rng()
    for causal, n_q, n_k in [(False, 40, 56), (True, 48, 48), (True, 45, 30)]:
        bq, bk = int(gen.choice([8, 16])), int(gen.choice([10, 12]))
        d = int(gen.integers(4, 13))
        q, k, v = _qkv(gen, int(gen.integers(1, 3)), int(gen.integers(1, 3)), n_q, n_k, d, d + 1)
        _check_backward_case(fn, q, k, v, causal, bq, bk,
                             f"q {tuple(q.shape)}, k {tuple(k.shape)}, causal={causal}, block_q={bq}, block_k={bk}",
                             gen)
    passed("tiled_attention_backward (random shapes and tiles; equal to autograd)")
