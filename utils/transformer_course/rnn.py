"""Recurrent neural networks, and the three limits that motivated attention.

Taught in notebook 01 (``01_rnn_limitations``); notebook 02 reuses the recall
experiment to show attention solving what the RNN cannot.

Conventions (batch first, as in the rest of the course):

- ``x``: inputs, shape ``(B, T, d_in)``; ``h0``: initial state, ``(B, d_h)``.
- ``W_xh``: ``(d_h, d_in)``, ``W_hh``: ``(d_h, d_h)``, ``b``: ``(d_h,)`` -- the same
  layout as ``torch.nn.RNN``'s ``weight_ih_l0`` and ``weight_hh_l0``, so that

      h_t = tanh(W_xh x_t + W_hh h_{t-1} + b)

  reads, for a batch of row vectors, ``h_t = tanh(x_t @ W_xh.T + h_prev @ W_hh.T + b)``.
- ``torch.nn.RNN`` has two biases, ``b_ih`` and ``b_hh``; they are only ever added,
  so one bias ``b = b_ih + b_hh`` is the same model.

Contents: the forward pass (numpy and torch), weight copying to and from
``torch.nn.RNN``, Jacobian norms ``||dh_T / dh_{T-d}||`` (autograd and the
analytic product), a small classifier for the recall task with its training
loop, and a timer for forward passes against sequence length.
"""
from __future__ import annotations

import statistics
import time
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from .data import RecallVocab, make_recall_batch

__all__ = [
    "rnn_forward",
    "rnn_forward_torch",
    "random_rnn_weights",
    "torch_rnn_from_weights",
    "weights_from_torch_rnn",
    "jacobian_norms",
    "jacobian_norms_analytic",
    "RecallRNN",
    "train_recall_rnn",
    "recall_accuracy",
    "measure_time",
    "forward_time_vs_length",
]


# --------------------------------------------------------------------------- forward pass
def rnn_forward(x, h0, W_xh, W_hh, b):
    """Run a tanh RNN over a batch of sequences (numpy).

    x: (B, T, d_in), h0: (B, d_h), W_xh: (d_h, d_in), W_hh: (d_h, d_h), b: (d_h,).
    Returns ``(hs, h_last)``: every hidden state ``hs`` (B, T, d_h), where
    ``hs[:, t]`` is the state *after* reading ``x[:, t]``, and ``h_last = hs[:, -1]``
    (B, d_h).
    """
    x = np.asarray(x)
    B, T, _ = x.shape
    h = np.asarray(h0)
    hs = np.empty((B, T, h.shape[-1]), dtype=np.result_type(x, h, W_xh, W_hh, b))
    for t in range(T):
        # the new state depends on the previous one: this loop cannot run in parallel
        h = np.tanh(x[:, t] @ W_xh.T + h @ W_hh.T + b)
        hs[:, t] = h
    return hs, h


