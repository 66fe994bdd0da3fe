"""Checks for notebook 08 (scaling: parameters, FLOPs, power laws, Chinchilla, a live sweep).

Each exercise has a visible ``<name>_example(...)`` check (a small case worked by hand, or a
published figure) and a hidden ``<name>(...)`` check: random configurations counted by
transformers' ``GPT2LMHeadModel`` and ``BertModel`` built on the meta device, random shapes of the
package's GPT counted by ``torch.utils.flop_counter.FlopCounterMode``, freshly generated noisy
sweeps whose true constants are known, and the published Chinchilla constant sets.  Every
mistake listed in COURSE.md is computed on the check's own inputs and named when the learner's
answer reproduces it.

The learner's code is what runs, through :func:`.core.call`, with the package's version of each
exercise forbidden, and for the counts anything that builds a model (``nn.Module.__init__``):
the exercise is to count from the configuration.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn as nn

from .. import gpt as ref_gpt
from .. import scaling as ref
from .core import call, expect, fail, forbidden, passed, quiet, rng, worked_example

#: The oracles these checks build lazily (on the meta device); the harness loads them before learner code runs.
ORACLES = ("transformers.models.gpt2.modeling_gpt2", "transformers.models.gpt2.configuration_gpt2",
           "transformers.models.bert.modeling_bert", "transformers.models.bert.configuration_bert",
           "torch.utils.flop_counter")

__all__ = [
    "gpt2_param_count_example", "gpt2_param_count",
    "bert_param_count_example", "bert_param_count",
    "forward_flops_example", "forward_flops",
    "training_flops_example", "training_flops",
    "fit_power_law_example", "fit_power_law",
    "compute_optimal_example", "compute_optimal",
    "chinchilla_objective_example", "chinchilla_objective",
    "isoflop_optimum_example", "isoflop_optimum",
    "live_sweep",
]

_BUILDS_A_MODEL = forbidden(nn, "Module", methods=("__init__",))

# ------------------------------------------------------------------ hints ---

HINT_TIED_TWICE = (
    "the tied matrix is counted twice: GPT-2's lm_head IS wte (weight tying), one V x d matrix used twice. "
    "Count it once."
)
HINT_NO_POSITIONS = "the position embeddings are missing: the learned table wpe has n_positions x n_embd parameters."
HINT_NO_BIAS = (
    "the biases are missing: every Linear layer of the block has one (3d + d in attention, n_inner + d in the MLP)."
)
HINT_NO_LN = "the LayerNorms are missing: each has a weight and a bias of n_embd each (two per block, plus ln_f)."
HINT_NO_BIAS_LN = "the biases and the LayerNorm parameters are both missing: count every vector, not only the matrices."
HINT_ONE_LN = (
    "one LayerNorm (2 x n_embd) is missing: a GPT-2 block has two (ln_1 and ln_2), and the model ends with a third, "
    "ln_f."
)
HINT_3D2 = (
    "attention has 4 d x d matrices, not 3: the queries, keys and values, and the output projection "
    "(with 4 biases of d)."
)
HINT_N_INNER = (
    "the MLP's width comes from the configuration: n_inner, or 4 * n_embd when n_inner is None. "
    "This config sets n_inner."
)
HINT_NO_POOLER = "the pooler is missing: BertModel ends with a d x d Linear layer and its bias on the [CLS] token."
HINT_NO_SEGMENTS = "the segment (token type) embeddings are missing: type_vocab_size x hidden_size."
HINT_NO_EMB_LN = "the embeddings' LayerNorm is missing: BERT normalises the summed embeddings (2 x hidden_size)."
HINT_BERT_FF = "the feed-forward layer's width is intermediate_size (not 4 x hidden_size): read it from the config."
HINT_BERT_EXTRA_LN = (
    "there is one LayerNorm too many: BERT is post-LN, so each layer has two (after attention and after the "
    "feed-forward) and the embeddings one, but there is no final LayerNorm after the last layer."
)
HINT_POOLER_BIAS = "the pooler's bias is missing: it is a full Linear layer, d x d weights plus d biases."
HINT_BERT_GENERIC = (
    "add it up part by part: three embedding tables and their LayerNorm; per layer Q, K, V and the output "
    "projection (weights and biases), a LayerNorm, the feed-forward d -> intermediate_size -> d (weights and "
    "biases), a LayerNorm; then the pooler (d x d and a bias). No final LayerNorm, no output head."
)
HINT_GPT2_GENERIC = (
    "add it up part by part: wte and wpe; per block ln_1, attention (4 matrices and 4 biases), ln_2, the MLP "
    "d -> n_inner -> d (weights and biases); then ln_f. lm_head is wte."
)

HINT_NO_ATTENTION = (
    "the attention term is missing: besides 2 FLOPs per weight, each layer computes the scores Q K^T and the "
    "weighted values A V, 2 T d FLOPs each per token at context T: add 4 * n_layer * T * n_embd. It is what "
    "dominates at long context (T > 6 d)."
)
HINT_HALF_ATTENTION = (
    "the attention term is halved: a causal mask discards half the scores, but a non-fused kernel (and "
    "FlopCounterMode) computes all T of them per query. Count 4 * n_layer * T * n_embd."
)
HINT_NO_HEAD = (
    "the output layer is missing: lm_head multiplies every token by the V x d (tied) matrix, 2 V d FLOPs. "
    "Tied or not, a matrix you multiply by costs FLOPs."
)
HINT_EMBEDDINGS = (
    "embedding look-ups cost no FLOPs: reading a row of wte or wpe multiplies nothing. Count the matrices a "
    "token is multiplied by: the blocks' and lm_head's."
)
HINT_SMALL_VECTORS = (
    "biases and LayerNorms are not products by a matrix: count 2 FLOPs per weight of the matrices only "
    "(FlopCounterMode counts matrix products)."
)
HINT_6_PER_WEIGHT = "that is the training cost (forward and backward): the forward pass costs 2 FLOPs per weight."
HINT_PER_HEAD = (
    "the attention term counts one head: the scores and weighted values run in every head, n_head x d_head = "
    "n_embd in all, so the term is 4 * n_layer * T * n_embd."
)
HINT_2ND = (
    "2 N D is one forward pass. Training also runs the backward pass, which costs about twice the forward "
    "(gradients with respect to the activations and to the weights): C ~ 6 N D."
)
HINT_LINEAR_SPACE = (
    "this looks like a fit in linear space (least squares on L itself, as scipy's curve_fit does by default). "
    "Fit log L: minimise sum (log L_i - log(a N_i^-alpha + c))^2, so that every point counts by its relative "
    "error and the small losses of large models are not drowned out."
)
HINT_NO_C = (
    "the irreducible loss c is missing: a straight line through (log N, log L) fits a N^-alpha without it and "
    "gets an exponent several times too small. Fit c too (for a fixed c, log(L - c) against log N is a line)."
)
HINT_FIT_NOT_OPTIMAL = (
    "your fit is not the least-squares fit in log space: another (a, alpha, c) has a smaller "
    "sum (log L_i - log(a N_i^-alpha + c))^2. A straight line through (log N, log(L - c)) for the best c minimises "
    "the residuals of log(L - c), a different sum: use it as a starting point, then minimise the log-space sum "
    "over all three parameters together (scipy.optimize.least_squares on the residuals), with 0 <= c < min(L)."
)
HINT_4ND = (
    "the backward pass costs two products per weight (one for the gradient of the input, one for the gradient "
    "of the weight), each as much as the forward product: 2 + 4 = 6 FLOPs per parameter per token."
)
HINT_C_OVER_6 = "the budget is C = 6 N D, so N D = C / 6: use (C / 6) in the formula, not C."
HINT_C_OVER_2 = "training compute is 6 N D, not 2 N D (that is the forward pass only): use C / 6."
HINT_SWAPPED_EXP = (
    "the exponents are swapped: N_opt grows as (C/6)^(beta/(alpha+beta)) and D_opt as (C/6)^(alpha/(alpha+beta))."
)
HINT_G_INVERTED = (
    "G multiplies N_opt and divides D_opt: N_opt = G (C/6)^(beta/(alpha+beta)) and "
    "D_opt = (C/6)^(alpha/(alpha+beta)) / G."
)
HINT_G_POWER = "G = (alpha A / (beta B)) raised to the power 1/(alpha + beta); the power is missing."
HINT_20_TOKENS = (
    "20 tokens per parameter is a rule of thumb read off one budget, not the law: minimise E + A/N^alpha + "
    "B/D^beta under 6 N D = C and the ratio D/N changes with C unless alpha = beta."
)
HINT_SQUARED = (
    "this is a squared loss, not Huber's: Huber is r^2/2 for |r| <= delta and delta (|r| - delta/2) beyond, so "
    "that outliers pull linearly, not quadratically."
)
HINT_NOT_LOG = (
    "the residual must be in log space: predicted log-loss (a logsumexp of a - alpha log N, b - beta log D and e) "
    "minus log L, not the loss itself minus L."
)
HINT_MEAN = "return the sum of the Huber terms over the runs, not their mean."
HINT_DELTA = "use the delta you are given (1e-3 by default), not Huber's usual 1."
HINT_DELTA_FIXED = "use the delta argument the function is given: this case passes a different one."
HINT_SMOOTH_L1 = (
    "this is smooth L1 (Huber divided by delta): F.smooth_l1_loss(..., beta=delta) is 1/delta times Huber's loss. "
    "Use F.huber_loss(..., delta=delta) or the formula."
)
HINT_NO_HALF_DELTA = "beyond delta Huber's loss is delta * (|r| - delta / 2): the - delta / 2 is missing."
HINT_OBJECTIVE_GENERIC = (
    "params is (a, b, e, alpha, beta) in that order, A = exp(a), B = exp(b), E = exp(e); predicted log-loss "
    "logsumexp(a - alpha log N, b - beta log D, e), residual predicted - log L, Huber with the given delta, summed."
)
HINT_SIGN = "the residual's sign is the other way round from the reference, or the terms use the wrong exponent's sign."
HINT_PARABOLA_IN_N = (
    "fit the parabola in log N, not in N: along an isoFLOP curve the loss is roughly a parabola of log N, and "
    "the sizes are spaced by factors."
)
HINT_ARGMIN = (
    "that is the best size among the runs, not the parabola's vertex: fit L = p0 (log N)^2 + p1 log N + p2 and "
    "return exp(-p1 / (2 p0))."
)
HINT_LOG_N = "you returned log N at the vertex: return N itself, exp(-p1 / (2 p0))."

def _named(variants, atol: float = 0.0, rtol: float = 1e-9) -> list[tuple[str, Any]]:
    """The mistake variants with each hint widened to every mistake that gives the same value on these inputs
    (on one configuration two mistakes can coincide: a learner reads both, joined by "Or:")."""
    kept = [(h, np.asarray(w, dtype=np.float64)) for h, w in variants if w is not None]
    out = []
    for _, wrong in kept:
        same = [h for h, w in kept if w.shape == wrong.shape and np.allclose(w, wrong, atol=atol, rtol=rtol)]
        out.append((" Or: ".join(dict.fromkeys(same)), wrong))
    return out


# ---------------------------------------------------------- 1. GPT-2 counts ---


def _gpt2_config(**kw):
    from transformers import GPT2Config

    if kw.get("vocab_size", 50257) <= 50256:       # GPT-2's special ids (50256) must fit a small vocabulary
        kw = {"bos_token_id": 0, "eos_token_id": 0, **kw}
    return GPT2Config(**kw)


def _bert_config(**kw):
    from transformers import BertConfig

    return BertConfig(**kw)


def _count_gpt2_oracle(cfg) -> int:
    from transformers import GPT2LMHeadModel

    with torch.device("meta"):
        model = quiet(GPT2LMHeadModel, cfg)
    return sum(p.numel() for p in model.parameters())


def _count_bert_oracle(cfg) -> int:
    from transformers import BertModel

    with torch.device("meta"):
        model = quiet(BertModel, cfg)
    return sum(p.numel() for p in model.parameters())


def _gpt2_variants(cfg) -> list[tuple[str, int]]:
    V, P, d, L, f = ref._gpt2_shape(cfg)
    ok = ref.gpt2_param_count(cfg)
    biases = L * (4 * d + f + d)
    norms = L * 4 * d + 2 * d
    out = [(HINT_TIED_TWICE, ok + V * d), (HINT_NO_POSITIONS, ok - P * d), (HINT_NO_BIAS, ok - biases),
           (HINT_NO_LN, ok - norms), (HINT_NO_BIAS_LN, ok - biases - norms), (HINT_3D2, ok - L * (d * d + d)),
           (HINT_3D2, ok - L * d * d), (HINT_ONE_LN, ok - 2 * d), (HINT_ONE_LN, ok - L * 2 * d)]
    if f != 4 * d:
        out.append((HINT_N_INNER, ok + L * (2 * d + 1) * (4 * d - f)))
    return out


def _check_gpt2(fn, cfg, label: str, expected: int | None = None) -> None:
    out = call(fn, cfg, what=f"gpt2_param_count ({label})",
               forbid=_BUILDS_A_MODEL + forbidden(ref, "gpt2_param_count", "bert_param_count")
               + forbidden(ref_gpt, "gpt2_small_param_count"))
    _expect_count(out, ref.gpt2_param_count(cfg) if expected is None else expected, f"gpt2_param_count ({label})",
                  _gpt2_variants(cfg), HINT_GPT2_GENERIC)


def _expect_count(out: Any, expected: int, what: str, variants, generic: str) -> None:
    if isinstance(out, torch.Tensor):
        out = out.item()
    if isinstance(out, (bool, np.bool_)) or not isinstance(out, (int, np.integer, float, np.floating)):
        fail(f"{what} returned {type(out).__name__}, expected a number.", "return the count as an int.")
    if float(out) == float(expected):
        return
    # several mistakes can give the same count on one configuration (segments and the embeddings' LayerNorm
    # are both 2d when type_vocab_size is 2): name every one that fits
    hints = list(dict.fromkeys(hint for hint, wrong in variants if float(out) == float(wrong)))
    if hints:
        fail(f"{what} is {int(out):,}; expected {expected:,}.", " Or: ".join(hints))
    fail(f"{what} is {float(out):,.0f}; expected {expected:,} (off by {float(out) - expected:+,.0f}).", generic)


# d = 3 and 5 positions: every listed mistake gives a different count here (with d = 2, d^2 = 2d and they collide)
GPT2_TINY = dict(vocab_size=10, n_positions=5, n_embd=3, n_layer=1, n_head=1)
GPT2_TINY_WORKED = (
    "vocab 10, n_positions 5, n_embd d = 3, 1 layer, n_inner None (so 4d = 12): wte 10*3 = 30, wpe 5*3 = 15; the "
    "block: ln_1 6, attention 4*d^2 + 4*d = 48, ln_2 6, MLP 2*d*12 + 12 + d = 87, so 147; ln_f 6; lm_head tied: 0. "
    "Total 30 + 15 + 147 + 6 = 198. With n_inner = 8 instead, the MLP is 2*3*8 + 8 + 3 = 59 and the total 170."
)


def gpt2_param_count_example(fn: Callable) -> None:
    """Visible: a tiny configuration worked by hand (with and without n_inner), then GPT-2 small's 124,439,808."""
    with worked_example(GPT2_TINY_WORKED):
        _check_gpt2(fn, _gpt2_config(**GPT2_TINY), "worked example: vocab 10, 5 positions, n_embd 3, 1 layer", 198)
        _check_gpt2(fn, _gpt2_config(**GPT2_TINY, n_inner=8), "worked example with n_inner = 8", 170)
    _check_gpt2(fn, _gpt2_config(**ref.GPT2_SMALL), "GPT-2 small", ref.GPT2_SMALL_PARAMS)
    passed("gpt2_param_count (worked example; GPT-2 small: 124,439,808)")


