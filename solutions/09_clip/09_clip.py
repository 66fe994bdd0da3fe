# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 09 · CLIP: images and captions in one space, and zero-shot classification for free
#
# Every model so far read text. CLIP (Radford et al. 2021) adds a second Transformer that reads
# **images**, cut into patches and treated as tokens, and trains the two together on pairs of images and
# captions so that a picture and its description land at the same point of a shared space. Nothing in
# the training names any class; yet afterwards the model classifies images into classes described in
# words, classes it was never trained on. This notebook builds a tiny CLIP from the blocks of notebook 05,
# checks it against transformers' `CLIPModel`, trains it on generated pictures of coloured shapes, and
# tests it on colour-shape **combinations it never saw**.
#
# **Learning objectives.** You will
# - cut images into patches two ways (a `Conv2d` with stride = kernel = patch size, and a reshape) and see
#   that they are the same linear map;
# - write a Vision Transformer's forward pass (class token, learned positions, the course's pre-LN blocks)
#   and a causal text encoder that reads its features at the end-of-text token, both equal to transformers'
#   `CLIPVisionModel` and `CLIPTextModel`;
# - write CLIP's symmetric contrastive loss with a learned temperature, equal to `CLIPModel`'s;
# - copy your model's weights into `CLIPModel` and get the same embeddings and loss;
# - train a tiny CLIP and classify images of unseen colour-shape pairs by prompt ensembles; measure
#   retrieval by recall@k.
#
# **Prerequisites:** `02_attention` and `03_multi_head_attention`, `04_positional_encoding` (learned
# positions), `05_transformer_blocks` (the pre-LN `EncoderBlock` every tower here is made of), `07_gpt`
# (causal masks, reading a model's weights by name), `06_bert` (embeddings compared by cosine).
#
# **Estimated time:** about 2.5 hours. **Points:** 18 autograded in 8 exercises, plus 2 for a written
# answer graded by hand.
#
# **How to check your work:** each exercise has an answer cell (replace `raise NotImplementedError()`
# with your code) followed by a test cell. Run the test cell: a ✓ line means the visible check passed.
# When the notebook is graded, hidden tests compare your towers with transformers' CLIP models on random
# sizes, your loss with `CLIPModel`'s `return_loss=True` loss, and measure your trained model on fresh
# images of colour-shape pairs it never saw. Each exercise says its difficulty and a rough time; hints
# open on demand. To see your grade, run `transformer-course check 09_clip.ipynb` in a terminal.

# %%
import itertools
import math
import time

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import tqdm as tqdm_package
from transformers import CLIPModel

from transformer_course import clip, shapes
from transformer_course.blocks import EncoderBlock, LayerNorm
from transformer_course.device import default_device
from transformer_course.vision import PatchEmbedding

np.set_printoptions(precision=4, suppress=True)
torch.manual_seed(0)
device = default_device()
if device.type == "cpu":
    torch.set_num_threads(min(2, torch.get_num_threads()))
tqdm_package.tqdm.monitor_interval = 0   # no background thread refreshing progress bars from outside the cell
print("device:", device)

# %% [markdown]
# ## 1. The data: coloured shapes and their captions
#
# CLIP was trained on 400 million image-caption pairs from the web. Ours are generated: a circle, square,
# triangle or cross in one of five colours, at a random place and size on a dark, noisy background, 32 × 32
# pixels, with a caption in one of five templates ("a red circle", "a photo of a red circle", "a circle in
# red", ...). Five of the twenty colour-shape pairs are **held out**: no training image shows a red circle,
# a green square, a blue triangle, a yellow cross or a purple circle, although every colour and every shape
# appears in other pairs. Classifying those correctly is zero-shot in the full sense.

# %%
tokenizer = shapes.ShapeTokenizer(context_length=8)
print(tokenizer, "vocabulary:", tokenizer.itos)
print("held out:", shapes.HELD_OUT)
images, ids, captions, _ = shapes.make_batch(12, tokenizer, seed=0)
fig, axes = plt.subplots(2, 6, figsize=(12, 5.2))
for ax, image, text in zip(axes.flat, images, captions):
    ax.imshow(image.permute(1, 2, 0).numpy())
    ax.set_title(text, fontsize=8)
    ax.axis("off")
fig.suptitle("Generated training pairs (32 x 32 pixels)")
plt.tight_layout()
plt.show()
print(captions[0], "->", ids[0].tolist(), "->", repr(tokenizer.decode(ids[0])))

