"""Checks for notebook 05 (transformer blocks).

Each exercise has a visible ``<name>_example(...)`` check (a small worked example
the learner can read) and a hidden ``<name>(...)`` check (fresh random inputs,
and the real oracle: :class:`torch.nn.LayerNorm`, :class:`torch.nn.TransformerEncoderLayer`
and :class:`torch.nn.TransformerDecoderLayer` with their weights copied into the
learner's block).  Every known mistake listed for this notebook is recognised and
named in the failure message.

The learner's code is always what runs.  Blocks are built from the learner's
classes and loaded with torch's weights through
:func:`transformer_course.blocks.load_torch_encoder_layer` /
:func:`~transformer_course.blocks.load_torch_decoder_layer`; a learner's code
that hands the exercise to the package's reference or to torch's own layer fails.
A block that fails because its LayerNorm modules (the learner's layer_norm) or its
FeedForward fail their own checks is told to fix those first (``core.blame_earlier``).
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.optim.optimizer import register_optimizer_step_pre_hook

from .. import attention as att
from .. import blocks as ref
from .. import seq2seq as s2s
from ..data import DigitVocab, make_digit_batch
from .core import (Earlier, as_numpy, blame_earlier, call, diagnose, expect_close, expect_tensor, fail,
                   forbidden, matches, model_device, passed, rng)

__all__ = [
    "layer_norm_example", "layer_norm",
    "feed_forward_example", "feed_forward",
    "encoder_block_example", "encoder_block",
    "decoder_block_example", "decoder_block",
    "seq2seq_loss_example", "seq2seq_loss",
    "trained_model_example", "trained_model", "train_schedule",
]

# ------------------------------------------------------------------ hints ---

HINT_EPS_OUTSIDE = (
    "eps sits outside the square root: the formula is (x - mean) / sqrt(var + eps), not "
    "(x - mean) / (sqrt(var) + eps). The two agree while the variance is large, and differ a lot for "
    "features with a small spread (this input has a variance close to eps)."
)
HINT_EPS_IGNORED = (
    "the result matches LayerNorm with eps = 1e-5 although this call passed a different eps: use the "
    "`eps` argument, do not hard-code 1e-5 (BERT uses eps = 1e-12, and with features of variance 1e-6 "
    "that changes the output by a factor of 3)."
)
HINT_EPS_WRONG = (
    "the output matches LayerNorm with a different eps: use exactly the `eps` argument, inside the "
    "square root: (x - mean) / sqrt(var + eps)."
)
HINT_UNBIASED = (
    "you used the unbiased variance (dividing by d - 1): torch.var and x.var() divide by d - 1 by "
    "default. LayerNorm divides by d: x.var(dim=-1, unbiased=False, keepdim=True), or "
    "((x - mean) ** 2).mean(dim=-1, keepdim=True). With d = 4 features the difference is a factor "
    "sqrt(4/3)."
)
HINT_AXIS_BATCH = (
    "you normalised over the batch axis (dim 0): LayerNorm normalises each position's feature vector on "
    "its own, over the LAST axis only (dim=-1, keepdim=True), so the result for one example never "
    "depends on the others in the batch (that would be BatchNorm)."
)
HINT_AXIS_SEQUENCE = (
    "you normalised over the sequence axis (dim 1): LayerNorm normalises each position's feature "
    "vector on its own, over the LAST axis (dim=-1, keepdim=True)."
)
HINT_AXIS_ALL = (
    "you normalised over more than the last axis (over the whole array, or over sequence and features "
    "together): LayerNorm takes the mean and variance of each position's d features only, "
    "dim=-1 with keepdim=True."
)
HINT_NO_WEIGHT = (
    "the learned scale is missing: multiply the normalised values by `weight` (gamma), then add "
    "`bias` (beta): y = weight * x_hat + bias."
)
HINT_NO_BIAS = "the learned shift is missing: add `bias` (beta) after scaling: y = weight * x_hat + bias."
HINT_NO_AFFINE = (
    "the learned scale and shift are missing: after normalising, return weight * x_hat + bias "
    "(gamma and beta, one number per feature)."
)
HINT_AFFINE_ORDER = (
    "scale and shift are in the wrong order: first multiply by `weight`, then add `bias`: "
    "weight * x_hat + bias, not (x_hat + bias) * weight."
)
HINT_NO_GRAD = (
    "your output is not (fully) connected to autograd: did you go through numpy, call .detach() / "
    ".item() / .data (on x, the mean or the variance), or build a new tensor with torch.tensor(...)? "
    "Use torch operations only, so that the gradient reaches x (the earlier layers), `weight` and "
    "`bias` during training."
)
HINT_GRAD_WRONG = (
    "the gradient must flow through every part of the formula as written: use torch operations on "
    "`weight` and `bias` themselves (no .detach(), .data or copies), y = weight * x_hat + bias."
)
HINT_DTYPE = (
    "keep the input's dtype: your result is right to about 7 digits, as if computed in float32, but this "
    "input is float64. Compute in the dtype of x (no .float() or torch.float32 casts), so that a float64 "
    "input gives a float64 result."
)
HINT_NOT_TENSOR = (
    "return a torch tensor (use torch operations on the inputs): the blocks later in this notebook "
    "need the result to stay on the autograd graph and on the inputs' device."
)
HINT_FFN_NO_ACT = (
    "there is no non-linearity between the two layers: fc2(fc1(x)) is one linear map in disguise. "
    "Apply the activation to fc1's output: fc2(act(fc1(x)))."
)
HINT_FFN_ACT_AFTER = (
    "the activation is in the wrong place: it goes between the two layers, fc2(act(fc1(x))), not after "
    "fc2 (the block's output must be able to be negative)."
)
HINT_FFN_ACT_TWICE = "the activation is applied twice: only between the layers, fc2(act(fc1(x)))."
HINT_FFN_WRONG_ACT = (
    "the activation does not follow the `activation` argument: 'relu' means F.relu, 'gelu' means F.gelu "
    "(the exact erf form, as BERT and torch's TransformerEncoderLayer(activation='gelu') use)."
)
HINT_FFN_GELU_TANH = (
    "for activation='gelu' use the exact GELU, F.gelu(x) (approximate='none'), as BERT and torch's "
    "TransformerEncoderLayer(activation='gelu') do; the tanh approximation is GPT-2's (notebook 07)."
)
HINT_FFN_SHAPES = (
    "fc1 must be nn.Linear(d_model, d_ff) and fc2 nn.Linear(d_ff, d_model), both with bias: the network "
    "widens each position to d_ff features and projects back to d_model."
)
HINT_SWAPPED = (
    "post-LN and pre-LN are swapped: norm_first=False (post-LN, the original Transformer) is "
    "x = norm(x + sublayer(x)); norm_first=True (pre-LN) is x = x + sublayer(norm(x))."
)
HINT_ALWAYS_POST = (
    "your block ignores norm_first: with norm_first=True it still computes post-LN. Pre-LN normalises "
    "the sublayer's INPUT and leaves the residual stream untouched: x = x + sublayer(norm(x))."
)
HINT_ALWAYS_PRE = (
    "your block ignores norm_first: with norm_first=False it still computes pre-LN. Post-LN adds first "
    "and normalises the sum: x = norm(x + sublayer(x))."
)
HINT_NO_RESIDUAL = (
    "the residual connection is missing: each sublayer's output is ADDED to its input "
    "(post-LN: norm(x + sublayer(x)); pre-LN: x + sublayer(norm(x))), not used instead of it."
)
HINT_RESIDUAL_AFTER_NORM = (
    "the residual is added after the norm: in post-LN the norm is applied to the SUM, "
    "x = norm(x + sublayer(x)), not x + norm(sublayer(x))."
)
HINT_PRE_RESIDUAL_NORMED = (
    "in pre-LN the residual must carry the un-normalised x: x = x + sublayer(norm(x)). Writing "
    "x = norm(x) first and then x = x + sublayer(x) adds the normalised input instead."
)
HINT_NORMS_SWAPPED = (
    "the LayerNorms are used in the wrong places: norm1 goes with self-attention, norm2 with the "
    "feed-forward network (in the decoder: norm1 self-attention, norm2 cross-attention, norm3 "
    "feed-forward). Each has its own learned weights, so the order matters."
)
HINT_FF_ON_INPUT = (
    "the feed-forward sublayer works on the block's input instead of the attention sublayer's output: "
    "the sublayers are chained, each one's output is the next one's input."
)
HINT_MASK_IGNORED = (
    "the padding mask is ignored: pass `mask` on to self-attention, self.self_attn(h, mask=mask); "
    "padded keys must get no weight."
)
HINT_MASK_INVERTED = (
    "the mask is inverted: in this course True means 'may attend' (torch's Transformer layers use the "
    "opposite convention, True = blocked); pass it to MultiHeadAttention unchanged."
)
HINT_NO_CAUSAL = (
    "the decoder's self-attention is not causal: position i must not see the target tokens after it. "
    "Pass is_causal=is_causal to self.self_attn (during training the decoder reads the whole shifted "
    "target at once, and without the mask it can copy the answer)."
)
HINT_CAUSAL_WRONG = (
    "the decoder's causal mask is wrong: position i may attend to positions 0..i, itself included, so "
    "the mask (True = may attend) is the lower triangle WITH the diagonal, torch.ones(T, T).tril() "
    "(not triu, not tril(-1)); simplest: self.self_attn(h, is_causal=is_causal)."
)
HINT_ENC_CAUSAL = (
    "the encoder's self-attention is bidirectional: every source position sees every other one (only "
    "padding is masked). No is_causal and no causal mask in the encoder block: "
    "self.self_attn(h, mask=mask)."
)
HINT_MEMORY_MASK_INVERTED = (
    "memory_mask is inverted: in this course True means 'may attend' (torch's layers use the opposite "
    "convention); pass it to cross-attention unchanged: self.cross_attn(h, memory, mask=memory_mask)."
)
HINT_CROSS_ON_X = (
    "cross-attention attends to the decoder's own positions instead of the encoder's output: the "
    "keys and values come from `memory`: self.cross_attn(h, memory, mask=memory_mask)."
)
HINT_CROSS_WRONG_MODULE = (
    "cross-attention uses the wrong module: self-attention is self.self_attn, cross-attention "
    "self.cross_attn; each has its own projection weights."
)
HINT_MEMORY_MASK_IGNORED = (
    "memory_mask is ignored: pass it to cross-attention, self.cross_attn(h, memory, mask=memory_mask), "
    "so that the decoder never reads the source's padding."
)
HINT_MEMORY_MASK_ON_SELF = (
    "memory_mask went to self-attention: it describes the encoder's positions (the keys of "
    "CROSS-attention): self.cross_attn(h, memory, mask=memory_mask)."
)
HINT_UNSHIFTED = (
    "the decoder input is the target itself, not the target shifted right: position t then sees y_t, "
    "the very token it must predict, so it learns to copy. Training loss drops to 0, but greedy "
    "decoding, which only has the tokens generated so far, fails. Feed [BOS, y_0, ..., y_{T-2}] and "
    "predict [y_0, ..., y_{T-1}]."
)
HINT_SHIFT_LEFT = (
    "the target is shifted the wrong way: the decoder input is [BOS, y_0, ..., y_{T-2}] (BOS in front, "
    "the last token dropped), not [y_1, ..., y_{T-1}, BOS]."
)
HINT_NO_BOS = (
    "the decoder input must start with BOS: [BOS, y_0, ..., y_{T-2}], the same length T as the target; "
    "greedy decoding starts from BOS alone, so training must too."
)
HINT_SRC_TGT_SWAPPED = (
    "source and decoder input are swapped: call model(src, tgt_in), the source sequence first."
)
HINT_LOSS_LABELS = (
    "the decoder input is right but the loss is not: it is the mean cross-entropy of the logits "
    "(B, T, vocab) against the UNSHIFTED target y (B, T): F.cross_entropy(logits.reshape(-1, V), "
    "tgt.reshape(-1))."
)
HINT_LOSS_SUM = "use the mean cross-entropy over all B * T positions (F.cross_entropy's default), not the sum."
HINT_LOSS_SOFTMAX = (
    "F.cross_entropy takes raw logits and applies log-softmax itself: do not apply softmax first."
)
HINT_TRAIN_MORE = (
    "the model has not learned the task yet: run the training cell (all of it) and check that the loss "
    "curve ends near 0; if it does not, train for more steps."
)
HINT_LEAKED = (
    "your model predicts every token perfectly when it is fed the target itself, but fails when it "
    "decodes on its own: it was trained on the UNSHIFTED target and learned to copy its input. Fix "
    "seq2seq_loss (exercise 5), then rebuild and retrain the model."
)

_VOCAB = DigitVocab()


# ------------------------------------------------------------- integrity ---

# what each exercise asks for, in torch and in this package: an answer that calls one fails (``call``'s ``forbid``)
_LAYER_NORMS = (forbidden(F, "layer_norm") + forbidden(nn, "LayerNorm") + forbidden(ref, "layer_norm", "LayerNorm")
                + forbidden(torch, "layer_norm") + forbidden(torch, "native_layer_norm", optional=True))
_FFNS = forbidden(ref, "FeedForward")
_BLOCKS = (forbidden(ref, "EncoderBlock", "DecoderBlock")
           + forbidden(nn, "TransformerEncoderLayer", "TransformerDecoderLayer", "TransformerEncoder",
                       "TransformerDecoder", "Transformer")
           + forbidden(torch, "_transformer_encoder_layer_fwd", optional=True))   # private: not in every torch
_TRAINERS = forbidden(s2s, "train_seq2seq")
_LOSS_HELPERS = forbidden(s2s, "shift_right") + _TRAINERS
TOL64 = dict(atol=1e-9, rtol=1e-7)     # float64 throughout: far below every listed mistake



# ------------------------------------------------------ 1. layer norm ---

def _ln(x, w, b, eps, *, axes=(-1,), unbiased=False, outside=False, affine="wb"):
    """LayerNorm variants (float64 torch), for recognising mistakes."""
    mean = x.mean(dim=axes, keepdim=True)
    var = x.var(dim=axes, keepdim=True, unbiased=unbiased)
    y = (x - mean) / (torch.sqrt(var) + eps if outside else torch.sqrt(var + eps))
    if affine == "wb":
        return y * w + b
    if affine == "w":
        return y * w
    if affine == "b":
        return y + b
    if affine == "bw":
        return (y + b) * w
    return y


def _layer_norm_mistakes(x, w, b, eps) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = [
        (HINT_EPS_OUTSIDE, _ln(x, w, b, eps, outside=True)),
        (HINT_UNBIASED, _ln(x, w, b, eps, unbiased=True)),
        (HINT_UNBIASED, _ln(x, w, b, eps, unbiased=True, outside=True)),
        (HINT_NO_AFFINE, _ln(x, w, b, eps, affine="")),
        (HINT_NO_WEIGHT, _ln(x, w, b, eps, affine="b")),
        (HINT_NO_BIAS, _ln(x, w, b, eps, affine="w")),
        (HINT_AFFINE_ORDER, _ln(x, w, b, eps, affine="bw")),
    ]
    if eps != 1e-5:
        out.append((HINT_EPS_IGNORED, _ln(x, w, b, 1e-5)))
    for other in (0.0, 1e-12, 1e-8, 1e-6, 1e-5, 1e-3):
        if other != eps:
            out.append((HINT_EPS_WRONG, _ln(x, w, b, other)))
    if x.dim() >= 2 and x.shape[0] > 1:
        out.append((HINT_AXIS_BATCH, _ln(x, w, b, eps, axes=(0,))))
    if x.dim() >= 3 and x.shape[1] > 1:
        out.append((HINT_AXIS_SEQUENCE, _ln(x, w, b, eps, axes=(1,))))
        out.append((HINT_AXIS_ALL, _ln(x, w, b, eps, axes=(1, 2))))
    if x.dim() >= 2:
        out.append((HINT_AXIS_ALL, _ln(x, w, b, eps, axes=tuple(range(x.dim())))))
    return [(h, m.detach().numpy()) for h, m in out]


def _check_layer_norm_case(fn: Callable, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, eps: float,
                           label: str, pass_eps: bool = True) -> None:
    what = f"layer_norm on {label}"
    kwargs = {"eps": eps} if pass_eps else {}
    x_leaf = x.clone().requires_grad_(True)
    x_in = x_leaf * 1.0                # not a leaf: an in-place `x -= mean` runs, and is caught below
    w_in = w.clone().requires_grad_(True)
    b_in = b.clone().requires_grad_(True)
    out = expect_tensor(call(fn, x_in, w_in, b_in, what=what, forbid=_LAYER_NORMS, **kwargs), what, HINT_NOT_TENSOR)
    if not torch.equal(x_in.detach(), x):
        fail(f"{what} changed its input x in place.",
             "compute new tensors (x - mean) rather than modifying x (x -= mean).")
    if out.dtype != x.dtype:
        fail(f"{what} returned a {out.dtype} tensor for a {x.dtype} input.", HINT_DTYPE)
    theirs = nn.LayerNorm(x.shape[-1], eps=eps, dtype=x.dtype)
    with torch.no_grad():
        theirs.weight.copy_(w)
        theirs.bias.copy_(b)
    x_ref = x.clone().requires_grad_(True)
    expected = theirs(x_ref)
    mistakes = _layer_norm_mistakes(x, w, b, eps)
    if out.shape == expected.shape and not matches(out.detach(), expected.detach(), **TOL64):
        diagnose(out.detach(), mistakes, what, **TOL64)
        if matches(out.detach(), expected.detach(), atol=1e-5, rtol=1e-4):     # float32 rounding, nothing else
            fail(f"{what} is close to the reference but not within float64 precision.", HINT_DTYPE)
    expect_close(out.detach(), expected.detach(), what=what, **TOL64, mistakes=mistakes,
                 hint="normalise over the last axis: (x - mean) / sqrt(var + eps) with the biased variance "
                      "(divide by d), then weight * x_hat + bias.")
    if not out.requires_grad:
        fail(f"{what}: the output is not connected to autograd.", HINT_NO_GRAD)
    g = torch.from_numpy(rng().normal(size=tuple(out.shape)))
    grads = torch.autograd.grad(out, (x_leaf, w_in, b_in), g, allow_unused=True)
    grads_ref = torch.autograd.grad(expected, (x_ref, theirs.weight, theirs.bias), g)
    for name, mine, ref_grad in zip(("x", "weight", "bias"), grads, grads_ref):
        if mine is None or not bool(mine.abs().max() > 0):
            fail(f"{what}: no gradient reaches `{name}` through your output (its gradient is "
                 f"{'missing' if mine is None else 'zero'}).", HINT_NO_GRAD)
        if not matches(mine, ref_grad, atol=1e-7, rtol=1e-6):
            fail(f"{what}: the output is right, but its gradient with respect to `{name}` differs from "
                 "torch.nn.LayerNorm's.", HINT_NO_GRAD if name == "x" else HINT_GRAD_WRONG)


def _ln_inputs(gen: np.random.Generator, shape, scale=3.0, shift=1.0):
    d = shape[-1]
    x = torch.from_numpy(gen.normal(shift, scale, size=shape))
    w = torch.from_numpy(gen.normal(1.0, 0.5, size=d))
    b = torch.from_numpy(gen.normal(0.0, 0.5, size=d))
    return x, w, b


LN_EXAMPLE_X = torch.tensor([[[1.0, 2.0, 3.0, 6.0], [0.0, 0.0, 4.0, 4.0]],
                             [[2.0, -1.0, 0.0, 3.0], [5.0, 5.0, 5.0, 9.0]]], dtype=torch.float64)
LN_EXAMPLE_W = torch.tensor([1.0, 1.0, 2.0, 2.0], dtype=torch.float64)
LN_EXAMPLE_B = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64)


def layer_norm_example(fn: Callable) -> None:
    """Visible check: one (2, 2, 4) input with a scale and a shift, against torch.nn.LayerNorm."""
    _check_layer_norm_case(fn, LN_EXAMPLE_X.clone(), LN_EXAMPLE_W, LN_EXAMPLE_B, 1e-5,
                           "the worked example (shape (2, 2, 4), eps=1e-5)")
    out = call(fn, LN_EXAMPLE_X.clone(), LN_EXAMPLE_W, LN_EXAMPLE_B, eps=1e-5, what="layer_norm")
    print("x =", LN_EXAMPLE_X[0].tolist())
    print("layer_norm(x) =", np.round(as_numpy(out)[0], 4).tolist())
    passed("layer_norm (worked example)")


def layer_norm(fn: Callable) -> None:
    """Hidden check: random shapes, d = 4 (the unbiased variance shows), small variances (eps
    matters), eps = 1e-12 and 0.1, the default eps, 2-D input; torch.nn.LayerNorm is the oracle."""
    gen = rng()
    B, T = int(gen.integers(2, 5)), int(gen.integers(3, 7))
    x, w, b = _ln_inputs(gen, (B, T, 4))
    _check_layer_norm_case(fn, x, w, b, 1e-5, f"a random (B, T, d) = ({B}, {T}, 4) batch")
    d = int(gen.integers(6, 17))
    x, w, b = _ln_inputs(gen, (B, T, d), scale=3e-3, shift=0.5)
    _check_layer_norm_case(fn, x, w, b, 1e-5, f"features of variance about 1e-5, shape ({B}, {T}, {d})")
    x, w, b = _ln_inputs(gen, (B, T, d), scale=1e-3)
    _check_layer_norm_case(fn, x, w, b, 1e-12, f"eps=1e-12 (BERT's) with features of variance 1e-6, shape ({B}, {T}, {d})")
    x, w, b = _ln_inputs(gen, (B, T, d), scale=0.3)
    _check_layer_norm_case(fn, x, w, b, 0.1, f"eps=0.1, shape ({B}, {T}, {d})")
    x, w, b = _ln_inputs(gen, (5, d), scale=2e-3)
    _check_layer_norm_case(fn, x, w, b, 1e-5, f"a 2-D (N, d) = (5, {d}) input with the default eps",
                           pass_eps=False)
    passed("layer_norm")


def _check_layer_norm_module(norm: nn.Module, name: str) -> None:
    """Fail (CheckFailed) unless the learner's LayerNorm module ``name`` of a block computes LayerNorm."""
    d = norm.weight.shape[0]
    gen = rng()
    x = torch.from_numpy(gen.normal(0.5, 2e-3, size=(2, 3, d)))
    saved = [p.detach().clone() for p in (norm.weight, norm.bias)]
    try:
        with torch.no_grad():
            norm.weight.copy_(torch.from_numpy(gen.normal(1, 0.5, size=d)))
            norm.bias.copy_(torch.from_numpy(gen.normal(0, 0.5, size=d)))
            out = call(norm, x, what=f"your LayerNorm module ({name})")
            expected = F.layer_norm(x, (d,), norm.weight, norm.bias, getattr(norm, "eps", 1e-5))
        if not isinstance(out, torch.Tensor) or not matches(out.detach(), expected, **TOL64):
            fail(f"your LayerNorm module ({name}): its output differs from torch.nn.LayerNorm's on the same weights.")
    finally:
        with torch.no_grad():
            norm.weight.copy_(saved[0])
            norm.bias.copy_(saved[1])


