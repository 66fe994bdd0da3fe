"""Tests of transformer_course.rnn (notebook 01) and of the checks in grading/rnn_limitations.py.

The checks must pass a correct answer and fail each typical wrong one with the
hint that explains it.  A correct answer here is a *clone* of the reference
(same code, a different function object): the checks switch the reference
itself off while they run a learner's function.
"""
from __future__ import annotations

import re
import statistics
import time
import types

import numpy as np
import pytest
import torch

from transformer_course import data, rnn
from transformer_course.grading import CheckFailed
from transformer_course.grading import rnn_limitations as check


def clone(f):
    """The same function under another identity: what a learner who copied the model answer has."""
    # a fresh code object, as pasting the source into a notebook would compile
    g = types.FunctionType(f.__code__.replace(), f.__globals__, f.__name__, f.__defaults__, f.__closure__)
    g.__kwdefaults__ = f.__kwdefaults__
    return g



def expect_caught(visible, hidden, fn, hint):
    """The hidden check (the grade) fails the mistake with its hint; the visible
    check either fails it with the same hint or lets it through, never misleads."""
    with pytest.raises(CheckFailed, match=hint):
        hidden(fn)
    try:
        visible(fn)
    except CheckFailed as exc:
        assert re.search(hint, str(exc)), f"the visible check gives another hint: {exc}"


def weights(d_in=3, d_h=5, radius=1.2, seed=0):
    return rnn.random_rnn_weights(d_in, d_h, radius, np.random.default_rng(seed))


# --------------------------------------------------------------------------- rnn.py
def test_rnn_forward_worked_example():
    hs, h_last = rnn.rnn_forward(np.array([[[1.0], [0.0], [0.0]]]), np.zeros((1, 1)),
                                 np.array([[1.0]]), np.array([[0.5]]), np.zeros(1))
    h1 = np.tanh(1.0)
    h2 = np.tanh(0.5 * h1)
    h3 = np.tanh(0.5 * h2)
    np.testing.assert_allclose(hs[0, :, 0], [h1, h2, h3], rtol=1e-12)
    np.testing.assert_allclose(h_last, [[h3]], rtol=1e-12)


@pytest.mark.parametrize("B,T,d_in,d_h", [(4, 7, 3, 5), (1, 1, 2, 2), (3, 20, 1, 8)])
def test_rnn_forward_matches_torch_rnn(B, T, d_in, d_h):
    g = np.random.default_rng(B * 100 + T)
    W_xh, W_hh, b = rnn.random_rnn_weights(d_in, d_h, 1.3, g)
    x, h0 = g.normal(size=(B, T, d_in)), g.normal(size=(B, d_h))
    hs, h_last = rnn.rnn_forward(x, h0, W_xh, W_hh, b)
    assert hs.shape == (B, T, d_h) and h_last.shape == (B, d_h)
    net = rnn.torch_rnn_from_weights(W_xh, W_hh, b)
    with torch.no_grad():
        out, h_n = net(torch.from_numpy(x), torch.from_numpy(h0)[None])
    np.testing.assert_allclose(hs, out.numpy(), atol=1e-12)
    np.testing.assert_allclose(h_last, h_n[0].numpy(), atol=1e-12)
    hs_t, h_last_t = rnn.rnn_forward_torch(*(torch.from_numpy(a) for a in (x, h0, W_xh, W_hh, b)))
    np.testing.assert_allclose(hs_t.numpy(), hs, atol=1e-12)
    np.testing.assert_allclose(h_last_t.numpy(), h_last, atol=1e-12)


def test_weights_from_torch_rnn_sums_the_two_biases():
    torch.manual_seed(0)
    net = torch.nn.RNN(3, 4, batch_first=True).double()
    W_xh, W_hh, b = rnn.weights_from_torch_rnn(net)
    np.testing.assert_allclose(b, (net.bias_ih_l0 + net.bias_hh_l0).detach().numpy())
    x = np.random.default_rng(1).normal(size=(2, 6, 3))
    with torch.no_grad():
        out, _ = net(torch.from_numpy(x))
    hs, _ = rnn.rnn_forward(x, np.zeros((2, 4)), W_xh, W_hh, b)
    np.testing.assert_allclose(hs, out.numpy(), atol=1e-12)
    with pytest.raises(ValueError):
        rnn.weights_from_torch_rnn(torch.nn.RNN(3, 4, num_layers=2))


def test_random_rnn_weights_spectral_radius():
    _, W_hh, _ = weights(d_h=7, radius=0.8)
    assert np.isclose(np.max(np.abs(np.linalg.eigvals(W_hh))), 0.8)


