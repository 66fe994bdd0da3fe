"""Helpers for the tests of grading checks (tests/test_attention.py, test_grading_*.py)."""
from __future__ import annotations

import pytest

from transformer_course.grading import CheckFailed


def fails_with(check_fn, *args, hint: str) -> str:
    """Run a check expecting CheckFailed whose message contains ``hint``; returns the message."""
    with pytest.raises(CheckFailed) as info:
        check_fn(*args)
    assert hint in str(info.value), f"expected hint {hint!r} in:\n{info.value}"
    return str(info.value)


def seed_check_module(monkeypatch, module, seed: int) -> None:
    """Make ``module``'s hidden checks draw from ``seed`` (they call ``module.rng()``, unseeded in a notebook), so
    that a failing draw replays."""
    import numpy as np

    monkeypatch.setattr(module, "rng", lambda s=None: np.random.default_rng(seed if s is None else s))