# ------------------------------------------------------ 2. feed-forward ---

def _unfinished_part(exc: BaseException, what: str) -> None:
    """Building ``what`` raised NotImplementedError inside another class's code: name that class."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    owner = tb.tb_frame.f_locals.get("self") if tb is not None else None
    if owner is not None and tb.tb_frame.f_code.co_name == "__init__" and not what.startswith(type(owner).__name__):
        name = type(owner).__name__
        fail(f"building {what} calls {name}.__init__, which still raises NotImplementedError.",
             f"complete {name} (its exercise) first, then run this cell again.")


def _make(cls: Callable, *args: Any, what: str, **kwargs: Any) -> nn.Module:
    try:
        module = cls(*args, **kwargs)
    except NotImplementedError as exc:
        _unfinished_part(exc, what)
        module = call(cls, *args, what=what, **kwargs)
    except Exception:  # noqa: BLE001 - let call() label the learner's exception
        module = call(cls, *args, what=what, **kwargs)
    if not isinstance(module, nn.Module):
        fail(f"{what} did not give a torch.nn.Module (got {type(module).__name__}).")
    return module


def _linear(module: nn.Module, name: str, shape: tuple[int, int], owner: str) -> nn.Linear:
    layer = getattr(module, name, None)
    if not isinstance(layer, nn.Linear):
        fail(f"{owner}.{name} is {type(layer).__name__ if layer is not None else 'missing'}, expected an nn.Linear.",
             HINT_FFN_SHAPES)
    if tuple(layer.weight.shape) != shape or layer.bias is None:
        fail(f"{owner}.{name} has weight shape {tuple(layer.weight.shape)}"
             f"{'' if layer.bias is not None else ' and no bias'}; expected {shape} with a bias.", HINT_FFN_SHAPES)
    return layer


def _ffn_ref(x, fc1, fc2, act: str):
    h = fc1(x)
    return fc2(F.gelu(h) if act == "gelu" else F.relu(h))


def _ffn_mistakes(x, fc1, fc2, act: str) -> list[tuple[str, Any]]:
    actf = F.gelu if act == "gelu" else F.relu
    other = F.relu if act == "gelu" else F.gelu
    out = [
        (HINT_FFN_NO_ACT, fc2(fc1(x))),
        (HINT_FFN_ACT_AFTER, actf(fc2(fc1(x)))),
        (HINT_FFN_ACT_AFTER, actf(fc2(actf(fc1(x))))),
        (HINT_FFN_ACT_TWICE, fc2(actf(actf(fc1(x))))),
        (HINT_FFN_WRONG_ACT, fc2(other(fc1(x)))),
    ]
    if act == "gelu":
        out.append((HINT_FFN_GELU_TANH, fc2(F.gelu(fc1(x), approximate="tanh"))))
    return [(h, m.detach().numpy()) for h, m in out]


def _check_ffn(cls: Callable, d: int, d_ff: int, act: str, x: torch.Tensor, gen: np.random.Generator,
               label: str) -> nn.Module:
    what = f"FeedForward({d}, {d_ff}, activation={act!r})"
    ffn = _make(cls, d, d_ff, activation=act, what=what)
    fc1 = _linear(ffn, "fc1", (d_ff, d), what)
    fc2 = _linear(ffn, "fc2", (d, d_ff), what)
    ffn = ffn.double()
    with torch.no_grad():
        for p in ffn.parameters():
            p.copy_(torch.from_numpy(gen.normal(0, 0.5, size=tuple(p.shape))))
    out = expect_tensor(call(ffn, x, what=f"{what} on {label}", forbid=_FFNS), f"{what} on {label}", HINT_NOT_TENSOR)
    with torch.no_grad():
        expect_close(out.detach(), _ffn_ref(x, fc1, fc2, act), what=f"{what} on {label}", **TOL64,
                     mistakes=_ffn_mistakes(x, fc1, fc2, act),
                     hint="fc2(activation(fc1(x))), applied to every position.")
    return ffn


def feed_forward_example(cls: Callable) -> None:
    """Visible check: FeedForward(4, 16) with ReLU on a (1, 3, 4) input."""
    gen = np.random.default_rng(5)
    x = torch.from_numpy(gen.normal(size=(1, 3, 4)))
    ffn = _check_ffn(cls, 4, 16, "relu", x, gen, "a (1, 3, 4) input")
    n = sum(p.numel() for p in ffn.parameters())
    print(f"FeedForward(4, 16): {n} parameters (4*16 + 16 + 16*4 + 4 = 148)")
    passed("FeedForward (worked example)")


def feed_forward(cls: Callable) -> None:
    """Hidden check: random sizes, ReLU and exact GELU, with larger-than-default weights."""
    gen = rng()
    for act in ("relu", "gelu"):
        d = int(gen.integers(3, 12))
        B, T = int(gen.integers(1, 4)), int(gen.integers(2, 7))
        x = torch.from_numpy(gen.normal(size=(B, T, d)))
        _check_ffn(cls, d, 4 * d, act, x, gen, f"a random ({B}, {T}, {d}) input")
    passed("FeedForward")


def _check_ffn_module(ff: nn.Module) -> None:
    """Fail (CheckFailed) unless the learner's FeedForward module of a block computes fc2(activation(fc1(x)))."""
    fc1, fc2 = getattr(ff, "fc1", None), getattr(ff, "fc2", None)
    if not isinstance(fc1, nn.Linear) or not isinstance(fc2, nn.Linear):
        fail("your FeedForward module (ff): its fc1 / fc2 are not nn.Linear layers.")
    x = torch.from_numpy(rng().normal(size=(2, 3, fc1.in_features)))
    out = call(ff, x, what="your FeedForward module (ff)")
    with torch.no_grad():
        act = getattr(ff, "activation", "relu")
        expected = _ffn_ref(x, fc1, fc2, act if act in ("relu", "gelu") else "relu")
    if not isinstance(out, torch.Tensor) or not matches(out.detach(), expected, **TOL64):
        fail("your FeedForward module (ff): its output differs from fc2(activation(fc1(x))).")


