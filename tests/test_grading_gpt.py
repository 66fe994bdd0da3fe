"""Checks of notebook 07 (GPT): they pass model answers, and each listed mistake fails its exercise
with the hint that names it. The notebook end to end is in test_notebook_07.py."""
from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from transformer_course import gpt as ref_gpt
from transformer_course import sampling
from transformer_course.attention import KVCache, attention
from transformer_course.blocks import EncoderBlock, LayerNorm
from transformer_course.grading import CheckFailed
from transformer_course.grading import gpt as check

from check_tools import fails_with


# ================================================================ attention ===

def attn(q, k, v, *, tri="tril", diag=0, scale="sqrt", nan_mask=False, axis=-1):
    T, d = q.shape[-2], q.shape[-1]
    s = q @ k.transpose(-2, -1)
    s = s / math.sqrt(d) if scale == "sqrt" else (s / d if scale == "d" else s)
    ones = torch.ones(T, T, dtype=torch.bool)
    allowed = ones.tril(diag) if tri == "tril" else (ones.triu() if tri == "triu" else ones)
    if nan_mask:
        s = s + (1 - allowed.to(s.dtype)) * float("-inf")
    else:
        s = s.masked_fill(~allowed, float("-inf"))
    return torch.softmax(s, dim=axis) @ v


def test_causal_attention_model_answer_passes(capsys):
    check.causal_attention_example(attn)
    check.causal_attention(attn)
    assert "✓" in capsys.readouterr().out


@pytest.mark.parametrize("kw, hint", [
    (dict(tri="triu"), "wrong triangle"),
    (dict(diag=-1), "diagonal is excluded"),
    (dict(tri="none"), "no causal mask"),
    (dict(scale="none"), "not scaled"),
    (dict(scale="d"), "instead of sqrt(d_head)"),
    (dict(nan_mask=True), "NaN"),
    (dict(axis=-2), "wrong axis"),
])
def test_causal_attention_mistakes(kw, hint):
    fails_with(check.causal_attention, lambda q, k, v: attn(q, k, v, **kw), hint=hint)


def test_causal_attention_may_not_call_sdpa():
    message = fails_with(check.causal_attention,
                         lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
                         hint="computes the very thing")
    assert "calls torch.nn.functional.scaled_dot_product_attention" in message


def test_causal_attention_may_not_call_the_aten_operator():
    """The operator behind F.scaled_dot_product_attention, reached through torch.ops, is torch's attention too."""
    fails_with(check.causal_attention_example,
               lambda q, k, v: torch.ops.aten.scaled_dot_product_attention(q, k, v, is_causal=True),
               hint="calls torch.ops.aten.scaled_dot_product_attention, which computes the very thing")


def test_causal_attention_may_not_call_the_package():
    fails_with(check.causal_attention_example, lambda q, k, v: attention(q, k, v, is_causal=True)[0],
               hint="calls transformer_course.attention.attention")


# ==================================================================== model ===

@dataclass
class Config:
    block_size: int = 1024
    vocab_size: int = 50257
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = True


