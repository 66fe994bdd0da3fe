"""Checks for notebook 02 (attention).

Each exercise has a visible ``<name>_example(fn)`` check (a small worked example
the learner can read) and a hidden ``<name>(fn)`` check (random inputs drawn
with fresh seeds, edge cases, and :func:`torch.nn.functional.scaled_dot_product_attention`
as the oracle).  Every known mistake listed for this notebook is recognised and
named in the failure message.

The learner's function is always the thing being called.  While it runs, a
profile hook watches for calls into the package's reference implementation
(and, where the exercise is to write attention by hand, into torch's fused
attention); a learner's function that delegates to them fails.
"""
from __future__ import annotations

import math
import tracemalloc
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .. import attention as ref
from ..data import RecallVocab, make_recall_batch
from .core import (FUSED_ATTENTION, Earlier, as_numpy, blame_earlier, call, describe,
                   diagnose, expect_close, expect_finite, expect_shape, fail, forbidden, matches, model_device,
                   passed, rng, worked_example)

__all__ = [
    "softmax_example", "softmax",
    "scaled_dot_product_attention_example", "scaled_dot_product_attention",
    "attention_torch_example", "attention_torch",
    "causal_mask_example", "causal_mask",
    "padding_mask_example", "padding_mask",
    "qk_variance_example", "qk_variance",
    "recall_model_example", "recall_model",
]

# ------------------------------------------------------------------ hints ---

HINT_NO_SHIFT = (
    "softmax without subtracting the maximum: np.exp overflows to inf for logits around 1000 "
    "(and underflows to 0 around -1000), so you get inf/inf or 0/0 = NaN. Subtract each row's "
    "maximum (keepdims=True) before exponentiating; the result is mathematically the same."
)
HINT_GLOBAL_MAX = (
    "you subtracted the maximum of the whole array, not of each row: a row far below the global "
    "maximum underflows to all zeros and 0/0 = NaN. Take the max along `axis` with keepdims=True."
)
HINT_KEEPDIMS = (
    "the max or the sum was taken without keepdims=True: np.max(x, axis=axis) drops that axis, so "
    "`x - m` and `e / total` no longer line up row by row (numpy then raises a broadcasting error, or, "
    "for a square array, silently pairs row i with column i). Write np.max(x, axis=axis, keepdims=True) "
    "and np.sum(e, axis=axis, keepdims=True)."
)
HINT_ROW_UNDERFLOW = (
    "a row that has finite entries came out all zeros: its exponentials underflowed to 0. That happens "
    "when the shift is not the row's OWN maximum (the maximum of the whole array, say): a row far below "
    "it gives exp(-1000) = 0 everywhere. Subtract np.max(x, axis=axis, keepdims=True); then every row's "
    "largest term is exp(0) = 1."
)
HINT_ALL_INF_FINITE = (
    "a slice that is entirely -inf must give all zeros (the query looks at nothing), but yours gives "
    "other values, uniform weights for instance: replacing -inf by a large finite number such as -1e9 "
    "makes every entry of such a row equal, and softmax spreads the weight evenly. Keep -inf, shift an "
    "all -inf row by 0 (m = where(isfinite(m), m, 0)), and divide by 1 where the sum is 0."
)
HINT_AXIS = (
    "weights do not sum to 1 along the key axis: softmax over the wrong dimension? Both the max "
    "and the sum must be taken along `axis` (the last axis for attention scores), with keepdims=True."
)
HINT_ALL_INF = (
    "a row that is entirely -inf (a query that may attend to no key) must give zeros, not NaN: "
    "its maximum is -inf, and -inf - (-inf) is NaN (torch.softmax returns NaN there too). Shift such "
    "rows by 0 instead, m = where(isfinite(m), m, 0) (np.where / torch.where), and divide by 1 where "
    "the sum is 0."
)
HINT_NO_SCALE = (
    "the scores were not scaled: divide q @ k^T by sqrt(d_k) before the softmax "
    "(without it the dot products have variance d_k and the softmax saturates)."
)
HINT_SCALE_DK = (
    "the scores were divided by d_k instead of sqrt(d_k): the variance of q.k grows like d_k, "
    "so its standard deviation grows like sqrt(d_k), and that is what to divide by."
)
HINT_MASK_IGNORED = (
    "masked keys still get weight: where the mask is False set the score to -inf before the "
    "softmax (np.where(mask, scores, -np.inf)), so their weight becomes exactly 0."
)
HINT_MASK_INVERTED = (
    "the mask is applied the wrong way round: True means 'this query MAY attend to this key' "
    "(the convention of torch's scaled_dot_product_attention); block the positions where it is False."
)
HINT_MASK_AFTER = (
    "the mask was applied after the softmax: zeroing weights afterwards leaves rows that no longer "
    "sum to 1. Put -inf into the masked scores before the softmax so the rest renormalise."
)
HINT_OUTPUT = (
    "the weights are right but the output is not: the output is weights @ v, "
    "shape (..., n_q, d_v), a weighted average of the value vectors."
)
HINT_MASK_BROADCAST = (
    "the mask only has to BROADCAST to the scores' shape (..., n_q, n_k), e.g. (n_q, n_k) for a whole "
    "batch or (B, 1, 1, n_k) for padding: use np.where(mask, scores, -np.inf) or "
    "scores.masked_fill(~mask, -inf), not boolean indexing, which needs the exact shape."
)
HINT_EMPTY_ROWS = (
    "a query whose keys are all masked should get all-zero weights, as torch's fused attention "
    "gives: mask with -inf (not a large negative number such as -1e9, which spreads the weight "
    "uniformly), and use a softmax that returns 0 for an all -inf row."
)
HINT_TRANSPOSE = (
    "transpose only the last two axes of k: np.swapaxes(k, -1, -2) in numpy, k.transpose(-2, -1) in "
    "torch. k.T reverses every axis of a batched array, and numpy's k.transpose(...) takes the full "
    "order of ALL axes: k.transpose(-2, -1) on a 2-D numpy array changes nothing, and "
    "k.transpose(0, 2, 1) fails unless k has exactly 3 axes. And multiply with @ (np.matmul), not "
    "np.dot: on arrays with more than 2 axes np.dot is not a batched product."
)
HINT_NP_DOT = (
    "np.dot on arrays with more than 2 axes is not a batched matrix product: it pairs every batch "
    "of q with every batch of k, giving shape (..., n_q, ..., n_k). Use q @ np.swapaxes(k, -1, -2) "
    "(np.matmul), which multiplies matching batches."
)
HINT_SWAPPED = (
    "output and weights are swapped: return `output, weights` in that order, output = weights @ v "
    "of shape (..., n_q, d_v) first, then the weights of shape (..., n_q, n_k)."
)
HINT_FLOAT32 = (
    "your numbers are right only to about float32 precision (1e-6 relative or worse) although the inputs "
    "are float64: something in your computation is float32 or slightly off, for instance a scale "
    "computed as torch.sqrt(torch.tensor(d_k)), np.sqrt(np.float32(d_k)) or sqrt(d_k + eps). "
    "Use math.sqrt(d_k), a Python float, which keeps the inputs' precision."
)
HINT_CAUSAL_TRIANGLE = (
    "causal mask on the wrong triangle: query i may attend to keys j <= i (the past and itself), "
    "which is the LOWER triangle, np.tril."
)
HINT_CAUSAL_DIAGONAL = (
    "the diagonal is excluded: a position may attend to itself (j == i). Without the diagonal the "
    "first query can attend to nothing at all."
)
HINT_CAUSAL_INVERTED = (
    "the mask marks the blocked positions: in this course True means 'may attend', so True belongs "
    "on and below the diagonal."
)
HINT_BOOL = (
    "return a boolean array (dtype bool). torch's scaled_dot_product_attention reads a float mask as "
    "a bias to ADD to the scores, so a 0/1 float mask would silently mask nothing."
)
HINT_PAD_OFF_BY_ONE = (
    "off by one: sequence b has lengths[b] real tokens at positions 0 .. lengths[b]-1, "
    "so position j is real when j < lengths[b] (not <=)."
)
HINT_PAD_INVERTED = (
    "the padding mask is inverted: True marks the REAL tokens (keys a query may attend to), "
    "False the padding."
)
HINT_PAD_SHAPE = (
    "the mask needs a query axis of size 1: shape (B, 1, max_len) broadcasts against scores of "
    "shape (B, n_q, n_k), one row of the mask shared by every query (arr[:, None, :])."
)
HINT_BIAS_NAN = (
    "(1 - mask) * -inf gives NaN where the mask is True, because 0 * inf is NaN in IEEE arithmetic, "
    "and one NaN score makes the whole softmax row NaN. Select instead of multiplying: "
    "np.where(mask, 0.0, -np.inf)."
)
HINT_BIAS_INVERTED = "the bias is inverted: 0.0 where the mask is True (may attend), -inf where it is False."
HINT_BIAS_FINITE = (
    "use -inf (np.inf), not a large finite number: with a finite value a query whose keys are all "
    "padding gets uniform weights over the padding instead of none."
)
HINT_NOT_TENSOR = (
    "return torch tensors, not numpy arrays: the model at the end of the notebook needs the result "
    "to stay on the autograd graph (and on the inputs' device)."
)
HINT_ANY_LENGTH = (
    "the model must accept any length: no position table (nn.Embedding over positions) and no "
    "hard-coded sequence length; the hidden test runs sequences of 51 to 201 tokens."
)
HINT_FIXED_POSITION = (
    "your model reads a fixed position (position 0?): it is accurate while the symbol sits at the start "
    "but not when the symbol is moved. Classify from the last (query) position's attention output, "
    "with scores that depend only on token content."
)
HINT_NOT_LOGITS = (
    "return logits, the raw scores of the final nn.Linear, not probabilities: F.cross_entropy applies "
    "its own (log-)softmax, so a softmax inside the model is applied twice."
)
HINT_WEIGHTS = (
    "with return_weights=True, forward returns (logits, weights) where weights are the attention "
    "weights of the last (query) position over all T tokens, shape (B, T): if attention_torch gives "
    "(B, 1, T) for a single query, take weights[:, 0]."
)
HINT_USE_ATTENTION = (
    "the answer must come from attention: the query position's weights should pick out the symbol. "
    "Compute a query from the last position and keys and values from every position, attend with "
    "attention_torch, classify its output, and return its weights (not a placeholder)."
)
HINT_NO_GRAD = (
    "your output is not connected to the inputs' autograd graph: did you go through numpy, call "
    ".detach()/.item(), or build a new tensor with torch.tensor(...)? Use torch operations only."
)


