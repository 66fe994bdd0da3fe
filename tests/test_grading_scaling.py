"""Checks of notebook 08 (scaling): they pass model answers, reject untouched stubs, and each listed mistake
fails its exercise with the hint that names it. The reference module itself is tested in test_scaling.py."""
from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch

from transformer_course import scaling
from transformer_course.gpt import GPT
from transformer_course.grading import CheckFailed
from transformer_course.grading import scaling as check

from check_tools import fails_with, seed_check_module

#: The hidden checks draw their cases from ``check.rng()``, unseeded in the notebook; here they are seeded so that a
#: failure replays (SCALING_CHECK_SEED=n replays another draw). Tests that depend on the draw run over several seeds.
SEED = int(os.environ.get("SCALING_CHECK_SEED", "0"))


def seed_checks(monkeypatch, seed: int) -> None:
    seed_check_module(monkeypatch, check, seed)


@pytest.fixture(autouse=True)
def seeded(monkeypatch):
    seed_checks(monkeypatch, SEED)


# ============================================================ model answers ===
# What a learner writes in the notebook (no package helpers).

def gpt2_param_count(config):
    V, P, d, L = config.vocab_size, config.n_positions, config.n_embd, config.n_layer
    f = config.n_inner if config.n_inner is not None else 4 * d
    block = 2 * d + (4 * d * d + 4 * d) + 2 * d + (2 * d * f + f + d)
    return V * d + P * d + L * block + 2 * d


def bert_param_count(config):
    V, d, L, f = config.vocab_size, config.hidden_size, config.num_hidden_layers, config.intermediate_size
    P, S = config.max_position_embeddings, config.type_vocab_size
    emb = (V + P + S) * d + 2 * d
    layer = (4 * d * d + 4 * d) + 2 * d + (2 * d * f + f + d) + 2 * d
    return emb + L * layer + d * d + d


def forward_flops_per_token(config, T):
    d, L, V = config.n_embd, config.n_layer, config.vocab_size
    return 2 * (L * 12 * d * d + V * d) + 4 * L * T * d


def training_flops(n_params, n_tokens):
    return 6 * n_params * n_tokens


def fit_power_law(N, L):
    from scipy.optimize import least_squares
    N, L = np.asarray(N, float), np.asarray(L, float)

    def line(c):
        slope, icpt = np.polyfit(np.log(N), np.log(L - c), 1)
        return icpt, -slope

    def sse(c):
        la, al = line(c)
        return np.sum((np.log(L) - np.log(np.exp(la) * N ** -al + c)) ** 2)

    cs = np.linspace(0, L.min() * (1 - 1e-6), 400)
    c0 = cs[np.argmin([sse(c) for c in cs])]
    la, al = line(c0)
    res = least_squares(lambda x: np.log(L) - np.log(np.exp(x[0]) * N ** -x[1] + x[2]), [la, al, c0],
                        bounds=([-np.inf, -np.inf, 0], [np.inf, np.inf, L.min()]), xtol=1e-14, ftol=1e-14, gtol=1e-14)
    return float(np.exp(res.x[0])), float(res.x[1]), float(res.x[2])


def compute_optimal(C, law):
    s = law.alpha + law.beta
    G = (law.alpha * law.A / (law.beta * law.B)) ** (1 / s)
    return G * (C / 6) ** (law.beta / s), (C / 6) ** (law.alpha / s) / G


def chinchilla_objective(params, log_N, log_D, log_L, delta=1e-3):
    a, b, e, alpha, beta = params
    pred = torch.logsumexp(torch.stack([a - alpha * log_N, b - beta * log_D, e.expand_as(log_N)]), dim=0)
    r = pred - log_L
    return torch.where(r.abs() <= delta, 0.5 * r ** 2, delta * (r.abs() - 0.5 * delta)).sum()


def isoflop_optimum(N, L):
    p0, p1, p2 = np.polyfit(np.log(N), L, 2)
    return float(np.exp(-p1 / (2 * p0)))


ANSWERS = {
    "gpt2_param_count": gpt2_param_count,
    "bert_param_count": bert_param_count,
    "forward_flops": forward_flops_per_token,
    "training_flops": training_flops,
    "fit_power_law": fit_power_law,
    "compute_optimal": compute_optimal,
    "chinchilla_objective": chinchilla_objective,
    "isoflop_optimum": isoflop_optimum,
}


