"""The checks that notebook test cells call with the learner's code.

``core`` holds the comparison, messaging and shared plumbing (quieting, forbidden calls, blaming an
earlier exercise); each notebook ``NN_name`` has its checks in ``grading.<name>`` (``02_attention`` ->
``grading.attention``). The contract a check module follows is in docs/AUTHORING.md. Running a
submission and turning checks into grades is the grader's job (:mod:`transformer_course.grader`).
"""
from __future__ import annotations

import importlib

from .core import CheckFailed, show_failures_briefly

__all__ = ["CheckFailed"]

show_failures_briefly()         # in a notebook, a failed check reads as its message and hint, not a traceback

#: Names the check modules had before they were named after their notebooks: a notebook released before
#: the rename (``from transformer_course.grading import heads as check``) still runs.
_RENAMED = {"rnn": "rnn_limitations", "heads": "multi_head_attention", "positions": "positional_encoding",
            "blocks": "transformer_blocks"}


def __getattr__(name: str):
    if name in _RENAMED:
        return importlib.import_module(f"{__name__}.{_RENAMED[name]}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
