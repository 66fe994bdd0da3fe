"""Checks of notebook 05 (transformer blocks): they pass the model answers, and each planted
mistake fails its exercise with the hint that names it."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from transformer_course import blocks as ref
from transformer_course.attention import MultiHeadAttention
from transformer_course.data import DigitVocab
from transformer_course.grading import transformer_blocks as check
from transformer_course.seq2seq import Seq2SeqConfig, Seq2SeqTransformer, shift_right, train_seq2seq

from check_tools import fails_with

BOS = DigitVocab().bos


# ============================================================ the model answers ===

def ln_good(x, weight, bias, eps=1e-5):
    mean = x.mean(dim=-1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)
    return weight * (x - mean) / torch.sqrt(var + eps) + bias


def make_layer_norm_class(fn):
    class LN(nn.Module):
        def __init__(self, d, eps=1e-5):
            super().__init__()
            self.eps = eps
            self.weight = nn.Parameter(torch.ones(d))
            self.bias = nn.Parameter(torch.zeros(d))

        def forward(self, x):
            return fn(x, self.weight, self.bias, self.eps)
    return LN


class FFN(nn.Module):
    def __init__(self, d_model, d_ff, activation="relu"):
        super().__init__()
        self.activation = activation
        self.fc1 = nn.Linear(d_model, d_ff)
        self.fc2 = nn.Linear(d_ff, d_model)

    def act(self, h):
        return F.gelu(h) if self.activation == "gelu" else F.relu(h)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


def encoder_class(forward, ln=ln_good, ffn=FFN):
    LN = make_layer_norm_class(ln)

    class Enc(nn.Module):
        def __init__(self, d_model, n_heads, d_ff, *, norm_first=False, activation="relu", eps=1e-5):
            super().__init__()
            self.norm_first = norm_first
            self.self_attn = MultiHeadAttention(d_model, n_heads)
            self.ff = ffn(d_model, d_ff, activation)
            self.norm1 = LN(d_model, eps)
            self.norm2 = LN(d_model, eps)

    Enc.forward = forward
    return Enc


def decoder_class(forward, ln=ln_good, ffn=FFN):
    LN = make_layer_norm_class(ln)

    class Dec(nn.Module):
        def __init__(self, d_model, n_heads, d_ff, *, norm_first=False, activation="relu", eps=1e-5):
            super().__init__()
            self.norm_first = norm_first
            self.self_attn = MultiHeadAttention(d_model, n_heads)
            self.cross_attn = MultiHeadAttention(d_model, n_heads)
            self.ff = ffn(d_model, d_ff, activation)
            self.norm1 = LN(d_model, eps)
            self.norm2 = LN(d_model, eps)
            self.norm3 = LN(d_model, eps)

    Dec.forward = forward
    return Dec


def enc_good(self, x, mask=None):
    if self.norm_first:
        x = x + self.self_attn(self.norm1(x), mask=mask)[0]
        return x + self.ff(self.norm2(x))
    x = self.norm1(x + self.self_attn(x, mask=mask)[0])
    return self.norm2(x + self.ff(x))


def dec_good(self, x, memory, *, memory_mask=None, is_causal=True):
    if self.norm_first:
        x = x + self.self_attn(self.norm1(x), is_causal=is_causal)[0]
        x = x + self.cross_attn(self.norm2(x), memory, mask=memory_mask)[0]
        return x + self.ff(self.norm3(x))
    x = self.norm1(x + self.self_attn(x, is_causal=is_causal)[0])
    x = self.norm2(x + self.cross_attn(x, memory, mask=memory_mask)[0])
    return self.norm3(x + self.ff(x))


def loss_good(model, src, tgt, bos=BOS):
    tgt_in = torch.cat([torch.full_like(tgt[:, :1], bos), tgt[:, :-1]], dim=1)
    logits = model(src, tgt_in)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1))


def test_checks_pass_on_the_model_answers(capsys):
    check.layer_norm_example(ln_good)
    check.layer_norm(ln_good)
    check.feed_forward_example(FFN)
    check.feed_forward(FFN)
    check.encoder_block_example(encoder_class(enc_good))
    check.encoder_block(encoder_class(enc_good))
    check.decoder_block_example(decoder_class(dec_good))
    check.decoder_block(decoder_class(dec_good))
    check.seq2seq_loss_example(loss_good)
    check.seq2seq_loss(loss_good)
    out, err = capsys.readouterr()
    assert out.count("all checks passed") == 10 and err == ""


def test_package_blocks_are_refused():
    """Handing the exercise to the package's block is what the forbid list catches."""
    fails_with(check.encoder_block, lambda *a, **k: ref.EncoderBlock(*a, **k), hint="reference implementation")
    fails_with(check.decoder_block, lambda *a, **k: ref.DecoderBlock(*a, **k), hint="reference implementation")


