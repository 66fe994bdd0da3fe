"""Attention (notebook 02): the reference implementations, parity with torch's fused
attention, and the grading checks against the reference and against each named mistake."""
from __future__ import annotations

import math
import types

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from transformer_course import attention as ref
from transformer_course.data import RecallVocab, make_recall_batch
from transformer_course.grading import CheckFailed
from transformer_course.grading import attention as check
from check_tools import fails_with


def sdpa(q, k, v, mask=None, **kwargs):
    """torch's fused attention on numpy inputs, as float64 numpy."""
    t = lambda a: None if a is None else torch.as_tensor(a)  # noqa: E731
    return F.scaled_dot_product_attention(t(q), t(k), t(v), attn_mask=t(mask), **kwargs).numpy()


# ============================================================ reference: numpy ===

class TestSoftmax:
    def test_matches_torch(self):
        x = np.random.default_rng(0).normal(size=(3, 4, 5))
        for axis in (-1, 0, 1):
            np.testing.assert_allclose(ref.softmax(x, axis=axis), torch.softmax(torch.tensor(x), dim=axis).numpy(),
                                       atol=1e-12)

    def test_huge_logits(self):
        x = np.array([[1000.0, 1001.0, 1002.0], [-1000.0, -1001.0, -1002.0]])
        out = ref.softmax(x)
        assert np.all(np.isfinite(out))
        np.testing.assert_allclose(out[0], ref.softmax(np.array([0.0, 1.0, 2.0])), atol=1e-12)
        np.testing.assert_allclose(out.sum(-1), 1.0)

    def test_all_minus_inf_row_gives_zeros(self):
        x = np.array([[-np.inf, -np.inf], [0.0, -np.inf]])
        with np.errstate(all="raise"):          # and without a floating-point warning
            out = ref.softmax(x)
        np.testing.assert_array_equal(out, [[0.0, 0.0], [1.0, 0.0]])

    def test_does_not_modify_input(self):
        x = np.array([[1.0, 2.0]])
        ref.softmax(x)
        np.testing.assert_array_equal(x, [[1.0, 2.0]])

    def test_torch_version_matches_and_zeroes_empty_rows(self):
        x = torch.randn(4, 6, dtype=torch.float64)
        torch.testing.assert_close(ref.softmax_torch(x), torch.softmax(x, -1))
        x[1] = -math.inf
        out = ref.softmax_torch(x)
        assert torch.equal(out[1], torch.zeros(6, dtype=torch.float64))


@pytest.mark.parametrize("batch", [(), (3,), (2, 3)])
@pytest.mark.parametrize("n_q,n_k,d_k,d_v", [(1, 1, 1, 1), (4, 6, 8, 5), (7, 3, 16, 2)])
def test_numpy_attention_matches_torch(batch, n_q, n_k, d_k, d_v):
    gen = np.random.default_rng(n_q * 100 + n_k)
    q, k, v = gen.normal(size=(*batch, n_q, d_k)), gen.normal(size=(*batch, n_k, d_k)), gen.normal(size=(*batch, n_k, d_v))
    out, w = ref.scaled_dot_product_attention(q, k, v)
    assert out.shape == (*batch, n_q, d_v) and w.shape == (*batch, n_q, n_k)
    np.testing.assert_allclose(out, sdpa(q, k, v), atol=1e-12)
    np.testing.assert_allclose(w.sum(-1), 1.0)
    mask = gen.random(size=(n_q, n_k)) < 0.5
    mask[0] = False                                           # a query that sees nothing
    out, w = ref.scaled_dot_product_attention(q, k, v, mask)
    np.testing.assert_allclose(out, sdpa(q, k, v, mask), atol=1e-12)
    assert np.all(w[..., 0, :] == 0) and np.all(out[..., 0, :] == 0)


def test_torch_sdpa_zeroes_fully_masked_rows():
    """The convention our softmax follows is torch's (2.x): a fully masked query outputs 0."""
    q, k, v = torch.randn(1, 3, 4), torch.randn(1, 5, 4), torch.randn(1, 5, 2)
    mask = torch.ones(3, 5, dtype=torch.bool)
    mask[1] = False
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert torch.equal(out[0, 1], torch.zeros(2))
    out_bias = F.scaled_dot_product_attention(q, k, v, attn_mask=ref.mask_to_bias(mask))
    torch.testing.assert_close(out_bias, out)