@pytest.mark.parametrize("radius", [0.5, 1.0, 2.5])
def test_jacobian_norms_autograd_matches_chain_rule_and_torch_jacobian(radius):
    g = np.random.default_rng(3)
    W_xh, W_hh, b = rnn.random_rnn_weights(2, 4, radius, g)
    x, h0 = g.normal(size=(9, 2)), g.normal(size=4)
    norms = rnn.jacobian_norms(x, h0, W_xh, W_hh, b)
    assert norms.shape == (10,)
    assert np.isclose(norms[0], 2.0)  # ||I_4||_F
    np.testing.assert_allclose(norms, rnn.jacobian_norms_analytic(x, h0, W_xh, W_hh, b), rtol=1e-10)
    # independent oracle: torch.autograd.functional.jacobian from h_{T-d} to h_T
    xt, Wx, Wh, bt = (torch.from_numpy(a) for a in (x, W_xh, W_hh, b))
    hs, _ = rnn.rnn_forward_torch(xt[None], torch.from_numpy(h0)[None], Wx, Wh, bt)
    states = [torch.from_numpy(h0)] + list(hs[0])

    def run_from(h, s):
        for t in range(s, 9):
            h = torch.tanh(Wx @ xt[t] + Wh @ h + bt)
        return h

    for d in (1, 4, 9):
        J = torch.autograd.functional.jacobian(lambda h: run_from(h, 9 - d), states[9 - d].detach())
        assert np.isclose(norms[d], torch.linalg.norm(J).item(), rtol=1e-10)


def test_jacobian_norms_vanish_below_and_grow_above_radius_one():
    x = np.zeros((30, 1))
    small = rnn.jacobian_norms(x, np.zeros(6), *weights(1, 6, 0.5))
    assert small[-1] < 1e-6 * small[0]
    # zero input and state: tanh' = 1, so the norm follows ||W_hh^d|| ~ radius^d
    big = rnn.jacobian_norms(x, np.zeros(6), *weights(1, 6, 1.5)[:2], np.zeros(6))
    assert big[-1] > 1e3 * big[0]


def test_recall_rnn_learns_short_distance_and_fails_long_one():
    torch.manual_seed(0)
    model = rnn.RecallRNN()
    x, _ = data.make_recall_batch(5, 3, rng=np.random.default_rng(0))
    assert model(torch.from_numpy(x)).shape == (5, 8)
    losses = rnn.train_recall_rnn(model, 3, steps=200)
    assert len(losses) == 200 and losses[-1] < losses[0]
    assert rnn.recall_accuracy(model, 3, seed=1) >= 0.95
    torch.manual_seed(0)
    far = rnn.RecallRNN()
    rnn.train_recall_rnn(far, 40, steps=100)
    assert rnn.recall_accuracy(far, 40, seed=1) < 0.3


def test_measure_time_median_of_sleeps():
    calls = []

    def fake(L):
        calls.append(L)
        time.sleep(L / 1000)

    out = rnn.measure_time(fake, [2, 1], repeats=3)
    assert calls == [2, 2, 2, 1, 1, 1]
    assert out.shape == (2,) and 0.002 <= out[0] < 0.012 and 0.001 <= out[1] < 0.011
    t = rnn.forward_time_vs_length(rnn.RecallRNN(), [4, 8], batch_size=2, repeats=1)
    assert t.shape == (2,) and np.all(t > 0)


# --------------------------------------------------------------------------- correct answers pass
def own_forward(x, h0, W_xh, W_hh, b):
    h, hs = h0, []
    for t in range(x.shape[1]):
        h = np.tanh(x[:, t] @ W_xh.T + h @ W_hh.T + b)
        hs.append(h)
    return np.stack(hs, axis=1), h


def own_jacobian_autograd(x, h0, W_xh, W_hh, b):
    """What a learner using autograd might write (float32, functional jacobian, a list of 0-d tensors)."""
    x, h0, W_xh, W_hh, b = (torch.tensor(a, dtype=torch.float32) for a in (x, h0, W_xh, W_hh, b))
    T = x.shape[0]

    def run(h, start, stop):
        for t in range(start, stop):
            h = torch.tanh(W_xh @ x[t] + W_hh @ h + b)
        return h

    norms = []
    for d in range(T + 1):
        h_start = run(h0, 0, T - d)  # h_{T-d}
        J = torch.autograd.functional.jacobian(lambda h: run(h, T - d, T), h_start)
        norms.append(torch.linalg.norm(J))
    return norms


