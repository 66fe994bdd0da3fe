"""Checks for notebook 04 (positional encoding).

Each exercise has a visible ``<name>_example(fn)`` check (a small worked example
the learner can read) and a hidden ``<name>(fn)`` check (fresh random inputs,
edge cases and the real oracle: the formula of Vaswani et al. 2017 for the
sinusoidal table, and the rotary code of ``transformers``' Llama model for RoPE).
Every known mistake listed for this notebook is recognised and named in the
failure message.

The learner's function is always the thing being called, through
:func:`grading.core.call` with the package's reference for that exercise forbidden.
``transformers`` is imported lazily, once, the first time a RoPE check needs it
(it takes a few seconds).
"""
from __future__ import annotations

import functools
import math
import os
import sys
from typing import Any, Callable

import numpy as np
import torch

from .. import positions as ref
from ..attention import MultiHeadAttention
from .core import (CheckFailed, Earlier, as_numpy, blame_earlier, call, describe, diagnose, expect_close, expect_shape,
                   fail, forbidden, matches, passed, quiet, rng, worked_example)

#: The libraries these checks compare with, imported lazily here; the grading harness loads them before
#: any learner code runs, so that its integrity snapshot holds the genuine objects.
ORACLES = ("transformers.models.llama.modeling_llama",)

__all__ = [
    "permutation_gap_example", "permutation_gap",
    "sinusoidal_table_example", "sinusoidal_table",
    "learned_positions_example", "learned_positions",
    "rotate_half_example", "rotate_half",
    "rope_cos_sin_example", "rope_cos_sin",
    "apply_rope_example", "apply_rope",
    "interleaved_to_halves_example", "interleaved_to_halves",
]

# ------------------------------------------------------------------ hints ---

HINT_GAP_NO_UNDO = (
    "you compared layer(x[:, perm]) with layer(x) without undoing the permutation: even a perfectly "
    "equivariant layer then gives a large gap, because its outputs come out in the shuffled order. "
    "Reorder the second output with the inverse permutation, torch.argsort(perm), before comparing."
)
HINT_GAP_PERM_TWICE = (
    "you undid the permutation with perm itself; its inverse is torch.argsort(perm) (applying perm "
    "twice only restores the order when perm is its own inverse, a swap of pairs)."
)
HINT_GAP_MEAN = "return the LARGEST absolute difference (.abs().max()), not the mean or the sum."
HINT_GAP_ABS = "take the absolute value of the difference before the max: a negative difference counts too."
HINT_GAP_AXIS = (
    "permute the positions, which are axis 1 of a (B, T, d) input: x[:, perm] (x[perm] permutes the "
    "batch, x[..., perm] the features). layer returns a (B, T, d_out) tensor: layer(x)[0] would be "
    "batch element 0 alone, a (T, d_out) tensor."
)
HINT_GAP_SCALAR = "return one number: float((...).abs().max())."
HINT_GAP_BATCH0 = (
    "you compared only the first sequence of the batch: compare every sequence, over the whole (B, T, d) "
    "outputs. On a tensor, layer(x)[0] picks batch element 0, it does not unpack a tuple (layer here "
    "returns a tensor); take .abs().max() over all of (shuffled[:, inverse] - plain)."
)

HINT_SIN_DOUBLED = (
    "the exponent uses the even index twice: with i = np.arange(0, d, 2), i already IS the paper's 2i, "
    "so base ** (2 * i / d) doubles it and the frequencies fall twice as fast. Use base ** (-i / d) with "
    "i = arange(0, d, 2), or base ** (-2 * i / d) with i = arange(d // 2)."
)
HINT_SIN_NO_TWO = (
    "the exponent is i / d with i = 0, 1, 2, ..., d/2 - 1: the paper's exponent is 2i / d (the even "
    "column index over d), so the frequencies should fall twice as fast as yours."
)
HINT_SIN_SIGN = (
    "the frequencies are base ** (+2i / d), growing instead of shrinking: the angle is p / base^(2i/d), "
    "i.e. p * base ** (-2i / d)."
)
HINT_SIN_SWAPPED = (
    "sin and cos are swapped: the paper puts sin(p w_i) in the even columns 2i and cos(p w_i) in the odd "
    "columns 2i + 1 (so row 0 is [0, 1, 0, 1, ...])."
)
HINT_SIN_CONCAT = (
    "your table is [all sines | all cosines], two concatenated halves. The layout asked for is the "
    "paper's interleaved one: sin in the even columns, cos in the odd columns, "
    "table[:, 0::2] = sin(angles) and table[:, 1::2] = cos(angles)."
)
HINT_SIN_BASE_IGNORED = (
    "your table ignores the `base` argument: use it in place of the paper's 10000 (the check calls "
    "sinusoidal_table(..., base=...) with other values)."
)
HINT_SIN_BASE_E = (
    "the frequencies use base e instead of `base`: exp(-2i / d) is missing the log of the base. Either "
    "write base ** (-2i / d), or exp(-2i / d * log(base))."
)
HINT_SIN_BASE_OTHER = (
    "your frequencies use a different base from the one asked for (10000 by default, or the `base` "
    "argument): w_i = base ** (-2i / d)."
)
HINT_SIN_FROM_ONE = "positions start at 0, not 1: row p is position p, np.arange(n_positions)."
HINT_SIN_SHAPE = ("the table has one row per position and one column per feature: shape "
                  "(n_positions, d_model).")
HINT_SIN_LOOP = (
    "the table must be computed without a Python loop over positions: make a column of positions "
    "(n_positions, 1) and a row of frequencies (d_model / 2,); their product broadcasts to every "
    "angle at once. np.vectorize and comprehensions are loops too."
)
HINT_SIN_FLOAT32 = ("close, but not to float64 precision: compute in float64 (np.arange(..., dtype=np.float64)), "
                    "not float32.")

HINT_LP_NOT_PARAM = (
    "the table must be a trainable parameter registered with the module: create it as "
    "nn.Embedding(max_positions, d_model) (or nn.Parameter) and assign it to an attribute of self in "
    "__init__, so that model.parameters() (and the optimiser) sees it."
)
HINT_LP_OFFSET = ("the offset is ignored: forward(x, offset=k) must add rows k .. k + T - 1 "
                  "(torch.arange(offset, offset + T)).")
HINT_LP_NO_X = "forward returns the position rows only: add them to x (return x + ...)."
HINT_LP_T = ("T, the number of positions, is x.shape[-2] (x is (B, T, d_model)); x.shape[0] is the "
             "batch size.")
HINT_LP_RAISE = (
    "check `offset + T > max_positions` yourself and raise ValueError with a message that says which "
    "positions do not fit; without it, nn.Embedding raises an IndexError ('index out of range in self') "
    "that does not say what went wrong, and slicing a table silently returns too few rows."
)
HINT_LP_OFF_BY_ONE = ("positions 0 .. max_positions - 1 all exist: offset + T == max_positions fits. "
                      "Raise only when offset + T > max_positions.")