# ---------------------------------------------------- 3./4. the blocks ---

def _torch_init(layer: nn.Module, gen: np.random.Generator) -> nn.Module:
    """Weights larger than torch's default (normal, std 0.3), LayerNorms included: far from identity."""
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.from_numpy(gen.normal(0.0, 0.3, size=tuple(p.shape))))
        for name, p in layer.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.add_(1.0)
    return layer


def _load(loader: Callable, mine: nn.Module, theirs: nn.Module, what: str) -> None:
    try:
        loader(mine, theirs)
    except (AttributeError, TypeError, RuntimeError, ValueError) as exc:
        fail(f"could not copy torch's weights into {what}: {type(exc).__name__}: {exc}",
             "keep the __init__ you were given: the attribute names (self_attn, cross_attn, ff.fc1, ff.fc2, "
             "norm1, norm2, norm3, norm_first) are how weights are loaded into your block.")


def _earlier_parts(block: nn.Module, norms: tuple[str, ...]) -> list[Earlier]:
    """The block's LayerNorm modules (the learner's layer_norm, exercise 1) and its FeedForward (exercise 2),
    for :func:`blame_earlier`: a block that fails because one of them is wrong is told to fix that first."""
    parts = []
    for name in norms:
        norm = getattr(block, name, None)
        if isinstance(norm, nn.Module) and getattr(norm, "weight", None) is not None:
            parts.append(Earlier("layer_norm", "exercise 1",
                                 lambda m, name=name: _check_layer_norm_module(m, name), obj=norm))
    ff = getattr(block, "ff", None)
    if isinstance(ff, nn.Module):
        parts.append(Earlier("FeedForward", "exercise 2", _check_ffn_module, obj=ff))
    return parts


