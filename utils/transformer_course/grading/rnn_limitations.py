"""Checks for notebook 01 (``01_rnn_limitations``).

Each exercise has a visible ``<name>_example(fn)`` check (a small worked
example the learner can reason about) and a hidden ``<name>(fn)`` check (fresh
random inputs, edge cases, and the real oracle: ``torch.nn.RNN`` with copied
weights, autograd, the reference recall generator).

An answer that calls the matching reference in this package fails (see
``core.call``'s ``forbid``).  When jacobian_norms or train_recall_rnn fails and
the learner's rnn_forward / make_recall_batch that it uses fails its own check,
the message names that earlier exercise instead (``core.blame_earlier``).
"""
from __future__ import annotations

import copy
import time
from typing import Any, Callable

import numpy as np
import torch

from .. import data as _data
from .. import rnn as _ref
from .core import (CheckFailed, Earlier, as_numpy, blame_earlier, call, expect, expect_close, expect_finite,
                   expect_shape, fail, forbidden, passed, rng)

__all__ = [
    "rnn_forward_example", "rnn_forward",
    "jacobian_norms_example", "jacobian_norms",
    "make_recall_batch_example", "make_recall_batch",
    "train_recall_rnn_example", "train_recall_rnn",
    "measure_time_example", "measure_time",
]

# what each exercise asks for, in this package: an answer that calls one of these fails (``call``'s ``forbid``)
_FORWARD_REFS = forbidden(_ref, "rnn_forward", "rnn_forward_torch", "torch_rnn_from_weights")
_JACOBIAN_REFS = forbidden(_ref, "jacobian_norms", "jacobian_norms_analytic")
_BATCH_REFS = forbidden(_data, "make_recall_batch")
_TRAIN_REFS = forbidden(_ref, "train_recall_rnn")
_TIMING_REFS = forbidden(_ref, "measure_time")


def _explain_shapes(exc: Exception) -> str | None:
    text = str(exc)
    if any(w in text for w in ("matmul", "core dimension", "not aligned", "shapes", "broadcast")):
        return ("a shape mismatch: x_t is (B, d_in) and h is (B, d_h); W_xh is (d_h, d_in) and W_hh is "
                "(d_h, d_h), as in torch.nn.RNN, so the step is x_t @ W_xh.T + h @ W_hh.T + b. "
                "W_xh applied transposed?")
    return None


def _pair(result: Any, what: str, names: str) -> tuple[Any, Any]:
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        fail(f"{what} should return a pair {names}, got {type(result).__name__}"
             + (f" of length {len(result)}" if isinstance(result, (tuple, list)) else "") + ".",
             f"End with `return {names.strip('()')}`.")
    return result[0], result[1]


# --------------------------------------------------------------------------- 1. rnn_forward
def _forward_mistakes(x, h0, W_xh, W_hh, b) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """What typical wrong forward passes return on these inputs: hint -> (hs, h_last)."""
    B, T, _ = x.shape

    def run(step, record_before=False):
        h, hs = h0, []
        for t in range(T):
            if record_before:
                hs.append(h)
            h = step(x[:, t], h)
            if not record_before:
                hs.append(h)
        return np.stack(hs, axis=1), h

    out = {
        "tanh missing? h_t = tanh(W_xh x_t + W_hh h_{t-1} + b): the nonlinearity wraps the whole sum.":
            run(lambda xt, h: xt @ W_xh.T + h @ W_hh.T + b),
        "hidden state not carried between steps? Every step must use the previous step's state "
        "h_{t-1}, not h0.":
            run(lambda xt, h: np.tanh(xt @ W_xh.T + h0 @ W_hh.T + b)),
        "W_hh applied transposed? For row vectors h (B, d_h), W_hh h_{t-1} is `h @ W_hh.T`.":
            run(lambda xt, h: np.tanh(xt @ W_xh.T + h @ W_hh + b)),
        "bias b missing?":
            run(lambda xt, h: np.tanh(xt @ W_xh.T + h @ W_hh.T)),
        "tanh applied to the input term only? The recurrent term W_hh h_{t-1} goes inside the tanh too.":
            run(lambda xt, h: np.tanh(xt @ W_xh.T + b) + h @ W_hh.T),
        "hs is shifted by one step: hs[:, t] must be the state *after* reading x[:, t] "
        "(h_1 .. h_T), not the state before it (h_0 .. h_{T-1}).":
            run(lambda xt, h: np.tanh(xt @ W_xh.T + h @ W_hh.T + b), record_before=True),
    }
    if W_xh.shape[0] == W_xh.shape[1]:
        out["W_xh applied transposed? For row vectors x_t (B, d_in), W_xh x_t is `x_t @ W_xh.T`."] = \
            run(lambda xt, h: np.tanh(xt @ W_xh + h @ W_hh.T + b))
    return out