@pytest.mark.parametrize("exercise", list(ANSWERS))
def test_model_answer_passes(exercise, capsys):
    getattr(check, f"{exercise}_example")(ANSWERS[exercise])
    getattr(check, exercise)(ANSWERS[exercise])
    out = capsys.readouterr().out
    assert out.count("✓") == 2, out


@pytest.mark.parametrize("exercise", list(ANSWERS))
def test_untouched_stub_is_not_implemented(exercise):
    def stub(*args, **kwargs):
        raise NotImplementedError()

    fails_with(getattr(check, f"{exercise}_example"), stub, hint="not implemented")
    fails_with(getattr(check, exercise), stub, hint="not implemented")


def test_every_exercise_has_both_checks():
    names = set(check.__all__)
    for exercise in ANSWERS:
        assert {exercise, f"{exercise}_example"} <= names
    assert "live_sweep" in names


# ============================================================= GPT-2 counts ===

def _gpt2(config, *, tied_twice=False, positions=True, biases=True, norms=True, attn_mats=4, n_inner=True):
    V, P, d, L = config.vocab_size, config.n_positions, config.n_embd, config.n_layer
    f = config.n_inner if (n_inner and config.n_inner is not None) else 4 * d
    block = attn_mats * d * d + 2 * d * f
    if biases:
        block += attn_mats * d + f + d
    if norms:
        block += 4 * d
    total = V * d + L * block + (2 * d if norms else 0)
    if positions:
        total += P * d
    if tied_twice:
        total += V * d
    return total


@pytest.mark.parametrize("kw, hint", [
    (dict(tied_twice=True), check.HINT_TIED_TWICE),
    (dict(positions=False), check.HINT_NO_POSITIONS),
    (dict(biases=False), check.HINT_NO_BIAS),
    (dict(norms=False), check.HINT_NO_LN),
    (dict(biases=False, norms=False), check.HINT_NO_BIAS_LN),
    (dict(attn_mats=3), check.HINT_3D2),
], ids=["tied-twice", "no-positions", "no-biases", "no-layernorms", "no-vectors", "3d^2"])
def test_gpt2_mistakes(kw, hint):
    mistake = lambda config: _gpt2(config, **kw)                                    # noqa: E731
    fails_with(check.gpt2_param_count_example, mistake, hint=hint)
    fails_with(check.gpt2_param_count, mistake, hint=hint)


def test_gpt2_mistake_helper_is_right_without_mistakes():
    assert _gpt2(check._gpt2_config(**scaling.GPT2_SMALL)) == scaling.GPT2_SMALL_PARAMS


def test_gpt2_n_inner_ignored():
    # GPT-2 small and the worked example leave n_inner at None: the hidden check's configs set it
    fails_with(check.gpt2_param_count, lambda config: _gpt2(config, n_inner=False), hint=check.HINT_N_INNER)


def test_gpt2_may_not_build_the_model():
    def build(config):
        from transformers import GPT2LMHeadModel

        with torch.device("meta"):
            model = GPT2LMHeadModel(config)
        return sum(p.numel() for p in model.parameters())

    fails_with(check.gpt2_param_count_example, build, hint="calls torch.nn.Module")
    fails_with(check.gpt2_param_count, build, hint="calls torch.nn.Module")


def test_gpt2_may_not_call_the_package():
    fails_with(check.gpt2_param_count_example, scaling.gpt2_param_count,
               hint="calls transformer_course.scaling.gpt2_param_count")
    fails_with(check.gpt2_param_count, lambda config: scaling.gpt2_param_count(config),
               hint="calls transformer_course.scaling.gpt2_param_count")


# ============================================================== BERT counts ===

def _bert(config, *, pooler=True, segments=True, emb_ln=True, attn_mats=4):
    V, d, L, f = config.vocab_size, config.hidden_size, config.num_hidden_layers, config.intermediate_size
    P, S = config.max_position_embeddings, config.type_vocab_size
    emb = (V + P + (S if segments else 0)) * d + (2 * d if emb_ln else 0)
    layer = (attn_mats * d * d + attn_mats * d) + 2 * d + (2 * d * f + f + d) + 2 * d
    return emb + L * layer + (d * d + d if pooler else 0)


