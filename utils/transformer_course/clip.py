"""CLIP: an image tower and a text tower trained to agree, and what that gives for free.

Taught in notebook 09.  Radford et al. (2021, "Learning Transferable Visual Models From Natural Language
Supervision") train a :class:`~transformer_course.vision.VisionTransformer` and a causal text Transformer
(:class:`TextEncoder`) so that an image and its caption land close together in a shared space: each tower's
feature is projected (no bias) to ``embed_dim``, L2-normalised, and the ``B x B`` cosine similarities of a
batch, times ``exp(logit_scale)``, are the logits of a cross-entropy whose right answers are the diagonal,
in both directions (:func:`clip_loss`, the symmetric InfoNCE of van den Oord et al. 2018).  The temperature
is learned: ``logit_scale`` starts at ``ln(1/0.07) = 2.6592`` and is clamped to at most ``ln 100`` after
each step, as OpenAI's and open_clip's training code do.

Zero-shot classification (:func:`class_embeddings`, :func:`zero_shot_predict`) embeds one caption per class
per prompt template, averages each class's normalised embeddings and renormalises; an image's class is its
most similar one.  Retrieval is measured by recall at k (:func:`recall_at_k`).

The layout and names follow transformers' ``CLIPModel`` closely enough that :func:`copy_to_hf` can copy
every weight into ``CLIPModel(hf_clip_config(...))`` (GELU, eager attention, the end-of-text id set), the
parity tests' oracle.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .blocks import EncoderBlock, LayerNorm
from .vision import VisionTransformer

__all__ = [
    "CLIPConfig", "TextEncoder", "CLIP", "clip_loss", "LOGIT_SCALE_INIT", "LOGIT_SCALE_MAX",
    "hf_clip_config", "copy_to_hf", "HF_NAMES",
    "class_embeddings", "zero_shot_predict", "recall_at_k", "train_clip", "evaluate_zero_shot",
]

LOGIT_SCALE_INIT = math.log(1 / 0.07)       # 2.6592: a temperature of 0.07
LOGIT_SCALE_MAX = math.log(100.0)           # the clamp: logits at most 100 x a cosine


@dataclass
class CLIPConfig:
    """A tiny CLIP; the defaults suit notebook 09's 32 x 32 shapes."""

    vocab_size: int
    eos_token_id: int
    context_length: int = 8
    image_size: int = 32
    patch_size: int = 8
    channels: int = 3
    vision_width: int = 64
    vision_layers: int = 2
    vision_heads: int = 4
    text_width: int = 64
    text_layers: int = 2
    text_heads: int = 4
    embed_dim: int = 32


class TextEncoder(nn.Module):
    """CLIP's text tower: ``ids (B, T) -> (B, d)``, the final (normalised) state at each caption's first
    end-of-text token.  Causal blocks, so that a position never reads the padding after it."""

    def __init__(self, vocab_size: int, context_length: int, eos_token_id: int, d_model: int = 64,
                 n_layers: int = 2, n_heads: int = 4, eps: float = 1e-5) -> None:
        super().__init__()
        self.context_length, self.eos_token_id = context_length, eos_token_id
        self.token_embedding = nn.Embedding(vocab_size, d_model)
        self.position_embedding = nn.Embedding(context_length, d_model)
        self.blocks = nn.ModuleList(EncoderBlock(d_model, n_heads, 4 * d_model, activation="gelu", norm_first=True,
                                                 eps=eps) for _ in range(n_layers))
        self.final_norm = LayerNorm(d_model, eps)
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.position_embedding.weight, std=0.01)

    def check_ids(self, ids: torch.Tensor) -> None:
        """A clear error for captions longer than the context or without an end-of-text token."""
        if ids.dim() != 2:
            raise ValueError(f"expected token ids of shape (B, T), got {tuple(ids.shape)}")
        if ids.shape[1] > self.context_length:
            raise ValueError(f"captions of {ids.shape[1]} tokens are longer than the context length "
                             f"{self.context_length}")
        if not bool((ids == self.eos_token_id).any(dim=1).all()):
            raise ValueError(f"every caption needs an end-of-text token (id {self.eos_token_id}): its features are "
                             f"read there")

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        self.check_ids(ids)
        T = ids.shape[1]
        x = self.token_embedding(ids) + self.position_embedding.weight[:T]
        for block in self.blocks:
            x = block(x, is_causal=True)
        x = self.final_norm(x)
        eot = (ids == self.eos_token_id).int().argmax(dim=1)          # the FIRST end-of-text token of each row
        return x[torch.arange(ids.shape[0], device=ids.device), eot]