# ================================================================ 1. LayerNorm ===

def ln_eps_outside(x, w, b, eps=1e-5):
    mean = x.mean(-1, keepdim=True)
    return w * (x - mean) / (x.var(-1, unbiased=False, keepdim=True).sqrt() + eps) + b


def ln_fixed_eps(x, w, b, eps=1e-5):
    return ln_good(x, w, b, 1e-5)


def ln_unbiased(x, w, b, eps=1e-5):
    mean = x.mean(-1, keepdim=True)
    return w * (x - mean) / torch.sqrt(torch.var(x, -1, keepdim=True) + eps) + b


def ln_axis(dim):
    def fn(x, w, b, eps=1e-5):
        mean = x.mean(dim, keepdim=True)
        var = x.var(dim, unbiased=False, keepdim=True)
        return w * (x - mean) / torch.sqrt(var + eps) + b
    return fn


def ln_no_affine(x, w, b, eps=1e-5):
    return ln_good(x, torch.ones_like(w), torch.zeros_like(b), eps)


def ln_no_bias(x, w, b, eps=1e-5):
    return ln_good(x, w, torch.zeros_like(b), eps)


def ln_no_weight(x, w, b, eps=1e-5):
    return ln_good(x, torch.ones_like(w), b, eps)


def ln_numpy(x, w, b, eps=1e-5):
    return torch.tensor(ln_good(x, w, b, eps).detach().numpy())


def ln_torch(x, w, b, eps=1e-5):
    return F.layer_norm(x, x.shape[-1:], w, b, eps)


def ln_package(x, w, b, eps=1e-5):
    return ref.layer_norm(x, w, b, eps)


def ln_module(x, w, b, eps=1e-5):
    m = nn.LayerNorm(x.shape[-1], eps=eps, dtype=x.dtype)
    m.weight, m.bias = nn.Parameter(w), nn.Parameter(b)
    return m(x)


def ln_todo(x, w, b, eps=1e-5):
    raise NotImplementedError()


@pytest.mark.parametrize("fn, hint", [
    (ln_eps_outside, "outside the square root"),
    (ln_fixed_eps, "hard-code 1e-5"),
    (ln_unbiased, "unbiased variance"),
    (ln_axis(0), "batch axis"),
    (ln_axis(1), "sequence axis"),
    (ln_axis((1, 2)), "more than the last axis"),
    (ln_no_affine, "scale and shift are missing"),
    (ln_no_bias, "shift is missing"),
    (ln_no_weight, "scale is missing"),
    (ln_numpy, "autograd"),
    (ln_torch, "reference implementation"),
    (ln_package, "reference implementation"),
    (ln_module, "reference implementation"),
    (ln_todo, "not implemented yet"),
])
def test_layer_norm_mistakes(fn, hint):
    fails_with(check.layer_norm, fn, hint=hint)


def test_layer_norm_visible_example_catches_the_common_ones():
    for fn, hint in ((ln_unbiased, "unbiased"), (ln_axis(1), "sequence axis"), (ln_no_bias, "shift"),
                     (ln_axis(0), "batch axis")):
        fails_with(check.layer_norm_example, fn, hint=hint)


def ln_numpy_then_affine(x, w, b, eps=1e-5):
    """Normalised in numpy, then scaled and shifted in torch: connected to weight, cut off from x."""
    a = x.detach().cpu().numpy()
    xhat = (a - a.mean(-1, keepdims=True)) / np.sqrt(a.var(-1, keepdims=True) + eps)
    return torch.from_numpy(xhat).to(x.device) * w + b


def ln_detached_stats(x, w, b, eps=1e-5):
    mean = x.mean(dim=-1, keepdim=True).detach()
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True).detach()
    return w * (x - mean) / torch.sqrt(var + eps) + b