@pytest.mark.parametrize("kw, hint", [
    (dict(pooler=False), check.HINT_NO_POOLER),
    (dict(segments=False), check.HINT_NO_SEGMENTS),
    (dict(emb_ln=False), check.HINT_NO_EMB_LN),
    (dict(attn_mats=3), check.HINT_3D2),
], ids=["no-pooler", "no-segments", "no-embedding-layernorm", "3d^2"])
def test_bert_mistakes(kw, hint):
    assert _bert(check._bert_config(**scaling.BERT_BASE)) == scaling.BERT_BASE_PARAMS
    mistake = lambda config: _bert(config, **kw)                                    # noqa: E731
    fails_with(check.bert_param_count_example, mistake, hint=hint)
    fails_with(check.bert_param_count, mistake, hint=hint)


def test_bert_may_not_build_the_model():
    def build(config):
        from transformers import BertModel

        with torch.device("meta"):
            model = BertModel(config)
        return sum(p.numel() for p in model.parameters())

    fails_with(check.bert_param_count, build, hint="calls torch.nn.Module")


# ============================================================ forward FLOPs ===

def _flops(config, T, *, attention=1.0, head=True, embeddings=False, per_weight=2):
    d, L, V = config.n_embd, config.n_layer, config.vocab_size
    weights = L * 12 * d * d + (V * d if head else 0)
    if embeddings:
        weights += V * d + config.block_size * d
    return per_weight * weights + int(attention * 4 * L * T * d)


@pytest.mark.parametrize("kw, hint", [
    (dict(attention=0.0), check.HINT_NO_ATTENTION),
    (dict(attention=0.5), check.HINT_HALF_ATTENTION),
    (dict(head=False), check.HINT_NO_HEAD),
    (dict(embeddings=True), check.HINT_EMBEDDINGS),
    (dict(per_weight=6), check.HINT_6_PER_WEIGHT),
], ids=["no-attention", "half-attention", "no-lm-head", "embeddings-counted", "6-per-weight"])
def test_forward_flops_mistakes(kw, hint):
    mistake = lambda config, T: _flops(config, T, **kw)                             # noqa: E731
    fails_with(check.forward_flops_example, mistake, hint=hint)
    fails_with(check.forward_flops, mistake, hint=hint)


def test_forward_flops_no_head_when_it_equals_attention(monkeypatch):
    seed_checks(monkeypatch, 8)
    fails_with(check.forward_flops, lambda config, T: _flops(config, T, head=False), hint=check.HINT_NO_HEAD)


def test_forward_flops_attention_forgotten_fails_at_long_context():
    """An answer that drops the attention term only where it dominates (T > 6 d) still fails the hidden check:
    one of its cases has a context several times the width."""
    def mistake(config, T):
        return _flops(config, T, attention=0.0 if T > 6 * config.n_embd else 1.0)

    check.forward_flops_example(mistake)                      # T = 8 < 6 d = 24 there
    message = fails_with(check.forward_flops, mistake, hint=check.HINT_NO_ATTENTION)
    assert "measured by FlopCounterMode" in message


def test_forward_flops_may_not_build_the_model():
    def build(config, T):
        model = GPT(config)
        return scaling.count_flops(lambda: model(torch.zeros(1, T, dtype=torch.long))) / T

    fails_with(check.forward_flops, build, hint="calls torch.nn.Module")


# =========================================================== training FLOPs ===

def test_training_flops_2nd():
    fails_with(check.training_flops_example, lambda N, D: 2 * N * D, hint=check.HINT_2ND)
    fails_with(check.training_flops, lambda N, D: 2 * N * D, hint=check.HINT_2ND)


# ============================================================ fit_power_law ===

def linear_space_fit(N, L):
    """scipy's curve_fit on L itself, started at the log-space answer."""
    from scipy.optimize import curve_fit

    a, alpha, c = fit_power_law(N, L)
    (la, alpha, c), _ = curve_fit(lambda n, la, al, c: np.exp(la) * n ** -al + c, N, L, p0=[math.log(a), alpha, c],
                                  maxfev=20000)
    return float(np.exp(la)), float(alpha), float(c)