def _check_forward_case(fn, x, h0, W_xh, W_hh, b, label: str, oracle: str) -> None:
    B, T, _ = x.shape
    d_h = W_hh.shape[0]
    if oracle == "torch":
        net = _ref.torch_rnn_from_weights(W_xh, W_hh, b)
        with torch.no_grad():
            out, h_n = net(torch.from_numpy(x), torch.from_numpy(h0)[None])
        hs_exp, h_last_exp = out.numpy(), h_n[0].numpy()
    else:
        hs_exp, h_last_exp = _ref.rnn_forward(x, h0, W_xh, W_hh, b)
    args = [a.copy() for a in (x, h0, W_xh, W_hh, b)]
    result = call(fn, *args, what=f"rnn_forward {label}", forbid=_FORWARD_REFS, explain=_explain_shapes)
    hs, h_last = _pair(result, "rnn_forward", "(hs, h_last)")
    what = f"hs {label}"
    if isinstance(hs, (list, tuple)):
        fail(f"{what} is a Python {type(hs).__name__} of {len(hs)} arrays, not one array of shape {(B, T, d_h)}.",
             "you returned a list; use np.stack(states, axis=1) to make it (batch, time, hidden).")
    hs_arr = as_numpy(hs, what)
    if hs_arr.shape == (B, T + 1, d_h):
        fail(f"{what} has shape {hs_arr.shape}, expected {(B, T, d_h)}: one state too many.",
             "return the T states h_1..h_T; don't include h0.")
    expect_shape(hs, (B, T, d_h), what, "hs holds every hidden state: (batch, time, hidden) -- batch first.")
    mistakes = _forward_mistakes(x, h0, W_xh, W_hh, b)
    expect_finite(hs, what)
    expect_close(hs, hs_exp, what, atol=1e-5, rtol=1e-5, mistakes={k: v[0] for k, v in mistakes.items()},
                 hint="compare one step by hand: h_1 = tanh(x[:, 0] @ W_xh.T + h0 @ W_hh.T + b).")
    expect_shape(h_last, (B, d_h), f"h_last {label}", "h_last is the final state only: (batch, hidden).")
    expect_close(h_last, h_last_exp, f"h_last {label}", atol=1e-5, rtol=1e-5,
                 mistakes={"h_last is the first state, not the last.": hs_exp[:, 0],
                           "h_last is the initial state h0: return the state after the last step.": h0},
                 hint="h_last should equal hs[:, -1].")


def _worked_forward_case():
    # one input unit, one hidden unit: h_t = tanh(1.0 * x_t + 0.5 * h_{t-1})
    x = np.array([[[1.0], [0.0], [0.0]]])
    return x, np.zeros((1, 1)), np.array([[1.0]]), np.array([[0.5]]), np.zeros(1)


def rnn_forward_example(fn: Callable) -> None:
    """Visible check: a one-unit RNN you can follow by hand, and one small random case."""
    x, h0, W_xh, W_hh, b = _worked_forward_case()
    # h_1 = tanh(1) = 0.7616, h_2 = tanh(0.5 * 0.7616) = 0.3634, h_3 = tanh(0.5 * 0.3634) = 0.1797
    _check_forward_case(fn, x, h0, W_xh, W_hh, b, "(worked example: x = [1, 0, 0], W_xh = 1, W_hh = 0.5)",
                        oracle="numpy")
    g = rng(0)
    W_xh, W_hh, b = _ref.random_rnn_weights(3, 4, 0.9, g)
    _check_forward_case(fn, g.normal(size=(2, 5, 3)), g.normal(size=(2, 4)), W_xh, W_hh, b,
                        "(B=2, T=5, d_in=3, d_h=4)", oracle="numpy")
    passed("rnn_forward (worked example)")


def rnn_forward(fn: Callable) -> None:
    """Hidden check: random shapes and weights against ``torch.nn.RNN`` with copied weights."""
    g = rng()  # fresh inputs every grading run: nothing to tailor an answer to
    cases = [  # (B, T, d_in, d_h, spectral radius, input scale)
        (3, 7, 4, 5, 0.9, 1.0),
        (1, 1, 2, 3, 1.0, 1.0),     # a single step
        (4, 12, 3, 1, 1.5, 1.0),    # one hidden unit
        (2, 9, 6, 6, 2.5, 3.0),     # square W_xh, saturating tanh
        (5, 20, 1, 8, 1.1, 0.5),
    ]
    for B, T, d_in, d_h, radius, scale in cases:
        W_xh, W_hh, b = _ref.random_rnn_weights(d_in, d_h, radius, g)
        x = scale * g.normal(size=(B, T, d_in))
        h0 = 0.5 * g.normal(size=(B, d_h))
        _check_forward_case(fn, x, h0, W_xh, W_hh, b, f"(B={B}, T={T}, d_in={d_in}, d_h={d_h})", oracle="torch")
    passed("rnn_forward (hidden: torch.nn.RNN with copied weights)")


