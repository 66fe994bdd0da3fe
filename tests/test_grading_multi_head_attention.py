"""Multi-head attention (notebook 03): the grading checks against correct answers and against
each planted mistake (the hint that names it must reach the learner)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from transformer_course import attention as ref
from transformer_course.grading import CheckFailed
from transformer_course.grading.core import AnswerFailed
from transformer_course.grading import multi_head_attention as check
from check_tools import fails_with


# ------------------------------------------------------------ learner-style answers ---

def split_heads(x, n_heads):
    B, T, d = x.shape
    return x.reshape(B, T, n_heads, d // n_heads).swapaxes(1, 2)


def merge_heads(x):
    B, h, T, dh = x.shape
    return x.swapaxes(1, 2).reshape(B, T, h * dh)


def np_softmax(x, axis=-1):
    m = np.max(x, axis=axis, keepdims=True)
    e = np.exp(x - m)
    return e / e.sum(axis=axis, keepdims=True)


def make_np_mha(*, scale="head", axis=-1, merge="ok", dot=False, transpose_w=False, transpose_wo=False,
                out_proj=True, softmax=None):
    softmax_fn = softmax or np_softmax

    def multi_head_attention_np(x, w_q, w_k, w_v, w_o, n_heads):
        if transpose_w:
            w_q, w_k, w_v, w_o = w_q.T, w_k.T, w_v.T, w_o.T
        if transpose_wo:
            w_o = w_o.T
        q, k, v = (split_heads(x @ w, n_heads) for w in (w_q, w_k, w_v))
        d_head = q.shape[-1]
        s = {"head": math.sqrt(d_head), "none": 1.0, "model": math.sqrt(x.shape[-1]), "dhead": d_head}[scale]
        scores = (np.dot(q, k.swapaxes(-1, -2)) if dot else q @ k.swapaxes(-1, -2)) / s
        w = softmax_fn(scores, axis=axis)
        o = w @ v
        B, h, T, dh = o.shape
        merged = merge_heads(o) if merge == "ok" else o.reshape(B, T, h * dh)
        return (merged @ w_o if out_proj else merged), w
    return multi_head_attention_np


class MHA(nn.Module):
    """A learner's module; class attributes switch on one mistake at a time."""
    scale = "head"
    axis = -1
    merge = "ok"
    split = "ok"              # ok, view (.view(B, h, T, d_head) inline, no transpose)
    softmax32 = False         # the softmax in float32, cast back (the Hugging Face idiom)
    out_bias = True           # False: merged @ out_proj.weight.T, the bias forgotten
    numpy_softmax = False     # a numpy round trip for the softmax
    kv_from_x = False
    mask_mode = "ok"          # ok, ignored, inverted, no_head_axis, after_softmax, after_softmax_renorm
    causal_mode = "ok"        # ok, ignored, triu
    detach = False
    weights_none = False
    fused = False

    def __init__(self, d_model, n_heads, *, bias=True, dropout=0.0):
        super().__init__()
        self.d_model, self.n_heads, self.d_head = d_model, n_heads, d_model // n_heads
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)
        self.dropout = dropout

    def forward(self, x, memory=None, *, mask=None, is_causal=False, need_weights=False):
        source = x if (memory is None or self.kv_from_x) else memory
        if self.split == "view":
            B, T_q, T_k, h, dh = x.shape[0], x.shape[1], source.shape[1], self.n_heads, self.d_head
            q = self.q_proj(x).view(B, h, T_q, dh)
            k = self.k_proj(source).view(B, h, T_k, dh)
            v = self.v_proj(source).view(B, h, T_k, dh)
        else:
            q = split_heads(self.q_proj(x), self.n_heads)
            k = split_heads(self.k_proj(source), self.n_heads)
            v = split_heads(self.v_proj(source), self.n_heads)
        if self.fused:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=None if mask is None else (
                mask[:, None] if mask.dim() == 3 else mask), is_causal=is_causal)
            return self.out_proj(merge_heads(out)), None
        s = {"head": math.sqrt(self.d_head), "none": 1.0, "model": math.sqrt(self.d_model),
             "dhead": self.d_head}[self.scale]
        scores = q @ k.transpose(-2, -1) / s
        after = None                                   # a mask applied after the softmax
        if mask is not None and self.mask_mode != "ignored":
            if mask.dim() == 3 and self.mask_mode != "no_head_axis":
                mask = mask[:, None]
            if self.mask_mode.startswith("after_softmax"):
                after = mask
            else:
                scores = scores.masked_fill(mask if self.mask_mode == "inverted" else ~mask, float("-inf"))
        if is_causal and self.causal_mode != "ignored":
            n_q, n_k = scores.shape[-2:]
            ones = torch.ones(n_q, n_k, dtype=torch.bool)
            causal = ones.triu() if self.causal_mode == "triu" else ones.tril()
            if self.mask_mode.startswith("after_softmax"):
                after = causal if after is None else after & causal
            else:
                scores = scores.masked_fill(~causal, float("-inf"))
        if self.numpy_softmax:
            # the notebook's softmax computes in float64 (np.asarray(x, dtype=float))
            weights = torch.from_numpy(np_softmax(scores.detach().numpy().astype(float), axis=self.axis))
        elif self.softmax32:
            weights = torch.softmax(scores.float(), dim=self.axis).to(scores.dtype)
        else:
            weights = torch.softmax(scores, dim=self.axis)
        if after is not None:
            weights = weights * after
            if self.mask_mode == "after_softmax_renorm":
                weights = weights / weights.sum(-1, keepdim=True)
        out = weights @ v
        if self.merge == "ok":
            merged = merge_heads(out)
        else:
            B, h, T, dh = out.shape
            merged = out.reshape(B, T, h * dh)
        result = self.out_proj(merged) if self.out_bias else merged @ self.out_proj.weight.T
        if self.detach:
            result = result.detach()
        return result, (None if self.weights_none or not need_weights else weights)