# %% [markdown]
# A caption becomes `<sot>`, its words, `<eot>`, then padding up to the context of 8 tokens. The
# end-of-text token has the highest id, as in CLIP's own vocabulary; it is where the text tower will read
# its summary of the caption.
#
# ## 2. Images as sequences of patches
#
# A Transformer reads a sequence of vectors. Dosovitskiy et al. (2021, "An Image is Worth 16x16 Words")
# make one from an image by cutting it into non-overlapping $p \times p$ patches, flattening each to a
# vector of $C p^2$ numbers and projecting it to $d$ dimensions with one shared matrix: a 32 × 32 image with
# $p = 8$ becomes $(32/8)^2 = 16$ tokens.
#
# The projection is usually written as a convolution, `nn.Conv2d(C, d, kernel_size=p, stride=p)`: with the
# stride equal to the kernel the windows do not overlap, and each output is one filter's dot product with
# one patch, which is exactly a `Linear` layer applied to the flattened patch. The two agree only if the
# patch is flattened in the filter's layout: a `Conv2d` weight has shape $(d, C, p, p)$, so the patch
# must be flattened as (channel, row, column).
#
# > **Common bug: the channel axis last.** Flattening each patch as (row, column, channel), the natural
# > order of an image stored as height × width × RGB, gives the same numbers in a different order: the
# > shapes match, nothing fails, and the projection is silently wrong against a `Conv2d`'s weights.

# %% [markdown]
# ### Exercise 1: patchify (2 points)
# *Difficulty: ★★☆ · about 15 minutes*
#
# Write `patchify(images, patch_size)`: `(B, C, H, W)` → `(B, (H/p)(W/p), C·p·p)`, the patches in
# row-major order (along the first row of patches, then the next), each flattened as (channel, row,
# column). Use `reshape` and `permute` only (no `unfold`, no convolution). Images need not be square:
# the worked example is 4 × 6.
#
# <details><summary>Hint 1</summary>
#
# Split each spatial axis in two: `(B, C, H/p, p, W/p, p)`. Which axes index the patch, and which the
# pixel inside it?
# </details>
#
# <details><summary>Hint 2</summary>
#
# Bring the two patch-grid axes to the front, then channel, row in the patch, column in the patch:
# `permute(0, 2, 4, 1, 3, 5)`, then `reshape`.
# </details>