def own_recall_batch(batch_size, distance, vocab=data.RecallVocab(), rng=None):
    if distance < 1:
        raise ValueError("distance must be >= 1")
    rng = np.random.default_rng() if rng is None else rng
    y = rng.integers(0, vocab.n_symbols, size=batch_size)
    x = rng.integers(vocab.n_symbols, vocab.n_symbols + vocab.n_noise, size=(batch_size, distance + 1))
    x[:, 0] = y
    x[:, -1] = vocab.query
    return x.astype(np.int64), y.astype(np.int64)


def own_measure_time(fn, lengths, repeats=5):
    out = []
    for L in lengths:
        ts = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn(L)
            ts.append(time.perf_counter() - start)
        out.append(statistics.median(ts))
    return out


GOOD = {
    "rnn_forward": [clone(rnn.rnn_forward), own_forward],
    "jacobian_norms": [clone(rnn.jacobian_norms), clone(rnn.jacobian_norms_analytic), own_jacobian_autograd],
    "make_recall_batch": [clone(data.make_recall_batch), own_recall_batch],
    "measure_time": [clone(rnn.measure_time), own_measure_time],
    "train_recall_rnn": [clone(rnn.train_recall_rnn)],
}


@pytest.mark.parametrize("seed", [3, 63, 277])
def test_jacobian_check_accepts_float32_answers_where_tanh_saturates(seed):
    """d_h = 1 at spectral radius 3: 1 - h^2 keeps few float32 digits, and a correct float32 answer was
    off by up to 27% (a CI run failed on it). The check allows what float32 arithmetic explains..."""
    g = np.random.default_rng(seed)
    W_xh, W_hh, b = rnn.random_rnn_weights(1, 1, 3.0, g)
    x, h0 = g.normal(size=(9, 1)), 0.5 * g.normal(size=1)
    own = np.array([float(v) for v in own_jacobian_autograd(x, h0, W_xh, W_hh, b)])
    assert not np.allclose(own, rnn.jacobian_norms(x, h0, W_xh, W_hh, b), atol=0, rtol=1e-2)  # a hard case
    check._check_jacobian_case(own_jacobian_autograd, x, h0, W_xh, W_hh, b, "(float32, saturated)")
    # ...and no more: the same case still rejects a wrong order of the factors and the spectral norm
    for name, wrong in [("order", lambda *a: rnn.jacobian_norms_analytic(*a)[::-1]),
                        ("scaled", lambda *a: 1.05 * rnn.jacobian_norms_analytic(*a))]:
        with pytest.raises(CheckFailed):
            check._check_jacobian_case(wrong, x, h0, W_xh, W_hh, b, f"({name})")


@pytest.mark.parametrize("name,fn", [(n, f) for n, fs in GOOD.items() for f in fs])
def test_checks_pass_correct_answers(name, fn, capsys):
    getattr(check, name + "_example")(fn)
    getattr(check, name)(fn)
    out = capsys.readouterr()
    assert out.out.count("all checks passed") == 2 and out.err == ""


@pytest.mark.parametrize("name,ref", [("rnn_forward", rnn.rnn_forward), ("jacobian_norms", rnn.jacobian_norms),
                                      ("make_recall_batch", data.make_recall_batch),
                                      ("measure_time", rnn.measure_time)])
def test_calling_the_reference_fails_and_restores_it(name, ref):
    code = ref.__code__
    with pytest.raises(CheckFailed, match="reference implementation"):
        getattr(check, name)(lambda *a, **k: ref(*a, **k))
    assert ref.__code__ is code
    with pytest.raises(CheckFailed, match="reference implementation"):
        getattr(check, name + "_example")(ref)  # the reference itself, not even wrapped


def test_calling_the_reference_trainer_fails():
    with pytest.raises(CheckFailed, match="reference implementation"):
        check.train_recall_rnn_example(lambda model, distance, **kw: rnn.train_recall_rnn(model, distance, steps=1))
    torch.manual_seed(0)
    assert len(rnn.train_recall_rnn(rnn.RecallRNN(), 2, steps=2)) == 2  # restored


def test_not_implemented_is_reported():
    def stub(*args, **kwargs):
        raise NotImplementedError()

    for name in GOOD:
        with pytest.raises(CheckFailed, match="not implemented yet"):
            getattr(check, name + "_example")(stub)


# --------------------------------------------------------------------------- wrong answers fail with a hint
def forward_variant(step, before=False, last=None):
    def fn(x, h0, W_xh, W_hh, b):
        h, hs = h0, []
        for t in range(x.shape[1]):
            if before:
                hs.append(h)
            h = step(x[:, t], h, h0, W_xh, W_hh, b)
            if not before:
                hs.append(h)
        hs = np.stack(hs, axis=1)
        return hs, (last(hs, h0) if last else h)
    return fn


correct_step = lambda xt, h, h0, Wx, Wh, b: np.tanh(xt @ Wx.T + h @ Wh.T + b)  # noqa: E731

