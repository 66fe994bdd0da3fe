"""Generated tasks the notebooks train and test on; nothing is downloaded.

- the long-range recall task (notebook 01 shows an RNN failing it as the distance
  grows; notebook 02 solves it with attention).
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