# --------------------------------------------------------------------------- 2. jacobian_norms
def _jacobian_variants(x, h0, W_xh, W_hh, b) -> dict[str, np.ndarray]:
    """Norms that typical wrong Jacobian computations give: hint -> (T+1,) array."""
    hs, _ = _ref.rnn_forward(x[None], h0[None], W_xh, W_hh, b)
    states = np.concatenate([h0[None], hs[0]])  # states[s] = h_s, s = 0..T
    T, d_h = x.shape[0], W_hh.shape[0]

    def chain(local, order="right", norm=None):
        J, norms = np.eye(d_h), [np.linalg.norm(np.eye(d_h), norm)]
        for s in range(T, 0, -1):
            J = J @ local(s) if order == "right" else local(s) @ J
            norms.append(np.linalg.norm(J, norm))
        return np.array(norms)

    correct = lambda s: (1 - states[s] ** 2)[:, None] * W_hh  # noqa: E731
    out = {
        "tanh derivative missing? d h_s / d h_{s-1} = diag(1 - h_s^2) W_hh, not W_hh alone.":
            chain(lambda s: W_hh),
        "tanh derivative taken at the wrong state? For h_s = tanh(a_s) it is 1 - h_s^2, using h_s itself, "
        "not h_{s-1}.":
            chain(lambda s: (1 - states[s - 1] ** 2)[:, None] * W_hh),
        "tanh'(a) is 1 - tanh(a)^2: is the square missing?":
            chain(lambda s: (1 - states[s])[:, None] * W_hh),
        "diag(1 - h_s^2) multiplied on the wrong side of W_hh? It scales the rows: diag(1 - h_s^2) @ W_hh.":
            chain(lambda s: W_hh * (1 - states[s] ** 2)[None, :]),
        "W_hh transposed in the chain? d h_s / d h_{s-1} = diag(1 - h_s^2) W_hh.":
            chain(lambda s: (1 - states[s] ** 2)[:, None] * W_hh.T),
        "Jacobians multiplied in the wrong order, or each factor transposed? d h_T / d h_{T-d} = "
        "J_T J_{T-1} ... J_{T-d+1} with J_s = diag(1 - h_s^2) W_hh: the newest factor sits on the left.":
            chain(correct, order="left"),
        "spectral norm (ord=2) instead of the Frobenius norm? Use np.linalg.norm(J) / torch.linalg.norm(J) "
        "with no `ord`.":
            chain(correct, norm=2),
        "indexed by time instead of distance? norms[d] is ||d h_T / d h_{T-d}||, so norms[0] = ||I|| = "
        "sqrt(d_h).":
            chain(correct)[::-1],
    }
    # the common autograd slip: h_T.sum().backward() gives the column sums of the Jacobian
    sums, J = [np.linalg.norm(np.ones(d_h))], np.eye(d_h)
    for s in range(T, 0, -1):
        J = J @ correct(s)
        sums.append(np.linalg.norm(J.sum(axis=0)))
    out["h_T.sum().backward() gives the sum of the Jacobian's rows, not the Jacobian. Build the full "
        "d_h x d_h matrix (one backward pass per component of h_T, or torch.autograd.functional.jacobian)."] = \
        np.array(sums)
    return out


def _check_jacobian_case(fn, x, h0, W_xh, W_hh, b, label: str) -> None:
    T = x.shape[0]
    expected = _ref.jacobian_norms(x, h0, W_xh, W_hh, b)  # autograd, float64
    args = [np.array(a, dtype=np.float64) for a in (x, h0, W_xh, W_hh, b)]
    out = call(fn, *args, what="jacobian_norms", forbid=_JACOBIAN_REFS)
    what = f"jacobian_norms {label}"
    if isinstance(out, (list, tuple)):  # a list of floats or 0-d tensors
        out = [float(v) for v in out]
    arr = as_numpy(out, what).astype(np.float64)
    expect_shape(arr, (T + 1,), what, "return T+1 numbers: d = 0 (h_T itself, norm sqrt(d_h)) up to "
                 "d = T (the initial state h0).")
    expect_finite(arr, what)
    # Single precision is a fair choice (torch.tensor(..., dtype=torch.float32)), but where tanh saturates
    # 1 - h^2 keeps few float32 digits and a norm can be off by 100%. Allow each norm ten times the drift
    # of the reference run in float32 (a correct float32 answer drifts at most ~2x as far; the listed
    # mistakes are off by O(1) in some case whatever the draw).
    drift32 = np.abs(_ref.jacobian_norms_analytic(x, h0, W_xh, W_hh, b, dtype=np.float32) - expected)
    if np.all(np.abs(arr - expected) <= 1e-12 + np.maximum(1e-4 * np.abs(expected), 10 * drift32)):
        return
    # norms shrink to ~1e-10 and grow to ~1e4; compare relatively
    expect_close(arr, expected, what, atol=1e-12, rtol=1e-4, mistakes=_jacobian_variants(x, h0, W_xh, W_hh, b),
                 hint="the chain rule gives d h_T / d h_{T-d} = prod over s = T .. T-d+1 of diag(1 - h_s^2) W_hh; "
                      "compare with torch.autograd.functional.jacobian on a short sequence.")


def jacobian_norms_example(fn: Callable) -> None:
    """Visible check: zero inputs with one hidden unit (norms = 0.5^d), then a small random case."""
    # with x = 0, h0 = 0, b = 0 every state is 0, tanh' = 1, and d h_T / d h_{T-d} = 0.5^d
    with blame_earlier(fn, "jacobian_norms", Earlier("rnn_forward", "exercise 1", rnn_forward_example)):
        _check_jacobian_case(fn, np.zeros((3, 1)), np.zeros(1), np.array([[1.0]]), np.array([[0.5]]), np.zeros(1),
                             "(worked example: zero input, W_hh = 0.5, expected [1, 0.5, 0.25, 0.125])")
        g = rng(1)
        W_xh, W_hh, b = _ref.random_rnn_weights(2, 3, 1.0, g)
        _check_jacobian_case(fn, g.normal(size=(4, 2)), 0.5 * g.normal(size=3), W_xh, W_hh, b,
                             "(T=4, d_in=2, d_h=3, random weights)")
    passed("jacobian_norms (worked example)")


def jacobian_norms(fn: Callable) -> None:
    """Hidden check: random weights at several spectral radii against autograd."""
    g = rng()  # fresh weights every grading run
    with blame_earlier(fn, "jacobian_norms", Earlier("rnn_forward", "exercise 1", rnn_forward_example)):
        for T, d_in, d_h, radius in [(6, 3, 4, 0.5), (1, 2, 2, 1.0), (12, 2, 5, 1.0), (20, 4, 6, 1.8),
                                     (9, 1, 1, 3.0), (15, 3, 8, 0.9)]:
            W_xh, W_hh, b = _ref.random_rnn_weights(d_in, d_h, radius, g)
            _check_jacobian_case(fn, g.normal(size=(T, d_in)), 0.5 * g.normal(size=d_h), W_xh, W_hh, b,
                                 f"(T={T}, d_h={d_h}, spectral radius {radius})")
    passed("jacobian_norms (hidden: autograd on random weights)")


