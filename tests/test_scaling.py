"""The reference module of notebook 08 (scaling) against real oracles: parameter counts against transformers'
models and the package's GPT built on the meta device, FLOPs against FlopCounterMode, fits against the
constants that generated their data, the Chinchilla optimum against published figures and a numeric search.
The checks of the notebook's exercises are in test_grading_scaling.py."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from transformer_course import scaling
from transformer_course.gpt import GPT, GPTConfig


def meta_count(cls, cfg, **kw) -> int:
    """Parameters of ``cls(cfg)`` built on the meta device (shapes, no storage); a shared tensor once."""
    with torch.device("meta"):
        model = cls(cfg, **kw)
    return sum(p.numel() for p in model.parameters())


def gpt2_config(**kw):
    from transformers import GPT2Config

    if kw.get("vocab_size", 50257) <= 50256:        # GPT-2's special id 50256 must fit a small vocabulary
        kw = {"bos_token_id": 0, "eos_token_id": 0, **kw}
    return GPT2Config(**kw)


def random_gpt2_kwargs(seed: int) -> dict:
    gen = np.random.default_rng(seed)
    n_head = int(gen.integers(1, 6))
    d = n_head * int(gen.integers(1, 17))
    return dict(vocab_size=int(gen.integers(2, 700)), n_positions=int(gen.integers(1, 400)), n_embd=d,
                n_layer=int(gen.integers(1, 5)), n_head=n_head,
                n_inner=None if seed % 2 == 0 else int(gen.integers(1, 8 * d)))


def random_bert_kwargs(seed: int) -> dict:
    gen = np.random.default_rng(1000 + seed)
    heads = int(gen.integers(1, 6))
    d = heads * int(gen.integers(1, 17))
    return dict(vocab_size=int(gen.integers(2, 700)), hidden_size=d, num_hidden_layers=int(gen.integers(1, 4)),
                num_attention_heads=heads, intermediate_size=int(gen.integers(1, 8 * d)),
                max_position_embeddings=int(gen.integers(1, 400)), type_vocab_size=int(gen.integers(1, 4)),
                pad_token_id=0)


# ======================================================== parameter counts ===

def test_gpt2_small_matches_transformers():
    from transformers import GPT2LMHeadModel

    cfg = gpt2_config(**scaling.GPT2_SMALL)
    assert scaling.gpt2_param_count(cfg) == meta_count(GPT2LMHeadModel, cfg) == 124_439_808
    assert scaling.GPT2_SMALL_PARAMS == 124_439_808
    assert scaling.gpt2_param_count(scaling.GPT2_SMALL) == 124_439_808          # a plain dict works too


@pytest.mark.parametrize("seed", range(6))
def test_gpt2_random_configs_match_transformers(seed):
    from transformers import GPT2LMHeadModel

    cfg = gpt2_config(**random_gpt2_kwargs(seed))
    assert scaling.gpt2_param_count(cfg) == meta_count(GPT2LMHeadModel, cfg), cfg


@pytest.mark.parametrize("seed", range(3))
def test_gpt2_untied_adds_the_output_matrix(seed):
    from transformers import GPT2LMHeadModel

    kw = random_gpt2_kwargs(seed)
    tied = scaling.gpt2_param_count(gpt2_config(**kw))
    cfg = gpt2_config(**kw, tie_word_embeddings=False)
    untied = scaling.gpt2_param_count(cfg)
    assert untied == tied + kw["vocab_size"] * kw["n_embd"]
    assert untied == meta_count(GPT2LMHeadModel, cfg)


def test_gpt3_175b():
    assert scaling.gpt2_param_count(scaling.GPT3_175B) == scaling.GPT3_175B_PARAMS == 174_604_259_328


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [dict(block_size=37, vocab_size=101, n_layer=3, n_head=2, n_embd=24),
                                   dict(block_size=64, vocab_size=65, n_layer=2, n_head=4, n_embd=64),
                                   dict()])                                       # the defaults: GPT-2 small
def test_gpt2_count_matches_the_package_gpt(shape, bias):
    """nanoGPT's names (block_size), with and without biases (GPTConfig(bias=False): LayerNorms keep a weight)."""
    cfg = GPTConfig(**shape, bias=bias)
    with torch.device("meta"):
        model = GPT(cfg)
    assert scaling.gpt2_param_count(cfg) == model.num_params()
    if bias and not shape:
        assert model.num_params() == 124_439_808


