"""Choosing the next token, and generating text with or without a key/value cache.

Taught in notebook 07 (GPT).  A language model gives, at every step, logits over
the vocabulary for the next token; a *decoding strategy* turns them into a token:

- **greedy**: the most likely token (deterministic; tends to loop);
- **temperature** ``tau``: sample from ``softmax(logits / tau)``; ``tau < 1``
  sharpens the distribution, ``tau > 1`` flattens it, ``tau -> 0`` is greedy;
- **top-k** (Fan et al. 2018): sample among the ``k`` most likely tokens only;
- **top-p / nucleus** (Holtzman et al. 2020, "The Curious Case of Neural Text
  Degeneration"): sample among the smallest set of most likely tokens whose
  probabilities add up to at least ``p``.

Filters work on logits: a removed token's logit becomes ``-inf``, so the softmax
gives it probability 0 and renormalises the rest.

:func:`generate` runs the autoregressive loop.  Without a cache every step feeds
the whole context again (``O(T)`` positions per new token); with one
:class:`~transformer_course.attention.KVCache` per layer each step feeds only the
new token, whose query attends to the cached keys and values of the earlier ones.
"""
from __future__ import annotations

import torch

from .attention import KVCache

__all__ = ["greedy", "apply_temperature", "top_k_filter", "top_p_filter", "sample_next", "generate"]

# cumulative probabilities within this of p count as reaching it (float rounding of the softmax and the sum)
TOP_P_TOLERANCE = 1e-6


def greedy(logits: torch.Tensor) -> torch.Tensor:
    """The most likely token of each row: ``(B, V) -> (B,)`` (int64)."""
    return logits.argmax(dim=-1)


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``logits / temperature``; ``temperature`` must be positive (for 0, use :func:`greedy`)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}; temperature 0 means greedy: use greedy()")
    return logits / temperature


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` largest logits of each row (and any tied with the ``k``-th), set the others to ``-inf``."""
    if k < 1:
        raise ValueError(f"top_k must be >= 1, got {k}")
    if k >= logits.shape[-1]:
        return logits
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]                 # (B, 1): the k-th largest
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filter: keep the smallest set of most likely tokens whose total probability is ``>= p``.

    The most likely token is always kept; tokens tied in probability with the
    last one needed are all kept (so the result does not depend on how a sort
    orders ties); ``p = 1`` keeps every token.  Others become ``-inf``.
    """
    if not 0 < p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {p}")
    if p >= 1:
        return logits
    probs = torch.softmax(logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits, dim=-1)
    sorted_probs, _ = torch.sort(probs, dim=-1, descending=True)
    before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs          # mass of the more likely tokens
    needed = before < p - TOP_P_TOLERANCE                               # still short of p: this token is needed
    needed[..., 0] = True
    n_keep = needed.sum(dim=-1, keepdim=True)                           # needed is a prefix of the sorted order
    threshold = sorted_probs.gather(-1, n_keep - 1)                     # probability of the last token kept
    return logits.masked_fill(probs < threshold, float("-inf"))


def sample_next(logits: torch.Tensor, *, temperature: float = 1.0, top_k: int | None = None,
                top_p: float | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw the next token of each row of ``logits`` ``(B, V)``: returns ``(B,)`` int64.

    Temperature first, then top-k, then top-p, then one draw from the softmax
    (:func:`torch.multinomial` with ``generator``).  ``temperature == 0`` is greedy.
    """
    if temperature == 0:
        return greedy(logits)
    logits = apply_temperature(logits, temperature)
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@torch.no_grad()
def generate(model, idx: torch.Tensor, max_new_tokens: int, *, temperature: float = 1.0, top_k: int | None = None,
             top_p: float | None = None, use_cache: bool = True,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """Append ``max_new_tokens`` tokens to ``idx`` ``(B, T)``, one at a time: returns ``(B, T + max_new_tokens)``.

    ``model`` is anything with ``forward(idx, kv_caches=...) -> (logits, loss)``
    and ``config.block_size`` / ``config.n_layer`` (e.g. :class:`~transformer_course.gpt.GPT`);
    it runs in eval mode (restored afterwards).  Each step takes the last
    position's logits and picks a token with :func:`sample_next`.

    - ``use_cache=False``: every step recomputes the whole context, cropped to
      its last ``block_size`` tokens (nanoGPT's ``generate``).
    - ``use_cache=True``: the context is fed once to fill one
      :class:`~transformer_course.attention.KVCache` per layer, then each step
      feeds only the new token.  Once the sequence outgrows ``block_size`` the
      cache cannot help (learned absolute positions: every token's position
      shifts when the window slides), so from then on each step recomputes the
      cropped window, exactly as without a cache.  Both modes give the same
      tokens for the same generator state (up to float rounding in near-ties).
    """
    block_size = model.config.block_size
    was_training = model.training
    model.eval()
    try:
        caches = None
        for _ in range(max_new_tokens):
            if use_cache and caches is not None and len(caches[0]) < block_size:
                logits, _ = model(idx[:, -1:], kv_caches=caches)              # only the new token
            elif use_cache and idx.shape[1] <= block_size and caches is None:
                caches = [KVCache() for _ in range(model.config.n_layer)]
                logits, _ = model(idx, kv_caches=caches)                      # fill the caches with the prompt
            else:
                logits, _ = model(idx[:, -block_size:])                       # recompute the cropped window
            nxt = sample_next(logits[:, -1, :], temperature=temperature, top_k=top_k, top_p=top_p,
                              generator=generator)
            idx = torch.cat([idx, nxt[:, None].to(idx.dtype)], dim=1)
    finally:
        model.train(was_training)
    return idx