def test_causal_mask():
    m = ref.causal_mask(4)
    assert m.dtype == bool and m.shape == (4, 4)
    np.testing.assert_array_equal(m, np.tril(np.ones((4, 4), dtype=bool)))
    assert m[2, 2] and m[2, 0] and not m[0, 2]
    assert torch.equal(ref.causal_mask(4, device="cpu"), torch.from_numpy(m))
    gen = np.random.default_rng(1)
    q, k, v = (gen.normal(size=(2, 6, 8)) for _ in range(3))
    np.testing.assert_allclose(ref.scaled_dot_product_attention(q, k, v, ref.causal_mask(6))[0],
                               sdpa(q, k, v, is_causal=True), atol=1e-12)


def test_padding_mask_shapes_and_broadcasting():
    m = ref.padding_mask(np.array([3, 1, 0]), 4)
    assert m.shape == (3, 1, 4) and m.dtype == bool
    np.testing.assert_array_equal(m[:, 0], [[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]])
    mt = ref.padding_mask(torch.tensor([3, 1, 0]), 4)
    assert isinstance(mt, torch.Tensor) and torch.equal(mt, torch.from_numpy(m))
    gen = np.random.default_rng(2)
    # (B, 1, n_k) against (B, n_q, n_k) scores; [:, None] against (B, h, n_q, n_k)
    q, k, v = gen.normal(size=(3, 5, 8)), gen.normal(size=(3, 4, 8)), gen.normal(size=(3, 4, 2))
    out, w = ref.scaled_dot_product_attention(q, k, v, m)
    np.testing.assert_allclose(out, sdpa(q, k, v, m), atol=1e-12)
    assert np.all(w[:, :, 3] == 0) and np.all(w[2] == 0)
    q4, k4, v4 = gen.normal(size=(3, 2, 5, 8)), gen.normal(size=(3, 2, 4, 8)), gen.normal(size=(3, 2, 4, 2))
    np.testing.assert_allclose(ref.scaled_dot_product_attention(q4, k4, v4, m[:, None])[0],
                               sdpa(q4, k4, v4, m[:, None]), atol=1e-12)


def test_mask_to_bias_has_no_nan_and_matches_bool_mask():
    mask = ref.padding_mask(np.array([2, 0, 3]), 3)
    bias = ref.mask_to_bias(mask)
    assert bias.dtype == np.float64 and not np.isnan(bias).any()
    assert np.all(bias[mask] == 0.0) and np.all(np.isneginf(bias[~mask]))
    with np.errstate(invalid="ignore"):
        assert np.isnan((1 - mask) * -np.inf).any()          # the bug the function avoids
    gen = np.random.default_rng(3)
    q, k, v = gen.normal(size=(3, 4, 8)), gen.normal(size=(3, 3, 8)), gen.normal(size=(3, 3, 5))
    np.testing.assert_allclose(sdpa(q, k, v, bias), sdpa(q, k, v, mask), atol=1e-12)
    tb = ref.mask_to_bias(torch.from_numpy(mask))
    assert tb.dtype == torch.float32 and torch.equal(tb.double(), torch.from_numpy(bias))


def test_qk_variance_grows_like_d_k():
    for d_k in (1, 16, 256):
        raw, scaled = ref.qk_variance(d_k, n_samples=20_000, seed=0)
        assert abs(raw / d_k - 1) < 0.05 and abs(scaled - 1) < 0.05
    assert ref.qk_variance(8, 1000, seed=1) == ref.qk_variance(8, 1000, seed=1)


# ============================================================ reference: torch ===