# --------------------------------------------------------------------------- 3. make_recall_batch
_PER_VALUE_HINT = ("draw one value per sequence/position (size=batch_size for the labels, "
                   "size=(batch_size, distance+1) for the tokens), not one draw shared by the whole batch.")


def _recall_batch(fn, batch_size, distance, vocab, seed, label):
    result = call(fn, batch_size, distance, vocab, np.random.default_rng(seed), what="make_recall_batch",
                  forbid=_BATCH_REFS)
    x, y = _pair(result, "make_recall_batch", "(x, y)")
    x_arr, y_arr = as_numpy(x, f"x {label}"), as_numpy(y, f"y {label}")
    return x_arr, y_arr


def _check_recall_structure(x, y, batch_size, distance, vocab, label) -> None:
    L = distance + 1
    if x.ndim == 2 and x.shape[0] == batch_size and x.shape[1] != L:
        fail(f"x {label} has {x.shape[1]} positions, expected {L}.",
             "sequence length is distance+1: the symbol, distance-1 noise tokens, then the query, so the query "
             "sits `distance` steps after the symbol.")
    expect_shape(x, (batch_size, L), f"x {label}", "x is (batch_size, distance + 1).")
    expect_shape(y, (batch_size,), f"y {label}", "y holds one label per sequence: (batch_size,).")
    for name, arr in (("x", x), ("y", y)):
        expect(arr.dtype == np.int64, f"{name} {label} has dtype {arr.dtype}, expected int64.",
               "token ids are integers: finish with `.astype(np.int64)` (torch's embeddings and "
               "cross-entropy want int64).")
    expect(np.all((y >= 0) & (y < vocab.n_symbols)), f"y {label} has labels outside 0..{vocab.n_symbols - 1}.",
           "labels are symbol ids: rng.integers(0, vocab.n_symbols) -- use the vocab you are given, "
           "not the default's numbers.")
    bad = np.flatnonzero(x[:, 0] != y)
    if bad.size:
        fail(f"labels do not match the first token (e.g. sequence {bad[0]}: x[{bad[0]}, 0] = {x[bad[0], 0]}, "
             f"y[{bad[0]}] = {y[bad[0]]}).",
             "the label is the symbol at position 0: set x[:, 0] = y.")
    bad = np.flatnonzero(x[:, -1] != vocab.query)
    if bad.size:
        fail(f"the last token of sequence {bad[0]} is {x[bad[0], -1]}, not the query marker {vocab.query}.",
             "the query comes at the end: x[:, -1] = vocab.query (use the vocab you are given).")
    noise = x[:, 1:-1]
    lo, hi = vocab.n_symbols, vocab.n_symbols + vocab.n_noise
    if noise.size and not np.all((noise >= lo) & (noise < hi)):
        v = noise[(noise < lo) | (noise >= hi)][0]
        fail(f"x {label} has noise token {v} between the symbol and the query; noise ids are {lo}..{hi - 1}.",
             "noise must not reuse symbol ids (the answer would be ambiguous) nor the query id: "
             "rng.integers(vocab.n_symbols, vocab.n_symbols + vocab.n_noise).")


def _expect_uniform(values: np.ndarray, lo: int, hi: int, what: str, how: str) -> None:
    rows = values.reshape(values.shape[0], -1)
    if rows.shape[0] > 1 and np.all(rows == rows[0]):
        fail(f"{what}: all {rows.shape[0]} sequences got the same value(s) {rows[0][:8].tolist()}.", _PER_VALUE_HINT)
    counts = np.bincount(values.ravel() - lo, minlength=hi - lo)
    missing = np.flatnonzero(counts == 0)
    if missing.size:
        if missing.tolist() == [hi - lo - 1]:  # only the top id: the classic off-by-one
            hint = f"{how}: rng.integers(low, high) never returns `high` itself, so high must be {hi}."
        else:
            hint = _PER_VALUE_HINT
        fail(f"{what}: id {lo + missing[-1]} never appears in {values.size} draws (ids {lo}..{hi - 1} should all "
             "appear).", hint)
    expected = values.size / (hi - lo)
    worst = int(np.argmax(np.abs(counts - expected)))
    # 6 standard deviations: a fair generator fails this about once in 10^8 runs
    expect(abs(counts[worst] - expected) <= 6 * np.sqrt(expected) + 1,
           f"{what} are not roughly uniform: id {lo + worst} appears {counts[worst]} times in {values.size} draws, "
           f"expected about {expected:.0f}.",
           f"{how} with rng.integers, uniformly, one value per sequence/position.")


def _check_recall_uniformity(fn, B, d, vocab, seed) -> None:
    label = f"(batch_size={B}, distance={d}, vocab={vocab})"
    x, y = _recall_batch(fn, B, d, vocab, seed, label)
    _check_recall_structure(x, y, B, d, vocab, label)
    _expect_uniform(y, 0, vocab.n_symbols, f"the labels {label}", "draw each label")
    if d > 1:
        _expect_uniform(x[:, 1:-1], vocab.n_symbols, vocab.n_symbols + vocab.n_noise,
                        f"the noise tokens {label}", "draw each noise token")


def _check_recall_seeding(fn, seeds: tuple[int, int]) -> None:
    default = _data.RecallVocab()
    label = "(batch_size=64, distance=8)"
    x1, y1 = _recall_batch(fn, 64, 8, default, seeds[0], label)
    x2, y2 = _recall_batch(fn, 64, 8, default, seeds[0], label)
    expect(np.array_equal(x1, x2) and np.array_equal(y1, y2),
           "two calls with generators seeded the same way gave different batches.",
           "draw every random number from the `rng` argument (not np.random.* or a new default_rng()).")
    x3, y3 = _recall_batch(fn, 64, 8, default, seeds[1], label)
    expect(not (np.array_equal(x1, x3) and np.array_equal(y1, y3)),
           "different rng seeds gave the same batch.",
           "draw every random number from the `rng` argument; do not re-seed inside the function.")