def rnn_forward_torch(x: torch.Tensor, h0: torch.Tensor, W_xh: torch.Tensor, W_hh: torch.Tensor,
                      b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`rnn_forward` in torch (differentiable): same shapes, returns ``(hs, h_last)``."""
    h = h0
    states = []
    for t in range(x.shape[1]):
        h = torch.tanh(x[:, t] @ W_xh.T + h @ W_hh.T + b)
        states.append(h)
    return torch.stack(states, dim=1), h


def random_rnn_weights(d_in: int, d_h: int, radius: float = 1.0,
                       rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random ``(W_xh, W_hh, b)`` whose recurrent matrix has spectral radius ``radius``.

    ``W_hh`` is a Gaussian matrix rescaled so that its largest eigenvalue modulus is
    exactly ``radius``: that number decides whether ``W_hh^d`` shrinks or grows with d.
    """
    rng = np.random.default_rng() if rng is None else rng
    W_hh = rng.normal(size=(d_h, d_h))
    W_hh *= radius / np.max(np.abs(np.linalg.eigvals(W_hh)))
    W_xh = rng.normal(size=(d_h, d_in)) / np.sqrt(d_in)
    b = 0.1 * rng.normal(size=d_h)
    return W_xh, W_hh, b


# --------------------------------------------------------------------------- torch.nn.RNN
def torch_rnn_from_weights(W_xh, W_hh, b, dtype: torch.dtype = torch.float64) -> nn.RNN:
    """A batch-first ``torch.nn.RNN`` computing exactly :func:`rnn_forward` with these weights.

    ``nn.RNN`` adds two biases (``bias_ih_l0 + bias_hh_l0``); ours goes in the first,
    the second is zero.
    """
    W_xh, W_hh, b = (torch.as_tensor(np.asarray(w), dtype=dtype) for w in (W_xh, W_hh, b))
    d_h, d_in = W_xh.shape
    rnn = nn.RNN(d_in, d_h, nonlinearity="tanh", batch_first=True, dtype=dtype)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(W_xh)
        rnn.weight_hh_l0.copy_(W_hh)
        rnn.bias_ih_l0.copy_(b)
        rnn.bias_hh_l0.zero_()
    return rnn


def weights_from_torch_rnn(rnn: nn.RNN) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(W_xh, W_hh, b)`` of a one-layer tanh ``nn.RNN`` as float64 numpy; ``b = b_ih + b_hh``."""
    if rnn.num_layers != 1 or rnn.bidirectional or rnn.nonlinearity != "tanh":
        raise ValueError("only a one-layer, one-directional tanh nn.RNN maps onto rnn_forward")

    def get(name: str) -> np.ndarray:
        p = getattr(rnn, name, None)
        return np.zeros(rnn.hidden_size) if p is None else p.detach().cpu().double().numpy()

    return get("weight_ih_l0"), get("weight_hh_l0"), get("bias_ih_l0") + get("bias_hh_l0")


# --------------------------------------------------------------------------- gradients through time
def jacobian_norms(x, h0, W_xh, W_hh, b) -> np.ndarray:
    """How much the last state still depends on earlier ones, by autograd.

    One sequence, no batch axis: x (T, d_in), h0 (d_h,). With ``h_0 = h0`` and
    ``h_1 .. h_T`` the states after each input, returns ``norms`` of shape (T+1,)::

        norms[d] = || d h_T / d h_{T-d} ||_F      for d = 0 .. T

    (Frobenius norm of a d_h x d_h Jacobian; ``norms[0] = sqrt(d_h)``, the identity;
    ``norms[T]`` is the dependence on the initial state.)
    """
    x = torch.as_tensor(np.asarray(x), dtype=torch.float64)
    W_xh, W_hh, b = (torch.as_tensor(np.asarray(w), dtype=torch.float64) for w in (W_xh, W_hh, b))
    h = torch.as_tensor(np.asarray(h0), dtype=torch.float64).clone().requires_grad_(True)
    states = [h]
    for t in range(x.shape[0]):
        h = torch.tanh(W_xh @ x[t] + W_hh @ h + b)
        h.retain_grad()  # keep d(.)/dh_t for this intermediate state
        states.append(h)
    T, d_h = x.shape[0], h.shape[0]
    # row i of every Jacobian d h_T / d h_s comes from one backward pass of h_T[i]
    jac = np.zeros((T + 1, d_h, d_h))
    for i in range(d_h):
        for s in states:
            s.grad = None
        states[-1][i].backward(retain_graph=True)
        for s_idx, s in enumerate(states):
            jac[s_idx, i] = s.grad.numpy() if s.grad is not None else 0.0
    # index by distance d = T - s
    return np.linalg.norm(jac[::-1], axis=(1, 2))


def jacobian_norms_analytic(x, h0, W_xh, W_hh, b, *, dtype=np.float64) -> np.ndarray:
    """:func:`jacobian_norms` from the chain rule, in numpy.

    ``d h_s / d h_{s-1} = diag(1 - h_s^2) W_hh``, so
    ``d h_T / d h_{T-d} = prod_{s=T}^{T-d+1} diag(1 - h_s^2) W_hh`` (latest factor on the left).
    Every step runs in ``dtype``; ``np.float32`` shows how far single precision drifts
    (``1 - h^2`` loses its digits when tanh saturates).
    """
    x, h0, W_xh, W_hh, b = (np.asarray(a, dtype=dtype) for a in (x, h0, W_xh, W_hh, b))
    hs, _ = rnn_forward(x[None], h0[None], W_xh, W_hh, b)
    hs = hs[0]  # (T, d_h): hs[s-1] is h_s
    T, d_h = hs.shape
    J = np.eye(d_h, dtype=dtype)
    norms = [np.linalg.norm(J)]
    for s in range(T, 0, -1):
        J = J @ ((1 - hs[s - 1] ** 2)[:, None] * W_hh)
        norms.append(np.linalg.norm(J))
    return np.array(norms, dtype=np.float64)


# --------------------------------------------------------------------------- the recall task
class RecallRNN(nn.Module):
    """Embed tokens, run a tanh ``nn.RNN``, classify the recalled symbol from the last state.

    forward: x (B, T) int64 token ids -> logits (B, n_symbols).
    Everything the model knows about the sequence when it answers is the
    ``d_hidden`` numbers of its last hidden state.
    """

    def __init__(self, vocab: RecallVocab = RecallVocab(), d_embed: int = 16, d_hidden: int = 32):
        super().__init__()
        self.embed = nn.Embedding(vocab.size, d_embed)
        self.rnn = nn.RNN(d_embed, d_hidden, nonlinearity="tanh", batch_first=True)
        self.head = nn.Linear(d_hidden, vocab.n_symbols)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, h_last = self.rnn(self.embed(x))  # h_last: (num_layers=1, B, d_hidden)
        return self.head(h_last[0])  # (B, n_symbols)


def train_recall_rnn(model: nn.Module, distance: int, steps: int = 300, batch_size: int = 64,
                     lr: float = 1e-2, seed: int = 0, vocab: RecallVocab = RecallVocab(),
                     progress: bool = False) -> list[float]:
    """Train ``model`` in place on fresh recall batches at ``distance``; return the loss of every step.

    Adam with cross-entropy on the symbol; each step draws a new batch from
    ``make_recall_batch`` with a generator seeded by ``seed``. Gradients are clipped
    (norm 1) because an RNN's gradients can explode. Runs on the CPU: for a model
    this small a GPU is slower.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    losses = []
    steps_iter: Iterable[int] = range(steps)
    if progress:
        from tqdm.auto import tqdm
        steps_iter = tqdm(steps_iter, desc=f"distance {distance}", leave=False)
    for _ in steps_iter:
        x, y = make_recall_batch(batch_size, distance, vocab, rng)
        logits = model(torch.from_numpy(x))
        loss = nn.functional.cross_entropy(logits, torch.from_numpy(y))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    return losses


@torch.no_grad()
def recall_accuracy(model: nn.Module, distance: int, n: int = 1000, seed: int | None = None,
                    vocab: RecallVocab = RecallVocab(), forward: Callable | None = None) -> float:
    """Fraction of ``n`` fresh recall sequences at ``distance`` that ``model`` answers correctly.

    ``forward`` (default ``model``) maps x (B, T) to logits (B, n_symbols); graders pass
    the class's own ``forward`` so that a patched instance cannot answer instead.
    """
    was_training = model.training
    model.eval()
    x, y = make_recall_batch(n, distance, vocab, np.random.default_rng(seed))
    logits = (forward or model)(torch.from_numpy(x))
    model.train(was_training)
    return float((logits.argmax(-1).cpu().numpy() == y).mean())


# --------------------------------------------------------------------------- time vs length
def measure_time(fn: Callable[[int], object], lengths: Sequence[int], repeats: int = 5) -> np.ndarray:
    """Median wall-clock seconds of ``fn(length)`` for each length.

    Calls ``fn(L)`` exactly ``repeats`` times per length and returns an array of
    ``len(lengths)`` medians, in seconds, in the order of ``lengths``. The median
    ignores the odd slow call (a cache miss, another process waking up).
    """
    medians = []
    for L in lengths:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn(L)
            times.append(time.perf_counter() - start)
        medians.append(statistics.median(times))
    return np.array(medians)


def forward_time_vs_length(model: nn.Module, lengths: Sequence[int], batch_size: int = 32,
                           repeats: int = 5, vocab: RecallVocab = RecallVocab()) -> np.ndarray:
    """Median seconds of one forward pass of ``model`` on recall batches of each length."""
    rng = np.random.default_rng(0)
    batches = {L: torch.from_numpy(make_recall_batch(batch_size, max(L - 1, 1), vocab, rng)[0]) for L in lengths}
    with torch.no_grad():
        return measure_time(lambda L: model(batches[L]), lengths, repeats)
