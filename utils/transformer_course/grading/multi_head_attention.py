"""Checks for notebook 03 (multi-head attention).

Each exercise has a visible ``<name>_example(...)`` check (a small worked example
the learner can read) and a hidden ``<name>(...)`` check (fresh random sizes and
inputs, edge cases, and :class:`torch.nn.MultiheadAttention` with copied weights
as the oracle).  The known mistakes of this notebook (heads merged or split with a
reshape but no transpose, a 2-D ``np.dot`` on 4-D arrays, no scale or the
``1/sqrt(d_model)`` scale, softmax over the wrong axis, cross-attention keys and
values projected from ``x``, masks ignored or inverted, a parameter count that
grows with the number of heads) are recognised and named in the failure message.

The learner's function or module is what runs; while it runs, a profile hook
watches for calls into the package's reference and into torch's own attention
(fused ``scaled_dot_product_attention``, ``nn.MultiheadAttention``); an answer
that delegates to them fails.
"""
from __future__ import annotations

import contextlib
import math
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import attention as ref
from .core import (
    FUSED_ATTENTION,
    AnswerFailed,
    Earlier,
    as_numpy,
    blame_earlier,
    call,
    describe,
    diagnose,
    expect_close,
    fail,
    forbidden,
    matches,
    passed,
    rng,
    worked_example,
)

__all__ = [
    "split_heads_example", "split_heads",
    "mha_numpy_example", "mha_numpy",
    "multi_head_attention_example", "multi_head_attention",
    "multi_head_attention_masks_example", "multi_head_attention_masks",
    "param_count_example", "param_count",
]

# ------------------------------------------------------------------ hints ---

HINT_SPLIT_NO_TRANSPOSE = (
    "the head split (split_heads, or a reshape/view in forward) reshaped straight to (B, h, T, d_head) "
    "without a transpose: a reshape keeps the "
    "numbers in memory order, so 'head 0' then holds the first T*d_head numbers of the sequence, "
    "features of several POSITIONS mixed together, not the first d_head features of every position. "
    "Reshape to (B, T, h, d_head) first (each position's d_model features cut into h chunks), then "
    "swap the T and h axes: x.reshape(B, T, h, d_head).swapaxes(1, 2)."
)
HINT_MERGE_NO_TRANSPOSE = (
    "merge_heads reshaped (B, h, T, d_head) straight to (B, T, h*d_head) without a transpose: that "
    "reads the numbers in memory order, head by head, and glues pieces of DIFFERENT positions "
    "together. Swap the h and T axes back first, then reshape: x.swapaxes(1, 2).reshape(B, T, h*d_head) "
    "(torch: .transpose(1, 2).reshape(...); .view needs .contiguous() after a transpose)."
)
HINT_SPLIT_INTERLEAVED = (
    "your heads take every h-th feature (reshape to (B, T, d_head, h)) instead of consecutive chunks: "
    "head i must own features i*d_head .. (i+1)*d_head - 1, the layout torch's nn.MultiheadAttention "
    "(and every pretrained model) uses. Reshape to (B, T, h, d_head)."
)
HINT_NUMPY_TRANSPOSE = (
    "numpy's x.transpose(...) takes the order of ALL axes (x.transpose(0, 2, 1, 3)), unlike torch's "
    "x.transpose(1, 2), which swaps two. Use x.swapaxes(1, 2): it works on numpy arrays and torch tensors."
)
HINT_VIEW = (
    "torch's .view cannot reshape a transposed (non-contiguous) tensor: use .reshape(...), or "
    "call .contiguous() before .view(...)."
)
HINT_NP_DOT = (
    "np.dot on arrays with more than 2 axes is not a batched matrix product: np.dot(q, k_T) pairs every "
    "(batch, head) block of q with every block of k, giving shape (B, h, T, B, h, T). Use the @ "
    "operator (np.matmul), which multiplies matching (batch, head) blocks: q @ k.swapaxes(-1, -2)."
)
HINT_NO_SCALE = (
    "the scores were not scaled: divide each head's q @ k^T by sqrt(d_head). Without it the scores "
    "have variance d_head and the softmax saturates (notebook 02, section 4)."
)
HINT_SCALE_DMODEL = (
    "the scores were divided by sqrt(d_model) instead of sqrt(d_head): each head's dot product sums "
    "over its own d_head = d_model / h features, so its variance is d_head, and sqrt(d_head) is what "
    "to divide by (torch's nn.MultiheadAttention and Vaswani et al. 2017 do this)."
)
HINT_SCALE_DMODEL_OR_DHEAD = (
    "the scores were divided by sqrt(d_model) or by d_head (the two are equal when d_model = n_heads^2, as "
    "here) instead of sqrt(d_head): each head's dot product sums over its own d_head = d_model / h features, "
    "so its variance is d_head and its standard deviation sqrt(d_head)."
)
HINT_SCALE_DHEAD_FULL = (
    "the scores were divided by d_head instead of sqrt(d_head): the standard deviation of a "
    "d_head-term dot product is sqrt(d_head)."
)
HINT_AXIS = (
    "the weights do not sum to 1 over the keys: softmax over the wrong axis? The scores have shape "
    "(B, h, T_q, T_k); take the softmax over the last axis (the keys)."
)
HINT_KV_FROM_X = (
    "in cross-attention the keys and values come from `memory` (the other sequence) and only the "
    "queries from `x`: k = k_proj(memory), v = v_proj(memory). Use `source = x if memory is None "
    "else memory` for the keys and values."
)
HINT_MASK_IGNORED = (
    "masked keys still get weight: the mask was ignored. Set the scores where the mask is False to "
    "-inf before the softmax (scores.masked_fill(~mask, float('-inf')))."
)
HINT_MASK_AFTER_SOFTMAX = (
    "the masked keys get exactly 0 weight, but the rows no longer sum to 1: the mask was applied after the "
    "softmax (weights * mask). Mask the scores with -inf BEFORE the softmax "
    "(scores.masked_fill(~mask, float('-inf'))), so the remaining weights are renormalised."
)
HINT_MASK_INVERTED = (
    "the mask is applied the wrong way round: in this course True means 'may attend' (torch's "
    "nn.MultiheadAttention uses the opposite convention for key_padding_mask and boolean attn_mask, "
    "True = blocked). Block the positions where the mask is False."
)
HINT_CAUSAL_IGNORED = (
    "is_causal=True was ignored: query i must not see keys j > i. Build the lower triangle "
    "torch.ones(T_q, T_k, dtype=torch.bool).tril() and combine it with any mask (mask & causal)."
)
HINT_CAUSAL_TRIANGLE = (
    "the causal mask is on the wrong triangle or misses the diagonal: query i may attend to keys "
    "j <= i, the LOWER triangle with the diagonal, .tril()."
)
HINT_MASK_HEAD_AXIS = (
    "a (B, 1, T_k) padding mask (or any 3-D (B, T_q, T_k) mask) must get a head axis before it "
    "broadcasts against the (B, h, T_q, T_k) scores: mask[:, None] is (B, 1, 1, T_k). Without it "
    "numpy/torch align the batch axis with the HEAD axis."
)
HINT_NO_OUT_PROJ = (
    "the weights are right but the output is not: after merging the heads, apply the output "
    "projection (out_proj / w_o), which mixes what the heads found."
)
HINT_OUT_PROJ_BIAS = (
    "the output is off by a constant vector: the output projection's bias is missing. Call the layer, "
    "self.out_proj(merged), which computes merged @ W^T + b, instead of multiplying by its weight alone."
)
HINT_DTYPE = (
    "keep the inputs' dtype and stay in torch: no numpy round trip (numpy computes in float64 and gradients "
    "cannot flow through numpy) and no hard-coded dtype; torch.softmax, masked_fill and @ keep the dtype."
)
HINT_SOFTMAX_OVERFLOW = (
    "with large scores (here up to about 1e3) your weights contain NaN: np.exp overflows to inf and inf / inf "
    "is NaN. Use the stable softmax defined at the top of the notebook, which subtracts each row's maximum "
    "before np.exp (notebook 02)."
)
HINT_OUTPUT = (
    "the weights are right but the output is not: per head, output = weights @ v (B, h, T_q, d_head); "
    "merge the heads back to (B, T_q, d_model) (transpose, then reshape) and apply the output projection."
)
HINT_LINEAR_CONVENTION = (
    "this exercise writes projections as Q = X W_q with W_q of shape (d_in, d_out): x @ w_q, not "
    "x @ w_q.T (nn.Linear stores its weight as (d_out, d_in) and computes x @ W.T; here you hold the "
    "matrix itself)."
)
HINT_NO_GRAD = (
    "no gradient reaches the projections: did you go through numpy, call .detach()/.item(), or build "
    "new tensors with torch.tensor(...)? Use torch operations on the module's own layers."
)
HINT_PARAMS_HEADS = (
    "your count grows with the number of heads, but splitting into heads adds no weights: the four "
    "projections are d_model x d_model whatever h is; each head just uses a d_head-wide slice of the "
    "q, k and v projections' outputs. Total 4 d^2 (+ 4 d biases)."
)
HINT_PARAMS_BIAS = (
    "the biases are counted wrong: each of the four projections (q, k, v, out) has d_model biases "
    "when bias=True, and none when bias=False."
)
HINT_PARAMS_BUILD = (
    "count from the formula, without building anything: a module allocates its weights, and at GPT-3's width "
    "(d_model = 12288, one of the hidden cases) the four matrices alone take about 2.4 GB."
)
HINT_PARAMS = (
    "count the four d_model x d_model projection matrices (q, k, v, out) and, with bias=True, "
    "their four bias vectors of length d_model."
)