WRONG_FORWARD = [
    (forward_variant(lambda xt, h, h0, Wx, Wh, b: xt @ Wx.T + h @ Wh.T + b), "tanh missing"),
    (forward_variant(lambda xt, h, h0, Wx, Wh, b: np.tanh(xt @ Wx.T + h0 @ Wh.T + b)), "not carried between steps"),
    (forward_variant(lambda xt, h, h0, Wx, Wh, b: np.tanh(xt @ Wx.T + h @ Wh + b)), "W_hh applied transposed"),
    (forward_variant(lambda xt, h, h0, Wx, Wh, b: np.tanh(xt @ Wx.T + h @ Wh.T)), "bias b missing"),
    (forward_variant(lambda xt, h, h0, Wx, Wh, b: np.tanh(xt @ Wx.T + b) + h @ Wh.T), "input term only"),
    (forward_variant(correct_step, before=True), "shifted by one step"),
    (forward_variant(correct_step, last=lambda hs, h0: hs[:, 0]), "first state"),
    (forward_variant(correct_step, last=lambda hs, h0: h0), "initial state h0"),
    (lambda x, h0, Wx, Wh, b: own_forward(x, h0, Wx, Wh, b)[0], "should return a pair"),
    (lambda x, h0, Wx, Wh, b: (own_forward(x, h0, Wx, Wh, b)[0].transpose(1, 0, 2), h0), "expected"),
]


@pytest.mark.parametrize("fn,hint", WRONG_FORWARD)
def test_rnn_forward_mistakes(fn, hint):
    expect_caught(check.rnn_forward_example, check.rnn_forward, fn, hint)


def test_rnn_forward_hidden_catches_transposed_input_weights():
    fn = forward_variant(lambda xt, h, h0, Wx, Wh, b: np.tanh(xt @ Wx + h @ Wh.T + b))
    with pytest.raises(CheckFailed, match="W_xh"):
        check.rnn_forward(fn)
    try:  # on the square case the hint names the mistake
        check._check_forward_case(fn, *(_square_case()), "(square)", oracle="torch")
    except CheckFailed as exc:
        assert "W_xh applied transposed" in str(exc)
    else:
        pytest.fail("transposed W_xh passed")


def _square_case():
    g = np.random.default_rng(5)
    W_xh, W_hh, b = rnn.random_rnn_weights(4, 4, 1.0, g)
    return g.normal(size=(2, 5, 4)), g.normal(size=(2, 4)), W_xh, W_hh, b


def chain_variant(local, order="right", ord=None, reverse=False, drop_first=False, sum_rows=False):
    def fn(x, h0, W_xh, W_hh, b):
        hs, _ = rnn.rnn_forward(x[None], h0[None], W_xh, W_hh, b)
        states = np.concatenate([h0[None], hs[0]])
        T, d_h = x.shape[0], W_hh.shape[0]
        J = np.eye(d_h)
        norms = [np.linalg.norm(J.sum(0) if sum_rows else J, ord)]
        for s in range(T, 0, -1):
            J = J @ local(states, s, W_hh) if order == "right" else local(states, s, W_hh) @ J
            norms.append(np.linalg.norm(J.sum(0) if sum_rows else J, ord))
        norms = np.array(norms)
        norms = norms[::-1] if reverse else norms
        return norms[1:] if drop_first else norms
    return fn


good_local = lambda st, s, W: (1 - st[s] ** 2)[:, None] * W  # noqa: E731

WRONG_JACOBIAN = [
    (chain_variant(lambda st, s, W: W), "tanh derivative missing"),
    (chain_variant(lambda st, s, W: (1 - st[s - 1] ** 2)[:, None] * W), "wrong state"),
    (chain_variant(lambda st, s, W: (1 - st[s])[:, None] * W), "square missing"),
    (chain_variant(lambda st, s, W: W * (1 - st[s] ** 2)[None, :]), "wrong side"),
    (chain_variant(lambda st, s, W: (1 - st[s] ** 2)[:, None] * W.T), "W_hh transposed"),
    (chain_variant(good_local, order="left"), "wrong order"),
    (chain_variant(good_local, ord=2), "Frobenius"),
    (chain_variant(good_local, reverse=True), "instead of distance"),
    (chain_variant(good_local, sum_rows=True), r"sum\(\)\.backward"),
    (chain_variant(good_local, drop_first=True), "T\\+1 numbers"),
]


@pytest.mark.parametrize("fn,hint", WRONG_JACOBIAN)
def test_jacobian_norms_mistakes(fn, hint):
    expect_caught(check.jacobian_norms_example, check.jacobian_norms, fn, hint)