def test_bert_base_matches_transformers():
    from transformers import BertConfig, BertModel

    cfg = BertConfig(**scaling.BERT_BASE)
    assert scaling.bert_param_count(cfg) == meta_count(BertModel, cfg) == 109_482_240 == scaling.BERT_BASE_PARAMS
    assert scaling.bert_param_count(cfg, pooler=False) == meta_count(BertModel, cfg, add_pooling_layer=False)
    assert scaling.bert_param_count(cfg) - scaling.bert_param_count(cfg, pooler=False) == 768 * 768 + 768


@pytest.mark.parametrize("seed", range(5))
def test_bert_random_configs_match_transformers(seed):
    from transformers import BertConfig, BertModel

    cfg = BertConfig(**random_bert_kwargs(seed))
    assert scaling.bert_param_count(cfg) == meta_count(BertModel, cfg), cfg
    assert scaling.bert_param_count(cfg, pooler=False) == meta_count(BertModel, cfg, add_pooling_layer=False), cfg


# =================================================================== FLOPs ===

def random_gpt_config(seed: int) -> tuple[GPTConfig, int, int]:
    gen = np.random.default_rng(2000 + seed)
    n_head = int(gen.integers(1, 4))
    d = n_head * int(gen.integers(2, 9))
    T = int(gen.integers(8 * d, 10 * d)) if seed == 0 else int(gen.integers(1, 40))   # seed 0: long context
    cfg = GPTConfig(block_size=T + int(gen.integers(0, 8)), vocab_size=int(gen.integers(2, 90)),
                    n_layer=int(gen.integers(1, 4)), n_head=n_head, n_embd=d)
    return cfg, int(gen.integers(1, 4)), T


@pytest.mark.parametrize("seed", range(5))
def test_forward_flops_match_flop_counter(seed):
    cfg, B, T = random_gpt_config(seed)
    torch.manual_seed(seed)
    model = GPT(cfg).eval()
    idx = torch.randint(0, cfg.vocab_size, (B, T))
    with torch.no_grad():
        counted = scaling.count_flops(lambda: model(idx))
    assert scaling.forward_flops_per_token(cfg, T) * B * T == counted, (cfg, B, T)


@pytest.mark.parametrize("seed", range(3))
def test_training_costs_three_forward_passes(seed):
    cfg, B, T = random_gpt_config(seed)
    torch.manual_seed(seed)
    model = GPT(cfg)
    idx = torch.randint(0, cfg.vocab_size, (B, T))
    forward = scaling.count_flops(lambda: model(idx, idx))
    both = scaling.count_flops(lambda: model(idx, idx)[1].backward())
    assert forward == scaling.forward_flops_per_token(cfg, T) * B * T
    assert both == 3 * forward


def test_matmul_weights_leave_out_embeddings_and_vectors():
    d, L, V = 768, 12, 50257
    assert scaling.matmul_weights(scaling.GPT2_SMALL) == L * 12 * d * d + V * d
    assert scaling.forward_flops_per_token(scaling.GPT2_SMALL, 1024) == 2 * (L * 12 * d * d + V * d) + 4 * L * 1024 * d


def test_training_flops_of_gpt3():
    assert scaling.training_flops(scaling.GPT3_175B_PARAMS, 300e9) == pytest.approx(3.14e23, rel=2e-3)
    assert scaling.training_flops(1e6, 2e7) == 1.2e14


# ============================================================== power laws ===

def test_synthetic_sweep_is_deterministic_per_seed():
    N1, L1, truth = scaling.synthetic_sweep(seed=3)
    N2, L2, _ = scaling.synthetic_sweep(seed=3)
    _, L3, _ = scaling.synthetic_sweep(seed=4)
    assert np.array_equal(N1, N2) and np.array_equal(L1, L2)
    assert not np.array_equal(L1, L3)
    assert truth == scaling.SWEEP_TRUTH and N1.size == 12
    assert np.allclose(N1, np.geomspace(1e6, 1e10, 12))


@pytest.mark.parametrize("truth", [scaling.SWEEP_TRUTH, scaling.PowerLaw(a=200.0, alpha=0.3, c=2.0),
                                   scaling.PowerLaw(a=50.0, alpha=0.5, c=0.5)])
def test_fit_power_law_recovers_exact_constants(truth):
    N, L, _ = scaling.synthetic_sweep(10, truth=truth, noise=0.0, n_min=1e4, n_max=1e10)
    law = scaling.fit_power_law(N, L)
    assert law.a == pytest.approx(truth.a, rel=1e-6)
    assert law.alpha == pytest.approx(truth.alpha, abs=1e-6)
    assert law.c == pytest.approx(truth.c, abs=1e-6)