_FORBID_HEADS = forbidden(ref, "split_heads", "merge_heads")
_FORBID_ATTENTION = forbidden(ref, "MultiHeadAttention", "attention", "scaled_dot_product_attention") + FUSED_ATTENTION
# building torch's modules to count their parameters: every module, the learner's own MultiHeadAttention
# included, runs nn.Module.__init__
_FORBID_BUILDING = forbidden(nn, "MultiheadAttention", "Linear", "Module", methods=("__init__",))
_FORBID_COUNT = (forbidden(ref, "mha_param_count") + forbidden(ref, "MultiHeadAttention", methods=("__init__",))
                 + _FORBID_BUILDING)

# float64: mistakes are 1e-2 or more off; one float32 step inside (softmax(scores.float())) is ~1e-7
TOL64 = dict(atol=1e-6, rtol=1e-5)
TOL32 = dict(atol=2e-5, rtol=1e-4)
LARGE_TOL = dict(atol=1e-3, rtol=1e-3)     # scores of thousands: see _np_case


# ------------------------------------------------------------ helpers ---

def _blame_heads(fn: Any, user: str):
    """A context manager: when the check inside fails and ``fn`` uses the learner's split_heads or
    merge_heads from exercise 1, which fails its own quick check, the failure says to fix that first."""
    return blame_earlier(fn, user, Earlier("split_heads", "exercise 1", _split_quick),
                         Earlier("merge_heads", "exercise 1", _merge_quick))


# ------------------------------------------------- 1. split and merge heads ---

