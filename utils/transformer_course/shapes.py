"""Generated images of coloured shapes and their captions: notebook 09's image-text data.

Each image is a small RGB picture of one shape (circle, square, triangle or cross) in one colour, at a
random position and size, on a dark, slightly noisy background; its caption says the colour and the shape
in one of several templates ("a red circle", "a photo of a red circle", ...).  Everything is drawn with
numpy from a seed, so the data is the same on every machine and costs no download.

Zero-shot on *unseen combinations*: :data:`HELD_OUT` lists colour-shape pairs that the training images
never show (every colour and every shape does appear, in other pairs).  A model that classifies held-out
images correctly has composed "red" and "circle" from what it learned separately, which is what
"zero-shot" should mean.

:class:`ShapeTokenizer` is a word-level tokenizer over the captions' words, with CLIP's layout: a
start-of-text token, the words, an end-of-text token, then padding; the end-of-text token has the highest
id (as in CLIP's own vocabulary), and it is never 2 (transformers' ``CLIPTextModel`` treats
``eos_token_id == 2`` as a legacy configuration and pools at the largest token id instead).
"""
from __future__ import annotations

import itertools
from typing import Iterable, Sequence

import numpy as np
import torch

__all__ = [
    "COLOURS", "SHAPES", "TEMPLATES", "HELD_OUT", "TRAIN_PAIRS", "ShapeTokenizer",
    "render", "sample_pairs", "make_batch", "caption",
]

#: Colour names and their RGB values (0..1).
COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.90, 0.12, 0.10),
    "green": (0.10, 0.75, 0.20),
    "blue": (0.15, 0.35, 0.95),
    "yellow": (0.95, 0.88, 0.10),
    "purple": (0.62, 0.20, 0.85),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "cross")
#: Caption templates; ``{c}`` is the colour, ``{s}`` the shape.
TEMPLATES: tuple[str, ...] = ("a {c} {s}", "a photo of a {c} {s}", "a picture of a {c} {s}", "this is a {c} {s}",
                              "a {s} in {c}")
#: Colour-shape pairs never shown in training: each colour and each shape still appears in other pairs.
HELD_OUT: tuple[tuple[str, str], ...] = (("red", "circle"), ("green", "square"), ("blue", "triangle"),
                                        ("yellow", "cross"), ("purple", "circle"))
TRAIN_PAIRS: tuple[tuple[str, str], ...] = tuple(p for p in itertools.product(COLOURS, SHAPES) if p not in HELD_OUT)


def caption(colour: str, shape: str, template: str = TEMPLATES[0]) -> str:
    """The caption of a ``colour`` ``shape`` in ``template``."""
    return template.format(c=colour, s=shape)


class ShapeTokenizer:
    """Word-level tokens for the captions: ``<pad>`` = 0, ``<sot>`` = 1, the words, then ``<eot>`` last."""

    def __init__(self, context_length: int = 8) -> None:
        words = sorted({w for t in TEMPLATES for w in t.replace("{c}", "").replace("{s}", "").split()}
                       | set(COLOURS) | set(SHAPES))
        self.itos = ["<pad>", "<sot>", *words, "<eot>"]
        self.stoi = {w: i for i, w in enumerate(self.itos)}
        self.pad_id, self.sot_id, self.eot_id = 0, 1, len(self.itos) - 1
        self.context_length = context_length

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode(self, captions: str | Sequence[str]) -> torch.Tensor:
        """``(B, context_length)`` token ids: ``<sot>``, the words, ``<eot>``, then ``<pad>``."""
        if isinstance(captions, str):
            captions = [captions]
        out = torch.full((len(captions), self.context_length), self.pad_id, dtype=torch.long)
        for row, text in enumerate(captions):
            words = text.lower().split()
            unknown = [w for w in words if w not in self.stoi]
            if unknown:
                raise ValueError(f"caption {text!r}: unknown word(s) {unknown}; the vocabulary is {self.itos[2:-1]}")
            ids = [self.sot_id, *(self.stoi[w] for w in words), self.eot_id]
            if len(ids) > self.context_length:
                raise ValueError(f"caption {text!r} needs {len(ids)} tokens with <sot> and <eot>, more than the "
                                 f"context length {self.context_length}")
            out[row, :len(ids)] = torch.tensor(ids)
        return out

    def decode(self, ids: Iterable[int]) -> str:
        words = []
        for i in ids:
            i = int(i)
            if i == self.eot_id:
                break
            if i not in (self.pad_id, self.sot_id):
                words.append(self.itos[i])
        return " ".join(words)

    def __repr__(self) -> str:
        return f"ShapeTokenizer(vocab_size={self.vocab_size}, context_length={self.context_length})"


