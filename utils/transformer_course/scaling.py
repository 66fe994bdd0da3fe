"""What a Transformer's size costs, and how its loss falls with size and data.

Taught in notebook 08 (scaling).

- **Parameters from a configuration**, by formula: :func:`gpt2_param_count` (GPT-2's
  layout, tied embeddings) and :func:`bert_param_count` (BERT with its pooler).  GPT-2
  small has 124,439,808 parameters, BERT-base 109,482,240 and GPT-3 in GPT-2's layout
  174,604,259,328 (Brown et al. 2020, table 2.1: 96 layers, d_model 12288, context 2048).
- **FLOPs**: a matrix product of an ``(m, k)`` by a ``(k, n)`` matrix costs ``2mkn``
  FLOPs (a multiply and an add per term).  A token going forward through a GPT costs 2
  FLOPs per weight of every matrix it is multiplied by, plus ``4 n_layer T d`` for the
  attention scores and the weighted sum of values over a context of ``T``
  (:func:`forward_flops_per_token`; the same accounting as Kaplan et al. 2020, table 1,
  with both attention products counted).  Training costs about three forward passes
  (the backward pass multiplies by each weight twice), hence ``6 N D``
  (:func:`training_flops`).  ``torch.utils.flop_counter.FlopCounterMode`` counts the same.
- **Power laws**: :func:`synthetic_sweep` generates a seeded sweep ``L(N) = a N^-alpha + c``
  with log-normal noise from constants it returns (never a copy of a paper's data);
  :func:`fit_power_law` fits it by least squares on ``log L``.
- **Chinchilla** (Hoffmann et al. 2022): the parametric law
  ``L(N, D) = E + A / N^alpha + B / D^beta`` (:class:`ChinchillaLaw`), its compute-optimal
  allocation under ``C = 6 N D`` in closed form (:func:`compute_optimal`), the Huber
  objective on log-loss that Epoch AI's replication minimises (Besiroglu et al. 2024,
  :func:`chinchilla_objective`, :func:`fit_chinchilla`), and the isoFLOP approach
  (:func:`isoflop_optimum`: a parabola in ``log N`` per budget).
- **Attention's cost in time and memory** against the sequence length:
  :func:`measure_attention`, with :func:`peak_memory`.
- **A live sweep** of tiny GPTs (:func:`sweep_config`, :func:`train_sweep`).

Bad input (a configuration without a field, a non-positive budget, a sweep with fewer
points than the law has parameters) raises a ``ValueError`` that names it.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .kernels import naive_attention, peak_memory  # noqa: F401  (08 measures what 10 explains)

__all__ = [
    "GPT2_SMALL", "GPT3_175B", "BERT_BASE",
    "GPT2_SMALL_PARAMS", "GPT3_175B_PARAMS", "BERT_BASE_PARAMS",
    "gpt2_param_count", "bert_param_count",
    "matmul_weights", "forward_flops_per_token", "training_flops", "count_flops",
    "PowerLaw", "synthetic_sweep", "fit_loglog_line", "fit_power_law", "power_law_objective",
    "ChinchillaLaw", "CHINCHILLA_ROUNDED", "CHINCHILLA_UNROUNDED", "EPOCH_REFIT", "LAWS",
    "compute_optimal", "synthetic_chinchilla_runs", "huber", "chinchilla_objective", "fit_chinchilla",
    "isoflop_optimum", "isoflop_fit",
    "naive_attention", "peak_memory", "measure_attention",
    "sweep_config", "train_sweep", "sweep_losses",
]

# ------------------------------------------------------------ configurations ---

#: GPT-2 small (Radford et al. 2019) in transformers' ``GPT2Config`` names.
GPT2_SMALL = dict(vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12, n_head=12)
#: GPT-3 175B (Brown et al. 2020, table 2.1) in GPT-2's layout (GPT-3 alternates dense and
#: locally banded sparse attention, which changes no parameter count).
GPT3_175B = dict(vocab_size=50257, n_positions=2048, n_embd=12288, n_layer=96, n_head=96)
#: BERT-base, uncased (Devlin et al. 2019) in transformers' ``BertConfig`` names.
BERT_BASE = dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072, max_position_embeddings=512, type_vocab_size=2)

GPT2_SMALL_PARAMS = 124_439_808
GPT3_175B_PARAMS = 174_604_259_328
BERT_BASE_PARAMS = 109_482_240

_MISSING = object()


def _field(config: Any, name: str, *aliases: str, default: Any = _MISSING) -> Any:
    """``config.name`` (or ``config[name]`` for a mapping), trying ``aliases`` in turn."""
    for key in (name, *aliases):
        if isinstance(config, Mapping):
            if key in config:
                return config[key]
        elif hasattr(config, key):
            return getattr(config, key)
    if default is not _MISSING:
        return default
    also = f" (or {', '.join(aliases)})" if aliases else ""
    raise ValueError(f"the configuration has no field {name!r}{also}: {type(config).__name__} {config!r:.200}")


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or int(value) != value or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _gpt2_shape(config: Any) -> tuple[int, int, int, int, int]:
    """``(V, P, d, L, d_ff)`` of a GPT-2-layout configuration (transformers' or nanoGPT's names)."""
    V = _positive_int(_field(config, "vocab_size"), "vocab_size")
    P = _positive_int(_field(config, "n_positions", "block_size", "max_position_embeddings"), "n_positions")
    d = _positive_int(_field(config, "n_embd", "hidden_size"), "n_embd")
    L = _positive_int(_field(config, "n_layer", "num_hidden_layers"), "n_layer")
    inner = _field(config, "n_inner", default=None)
    d_ff = 4 * d if inner is None else _positive_int(inner, "n_inner")
    return V, P, d, L, d_ff


def gpt2_param_count(config: Any) -> int:
    """Parameters of a GPT-2-layout language model, the tied ``wte``/``lm_head`` matrix once.

    Reads ``vocab_size``, ``n_positions`` (nanoGPT: ``block_size``), ``n_embd``, ``n_layer``,
    ``n_inner`` (``None``: ``4 n_embd``), ``bias`` (default True) and
    ``tie_word_embeddings`` (default True) from a transformers ``GPT2Config``, a nanoGPT-style
    config or a dict.  Per block, with ``d = n_embd`` and ``f = n_inner``:

    - two LayerNorms: ``2 * 2d``;
    - attention: Q, K, V and the output projection, ``4 d^2`` weights and ``4d`` biases;
    - the MLP: ``2 d f`` weights and ``f + d`` biases.

    Plus the token table ``V d``, the position table ``P d`` and the final LayerNorm ``2d``.
    """
    V, P, d, L, f = _gpt2_shape(config)
    bias = bool(_field(config, "bias", default=True))
    tied = bool(_field(config, "tie_word_embeddings", default=True))
    per_block = 4 * d * d + 2 * d * f                    # attention's 4 matrices, the MLP's 2
    if bias:
        per_block += 4 * d + f + d                       # their biases
    per_block += 2 * (2 * d if bias else d)              # ln_1, ln_2 (a LayerNorm without bias: its weight)
    embeddings = V * d + P * d
    head = 0 if tied else V * d
    return embeddings + L * per_block + (2 * d if bias else d) + head


def bert_param_count(config: Any, *, pooler: bool = True) -> int:
    """Parameters of transformers' ``BertModel`` (with its pooler unless ``pooler=False``).

    Reads ``vocab_size``, ``hidden_size``, ``num_hidden_layers``, ``intermediate_size``,
    ``max_position_embeddings`` and ``type_vocab_size``.  Embeddings: words, positions and
    segments, then a LayerNorm; per layer: Q, K, V, the output projection (``4 d^2 + 4 d``),
    a LayerNorm, the feed-forward ``d -> f -> d`` (``2 d f + f + d``), a LayerNorm; the
    pooler is one ``d x d`` layer with its bias.
    """
    V = _positive_int(_field(config, "vocab_size"), "vocab_size")
    d = _positive_int(_field(config, "hidden_size"), "hidden_size")
    L = _positive_int(_field(config, "num_hidden_layers"), "num_hidden_layers")
    f = _positive_int(_field(config, "intermediate_size"), "intermediate_size")
    P = _positive_int(_field(config, "max_position_embeddings"), "max_position_embeddings")
    S = _positive_int(_field(config, "type_vocab_size"), "type_vocab_size")
    embeddings = (V + P + S) * d + 2 * d
    per_layer = (4 * d * d + 4 * d) + 2 * d + (2 * d * f + f + d) + 2 * d
    return embeddings + L * per_layer + ((d * d + d) if pooler else 0)


# --------------------------------------------------------------------- FLOPs ---

def matmul_weights(config: Any) -> int:
    """The weights a token is multiplied by going forward through a GPT: ``n_layer (4 d^2 + 2 d f)``
    in the blocks plus the ``V d`` of the output layer.  Embedding look-ups, biases and LayerNorms
    multiply no matrix and are left out."""
    V, _, d, L, f = _gpt2_shape({"n_positions": 1, **_as_dict(config)})
    return L * (4 * d * d + 2 * d * f) + V * d


def _as_dict(config: Any) -> dict:
    if isinstance(config, Mapping):
        return dict(config)
    if hasattr(config, "to_dict"):
        return config.to_dict()
    return dict(vars(config))


def forward_flops_per_token(config: Any, T: int) -> int:
    """Forward FLOPs per token of a GPT at context length ``T``: ``2`` per weight of
    :func:`matmul_weights`, plus ``4 n_layer T d``: each layer's scores ``Q K^T`` and weighted
    values ``A V`` cost ``2 T d`` each per query (every key counted, as a non-fused kernel computes
    them; a causal kernel that skips the masked half does about half)."""
    T = _positive_int(T, "T")
    d = _positive_int(_field(config, "n_embd", "hidden_size"), "n_embd")
    L = _positive_int(_field(config, "n_layer", "num_hidden_layers"), "n_layer")
    return 2 * matmul_weights(config) + 4 * L * T * d


def training_flops(n_params: float, n_tokens: float) -> float:
    """Training compute ``C ~ 6 N D``: 2 FLOPs per weight and token forward, 4 backward (the
    gradients with respect to the inputs and to the weights are one product each)."""
    if not n_params > 0 or not n_tokens > 0:
        raise ValueError(f"the parameter and token counts must be positive, got N={n_params!r}, D={n_tokens!r}")
    return 6.0 * n_params * n_tokens


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of ``fn()`` as ``torch.utils.flop_counter.FlopCounterMode`` counts them, with PyTorch's
    attention run as plain matrix products (its fused CPU kernels are not counted otherwise)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


# ---------------------------------------------------------------- power laws ---

@dataclass(frozen=True)
class PowerLaw:
    """``L(N) = a N^-alpha + c``: a reducible part that falls as a power of ``N`` and an
    irreducible loss ``c`` that no size removes."""

    a: float
    alpha: float
    c: float

    def __call__(self, N):
        return self.a * np.asarray(N, dtype=np.float64) ** -self.alpha + self.c


#: The constants behind :func:`synthetic_sweep`: invented for the course, of the size that
#: language-model sweeps show (loss in nats per token).
SWEEP_TRUTH = PowerLaw(a=400.0, alpha=0.34, c=1.7)


def synthetic_sweep(n_points: int = 12, *, truth: PowerLaw = SWEEP_TRUTH, noise: float = 0.02,
                    n_min: float = 1e6, n_max: float = 1e10, seed: int = 0):
    """A generated sweep: ``n_points`` model sizes log-spaced from ``n_min`` to ``n_max`` and their
    losses ``truth(N) * exp(noise * z)``, ``z`` standard normal, from ``seed``.

    Returns ``(N, L, truth)``.  Licence-clean by construction: no paper's data.
    """
    if n_points < 3:
        raise ValueError(f"a sweep needs at least 3 points to fit a, alpha and c; n_points={n_points}")
    if not 0 < n_min < n_max:
        raise ValueError(f"need 0 < n_min < n_max, got {n_min!r}, {n_max!r}")
    gen = np.random.default_rng(seed)
    N = np.geomspace(n_min, n_max, n_points)
    L = truth(N) * np.exp(noise * gen.standard_normal(n_points))
    return N, L, truth


def _check_sweep(N, L, n_params: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    N = np.asarray(N, dtype=np.float64).ravel()
    L = np.asarray(L, dtype=np.float64).ravel()
    if N.shape != L.shape:
        raise ValueError(f"{what}: N and L have different lengths ({N.size} and {L.size})")
    if N.size < n_params:
        raise ValueError(f"{what}: {N.size} points cannot determine {n_params} parameters; give at least {n_params}")
    if not (np.all(np.isfinite(N)) and np.all(np.isfinite(L)) and np.all(N > 0) and np.all(L > 0)):
        raise ValueError(f"{what}: sizes and losses must be finite and positive")
    return N, L


def fit_loglog_line(N, y) -> tuple[float, float]:
    """``(a, alpha)`` of the straight line ``log y = log a - alpha log N`` (least squares):
    the power law ``y = a N^-alpha`` with no constant term."""
    N, y = _check_sweep(N, y, 2, "fit_loglog_line")
    slope, intercept = np.polyfit(np.log(N), np.log(y), 1)
    return float(np.exp(intercept)), float(-slope)


def power_law_objective(law: PowerLaw, N, L) -> float:
    """The sum of squared residuals in log space, ``sum (log L - log law(N))^2`` (inf where the law is not positive)."""
    pred = law(N)
    if np.any(pred <= 0) or not np.all(np.isfinite(pred)):
        return math.inf
    return float(np.sum((np.log(np.asarray(L, dtype=np.float64)) - np.log(pred)) ** 2))


def fit_power_law(N, L) -> PowerLaw:
    """Least squares on ``log L`` for ``L = a N^-alpha + c``, with ``0 <= c < min(L)``.

    For a fixed ``c`` the problem is a straight line through ``(log N, log(L - c))``; the best ``c``
    is found by a bounded scalar search over that profile, then the three parameters are polished
    together (``scipy.optimize.least_squares``).
    """
    from scipy.optimize import least_squares, minimize_scalar

    N, L = _check_sweep(N, L, 3, "fit_power_law")
    top = float(L.min())

    def profile(c: float) -> tuple[float, PowerLaw]:
        a, alpha = fit_loglog_line(N, L - c)
        law = PowerLaw(a, alpha, c)
        return power_law_objective(law, N, L), law

    grid = np.linspace(0.0, top * (1 - 1e-6), 200)
    best_c = grid[int(np.argmin([profile(c)[0] for c in grid]))]
    step = grid[1] - grid[0]
    res = minimize_scalar(lambda c: profile(c)[0], bounds=(max(0.0, best_c - step), min(top * (1 - 1e-9), best_c + step)),
                          method="bounded", options={"xatol": 1e-10})
    start = profile(float(res.x))[1]
    x0 = np.array([math.log(start.a), start.alpha, start.c])

    def residuals(x):
        pred = np.exp(x[0]) * N ** -x[1] + x[2]
        return np.log(L) - np.log(np.maximum(pred, 1e-300))

    out = least_squares(residuals, x0, method="trf", xtol=1e-14, ftol=1e-14, gtol=1e-14,
                        bounds=([-np.inf, -np.inf, 0.0], [np.inf, np.inf, top]))
    law = PowerLaw(float(np.exp(out.x[0])), float(out.x[1]), float(out.x[2]))
    return law if power_law_objective(law, N, L) <= power_law_objective(start, N, L) else start


# ----------------------------------------------------------------- Chinchilla ---

@dataclass(frozen=True)
class ChinchillaLaw:
    """``L(N, D) = E + A / N^alpha + B / D^beta`` (Hoffmann et al. 2022, equation 2)."""

    E: float
    A: float
    B: float
    alpha: float
    beta: float
    name: str = ""

    def __call__(self, N, D):
        N = np.asarray(N, dtype=np.float64)
        D = np.asarray(D, dtype=np.float64)
        return self.E + self.A / N ** self.alpha + self.B / D ** self.beta

    def optimum(self, C):
        """``(N_opt, D_opt)`` for the budget ``C`` (:func:`compute_optimal`)."""
        return compute_optimal(C, self)


#: Hoffmann et al. 2022, section 3.3, as printed (rounded).
CHINCHILLA_ROUNDED = ChinchillaLaw(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28, name="Chinchilla, rounded")
#: The same fit with the exponents the paper's TeX source gives (Besiroglu et al. 2024, section 2).
CHINCHILLA_UNROUNDED = ChinchillaLaw(E=1.69, A=406.4, B=410.7, alpha=0.3392, beta=0.2849, name="Chinchilla, unrounded")
#: Epoch AI's refit on data reconstructed from the paper's plots (Besiroglu et al. 2024, table 1).
EPOCH_REFIT = ChinchillaLaw(E=1.8172, A=482.01, B=2085.43, alpha=0.3478, beta=0.3658, name="Epoch AI refit")
LAWS = {law.name: law for law in (CHINCHILLA_ROUNDED, CHINCHILLA_UNROUNDED, EPOCH_REFIT)}


def compute_optimal(C, law: ChinchillaLaw) -> tuple[Any, Any]:
    """Minimise ``law(N, D)`` subject to ``6 N D = C``: ``N_opt = G (C/6)^(beta/(alpha+beta))``,
    ``D_opt = G^-1 (C/6)^(alpha/(alpha+beta))``, ``G = (alpha A / (beta B))^(1/(alpha+beta))``
    (Hoffmann et al. 2022, equation 4).  ``C`` may be a number or an array."""
    C_arr = np.asarray(C, dtype=np.float64)
    if not np.all(C_arr > 0) or not np.all(np.isfinite(C_arr)):
        raise ValueError(f"the compute budget must be positive and finite, got C={C!r}")
    s = law.alpha + law.beta
    G = (law.alpha * law.A / (law.beta * law.B)) ** (1.0 / s)
    N = G * (C_arr / 6.0) ** (law.beta / s)
    D = (C_arr / 6.0) ** (law.alpha / s) / G
    if C_arr.ndim == 0:
        return float(N), float(D)
    return N, D


def synthetic_chinchilla_runs(law: ChinchillaLaw = EPOCH_REFIT, budgets: Sequence[float] = (1e18, 1e19, 1e20, 1e21),
                              per_budget: int = 9, spread: float = 8.0, noise: float = 0.01, seed: int = 0):
    """Generated isoFLOP runs: for each budget ``C``, ``per_budget`` model sizes log-spaced over a factor
    ``spread`` either side of ``law``'s optimum, ``D = C / (6 N)``, and ``L = law(N, D) exp(noise z)``.

    Returns a dict of equal-length arrays ``C``, ``N``, ``D``, ``L``.
    """
    budgets = np.asarray(budgets, dtype=np.float64)
    if budgets.size == 0 or not np.all(budgets > 0):
        raise ValueError(f"budgets must be positive, got {budgets!r}")
    if per_budget < 3:
        raise ValueError(f"a parabola per budget needs at least 3 runs; per_budget={per_budget}")
    gen = np.random.default_rng(seed)
    rows = []
    for C in budgets:
        n_opt, _ = compute_optimal(C, law)
        for N in np.geomspace(n_opt / spread, n_opt * spread, per_budget):
            D = C / (6 * N)
            rows.append((C, N, D, float(law(N, D)) * math.exp(noise * gen.standard_normal())))
    C, N, D, L = (np.array(col) for col in zip(*rows))
    return {"C": C, "N": N, "D": D, "L": L}


def huber(r: torch.Tensor, delta: float) -> torch.Tensor:
    """Huber's loss, elementwise: ``r^2 / 2`` where ``|r| <= delta``, ``delta (|r| - delta / 2)`` beyond."""
    a = r.abs()
    return torch.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