# ------------------------------------------------------------- integrity ---

_SOFTMAXES = ("softmax", "softmax_torch")
_ATTENTIONS = ("scaled_dot_product_attention", "attention")
_MASKS = ("causal_mask", "padding_mask", "mask_to_bias")
TOL64 = dict(atol=1e-7, rtol=1e-6)    # float64: far below every listed mistake, above a float32 scale
TOL32 = dict(atol=2e-5, rtol=1e-4)


def _run(fn: Callable, *args: Any, what: str, forbid: Iterable[str] = (), forbid_sdpa: bool = False,
         explain: Callable[[Exception], str | None] | None = None, **kwargs: Any) -> Any:
    """Call the learner's ``fn``; fail if it hands the exercise to the reference.

    ``forbid`` names the reference functions that *are* the exercise; others (the
    reference softmax inside one's attention, say) are fair to reuse.  An exception
    raised by the learner's code becomes a failure that names the case (``what``)
    and keeps the original type and message (and, chained, its traceback);
    ``explain`` may map it to a hint.
    """
    banned = forbidden(ref, *forbid) + (FUSED_ATTENTION if forbid_sdpa else [])
    return call(fn, *args, what=what, forbid=banned, explain=explain, **kwargs)


# -------------------------------------------------------- 1. softmax ---

def _naive_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    with np.errstate(all="ignore"):
        e = np.exp(x)
        return e / e.sum(axis=axis, keepdims=True)


def _global_max_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    with np.errstate(all="ignore"):
        e = np.exp(x - np.max(x))
        return e / e.sum(axis=axis, keepdims=True)


def _plain_shift_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    """Max shift, but NaN for an all -inf row (the usual first attempt)."""
    with np.errstate(all="ignore"):
        e = np.exp(x - np.max(x, axis=axis, keepdims=True))
        return e / e.sum(axis=axis, keepdims=True)


def _no_keepdims_softmaxes(x: np.ndarray, axis: int) -> list[np.ndarray]:
    """Softmax with keepdims forgotten on the max, the sum or both, where numpy broadcasts it."""
    out = []
    for keep_max, keep_sum in ((False, True), (True, False), (False, False)):
        for protect in (True, False):
            try:
                with np.errstate(all="ignore"):
                    m = np.max(x, axis=axis, keepdims=keep_max)
                    if protect:
                        m = np.where(np.isfinite(m), m, 0.0)
                    e = np.exp(x - m)
                    total = np.sum(e, axis=axis, keepdims=keep_sum)
                    out.append(e / (np.where(total == 0, 1.0, total) if protect else total))
            except ValueError:
                pass
    return out


def _softmax_explain(exc: Exception) -> str | None:
    if isinstance(exc, ValueError) and "broadcast" in str(exc):
        return HINT_KEEPDIMS
    return None