@pytest.mark.parametrize("shape_q,shape_k,d_v", [((5, 8), (7, 8), 3), ((2, 5, 8), (2, 7, 8), 4),
                                                  ((2, 3, 6, 16), (2, 3, 6, 16), 16)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torch_attention_both_paths_match_sdpa(shape_q, shape_k, d_v, dtype):
    torch.manual_seed(0)
    q, k = torch.randn(shape_q, dtype=dtype), torch.randn(shape_k, dtype=dtype)
    v = torch.randn(*shape_k[:-1], d_v, dtype=dtype)
    n_q, n_k = shape_q[-2], shape_k[-2]
    bool_mask = torch.rand(n_q, n_k) < 0.6
    bool_mask[0] = False
    tol = dict(atol=1e-5, rtol=1e-4) if dtype == torch.float32 else dict(atol=1e-12, rtol=1e-10)
    for mask in (None, bool_mask, ref.mask_to_bias(bool_mask).to(dtype)):
        expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        fast, none = ref.attention(q, k, v, mask)
        plain, w = ref.attention(q, k, v, mask, need_weights=True)
        assert none is None and w.shape == (*shape_q[:-1], n_k)
        torch.testing.assert_close(fast, expected, **tol)
        torch.testing.assert_close(plain, expected, **tol)
    causal = torch.ones(n_q, n_k, dtype=torch.bool).tril()       # top-left aligned, as torch's is_causal
    for extra in (None, bool_mask):
        if extra is None:
            expected = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            expected = F.scaled_dot_product_attention(q, k, v, attn_mask=extra & causal)
        torch.testing.assert_close(ref.attention(q, k, v, extra, is_causal=True)[0], expected, **tol)
        torch.testing.assert_close(ref.attention(q, k, v, extra, is_causal=True, need_weights=True)[0],
                                   expected, **tol)


def test_torch_attention_gradients_match_sdpa():
    torch.manual_seed(1)
    q, k, v = (torch.randn(2, 3, 5, 8, dtype=torch.float64, requires_grad=True) for _ in range(3))
    mask = torch.rand(5, 5) < 0.7
    mask[:, 0] = True
    g = torch.randn(2, 3, 5, 8, dtype=torch.float64)
    grads = torch.autograd.grad((ref.attention(q, k, v, mask, need_weights=True)[0] * g).sum(), (q, k, v))
    expected = torch.autograd.grad((F.scaled_dot_product_attention(q, k, v, attn_mask=mask) * g).sum(), (q, k, v))
    for a, b in zip(grads, expected):
        torch.testing.assert_close(a, b)


# ====================================================== checks: reference passes ===

def test_checks_pass_on_the_reference(capsys):
    check.softmax_example(_copy(ref.softmax))
    check.softmax(_copy(ref.softmax))
    check.scaled_dot_product_attention_example(_copy(ref.scaled_dot_product_attention))
    check.scaled_dot_product_attention(_copy(ref.scaled_dot_product_attention))
    check.attention_torch_example(_torch_answer)
    check.attention_torch(_torch_answer)
    check.causal_mask_example(_copy(ref.causal_mask))
    check.causal_mask(_copy(ref.causal_mask))
    check.padding_mask_example(_copy(ref.padding_mask), _copy(ref.mask_to_bias))
    check.padding_mask(_copy(ref.padding_mask), _copy(ref.mask_to_bias))
    check.qk_variance_example(_copy(ref.qk_variance))
    check.qk_variance(_copy(ref.qk_variance))
    out = capsys.readouterr()
    assert out.err == ""
    assert out.out.count("all checks passed") == 12


def _copy(fn):
    """The reference's code under a new code object, as a learner would write it."""
    code = fn.__code__.replace(co_consts=fn.__code__.co_consts + (None,))   # a distinct code object
    return types.FunctionType(code, fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)


def _torch_answer(q, k, v, mask=None):
    """A learner's torch attention: manual, returning (output, weights)."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, -math.inf)
    m = scores.amax(-1, keepdim=True).detach()
    e = torch.exp(scores - torch.where(torch.isfinite(m), m, torch.zeros_like(m)))
    s = e.sum(-1, keepdim=True)
    w = e / torch.where(s == 0, torch.ones_like(s), s)
    return w @ v, w


# ============================================================ checks: mistakes ===

def _softmax_no_shift(x, axis=-1):
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)


def _softmax_wrong_axis(x, axis=-1):
    other = 0 if np.ndim(x) > 1 and axis in (-1, np.ndim(x) - 1) else -1
    m = x.max(axis=other, keepdims=True)
    e = np.exp(x - np.where(np.isfinite(m), m, 0))
    s = e.sum(axis=other, keepdims=True)
    return e / np.where(s == 0, 1, s)


def _softmax_nan_rows(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _softmax_global_max(x, axis=-1):
    e = np.exp(x - x.max())
    return e / e.sum(axis=axis, keepdims=True)


def _softmax_in_place(x, axis=-1):
    x -= np.where(np.isfinite(x.max(axis=axis, keepdims=True)), x.max(axis=axis, keepdims=True), 0)
    e = np.exp(x)
    s = e.sum(axis=axis, keepdims=True)
    return e / np.where(s == 0, 1, s)


@pytest.mark.parametrize("wrong,hint", [
    (_softmax_no_shift, "without subtracting the maximum"),
    (_softmax_wrong_axis, "weights do not sum to 1 along the key axis: softmax over the wrong dimension?"),
    (_softmax_nan_rows, "entirely -inf"),
    (_softmax_global_max, "maximum of the whole array"),
    (_softmax_in_place, "in place"),
])
def test_softmax_mistakes(wrong, hint):
    with np.errstate(all="ignore"):
        fails_with(check.softmax, wrong, hint=hint)
        if wrong is not _softmax_global_max:            # the example has no far-apart rows
            fails_with(check.softmax_example, wrong, hint=hint)


def _np_attention(scale=None, axis=-1, mask_mode="ok", transpose=False):
    def attention(q, k, v, mask=None):
        d_k = q.shape[-1]
        kt = k.T if transpose else np.swapaxes(k, -1, -2)
        scores = q @ kt * (1 / math.sqrt(d_k) if scale is None else scale(d_k))
        if mask is not None and mask_mode == "indexing":
            scores[~mask] = -np.inf
        if mask is not None and mask_mode == "ok":
            scores = np.where(mask, scores, -np.inf)
        if mask is not None and mask_mode == "inverted":
            scores = np.where(mask, -np.inf, scores)
        w = ref.softmax(scores, axis=axis)
        if mask is not None and mask_mode == "after":
            w = w * mask
        return w @ v, w
    return attention


NP_MISTAKES = [
    (dict(scale=lambda d: 1.0), "not scaled"),
    (dict(scale=lambda d: 1.0 / d), "divided by d_k instead of sqrt(d_k)"),
    (dict(axis=-2), "softmax over the wrong dimension"),
    (dict(mask_mode="ignored"), "masked keys still get weight"),
    (dict(mask_mode="inverted"), "wrong way round"),
    (dict(mask_mode="after"), "after the softmax"),
    (dict(transpose=True), "swapaxes"),
    (dict(mask_mode="indexing"), "BROADCAST"),
]


@pytest.mark.parametrize("kwargs,hint", NP_MISTAKES)
def test_numpy_attention_mistakes(kwargs, hint):
    with np.errstate(all="ignore"):
        fails_with(check.scaled_dot_product_attention, _np_attention(**kwargs), hint=hint)
        if "transpose" not in kwargs and kwargs.get("mask_mode") != "indexing":   # the example is not batched
            fails_with(check.scaled_dot_product_attention_example, _np_attention(**kwargs), hint=hint)


def _torch_wrong(kind):
    def attention(q, k, v, mask=None):
        d_k = q.shape[-1]
        scale = {"no_scale": 1.0, "d_k": 1.0 / d_k}.get(kind, 1 / math.sqrt(d_k))
        scores = q @ k.transpose(-2, -1) * scale
        if mask is not None and kind != "mask_ignored":
            scores = scores.masked_fill(~mask, -1e9 if kind == "finite_mask" else -math.inf)
        if kind == "nan_rows":
            w = torch.softmax(scores, dim=-1)
        else:
            w = ref.softmax_torch(scores, dim=-2 if kind == "axis" else -1)
        if kind == "numpy":
            return (w @ v).detach().numpy(), w.detach().numpy()
        if kind == "detached":
            return torch.tensor((w @ v).detach().numpy()), w
        if kind == "sdpa":
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask), w
        if kind == "reference":
            return ref.attention(q, k, v, mask)[0], w
        return w @ v, w
    return attention


@pytest.mark.parametrize("kind,hint,in_example", [
    ("no_scale", "not scaled", True),
    ("d_k", "divided by d_k instead of sqrt(d_k)", True),
    ("axis", "softmax over the wrong dimension", True),
    ("mask_ignored", "masked keys still get weight", True),
    ("nan_rows", "entirely -inf", False),
    ("finite_mask", "not a large negative number", False),
    ("numpy", "return torch tensors", True),
    ("detached", "autograd graph", False),
    ("sdpa", "calls torch.nn.functional.scaled_dot_product_attention", True),
    ("reference", "calls transformer_course.attention", True),
])
def test_torch_attention_mistakes(kind, hint, in_example):
    fails_with(check.attention_torch, _torch_wrong(kind), hint=hint)
    if in_example:
        fails_with(check.attention_torch_example, _torch_wrong(kind), hint=hint)


@pytest.mark.parametrize("wrong,hint", [
    (lambda n: np.triu(np.ones((n, n), dtype=bool)), "wrong triangle"),
    (lambda n: np.tril(np.ones((n, n), dtype=bool), k=-1), "diagonal is excluded"),
    (lambda n: np.triu(np.ones((n, n), dtype=bool), k=1), "marks the blocked positions"),
    (lambda n: np.tril(np.ones((n, n))), "dtype bool"),
    (lambda n: ref.causal_mask(n), "the very thing this exercise asks you to write"),
])
def test_causal_mask_mistakes(wrong, hint):
    fails_with(check.causal_mask_example, wrong, hint=hint)
    fails_with(check.causal_mask, wrong, hint=hint)


def _pad(kind):
    def padding_mask(lengths, max_len):
        pos = np.arange(max_len)[None, :]
        m = {"le": pos <= lengths[:, None], "inverted": pos >= lengths[:, None]}.get(kind, pos < lengths[:, None])
        return m if kind == "no_query_axis" else m[:, None, :]
    return padding_mask


def _bias(kind):
    def mask_to_bias(mask):
        if kind == "nan":
            return (1 - mask) * -np.inf                     # 0 * inf = NaN where mask is True
        if kind == "inverted":
            return np.where(mask, -np.inf, 0.0)
        if kind == "finite":
            return np.where(mask, 0.0, -1e9)
        return np.where(mask, 0.0, -np.inf)
    return mask_to_bias


@pytest.mark.parametrize("pad,bias,hint", [
    ("le", "ok", "off by one"),
    ("inverted", "ok", "padding mask is inverted"),
    ("no_query_axis", "ok", "query axis of size 1"),
    ("ok", "nan", "0 * inf is NaN"),
    ("ok", "inverted", "bias is inverted"),
    ("ok", "finite", "not a large finite number"),
])
def test_padding_mask_mistakes(pad, bias, hint):
    with np.errstate(all="ignore"):
        fails_with(check.padding_mask_example, _pad(pad), _bias(bias), hint=hint)
        fails_with(check.padding_mask, _pad(pad), _bias(bias), hint=hint)


def _variance(kind):
    def qk_variance(d_k, n_samples=20_000, seed=0):
        if kind == "hard_coded":
            return float(d_k), 1.0
        gen = np.random.default_rng(seed)
        draw = gen.random if kind == "uniform" else gen.standard_normal
        dots = (draw((n_samples, d_k)) * draw((n_samples, d_k))).sum(-1)
        if kind == "std":
            return dots.std(), (dots / math.sqrt(d_k)).std()
        return dots.var(), (dots / (d_k if kind == "d_k" else math.sqrt(d_k))).var()
    return qk_variance


@pytest.mark.parametrize("kind,hint,in_example", [
    ("d_k", "divided by d_k instead of sqrt(d_k)", True),
    ("std", "standard deviation", True),
    ("uniform", "mean 0 and variance 1", True),
    ("hard_coded", "same numbers for two different seeds", False),
])
def test_qk_variance_mistakes(kind, hint, in_example):
    fails_with(check.qk_variance, _variance(kind), hint=hint)
    if in_example:
        fails_with(check.qk_variance_example, _variance(kind), hint=hint)


def test_not_implemented_is_reported_without_noise():
    def stub(*args, **kwargs):
        raise NotImplementedError()
    for visible in (check.softmax_example, check.scaled_dot_product_attention_example, check.attention_torch_example,
                    check.causal_mask_example, check.qk_variance_example):
        message = fails_with(visible, stub, hint="")
        assert "not implemented yet" in message and "worked example" not in message
    fails_with(check.padding_mask_example, stub, stub, hint="")
    with pytest.raises(CheckFailed, match="not implemented"):
        check.attention_torch(stub)


# =============================================================== recall model ===

class _RecallModel(nn.Module):
    """The notebook's answer, in miniature: embed, the last position attends, classify."""

    def __init__(self, vocab_size, n_classes, d_model=32, positions=False):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_model)
        self.pos = nn.Embedding(256, d_model) if positions else None
        self.to_q, self.to_k, self.to_v = (nn.Linear(d_model, d_model, bias=False) for _ in range(3))
        self.classify = nn.Linear(d_model, n_classes)

    def forward(self, x, return_weights=False):
        e = self.embed(x)
        if self.pos is not None:
            e = e + self.pos(torch.arange(x.shape[1]))
        out, w = ref.attention(self.to_q(e[:, -1:]), self.to_k(e), self.to_v(e), need_weights=True)
        logits = self.classify(out[:, 0])
        return (logits, w[:, 0]) if return_weights else logits


def _train(model, steps=250, max_distance=64):
    torch.manual_seed(0)
    gen = np.random.default_rng(0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        x, y = make_recall_batch(64, int(gen.integers(2, max_distance + 1)), rng=gen)
        loss = F.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


@pytest.fixture(scope="module")
def trained_recall_model():
    torch.manual_seed(0)
    vocab = RecallVocab()
    return _train(_RecallModel(vocab.size, vocab.n_symbols))


def test_recall_checks_pass_on_a_trained_attention_model(trained_recall_model, capsys):
    check.recall_model_example(trained_recall_model)
    check.recall_model(trained_recall_model)
    assert trained_recall_model.training             # the check restores the mode
    assert capsys.readouterr().err == ""


def test_recall_checks_fail_an_untrained_model():
    torch.manual_seed(0)
    vocab = RecallVocab()
    fails_with(check.recall_model_example, _RecallModel(vocab.size, vocab.n_symbols), hint="attend over")


def test_recall_check_explains_a_missing_model():
    fails_with(check.recall_model_example, None, hint="complete RecallAttention")


# ============================================== review findings: fair and unfair ===

def _softmax_no_keepdims(x, axis=-1):
    m = np.max(x, axis=axis)                             # keepdims forgotten
    e = np.exp(x - np.where(np.isfinite(m), m, 0))
    s = e.sum(axis=axis, keepdims=True)
    return e / np.where(s == 0, 1, s)


def _softmax_global_max_protected(x, axis=-1):
    e = np.exp(x - np.max(x))
    return np.nan_to_num(e / e.sum(axis=axis, keepdims=True))      # 0/0 replaced by 0


def _softmax_finite_inf(x, axis=-1):
    x = np.where(np.isneginf(x), -1e9, x)                # -inf replaced by a large negative number
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@pytest.mark.parametrize("wrong,hint", [
    (_softmax_no_keepdims, "without keepdims=True"),
    (_softmax_global_max_protected, "its exponentials underflowed"),
    (_softmax_finite_inf, "replacing -inf by a large finite number"),
    (_softmax_global_max, "maximum of the whole array"),
])
def test_softmax_review_mistakes(wrong, hint):
    with np.errstate(all="ignore"):
        fails_with(check.softmax_example, wrong, hint=hint)
        fails_with(check.softmax, wrong, hint=hint)


def test_softmax_example_is_not_square():
    """A square example hides a forgotten keepdims behind the 'no max shift' hint."""
    message = fails_with(check.softmax_example, _softmax_no_keepdims, hint="keepdims")
    assert "softmax(example) raised ValueError" in message and "without subtracting" not in message


_NP_ATTENTION_SOURCE = """
def scaled_dot_product_attention(q, k, v, mask=None):
    scores = q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    weights = softmax(scores, axis=-1)
    return weights @ v, weights
"""


def _attention_using(softmax_fn):
    """A learner's notebook namespace: their attention calls their own softmax."""
    namespace = {"np": np, "math": math, "softmax": softmax_fn}
    exec(_NP_ATTENTION_SOURCE, namespace)                 # noqa: S102 - test fixture
    return namespace["scaled_dot_product_attention"]


@pytest.mark.parametrize("broken", [_softmax_no_keepdims, _softmax_finite_inf, _softmax_nan_rows])
def test_attention_blames_a_broken_softmax(broken):
    checks = [check.scaled_dot_product_attention]
    if broken is _softmax_no_keepdims:                   # the example has no all-masked query
        checks.append(check.scaled_dot_product_attention_example)
    with np.errstate(all="ignore"):
        for check_fn in checks:
            message = fails_with(check_fn, _attention_using(broken), hint="softmax from exercise 1 fails")
            assert message.startswith("your softmax from exercise 1")


def test_attention_with_a_good_softmax_passes(capsys):
    check.scaled_dot_product_attention_example(_attention_using(_copy(ref.softmax)))
    check.scaled_dot_product_attention(_attention_using(_copy(ref.softmax)))
    assert capsys.readouterr().err == ""


def _np_variant(kind):
    def scaled_dot_product_attention(q, k, v, mask=None):
        d_k = q.shape[-1]
        if kind == "torch_transpose":
            kt = k.transpose(-2, -1)                     # a torch habit: a no-op on 2-D numpy
        elif kind == "transpose_021":
            kt = k.transpose(0, 2, 1)                    # only right for exactly 3 axes
        else:
            kt = np.swapaxes(k, -1, -2)
        scale = {"float32_scale": 1 / np.sqrt(np.float32(d_k))}.get(kind, 1 / math.sqrt(d_k))
        if kind == "eps_scale":
            scale = 1 / math.sqrt(d_k + 1e-5)
        scores = q @ kt * scale
        if kind == "raises":
            raise KeyError("something the learner did")
        if mask is not None:
            scores = np.where(mask, scores, -np.inf)
        w = ref.softmax(scores, axis=-1)
        if kind == "swapped":
            return w, w @ v
        return w @ v, w
    return scaled_dot_product_attention


@pytest.mark.parametrize("kind,hint", [
    ("swapped", "output and weights are swapped"),
    ("torch_transpose", "k.transpose(-2, -1) on a 2-D numpy array changes nothing"),
    ("transpose_021", "k.transpose(0, 2, 1) fails unless"),
    ("eps_scale", "right only to about float32 precision"),
    ("raises", "raised KeyError: 'something the learner did'"),
])
def test_numpy_attention_review_mistakes(kind, hint):
    fails_with(check.scaled_dot_product_attention_example, _np_variant(kind), hint=hint)
    fails_with(check.scaled_dot_product_attention, _np_variant(kind), hint=hint)


def test_exceptions_name_the_case():
    message = fails_with(check.scaled_dot_product_attention_example, _np_variant("raises"), hint="")
    assert message.startswith("scaled_dot_product_attention(example) raised KeyError")
    with pytest.raises(CheckFailed) as info:
        check.scaled_dot_product_attention(_np_variant("raises"))
    assert isinstance(info.value.__cause__, KeyError)       # the original traceback stays chained


def test_a_float32_scale_is_not_punished():
    check.scaled_dot_product_attention_example(_np_variant("float32_scale"))
    check.scaled_dot_product_attention(_np_variant("float32_scale"))

    def attention_torch(q, k, v, mask=None):
        scores = q @ k.transpose(-2, -1) / torch.sqrt(torch.tensor(q.shape[-1]))   # scale in float32
        if mask is not None:
            scores = scores.masked_fill(~mask, -math.inf)
        w = ref.softmax_torch(scores)
        return w @ v, w

    for _ in range(3):                                     # fresh random inputs each time
        check.attention_torch_example(attention_torch)
        check.attention_torch(attention_torch)


def test_float64_tolerance_still_catches_the_smallest_listed_mistake():
    """1/d_k instead of 1/sqrt(d_k) on GPT-2-like scores is about 3e-3 off: far outside TOL64."""
    assert check.TOL64["atol"] <= 1e-6 and check.TOL64["rtol"] <= 1e-5


@pytest.mark.parametrize("name", ["aten", "aten_default", "math"])
def test_torch_attention_cannot_hide_the_fused_kernel(name):
    def attention_torch(q, k, v, mask=None):
        w = ref.softmax_torch(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]))
        if name == "aten":
            out = torch.ops.aten.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        elif name == "aten_default":
            out = torch.ops.aten.scaled_dot_product_attention.default(q, k, v, attn_mask=mask)
        else:
            out, w = torch._scaled_dot_product_attention_math(q, k, v, attn_mask=mask)
        return out, w
    fails_with(check.attention_torch_example, attention_torch, hint="a reference implementation")