def ln_detached_bias(x, w, b, eps=1e-5):
    return ln_good(x, w, b.detach(), eps)


def ln_float32(x, w, b, eps=1e-5):
    x32 = x.float()
    mean = x32.mean(-1, keepdim=True)
    var = x32.var(-1, unbiased=False, keepdim=True)
    return w * (x32 - mean) / torch.sqrt(var + eps) + b          # promoted back to float64 by w


@pytest.mark.parametrize("fn, hint", [
    (ln_numpy_then_affine, "autograd"),
    (ln_detached_stats, "autograd"),
    (ln_detached_bias, "reaches `bias`"),
])
def test_layer_norm_gradients_are_checked(fn, hint):
    """The output is right; only the gradients (to x, or to bias) show the mistake."""
    fails_with(check.layer_norm, fn, hint=hint)
    fails_with(check.layer_norm_example, fn, hint=hint)


def test_layer_norm_in_float32_is_named():
    fails_with(check.layer_norm, ln_float32, hint="keep the input's dtype")


# ============================================================= 2. feed-forward ===

def ffn_variant(forward=None, init=None):
    class F2(FFN):
        pass
    if forward is not None:
        F2.forward = forward
    if init is not None:
        F2.__init__ = init
    return F2


def _no_act(self, x):
    return self.fc2(self.fc1(x))


def _act_after(self, x):
    return self.act(self.fc2(self.fc1(x)))


def _always_relu(self, x):
    return self.fc2(F.relu(self.fc1(x)))


def _gelu_tanh(self, x):
    h = self.fc1(x)
    return self.fc2(F.gelu(h, approximate="tanh") if self.activation == "gelu" else F.relu(h))


def _package_ffn(self, x):
    f = ref.FeedForward(self.fc1.in_features, self.fc1.out_features, activation=self.activation).double()
    f.fc1, f.fc2 = self.fc1, self.fc2
    return f(x)


def _no_bias_init(self, d_model, d_ff, activation="relu"):
    nn.Module.__init__(self)
    self.activation = activation
    self.fc1 = nn.Linear(d_model, d_ff, bias=False)
    self.fc2 = nn.Linear(d_ff, d_model, bias=False)


def _transposed_init(self, d_model, d_ff, activation="relu"):
    nn.Module.__init__(self)
    self.activation = activation
    self.fc1 = nn.Linear(d_ff, d_model)
    self.fc2 = nn.Linear(d_model, d_ff)


@pytest.mark.parametrize("cls, hint", [
    (ffn_variant(_no_act), "no non-linearity"),
    (ffn_variant(_act_after), "wrong place"),
    (ffn_variant(_always_relu), "does not follow the `activation`"),
    (ffn_variant(_gelu_tanh), "exact GELU"),
    (ffn_variant(_package_ffn), "reference implementation"),
    (ffn_variant(init=_no_bias_init), "with a bias"),
    (ffn_variant(init=_transposed_init), "nn.Linear(d_model, d_ff)"),
])
def test_feed_forward_mistakes(cls, hint):
    fails_with(check.feed_forward, cls, hint=hint)


# ================================================================ 3. encoder ===

def enc_swapped(self, x, mask=None):
    self.norm_first = not self.norm_first
    try:
        return enc_good(self, x, mask)
    finally:
        self.norm_first = not self.norm_first


def enc_always_post(self, x, mask=None):
    x = self.norm1(x + self.self_attn(x, mask=mask)[0])
    return self.norm2(x + self.ff(x))


def enc_always_pre(self, x, mask=None):
    x = x + self.self_attn(self.norm1(x), mask=mask)[0]
    return x + self.ff(self.norm2(x))


def enc_no_residual(self, x, mask=None):
    if self.norm_first:
        x = self.self_attn(self.norm1(x), mask=mask)[0]
        return self.ff(self.norm2(x))
    x = self.norm1(self.self_attn(x, mask=mask)[0])
    return self.norm2(self.ff(x))


def enc_residual_after_norm(self, x, mask=None):
    if self.norm_first:
        return enc_good(self, x, mask)
    x = x + self.norm1(self.self_attn(x, mask=mask)[0])
    return x + self.norm2(self.ff(x))


