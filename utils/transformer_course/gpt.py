"""A GPT-2-shaped language model built from the shared blocks, and its training loop.

Taught in notebook 07 (GPT).  The model is nanoGPT's (Karpathy 2022), with its
configuration names (``n_layer``, ``n_head``, ``n_embd``, ``block_size``,
``vocab_size``, ``dropout``, ``bias``) and its ``forward(idx, targets=None) ->
(logits, loss)``, but its layers are the course's own
:class:`~transformer_course.blocks.EncoderBlock` run with a causal mask,
pre-LN and GPT-2's tanh GELU (Radford et al. 2019, "Language Models are
Unsupervised Multitask Learners").

- token embeddings ``wte`` plus learned absolute positions ``wpe``;
- ``n_layer`` pre-LN blocks: ``x = x + attn(ln_1(x)); x = x + mlp(ln_2(x))``;
- a final LayerNorm ``ln_f`` and a language-model head whose weight *is* the
  token embedding matrix (weight tying, Press & Wolf 2017).

:func:`load_gpt2_weights` copies transformers' ``GPT2LMHeadModel`` into it (the
parity tests' oracle); :func:`train_gpt` is nanoGPT's ``shakespeare_char``
recipe (AdamW, warm-up then cosine decay, weight decay on matrices only,
gradient clipping).  Sampling and KV-cache generation live in
:mod:`transformer_course.sampling`; the corpora in :mod:`transformer_course.corpus`.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from .blocks import EncoderBlock, LayerNorm

__all__ = [
    "GPTConfig",
    "GPT",
    "gpt2_small_param_count",
    "load_gpt2_weights",
    "hf_gpt2_config",
    "next_token_loss",
    "lr_at",
    "configure_optimizer",
    "estimate_loss",
    "train_gpt",
]


@dataclass
class GPTConfig:
    """nanoGPT's configuration names; the defaults are GPT-2 small (124M parameters)."""

    block_size: int = 1024          # longest context (number of learned positions)
    vocab_size: int = 50257         # GPT-2's BPE vocabulary (nanoGPT pads to 50304 for speed; we do not)
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = True               # biases in Linear layers and LayerNorms (GPT-2: True)
    activation: str = "gelu_tanh"   # GPT-2's tanh-approximated GELU; nanoGPT's model uses the exact "gelu"


def default_block(config: GPTConfig) -> nn.Module:
    """One GPT-2 block: the course's :class:`EncoderBlock`, pre-LN, ``config.activation`` (GPT-2's tanh GELU
    by default), ``d_ff = 4 n_embd``."""
    return EncoderBlock(config.n_embd, config.n_head, 4 * config.n_embd, dropout=config.dropout,
                        activation=getattr(config, "activation", "gelu_tanh"), norm_first=True, eps=1e-5,
                        bias=config.bias)


# parameter names (suffixes) of the projections that write into the residual stream
_RESIDUAL_PROJECTIONS = ("out_proj.weight", "fc2.weight", "c_proj.weight")