def test_a_float32_bias_is_accepted(capsys):
    def mask_to_bias(mask):
        return np.where(mask, 0.0, -np.inf).astype(np.float32)
    check.padding_mask_example(_copy(ref.padding_mask), mask_to_bias)
    check.padding_mask(_copy(ref.padding_mask), mask_to_bias)
    assert capsys.readouterr().err == ""


def test_qk_variance_building_the_full_matrix_fails_fast():
    def qk_variance(d_k, n_samples=20_000, seed=0):
        gen = np.random.default_rng(seed)
        q, k = gen.standard_normal((n_samples, d_k)), gen.standard_normal((n_samples, d_k))
        dots = np.diag(q @ k.T)                           # an n_samples x n_samples matrix
        return float(dots.var()), float((dots / math.sqrt(d_k)).var())
    fails_with(check.qk_variance_example, qk_variance, hint="(q * k).sum(axis=-1)")
    fails_with(check.qk_variance, qk_variance, hint="do not build q @ k.T")


class _NoAttention(nn.Module):
    """The review's undeserved pass: embedding, max over time, linear; placeholder weights."""

    def __init__(self, vocab_size, n_classes, d_model=32, softmax_out=False, weights_3d=False):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_model)
        self.classify = nn.Linear(d_model, n_classes)
        self.softmax_out, self.weights_3d = softmax_out, weights_3d

    def forward(self, x, return_weights=False):
        logits = self.classify(self.embed(x).amax(dim=1))
        if self.softmax_out:
            logits = torch.softmax(logits, -1)
        weights = torch.full(x.shape, 1.0 / x.shape[1])
        if self.weights_3d:
            weights = weights[:, None]
        return (logits, weights) if return_weights else logits