def enc_residual_after_norm_attention_only(self, x, mask=None):
    if self.norm_first:
        return enc_good(self, x, mask)
    x = x + self.norm1(self.self_attn(x, mask=mask)[0])
    return self.norm2(x + self.ff(x))


def enc_pre_no_residual_ffn_only(self, x, mask=None):
    if not self.norm_first:
        return enc_good(self, x, mask)
    x = x + self.self_attn(self.norm1(x), mask=mask)[0]
    return self.ff(self.norm2(x))


def enc_pre_normed_residual(self, x, mask=None):
    if not self.norm_first:
        return enc_good(self, x, mask)
    x = self.norm1(x)
    x = x + self.self_attn(x, mask=mask)[0]
    x = self.norm2(x)
    return x + self.ff(x)


def enc_mask_ignored(self, x, mask=None):
    return enc_good(self, x, None)


def enc_mask_inverted(self, x, mask=None):
    return enc_good(self, x, None if mask is None else ~mask)


def enc_norms_swapped(self, x, mask=None):
    self.norm1, self.norm2 = self.norm2, self.norm1
    try:
        return enc_good(self, x, mask)
    finally:
        self.norm1, self.norm2 = self.norm2, self.norm1


def enc_package(self, x, mask=None):
    return ref.EncoderBlock.forward(self, x, mask)


def enc_torch(self, x, mask=None):
    d = x.shape[-1]
    layer = nn.TransformerEncoderLayer(d, self.self_attn.n_heads, self.ff.fc1.out_features, dropout=0.0,
                                       batch_first=True, norm_first=self.norm_first, dtype=x.dtype)
    return layer(x)


def ln_bad_for_blocks(x, w, b, eps=1e-5):
    return ln_unbiased(x, w, b, eps)


@pytest.mark.parametrize("forward, hint", [
    (enc_swapped, "ignores norm_first"),
    (enc_always_post, "with norm_first=True it still computes post-LN"),
    (enc_always_pre, "with norm_first=False it still computes pre-LN"),
    (enc_no_residual, "residual connection is missing"),
    (enc_residual_after_norm, "residual is added after the norm"),
    (enc_pre_normed_residual, "un-normalised x"),
    (enc_residual_after_norm_attention_only, "residual is added after the norm"),
    (enc_pre_no_residual_ffn_only, "residual connection is missing"),
    (enc_mask_ignored, "padding mask is ignored"),
    (enc_mask_inverted, "mask is inverted"),
    (enc_norms_swapped, "wrong places"),
    (enc_package, "reference implementation"),
    (enc_torch, "reference implementation"),
])
def test_encoder_mistakes(forward, hint):
    fails_with(check.encoder_block, encoder_class(forward), hint=hint)


def enc_causal(self, x, mask=None):
    if self.norm_first:
        x = x + self.self_attn(self.norm1(x), mask=mask, is_causal=True)[0]
        return x + self.ff(self.norm2(x))
    x = self.norm1(x + self.self_attn(x, mask=mask, is_causal=True)[0])
    return self.norm2(x + self.ff(x))


def test_encoder_with_a_causal_mask_is_named():
    fails_with(check.encoder_block, encoder_class(enc_causal), hint="bidirectional")
    fails_with(check.encoder_block_example, encoder_class(enc_causal), hint="bidirectional")


def test_encoder_visible_example_uses_a_padding_mask():
    fails_with(check.encoder_block_example, encoder_class(enc_mask_ignored), hint="padding mask is ignored")
    fails_with(check.encoder_block_example, encoder_class(enc_mask_inverted), hint="inverted")


def test_encoder_visible_example_catches_swapped_arrangements():
    fails_with(check.encoder_block_example, encoder_class(enc_always_post), hint="ignores norm_first")


BLAME_LAYER_NORM = ("your layer_norm from exercise 1 fails its checks, and {user} uses it: fix layer_norm first "
                    "(run its test cell), then run this cell again.")
BLAME_FFN = ("your FeedForward from exercise 2 fails its checks, and EncoderBlock uses it: fix FeedForward first "
             "(run its test cell), then run this cell again.")


