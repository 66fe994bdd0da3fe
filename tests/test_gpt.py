"""The package's GPT (transformer_course.gpt), sampling and corpora: parity with transformers'
GPT2LMHeadModel, GPT-2 small's parameter count, KV-cache decoding equal to full recomputation,
the sampling filters, and Tiny Shakespeare's cache, checksum and offline fallback."""
from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
import torch

from transformer_course import corpus, sampling
from transformer_course.attention import KVCache
from transformer_course.gpt import (GPT, GPTConfig, gpt2_small_param_count, hf_gpt2_config, load_gpt2_weights,
                                    next_token_loss)

SHARED_SHAKESPEARE = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"
TINY = dict(block_size=16, vocab_size=37, n_layer=2, n_head=4, n_embd=32)


def _oracle_and_model(std: float = 0.3, seed: int = 0, **cfg):
    from transformers import GPT2LMHeadModel

    config = GPTConfig(**{**TINY, **cfg})
    torch.manual_seed(seed)
    hf = GPT2LMHeadModel(hf_gpt2_config(config)).double().eval()
    with torch.no_grad():               # larger weights: tanh GELU and the attention scale matter at 1e-3
        for name, p in hf.named_parameters():
            if name.endswith("weight") and p.dim() >= 2:
                p.normal_(0, std)
            elif "ln" in name:
                p.normal_(1.0 if name.endswith("weight") else 0.0, 0.2)
            else:
                p.normal_(0, 0.1)
    model = load_gpt2_weights(GPT(config).double().eval(), hf)
    return hf, model, config