def _check_recall_raises(fn) -> None:
    try:
        call(fn, 4, 0, _data.RecallVocab(), np.random.default_rng(0), what="make_recall_batch", forbid=_BATCH_REFS,
             label_errors=False)
    except CheckFailed:
        raise
    except ValueError:
        return
    except Exception as exc:  # noqa: BLE001 - anything a learner raises
        fail(f"make_recall_batch(4, distance=0) raised {type(exc).__name__}; expected ValueError.",
             "`assert` is for your own bugs; a bad argument deserves `raise ValueError(...)`."
             if isinstance(exc, AssertionError) else "for distance < 1 `raise ValueError(...)`.")
    fail("make_recall_batch(4, distance=0) did not raise ValueError.",
         "a distance below 1 has no room for the symbol before the query: `raise ValueError(...)`.")


def make_recall_batch_example(fn: Callable) -> None:
    """Visible check: a small batch, another vocabulary, 2000 sequences' statistics, seeding, distance 0."""
    vocab = _data.RecallVocab()
    x, y = _recall_batch(fn, 4, 3, vocab, 0, "(batch_size=4, distance=3)")
    _check_recall_structure(x, y, 4, 3, vocab, "(batch_size=4, distance=3)")
    print("x =\n", x, "\ny =", y)
    small = _data.RecallVocab(n_symbols=5, n_noise=3)
    label = f"(batch_size=6, distance=4, vocab={small})"
    x, y = _recall_batch(fn, 6, 4, small, 1, label)
    _check_recall_structure(x, y, 6, 4, small, label)
    _check_recall_uniformity(fn, 2000, 3, vocab, 2)  # every id should come up, about equally often
    _check_recall_seeding(fn, (7, 8))
    _check_recall_raises(fn)
    passed("make_recall_batch (structure, another vocab, 2000 sequences, seeding, distance 0)")


def make_recall_batch(fn: Callable) -> None:
    """Hidden check: structure on several sizes and vocabularies, uniformity, seeding, edge cases."""
    default = _data.RecallVocab()
    for B, d, vocab, seed in [(3000, 6, default, 11), (50, 1, default, 12), (400, 30, _data.RecallVocab(3, 5), 13),
                              (1, 4, _data.RecallVocab(2, 1), 14)]:
        label = f"(batch_size={B}, distance={d}, vocab={vocab})"
        if B >= 400:
            _check_recall_uniformity(fn, B, d, vocab, seed)
        else:
            x, y = _recall_batch(fn, B, d, vocab, seed, label)
            _check_recall_structure(x, y, B, d, vocab, label)
    # (the statistical checks above keep fixed seeds so that they cannot flake; these need not)
    s1 = int(rng().integers(1_000, 2**31))
    _check_recall_seeding(fn, (s1, s1 + 1 + int(rng().integers(0, 1_000))))
    out = call(fn, 5, 3, what="make_recall_batch", forbid=_BATCH_REFS)
    xa, ya = _pair(out, "make_recall_batch", "(x, y)")
    _check_recall_structure(as_numpy(xa), as_numpy(ya), 5, 3, default, "(with the default vocab and rng=None)")
    _check_recall_raises(fn)
    passed("make_recall_batch (hidden: sizes, vocabularies, uniformity, seeding)")


# --------------------------------------------------------------------------- 4. train_recall_rnn
_LOOP_HINT = ("create torch.optim.Adam(model.parameters(), lr=lr) once, before the loop; each step: a new batch, "
              "logits = model(x), loss = F.cross_entropy(logits, y), optimizer.zero_grad(), loss.backward(), "
              "optionally clip_grad_norm_(model.parameters(), 1.0), optimizer.step().")


class _Recorder:
    """A forward pre-hook: the input of every forward pass run with gradients on (and the parameters then)."""

    def __init__(self, snapshots: bool):
        self.snapshots = snapshots
        self.inputs: list[Any] = []
        self.params: list[dict[str, torch.Tensor]] = []

    def __call__(self, module, args, kwargs):
        if not torch.is_grad_enabled():
            return
        x = args[0] if args else next(iter(kwargs.values()), None)
        self.inputs.append(x.detach().clone() if isinstance(x, torch.Tensor) else x)
        if self.snapshots:
            self.params.append({k: v.detach().clone() for k, v in module.named_parameters()})


def _train_observed(fn, model, distance, steps, batch_size, lr, seed, snapshots=False):
    rec = _Recorder(snapshots)
    handle = model.register_forward_pre_hook(rec, with_kwargs=True)
    try:
        start = time.perf_counter()
        losses = call(fn, model, distance, steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                      what="train_recall_rnn", forbid=_TRAIN_REFS)
        seconds = time.perf_counter() - start
    finally:
        handle.remove()
    return losses, rec, seconds


