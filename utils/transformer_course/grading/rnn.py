"""Checks for notebook 01 (``01_rnn_limitations``).

Each exercise has a visible ``<name>_example(fn)`` check (a small worked
example the learner can reason about) and a hidden ``<name>(fn)`` check (fresh
random inputs, edge cases, and the real oracle: ``torch.nn.RNN`` with copied
weights, autograd, the reference recall generator).

An answer that calls the matching reference in this package fails (see
``core.call``'s ``forbid``).
"""
from __future__ import annotations

import copy
import time
from typing import Any, Callable

import numpy as np
import torch

from .. import data as _data
from .. import rnn as _ref
from .core import as_numpy, call, expect, expect_close, expect_finite, expect_shape, fail, passed, rng

__all__ = [
    "rnn_forward_example", "rnn_forward",
    "jacobian_norms_example", "jacobian_norms",
    "make_recall_batch_example", "make_recall_batch",
    "train_recall_rnn_example", "train_recall_rnn",
    "measure_time_example", "measure_time",
]


def _learner(fn: Callable, *args: Any, forbidden: tuple[Callable, ...] = (), what: str | None = None,
             **kwargs: Any) -> Any:
    """``call`` the learner's function; calling a reference in ``forbidden`` fails it."""
    return call(fn, *args, what=what, forbid=forbidden, **kwargs)


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
    result = _learner(fn, *args, forbidden=(_ref.rnn_forward, _ref.rnn_forward_torch, _ref.torch_rnn_from_weights),
                      what="rnn_forward")
    hs, h_last = _pair(result, "rnn_forward", "(hs, h_last)")
    what = f"hs {label}"
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
    g = rng(9_410_117)
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
        "Jacobians multiplied in the wrong order? d h_T / d h_{T-d} = J_T J_{T-1} ... J_{T-d+1}: "
        "the newest factor sits on the left.":
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
    T, _d_h = x.shape[0], W_hh.shape[0]
    expected = _ref.jacobian_norms(x, h0, W_xh, W_hh, b)  # autograd, float64
    args = [np.array(a, dtype=np.float64) for a in (x, h0, W_xh, W_hh, b)]
    out = _learner(fn, *args, forbidden=(_ref.jacobian_norms, _ref.jacobian_norms_analytic), what="jacobian_norms")
    what = f"jacobian_norms {label}"
    if isinstance(out, (list, tuple)):  # a list of floats or 0-d tensors
        out = [float(v) for v in out]
    arr = as_numpy(out, what).astype(np.float64)
    expect_shape(arr, (T + 1,), what, "return T+1 numbers: d = 0 (h_T itself, norm sqrt(d_h)) up to "
                 "d = T (the initial state h0).")
    expect_finite(arr, what)
    # norms shrink to ~1e-10 and grow to ~1e4; compare relatively
    expect_close(arr, expected, what, atol=1e-12, rtol=1e-4, mistakes=_jacobian_variants(x, h0, W_xh, W_hh, b),
                 hint="the chain rule gives d h_T / d h_{T-d} = prod over s = T .. T-d+1 of diag(1 - h_s^2) W_hh; "
                      "compare with torch.autograd.functional.jacobian on a short sequence.")


def jacobian_norms_example(fn: Callable) -> None:
    """Visible check: zero inputs with one hidden unit (norms = 0.5^d), then a small random case."""
    # with x = 0, h0 = 0, b = 0 every state is 0, tanh' = 1, and d h_T / d h_{T-d} = 0.5^d
    _check_jacobian_case(fn, np.zeros((3, 1)), np.zeros(1), np.array([[1.0]]), np.array([[0.5]]), np.zeros(1),
                         "(worked example: zero input, W_hh = 0.5, expected [1, 0.5, 0.25, 0.125])")
    g = rng(1)
    W_xh, W_hh, b = _ref.random_rnn_weights(2, 3, 1.0, g)
    _check_jacobian_case(fn, g.normal(size=(4, 2)), 0.5 * g.normal(size=3), W_xh, W_hh, b,
                         "(T=4, d_in=2, d_h=3, random weights)")
    passed("jacobian_norms (worked example)")


def jacobian_norms(fn: Callable) -> None:
    """Hidden check: random weights at several spectral radii against autograd."""
    g = rng(52_883_406)
    for T, d_in, d_h, radius in [(6, 3, 4, 0.5), (1, 2, 2, 1.0), (12, 2, 5, 1.0), (20, 4, 6, 1.8),
                                 (9, 1, 1, 3.0), (15, 3, 8, 0.9)]:
        W_xh, W_hh, b = _ref.random_rnn_weights(d_in, d_h, radius, g)
        _check_jacobian_case(fn, g.normal(size=(T, d_in)), 0.5 * g.normal(size=d_h), W_xh, W_hh, b,
                             f"(T={T}, d_h={d_h}, spectral radius {radius})")
    passed("jacobian_norms (hidden: autograd on random weights)")


