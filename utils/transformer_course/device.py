"""Choosing where tensors live: CUDA, then Apple's MPS, then the CPU.

Used by every notebook that trains a model (01, 02 and on).
"""
from __future__ import annotations

import os

import torch


def default_device() -> torch.device:
    """The fastest device present: ``cuda`` > ``mps`` > ``cpu``.

    Set ``TRANSFORMER_COURSE_DEVICE`` (``cpu``, ``cuda``, ``mps``) to force one.
    """
    forced = os.environ.get("TRANSFORMER_COURSE_DEVICE")
    if forced:
        return torch.device(forced)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def describe_device() -> str:
    """One line naming the device in use, for notebook headers and ``doctor``."""
    dev = default_device()
    if dev.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(dev)})"
    return dev.type
