"""Checks for notebook 07 (GPT: causal self-attention, a GPT-2-shaped model, sampling, KV cache).

Each exercise has a visible ``<name>_example(...)`` check (a small worked example
the learner can read) and a hidden ``<name>(...)`` check (fresh random inputs,
edge cases, and the real oracle: transformers' ``GPT2LMHeadModel`` with eager
attention, its weights re-initialised at std 0.3 so that GPT-2's tanh GELU and
the scale of attention matter at the 1e-3 level, and copied into the learner's
model).  Every listed mistake is recognised and named in the failure message.

The learner's code is always what runs, through :func:`.core.call` with the
functions that *are* the exercise forbidden.  Sampling checks are statistical:
many draws with fixed seeds (so they never flake), bounds at about 5 sigma, and
every listed wrong sampler is tens of sigma away.  A sampler or generation loop
whose check fails while the filter or sampler it calls fails its own visible
check is sent back to that exercise first (:func:`.core.blame_earlier`).

The messages name the course's modules, the ones the learner's ``GPT`` has:
``wte``, ``wpe``, ``drop``, ``blocks`` of the course's ``EncoderBlock``
(``norm1``, ``self_attn.q_proj`` / ``k_proj`` / ``v_proj`` / ``out_proj``,
``norm2``, ``ff.fc1`` / ``ff.fc2``), ``ln_f`` and ``lm_head``.  GPT-2's names
(``ln_1``, ``attn.c_attn``, ``mlp.c_fc``, ...) appear only in the messages of
``load_gpt2_weights``, where the learner copies one into the other; the mapping
is :data:`GPT2_SOURCES`.
"""
from __future__ import annotations

import contextlib
import math
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from .. import attention as att
from .. import blocks as ref_blocks
from .. import corpus
from .. import gpt as ref_gpt
from .. import sampling as ref_sampling
from .core import (FUSED_ATTENTION, Earlier, as_numpy, blame_earlier, call, expect, expect_close, expect_tensor, fail,
                   forbidden, matches, model_loss, passed, quiet, rng, worked_example)

#: The libraries these checks compare with, imported lazily here; the grading harness loads them before
#: any learner code runs, so that its integrity snapshot holds the genuine objects.
ORACLES = ("transformers.models.gpt2.modeling_gpt2",)

__all__ = [
    "causal_attention_example", "causal_attention",
    "gpt_forward_example", "gpt_forward",
    "load_gpt2_weights_example", "load_gpt2_weights",
    "count_parameters_example", "count_parameters",
    "next_token_loss_example", "next_token_loss", "trained_gpt",
    "top_k_filter_example", "top_k_filter",
    "top_p_filter_example", "top_p_filter",
    "sample_next_example", "sample_next",
    "kv_cache_example", "kv_cache",
    "generate_example", "generate",
]

GPT2_SMALL_PARAMS = 124_439_808
TOL64 = dict(atol=1e-9, rtol=1e-7)      # float64 throughout: far below every listed mistake (>= 1e-3)

# ------------------------------------------------------------------ hints ---

HINT_TRIU = (
    "the causal mask is on the wrong triangle: position i may attend to positions j <= i (the past and "
    "itself), so the allowed entries (True) form the LOWER triangle, torch.ones(T, T, dtype=torch.bool).tril(); "
    "with triu every position reads the future."
)
HINT_DIAG = (
    "the diagonal is excluded: a position may attend to itself (j <= i, not j < i). Use tril() with the "
    "default diagonal=0, not tril(-1) (position 0 would have nothing to attend to)."
)
HINT_NO_MASK = (
    "there is no causal mask: every position attends to every other one, including the future. Set the "
    "scores where j > i to -inf before the softmax."
)
HINT_NO_SCALE = (
    "the scores are not scaled: divide q @ k^T by sqrt(d_head) (the size of the LAST axis of q) before the "
    "softmax (Vaswani et al. 2017). Without it the softmax saturates as d_head grows."
)
HINT_SCALE_D = (
    "the scores are divided by d_head instead of sqrt(d_head): the scale is 1 / sqrt(d_head), "
    "which keeps the variance of q.k near 1 (notebook 02)."
)
HINT_NAN_MASK = (
    "the output contains NaN: a mask built as (1 - mask) * -inf gives 0 * inf = NaN at the allowed "
    "positions. Use scores.masked_fill(~mask, float('-inf')) (or torch.where) instead of arithmetic with inf."
)
HINT_SOFTMAX_AXIS = (
    "the softmax runs over the wrong axis: each query's weights over the KEYS (the last axis) sum to 1, "
    "softmax(scores, dim=-1)."
)
HINT_LEAK = (
    "information flows from the future: changing the tokens after position t changed your output at "
    "position t or before. Every output position may only depend on inputs at the same or earlier "
    "positions: mask the scores where key j > query i before the softmax."
)

HINT_NO_WPE = (
    "the position embeddings are missing: x = wte(idx) + wpe(positions) with positions = 0, 1, ..., T-1 "
    "(torch.arange(T)). Without them the model cannot tell the order of the tokens."
)
HINT_POS_FULL = (
    "the position embeddings must be those of positions 0..T-1 of THIS input (self.wpe(torch.arange(T))), "
    "not the whole table."
)
HINT_NOT_CAUSAL = (
    "the blocks are not causal: call each block as block(x, is_causal=True, kv_cache=...), or every "
    "position sees the tokens it is supposed to predict."
)
HINT_NO_LN_F = (
    "the final LayerNorm is missing: GPT-2 is pre-LN, so the residual stream is never normalised inside "
    "the blocks; apply self.ln_f(x) after the last block and before lm_head."
)
HINT_NO_DROP = "apply self.drop to the embeddings (wte + wpe) before the blocks, as GPT-2 does."
HINT_LOSS_NONE = "with targets=None return (logits, None); with targets, the cross-entropy loss as the second value."
HINT_LOSS_IGNORE = (
    "the loss must skip target positions marked -1: F.cross_entropy(logits.view(-1, V), targets.view(-1), "
    "ignore_index=-1) (nanoGPT's convention for padding)."
)
HINT_LOSS_SHAPE = (
    "flatten before the cross-entropy: F.cross_entropy(logits.view(-1, V), targets.view(-1), ignore_index=-1). "
    "F.cross_entropy reads a 3-D input as (batch, classes, positions), so (B, T, V) logits are misread."
)
HINT_LOSS_SOFTMAX = (
    "F.cross_entropy takes the raw logits (it applies log-softmax itself); passing probabilities "
    "applies the softmax twice."
)
HINT_CACHE_POS = (
    "with kv_caches the new tokens do not start at position 0: they continue after the cached ones. Use "
    "positions past, past + 1, ..., past + T - 1 with past = len(kv_caches[0]) (0 without caches)."
)
HINT_CACHE_UNUSED = (
    "the kv_caches are not used: pass kv_caches[i] to block i as block(x, is_causal=True, "
    "kv_cache=kv_caches[i]); the block appends the new keys and values and attends over all of them."
)

HINT_CONV1D = (
    "GPT-2's Conv1D layers store their weight as (in_features, out_features), the transpose of nn.Linear's "
    "(out, in): copy each one's transpose (.T) into its Linear: attn.c_attn (split in three) into "
    "self_attn.q_proj, k_proj and v_proj, attn.c_proj into self_attn.out_proj, mlp.c_fc into ff.fc1 and "
    "mlp.c_proj into ff.fc2. self_attn.out_proj is square (d x d): attn.c_proj loads into it without a shape "
    "error when you forget the transpose, and gives wrong outputs."
)
HINT_QKV_SPLIT = (
    "attn.c_attn's (d, 3d) weight holds the query, key and value projections side by side along the OUTPUT "
    "axis (dim 1), in that order: w_q, w_k, w_v = c_attn.weight.split(d, dim=1) go, each transposed, into "
    "self_attn.q_proj, k_proj and v_proj; its bias (3d,) splits the same way."
)
HINT_BIAS = (
    "copy the biases too: attn.c_attn.bias (split in three) into self_attn.q_proj, k_proj and v_proj, "
    "attn.c_proj.bias into self_attn.out_proj, mlp.c_fc.bias into ff.fc1, mlp.c_proj.bias into ff.fc2, and the "
    "LayerNorms' (ln_1 into norm1, ln_2 into norm2, ln_f into ln_f)."
)
HINT_LN_SWAP = "GPT-2's ln_1 goes into norm1 (before self_attn) and ln_2 into norm2 (before ff); ln_f into ln_f."
HINT_COPY_AS_IS = (
    "wte, wpe and ln_f have the same names in GPT-2 and copy as they are, without a transpose: "
    "model.wte.weight.copy_(hf_model.transformer.wte.weight), and likewise wpe and ln_f (weight and bias)."
)
HINT_TIE = (
    "lm_head must stay tied to wte (the same tensor): copy into wte.weight with .copy_() and do not replace "
    "the Parameter objects."
)

HINT_DOUBLE_COUNT = (
    "the tied lm_head is counted twice: lm_head.weight IS wte.weight (one tensor shared by the input "
    "embedding and the output layer), so it counts once. model.parameters() already yields each shared "
    "tensor once; state_dict() lists it under both names."
)
HINT_NO_WPE_COUNT = (
    "the position embeddings (wpe, block_size x n_embd) are missing from your count: count every parameter "
    "of the model (nanoGPT's get_num_params(non_embedding=True) leaves them out; the published 124M does not)."
)
HINT_MATERIALISED = (
    "your function built the model with real weights (hundreds of MB for GPT-2 small, seconds of random "
    "initialisation). Build it on the meta device, where tensors have shapes but no storage: "
    "`with torch.device('meta'): model = GPT(config)`."
)