class CLIP(nn.Module):
    """The two towers, their projections and the learned temperature.

    ``visual`` and ``text`` may be given (a learner's own towers, with this module's attribute names);
    by default they are :class:`~transformer_course.vision.VisionTransformer` and :class:`TextEncoder`.

    ``encode_image(images) -> (B, embed_dim)`` and ``encode_text(ids) -> (B, embed_dim)`` are projected but
    not normalised; ``forward(images, ids) -> (logits_per_image, logits_per_text)``, the ``(B, B)`` scaled
    cosine similarities (``logits_per_text`` is the transpose).
    """

    def __init__(self, config: CLIPConfig, visual: nn.Module | None = None, text: nn.Module | None = None) -> None:
        super().__init__()
        c = self.config = config
        self.visual = visual if visual is not None else VisionTransformer(
            c.image_size, c.patch_size, c.channels, c.vision_width, c.vision_layers, c.vision_heads)
        self.text = text if text is not None else TextEncoder(
            c.vocab_size, c.context_length, c.eos_token_id, c.text_width, c.text_layers, c.text_heads)
        self.visual_projection = nn.Linear(c.vision_width, c.embed_dim, bias=False)
        self.text_projection = nn.Linear(c.text_width, c.embed_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(LOGIT_SCALE_INIT))

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return self.visual_projection(self.visual(images))

    def encode_text(self, ids: torch.Tensor) -> torch.Tensor:
        return self.text_projection(self.text(ids))

    def forward(self, images: torch.Tensor, ids: torch.Tensor):
        img = F.normalize(self.encode_image(images), dim=-1)
        txt = F.normalize(self.encode_text(ids), dim=-1)
        logits_per_image = self.logit_scale.exp() * img @ txt.T
        return logits_per_image, logits_per_image.T