class GPT(nn.Module):
    """Decoder-only Transformer language model (GPT-2's architecture).

    ``forward(idx, targets=None, *, kv_caches=None) -> (logits, loss)``:

    - ``idx``: ``(B, T)`` token ids, ``T <= block_size``;
    - ``targets``: ``(B, T)`` the next tokens, already shifted by the caller
      (``targets[:, t] = idx[:, t + 1]``); entries ``-1`` (or ``-100``) are ignored;
    - ``kv_caches``: one :class:`~transformer_course.attention.KVCache` per
      layer while generating; positions continue from ``len(kv_caches[0])``.

    Returns logits ``(B, T, vocab_size)`` and the mean cross-entropy (or ``None``).

    ``block_factory(config)`` builds one block (default :func:`default_block`);
    the model calls it as ``block(x, is_causal=True, kv_cache=cache_or_None)``.
    """

    def __init__(self, config: GPTConfig, block_factory: Callable[[GPTConfig], nn.Module] | None = None) -> None:
        super().__init__()
        self.config = c = config
        make = block_factory or default_block
        self.wte = nn.Embedding(c.vocab_size, c.n_embd)
        self.wpe = nn.Embedding(c.block_size, c.n_embd)
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList([make(c) for _ in range(c.n_layer)])
        self.ln_f = LayerNorm(c.n_embd, 1e-5, bias=c.bias)
        self.lm_head = nn.Linear(c.n_embd, c.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight            # weight tying: one matrix, two uses
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """GPT-2's initialisation: N(0, 0.02) weights, zero biases, LayerNorms at (1, 0), and the
        projections into the residual stream at std ``0.02 / sqrt(2 n_layer)`` (two per block), so
        that the residual stream's variance does not grow with depth."""
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
        for name, p in self.named_parameters():
            if name.endswith(_RESIDUAL_PROJECTIONS):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * self.config.n_layer))

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, *, kv_caches=None):
        B, T = idx.shape
        offset = len(kv_caches[0]) if kv_caches is not None else 0
        if offset + T > self.config.block_size:
            raise ValueError(f"sequence of length {offset + T} (cached {offset} + new {T}) is longer than "
                             f"block_size={self.config.block_size}: crop the context to the last "
                             f"{self.config.block_size} tokens")
        pos = torch.arange(offset, offset + T, device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(pos))      # (B, T, n_embd)
        for i, block in enumerate(self.blocks):
            x = block(x, is_causal=True, kv_cache=None if kv_caches is None else kv_caches[i])
        x = self.ln_f(x)
        logits = self.lm_head(x)                          # (B, T, vocab_size)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(B * T, -1), _ignore_negative(targets).reshape(B * T),
                                   ignore_index=-1)
        return logits, loss

    def num_params(self, non_embedding: bool = False) -> int:
        """Number of parameters, the tied ``lm_head``/``wte`` matrix counted once.

        ``non_embedding=True`` leaves out the position embeddings (as nanoGPT does;
        the token embeddings count, being also the output layer's weights).
        """
        n = sum(p.numel() for p in self.parameters())     # parameters() lists a shared tensor once
        if non_embedding:
            n -= self.wpe.weight.numel()
        return n


def _ignore_negative(targets: torch.Tensor) -> torch.Tensor:
    """Map every negative target (nanoGPT's -1, transformers' -100) to -1, the ignored index."""
    return targets.clamp(min=-1)