def _check_softmax_case(fn: Callable, x: np.ndarray, axis: int | None, label: str) -> None:
    what = f"softmax({label})"
    original = x.copy()
    kwargs = {} if axis is None else {"axis": axis}
    out = _run(fn, x, what=what, forbid=_SOFTMAXES, explain=_softmax_explain, **kwargs)
    axis = -1 if axis is None else axis
    if not np.array_equal(x, original, equal_nan=True):
        fail(f"{what} changed its input array in place.",
             "compute `x - m` into a new array instead of `x -= m`: the caller's scores must not change.")
    arr = as_numpy(out, what)
    if arr.shape != x.shape:
        fail(f"{what} has shape {arr.shape}, expected {x.shape}.",
             HINT_KEEPDIMS if arr.ndim > x.ndim else "softmax keeps the shape of its input.")
    expected = ref.softmax(x, axis=axis)
    tol = dict(atol=1e-8, rtol=1e-6)
    if matches(arr, expected, **tol):
        return
    mistakes = [(HINT_ALL_INF, _plain_shift_softmax(x, axis)),
                (HINT_NO_SHIFT, _naive_softmax(x, axis)),
                (HINT_GLOBAL_MAX, _global_max_softmax(x, axis))]
    mistakes += [(HINT_KEEPDIMS, wrong) for wrong in _no_keepdims_softmaxes(x, axis)]
    mistakes += [(HINT_AXIS, ref.softmax(x, axis=other)) for other in range(x.ndim)
                 if other != axis % x.ndim]
    diagnose(arr, mistakes, what, **tol)
    a64 = arr.astype(np.float64)
    with np.errstate(invalid="ignore"):
        empty = np.all(np.isneginf(x), axis=axis, keepdims=True)          # all -inf slices
    empty_b = np.broadcast_to(empty, x.shape)
    if np.isnan(a64[empty_b]).any():
        fail(f"{what} returns NaN for a slice that is entirely -inf.", HINT_ALL_INF)
    if not np.all(np.isfinite(a64)):
        fail(f"{what} contains NaN or inf.",
             HINT_NO_SHIFT if np.nanmax(np.abs(np.where(np.isfinite(x), x, 0))) > 100 else None)
    sums = a64.sum(axis=axis, keepdims=True)
    if np.any(sums[~empty] == 0):
        fail(f"{what}: a slice with finite entries came out all zeros "
             f"({int(np.sum(sums[~empty] == 0))} of them).", HINT_ROW_UNDERFLOW)
    if not np.allclose(sums[~empty], 1.0, atol=1e-6):
        fail(f"{what}: the result does not sum to 1 along axis={axis} "
             f"(sums range from {sums[~empty].min():.4g} to {sums[~empty].max():.4g}).", HINT_AXIS)
    if empty.any() and matches(a64[~empty_b], expected[~empty_b], **tol):
        fail(f"{what} is right except for the slices that are entirely -inf "
             f"(yours sum to {float(sums[empty].max()):.4g} there, expected all zeros).", HINT_ALL_INF_FINITE)
    expect_close(arr, expected, what, **tol)


_SOFTMAX_EXAMPLE = np.array([[0.0, 1.0, 2.0, 3.0, 4.0],
                             [1000.0, 1001.0, 1002.0, 1001.0, 1000.0],
                             [-np.inf, 0.0, -np.inf, 0.0, 1.0],
                             [-np.inf, -np.inf, -np.inf, -np.inf, -np.inf]])


def softmax_example(fn: Callable) -> None:
    """Visible check: ordinary logits, huge logits, a partly and a fully masked row (4 x 5)."""
    x = _SOFTMAX_EXAMPLE.copy()
    with worked_example(lambda: f"x =\n{describe(x)}\nexpected softmax(x) =\n{describe(ref.softmax(x))}"):
        _check_softmax_case(fn, x, None, "example")
    passed("softmax (worked example)")


def _softmax_last_axis_cases(gen: np.random.Generator) -> list[tuple[np.ndarray, str]]:
    """Cases along the last axis: what attention needs of a softmax."""
    huge = gen.normal(scale=5.0, size=(4, 6)) + np.array([[1000.0], [-1000.0], [700.0], [0.0]])
    masked = gen.normal(size=(5, 6))
    masked[gen.random(size=masked.shape) < 0.4] = -np.inf
    masked[:, 2] = 0.5                                    # every row keeps one key
    masked[3] = -np.inf                                    # ... except this one
    return [(gen.normal(size=(5, 7)), "random (5, 7)"), (gen.normal(size=9), "a 1-D vector"),
            (huge, "logits around +-1000"), (masked, "rows with -inf entries and an all -inf row")]


def softmax(fn: Callable) -> None:
    """Hidden check: random shapes and axes, huge and tiny logits, -inf rows, no mutation."""
    gen = rng()
    cases = _softmax_last_axis_cases(gen)
    for x, label in cases[:2]:
        _check_softmax_case(fn, x, None, label)
    x3 = gen.normal(scale=3.0, size=(3, 4, 6))
    for axis in (-1, 0, 1, 2):
        _check_softmax_case(fn, x3, axis, f"random (3, 4, 6), axis={axis}")
    huge = cases[2][0]
    _check_softmax_case(fn, huge, None, cases[2][1])
    _check_softmax_case(fn, huge.T.copy(), 0, "logits around +-1000, axis=0")
    _check_softmax_case(fn, cases[3][0], None, cases[3][1])
    passed("softmax")


def _softmax_for_attention(fn: Callable) -> None:
    """The softmax cases an attention relies on (the worked example, then the last axis): the check of the
    learner's softmax when their attention fails."""
    _check_softmax_case(fn, _SOFTMAX_EXAMPLE.copy(), None, "example")
    for x, label in _softmax_last_axis_cases(rng()):
        _check_softmax_case(fn, x, None, label)


EARLIER_SOFTMAX = Earlier("softmax", "exercise 1", _softmax_for_attention)


# ------------------------------------------- 2./4. attention, numpy and torch ---