STYLE_HINTS = {"no_residual": HINT_NO_RESIDUAL, "residual_after_norm": HINT_RESIDUAL_AFTER_NORM,
               "residual_normed": HINT_PRE_RESIDUAL_NORMED}
STYLES = {False: ("ok", "no_residual", "residual_after_norm"), True: ("ok", "no_residual", "residual_normed")}


def _wrap(x, f, norm, norm_first: bool, style: str = "ok"):
    """One sublayer with its residual and norm, written correctly (``"ok"``) or with a known mistake."""
    if norm_first:
        if style == "no_residual":
            return f(norm(x))
        if style == "residual_normed":              # x = norm(x); x = x + f(x)
            h = norm(x)
            return h + f(h)
        return x + f(norm(x))
    if style == "no_residual":
        return norm(f(x))
    if style == "residual_after_norm":              # x + norm(f(x))
        return x + norm(f(x))
    return norm(x + f(x))


def _style_combos(norm_first: bool, n: int) -> list[tuple[str, tuple[str, ...]]]:
    """Every assignment of mistake styles to ``n`` sublayers with at least one mistake, with its hint."""
    combos = [()]
    for _ in range(n):
        combos = [c + (s,) for c in combos for s in STYLES[norm_first]]
    return [(STYLE_HINTS[next(s for s in c if s != "ok")], c) for c in combos if any(s != "ok" for s in c)]


