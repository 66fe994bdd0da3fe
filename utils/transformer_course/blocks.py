"""Transformer blocks: LayerNorm, the feed-forward network, encoder and decoder blocks.

Taught in notebook 05 (transformer blocks).  The same blocks become BERT's layers
(06: post-LN, exact GELU, eps 1e-12), GPT's layers (07: an :class:`EncoderBlock`
with ``norm_first=True``, tanh GELU and a causal mask) and the ViT's layers (09).

Two arrangements of the residual stream (Xiong et al. 2020, "On Layer
Normalization in the Transformer Architecture"):

- **post-LN** (the original Transformer, BERT): ``x = norm(x + sublayer(x))``;
- **pre-LN** (GPT-2 and most models since): ``x = x + sublayer(norm(x))``, with
  one more LayerNorm after the last block.  Gradients reach early layers
  undiminished, so it trains without a learning-rate warm-up.

Masks follow :mod:`transformer_course.attention`: boolean, ``True`` = may attend
(the opposite of torch's ``nn.Transformer*`` masks, where ``True`` = blocked).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .attention import MultiHeadAttention, load_torch_mha

__all__ = [
    "layer_norm",
    "LayerNorm",
    "FeedForward",
    "EncoderBlock",
    "DecoderBlock",
    "load_torch_encoder_layer",
    "load_torch_decoder_layer",
]

ACTIVATIONS = {
    "relu": F.relu,                                             # the original Transformer; torch's default
    "gelu": F.gelu,                                             # BERT: the exact erf form
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),       # GPT-2's tanh approximation
}


def layer_norm(x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None,
               eps: float = 1e-5) -> torch.Tensor:
    r"""Normalise each position's features: :math:`\gamma (x - \mu) / \sqrt{\sigma^2 + \epsilon} + \beta`.

    Mean and variance are over the last axis only (one position at a time, so
    the result does not depend on the batch); the variance is the biased one
    (divide by ``d``, not ``d - 1``), and ``eps`` sits inside the square root.
    """
    mean = x.mean(dim=-1, keepdim=True)
    var = x.var(dim=-1, keepdim=True, unbiased=False)
    y = (x - mean) / torch.sqrt(var + eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


class LayerNorm(nn.Module):
    """LayerNorm over the last axis with a learned scale ``weight`` (ones) and shift ``bias`` (zeros).

    ``eps``: 1e-5 in torch and GPT-2; 1e-12 in BERT.
    """

    def __init__(self, d_model: int, eps: float = 1e-5, bias: bool = True) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))
        self.bias = nn.Parameter(torch.zeros(d_model)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the formula of layer_norm above, computed by torch's fused kernel (one pass forward and backward;
        # equal to it up to float rounding, as tests/test_blocks.py checks)
        return F.layer_norm(x, x.shape[-1:], self.weight, self.bias, self.eps)


class FeedForward(nn.Module):
    """The position-wise network ``fc2(dropout(act(fc1(x))))``: ``d_model -> d_ff -> d_model``.

    It acts on each position separately; ``d_ff`` is usually ``4 d_model``.
    """

    def __init__(self, d_model: int, d_ff: int, *, activation: str = "relu", dropout: float = 0.0,
                 bias: bool = True) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        self.fc1 = nn.Linear(d_model, d_ff, bias=bias)
        self.fc2 = nn.Linear(d_ff, d_model, bias=bias)
        self.activation = activation
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.dropout(ACTIVATIONS[self.activation](self.fc1(x))))


class EncoderBlock(nn.Module):
    """Self-attention then feed-forward, each wrapped in a residual and a LayerNorm.

    ``forward(x, mask=None, *, is_causal=False, kv_cache=None, rotary=None)``
    maps ``(B, T, d_model) -> (B, T, d_model)``; ``mask`` and the keywords go to
    :class:`~transformer_course.attention.MultiHeadAttention`.  With
    ``is_causal=True`` it is a GPT block: "decoder-only" models are stacks of
    this block with a causal mask, not of :class:`DecoderBlock`.  The last
    attention weights are kept in ``self.attention_weights`` when
    ``need_weights=True``.
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, *, dropout: float = 0.0, activation: str = "relu",
                 norm_first: bool = False, eps: float = 1e-5, bias: bool = True) -> None:
        super().__init__()
        self.norm_first = norm_first
        self.self_attn = MultiHeadAttention(d_model, n_heads, bias=bias, dropout=dropout)
        self.ff = FeedForward(d_model, d_ff, activation=activation, dropout=dropout, bias=bias)
        self.norm1 = LayerNorm(d_model, eps, bias=bias)
        self.norm2 = LayerNorm(d_model, eps, bias=bias)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.attention_weights: torch.Tensor | None = None

    def _attend(self, x, mask, is_causal, kv_cache, rotary, need_weights):
        out, self.attention_weights = self.self_attn(x, mask=mask, is_causal=is_causal, kv_cache=kv_cache,
                                                     rotary=rotary, need_weights=need_weights)
        return self.dropout1(out)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, *, is_causal: bool = False,
                kv_cache=None, rotary=None, need_weights: bool = False) -> torch.Tensor:
        if self.norm_first:                                     # pre-LN: x + f(norm(x))
            x = x + self._attend(self.norm1(x), mask, is_causal, kv_cache, rotary, need_weights)
            x = x + self.dropout2(self.ff(self.norm2(x)))
        else:                                                   # post-LN: norm(x + f(x))
            x = self.norm1(x + self._attend(x, mask, is_causal, kv_cache, rotary, need_weights))
            x = self.norm2(x + self.dropout2(self.ff(x)))
        return x