def linear_space_fit_p0(N, L):
    """scipy's curve_fit on L itself from a sensible guess (alpha 0.3, c half the smallest loss)."""
    from scipy.optimize import curve_fit

    N, L = np.asarray(N, float), np.asarray(L, float)
    c0 = L.min() / 2
    la0 = math.log(L.max() - c0) + 0.3 * math.log(N.min())
    (la, alpha, c), _ = curve_fit(lambda n, la, al, c: np.exp(la) * n ** -al + c, N, L, p0=[la0, 0.3, c0],
                                  maxfev=20000)
    return float(np.exp(la)), float(alpha), float(c)


def no_c_fit(N, L):
    slope, icpt = np.polyfit(np.log(N), np.log(L), 1)
    return float(np.exp(icpt)), float(-slope), 0.0


def coarse_fit(N, L):
    """The best c on a 10-point grid, then the line through (log N, log(L - c)); no polishing."""
    N, L = np.asarray(N, float), np.asarray(L, float)
    best = None
    for c in np.linspace(0, L.min() * 0.999, 10):
        slope, icpt = np.polyfit(np.log(N), np.log(L - c), 1)
        sse = np.sum((np.log(L) - np.log(np.exp(icpt) * N ** slope + c)) ** 2)
        if best is None or sse < best[0]:
            best = (sse, float(np.exp(icpt)), float(-slope), float(c))
    return best[1:]


def test_fit_power_law_linear_space():
    fails_with(check.fit_power_law, linear_space_fit, hint=check.HINT_LINEAR_SPACE)


def test_fit_power_law_linear_space_every_draw(monkeypatch):
    for seed in range(13):
        seed_checks(monkeypatch, seed)
        fails_with(check.fit_power_law, linear_space_fit, hint=check.HINT_LINEAR_SPACE)


def test_fit_power_law_model_answer_passes_every_draw(monkeypatch):
    failed = []
    for seed in range(13):
        seed_checks(monkeypatch, seed)
        try:
            check.fit_power_law(fit_power_law)
        except CheckFailed as exc:
            failed.append((seed, str(exc)))
    assert not failed, failed


def test_fit_power_law_linear_space_from_a_guess():
    with pytest.raises(CheckFailed):
        check.fit_power_law(linear_space_fit_p0)


def test_fit_power_law_no_c():
    fails_with(check.fit_power_law_example, no_c_fit, hint=check.HINT_NO_C)
    fails_with(check.fit_power_law, no_c_fit, hint=check.HINT_NO_C)


def test_fit_power_law_coarse_grid():
    with pytest.raises(CheckFailed):
        check.fit_power_law(coarse_fit)


def test_fit_power_law_may_not_call_the_package():
    fails_with(check.fit_power_law, scaling.fit_power_law, hint="calls transformer_course.scaling.fit_power_law")


# ========================================================== compute_optimal ===

def _optimal(C, law, *, budget=6, swap=False, invert_g=False):
    a, b = (law.beta, law.alpha) if swap else (law.alpha, law.beta)
    s = a + b
    G = (law.alpha * law.A / (law.beta * law.B)) ** (1 / s)
    if invert_g:
        G = 1 / G
    x = C / budget
    return G * x ** (b / s), x ** (a / s) / G


def twenty_tokens(C, law):
    N = math.sqrt(C / 120)
    return N, 20 * N


@pytest.mark.parametrize("mistake, hint", [
    (lambda C, law: _optimal(C, law, budget=1), check.HINT_C_OVER_6),
    (lambda C, law: _optimal(C, law, budget=2), check.HINT_C_OVER_2),
    (lambda C, law: _optimal(C, law, swap=True), check.HINT_SWAPPED_EXP),
    (lambda C, law: _optimal(C, law, invert_g=True), check.HINT_G_INVERTED),
    (twenty_tokens, check.HINT_20_TOKENS),
], ids=["C", "C/2", "swapped-exponents", "G-inverted", "20-tokens"])
def test_compute_optimal_mistakes(mistake, hint):
    fails_with(check.compute_optimal, mistake, hint=hint)


def test_compute_optimal_example_catches_the_budget():
    fails_with(check.compute_optimal_example, lambda C, law: _optimal(C, law, budget=1), hint=check.HINT_C_OVER_6)
    fails_with(check.compute_optimal_example, twenty_tokens, hint=check.HINT_20_TOKENS)


# ===================================================== chinchilla_objective ===