def _split_variants(x: np.ndarray, h: int) -> list[tuple[str, np.ndarray]]:
    B, T, d = x.shape
    return [(HINT_SPLIT_NO_TRANSPOSE, x.reshape(B, h, T, d // h)),
            (HINT_SPLIT_INTERLEAVED, x.reshape(B, T, d // h, h).transpose(0, 3, 1, 2))]


def _merge_variants(y: np.ndarray) -> list[tuple[str, np.ndarray]]:
    B, h, T, dh = y.shape
    return [(HINT_MERGE_NO_TRANSPOSE, y.reshape(B, T, h * dh)),
            (HINT_SPLIT_INTERLEAVED, y.transpose(0, 2, 3, 1).reshape(B, T, h * dh))]


def _heads_explain(exc: Exception) -> str | None:
    text = str(exc)
    if "axes don't match" in text or "axes don't match array" in text:
        return HINT_NUMPY_TRANSPOSE
    if "view size is not compatible" in text or "use .reshape" in text:
        return HINT_VIEW
    return None


def _check_split(fn: Callable, x, h: int, label: str) -> Any:
    what = f"split_heads({label}, n_heads={h})"
    is_torch = isinstance(x, torch.Tensor)
    arg = x.clone() if is_torch else x.copy()
    out = call(fn, arg, h, what=what, forbid=_FORBID_HEADS, explain=_heads_explain)
    if is_torch and not isinstance(out, torch.Tensor):
        fail(f"{what} returned {type(out).__name__} for a torch tensor.",
             "use operations that work on both (reshape, swapaxes) so a tensor stays a tensor.")
    xn = as_numpy(x)
    B, T, d = xn.shape
    arr = as_numpy(out, what)
    expected = ref.split_heads(xn, h)
    if arr.shape != expected.shape:
        fail(f"{what} has shape {arr.shape}, expected {expected.shape} = (B, n_heads, T, d_head).",
             HINT_SPLIT_NO_TRANSPOSE if arr.shape == (B, T, h, d // h) else
             "reshape to (B, T, n_heads, d_head), then swap axes 1 and 2.")
    if not matches(arr, expected, atol=0, rtol=0):
        message = f"{what} puts the wrong numbers in the heads."
        if xn.size <= 48:
            message += f"\nx =\n{describe(xn)}\nyours =\n{describe(arr)}\nexpected =\n{describe(expected)}"
        for hint, wrong in _split_variants(xn, h):
            if matches(arr, wrong, atol=0, rtol=0):
                fail(message, hint)
        fail(message, "head i of position t holds x[b, t, i*d_head:(i+1)*d_head].")
    return out


def _check_merge(fn: Callable, y, label: str) -> Any:
    what = f"merge_heads({label})"
    is_torch = isinstance(y, torch.Tensor)
    out = call(fn, y, what=what, forbid=_FORBID_HEADS, explain=_heads_explain)
    if is_torch and not isinstance(out, torch.Tensor):
        fail(f"{what} returned {type(out).__name__} for a torch tensor.",
             "use operations that work on both (reshape, swapaxes) so a tensor stays a tensor.")
    yn = as_numpy(y)
    arr = as_numpy(out, what)
    expected = ref.merge_heads(yn)
    if arr.shape != expected.shape:
        fail(f"{what} has shape {arr.shape}, expected {expected.shape} = (B, T, n_heads * d_head).",
             "swap axes 1 and 2 back to (B, T, h, d_head), then reshape to (B, T, h * d_head).")
    if not matches(arr, expected, atol=0, rtol=0):
        message = f"{what} puts the wrong numbers at each position."
        if yn.size <= 48:
            message += f"\ninput =\n{describe(yn)}\nyours =\n{describe(arr)}\nexpected =\n{describe(expected)}"
        for hint, wrong in _merge_variants(yn):
            if matches(arr, wrong, atol=0, rtol=0):
                fail(message, hint)
        fail(message, "merge_heads must undo split_heads: merge_heads(split_heads(x, h)) == x.")
    return out


def _split_merge_cases(split_fn: Callable, merge_fn: Callable, gen: np.random.Generator) -> None:
    B, T, h, dh = (int(gen.integers(2, 5)), int(gen.integers(3, 7)), int(gen.integers(2, 5)), int(gen.integers(2, 5)))
    while T == h:
        T += 1
    x = gen.normal(size=(B, T, h * dh))
    _check_split(split_fn, x, h, f"a numpy array of shape {x.shape}")
    _check_merge(merge_fn, gen.normal(size=(B, h, T, dh)), f"a numpy array of shape {(B, h, T, dh)}")
    xt = torch.tensor(x)
    split_t = _check_split(split_fn, xt, h, f"a torch tensor of shape {tuple(xt.shape)}")
    # a transposed (non-contiguous) tensor, as split_heads leaves it
    back = _check_merge(merge_fn, split_t if isinstance(split_t, torch.Tensor) else torch.tensor(split_t),
                        "the torch tensor that split_heads returned")
    expect_close(as_numpy(back), x, "merge_heads(split_heads(x)) (a round trip)", atol=0, rtol=0,
                 hint="merge_heads must undo split_heads.")
    # one head: d_head = d_model; and d_head = 1
    _check_split(split_fn, gen.normal(size=(2, 5, 6)), 1, "a numpy array of shape (2, 5, 6)")
    _check_split(split_fn, gen.normal(size=(2, 5, 6)), 6, "a numpy array of shape (2, 5, 6)")
    _check_merge(merge_fn, torch.tensor(gen.normal(size=(3, 2, 4, 5)), dtype=torch.float32),
                 "a float32 torch tensor of shape (3, 2, 4, 5)")


def split_heads_example(split_fn: Callable, merge_fn: Callable) -> None:
    """Visible check: x = arange(16) as (1, 2, 8), split into 2 heads of 4, and merged back."""
    x = np.arange(16.0).reshape(1, 2, 8)
    split = _check_split(split_fn, x, 2, "x = np.arange(16.0).reshape(1, 2, 8)")
    print("split_heads(x, 2)[0] (head, position, feature):\n", describe(as_numpy(split)[0]))
    _check_merge(merge_fn, ref.split_heads(x, 2), "split_heads(x, 2)")
    passed("split_heads and merge_heads (worked example)")


def split_heads(split_fn: Callable, merge_fn: Callable) -> None:
    """Hidden check: random sizes, numpy and torch, a round trip through a non-contiguous tensor."""
    _split_merge_cases(split_fn, merge_fn, rng())
    passed("split_heads and merge_heads")


def _split_quick(split_fn: Callable) -> None:
    """split_heads on two fixed numpy arrays (T != n_heads, d_head > 1, so every listed layout mistake
    shows): the check of the learner's split_heads when a later answer that uses it fails."""
    for shape, h in (((2, 3, 8), 2), ((1, 4, 6), 3)):
        n = math.prod(shape)
        _check_split(split_fn, np.arange(float(n)).reshape(shape), h, f"x = np.arange({n}.0).reshape{shape}")


def _merge_quick(merge_fn: Callable) -> None:
    """merge_heads on two fixed numpy arrays: the check of the learner's merge_heads when a later answer
    that uses it fails."""
    for shape in ((2, 2, 3, 4), (1, 3, 4, 2)):
        n = math.prod(shape)
        _check_merge(merge_fn, np.arange(float(n)).reshape(shape), f"np.arange({n}.0).reshape{shape}")


# --------------------------------------------------------- variants (oracle) ---

def _full_mask(mask, causal: bool, B: int, h: int, n_q: int, n_k: int) -> torch.Tensor | None:
    """Our convention (True = may attend) as a (B, h, n_q, n_k) tensor, or None."""
    full = None
    if mask is not None:
        m = torch.as_tensor(mask, dtype=torch.bool)
        if m.dim() == 3:
            m = m[:, None]
        full = m.expand(B, h, n_q, n_k)
    if causal:
        c = torch.ones(n_q, n_k, dtype=torch.bool).tril().expand(B, h, n_q, n_k)
        full = c if full is None else full & c
    return full


def _variant(p: dict, x: torch.Tensor, memory: torch.Tensor | None, h: int, mask=None, causal: bool = False, *,
             scale: str = "head", split: str = "transpose", merge: str = "transpose", axis: int = -1,
             kv_from_x: bool = False, mask_mode: str = "ok", out_proj: bool | str = True,
             ) -> tuple[np.ndarray, np.ndarray]:
    """Multi-head attention (float64, weights from ``p``) with one deliberate mistake; numpy out."""
    with torch.no_grad():
        src = x if (memory is None or kv_from_x) else memory
        q, k, v = F.linear(x, p["wq"], p["bq"]), F.linear(src, p["wk"], p["bk"]), F.linear(src, p["wv"], p["bv"])
        B, n_q, d = q.shape
        n_k, dh = k.shape[1], d // h
        if split == "transpose":
            q, k, v = (t.reshape(B, -1, h, dh).transpose(1, 2) for t in (q, k, v))
        else:                                                      # reshape/view straight to (B, h, T, dh)
            q, k, v = (t.reshape(B, h, -1, dh) for t in (q, k, v))
        s = {"head": math.sqrt(dh), "none": 1.0, "model": math.sqrt(d), "dhead": float(dh)}[scale]
        scores = q @ k.transpose(-2, -1) / s
        if mask_mode == "ok":
            full = _full_mask(mask, causal, B, h, n_q, n_k)
        elif mask_mode in ("ignored", "after_softmax"):
            full = None
        elif mask_mode == "no_head_axis":                           # a 3-D mask without mask[:, None]
            full = torch.as_tensor(mask, dtype=torch.bool).expand(B, h, n_q, n_k)   # raises unless it broadcasts
            if causal:
                full = full & _full_mask(None, True, B, h, n_q, n_k)
        elif mask_mode == "no_causal":
            full = _full_mask(mask, False, B, h, n_q, n_k)
        elif mask_mode == "only_causal":
            full = _full_mask(None, causal, B, h, n_q, n_k)
        elif mask_mode == "inverted":
            full = _full_mask(mask, False, B, h, n_q, n_k)
            full = None if full is None else ~full
            if causal:
                c = _full_mask(None, True, B, h, n_q, n_k)
                full = c if full is None else full & c
        elif mask_mode == "causal_upper":
            full = _full_mask(mask, False, B, h, n_q, n_k)
            c = torch.ones(n_q, n_k, dtype=torch.bool).triu().expand(B, h, n_q, n_k)
            full = c if full is None else full & c
        elif mask_mode == "causal_strict":
            full = _full_mask(mask, False, B, h, n_q, n_k)
            c = torch.ones(n_q, n_k, dtype=torch.bool).tril(-1).expand(B, h, n_q, n_k)
            full = c if full is None else full & c
        else:  # pragma: no cover
            raise ValueError(mask_mode)
        if full is not None:
            scores = scores.masked_fill(~full, -math.inf)
        w = torch.softmax(scores, dim=axis)
        if mask_mode == "after_softmax":                           # zeroed afterwards, not renormalised
            after = _full_mask(mask, causal, B, h, n_q, n_k)
            w = w if after is None else w * after
        o = w @ v                                                  # (B, h, n_q, dh)
        o = o.transpose(1, 2).reshape(B, n_q, d) if merge == "transpose" else o.reshape(B, n_q, d)
        if out_proj:
            o = F.linear(o, p["wo"], None if out_proj == "no_bias" else p["bo"])
        return o.numpy(), w.numpy()


def _mistakes(p, x, memory, h, mask, causal) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(hint, wrong output, wrong weights) for each known mistake that applies to this case."""
    out = []
    d = x.shape[-1]
    coincide = h > 1 and d == h * h            # then sqrt(d_model) == d_head: one hint names both
    cases = [(HINT_NO_SCALE, dict(scale="none")),
             (HINT_SCALE_DMODEL_OR_DHEAD if coincide else HINT_SCALE_DMODEL, dict(scale="model")),
             (HINT_SCALE_DMODEL_OR_DHEAD if coincide else HINT_SCALE_DHEAD_FULL, dict(scale="dhead")),
             (HINT_AXIS, dict(axis=-2)),
             (HINT_SPLIT_NO_TRANSPOSE, dict(split="reshape")),
             (HINT_SPLIT_NO_TRANSPOSE, dict(split="reshape", merge="reshape")),
             (HINT_MERGE_NO_TRANSPOSE, dict(merge="reshape")), (HINT_NO_OUT_PROJ, dict(out_proj=False))]
    if p.get("bo") is not None:
        cases.append((HINT_OUT_PROJ_BIAS, dict(out_proj="no_bias")))
    if memory is not None and memory.shape == x.shape:
        cases.append((HINT_KV_FROM_X, dict(kv_from_x=True)))
    if mask is not None:
        cases += [(HINT_MASK_IGNORED, dict(mask_mode="ignored")), (HINT_MASK_INVERTED, dict(mask_mode="inverted")),
                  (HINT_MASK_AFTER_SOFTMAX, dict(mask_mode="after_softmax"))]
        if causal:
            cases.append((HINT_MASK_IGNORED, dict(mask_mode="only_causal")))
    if causal:
        if mask is None:
            cases.append((HINT_MASK_AFTER_SOFTMAX, dict(mask_mode="after_softmax")))
        cases += [(HINT_CAUSAL_IGNORED, dict(mask_mode="no_causal")),
                  (HINT_CAUSAL_TRIANGLE, dict(mask_mode="causal_upper")),
                  (HINT_CAUSAL_TRIANGLE, dict(mask_mode="causal_strict"))]
    if mask is not None and mask.dim() == 3:
        cases.append((HINT_MASK_HEAD_AXIS, dict(mask_mode="no_head_axis")))
    for hint, kw in cases:
        try:
            o, w = _variant(p, x, memory, h, mask, causal, **kw)
        except RuntimeError:                                       # this mistake cannot run on this case
            continue
        out.append((hint, o, w))
    return out


# ------------------------------------------------------ 2. numpy multi-head ---

def _uses_dot(fn: Callable) -> bool:
    return "dot" in getattr(getattr(fn, "__code__", None), "co_names", ())


def _np_explain(fn: Callable) -> Callable[[Exception], str | None]:
    uses_dot = _uses_dot(fn)

    def explain(exc: Exception) -> str | None:
        text = str(exc)
        # np.dot(x, w_q) (3-D by 2-D) is fine: blame np.dot only for an error about shapes
        if uses_dot and any(word in text for word in ("shape", "aligned", "dimension", "broadcast", "unpack")):
            return HINT_NP_DOT
        if "axes don't match" in text:
            return HINT_NUMPY_TRANSPOSE
        if "matmul" in text or "aligned" in text:
            return ("a matrix product has mismatched shapes: per head, scores = q @ k.swapaxes(-1, -2) "
                    "with q (B, h, T, d_head) and k (B, h, T, d_head).")
        return None
    return explain


def _np_params(gen: np.random.Generator, d: int) -> tuple[np.ndarray, ...]:
    return tuple(gen.normal(scale=1.0 / math.sqrt(d), size=(d, d)) for _ in range(4))


def _check_np_case(fn: Callable, x: np.ndarray, ws: tuple[np.ndarray, ...], h: int, label: str,
                   large: bool = False) -> None:
    with _blame_heads(fn, "multi_head_attention_np"):
        _np_case(fn, x, ws, h, label, large)


def _np_case(fn: Callable, x: np.ndarray, ws: tuple[np.ndarray, ...], h: int, label: str,
             large: bool = False) -> None:
    B, T, d = x.shape
    what = f"multi_head_attention_np({label})"
    with np.errstate(all="ignore"):
        result = call(fn, x.copy(), *(w.copy() for w in ws), h, what=what,
                      forbid=_FORBID_ATTENTION, explain=_np_explain(fn))
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        fail(f"{what} should return a pair (output, weights); got {type(result).__name__}.",
             "end with `return output, weights`.")
    out, weights = (as_numpy(r, what) for r in result)
    if weights.ndim > 4 or out.ndim > 3:
        fail(f"{what}: the weights have shape {weights.shape} and the output {out.shape}.", HINT_NP_DOT)
    if weights.shape != (B, h, T, T):
        fail(f"the weight tensor of {what} has shape {weights.shape}, expected {(B, h, T, T)} = (B, h, T, T).",
             "split q and k into heads before the product: one (T, T) map per head.")
    if out.shape != (B, T, d):
        fail(f"the output of {what} has shape {out.shape}, expected {(B, T, d)}.", HINT_OUTPUT)
    if large and (np.isnan(weights).any() or np.isnan(out).any()):
        fail(f"the weight tensor of {what} contains NaN.", HINT_SOFTMAX_OVERFLOW)
    w_q, w_k, w_v, w_o = ws
    theirs = nn.MultiheadAttention(d, h, bias=False, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        theirs.in_proj_weight.copy_(torch.tensor(np.concatenate([w_q.T, w_k.T, w_v.T])))
        theirs.out_proj.weight.copy_(torch.tensor(w_o.T))
        xt = torch.tensor(x)
        exp_o, exp_w = theirs(xt, xt, xt, need_weights=True, average_attn_weights=False)
    exp_o, exp_w = exp_o.numpy(), exp_w.numpy()
    p = dict(wq=torch.tensor(w_q.T), wk=torch.tensor(w_k.T), wv=torch.tensor(w_v.T), wo=torch.tensor(w_o.T),
             bq=None, bk=None, bv=None, bo=None)
    mistakes = _mistakes(p, xt, None, h, None, False)
    pT = dict(p, wq=torch.tensor(w_q), wk=torch.tensor(w_k), wv=torch.tensor(w_v), wo=torch.tensor(w_o))
    mistakes.append((HINT_LINEAR_CONVENTION, *_variant(pT, xt, None, h)))                      # all four .T
    mistakes.append((HINT_LINEAR_CONVENTION, *_variant(dict(p, wo=pT["wo"]), xt, None, h)))     # only w_o.T
    mistakes.append((HINT_LINEAR_CONVENTION, *_variant(dict(pT, wo=p["wo"]), xt, None, h)))     # q, k, v .T
    # The large inputs are there to catch an overflowing softmax (the NaN test above). Their scores of a few
    # thousand make the weights sensitive: rounding x to float32 alone moves the output by up to 1e-4
    # relative, so 1e-3 there (TOL64 failed 7% of random draws of a float32 answer, TOL32 1%); the sizes
    # above, at float32 precision for float32 answers, are what catch the wrong scales and layouts.
    tol = LARGE_TOL if large else TOL32 if np.float32 in (weights.dtype, out.dtype) else TOL64
    if not matches(weights, exp_w, **tol):
        diagnose(weights, [(hint, w) for hint, _, w in mistakes], f"the weight tensor of {what}", **tol)
        if not np.allclose(np.nansum(weights, axis=-1), 1.0, atol=1e-5):
            fail(f"the rows of the weight tensor of {what} do not sum to 1 over the keys.", HINT_AXIS)
        expect_close(weights, exp_w, f"the weight tensor of {what}", **tol,
                     hint="per head: softmax(q k^T / sqrt(d_head)) with q = x @ w_q, k = x @ w_k, split into heads.")
    expect_close(out, exp_o, f"the output of {what}", **tol, mistakes=[(hint, o) for hint, o, _ in mistakes],
                 hint=HINT_OUTPUT)


def _np_example_explained(x: np.ndarray, ws: tuple[np.ndarray, ...]) -> str:
    """The worked example's input and expected results (torch's MHA with the same weights)."""
    theirs = nn.MultiheadAttention(8, 2, bias=False, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        theirs.in_proj_weight.copy_(torch.tensor(np.concatenate([w.T for w in ws[:3]])))
        theirs.out_proj.weight.copy_(torch.tensor(ws[3].T))
        xt = torch.tensor(x)
        o, w = theirs(xt, xt, xt, need_weights=True, average_attn_weights=False)
    return (f"x =\n{describe(x)}\nexpected weights (head 0)\n{describe(w[0, 0].numpy())}\n"
            f"expected output\n{describe(o[0].numpy())}")


def mha_numpy_example(fn: Callable) -> None:
    """Visible check: B=1, T=3, d_model=8, two heads, fixed weights; torch's MHA is the oracle."""
    gen = rng(0)
    x = gen.normal(size=(1, 3, 8))
    ws = _np_params(gen, 8)
    with _blame_heads(fn, "multi_head_attention_np"), worked_example(lambda: _np_example_explained(x, ws)):
        _np_case(fn, x, ws, 2, "x of shape (1, 3, 8), n_heads=2")
    passed("multi_head_attention_np (worked example)")


def mha_numpy(fn: Callable) -> None:
    """Hidden check: random sizes and weights, 1 head to d_model heads, and scores of order 1e3 (a
    softmax without the max shift overflows); torch's MHA is the oracle.  No size has
    d_model == n_heads**2, where sqrt(d_model) == d_head would make two wrong scales coincide."""
    gen = rng()
    for B, T, d, h in ((2, 5, 12, 3), (3, 4, 8, 2), (2, 6, 8, 1), (1, 3, 6, 6), (2, 7, 24, 4)):
        B, T = B + int(gen.integers(0, 2)), T + int(gen.integers(0, 2))
        _check_np_case(fn, gen.normal(size=(B, T, d)), _np_params(gen, d), h,
                       f"x of shape {(B, T, d)}, n_heads={h}")
    x = gen.normal(scale=40.0, size=(2, 5, 8))                     # scores up to a few thousand
    _check_np_case(fn, x, _np_params(gen, 8), 2, "large inputs: x = 40 * normal of shape (2, 5, 8), n_heads=2",
                   large=True)
    passed("multi_head_attention_np")


# ---------------------------------------------- 3. the MultiHeadAttention module ---

def _mha_explain(cross: bool = False, mask_dim: int | None = None) -> Callable[[Exception], str | None]:
    """Map an exception from the learner's forward to a hint, knowing the case (cross? a 3-D mask?)."""
    def explain(exc: Exception) -> str | None:
        text = str(exc)
        if "view size is not compatible" in text:
            return HINT_VIEW
        if "scalar type" in text or "same dtype" in text or "numpy()" in text or "Numpy is not available" in text:
            return HINT_DTYPE
        if "unexpected keyword argument" in text or "positional argument" in text:
            return ("forward's interface is forward(x, memory=None, *, mask=None, is_causal=False, "
                    "need_weights=False), like the package's MultiHeadAttention.")
        if cross and "must match the size of tensor" in text and "dimension 3" in text:
            return HINT_KV_FROM_X                  # the key axis: keys from x (T_q) against a (.., T_k) mask
        if mask_dim == 3 and ("must match the size of tensor" in text or "broadcast" in text
                              or "expanded size" in text):
            return HINT_MASK_HEAD_AXIS
        if cross and ("batch2" in text or "must match the size" in text or "Expected size" in text
                      or "cannot be multiplied" in text):
            return HINT_KV_FROM_X
        return None
    return explain


def _build(cls, d: int, h: int, bias: bool) -> nn.Module:
    what = f"MultiHeadAttention({d}, {h}, bias={bias})"
    if isinstance(cls, nn.Module):
        fail("pass the class MultiHeadAttention, not an instance, to the check.")
    mine = call(cls, d, h, bias=bias, what=what)
    if not isinstance(mine, nn.Module):
        fail(f"{what} is not a torch.nn.Module.")
    for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
        layer = getattr(mine, name, None)
        if not isinstance(layer, nn.Linear) or layer.weight.shape != (d, d):
            fail(f"{what}.{name} should be an nn.Linear({d}, {d}).",
                 "keep the __init__ you were given: q_proj, k_proj, v_proj and out_proj.")
    return mine


def _torch_pair(cls, d: int, h: int, bias: bool, gen: np.random.Generator) -> tuple[nn.Module, nn.MultiheadAttention]:
    torch.manual_seed(int(gen.integers(0, 2**31)))
    theirs = nn.MultiheadAttention(d, h, bias=bias, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        theirs.in_proj_weight.normal_(0.0, 1.0 / math.sqrt(d))
        if bias:
            theirs.in_proj_bias.normal_(0.0, 0.5)                # torch initialises biases to 0: make them count
            theirs.out_proj.bias.normal_(0.0, 0.5)
    theirs.eval()
    mine = _build(cls, d, h, bias).double()            # float64 first: copying into float32 would round
    ref.load_torch_mha(mine, theirs)
    return mine.eval(), theirs


def _params(theirs: nn.MultiheadAttention) -> dict:
    wq, wk, wv = theirs.in_proj_weight.detach().chunk(3)
    b = theirs.in_proj_bias
    bq, bk, bv = (None, None, None) if b is None else b.detach().chunk(3)
    bo = theirs.out_proj.bias
    return dict(wq=wq, wk=wk, wv=wv, bq=bq, bk=bk, bv=bv, wo=theirs.out_proj.weight.detach(),
                bo=None if bo is None else bo.detach())


def _check_mha_case(cls, gen: np.random.Generator, *, B: int, d: int, h: int, n_q: int, n_k: int | None,
                    mask_kind: str | None = None, causal: bool = False, bias: bool = True, label: str,
                    dtype=torch.float64, grads: bool = False) -> None:
    with _blame_heads(cls, "MultiHeadAttention"):
        _mha_case(cls, gen, B=B, d=d, h=h, n_q=n_q, n_k=n_k, mask_kind=mask_kind, causal=causal, bias=bias,
                  label=label, dtype=dtype, grads=grads)


def _mha_case(cls, gen, *, B, d, h, n_q, n_k, mask_kind=None, causal=False, bias=True, label, dtype=torch.float64,
              grads=False) -> None:
    mine, theirs = _torch_pair(cls, d, h, bias, gen)
    cross = n_k is not None
    n_k = n_k if cross else n_q
    x = torch.tensor(gen.normal(size=(B, n_q, d)))
    memory = torch.tensor(gen.normal(size=(B, n_k, d))) if cross else None
    src = memory if cross else x
    mask = None
    torch_kwargs: dict[str, Any] = {}
    if mask_kind == "padding":                                   # (B, 1, n_k), lengths >= 1
        lengths = gen.integers(1, n_k + 1, size=B)
        lengths[0] = n_k
        if B > 1:
            lengths[1] = max(1, n_k // 2)
        mask = torch.from_numpy(ref.padding_mask(lengths, n_k))
        torch_kwargs["key_padding_mask"] = ~mask[:, 0, :]           # torch: True = blocked
    elif mask_kind == "padding4d":                               # (B, 1, 1, n_k)
        lengths = gen.integers(1, n_k + 1, size=B)
        lengths[-1] = 1
        mask = torch.from_numpy(ref.padding_mask(lengths, n_k))[:, None]
        torch_kwargs["key_padding_mask"] = ~mask[:, 0, 0, :]
    elif mask_kind == "random2d":                                # (n_q, n_k) shared by the batch
        m = gen.random(size=(n_q, n_k)) < 0.6
        m[:, 0] = True
        mask = torch.from_numpy(m)
    if causal or mask_kind == "random2d":
        full = _full_mask(mask, causal, B, h, n_q, n_k)
        torch_kwargs["attn_mask"] = ~full.reshape(B * h, n_q, n_k)  # torch: True = blocked
        torch_kwargs.pop("key_padding_mask", None)
    with torch.no_grad():
        exp_o, exp_w = theirs(x, src, src, need_weights=True, average_attn_weights=False, **torch_kwargs)
    exp_o, exp_w = exp_o.numpy(), exp_w.numpy()

    desc = [f"B={B}, d_model={d}, n_heads={h}", f"T_q={n_q}, T_k={n_k}" if cross else f"T={n_q}"]
    what = f"your MultiHeadAttention ({label}; {', '.join(desc)})"
    kwargs: dict[str, Any] = dict(need_weights=True)
    if mask is not None:
        kwargs["mask"] = mask.clone()
    if causal:
        kwargs["is_causal"] = True
    if dtype != torch.float64:
        mine = mine.to(dtype)
    args = (x.to(dtype),) + ((memory.to(dtype),) if cross else ())
    with torch.set_grad_enabled(grads):
        result = call(mine, *args, what=what, forbid=_FORBID_ATTENTION,
                      explain=_mha_explain(cross, None if mask is None else mask.dim()), **kwargs)
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        fail(f"{what} should return a pair (output, weights); got {type(result).__name__}.",
             "end forward with `return self.out_proj(...), weights` (weights None unless need_weights).")
    out, weights = result
    if not isinstance(out, torch.Tensor):
        fail(f"{what} returned an output of type {type(out).__name__}, not a torch tensor.")
    if weights is None:
        fail(f"{what} returned weights None although need_weights=True.",
             "return the attention weights (B, h, T_q, T_k) when need_weights is true.")
    if out.dtype != dtype:
        fail(f"{what}: the output has dtype {out.dtype} for {dtype} inputs.",
             HINT_DTYPE)
    o_arr, w_arr = as_numpy(out, f"the output of {what}"), as_numpy(weights, f"the weight tensor of {what}")
    if w_arr.shape != (B, h, n_q, n_k):
        if cross and w_arr.shape == (B, h, n_q, n_q):
            fail(f"the weight tensor of {what} has shape {w_arr.shape}, expected {(B, h, n_q, n_k)}.", HINT_KV_FROM_X)
        fail(f"the weight tensor of {what} has shape {w_arr.shape}, expected {(B, h, n_q, n_k)} = (B, h, T_q, T_k).",
             "return the per-head weights, before merging the heads.")
    if o_arr.shape != (B, n_q, d):
        fail(f"the output of {what} has shape {o_arr.shape}, expected {(B, n_q, d)}.", HINT_OUTPUT)
    tol = TOL64 if dtype == torch.float64 else TOL32
    mistakes = _mistakes(_params(theirs), x, memory, h, mask, causal)
    if not matches(w_arr, exp_w, **tol):
        diagnose(w_arr, [(hint, w) for hint, _, w in mistakes], f"the weight tensor of {what}", **tol)
        if np.isnan(w_arr).any():
            fail(f"the weight tensor of {what} contains NaN.",
                 "mask with scores.masked_fill(~mask, float('-inf')) before the softmax; never multiply by -inf.")
        full = _full_mask(mask, causal, B, h, n_q, n_k)
        if full is not None:
            blocked = ~full.numpy()
            sums = w_arr.sum(-1)
            if blocked.any() and np.all(np.abs(w_arr[blocked]) < 1e-12) and np.all(sums <= 1 + 1e-6) \
                    and np.any(sums < 1 - 1e-5):
                fail(f"the rows of the weight tensor of {what} do not sum to 1 over the keys.",
                     HINT_MASK_AFTER_SOFTMAX)
        if not np.allclose(w_arr.sum(-1), 1.0, atol=1e-5):
            fail(f"the rows of the weight tensor of {what} do not sum to 1 over the keys.", HINT_AXIS)
        expect_close(w_arr, exp_w, f"the weight tensor of {what}", **tol,
                     hint="per head: softmax(q k^T / sqrt(d_head)) over the keys, masked where the mask is False.")
    expect_close(o_arr, exp_o, f"the output of {what}", **tol,
                 mistakes=[(hint, o) for hint, o, _ in mistakes], hint=HINT_OUTPUT)
    if grads:
        if not out.requires_grad:
            fail(f"{what}: the output does not require grad.", HINT_NO_GRAD)
        out.sum().backward()
        for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
            g = getattr(mine, name).weight.grad
            if g is None or not torch.isfinite(g).all() or float(g.abs().sum()) == 0:
                fail(f"{what}: no gradient reaches {name}.weight.", HINT_NO_GRAD)


def _check_need_weights_false(cls, gen) -> None:
    mine, theirs = _torch_pair(cls, 8, 2, True, gen)
    x = torch.tensor(gen.normal(size=(2, 4, 8)))
    what = "your MultiHeadAttention with need_weights=False (the default)"
    result = call(mine, x, what=what, forbid=_FORBID_ATTENTION, explain=_mha_explain())
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        fail(f"{what} should still return a pair (output, None); got {type(result).__name__}.",
             "later notebooks unpack `out, _ = attn(x)`: always return two things.")
    with torch.no_grad():
        exp_o, _ = theirs(x, x, x, need_weights=False)
    expect_close(as_numpy(result[0]), exp_o.numpy(), f"the output of {what}", **TOL64, hint=HINT_OUTPUT)


def _worked_example(cls, cases: list[dict], what: str) -> None:
    gen = rng(0)
    with _blame_heads(cls, "MultiHeadAttention"):
        with worked_example("it copies the weights of a torch.nn.MultiheadAttention(8, 2, batch_first=True) into "
                            "yours (transformer_course.attention.load_torch_mha) and compares outputs and per-head "
                            "weights (average_attn_weights=False)."):
            for case in cases:
                _mha_case(cls, gen, **case)
    passed(what)


def multi_head_attention_example(cls) -> None:
    """Visible check, no masks: self-attention (B=1, T=3) and cross-attention (T_q=2, T_k=4), d_model=8, 2 heads."""
    _worked_example(cls, [dict(B=1, d=8, h=2, n_q=3, n_k=None, label="self-attention"),
                          dict(B=1, d=8, h=2, n_q=2, n_k=4, label="cross-attention")],
                    "MultiHeadAttention without masks (worked example)")


def multi_head_attention_masks_example(cls) -> None:
    """Visible check with masks, d_model=8, 2 heads: cross-attention (B=2, T_q=2, T_k=4) with the (B, 1, T_k)
    padding mask of lengths [4, 2], and self-attention (T=4) with is_causal=True."""
    _worked_example(cls, [dict(B=2, d=8, h=2, n_q=2, n_k=4, mask_kind="padding",
                               label="cross-attention with a (B, 1, T_k) padding mask, key lengths [4, 2]"),
                          dict(B=1, d=8, h=2, n_q=4, n_k=None, causal=True, label="self-attention, is_causal=True")],
                    "MultiHeadAttention with masks (worked example)")


# No hidden size has d_model == n_heads**2, where sqrt(d_model) == d_head would make two wrong scales coincide.

def multi_head_attention(cls) -> None:
    """Hidden check against torch.nn.MultiheadAttention, no masks: self and cross with different lengths,
    no bias, one head, float32, gradients, and need_weights=False."""
    gen = rng()
    r = lambda lo, hi: int(gen.integers(lo, hi + 1))
    B = r(2, 3)
    _check_mha_case(cls, gen, B=B, d=24, h=4, n_q=r(4, 7), n_k=None, label="self-attention")
    _check_mha_case(cls, gen, B=B, d=12, h=3, n_q=r(2, 4), n_k=r(6, 9), label="cross-attention, T_q < T_k")
    _check_mha_case(cls, gen, B=B, d=12, h=3, n_q=r(6, 8), n_k=r(2, 4), label="cross-attention, T_q > T_k")
    n = r(4, 6)
    _check_mha_case(cls, gen, B=B, d=8, h=2, n_q=n, n_k=n, label="cross-attention, T_q == T_k")
    _check_mha_case(cls, gen, B=B, d=8, h=1, n_q=r(3, 5), n_k=None, label="one head")
    _check_mha_case(cls, gen, B=B, d=12, h=4, n_q=r(3, 5), n_k=r(4, 6), bias=False, label="bias=False")
    _check_mha_case(cls, gen, B=B, d=16, h=2, n_q=r(3, 5), n_k=r(4, 6), label="float32", dtype=torch.float32)
    _check_mha_case(cls, gen, B=B, d=8, h=2, n_q=r(3, 5), n_k=r(4, 6), label="gradients", grads=True)
    _check_need_weights_false(cls, gen)
    passed("MultiHeadAttention without masks")


def multi_head_attention_masks(cls) -> None:
    """Hidden check against torch.nn.MultiheadAttention with masks (ours True = may attend, torch's
    key_padding_mask and boolean attn_mask True = blocked): (B, 1, T_k) and (B, 1, 1, T) padding masks,
    is_causal alone and with a padding mask, a (T_q, T_k) mask shared by the batch, float32, gradients."""
    gen = rng()
    r = lambda lo, hi: int(gen.integers(lo, hi + 1))
    B = r(2, 3)
    _check_mha_case(cls, gen, B=B, d=24, h=4, n_q=r(3, 5), n_k=r(6, 8), mask_kind="padding",
                    label="cross-attention with a (B, 1, T_k) padding mask")
    _check_mha_case(cls, gen, B=B, d=16, h=2, n_q=r(5, 7), n_k=None, mask_kind="padding4d",
                    label="self-attention with a (B, 1, 1, T) padding mask")
    _check_mha_case(cls, gen, B=B, d=24, h=4, n_q=r(5, 7), n_k=None, causal=True, label="is_causal=True")
    _check_mha_case(cls, gen, B=B, d=12, h=3, n_q=r(5, 7), n_k=None, causal=True, mask_kind="padding",
                    label="is_causal=True and a padding mask")
    _check_mha_case(cls, gen, B=B, d=8, h=2, n_q=r(3, 5), n_k=r(5, 7), mask_kind="random2d",
                    label="a (T_q, T_k) mask shared by the batch")
    _check_mha_case(cls, gen, B=B, d=16, h=2, n_q=r(3, 5), n_k=r(4, 6), mask_kind="padding",
                    label="float32 with a padding mask", dtype=torch.float32)
    _check_mha_case(cls, gen, B=B, d=8, h=2, n_q=r(3, 5), n_k=r(4, 6), mask_kind="padding",
                    label="gradients with a padding mask", grads=True)
    passed("MultiHeadAttention with masks")


# ---------------------------------------------------------- 4. parameter count ---

def _torch_count(d: int, h: int, bias: bool) -> int:
    return sum(p.numel() for p in nn.MultiheadAttention(d, h, bias=bias).parameters())


def _check_count(fn: Callable, d: int, h: int, bias: bool, expected: int, meta: bool = False) -> None:
    what = f"mha_param_count(d_model={d}, n_heads={h}, bias={bias})"
    try:
        # meta: a module built anyway (it fails below) allocates nothing, so GPT-3's width cannot exhaust memory
        with torch.device("meta") if meta else contextlib.nullcontext():
            result = call(fn, d, h, bias=bias, what=what, forbid=_FORBID_COUNT)
    except AnswerFailed as exc:
        if any(f" calls {label}, " in str(exc).split("\n")[0] for _, label in _FORBID_BUILDING):
            fail(f"{what} builds a torch module to count its parameters.", HINT_PARAMS_BUILD)
        raise
    if isinstance(result, bool) or not isinstance(result, (int, np.integer)) and not (
            isinstance(result, float) and result.is_integer()):
        fail(f"{what} returned {result!r} ({type(result).__name__}); a parameter count is a whole number.",
             "return an int (use // for any division, or no division at all).")
    got = int(result)
    if got == expected:
        return
    no_bias = 4 * d * d
    if h > 1 and got in (expected * h, no_bias * h, no_bias * h + 4 * d, no_bias * h + 4 * d * h,
                         4 * d * (d // h) + (4 * d if bias else 0), 3 * d * d * h + d * d + (4 * d if bias else 0)):
        fail(f"{what} returned {got:,}, expected {expected:,}.", HINT_PARAMS_HEADS)
    if got in (no_bias, no_bias + 4 * d, no_bias + 3 * d, no_bias + d, no_bias + 4 * d * h, no_bias + 8 * d):
        fail(f"{what} returned {got:,}, expected {expected:,}.", HINT_PARAMS_BIAS)
    fail(f"{what} returned {got:,}, expected {expected:,} (torch's nn.MultiheadAttention has that many).",
         HINT_PARAMS)


def param_count_example(fn: Callable) -> None:
    """Visible check: d_model = 8 with 2 heads, with and without biases."""
    for bias in (True, False):
        _check_count(fn, 8, 2, bias, _torch_count(8, 2, bias))
    passed("mha_param_count (worked example)")


def param_count(fn: Callable) -> None:
    """Hidden check: random sizes against torch's nn.MultiheadAttention, several head counts for one
    width (the count must not change), and GPT-3's width (no module that big gets built)."""
    gen = rng()
    for _ in range(3):
        h = int(gen.integers(1, 9))
        # d_head >= 4, so that no two listed mistakes coincide (at d = 3, 3d^2 + 3d == 4d^2)
        d = h * int(gen.integers(4, 17))
        for bias in (True, False):
            _check_count(fn, d, h, bias, _torch_count(d, h, bias))
    for h in (1, 2, 4, 8, 16):
        _check_count(fn, 64, h, True, _torch_count(64, h, True))
    d = 12288                                                     # GPT-3 175B: 96 heads of 128
    _check_count(fn, d, 96, True, 4 * d * d + 4 * d, meta=True)
    passed("mha_param_count")