# %% nbgrader={"grade": false, "grade_id": "patchify", "locked": false, "schema_version": 3, "solution": true, "task": false}
def patchify(images, patch_size):
    """(B, C, H, W) -> (B, (H/p)(W/p), C*p*p): row-major patches, each flattened as (channel, row, column)."""
    ### BEGIN SOLUTION
    B, C, H, W = images.shape
    p = patch_size
    x = images.reshape(B, C, H // p, p, W // p, p).permute(0, 2, 4, 1, 3, 5)   # (B, rows, cols, C, p, p)
    return x.reshape(B, (H // p) * (W // p), C * p * p)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "patchify_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import clip as check

check.patchify_example(patchify)
### BEGIN HIDDEN TESTS
check.patchify(patchify)
### END HIDDEN TESTS

# %%
try:
    patches = patchify(images[:1], 8)[0]                                     # (16, 3 * 8 * 8)
    conv = nn.Conv2d(3, 5, 8, stride=8, bias=False)
    with torch.no_grad():
        gap = (patches @ conv.weight.reshape(5, -1).T - conv(images[:1]).flatten(2).transpose(1, 2)[0]).abs().max()
    print(f"patches {tuple(patches.shape)}; Linear on them vs Conv2d: largest difference {gap:.1e}")
    fig, axes = plt.subplots(4, 4, figsize=(4.2, 4.4))
    for ax, patch in zip(axes.flat, patches):
        ax.imshow(patch.reshape(3, 8, 8).permute(1, 2, 0).numpy())
        ax.axis("off")
    fig.suptitle(f"'{captions[0]}' as 16 patch tokens")
    plt.show()
except NotImplementedError:
    print("complete exercise 1 first")

# %% [markdown]
# ## 3. A tiny Vision Transformer
#
# CLIP's image tower (Radford et al. 2021; transformers' `CLIPVisionModel`) adds three things to the
# patch tokens:
#
# 1. a learned **class token** `class_embedding`, put in front of the patches (position 0); it belongs to
#    no patch, attends to all of them, and its final state stands for the whole image;
# 2. learned **positions** `position_embedding`, one per token ($16 + 1$ here), added to the tokens
#    (notebook 04: attention itself does not know where a patch was);
# 3. a LayerNorm `pre_norm` on the tokens before the first block (CLIP's `pre_layrnorm`, spelt so in its
#    code), then the pre-LN blocks of notebook 05, then a LayerNorm `post_norm` on the class token's final
#    state only.
#
# $$
# z_0 = \mathrm{LN}_{pre}\big([\,x_{cls};\; x_1 W;\; \dots;\; x_N W\,] + E_{pos}\big), \qquad
# z_\ell = \mathrm{Block}_\ell(z_{\ell - 1}), \qquad
# \text{image feature} = \mathrm{LN}_{post}\big(z_L[0]\big).
# $$

# %% [markdown]
# ### Exercise 2: the ViT's forward pass (3 points)
# *Difficulty: ★★☆ · about 20 minutes*
#
# `__init__` is given: keep its names, since the checks copy `CLIPVisionModel`'s weights in by them. The
# blocks are the course's `EncoderBlock` (pre-LN, exact GELU). CLIP's released checkpoints use
# QuickGELU, $x\,\sigma(1.702x)$, transformers' default `hidden_act="quick_gelu"`; the oracle here is
# configured with `hidden_act="gelu"` to match the course's blocks. Write
# `forward(images)` → `(B, d_model)`: patch tokens by `self.patch_embed(images)` (the `Conv2d`, flattened
# as in section 2), the class token in front, positions added, `pre_norm`, the blocks, then `post_norm` of
# the class token's final state.
#
# <details><summary>Hint 1</summary>
#
# `self.class_embedding` has shape `(d,)`: `.expand(B, 1, -1)` makes one per image without copying;
# `torch.cat([cls, tokens], dim=1)` puts it first. `self.position_embedding.weight` is `(N + 1, d)` and
# broadcasts over the batch.
# </details>
#
# <details><summary>Hint 2</summary>
#
# The blocks are called as `block(x)` (no mask: every token sees every other one). The output is
# `self.post_norm(x[:, 0])`, not a mean over the tokens.
# </details>

# %% nbgrader={"grade": false, "grade_id": "vit_forward", "locked": false, "schema_version": 3, "solution": true, "task": false}
class ViT(nn.Module):
    """CLIP's image tower: (B, C, S, S) images -> (B, d_model), the normalised final state of the class token."""

    def __init__(self, image_size=32, patch_size=8, channels=3, d_model=64, n_layers=2, n_heads=4):
        super().__init__()
        self.image_size, self.patch_size, self.channels = image_size, patch_size, channels
        n_patches = (image_size // patch_size) ** 2
        self.patch_embed = PatchEmbedding(channels, d_model, patch_size)     # Conv2d(C, d, p, stride=p), flattened
        self.class_embedding = nn.Parameter(torch.randn(d_model) * d_model ** -0.5)
        self.position_embedding = nn.Embedding(n_patches + 1, d_model)
        self.pre_norm = LayerNorm(d_model)
        self.blocks = nn.ModuleList(EncoderBlock(d_model, n_heads, 4 * d_model, activation="gelu", norm_first=True)
                                    for _ in range(n_layers))
        self.post_norm = LayerNorm(d_model)
        nn.init.normal_(self.position_embedding.weight, std=0.02)

    def forward(self, images):
        ### BEGIN SOLUTION
        x = self.patch_embed(images)                                            # (B, N, d)
        cls = self.class_embedding.expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.position_embedding.weight         # (B, N + 1, d)
        x = self.pre_norm(x)
        for block in self.blocks:
            x = block(x)
        return self.post_norm(x[:, 0])
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "vit_forward_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import clip as check

check.vit_forward_example(ViT)
### BEGIN HIDDEN TESTS
check.vit_forward(ViT)
### END HIDDEN TESTS

# %% [markdown]
# ## 4. The text tower
#
# CLIP's text encoder is a GPT-style stack (notebook 07): token and position embeddings, **causal** pre-LN
# blocks, a final LayerNorm. Its summary of a caption is the final state at the caption's **end-of-text**
# token: the one position that has read every word (a causal model's position 0 has read only `<sot>`), and
# which lies before the padding (the last position is padding for a short caption, and its state depends
# on how much padding there is).
#
# > **Common bug: reading the wrong position.** Position 0 gives the same vector for every caption; the
# > last position gives a vector that moves with the padding. transformers' `CLIPTextModel` reads at the first
# > position whose id is `eos_token_id`, and its `CLIPTextConfig` defaults that id to 49407, CLIP's real one: a
# > model built on a small vocabulary must set it, or the oracle itself silently reads position 0.

# %% [markdown]
# ### Exercise 3: the text encoder's forward pass (3 points)
# *Difficulty: ★★☆ · about 15 minutes*
#
# `__init__` is given. Write `forward(ids)` → `(B, d_model)`: token embeddings plus the first `T` rows of
# `position_embedding.weight`, the blocks called as `block(x, is_causal=True)`, `final_norm`, then for each
# caption the state at its first `eos_token_id`.
#
# <details><summary>Hint 1</summary>
#
# A causal model's last real token has read the whole caption; padding after it has read nothing new.
# So the feature is read at each caption's own end-of-text position, which differs from row to row.
# </details>
#
# <details><summary>Hint 2</summary>
#
# `(ids == self.eos_token_id).int().argmax(dim=1)` is the index of the first end-of-text token of each row
# (`argmax` returns the first maximum); index with `x[torch.arange(B), positions]`.
# </details>

# %% nbgrader={"grade": false, "grade_id": "text_forward", "locked": false, "schema_version": 3, "solution": true, "task": false}
class TextTransformer(nn.Module):
    """CLIP's text tower: (B, T) token ids -> (B, d_model), the final state at each caption's end-of-text token."""

    def __init__(self, vocab_size, context_length, eos_token_id, d_model=64, n_layers=2, n_heads=4):
        super().__init__()
        self.context_length, self.eos_token_id = context_length, eos_token_id
        self.token_embedding = nn.Embedding(vocab_size, d_model)
        self.position_embedding = nn.Embedding(context_length, d_model)
        self.blocks = nn.ModuleList(EncoderBlock(d_model, n_heads, 4 * d_model, activation="gelu", norm_first=True)
                                    for _ in range(n_layers))
        self.final_norm = LayerNorm(d_model)
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.position_embedding.weight, std=0.01)

    def forward(self, ids):
        ### BEGIN SOLUTION
        B, T = ids.shape
        x = self.token_embedding(ids) + self.position_embedding.weight[:T]
        for block in self.blocks:
            x = block(x, is_causal=True)
        x = self.final_norm(x)
        eot = (ids == self.eos_token_id).int().argmax(dim=1)                    # the first end-of-text token
        return x[torch.arange(B, device=ids.device), eot]
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "text_forward_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import clip as check

check.text_forward_example(TextTransformer)
### BEGIN HIDDEN TESTS
check.text_forward(TextTransformer)
### END HIDDEN TESTS

# %% [markdown]
# ## 5. The contrastive loss
#
# The two towers' features are projected (no bias) to a shared `embed_dim` and L2-normalised. For a batch
# of $B$ pairs, the $B \times B$ matrix of cosine similarities, scaled by a **learned** $e^{s}$, is read two
# ways: row $i$ is a classification of image $i$ among the $B$ captions, column $j$ one of caption $j$
# among the images; the right answers are on the diagonal. CLIP averages the two cross-entropies:
#
# $$
# \ell = \tfrac{1}{2}\Big(\mathrm{CE}\big(e^{s}\, \hat I \hat T^\top,\ \mathrm{diag}\big)
#        + \mathrm{CE}\big(e^{s}\, \hat T \hat I^\top,\ \mathrm{diag}\big)\Big),
# $$
#
# the symmetric InfoNCE loss (van den Oord et al. 2018). The scale is stored as a log, $s$, initialised to
# $\ln(1/0.07) = 2.6592$ (a temperature of 0.07) and kept at most $\ln 100$: the paper clips it "to
# prevent scaling the logits by more than 100", and open_clip's training code clamps it after each step.
# Cosines lie in $[-1, 1]$; without the scale the softmax over them could never be confident.

# %% [markdown]
# ### Exercise 4: CLIP's loss (2 points)
# *Difficulty: ★☆☆ · about 10 minutes*
#
# Write `clip_loss(image_embeds, text_embeds, logit_scale)` for `(B, e)` embeddings (not yet normalised) and
# the scalar tensor `logit_scale` ($s$): a scalar tensor, equal to transformers' `CLIPModel(...,
# return_loss=True)` loss.
#
# <details><summary>Hint 1</summary>
#
# Three steps: unit vectors, a $(B, B)$ matrix of scaled cosines, and a cross-entropy in each direction.
# The scale is stored as a log.
# </details>
#
# <details><summary>Hint 2</summary>
#
# After `F.normalize(x, dim=-1)`, the logits are $e^{s}$ times the image-caption cosines; the right answer
# for row $i$ is column $i$ (labels `torch.arange(B)`), and the loss averages `F.cross_entropy` over the
# rows and over the columns (the transpose).
# </details>

# %% nbgrader={"grade": false, "grade_id": "clip_loss", "locked": false, "schema_version": 3, "solution": true, "task": false}
def clip_loss(image_embeds, text_embeds, logit_scale):
    """Symmetric InfoNCE of (B, e) image and text embeddings with the learned log-scale; a scalar tensor."""
    ### BEGIN SOLUTION
    img = F.normalize(image_embeds, dim=-1)
    txt = F.normalize(text_embeds, dim=-1)
    logits = logit_scale.exp() * img @ txt.T                     # (B, B): row i = image i against every caption
    labels = torch.arange(logits.shape[0], device=logits.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "clip_loss_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import clip as check

check.clip_loss_example(clip_loss)
### BEGIN HIDDEN TESTS
check.clip_loss(clip_loss)
### END HIDDEN TESTS

# %% [markdown]
# ## 6. The whole model, and the real one
#
# `clip.CLIP(config, visual=..., text=...)` puts your two towers together with the two projections and
# `logit_scale` (its `encode_image` and `encode_text` return projected, unnormalised embeddings). Its names
# are close to transformers' `CLIPModel`, but not the same: `pre_norm` is `pre_layrnorm` there,
# `blocks.i` is `encoder.layers.i`, `norm1` is `layer_norm1`, `ff.fc1` is `mlp.fc1`, and so on.

# %%
config = clip.CLIPConfig(vocab_size=tokenizer.vocab_size, eos_token_id=tokenizer.eot_id,
                         context_length=tokenizer.context_length)


def build_clip(config):
    """A CLIP whose towers are your ViT and TextTransformer."""
    c = config
    visual = ViT(c.image_size, c.patch_size, c.channels, c.vision_width, c.vision_layers, c.vision_heads)
    text = TextTransformer(c.vocab_size, c.context_length, c.eos_token_id, c.text_width, c.text_layers, c.text_heads)
    return clip.CLIP(c, visual=visual, text=text)


hf_config = clip.hf_clip_config(config)
print(config)
print("transformers' text config: eos_token_id =", hf_config.text_config.eos_token_id, "hidden_act =",
      hf_config.text_config.hidden_act)
print("parameter names in CLIPModel, a few:", [n for n, _ in CLIPModel(hf_config).named_parameters()][:6])

# %% [markdown]
# ### Exercise 5: your weights in transformers' CLIP (2 points)
# *Difficulty: ★★☆ · about 20 minutes*
#
# Write `copy_to_hf(model, hf_model)`: copy every parameter of `model` (a `clip.CLIP`) into transformers'
# `CLIPModel` `hf_model`, so that it gives the same image and text embeddings and the same
# `return_loss=True` loss. No transposes this time: both sides use `nn.Linear` and `nn.Conv2d`. Do it under
# `torch.no_grad()` with `.copy_()`.
#
# <details><summary>Hint 1</summary>
#
# Print `[n for n, _ in hf_model.named_parameters()]` next to `[n for n, _ in model.named_parameters()]`
# and write the correspondence as a dict from your names to theirs: `visual.` ↔ `vision_model.`,
# `text.` ↔ `text_model.`, the two projections and `logit_scale` keep their names.
# </details>
#
# <details><summary>Hint 2</summary>
#
# The irregular ones: the embeddings live under `embeddings.` (`visual.patch_embed.proj.weight` ↔
# `vision_model.embeddings.patch_embedding.weight`, `visual.class_embedding` ↔
# `vision_model.embeddings.class_embedding`, `visual.position_embedding.weight` ↔
# `vision_model.embeddings.position_embedding.weight`, `text.token_embedding.weight` ↔
# `text_model.embeddings.token_embedding.weight`, and the text positions likewise); `pre_norm` ↔ `pre_layrnorm`,
# `post_norm` ↔ `post_layernorm`, `final_norm` ↔ `final_layer_norm`; in each block `norm1`/`norm2` ↔
# `layer_norm1`/`layer_norm2` and `ff.` ↔ `mlp.`.
# </details>

# %% nbgrader={"grade": false, "grade_id": "copy_to_hf", "locked": false, "schema_version": 3, "solution": true, "task": false}
@torch.no_grad()
def copy_to_hf(model, hf_model):
    """Copy every parameter of the course's CLIP `model` into transformers' CLIPModel `hf_model`."""
    ### BEGIN SOLUTION
    names = {"visual_projection.weight": "visual_projection.weight", "text_projection.weight": "text_projection.weight",
             "logit_scale": "logit_scale",
             "visual.class_embedding": "vision_model.embeddings.class_embedding",
             "visual.patch_embed.proj.weight": "vision_model.embeddings.patch_embedding.weight",
             "visual.position_embedding.weight": "vision_model.embeddings.position_embedding.weight",
             "text.token_embedding.weight": "text_model.embeddings.token_embedding.weight",
             "text.position_embedding.weight": "text_model.embeddings.position_embedding.weight"}
    for mine, theirs in (("visual.pre_norm", "vision_model.pre_layrnorm"),
                         ("visual.post_norm", "vision_model.post_layernorm"),
                         ("text.final_norm", "text_model.final_layer_norm")):
        for p in ("weight", "bias"):
            names[f"{mine}.{p}"] = f"{theirs}.{p}"
    for tower, hf_tower in (("visual", "vision_model"), ("text", "text_model")):
        for i in range(len(getattr(model, tower).blocks)):
            for mine, theirs in (("self_attn.q_proj", "self_attn.q_proj"), ("self_attn.k_proj", "self_attn.k_proj"),
                                 ("self_attn.v_proj", "self_attn.v_proj"), ("self_attn.out_proj", "self_attn.out_proj"),
                                 ("norm1", "layer_norm1"), ("norm2", "layer_norm2"), ("ff.fc1", "mlp.fc1"),
                                 ("ff.fc2", "mlp.fc2")):
                for p in ("weight", "bias"):
                    names[f"{tower}.blocks.{i}.{mine}.{p}"] = f"{hf_tower}.encoder.layers.{i}.{theirs}.{p}"
    theirs = dict(hf_model.named_parameters())
    for name, p in model.named_parameters():
        theirs[names[name]].copy_(p)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "copy_to_hf_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import clip as check

check.copy_to_hf_example(copy_to_hf)
### BEGIN HIDDEN TESTS
check.copy_to_hf(copy_to_hf)
### END HIDDEN TESTS

# %% [markdown]
# The parity, end to end: your towers, your loss, transformers' model.

# %%
try:
    torch.manual_seed(0)
    model = build_clip(config).double().eval()
    hf = CLIPModel(hf_config).double().eval()
    copy_to_hf(model, hf)
    images, ids, captions, _ = shapes.make_batch(8, tokenizer, seed=1)
    with torch.no_grad():
        out = hf(input_ids=ids, pixel_values=images.double(), return_loss=True)
        mine = clip_loss(model.encode_image(images.double()), model.encode_text(ids), model.logit_scale)
        gap_i = (F.normalize(model.encode_image(images.double()), dim=-1) - out.image_embeds).abs().max()
        gap_t = (F.normalize(model.encode_text(ids), dim=-1) - out.text_embeds).abs().max()
    print(f"largest difference of the embeddings: images {gap_i:.1e}, texts {gap_t:.1e}; loss: yours "
          f"{mine.item():.10f}, CLIPModel's {out.loss.item():.10f}")
except NotImplementedError:
    print("complete exercises 2 to 5 first")

# %% [markdown]
# ## 7. Training a tiny CLIP
#
# `clip.train_clip` draws a fresh batch of 128 generated pairs every step (so it never sees an image
# twice), runs the towers, your `clip_loss`, AdamW with a warm-up and cosine decay, and clamps
# `logit_scale` to $[0, \ln 100]$ after each step. With 15 training pairs, a batch of 128 holds on
# average 9.5 items of each item's own pair, itself included: an image cannot tell its own caption from the
# captions of the other images of the same pair, so the best it can do is spread its probability over all
# of them. The loss therefore cannot go below the average of $\ln n$ over items, $n$ the number of
# same-pair items in the batch, about 2.20; and that is fine: what matters is that each image's own kind
# of caption wins over the other fourteen pairs'. About a minute on two CPU cores.

# %%
torch.manual_seed(0)
try:
    model = build_clip(config).to(device)
    start = time.perf_counter()
    history = clip.train_clip(model, tokenizer, steps=1000,
                              batch_size=128, loss_fn=clip_loss)
    print(f"trained in {time.perf_counter() - start:.0f} s; final loss {history['loss'][-1]:.3f}, "
          f"temperature {math.exp(-history['logit_scale'][-1]):.4f}")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
    ax1.plot(history["loss"], lw=0.8)
    ax1.axhline(math.log(128), color="gray", ls=":", label="ln 128: chance")
    # the floor: E[ln n], n - 1 ~ Binomial(127, 1/15) other items of the same pair
    floor = sum(math.comb(127, j) * (1 / 15) ** j * (14 / 15) ** (127 - j) * math.log(1 + j) for j in range(128))
    ax1.axhline(floor, color="C2", ls=":", label=f"duplicates' floor, {floor:.2f}")
    ax1.set_xlabel("step")
    ax1.set_ylabel("contrastive loss (nats)")
    ax1.set_title("Training loss")
    ax1.legend()
    ax2.plot(np.exp(history["logit_scale"]), "C1")
    ax2.set_xlabel("step")
    ax2.set_ylabel("exp(logit_scale) = 1 / temperature")
    ax2.set_title("The learned temperature")
    plt.tight_layout()
    plt.show()
except NotImplementedError:
    model = None
    print("complete exercises 2 to 4 first")

# %% [markdown]
# ## 8. Zero-shot classification
#
# To classify an image among classes named in words, embed one caption per class and pick the class whose
# caption is most similar. One caption is a fragile description; CLIP's paper (section 3.1.4) embeds each
# class in many **prompt templates**, normalises each embedding, averages them and normalises the mean:
# a prompt ensemble, one vector per class.

# %% [markdown]
# ### Exercise 6: class embeddings from prompt templates (2 points)
# *Difficulty: ★☆☆ · about 10 minutes*
#
# Write `class_embeddings(model, tokenizer, classes, templates)`: `classes` is a list of `(colour, shape)`
# pairs, `templates` a list of strings with `{c}` and `{s}` (`"a photo of a {c} {s}"`); return a
# `(len(classes), embed_dim)` tensor of unit rows, computed without gradients. `tokenizer.encode(list of
# captions)` gives the ids; put them on the model's device.
#
# <details><summary>Hint 1</summary>
#
# Fill each template with the class's colour and shape (`template.format(c=..., s=...)`), embed all of them,
# and combine the embeddings into one unit vector.
# </details>
#
# <details><summary>Hint 2</summary>
#
# For one class: `model.encode_text(ids)` for all its templates at once → `(n_templates, e)`; normalise the
# rows; `.mean(0)`; normalise again.
# </details>

# %% nbgrader={"grade": false, "grade_id": "class_embeddings", "locked": false, "schema_version": 3, "solution": true, "task": false}
@torch.no_grad()
def class_embeddings(model, tokenizer, classes, templates):
    """(n_classes, embed_dim) unit vectors: each class's normalised template embeddings, averaged, renormalised."""
    ### BEGIN SOLUTION
    device = next(model.parameters()).device
    rows = []
    for colour, shape in classes:
        ids = tokenizer.encode([t.format(c=colour, s=shape) for t in templates]).to(device)
        emb = F.normalize(model.encode_text(ids), dim=-1)
        rows.append(F.normalize(emb.mean(dim=0), dim=-1))
    return torch.stack(rows)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "class_embeddings_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import clip as check

check.class_embeddings_example(class_embeddings)
### BEGIN HIDDEN TESTS
check.class_embeddings(class_embeddings)
### END HIDDEN TESTS

# %% [markdown]
# Now the test that matters: 500 fresh images of each kind, classified among all 20 colour-shape classes.

# %%
classes = list(itertools.product(shapes.COLOURS, shapes.SHAPES))
if model is not None:
    try:
        for name, pairs in (("seen in training", shapes.TRAIN_PAIRS), ("held out (never seen)", shapes.HELD_OUT)):
            acc = clip.evaluate_zero_shot(model, tokenizer, pairs, n=500, seed=2, embed=class_embeddings)
            print(f"zero-shot accuracy, {name:22s} {acc:6.1%}   (chance {1 / len(classes):.0%})")
        gen = np.random.default_rng(3)
        per_pair = []
        for pair in shapes.HELD_OUT:
            imgs = shapes.render([pair[0]] * 100, [pair[1]] * 100, generator=gen)
            pred = clip.zero_shot_predict(model, imgs, class_embeddings(model, tokenizer, classes, shapes.TEMPLATES))
            per_pair.append(float((pred == classes.index(pair)).float().mean()))
        fig, ax = plt.subplots(figsize=(7, 3))
        ax.bar([f"{c} {s}" for c, s in shapes.HELD_OUT], per_pair, color=[shapes.COLOURS[c] for c, _ in shapes.HELD_OUT])
        ax.axhline(1 / 20, color="gray", ls=":", label="chance (1/20)")
        ax.set_ylim(0, 1)
        ax.set_ylabel("accuracy")
        ax.set_title("Zero-shot accuracy on colour-shape pairs never seen in training")
        ax.legend()
        plt.show()
    except NotImplementedError:
        print("complete exercise 6 first")

# %% [markdown]
# ### Exercise 7: zero-shot on unseen pairs (3 points)
# *Difficulty: ★☆☆ · nothing new to write*
#
# This test measures your trained `model` itself: fresh images of the five held-out pairs, classified among
# all 20 classes with the course's prompt ensemble. It needs at least 30%: chance is 5%, and a model that
# always answered one held-out class would get 20%. The notebook's runs get 53% to 80% depending on the
# seed. If it fails, look at the loss curve and at the accuracy on seen pairs first.

# %% nbgrader={"grade": true, "grade_id": "zero_shot_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import clip as check

check.zero_shot(model)
### BEGIN HIDDEN TESTS
check.zero_shot(model, n=600, seed=None)
### END HIDDEN TESTS

# %% [markdown]
# ## 9. Retrieval, and what the model sees
#
# The same similarity matrix ranks captions for an image (image → text retrieval) and images for a caption.
# Retrieval is measured by **recall@k**: the share of images whose own caption is among their $k$ most
# similar captions. Below, one fresh image of each of the 20 pairs against the 20 captions "a photo of a
# {colour} {shape}": every caption differs, so there are no ties. A good model's matrix is red on the
# diagonal, and pale for pairs that share a colour or a shape.

# %% [markdown]
# ### Exercise 8: recall@k (1 point)
# *Difficulty: ★☆☆ · about 5 minutes*
#
# Write `recall_at_k(similarity, k)` for an `(n, n)` matrix whose row $i$ is image $i$ and column $i$ its
# caption: the share (a float between 0 and 1) of rows $i$ whose column $i$ is among the row's $k$ largest
# entries. (The test matrices have no ties.)
#
# <details><summary>Hint 1</summary>
#
# Work row by row (or all rows at once): find the indices of the row's $k$ largest entries, and ask whether
# $i$ is one of them.
# </details>
#
# <details><summary>Hint 2</summary>
#
# `similarity.topk(k, dim=1).indices` is $(n, k)$; compare it with `torch.arange(n)[:, None]`, and a row
# counts when any of its $k$ entries matches. Rank along the rows (dim 1), from the largest down.
# </details>

# %% nbgrader={"grade": false, "grade_id": "recall_at_k", "locked": false, "schema_version": 3, "solution": true, "task": false}
def recall_at_k(similarity, k):
    """Image-to-text recall@k of an (n, n) similarity matrix whose diagonal holds the matching pairs."""
    ### BEGIN SOLUTION
    top = similarity.topk(k, dim=1).indices                                   # (n, k) the k best captions per image
    hits = (top == torch.arange(similarity.shape[0], device=similarity.device)[:, None]).any(dim=1)
    return float(hits.float().mean())
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "recall_at_k_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import clip as check

check.recall_at_k_example(recall_at_k)
### BEGIN HIDDEN TESTS
check.recall_at_k(recall_at_k)
### END HIDDEN TESTS

# %%
if model is not None:
    try:
        gen = np.random.default_rng(4)
        images = shapes.render([c for c, _ in classes], [s for _, s in classes], generator=gen)
        texts = [shapes.caption(c, s, "a photo of a {c} {s}") for c, s in classes]
        with torch.no_grad():
            img = F.normalize(model.encode_image(images.to(device)), dim=-1)
            txt = F.normalize(model.encode_text(tokenizer.encode(texts).to(device)), dim=-1)
        sim = (img @ txt.T).cpu()
        print("one image of each of the 20 pairs against the 20 captions: " + ", ".join(
            f"recall@{k} {recall_at_k(sim, k):.0%}" for k in (1, 5)) + "  (chance: 5% and 25%)")
        fig, ax = plt.subplots(figsize=(8.5, 7.5))
        shown = ax.imshow(sim.numpy(), cmap="RdBu_r", vmin=-1, vmax=1)
        names = [f"{c} {s}" for c, s in classes]
        ax.set_xticks(range(20), names, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(20), [f"image of a {n}" + (" *" if p in shapes.HELD_OUT else "") for n, p in zip(names, classes)],
                      fontsize=8)
        ax.set_xlabel('caption "a photo of a ..."')
        ax.set_ylabel("image (* held out of training)")
        ax.set_title("Cosine similarity of images and captions", pad=12)
        fig.colorbar(shown, ax=ax, label="cosine similarity", shrink=0.8)
        plt.tight_layout()
        plt.show()
    except NotImplementedError:
        print("complete exercise 8 first")

# %% [markdown]
# ### Explore: draw a shape, read the model's mind
#
# Pick a colour and a shape (the held-out pairs included) and a seed for its position and size: the bars
# are the model's probabilities over the 20 classes, $\mathrm{softmax}(e^{s} \cos)$ with the learned
# temperature.

# %%
def show_shape(colour="red", shape="circle", seed=0):
    if model is None:
        print("train the model first (section 7)")
        return
    image = shapes.render([colour], [shape], seed=seed)
    try:
        emb = class_embeddings(model, tokenizer, classes, shapes.TEMPLATES)
    except NotImplementedError:
        print("complete exercise 6 first")
        return
    with torch.no_grad():
        img = F.normalize(model.encode_image(image.to(device)), dim=-1)
        probs = (model.logit_scale.exp() * img @ emb.T).softmax(dim=-1)[0].cpu()
    top = probs.argsort(descending=True)[:6]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3), gridspec_kw={"width_ratios": [1, 2.2]})
    ax1.imshow(image[0].permute(1, 2, 0).numpy())
    ax1.set_title(f"{colour} {shape}" + (" (held out)" if (colour, shape) in shapes.HELD_OUT else ""))
    ax1.axis("off")
    ax2.barh([f"{classes[i][0]} {classes[i][1]}" for i in top.tolist()][::-1], probs[top].numpy()[::-1])
    ax2.set_xlim(0, 1)
    ax2.set_xlabel("probability")
    ax2.set_title("The model's six most likely classes")
    plt.tight_layout()
    plt.show()


widgets.interact(show_shape, colour=widgets.Dropdown(options=list(shapes.COLOURS), value="red"),
                 shape=widgets.Dropdown(options=list(shapes.SHAPES), value="circle"),
                 seed=widgets.IntSlider(value=0, min=0, max=50));

# %% [markdown]
# ### Written question (2 points, graded by hand)
#
# (a) The model was never trained to classify anything, and never saw a red circle. Why can it classify
# images of red circles among 20 classes? Say what the contrastive objective forces the two towers to do,
# and what makes the held-out pairs reachable. (b) What does the learned temperature do, and why does CLIP
# learn it rather than fix it at 1? Three to six sentences.

# %% [markdown] nbgrader={"grade": true, "grade_id": "clip_question", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# (a) The loss makes each image's embedding closer to its own caption's than to the other captions of the
# batch, and the other way round, so the two towers must map an image and a description of it to the same
# direction: classification is then just "which class description is nearest", which needs no classifier
# and no labels, only captions for the classes. The held-out pairs are reachable because captions and
# images are compositional: the text tower has learned "red" from red squares, triangles and crosses and
# "circle" from green, blue and yellow circles, and a caption combining them lands where an image with
# both properties does, provided the image tower also encodes colour and shape separately rather than
# memorising whole pairs.
# (b) The cosines lie in [-1, 1], so a softmax over them is nearly uniform: the temperature (exp(s) up to
# 100) sharpens the logits so the loss can reward confident matches. Too low a scale makes every batch look
# equally hard; too high makes the loss focus on a few hard negatives and become unstable. The right value
# depends on how well the embeddings separate, which changes during training, so CLIP learns it (starting
# at 1/0.07) and clamps it at 100 to keep training stable.

# %% [markdown]
# ## Summary
#
# - An image becomes a sequence by cutting it into patches; a `Conv2d` with stride = kernel is a `Linear`
#   layer on patches flattened as (channel, row, column).
# - CLIP's ViT: class token first, learned positions, a LayerNorm before the pre-LN blocks, the class
#   token's normalised final state as the image feature.
# - The text tower is causal and reads its feature at the end-of-text token (not position 0, not the last
#   position).
# - The symmetric contrastive loss with a learned temperature, $e^{s}$, equals transformers' `CLIPModel`
#   loss; your weights give its embeddings once the names are mapped.
# - Prompt ensembles turn class names into classifiers; a model that composes colour and shape classifies
#   pairs it never saw.
#
# **Next:** `10_efficient_attention`: why attention is memory-bound, and how GPUs make it fast.