def chinchilla_objective(params: torch.Tensor, log_N: torch.Tensor, log_D: torch.Tensor, log_L: torch.Tensor,
                         delta: float = 1e-3) -> torch.Tensor:
    """Epoch AI's objective for the parametric law (Hoffmann et al. 2022, equation 3): with
    ``params = (a, b, e, alpha, beta)`` and ``A = e^a``, ``B = e^b``, ``E = e^e``, the predicted log-loss
    is ``logsumexp(a - alpha log N, b - beta log D, e)``; return the **sum** over runs of
    ``huber(predicted - log L, delta)``."""
    a, b, e, alpha, beta = params.unbind(-1)
    pred = torch.logsumexp(torch.stack([a - alpha * log_N, b - beta * log_D, e.expand_as(log_N)]), dim=0)
    return huber(pred - log_L, delta).sum()


#: Starting points for the parametric fit (a coarse version of Hoffmann et al.'s grid).
_FIT_GRID = [(a, b, e, al, be) for a in (0.0, 5.0, 10.0, 15.0, 20.0, 25.0) for b in (0.0, 5.0, 10.0, 15.0, 20.0, 25.0)
             for e in (-1.0, 0.0, 1.0) for al in (0.0, 0.5, 1.0, 1.5, 2.0) for be in (0.0, 0.5, 1.0, 1.5, 2.0)]