# --------------------------------------------------------------------------- 3. make_recall_batch
def _recall_batch(fn, batch_size, distance, vocab, seed, label):
    result = _learner(fn, batch_size, distance, vocab, np.random.default_rng(seed),
                      forbidden=(_data.make_recall_batch,), what="make_recall_batch")
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
           "labels are symbol ids: rng.integers(0, vocab.n_symbols).")
    bad = np.flatnonzero(x[:, 0] != y)
    if bad.size:
        fail(f"labels do not match the first token (e.g. sequence {bad[0]}: x[{bad[0]}, 0] = {x[bad[0], 0]}, "
             f"y[{bad[0]}] = {y[bad[0]]}).",
             "the label is the symbol at position 0: set x[:, 0] = y.")
    bad = np.flatnonzero(x[:, -1] != vocab.query)
    if bad.size:
        fail(f"the last token of sequence {bad[0]} is {x[bad[0], -1]}, not the query marker {vocab.query}.",
             "the query comes at the end: x[:, -1] = vocab.query.")
    noise = x[:, 1:-1]
    lo, hi = vocab.n_symbols, vocab.n_symbols + vocab.n_noise
    if noise.size and not np.all((noise >= lo) & (noise < hi)):
        v = noise[(noise < lo) | (noise >= hi)][0]
        fail(f"x {label} has noise token {v} between the symbol and the query; noise ids are {lo}..{hi - 1}.",
             "noise must not reuse symbol ids (the answer would be ambiguous) nor the query id: "
             "rng.integers(vocab.n_symbols, vocab.n_symbols + vocab.n_noise).")


def make_recall_batch_example(fn: Callable) -> None:
    """Visible check: the structure of a small batch (4 sequences at distance 3)."""
    vocab = _data.RecallVocab()
    x, y = _recall_batch(fn, 4, 3, vocab, 0, "(batch_size=4, distance=3)")
    _check_recall_structure(x, y, 4, 3, vocab, "(batch_size=4, distance=3)")
    print("x =\n", x, "\ny =", y)
    passed("make_recall_batch (structure)")


def _expect_uniform(values: np.ndarray, lo: int, hi: int, what: str, how: str) -> None:
    counts = np.bincount(values.ravel() - lo, minlength=hi - lo)
    missing = np.flatnonzero(counts == 0)
    if missing.size:
        fail(f"{what}: id {lo + missing[0]} never appears in {values.size} draws.",
             f"{how}: rng.integers(low, high) never returns `high` itself.")
    expected = values.size / (hi - lo)
    worst = int(np.argmax(np.abs(counts - expected)))
    # 6 standard deviations: a fair generator fails this about once in 10^8 runs
    expect(abs(counts[worst] - expected) <= 6 * np.sqrt(expected) + 1,
           f"{what} are not roughly uniform: id {lo + worst} appears {counts[worst]} times in {values.size} draws, "
           f"expected about {expected:.0f}.",
           f"{how} with rng.integers, uniformly.")


def make_recall_batch(fn: Callable) -> None:
    """Hidden check: structure on several sizes and vocabularies, uniformity, seeding, edge cases."""
    default = _data.RecallVocab()
    for B, d, vocab, seed in [(3000, 6, default, 11), (50, 1, default, 12), (400, 30, _data.RecallVocab(3, 5), 13),
                              (1, 4, _data.RecallVocab(2, 1), 14)]:
        label = f"(batch_size={B}, distance={d}, vocab={vocab})"
        x, y = _recall_batch(fn, B, d, vocab, seed, label)
        _check_recall_structure(x, y, B, d, vocab, label)
        if B >= 400:
            _expect_uniform(y, 0, vocab.n_symbols, f"the labels {label}", "draw each label")
            _expect_uniform(x[:, 1:-1], vocab.n_symbols, vocab.n_symbols + vocab.n_noise,
                            f"the noise tokens {label}", "draw each noise token")
    label = "(batch_size=64, distance=8)"
    x1, y1 = _recall_batch(fn, 64, 8, default, 7, label)
    x2, y2 = _recall_batch(fn, 64, 8, default, 7, label)
    expect(np.array_equal(x1, x2) and np.array_equal(y1, y2),
           "two calls with generators seeded the same way gave different batches.",
           "draw every random number from the `rng` argument (not np.random.* or a new default_rng()).")
    x3, y3 = _recall_batch(fn, 64, 8, default, 8, label)
    expect(not (np.array_equal(x1, x3) and np.array_equal(y1, y3)),
           "different rng seeds gave the same batch.",
           "draw every random number from the `rng` argument; do not re-seed inside the function.")
    out = _learner(fn, 5, 3, forbidden=(_data.make_recall_batch,), what="make_recall_batch")
    xa, ya = _pair(out, "make_recall_batch", "(x, y)")
    _check_recall_structure(as_numpy(xa), as_numpy(ya), 5, 3, default, "(with the default vocab and rng=None)")
    try:
        _learner(fn, 4, 0, default, np.random.default_rng(0), forbidden=(_data.make_recall_batch,),
                 what="make_recall_batch")
    except ValueError:
        pass
    else:
        fail("make_recall_batch(4, distance=0) did not raise ValueError.",
             "a distance below 1 has no room for the symbol before the query: `raise ValueError(...)`.")
    passed("make_recall_batch (hidden: sizes, vocabularies, uniformity, seeding)")