@pytest.mark.parametrize("T", [1, 7, 16])
def test_logits_and_loss_match_gpt2lmheadmodel(T):
    hf, model, config = _oracle_and_model()
    idx = torch.randint(config.vocab_size, (3, T))
    with torch.no_grad():
        expected = hf(idx, labels=idx)                    # transformers shifts the labels itself
        logits, _ = model(idx)
        targets = torch.full_like(idx, -1)
        targets[:, :-1] = idx[:, 1:]
        _, loss = model(idx, targets)
    torch.testing.assert_close(logits, expected.logits, atol=1e-9, rtol=1e-9)
    if T > 1:
        # transformers computes the loss in float32
        torch.testing.assert_close(loss, expected.loss.double(), atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(next_token_loss(logits, idx), loss, atol=1e-12, rtol=1e-12)


def test_the_parity_test_catches_the_listed_mistakes():
    """The oracle's set-up is sharp enough: untransposed square c_proj, exact GELU, 1/d scale all differ."""
    hf, model, config = _oracle_and_model()
    idx = torch.randint(config.vocab_size, (2, 12))
    with torch.no_grad():
        expected = hf(idx).logits
        block = model.blocks[0]
        block.self_attn.out_proj.weight.copy_(hf.transformer.h[0].attn.c_proj.weight)    # not transposed
        off = (model(idx)[0] - expected).abs().max().item()
    assert off > 1e-2
    hf2, model2, _ = _oracle_and_model()
    for block in model2.blocks:
        block.ff.activation = "gelu"                                                       # exact GELU
    with torch.no_grad():
        assert (model2(idx)[0] - hf2(idx).logits).abs().max().item() > 1e-4


def test_gpt2_small_has_124_439_808_parameters():
    from transformers import GPT2LMHeadModel

    assert gpt2_small_param_count() == 124_439_808
    with torch.device("meta"):
        hf = GPT2LMHeadModel(hf_gpt2_config(GPTConfig()))
    assert sum(p.numel() for p in hf.parameters()) == 124_439_808


def test_weights_are_tied_and_block_size_is_enforced():
    model = GPT(GPTConfig(**TINY))
    assert model.lm_head.weight is model.wte.weight
    with pytest.raises(ValueError, match="block_size"):
        model(torch.zeros(1, TINY["block_size"] + 1, dtype=torch.long))


def test_kv_cache_forward_equals_full_recompute():
    _, model, config = _oracle_and_model()
    idx = torch.randint(config.vocab_size, (2, 10))
    with torch.no_grad():
        full, _ = model(idx)
        caches = [KVCache() for _ in range(config.n_layer)]
        first, _ = model(idx[:, :6], kv_caches=caches)
        steps = [model(idx[:, t:t + 1], kv_caches=caches)[0] for t in range(6, 10)]
    torch.testing.assert_close(torch.cat([first, *steps], dim=1), full, atol=1e-10, rtol=1e-10)
    assert len(caches[0]) == 10


class _Counting(torch.nn.Module):
    """A GPT that records how many positions each forward call processes."""

    def __init__(self, model):
        super().__init__()
        self.model, self.config, self.positions = model, model.config, []

    def forward(self, idx, targets=None, *, kv_caches=None):
        self.positions.append(idx.shape[1])
        return self.model(idx, targets, kv_caches=kv_caches)


@pytest.mark.parametrize("kw", [dict(temperature=0), dict(temperature=0.8, top_k=5), dict(temperature=1.0, top_p=0.9)])
def test_kv_cache_generation_gives_the_same_tokens_and_feeds_one_token_per_step(kw):
    model = GPT(GPTConfig(**{**TINY, "block_size": 32})).eval()
    prompt = torch.randint(TINY["vocab_size"], (2, 5))
    runs = {}
    for use_cache in (False, True):
        spy = _Counting(model)
        out = sampling.generate(spy, prompt, 20, use_cache=use_cache, generator=torch.Generator().manual_seed(3), **kw)
        runs[use_cache] = (out, spy.positions)
    assert torch.equal(runs[True][0], runs[False][0])
    assert runs[True][0].shape == (2, 25)
    assert runs[True][1] == [5] + [1] * 19                     # the prompt once, then one token per step
    assert runs[False][1] == list(range(5, 25))                # recompute: the whole context every step


def test_generation_past_block_size_crops_the_context():
    model = GPT(GPTConfig(**TINY)).eval()
    prompt = torch.randint(TINY["vocab_size"], (1, 10))
    a = sampling.generate(model, prompt, 20, temperature=0, use_cache=True)
    b = sampling.generate(model, prompt, 20, temperature=0, use_cache=False)
    assert torch.equal(a, b) and a.shape == (1, 30)


def test_top_k_and_top_p_filters():
    logits = torch.log(torch.tensor([[0.5, 0.2, 0.15, 0.1, 0.05]]))
    kept = lambda x: torch.isfinite(x)[0].tolist()  # noqa: E731
    assert kept(sampling.top_k_filter(logits, 2)) == [True, True, False, False, False]
    assert kept(sampling.top_p_filter(logits, 0.5)) == [True, False, False, False, False]
    assert kept(sampling.top_p_filter(logits, 0.6)) == [True, True, False, False, False]
    assert kept(sampling.top_p_filter(logits, 0.85)) == [True, True, True, False, False]
    assert kept(sampling.top_p_filter(logits, 1.0)) == [True] * 5
    with pytest.raises(ValueError):
        sampling.apply_temperature(logits, 0)


def test_sample_next_follows_the_filtered_distribution():
    logits = torch.log(torch.tensor([0.5, 0.2, 0.15, 0.1, 0.05])).expand(20000, 5)
    gen = torch.Generator().manual_seed(0)
    draws = sampling.sample_next(logits, top_k=2, generator=gen)
    share = (draws == 0).float().mean().item()
    assert set(draws.unique().tolist()) == {0, 1}
    assert abs(share - 0.5 / 0.7) < 0.02                      # renormalised over the two kept tokens
    hot = sampling.sample_next(logits, temperature=0.25, generator=gen)
    assert (hot == 0).float().mean().item() > 0.9             # 0.5^4 / sum p^4 = 0.96
    assert torch.equal(sampling.sample_next(logits[:3], temperature=0), torch.zeros(3, dtype=torch.long))


# ---------------------------------------------------------------- corpora ---

def test_tiny_shakespeare_from_a_seeded_cache(tmp_path, monkeypatch):
    if not SHARED_SHAKESPEARE.exists():
        pytest.skip("the shared copy of Tiny Shakespeare is not on this machine")
    (tmp_path / corpus.TINY_SHAKESPEARE_FILE).write_bytes(SHARED_SHAKESPEARE.read_bytes())

    def no_network(*a, **k):
        raise AssertionError("a valid cache must not touch the network")

    monkeypatch.setattr(corpus.urllib.request, "urlopen", no_network)
    text = corpus.load_tiny_shakespeare(cache=tmp_path)
    assert len(text) == corpus.TINY_SHAKESPEARE_BYTES and text.startswith("First Citizen:")


def test_tiny_shakespeare_download_is_verified_then_cached(tmp_path, monkeypatch):
    if not SHARED_SHAKESPEARE.exists():
        pytest.skip("the shared copy of Tiny Shakespeare is not on this machine")
    data = SHARED_SHAKESPEARE.read_bytes()
    calls = []

    def fake_urlopen(url, timeout):                           # the real download code, served locally
        calls.append(url)
        return io.BytesIO(data)

    monkeypatch.setattr(corpus.urllib.request, "urlopen", fake_urlopen)
    monkeypatch.delenv("TRANSFORMER_COURSE_OFFLINE", raising=False)
    (tmp_path / corpus.TINY_SHAKESPEARE_FILE).write_bytes(data[:1000])       # a truncated earlier download
    text = corpus.load_tiny_shakespeare(cache=tmp_path)
    assert calls == [corpus.TINY_SHAKESPEARE_URL] and len(text) == corpus.TINY_SHAKESPEARE_BYTES
    assert (tmp_path / corpus.TINY_SHAKESPEARE_FILE).read_bytes() == data
    assert not list(tmp_path.glob("*.part"))


def test_a_corrupt_download_is_refused_and_the_offline_corpus_is_used(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(corpus.urllib.request, "urlopen", lambda url, timeout: io.BytesIO(b"not shakespeare"))
    monkeypatch.setenv("TRANSFORMER_COURSE_CACHE", os.fspath(tmp_path))
    monkeypatch.delenv("TRANSFORMER_COURSE_OFFLINE", raising=False)
    with pytest.raises(corpus.CorpusUnavailable, match="SHA-256"):
        corpus.load_tiny_shakespeare()
    assert not (tmp_path / corpus.TINY_SHAKESPEARE_FILE).exists()
    text, name = corpus.load_corpus()
    assert name == "offline" and len(text) >= 200_000
    assert "offline corpus" in capsys.readouterr().out


def test_offline_mode_never_downloads(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus.urllib.request, "urlopen", lambda *a, **k: pytest.fail("downloaded while offline"))
    monkeypatch.setenv("TRANSFORMER_COURSE_OFFLINE", "1")
    with pytest.raises(corpus.CorpusUnavailable, match="downloading is off"):
        corpus.load_tiny_shakespeare(cache=tmp_path)


def test_char_tokenizer_and_batches():
    text = corpus.offline_corpus()
    assert text == corpus.offline_corpus()                    # a fixed order: the same text every time
    tok = corpus.CharTokenizer(text)
    ids = torch.tensor(tok.encode(text[:5000]))
    assert tok.decode(ids) == text[:5000]
    x, y = corpus.get_batch(ids, 8, 4, generator=torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (4, 8)
    assert torch.equal(x[:, 1:], y[:, :-1])
    with pytest.raises(ValueError, match="not in this tokenizer"):
        tok.encode("\u00e9")