def _check_batches(rec: _Recorder, steps: int, batch_size: int, distance: int, label: str) -> None:
    n = len(rec.inputs)
    if n == 0:
        fail(f"{label}: the model was never called with gradients on.",
             "each step: logits = model(x) -- call the model itself (not model.forward(x)), outside torch.no_grad().")
    if n != steps:
        fail(f"{label}: the model ran {n} training forward passes for steps={steps}.",
             "take exactly `steps` steps, each one forward pass on a fresh batch; the losses list must come from "
             "those steps (not padded, repeated or cut).")
    want, n_symbols = (batch_size, distance + 1), _data.RecallVocab().n_symbols
    for k, x in enumerate(rec.inputs):
        if not isinstance(x, torch.Tensor):
            fail(f"{label}: step {k} called the model with a {type(x).__name__}.", "pass torch.from_numpy(x).")
        if tuple(x.shape) != want:
            fail(f"{label}: step {k} fed the model a batch of shape {tuple(x.shape)}, expected {want} "
                 f"(batch_size={batch_size}, distance={distance}).",
                 "draw each step's batch with make_recall_batch(batch_size, distance, rng=rng), using the "
                 "arguments you are given.")
        if bool(((x[:, 0] < 0) | (x[:, 0] >= n_symbols)).any()):   # the labels that the losses are checked with
            fail(f"{label}: step {k} fed the model sequences whose first token is not a symbol id (0.."
                 f"{n_symbols - 1}): x[:, 0] = {x[:, 0].tolist()[:8]}.",
                 "draw each step's batch with make_recall_batch(batch_size, distance, rng=rng): the symbol to "
                 "recall comes first, and it is the label.")
    for k in range(1, n):
        if torch.equal(rec.inputs[k], rec.inputs[k - 1]):
            fail(f"{label}: step {k} trained on exactly the same batch as step {k - 1}.",
                 "make the generator once, before the loop (rng = np.random.default_rng(seed)), and draw a fresh "
                 "batch from it every step; re-seeding inside the loop repeats one batch.")


def _loss_at(scratch: torch.nn.Module, params: dict[str, torch.Tensor], x: torch.Tensor, grad: bool = False):
    """Cross-entropy of the model with ``params`` on batch ``x`` (labels: the symbol at position 0)."""
    with torch.no_grad():
        for name, p in scratch.named_parameters():
            p.copy_(params[name])
    with torch.enable_grad() if grad else torch.no_grad():
        logits = _ref.RecallRNN.forward(scratch, x)
        return logits, torch.nn.functional.cross_entropy(logits, x[:, 0])


def _check_losses(losses, rec: _Recorder, scratch, first_params, steps: int, label: str) -> np.ndarray:
    arr = as_numpy(losses, "the returned losses")
    expect(arr.ndim == 1 and arr.shape[0] == steps,
           f"{label}: returned {arr.shape[0] if arr.ndim == 1 else arr.shape} losses, expected one per step ({steps}).",
           "append loss.item() after every step and return the list.")
    arr = expect_finite(arr.astype(np.float64), "the returned losses")
    for k in range(len(rec.params) if rec.params else 1):
        params = rec.params[k] if rec.params else first_params
        x = rec.inputs[k]
        logits, ce = _loss_at(scratch, params, x)
        if np.isclose(arr[k], ce.item(), rtol=1e-4, atol=1e-6):
            continue
        y = x[:, 0]
        one_hot = torch.nn.functional.one_hot(y, logits.shape[-1]).to(logits.dtype)
        F = torch.nn.functional
        variants = {
            "softmax applied before cross_entropy? F.cross_entropy takes the raw logits and applies "
            "log-softmax itself.": F.cross_entropy(logits.softmax(-1), y),
            "MSE against one-hot labels? Classification uses F.cross_entropy(logits, y) with y the class ids.":
                F.mse_loss(logits, one_hot),
            "MSE against one-hot labels? Classification uses F.cross_entropy(logits, y) with y the class ids. ":
                F.mse_loss(logits.softmax(-1), one_hot),
            "summed instead of averaged? Keep F.cross_entropy's default reduction (the mean over the batch).":
                F.cross_entropy(logits, y, reduction="sum"),
        }
        hint = next((h.strip() for h, v in variants.items() if np.isclose(arr[k], v.item(), rtol=1e-4, atol=1e-6)),
                    "record loss.item() of each step, with loss = F.cross_entropy(logits, y): raw logits, y the "
                    "batch's labels (the symbol ids), computed before the optimizer step.")
        fail(f"{label}: losses[{k}] is {arr[k]:.6f}, but the cross-entropy of the model on the batch it was given at "
             f"step {k} is {ce.item():.6f}.", hint)
    return arr


def _simulate_updates(scratch, rec: _Recorder, lr: float, clip: float | None, mode: str) -> list[torch.Tensor]:
    """The parameter change of each step that an optimiser loop would make from the learner's own parameters.

    mode: "adam" (the right loop), "no_zero_grad" (gradients pile up), "fresh_adam" (Adam rebuilt every step).
    """
    params = list(scratch.parameters())
    names = [n for n, _ in scratch.named_parameters()]
    opt = torch.optim.Adam(params, lr=lr)
    left: list[torch.Tensor] | None = None
    deltas = []
    for k, x in enumerate(rec.inputs):
        _, loss = _loss_at(scratch, rec.params[k], x, grad=True)
        grads = list(torch.autograd.grad(loss, params))
        if mode == "no_zero_grad" and left is not None:
            grads = [g + a for g, a in zip(grads, left)]
        if clip is not None:
            total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
            coef = clip / (total + 1e-6)
            if coef < 1:
                grads = [g * coef for g in grads]
        left = grads
        if mode == "fresh_adam":
            opt = torch.optim.Adam(params, lr=lr)
        for p, g in zip(params, grads):
            p.grad = g.clone()
        opt.step()
        opt.zero_grad()
        with torch.no_grad():
            deltas.append(torch.cat([(p - rec.params[k][n]).flatten() for p, n in zip(params, names)]))
    return deltas