# --------------------------------------------------------------------------- 4. train_recall_rnn
def _check_training(fn, distance: int, steps: int, model_seed: int, train_seed: int, eval_seed: int,
                    d_hidden: int, label: str) -> None:
    torch.manual_seed(model_seed)
    model = _ref.RecallRNN(d_hidden=d_hidden)
    before = copy.deepcopy(model.state_dict())
    start = time.perf_counter()
    losses = _learner(fn, model, distance, steps=steps, batch_size=64, lr=1e-2, seed=train_seed,
                      forbidden=(_ref.train_recall_rnn,), what="train_recall_rnn")
    seconds = time.perf_counter() - start
    changed = any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    expect(changed, f"{label}: the model's parameters did not change during training.",
           "train the model you are given, in place: build the optimizer over model.parameters() and call "
           "optimizer.step() (do not create a new model).")
    # the class's own forward, so that a patched instance cannot answer in the model's place
    acc = _ref.recall_accuracy(model, distance, n=1000, seed=eval_seed,
                               forward=lambda x: _ref.RecallRNN.forward(model, x))
    chance = 1 / _data.RecallVocab().n_symbols
    expect(acc >= 0.9,
           f"{label}: accuracy on 1000 fresh sequences is {acc:.3f}; at this short distance a trained RNN "
           f"reaches at least 0.9 (chance is {chance:.3f}). Training took {seconds:.1f} s.",
           "each step: a new batch, logits = model(x), cross-entropy against y, optimizer.zero_grad(), "
           "loss.backward(), optimizer.step(). Adam with the given lr; x and y as torch int64 tensors."
           if acc < 0.3 else
           "it learns something but not enough: check the learning rate is used, every one of `steps` "
           "steps takes an optimizer step, and gradients are zeroed each step.")
    arr = as_numpy(losses, "the returned losses")
    expect(arr.ndim == 1 and arr.shape[0] == steps,
           f"{label}: returned {arr.shape[0] if arr.ndim == 1 else arr.shape} losses, expected one per step ({steps}).",
           "append loss.item() after every step and return the list.")
    arr = expect_finite(arr.astype(np.float64), "the returned losses")
    k = max(1, steps // 10)
    expect(arr[-k:].mean() < arr[:k].mean(),
           f"{label}: the returned losses do not go down (first {k} average {arr[:k].mean():.3f}, "
           f"last {k} average {arr[-k:].mean():.3f}).",
           "return the training loss of each step, in order.")


def train_recall_rnn_example(fn: Callable) -> None:
    """Visible check: a fresh ``RecallRNN`` trained at distance 2 must reach >= 0.9 accuracy."""
    _check_training(fn, distance=2, steps=200, model_seed=0, train_seed=0, eval_seed=1, d_hidden=32,
                    label="distance 2, 200 steps")
    passed("train_recall_rnn (distance 2)")


def train_recall_rnn(fn: Callable) -> None:
    """Hidden check: another model size and fresh seeds, evaluated on fresh data by the reference generator."""
    _check_training(fn, distance=4, steps=200, model_seed=31_337, train_seed=2_024, eval_seed=777_001,
                    d_hidden=24, label="distance 4, 200 steps, d_hidden 24")
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
    out = _learner(fn, fake, list(lengths), repeats, forbidden=(_ref.measure_time,), what="measure_time")
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
    expect_close(arr, median, f"measure_time's result {label}", atol=1e-3, rtol=0.05, mistakes=mistakes,
                 hint="time each call with time.perf_counter() and take the median over the repeats "
                      "(np.median or statistics.median).")


def measure_time_example(fn: Callable) -> None:
    """Visible check: a fake forward pass that sleeps exactly L milliseconds."""
    _check_timing(fn, [1, 2, 3], 3, [1.0], "(fake fn sleeping L ms, lengths [1, 2, 3], repeats 3)")
    passed("measure_time (fake forward pass)")


def measure_time(fn: Callable) -> None:
    """Hidden check: calls of uneven length (one slow outlier per length), unsorted lengths, repeats 5 and 1."""
    # per-call sleep is L * pattern ms; median 3L ms, mean 7L ms, min L ms, max 20L ms
    _check_timing(fn, [3, 1, 2], 5, [4.0, 20.0, 1.0, 3.0, 2.0], "(fake fn with one slow call per length)")
    _check_timing(fn, [2, 4], 1, [1.0], "(repeats = 1)")
    passed("measure_time (hidden: outliers, unsorted lengths)")