HINT_UNSHIFTED = (
    "the labels are not shifted: the logits at position t predict the token at t + 1, so compare "
    "logits[:, :-1] with idx[:, 1:]. Comparing logits[:, t] with idx[:, t] trains the model to copy its "
    "input, which a causal model can do trivially (perfect loss, useless generation)."
)
HINT_SHIFT_WRONG_WAY = (
    "the shift goes the wrong way: drop the LAST logit and the FIRST token, logits[:, :-1] against idx[:, 1:] "
    "(the logits at position t predict the token at t + 1)."
)
HINT_LOSS_SUM = "average over the predicted positions (F.cross_entropy's default reduction='mean'), do not sum."

HINT_TOPK_OFF = (
    "the number of tokens kept is off by one: keep exactly the k largest logits (the k-th largest too), "
    "torch.topk(logits, k).values[..., -1:] is the threshold and logits < threshold become -inf."
)
HINT_TOPK_SMALLEST = "you kept the k smallest logits: top-k keeps the k LARGEST (torch.topk returns them)."
HINT_FILTER_ZERO = (
    "removed tokens must get -inf, not 0: a logit of 0 still has probability exp(0) / Z > 0 after the "
    "softmax; exp(-inf) = 0 removes the token."
)
HINT_FILTER_PROBS = "return filtered LOGITS (with -inf for the removed tokens), not probabilities."
HINT_INPLACE = (
    "your filter changed its input tensor in place: return a new tensor (masked_fill, torch.where), "
    "so that the caller's logits stay intact."
)
HINT_TOPP_CROSSING = (
    "the nucleus excludes the token that crosses p: keep the smallest set of top tokens whose cumulative "
    "probability is >= p, i.e. remove a token only if the probability mass of the tokens BEFORE it "
    "(cumulative - its own probability) is already >= p. The token that takes the sum past p stays, "
    "and the top token always stays."
)
HINT_TOPP_LOGITS = (
    "the cumulative sum must run over PROBABILITIES (softmax of the sorted logits), not over the "
    "logits themselves."
)
HINT_TOPP_ORDER = (
    "sort in DESCENDING order of probability before the cumulative sum: the nucleus is made of the most "
    "likely tokens."
)
HINT_TOPP_UNSORT = (
    "the mask computed in sorted order must be put back in the original vocabulary order (scatter with the "
    "sort indices, or index the sorted positions back) before it is applied to the logits."
)

HINT_TEMP_AFTER = (
    "the temperature is applied after the softmax: softmax(logits) / T, renormalised by torch.multinomial, "
    "is the T = 1 distribution. Divide the LOGITS by T, then take the softmax."
)
HINT_TEMP_MULT = "divide the logits by the temperature (logits / T): T < 1 sharpens the distribution, T > 1 flattens it."
HINT_SAMPLE_LOGITS = (
    "torch.multinomial needs PROBABILITIES (non-negative weights): pass softmax(logits, dim=-1), not the "
    "logits (negative logits raise an error, positive ones give the wrong distribution)."
)
HINT_ARGMAX = (
    "this always returns the most likely token: with temperature > 0, draw a sample, "
    "torch.multinomial(probs, 1, generator=generator), instead of taking the argmax."
)
HINT_GREEDY_T0 = "temperature == 0 means greedy decoding: return logits.argmax(dim=-1) (no division by zero)."
HINT_GENERATOR = (
    "pass the `generator` argument on to torch.multinomial(..., generator=generator): with the same seeded "
    "generator two calls must draw the same tokens."
)
HINT_FILTER_ORDER = (
    "the filters go in this order: temperature on the logits first, then top-k, then top-p (the nucleus "
    "is measured on the temperature-scaled distribution), then softmax and the draw."
)
HINT_SAMPLE_SHAPE = "return one token id per row, a LongTensor of shape (B,): torch.multinomial(probs, 1).squeeze(-1)."

HINT_RECOMPUTE = (
    "your KV cache recomputes everything anyway: after the prompt, each forward call must get only the "
    "ONE new token (idx[:, -1:]) together with the caches, which already hold the keys and values of all "
    "earlier positions."
)
HINT_CACHE_NOT_PASSED = (
    "with use_cache=True, create one KVCache per layer (caches = [KVCache() for _ in range(model.config.n_layer)]) "
    "and pass them to every forward call: model(idx_cond, kv_caches=caches)."
)
HINT_CACHE_TOKENS = (
    "generation with the cache gives different tokens from full recomputation: feed the whole prompt "
    "once, then only the newest token, with the same caches each step, and sample from the logits of the "
    "LAST position (logits[:, -1])."
)
HINT_LAST_POSITION = "sample from the logits of the last position, logits[:, -1, :]: it predicts the next token."
HINT_NO_CACHE_FULL = (
    "with use_cache=False, run the model on the whole sequence so far at every step (no kv_caches) and take "
    "the logits of the last position."
)

# ------------------------------------------------------------- helpers ---

#: The package's answers to this notebook: an answer that calls one fails (comparing it with itself would test
#: nothing). transformers' GPT-2 joins them in :func:`_forbidden_gpt`, imported when first needed.
_GPT_FORBID = forbidden(ref_gpt, "GPT", "load_gpt2_weights", "next_token_loss", "gpt2_small_param_count")
_SAMPLING_FORBID = forbidden(ref_sampling, "greedy", "apply_temperature", "top_k_filter", "top_p_filter",
                             "sample_next", "generate")
#: torch's attention under every name, and the package's own.
_ATTN_FORBID = FUSED_ATTENTION + forbidden(att, "attention", "scaled_dot_product_attention", "MultiHeadAttention")


def _forbidden_gpt() -> list[tuple[Any, str]]:
    """The package's GPT answers and transformers' GPT-2 models (when transformers can be imported)."""
    try:
        from transformers.models.gpt2 import modeling_gpt2
    except Exception:  # noqa: BLE001 - the oracle is optional for the checks that do not use it
        return list(_GPT_FORBID)
    return _GPT_FORBID + forbidden(modeling_gpt2, "GPT2LMHeadModel", "GPT2Model")


# ------------------------------------------------ 1. causal attention ---

def _attn_variant(q, k, v, *, mask="tril", scale="sqrt", axis=-1):
    T, S = q.shape[-2], k.shape[-2]
    d = q.shape[-1]
    s = q @ k.transpose(-2, -1)
    s = s / math.sqrt(d) if scale == "sqrt" else s / d if scale == "d" else s
    ones = torch.ones(T, S, dtype=torch.bool)
    allowed = {"tril": ones.tril(), "triu": ones.triu(), "diag": ones.tril(-1), "none": ones}[mask]
    s = s.masked_fill(~allowed, float("-inf"))
    w = torch.softmax(s, dim=axis)
    return torch.nan_to_num(w, nan=0.0) @ v if mask == "diag" else w @ v


def _attn_mistakes(q, k, v) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = [
        (HINT_TRIU, _attn_variant(q, k, v, mask="triu")),
        (HINT_NO_MASK, _attn_variant(q, k, v, mask="none")),
        (HINT_NO_SCALE, _attn_variant(q, k, v, scale="none")),
        (HINT_SCALE_D, _attn_variant(q, k, v, scale="d")),
        (HINT_SOFTMAX_AXIS, _attn_variant(q, k, v, axis=-2)),
    ]
    # diagonal excluded: row 0 has nothing to attend to (NaN or zeros, depending on the softmax); compare rows 1..
    return out


def _check_attention_case(fn: Callable, q, k, v, label: str) -> None:
    out = expect_tensor(call(fn, q, k, v, what=f"causal_attention ({label})", forbid=_ATTN_FORBID), "causal_attention")
    expected = _attn_variant(q, k, v)
    arr = as_numpy(out, "causal_attention's output")
    if arr.shape != tuple(expected.shape):
        fail(f"causal_attention ({label}) returned shape {arr.shape}, expected {tuple(expected.shape)} "
             f"(the same as v: (B, n_head, T, d_head)).")
    diag = _attn_variant(q, k, v, mask="diag").numpy()
    rows_like_diag = matches(np.nan_to_num(arr)[..., 1:, :], diag[..., 1:, :], **TOL64)
    if rows_like_diag and not matches(arr[..., :1, :], expected[..., :1, :].numpy(), **TOL64):
        fail(f"causal_attention ({label}) does not match the reference.", HINT_DIAG)
    if np.isnan(arr).any():
        fail(f"causal_attention ({label}) returned NaN.", HINT_NAN_MASK)
    expect_close(arr, expected.numpy(), f"causal_attention's output ({label})", mistakes=_attn_mistakes(q, k, v),
                 **TOL64)