def next_token_loss(logits: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of ``logits[:, :-1]`` against ``idx[:, 1:]``: each position predicts the next token."""
    V = logits.shape[-1]
    return F.cross_entropy(logits[:, :-1].reshape(-1, V), idx[:, 1:].reshape(-1))


def gpt2_small_param_count() -> int:
    """GPT-2 small's parameter count, 124,439,808, from a model built on the meta device.

    On the ``meta`` device tensors have shapes but no storage: the 124M-parameter
    model is built without allocating (or initialising) half a gigabyte.
    """
    with torch.device("meta"):
        model = GPT(GPTConfig())
    return model.num_params()


# ------------------------------------------------------------ transformers ---

def hf_gpt2_config(config: GPTConfig, attn_implementation: str = "eager"):
    """The ``transformers.GPT2Config`` of the same architecture (the oracle in the parity tests).

    Attention is transformers' ``"eager"`` implementation (the plain matrix
    products) unless ``attn_implementation`` says otherwise (e.g. ``"sdpa"``).
    ``GPT2LMHeadModel(hf_gpt2_config(config))`` builds the oracle.
    """
    from transformers import GPT2Config

    if not config.bias:
        raise ValueError("GPT-2 in transformers always has biases: use bias=True")
    if getattr(config, "activation", "gelu_tanh") != "gelu_tanh":
        raise ValueError("GPT-2 uses the tanh-approximated GELU: use activation='gelu_tanh'")
    return GPT2Config(vocab_size=config.vocab_size, n_positions=config.block_size, n_embd=config.n_embd,
                      n_layer=config.n_layer, n_head=config.n_head, n_inner=None,
                      activation_function="gelu_new", resid_pdrop=config.dropout, embd_pdrop=config.dropout,
                      attn_pdrop=config.dropout, layer_norm_epsilon=1e-5,
                      attn_implementation=attn_implementation)


@torch.no_grad()
def load_gpt2_weights(model: GPT, hf_model) -> GPT:
    """Copy a transformers ``GPT2LMHeadModel`` (or ``GPT2Model``) into ``model`` (default blocks).

    GPT-2's linear layers are ``Conv1D`` modules whose weights are stored as
    ``(in_features, out_features)``, the transpose of ``nn.Linear``'s: every one
    is transposed here.  ``c_attn`` holds the query, key and value projections
    side by side, ``(n_embd, 3 n_embd)``: it is split into three.  ``c_proj`` is
    square, so loading it untransposed would raise no shape error, only give
    wrong outputs.
    """
    t = getattr(hf_model, "transformer", hf_model)
    c = model.config
    if len(t.h) != c.n_layer or t.wte.weight.shape != model.wte.weight.shape \
            or t.wpe.weight.shape != model.wpe.weight.shape:
        raise ValueError("the transformers model's shapes differ from this GPT's config")
    model.wte.weight.copy_(t.wte.weight)                  # also lm_head's (tied)
    model.wpe.weight.copy_(t.wpe.weight)

    def linear(mine: nn.Linear, w: torch.Tensor, b: torch.Tensor | None) -> None:
        mine.weight.copy_(w.t())                          # Conv1D (in, out) -> Linear (out, in)
        if mine.bias is not None:
            mine.bias.copy_(b)

    def norm(mine, theirs) -> None:
        mine.weight.copy_(theirs.weight)
        if mine.bias is not None:
            mine.bias.copy_(theirs.bias)
        mine.eps = theirs.eps

    for block, h in zip(model.blocks, t.h):
        attn = block.self_attn
        w_q, w_k, w_v = h.attn.c_attn.weight.split(c.n_embd, dim=1)
        b_q, b_k, b_v = h.attn.c_attn.bias.split(c.n_embd)
        linear(attn.q_proj, w_q, b_q)
        linear(attn.k_proj, w_k, b_k)
        linear(attn.v_proj, w_v, b_v)
        linear(attn.out_proj, h.attn.c_proj.weight, h.attn.c_proj.bias)
        linear(block.ff.fc1, h.mlp.c_fc.weight, h.mlp.c_fc.bias)
        linear(block.ff.fc2, h.mlp.c_proj.weight, h.mlp.c_proj.bias)
        norm(block.norm1, h.ln_1)
        norm(block.norm2, h.ln_2)
    norm(model.ln_f, t.ln_f)
    if hasattr(hf_model, "lm_head") and not torch.equal(hf_model.lm_head.weight, t.wte.weight):
        raise ValueError("the transformers model's lm_head is not tied to wte; this GPT ties them")
    return model


# ---------------------------------------------------------------- training ---

def lr_at(it: int, *, lr: float, min_lr: float, warmup: int, decay_iters: int) -> float:
    """nanoGPT's schedule: linear warm-up for ``warmup`` steps, cosine decay to ``min_lr`` at ``decay_iters``."""
    if it < warmup:
        return lr * (it + 1) / (warmup + 1)
    if it > decay_iters:
        return min_lr
    ratio = (it - warmup) / max(1, decay_iters - warmup)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)