def render(colours: Sequence[str], shapes: Sequence[str], *, image_size: int = 32, seed: int | None = None,
           generator: np.random.Generator | None = None) -> torch.Tensor:
    """``(B, 3, image_size, image_size)`` float32 images in [0, 1], one ``colours[i]`` ``shapes[i]`` each, at a
    random position and size, with a little colour jitter and background noise."""
    if len(colours) != len(shapes):
        raise ValueError(f"{len(colours)} colours for {len(shapes)} shapes")
    for c in colours:
        if c not in COLOURS:
            raise ValueError(f"unknown colour {c!r}; the colours are {list(COLOURS)}")
    for s in shapes:
        if s not in SHAPES:
            raise ValueError(f"unknown shape {s!r}; the shapes are {list(SHAPES)}")
    gen = generator if generator is not None else np.random.default_rng(seed)
    B, S = len(shapes), image_size
    r = gen.uniform(0.16, 0.32, B) * S                               # half-size of the shape, in pixels
    cx = gen.uniform(r, S - 1 - r)
    cy = gen.uniform(r, S - 1 - r)
    y, x = np.mgrid[0:S, 0:S].astype(np.float32)
    dx = x[None] - cx[:, None, None]
    dy = y[None] - cy[:, None, None]
    rr = r[:, None, None]
    kind = np.array([SHAPES.index(s) for s in shapes])[:, None, None]
    circle = dx ** 2 + dy ** 2 <= rr ** 2
    square = (np.abs(dx) <= 0.85 * rr) & (np.abs(dy) <= 0.85 * rr)
    top = -rr                                                        # an upright triangle: apex at the top
    triangle = (dy >= top) & (dy <= 0.85 * rr) & (np.abs(dx) <= 0.62 * (dy - top))
    arm = rr / 3
    cross = ((np.abs(dx) <= arm) & (np.abs(dy) <= rr)) | ((np.abs(dy) <= arm) & (np.abs(dx) <= rr))
    mask = np.select([kind == 0, kind == 1, kind == 2, kind == 3], [circle, square, triangle, cross])
    rgb = np.array([COLOURS[c] for c in colours], dtype=np.float32)
    rgb = np.clip(rgb + gen.uniform(-0.07, 0.07, rgb.shape), 0, 1).astype(np.float32)
    background = (0.08 + 0.05 * gen.standard_normal((B, 3, S, S))).astype(np.float32)
    images = np.where(mask[:, None], rgb[:, :, None, None], background)
    return torch.from_numpy(np.clip(images, 0.0, 1.0).astype(np.float32))


def sample_pairs(n: int, pairs: Sequence[tuple[str, str]] = TRAIN_PAIRS, *,
                 generator: np.random.Generator) -> list[tuple[str, str]]:
    """``n`` colour-shape pairs drawn uniformly from ``pairs``."""
    idx = generator.integers(0, len(pairs), n)
    return [pairs[i] for i in idx]


def make_batch(n: int, tokenizer: ShapeTokenizer, *, pairs: Sequence[tuple[str, str]] = TRAIN_PAIRS,
               templates: Sequence[str] = TEMPLATES, image_size: int = 32, seed: int | None = None,
               generator: np.random.Generator | None = None):
    """``(images (n, 3, S, S), token ids (n, context), captions, pairs)``: ``n`` images of ``pairs`` with a
    caption each, in a random template."""
    gen = generator if generator is not None else np.random.default_rng(seed)
    chosen = sample_pairs(n, pairs, generator=gen)
    colours, shapes = zip(*chosen)
    images = render(colours, shapes, image_size=image_size, generator=gen)
    captions = [caption(c, s, templates[int(gen.integers(len(templates)))]) for c, s in chosen]
    return images, tokenizer.encode(captions), captions, chosen