HINT_ROT_INTERLEAVED = (
    "this is the INTERLEAVED layout of the RoFormer paper, which pairs neighbours (x0, x1), (x2, x3), ... "
    "This notebook (and transformers' Llama code, the oracle) uses SPLIT HALVES: feature i pairs with "
    "feature i + d/2, x1 = x[..., :d/2], x2 = x[..., d/2:], rotate_half(x) = cat([-x2, x1], dim=-1)."
)
HINT_ROT_SIGN = ("the signs are the wrong way round: rotate_half([x1 | x2]) is [-x2 | x1] (the minus goes "
                 "on the SECOND half, moved to the front); [x2 | -x1] rotates by minus the angle.")
HINT_ROT_NO_NEG = "the second half moved to the front must be negated: [-x2 | x1], not [x2 | x1]."
HINT_ROT_AXIS = (
    "split and concatenate along the LAST axis (the features): torch.chunk(x, 2) and torch.cat without "
    "dim= use axis 0. Write x.chunk(2, dim=-1) (or slices x[..., :half]) and torch.cat(..., dim=-1)."
)
HINT_ROT_PAIRS = ("feature i must pair with feature i + d/2: the output is [-x[..., d/2:] | x[..., :d/2]] "
                  "(split halves).")
HINT_ROT_INPLACE = ("your function changed its input: do not write into x (negating a slice in place "
                    "changes x too, since a slice is a view). Build a new tensor with torch.cat.")

HINT_CS_DOUBLED = (
    "the exponent uses the even index twice: torch.arange(0, d, 2) already IS 2i, so base ** (-2 * i / d) "
    "with it doubles the exponent. Use base ** (-torch.arange(0, d, 2) / d)."
)
HINT_CS_NO_TWO = "theta_i = base ** (-2i / d): with i = 0 .. d/2 - 1 the exponent has a factor 2 you left out."
HINT_CS_SIGN = "theta_i = base ** (-2i / d) shrinks with i: the exponent is negative."
HINT_CS_INTERLEAVED = (
    "your angles are repeated in the INTERLEAVED layout (theta_0, theta_0, theta_1, theta_1, ...; "
    "repeat_interleave), for neighbouring pairs as in the RoFormer paper. Llama's split-halves layout, "
    "used here, repeats the whole row: [theta_0 .. theta_{d/2-1}, theta_0 .. theta_{d/2-1}], "
    "torch.cat([angles, angles], dim=-1)."
)
HINT_CS_SWAPPED = "return (cos, sin) in that order."
HINT_CS_BASE_IGNORED = "your table ignores the `base` argument (Llama calls it rope_theta): use it in place of 10000."
HINT_CS_BASE_E = ("the angles use base e: exp(-2i / d) is missing the log of the base; write "
                  "base ** (-2i / d).")
HINT_CS_FROM_ONE = "positions start at 0: row p is position p, torch.arange(n_positions)."
HINT_CS_HALF = ("the tables must have d_head columns: each angle appears twice, at feature i and at "
                "feature i + d/2 (torch.cat([angles, angles], dim=-1)).")
HINT_CS_DTYPE = "return float32 tensors (compute in float64 if you like, then .float())."

HINT_AR_INTERLEAVED = (
    "your rotation pairs neighbouring features, the INTERLEAVED layout of the RoFormer paper. The cos/sin "
    "tables given here (and transformers' Llama code) use SPLIT HALVES: x * cos + rotate_half(x) * sin, with "
    "rotate_half([x1 | x2]) = [-x2 | x1]."
)
HINT_AR_SWAPPED = "cos and sin are swapped: x * cos + rotate_half(x) * sin."
HINT_AR_MINUS = ("the rotation goes the wrong way (by minus the angle): it is x * cos + rotate_half(x) * sin, "
                 "with a plus and rotate_half([x1 | x2]) = [-x2 | x1].")
HINT_AR_NO_ROT = "only x * cos: the rotate_half(x) * sin term is missing."
HINT_AR_BROADCAST = ("cos and sin broadcast against x: multiply elementwise (x * cos), do not index them or "
                     "matrix-multiply; the check passes tables of shape (T, d), (B, 1, T, d) and (d,).")

HINT_IH_INVERSE = (
    "this is the inverse permutation (halves to interleaved). interleaved_to_halves lists the EVEN-indexed "
    "features first, then the odd ones: torch.cat([x[..., 0::2], x[..., 1::2]], dim=-1)."
)
HINT_IH_ODD_FIRST = "the even-indexed features (0, 2, 4, ...) come first, then the odd ones."
HINT_IH_SAME = "the features are unchanged: reorder them, evens first (x[..., 0::2]), then odds (x[..., 1::2])."
HINT_IH_AXIS = "reorder the LAST axis (features), whatever the leading axes: x[..., 0::2], and cat with dim=-1."


#: LearnedPositions is the exercise whether built or called
_FORBID_LEARNED = forbidden(ref, "LearnedPositions", methods=("__init__", "forward"))


# ------------------------------------------------- 1. permutation gap ---