def clip_loss(image_embeds: torch.Tensor, text_embeds: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE: normalise both, logits ``exp(logit_scale) * img @ txt^T``, cross-entropy with the
    diagonal as the answers over the rows (image -> text) and over the columns (text -> image), averaged."""
    img = F.normalize(image_embeds, dim=-1)
    txt = F.normalize(text_embeds, dim=-1)
    logits = logit_scale.exp() * img @ txt.T
    labels = torch.arange(logits.shape[0], device=logits.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


# -------------------------------------------------------------- transformers ---

def hf_clip_config(config: CLIPConfig):
    """transformers' ``CLIPConfig`` of the same model: exact GELU, eager attention, eps 1e-5, and the
    end-of-text id set (CLIPTextConfig's default, 49407, would make it pool position 0 of a small vocabulary)."""
    from transformers import CLIPConfig as HFCLIPConfig

    c = config
    text = dict(vocab_size=c.vocab_size, hidden_size=c.text_width, intermediate_size=4 * c.text_width,
                num_hidden_layers=c.text_layers, num_attention_heads=c.text_heads,
                max_position_embeddings=c.context_length, hidden_act="gelu", layer_norm_eps=1e-5,
                eos_token_id=c.eos_token_id, bos_token_id=1, pad_token_id=0, projection_dim=c.embed_dim)
    vision = dict(hidden_size=c.vision_width, intermediate_size=4 * c.vision_width, num_hidden_layers=c.vision_layers,
                  num_attention_heads=c.vision_heads, image_size=c.image_size, patch_size=c.patch_size,
                  num_channels=c.channels, hidden_act="gelu", layer_norm_eps=1e-5, projection_dim=c.embed_dim)
    hf = HFCLIPConfig(text_config=text, vision_config=vision, projection_dim=c.embed_dim,
                      logit_scale_init_value=LOGIT_SCALE_INIT)
    hf._attn_implementation = "eager"
    hf.text_config._attn_implementation = "eager"
    hf.vision_config._attn_implementation = "eager"
    return hf


def _layer_names(prefix_mine: str, prefix_hf: str, n: int) -> dict[str, str]:
    out = {}
    for i in range(n):
        mine, hf = f"{prefix_mine}.blocks.{i}.", f"{prefix_hf}.encoder.layers.{i}."
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            for p in ("weight", "bias"):
                out[f"{mine}self_attn.{proj}.{p}"] = f"{hf}self_attn.{proj}.{p}"
        for a, b in (("norm1", "layer_norm1"), ("norm2", "layer_norm2"), ("ff.fc1", "mlp.fc1"), ("ff.fc2", "mlp.fc2")):
            for p in ("weight", "bias"):
                out[f"{mine}{a}.{p}"] = f"{hf}{b}.{p}"
    return out


def HF_NAMES(config: CLIPConfig) -> dict[str, str]:
    """Each parameter of :class:`CLIP` and the name of the same parameter in transformers' ``CLIPModel``."""
    names = {
        "visual.class_embedding": "vision_model.embeddings.class_embedding",
        "visual.patch_embed.proj.weight": "vision_model.embeddings.patch_embedding.weight",
        "visual.position_embedding.weight": "vision_model.embeddings.position_embedding.weight",
        "visual.pre_norm.weight": "vision_model.pre_layrnorm.weight",
        "visual.pre_norm.bias": "vision_model.pre_layrnorm.bias",
        "visual.post_norm.weight": "vision_model.post_layernorm.weight",
        "visual.post_norm.bias": "vision_model.post_layernorm.bias",
        "text.token_embedding.weight": "text_model.embeddings.token_embedding.weight",
        "text.position_embedding.weight": "text_model.embeddings.position_embedding.weight",
        "text.final_norm.weight": "text_model.final_layer_norm.weight",
        "text.final_norm.bias": "text_model.final_layer_norm.bias",
        "visual_projection.weight": "visual_projection.weight",
        "text_projection.weight": "text_projection.weight",
        "logit_scale": "logit_scale",
    }
    names.update(_layer_names("visual", "vision_model", config.vision_layers))
    names.update(_layer_names("text", "text_model", config.text_layers))
    return names


@torch.no_grad()
def copy_to_hf(model: CLIP, hf_model) -> None:
    """Copy every parameter of ``model`` into transformers' ``hf_model`` (same shapes, no transposes: both
    use ``nn.Linear`` and ``nn.Conv2d``)."""
    theirs = dict(hf_model.named_parameters())
    for mine_name, p in model.named_parameters():
        theirs[HF_NAMES(model.config)[mine_name]].copy_(p)


# ---------------------------------------------------------------- zero-shot ---

@torch.no_grad()
def class_embeddings(model: CLIP, tokenizer, classnames: Sequence[tuple[str, str]] | Sequence[str],
                     templates: Sequence[str]) -> torch.Tensor:
    """``(n_classes, embed_dim)``: per class, the normalised text embeddings of its caption in every template,
    averaged, then normalised again (Radford et al. 2021, section 3.1.4, prompt ensembling).

    A class is a ``(colour, shape)`` pair (filled into templates with ``{c}`` and ``{s}``) or a string
    (templates with ``{}``)."""
    device = next(model.parameters()).device
    rows = []
    for cls in classnames:
        texts = [t.format(c=cls[0], s=cls[1]) if isinstance(cls, tuple) else t.format(cls) for t in templates]
        emb = F.normalize(model.encode_text(tokenizer.encode(texts).to(device)), dim=-1)
        rows.append(F.normalize(emb.mean(dim=0), dim=-1))
    return torch.stack(rows)


@torch.no_grad()
def zero_shot_predict(model: CLIP, images: torch.Tensor, class_embeds: torch.Tensor) -> torch.Tensor:
    """The index of each image's most similar class embedding."""
    device = next(model.parameters()).device
    img = F.normalize(model.encode_image(images.to(device)), dim=-1)
    return (img @ class_embeds.to(device).T).argmax(dim=-1).cpu()


def recall_at_k(similarity: torch.Tensor, k: int) -> float:
    """Image-to-text recall at ``k``: the share of rows ``i`` (images) whose own column ``i`` (its caption) is
    among the row's ``k`` largest similarities."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    top = similarity.topk(min(k, similarity.shape[1]), dim=1).indices
    target = torch.arange(similarity.shape[0], device=similarity.device)[:, None]
    return float((top == target).any(dim=1).float().mean())


@torch.no_grad()
def evaluate_zero_shot(model: CLIP, tokenizer, pairs: Sequence[tuple[str, str]], *, n: int = 500, seed: int = 0,
                       templates: Sequence[str] | None = None, embed: Callable | None = None) -> float:
    """Zero-shot accuracy on ``n`` fresh images of ``pairs``, classified among every colour-shape pair."""
    from . import shapes

    templates = templates or shapes.TEMPLATES
    classes = list(itertools.product(shapes.COLOURS, shapes.SHAPES))
    was = model.training
    model.eval()
    emb = (embed or class_embeddings)(model, tokenizer, classes, templates)
    gen = np.random.default_rng(seed)
    chosen = shapes.sample_pairs(n, pairs, generator=gen)
    colours, kinds = zip(*chosen)
    images = shapes.render(colours, kinds, image_size=model.config.image_size, generator=gen)
    pred = zero_shot_predict(model, images, emb)
    truth = torch.tensor([classes.index(p) for p in chosen])
    model.train(was)
    return float((pred == truth).float().mean())


# ----------------------------------------------------------------- training ---

def train_clip(model: CLIP, tokenizer, *, steps: int = 600, batch_size: int = 128, lr: float = 2e-3,
               weight_decay: float = 0.05, loss_fn: Callable = clip_loss, seed: int = 0,
               pairs: Sequence[tuple[str, str]] | None = None, progress: bool = True) -> dict:
    """Train on fresh generated batches (a new one every step): AdamW, linear warm-up for 5% of the steps then
    cosine decay, ``logit_scale`` clamped to ``[0, ln 100]`` after every step.

    Returns ``{"loss": [...], "logit_scale": [...]}`` per step.
    """
    from tqdm.auto import tqdm

    from . import shapes

    pairs = pairs or shapes.TRAIN_PAIRS
    device = next(model.parameters()).device
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    rest = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}],
                            lr=lr, betas=(0.9, 0.98), eps=1e-6)
    warmup = max(1, steps // 20)
    gen = np.random.default_rng(seed)
    history: dict = {"loss": [], "logit_scale": []}
    model.train()
    bar = tqdm(range(steps), desc="training CLIP", disable=not progress)
    for step in bar:
        scale = (step + 1) / warmup if step < warmup else 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))
        for group in opt.param_groups:
            group["lr"] = lr * scale
        images, ids, _, _ = shapes.make_batch(batch_size, tokenizer, pairs=pairs, image_size=model.config.image_size,
                                              generator=gen)
        images, ids = images.to(device), ids.to(device)
        loss = loss_fn(model.encode_image(images), model.encode_text(ids), model.logit_scale)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0.0, LOGIT_SCALE_MAX)
        history["loss"].append(float(loss.detach()))
        history["logit_scale"].append(float(model.logit_scale.detach()))
        if step % 20 == 0 or step == steps - 1:
            bar.set_postfix(loss=f"{history['loss'][-1]:.3f}", temperature=f"{math.exp(-history['logit_scale'][-1]):.3f}")
    model.eval()
    return history