def gpt2_param_count(fn: Callable) -> None:
    """Hidden: GPT-3 from its published configuration, and random configurations against transformers'
    ``GPT2LMHeadModel`` built on the meta device."""
    gen = rng()
    _check_gpt2(fn, _gpt2_config(**ref.GPT3_175B), "GPT-3 175B in GPT-2's layout", ref.GPT3_175B_PARAMS)
    for i in range(4):
        n_head = int(gen.integers(1, 5))
        d = n_head * int(gen.integers(2, 17))
        cfg = _gpt2_config(vocab_size=int(gen.integers(5, 500)), n_positions=int(gen.integers(1, 300)), n_embd=d,
                           n_layer=int(gen.integers(1, 5)), n_head=n_head,
                           n_inner=None if i % 2 == 0 else int(gen.integers(1, 8 * d)))
        expected = _count_gpt2_oracle(cfg)
        expect(expected == ref.gpt2_param_count(cfg), "internal: the reference disagrees with transformers.")
        _check_gpt2(fn, cfg, f"random config: vocab {cfg.vocab_size}, n_positions {cfg.n_positions}, n_embd {d}, "
                             f"{cfg.n_layer} layers, n_inner {cfg.n_inner}", expected)
    passed("gpt2_param_count (GPT-3: 174,604,259,328; random configurations against GPT2LMHeadModel)")