def _check_updates(rec: _Recorder, model, scratch, lr: float, label: str) -> None:
    """Compare the learner's parameter change at each step with what Adam(lr) makes of the same gradients."""
    names = [n for n, _ in scratch.named_parameters()]
    after = rec.params[1:] + [{n: p.detach() for n, p in model.named_parameters()}]
    actual = [torch.cat([(after[k][n] - rec.params[k][n]).flatten() for n in names]) for k in range(len(rec.inputs))]

    def rel(a, b):
        return (torch.linalg.vector_norm(a - b) / (torch.linalg.vector_norm(b) + 1e-12)).item()

    def agrees(mode):
        return any(all(rel(a, s) < 1e-2 for a, s in zip(actual, _simulate_updates(scratch, rec, lr, clip, mode)))
                   for clip in (None, 1.0))

    if agrees("adam"):
        return
    # the first step of Adam moves every weight with a nonzero gradient by lr (up to sign), whatever the scale
    _, loss = _loss_at(scratch, rec.params[0], rec.inputs[0], grad=True)
    g0 = torch.cat([g.flatten() for g in torch.autograd.grad(loss, list(scratch.parameters()))])
    moved = actual[0][g0.abs() > 1e-6].abs()
    size = float(moved.median()) if moved.numel() else 0.0
    expected_first = [s[0] for s in (_simulate_updates(scratch, rec, lr, c, "adam") for c in (None, 1.0))]
    if all(rel(actual[0], s) >= 1e-2 for s in expected_first):
        if size == 0.0:
            hint = "call optimizer.step() after loss.backward() in every step."
        elif np.isclose(size, 1e-3, rtol=0.05) and not np.isclose(lr, 1e-3):
            hint = "the learning rate looks like Adam's default 1e-3: pass lr=lr to torch.optim.Adam."
        else:
            hint = (f"Adam's first step moves every weight that has a gradient by about lr = {lr:g}; yours moved them "
                    f"by {size:.3g} (median). Is the optimizer Adam, with lr=lr? " + _LOOP_HINT)
        fail(f"{label}: the first training step changed the weights differently from Adam with lr={lr:g}.", hint)
    if agrees("no_zero_grad"):
        fail(f"{label}: from the second step on, the weight changes are those of gradients that pile up "
             "across steps.", "call optimizer.zero_grad() every step, before loss.backward() (backward() adds to .grad).")
    if agrees("fresh_adam"):
        fail(f"{label}: every step looks like Adam's first step.",
             "create the optimizer once, before the loop: Adam keeps running averages of the gradients between steps.")
    fail(f"{label}: the weight changes after the first step do not match Adam with lr={lr:g} on your batches.",
         _LOOP_HINT)