def test_encoder_blames_a_wrong_layer_norm_or_ffn():
    message = fails_with(check.encoder_block, encoder_class(enc_good, ln=ln_bad_for_blocks),
                         hint=BLAME_LAYER_NORM.format(user="EncoderBlock"))
    assert message.startswith(BLAME_LAYER_NORM.format(user="EncoderBlock"))
    assert ("What layer_norm's check says: your LayerNorm module (norm1): its output differs from "
            "torch.nn.LayerNorm's") in message
    assert "What this check saw: EncoderBlock(" in message
    message = fails_with(check.encoder_block, encoder_class(enc_good, ffn=ffn_variant(_no_act)), hint=BLAME_FFN)
    assert "What FeedForward's check says: your FeedForward module (ff): its output differs" in message
    message = fails_with(check.encoder_block, encoder_class(enc_good, ln=ln_todo),
                         hint=BLAME_LAYER_NORM.format(user="EncoderBlock"))
    assert "What layer_norm's check says: your LayerNorm module (norm1) is not finished" in message


def test_encoder_calling_the_reference_is_not_blamed_on_its_layer_norm():
    message = fails_with(check.encoder_block, encoder_class(enc_package, ln=ln_bad_for_blocks),
                         hint="reference implementation")
    assert "fails its checks" not in message


def test_a_right_block_is_not_blamed_on_a_right_layer_norm():
    """The parts are looked at only when the block fails: a wrong block on right parts gets its own hint."""
    message = fails_with(check.encoder_block, encoder_class(enc_no_residual), hint="residual connection is missing")
    assert "fails its checks" not in message


def test_encoder_renamed_attribute():
    def init(self, d_model, n_heads, d_ff, *, norm_first=False, activation="relu", eps=1e-5):
        nn.Module.__init__(self)
        self.norm_first = norm_first
        self.attn = MultiHeadAttention(d_model, n_heads)
        self.ff = FFN(d_model, d_ff, activation)
        self.norm1 = ref.LayerNorm(d_model, eps)
        self.norm2 = ref.LayerNorm(d_model, eps)
    cls = encoder_class(enc_good)
    cls.__init__ = init
    fails_with(check.encoder_block, cls, hint="keep the __init__ you were given")


# ================================================================ 4. decoder ===

def dec_no_causal(self, x, memory, *, memory_mask=None, is_causal=True):
    return dec_good(self, x, memory, memory_mask=memory_mask, is_causal=False)


def dec_cross_on_x(self, x, memory, *, memory_mask=None, is_causal=True):
    return dec_good(self, x, x, memory_mask=None, is_causal=is_causal)


def dec_cross_self(self, x, memory, *, memory_mask=None, is_causal=True):
    if self.norm_first:
        x = x + self.self_attn(self.norm1(x), is_causal=is_causal)[0]
        x = x + self.cross_attn(self.norm2(x))[0]
        return x + self.ff(self.norm3(x))
    x = self.norm1(x + self.self_attn(x, is_causal=is_causal)[0])
    x = self.norm2(x + self.cross_attn(x)[0])
    return self.norm3(x + self.ff(x))


def dec_cross_on_x_masked(self, x, memory, *, memory_mask=None, is_causal=True):
    return dec_good(self, x, x, memory_mask=memory_mask, is_causal=is_causal)


def dec_memory_mask_ignored(self, x, memory, *, memory_mask=None, is_causal=True):
    return dec_good(self, x, memory, memory_mask=None, is_causal=is_causal)


def dec_cross_module(self, x, memory, *, memory_mask=None, is_causal=True):
    self.cross_attn, saved = self.self_attn, self.cross_attn
    try:
        return dec_good(self, x, memory, memory_mask=memory_mask, is_causal=is_causal)
    finally:
        self.cross_attn = saved


def dec_swapped(self, x, memory, *, memory_mask=None, is_causal=True):
    self.norm_first = not self.norm_first
    try:
        return dec_good(self, x, memory, memory_mask=memory_mask, is_causal=is_causal)
    finally:
        self.norm_first = not self.norm_first


def dec_no_residual(self, x, memory, *, memory_mask=None, is_causal=True):
    if self.norm_first:
        x = self.self_attn(self.norm1(x), is_causal=is_causal)[0]
        x = self.cross_attn(self.norm2(x), memory, mask=memory_mask)[0]
        return self.ff(self.norm3(x))
    x = self.norm1(self.self_attn(x, is_causal=is_causal)[0])
    x = self.norm2(self.cross_attn(x, memory, mask=memory_mask)[0])
    return self.norm3(self.ff(x))