def batch_variant(**change):
    def fn(batch_size, distance, vocab=data.RecallVocab(), rng=None):
        if distance < 1 and not change.get("no_raise"):
            raise ValueError
        if change.get("global_rng"):
            rng = np.random.default_rng(int(np.random.randint(1 << 30)))
        elif change.get("reseed"):
            rng = np.random.default_rng(0)
        rng = np.random.default_rng() if rng is None else rng
        n_sym = 8 if change.get("fixed_vocab") else vocab.n_symbols
        n_noise = 8 if change.get("fixed_vocab") else vocab.n_noise
        L = distance if change.get("short") else distance + 1
        y = rng.integers(0, n_sym - (1 if change.get("label_high") else 0), size=batch_size)
        lo = 0 if change.get("noise_symbols") else n_sym
        hi = n_sym + n_noise - (1 if change.get("noise_high") else 0)
        x = rng.integers(lo, hi, size=(batch_size, max(L, 1)))
        if not change.get("no_label"):
            x[:, 0] = y
        if not change.get("no_query"):
            x[:, -1] = n_sym + n_noise
        dtype = np.int32 if change.get("int32") else np.int64
        return x.astype(dtype), y.astype(np.int64)
    return fn


WRONG_BATCH = [
    (batch_variant(short=True), "sequence length is distance\\+1"),
    (batch_variant(no_label=True), "labels do not match the first token"),
    (batch_variant(no_query=True), "query marker"),
    (batch_variant(int32=True), "int64"),
    (batch_variant(noise_symbols=True), "noise must not reuse symbol ids"),
    (batch_variant(noise_high=True), "never returns `high`"),
    (batch_variant(label_high=True), "never returns `high`"),
    (batch_variant(global_rng=True), "seeded the same way gave different batches"),
    (batch_variant(reseed=True), "different rng seeds gave the same batch"),
    (batch_variant(fixed_vocab=True), "labels outside"),
    (batch_variant(no_raise=True), "ValueError"),
]


@pytest.mark.parametrize("fn,hint", WRONG_BATCH)
def test_make_recall_batch_mistakes(fn, hint):
    expect_caught(check.make_recall_batch_example, check.make_recall_batch, fn, hint)


def test_make_recall_batch_catches_non_uniform_labels():
    def skewed(batch_size, distance, vocab=data.RecallVocab(), rng=None):
        x, y = own_recall_batch(batch_size, distance, vocab, rng)
        y = np.where(rng.random(batch_size) < 0.3, 0, y)  # symbol 0 far too often
        x[:, 0] = y
        return x, y

    with pytest.raises(CheckFailed, match="not roughly uniform"):
        check.make_recall_batch(skewed)


def timing_variant(stat, scale=1.0, extra_call=False):
    def fn(fn_, lengths, repeats=5):
        out = []
        for L in lengths:
            if extra_call:
                fn_(L)
            ts = []
            for _ in range(repeats):
                start = time.perf_counter()
                fn_(L)
                ts.append(time.perf_counter() - start)
            out.append(stat(ts) * scale)
        return out
    return fn


WRONG_TIMING = [
    (timing_variant(statistics.mean), "mean instead of the median"),
    (timing_variant(min), r"\(min\)"),
    (timing_variant(max), r"\(max\)"),
    (timing_variant(sum), "total time"),
    (timing_variant(statistics.median, scale=1000), "milliseconds"),
    (timing_variant(statistics.median, extra_call=True), "no extra warm-up call"),
    (lambda fn_, lengths, repeats=5: own_measure_time(fn_, sorted(lengths), repeats), "expected"),
]


@pytest.mark.parametrize("fn,hint", WRONG_TIMING)
def test_measure_time_mistakes(fn, hint):
    expect_caught(check.measure_time_example, check.measure_time, fn, hint)


ref_train = clone(rnn.train_recall_rnn)  # cloned before any check switches the reference off