@pytest.mark.parametrize("seed", range(5))
def test_fit_power_law_on_noisy_sweeps_lands_near_the_truth(seed):
    N, L, truth = scaling.synthetic_sweep(14, noise=0.01, seed=seed)
    law = scaling.fit_power_law(N, L)
    assert abs(law.alpha - truth.alpha) < 0.03 and abs(law.c - truth.c) < 0.1, law
    # it is the least-squares fit in log space: the truth itself does no better
    assert scaling.power_law_objective(law, N, L) <= scaling.power_law_objective(truth, N, L) + 1e-12


def test_a_line_in_log_log_underestimates_alpha():
    for seed in range(3):
        N, L, truth = scaling.synthetic_sweep(noise=0.01, seed=seed)
        _, alpha = scaling.fit_loglog_line(N, L)
        assert 0 < alpha < truth.alpha / 2


# ============================================================== Chinchilla ===

def test_compute_optimal_published_numbers():
    n, _ = scaling.compute_optimal(2.21e19, scaling.CHINCHILLA_ROUNDED)
    assert n == pytest.approx(326e6, rel=0.01)
    assert scaling.compute_optimal(2.21e19, scaling.CHINCHILLA_UNROUNDED)[0] == pytest.approx(389e6, rel=0.01)
    assert scaling.compute_optimal(2.21e19, scaling.EPOCH_REFIT)[0] == pytest.approx(394e6, rel=0.01)
    n, d = scaling.compute_optimal(5.76e23, scaling.EPOCH_REFIT)
    assert n == pytest.approx(72e9, rel=0.01) and d == pytest.approx(1.33e12, rel=0.01)
    n, d = scaling.compute_optimal(5.76e23, scaling.CHINCHILLA_ROUNDED)
    assert n == pytest.approx(32e9, rel=0.02) and d == pytest.approx(3.0e12, rel=0.02)
    assert scaling.CHINCHILLA_ROUNDED.optimum(5.76e23) == (n, d)


@pytest.mark.parametrize("law", list(scaling.LAWS.values()), ids=list(scaling.LAWS))
def test_compute_optimal_spends_the_budget(law):
    C = np.geomspace(1e15, 1e26, 12)
    N, D = scaling.compute_optimal(C, law)
    assert N.shape == D.shape == C.shape
    assert np.allclose(6 * N * D, C, rtol=1e-12, atol=0)
    for c, n, d in zip(C, N, D):
        assert scaling.compute_optimal(float(c), law) == pytest.approx((n, d), rel=1e-12)


def test_tokens_per_parameter_change_with_the_budget():
    N, D = scaling.compute_optimal(np.array([1e18, 1e21, 1e24]), scaling.CHINCHILLA_ROUNDED)
    ratio = D / N
    assert np.all(np.diff(ratio) > 0) and ratio[-1] > 2 * ratio[0]


@pytest.mark.parametrize("law", list(scaling.LAWS.values()), ids=list(scaling.LAWS))
@pytest.mark.parametrize("C", [2.21e19, 5.76e23])
def test_compute_optimal_agrees_with_a_numeric_search(law, C):
    n_opt, _ = scaling.compute_optimal(C, law)
    N = np.geomspace(n_opt / 100, n_opt * 100, 400_001)
    best = N[np.argmin(law(N, C / (6 * N)))]
    assert best == pytest.approx(n_opt, rel=1e-3)


def test_fit_chinchilla_recovers_the_exponents():
    truth = scaling.EPOCH_REFIT
    runs = scaling.synthetic_chinchilla_runs(truth, noise=0.005)
    law = scaling.fit_chinchilla(runs["N"], runs["D"], runs["L"])
    assert abs(law.alpha - truth.alpha) < 0.03 and abs(law.beta - truth.beta) < 0.03, law
    assert abs(law.E - truth.E) < 0.1, law


def test_isoflop_fit_exponent():
    truth = scaling.EPOCH_REFIT
    runs = scaling.synthetic_chinchilla_runs(truth, noise=0.005)
    budgets, optima, (k, a) = scaling.isoflop_fit(runs)
    assert list(budgets) == [1e18, 1e19, 1e20, 1e21] and optima.shape == (4,)
    assert abs(a - truth.beta / (truth.alpha + truth.beta)) < 0.03


def test_isoflop_optimum_of_an_exact_parabola():
    N = np.geomspace(1e4, 1e8, 7)
    L = 0.1 * (np.log(N) - math.log(3e5)) ** 2 + 2.0
    assert scaling.isoflop_optimum(N, L) == pytest.approx(3e5, rel=1e-9)


