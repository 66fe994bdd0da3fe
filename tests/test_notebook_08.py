"""End to end for notebook 08: planted mistakes cost their exercise's points, with a hint.

The student notebook, filled with the solution code, gets one typical mistake (COURSE.md's list for
scaling) in most exercises and is graded once through `transformer-course check`. The checks are
tested mistake by mistake in test_grading_scaling.py.
"""
from __future__ import annotations

import pytest

from notebook_tools import assert_lost_with_hints, by_id, check, fill_student, planted

pytestmark = pytest.mark.slow

NAME = "08_scaling"


def _replace(grade_id: str, old: str, new: str) -> str:
    return planted(NAME, grade_id, old, new)


def test_scaling_mistakes_lose_their_points_with_hints(tmp_path):
    wrong = {
        # the tied matrix counted twice
        "gpt2_param_count": _replace("gpt2_param_count", "return V * d + P * d + L * block + 2 * d",
                                     "return 2 * V * d + P * d + L * block + 2 * d"),
        # attention with 3 d^2 (no output projection)
        "bert_param_count": _replace("bert_param_count", "layer = (4 * d * d + 4 * d)", "layer = (3 * d * d + 3 * d)"),
        # the attention term forgotten
        "forward_flops": _replace("forward_flops", "return 2 * weights + 4 * L * T * d", "return 2 * weights"),
        # forward only: 2ND
        "training_flops": _replace("training_flops", "return 6 * n_params * n_tokens", "return 2 * n_params * n_tokens"),
        # no irreducible loss: a straight line in log-log
        "fit_power_law": _replace("fit_power_law", "return float(np.exp(fit.x[0])), float(fit.x[1]), float(fit.x[2])",
                                  "log_a, alpha = line(0.0)\n    return float(np.exp(log_a)), float(alpha), 0.0"),
        # 20 tokens per parameter taken as the law
        "compute_optimal": _replace("compute_optimal",
                                    "return G * (C / 6) ** (law.beta / s), (C / 6) ** (law.alpha / s) / G",
                                    "return (C / 120) ** 0.5, 20 * (C / 120) ** 0.5"),
        # a squared loss instead of Huber's
        "chinchilla_objective": _replace("chinchilla_objective",
                                         "torch.where(r.abs() <= delta, 0.5 * r ** 2, delta * (r.abs() - 0.5 * delta)).sum()",
                                         "(0.5 * r ** 2).sum()"),
        # the parabola fitted in N
        "isoflop_optimum": _replace("isoflop_optimum", "p0, p1, _ = np.polyfit(np.log(N), L, 2)\n    return float(np.exp(",
                                    "p0, p1, _ = np.polyfit(N, L, 2)\n    return float(("),
    }
    result = by_id(check(fill_student(NAME, tmp_path, replace=wrong)))
    expected_words = {
        "gpt2_param_count_test": "counted twice",
        "bert_param_count_test": "4 d x d matrices, not 3",
        "forward_flops_test": "attention term is missing",
        "training_flops_test": "one forward pass",
        "fit_power_law_test": "irreducible loss c is missing",
        "compute_optimal_test": "rule of thumb",
        "chinchilla_objective_test": "squared loss",
        "isoflop_optimum_test": "in log N, not in N",
    }
    assert_lost_with_hints(result, expected_words)
    assert result["run_sweep_test"]["passed"], result["run_sweep_test"]["message"]