# ----------------------------------------------------------- 2. BERT counts ---

def _bert_variants(cfg) -> list[tuple[str, int]]:
    d, L, f = cfg.hidden_size, cfg.num_hidden_layers, cfg.intermediate_size
    P, S = cfg.max_position_embeddings, cfg.type_vocab_size
    ok = ref.bert_param_count(cfg)
    biases = L * (4 * d + f + d) + d
    norms = L * 4 * d + 2 * d
    out = [(HINT_NO_POOLER, ok - d * d - d), (HINT_NO_SEGMENTS, ok - S * d), (HINT_NO_EMB_LN, ok - 2 * d),
           (HINT_NO_POSITIONS.replace("wpe", "position_embeddings").replace("n_positions x n_embd",
                                                                            "max_position_embeddings x hidden_size"),
            ok - P * d),
           (HINT_NO_BIAS, ok - biases), (HINT_NO_LN, ok - norms), (HINT_NO_BIAS_LN, ok - biases - norms),
           (HINT_3D2, ok - L * (d * d + d)), (HINT_3D2, ok - L * d * d)]
    out += [(HINT_BERT_EXTRA_LN, ok + 2 * d), (HINT_POOLER_BIAS, ok - d)]
    if f != 4 * d:
        out.append((HINT_BERT_FF, ok + L * (2 * d + 1) * (4 * d - f)))
    return out


def _check_bert(fn, cfg, label: str, expected: int) -> None:
    out = call(fn, cfg, what=f"bert_param_count ({label})",
               forbid=_BUILDS_A_MODEL + forbidden(ref, "gpt2_param_count", "bert_param_count"))
    _expect_count(out, expected, f"bert_param_count ({label})", _bert_variants(cfg), HINT_BERT_GENERIC)


# d = 3, 2 layers, 5 positions, intermediate 8 (not 4d): the listed mistakes give different counts here, except
# the segment table and the embeddings' LayerNorm, both 2d = 6 with two segments (the message names both)
BERT_TINY = dict(vocab_size=10, hidden_size=3, num_hidden_layers=2, num_attention_heads=1, intermediate_size=8,
                 max_position_embeddings=5, type_vocab_size=2)
BERT_TINY_WORKED = (
    "vocab 10, 5 positions, 2 segments, d = 3, 2 layers, intermediate 8: embeddings (10 + 5 + 2)*3 + LayerNorm 6 "
    "= 57; each layer: attention 4*d^2 + 4*d = 48, LayerNorm 6, feed-forward 3*8 + 8 + 8*3 + 3 = 59, LayerNorm 6, "
    "so 119, twice: 238; the pooler d^2 + d = 12. Total 57 + 238 + 12 = 307."
)