def _objective(params, log_N, log_D, log_L, delta=1e-3, *, loss="huber", space="log", reduce="sum", fixed_delta=None):
    a, b, e, alpha, beta = params
    pred = torch.logsumexp(torch.stack([a - alpha * log_N, b - beta * log_D, e.expand_as(log_N)]), dim=0)
    r = pred - log_L if space == "log" else pred.exp() - log_L.exp()
    delta = delta if fixed_delta is None else fixed_delta
    terms = 0.5 * r ** 2 if loss == "squared" else torch.where(r.abs() <= delta, 0.5 * r ** 2,
                                                               delta * (r.abs() - 0.5 * delta))
    return terms.sum() if reduce == "sum" else terms.mean()


@pytest.mark.parametrize("kw, hint", [
    (dict(loss="squared"), check.HINT_SQUARED),
    (dict(space="linear"), check.HINT_NOT_LOG),
    (dict(reduce="mean"), check.HINT_MEAN),
], ids=["squared", "huber-on-L", "mean"])
def test_chinchilla_objective_mistakes(kw, hint):
    mistake = lambda params, log_N, log_D, log_L, delta=1e-3: _objective(params, log_N, log_D, log_L, delta, **kw)  # noqa: E731,E501
    fails_with(check.chinchilla_objective_example, mistake, hint=hint)
    fails_with(check.chinchilla_objective, mistake, hint=hint)


def delta_ignored(params, log_N, log_D, log_L, delta=1e-3):
    return _objective(params, log_N, log_D, log_L, delta, fixed_delta=1.0)


def test_chinchilla_objective_delta_ignored():
    fails_with(check.chinchilla_objective, delta_ignored, hint=check.HINT_DELTA)     # seed 0: a residual beyond 1


@pytest.mark.parametrize("seed", [None, 3, 4], ids=["example", "seed3", "seed4"])
def test_chinchilla_objective_delta_ignored_named(seed, monkeypatch):
    if seed is None:
        fails_with(check.chinchilla_objective_example, delta_ignored, hint=check.HINT_DELTA)
    else:
        seed_checks(monkeypatch, seed)
        fails_with(check.chinchilla_objective, delta_ignored, hint=check.HINT_DELTA)


def test_chinchilla_objective_not_differentiable():
    def mistake(params, log_N, log_D, log_L, delta=1e-3):
        return torch.tensor(float(chinchilla_objective(params, log_N, log_D, log_L, delta)))

    fails_with(check.chinchilla_objective_example, mistake, hint="not differentiable")
    fails_with(check.chinchilla_objective, mistake, hint="not differentiable")


def test_chinchilla_objective_may_not_call_huber():
    def mistake(params, log_N, log_D, log_L, delta=1e-3):
        a, b, e, alpha, beta = params
        pred = torch.logsumexp(torch.stack([a - alpha * log_N, b - beta * log_D, e.expand_as(log_N)]), dim=0)
        return scaling.huber(pred - log_L, delta).sum()

    fails_with(check.chinchilla_objective, mistake, hint="calls transformer_course.scaling.huber")


# ========================================================== isoflop_optimum ===

def parabola_in_n(N, L):
    p = np.polyfit(N, L, 2)
    return float(-p[1] / (2 * p[0]))


def argmin_of_runs(N, L):
    return float(N[int(np.argmin(L))])


def returns_log_n(N, L):
    p0, p1, _ = np.polyfit(np.log(N), L, 2)
    return float(-p1 / (2 * p0))


@pytest.mark.parametrize("mistake, hint", [
    (parabola_in_n, check.HINT_PARABOLA_IN_N),
    (argmin_of_runs, check.HINT_ARGMIN),
    (returns_log_n, check.HINT_LOG_N),
], ids=["parabola-in-N", "argmin", "log-N"])
def test_isoflop_optimum_mistakes(mistake, hint):
    fails_with(check.isoflop_optimum, mistake, hint=hint)


def test_isoflop_optimum_example_catches_log_n():
    fails_with(check.isoflop_optimum_example, returns_log_n, hint=check.HINT_LOG_N)


# =============================================================== live sweep ===