def _attention_mistakes(q, k, v, mask):
    """Known wrong attentions as (hint, weights, output) triples, all float64 numpy."""
    d_k = q.shape[-1]
    out: list[tuple[str, np.ndarray, np.ndarray]] = []
    with np.errstate(all="ignore"):
        for hint, kwargs in ((HINT_NO_SCALE, dict(scale=1.0)), (HINT_SCALE_DK, dict(scale=1.0 / d_k))):
            o, w = ref.scaled_dot_product_attention(q, k, v, mask, **kwargs)
            out.append((hint, w, o))
        scores = (q @ np.swapaxes(k, -1, -2)) / math.sqrt(d_k)
        if k.shape[-1] == k.shape[-2] and mask is None:          # k.transpose(-2, -1) on 2-D numpy: no-op
            w = ref.softmax((q @ k) / math.sqrt(d_k), axis=-1)
            out.append((HINT_TRANSPOSE, w, w @ v))
        if mask is not None:
            b = np.broadcast_to(mask, scores.shape)
            w = ref.softmax(np.where(b, scores, -np.inf), axis=-2)
            out.append((HINT_AXIS, w, w @ v))
            o, w = ref.scaled_dot_product_attention(q, k, v, None)
            out.append((HINT_MASK_IGNORED, w, o))
            inverted = ~np.asarray(mask, dtype=bool)
            o, w = ref.scaled_dot_product_attention(q, k, v, inverted)
            out.append((HINT_MASK_INVERTED, w, o))
            w = _plain_shift_softmax(np.where(np.broadcast_to(inverted, scores.shape), scores, -np.inf), -1)
            out.append((HINT_MASK_INVERTED, w, w @ v))        # ... with NaN for rows left empty
            w = ref.softmax(scores, axis=-1) * b
            out.append((HINT_MASK_AFTER, w, w @ v))
        else:
            w = ref.softmax(scores, axis=-2)
            out.append((HINT_AXIS, w, w @ v))
    return out


_MATMUL_WORDS = ("matmul", "core dimension", "axes don't match", "cannot be multiplied", "batch2",
                 "Dimension out of range")
_SHAPE_WORDS = ("align", "shape", "size", "dimension")


def _check_attention_case(fn: Callable, q, k, v, mask, label: str, *, torch_mode: bool,
                          dtype=torch.float64, grads: bool = False) -> None:
    """Run the learner's attention on one case and compare with the oracle."""
    user = "attention_torch" if torch_mode else "scaled_dot_product_attention"
    with blame_earlier(fn, user, *(() if torch_mode else (EARLIER_SOFTMAX,))):
        _attention_case(fn, q, k, v, mask, label, torch_mode=torch_mode, dtype=dtype, grads=grads)


def _attention_case(fn: Callable, q, k, v, mask, label: str, *, torch_mode: bool,
                    dtype=torch.float64, grads: bool = False) -> None:
    what = f"{'attention_torch' if torch_mode else 'scaled_dot_product_attention'}({label})"
    batch, (n_q, _d_k), (n_k, d_v) = q.shape[:-2], q.shape[-2:], v.shape[-2:]
    if torch_mode:
        tq, tk, tv = (torch.tensor(a, dtype=dtype, requires_grad=grads) for a in (q, k, v))
        tmask = None if mask is None else torch.tensor(np.asarray(mask, dtype=bool))
        args = (tq, tk, tv) if mask is None else (tq, tk, tv, tmask)
    else:
        args = (q.copy(), k.copy(), v.copy()) if mask is None else (q.copy(), k.copy(), v.copy(), mask.copy())

    def explain(exc: Exception) -> str | None:
        text = str(exc)
        if isinstance(exc, IndexError) and mask is not None and np.shape(mask) != (*batch, n_q, n_k):
            return HINT_MASK_BROADCAST
        if any(word in text for word in _MATMUL_WORDS) or (q.ndim > 2 and any(w in text for w in _SHAPE_WORDS)):
            return HINT_TRANSPOSE
        return None

    with torch.enable_grad():
        result = _run(fn, *args, what=what, forbid=_ATTENTIONS, forbid_sdpa=torch_mode, explain=explain)
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        fail(f"{what} should return a pair (output, weights); got {type(result).__name__}.",
             "end with `return output, weights`.")
    out, weights = result
    if torch_mode and not (isinstance(out, torch.Tensor) and isinstance(weights, torch.Tensor)):
        fail(f"{what} returned {type(out).__name__} and {type(weights).__name__}.", HINT_NOT_TENSOR)
    if torch_mode and out.dtype != dtype:
        fail(f"{what}: the output has dtype {out.dtype} for {dtype} inputs.",
             "keep the inputs' dtype: do not convert through numpy or hard-code a dtype.")
    o_shape, w_shape = np.shape(as_numpy(out, f"the output of {what}")), np.shape(as_numpy(weights, what))
    if n_k != d_v and o_shape == (*batch, n_q, n_k) and w_shape == (*batch, n_q, d_v):
        fail(f"{what} returned a first result of shape {o_shape} and a second of shape {w_shape}; "
             f"expected (output, weights) of shapes {(*batch, n_q, d_v)} and {(*batch, n_q, n_k)}.",
             HINT_SWAPPED)
    if batch and w_shape == (*batch, n_q, *batch, n_k):
        fail(f"the weight matrix of {what} has shape {w_shape}, expected {(*batch, n_q, n_k)}.", HINT_NP_DOT)
    w_arr = expect_shape(weights, (*batch, n_q, n_k), f"the weight matrix of {what}",
                         hint=HINT_TRANSPOSE if q.ndim > 2 else "weights are (..., n_q, n_k).")
    o_arr = expect_shape(out, (*batch, n_q, d_v), f"the output of {what}",
                         hint="the output is weights @ v, shape (..., n_q, d_v).")

    _, exp_w = ref.scaled_dot_product_attention(q, k, v, mask)
    oracle = F.scaled_dot_product_attention(
        torch.tensor(q), torch.tensor(k), torch.tensor(v),
        attn_mask=None if mask is None else torch.tensor(np.asarray(mask, dtype=bool)))
    exp_o = oracle.numpy()                                   # torch itself is the oracle for the output
    float64 = not torch_mode or dtype == torch.float64
    tol = TOL64 if float64 else TOL32
    if matches(o_arr, exp_w, **tol) and matches(w_arr, exp_o, **tol):
        fail(f"{what}: the first result is the weights and the second the output.", HINT_SWAPPED)
    mistakes = _attention_mistakes(q, k, v, mask)
    if not matches(w_arr, exp_w, **tol):
        diagnose(w_arr, [(h, w) for h, w, _ in mistakes], f"the weight matrix of {what}", **tol)
        rows_ok = ~np.all(np.broadcast_to(~np.asarray(mask, dtype=bool), exp_w.shape), axis=-1) \
            if mask is not None else np.ones(exp_w.shape[:-1], dtype=bool)
        nan_rows = np.isnan(w_arr).any(axis=-1)
        if nan_rows.any():
            if not nan_rows[rows_ok].any():
                fail(f"the weight matrix of {what} is NaN for a query whose keys are all masked.", HINT_ALL_INF)
            fail(f"the weight matrix of {what} contains NaN for queries that may attend to some keys.",
                 "check how the mask is applied: -inf belongs in the blocked scores only, and "
                 "the softmax must subtract each row's maximum.")
        sums = w_arr.sum(axis=-1)
        if not np.all(np.isfinite(w_arr)) or not np.allclose(sums[rows_ok], 1.0, atol=1e-5):
            fail(f"the rows of the weight matrix of {what} do not sum to 1 over the keys.", HINT_AXIS)
        if (~rows_ok).any() and matches(w_arr[rows_ok], exp_w[rows_ok], **tol):
            fail(f"the weight matrix of {what} is wrong only for queries whose keys are all masked.",
                 HINT_EMPTY_ROWS)
        if float64 and matches(w_arr, exp_w, **TOL32):
            expect_close(w_arr, exp_w, f"the weight matrix of {what}", **tol, hint=HINT_FLOAT32)
        expect_close(w_arr, exp_w, f"the weight matrix of {what}", **tol)
    if float64 and not matches(o_arr, exp_o, **tol) and matches(o_arr, exp_o, **TOL32):
        expect_close(o_arr, exp_o, f"the output of {what}", **tol, hint=HINT_FLOAT32)
    expect_close(o_arr, exp_o, f"the output of {what}", **tol,
             mistakes=[(h, o) for h, _, o in mistakes], hint=HINT_OUTPUT)

    if torch_mode and grads:
        if not out.requires_grad:
            fail(f"{what}: the output does not require grad although q, k and v do.", HINT_NO_GRAD)
        g = torch.tensor(rng().normal(size=o_arr.shape), dtype=dtype)
        learner_grads = torch.autograd.grad((out * g).sum(), (tq, tk, tv), allow_unused=True)
        rq, rk, rv = (torch.tensor(a, dtype=dtype, requires_grad=True) for a in (q, k, v))
        rmask = None if mask is None else torch.tensor(np.asarray(mask, dtype=bool))
        ref_out = F.scaled_dot_product_attention(rq, rk, rv, attn_mask=rmask)
        ref_grads = torch.autograd.grad((ref_out * g).sum(), (rq, rk, rv))
        for name, lg, rg in zip("qkv", learner_grads, ref_grads):
            if lg is None:
                fail(f"{what}: no gradient reaches {name}.", HINT_NO_GRAD)
            expect_close(as_numpy(lg), as_numpy(rg), f"the gradient of {what} with respect to {name}",
                     **tol, hint=HINT_FLOAT32 if float64 and matches(as_numpy(lg), as_numpy(rg), **TOL32)
                     else HINT_NO_GRAD)