def _layer_output(layer: Callable, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out = layer(x)
    return out[0] if isinstance(out, tuple) else out


def _gap_variants(layer: Callable, x: torch.Tensor, perm: torch.Tensor) -> tuple[float, list[tuple[str, float]]]:
    """The right gap and what each known mistake returns, for one case."""
    plain, shuffled = _layer_output(layer, x), _layer_output(layer, x[:, perm])
    inverse = torch.argsort(perm)
    diff = shuffled[:, inverse] - plain
    right = float(diff.abs().max())
    wrong = [
        (HINT_GAP_BATCH0, float(diff[0].abs().max())),
        (HINT_GAP_NO_UNDO, float((shuffled - plain).abs().max())),
        (HINT_GAP_PERM_TWICE, float((shuffled[:, perm] - plain).abs().max())),
        (HINT_GAP_MEAN, float(diff.abs().mean())),
        (HINT_GAP_MEAN, float(diff.abs().sum())),
        (HINT_GAP_ABS, float(diff.max())),
        (HINT_GAP_ABS, float((plain - shuffled[:, inverse]).max())),
    ]
    return right, wrong


def _gap_explain(exc: Exception) -> str | None:
    text = str(exc)
    if isinstance(exc, IndexError) or "out of bounds" in text or "shapes cannot be multiplied" in text \
            or "size of tensor" in text:
        return HINT_GAP_AXIS
    return None


def _check_gap_case(fn: Callable, layer: Callable, x: torch.Tensor, perm: torch.Tensor, label: str,
                    equivariant: bool) -> float:
    what = f"permutation_gap({label})"
    x_before, perm_before = x.clone(), perm.clone()
    result = call(fn, layer, x, perm, what=what, forbid=forbidden(ref, "permutation_gap"), explain=_gap_explain)
    if not (torch.equal(x, x_before) and torch.equal(perm, perm_before)):
        fail(f"{what} changed its input x or perm.", "index into x (x[:, perm]) to make a permuted copy; "
             "do not assign into x.")
    if isinstance(result, torch.Tensor) and result.numel() != 1:
        fail(f"{what} returned a tensor of shape {tuple(result.shape)}.", HINT_GAP_SCALAR)
    try:
        value = float(result)
    except (TypeError, ValueError):
        fail(f"{what} returned {type(result).__name__}, not a number.", HINT_GAP_SCALAR)
    right, wrong = _gap_variants(layer, x, perm)
    tol = 1e-9 + 1e-6 * abs(right)
    if abs(value - right) <= tol:
        return value
    for hint, wrong_value in wrong:
        if abs(value - wrong_value) <= 1e-9 + 1e-6 * abs(wrong_value):
            fail(f"{what} returned {value:.6g}, expected {right:.6g}.", hint)
    verdict = ("this layer IS permutation-equivariant, so the gap should be 0 up to rounding"
               if equivariant else "this layer is NOT permutation-equivariant")
    fail(f"{what} returned {value:.6g}, expected {right:.6g} ({verdict}).",
         "permute the positions (x[:, perm]), run the layer on both inputs, undo the permutation on the "
         "second output with torch.argsort(perm), and return the largest absolute difference.")
    raise AssertionError("unreachable")


def _example_layers():
    def mean_mixer(x):                       # every output sees the mean of all positions: equivariant
        return x + x.mean(dim=1, keepdim=True)

    def running_sum(x):                      # position i sees positions 0..i: NOT equivariant
        return x.cumsum(dim=1)
    return mean_mixer, running_sum


def permutation_gap_example(fn: Callable) -> None:
    """Visible check: a batch of two sequences of one feature, x = [[1, 1, 1, 1], [1, 2, 3, 5]]
    (shape (2, 4, 1)), perm = [1, 2, 3, 0]; an equivariant layer (x + mean of x) has gap 0, a
    running sum (cumsum over positions) has gap 10 (in the second sequence; 3 in the first)."""
    x = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 3.0, 5.0]], dtype=torch.float64).reshape(2, 4, 1)
    perm = torch.tensor([1, 2, 3, 0])
    mean_mixer, running_sum = _example_layers()
    with worked_example(
            "x holds two sequences (shape (2, 4, 1)): [1, 1, 1, 1], which "
            "looks the same in every order, and [1, 2, 3, 5]. perm = [1, 2, 3, 0], so the second sequence "
            "of x[:, perm] is [2, 3, 5, 1], and the inverse permutation is argsort(perm) = [3, 0, 1, 2].\n"
            "Running sum: on the second sequence layer(x) = [1, 3, 6, 11]; layer(x[:, perm]) = [2, 5, 10, 11], "
            "un-permuted [11, 2, 5, 10]; the gap there is max |[10, -1, -1, -1]| = 10. On the first sequence "
            "both outputs are [1, 2, 3, 4], un-permuted [4, 1, 2, 3], a gap of 3. The answer is the largest "
            "over the whole batch: 10.\n"
            "Mean mixer (x + mean): the un-permuted output equals layer(x) exactly; the gap is 0."):
        _check_gap_case(fn, mean_mixer, x, perm, "x + x.mean(dim=1), an equivariant layer", True)
        _check_gap_case(fn, running_sum, x, perm, "x.cumsum(dim=1), a running sum over positions", False)
    print("gap of x + mean(x): 0 (equivariant); gap of cumsum: 10 (not equivariant)")
    passed("permutation_gap (worked example)")


def _one_cycle(gen: np.random.Generator, T: int) -> torch.Tensor:
    """A random permutation made of one cycle through all T positions (T >= 5): no position stays,
    and applying it twice or three times is not its inverse anywhere, so every known mistake
    (no undo, perm applied twice) gives a different number from the right one and from each other."""
    order = gen.permutation(T)
    perm = np.empty(T, dtype=np.int64)
    perm[order] = np.roll(order, -1)
    return torch.from_numpy(perm)


def permutation_gap(fn: Callable) -> None:
    """Hidden check: self-attention and a feed-forward layer (equivariant), causal attention and
    attention on x + sinusoidal positions (not), with fresh inputs and permutations.

    The first of the B = 3 sequences repeats one vector at every position. Causal attention then
    gives the same output at every position (each averages copies of one value vector), so its gap
    on that sequence is 0 up to rounding while the whole batch's is large: an answer that looks at
    batch element 0 only can never pass the causal case."""
    gen = rng()
    torch.manual_seed(int(gen.integers(2**31)))
    B, T, d = 3, int(gen.integers(5, 10)), 16
    mha = MultiHeadAttention(d, 4).double().eval()
    ffn = torch.nn.Sequential(torch.nn.Linear(d, 32), torch.nn.ReLU(), torch.nn.Linear(32, d)).double().eval()
    pe = torch.tensor(ref.sinusoidal_table(T, d))
    cases = [
        (lambda x: mha(x)[0], "multi-head self-attention", True),
        (ffn, "a position-wise feed-forward layer", True),
        (lambda x: mha(x, is_causal=True)[0], "causal self-attention", False),
        (lambda x: -mha(x, is_causal=True)[0], "minus causal self-attention", False),
        (lambda x: mha(x + pe)[0], "self-attention on x + sinusoidal positions", False),
    ]
    x = torch.tensor(gen.normal(size=(B, T, d)))
    x[0] = x[0, :1]                                # sequence 0: one token repeated, order-free
    perm = _one_cycle(gen, T)
    for layer, label, equivariant in cases:        # one input for all: a layer and its negative see the same
        value = _check_gap_case(fn, layer, x, perm, f"{label}, x of shape {(B, T, d)}", equivariant)
        if equivariant and value > 1e-9:
            fail(f"permutation_gap({label}) = {value:.3g}, but this layer is equivariant (float64 "
                 "inputs: the gap should be below 1e-9).")
        if not equivariant and value < 1e-3:
            fail(f"permutation_gap({label}) = {value:.3g}, but this layer depends on the order.")
    passed("permutation_gap")


# ------------------------------------------------- 2. sinusoidal table ---

def _sin_table(n: int, d: int, base: float, kind: str = "ok") -> np.ndarray:
    """The reference table, or the table a known mistake produces."""
    p = np.arange(1, n + 1, dtype=np.float64)[:, None] if kind == "from_one" else np.arange(n, dtype=np.float64)[:, None]
    even = np.arange(0, d, 2, dtype=np.float64)
    exponent = {"doubled": 2 * even / d, "no_two": even / 2 / d, "sign": -even / d}.get(kind, even / d)
    w = (math.e if kind == "base_e" else base) ** (-exponent)
    a = p * w
    s, c = np.sin(a), np.cos(a)
    if kind == "swapped":
        s, c = c, s
    if kind in ("concat", "concat_swapped"):
        return np.concatenate([s, c] if kind == "concat" else [c, s], axis=1)
    table = np.empty((n, d))
    table[:, 0::2], table[:, 1::2] = s, c
    return table