def test_train_recall_rnn_mistakes():
    def no_step(model, distance, steps=200, batch_size=64, lr=1e-2, seed=0):
        for _ in range(steps):
            x, _ = own_recall_batch(batch_size, distance, rng=np.random.default_rng(seed + _))
            model(torch.from_numpy(x))
        return [2.0] * steps

    with pytest.raises(CheckFailed, match="losses\\[0\\]"):
        check.train_recall_rnn_example(no_step)

    def barely(model, distance, steps=200, batch_size=64, lr=1e-2, seed=0):  # 3 steps only
        return ref_train(model, distance, steps=3, batch_size=batch_size, lr=lr, seed=seed)

    with pytest.raises(CheckFailed, match="training forward passes"):
        check.train_recall_rnn(barely)

    def patched(model, distance, steps=200, batch_size=64, lr=1e-2, seed=0):
        # answers from the first token instead of learning; must not be what the check evaluates
        losses = ref_train(model, distance, steps=steps, batch_size=batch_size, lr=lr, seed=seed)
        if steps > 10:
            with torch.no_grad():
                for p in model.parameters():
                    p.copy_(torch.randn_like(p))
            model.forward = lambda x: torch.nn.functional.one_hot(x[:, 0], 8).float()
        return losses

    with pytest.raises(CheckFailed, match="accuracy"):
        check.train_recall_rnn_example(patched)

    def no_return(model, distance, steps=200, batch_size=64, lr=1e-2, seed=0):
        ref_train(model, distance, steps=steps, batch_size=batch_size, lr=lr, seed=seed)

    with pytest.raises(CheckFailed, match="None"):
        check.train_recall_rnn_example(no_return)