def _enc_variant(r: ref.EncoderBlock, x, mask, *, norm_first, styles=("ok", "ok"), variant=""):
    """The package's encoder block on the learner's weights, with mistakes planted."""
    n1, n2 = (r.norm2, r.norm1) if variant == "norms_swapped" else (r.norm1, r.norm2)
    if variant == "mask_ignored":
        mask = None
    elif variant == "mask_inverted":
        mask = ~mask
    causal = variant == "causal"
    h = _wrap(x, lambda t: r.self_attn(t, mask=mask, is_causal=causal)[0], n1, norm_first, styles[0])
    if variant == "ff_on_input":                        # the FFN reads the block's input, not h
        return (h + r.ff(n2(x))) if norm_first else n2(h + r.ff(x))
    return _wrap(h, r.ff, n2, norm_first, styles[1])


def _enc_mistakes(r, x, mask, norm_first):
    out = []
    with torch.no_grad():
        swapped = HINT_ALWAYS_PRE if not norm_first else HINT_ALWAYS_POST
        out.append((swapped, _enc_variant(r, x, mask, norm_first=not norm_first)))
        for hint, styles in _style_combos(norm_first, 2):
            out.append((hint, _enc_variant(r, x, mask, norm_first=norm_first, styles=styles)))
        out.append((HINT_NO_RESIDUAL, _enc_variant(r, x, mask, norm_first=not norm_first,
                                                   styles=("no_residual", "no_residual"))))
        for variant, hint in (("norms_swapped", HINT_NORMS_SWAPPED), ("ff_on_input", HINT_FF_ON_INPUT),
                              ("causal", HINT_ENC_CAUSAL),
                              ("mask_ignored", HINT_MASK_IGNORED), ("mask_inverted", HINT_MASK_INVERTED)):
            if variant.startswith("mask") and mask is None:
                continue
            out.append((hint, _enc_variant(r, x, mask, norm_first=norm_first, variant=variant)))
    return [(h, m.numpy()) for h, m in out]


def _paired_blocks(kind: str, cls: Callable, norm_first: bool, gen: np.random.Generator, d: int, h: int,
                   d_ff: int):
    """The learner's block and torch's layer (``kind`` "Encoder" or "Decoder") with the same float64 weights.

    Returns ``(mine, theirs, label, what)``.
    """
    label = "pre-LN (norm_first=True)" if norm_first else "post-LN (norm_first=False)"
    what = f"{kind}Block({d}, {h}, {d_ff}, norm_first={norm_first})"
    mine = _make(cls, d, h, d_ff, norm_first=norm_first, what=what)
    torch_cls, loader = ((nn.TransformerEncoderLayer, ref.load_torch_encoder_layer) if kind == "Encoder"
                         else (nn.TransformerDecoderLayer, ref.load_torch_decoder_layer))
    theirs = _torch_init(torch_cls(d, h, d_ff, dropout=0.0, batch_first=True, norm_first=norm_first,
                                   dtype=torch.float64), gen)
    mine = mine.double()
    if getattr(mine, "norm_first", None) != norm_first:
        fail(f"{what}.norm_first is {getattr(mine, 'norm_first', None)!r}; keep `self.norm_first = norm_first` "
             "from the __init__ you were given.")
    _load(loader, mine, theirs, what)
    mine.eval()
    theirs.train()                     # dropout is 0; train mode keeps torch off its fused fast path
    return mine, theirs, label, what