def _sin_mistakes(n: int, d: int, base: float) -> list[tuple[str, np.ndarray]]:
    out = [(HINT_SIN_DOUBLED, _sin_table(n, d, base, "doubled")),
           (HINT_SIN_NO_TWO, _sin_table(n, d, base, "no_two")),
           (HINT_SIN_SIGN, _sin_table(n, d, base, "sign")),
           (HINT_SIN_SWAPPED, _sin_table(n, d, base, "swapped")),
           (HINT_SIN_CONCAT, _sin_table(n, d, base, "concat")),
           (HINT_SIN_CONCAT, _sin_table(n, d, base, "concat_swapped")),
           (HINT_SIN_FROM_ONE, _sin_table(n, d, base, "from_one")),
           (HINT_SIN_BASE_E, _sin_table(n, d, base, "base_e"))]
    if base != 10_000.0:
        out.append((HINT_SIN_BASE_IGNORED, _sin_table(n, d, 10_000.0)))
        out.append((HINT_SIN_BASE_IGNORED, _sin_table(n, d, 10_000.0, "doubled")))
    out += [(HINT_SIN_BASE_OTHER, _sin_table(n, d, b)) for b in (1_000.0, 100_000.0, float(d)) if b != base]
    return out


_SIN_TOL = dict(atol=1e-6, rtol=1e-6)      # float64 rounding is ~1e-12; every mistake is > 1e-2 off


def _check_sin_case(fn: Callable, n: int, d: int, base: float | None) -> np.ndarray:
    kwargs = {} if base is None else {"base": base}
    label = f"{n}, {d}" + ("" if base is None else f", base={base:g}")
    what = f"sinusoidal_table({label})"
    result = call(fn, n, d, what=what, forbid=forbidden(ref, "sinusoidal_table"), **kwargs)
    low_precision = str(getattr(result, "dtype", "")).replace("torch.", "") in ("float32", "float16", "bfloat16")
    arr = as_numpy(result, what)                   # a torch tensor comes back as float64: dtype noted above
    if arr.shape == (d, n) and n != d:
        fail(f"{what} has shape {arr.shape}, expected {(n, d)}: rows and columns are swapped.", HINT_SIN_SHAPE)
    arr = expect_shape(arr, (n, d), what, hint=HINT_SIN_SHAPE)
    expected = _sin_table(n, d, 10_000.0 if base is None else base)
    if not matches(arr, expected, **_SIN_TOL):
        diagnose(arr, _sin_mistakes(n, d, 10_000.0 if base is None else base), what, atol=1e-4, rtol=1e-4)
        if low_precision and matches(arr, expected, atol=1e-3, rtol=1e-3):
            fail(f"{what} does not match the paper's formula to float64 precision.", HINT_SIN_FLOAT32)
    expect_close(arr, expected, what, **_SIN_TOL,
                 hint="row p, column 2i is sin(p * base ** (-2i / d)) and column 2i + 1 is the cos of the "
                      "same angle.")
    return arr


def _library_dirs() -> tuple[str, ...]:
    import transformer_course
    dirs = {os.path.dirname(np.__file__), os.path.dirname(torch.__file__),
            os.path.dirname(transformer_course.__file__), sys.prefix, sys.base_prefix}
    return tuple(os.path.realpath(p) for p in dirs)


def _count_lines(fn: Callable, *args: Any) -> int:
    """How many lines of the learner's own code run during ``fn(*args)`` (library code not counted)."""
    libraries = _library_dirs()
    own: dict[str, bool] = {}
    count = 0

    def is_own(filename: str) -> bool:
        if filename not in own:
            real = os.path.realpath(filename) if not filename.startswith("<") else filename
            own[filename] = not filename.startswith("<frozen") and not real.startswith(libraries)
        return own[filename]

    def local(frame, event, arg):  # noqa: ANN001 - the tracing protocol
        nonlocal count
        if event == "line":
            count += 1
        return local

    def global_trace(frame, event, arg):  # noqa: ANN001
        return local if is_own(frame.f_code.co_filename) else None

    def traced(*a):
        previous = sys.gettrace()
        sys.settrace(global_trace)
        try:
            return fn(*a)
        finally:
            sys.settrace(previous)

    traced.__name__ = getattr(fn, "__name__", "sinusoidal_table")
    call(traced, *args, what=f"sinusoidal_table{args}", forbid=forbidden(ref, "sinusoidal_table"))
    return count


_LINE_LIMIT = 500          # a vectorised table runs ~10 lines; a loop over 2048 positions runs > 2048


def sinusoidal_table_example(fn: Callable) -> None:
    """Visible check: the 4 x 4 table (positions 0-3, frequencies 1 and 1/100)."""
    with worked_example(lambda: "sinusoidal_table(4, 4) has w_0 = 1 and w_1 = 10000 ** (-2/4) = 0.01, so row p "
                                f"is [sin p, cos p, sin 0.01p, cos 0.01p]:\n{describe(_sin_table(4, 4, 10_000.0))}"):
        _check_sin_case(fn, 4, 4, None)
    print("sinusoidal_table(4, 4) =\n" + describe(_sin_table(4, 4, 10_000.0)))
    passed("sinusoidal_table (worked example)")


def sinusoidal_table(fn: Callable) -> None:
    """Hidden check: random sizes against the paper's formula, other bases, edge sizes, and a
    2048-position table computed without a Python loop over positions."""
    gen = rng()
    n, d = int(gen.integers(20, 300)), 2 * int(gen.integers(4, 64))
    _check_sin_case(fn, n, d, None)
    _check_sin_case(fn, int(gen.integers(20, 200)), 2 * int(gen.integers(4, 32)), float(gen.choice([500.0, 2000.0])))
    _check_sin_case(fn, 1, 2, None)
    _check_sin_case(fn, 2048, 512, None)
    lines = _count_lines(fn, 2048, 16)
    if lines > _LINE_LIMIT:
        fail(f"sinusoidal_table(2048, 16) ran {lines} lines of your code: a loop over the positions?",
             HINT_SIN_LOOP)
    passed("sinusoidal_table")


# ------------------------------------------------- 3. learned positions ---

def _build_positions(cls: Callable, max_positions: int, d_model: int):
    what = f"LearnedPositions({max_positions}, {d_model})"
    module = call(cls, max_positions, d_model, what=what, forbid=_FORBID_LEARNED)
    if not isinstance(module, torch.nn.Module):
        fail(f"{what} is a {type(module).__name__}, not a torch.nn.Module.",
             "keep `class LearnedPositions(nn.Module)` and call super().__init__() first.")
    shape = (max_positions, d_model)
    tables = [p for p in module.parameters() if tuple(p.shape) == shape]
    if not tables:
        where = "registered as a buffer" if any(tuple(b.shape) == shape for b in module.buffers()) else \
            "a plain tensor attribute" if any(isinstance(v, torch.Tensor) and tuple(v.shape) == shape
                                              for v in vars(module).values()) else None
        fail(f"{what} has no parameter of shape {shape}" + (f" (the table is {where})." if where else "."),
             HINT_LP_NOT_PARAM)
    if len(tables) > 1:
        fail(f"{what} has {len(tables)} parameters of shape {shape}; expected one table.")
    table = tables[0]
    if not table.requires_grad:
        fail(f"the table of {what} does not require grad, so training cannot change it.", HINT_LP_NOT_PARAM)
    return module, table, what