def dec_residual_after_norm(self, x, memory, *, memory_mask=None, is_causal=True):
    if self.norm_first:
        return dec_good(self, x, memory, memory_mask=memory_mask, is_causal=is_causal)
    x = x + self.norm1(self.self_attn(x, is_causal=is_causal)[0])
    x = x + self.norm2(self.cross_attn(x, memory, mask=memory_mask)[0])
    return x + self.norm3(self.ff(x))


def dec_no_residual_cross_only(self, x, memory, *, memory_mask=None, is_causal=True):
    if self.norm_first:
        x = x + self.self_attn(self.norm1(x), is_causal=is_causal)[0]
        x = self.cross_attn(self.norm2(x), memory, mask=memory_mask)[0]
        return x + self.ff(self.norm3(x))
    x = self.norm1(x + self.self_attn(x, is_causal=is_causal)[0])
    x = self.norm2(self.cross_attn(x, memory, mask=memory_mask)[0])
    return self.norm3(x + self.ff(x))


def dec_mask_on_self(self, x, memory, *, memory_mask=None, is_causal=True):
    if self.norm_first:
        x = x + self.self_attn(self.norm1(x), mask=memory_mask, is_causal=is_causal)[0]
        x = x + self.cross_attn(self.norm2(x), memory)[0]
        return x + self.ff(self.norm3(x))
    x = self.norm1(x + self.self_attn(x, mask=memory_mask, is_causal=is_causal)[0])
    x = self.norm2(x + self.cross_attn(x, memory)[0])
    return self.norm3(x + self.ff(x))


def dec_package(self, x, memory, *, memory_mask=None, is_causal=True):
    return ref.DecoderBlock.forward(self, x, memory, memory_mask=memory_mask, is_causal=is_causal)


@pytest.mark.parametrize("forward, hint", [
    (dec_no_causal, "not causal"),
    (dec_cross_on_x, "decoder's own positions"),
    (dec_cross_self, "decoder's own positions"),
    (dec_memory_mask_ignored, "memory_mask is ignored"),
    (dec_cross_module, "wrong module"),
    (dec_swapped, "ignores norm_first"),
    (dec_no_residual, "residual connection is missing"),
    (dec_residual_after_norm, "residual is added after the norm"),
    (dec_no_residual_cross_only, "residual connection is missing"),
    (dec_mask_on_self, "belongs to cross-attention"),
    (dec_package, "reference implementation"),
])
def test_decoder_mistakes(forward, hint):
    fails_with(check.decoder_block, decoder_class(forward), hint=hint)


def test_decoder_cross_on_x_with_mask_is_explained():
    """Cross-attention on x with the (B, 1, S) memory mask: a shape error that names the fix."""
    fails_with(check.decoder_block, decoder_class(dec_cross_on_x_masked), hint="memory")


def _dec_with(self_mask=None, cross=lambda self, h, memory, m: self.cross_attn(h, memory, mask=m)[0],
              invert_memory_mask=False):
    """A decoder written right except for the self-attention mask, cross-attention or memory mask."""
    def forward(self, x, memory, *, memory_mask=None, is_causal=True):
        T = x.shape[1]
        sm = None if self_mask is None else self_mask(T)
        mm = memory_mask if memory_mask is None or not invert_memory_mask else ~memory_mask

        def sa(h):
            return self.self_attn(h, mask=sm)[0] if sm is not None else self.self_attn(h, is_causal=is_causal)[0]
        if self.norm_first:
            x = x + sa(self.norm1(x))
            x = x + cross(self, self.norm2(x), memory, mm)
            return x + self.ff(self.norm3(x))
        x = self.norm1(x + sa(x))
        x = self.norm2(x + cross(self, x, memory, mm))
        return self.norm3(x + self.ff(x))
    return forward


def _diagonal_excluded(T):
    m = torch.ones(T, T, dtype=torch.bool).tril(-1)
    m[0, 0] = True
    return m