def variant(**attrs):
    return type("MultiHeadAttention", (MHA,), attrs)


def mha_param_count(d_model, n_heads, bias=True):
    return 4 * d_model * d_model + (4 * d_model if bias else 0)


# =================================================================== correct ===

def test_correct_answers_pass(capsys):
    check.split_heads_example(split_heads, merge_heads)
    check.split_heads(split_heads, merge_heads)
    fn = make_np_mha()
    check.mha_numpy_example(fn)
    check.mha_numpy(fn)
    check.multi_head_attention_example(MHA)
    check.multi_head_attention(MHA)
    check.multi_head_attention_masks_example(MHA)
    check.multi_head_attention_masks(MHA)
    check.param_count_example(mha_param_count)
    check.param_count(mha_param_count)
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out.count("all checks passed") == 10


def test_variants_agree_with_torch():
    """The mistake generator with no mistake is torch's nn.MultiheadAttention (so hints are trustworthy)."""
    torch.manual_seed(0)
    theirs = nn.MultiheadAttention(12, 3, batch_first=True, dtype=torch.float64).eval()
    with torch.no_grad():
        theirs.in_proj_bias.normal_()
    x, mem = torch.randn(2, 4, 12, dtype=torch.float64), torch.randn(2, 6, 12, dtype=torch.float64)
    mask = torch.from_numpy(ref.padding_mask(np.array([6, 3]), 6))
    o, w = check._variant(check._params(theirs), x, mem, 3, mask)
    eo, ew = theirs(x, mem, mem, key_padding_mask=~mask[:, 0], need_weights=True, average_attn_weights=False)
    np.testing.assert_allclose(o, eo.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(w, ew.detach().numpy(), atol=1e-12)


def test_mistakes_are_far_from_the_oracle():
    """Every planted mistake differs from the oracle by far more than the tolerance."""
    torch.manual_seed(1)
    theirs = nn.MultiheadAttention(16, 4, batch_first=True, dtype=torch.float64)
    with torch.no_grad():                       # as the checks do: biases that count
        theirs.in_proj_bias.normal_(0.0, 0.5)
        theirs.out_proj.bias.normal_(0.0, 0.5)
    x = torch.randn(2, 5, 16, dtype=torch.float64)
    mem = torch.randn(2, 5, 16, dtype=torch.float64)
    p = check._params(theirs)
    mask = torch.from_numpy(ref.padding_mask(np.array([5, 2]), 5))
    good_o, good_w = check._variant(p, x, mem, 4, mask, causal=True)
    for hint, o, w in check._mistakes(p, x, mem, 4, mask, True):
        gap = max(np.nanmax(np.abs(o - good_o), initial=0), np.nanmax(np.abs(w - good_w), initial=0))
        assert gap > 1e-3 or np.isnan(o).any(), hint


# ============================================================= 1. split / merge ===

def test_split_not_implemented():
    def split_heads_stub(x, n_heads):
        raise NotImplementedError()
    fails_with(check.split_heads_example, split_heads_stub, merge_heads, hint="not implemented yet")


def test_split_without_transpose():
    def bad(x, h):
        B, T, d = x.shape
        return x.reshape(B, h, T, d // h)
    fails_with(check.split_heads_example, bad, merge_heads, hint="without a transpose")
    fails_with(check.split_heads, bad, merge_heads, hint="without a transpose")


def test_merge_without_transpose():
    def bad(x):
        B, h, T, dh = x.shape
        return x.reshape(B, T, h * dh)
    fails_with(check.split_heads_example, split_heads, bad, hint="merge_heads reshaped")
    fails_with(check.split_heads, split_heads, bad, hint="merge_heads reshaped")


def test_split_and_merge_both_without_transpose_still_fail():
    """The round trip of two wrong reshapes is the identity: direct comparisons must catch it."""
    def bad_split(x, h):
        B, T, d = x.shape
        return x.reshape(B, h, T, d // h)

    def bad_merge(x):
        B, h, T, dh = x.shape
        return x.reshape(B, T, h * dh)
    fails_with(check.split_heads, bad_split, bad_merge, hint="without a transpose")


def test_interleaved_heads():
    def bad(x, h):
        B, T, d = x.shape
        return x.reshape(B, T, d // h, h).swapaxes(1, 3).swapaxes(2, 3)
    fails_with(check.split_heads, bad, merge_heads, hint="consecutive chunks")


def test_numpy_transpose_two_axes():
    def bad(x, h):
        B, T, d = x.shape
        return x.reshape(B, T, h, d // h).transpose(1, 2)
    fails_with(check.split_heads_example, bad, merge_heads, hint="numpy's x.transpose")


def test_torch_view_after_transpose():
    def bad_merge(x):
        B, h, T, dh = x.shape
        if isinstance(x, torch.Tensor):
            return x.transpose(1, 2).view(B, T, h * dh)
        return x.swapaxes(1, 2).reshape(B, T, h * dh)
    fails_with(check.split_heads, split_heads, bad_merge, hint=".view")


def test_split_calling_the_reference_fails():
    fails_with(check.split_heads_example, lambda x, h: ref.split_heads(x, h), merge_heads,
               hint="calls transformer_course.attention.split_heads, ")
    fails_with(check.split_heads_example, split_heads, lambda y: ref.merge_heads(y),
               hint="calls transformer_course.attention.merge_heads, ")


def test_split_numpy_only():
    def numpy_only(x, h):
        x = np.asarray(x)
        B, T, d = x.shape
        return x.reshape(B, T, h, d // h).swapaxes(1, 2)
    fails_with(check.split_heads, numpy_only, merge_heads, hint="tensor stays a tensor")


# ================================================================ 2. numpy MHA ===

@pytest.mark.parametrize("kwargs,hint", [
    (dict(dot=True), "np.dot"),
    (dict(scale="none"), "not scaled"),
    (dict(scale="model"), "divided by sqrt(d_model) instead"),
    (dict(scale="dhead"), "divided by d_head instead"),
    (dict(axis=-2), "wrong axis"),
    (dict(merge="reshape"), "merge_heads reshaped"),
    (dict(transpose_w=True), "x @ w_q.T"),
    (dict(transpose_wo=True), "x @ w_q.T"),
    (dict(out_proj=False), "output projection"),
])
def test_numpy_mha_mistakes(kwargs, hint):
    fn = make_np_mha(**kwargs)
    fails_with(check.mha_numpy, fn, hint=hint)
    fails_with(check.mha_numpy_example, fn, hint=hint)


WRONG_SPLIT = ("def split_heads(x, n_heads):\n"
               "    B, T, d = x.shape\n"
               "    return x.reshape(B, n_heads, T, d // n_heads)\n")
NP_MHA_USING_HEADS = ("def multi_head_attention_np(x, w_q, w_k, w_v, w_o, n_heads):\n"
                      "    q, k, v = (split_heads(x @ w, n_heads) for w in (w_q, w_k, w_v))\n"
                      "    w = softmax(q @ k.swapaxes(-1, -2) / math.sqrt(q.shape[-1]))\n"
                      "    return merge_heads(w @ v) @ w_o, w\n")
SPLIT_BLAMED = ("your split_heads from exercise 1 fails its checks, and multi_head_attention_np uses it: fix "
                "split_heads first (run its test cell), then run this cell again.")


def test_numpy_mha_blames_a_wrong_split():
    """A right multi-head attention over a wrong split_heads (called inside a generator expression) is told
    to fix split_heads, in the visible and the hidden check, with what each check saw."""
    namespace = {"np": np, "math": math, "softmax": np_softmax, "merge_heads": merge_heads}
    exec(WRONG_SPLIT + NP_MHA_USING_HEADS, namespace)
    for check_fn in (check.mha_numpy_example, check.mha_numpy):
        message = fails_with(check_fn, namespace["multi_head_attention_np"], hint=SPLIT_BLAMED)
        why, saw = message.split("What split_heads's check says: ")[1].split("\n\nWhat this check saw: ")
        assert why.startswith("split_heads(x = np.arange(") and "without a transpose" in why
        assert "multi_head_attention_np(" in saw.split("\n")[0] and "\nHint: " in saw


def test_numpy_mha_blames_a_wrong_merge():
    namespace = {"np": np, "math": math, "softmax": np_softmax, "split_heads": split_heads}
    exec("def merge_heads(x):\n"
         "    B, h, T, dh = x.shape\n"
         "    return x.reshape(B, T, h * dh)\n" + NP_MHA_USING_HEADS, namespace)
    message = fails_with(check.mha_numpy_example, namespace["multi_head_attention_np"],
                         hint="your merge_heads from exercise 1 fails its checks, and multi_head_attention_np uses it")
    assert "merge_heads reshaped" in message and "split_heads" not in message.split("\n")[0]


def test_numpy_mha_stub_is_not_blamed_on_split():
    """An unfinished answer is told so, even when the split it names is wrong."""
    namespace = {"np": np, "merge_heads": merge_heads}
    exec(WRONG_SPLIT + "def multi_head_attention_np(x, w_q, w_k, w_v, w_o, n_heads):\n"
         "    helper = split_heads\n"
         "    raise NotImplementedError()\n", namespace)
    with pytest.raises(AnswerFailed) as info:
        check.mha_numpy_example(namespace["multi_head_attention_np"])
    assert "not implemented yet" in str(info.value) and "fails its checks" not in str(info.value)


def test_numpy_mha_calling_the_reference_is_not_blamed_on_split():
    namespace = {"np": np, "ref": ref, "merge_heads": merge_heads}
    exec(WRONG_SPLIT + "def multi_head_attention_np(x, w_q, w_k, w_v, w_o, n_heads):\n"
         "    q = split_heads(x @ w_q, n_heads)\n"
         "    return ref.scaled_dot_product_attention(q, q, q)\n", namespace)
    message = fails_with(check.mha_numpy_example, namespace["multi_head_attention_np"],
                         hint="calls transformer_course.attention.scaled_dot_product_attention, ")
    assert "fails its checks" not in message


# ================================================================ 3. the module ===

MODULE_MISTAKES = [
    (dict(merge="reshape"), "merge_heads reshaped"),
    (dict(split="view"), "without a transpose"),
    (dict(split="view", merge="reshape"), "without a transpose"),
    (dict(scale="none"), "not scaled"),
    (dict(scale="model"), "divided by sqrt(d_model) instead"),
    (dict(scale="dhead"), "divided by d_head instead"),
    (dict(axis=-2), "wrong axis"),
    (dict(kv_from_x=True), "memory"),
    (dict(out_bias=False), "bias is missing"),
    (dict(detach=True), "gradient"),
    (dict(numpy_softmax=True), "stay in torch"),
    (dict(weights_none=True), "need_weights=True"),
    (dict(fused=True), "calls torch.nn.functional.scaled_dot_product_attention"),
]
MASK_MISTAKES = [
    (dict(mask_mode="ignored"), "mask was ignored"),
    (dict(mask_mode="inverted"), "wrong way round"),
    (dict(mask_mode="no_head_axis"), "head axis"),
    (dict(mask_mode="after_softmax"), "BEFORE the softmax"),
    (dict(causal_mode="ignored"), "is_causal=True was ignored"),
    (dict(causal_mode="triu"), "wrong triangle"),
]


@pytest.mark.parametrize("attrs,hint", MODULE_MISTAKES)
def test_module_mistakes(attrs, hint):
    fails_with(check.multi_head_attention, variant(**attrs), hint=hint)
    fails_with(check.multi_head_attention_example, variant(**attrs), hint=hint) if attrs not in (
        dict(detach=True), dict(numpy_softmax=True)) else None      # gradients and float32: hidden cases only


@pytest.mark.parametrize("attrs,hint", MASK_MISTAKES)
def test_mask_mistakes(attrs, hint):
    """Each mask mistake loses the masks cell, in the hidden check and already in the visible example,
    and only that cell: the unmasked cases still pass."""
    fails_with(check.multi_head_attention_masks, variant(**attrs), hint=hint)
    fails_with(check.multi_head_attention_masks_example, variant(**attrs), hint=hint)
    check.multi_head_attention(variant(**attrs))


@pytest.mark.parametrize("attrs", [
    dict(softmax32=True),                     # one float32 step inside a float64 computation (S2)
    dict(mask_mode="after_softmax_renorm"),   # zeroed after the softmax and renormalised: the same weights
])
def test_module_valid_variants_pass(attrs):
    check.multi_head_attention_example(variant(**attrs))
    check.multi_head_attention(variant(**attrs))
    check.multi_head_attention_masks(variant(**attrs))


def test_numpy_mha_with_a_float32_step_passes():
    base = make_np_mha()
    check.mha_numpy(lambda x, *ws: base(x.astype(np.float32), *ws))
    check.mha_numpy_example(lambda x, *ws: base(x.astype(np.float32), *ws))


def test_numpy_mha_naive_softmax_overflows():
    def naive(x, axis=-1):
        e = np.exp(x)
        return e / e.sum(axis=axis, keepdims=True)
    fails_with(check.mha_numpy, make_np_mha(softmax=naive), hint="subtracts each row's maximum")


def test_numpy_mha_np_dot_projections_are_fine():
    def fn(x, w_q, w_k, w_v, w_o, n_heads):
        q, k, v = (split_heads(np.dot(x, w), n_heads) for w in (w_q, w_k, w_v))
        w = np_softmax(q @ k.swapaxes(-1, -2) / math.sqrt(q.shape[-1]))
        return np.dot(merge_heads(w @ v), w_o), w
    check.mha_numpy_example(fn)
    check.mha_numpy(fn)


def test_numpy_mha_np_dot_is_not_blamed_for_other_errors():
    def fn(x, w_q, w_k, w_v, w_o, n_heads):
        B, T, d = x.shape
        q = np.dot(x, w_q).reshape(B, T, n_heads, d // n_heads).transpose(1, 2)      # np.dot in fn's own code
        k = np.dot(x, w_k).reshape(B, T, n_heads, d // n_heads).transpose(1, 2)
        v = np.dot(x, w_v).reshape(B, T, n_heads, d // n_heads).transpose(1, 2)
        w = np_softmax(q @ k.swapaxes(-1, -2) / math.sqrt(q.shape[-1]))
        return merge_heads(w @ v) @ w_o, w
    message = fails_with(check.mha_numpy_example, fn, hint="numpy's x.transpose")
    assert "np.dot on arrays" not in message


def test_module_values_from_x_in_cross_attention():
    class ValuesFromX(MHA):
        def forward(self, x, memory=None, *, mask=None, is_causal=False, need_weights=False):
            src = x if memory is None else memory
            q, k = split_heads(self.q_proj(x), self.n_heads), split_heads(self.k_proj(src), self.n_heads)
            v = split_heads(self.v_proj(x), self.n_heads)
            w = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(self.d_head), dim=-1)
            return self.out_proj(merge_heads(w @ v)), w
    fails_with(check.multi_head_attention, ValuesFromX, hint="come from `memory`")


def test_module_wrapping_torch_mha_fails():
    class Wrapper(MHA):
        def forward(self, x, memory=None, *, mask=None, is_causal=False, need_weights=False):
            inner = nn.MultiheadAttention(self.d_model, self.n_heads, batch_first=True, dtype=x.dtype)
            src = x if memory is None else memory
            return inner(x, src, src, need_weights=need_weights, average_attn_weights=False)
    fails_with(check.multi_head_attention_example, Wrapper, hint="calls torch.nn.MultiheadAttention, ")


def test_module_calling_the_package_fails():
    class Delegate(MHA):
        def forward(self, x, memory=None, *, mask=None, is_causal=False, need_weights=False):
            return ref.MultiHeadAttention.forward(self, x, memory, mask=mask, is_causal=is_causal,
                                                  need_weights=need_weights)
    fails_with(check.multi_head_attention_example, Delegate,
               hint="calls transformer_course.attention.MultiHeadAttention, ")


def test_module_not_implemented():
    class Stub(MHA):
        def forward(self, x, memory=None, *, mask=None, is_causal=False, need_weights=False):
            raise NotImplementedError()
    fails_with(check.multi_head_attention_example, Stub, hint="not implemented yet")


def test_module_blames_a_wrong_merge():
    namespace = {"__name__": "learner", "nn": nn, "torch": torch, "math": math, "split_heads": split_heads, "MHA": MHA}
    exec("def merge_heads(x):\n"
         "    B, h, T, dh = x.shape\n"
         "    return x.reshape(B, T, h * dh)\n"
         "class MultiHeadAttention(MHA):\n"
         "    def forward(self, x, memory=None, *, mask=None, is_causal=False, need_weights=False):\n"
         "        src = x if memory is None else memory\n"
         "        q = split_heads(self.q_proj(x), self.n_heads)\n"
         "        k = split_heads(self.k_proj(src), self.n_heads)\n"
         "        v = split_heads(self.v_proj(src), self.n_heads)\n"
         "        w = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(self.d_head), dim=-1)\n"
         "        return self.out_proj(merge_heads(w @ v)), w\n", namespace)
    for check_fn in (check.multi_head_attention_example, check.multi_head_attention,
                     check.multi_head_attention_masks_example, check.multi_head_attention_masks):
        message = fails_with(check_fn, namespace["MultiHeadAttention"],
                             hint="your merge_heads from exercise 1 fails its checks, and MultiHeadAttention uses it")
        assert "merge_heads reshaped" in message


def test_blame_quotes_only_the_gist():
    """The blame quotes the first line and the hint of each failure, not their array dumps: split_heads's
    check prints x, yours and expected, and the worked example appends its input and expected results."""
    namespace = {"np": np, "merge_heads": merge_heads}
    exec(WRONG_SPLIT + "def multi_head_attention_np(x, w_q, w_k, w_v, w_o, n_heads):\n"
         "    w = np.ones((x.shape[0], n_heads, x.shape[1], x.shape[1])) / x.shape[1]\n"
         "    return merge_heads(split_heads(x, n_heads)), w\n", namespace)
    message = fails_with(check.mha_numpy_example, namespace["multi_head_attention_np"], hint=SPLIT_BLAMED)
    why, saw = message.split("What split_heads's check says: ")[1].split("\n\nWhat this check saw: ")
    assert "without a transpose" in why and saw.startswith("the weight tensor of multi_head_attention_np(")
    assert "Hint: " in saw
    assert "[[" not in message and "The worked example" not in message and len(message) < 1500, message


def test_module_with_renamed_layers():
    class Renamed(nn.Module):
        def __init__(self, d_model, n_heads, *, bias=True):
            super().__init__()
            self.wq = nn.Linear(d_model, d_model)

        def forward(self, x, memory=None, **kw):
            return x, None
    fails_with(check.multi_head_attention_example, Renamed, hint="q_proj")


# ============================================================ 4. parameter count ===

@pytest.mark.parametrize("fn,hint", [
    (lambda d, h, bias=True: 4 * d * d * h + (4 * d if bias else 0), "grows with the number of heads"),
    (lambda d, h, bias=True: 4 * d * (d // h) + (4 * d if bias else 0), "grows with the number of heads"),
    (lambda d, h, bias=True: 4 * d * d, "biases"),
    (lambda d, h, bias=True: 4 * d * d + 3 * d if bias else 4 * d * d, "biases"),
    (lambda d, h, bias=True: 3 * d * d + (3 * d if bias else 0), "four d_model x d_model"),
    (lambda d, h, bias=True: sum(p.numel() for p in nn.MultiheadAttention(d, h, bias=bias).parameters()),
     "without building"),
    (lambda d, h, bias=True: 4 * sum(p.numel() for p in nn.Linear(d, d, bias=bias).parameters()), "without building"),
    (lambda d, h, bias=True: sum(p.numel() for p in MHA(d, h, bias=bias).parameters()), "without building"),
    (lambda d, h, bias=True: str(4 * d * d), "whole number"),
])
def test_param_count_mistakes(fn, hint):
    fails_with(check.param_count, fn, hint=hint)


@pytest.mark.parametrize("fn,label", [
    (lambda d, h, bias=True: ref.mha_param_count(d, h, bias=bias), "transformer_course.attention.mha_param_count"),
    (lambda d, h, bias=True: sum(p.numel() for p in ref.MultiHeadAttention(d, h, bias=bias).parameters()),
     "transformer_course.attention.MultiHeadAttention"),
])
def test_param_count_calling_the_package_fails(fn, label):
    """The package's count, or building its module, is named as the reference (not as 'building a module')."""
    message = fails_with(check.param_count_example, fn, hint=f"calls {label}, ")
    assert "builds a torch module" not in message


def test_param_count_example_catches_scaling_with_heads():
    fails_with(check.param_count_example, lambda d, h, bias=True: 4 * d * d * h + 4 * d,
               hint="grows with the number of heads")


def test_param_count_builds_nothing_real_at_gpt3_width():
    """The GPT-3 case runs on the meta device: a module built anyway allocates no memory."""
    devices = []

    def builds(d, h, bias=True):
        layer = nn.Linear(d, d, bias=bias)
        devices.append(layer.weight.device.type)
        return 4 * d * d + (4 * d if bias else 0)
    with pytest.raises(CheckFailed):
        check._check_count(builds, 12288, 96, True, 4 * 12288 ** 2 + 4 * 12288, meta=True)
    assert devices == ["meta"]