def _check_no_leak(fn: Callable, gen: np.random.Generator) -> None:
    B, h, T, d = 2, int(gen.integers(1, 4)), int(gen.integers(5, 10)), int(gen.integers(2, 9))
    q, k, v = (torch.from_numpy(gen.standard_normal((B, h, T, d))) for _ in range(3))
    base = as_numpy(expect_tensor(call(fn, q, k, v, what="causal_attention (no-future-leak test)", forbid=_ATTN_FORBID),
                            "causal_attention"))
    for t in range(T - 1):
        q2, k2, v2 = q.clone(), k.clone(), v.clone()
        for x in (q2, k2, v2):
            x[..., t + 1:, :] = torch.from_numpy(gen.standard_normal((B, h, T - t - 1, d)) * 3)
        out = as_numpy(call(fn, q2, k2, v2, what="causal_attention (no-future-leak test)", forbid=_ATTN_FORBID))
        if not matches(out[..., :t + 1, :], base[..., :t + 1, :], atol=1e-12, rtol=1e-10):
            fail(f"changing the queries, keys and values after position {t} (random new values) changed your "
                 f"output at positions <= {t}.", HINT_LEAK)


def causal_attention_example(fn: Callable) -> None:
    """Visible: one head, T = 3, d_head = 2, in float64."""
    q = torch.tensor([[[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]]], dtype=torch.float64)
    k = torch.tensor([[[[1.0, 0.0], [0.0, 2.0], [1.0, -1.0]]]], dtype=torch.float64)
    v = torch.tensor([[[[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]]], dtype=torch.float64)
    _check_attention_case(fn, q, k, v, "worked example: position 0 sees only itself, so its output is v[0] = [1, 0]")
    passed("causal_attention (worked example)")


def causal_attention(fn: Callable) -> None:
    """Hidden: random shapes and inputs; no information from the future; large d_head (scale)."""
    gen = rng()
    for _ in range(3):
        B, h, T, d = int(gen.integers(1, 3)), int(gen.integers(1, 4)), int(gen.integers(2, 9)), int(gen.integers(4, 33))
        q, k, v = (torch.from_numpy(gen.standard_normal((B, h, T, d))) for _ in range(3))
        _check_attention_case(fn, q, k, v, f"random q, k, v of shape {(B, h, T, d)}")
    _check_no_leak(fn, gen)
    passed("causal_attention")


# ------------------------------------------------------ 2. GPT.forward ---

def _hf_config(cfg: Any):
    """The oracle's GPT2Config for the learner's config: eager attention, no dropout, tanh GELU."""
    return ref_gpt.hf_gpt2_config(ref_gpt.GPTConfig(block_size=cfg.block_size, vocab_size=cfg.vocab_size,
                                                   n_layer=cfg.n_layer, n_head=cfg.n_head, n_embd=cfg.n_embd,
                                                   dropout=0.0, bias=True))


def _hf_model(cfg: Any, seed: int, std: float = 0.3):
    """transformers' GPT2LMHeadModel, eager attention, float64, re-initialised at ``std`` (exact vs tanh
    GELU and the attention scale differ by ~1e-3 there, ~1e-5 at GPT-2's own 0.02)."""
    from transformers import GPT2LMHeadModel
    torch.manual_seed(seed)
    hf = quiet(GPT2LMHeadModel, _hf_config(cfg))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name.endswith("ln_f.weight"):
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(std * torch.randn(p.shape, generator=gen))
    return hf.double().eval()


@torch.no_grad()
def _copy_hf(model: nn.Module, hf: nn.Module) -> nn.Module:
    """The reference copy of GPT-2's weights into a course GPT (Conv1D weights are (in, out))."""
    tr = getattr(hf, "transformer", hf)
    d = model.wte.weight.shape[1]
    model.wte.weight.copy_(tr.wte.weight)
    model.wpe.weight.copy_(tr.wpe.weight)
    for blk, h in zip(model.blocks, tr.h):
        for mine, theirs in ((blk.norm1, h.ln_1), (blk.norm2, h.ln_2)):
            mine.weight.copy_(theirs.weight)
            if getattr(mine, "bias", None) is not None:
                mine.bias.copy_(theirs.bias)
        a = blk.self_attn
        for proj, w, b in zip((a.q_proj, a.k_proj, a.v_proj), h.attn.c_attn.weight.split(d, dim=1),
                              h.attn.c_attn.bias.split(d)):
            proj.weight.copy_(w.T)
            if proj.bias is not None:
                proj.bias.copy_(b)
        for lin, conv in ((a.out_proj, h.attn.c_proj), (blk.ff.fc1, h.mlp.c_fc), (blk.ff.fc2, h.mlp.c_proj)):
            lin.weight.copy_(conv.weight.T)
            if lin.bias is not None:
                lin.bias.copy_(conv.bias)
    model.ln_f.weight.copy_(tr.ln_f.weight)
    if getattr(model.ln_f, "bias", None) is not None:
        model.ln_f.bias.copy_(tr.ln_f.bias)
    if model.lm_head.weight is not model.wte.weight:
        model.lm_head.weight.copy_(hf.lm_head.weight if hasattr(hf, "lm_head") else tr.wte.weight)
    return model


def _ref_forward(model: nn.Module, idx: torch.Tensor, *, kv_caches=None, pos: str = "ok", causal: bool = True,
                 ln_f: bool = True) -> torch.Tensor:
    """The reference forward pass over the learner's modules (for recognising mistakes)."""
    T = idx.shape[1]
    past = len(kv_caches[0]) if kv_caches else 0
    x = model.wte(idx)
    if pos == "ok":
        x = x + model.wpe(torch.arange(past, past + T))
    elif pos == "restart":
        x = x + model.wpe(torch.arange(T))
    x = model.drop(x)
    for i, blk in enumerate(model.blocks):
        x = blk(x, is_causal=causal, kv_cache=kv_caches[i] if kv_caches else None)
    if ln_f:
        x = model.ln_f(x)
    return model.lm_head(x)


def _make_gpt(GPT: Callable, GPTConfig: Callable, **cfg: Any) -> tuple[nn.Module, Any]:
    config = call(GPTConfig, what="GPTConfig(...)", **cfg)
    model = call(GPT, config, what=f"GPT(GPTConfig({', '.join(f'{k}={v}' for k, v in cfg.items())}))")
    if not isinstance(model, nn.Module):
        fail("GPT(config) is not an nn.Module.")
    for name in ("wte", "wpe", "drop", "blocks", "ln_f", "lm_head"):
        expect(hasattr(model, name), f"your GPT has no attribute `{name}`.",
               "keep the __init__ given in the notebook: the checks copy GPT-2's weights by these names.")
    return model.double().eval(), config


def _explain_forward(exc: Exception) -> str | None:
    text = str(exc)
    if "out of bounds" in text or "Target -1" in text or "IndexError" in type(exc).__name__:
        return HINT_LOSS_IGNORE
    if "Expected target size" in text or "expected target" in text.lower():
        return HINT_LOSS_SHAPE
    if "kv_cache" in text or "kv_caches" in text:
        return HINT_CACHE_UNUSED
    return None


def _pair_out(out: Any, what: str) -> tuple[Any, Any]:
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        fail(f"{what} should return a pair (logits, loss), got {type(out).__name__}.",
             "End with `return logits, loss` (loss is None when targets is None).")
    return out[0], out[1]


def _forward_mistakes(model, idx) -> list[tuple[str, Any]]:
    with torch.no_grad():
        return [
            (HINT_NO_WPE, _ref_forward(model, idx, pos="none")),
            (HINT_NOT_CAUSAL, _ref_forward(model, idx, causal=False)),
            (HINT_NO_LN_F, _ref_forward(model, idx, ln_f=False)),
        ]


def _check_forward_case(GPT, GPTConfig, gen: np.random.Generator, cfg: dict, B: int, T: int, label: str,
                        oracle: bool = True) -> None:
    model, config = _make_gpt(GPT, GPTConfig, **cfg)
    seed = int(gen.integers(1 << 30))
    hf = _hf_model(config, seed) if oracle else None
    if hf is not None:
        _copy_hf(model, hf)
    idx = torch.from_numpy(gen.integers(0, cfg["vocab_size"], (B, T)))
    forbid = _forbidden_gpt()
    with torch.no_grad():
        logits, loss = _pair_out(call(model, idx, what=f"GPT.forward ({label})", forbid=forbid,
                                      explain=_explain_forward), "GPT.forward(idx)")
        logits = expect_tensor(logits, "GPT.forward's logits")
        if loss is not None:
            fail(f"GPT.forward(idx) without targets ({label}) returned a loss.", HINT_LOSS_NONE)
        expected = hf(idx).logits if hf is not None else _ref_forward(model, idx)
    expect_close(logits, expected.numpy(), f"the logits ({label}{', against GPT2LMHeadModel' if hf else ''})",
                 mistakes=_forward_mistakes(model, idx), **TOL64)
    # the loss, with a few targets marked -1 (ignored)
    targets = torch.from_numpy(gen.integers(0, cfg["vocab_size"], (B, T)))
    targets[0, 0] = -1
    with torch.no_grad():
        logits2, loss = _pair_out(call(model, idx, targets, what=f"GPT.forward(idx, targets) ({label})", forbid=forbid,
                                       explain=_explain_forward), "GPT.forward(idx, targets)")
    if loss is None:
        fail(f"GPT.forward(idx, targets) ({label}) returned None for the loss.", HINT_LOSS_NONE)
    flat = expected.reshape(-1, expected.shape[-1])
    exp_loss = F.cross_entropy(flat, targets.reshape(-1), ignore_index=-1)
    expect_close(expect_tensor(loss, "the loss").reshape(()), exp_loss.numpy(), f"the loss ({label}; target -1 = ignore)",
                 mistakes=[(HINT_LOSS_SOFTMAX, F.cross_entropy(flat.softmax(-1), targets.reshape(-1), ignore_index=-1))],
                 **TOL64)


def _check_cache_case(GPT, GPTConfig, gen: np.random.Generator) -> None:
    cfg = dict(block_size=16, vocab_size=int(gen.integers(5, 30)), n_layer=2, n_head=2, n_embd=8, dropout=0.0, bias=True)
    model, config = _make_gpt(GPT, GPTConfig, **cfg)
    _copy_hf(model, _hf_model(config, int(gen.integers(1 << 30))))
    T, split = 9, int(gen.integers(2, 7))
    idx = torch.from_numpy(gen.integers(0, cfg["vocab_size"], (2, T)))
    caches = [att.KVCache() for _ in range(cfg["n_layer"])]
    forbid = _forbidden_gpt()
    with torch.no_grad():
        full = _ref_forward(model, idx)
        first, _ = _pair_out(call(model, idx[:, :split], what="GPT.forward(idx, kv_caches=caches) on the prompt",
                                  forbid=forbid, explain=_explain_forward, kv_caches=caches), "GPT.forward")
        if len(caches[0]) == 0:
            fail("after GPT.forward(idx, kv_caches=caches), the caches are still empty.", HINT_CACHE_UNUSED)
        parts = [expect_tensor(first, "the logits")]
        for t in range(split, T):
            out, _ = _pair_out(call(model, idx[:, t:t + 1], what="GPT.forward on one new token with kv_caches",
                                    forbid=forbid, explain=_explain_forward, kv_caches=caches), "GPT.forward")
            parts.append(expect_tensor(out, "the logits"))
        got = torch.cat(parts, dim=1)
        ref_caches = [att.KVCache() for _ in range(cfg["n_layer"])]
        restart = torch.cat([_ref_forward(model, idx[:, :split], kv_caches=ref_caches)]
                            + [_ref_forward(model, idx[:, t:t + 1], kv_caches=ref_caches, pos="restart")
                               for t in range(split, T)], dim=1)
    expect_close(got, full.numpy(), f"the logits computed piece by piece with kv_caches (prompt of {split} tokens, "
                 f"then one token at a time), against one pass over all {T} tokens",
                 mistakes=[(HINT_CACHE_POS, restart)], **TOL64)


def _small_cfg(gen: np.random.Generator) -> dict:
    n_head = int(gen.integers(1, 4))
    return dict(block_size=int(gen.integers(8, 17)), vocab_size=int(gen.integers(5, 40)), n_layer=int(gen.integers(1, 3)),
                n_head=n_head, n_embd=n_head * int(gen.integers(2, 6)), dropout=0.0, bias=True)


def gpt_forward_example(GPT: Callable, GPTConfig: Callable) -> None:
    """Visible: a 2-layer GPT with GPT-2's weights copied in; logits against GPT2LMHeadModel."""
    gen = rng(7)
    cfg = dict(block_size=8, vocab_size=11, n_layer=2, n_head=2, n_embd=8, dropout=0.0, bias=True)
    _check_forward_case(GPT, GPTConfig, gen, cfg, 2, 5, "worked example: 2 layers, 2 heads, n_embd 8, vocab 11")
    passed("GPT.forward (worked example against transformers' GPT2LMHeadModel)")


def gpt_forward(GPT: Callable, GPTConfig: Callable) -> None:
    """Hidden: random sizes against GPT2LMHeadModel (weights at std 0.3, eager), the loss, and kv_caches."""
    gen = rng()
    for _ in range(2):
        cfg = _small_cfg(gen)
        T = int(gen.integers(2, cfg["block_size"] + 1))
        _check_forward_case(GPT, GPTConfig, gen, cfg, int(gen.integers(1, 4)), T, f"random config {cfg}, T={T}")
    _check_cache_case(GPT, GPTConfig, gen)
    passed("GPT.forward")


# ------------------------------------------------ 3. load_gpt2_weights ---

def _explain_load(exc: Exception) -> str | None:
    text = str(exc)
    if "size" in text or "shape" in text or "match" in text:
        return HINT_CONV1D + " (A shape error while copying usually means a missing transpose or a wrong split.)"
    if "leaf Variable" in text or "requires grad" in text:
        return "copy the weights inside `with torch.no_grad():` (or decorate the function with @torch.no_grad())."
    return None


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


#: Where each module of a course block (``blocks.N.``...) comes from in GPT-2 (``transformer.h.N.``...), the
#: mapping that load_gpt2_weights' messages (the only ones naming GPT-2's modules) follow. ``wte``, ``wpe`` and
#: ``ln_f`` have the same names in both; ``lm_head`` is ``wte``.
GPT2_SOURCES = {
    "norm1": "ln_1", "norm2": "ln_2",
    "self_attn.q_proj": "attn.c_attn", "self_attn.k_proj": "attn.c_attn", "self_attn.v_proj": "attn.c_attn",
    "self_attn.out_proj": "attn.c_proj", "ff.fc1": "mlp.c_fc", "ff.fc2": "mlp.c_proj",
}
_QKV = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj")


def _gpt2_source(name: str, d: int) -> str:
    """What the course's parameter ``name`` holds after loading, as code on the transformers model:
    ``blocks.0.ff.fc1.weight`` -> ``hf_model.transformer.h.0.mlp.c_fc.weight.T``."""
    parts = name.split(".")
    if parts[0] != "blocks":
        return "hf_model.transformer.wte.weight" if parts[0] == "lm_head" else f"hf_model.transformer.{name}"
    module, kind = ".".join(parts[2:-1]), parts[-1]
    source = f"hf_model.transformer.h.{parts[1]}.{GPT2_SOURCES.get(module, module)}.{kind}"
    if module in _QKV:
        j = _QKV.index(module)
        cols = f"{j * d or ''}:{(j + 1) * d}"
        return f"{source}[:, {cols}].T" if kind == "weight" else f"{source}[{cols}]"
    if kind == "weight" and module.startswith(("self_attn.", "ff.")):
        return f"{source}.T"
    return source


def _load_mistake(name: str, got: torch.Tensor, want: torch.Tensor, hf) -> str:
    """Name the mistake that explains a wrongly loaded parameter."""
    tr = hf.transformer
    if name.endswith(".bias"):
        return HINT_BIAS if ".norm" not in name else HINT_LN_SWAP
    if ".norm" in name:
        return HINT_LN_SWAP
    if not name.startswith("blocks."):
        return HINT_COPY_AS_IS
    if got.shape == want.shape and got.shape[0] == got.shape[1] and torch.allclose(got, want.T):
        return HINT_CONV1D
    if ".self_attn.out_proj." in name:
        i = int(name.split(".")[1])
        if torch.allclose(got, tr.h[i].attn.c_proj.weight):
            return HINT_CONV1D
    if any(p in name for p in (".q_proj.", ".k_proj.", ".v_proj.")):
        return HINT_QKV_SPLIT
    return HINT_CONV1D


def _check_load_case(fn: Callable, GPT, GPTConfig, gen: np.random.Generator, cfg: dict, label: str) -> None:
    model, config = _make_gpt(GPT, GPTConfig, **cfg)
    hf = _hf_model(config, int(gen.integers(1 << 30)))
    # the learner's model starts from garbage so that an uncopied tensor shows
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 5.0)
    tied_before = model.lm_head.weight is model.wte.weight
    expected_model, _ = _make_gpt(GPT, GPTConfig, **cfg)
    expected = _state(_copy_hf(expected_model, hf))
    result = call(fn, model, hf, what=f"load_gpt2_weights ({label})", forbid=_forbidden_gpt(), explain=_explain_load)
    if result is not None and result is not model:
        fail("load_gpt2_weights should copy into `model` and return that same model.", "End with `return model`.")
    if tied_before and model.lm_head.weight is not model.wte.weight:
        fail("after loading, lm_head.weight is no longer the same tensor as wte.weight.", HINT_TIE)
    state = _state(model)
    for name, want in expected.items():
        got = state[name]
        if got.shape != want.shape:
            fail(f"after loading, {name} has shape {tuple(got.shape)}, expected {tuple(want.shape)}.", HINT_CONV1D)
        if not torch.allclose(got, want, atol=1e-12, rtol=0):
            fail(f"after loading, {name} does not hold GPT-2's weights ({label}): it should be "
                 f"{_gpt2_source(name, cfg['n_embd'])}.", _load_mistake(name, got, want, hf))
    # end to end: the reference forward over the learner-loaded model against GPT2LMHeadModel
    idx = torch.from_numpy(gen.integers(0, cfg["vocab_size"], (2, min(6, cfg["block_size"]))))
    with torch.no_grad():
        expect_close(_ref_forward(model, idx), hf(idx).logits.numpy(),
                     f"logits of your loaded model against GPT2LMHeadModel ({label})", **TOL64)


