"""Checks that notebook test cells call with the learner's code.

``core`` holds the comparison and messaging helpers; one module per topic
(``rnn``, ``attention``, ...) holds the checks for that topic's exercises.
"""
from .core import CheckFailed

__all__ = ["CheckFailed"]