def fit_chinchilla(N, D, L, *, objective: Callable = chinchilla_objective, delta: float = 1e-3, starts: int = 4,
                   steps: int = 200) -> ChinchillaLaw:
    """Fit ``L(N, D) = E + A/N^alpha + B/D^beta`` by minimising ``objective`` (the Huber loss on log-loss).

    Every point of a grid of initialisations is evaluated once; L-BFGS then runs from the ``starts`` best,
    in float64, and the lowest objective wins.  ``objective(params, log_N, log_D, log_L, delta)`` must
    return a differentiable scalar tensor (``params`` = ``(a, b, e, alpha, beta)``).
    """
    N = np.asarray(N, dtype=np.float64).ravel()
    D = np.asarray(D, dtype=np.float64).ravel()
    _check_sweep(N, L, 5, "fit_chinchilla")
    _check_sweep(D, L, 5, "fit_chinchilla")
    log_N, log_D, log_L = (torch.from_numpy(np.log(np.asarray(x, dtype=np.float64)).ravel()) for x in (N, D, L))
    with torch.no_grad():
        scored = sorted((float(objective(torch.tensor(p, dtype=torch.float64), log_N, log_D, log_L, delta)), p)
                        for p in _FIT_GRID)
    best, best_value = None, math.inf
    for _, p0 in scored[:starts]:
        params = torch.tensor(p0, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([params], lr=1.0, max_iter=steps, tolerance_grad=1e-12, tolerance_change=1e-15,
                                line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            value = objective(params, log_N, log_D, log_L, delta)
            value.backward()
            return value

        opt.step(closure)
        with torch.no_grad():
            value = float(objective(params, log_N, log_D, log_L, delta))
        if math.isfinite(value) and value < best_value:
            best, best_value = params.detach().clone(), value
    if best is None:
        raise ValueError("fit_chinchilla: the objective was not finite at any starting point")
    a, b, e, alpha, beta = best.tolist()
    return ChinchillaLaw(E=math.exp(e), A=math.exp(a), B=math.exp(b), alpha=alpha, beta=beta, name="fitted")


def isoflop_optimum(N, L) -> float:
    """The loss-minimising size along one isoFLOP curve: fit ``L = p0 (log N)^2 + p1 log N + p2``
    and return ``exp(-p1 / (2 p0))``, the parabola's vertex."""
    N, L = _check_sweep(N, L, 3, "isoflop_optimum")
    p0, p1, _ = np.polyfit(np.log(N), L, 2)
    if p0 <= 0:
        raise ValueError("isoflop_optimum: the parabola opens downwards; the runs do not bracket a minimum")
    return float(np.exp(-p1 / (2 * p0)))


def isoflop_fit(runs: Mapping[str, np.ndarray], optimum: Callable = isoflop_optimum):
    """Approach 2 of Hoffmann et al.: the optimum of each budget's parabola, then a straight line in
    log-log through them.  Returns ``(budgets, N_opt per budget, (k, a))`` with ``N_opt ~ k C^a``."""
    C = np.asarray(runs["C"], dtype=np.float64)
    budgets = np.unique(C)
    if budgets.size < 2:
        raise ValueError("isoflop_fit: need at least two budgets to fit N_opt ~ C^a")
    optima = np.array([optimum(np.asarray(runs["N"])[C == c], np.asarray(runs["L"])[C == c]) for c in budgets])
    slope, intercept = np.polyfit(np.log(budgets), np.log(optima), 1)
    return budgets, optima, (float(np.exp(intercept)), float(slope))


# ------------------------------------------------------ attention's n^2 cost ---

def _time(fn: Callable[[], Any], device: torch.device, repeats: int) -> float:
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    fn()
    sync()
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t0)
    return best


def measure_attention(lengths: Iterable[int], *, batch: int = 1, heads: int = 4, d_head: int = 32,
                      causal: bool = True, device: torch.device | str = "cpu", repeats: int = 3,
                      progress: bool = True) -> dict:
    """Time (best of ``repeats``, seconds) and peak extra memory (bytes) of :func:`naive_attention` and of
    ``F.scaled_dot_product_attention`` at each sequence length, forward only, float32.

    Returns ``{"T": [...], "naive_s": [...], "sdpa_s": [...], "naive_bytes": [...], "sdpa_bytes": [...]}``.
    """
    from tqdm.auto import tqdm

    device = torch.device(device)
    out: dict = {"T": [], "naive_s": [], "sdpa_s": [], "naive_bytes": [], "sdpa_bytes": []}
    gen = torch.Generator().manual_seed(0)
    for T in tqdm(list(lengths), desc="attention cost", disable=not progress):
        T = _positive_int(T, "sequence length")
        q, k, v = (torch.randn(batch, heads, T, d_head, generator=gen).to(device) for _ in range(3))
        with torch.no_grad():
            naive = lambda: naive_attention(q, k, v, causal)                                   # noqa: E731
            fused = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal)          # noqa: E731
            out["T"].append(T)
            out["naive_s"].append(_time(naive, device, repeats))
            out["sdpa_s"].append(_time(fused, device, repeats))
            out["naive_bytes"].append(peak_memory(naive, device))
            out["sdpa_bytes"].append(peak_memory(fused, device))
    return out