def load_gpt2_weights_example(fn: Callable, GPT: Callable, GPTConfig: Callable) -> None:
    """Visible: one layer, n_embd 8 (every Conv1D non-square except attn.c_proj)."""
    _check_load_case(fn, GPT, GPTConfig, rng(3), dict(block_size=8, vocab_size=10, n_layer=1, n_head=2, n_embd=8,
                                                      dropout=0.0, bias=True), "worked example: 1 layer, n_embd 8")
    passed("load_gpt2_weights (worked example)")


def load_gpt2_weights(fn: Callable, GPT: Callable, GPTConfig: Callable) -> None:
    """Hidden: random sizes, every parameter compared, then logits against GPT2LMHeadModel."""
    gen = rng()
    for _ in range(2):
        cfg = _small_cfg(gen)
        cfg["n_layer"] = int(gen.integers(2, 4))
        _check_load_case(fn, GPT, GPTConfig, gen, cfg, f"random config {cfg}")
    passed("load_gpt2_weights")


# ------------------------------------------------- 4. count_parameters ---

class _WatchMaterialise(TorchFunctionMode):
    """Records tensors with storage (not on the meta device) of at least ``limit`` elements."""

    def __init__(self, limit: int = 1_000_000) -> None:
        super().__init__()
        self.limit, self.big = limit, []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if isinstance(out, torch.Tensor) and out.device.type != "meta" and out.numel() >= self.limit:
            self.big.append(tuple(out.shape))
        return out