def _lp_forward(module, x: torch.Tensor, offset: int | None, what: str):
    kwargs = {} if offset is None else {"offset": offset}
    label = f"{what}(x of shape {tuple(x.shape)}" + ("" if offset is None else f", offset={offset}") + ")"
    explain = lambda exc: HINT_LP_T if "size of tensor" in str(exc) or "match" in str(exc) else None  # noqa: E731
    with torch.enable_grad():
        return call(module, x, what=label, forbid=_FORBID_LEARNED, explain=explain,
                    **kwargs), label


def _check_lp_rows(module, table: torch.nn.Parameter, what: str, x: torch.Tensor, offset: int | None) -> None:
    out, label = _lp_forward(module, x, offset, what)
    if not isinstance(out, torch.Tensor):
        fail(f"{label} returned {type(out).__name__}, not a tensor.")
    T = x.shape[-2]
    start = offset or 0
    w = table.detach()
    expected = x + w[start:start + T]
    got = out.detach()
    if tuple(got.shape) != tuple(x.shape):
        fail(f"{label} returned shape {tuple(got.shape)}, expected {tuple(x.shape)} (the input's shape).",
             HINT_LP_T)
    mistakes = [(HINT_LP_NO_X, w[start:start + T].expand_as(x))]
    B = x.shape[0]
    if B != T and start + B <= w.shape[0]:         # T = x.shape[0]: one row per sequence, broadcast over positions
        mistakes.append((HINT_LP_T, x + w[start:start + B][:, None]))
    if start:
        mistakes.append((HINT_LP_OFFSET, x + w[:T]))
    expect_close(got, expected, f"the output of {label}", atol=1e-6, rtol=1e-6,
                 mistakes=[(h, v) for h, v in mistakes if v is not None],
                 hint="the output is x plus rows offset .. offset + T - 1 of the table.")
    # trainable: the gradient reaches exactly the rows used
    g = torch.randn_like(out)
    if table.grad is not None:
        table.grad = None
    if not out.requires_grad:
        fail(f"the output of {label} does not depend on the table's parameters.", HINT_LP_NOT_PARAM)
    (out * g).sum().backward()
    if table.grad is None:
        fail(f"no gradient reaches the table in {label}.", HINT_LP_NOT_PARAM)
    expected_grad = torch.zeros_like(w)
    expected_grad[start:start + T] = g.detach().reshape(-1, T, w.shape[1]).sum(0)
    expect_close(table.grad, expected_grad, f"the gradient of the table in {label}", atol=1e-5, rtol=1e-5,
                 hint="each row used should receive the gradient of its position, summed over the batch.")
    table.grad = None


def _check_lp_limit(module, what: str, x: torch.Tensor, offset: int) -> None:
    label = f"{what}(x of shape {tuple(x.shape)}, offset={offset})"
    try:
        call(module, x, offset=offset, what=label, forbid=_FORBID_LEARNED, label_errors=False)
    except ValueError:
        return
    except CheckFailed:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever the learner's module raises
        fail(f"{label} raised {type(exc).__name__}: {exc}", HINT_LP_RAISE)
    fail(f"{label} returned a result, but positions {offset} .. {offset + x.shape[-2] - 1} do not fit "
         f"in the table.", HINT_LP_RAISE)


def _check_lp_fits(module, table, what: str, x: torch.Tensor, offset: int) -> None:
    try:
        _check_lp_rows(module, table, what, x, offset)
    except CheckFailed as exc:
        if "ValueError" in str(exc):
            fail(f"{exc}", HINT_LP_OFF_BY_ONE)
        raise


def learned_positions_example(cls: Callable) -> None:
    """Visible check: a (6, 4) table set to 0.0 .. 2.3; inputs of ones, shape (2, 3, 4), get
    1 + rows 0-2, 1 + rows 2-4 with offset=2, and 1 + rows 3-5 with offset=3 (the last rows: it
    fits exactly); offset=4 raises ValueError."""
    module, table, what = _build_positions(cls, 6, 4)
    with torch.no_grad():
        table.copy_(torch.arange(24, dtype=table.dtype).reshape(6, 4) / 10)
    x = torch.ones(2, 3, 4)
    with worked_example(lambda: f"the table is\n{describe(table.detach())}\nso forward(ones(2, 3, 4)) is 1 + rows "
                                "0-2 in each sequence, forward(..., offset=2) 1 + rows 2-4, offset=3 uses the last rows "
                                "3-5 (it fits exactly), and offset=4 needs rows 4-6, which do not exist."):
        _check_lp_rows(module, table, what, x, None)
        _check_lp_rows(module, table, what, x, 2)
        _check_lp_fits(module, table, what, x, 3)
        _check_lp_limit(module, what, x, 4)
    print("LearnedPositions(6, 4): x + rows 0-2, x + rows 2-4 with offset=2, x + rows 3-5 with offset=3, "
          "ValueError for offset=4")
    passed("learned_positions (worked example)")