def _random_mask(gen: np.random.Generator, shape: tuple[int, ...], keep_all_rows: bool = True) -> np.ndarray:
    mask = gen.random(size=shape) < 0.6
    if keep_all_rows:
        mask[..., 0] = True                  # every query may attend to at least one key
    return mask


def _example_inputs():
    q = np.array([[1.0, 0.0], [0.0, 2.0]])                       # 2 queries, d_k = 2
    k = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])           # 3 keys
    v = np.array([[1.0, 0.0], [10.0, 0.0], [0.0, 100.0]])        # d_v = 2 (not n_k: a swap shows)
    mask = np.array([[True, False, True], [True, True, False]])
    return q, k, v, mask


def _attention_example(fn: Callable, torch_mode: bool, name: str) -> None:
    q, k, v, mask = _example_inputs()
    for m, label in ((None, "example"), (mask, "example with a mask")):
        exp_o, exp_w = ref.scaled_dot_product_attention(q, k, v, m)
        with worked_example(f"q =\n{describe(q)}\nk =\n{describe(k)}\nv =\n{describe(v)}\n"
                            f"mask = {None if m is None else describe(m)}\n"
                            f"expected weights\n{describe(exp_w)}\nexpected output\n{describe(exp_o)}"):
            _check_attention_case(fn, q, k, v, m, label, torch_mode=torch_mode)
    passed(f"{name} (worked example)")


def scaled_dot_product_attention_example(fn: Callable) -> None:
    """Visible check: 2 queries, 3 keys, d_k = 2, d_v = 2, with and without a mask."""
    _attention_example(fn, torch_mode=False, name="scaled_dot_product_attention")


def scaled_dot_product_attention(fn: Callable) -> None:
    """Hidden check of the numpy attention against torch's fused attention."""
    gen = rng()
    n = lambda *s: gen.normal(size=s)  # noqa: E731
    _check_attention_case(fn, n(4, 8), n(6, 8), n(6, 5), None, "random, n_q=4, n_k=6, d_k=8, d_v=5",
                          torch_mode=False)
    _check_attention_case(fn, n(1, 16), n(9, 16), n(9, 3), None, "a single query", torch_mode=False)
    _check_attention_case(fn, n(5, 8), n(7, 8), n(7, 4), _random_mask(gen, (5, 7)), "a random mask",
                          torch_mode=False)
    _check_attention_case(fn, n(6, 4), n(6, 4), n(6, 6), ref.causal_mask(6), "a causal mask",
                          torch_mode=False)
    mask = _random_mask(gen, (4, 5))
    mask[2] = False
    _check_attention_case(fn, n(4, 8), n(5, 8), n(5, 3), mask, "a query whose keys are all masked",
                          torch_mode=False)
    _check_attention_case(fn, n(3, 4, 8), n(3, 6, 8), n(3, 6, 5), None, "a leading batch axis of 3",
                          torch_mode=False)
    _check_attention_case(fn, n(2, 3, 4, 8), n(2, 3, 6, 8), n(2, 3, 6, 5), _random_mask(gen, (2, 1, 4, 6)),
                          "leading axes (2, 3) and a broadcast mask", torch_mode=False)
    passed("scaled_dot_product_attention")


def attention_torch_example(fn: Callable) -> None:
    """Visible check of the torch attention on the same worked example."""
    _attention_example(fn, torch_mode=True, name="attention_torch")