def _check_encoder_case(cls: Callable, norm_first: bool, gen: np.random.Generator, B: int, T: int, d: int,
                        h: int, d_ff: int, lengths: list[int] | None) -> None:
    mine, theirs, label, what = _paired_blocks("Encoder", cls, norm_first, gen, d, h, d_ff)
    x = torch.from_numpy(gen.normal(size=(B, T, d)))
    mask = None
    case = f"{what}, {label}, on a random ({B}, {T}, {d}) batch"
    with torch.no_grad():
        if lengths is None:
            expected = theirs(x)
        else:
            mask = att.padding_mask(torch.tensor(lengths), T)              # (B, 1, T), True = real
            expected = theirs(x, src_key_padding_mask=~mask[:, 0])         # torch: True = padding
            case += f" with a padding mask (lengths {lengths})"
    args = (x,) if mask is None else (x, mask)
    with blame_earlier(mine, "EncoderBlock", *_earlier_parts(mine, ("norm1", "norm2"))):
        with torch.no_grad():
            out = expect_tensor(call(mine, *args, what=case, forbid=_BLOCKS), case, HINT_NOT_TENSOR)
        r = ref.load_torch_encoder_layer(ref.EncoderBlock(d, h, d_ff, norm_first=norm_first).double(), theirs)
        expect_close(out, expected, what=case, **TOL64, mistakes=_enc_mistakes(r, x, mask, norm_first),
                     hint="post-LN: x = norm1(x + self_attn(x)); x = norm2(x + ff(x)). pre-LN: "
                          "x = x + self_attn(norm1(x)); x = x + ff(norm2(x)). Pass the mask to self-attention.")


def encoder_block_example(cls: Callable) -> None:
    """Visible check: small post-LN and pre-LN blocks against torch's TransformerEncoderLayer, with and
    without a padding mask."""
    gen = np.random.default_rng(0)
    for norm_first in (False, True):
        _check_encoder_case(cls, norm_first, gen, 2, 5, 8, 2, 32, None)
        _check_encoder_case(cls, norm_first, gen, 2, 5, 8, 2, 32, [5, 3])
    print("post-LN and pre-LN blocks match torch.nn.TransformerEncoderLayer on a (2, 5, 8) batch, "
          "without and with a padding mask (lengths 5 and 3)")
    passed("EncoderBlock (worked example)")


def encoder_block(cls: Callable) -> None:
    """Hidden check: random sizes, both arrangements, with and without a padding mask."""
    gen = rng()
    for norm_first in (False, True):
        h = int(gen.choice([2, 4]))
        d = h * int(gen.integers(2, 5))
        B, T = 3, int(gen.integers(4, 8))
        _check_encoder_case(cls, norm_first, gen, B, T, d, h, 4 * d, None)
        lengths = [T, int(gen.integers(1, T)), int(gen.integers(2, T))]
        _check_encoder_case(cls, norm_first, gen, B, T, d, h, 4 * d, lengths)
    passed("EncoderBlock")


def _dec_variant(r: ref.DecoderBlock, x, memory, memory_mask, *, norm_first, styles=("ok", "ok", "ok"),
                 variant=""):
    n1, n2, n3 = (r.norm2, r.norm1, r.norm3) if variant == "norms_swapped" else (r.norm1, r.norm2, r.norm3)
    causal = variant not in ("no_causal", "triu", "diagonal_excluded")
    mmask = None if variant in ("memory_mask_ignored", "memory_mask_on_self") else memory_mask
    if variant == "memory_mask_inverted":
        mmask = ~memory_mask
    smask = memory_mask if variant == "memory_mask_on_self" else None
    T = x.shape[1]
    if variant == "triu":                                 # the upper triangle: the future, not the past
        smask = torch.ones(T, T, dtype=torch.bool).triu()
    elif variant == "diagonal_excluded":                  # tril(-1), first row kept so that it can attend
        smask = torch.ones(T, T, dtype=torch.bool).tril(-1)
        smask[0, 0] = True

    def sa(h):
        return r.self_attn(h, mask=smask, is_causal=causal)[0]

    def ca(h):
        if variant == "cross_on_x":
            return r.cross_attn(h, mask=None)[0]
        if variant == "cross_on_input":                  # memory replaced by the block's input x
            return r.cross_attn(h, x, mask=None)[0]
        if variant == "cross_wrong_module":
            return r.self_attn(h, memory, mask=mmask)[0]
        return r.cross_attn(h, memory, mask=mmask)[0]

    h = _wrap(x, sa, n1, norm_first, styles[0])
    h = _wrap(h, ca, n2, norm_first, styles[1])
    return _wrap(h, r.ff, n3, norm_first, styles[2])


DEC_VARIANTS = [
    ("no_causal", HINT_NO_CAUSAL), ("cross_on_x", HINT_CROSS_ON_X), ("cross_on_input", HINT_CROSS_ON_X),
    ("cross_wrong_module", HINT_CROSS_WRONG_MODULE), ("memory_mask_ignored", HINT_MEMORY_MASK_IGNORED),
    ("memory_mask_on_self", HINT_MEMORY_MASK_ON_SELF), ("memory_mask_inverted", HINT_MEMORY_MASK_INVERTED),
    ("norms_swapped", HINT_NORMS_SWAPPED), ("triu", HINT_CAUSAL_WRONG), ("diagonal_excluded", HINT_CAUSAL_WRONG),
]


def _dec_mistakes(r, x, memory, memory_mask, norm_first):
    out = []
    with torch.no_grad():
        swapped = HINT_ALWAYS_PRE if not norm_first else HINT_ALWAYS_POST
        out.append((swapped, _dec_variant(r, x, memory, memory_mask, norm_first=not norm_first)))
        for hint, styles in _style_combos(norm_first, 3):
            out.append((hint, _dec_variant(r, x, memory, memory_mask, norm_first=norm_first, styles=styles)))
        out.append((HINT_NO_RESIDUAL, _dec_variant(r, x, memory, memory_mask, norm_first=not norm_first,
                                                   styles=("no_residual",) * 3)))
        for variant, hint in DEC_VARIANTS:
            if variant.startswith("memory_mask") and memory_mask is None:
                continue
            for nf in (norm_first, not norm_first) if variant in ("no_causal", "cross_on_x", "cross_on_input") \
                    else (norm_first,):
                try:
                    out.append((hint, _dec_variant(r, x, memory, memory_mask, norm_first=nf, variant=variant)))
                except RuntimeError:        # a mistake that cannot run on these shapes
                    pass
    return [(h, m.numpy()) for h, m in out]


def _dec_explainer(memory_mask_given: bool) -> Callable[[Exception], str | None]:
    def explain(exc: Exception) -> str | None:
        if not (isinstance(exc, RuntimeError) and "size of tensor" in str(exc)):
            return None
        swapped = ("cross-attention's arguments are swapped: its queries come from the decoder (h, length T), "
                   "its keys and values from memory (length S): self.cross_attn(h, memory, ...)")
        if not memory_mask_given:
            return f"a shape mismatch between the target (length T) and the memory (length S): {swapped}."
        return ("a shape mismatch between the target (length T) and the memory (length S). Either memory_mask "
                "went to self-attention (it has shape (B, 1, S) and belongs to cross-attention, whose keys "
                "come from memory: self.cross_attn(h, memory, mask=memory_mask); self-attention only gets "
                f"is_causal), or {swapped}.")
    return explain


