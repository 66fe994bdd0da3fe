"""Generated tasks the notebooks train and test on; nothing is downloaded.

- the long-range recall task (notebook 01 shows an RNN failing it as the distance
  grows; notebook 02 solves it with attention);
- digit sequence-to-sequence tasks, reverse and sort (notebook 05 trains an
  encoder-decoder on them).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RecallVocab:
    """Token ids of the recall task.

    ids ``0 .. n_symbols-1`` are the symbols to remember, the next ``n_noise`` ids
    are distractors, and the last id is the query marker.
    """

    n_symbols: int = 8
    n_noise: int = 8

    @property
    def query(self) -> int:
        return self.n_symbols + self.n_noise

    @property
    def size(self) -> int:
        return self.n_symbols + self.n_noise + 1


def make_recall_batch(
    batch_size: int,
    distance: int,
    vocab: RecallVocab = RecallVocab(),
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A batch of the recall task: remember the first token for ``distance`` steps.

    Each sequence is ``[symbol, noise_1, ..., noise_{distance-1}, QUERY]`` (length
    ``distance + 1``) and its label is ``symbol``: the query sits ``distance``
    steps after the token it asks about.

    Returns ``x`` of shape ``(batch_size, distance + 1)`` and ``y`` of shape
    ``(batch_size,)``, both ``int64``.
    """
    if distance < 1:
        raise ValueError(f"distance must be at least 1, got {distance}")
    rng = np.random.default_rng() if rng is None else rng
    x = rng.integers(vocab.n_symbols, vocab.n_symbols + vocab.n_noise, size=(batch_size, distance + 1))
    y = rng.integers(0, vocab.n_symbols, size=batch_size)
    x[:, 0] = y
    x[:, -1] = vocab.query
    return x.astype(np.int64), y.astype(np.int64)


@dataclass(frozen=True)
class DigitVocab:
    """Token ids of the digit tasks: ``0 .. 9`` are digits, then ``BOS`` (begin) and ``PAD``."""

    n_digits: int = 10

    @property
    def bos(self) -> int:
        return self.n_digits

    @property
    def pad(self) -> int:
        return self.n_digits + 1

    @property
    def size(self) -> int:
        return self.n_digits + 2


def make_digit_batch(
    batch_size: int,
    length: int,
    task: str = "reverse",
    vocab: DigitVocab = DigitVocab(),
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A batch of a digit sequence-to-sequence task.

    ``src`` holds random digits, shape ``(batch_size, length)``; ``tgt`` is the
    answer of the same shape: ``src`` reversed (``task="reverse"``) or sorted in
    ascending order (``task="sort"``).  Both ``int64``.
    """
    if task not in ("reverse", "sort"):
        raise ValueError(f"task must be 'reverse' or 'sort', got {task!r}")
    if length < 1:
        raise ValueError(f"length must be at least 1, got {length}")
    rng = np.random.default_rng() if rng is None else rng
    src = rng.integers(0, vocab.n_digits, size=(batch_size, length)).astype(np.int64)
    tgt = src[:, ::-1].copy() if task == "reverse" else np.sort(src, axis=1)
    return src, tgt