def attention_torch(fn: Callable) -> None:
    """Hidden check: any leading axes, masks, float32 and float64, gradients; oracle = torch's sdpa."""
    gen = rng()
    n = lambda *s: gen.normal(size=s)  # noqa: E731
    cases = [
        (n(4, 8), n(6, 8), n(6, 5), None, "no batch axis"),
        (n(3, 4, 8), n(3, 7, 8), n(3, 7, 5), None, "batch (3,)"),
        (n(2, 3, 5, 16), n(2, 3, 6, 16), n(2, 3, 6, 4), None, "batch and heads (2, 3)"),
        (n(2, 3, 5, 8), n(2, 3, 6, 8), n(2, 3, 6, 4), _random_mask(gen, (5, 6)), "an (n_q, n_k) mask"),
        (n(2, 2, 6, 8), n(2, 2, 6, 8), n(2, 2, 6, 8), ref.causal_mask(6), "a causal mask"),
        (n(3, 2, 4, 8), n(3, 2, 6, 8), n(3, 2, 6, 4), ref.padding_mask(np.array([6, 3, 1]), 6)[:, None],
         "a (B, 1, 1, n_k) padding mask"),
    ]
    for q, k, v, m, label in cases:
        _check_attention_case(fn, q, k, v, m, label, torch_mode=True)
    mask = _random_mask(gen, (2, 4, 5))
    mask[1, 3] = False
    _check_attention_case(fn, n(2, 4, 8), n(2, 5, 8), n(2, 5, 3), mask, "a query whose keys are all masked",
                          torch_mode=True)
    _check_attention_case(fn, n(2, 3, 5, 8), n(2, 3, 7, 8), n(2, 3, 7, 4), _random_mask(gen, (2, 1, 5, 7)),
                          "float32 inputs", torch_mode=True, dtype=torch.float32)
    _check_attention_case(fn, n(2, 4, 8), n(2, 6, 8), n(2, 6, 3), _random_mask(gen, (4, 6)),
                          "gradients", torch_mode=True, grads=True)
    passed("attention_torch")


# ------------------------------------------------------------ 5. causal mask ---

def _check_causal(fn: Callable, n: int) -> np.ndarray:
    what = f"causal_mask({n})"
    result = _run(fn, n, what=what, forbid=_MASKS)
    arr = expect_shape(result, (n, n), what, hint="the mask is (n, n): one row per query, one column per key.")
    ones = np.ones((n, n), dtype=bool)
    return _expect_mask(arr, ref.causal_mask(n), what,
                        ((HINT_CAUSAL_TRIANGLE, np.triu(ones)), (HINT_CAUSAL_DIAGONAL, np.tril(ones, k=-1)),
                         (HINT_CAUSAL_INVERTED, np.triu(ones, k=1))),
                        "True where the key position j is at most the query position i.")


def _expect_mask(arr: np.ndarray, expected: np.ndarray, what: str, mistakes, hint: str,
                 show=lambda m: m, shown: str = "") -> np.ndarray:
    """A boolean mask equal to ``expected``, or a failure naming the known mistake it makes."""
    if arr.dtype != np.bool_:
        if np.array_equal(arr, expected):
            fail(f"{what} has the right pattern but dtype {arr.dtype}.", HINT_BOOL)
        arr = arr.astype(bool) if arr.dtype.kind in "biuf" else arr
    if np.array_equal(arr, expected):
        return arr
    message = f"{what} returned\n{describe(show(arr))}\n{shown}expected\n{describe(show(expected))}"
    for mistake_hint, wrong in mistakes:
        if np.array_equal(arr, wrong):
            fail(message, mistake_hint)
    fail(message, hint)
    raise AssertionError("unreachable")


def causal_mask_example(fn: Callable) -> None:
    """Visible check: the 4 x 4 causal mask."""
    _check_causal(fn, 4)
    passed("causal_mask (worked example)")


def causal_mask(fn: Callable) -> None:
    """Hidden check: several sizes, and attention with the mask equals torch's is_causal=True."""
    for n in (2, 7, 33, 1):
        _check_causal(fn, n)
    gen = rng()
    n = int(gen.integers(5, 12))
    mask = _check_causal(fn, n)
    q, k, v = (torch.tensor(gen.normal(size=(2, 3, n, 8))) for _ in range(3))
    ours = F.scaled_dot_product_attention(q, k, v, attn_mask=torch.from_numpy(np.ascontiguousarray(mask)))
    oracle = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    expect_close(as_numpy(ours), as_numpy(oracle), f"attention with causal_mask({n})", atol=1e-9, rtol=1e-7,
             hint=HINT_CAUSAL_TRIANGLE)
    passed("causal_mask")


# ------------------------------------------------ 6. padding mask and bias ---

def _check_padding(fn: Callable, lengths: np.ndarray, max_len: int) -> np.ndarray:
    what = f"padding_mask(lengths={lengths.tolist()}, max_len={max_len})"
    result = _run(fn, lengths.copy(), max_len, what=what, forbid=_MASKS)
    arr = as_numpy(result, what)
    expected = ref.padding_mask(lengths, max_len)
    b = len(lengths)
    if arr.shape in ((b, max_len), (b, max_len, 1)) and not arr.shape == expected.shape:
        fail(f"{what} has shape {arr.shape}, expected {expected.shape}.", HINT_PAD_SHAPE)
    arr = expect_shape(arr, expected.shape, what, hint=HINT_PAD_SHAPE)
    return _expect_mask(arr, expected, what,
                        ((HINT_PAD_OFF_BY_ONE, ref.padding_mask(lengths + 1, max_len)),
                         (HINT_PAD_OFF_BY_ONE, ref.padding_mask(lengths - 1, max_len)),
                         (HINT_PAD_INVERTED, ~expected)),
                        "position j of sequence b is real when j < lengths[b].",
                        show=lambda m: m[:, 0], shown="(shown without the query axis), ")


def _check_bias(fn: Callable, mask: np.ndarray, label: str) -> np.ndarray:
    what = f"mask_to_bias({label})"
    with np.errstate(all="ignore"):
        result = _run(fn, mask.copy(), what=what, forbid=_MASKS)
    arr = expect_shape(result, mask.shape, what, hint="the bias has the mask's shape.")
    if arr.dtype.kind != "f":
        fail(f"{what} has dtype {arr.dtype}; the bias must be floating point (0.0 and -inf).",
             "np.where(mask, 0.0, -np.inf) gives float64.")
    expected = ref.mask_to_bias(mask)
    if np.array_equal(arr, expected):
        return arr
    if np.isnan(arr).any():
        fail(f"{what} contains NaN.", HINT_BIAS_NAN)
    if np.array_equal(arr, np.where(mask, -np.inf, 0.0)):
        fail(f"{what} is inverted.", HINT_BIAS_INVERTED)
    if np.all(arr[mask] == 0) and np.all(np.isfinite(arr[~mask])) and np.all(arr[~mask] < -1e3):
        fail(f"{what} uses a finite value ({float(arr[~mask].max()):g}) for the blocked positions.",
             HINT_BIAS_FINITE)
    fail(f"{what} returned\n{describe(arr)}\nexpected\n{describe(expected)}",
         "0.0 where the mask is True, -inf where it is False.")
    raise AssertionError("unreachable")


def padding_mask_example(padding_mask_fn: Callable, mask_to_bias_fn: Callable) -> None:
    """Visible check: three sequences of lengths 3, 1, 4 padded to 4; the bias of a 2 x 3 mask."""
    _check_padding(padding_mask_fn, np.array([3, 1, 4]), 4)
    _check_bias(mask_to_bias_fn, np.array([[True, False, True], [False, True, True]]), "a 2 x 3 mask")
    passed("padding_mask and mask_to_bias (worked example)")