def _reference_count(cfg: Any) -> int:
    d, V, L, T = cfg.n_embd, cfg.vocab_size, cfg.n_layer, cfg.block_size
    b = 1 if cfg.bias else 0
    per_block = 12 * d * d + b * (4 * d + 4 * d + d) + 2 * d + b * 2 * d     # self_attn + ff, biases, 2 norms
    return V * d + T * d + L * per_block + d + b * d


def _check_count(fn: Callable, GPTConfig: Callable, cfg: dict, label: str, watch: bool = False) -> None:
    config = call(GPTConfig, what="GPTConfig(...)", **cfg)
    w = _WatchMaterialise()
    with (w if watch else contextlib.nullcontext()):
        n = call(fn, config, what=f"count_parameters ({label})", forbid=_forbidden_gpt())
    if watch and w.big:
        fail(f"count_parameters ({label}) created tensors with real storage, e.g. of shape {w.big[0]}.", HINT_MATERIALISED)
    if isinstance(n, torch.Tensor):
        n = n.item()
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool):
        fail(f"count_parameters ({label}) returned {type(n).__name__}, expected an int.",
             "return sum(p.numel() for p in model.parameters()) (an int).")
    want = _reference_count(config)
    if int(n) == want:
        return
    V, d, T = config.vocab_size, config.n_embd, config.block_size
    hint = {want + V * d: HINT_DOUBLE_COUNT, want - T * d: HINT_NO_WPE_COUNT,
            want - V * d: "the token embedding wte (= lm_head, counted once) is missing from your count."}.get(int(n))
    fail(f"count_parameters ({label}) returned {int(n):,}, expected {want:,}.", hint)


def count_parameters_example(fn: Callable, GPTConfig: Callable) -> None:
    """Visible: a tiny config whose count can be checked by hand."""
    _check_count(fn, GPTConfig, dict(block_size=4, vocab_size=10, n_layer=1, n_head=1, n_embd=2, dropout=0.0, bias=True),
                 "worked example: vocab 10, block 4, 1 layer, n_embd 2: 20 + 8 + 74 + 4 = 106")
    passed("count_parameters (worked example)")


def count_parameters(fn: Callable, GPTConfig: Callable) -> None:
    """Hidden: random configs, then GPT-2 small (124,439,808) without materialising the weights."""
    gen = rng()
    for _ in range(2):
        cfg = _small_cfg(gen)
        _check_count(fn, GPTConfig, cfg, f"random config {cfg}")
    _check_count(fn, GPTConfig, dict(block_size=1024, vocab_size=50257, n_layer=12, n_head=12, n_embd=768,
                                     dropout=0.0, bias=True), "GPT-2 small", watch=True)
    passed("count_parameters (GPT-2 small: 124,439,808)")


# --------------------------------------------------- 5. next_token_loss ---

def _loss_variants(logits, idx):
    V = logits.shape[-1]
    ok = F.cross_entropy(logits[:, :-1].reshape(-1, V), idx[:, 1:].reshape(-1))
    return ok, [
        (HINT_UNSHIFTED, F.cross_entropy(logits.reshape(-1, V), idx.reshape(-1))),
        (HINT_SHIFT_WRONG_WAY, F.cross_entropy(logits[:, 1:].reshape(-1, V), idx[:, :-1].reshape(-1))),
        (HINT_LOSS_SUM, F.cross_entropy(logits[:, :-1].reshape(-1, V), idx[:, 1:].reshape(-1), reduction="sum")),
        (HINT_LOSS_SOFTMAX, F.cross_entropy(logits[:, :-1].reshape(-1, V).softmax(-1), idx[:, 1:].reshape(-1))),
    ]


def _explain_loss(exc: Exception) -> str | None:
    if "Expected input batch_size" in str(exc) or "size" in str(exc):
        return ("shapes do not line up: logits[:, :-1] has T - 1 positions and idx[:, 1:] has T - 1 targets; "
                "flatten both, (-1, V) and (-1,), before F.cross_entropy.")
    return None


def _check_loss_case(fn, logits, idx, label: str) -> None:
    forbid = _forbidden_gpt()
    out = expect_tensor(call(fn, logits, idx, what=f"next_token_loss ({label})", forbid=forbid, explain=_explain_loss),
                  "next_token_loss")
    ok, mistakes = _loss_variants(logits, idx)
    if out.numel() != 1:
        fail(f"next_token_loss ({label}) returned shape {tuple(out.shape)}, expected a scalar.",
             "average over all predicted positions (F.cross_entropy's default).")
    expect_close(out.reshape(()), ok.numpy(), f"next_token_loss ({label})", mistakes=mistakes, **TOL64)


def next_token_loss_example(fn: Callable) -> None:
    """Visible: a model that is sure of the right next token has a loss near 0."""
    idx = torch.tensor([[0, 1, 2, 3]])
    logits = torch.full((1, 4, 5), -10.0, dtype=torch.float64)
    for t in range(3):
        logits[0, t, t + 1] = 10.0          # position t predicts idx[t + 1] = t + 1
    _check_loss_case(fn, logits, idx, "worked example: logits[t] points at idx[t + 1], loss ~ 0")
    passed("next_token_loss (worked example)")


def next_token_loss(fn: Callable) -> None:
    """Hidden: random logits and tokens."""
    gen = rng()
    for _ in range(3):
        B, T, V = int(gen.integers(1, 4)), int(gen.integers(2, 9)), int(gen.integers(3, 20))
        logits = torch.from_numpy(gen.standard_normal((B, T, V)) * 2)
        idx = torch.from_numpy(gen.integers(0, V, (B, T)))
        _check_loss_case(fn, logits, idx, f"random logits {(B, T, V)}")
    passed("next_token_loss")


# ---------------------------------------------------------- the trained model ---

TRAINED_SEED = 1_234_567          # fixed held-out windows: the same grade every run


def _held_out_ids(corpus_name: str) -> torch.Tensor:
    """The validation split (the last 10%) of the named corpus, as character ids, rebuilt here."""
    if corpus_name == "tinyshakespeare":
        try:
            text = corpus.load_tiny_shakespeare(download=False)
        except corpus.CorpusUnavailable as exc:
            fail(f"the notebook trained on Tiny Shakespeare, but the grader cannot read it from the cache: {exc}")
    elif corpus_name == "offline":
        text = corpus.offline_corpus()
    else:
        fail(f"corpus_name should be 'tinyshakespeare' or 'offline' (what load_corpus returned), got {corpus_name!r}.")
    ids = torch.tensor(corpus.CharTokenizer(text).encode(text), dtype=torch.long)
    return corpus.train_val_split(ids)[1]


def trained_gpt(model: Any, corpus_name: str, max_loss: float = 2.5, n_windows: int = 64) -> None:
    """The character model trained in the notebook: its mean next-character loss on ``n_windows`` fixed
    windows of the validation text (the last 10% of the corpus, rebuilt here, never trained on) must be
    below ``max_loss`` nats.

    The loss is computed here from the model's logits (``model(x)[0]``) and the true next characters, so a
    model trained with unshifted targets or without its causal mask, which can score a low *training* loss,
    is measured by what it predicts, not by what it reports.
    """
    if model is None:
        fail("the trained model is None: the training cell did not finish.",
             "complete exercise 2, then run the training cell to the end.")
    if not isinstance(model, nn.Module) or not hasattr(model, "config"):
        fail(f"expected your trained GPT (an nn.Module with .config), got {type(model).__name__}.")
    val_ids = _held_out_ids(corpus_name)
    vocab = int(val_ids.max()) + 1
    if model.config.vocab_size < vocab:
        fail(f"the model's vocab_size is {model.config.vocab_size}, but the corpus has more characters than that.",
             "build the model with vocab_size=tokenizer.vocab_size.")
    x, y = corpus.get_batch(val_ids, model.config.block_size, n_windows, generator=torch.Generator().manual_seed(TRAINED_SEED))
    loss = model_loss(model, (x,), y, "your trained GPT on held-out validation text")
    if not math.isfinite(loss) or loss > max_loss:
        fail(f"your trained model's loss on held-out text is {loss:.3f} nats per character; it should be below "
             f"{max_loss} (a model that knows only character frequencies scores about 3.3).",
             "a low training loss with a high held-out loss means the model saw its answers: check that GPT.forward "
             "(exercise 2) calls its blocks with is_causal=True and compares the logits with the given targets "
             "(already the next tokens), then retrain.")
    passed(f"the trained GPT: {loss:.3f} nats per character on held-out text (below {max_loss})")


# -------------------------------------------------------- 6. top-k / 7. top-p ---