def test_chinchilla_objective_is_huber_on_log_loss():
    law = scaling.EPOCH_REFIT
    params = torch.tensor([math.log(law.A), math.log(law.B), math.log(law.E), law.alpha, law.beta], dtype=torch.float64)
    log_N = torch.tensor([18.0, 20.0, 22.0], dtype=torch.float64)
    log_D = torch.tensor([21.0, 23.0, 25.0], dtype=torch.float64)
    exact = torch.from_numpy(np.log(law(log_N.exp().numpy(), log_D.exp().numpy())))
    assert float(scaling.chinchilla_objective(params, log_N, log_D, exact)) == pytest.approx(0, abs=1e-20)
    shifted = exact - torch.tensor([0.0, 0.5, 1e-4], dtype=torch.float64)
    expected = 1e-3 * (0.5 - 0.5e-3) + 0.5 * 1e-8
    assert float(scaling.chinchilla_objective(params, log_N, log_D, shifted)) == pytest.approx(expected, rel=1e-6)


# =============================================================== bad input ===

@pytest.mark.parametrize("fn, config, field", [
    (scaling.gpt2_param_count, {k: v for k, v in scaling.GPT2_SMALL.items() if k != "n_layer"}, "n_layer"),
    (scaling.gpt2_param_count, {k: v for k, v in scaling.GPT2_SMALL.items() if k != "vocab_size"}, "vocab_size"),
    (scaling.gpt2_param_count, {k: v for k, v in scaling.GPT2_SMALL.items() if k != "n_positions"}, "n_positions"),
    (scaling.bert_param_count, {k: v for k, v in scaling.BERT_BASE.items() if k != "type_vocab_size"},
     "type_vocab_size"),
    (scaling.bert_param_count, {k: v for k, v in scaling.BERT_BASE.items() if k != "intermediate_size"},
     "intermediate_size"),
])
def test_a_missing_field_is_named(fn, config, field):
    with pytest.raises(ValueError, match=field):
        fn(config)


def test_forward_flops_missing_field_is_named():
    with pytest.raises(ValueError, match="n_layer"):
        scaling.forward_flops_per_token({k: v for k, v in scaling.GPT2_SMALL.items() if k != "n_layer"}, 8)


@pytest.mark.parametrize("C", [0.0, -1e20, np.array([1e20, 0.0]), float("inf")])
def test_compute_optimal_needs_a_positive_budget(C):
    with pytest.raises(ValueError, match="budget"):
        scaling.compute_optimal(C, scaling.CHINCHILLA_ROUNDED)


def test_too_few_points():
    with pytest.raises(ValueError, match="2 points"):
        scaling.fit_power_law([1e6, 1e7], [3.0, 2.5])
    with pytest.raises(ValueError, match="n_points"):
        scaling.synthetic_sweep(n_points=2)
    with pytest.raises(ValueError):
        scaling.training_flops(0, 1e9)


# =================================================== attention's n^2 cost ===

def test_measure_attention_time_and_memory():
    out = scaling.measure_attention([64, 128, 256], progress=False, repeats=2)
    assert out["T"] == [64, 128, 256]
    for key in ("naive_s", "sdpa_s", "naive_bytes", "sdpa_bytes"):
        assert len(out[key]) == 3 and all(v > 0 for v in out[key]), (key, out[key])
    naive, sdpa = out["naive_bytes"], out["sdpa_bytes"]
    assert naive[2] / naive[1] > 3, naive                   # the (T, T) score matrix: quadratic
    assert sdpa[2] / sdpa[1] < 2.5, sdpa                    # fused: about the output, linear
    assert naive[2] > sdpa[2]


def test_peak_memory_sees_an_allocation():
    assert scaling.peak_memory(lambda: torch.zeros(1000, 1000)) >= 4e6
    assert scaling.peak_memory(lambda: None) == 0


def test_naive_attention_matches_sdpa():
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 10, 8, generator=gen) for _ in range(3))
    for causal in (False, True):
        expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
        assert torch.allclose(scaling.naive_attention(q, k, v, causal), expected, atol=1e-5)


# ============================================================= live sweep ===

def test_train_sweep_and_losses():
    from transformer_course.corpus import CharTokenizer, load_corpus, train_val_split

    text, _ = load_corpus("offline")
    tok = CharTokenizer(text)
    train_ids, val_ids = train_val_split(torch.tensor(tok.encode(text)))
    models = scaling.train_sweep([8, 32], train_ids, val_ids, vocab_size=tok.vocab_size, iters=30, progress=False)
    assert len(models) == 2 and all(isinstance(m, GPT) and not m.training for m in models)
    assert [m.config.n_embd for m in models] == [8, 32] and models[1].config.n_head == 2
    N, loss = scaling.sweep_losses(models, val_ids, batches=4)
    assert N.shape == loss.shape == (2,)
    assert N[0] < N[1] and np.all(np.isfinite(loss)) and np.all(loss < math.log(tok.vocab_size))
    assert N[0] == models[0].num_params(non_embedding=True)