def padding_mask(padding_mask_fn: Callable, mask_to_bias_fn: Callable) -> None:
    """Hidden check: random lengths (0 and full included), the bias, and torch's sdpa as the oracle."""
    gen = rng()
    max_len = int(gen.integers(6, 12))
    lengths = gen.integers(1, max_len + 1, size=6)
    lengths[0], lengths[1] = max_len, 0
    mask = _check_padding(padding_mask_fn, lengths, max_len)
    _check_padding(padding_mask_fn, np.array([1]), 1)
    _check_bias(mask_to_bias_fn, mask, f"a padding mask of shape {mask.shape}")
    _check_bias(mask_to_bias_fn, ref.causal_mask(5), "causal_mask(5)")
    bias = _check_bias(mask_to_bias_fn, mask[:, None], f"a mask of shape {mask[:, None].shape}")
    # the oracle: a float bias and the bool mask must give torch's sdpa the same attention
    q = torch.tensor(gen.normal(size=(len(lengths), 2, 3, 8)))
    k, v = (torch.tensor(gen.normal(size=(len(lengths), 2, max_len, 8))) for _ in range(2))
    # any float dtype is a valid bias: feed torch one of q's dtype (a float32 bias with float64 q
    # gives wrong numbers in torch's CPU kernel, which is not the learner's fault)
    with_bias = F.scaled_dot_product_attention(
        q, k, v, attn_mask=torch.from_numpy(np.ascontiguousarray(bias)).to(q.dtype))
    with_mask = F.scaled_dot_product_attention(q, k, v, attn_mask=torch.from_numpy(ref.padding_mask(lengths, max_len)[:, None]))
    expect_finite(with_bias, "attention with your padding bias", hint=HINT_BIAS_NAN)
    expect_close(as_numpy(with_bias), as_numpy(with_mask), "attention with your padding bias",
             atol=1e-9, rtol=1e-7)
    passed("padding_mask and mask_to_bias")


# ------------------------------------------------- 3. variance of q . k ---

_VAR_TOL = 0.15       # relative; the sampling error at 20,000 samples is below 2% (more than 7 sigma away)
_VAR_SAMPLES = 20_000


HINT_QK_MATRIX = (
    "do not build q @ k.T: that is an n_samples x n_samples matrix (20,000 x 20,000 floats is 3.2 GB) "
    "of which only the diagonal is used. Multiply elementwise and sum over the last axis: "
    "(q * k).sum(axis=-1) gives the n_samples dot products directly."
)


def _check_variance_memory(fn: Callable, d_k: int = 16, n_samples: int = 2_000) -> None:
    """Fail, cheaply, before the full-size run if ``fn`` builds an n_samples x n_samples matrix."""
    if tracemalloc.is_tracing():
        return
    what = f"qk_variance(d_k={d_k}, n_samples={n_samples}, seed=0)"
    tracemalloc.start()
    try:
        _run(fn, d_k, n_samples=n_samples, seed=0, what=what, forbid=("qk_variance",))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    if peak > n_samples * n_samples * 8 / 2:
        fail(f"{what} allocated {peak / 2**20:.0f} MiB, about an n_samples x n_samples matrix "
             f"({n_samples}^2 floats); at n_samples=20,000 that would be 3.2 GB.", HINT_QK_MATRIX)


def _check_variance(fn: Callable, d_k: int, seed: int) -> tuple[float, float]:
    what = f"qk_variance(d_k={d_k}, n_samples={_VAR_SAMPLES}, seed={seed})"
    result = _run(fn, d_k, n_samples=_VAR_SAMPLES, seed=seed, what=what, forbid=("qk_variance",))
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        fail(f"{what} should return a pair (variance of q.k, variance of q.k / sqrt(d_k)); "
             f"got {type(result).__name__}.")
    try:
        raw, scaled = (float(as_numpy(r, what)) for r in result)
    except (TypeError, ValueError):
        fail(f"{what} should return two numbers.", "return float(...), float(...): one variance each.")
    if not (np.isfinite(raw) and np.isfinite(scaled) and raw > 0 and scaled > 0):
        fail(f"{what} returned ({raw!r}, {scaled!r}); variances are positive, finite numbers.")
    near = lambda value, target: abs(value / target - 1.0) < _VAR_TOL  # noqa: E731
    if not near(raw, d_k):
        if d_k >= 4 and near(raw, math.sqrt(d_k)):
            fail(f"{what}: Var(q.k) = {raw:.4g}, but it should be close to d_k = {d_k}.",
                 "you returned a standard deviation: the variance is its square (np.var, not np.std).")
        if d_k >= 4 and near(raw, 7 * d_k / 144):
            fail(f"{what}: Var(q.k) = {raw:.4g}, but it should be close to d_k = {d_k}.",
                 "draw entries with mean 0 and variance 1 (rng.standard_normal), not uniform on [0, 1).")
        fail(f"{what}: Var(q.k) = {raw:.4g}, but for independent entries of mean 0 and variance 1 "
             f"it is d_k = {d_k} (allowed: within {_VAR_TOL:.0%}).",
             "q.k is a sum of d_k independent products q_i k_i, each of variance 1. Draw q and k "
             "with shape (n_samples, d_k) and take the variance of the n_samples dot products.")
    if not near(scaled, 1.0):
        if d_k >= 4 and near(scaled, 1.0 / d_k):
            fail(f"{what}: the scaled variance is {scaled:.4g}, close to 1/d_k, not 1.", HINT_SCALE_DK)
        fail(f"{what}: the variance of q.k / sqrt(d_k) is {scaled:.4g}; it should be close to 1 "
             f"(allowed: within {_VAR_TOL:.0%}).",
             "divide each dot product by sqrt(d_k), then take the variance: Var(X / c) = Var(X) / c^2.")
    return raw, scaled


def qk_variance_example(fn: Callable) -> None:
    """Visible check: d_k = 16 gives a variance near 16, and near 1 after scaling."""
    _check_variance_memory(fn)
    raw, scaled = _check_variance(fn, 16, seed=0)
    print(f"d_k = 16: Var(q.k) = {raw:.3f} (about 16), Var(q.k / 4) = {scaled:.3f} (about 1)")
    passed("qk_variance (worked example)")


def qk_variance(fn: Callable) -> None:
    """Hidden check: d_k from 1 to 512 with fixed seeds, and the numbers must be measured."""
    _check_variance_memory(fn)
    for d_k, seed in ((1, 11), (4, 12), (64, 13), (512, 14)):
        _check_variance(fn, d_k, seed)
    a = _check_variance(fn, 32, seed=101)
    b = _check_variance(fn, 32, seed=202)
    if a == b:
        fail("qk_variance returns exactly the same numbers for two different seeds.",
             "measure the variance from random samples drawn with np.random.default_rng(seed); "
             "do not return the theoretical values.")
    passed("qk_variance")


