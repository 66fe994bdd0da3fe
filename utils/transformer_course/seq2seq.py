"""A small encoder-decoder Transformer and its training on digit tasks.

Taught in notebook 05 (transformer blocks): the blocks of
:mod:`transformer_course.blocks` stacked into the architecture of "Attention Is
All You Need" (token embeddings scaled by ``sqrt(d_model)``, sinusoidal positions,
N encoder blocks, N decoder blocks, a linear head), trained with teacher forcing
to reverse or sort digit sequences and decoded greedily.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .blocks import DecoderBlock, EncoderBlock, LayerNorm
from .data import DigitVocab, make_digit_batch
from .positions import SinusoidalPositions

__all__ = ["Seq2SeqConfig", "Seq2SeqTransformer", "greedy_decode", "exact_match", "train_seq2seq"]


@dataclass
class Seq2SeqConfig:
    vocab_size: int = DigitVocab().size
    d_model: int = 64
    n_heads: int = 4
    d_ff: int = 128
    n_layers: int = 2
    max_len: int = 32
    dropout: float = 0.0
    norm_first: bool = True


class Seq2SeqTransformer(nn.Module):
    """Encoder-decoder Transformer built from :class:`EncoderBlock` and :class:`DecoderBlock`.

    ``forward(src, tgt_in)`` -> logits ``(B, T, vocab_size)``: ``src`` ``(B, S)``
    token ids, ``tgt_in`` ``(B, T)`` the target shifted right (``BOS`` first).
    ``block_factory(kind, config)`` lets a notebook build the stack from the
    learner's blocks (``kind`` is ``"encoder"`` or ``"decoder"``).
    """

    def __init__(self, config: Seq2SeqConfig = Seq2SeqConfig(),
                 block_factory: Callable[[str, Seq2SeqConfig], nn.Module] | None = None) -> None:
        super().__init__()
        self.config = c = config

        def default_factory(kind, c):
            cls = EncoderBlock if kind == "encoder" else DecoderBlock
            return cls(c.d_model, c.n_heads, c.d_ff, dropout=c.dropout, norm_first=c.norm_first)

        make = block_factory or default_factory
        self.src_embed = nn.Embedding(c.vocab_size, c.d_model)
        self.tgt_embed = nn.Embedding(c.vocab_size, c.d_model)
        self.positions = SinusoidalPositions(c.max_len, c.d_model)
        self.encoder = nn.ModuleList([make("encoder", c) for _ in range(c.n_layers)])
        self.decoder = nn.ModuleList([make("decoder", c) for _ in range(c.n_layers)])
        # pre-LN stacks end with one more LayerNorm (their blocks' outputs are un-normalised sums)
        self.enc_norm = LayerNorm(c.d_model) if c.norm_first else nn.Identity()
        self.dec_norm = LayerNorm(c.d_model) if c.norm_first else nn.Identity()
        self.head = nn.Linear(c.d_model, c.vocab_size)
        # std d^-1/2, so that embeddings scaled by sqrt(d) are about as large as the
        # positions (torch's default N(0, 1) would drown the positions eightfold)
        for table in (self.src_embed, self.tgt_embed):
            nn.init.normal_(table.weight, std=c.d_model ** -0.5)

    def embed(self, table: nn.Embedding, ids: torch.Tensor) -> torch.Tensor:
        return self.positions(table(ids) * math.sqrt(self.config.d_model))   # (B, T, d_model)

    def encode(self, src: torch.Tensor, src_mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.embed(self.src_embed, src)
        for block in self.encoder:
            h = block(h, src_mask)
        return self.enc_norm(h)                                               # (B, S, d_model)

    def decode(self, tgt_in: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor | None = None):
        h = self.embed(self.tgt_embed, tgt_in)
        for block in self.decoder:
            h = block(h, memory, memory_mask=memory_mask, is_causal=True)
        return self.head(self.dec_norm(h))                                    # (B, T, vocab_size)

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor, src_mask: torch.Tensor | None = None):
        return self.decode(tgt_in, self.encode(src, src_mask), src_mask)


@torch.no_grad()
def greedy_decode(model: nn.Module, src: torch.Tensor, length: int, bos: int = DigitVocab().bos) -> torch.Tensor:
    """Generate ``length`` tokens per source sequence, each the most likely given the ones before.

    Calls ``model(src, tgt_in)`` once per new token (no cache: the outputs are
    short), appending the argmax of the last position.  Returns ``(B, length)``.
    """
    was_training = model.training
    model.eval()
    out = torch.full((src.shape[0], 1), bos, dtype=torch.long, device=src.device)
    for _ in range(length):
        logits = model(src, out)                                              # (B, t, vocab)
        out = torch.cat([out, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    model.train(was_training)
    return out[:, 1:]


def exact_match(model: nn.Module, n: int = 500, length: int = 8, task: str = "reverse",
                rng: np.random.Generator | None = None, device: torch.device | str = "cpu") -> float:
    """Fraction of ``n`` fresh sequences whose whole greedy output equals the answer."""
    src, tgt = make_digit_batch(n, length, task, rng=rng)
    pred = greedy_decode(model, torch.as_tensor(src, device=device), length).cpu().numpy()
    return float((pred == tgt).all(axis=1).mean())


def shift_right(tgt: torch.Tensor, bos: int = DigitVocab().bos) -> torch.Tensor:
    """Teacher forcing input: ``[BOS, y_0, ..., y_{T-2}]`` for target ``[y_0, ..., y_{T-1}]``."""
    return torch.cat([torch.full_like(tgt[:, :1], bos), tgt[:, :-1]], dim=1)


def train_seq2seq(model: nn.Module, steps: int = 600, batch_size: int = 64, length: int = 8, task: str = "reverse",
                  lr: float = 1e-3, warmup: int = 0, seed: int | None = 0, device: torch.device | str = "cpu",
                  progress: bool = True) -> list[float]:
    """Train with teacher forcing and cross-entropy on fresh batches; returns the loss of every step.

    ``warmup``: steps of linear learning-rate warm-up (post-LN stacks need it;
    pre-LN stacks do not).  A NaN loss stops training early.
    """
    from tqdm.auto import tqdm

    rng = np.random.default_rng(seed)
    if seed is not None:
        torch.manual_seed(seed)
    model.to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.98))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup) if warmup else 1.0)
    losses: list[float] = []
    bar = tqdm(range(steps), desc=f"training ({task})", disable=not progress, leave=False)
    for _ in bar:
        src, tgt = (torch.as_tensor(a, device=device) for a in make_digit_batch(batch_size, length, task, rng=rng))
        logits = model(src, shift_right(tgt))
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        if not math.isfinite(losses[-1]):
            break
        if len(losses) % 50 == 0:
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
    model.eval()
    return losses
