"""A Vision Transformer: images cut into patches, patches read as tokens by the course's blocks.

Taught in notebook 09 (CLIP).  Dosovitskiy et al. (2021, "An Image is Worth 16x16 Words") feed a
Transformer encoder with an image's non-overlapping ``p x p`` patches, each flattened and projected to
``d`` dimensions, plus one learned **class token** whose final state represents the whole image, and
learned positions for the ``(S/p)^2 + 1`` tokens.

The projection of a flattened patch is a ``Conv2d`` with ``kernel_size = stride = p`` (no overlap): each
output position is the dot product of one filter with one patch, exactly a ``Linear`` layer applied to the
patch flattened in the filter's layout, ``(channels, p, p)`` (:func:`patchify`).

:class:`VisionTransformer` follows transformers' ``CLIPVisionModel`` (Radford et al. 2021): class token,
positions, a LayerNorm *before* the blocks (``pre_norm``; CLIP's ``pre_layrnorm``), pre-LN blocks (the
course's :class:`~transformer_course.blocks.EncoderBlock` with ``norm_first=True``), and a LayerNorm on the
class token's final state (``post_norm``).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .blocks import EncoderBlock, LayerNorm

__all__ = ["patchify", "PatchEmbedding", "VisionTransformer"]


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """``(B, C, H, W) -> (B, (H/p)(W/p), C p p)``: the non-overlapping patches in row-major order, each
    flattened as ``(channel, row, column)``, the layout of a ``Conv2d`` weight ``(d, C, p, p)``."""
    B, C, H, W = images.shape
    p = patch_size
    if H % p or W % p:
        raise ValueError(f"image size {H}x{W} is not a multiple of the patch size {p}")
    x = images.reshape(B, C, H // p, p, W // p, p)          # (B, C, rows, p, cols, p)
    x = x.permute(0, 2, 4, 1, 3, 5)                          # (B, rows, cols, C, p, p)
    return x.reshape(B, (H // p) * (W // p), C * p * p)


class PatchEmbedding(nn.Module):
    """Patches to tokens: ``Conv2d(C, d, kernel_size=p, stride=p, bias=False)``, flattened to ``(B, N, d)``."""

    def __init__(self, channels: int, d_model: int, patch_size: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(channels, d_model, kernel_size=patch_size, stride=patch_size, bias=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.proj(images).flatten(2).transpose(1, 2)   # (B, d, rows, cols) -> (B, rows * cols, d)


class VisionTransformer(nn.Module):
    """CLIP's image tower: ``images (B, C, S, S) -> (B, d)``, the normalised final state of the class token.

    ``forward(images, return_tokens=False)``; with ``return_tokens`` it returns every token's final state
    (before ``post_norm``) too.
    """

    def __init__(self, image_size: int = 32, patch_size: int = 4, channels: int = 3, d_model: int = 64,
                 n_layers: int = 2, n_heads: int = 4, eps: float = 1e-5) -> None:
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"image_size={image_size} is not a multiple of patch_size={patch_size}")
        self.image_size, self.patch_size, self.channels = image_size, patch_size, channels
        self.num_patches = (image_size // patch_size) ** 2
        self.patch_embed = PatchEmbedding(channels, d_model, patch_size)
        self.class_embedding = nn.Parameter(torch.randn(d_model) * d_model ** -0.5)
        self.position_embedding = nn.Embedding(self.num_patches + 1, d_model)
        self.pre_norm = LayerNorm(d_model, eps)
        self.blocks = nn.ModuleList(EncoderBlock(d_model, n_heads, 4 * d_model, activation="gelu", norm_first=True,
                                                 eps=eps) for _ in range(n_layers))
        self.post_norm = LayerNorm(d_model, eps)
        nn.init.normal_(self.position_embedding.weight, std=0.02)

    def check_images(self, images: torch.Tensor) -> None:
        """A clear error for images of the wrong shape (not a shape mismatch inside a block)."""
        expected = (self.channels, self.image_size, self.image_size)
        if images.dim() != 4 or tuple(images.shape[1:]) != expected:
            raise ValueError(f"expected images of shape (B, {', '.join(map(str, expected))}), got {tuple(images.shape)}")

    def forward(self, images: torch.Tensor, return_tokens: bool = False):
        self.check_images(images)
        x = self.patch_embed(images)                                          # (B, N, d)
        cls = self.class_embedding.expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.position_embedding.weight       # (B, N + 1, d)
        x = self.pre_norm(x)
        for block in self.blocks:
            x = block(x)
        pooled = self.post_norm(x[:, 0])
        return (pooled, x) if return_tokens else pooled