@pytest.mark.parametrize("forward, hint", [
    (_dec_with(self_mask=lambda T: torch.ones(T, T, dtype=torch.bool).triu()), "lower triangle WITH the diagonal"),
    (_dec_with(self_mask=_diagonal_excluded), "lower triangle WITH the diagonal"),
    (_dec_with(invert_memory_mask=True), "memory_mask is inverted"),
])
def test_decoder_mask_mistakes_are_named(forward, hint):
    fails_with(check.decoder_block, decoder_class(forward), hint=hint)
    fails_with(check.decoder_block_example, decoder_class(forward), hint=hint)


def test_decoder_cross_attention_arguments_swapped():
    """No mask given: the message names the swapped arguments and does not blame memory_mask."""
    swapped = _dec_with(cross=lambda self, h, memory, m: self.cross_attn(memory, h, mask=m)[0])
    message = fails_with(check.decoder_block_example, decoder_class(swapped), hint="arguments are swapped")
    assert "memory_mask" not in message
    fails_with(check.decoder_block, decoder_class(swapped), hint="self.cross_attn(h, memory")


def test_decoder_visible_example_uses_a_memory_mask():
    fails_with(check.decoder_block_example, decoder_class(dec_memory_mask_ignored), hint="memory_mask is ignored")


def test_decoder_visible_example_catches_no_causal_mask():
    fails_with(check.decoder_block_example, decoder_class(dec_no_causal), hint="not causal")


def test_decoder_blames_a_wrong_layer_norm():
    message = fails_with(check.decoder_block, decoder_class(dec_good, ln=ln_eps_outside),
                         hint=BLAME_LAYER_NORM.format(user="DecoderBlock"))
    assert "What layer_norm's check says: your LayerNorm module (norm1)" in message
    assert "What this check saw: DecoderBlock(" in message


# ================================================================== 5. loss ===

def loss_unshifted(model, src, tgt, bos=BOS):
    logits = model(src, tgt)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1))


def loss_shift_left(model, src, tgt, bos=BOS):
    tgt_in = torch.cat([tgt[:, 1:], torch.full_like(tgt[:, :1], bos)], dim=1)
    logits = model(src, tgt_in)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1))


def loss_no_bos(model, src, tgt, bos=BOS):
    logits = model(src, tgt[:, :-1])
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt[:, 1:].reshape(-1))


def loss_swapped(model, src, tgt, bos=BOS):
    tgt_in = torch.cat([torch.full_like(tgt[:, :1], bos), tgt[:, :-1]], dim=1)
    logits = model(tgt_in, src)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1))


def loss_sum(model, src, tgt, bos=BOS):
    tgt_in = torch.cat([torch.full_like(tgt[:, :1], bos), tgt[:, :-1]], dim=1)
    logits = model(src, tgt_in)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1), reduction="sum")


def loss_wrong_labels(model, src, tgt, bos=BOS):
    tgt_in = torch.cat([torch.full_like(tgt[:, :1], bos), tgt[:, :-1]], dim=1)
    logits = model(src, tgt_in)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt_in.reshape(-1))


def loss_package_shift(model, src, tgt, bos=BOS):
    logits = model(src, shift_right(tgt, bos))
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1))


def loss_detached(model, src, tgt, bos=BOS):
    return loss_good(model, src, tgt, bos).detach()


@pytest.mark.parametrize("fn, hint", [
    (loss_unshifted, "not the target shifted right"),
    (loss_shift_left, "shifted the wrong way"),
    (loss_no_bos, "must start with BOS"),
    (loss_swapped, "swapped"),
    (loss_sum, "not the sum"),
    (loss_wrong_labels, "UNSHIFTED target y"),
    (loss_package_shift, "reference implementation"),
    (loss_detached, "not connected"),
])
def test_loss_mistakes(fn, hint):
    fails_with(check.seq2seq_loss, fn, hint=hint)
    fails_with(check.seq2seq_loss_example, fn, hint=hint)


# ========================================================= 6. trained model ===

def _factory(enc_forward=enc_good, dec_forward=dec_good):
    enc, dec = encoder_class(enc_forward), decoder_class(dec_forward)

    def make(kind, c):
        return (enc if kind == "encoder" else dec)(c.d_model, c.n_heads, c.d_ff, norm_first=c.norm_first)
    return make


def test_untrained_model_fails():
    torch.manual_seed(0)
    model = Seq2SeqTransformer(Seq2SeqConfig(), block_factory=_factory())
    fails_with(check.trained_model, model, hint="has not learned the task")
    fails_with(check.trained_model, None, hint="did not build it")