def _check_decoder_case(cls: Callable, norm_first: bool, gen: np.random.Generator, B: int, T: int, S: int,
                        d: int, h: int, d_ff: int, lengths: list[int] | None) -> None:
    mine, theirs, label, what = _paired_blocks("Decoder", cls, norm_first, gen, d, h, d_ff)
    x = torch.from_numpy(gen.normal(size=(B, T, d)))
    memory = torch.from_numpy(gen.normal(size=(B, S, d)))
    blocked_future = ~att.causal_mask(T, "cpu")                            # torch: True = blocked
    case = f"{what}, {label}, target ({B}, {T}, {d}), memory ({B}, {S}, {d})"
    memory_mask = None
    with torch.no_grad():
        if lengths is None:
            expected = theirs(x, memory, tgt_mask=blocked_future)
        else:
            memory_mask = att.padding_mask(torch.tensor(lengths), S)
            expected = theirs(x, memory, tgt_mask=blocked_future, memory_key_padding_mask=~memory_mask[:, 0])
            case += f", memory_mask for source lengths {lengths}"
    kwargs = {} if memory_mask is None else {"memory_mask": memory_mask}
    with blame_earlier(mine, "DecoderBlock", *_earlier_parts(mine, ("norm1", "norm2", "norm3"))):
        with torch.no_grad():
            out = expect_tensor(call(mine, x, memory, what=case, forbid=_BLOCKS,
                                      explain=_dec_explainer(memory_mask is not None), **kwargs),
                                 case, HINT_NOT_TENSOR)
        r = ref.load_torch_decoder_layer(ref.DecoderBlock(d, h, d_ff, norm_first=norm_first).double(), theirs)
        expect_close(out, expected, what=case, **TOL64, mistakes=_dec_mistakes(r, x, memory, memory_mask, norm_first),
                     hint="three sublayers, each with a residual and its own norm: causal self-attention "
                          "(norm1), cross-attention to memory with memory_mask (norm2), feed-forward (norm3).")


def decoder_block_example(cls: Callable) -> None:
    """Visible check: small post-LN and pre-LN blocks against torch's TransformerDecoderLayer, with and
    without a memory mask."""
    gen = np.random.default_rng(1)
    for norm_first in (False, True):
        _check_decoder_case(cls, norm_first, gen, 2, 4, 6, 8, 2, 32, None)
        _check_decoder_case(cls, norm_first, gen, 2, 4, 6, 8, 2, 32, [6, 4])
    print("post-LN and pre-LN blocks match torch.nn.TransformerDecoderLayer (target length 4, memory length 6), "
          "without and with a memory mask (source lengths 6 and 4)")
    passed("DecoderBlock (worked example)")


def decoder_block(cls: Callable) -> None:
    """Hidden check: random sizes, both arrangements, with and without a memory padding mask."""
    gen = rng()
    for norm_first in (False, True):
        h = int(gen.choice([2, 4]))
        d = h * int(gen.integers(2, 5))
        B, T, S = 3, int(gen.integers(3, 7)), int(gen.integers(4, 9))
        while S == T:
            S = int(gen.integers(4, 9))
        _check_decoder_case(cls, norm_first, gen, B, T, S, d, h, 4 * d, None)
        lengths = [S, int(gen.integers(1, S)), int(gen.integers(2, S))]
        _check_decoder_case(cls, norm_first, gen, B, T, S, d, h, 4 * d, lengths)
    passed("DecoderBlock")


# -------------------------------------------------- 5. the training loss ---

class _Spy(nn.Module):
    """A seq2seq model that records what it is called with."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, src, tgt_in, *args, **kwargs):
        self.calls.append((src.detach().clone(), tgt_in.detach().clone()))
        return self.model(src, tgt_in, *args, **kwargs)


def _loss_case(fn: Callable, model: nn.Module, src: torch.Tensor, tgt: torch.Tensor, label: str) -> None:
    what = f"seq2seq_loss on {label}"
    spy = _Spy(model)
    src_before, tgt_before = src.clone(), tgt.clone()
    loss = expect_tensor(call(fn, spy, src, tgt, what=what, forbid=_LOSS_HELPERS), what, HINT_NOT_TENSOR)
    if not torch.equal(tgt, tgt_before) or not torch.equal(src, src_before):
        fail(f"{what} changed src or tgt in place.", "build the decoder input as a new tensor (torch.cat).")
    if not spy.calls:
        fail(f"{what} never called the model.", "compute logits = model(src, tgt_in).")
    s, t_in = spy.calls[-1]
    shifted = s2s.shift_right(tgt, _VOCAB.bos)
    if torch.equal(s, tgt) or torch.equal(s, shifted) and not torch.equal(t_in, shifted):
        fail(f"{what}: the model's first argument was not the source.", HINT_SRC_TGT_SWAPPED)
    if not torch.equal(s, src):
        fail(f"{what}: the model's first argument was not `src`.", HINT_SRC_TGT_SWAPPED)
    if t_in.shape == tgt.shape and torch.equal(t_in, tgt):
        fail(f"{what}: the decoder input equals the target.", HINT_UNSHIFTED)
    if t_in.shape == tgt.shape and torch.equal(t_in[:, :-1], tgt[:, 1:]):
        fail(f"{what}: the decoder input is the target shifted left.", HINT_SHIFT_LEFT)
    if t_in.shape != tgt.shape or not torch.equal(t_in, shifted):
        hint = HINT_NO_BOS if (t_in.shape[1] == tgt.shape[1] - 1 or not bool((t_in[:, 0] == _VOCAB.bos).all())) \
            else "the decoder input is [BOS, y_0, ..., y_{T-2}]: BOS, then the target without its last token."
        fail(f"{what}: the decoder input was {t_in[0].tolist()} for the target {tgt[0].tolist()}; expected "
             f"{shifted[0].tolist()}.", hint)
    if loss.dim() != 0:
        fail(f"{what} returned a tensor of shape {tuple(loss.shape)}; expected one number (a 0-d tensor).",
             "F.cross_entropy averages over all positions by default; reshape logits to (B*T, V) and the target "
             "to (B*T,).")
    if not loss.requires_grad:
        fail(f"{what}: the loss is not connected to the model's parameters.",
             "compute the loss with torch operations on the model's logits (no .detach(), .item() or "
             "numpy), so that loss.backward() reaches the weights.")
    with torch.no_grad():
        logits = model(src, shifted)
        V = logits.shape[-1]
        flat = logits.reshape(-1, V)
        expected = F.cross_entropy(flat, tgt.reshape(-1))
        probs = torch.softmax(flat, -1)
        mistakes = [
            (HINT_LOSS_SUM, F.cross_entropy(flat, tgt.reshape(-1), reduction="sum")),
            (HINT_LOSS_SOFTMAX, F.cross_entropy(probs, tgt.reshape(-1))),
            (HINT_LOSS_LABELS, F.cross_entropy(flat, shifted.reshape(-1))),
        ]
    expect_close(loss.detach(), expected, what=what, atol=1e-6, rtol=1e-5,
                 mistakes=[(h, m.numpy()) for h, m in mistakes], hint=HINT_LOSS_LABELS)


def _loss_model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return s2s.Seq2SeqTransformer(s2s.Seq2SeqConfig(d_model=16, n_heads=2, d_ff=32, n_layers=1)).eval()


def seq2seq_loss_example(fn: Callable) -> None:
    """Visible check: a random untrained model on two sequences of length 4."""
    src = torch.tensor([[1, 2, 3, 4], [5, 0, 0, 7]])
    tgt = src.flip(1)
    _loss_case(fn, _loss_model(0), src, tgt, "the worked example (2 sequences of length 4)")
    print("decoder input for target", tgt[0].tolist(), "->", s2s.shift_right(tgt)[0].tolist())
    passed("seq2seq_loss (worked example)")


def seq2seq_loss(fn: Callable) -> None:
    """Hidden check: fresh batches and models, reverse and sort tasks."""
    gen = rng()
    for task in ("reverse", "sort"):
        B, T = int(gen.integers(2, 6)), int(gen.integers(3, 9))
        src, tgt = (torch.from_numpy(a) for a in make_digit_batch(B, T, task, rng=gen))
        _loss_case(fn, _loss_model(int(gen.integers(0, 2**31))), src, tgt, f"a random {task} batch ({B}, {T})")
    passed("seq2seq_loss")


# ------------------------------------------------- 6. the trained model ---

def _model_blocks(model: nn.Module) -> list[Earlier]:
    """The learner's block classes the model is built from, as earlier exercises to blame."""
    earlier = []
    for stack, check, name, exercise in (("encoder", encoder_block, "EncoderBlock", "exercise 3"),
                                         ("decoder", decoder_block, "DecoderBlock", "exercise 4")):
        blocks = getattr(model, stack, None)
        if blocks:
            earlier.append(Earlier(name, exercise, check, obj=type(blocks[0])))
    return earlier


