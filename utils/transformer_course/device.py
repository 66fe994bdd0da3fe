"""Choosing where tensors live (CUDA, then Apple's MPS, then the CPU) and in which precision they train.

Used by every notebook that trains a model (01, 02 and on); mixed precision is taught in 10.
"""
from __future__ import annotations

import contextlib
import os

import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


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


def mixed_precision(device: torch.device | str, precision: str = "auto"):
    """``(autocast context, gradient scaler or None)`` for training on ``device``.

    ``"auto"``: bfloat16 autocast on a CUDA GPU that supports it (Ampere and later: the same
    exponent range as float32, so no loss scaling), float16 with a gradient scaler on older GPUs
    (float16's range is small: small gradients underflow to zero unless the loss is scaled up
    first), float32 elsewhere (a CPU gains little and MPS's autocast is partial).  ``"fp32"``,
    ``"bf16"`` and ``"fp16"`` force one.  Matrix products and attention run in the low precision;
    the weights, the optimizer's state, softmax and the loss stay float32.
    """
    device = torch.device(device)
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        if device.type != "cuda":
            precision = "fp32"
        else:
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if precision == "fp32":
        return contextlib.nullcontext(), None
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
    return torch.autocast(device.type, dtype=dtype), scaler