class DecoderBlock(nn.Module):
    """Causal self-attention, cross-attention to the encoder's output, then feed-forward.

    ``forward(x, memory, *, mask=None, memory_mask=None, is_causal=True,
    kv_cache=None)``: ``x`` ``(B, T, d_model)`` are the target positions,
    ``memory`` ``(B, S, d_model)`` the encoder's output.  ``mask`` restricts
    self-attention (beyond the causal mask), ``memory_mask`` (e.g. a
    ``(B, 1, S)`` :func:`~transformer_course.attention.padding_mask` of the
    source) restricts cross-attention.  ``kv_cache`` caches self-attention only:
    the memory's keys and values do not change while decoding.
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, *, dropout: float = 0.0, activation: str = "relu",
                 norm_first: bool = False, eps: float = 1e-5, bias: bool = True) -> None:
        super().__init__()
        self.norm_first = norm_first
        self.self_attn = MultiHeadAttention(d_model, n_heads, bias=bias, dropout=dropout)
        self.cross_attn = MultiHeadAttention(d_model, n_heads, bias=bias, dropout=dropout)
        self.ff = FeedForward(d_model, d_ff, activation=activation, dropout=dropout, bias=bias)
        self.norm1 = LayerNorm(d_model, eps, bias=bias)
        self.norm2 = LayerNorm(d_model, eps, bias=bias)
        self.norm3 = LayerNorm(d_model, eps, bias=bias)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, *, mask: torch.Tensor | None = None,
                memory_mask: torch.Tensor | None = None, is_causal: bool = True, kv_cache=None) -> torch.Tensor:
        def self_block(h):
            return self.dropout1(self.self_attn(h, mask=mask, is_causal=is_causal, kv_cache=kv_cache)[0])

        def cross_block(h):
            return self.dropout2(self.cross_attn(h, memory, mask=memory_mask)[0])

        if self.norm_first:
            x = x + self_block(self.norm1(x))
            x = x + cross_block(self.norm2(x))
            x = x + self.dropout3(self.ff(self.norm3(x)))
        else:
            x = self.norm1(x + self_block(x))
            x = self.norm2(x + cross_block(x))
            x = self.norm3(x + self.dropout3(self.ff(x)))
        return x


# ------------------------------------------------- weights from torch ---

@torch.no_grad()
def _copy_linear(mine: nn.Linear, theirs: nn.Linear) -> None:
    mine.weight.copy_(theirs.weight)
    if mine.bias is not None:
        mine.bias.copy_(theirs.bias)


@torch.no_grad()
def _copy_norm(mine: LayerNorm, theirs: nn.LayerNorm) -> None:
    mine.weight.copy_(theirs.weight)
    if mine.bias is not None:
        mine.bias.copy_(theirs.bias)
    mine.eps = theirs.eps


def load_torch_encoder_layer(mine: EncoderBlock, theirs: nn.TransformerEncoderLayer) -> EncoderBlock:
    """Copy a :class:`torch.nn.TransformerEncoderLayer`'s weights (and eps) into ``mine``."""
    if mine.norm_first != theirs.norm_first:
        raise ValueError(f"norm_first differs: yours {mine.norm_first}, torch's {theirs.norm_first}")
    load_torch_mha(mine.self_attn, theirs.self_attn)
    _copy_linear(mine.ff.fc1, theirs.linear1)
    _copy_linear(mine.ff.fc2, theirs.linear2)
    _copy_norm(mine.norm1, theirs.norm1)
    _copy_norm(mine.norm2, theirs.norm2)
    return mine


def load_torch_decoder_layer(mine: DecoderBlock, theirs: nn.TransformerDecoderLayer) -> DecoderBlock:
    """Copy a :class:`torch.nn.TransformerDecoderLayer`'s weights (and eps) into ``mine``."""
    if mine.norm_first != theirs.norm_first:
        raise ValueError(f"norm_first differs: yours {mine.norm_first}, torch's {theirs.norm_first}")
    load_torch_mha(mine.self_attn, theirs.self_attn)
    load_torch_mha(mine.cross_attn, theirs.multihead_attn)
    _copy_linear(mine.ff.fc1, theirs.linear1)
    _copy_linear(mine.ff.fc2, theirs.linear2)
    for m, t in ((mine.norm1, theirs.norm1), (mine.norm2, theirs.norm2), (mine.norm3, theirs.norm3)):
        _copy_norm(m, t)
    return mine