@pytest.fixture(scope="module")
def sweep_data():
    from transformer_course.corpus import CharTokenizer, load_corpus, train_val_split

    text, _ = load_corpus("offline")
    tok = CharTokenizer(text)
    train_ids, val_ids = train_val_split(torch.tensor(tok.encode(text)))
    return train_ids, val_ids, tok.vocab_size


@pytest.fixture(scope="module")
def trained_sweep(sweep_data):
    train_ids, val_ids, vocab = sweep_data
    torch.set_num_threads(1)
    return scaling.train_sweep([8, 16, 32, 64], train_ids, val_ids, vocab_size=vocab, iters=150, progress=False)


@pytest.mark.slow
def test_live_sweep_passes(trained_sweep, sweep_data, capsys):
    check.live_sweep(trained_sweep, sweep_data[1])
    check.live_sweep(trained_sweep, sweep_data[1], seed=None)          # the hidden test: fresh held-out windows
    assert capsys.readouterr().out.count("✓") == 2


@pytest.mark.slow
def test_live_sweep_needs_four_models(trained_sweep, sweep_data):
    fails_with(check.live_sweep, trained_sweep[:3], sweep_data[1], hint="one trained model per width, at least 4")


def test_live_sweep_untrained(sweep_data):
    _, val_ids, vocab = sweep_data
    torch.manual_seed(0)
    models = [GPT(scaling.sweep_config(w, vocab_size=vocab)).eval() for w in (8, 16, 32, 64)]
    fails_with(check.live_sweep, models, val_ids, hint=check.HINT_NOT_TRAINED)


def test_live_sweep_wants_a_list_of_gpts(sweep_data):
    fails_with(check.live_sweep, None, sweep_data[1], hint="has not run")
    fails_with(check.live_sweep, {"a": 1}, sweep_data[1], hint="expected a list of trained models")
    fails_with(check.live_sweep, [torch.nn.Linear(2, 2) for _ in range(4)], sweep_data[1], hint="not the package's GPT")


# ============================================ cases found by a learner's review ===
# Each: the mistake fails the VISIBLE check (the learner sees it before grading), with the hint that names it.

def test_visible_gpt2_catches_ln_f_and_n_inner():
    def no_ln_f(config):
        return _gpt2(config) - 2 * config.n_embd

    fails_with(check.gpt2_param_count_example, no_ln_f, hint=check.HINT_ONE_LN)
    fails_with(check.gpt2_param_count_example, lambda config: _gpt2(config, n_inner=False), hint=check.HINT_N_INNER)


def test_visible_bert_catches_width_extra_norm_and_pooler_bias():
    def four_d(config):
        from types import SimpleNamespace

        c = SimpleNamespace(**{k: getattr(config, k) for k in ("vocab_size", "hidden_size", "num_hidden_layers",
                                                               "max_position_embeddings", "type_vocab_size")})
        c.intermediate_size = 4 * config.hidden_size
        return _bert(c)

    fails_with(check.bert_param_count_example, four_d, hint=check.HINT_BERT_FF)
    fails_with(check.bert_param_count_example, lambda config: _bert(config) + 2 * config.hidden_size,
               hint=check.HINT_BERT_EXTRA_LN)
    fails_with(check.bert_param_count_example, lambda config: _bert(config) - config.hidden_size,
               hint=check.HINT_POOLER_BIAS)
    # a count off by something unnamed gets BERT's own checklist, which has no final LayerNorm to add
    message = fails_with(check.bert_param_count_example, lambda config: _bert(config) + 1, hint="No final LayerNorm")
    assert "off by +1" in message