def bert_param_count_example(fn: Callable) -> None:
    """Visible: a tiny configuration worked by hand, then BERT-base's 109,482,240 (with the pooler)."""
    with worked_example(BERT_TINY_WORKED):
        _check_bert(fn, _bert_config(**BERT_TINY), "worked example: vocab 10, d 3, 2 layers, intermediate 8", 307)
    _check_bert(fn, _bert_config(**ref.BERT_BASE), "BERT-base", ref.BERT_BASE_PARAMS)
    passed("bert_param_count (worked example; BERT-base: 109,482,240)")


def bert_param_count(fn: Callable) -> None:
    """Hidden: random configurations against transformers' ``BertModel`` (with its pooler) on the meta device."""
    gen = rng()
    for _ in range(4):
        heads = int(gen.integers(1, 5))
        d = heads * int(gen.integers(2, 17))
        cfg = _bert_config(vocab_size=int(gen.integers(5, 500)), hidden_size=d, num_hidden_layers=int(gen.integers(1, 4)),
                           num_attention_heads=heads, intermediate_size=int(gen.integers(1, 8 * d)),
                           max_position_embeddings=int(gen.integers(1, 300)), type_vocab_size=int(gen.integers(1, 4)),
                           pad_token_id=0)
        expected = _count_bert_oracle(cfg)
        expect(expected == ref.bert_param_count(cfg), "internal: the reference disagrees with transformers.")
        _check_bert(fn, cfg, f"random config: vocab {cfg.vocab_size}, hidden {d}, {cfg.num_hidden_layers} layers, "
                             f"intermediate {cfg.intermediate_size}, positions {cfg.max_position_embeddings}, "
                             f"segments {cfg.type_vocab_size}", expected)
    passed("bert_param_count (random configurations against BertModel)")


def _expect_number(out: Any, expected: Any, what: str, variants, *, rtol: float, atol: float = 0.0,
                   hint: str | None = None) -> None:
    """A number (or a short vector) against the reference: a mismatch shows yours and the expected value, and the
    hint of every listed mistake it reproduces (:func:`_named`), else ``hint``."""
    if isinstance(out, torch.Tensor):
        out = out.detach().cpu().numpy()
    try:
        mine = np.asarray(out, dtype=np.float64)
    except (TypeError, ValueError):
        fail(f"{what} returned {type(out).__name__}, expected a number.")
    want = np.asarray(expected, dtype=np.float64)
    if mine.shape != want.shape:
        fail(f"{what} returned {out!r}, expected {'one number' if want.ndim == 0 else f'{want.size} numbers'}.")
    if np.allclose(mine, want, rtol=rtol, atol=atol):
        return
    shown = ", ".join(f"{v:.9g}" for v in mine.ravel())
    wanted = ", ".join(f"{v:.9g}" for v in want.ravel())
    for named_hint, wrong in _named(variants, atol, rtol):
        if wrong.shape == mine.shape and np.allclose(mine, wrong, rtol=rtol, atol=atol):
            fail(f"{what} is {shown}; expected {wanted}.", named_hint)
    fail(f"{what} is {shown}; expected {wanted}.", hint)


# ------------------------------------------------------- 3. forward FLOPs ---