def make_gpt(forward):
    class GPT(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.config = c = config
            self.wte = nn.Embedding(c.vocab_size, c.n_embd)
            self.wpe = nn.Embedding(c.block_size, c.n_embd)
            self.drop = nn.Dropout(c.dropout)
            self.blocks = nn.ModuleList([EncoderBlock(c.n_embd, c.n_head, 4 * c.n_embd, activation="gelu_tanh",
                                                      norm_first=True, bias=c.bias) for _ in range(c.n_layer)])
            self.ln_f = LayerNorm(c.n_embd, 1e-5, bias=c.bias)
            self.lm_head = nn.Linear(c.n_embd, c.vocab_size, bias=False)
            self.lm_head.weight = self.wte.weight

    GPT.forward = forward
    return GPT


def fwd(self, idx, targets=None, kv_caches=None, *, start="past", causal=True, ln_f=True):
    B, T = idx.shape
    past = len(kv_caches[0]) if kv_caches is not None and start == "past" else 0
    x = self.drop(self.wte(idx) + self.wpe(torch.arange(past, past + T)))
    for i, block in enumerate(self.blocks):
        x = block(x, is_causal=causal, kv_cache=kv_caches[i] if kv_caches is not None else None)
    logits = self.lm_head(self.ln_f(x) if ln_f else x)
    loss = None if targets is None else F.cross_entropy(logits.reshape(B * T, -1), targets.reshape(-1), ignore_index=-1)
    return logits, loss


def test_gpt_forward_model_answer_passes(capsys):
    check.gpt_forward_example(make_gpt(fwd), Config)
    check.gpt_forward(make_gpt(fwd), Config)
    assert "✓" in capsys.readouterr().out


@pytest.mark.parametrize("kw, hint", [
    (dict(causal=False), "not causal"),
    (dict(ln_f=False), "final LayerNorm is missing"),
    (dict(start="zero"), "continue after the cached ones"),
])
def test_gpt_forward_mistakes(kw, hint):
    fails_with(check.gpt_forward, make_gpt(lambda self, idx, targets=None, kv_caches=None:
                                           fwd(self, idx, targets, kv_caches, **kw)), Config, hint=hint)


# ================================================================== loading ===

def load(model, hf, *, transpose=True, transpose_square=True):
    t = hf.transformer
    d = model.config.n_embd
    with torch.no_grad():
        model.wte.weight.copy_(t.wte.weight)
        model.wpe.weight.copy_(t.wpe.weight)
        for block, h in zip(model.blocks, t.h):
            a = block.self_attn
            for proj, w, b in zip((a.q_proj, a.k_proj, a.v_proj), h.attn.c_attn.weight.split(d, dim=1),
                                  h.attn.c_attn.bias.split(d)):
                proj.weight.copy_(w.T if transpose else w)
                proj.bias.copy_(b)
            a.out_proj.weight.copy_(h.attn.c_proj.weight.T if transpose_square else h.attn.c_proj.weight)
            a.out_proj.bias.copy_(h.attn.c_proj.bias)
            for lin, conv in ((block.ff.fc1, h.mlp.c_fc), (block.ff.fc2, h.mlp.c_proj)):
                lin.weight.copy_(conv.weight.T)
                lin.bias.copy_(conv.bias)
            for mine, theirs in ((block.norm1, h.ln_1), (block.norm2, h.ln_2)):
                mine.weight.copy_(theirs.weight)
                mine.bias.copy_(theirs.bias)
        model.ln_f.weight.copy_(t.ln_f.weight)
        model.ln_f.bias.copy_(t.ln_f.bias)
    return model


def test_load_model_answer_passes(capsys):
    check.load_gpt2_weights_example(load, make_gpt(fwd), Config)
    check.load_gpt2_weights(load, make_gpt(fwd), Config)
    assert "✓" in capsys.readouterr().out


def test_load_without_the_square_transpose_fails_with_the_conv1d_hint():
    fails_with(check.load_gpt2_weights, lambda m, hf: load(m, hf, transpose_square=False), make_gpt(fwd), Config,
               hint="Conv1D layers store their weight as (in_features, out_features)")


def test_load_messages_name_the_course_parameter_and_its_gpt2_source():
    message = fails_with(check.load_gpt2_weights_example, lambda m, hf: load(m, hf, transpose_square=False),
                         make_gpt(fwd), Config, hint="attn.c_proj into self_attn.out_proj")
    assert ("blocks.0.self_attn.out_proj.weight does not hold GPT-2's weights (worked example: 1 layer, n_embd 8): "
            "it should be hf_model.transformer.h.0.attn.c_proj.weight.T.") in message


def test_load_without_ln_f_names_the_copy_as_is():
    def no_ln_f(model, hf):
        kept = model.ln_f.weight.detach().clone(), model.ln_f.bias.detach().clone()
        load(model, hf)
        with torch.no_grad():
            model.ln_f.weight.copy_(kept[0])
            model.ln_f.bias.copy_(kept[1])
        return model

    message = fails_with(check.load_gpt2_weights_example, no_ln_f, make_gpt(fwd), Config,
                         hint="wte, wpe and ln_f have the same names in GPT-2 and copy as they are")
    assert "ln_f.weight does not hold GPT-2's weights" in message
    assert "hf_model.transformer.ln_f.weight" in message


def test_load_may_not_call_the_package_or_the_oracle():
    fails_with(check.load_gpt2_weights_example, lambda m, hf: ref_gpt.load_gpt2_weights(m, hf), make_gpt(fwd),
               Config, hint="calls transformer_course.gpt.load_gpt2_weights")
    fails_with(check.load_gpt2_weights_example, lambda m, hf: (hf(torch.zeros(1, 1, dtype=torch.long)), load(m, hf))[1],
               make_gpt(fwd), Config, hint="calls transformers.models.gpt2.modeling_gpt2.GPT2LMHeadModel")


def test_load_without_any_transpose_fails():
    with pytest.raises(CheckFailed):
        check.load_gpt2_weights(lambda m, hf: load(m, hf, transpose=False, transpose_square=False), make_gpt(fwd), Config)


# =================================================================== count ===

def count_meta(config):
    with torch.device("meta"):
        model = make_gpt(fwd)(config)
    return sum(p.numel() for p in model.parameters())


def test_count_model_answer_passes(capsys):
    check.count_parameters_example(count_meta, Config)
    check.count_parameters(count_meta, Config)
    assert "124,439,808" in capsys.readouterr().out


def test_count_mistakes():
    def twice(config):
        with torch.device("meta"):
            model = make_gpt(fwd)(config)
        return sum(t.numel() for t in model.state_dict().values())

    def materialised(config):
        return sum(p.numel() for p in make_gpt(fwd)(config).parameters())

    fails_with(check.count_parameters, twice, Config, hint="counted twice")
    fails_with(check.count_parameters, materialised, Config, hint="meta device")
    fails_with(check.count_parameters_example, lambda config: ref_gpt.gpt2_small_param_count(), Config,
               hint="calls transformer_course.gpt.gpt2_small_param_count")


# ==================================================================== loss ===

def loss_good(logits, idx):
    V = logits.shape[-1]
    return F.cross_entropy(logits[:, :-1].reshape(-1, V), idx[:, 1:].reshape(-1))


def test_loss_model_answer_passes_and_unshifted_fails():
    check.next_token_loss_example(loss_good)
    check.next_token_loss(loss_good)
    fails_with(check.next_token_loss, lambda lg, idx: F.cross_entropy(lg.reshape(-1, lg.shape[-1]), idx.reshape(-1)),
               hint="not shifted")
    fails_with(check.next_token_loss, lambda lg, idx: F.cross_entropy(lg[:, 1:].reshape(-1, lg.shape[-1]),
                                                                      idx[:, :-1].reshape(-1)), hint="wrong way")
    fails_with(check.next_token_loss_example, ref_gpt.next_token_loss, hint="calls transformer_course.gpt.next_token_loss")


# ================================================================ sampling ===

def top_k(logits, k):
    kth = torch.topk(logits, min(k, logits.shape[-1]), dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p(logits, p, crossing=True):
    s, order = torch.sort(logits, dim=-1, descending=True)
    probs = s.softmax(-1)
    remove = ((probs.cumsum(-1) - probs) >= p) if crossing else (probs.cumsum(-1) > p)
    remove[..., 0] = False
    return logits.masked_fill(torch.zeros_like(remove).scatter(-1, order, remove), float("-inf"))


def sample(logits, *, temperature=1.0, top_k=None, top_p=None, generator=None, after=False):
    if temperature == 0:
        return logits.argmax(-1)
    z = logits if after else logits / temperature
    if top_k is not None:
        z = globals()["top_k"](z, top_k)
    if top_p is not None:
        z = globals()["top_p"](z, top_p)
    probs = torch.softmax(z, -1) / (temperature if after else 1.0)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def test_sampling_model_answers_pass(capsys):
    check.top_k_filter_example(top_k)
    check.top_k_filter(top_k)
    check.top_p_filter_example(top_p)
    check.top_p_filter(top_p)
    check.sample_next_example(sample)
    check.sample_next(sample)
    assert capsys.readouterr().out.count("✓") == 6


def test_sampling_mistakes():
    fails_with(check.top_k_filter, lambda lg, k: lg.masked_fill(lg < torch.topk(lg, k).values[..., -1:], 0.0),
               hint="not 0")
    fails_with(check.top_p_filter, lambda lg, p: top_p(lg, p, crossing=False), hint="crosses p")
    fails_with(check.sample_next, lambda lg, **kw: sample(lg, after=True, **kw), hint="after the softmax")
    fails_with(check.sample_next, lambda lg, temperature=1.0, **kw: lg.argmax(-1), hint="always returns the most likely")
    fails_with(check.sample_next, lambda lg, **kw: sampling.sample_next(lg, **kw),
               hint="calls transformer_course.sampling.sample_next, which computes the very thing")
    fails_with(check.top_k_filter_example, lambda lg, k: sampling.top_k_filter(lg, k),
               hint="calls transformer_course.sampling.top_k_filter")


# ======================================== answers that build on earlier ones ===

NOTEBOOK_SAMPLE_NEXT = """
def sample_next(logits, *, temperature=1.0, top_k=None, top_p=None, generator=None):
    if temperature == 0:
        return logits.argmax(dim=-1)
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    probs = torch.softmax(logits, dim=-1) / temperature          # the temperature after the softmax
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
"""

NOTEBOOK_GENERATE = """
def generate(model, idx, max_new_tokens, *, temperature=1.0, top_k=None, top_p=None, use_cache=True,
             generator=None):
    for step in range(max_new_tokens):
        caches = [KVCache() for _ in range(model.config.n_layer)] if use_cache else None
        logits, _ = model(idx, kv_caches=caches)                     # recomputes everything
        nxt = sample_next(logits[:, -1, :], temperature=temperature, top_k=top_k, top_p=top_p, generator=generator)
        idx = torch.cat([idx, nxt[:, None].to(idx.dtype)], dim=1)
    return idx
"""


def notebook(*sources, **names):
    """The functions of ``sources`` defined as a notebook defines them: ``names`` are the notebook's globals."""
    namespace = {"torch": torch, "KVCache": KVCache, **names}
    for source in sources:
        exec(source, namespace)
    return namespace


def top_k_zero(logits, k):
    return logits.masked_fill(logits < torch.topk(logits, k).values[..., -1:], 0.0)


def test_a_wrong_sampler_built_on_a_wrong_filter_is_sent_to_the_filter_first():
    sample_next = notebook(NOTEBOOK_SAMPLE_NEXT, top_k_filter=top_k_zero, top_p_filter=top_p)["sample_next"]
    message = fails_with(check.sample_next, sample_next,
                         hint="your top_k_filter from exercise 6 fails its checks, and sample_next uses it: fix "
                              "top_k_filter first (run its test cell), then run this cell again.")
    assert "What top_k_filter's check says: top_k_filter (worked example" in message
    assert "What this check saw: sample_next (temperature 0.5)" in message


def test_a_wrong_sampler_on_right_filters_gets_its_own_hint():
    for filters in (dict(top_k_filter=top_k, top_p_filter=top_p),
                    dict(top_k_filter=sampling.top_k_filter, top_p_filter=sampling.top_p_filter)):
        message = fails_with(check.sample_next_example, notebook(NOTEBOOK_SAMPLE_NEXT, **filters)["sample_next"],
                             hint="the temperature is applied after the softmax")
        assert "fails its checks" not in message


def test_a_wrong_generate_built_on_a_wrong_sampler_is_sent_to_the_sampler_first():
    ns = notebook(NOTEBOOK_SAMPLE_NEXT, NOTEBOOK_GENERATE, top_k_filter=top_k, top_p_filter=top_p)
    message = fails_with(check.generate_example, ns["generate"],
                         hint="your sample_next from exercise 8 fails its checks, and generate uses it: fix "
                              "sample_next first (run its test cell), then run this cell again.")
    assert "What sample_next's check says: sample_next (temperature 0.5)" in message
    assert "What this check saw: generate (worked example" in message


def test_a_wrong_generate_on_a_right_sampler_gets_its_own_hint():
    ns = notebook(NOTEBOOK_GENERATE, sample_next=sample)
    message = fails_with(check.generate_example, ns["generate"], hint="recomputes everything anyway")
    assert "fails its checks" not in message


# ================================================================ generate ===

@torch.no_grad()
def gen_good(model, idx, n, *, temperature=1.0, top_k=None, top_p=None, use_cache=True, generator=None,
             recompute=False, restart=False):
    caches = [KVCache() for _ in range(model.config.n_layer)] if use_cache else None
    for step in range(n):
        if use_cache and recompute:
            logits, _ = model(idx, kv_caches=[KVCache() for _ in range(model.config.n_layer)])
        elif use_cache:
            logits, _ = model(idx if step == 0 else idx[:, -1:], kv_caches=caches)
        else:
            logits, _ = model(idx[:, -model.config.block_size:])
        nxt = sample(logits[:, -1], temperature=temperature, top_k=top_k, top_p=top_p, generator=generator)
        idx = torch.cat([idx, nxt[:, None]], dim=1)
    return idx


def test_generate_model_answer_passes(capsys):
    check.generate_example(gen_good)
    check.generate(gen_good)
    assert "✓" in capsys.readouterr().out


def test_generate_mistakes():
    fails_with(check.generate, lambda *a, **k: gen_good(*a, recompute=True, **k), hint="recomputes everything anyway")
    def first_position(model, idx, n, *, temperature=1.0, top_k=None, top_p=None, use_cache=True, generator=None):
        for _ in range(n):
            logits, _ = model(idx)
            idx = torch.cat([idx, logits[:, 0].argmax(-1, keepdim=True)], dim=1)
        return idx
    # which check catches it first depends on the random model (greedy runs can coincide): it must fail
    with pytest.raises(CheckFailed):
        check.generate(first_position)


# ============================================================ trained model ===

def test_trained_model_check_rejects_an_untrained_model_and_a_bad_corpus_name():
    from transformer_course.corpus import CharTokenizer, offline_corpus

    vocab = CharTokenizer(offline_corpus()).vocab_size
    model = make_gpt(fwd)(Config(block_size=16, vocab_size=vocab, n_layer=1, n_head=2, n_embd=16))
    fails_with(check.trained_gpt, model, "offline", hint="a model that knows only character frequencies")
    fails_with(check.trained_gpt, model, "wikipedia", hint="corpus_name should be")
    fails_with(check.trained_gpt, None, "offline", hint="training cell did not finish")


# ============================================================ the KV cache (exercise 9) ===

class LearnerCache:
    """The model answer, written as a learner would (not the package's class)."""

    def __init__(self):
        self.k = None
        self.v = None

    def __len__(self):
        return 0 if self.k is None else self.k.shape[-2]

    def update(self, k, v):
        if self.k is None:
            self.k, self.v = k, v
        else:
            self.k = torch.cat([self.k, k], dim=-2)
            self.v = torch.cat([self.v, v], dim=-2)
        return self.k, self.v

    def causal_mask(self, n_q, device=None):
        n_k = len(self)
        return torch.ones(n_q, n_k, dtype=torch.bool, device=device).tril(diagonal=n_k - n_q)


class NoOffset(LearnerCache):
    def causal_mask(self, n_q, device=None):
        return torch.ones(n_q, len(self), dtype=torch.bool, device=device).tril()


class OffByOne(LearnerCache):
    def causal_mask(self, n_q, device=None):
        n_k = len(self)
        return torch.ones(n_q, n_k, dtype=torch.bool, device=device).tril(diagonal=n_k - n_q - 1)


class Replaces(LearnerCache):
    def update(self, k, v):
        self.k, self.v = k, v
        return k, v


class WrongAxis(LearnerCache):
    def update(self, k, v):
        self.k = k if self.k is None else torch.cat([self.k, k], dim=-1)
        self.v = v if self.v is None else torch.cat([self.v, v], dim=-1)
        return self.k, self.v


class CountsCalls(LearnerCache):
    calls = 0

    def update(self, k, v):
        self.calls += 1
        return super().update(k, v)

    def __len__(self):
        return self.calls


class FloatMask(LearnerCache):
    def causal_mask(self, n_q, device=None):
        return super().causal_mask(n_q, device).float()


class SubclassesTheReference(KVCache):
    pass


def test_kv_cache_model_answer_passes(capsys):
    check.kv_cache_example(LearnerCache)
    check.kv_cache(LearnerCache)
    assert capsys.readouterr().out.count("all checks passed") == 2


@pytest.mark.parametrize("cls,hint", [
    (NoOffset, "the mask is not offset"),
    (OffByOne, "off by one"),
    (Replaces, "APPEND"),
    (WrongAxis, "wrong axis"),
    (CountsCalls, "counts calls"),
    (FloatMask, "boolean tensor"),
])
def test_kv_cache_mistakes_fail_with_their_hint(cls, hint):
    fails_with(check.kv_cache_example, cls, hint=hint)
    fails_with(check.kv_cache, cls, hint=hint)


def test_kv_cache_stub_and_the_reference_are_not_answers():
    class Stub(LearnerCache):
        def __len__(self):
            raise NotImplementedError()
    fails_with(check.kv_cache_example, Stub, hint="not implemented yet")
    fails_with(check.kv_cache_example, SubclassesTheReference, hint="computes the very thing")


def test_the_model_uses_the_cache_mask_so_a_wrong_one_changes_the_logits():
    """A cache whose mask is wrong only for chunks (n_q > 1 after a prompt) passes the unit steps that never feed
    a chunk; the run inside the GPT still catches it."""
    class ChunkBug(LearnerCache):
        def causal_mask(self, n_q, device=None):
            if n_q > 1 and n_q != len(self):
                return torch.ones(n_q, len(self), dtype=torch.bool, device=device)
            return super().causal_mask(n_q, device)
    import numpy as np
    with pytest.raises(CheckFailed, match="against recomputing the whole sequence"):
        check._check_cache_in_model(ChunkBug, np.random.default_rng(0), "a chunk of 3")


def test_generate_blames_a_broken_cache():
    from notebook_tools import solution_cells

    source = solution_cells("07_gpt")["generate"]
    namespace = notebook(source, KVCache=NoOffset, sample_next=sample)
    fails_with(check.generate_example, namespace["generate"], hint="your KVCache from exercise 9")
    namespace = notebook(source, KVCache=LearnerCache, sample_next=sample)
    check.generate_example(namespace["generate"])