def learned_positions(cls: Callable) -> None:
    """Hidden check: random sizes and tables, offsets (up to the last row), batch sizes, inputs
    beyond max_positions, gradients, and no sharing between two instances."""
    gen = rng()
    max_positions, d = int(gen.integers(8, 40)), 2 * int(gen.integers(2, 12))
    module, table, what = _build_positions(cls, max_positions, d)
    with torch.no_grad():
        table.copy_(torch.tensor(gen.normal(size=(max_positions, d)), dtype=table.dtype))
    T = int(gen.integers(3, max_positions // 2))
    B = T + 1
    x = torch.tensor(gen.normal(size=(B, T, d)), dtype=torch.float32)
    _check_lp_rows(module, table, what, x, None)
    _check_lp_rows(module, table, what, x[:1], int(gen.integers(1, max_positions - T)))
    _check_lp_fits(module, table, what, x, max_positions - T)                        # the last rows
    _check_lp_fits(module, table, what, torch.zeros(2, max_positions, d), 0)         # every row
    _check_lp_limit(module, what, x, max_positions - T + 1)
    _check_lp_limit(module, what, torch.zeros(1, max_positions + 1, d), 0)
    other, other_table, _ = _build_positions(cls, max_positions, d)
    if other_table.data_ptr() == table.data_ptr():
        fail(f"two {what} modules share one table.", "create the nn.Embedding inside __init__, per instance.")
    passed("learned_positions")


# ----------------------------------------------------- RoPE references ---

def _rotate_interleaved(x: torch.Tensor, sign: float = 1.0) -> torch.Tensor:
    out = torch.empty_like(x)
    out[..., 0::2], out[..., 1::2] = -sign * x[..., 1::2], sign * x[..., 0::2]
    return out


def _rotate_variants(x: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    x1, x2 = x.chunk(2, dim=-1)
    return [(HINT_ROT_INTERLEAVED, _rotate_interleaved(x)),
            (HINT_ROT_INTERLEAVED, _rotate_interleaved(x, -1.0)),
            (HINT_ROT_SIGN, torch.cat([x2, -x1], dim=-1)),
            (HINT_ROT_NO_NEG, torch.cat([x2, x1], dim=-1)),
            (HINT_ROT_SIGN, torch.cat([-x1, x2], dim=-1)),
            (HINT_ROT_PAIRS, torch.cat([-x2.flip(-1), x1.flip(-1)], dim=-1))] + _axis0_variants(x)


def _axis0_variants(x: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """torch.chunk(x, 2) and torch.cat(...) without dim=: both work on axis 0, and when x has more
    than one axis the result has x's shape (no error), with the rows rotated instead of the features."""
    if x.ndim < 2 or x.shape[0] < 2:
        return []
    a, b = torch.chunk(x, 2)
    return [(HINT_ROT_AXIS, torch.cat([-b, a])), (HINT_ROT_AXIS, torch.cat([b, -a]))]


# ----------------------------------------------------- 4. rotate_half ---

def _check_rotate_case(fn: Callable, x: torch.Tensor) -> None:
    what = f"rotate_half(x of shape {tuple(x.shape)})"
    before = x.clone()
    explain = lambda exc: HINT_ROT_AXIS if "size" in str(exc) or "dimension" in str(exc) else None  # noqa: E731
    result = call(fn, x, what=what, forbid=forbidden(ref, "rotate_half"), explain=explain)
    if not torch.equal(x, before):
        fail(f"{what} changed its input.", HINT_ROT_INPLACE)
    if not isinstance(result, torch.Tensor):
        fail(f"{what} returned {type(result).__name__}; return a torch tensor (torch.cat).")
    if tuple(result.shape) != tuple(x.shape):
        fail(f"{what} returned shape {tuple(result.shape)}, expected {tuple(x.shape)}.", HINT_ROT_AXIS)
    expect_close(result, ref.rotate_half(x), what, atol=1e-12, rtol=0,
                 mistakes=[(h, v) for h, v in _rotate_variants(x)], hint=HINT_ROT_PAIRS)


def _rotate_half_cases(fn: Callable) -> None:
    gen = rng()
    _check_rotate_case(fn, torch.arange(1.0, 9.0, dtype=torch.float64))
    for shape in ((2, 3, 5, 16), (7, 4), (3, 12), (1, 2)):
        _check_rotate_case(fn, torch.tensor(gen.normal(size=shape)))


def rotate_half_example(fn: Callable) -> None:
    """Visible check: rotate_half([1, 2, 3, 4, 5, 6, 7, 8]) = [-5, -6, -7, -8, 1, 2, 3, 4]."""
    x = torch.arange(1.0, 9.0, dtype=torch.float64)
    with worked_example("x = [1, 2, 3, 4, 5, 6, 7, 8] has halves x1 = [1, 2, 3, 4] and x2 = [5, 6, 7, 8], so "
                        "rotate_half(x) = [-5, -6, -7, -8, 1, 2, 3, 4]."):
        _check_rotate_case(fn, x)
    print("rotate_half([1, ..., 8]) =", describe(ref.rotate_half(x)))
    passed("rotate_half (worked example)")


def rotate_half(fn: Callable) -> None:
    """Hidden check: random tensors with 1 to 4 axes (splitting and concatenating along axis 0,
    torch.chunk / torch.cat without dim=, is recognised on every tensor with more than one axis),
    the interleaved and sign mistakes, no change to the input."""
    _rotate_half_cases(fn)
    passed("rotate_half")


# ---------------------------------------------------- 5. rope_cos_sin ---

def _angles(T: int, d: int, base: float, kind: str = "ok") -> torch.Tensor:
    i2 = torch.arange(0, d, 2, dtype=torch.float64)
    exponent = {"doubled": 2 * i2 / d, "no_two": i2 / 2 / d, "sign": -i2 / d}.get(kind, i2 / d)
    theta = (math.e if kind == "base_e" else base) ** (-exponent)
    p = torch.arange(T, dtype=torch.float64) + (1 if kind == "from_one" else 0)
    a = torch.outer(p, theta)
    return torch.repeat_interleave(a, 2, dim=-1) if kind == "interleaved" else torch.cat([a, a], dim=-1)


def _cos_sin_mistakes(T: int, d: int, base: float) -> list[tuple[str, tuple[torch.Tensor, torch.Tensor]]]:
    kinds = [(HINT_CS_DOUBLED, "doubled"), (HINT_CS_NO_TWO, "no_two"), (HINT_CS_SIGN, "sign"),
             (HINT_CS_INTERLEAVED, "interleaved"), (HINT_CS_FROM_ONE, "from_one"), (HINT_CS_BASE_E, "base_e")]
    out = []
    for hint, kind in kinds:
        a = _angles(T, d, base, kind)
        out.append((hint, (a.cos(), a.sin())))
    a = _angles(T, d, base)
    out.append((HINT_CS_SWAPPED, (a.sin(), a.cos())))
    if base != 10_000.0:
        a = _angles(T, d, 10_000.0)
        out.append((HINT_CS_BASE_IGNORED, (a.cos(), a.sin())))
    return out


_CS_TOL = dict(atol=1e-4, rtol=0)    # float32 angles at position 256 are ~3e-5 off; every mistake >> 1e-2


def _check_cos_sin_case(fn: Callable, T: int, d: int, base: float | None,
                        oracle: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
    kwargs = {} if base is None else {"base": base}
    what = f"rope_cos_sin({T}, {d}" + ("" if base is None else f", base={base:g}") + ")"
    result = call(fn, T, d, what=what, forbid=forbidden(ref, "rope_cos_sin", "rope_inverse_frequencies"), **kwargs)
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        fail(f"{what} should return a pair (cos, sin); got {type(result).__name__}.")
    cos, sin = result
    if not (isinstance(cos, torch.Tensor) and isinstance(sin, torch.Tensor)):
        fail(f"{what} returned {type(cos).__name__} and {type(sin).__name__}; return torch tensors.")
    for name, t in (("cos", cos), ("sin", sin)):
        if tuple(t.shape) == (T, d // 2):
            fail(f"the {name} table of {what} has shape {tuple(t.shape)}, expected {(T, d)}.", HINT_CS_HALF)
        if tuple(t.shape) != (T, d):
            fail(f"the {name} table of {what} has shape {tuple(t.shape)}, expected {(T, d)}.",
                 "one row per position, d_head columns.")
    b = 10_000.0 if base is None else base
    a = _angles(T, d, b)
    exp_cos, exp_sin = (oracle if oracle is not None else (a.cos(), a.sin()))
    got = torch.stack([cos.detach().double(), sin.detach().double()])
    expected = torch.stack([exp_cos.double(), exp_sin.double()])
    if not matches(got, expected, **_CS_TOL):
        diagnose(got, [(h, torch.stack(cs)) for h, cs in _cos_sin_mistakes(T, d, b)], f"(cos, sin) of {what}",
                 **_CS_TOL)
    expect_close(got[0], expected[0], f"the cos table of {what}", **_CS_TOL,
                 hint="row p, column j is cos(p * theta_{j mod d/2}), theta_i = base ** (-2i / d).")
    expect_close(got[1], expected[1], f"the sin table of {what}", **_CS_TOL,
                 hint="row p, column j is sin(p * theta_{j mod d/2}), theta_i = base ** (-2i / d).")
    if cos.dtype != torch.float32 or sin.dtype != torch.float32:
        fail(f"{what} returned dtypes {cos.dtype} and {sin.dtype}.", HINT_CS_DTYPE)


def rope_cos_sin_example(fn: Callable) -> None:
    """Visible check: rope_cos_sin(3, 4): theta = [1, 0.01], angles of row p = [p, 0.01p, p, 0.01p]."""
    a = _angles(3, 4, 10_000.0)
    with worked_example(f"d = 4 gives theta = [1, 10000 ** (-2/4)] = [1, 0.01]; row p of the angles is "
                        f"[p, 0.01p, p, 0.01p], so cos =\n{describe(a.cos())}\nand sin =\n{describe(a.sin())}"):
        _check_cos_sin_case(fn, 3, 4, None)
    print("rope_cos_sin(3, 4): cos =\n" + describe(_angles(3, 4, 10_000.0).cos()))
    passed("rope_cos_sin (worked example)")


def rope_cos_sin(fn: Callable) -> None:
    """Hidden check: transformers' LlamaRotaryEmbedding on tiny random configs is the oracle
    (other bases included), plus a single position."""
    gen = rng()
    for theta in (10_000.0, float(gen.choice([500.0, 2000.0]))):
        d = int(gen.choice([8, 16, 32, 64]))
        T = int(gen.integers(10, 200))
        cos_hf, sin_hf = _llama_cos_sin(d, theta, torch.arange(T)[None])
        _check_cos_sin_case(fn, T, d, None if theta == 10_000.0 else theta, oracle=(cos_hf[0], sin_hf[0]))
    _check_cos_sin_case(fn, 1, 2, None)
    passed("rope_cos_sin")


# ----------------------------------------------------- transformers oracle ---

@functools.lru_cache(maxsize=None)
def _llama():
    """transformers' Llama rotary code, imported once (it takes a few seconds)."""
    def load():
        from transformers import LlamaConfig
        from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb
        return LlamaConfig, LlamaRotaryEmbedding, apply_rotary_pos_emb
    return quiet(load)


def _llama_rotary(d_head: int, theta: float, n_heads: int = 2):
    LlamaConfig, LlamaRotaryEmbedding, _ = _llama()
    cfg = quiet(LlamaConfig, hidden_size=d_head * n_heads, num_attention_heads=n_heads, num_key_value_heads=n_heads,
                num_hidden_layers=1, intermediate_size=32, vocab_size=32, max_position_embeddings=512,
                rope_theta=theta)
    return quiet(LlamaRotaryEmbedding, config=cfg)


def _llama_cos_sin(d_head: int, theta: float, position_ids: torch.Tensor, dtype=torch.float32):
    rot = _llama_rotary(d_head, theta)
    with torch.no_grad():
        return rot(torch.zeros(1, dtype=dtype), position_ids)


# ------------------------------------------------------ 6. apply_rope ---

def _apply_mistakes(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                    positions: torch.Tensor | None, base: float) -> list[tuple[str, torch.Tensor]]:
    rh = ref.rotate_half(x)
    half = x.shape[-1] // 2
    c, s = cos[..., :half], sin[..., :half]               # one angle per pair, from the halves tables
    even, odd = x[..., 0::2], x[..., 1::2]
    pair_formula = torch.stack([even * c - odd * s, odd * c + even * s], dim=-1).flatten(-2)
    out = [(HINT_AR_INTERLEAVED, x * cos + _rotate_interleaved(x) * sin),
           (HINT_AR_INTERLEAVED, pair_formula),           # the paper's formula on neighbouring pairs
           (HINT_AR_SWAPPED, x * sin + rh * cos),
           (HINT_AR_MINUS, x * cos - rh * sin),
           (HINT_AR_NO_ROT, x * cos)]
    if positions is not None:
        out.append((HINT_AR_INTERLEAVED, ref.apply_rope_interleaved(x, positions, base)))
    return out


def _blame_rotate_half(fn: Callable):
    """A context manager: when the check inside fails and ``fn`` uses the learner's rotate_half, which fails
    its own (hidden) check, the failure says to fix rotate_half first."""
    return blame_earlier(fn, "apply_rope", Earlier("rotate_half", "exercise 4", _rotate_half_cases))


def _check_apply_case(fn: Callable, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, label: str,
                      expected: torch.Tensor, tol: dict, positions: torch.Tensor | None = None,
                      base: float = 10_000.0) -> None:
    with _blame_rotate_half(fn):
        _apply_case(fn, x, cos, sin, label, expected, tol, positions, base)


def _apply_case(fn: Callable, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, label: str,
                expected: torch.Tensor, tol: dict, positions: torch.Tensor | None = None,
                base: float = 10_000.0) -> None:
    what = f"apply_rope({label})"
    before = x.clone()
    explain = lambda exc: HINT_AR_BROADCAST if "size" in str(exc) or "dimension" in str(exc) else None  # noqa: E731
    result = call(fn, x, cos, sin, what=what, forbid=forbidden(ref, "apply_rope", "apply_rope_interleaved"),
                  explain=explain)
    if not torch.equal(x, before):
        fail(f"{what} changed its input x.", "compute a new tensor: x * cos + rotate_half(x) * sin.")
    if not isinstance(result, torch.Tensor):
        fail(f"{what} returned {type(result).__name__}; return a torch tensor.")
    if tuple(result.shape) != tuple(x.shape):
        fail(f"{what} returned shape {tuple(result.shape)}, expected x's shape {tuple(x.shape)}.",
             HINT_AR_BROADCAST)
    expect_close(result.detach(), expected.detach(), what, **tol,
                 mistakes=_apply_mistakes(x, cos, sin, positions, base),
                 hint="x * cos + rotate_half(x) * sin, elementwise.")


def apply_rope_example(fn: Callable) -> None:
    """Visible check: x = [1, 2, 3, 4] with angles [pi/2, 0, pi/2, 0] gives [-3, 2, 1, 4]
    (pair (x0, x2) turns by 90 degrees, pair (x1, x3) stays); then tables from rope_cos_sin."""
    x = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    angles = torch.tensor([math.pi / 2, 0.0, math.pi / 2, 0.0], dtype=torch.float64)
    with _blame_rotate_half(fn):
        with worked_example("pairs are (x0, x2) = (1, 3) at angle pi/2 and (x1, x3) = (2, 4) at angle 0. "
                            "Turning (1, 3) by 90 degrees gives (-3, 1); (2, 4) stays. So the result is "
                            "[-3, 2, 1, 4] = x * cos + rotate_half(x) * sin = [0, 2, 0, 4] + [-3, 0, 1, 0]."):
            _apply_case(fn, x, angles.cos(), angles.sin(), "[1, 2, 3, 4], angles [pi/2, 0, pi/2, 0]",
                        ref.apply_rope(x, angles.cos(), angles.sin()), dict(atol=1e-12, rtol=0))
    gen = rng(0)
    xb = torch.tensor(gen.normal(size=(1, 2, 3, 4)))
    cos, sin = ref.rope_cos_sin(3, 4, dtype=torch.float64)
    _check_apply_case(fn, xb, cos, sin, "x of shape (1, 2, 3, 4), tables (3, 4)", ref.apply_rope(xb, cos, sin),
                      dict(atol=1e-12, rtol=0), positions=torch.arange(3))
    print("apply_rope([1, 2, 3, 4], angles [pi/2, 0, pi/2, 0]) = [-3, 2, 1, 4]")
    passed("apply_rope (worked example)")


def apply_rope(fn: Callable) -> None:
    """Hidden check: transformers' apply_rotary_pos_emb with LlamaRotaryEmbedding's tables on tiny
    random configs and positions (offsets, another base), float64 tables, one vector; and the
    relative-position property through the learner's rotation."""
    gen = rng()
    _, _, apply_hf = _llama()
    for theta in (10_000.0, float(gen.choice([500.0, 2000.0]))):
        d = int(gen.choice([8, 16, 32]))
        B, h, T = 2, 2, int(gen.integers(4, 12))
        start = int(gen.integers(0, 100))
        position_ids = (torch.arange(T) + start)[None].expand(B, T)
        q = torch.tensor(gen.normal(size=(B, h, T, d)), dtype=torch.float32)
        k = torch.tensor(gen.normal(size=(B, h, T, d)), dtype=torch.float32)
        cos_hf, sin_hf = _llama_cos_sin(d, theta, position_ids)
        q_hf, k_hf = apply_hf(q, k, cos_hf, sin_hf)
        label = f"x of shape {(B, h, T, d)}, Llama tables (B, 1, T, d) for positions {start}..{start + T - 1}, " \
                f"rope_theta={theta:g}"
        for x, expected in ((q, q_hf), (k, k_hf)):
            _check_apply_case(fn, x, cos_hf[:, None], sin_hf[:, None], label, expected, dict(atol=1e-5, rtol=1e-5),
                              positions=position_ids[0], base=theta)
    T, d = int(gen.integers(5, 20)), 2 * int(gen.integers(2, 16))
    cos, sin = ref.rope_cos_sin(T, d, dtype=torch.float64)
    x = torch.tensor(gen.normal(size=(3, T, d)))
    _check_apply_case(fn, x, cos, sin, f"x of shape {(3, T, d)} in float64, tables {(T, d)}",
                      ref.apply_rope(x, cos, sin), dict(atol=1e-10, rtol=0), positions=torch.arange(T))
    p = int(gen.integers(0, T))
    _check_apply_case(fn, x[0, 0], cos[p], sin[p], f"one vector of length {d}, the row of position {p}",
                      ref.apply_rope(x[0, 0], cos[p], sin[p]), dict(atol=1e-10, rtol=0))
    # the relative-position property, through the learner's rotation
    qv, kv = x[1, 0], x[2, 0]
    rot = lambda v, m: call(fn, v, cos[m], sin[m], what="apply_rope", label_errors=False)  # noqa: E731
    base_score = float(rot(qv, 3) @ rot(kv, 0))
    for m in range(3, T):
        score = float(rot(qv, m) @ rot(kv, m - 3))
        if abs(score - base_score) > 1e-8 * max(1.0, abs(base_score)):
            fail(f"with your apply_rope, q at position {m} . k at position {m - 3} = {score:.6g}, but at "
                 f"positions 3 and 0 it is {base_score:.6g}: the score should depend on the distance only.")
    passed("apply_rope")


# ----------------------------------------------- 7. interleaved_to_halves ---

def _check_ih_case(fn: Callable, x: torch.Tensor) -> None:
    what = f"interleaved_to_halves(x of shape {tuple(x.shape)})"
    before = x.clone()
    result = call(fn, x, what=what, forbid=forbidden(ref, "interleaved_to_halves", "halves_to_interleaved"))
    if not torch.equal(x, before):
        fail(f"{what} changed its input.", "build a new tensor (torch.cat of two slices); do not assign into x.")
    if not isinstance(result, torch.Tensor):
        fail(f"{what} returned {type(result).__name__}; return a torch tensor.")
    if tuple(result.shape) != tuple(x.shape):
        fail(f"{what} returned shape {tuple(result.shape)}, expected {tuple(x.shape)}.", HINT_IH_AXIS)
    mistakes = [(HINT_IH_INVERSE, ref.halves_to_interleaved(x)),
                (HINT_IH_ODD_FIRST, torch.cat([x[..., 1::2], x[..., 0::2]], dim=-1)),
                (HINT_IH_SAME, x)]
    if x.ndim > 1 and x.shape[0] % 2 == 0 and x.shape[0] > 2:
        mistakes.append((HINT_IH_AXIS, torch.cat([x[0::2], x[1::2]], dim=0)))
    expect_close(result, ref.interleaved_to_halves(x), what, atol=0, rtol=0, mistakes=mistakes,
                 hint="[x_0, x_2, ..., x_{d-2}, x_1, x_3, ..., x_{d-1}] along the last axis.")


def interleaved_to_halves_example(fn: Callable) -> None:
    """Visible check: [0, 1, 2, 3, 4, 5, 6, 7] -> [0, 2, 4, 6, 1, 3, 5, 7]."""
    x = torch.arange(8.0)
    with worked_example("x = [0, 1, 2, 3, 4, 5, 6, 7] becomes [0, 2, 4, 6, 1, 3, 5, 7] (evens, then odds)."):
        _check_ih_case(fn, x)
    print("interleaved_to_halves([0, ..., 7]) = [0, 2, 4, 6, 1, 3, 5, 7]")
    passed("interleaved_to_halves (worked example)")


def interleaved_to_halves(fn: Callable) -> None:
    """Hidden check: random tensors with 1 to 4 axes and widths 8 to 64, and the identity
    RoPE_halves(pi x) = pi RoPE_interleaved(x) through the learner's permutation."""
    gen = rng()
    for shape in ((12,), (4, 16), (2, 3, 6, 8), (6, 64)):
        _check_ih_case(fn, torch.tensor(gen.normal(size=shape)))
    T, d = 7, 2 * int(gen.integers(4, 16))
    x = torch.tensor(gen.normal(size=(2, T, d)))
    cos, sin = ref.rope_cos_sin(T, d, dtype=torch.float64)
    pi = lambda v: call(fn, v, what="interleaved_to_halves", label_errors=False)  # noqa: E731
    expect_close(ref.apply_rope(pi(x), cos, sin), pi(ref.apply_rope_interleaved(x, T)),
                 "RoPE_halves(interleaved_to_halves(x)) against interleaved_to_halves(RoPE_interleaved(x))",
                 atol=1e-10, rtol=0)
    passed("interleaved_to_halves")