# ---------------------------------------------------------------- live sweep ---

def sweep_config(n_embd: int, *, vocab_size: int, n_layer: int = 2, block_size: int = 64):
    """A tiny GPT of width ``n_embd`` for the live sweep: ``n_layer`` blocks, heads of 16 dimensions
    (at least one), no dropout."""
    from .gpt import GPTConfig

    n_embd = _positive_int(n_embd, "n_embd")
    return GPTConfig(block_size=block_size, vocab_size=vocab_size, n_layer=n_layer, n_head=max(1, n_embd // 16),
                     n_embd=n_embd, dropout=0.0)


def train_sweep(widths: Sequence[int], train_ids: torch.Tensor, val_ids: torch.Tensor, *, vocab_size: int,
                iters: int = 200, batch_size: int = 16, n_layer: int = 2, block_size: int = 64, lr: float = 3e-3,
                seed: int = 0, device: torch.device | str = "cpu", progress: bool = True) -> list:
    """Train one tiny GPT per width on the same tokens (``iters * batch_size * block_size`` of them) and
    return the trained models, in ``eval`` mode."""
    from tqdm.auto import tqdm

    from .gpt import GPT, train_gpt

    models = []
    for width in tqdm(list(widths), desc="sweep", disable=not progress):
        torch.manual_seed(seed)
        model = GPT(sweep_config(width, vocab_size=vocab_size, n_layer=n_layer, block_size=block_size)).to(device)
        train_gpt(model, train_ids.to(device), val_ids.to(device), iters=iters, batch_size=batch_size, lr=lr,
                  min_lr=lr / 10, warmup=max(1, iters // 10), eval_every=iters, eval_iters=2,
                  generator=torch.Generator(device="cpu").manual_seed(seed), progress=False)
        models.append(model)
    return models


@torch.no_grad()
def sweep_losses(models: Sequence[Any], val_ids: torch.Tensor, *, batches: int = 8, batch_size: int = 32,
                 seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``(N, loss)``: each model's parameter count (positions left out, as Kaplan et al. do) and its mean
    loss on the same ``batches`` random windows of ``val_ids``."""
    from .corpus import get_batch

    Ns, losses = [], []
    for model in models:
        was = model.training
        model.eval()
        device = next(model.parameters()).device
        gen = torch.Generator().manual_seed(seed)
        total = 0.0
        for _ in range(batches):
            x, y = get_batch(val_ids, model.config.block_size, batch_size, generator=gen, device=device)
            total += float(model(x, y)[1])
        model.train(was)
        Ns.append(sum(p.numel() for p in model.parameters()) - model.wpe.weight.numel())
        losses.append(total / batches)
    return np.array(Ns, dtype=np.float64), np.array(losses)