@pytest.fixture(scope="module")
def trained_no_attention():
    torch.manual_seed(0)
    vocab = RecallVocab()
    return _train(_NoAttention(vocab.size, vocab.n_symbols))


def test_recall_without_attention_fails_the_hidden_check(trained_no_attention):
    check.recall_model_example(trained_no_attention)        # accurate, and the weights have the right shape...
    message = fails_with(check.recall_model, trained_no_attention, hint="the answer must come from attention")
    assert "median weight" in message                        # ...but they do not pick out the symbol


class _AttentionVariant(_RecallModel):
    def __init__(self, vocab_size, n_classes, kind):
        super().__init__(vocab_size, n_classes)
        self.kind = kind

    def forward(self, x, return_weights=False):
        e = self.embed(x)
        out, w = ref.attention(self.to_q(e[:, -1:]), self.to_k(e), self.to_v(e), need_weights=True)
        logits = self.classify(out[:, 0])
        if self.kind == "double_softmax":
            logits = torch.softmax(logits, -1)
        if self.kind == "weights_3d":
            return (logits, w) if return_weights else logits
        return (logits, w[:, 0]) if return_weights else logits


@pytest.mark.parametrize("kind,hint", [
    ("double_softmax", "not probabilities"),
    ("weights_3d", "shape (B, T)"),
])
def test_recall_visible_check_reads_logits_and_weights(kind, hint):
    vocab = RecallVocab()
    model = _AttentionVariant(vocab.size, vocab.n_symbols, kind)
    fails_with(check.recall_model_example, model, hint=hint)
    fails_with(check.recall_model, model, hint=hint)