def train_variant(**c):
    """A training loop with one planted mistake (or none)."""
    def fn(model, distance, steps=200, batch_size=64, lr=1e-2, seed=0):
        rng = np.random.default_rng() if c.get("no_seed") else np.random.default_rng(0 if c.get("seed0") else seed)

        def new_opt():
            if c.get("sgd"):
                return torch.optim.SGD(model.parameters(), lr=lr)
            if c.get("default_lr"):
                return torch.optim.Adam(model.parameters())
            return torch.optim.Adam(model.parameters(), lr=1e-2 if c.get("fixed_lr") else lr)

        opt = new_opt()
        losses = []
        for _ in range(steps // 2 if c.get("pad") else steps):
            if c.get("reseed"):
                rng = np.random.default_rng(seed)
            if c.get("fresh_adam"):
                opt = new_opt()
            xb, yb = own_recall_batch(64 if c.get("fixed_batch") else batch_size, distance, rng=rng)
            x, y = torch.from_numpy(xb), torch.from_numpy(yb)
            logits = model.forward(x) if c.get("call_forward") else model(x)
            if c.get("softmax"):
                logits = logits.softmax(-1)
            if c.get("mse"):
                loss = torch.nn.functional.mse_loss(logits, torch.nn.functional.one_hot(y, 8).float())
            else:
                loss = torch.nn.functional.cross_entropy(logits, y)
            if not c.get("no_zero_grad"):
                opt.zero_grad()
            loss.backward()
            if c.get("clip", True):
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            if c.get("zero_after"):
                opt.zero_grad()
            losses.append(loss.item())
        return losses + losses if c.get("pad") else losses
    return fn


WRONG_TRAIN = [
    (train_variant(default_lr=True), "Adam's default 1e-3"),
    (train_variant(fixed_lr=True), "first training step changed the weights"),
    (train_variant(sgd=True), "Is the optimizer Adam"),
    (train_variant(reseed=True), "same batch as step"),
    (train_variant(no_seed=True), "same seed trained on different batches"),
    (train_variant(seed0=True), "trained on the same batches"),
    (train_variant(fixed_batch=True), r"shape \(64, 3\), expected \(16, 3\)"),
    (train_variant(pad=True), "training forward passes"),
    (train_variant(fresh_adam=True), "Adam's first step"),
    (train_variant(softmax=True), "softmax applied before cross_entropy"),
    (train_variant(mse=True), "MSE against one-hot"),
    (train_variant(no_zero_grad=True), "zero_grad"),
    (train_variant(no_zero_grad=True, clip=False), "zero_grad"),
    (train_variant(call_forward=True), "never called"),
]


@pytest.mark.parametrize("fn,hint", WRONG_TRAIN)
def test_train_recall_rnn_visible_check_catches(fn, hint):
    with pytest.raises(CheckFailed, match=hint):
        check.train_recall_rnn_example(fn)


@pytest.mark.parametrize("fn,hint", WRONG_TRAIN[:2] + WRONG_TRAIN[11:12])
def test_train_recall_rnn_hidden_check_catches(fn, hint):
    with pytest.raises(CheckFailed, match=hint):
        check.train_recall_rnn(fn)


@pytest.mark.parametrize("variant", [{"clip": False}, {"zero_after": True}])
def test_train_recall_rnn_correct_variants_pass(variant, capsys):
    fn = train_variant(**variant)
    check.train_recall_rnn_example(fn)
    check.train_recall_rnn(fn)
    assert capsys.readouterr().out.count("all checks passed") == 2


def with_globals(f, **names):
    """``f`` as if defined in a notebook whose globals hold ``names`` (what the checks find in __globals__)."""
    g = dict(f.__globals__)
    g.update(names)
    return types.FunctionType(f.__code__, g, f.__name__, f.__defaults__, f.__closure__)


def learner_train(model, distance, steps=200, batch_size=64, lr=1e-2, seed=0):
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        x, y = make_recall_batch(batch_size, distance, rng=rng)  # noqa: F821 - the notebook's, see with_globals
        loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def learner_jacobian(x, h0, W_xh, W_hh, b):
    hs, _ = rnn_forward(x[None], h0[None], W_xh, W_hh, b)  # noqa: F821 - the notebook's, see with_globals
    states = np.concatenate([h0[None], hs[0]])
    J, norms = np.eye(W_hh.shape[0]), [np.sqrt(W_hh.shape[0])]
    for s in range(x.shape[0], 0, -1):
        J = J @ ((1 - states[s] ** 2)[:, None] * W_hh)
        norms.append(np.linalg.norm(J))
    return np.array(norms)


def test_dependent_exercises_blame_the_wrong_dependency():
    bad_batch = batch_variant(no_label=True)  # labels do not match the symbol
    with pytest.raises(CheckFailed) as info:
        check.train_recall_rnn_example(with_globals(learner_train, make_recall_batch=bad_batch))
    message = str(info.value)
    assert message.startswith("your make_recall_batch from exercise 3 fails its checks, and train_recall_rnn uses "
                              "it: fix make_recall_batch first (run its test cell), then run this cell again."), message
    # what the earlier check says (its own hint included), and what this check saw
    assert "What make_recall_batch's check says: labels do not match the first token" in message
    assert "Hint: the label is the symbol at position 0" in message
    assert "What this check saw: " in message
    bad_forward = forward_variant(lambda xt, h, h0, Wx, Wh, b: np.tanh(xt @ Wx.T + h @ Wh.T))  # no bias
    for c in (check.jacobian_norms_example, check.jacobian_norms):
        with pytest.raises(CheckFailed, match=r"^your rnn_forward from exercise 1 fails its checks, and "
                                              r"jacobian_norms uses it: fix rnn_forward first") as info:
            c(with_globals(learner_jacobian, rnn_forward=bad_forward))
        assert "bias b missing?" in str(info.value)  # rnn_forward's own hint travels with the blame
        assert "What this check saw: jacobian_norms" in str(info.value)


def test_training_batches_without_the_symbol_first_fail_with_a_hint():
    """The losses are checked against the first token of each batch: a batch without a symbol there is
    named (not an IndexError from the grader), also when no make_recall_batch of the learner's is to blame."""
    unlabelled = batch_variant(no_label=True)

    def train(model, distance, steps=200, batch_size=64, lr=1e-2, seed=0):
        rng = np.random.default_rng(seed)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        losses = []
        for _ in range(steps):
            x, y = unlabelled(batch_size, distance, rng=rng)
            loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        return losses

    with pytest.raises(CheckFailed, match="first token is not a symbol id") as info:
        check.train_recall_rnn_example(train)
    assert "the symbol to recall comes first" in str(info.value)


def test_dependent_exercises_pass_with_right_dependency_or_none(capsys):
    check.train_recall_rnn_example(with_globals(learner_train, make_recall_batch=own_recall_batch))
    check.jacobian_norms_example(with_globals(learner_jacobian, rnn_forward=own_forward))
    check.jacobian_norms(with_globals(learner_jacobian, rnn_forward=own_forward))
    # a Jacobian that does not use the (wrong) rnn_forward is judged on its own
    bad_forward = forward_variant(lambda xt, h, h0, Wx, Wh, b: np.tanh(xt @ Wx.T + h @ Wh.T))
    check.jacobian_norms_example(with_globals(own_jacobian_autograd, rnn_forward=bad_forward))
    # the package's generator imported instead of written: not the learner's dependency to judge
    check.train_recall_rnn_example(with_globals(learner_train, make_recall_batch=data.make_recall_batch))
    out = capsys.readouterr().out
    assert out.count("all checks passed") == 5 and "x =" not in out


# --------------------------------------------------------------------------- review findings 3-5, 8-10
def test_make_recall_batch_visible_check_catches():
    def noise_off_by_one(batch_size, distance, vocab=data.RecallVocab(), rng=None):
        x, y = own_recall_batch(batch_size, distance, vocab, rng)
        x[:, 1:-1] = rng.integers(vocab.n_symbols, vocab.n_symbols + vocab.n_noise - 1, size=x[:, 1:-1].shape)
        return x, y

    def global_numpy(batch_size, distance, vocab=data.RecallVocab(), rng=None):
        if distance < 1:
            raise ValueError
        y = np.random.randint(0, vocab.n_symbols, size=batch_size)
        x = np.random.randint(vocab.n_symbols, vocab.n_symbols + vocab.n_noise, size=(batch_size, distance + 1))
        x[:, 0], x[:, -1] = y, vocab.query
        return x.astype(np.int64), y.astype(np.int64)

    def asserts(batch_size, distance, vocab=data.RecallVocab(), rng=None):
        assert distance >= 1
        return own_recall_batch(batch_size, max(distance, 1), vocab, rng)

    cases = [(noise_off_by_one, "never returns `high`"),
             (global_numpy, "seeded the same way gave different batches"),
             (batch_variant(no_raise=True), "did not raise ValueError"),
             (asserts, "raised AssertionError; expected ValueError"),
             (batch_variant(fixed_vocab=True), "labels outside 0..4")]
    for fn, hint in cases:
        with pytest.raises(CheckFailed, match=hint):
            check.make_recall_batch_example(fn)


def test_make_recall_batch_shared_draw_gets_the_per_value_hint():
    def one_label(batch_size, distance, vocab=data.RecallVocab(), rng=None):
        x, y = own_recall_batch(batch_size, distance, vocab, rng)
        y = np.full(batch_size, rng.integers(0, vocab.n_symbols - 1))  # also never returns the top id
        x[:, 0] = y
        return x, y

    def tiled_noise(batch_size, distance, vocab=data.RecallVocab(), rng=None):
        x, y = own_recall_batch(batch_size, distance, vocab, rng)
        x[:, 1:-1] = rng.integers(vocab.n_symbols, vocab.n_symbols + vocab.n_noise, size=distance - 1)
        return x, y

    for fn in (one_label, tiled_noise):
        for c in (check.make_recall_batch_example, check.make_recall_batch):
            with pytest.raises(CheckFailed, match="draw one value per sequence/position") as info:
                c(fn)
            assert "never returns `high`" not in str(info.value)


def test_rnn_forward_state_count_and_list_hints():
    def with_h0(x, h0, W_xh, W_hh, b):
        hs, h = own_forward(x, h0, W_xh, W_hh, b)
        return np.concatenate([h0[:, None], hs], axis=1), h

    def as_list(x, h0, W_xh, W_hh, b):
        hs, h = own_forward(x, h0, W_xh, W_hh, b)
        return [hs[:, t] for t in range(hs.shape[1])], h

    with pytest.raises(CheckFailed, match="return the T states h_1..h_T; don't include h0"):
        check.rnn_forward_example(with_h0)
    with pytest.raises(CheckFailed, match=r"you returned a list; use np.stack\(states, axis=1\)"):
        check.rnn_forward_example(as_list)


def test_jacobian_transposed_factors_hint():
    fn = chain_variant(lambda st, s, W: ((1 - st[s] ** 2)[:, None] * W).T)
    with pytest.raises(CheckFailed, match="or each factor transposed"):
        check.jacobian_norms_example(fn)


@pytest.mark.parametrize("fn", [timing_variant(statistics.mean), timing_variant(min), timing_variant(sum),
                                lambda fn_, lengths, repeats=5: [fn_(L) for L in lengths for _ in range(repeats)]
                                and [L / 1000 for L in lengths]])
def test_measure_time_visible_check_needs_the_median(fn):
    with pytest.raises(CheckFailed):
        check.measure_time_example(fn)


def test_a_stub_is_reported_as_a_stub_even_when_its_dependency_is_wrong():
    def stub(*args, **kwargs):
        raise NotImplementedError()

    bad_forward = forward_variant(lambda xt, h, h0, Wx, Wh, b: np.tanh(xt @ Wx.T + h @ Wh.T))
    with pytest.raises(CheckFailed, match="jacobian_norms is not implemented yet"):
        check.jacobian_norms_example(with_globals(stub, rnn_forward=bad_forward))
    with pytest.raises(CheckFailed, match="train_recall_rnn is not implemented yet"):
        check.train_recall_rnn_example(with_globals(stub, make_recall_batch=batch_variant(no_label=True)))


def test_calling_the_reference_is_reported_even_when_the_dependency_is_wrong():
    def via_reference(x, h0, W_xh, W_hh, b):
        rnn_forward(x[None], h0[None], W_xh, W_hh, b)  # noqa: F821 - the notebook's, see with_globals
        return rnn.jacobian_norms(x, h0, W_xh, W_hh, b)

    bad_forward = forward_variant(lambda xt, h, h0, Wx, Wh, b: np.tanh(xt @ Wx.T + h @ Wh.T))
    with pytest.raises(CheckFailed, match="reference implementation") as info:
        check.jacobian_norms_example(with_globals(via_reference, rnn_forward=bad_forward))
    assert "fails its checks" not in str(info.value)