def test_visible_flops_catch_one_head_attention():
    def per_head(config, T):
        d, L = config.n_embd, config.n_layer
        return 2 * (L * 12 * d * d + config.vocab_size * d) + 4 * L * T * (d // config.n_head)

    fails_with(check.forward_flops_example, per_head, hint=check.HINT_PER_HEAD)
    fails_with(check.forward_flops, per_head, hint=check.HINT_PER_HEAD)


def test_training_flops_4nd_is_told_about_the_backward_pass():
    message = fails_with(check.training_flops_example, lambda N, D: 4 * N * D, hint=check.HINT_4ND)
    assert "1.2e+14" in message or "120000000000000" in message       # the expected value is shown


def test_visible_power_law_catches_linear_space_and_the_unpolished_line():
    fails_with(check.fit_power_law_example, linear_space_fit_p0, hint=check.HINT_LINEAR_SPACE)

    def grid_and_line(N, L):
        """Hint 1's starting point alone: a fine grid over c, the line through log(L - c) for each."""
        N, L = np.asarray(N, float), np.asarray(L, float)
        best = None
        for c in np.linspace(0, L.min() * (1 - 1e-6), 2000):
            slope, icpt = np.polyfit(np.log(N), np.log(L - c), 1)
            sse = np.sum((np.log(L) - np.log(np.exp(icpt) * N ** slope + c)) ** 2)
            if best is None or sse < best[0]:
                best = (sse, float(np.exp(icpt)), float(-slope), float(c))
        return best[1:]

    fails_with(check.fit_power_law_example, grid_and_line, hint=check.HINT_FIT_NOT_OPTIMAL)


def test_power_law_check_passes_other_converged_methods(monkeypatch):
    """Nelder-Mead from the model answer's start, converged: any optimiser that reaches the optimum passes."""
    from scipy.optimize import minimize

    def nelder_mead(N, L):
        a, alpha, c = fit_power_law(N, L)
        N, L = np.asarray(N, float), np.asarray(L, float)
        obj = lambda x: np.sum((np.log(L) - np.log(np.maximum(np.exp(x[0]) * N ** -x[1] + x[2], 1e-300))) ** 2)  # noqa: E731,E501
        res = minimize(obj, [math.log(a) + 0.01, alpha * 1.01, c * 0.99], method="Nelder-Mead",
                       options={"xatol": 1e-12, "fatol": 1e-15, "maxiter": 20000, "maxfev": 40000})
        return float(np.exp(res.x[0])), float(res.x[1]), float(res.x[2])

    for seed in range(5):
        seed_checks(monkeypatch, seed)
        check.fit_power_law_example(nelder_mead)
        check.fit_power_law(nelder_mead)


def test_visible_compute_optimal_catches_what_a_symmetric_law_cannot():
    fails_with(check.compute_optimal_example, lambda C, law: _optimal(C, law, swap=True), hint=check.HINT_SWAPPED_EXP)
    fails_with(check.compute_optimal_example, lambda C, law: _optimal(C, law, invert_g=True),
               hint=check.HINT_G_INVERTED)


def test_compute_optimal_accepts_a_numeric_minimiser():
    from scipy.optimize import minimize_scalar

    def numeric(C, law):
        res = minimize_scalar(lambda logn: law(math.exp(logn), C / (6 * math.exp(logn))),
                              bounds=(math.log(1e2), math.log(1e22)), method="bounded", options={"xatol": 1e-10})
        N = math.exp(res.x)
        return N, C / (6 * N)

    check.compute_optimal_example(numeric)
    check.compute_optimal(numeric)


@pytest.mark.parametrize("variant, hint", [
    ("smooth_l1", check.HINT_SMOOTH_L1),
    ("no_half_delta", check.HINT_NO_HALF_DELTA),
    ("fixed_delta", check.HINT_DELTA_FIXED),
])
def test_visible_objective_catches_huber_slips(variant, hint):
    import torch.nn.functional as F

    def slip(params, log_N, log_D, log_L, delta=1e-3):
        a, b, e, alpha, beta = params
        pred = torch.logsumexp(torch.stack([a - alpha * log_N, b - beta * log_D, e.expand_as(log_N)]), dim=0)
        if variant == "smooth_l1":
            return F.smooth_l1_loss(pred, log_L, beta=delta, reduction="sum")
        r = pred - log_L
        if variant == "no_half_delta":
            return torch.where(r.abs() <= delta, 0.5 * r ** 2, delta * r.abs()).sum()
        return F.huber_loss(pred, log_L, delta=1e-3, reduction="sum")

    fails_with(check.chinchilla_objective_example, slip, hint=hint)


def test_visible_isoflop_catches_the_best_run():
    fails_with(check.isoflop_optimum_example, argmin_of_runs, hint=check.HINT_ARGMIN)


def test_live_sweep_same_model_repeated(trained_sweep, sweep_data):
    fails_with(check.live_sweep, [trained_sweep[0]] * 4, sweep_data[1], hint="same model object")
    message = fails_with(check.live_sweep, trained_sweep[-1:], sweep_data[1], hint="not only the last one")
    assert "1 model;" in message