def _flop_variants(cfg, T: int) -> list[tuple[str, float]]:
    V, d, L = cfg.vocab_size, cfg.n_embd, cfg.n_layer
    weights = L * 12 * d * d + V * d
    attn = 4 * L * T * d
    small = L * (4 * d + 4 * d + d + 4 * d) + 2 * d        # biases and LayerNorm vectors of every block, ln_f
    return [(HINT_NO_ATTENTION, 2 * weights), (HINT_HALF_ATTENTION, 2 * weights + attn // 2),
            (HINT_NO_HEAD, 2 * (weights - V * d) + attn), (HINT_NO_HEAD, 2 * (weights - V * d)),
            (HINT_EMBEDDINGS, 2 * (weights + V * d + cfg.block_size * d) + attn),
            (HINT_EMBEDDINGS, 2 * (weights + V * d) + attn),
            (HINT_SMALL_VECTORS, 2 * (weights + small) + attn),
            (HINT_3D2, 2 * (weights - L * d * d) + attn), (HINT_6_PER_WEIGHT, 6 * weights + attn),
            (HINT_6_PER_WEIGHT, 3 * (2 * weights + attn)),
            (HINT_PER_HEAD, 2 * weights + attn // cfg.n_head) if cfg.n_head > 1 else (HINT_PER_HEAD, None)]


def _check_flops_case(fn, cfg, T: int, label: str, expected: float) -> None:
    out = call(fn, cfg, T, what=f"forward_flops_per_token ({label})",
               forbid=_BUILDS_A_MODEL + forbidden(ref, "forward_flops_per_token", "matmul_weights", "count_flops"))
    what = f"forward_flops_per_token ({label})"
    _expect_number(out, float(expected), what, _flop_variants(cfg, T), atol=0.5, rtol=1e-9,
                   hint="2 FLOPs per weight of every matrix a token is multiplied by (the blocks' and lm_head's), "
                      "plus 4 * n_layer * T * n_embd for attention's two products.")


FLOPS_TINY = dict(block_size=16, vocab_size=10, n_layer=1, n_head=2, n_embd=4)
FLOPS_TINY_WORKED = (
    "n_layer 1, n_embd d = 4 (2 heads of 2), vocab 10, T = 8: the matrices a token meets are the block's 12 d^2 = 192 weights "
    "(Q, K, V, output: 4 d^2; the MLP: 8 d^2) and lm_head's V d = 40, so 232 weights and 464 FLOPs; attention adds "
    "4 * 1 * 8 * 4 = 128 (scores and weighted values, 2 T d each). Total 592."
)


def forward_flops_example(fn: Callable) -> None:
    """Visible: a one-layer GPT worked by hand."""
    with worked_example(FLOPS_TINY_WORKED):
        _check_flops_case(fn, ref_gpt.GPTConfig(**FLOPS_TINY), 8, "worked example: 1 layer, 2 heads, n_embd 4, "
                                                                  "vocab 10, T 8", 592)
    passed("forward_flops_per_token (worked example)")


def _measured_flops_per_token(cfg, B: int, T: int) -> float:
    torch.manual_seed(0)
    model = ref_gpt.GPT(cfg).eval()
    idx = torch.randint(0, cfg.vocab_size, (B, T))
    with torch.no_grad():
        total = ref.count_flops(lambda: model(idx))
    return total / (B * T)


def forward_flops(fn: Callable) -> None:
    """Hidden: random shapes of the package's GPT (notebook 07's model) counted by FlopCounterMode, one of them
    at a context several times the width (where attention dominates)."""
    gen = rng()
    for i in range(3):
        n_head = int(gen.integers(2, 4)) if i == 2 else int(gen.integers(1, 4))
        d = n_head * int(gen.integers(2, 9))
        T = int(gen.integers(8 * d, 10 * d)) if i == 2 else int(gen.integers(2, 33))
        cfg = ref_gpt.GPTConfig(block_size=T + int(gen.integers(0, 8)), vocab_size=int(gen.integers(5, 80)),
                                n_layer=int(gen.integers(1, 4)), n_head=n_head, n_embd=d)
        B = int(gen.integers(1, 3))
        measured = _measured_flops_per_token(cfg, B, T)
        _check_flops_case(fn, cfg, T, f"n_layer {cfg.n_layer}, n_embd {d}, vocab {cfg.vocab_size}, T {T}; measured by "
                                      "FlopCounterMode", measured)
    passed("forward_flops_per_token (against FlopCounterMode on the package's GPT)")


# ------------------------------------------------------- 4. training FLOPs ---

def _check_training(fn, N: float, D: float, label: str) -> None:
    what = f"training_flops ({label})"
    out = call(fn, N, D, what=what, forbid=forbidden(ref, "training_flops"))
    _expect_number(out, 6.0 * N * D, what, [(HINT_2ND, 2.0 * N * D), (HINT_4ND, 4.0 * N * D), (HINT_4ND, 3.0 * N * D)],
                   rtol=1e-9, hint="training costs about 6 FLOPs per parameter per token.")


def training_flops_example(fn: Callable) -> None:
    """Visible: 1M parameters trained on 20M tokens."""
    with worked_example("N = 1e6 parameters, D = 2e7 tokens: 2 N D = 4e13 forward, 4 N D = 8e13 backward, "
                        "6 N D = 1.2e14 in all."):
        _check_training(fn, 1e6, 2e7, "worked example: N = 1e6, D = 2e7")
    passed("training_flops (worked example)")


def training_flops(fn: Callable) -> None:
    """Hidden: GPT-3's ~3.14e23 FLOPs (174.6B parameters, 300B tokens) and random sizes."""
    gen = rng()
    _check_training(fn, float(ref.GPT3_175B_PARAMS), 300e9, "GPT-3: 174.6e9 parameters, 300e9 tokens")
    for _ in range(2):
        N, D = float(10 ** gen.uniform(5, 12)), float(10 ** gen.uniform(7, 13))
        _check_training(fn, N, D, f"N = {N:.3g}, D = {D:.3g}")
    passed("training_flops (GPT-3: 3.14e23)")


# -------------------------------------------------------- 5. fit_power_law ---

def _as_law(out: Any, what: str) -> ref.PowerLaw:
    if all(hasattr(out, k) for k in ("a", "alpha", "c")):
        out = (out.a, out.alpha, out.c)
    try:
        a, alpha, c = (float(x) for x in out)
    except (TypeError, ValueError):
        fail(f"{what} returned {type(out).__name__}; expected the three numbers (a, alpha, c).",
             "return a tuple (a, alpha, c) for L(N) = a * N**-alpha + c.")
    if not all(math.isfinite(x) for x in (a, alpha, c)):
        fail(f"{what} returned a = {a}, alpha = {alpha}, c = {c}: not all finite.")
    return ref.PowerLaw(a, alpha, c)


def _linear_space_fit(N, L, start: ref.PowerLaw) -> ref.PowerLaw:
    from scipy.optimize import least_squares

    res = least_squares(lambda x: np.exp(x[0]) * N ** -x[1] + x[2] - L, [math.log(start.a), start.alpha, start.c],
                        xtol=1e-14, ftol=1e-14, gtol=1e-14)
    return ref.PowerLaw(float(np.exp(res.x[0])), float(res.x[1]), float(res.x[2]))


def _close_law(x: ref.PowerLaw, y: ref.PowerLaw, rtol: float) -> bool:
    return (abs(x.alpha - y.alpha) <= rtol * abs(y.alpha) and abs(x.c - y.c) <= rtol * max(abs(y.c), 0.1)
            and abs(math.log(abs(x.a) + 1e-300) - math.log(abs(y.a) + 1e-300)) <= 10 * rtol)


def _linear_objective(law: ref.PowerLaw, N, L) -> float:
    return float(np.sum((L - law(N)) ** 2))


def _check_power_case(fn, N, L, label: str) -> None:
    """The learner's fit must be the least-squares fit in log space: its objective within 0.01% of the best."""
    what = f"fit_power_law ({label})"
    law = _as_law(call(fn, N.copy(), L.copy(), what=what, forbid=forbidden(ref, "fit_power_law")), what)
    best = ref.fit_power_law(N, L)
    mine, ideal = ref.power_law_objective(law, N, L), ref.power_law_objective(best, N, L)
    if mine <= ideal * (1 + 1e-4) + 1e-12:
        return
    shown = f"yours: a = {law.a:.4g}, alpha = {law.alpha:.4g}, c = {law.c:.4g}"
    against = (f"the least-squares fit in log space has a = {best.a:.4g}, alpha = {best.alpha:.4g}, c = {best.c:.4g} "
               f"(sum of squared log residuals {ideal:.6g}; yours {mine:.6g})")
    line_a, line_alpha = ref.fit_loglog_line(N, L)
    if abs(law.c) < 1e-6 or _close_law(law, ref.PowerLaw(line_a, line_alpha, 0.0), 1e-2):
        fail(f"{what}: {shown}; {against}.", HINT_NO_C)
    linear = _linear_space_fit(N, L, best)
    if _linear_objective(law, N, L) <= _linear_objective(linear, N, L) * (1 + 1e-4) + 1e-12:
        fail(f"{what}: {shown}; {against}.", HINT_LINEAR_SPACE)
    fail(f"{what}: {shown}; {against}.", HINT_FIT_NOT_OPTIMAL)


POWER_EXAMPLE = ref.PowerLaw(a=200.0, alpha=0.3, c=2.0)


def fit_power_law_example(fn: Callable) -> None:
    """Visible: ten exact points of L = 200 N^-0.3 + 2 (no noise), which the fit must recover; then the notebook's
    own generated sweep (seed 0, 2% noise), where the fit must be the least-squares fit in log space."""
    N = np.geomspace(1e5, 1e9, 10)
    L = POWER_EXAMPLE(N)
    with worked_example("the points lie exactly on L = 200 N^-0.3 + 2, so the best fit has a zero residual and is "
                        "(a, alpha, c) = (200, 0.3, 2): log(L - 2) against log N is a straight line of slope -0.3."):
        what = "fit_power_law (worked example: exact points of 200 N^-0.3 + 2)"
        law = _as_law(call(fn, N.copy(), L.copy(), what=what, forbid=forbidden(ref, "fit_power_law")), what)
        if not _close_law(law, POWER_EXAMPLE, 1e-3):
            if abs(law.c) < 1e-6:
                fail(f"{what}: a = {law.a:.4g}, alpha = {law.alpha:.4g}, c = {law.c:.4g}.", HINT_NO_C)
            fail(f"{what}: a = {law.a:.4g}, alpha = {law.alpha:.4g}, c = {law.c:.4g}; expected 200, 0.3, 2.",
                 HINT_FIT_NOT_OPTIMAL)
    N, L, _ = ref.synthetic_sweep(12, seed=0)
    _check_power_case(fn, N, L, "the notebook's generated sweep, seed 0")
    passed("fit_power_law (worked example; the generated sweep)")


def _recoverable_sweep(gen: np.random.Generator):
    """A generated sweep (1% log-normal noise) on which the exact least-squares fit recovers the generating
    constants (alpha within 0.05, c within 0.15): noise can hide them on a few draws, and a correct answer must
    never be failed for that. Returns ``(N, L, truth)``."""
    for _ in range(50):
        truth = ref.PowerLaw(a=float(10 ** gen.uniform(1.5, 3)), alpha=float(gen.uniform(0.2, 0.5)),
                             c=float(gen.uniform(1.0, 3.0)))
        N0 = float(10 ** gen.uniform(4, 6))
        # a range wide enough that the reducible part falls by a factor of about 40
        N, L, _ = ref.synthetic_sweep(int(gen.integers(12, 17)), truth=truth, noise=0.01, n_min=N0,
                                      n_max=N0 * 40 ** (1 / truth.alpha), seed=int(gen.integers(1 << 31)))
        best = ref.fit_power_law(N, L)
        if abs(best.alpha - truth.alpha) <= 0.05 and abs(best.c - truth.c) <= 0.15:
            return N, L, truth
    raise RuntimeError("internal: no generated sweep recovers its constants")   # pragma: no cover


def fit_power_law(fn: Callable) -> None:
    """Hidden: freshly generated sweeps with 1% log-normal noise, on which the exact fit recovers the generating
    constants; the learner's fit must be the least-squares fit in log space (its objective within 0.01%)."""
    gen = rng()
    for _ in range(3):
        N, L, truth = _recoverable_sweep(gen)
        _check_power_case(fn, N, L, f"{N.size} points generated with alpha = {truth.alpha:.3g}, c = {truth.c:.3g}, "
                                    f"N from {N[0]:.3g} to {N[-1]:.3g}")
    passed("fit_power_law (generated sweeps, constants recovered)")


# ------------------------------------------------------- 6. compute_optimal ---

def _optimal_variants(C: float, law: ref.ChinchillaLaw) -> list[tuple[str, Any]]:
    a, b = law.alpha, law.beta
    s = a + b
    G = (a * law.A / (b * law.B)) ** (1 / s)
    N20 = math.sqrt(C / 120)
    return [(HINT_C_OVER_6, (G * C ** (b / s), C ** (a / s) / G)),
            (HINT_C_OVER_2, (G * (C / 2) ** (b / s), (C / 2) ** (a / s) / G)),
            (HINT_SWAPPED_EXP, (G * (C / 6) ** (a / s), (C / 6) ** (b / s) / G)),
            (HINT_G_INVERTED, ((C / 6) ** (b / s) / G, G * (C / 6) ** (a / s))),
            (HINT_G_POWER, (G ** s * (C / 6) ** (b / s), (C / 6) ** (a / s) / G ** s)),
            (HINT_20_TOKENS, (N20, 20 * N20))]


def _check_optimal(fn, C: float, law: ref.ChinchillaLaw, label: str) -> None:
    what = f"compute_optimal ({label})"
    out = call(fn, C, law, what=what, forbid=forbidden(ref, "compute_optimal") + forbidden(ref.ChinchillaLaw, "optimum"))
    try:
        N, D = (float(x) for x in out)
    except (TypeError, ValueError):
        fail(f"{what} returned {type(out).__name__}; expected a pair (N_opt, D_opt).")
    # a numeric minimiser that is right to 1e-4 passes; every listed mistake is off by far more
    _expect_number([N, D], ref.compute_optimal(C, law), what, _optimal_variants(C, law), rtol=1e-4,
                   hint="N_opt = G (C/6)^(beta/(alpha+beta)), D_opt = (C/6)^(alpha/(alpha+beta)) / G, "
                        "G = (alpha A / (beta B))^(1/(alpha+beta)).")


def compute_optimal_example(fn: Callable) -> None:
    """Visible: a symmetric law (A = B, alpha = beta), whose optimum splits the budget evenly: N = D = sqrt(C/6)."""
    law = ref.ChinchillaLaw(E=1.0, A=100.0, B=100.0, alpha=0.5, beta=0.5, name="symmetric")
    with worked_example("A = B = 100 and alpha = beta = 0.5: G = (0.5*100 / (0.5*100))^(1/1) = 1 and both exponents "
                        "are 1/2, so N_opt = D_opt = (C/6)^(1/2); C = 6e8 gives N_opt = D_opt = 1e4."):
        _check_optimal(fn, 6e8, law, "worked example: symmetric law, C = 6e8")
    with worked_example("Chinchilla's rounded constants (alpha 0.34, beta 0.28, A 406.4, B 410.7) at C = 2.21e19: "
                        "G = (0.34*406.4 / (0.28*410.7))^(1/0.62) = 1.345 and (C/6)^(0.28/0.62) = 2.42e8, so N_opt = "
                        "3.26e8 and D_opt = C / (6 N_opt) = 1.13e10."):
        _check_optimal(fn, 2.21e19, ref.CHINCHILLA_ROUNDED, "Chinchilla's rounded constants, C = 2.21e19")
    passed("compute_optimal (worked example)")


def compute_optimal(fn: Callable) -> None:
    """Hidden: the paper's rounded and unrounded constants and Epoch AI's refit at 2.21e19 and 5.76e23 FLOPs,
    and random laws and budgets."""
    gen = rng()
    for law in ref.LAWS.values():
        for C in (2.21e19, 5.76e23):
            _check_optimal(fn, C, law, f"{law.name}, C = {C:.3g}")
    for _ in range(2):
        law = ref.ChinchillaLaw(E=float(gen.uniform(1, 2)), A=float(10 ** gen.uniform(2, 3.5)),
                                B=float(10 ** gen.uniform(2, 3.5)), alpha=float(gen.uniform(0.2, 0.5)),
                                beta=float(gen.uniform(0.2, 0.5)), name="random")
        C = float(10 ** gen.uniform(15, 25))
        _check_optimal(fn, C, law, f"random law {law}, C = {C:.3g}")
    passed("compute_optimal (the three constant sets at 2.21e19 and 5.76e23 FLOPs)")


# ------------------------------------------------- 7. chinchilla_objective ---

def _objective_variants(params, log_N, log_D, log_L, delta) -> list[tuple[str, float]]:
    a, b, e, al, be = params.unbind(-1)
    pred = torch.logsumexp(torch.stack([a - al * log_N, b - be * log_D, e.expand_as(log_N)]), dim=0)
    r = pred - log_L
    huber = ref.huber
    fixed = float(huber(r, 1e-3).sum()) if abs(delta - 1e-3) > 1e-12 else None
    return [(HINT_DELTA_FIXED, fixed), (HINT_SMOOTH_L1, float(huber(r, delta).sum()) / delta),
            (HINT_NO_HALF_DELTA, float(torch.where(r.abs() <= delta, 0.5 * r * r, delta * r.abs()).sum())),
            (HINT_SQUARED, float((0.5 * r * r).sum())), (HINT_SQUARED, float((r * r).sum())),
            (HINT_SQUARED, float((r * r).mean())),
            (HINT_NOT_LOG, float(huber(pred.exp() - log_L.exp(), delta).sum())),
            (HINT_MEAN, float(huber(r, delta).mean())), (HINT_DELTA, float(huber(r, 1.0).sum())),
            (HINT_SIGN, float(huber(torch.logsumexp(torch.stack([a + al * log_N, b + be * log_D,
                                                                   e.expand_as(log_N)]), 0) - log_L, delta).sum()))]


def _check_objective_case(fn, params, log_N, log_D, log_L, delta, label: str):
    what = f"chinchilla_objective ({label})"
    p = params.clone().requires_grad_(True)
    out = call(fn, p, log_N, log_D, log_L, delta, what=what, forbid=forbidden(ref, "chinchilla_objective", "huber"))
    if not isinstance(out, torch.Tensor):
        fail(f"{what} returned {type(out).__name__}, not a torch tensor.",
             "compute it with torch operations on params, so that L-BFGS can differentiate it.")
    if out.numel() != 1:
        fail(f"{what} returned shape {tuple(out.shape)}, expected a scalar.", HINT_MEAN.replace("mean", "per-run values"))
    expected = ref.chinchilla_objective(params, log_N, log_D, log_L, delta)
    _expect_number(out.detach().reshape(()), float(expected), what,
                   _objective_variants(params, log_N, log_D, log_L, delta), atol=1e-12, rtol=1e-7,
                   hint=HINT_OBJECTIVE_GENERIC)
    if not out.requires_grad:
        fail(f"{what} is right but not differentiable with respect to params (no autograd graph).",
             "compute it from params with torch operations; no .item(), numpy or float() in between.")
    return out, p


def chinchilla_objective_example(fn: Callable) -> None:
    """Visible: two runs, one exactly on the law (residual 0) and one 0.5 above it in log space."""
    params = torch.tensor([math.log(400.0), math.log(400.0), math.log(1.7), 0.34, 0.28], dtype=torch.float64)
    law = ref.ChinchillaLaw(E=1.7, A=400.0, B=400.0, alpha=0.34, beta=0.28)
    N = torch.tensor([1e8, 1e9], dtype=torch.float64)
    D = torch.tensor([2e9, 2e10], dtype=torch.float64)
    L = torch.from_numpy(np.asarray(law(N.numpy(), D.numpy()))) * torch.tensor([1.0, math.exp(-0.5)], dtype=torch.float64)
    with worked_example("run 1 lies on the law (residual 0, Huber 0); run 2's loss is e^-0.5 times the law's, so its "
                        "residual predicted - log L is 0.5, beyond delta = 1e-3: delta (0.5 - delta/2) = "
                        "1e-3 * 0.4995 = 4.995e-4. The sum is 4.995e-4."):
        _check_objective_case(fn, params, N.log(), D.log(), L.log(), 1e-3, "worked example: two runs")
    with worked_example("the same two runs with delta = 0.1: run 2 is beyond it, 0.1 * (0.5 - 0.05) = 0.045."):
        _check_objective_case(fn, params, N.log(), D.log(), L.log(), 0.1, "worked example: two runs, delta = 0.1")
    passed("chinchilla_objective (worked example)")


def chinchilla_objective(fn: Callable) -> None:
    """Hidden: random parameters and runs against the reference value, its gradient, then a fit with the
    learner's objective on generated isoFLOP runs that must recover the generating law."""
    gen = rng()
    for i in range(3):
        n = int(gen.integers(3, 12))
        params = torch.tensor([gen.uniform(3, 8), gen.uniform(3, 8), gen.uniform(0, 1), gen.uniform(0.2, 0.5),
                               gen.uniform(0.2, 0.5)], dtype=torch.float64)
        log_N = torch.from_numpy(gen.uniform(math.log(1e6), math.log(1e10), n))
        log_D = torch.from_numpy(gen.uniform(math.log(1e8), math.log(1e12), n))
        # case 1 has losses far from the law's (residuals beyond 1), where Huber with delta = 1 is not a square
        low, high = (0.2, 20.0) if i == 1 else (1.8, 4.0)
        log_L = torch.from_numpy(gen.uniform(math.log(low), math.log(high), n))
        delta = 1e-3 if i < 2 else float(gen.uniform(0.05, 0.3))
        out, p = _check_objective_case(fn, params, log_N, log_D, log_L, delta, f"{n} random runs, delta {delta:.3g}")
        (mine,) = torch.autograd.grad(out, [p], allow_unused=True)
        q = params.clone().requires_grad_(True)
        (expected,) = torch.autograd.grad(ref.chinchilla_objective(q, log_N, log_D, log_L, delta), [q])
        expect(mine is not None and torch.allclose(mine, expected, rtol=1e-6, atol=1e-12),
               f"chinchilla_objective ({n} random runs): the value is right but its gradient with respect to params "
               f"is {None if mine is None else mine.tolist()}, expected {expected.tolist()}.",
               "compute it from params with differentiable torch operations (no .detach(), .item() or rounding).")
    law = ref.EPOCH_REFIT
    runs = ref.synthetic_chinchilla_runs(law, noise=0.005, seed=int(gen.integers(1 << 31)))
    fitted = call(ref.fit_chinchilla, runs["N"], runs["D"], runs["L"], objective=fn,
                  what="fit_chinchilla with your chinchilla_objective")
    best = ref.fit_chinchilla(runs["N"], runs["D"], runs["L"])
    expect(abs(fitted.alpha - best.alpha) < 0.01 and abs(fitted.beta - best.beta) < 0.01 and abs(fitted.E - best.E) < 0.02,
           f"fitting generated runs with your objective gives E = {fitted.E:.4g}, alpha = {fitted.alpha:.4g}, "
           f"beta = {fitted.beta:.4g}; with the reference objective the same fit gives E = {best.E:.4g}, alpha = "
           f"{best.alpha:.4g}, beta = {best.beta:.4g} (the runs were generated with E = {law.E}, alpha = {law.alpha}, "
           f"beta = {law.beta}).",
           "the value matches the reference on random inputs but the fit goes elsewhere: is the gradient right "
           "(no detach, no rounding)?")
    passed("chinchilla_objective (random cases; a fit with it recovers the generating law)")


# ---------------------------------------------------------- 8. isoflop_optimum ---

def _isoflop_variants(N, L) -> list[tuple[str, float]]:
    p = np.polyfit(N, L, 2)
    q = np.polyfit(np.log(N), L, 2)
    return [(HINT_PARABOLA_IN_N, float(-p[1] / (2 * p[0]))), (HINT_ARGMIN, float(N[int(np.argmin(L))])),
            (HINT_LOG_N, float(-q[1] / (2 * q[0])))]


def _check_isoflop_case(fn, N, L, label: str) -> None:
    what = f"isoflop_optimum ({label})"
    out = call(fn, N.copy(), L.copy(), what=what, forbid=forbidden(ref, "isoflop_optimum", "isoflop_fit"))
    if isinstance(out, torch.Tensor):
        out = out.item()
    try:
        out = float(out)
    except (TypeError, ValueError):
        fail(f"{what} returned {type(out).__name__}, expected one number (the model size N at the minimum).")
    _expect_number(out, ref.isoflop_optimum(N, L), what, _isoflop_variants(N, L), rtol=1e-6,
                   hint="fit L = p0 (log N)^2 + p1 log N + p2 (np.polyfit(np.log(N), L, 2)) and return exp(-p1 / (2 p0)).")


def isoflop_optimum_example(fn: Callable) -> None:
    """Visible: five exact points of L = 0.1 (ln N - ln 2e6)^2 + 2, whose vertex N = 2e6 lies between the runs."""
    N = np.geomspace(1e4, 1e8, 5)
    L = 0.1 * (np.log(N) - math.log(2e6)) ** 2 + 2.0
    with worked_example("L = 0.1 (ln N - ln 2e6)^2 + 2 exactly, a parabola in ln N with its vertex at ln N = ln 2e6: "
                        "the answer is N = 2e6 (2,000,000), between the runs at 1e6 and 1e7; the best run, 1e6, is "
                        "not the answer."):
        _check_isoflop_case(fn, N, L, "worked example: L = 0.1 (ln N - ln 2e6)^2 + 2")
    passed("isoflop_optimum (worked example)")


def isoflop_optimum(fn: Callable) -> None:
    """Hidden: generated isoFLOP runs of random laws, each budget's runs off-centre and noisy."""
    gen = rng()
    for _ in range(3):
        law = ref.ChinchillaLaw(E=float(gen.uniform(1.5, 2)), A=float(10 ** gen.uniform(2.3, 3)),
                                B=float(10 ** gen.uniform(2.3, 3.3)), alpha=float(gen.uniform(0.25, 0.45)),
                                beta=float(gen.uniform(0.25, 0.45)))
        C = float(10 ** gen.uniform(18, 22))
        n_opt, _ = ref.compute_optimal(C, law)
        N = np.geomspace(n_opt / 10, n_opt * 5, int(gen.integers(5, 10))) * float(10 ** gen.uniform(-0.3, 0.3))
        L = law(N, C / (6 * N)) * np.exp(0.002 * gen.standard_normal(N.size))
        _check_isoflop_case(fn, N, L, f"{N.size} runs at C = {C:.3g}")
    passed("isoflop_optimum (generated isoFLOP runs)")


# ------------------------------------------------------------- 9. live sweep ---

HINT_NOT_TRAINED = (
    "the largest loss is within half a nat of ln(vocabulary), the loss of a uniform guess: a model is untrained or "
    "barely trained. Train each one with train_gpt for the iters asked (200), and return the trained models."
)
HINT_NOT_FALLING = (
    "the loss does not fall with size: train every model on the same tokens (the same iters and batch size), "
    "with widths spanning at least a factor of 8."
)


def live_sweep(models: Sequence[Any], val_ids: torch.Tensor, *, batches: int = 8, seed: int | None = 1) -> None:
    """The sweep's models, measured here on ``batches`` held-out windows of ``val_ids`` (drawn with ``seed``; the
    hidden test draws fresh ones, ``seed=None``): at least four sizes spanning a factor of 10 in parameters,
    trained, loss falling with size, and the slope of a straight line through (log N, log loss) between 0.01 and
    0.5 (a loose test: a 2-core run is noisy)."""
    if seed is None:
        seed = int(rng().integers(1 << 31))
    what = "the live sweep"
    if models is None:
        fail(f"{what} has not run: complete run_sweep, then run the cell that calls it and this one.")
    if isinstance(models, dict) or not isinstance(models, (list, tuple)):
        fail(f"{what}: expected a list of trained models, got {type(models).__name__}.")
    if len({id(m) for m in models}) < len(models):
        fail(f"{what}: the list holds the same model object several times.",
             "build a new GPT for each width inside the loop, train it, and append it.")
    expect(len(models) >= 4, f"{what} has {len(models)} model{'s' if len(models) != 1 else ''}; expected one trained "
                             "model per width, at least 4.",
           "append every trained model to the list (not only the last one) and return the list.")
    for i, m in enumerate(models):
        if not isinstance(m, ref_gpt.GPT):
            fail(f"{what}: model {i} is a {type(m).__name__}, not the package's GPT.",
                 "build each model with GPT(sweep_config(width, vocab_size=...)).")
    try:
        N, loss = quiet(ref.sweep_losses, models, val_ids, batches=batches, seed=seed)
    except Exception as exc:  # noqa: BLE001 - anything the learner's models raise
        fail(f"{what}: evaluating the models on held-out text raised {type(exc).__name__}: {exc}")
    order = np.argsort(N)
    N, loss = N[order], loss[order]
    shown = ", ".join(f"N = {n:,.0f}: {v:.3f}" for n, v in zip(N, loss))
    expect(N[-1] >= 10 * N[0], f"{what}: the sizes span only a factor of {N[-1] / N[0]:.1f} ({shown}).",
           "use widths spanning at least a factor of 8 (the parameters grow as the square of the width).")
    vocab = models[0].config.vocab_size
    expect(loss.max() < math.log(vocab) - 0.5, f"{what}: held-out losses {shown}; ln(vocab) = {math.log(vocab):.3f}.",
           HINT_NOT_TRAINED)
    rises = np.diff(loss)
    expect(loss[-1] < loss[0] - 0.1 and np.all(rises < 0.05), f"{what}: held-out losses by size: {shown}.",
           HINT_NOT_FALLING)
    _, slope = ref.fit_loglog_line(N, loss)
    expect(0.01 <= slope <= 0.5, f"{what}: a straight line through (log N, log loss) has slope -{slope:.3f} "
                                 f"({shown}).", HINT_NOT_FALLING)
    passed(f"live sweep ({len(models)} models; loss ~ N^-{slope:.3f} on held-out text)")