def test_recall_model_with_a_position_table_names_the_case():
    vocab = RecallVocab()

    class Positional(_RecallModel):
        def __init__(self):
            super().__init__(vocab.size, vocab.n_symbols)
            self.pos = nn.Embedding(30, 32)               # a table shorter than the hidden sequences

    message = fails_with(check.recall_model, Positional(), hint="no position table")
    assert "recall_model on 500 sequences at distance 50 raised IndexError" in message


class _FirstPosition(nn.Module):
    """Reads position 0 (where the symbol usually is), and says so in its weights."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(17, 17)
        with torch.no_grad():
            self.embed.weight.copy_(10 * torch.eye(17))

    def forward(self, x, return_weights=False):
        logits = self.embed(x[:, 0])[:, :8]
        weights = F.one_hot(torch.zeros(x.shape[0], dtype=torch.long), x.shape[1]).float()
        return (logits, weights) if return_weights else logits


def test_recall_model_reading_a_fixed_position():
    check.recall_model_example(_FirstPosition())            # the visible example cannot tell...
    fails_with(check.recall_model, _FirstPosition(), hint="reads a fixed position (position 0?)")


def test_reference_softmax_accepts_lists_and_integers():
    # found by the browser test: a learner typing ref.softmax([[1.0, 2.0, 3.0]])
    assert np.allclose(ref.softmax([[1.0, 2.0, 3.0]]).sum(), 1.0)
    assert ref.softmax(np.array([1, 2])).dtype == np.float64
    assert ref.softmax(np.zeros(3, np.float32)).dtype == np.float32


def test_np_dot_on_batched_arrays_is_caught_with_its_hint():
    """COURSE.md's 'a 2-D np.dot on 4-D arrays': it must cost the points, with a hint naming np.dot."""
    def np_dot_attention(q, k, v, mask=None):
        scores = np.dot(q, np.swapaxes(k, -1, -2)) / np.sqrt(q.shape[-1])
        if mask is not None:
            scores = np.where(mask, scores, -np.inf)
        weights = ref.softmax(scores, axis=-1)
        return np.dot(weights, v), weights

    with pytest.raises(CheckFailed, match="np.dot"):
        check.scaled_dot_product_attention(np_dot_attention)