TRAINED_THRESHOLD = 0.95      # the target; the model answer reaches about 100% (100 steps: only ~95%)
HIDDEN_SEED = 20_500_417      # a statistical check: fixed sequences, so that regrading never flips it


def _check_trained(model: Any, n: int, gen: np.random.Generator, threshold: float = TRAINED_THRESHOLD,
                   length: int = 8) -> float:
    if model is None:
        fail("seq2seq_model is None: the training cell did not build it.",
             "complete exercises 1-6 (train included), then run the cell that builds and trains the model.")
    if not isinstance(model, nn.Module):
        fail(f"seq2seq_model should be a torch.nn.Module, got {type(model).__name__}.")
    for name, pkg in (("encoder", ref.EncoderBlock), ("decoder", ref.DecoderBlock)):
        stack = getattr(model, name, None)
        if stack is not None and any(type(b) is pkg for b in stack):
            fail(f"seq2seq_model's {name} is built from the package's {pkg.__name__}, not yours.",
                 "build the model with block_factory=make_block, as the training cell does.")
    device = model_device(model)
    src, tgt = make_digit_batch(n, length, "reverse", rng=gen)
    src_t = torch.from_numpy(src).to(device)
    was_training = model.training
    try:
        pred = call(s2s.greedy_decode, model, src_t, length, what="greedy decoding with seq2seq_model")
        acc = float((pred.cpu().numpy() == tgt).all(axis=1).mean())
        if acc < threshold:
            model.eval()
            with torch.no_grad():
                tgt_t = torch.from_numpy(tgt).to(device)
                copy = (model(src_t, tgt_t).argmax(-1) == tgt_t).float().mean().item()
            with blame_earlier(model, "seq2seq_model", *_model_blocks(model),
                               then="rebuild and retrain the model, and run this cell again"):
                fail(f"seq2seq_model reverses {acc:.1%} of {n} fresh sequences of {length} digits exactly; it "
                     f"needs at least {threshold:.0%}.", HINT_LEAKED if copy > 0.9 else HINT_TRAIN_MORE)
    finally:
        model.train(was_training)
    return acc


def trained_model_example(model: Any) -> None:
    """Visible check: 200 sequences drawn with a fixed seed."""
    acc = _check_trained(model, 200, np.random.default_rng(0))
    print(f"exact match on 200 sequences: {acc:.1%}")
    passed("seq2seq_model (worked example)")


def trained_model(model: Any) -> None:
    """Hidden check: 1,000 sequences the model has never seen (a fixed hidden seed, so that a model
    near the threshold gets the same grade every time)."""
    _check_trained(model, 1000, rng(HIDDEN_SEED))
    passed("seq2seq_model")


# ------------------------------------------- 6b. the warm-up schedule ---

HINT_WARMUP_IGNORED = (
    "`warmup` is ignored: with warmup=W the learning rate must climb linearly over the first W steps "
    "(lr/W, 2 lr/W, ..., lr) and stay at lr after that. Section 6's third curve (post-LN with warm-up) "
    "needs it. One way: torch.optim.lr_scheduler.LambdaLR(optimiser, lambda step: min(1.0, (step + 1) / "
    "warmup) if warmup else 1.0), and schedule.step() after every optimiser.step()."
)
HINT_WARMUP_SHAPE = (
    "the warm-up is not a linear climb to lr: with warmup=W the rate at step s (from 0) is lr * (s + 1) / W "
    "up to step W - 1, then lr (LambdaLR with min(1.0, (step + 1) / warmup); call schedule.step() once per "
    "training step, after optimiser.step())."
)
HINT_WARMUP_ZERO = (
    "with warmup=0 the learning rate must be `lr` from the first step to the last (no schedule at all)."
)


@contextlib.contextmanager
def _record_learning_rates():
    """Every optimiser step's learning rate (of its first parameter group), whatever optimiser is used."""
    rates: list[float] = []

    def hook(optimiser, args, kwargs):
        rates.append(float(optimiser.param_groups[0]["lr"]))

    handle = register_optimizer_step_pre_hook(hook)
    try:
        yield rates
    finally:
        handle.remove()


def _train_rates(fn: Callable, steps: int, lr: float, warmup: int) -> list[float]:
    torch.manual_seed(0)
    model = s2s.Seq2SeqTransformer(s2s.Seq2SeqConfig(d_model=8, n_heads=2, d_ff=16, n_layers=1))
    what = f"train(model, steps={steps}, lr={lr}, batch_size=4, length=4, warmup={warmup})"
    with _record_learning_rates() as rates:
        losses = call(fn, model, steps=steps, lr=lr, batch_size=4, length=4, warmup=warmup, what=what,
                      forbid=_TRAINERS)
    if losses is None:
        fail(f"{what} returned None.", "return the list of per-step losses (loss.item() of every step).")
    if len(rates) != steps:
        fail(f"{what} made {len(rates)} optimiser steps; expected {steps}, one per training step.",
             "call optimiser.step() exactly once in each of the `steps` iterations.")
    return rates


def train_schedule(fn: Callable) -> None:
    """Hidden check: the learner's train() with warmup=0 and with a random warmup, on a tiny model;
    the learning rate of every optimiser step is recorded (an optimiser step pre-hook)."""
    gen = rng()
    lr = float(gen.choice([1e-3, 2e-3, 5e-3]))
    rates = _train_rates(fn, 5, lr, 0)
    if not np.allclose(rates, lr, rtol=1e-6, atol=0):
        fail(f"train(..., lr={lr}, warmup=0) used the learning rates {[f'{r:.3g}' for r in rates]}.",
             HINT_WARMUP_ZERO)
    warmup = int(gen.integers(3, 6))
    steps = warmup + 3
    rates = _train_rates(fn, steps, lr, warmup)
    shown = [f"{r:.3g}" for r in rates]
    if np.allclose(rates, lr, rtol=1e-6, atol=0):
        fail(f"train(..., lr={lr}, warmup={warmup}) used lr = {lr} from the first step: {shown}.",
             HINT_WARMUP_IGNORED)
    # accept (s + 1) / W (the model answer) and s / W (a schedule that starts at 0)
    accepted = [[lr * min(1.0, (s + k) / warmup) for s in range(steps)] for k in (1, 0)]
    if not any(np.allclose(rates, a, rtol=1e-6, atol=1e-12) for a in accepted):
        fail(f"train(..., lr={lr}, warmup={warmup}) used the learning rates {shown}; expected "
             f"{[f'{r:.3g}' for r in accepted[0]]}.", HINT_WARMUP_SHAPE)
    passed("train (learning-rate warm-up)")