def test_untrained_model_with_a_wrong_block_names_the_block(capsys):
    torch.manual_seed(0)
    model = Seq2SeqTransformer(Seq2SeqConfig(), block_factory=_factory(enc_forward=enc_no_residual))
    message = fails_with(check.trained_model_example, model,
                         hint="your EncoderBlock from exercise 3 fails its checks, and seq2seq_model uses it: "
                              "fix EncoderBlock first (run its test cell), then rebuild and retrain the model, and "
                              "run this cell again.")
    assert "residual connection is missing" in message
    assert "What this check saw: seq2seq_model reverses" in message
    assert capsys.readouterr().out == ""    # the block's check ran quietly


def test_model_from_package_blocks_is_refused():
    fails_with(check.trained_model, Seq2SeqTransformer(Seq2SeqConfig()), hint="not yours")


def test_hidden_trained_model_check_is_reproducible(monkeypatch):
    """A statistical check: 1,000 sequences, the same ones at every grading, 95% needed."""
    seen = []

    def record(model, n, gen, threshold=check.TRAINED_THRESHOLD, length=8):
        seen.append((n, threshold, gen.integers(0, 2**31, size=4).tolist()))
        return 1.0
    monkeypatch.setattr(check, "_check_trained", record)
    check.trained_model(None)
    check.trained_model(None)
    assert seen[0] == seen[1] and seen[0][0] >= 1000 and seen[0][1] == 0.95


def make_train(schedule="good", opt=torch.optim.Adam):
    """The exercise's train(), with the warm-up written right or wrong."""
    from transformer_course.data import make_digit_batch

    def lam(warmup):
        if schedule == "ignored" or not warmup:
            return lambda step: 1.0
        if schedule == "from_zero":
            return lambda step: min(1.0, step / warmup)
        if schedule == "too_slow":
            return lambda step: min(1.0, (step + 1) / (2 * warmup))
        return lambda step: min(1.0, (step + 1) / warmup)

    def train(model, steps=400, lr=2e-3, *, batch_size=64, length=8, task="reverse", warmup=0, seed=0,
              desc="training"):
        gen = np.random.default_rng(seed)
        torch.manual_seed(seed)
        model.train()
        optimiser = opt(model.parameters(), lr=lr)
        sched = torch.optim.lr_scheduler.LambdaLR(optimiser, lam(warmup if schedule != "zero_broken" else 2))
        losses = []
        for _ in range(steps):
            src, tgt = (torch.from_numpy(a) for a in make_digit_batch(batch_size, length, task, rng=gen))
            loss = loss_good(model, src, tgt)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            sched.step()
            losses.append(loss.item())
        model.eval()
        return losses
    return train


def test_train_schedule_passes_good_schedules(capsys):
    check.train_schedule(make_train())
    check.train_schedule(make_train("from_zero"))              # a climb that starts at 0 is accepted
    check.train_schedule(make_train(opt=torch.optim.AdamW))
    assert "all checks passed" in capsys.readouterr().out


@pytest.mark.parametrize("schedule, hint", [
    ("ignored", "`warmup` is ignored"),
    ("too_slow", "not a linear climb"),
    ("zero_broken", "with warmup=0"),
])
def test_train_schedule_mistakes(schedule, hint):
    fails_with(check.train_schedule, make_train(schedule), hint=hint)


@pytest.mark.slow
def test_trained_model_passes_and_leaky_training_is_recognised(monkeypatch):
    torch.manual_seed(0)
    good = Seq2SeqTransformer(Seq2SeqConfig(), block_factory=_factory())
    train_seq2seq(good, steps=400, lr=2e-3, progress=False)
    check.trained_model_example(good)
    check.trained_model(good)
    # trained on the UNshifted target: copies its input, useless when decoding alone
    from transformer_course import seq2seq
    torch.manual_seed(0)
    leaky = Seq2SeqTransformer(Seq2SeqConfig(), block_factory=_factory())
    monkeypatch.setattr(seq2seq, "shift_right", lambda tgt, bos=BOS: tgt)
    train_seq2seq(leaky, steps=150, lr=2e-3, progress=False)
    fails_with(check.trained_model, leaky, hint="UNSHIFTED")