def configure_optimizer(model: nn.Module, *, lr: float, weight_decay: float, betas) -> torch.optim.AdamW:
    """AdamW with weight decay on the matrices (dim >= 2: linear weights, embeddings) only, not on
    biases and LayerNorm parameters (nanoGPT's ``configure_optimizers``)."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas))


@torch.no_grad()
def estimate_loss(model: nn.Module, data: torch.Tensor, *, batch_size: int, eval_iters: int = 20,
                  generator: torch.Generator | None = None, autocast=None) -> float:
    """Mean loss over ``eval_iters`` random batches of ``data`` in eval mode (nanoGPT's ``estimate_loss``),
    inside ``autocast`` (a context manager, e.g. from :func:`~transformer_course.device.mixed_precision`)."""
    from .corpus import get_batch

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    losses = []
    for _ in range(eval_iters):
        x, y = get_batch(data, model.config.block_size, batch_size, generator=generator, device=device)
        with autocast if autocast is not None else contextlib.nullcontext():
            losses.append(model(x, y)[1].item())
    model.train(was_training)
    return sum(losses) / len(losses)


def train_gpt(model: GPT, train_ids: torch.Tensor, val_ids: torch.Tensor, *, iters: int, batch_size: int,
              lr: float = 1e-3, min_lr: float = 1e-4, warmup: int = 100, weight_decay: float = 0.1,
              betas=(0.9, 0.99), grad_clip: float = 1.0, eval_every: int | None = None, eval_iters: int = 20,
              generator: torch.Generator | None = None, progress: bool = True, precision: str = "auto") -> dict:
    """Train ``model`` on random windows of ``train_ids`` with nanoGPT's ``shakespeare_char`` recipe.

    AdamW (``betas``, weight decay on matrices only), linear warm-up for
    ``warmup`` steps then cosine decay to ``min_lr`` over ``iters`` steps,
    gradients clipped to norm ``grad_clip``.  Every ``eval_every`` steps (default
    ``iters // 10``) and at the end, the mean loss over ``eval_iters`` batches of
    the training and validation data is recorded.

    ``precision`` (:func:`~transformer_course.device.mixed_precision`): ``"auto"`` trains with
    bfloat16 autocast on GPUs that support it, float16 with a gradient scaler on older GPUs and
    float32 on a CPU; ``"fp32"``, ``"bf16"``, ``"fp16"`` force one.

    The random draws come in nanoGPT's order, so ``torch.manual_seed(1337)`` before
    building the model and ``generator=None`` replay nanoGPT's run draw for draw
    (``tests/benchmarks/gpt_bench.py --full`` does, and reproduces its 1.886).

    Returns ``{"step": [...], "train": [...], "val": [...]}`` (the evaluations)
    plus ``"loss"``: the training loss of every step.
    """
    from tqdm.auto import tqdm

    from .corpus import get_batch
    from .device import mixed_precision

    eval_every = eval_every or max(1, iters // 10)
    device = next(model.parameters()).device
    autocast, scaler = mixed_precision(device, precision)
    block_size = model.config.block_size
    optimizer = configure_optimizer(model, lr=lr, weight_decay=weight_decay, betas=betas)
    history: dict = {"step": [], "train": [], "val": [], "loss": []}

    def evaluate(step: int) -> None:
        history["step"].append(step)
        history["train"].append(estimate_loss(model, train_ids, batch_size=batch_size, eval_iters=eval_iters,
                                              generator=generator, autocast=autocast))
        history["val"].append(estimate_loss(model, val_ids, batch_size=batch_size, eval_iters=eval_iters,
                                            generator=generator, autocast=autocast))

    model.train()
    # nanoGPT's order of random draws, so that a run seeded like nanoGPT's (torch.manual_seed(1337)
    # before building the model, generator=None) draws the same batches: the first batch before the
    # loop, the evaluation batches before each step, the next batch right after the forward pass
    x, y = get_batch(train_ids, block_size, batch_size, generator=generator, device=device)
    bar = tqdm(range(iters), desc="training", disable=not progress)
    for it in bar:
        for group in optimizer.param_groups:
            group["lr"] = lr_at(it, lr=lr, min_lr=min_lr, warmup=warmup, decay_iters=iters)
        if it % eval_every == 0:
            evaluate(it)
            bar.set_postfix(train=f"{history['train'][-1]:.3f}", val=f"{history['val'][-1]:.3f}")
        with autocast:
            _, loss = model(x, y)
        x, y = get_batch(train_ids, block_size, batch_size, generator=generator, device=device)
        optimizer.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
            if grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
        else:                                   # float16: scale the loss up, unscale before clipping
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            if grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            scaler.step(optimizer)
            scaler.update()
        history["loss"].append(loss.item())
    evaluate(iters)
    bar.set_postfix(train=f"{history['train'][-1]:.3f}", val=f"{history['val'][-1]:.3f}")
    bar.close()
    model.eval()
    return history