def _ref_top_k(logits, k):
    kth = torch.topk(logits, min(k, logits.shape[-1]), dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def _ref_top_p(logits, p, crossing=True):
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probs = sorted_logits.softmax(-1)
    cum = probs.cumsum(-1)
    remove = (cum - probs) >= p if crossing else cum > p
    remove[..., 0] = False
    mask = torch.zeros_like(remove).scatter(-1, order, remove)
    return logits.masked_fill(mask, float("-inf"))


def _kept(x: np.ndarray) -> np.ndarray:
    return np.isfinite(x)


def _check_filter(name: str, fn: Callable, logits: torch.Tensor, arg: Any, expected: torch.Tensor,
                  mistakes: list[tuple[str, Any]], label: str) -> None:
    original = logits.clone()
    out = expect_tensor(call(fn, logits, arg, what=f"{name} ({label})", forbid=_SAMPLING_FORBID), name)
    if not torch.equal(logits, original):
        fail(f"{name} ({label}) changed its input.", HINT_INPLACE)
    arr = as_numpy(out, f"{name}'s result")
    exp = expected.numpy()
    if arr.shape != exp.shape:
        fail(f"{name} ({label}) returned shape {arr.shape}, expected {exp.shape} (the shape of the logits).")
    if np.all(arr >= 0) and np.allclose(arr.sum(-1), 1):
        fail(f"{name} ({label}) returned probabilities.", HINT_FILTER_PROBS)
    if np.isnan(arr).any():
        fail(f"{name} ({label}) returned NaN.", "use masked_fill(mask, float('-inf')) rather than arithmetic with inf.")
    want_kept = _kept(exp)
    if np.array_equal(_kept(arr), want_kept) or not np.any(np.isneginf(arr)):
        if not np.any(np.isneginf(arr)) and not np.array_equal(_kept(arr), want_kept):
            zero_mask = np.where(want_kept, exp, 0.0)
            if matches(arr, zero_mask, **TOL64):
                fail(f"{name} ({label}) set the removed tokens to 0.", HINT_FILTER_ZERO)
    for hint, wrong in mistakes:
        w = as_numpy(wrong)
        if not np.array_equal(_kept(w), want_kept) and np.array_equal(_kept(arr), _kept(w)):
            fail(f"{name} ({label}) keeps tokens {np.flatnonzero(_kept(arr)[0]).tolist()} in row 0 "
                 f"(expected {np.flatnonzero(want_kept[0]).tolist()}).", hint)
    if not np.array_equal(_kept(arr), want_kept):
        row = int(np.argmax((_kept(arr) != want_kept).any(-1)))
        fail(f"{name} ({label}) keeps the wrong tokens: in row {row} yours keeps "
             f"{np.flatnonzero(_kept(arr)[row]).tolist()}, expected {np.flatnonzero(want_kept[row]).tolist()} "
             f"(kept = finite logit; removed = -inf).")
    expect_close(np.where(want_kept, arr, 0.0), np.where(want_kept, exp, 0.0),
                 f"{name}'s kept logits ({label}; they must be unchanged)", **TOL64)


def _topk_mistakes(logits, k):
    V = logits.shape[-1]
    out = []
    if k + 1 <= V:
        out.append((HINT_TOPK_OFF, _ref_top_k(logits, k + 1)))
    if k - 1 >= 1:
        out.append((HINT_TOPK_OFF, _ref_top_k(logits, k - 1)))
    out.append((HINT_TOPK_SMALLEST, -_ref_top_k(-logits, k)))
    return out


def top_k_filter_example(fn: Callable) -> None:
    logits = torch.tensor([[1.0, 3.0, 0.5, 2.0, -1.0]], dtype=torch.float64)
    _check_filter("top_k_filter", fn, logits, 2, _ref_top_k(logits, 2), _topk_mistakes(logits, 2),
                  "worked example: logits [1, 3, 0.5, 2, -1], k=2 keeps 3 and 2")
    passed("top_k_filter (worked example)")


def top_k_filter(fn: Callable) -> None:
    gen = rng()
    for k_choice in ("random", "1", "V"):
        B, V = int(gen.integers(1, 5)), int(gen.integers(4, 40))
        k = {"random": int(gen.integers(2, V)), "1": 1, "V": V}[k_choice]
        logits = torch.from_numpy(gen.standard_normal((B, V)) * 2)
        _check_filter("top_k_filter", fn, logits, k, _ref_top_k(logits, k), _topk_mistakes(logits, k),
                      f"random logits {(B, V)}, k={k}")
    passed("top_k_filter")


def _topp_mistakes(logits, p):
    s, order = torch.sort(logits, dim=-1, descending=True)
    cum_logits = s.cumsum(-1)
    wrong_logit_cum = torch.zeros_like(logits, dtype=torch.bool).scatter(-1, order, cum_logits > p)
    asc = _ref_top_p(-logits, p)           # the nucleus of the least likely tokens, as a shape
    unsorted = torch.sort(logits, dim=-1, descending=True).values
    rm = (unsorted.softmax(-1).cumsum(-1) - unsorted.softmax(-1)) >= p
    rm[..., 0] = False
    return [
        (HINT_TOPP_CROSSING, _ref_top_p(logits, p, crossing=False)),
        (HINT_TOPP_LOGITS, logits.masked_fill(wrong_logit_cum, float("-inf"))),
        (HINT_TOPP_ORDER, torch.where(torch.isfinite(asc), logits, torch.full_like(logits, float("-inf")))),
        (HINT_TOPP_UNSORT, logits.masked_fill(rm, float("-inf"))),
    ]


def _topp_case_logits(gen: np.random.Generator, B: int, V: int) -> torch.Tensor:
    return torch.from_numpy(gen.standard_normal((B, V)) * 1.5)


def top_p_filter_example(fn: Callable) -> None:
    probs = torch.tensor([[0.1, 0.5, 0.05, 0.3, 0.05]], dtype=torch.float64)
    logits = probs.log()
    _check_filter("top_p_filter", fn, logits, 0.7, _ref_top_p(logits, 0.7), _topp_mistakes(logits, 0.7),
                  "worked example: probabilities [0.1, 0.5, 0.05, 0.3, 0.05], p=0.7: 0.5 + 0.3 = 0.8 >= 0.7, "
                  "so tokens 1 and 3 stay (0.3 crosses p and stays)")
    passed("top_p_filter (worked example)")


def top_p_filter(fn: Callable) -> None:
    gen = rng()
    for p in (float(gen.uniform(0.3, 0.95)), float(gen.uniform(0.3, 0.95)), 0.01, 1.0):
        B, V = int(gen.integers(2, 5)), int(gen.integers(5, 40))
        logits = _topp_case_logits(gen, B, V)
        _check_filter("top_p_filter", fn, logits, p, _ref_top_p(logits, p), _topp_mistakes(logits, p),
                      f"random logits {(B, V)}, p={p:.3g}" + (" (only the top token stays)" if p == 0.01 else "")
                      + (" (every token stays)" if p == 1.0 else ""))
    passed("top_p_filter")


# ----------------------------------------------------------- 8. sample_next ---

N_DRAWS = 20_000


def _target_probs(logits_row, temperature=1.0, top_k=None, top_p=None):
    x = logits_row[None] / temperature
    if top_k is not None:
        x = _ref_top_k(x, top_k)
    if top_p is not None:
        x = _ref_top_p(x, top_p)
    return x.softmax(-1)[0].numpy()


def _explain_sample(exc: Exception) -> str | None:
    text = str(exc)
    if "probability tensor contains" in text or "invalid multinomial" in text or "negative" in text:
        return HINT_SAMPLE_LOGITS
    if "division by zero" in text.lower() or "ZeroDivision" in type(exc).__name__:
        return HINT_GREEDY_T0
    return None


def _draw(fn, row: torch.Tensor, seed: int, label: str, n: int = N_DRAWS, **kw) -> np.ndarray:
    gen = torch.Generator().manual_seed(seed)
    logits = row[None].expand(n, -1).clone()
    out = expect_tensor(call(fn, logits, generator=gen, what=f"sample_next ({label})", forbid=_SAMPLING_FORBID,
                       explain=_explain_sample, **kw), "sample_next")
    if out.dtype not in (torch.int64, torch.int32) or tuple(out.shape) != (n,):
        if out.numel() == n and out.dtype in (torch.int64, torch.int32):
            return out.reshape(-1).numpy()
        fail(f"sample_next ({label}) returned {out.dtype} of shape {tuple(out.shape)} for {n} rows of logits.",
             HINT_SAMPLE_SHAPE)
    return out.numpy()


def _check_distribution(fn, row: torch.Tensor, seed: int, label: str, *, mistakes: list[tuple[str, np.ndarray]],
                        **kw) -> None:
    draws = _draw(fn, row, seed, label, **kw)
    V = row.shape[-1]
    if draws.min() < 0 or draws.max() >= V:
        fail(f"sample_next ({label}) returned token ids outside 0..{V - 1}.")
    counts = np.bincount(draws, minlength=V).astype(float)
    q = _target_probs(row, **kw)
    sigma = np.sqrt(N_DRAWS * q * (1 - q))
    bad = np.abs(counts - N_DRAWS * q) > 5 * sigma + 1
    if not bad.any():
        return
    if np.count_nonzero(counts) == 1 and np.count_nonzero(q > 0) > 1:
        fail(f"sample_next ({label}) returned the same token in all {N_DRAWS:,} draws.", HINT_ARGMAX)
    freq = counts / N_DRAWS
    for hint, wrong in mistakes:
        sw = np.sqrt(N_DRAWS * wrong * (1 - wrong))
        if not np.any(np.abs(counts - N_DRAWS * wrong) > 5 * sw + 1):
            fail(f"sample_next ({label}): the frequencies of {N_DRAWS:,} draws do not follow the filtered "
                 f"distribution.", hint)
    i = int(np.argmax(np.abs(counts - N_DRAWS * q) / (sigma + 1)))
    zero = "" if q[i] > 0 else " (a token that should have been filtered out)"
    fail(f"sample_next ({label}): token {i}{zero} was drawn {int(counts[i])} times in {N_DRAWS:,} draws, "
         f"expected about {N_DRAWS * q[i]:.0f} (probability {q[i]:.4f}; frequencies {np.round(freq, 3).tolist()}).",
         HINT_FILTER_ORDER if kw.get("top_p") is not None and kw.get("temperature", 1.0) != 1.0 else None)


def _sample_cases(gen_seed: int) -> tuple[torch.Tensor, list[tuple[str, dict, list]]]:
    g = np.random.default_rng(gen_seed)
    row = torch.from_numpy(np.sort(g.standard_normal(8) * 1.2)[::-1].copy())
    pos_row = row - row.min() + 0.5
    t1 = _target_probs(row, 1.0)
    cases = [
        ("temperature 0.5", dict(temperature=0.5), [(HINT_TEMP_AFTER, t1), (HINT_TEMP_MULT, _target_probs(row, 2.0)),
                                                    (HINT_SAMPLE_LOGITS, (pos_row / 0.5 / (pos_row / 0.5).sum()).numpy())]),
        ("temperature 1.5", dict(temperature=1.5), [(HINT_TEMP_AFTER, t1), (HINT_TEMP_MULT, _target_probs(row, 1 / 1.5))]),
        ("temperature 0.8, top_k 3", dict(temperature=0.8, top_k=3), [(HINT_TEMP_AFTER, _target_probs(row, 1.0, top_k=3))]),
        ("temperature 0.7, top_p 0.8", dict(temperature=0.7, top_p=0.8),
         [(HINT_FILTER_ORDER, _order_swapped(row, 0.7, 0.8)), (HINT_TEMP_AFTER, _target_probs(row, 1.0, top_p=0.8))]),
    ]
    return row, cases


def _order_swapped(row, temperature, p):
    x = _ref_top_p(row[None], p) / temperature
    return x.softmax(-1)[0].numpy()


def _check_sample(fn: Callable, seeds: tuple[int, ...], which: slice) -> None:
    row, cases = _sample_cases(seeds[0])
    for (label, kw, mistakes), seed in zip(cases[which], seeds[1:]):
        _check_distribution(fn, row, seed, label, mistakes=mistakes, **kw)
    # the generator is used: same seed, same draws
    a = _draw(fn, row, 99, "reproducibility, seed 99", n=200)
    b = _draw(fn, row, 99, "reproducibility, seed 99", n=200)
    if not np.array_equal(a, b):
        fail("sample_next drew different tokens from two generators seeded alike.", HINT_GENERATOR)
    # temperature 0: greedy
    logits = torch.from_numpy(np.random.default_rng(seeds[0] + 1).standard_normal((5, 9)))
    out = expect_tensor(call(fn, logits, temperature=0.0, what="sample_next (temperature=0)", forbid=_SAMPLING_FORBID,
                       explain=_explain_sample), "sample_next")
    if not np.array_equal(as_numpy(out).reshape(-1), logits.argmax(-1).numpy()):
        fail("sample_next(logits, temperature=0) is not the argmax of each row.", HINT_GREEDY_T0)


#: What sample_next builds on: the filters of exercises 6 and 7, judged by their visible checks.
_FILTERS = (Earlier("top_k_filter", "exercise 6", top_k_filter_example),
            Earlier("top_p_filter", "exercise 7", top_p_filter_example))


def sample_next_example(fn: Callable) -> None:
    """Visible: temperature 0.5 on 8 logits, 20,000 draws, fixed seed."""
    with blame_earlier(fn, "sample_next", *_FILTERS):
        _check_sample(fn, (11, 12), slice(0, 1))
    passed("sample_next (worked example: 20,000 draws at temperature 0.5 match softmax(logits / 0.5))")


def sample_next(fn: Callable) -> None:
    """Hidden: distributions under temperature, top-k, top-p (fixed seeds: never flaky, ~5 sigma bounds)."""
    with blame_earlier(fn, "sample_next", *_FILTERS):
        _check_sample(fn, (21, 22, 23, 24, 25), slice(0, 4))
    passed("sample_next")


# -------------------------------------------------------------- 9. generate ---

class _SpyGPT(nn.Module):
    """A tiny causal model (the package's blocks) that records what each forward call receives."""

    def __init__(self, seed: int, vocab: int = 13, n_layer: int = 2, block_size: int = 64) -> None:
        super().__init__()
        from types import SimpleNamespace
        torch.manual_seed(seed)
        d = 16
        self.config = SimpleNamespace(block_size=block_size, vocab_size=vocab, n_layer=n_layer, n_head=2, n_embd=d,
                                      dropout=0.0, bias=True)
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(block_size, d)
        self.drop = nn.Dropout(0.0)
        self.blocks = nn.ModuleList([ref_blocks.EncoderBlock(d, 2, 4 * d, activation="gelu_tanh", norm_first=True)
                                     for _ in range(n_layer)])
        self.ln_f = ref_blocks.LayerNorm(d)
        self.lm_head = nn.Linear(d, vocab, bias=False)
        with torch.no_grad():
            for p in self.parameters():
                p.normal_(0, 0.5)
        self.double().eval()
        self.calls: list[tuple[int, bool]] = []

    def forward(self, idx, targets=None, kv_caches=None):
        self.calls.append((int(idx.shape[1]), kv_caches is not None))
        return _ref_forward(self, idx, kv_caches=kv_caches), None


def _ref_generate(model: _SpyGPT, idx: torch.Tensor, n: int) -> torch.Tensor:
    with torch.no_grad():
        for _ in range(n):
            logits = _ref_forward(model, idx[:, -model.config.block_size:])
            idx = torch.cat([idx, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return idx


def _run_generate(fn, model, idx, n, label, **kw) -> torch.Tensor:
    model.calls.clear()
    out = expect_tensor(call(fn, model, idx.clone(), n, what=f"generate ({label})", forbid=_SAMPLING_FORBID,
                       explain=lambda e: HINT_CACHE_NOT_PASSED if "kv_cache" in str(e) else None, **kw), "generate")
    if tuple(out.shape) != (idx.shape[0], idx.shape[1] + n):
        fail(f"generate ({label}) returned shape {tuple(out.shape)}, expected {(idx.shape[0], idx.shape[1] + n)} "
             f"(the prompt followed by {n} new tokens).")
    if not torch.equal(out[:, :idx.shape[1]], idx):
        fail(f"generate ({label}) does not start with the prompt.", "return torch.cat of the prompt and the new tokens.")
    return out


def _check_generate(fn: Callable, gen: np.random.Generator, B: int, T0: int, n: int, label: str) -> None:
    model = _SpyGPT(int(gen.integers(1 << 30)))
    idx = torch.from_numpy(gen.integers(0, model.config.vocab_size, (B, T0)))
    want = _ref_generate(model, idx, n)
    # no cache: full recomputation, and greedy tokens as the reference
    out = _run_generate(fn, model, idx, n, f"{label}, temperature=0, use_cache=False", temperature=0.0, use_cache=False)
    if not torch.equal(out, want):
        fail(f"generate ({label}, greedy, use_cache=False) gives tokens {out[0].tolist()}, expected {want[0].tolist()}.",
             HINT_NO_CACHE_FULL if any(c[1] for c in model.calls) else HINT_LAST_POSITION)
    # with the cache: the same tokens, one token per call after the prompt
    out = _run_generate(fn, model, idx, n, f"{label}, temperature=0, use_cache=True", temperature=0.0, use_cache=True)
    calls = list(model.calls)
    if not calls or not all(c[1] for c in calls):
        fail(f"generate ({label}, use_cache=True) called the model without kv_caches.", HINT_CACHE_NOT_PASSED)
    lengths = [c[0] for c in calls]
    if lengths[0] != T0 or any(L != 1 for L in lengths[1:]) or not (n - 1 <= len(lengths) <= n):
        fail(f"generate ({label}, use_cache=True) fed the model sequences of lengths {lengths[:8]}"
             f"{'...' if len(lengths) > 8 else ''}; with a KV cache expected {T0} (the prompt) then 1, 1, ...",
             HINT_RECOMPUTE)
    if not torch.equal(out, want):
        fail(f"generate ({label}, greedy, use_cache=True) gives tokens {out[0].tolist()}, expected "
             f"{want[0].tolist()} (what full recomputation gives).", HINT_CACHE_TOKENS)
    # sampling: the same generator state gives the same tokens with and without the cache
    kw = dict(temperature=1.0, top_k=8)
    a = _run_generate(fn, model, idx, n, f"{label}, sampling, use_cache=True", use_cache=True,
                      generator=torch.Generator().manual_seed(5), **kw)
    b = _run_generate(fn, model, idx, n, f"{label}, sampling, use_cache=False", use_cache=False,
                      generator=torch.Generator().manual_seed(5), **kw)
    if not torch.equal(a, b):
        fail(f"generate ({label}, sampling with the same seed) gives different tokens with and without the cache.",
             HINT_CACHE_TOKENS + " Pass `generator` on to sample_next.")


# ------------------------------------------------------------ the KV cache ---

HINT_KV_REPLACE = (
    "update returns only the keys and values of this call: it must APPEND them to what the cache already holds "
    "(torch.cat along the time axis, dim=-2) and return everything so far, so that the new token attends to "
    "every earlier position."
)
HINT_KV_AXIS = (
    "the keys and values are appended along the wrong axis: they are (B, h, T, d_head), and the positions are "
    "the time axis, dim=-2."
)
HINT_KV_LEN_CALLS = (
    "len(cache) counts calls, not positions: after a prompt of T tokens it must be T (the size of the time "
    "axis of the keys held), since the model starts the next positions there."
)
HINT_KV_MASK_NO_OFFSET = (
    "the mask is not offset: the n_q new queries are the LAST n_q positions, so query i sits at position "
    "len - n_q + i and may see keys j <= len - n_q + i. A plain lower triangle lets a single new token see "
    "only key 0: shift the triangle by the number of earlier positions (tril's diagonal argument)."
)
HINT_KV_MASK_OFF_BY_ONE = (
    "the mask's offset is off by one: query i (position len - n_q + i) sees itself and every earlier key, "
    "j <= len - n_q + i, nothing later."
)
HINT_KV_MASK_TYPE = "causal_mask returns a boolean tensor (True = may attend), of shape (n_q, len(self))."

_FORBID_CACHE = forbidden(att, "KVCache", methods=("update", "causal_mask", "__len__"))


def _mask_variants(n_q: int, n_k: int) -> list[tuple[str, torch.Tensor]]:
    ones = torch.ones(n_q, n_k, dtype=torch.bool)
    return [(HINT_KV_MASK_NO_OFFSET, ones.tril()), (HINT_KV_MASK_OFF_BY_ONE, ones.tril(n_k - n_q - 1)),
            (HINT_KV_MASK_OFF_BY_ONE, ones.tril(n_k - n_q + 1))]


def _check_mask(cache, n_q: int, what: str) -> None:
    n_k = call(cache.__len__, what=f"{what}: len(cache)")
    mask = expect_tensor(call(cache.causal_mask, n_q, what=f"{what}: causal_mask({n_q})", forbid=_FORBID_CACHE),
                         f"{what}: causal_mask({n_q})", HINT_KV_MASK_TYPE)
    if mask.dtype != torch.bool or tuple(mask.shape) != (n_q, n_k):
        fail(f"{what}: causal_mask({n_q}) is {mask.dtype} of shape {tuple(mask.shape)}, expected torch.bool of "
             f"shape (n_q, len(cache)) = {(n_q, n_k)}.", HINT_KV_MASK_TYPE)
    want = att.offset_causal_mask(n_q, n_k)
    if not torch.equal(mask.cpu(), want):
        hint = next((h for h, v in _mask_variants(n_q, n_k) if torch.equal(mask.cpu(), v)), None)
        fail(f"{what}: causal_mask({n_q}) with {n_k} positions cached gives\n{mask.int().tolist()}\nexpected\n"
             f"{want.int().tolist()}", hint)


def _check_cache_steps(KVCache, gen: np.random.Generator, B: int, h: int, d: int, steps: list[int],
                       label: str) -> None:
    """Feed chunks of ``steps`` positions; after each, what update returns, len and the mask must be right."""
    what = f"KVCache ({label})"
    cache = call(KVCache, what=f"{what}: KVCache()", forbid=_FORBID_CACHE)
    if call(cache.__len__, what=f"{what}: len of a new cache", forbid=_FORBID_CACHE) != 0:
        fail(f"{what}: a new cache has len {len(cache)}, expected 0.")
    ks, vs = [], []
    for i, t in enumerate(steps):
        k = torch.from_numpy(gen.standard_normal((B, h, t, d)))
        v = torch.from_numpy(gen.standard_normal((B, h, t, d)))
        ks.append(k), vs.append(v)
        out = call(cache.update, k.clone(), v.clone(), what=f"{what}: update #{i + 1} with {t} position(s)",
                   forbid=_FORBID_CACHE, explain=lambda e: HINT_KV_AXIS if "Sizes of tensors must match" in str(e)
                   else None)
        if not (isinstance(out, tuple) and len(out) == 2):
            fail(f"{what}: update returned {type(out).__name__}, expected the pair (all keys, all values).")
        want_k, want_v = torch.cat(ks, dim=-2), torch.cat(vs, dim=-2)
        for name, got, want, new in (("keys", out[0], want_k, k), ("values", out[1], want_v, v)):
            got = expect_tensor(got, f"{what}: the {name} update returned")
            if got.shape == new.shape and i > 0 and torch.equal(got, new):
                fail(f"{what}: after update #{i + 1} the cache returns only this call's {name}.", HINT_KV_REPLACE)
            if tuple(got.shape) != tuple(want.shape):
                hint = HINT_KV_AXIS if got.numel() == want.numel() else HINT_KV_REPLACE
                fail(f"{what}: after update #{i + 1} the {name} have shape {tuple(got.shape)}, expected "
                     f"{tuple(want.shape)} (B, h, positions so far, d_head).", hint)
            expect_close(got, want.numpy(), f"{what}: the {name} after update #{i + 1}", **TOL64)
        n = call(cache.__len__, what=f"{what}: len", forbid=_FORBID_CACHE)
        if n != sum(steps[:i + 1]):
            fail(f"{what}: len(cache) is {n} after updates of {steps[:i + 1]} positions, expected "
                 f"{sum(steps[:i + 1])}.", HINT_KV_LEN_CALLS if n == i + 1 else None)
        _check_mask(cache, t, f"{what}, after update #{i + 1}")


@torch.no_grad()
def _check_cache_in_model(KVCache, gen: np.random.Generator, label: str) -> None:
    """The learner's caches in the course's GPT: a prompt, then single tokens, then a chunk of three, each
    step's logits equal to recomputing the whole sequence."""
    torch.manual_seed(int(gen.integers(1 << 30)))
    cfg = ref_gpt.GPTConfig(block_size=32, vocab_size=11, n_layer=2, n_head=2, n_embd=16)
    model = ref_gpt.GPT(cfg).double().eval()
    idx = torch.from_numpy(gen.integers(0, 11, (2, 20)))
    caches = [call(KVCache, what=f"KVCache ({label})") for _ in range(cfg.n_layer)]
    start = 0
    for length in (5, 1, 1, 3, 1):
        piece = idx[:, start:start + length]
        got = call(lambda: model(piece, kv_caches=caches)[0], what=f"the GPT with your caches ({label})")
        want = model(idx[:, :start + length])[0][:, start:]
        expect_close(got, want.numpy(), f"the GPT with your caches ({label}): logits of positions {start}.."
                     f"{start + length - 1} fed {length} at a time, against recomputing the whole sequence",
                     hint="the model asks your cache for causal_mask(n_q) when it feeds fewer queries than keys.",
                     **TOL64)
        start += length


def kv_cache_example(KVCache) -> None:
    """Visible: a prompt of 3 positions then two single tokens (one head of size 2); the offset masks."""
    with worked_example("B=1, h=1, d_head=2. update with 3 positions returns those 3 and len is 3; causal_mask(3) "
                        "is the lower triangle [[1,0,0],[1,1,0],[1,1,1]]. update with 1 more returns all 4 and len "
                        "is 4; causal_mask(1) is [[1,1,1,1]]: the new token sees every cached position and itself."):
        _check_cache_steps(KVCache, np.random.default_rng(7), 1, 1, 2, [3, 1, 1], "worked example: 3, 1, 1 positions")
    passed("KVCache (worked example)")


def kv_cache(KVCache) -> None:
    """Hidden: random shapes and chunk sizes, then the cache inside the course's GPT against recomputation."""
    gen = rng()
    steps = [int(gen.integers(2, 7))] + [1] * int(gen.integers(2, 5)) + [int(gen.integers(2, 4)), 1]
    _check_cache_steps(KVCache, gen, int(gen.integers(1, 3)), int(gen.integers(1, 4)), int(gen.integers(2, 6)),
                       steps, f"chunks of {steps} positions")
    _check_cache_in_model(KVCache, gen, "a prompt of 5, then 1, 1, 3, 1 tokens")
    passed("KVCache (random chunks; in the GPT equal to recomputation)")


#: What generate builds on: sample_next of exercise 8 and the KVCache of exercise 9, judged by their visible checks.
_SAMPLER = Earlier("sample_next", "exercise 8", sample_next_example)
_CACHE = Earlier("KVCache", "exercise 9", kv_cache_example)


def generate_example(fn: Callable) -> None:
    """Visible: greedy, 6 new tokens after a 3-token prompt, with and without the cache."""
    with blame_earlier(fn, "generate", _SAMPLER, _CACHE):
        _check_generate(fn, rng(1), 1, 3, 6, "worked example: prompt of 3 tokens, 6 new")
    passed("generate (worked example)")


def generate(fn: Callable) -> None:
    """Hidden: random prompts and lengths; cache == recompute; one token per step after the prompt."""
    gen = rng()
    with blame_earlier(fn, "generate", _SAMPLER, _CACHE):
        for _ in range(2):
            B, T0, n = int(gen.integers(1, 4)), int(gen.integers(1, 8)), int(gen.integers(5, 20))
            _check_generate(fn, gen, B, T0, n, f"batch {B}, prompt of {T0} tokens, {n} new")
    passed("generate")