def _check_training(fn, distance: int, steps: int, model_seed: int, train_seed: int, eval_seed: int,
                    d_hidden: int, label: str, probe: dict[str, Any]) -> None:
    torch.manual_seed(model_seed)
    model = _ref.RecallRNN(d_hidden=d_hidden)
    initial = copy.deepcopy(model)
    scratch = copy.deepcopy(model)
    first_params = {k: v.detach().clone() for k, v in model.named_parameters()}

    # --- a few observed steps: batches, seeding, losses, and the optimiser's parameter updates
    p_steps, p_batch, p_lr, p_seed = probe["steps"], probe["batch_size"], probe["lr"], probe["seed"]
    p_label = (f"train_recall_rnn(model, distance={distance}, steps={p_steps}, batch_size={p_batch}, lr={p_lr:g}, "
               f"seed={p_seed})")
    runs = []
    for seed in (p_seed, p_seed, p_seed + 1):
        m = copy.deepcopy(initial)
        losses, rec, _ = _train_observed(fn, m, distance, p_steps, p_batch, p_lr, seed, snapshots=True)
        _check_batches(rec, p_steps, p_batch, distance, p_label)
        runs.append((m, losses, rec))
    (m, losses, rec), (_, _, rec_same), (_, _, rec_other) = runs
    expect(all(torch.equal(a, b) for a, b in zip(rec.inputs, rec_same.inputs)),
           f"{p_label}: two runs with the same seed trained on different batches.",
           "draw the data from rng = np.random.default_rng(seed), made once before the loop and passed to "
           "make_recall_batch (not np.random.* or default_rng() without the seed).")
    expect(not all(torch.equal(a, b) for a, b in zip(rec.inputs, rec_other.inputs)),
           f"{p_label}: runs with seeds {p_seed} and {p_seed + 1} trained on the same batches.",
           "use the `seed` argument: rng = np.random.default_rng(seed), not a fixed seed.")
    _check_losses(losses, rec, scratch, first_params, p_steps, p_label)
    _check_updates(rec, m, scratch, p_lr, p_label)

    # --- a full run: the model must learn the task
    losses, rec, seconds = _train_observed(fn, model, distance, steps, 64, 1e-2, train_seed)
    changed = any(not torch.equal(first_params[k], v) for k, v in model.named_parameters())
    expect(changed, f"{label}: the model's parameters did not change during training.",
           "train the model you are given, in place: build the optimizer over model.parameters() and call "
           "optimizer.step() (do not create a new model).")
    _check_batches(rec, steps, 64, distance, label)
    arr = _check_losses(losses, rec, scratch, first_params, steps, label)
    # the class's own forward, so that a patched instance cannot answer in the model's place
    acc = _ref.recall_accuracy(model, distance, n=1000, seed=eval_seed,
                               forward=lambda x: _ref.RecallRNN.forward(model, x))
    chance = 1 / _data.RecallVocab().n_symbols
    expect(acc >= 0.9,
           f"{label}: accuracy on 1000 fresh sequences is {acc:.3f}; at this short distance a trained RNN "
           f"reaches at least 0.9 (chance is {chance:.3f}). Training took {seconds:.1f} s.",
           _LOOP_HINT)
    k = max(1, steps // 10)
    expect(arr[-k:].mean() < arr[:k].mean(),
           f"{label}: the returned losses do not go down (first {k} average {arr[:k].mean():.3f}, "
           f"last {k} average {arr[-k:].mean():.3f}).",
           "return the training loss of each step, in order.")


def train_recall_rnn_example(fn: Callable) -> None:
    """Visible check: 3 observed steps (batches, seeding, losses, Adam's updates), then 200 steps at distance 2.

    The observed steps use a pre-hook on the model to record every batch it is given and its parameters, so the
    check sees what the loop does: `steps` forward passes of `batch_size` sequences, fresh batches that depend on
    `seed` only, the cross-entropy of each step, and weight changes equal to those of Adam(lr) on those batches.
    """
    with blame_earlier(fn, "train_recall_rnn", Earlier("make_recall_batch", "exercise 3", make_recall_batch_example)):
        _check_training(fn, distance=2, steps=200, model_seed=0, train_seed=0, eval_seed=1, d_hidden=32,
                        label="distance 2, 200 steps",
                        probe={"steps": 3, "batch_size": 16, "lr": 3e-3, "seed": 5})
    passed("train_recall_rnn (distance 2)")


def train_recall_rnn(fn: Callable) -> None:
    """Hidden check: another model size, other probe settings and fresh seeds, evaluated by the reference generator."""
    with blame_earlier(fn, "train_recall_rnn", Earlier("make_recall_batch", "exercise 3", make_recall_batch_example)):
        _check_training(fn, distance=4, steps=200, model_seed=31_337, train_seed=2_024,
                        eval_seed=int(rng().integers(0, 2**31)),
                        d_hidden=24, label="distance 4, 200 steps, d_hidden 24",
                        probe={"steps": 4, "batch_size": 12, "lr": 5e-3, "seed": 4_242})
    passed("train_recall_rnn (hidden: fresh model and data)")


# --------------------------------------------------------------------------- 5. measure_time
class _FakeWork:
    """A stand-in for a forward pass: ``fake(L)`` sleeps a known, per-call pattern and records how long it took."""

    def __init__(self, pattern_ms: list[float]):
        self.pattern_ms = pattern_ms
        self.durations: dict[int, list[float]] = {}

    def __call__(self, L: int) -> None:
        start = time.perf_counter()
        calls = self.durations.setdefault(int(L), [])
        time.sleep(L * self.pattern_ms[len(calls) % len(self.pattern_ms)] / 1000)
        calls.append(time.perf_counter() - start)


def _check_timing(fn, lengths: list[int], repeats: int, pattern_ms: list[float], label: str) -> None:
    fake = _FakeWork(pattern_ms)
    out = call(fn, fake, list(lengths), repeats, what="measure_time", forbid=_TIMING_REFS)
    for L in lengths:
        n = len(fake.durations.get(L, []))
        expect(n == repeats, f"{label}: fn({L}) was called {n} times, expected repeats = {repeats}.",
               "call fn(length) exactly `repeats` times for each length (no extra warm-up call).")
    arr = expect_shape(as_numpy(out, "measure_time's result").astype(np.float64), (len(lengths),),
                       f"measure_time's result {label}", "return one number per length, in the order of `lengths`.")
    d = {L: np.array(fake.durations[L]) for L in lengths}
    median = np.array([np.median(d[L]) for L in lengths])
    mistakes = {
        "the mean instead of the median? One slow call drags the mean up; the median ignores it.":
            np.array([d[L].mean() for L in lengths]),
        "the total time instead of the median of the repeats?": np.array([d[L].sum() for L in lengths]),
        "the fastest call (min) instead of the median?": np.array([d[L].min() for L in lengths]),
        "the slowest call (max) instead of the median?": np.array([d[L].max() for L in lengths]),
        "milliseconds instead of seconds? Return seconds (time.perf_counter() differences).": 1000 * median,
    }
    # 2 ms: what a loaded 2-core machine adds between the learner's clock and the fake's (1 ms failed once
    # in a full parallel suite); every mistake above is still off by 3 ms or more at the longer lengths
    expect_close(arr, median, f"measure_time's result {label}", atol=2e-3, rtol=0.05, mistakes=mistakes,
                 hint="time each call with time.perf_counter() and take the median over the repeats "
                      "(np.median or statistics.median).")


def measure_time_example(fn: Callable) -> None:
    """Visible check: a fake forward pass whose calls take 3L, L and 10L ms: only the median gives 3L ms."""
    # mean 4.7L ms, min L ms, max 10L ms, total 14L ms: each is off by at least 1.6 ms at L = 1
    _check_timing(fn, [1, 2, 3], 3, [3.0, 1.0, 10.0],
                  "(fake fn whose 3 calls take 3L, L and 10L ms; lengths [1, 2, 3], repeats 3)")
    passed("measure_time (fake forward pass)")


def measure_time(fn: Callable) -> None:
    """Hidden check: calls of uneven length (one slow outlier per length), unsorted lengths, repeats 5 and 1."""
    # per-call sleep is L * pattern ms; median 3L ms, mean 7L ms, min L ms, max 20L ms
    _check_timing(fn, [3, 1, 2], 5, [4.0, 20.0, 1.0, 3.0, 2.0], "(fake fn with one slow call per length)")
    _check_timing(fn, [2, 4], 1, [1.0], "(repeats = 1)")
    passed("measure_time (hidden: outliers, unsorted lengths)")