# --------------------------------------------------- 7. the recall task ---

def _recall_explain(exc: Exception) -> str | None:
    text = str(exc)
    if isinstance(exc, TypeError) and "return_weights" in text:
        return HINT_WEIGHTS
    if isinstance(exc, IndexError) or "index out of range" in text or "out of bounds" in text:
        return HINT_ANY_LENGTH
    return None


def _recall_forward(model, x: np.ndarray, what: str, n_classes: int) -> tuple[torch.Tensor, np.ndarray]:
    """Run the learner's model with return_weights=True; check the logits and weights; return them."""
    xt = torch.from_numpy(x).to(model_device(model))
    with torch.no_grad():
        result = _run(model, xt, return_weights=True, what=what, explain=_recall_explain)
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        fail(f"{what} with return_weights=True returned {type(result).__name__}; expected a pair "
             "(logits, weights).", HINT_WEIGHTS)
    logits, weights = result
    if not isinstance(logits, torch.Tensor):
        fail(f"{what} returned {type(logits).__name__}; it should return a tensor of logits.")
    if logits.ndim != 2 or logits.shape[0] != len(x) or logits.shape[1] < n_classes:
        fail(f"{what} returned logits of shape {tuple(logits.shape)}; expected "
             f"({len(x)}, {n_classes}): one score per symbol for each sequence.",
             "classify from the output at the query (last) position only.")
    expect_finite(logits, f"the logits of {what}")
    lg = logits.detach().double()
    if bool(((lg >= 0) & (lg <= 1)).all()) and bool(torch.allclose(lg.sum(-1), torch.ones(len(x), dtype=lg.dtype),
                                                                    atol=1e-3)):
        fail(f"the logits of {what} are probabilities (every row is in [0, 1] and sums to 1).", HINT_NOT_LOGITS)
    if not isinstance(weights, torch.Tensor):
        fail(f"{what}: the weights are {type(weights).__name__}, not a tensor.", HINT_WEIGHTS)
    w = as_numpy(weights, f"the attention weights of {what}")
    if w.shape != x.shape:
        fail(f"the attention weights of {what} have shape {w.shape}; expected {x.shape} (B, T).", HINT_WEIGHTS)
    if not np.all(np.isfinite(w)) or w.min() < -1e-6 or not np.allclose(w.sum(-1), 1.0, atol=1e-4):
        fail(f"the attention weights of {what} are not a softmax over the T tokens (they should be "
             f"non-negative and sum to 1 for each sequence; sums range from {w.sum(-1).min():.4g} "
             f"to {w.sum(-1).max():.4g}).", HINT_WEIGHTS)
    return logits, w


def _check_recall(model, distances: Sequence[int], seeds: Sequence[int], batch_size: int,
                  threshold: float = 0.95, moved: bool = False, attend: bool = False) -> list[float]:
    """Accuracy (and, with ``attend``, where the query looks) on fresh batches.

    ``moved`` moves the symbol to a random place before the query; ``attend`` requires the
    query position to put most of its weight on the symbol.
    """
    if model is None:
        fail("recall_model is None: the training cell did not build it.",
             "complete RecallAttention (both __init__ and forward), then run the training cell again.")
    if not isinstance(model, torch.nn.Module):
        fail(f"recall_model should be a torch.nn.Module, got {type(model).__name__}.")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        fail("recall_model has no trainable parameters: it should be a model you trained.")
    vocab = RecallVocab()
    was_training = model.training
    model.eval()
    accuracies = []
    try:
        for distance, seed in zip(distances, seeds):
            gen = np.random.default_rng(seed)
            x, y = make_recall_batch(batch_size, distance, vocab, rng=gen)
            rows = np.arange(batch_size)
            where = np.zeros(batch_size, dtype=np.int64)
            label = f"distance {distance}"
            if moved:
                # move the symbol to a random place before the query: a content lookup does not care
                where = gen.integers(0, distance, size=batch_size)
                x[rows, 0], x[rows, where] = x[rows, where], x[rows, 0]
                label += ", symbol at a random position"
            what = f"recall_model on {batch_size} sequences at {label}"
            logits, weights = _recall_forward(model, x, what, vocab.n_symbols)
            acc = float((logits.argmax(-1).cpu().numpy() == y).mean())
            if acc < threshold:
                fail(f"recall_model is {acc:.1%} accurate at {label}; it needs at least {threshold:.0%} "
                     f"(chance is {1 / vocab.n_symbols:.1%}).",
                     HINT_FIXED_POSITION if moved else
                     "let the query position attend over the whole sequence with scores that depend "
                     "only on token content (no positions), train on a range of distances until the "
                     "loss is near 0, and make sure the model works for any sequence length.")
            if attend:
                on_symbol = weights[rows, where]
                if np.median(on_symbol) < 0.5:
                    on_first = weights[:, 0]
                    fixed = moved and np.median(on_first[where != 0]) >= 0.5
                    fail(f"{what}: the query position puts a median weight of {np.median(on_symbol):.2f} "
                         f"on the symbol (expected most of it, over 0.5; uniform would be "
                         f"{1 / x.shape[1]:.3f}).", HINT_FIXED_POSITION if fixed else HINT_USE_ATTENTION)
            accuracies.append(acc)
    finally:
        model.train(was_training)
    return accuracies


def recall_model_example(model) -> None:
    """Visible check: the trained model on 256 sequences at distance 20, and its weights' shape."""
    acc = _check_recall(model, [20], [0], batch_size=256)
    print(f"accuracy at distance 20: {acc[0]:.1%}")
    passed("recall_model (worked example)")


def recall_model(model) -> None:
    """Hidden check: fresh batches at distances 50 and 200, and with the symbol moved; the
    attention weights of the query position must pick out the symbol."""
    gen = rng()
    seeds = [int(s) for s in gen.integers(0, 2**31, size=3)]
    _check_recall(model, [50, 200], seeds[:2], batch_size=500, attend=True)
    _check_recall(model, [100], seeds[2:], batch_size=500, moved=True, attend=True)
    # the model must be differentiable in its parameters: a trained network, not a rule
    x, _ = make_recall_batch(4, 10, rng=gen)
    with torch.enable_grad():
        logits = _run(model, torch.from_numpy(x).to(model_device(model)), what="recall_model on 4 sequences",
                      explain=_recall_explain)
    if not (isinstance(logits, torch.Tensor) and logits.requires_grad):
        fail("recall_model's logits do not depend on its parameters.",
             "the answer should come from a trained attention model, not a hand-written rule.")
    passed("recall_model")
