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
# # 05 · Transformer blocks: LayerNorm, feed-forward, residuals, encoder and decoder
#
# Notebooks 02-04 built attention: a lookup by similarity, run by several heads at once, made
# aware of order by positional encodings. Attention alone is not a Transformer. A Transformer
# *block* wraps it with three more ingredients: a **feed-forward network** that processes each
# position on its own, **residual connections** that add each sublayer's output to its input, and
# **Layer Normalisation** that keeps the numbers in a stable range. Stack blocks, and you have the
# encoder and the decoder of "Attention Is All You Need" (Vaswani et al. 2017).
#
# **Learning objectives.** You will
# - write LayerNorm and check it against `torch.nn.LayerNorm`, including the details that bite
#   (the biased variance, where $\epsilon$ goes);
# - write the position-wise feed-forward network;
# - write an encoder block in both arrangements, **post-LN** (the original) and **pre-LN** (GPT-2 and
#   most models since), and a decoder block with causal self-attention and cross-attention, all
#   matching PyTorch's `TransformerEncoderLayer` / `TransformerDecoderLayer` with copied weights;
# - train a small encoder-decoder with teacher forcing to reverse digit sequences, and see why the
#   target must be shifted;
# - measure why pre-LN trains where post-LN struggles without a learning-rate warm-up
#   (Xiong et al. 2020), and look inside a trained model's cross-attention.
#
# **Prerequisites:** `02_attention` (masks: `True` = may attend), `03_multi_head_attention` (this
# notebook uses the course's `MultiHeadAttention`, the model answer of 03), `04_positional_encoding`
# (sinusoidal positions). PyTorch modules and a training loop.
#
# **Estimated time:** about 2 hours. **Points:** 18 autograded in 6 exercises, plus 2 for a written
# answer graded by hand.
#
# **How to check your work:** each exercise has an answer cell (replace
# `raise NotImplementedError()` with your code) followed by a test cell. Run the test cell: a ✓ line
# means the visible check on a small worked example passed. When the notebook is graded, hidden
# tests run your code on fresh random inputs and compare it with PyTorch's own layers
# (`torch.nn.LayerNorm`, `TransformerEncoderLayer`, `TransformerDecoderLayer`) after copying their
# weights into your modules, and evaluate your trained model on sequences it has never seen. Each
# exercise says its difficulty and a rough time; hints open on demand. To see your grade on this
# machine, run `transformer-course check 05_transformer_blocks.ipynb` in a terminal.

# %%
import math
import time

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from IPython.display import display
import tqdm as tqdm_package
from tqdm.auto import tqdm

from transformer_course.attention import MultiHeadAttention, padding_mask
from transformer_course.data import DigitVocab, make_digit_batch
from transformer_course.device import default_device
from transformer_course.plots import plot_attention_grid, plot_lines, plot_loss
from transformer_course.seq2seq import Seq2SeqConfig, Seq2SeqTransformer, greedy_decode

np.set_printoptions(precision=4, suppress=True)
torch.manual_seed(0)
device = default_device()
if device.type == "cpu":
    torch.set_num_threads(1)      # models this small: one thread beats several waiting on each other
tqdm_package.tqdm.monitor_interval = 0   # no background thread refreshing progress bars from outside the cell
print("device:", device)

# %% [markdown]
# ## 1. Layer Normalisation
#
# Deep networks train badly when the scale of their activations drifts from layer to layer: too
# large and the softmax saturates (notebook 02), too small and the signal drowns. **LayerNorm**
# (Ba et al. 2016) resets the scale at every block. For each position it takes that position's
# $d$ features $x_1, \dots, x_d$, and only those, and normalises them to mean 0 and variance 1;
# then a learned scale $\gamma$ and shift $\beta$ (one number per feature) let the network choose
# the range it wants:
#
# $$
# \mu = \frac{1}{d}\sum_{i=1}^{d} x_i, \qquad
# \sigma^2 = \frac{1}{d}\sum_{i=1}^{d} (x_i - \mu)^2, \qquad
# y_i = \gamma_i \, \frac{x_i - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta_i .
# $$
#
# Three details matter, and PyTorch, BERT and GPT-2 all agree on them:
#
# - **Over the last axis only.** A batch of shape $(B, T, d)$ holds $B \cdot T$ independent feature
#   vectors; each is normalised on its own. (BatchNorm normalises over the batch instead; a
#   Transformer's output for one sentence must not depend on the other sentences in its batch.)
# - **The biased variance**, dividing by $d$, not $d - 1$. `torch.var` and `x.var()` divide by
#   $d - 1$ by default: pass `unbiased=False` (or `correction=0`).
# - **$\epsilon$ inside the square root.** It keeps the division finite when all features are equal.
#   PyTorch's default is $10^{-5}$; BERT uses $10^{-12}$.
#
# > **Common bug: $\epsilon$ outside the square root**, $(x - \mu)/(\sigma + \epsilon)$. It gives
# > nearly the same numbers while $\sigma^2 \gg \epsilon$, so a quick test on `randn` data passes;
# > it differs by 40% on features whose variance is close to $\epsilon$. The same goes for a
# > hard-coded `1e-5` where the model says `1e-12`: invisible on large activations, a factor 3 on
# > features of variance $10^{-6}$.

# %% [markdown]
# ### Exercise 1: LayerNorm (3 points)
# *Difficulty: ★☆☆ · about 10 minutes*
#
# Write `layer_norm(x, weight, bias, eps=1e-5)` with torch operations (no `F.layer_norm`,
# `nn.LayerNorm` or the course package's `layer_norm`: the check compares yours with them).
# `x` has any number of leading axes; `weight` and `bias` have shape $(d,)$. Use `keepdim=True`
# so that the mean and variance broadcast back against `x`. The check also compares the gradients
# with respect to `x`, `weight` and `bias` with `nn.LayerNorm`'s, so stay on the autograd graph (no
# numpy, no `.detach()`), and keep the input's dtype (the checks use float64).
#
# <details><summary>Hint 1</summary>
#
# Take the mean and the variance along `dim=-1` only, with `keepdim=True`: both then have shape
# $(\dots, 1)$ and broadcast back against `x`. Then go through the three details above: which variance,
# where $\epsilon$ goes, scale before shift.
# </details>
#
# <details><summary>Hint 2</summary>
#
# The worked example's first row, $x = [1, 2, 3, 6]$: $\mu = 3$, $\sigma^2 = 14/4 = 3.5$ (not $14/3$), so
# $\hat x \approx [-1.069, -0.535, 0, 1.604]$, and with $\gamma = [1, 1, 2, 2]$, $\beta = [0, 0, 0, 1]$ the
# output is $[-1.069, -0.535, 0, 4.207]$. If you get $[-0.926, -0.463, 0, 3.777]$, you divided by $d - 1$.
# Use the `eps` argument as given (no hard-coded `1e-5`), and no `.float()`: a float64 input must give a
# float64 result.
# </details>

# %% nbgrader={"grade": false, "grade_id": "layer_norm", "locked": false, "schema_version": 3, "solution": true, "task": false}
def layer_norm(x, weight, bias, eps=1e-5):
    """LayerNorm over the last axis of `x`.

    Args:
        x: tensor of shape (..., d).
        weight: the learned scale gamma, shape (d,).
        bias: the learned shift beta, shape (d,).
        eps: added to the variance inside the square root.

    Returns:
        A tensor of the same shape as `x`: weight * (x - mean) / sqrt(var + eps) + bias,
        with mean and (biased) variance taken over the last axis.
    """
    ### BEGIN SOLUTION
    mean = x.mean(dim=-1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)      # biased: divide by d
    return weight * (x - mean) / torch.sqrt(var + eps) + bias
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "layer_norm_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import transformer_blocks as check

check.layer_norm_example(layer_norm)
### BEGIN HIDDEN TESTS
check.layer_norm(layer_norm)
### END HIDDEN TESTS

# %% [markdown]
# The module the blocks below use wraps your function, with $\gamma$ initialised to ones and
# $\beta$ to zeros (so a fresh LayerNorm is a pure normalisation). The attribute names `weight`,
# `bias` and `eps` are PyTorch's, which is how weights get copied from `torch.nn.LayerNorm`.

# %%
class LayerNorm(nn.Module):
    """LayerNorm over the last axis, with a learned scale `weight` and shift `bias`."""

    def __init__(self, d_model, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))
        self.bias = nn.Parameter(torch.zeros(d_model))

    def forward(self, x):
        return layer_norm(x, self.weight, self.bias, self.eps)


# %% [markdown]
# What it does to activations whose scale has drifted: three positions whose features have very
# different means and spreads come out on one common scale.

# %%
drift = torch.stack([torch.randn(64) * s + m for s, m in ((0.1, 3.0), (1.0, 0.0), (8.0, -5.0))])
with torch.no_grad():
    normalised = LayerNorm(64)(drift)
fig, axes = plt.subplots(1, 2, figsize=(10, 3.2), sharey=True)
for row, (s, m) in enumerate(((0.1, 3.0), (1.0, 0.0), (8.0, -5.0))):
    axes[0].hist(drift[row].numpy(), bins=20, alpha=0.6, label=f"mean {m:+.0f}, std {s:g}")
    axes[1].hist(normalised[row].numpy(), bins=20, alpha=0.6)
axes[0].set_title("Before LayerNorm: 3 positions, 64 features each")
axes[1].set_title("After LayerNorm: mean 0, variance 1 per position")
for ax in axes:
    ax.set_xlabel("feature value (unitless)")
axes[0].set_ylabel("number of features")
axes[0].legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 2. The position-wise feed-forward network
#
# Attention mixes information *between* positions; it is, apart from the softmax, a weighted
# average. The feed-forward network (FFN) then processes each position *on its own*, with the
# same weights everywhere: widen to $d_{ff}$ features, apply a non-linearity, project back:
#
# $$
# \mathrm{FFN}(x) = W_2\, \mathrm{act}(W_1 x + b_1) + b_2, \qquad
# W_1 \in \mathbb{R}^{d_{ff} \times d}, \; W_2 \in \mathbb{R}^{d \times d_{ff}} .
# $$
#
# The original Transformer uses ReLU and $d_{ff} = 4d$ (512 -> 2048); BERT uses GELU, the Gaussian error
# linear unit $\mathrm{GELU}(x) = x\,\Phi(x)$ with $\Phi$ the standard normal's cumulative distribution
# (Hendrycks and Gimpel 2016): a smooth ReLU that lets small negative values through a little. About two
# thirds of an encoder block's parameters live here ($8d^2$ against self-attention's $4d^2$); in a
# decoder block, which adds cross-attention's $4d^2$, about half.
#
# > **Common bug: no activation**, `fc2(fc1(x))`. Two linear layers in a row are one linear layer
# > ($W_2 W_1$): the block loses all its non-linearity and nothing raises an error.

# %% [markdown]
# ### Exercise 2: the feed-forward network (2 points)
# *Difficulty: ★☆☆ · about 10 minutes*
#
# Complete `FeedForward`: `fc1` is `nn.Linear(d_model, d_ff)`, `fc2` is `nn.Linear(d_ff, d_model)`
# (these names let the checks copy PyTorch's `linear1` / `linear2` into them), and `forward`
# computes `fc2(act(fc1(x)))` with `F.relu` for `activation="relu"` and `F.gelu` (the exact form)
# for `activation="gelu"`.
#
# <details><summary>Hint 1</summary>
#
# Build the two `nn.Linear` layers (with their biases) in `__init__`; in `forward` the activation sits
# *between* them, chosen by `self.activation`, and nothing comes after `fc2`.
# </details>
#
# <details><summary>Hint 2</summary>
#
# Shapes: $(\dots, d) \to (\dots, d_{ff}) \to (\dots, d)$. `nn.Linear` acts on the last axis, so no
# reshaping is needed. The worked example's `FeedForward(4, 16)` has $4 \cdot 16 + 16 + 16 \cdot 4 + 4 = 148$
# parameters. For `"gelu"`, `F.gelu` with its default (exact, erf) form, not `approximate="tanh"`
# (GPT-2's); an activation after `fc2` would stop the block's output from being negative.
# </details>

# %% nbgrader={"grade": false, "grade_id": "feed_forward", "locked": false, "schema_version": 3, "solution": true, "task": false}
class FeedForward(nn.Module):
    """fc2(act(fc1(x))): d_model -> d_ff -> d_model, applied to every position."""

    def __init__(self, d_model, d_ff, activation="relu"):
        super().__init__()
        self.activation = activation
        ### BEGIN SOLUTION
        self.fc1 = nn.Linear(d_model, d_ff)
        self.fc2 = nn.Linear(d_ff, d_model)
        ### END SOLUTION

    def forward(self, x):
        """x: (..., d_model) -> (..., d_model)."""
        ### BEGIN SOLUTION
        h = self.fc1(x)
        h = F.gelu(h) if self.activation == "gelu" else F.relu(h)
        return self.fc2(h)
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "feed_forward_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import transformer_blocks as check

check.feed_forward_example(FeedForward)
### BEGIN HIDDEN TESTS
check.feed_forward(FeedForward)
### END HIDDEN TESTS

# %% [markdown]
# ## 3. Residuals, and where the LayerNorm goes
#
# Each sublayer $f$ (attention or FFN) is wrapped in a **residual connection**: its output is
# *added* to its input, so a block only has to learn a correction to what it receives, and the
# gradient has a direct path $\partial(x + f(x))/\partial x = I + \partial f/\partial x$ back through
# every block (He et al. 2016). Where the LayerNorm goes has two answers:
#
# $$
# \textbf{post-LN} \text{ (Vaswani et al. 2017, BERT):}\quad x \leftarrow \mathrm{LN}\big(x + f(x)\big)
# \qquad\qquad
# \textbf{pre-LN} \text{ (GPT-2, most models since):}\quad x \leftarrow x + f\big(\mathrm{LN}(x)\big)
# $$
#
# Post-LN normalises the residual stream itself after every sublayer. Pre-LN leaves the stream
# alone and normalises only what each sublayer *reads*; since the stream is then an un-normalised
# sum, a pre-LN stack ends with one more LayerNorm. In an encoder block the two sublayers are
# self-attention (with `norm1`) and the FFN (with `norm2`):
#
# | | post-LN (`norm_first=False`) | pre-LN (`norm_first=True`) |
# |---|---|---|
# | attention | `x = norm1(x + self_attn(x))` | `x = x + self_attn(norm1(x))` |
# | feed-forward | `x = norm2(x + ff(x))` | `x = x + ff(norm2(x))` |
#
# `self.self_attn` is the course's `MultiHeadAttention` from notebook 03: call it as
# `self.self_attn(h, mask=mask)`; it returns `(output, weights)`, so take `[0]`. Masks are boolean
# with `True` = may attend; a padding mask of shape $(B, 1, T)$ blocks the padded keys.
#
# > **Common bug: the residual after the norm**, `x = x + norm1(self_attn(x))`. It looks like
# > post-LN, but the residual stream is never normalised, and the result differs from every
# > published model. In pre-LN the mirror-image bug is `x = norm1(x); x = x + self_attn(x)`,
# > which carries the *normalised* input down the residual path.


# %%
from transformer_course import diagrams

diagrams.blocks()
plt.show()

# %% [markdown]
# ### Exercise 3: the encoder block (4 points)
# *Difficulty: ★★☆ · about 20 minutes*
#
# `__init__` is given: keep its attribute names, since the checks copy the weights of PyTorch's
# `nn.TransformerEncoderLayer` (with `batch_first=True`, `dropout=0`, `norm_first` both `False` and
# `True`) into your block by these names and compare outputs, with and without a padding mask.
# Write `forward` for both arrangements.
#
# <details><summary>Hint 1</summary>
#
# One branch per arrangement, each two lines that follow the table above: attention with `norm1`, then
# the feed-forward network with `norm2`, the second reading the result of the first (not the block's
# input). Self-attention returns a pair; the mask goes to it unchanged (`True` = may attend), and the
# encoder has no causal mask.
# </details>
#
# <details><summary>Hint 2</summary>
#
# Post-LN normalises the *sum*: $x \leftarrow \mathrm{LN}_1\big(x + \mathrm{SA}(x)\big)$. Pre-LN normalises
# only what the sublayer reads and adds the result to the *un-normalised* stream:
# $x \leftarrow x + \mathrm{SA}\big(\mathrm{LN}_1(x)\big)$; the FFN step has the same shape with `norm2`. A
# failing check names the variant it recognised: the residual added after the norm, the normalised
# input carried down the residual path, the two norms swapped, the arrangements swapped, or the mask
# inverted or ignored.
# </details>

# %% nbgrader={"grade": false, "grade_id": "encoder_block", "locked": false, "schema_version": 3, "solution": true, "task": false}
class EncoderBlock(nn.Module):
    """Self-attention and feed-forward, each with a residual connection and a LayerNorm."""

    def __init__(self, d_model, n_heads, d_ff, *, norm_first=False, activation="relu", eps=1e-5):
        super().__init__()
        self.norm_first = norm_first
        self.self_attn = MultiHeadAttention(d_model, n_heads)
        self.ff = FeedForward(d_model, d_ff, activation)
        self.norm1 = LayerNorm(d_model, eps)
        self.norm2 = LayerNorm(d_model, eps)

    def forward(self, x, mask=None):
        """x: (B, T, d_model); mask: None or boolean, broadcastable to (B, T, T), True = may attend.

        Returns (B, T, d_model): post-LN if self.norm_first is False, pre-LN if True.
        """
        ### BEGIN SOLUTION
        if self.norm_first:
            x = x + self.self_attn(self.norm1(x), mask=mask)[0]
            x = x + self.ff(self.norm2(x))
        else:
            x = self.norm1(x + self.self_attn(x, mask=mask)[0])
            x = self.norm2(x + self.ff(x))
        return x
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "encoder_block_test", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import transformer_blocks as check

check.encoder_block_example(EncoderBlock)
### BEGIN HIDDEN TESTS
check.encoder_block(EncoderBlock)
### END HIDDEN TESTS

# %% [markdown]
# ## 4. The decoder block: causal self-attention, then cross-attention
#
# The decoder generates the output one token at a time. Its block has three sublayers:
#
# 1. **causal self-attention** over the output so far: position $t$ may look at positions
#    $\le t$ only. During training the decoder reads the whole (shifted) target at once, and
#    without the causal mask position $t$ could simply read the answer from position $t+1$;
# 2. **cross-attention**: the queries come from the decoder, the keys and values from the
#    encoder's output, called `memory` ($B \times S \times d$). This is where the decoder reads the
#    source sentence; `memory_mask` ($B \times 1 \times S$) blocks the source's padding. It follows
#    this course's convention, `True` = may attend, which is the opposite of PyTorch: in
#    `nn.TransformerDecoderLayer`, `memory_mask` and `memory_key_padding_mask` mark with `True` what may
#    NOT be attended to;
# 3. the **feed-forward** network.
#
# Each is wrapped exactly as in the encoder, with `norm1`, `norm2`, `norm3` in that order. Call
# cross-attention as `self.cross_attn(h, memory, mask=memory_mask)` and causal self-attention as
# `self.self_attn(h, is_causal=is_causal)`.
#
# > **Common bug: cross-attention that attends to `x`.** `self.cross_attn(h)` without `memory` is
# > a second self-attention: shapes still work, the loss still falls a little, but the decoder never
# > sees the source and can only guess.

# %% [markdown]
# ### Exercise 4: the decoder block (4 points)
# *Difficulty: ★★☆ · about 20 minutes*
#
# Write `forward`. The checks copy `nn.TransformerDecoderLayer`'s weights into your block and
# compare with it run with a causal target mask, with and without a memory padding mask, with
# target and memory of different lengths.
#
# <details><summary>Hint 1</summary>
#
# The pattern of exercise 3 with three sublayers in this order, each with its own norm: causal
# self-attention (`norm1`), cross-attention (`norm2`), feed-forward (`norm3`). Each reads the result of
# the one before.
# </details>
#
# <details><summary>Hint 2</summary>
#
# Cross-attention takes its queries from the decoder's stream (length $T$) and its keys and values from
# `memory` (length $S$), so its output is $(B, T, d)$ again. `memory_mask`, of shape $(B, 1, S)$, belongs
# to cross-attention; self-attention gets only `is_causal`. In pre-LN, `norm2` normalises the decoder's
# stream, not `memory`: $x \leftarrow x + \mathrm{CA}\big(\mathrm{LN}_2(x), \text{memory}\big)$. A shape
# error that mentions both lengths usually means the mask went to self-attention or the two inputs of
# cross-attention are swapped.
# </details>

# %% nbgrader={"grade": false, "grade_id": "decoder_block", "locked": false, "schema_version": 3, "solution": true, "task": false}
class DecoderBlock(nn.Module):
    """Causal self-attention, cross-attention to the encoder's output, feed-forward."""

    def __init__(self, d_model, n_heads, d_ff, *, norm_first=False, activation="relu", eps=1e-5):
        super().__init__()
        self.norm_first = norm_first
        self.self_attn = MultiHeadAttention(d_model, n_heads)
        self.cross_attn = MultiHeadAttention(d_model, n_heads)
        self.ff = FeedForward(d_model, d_ff, activation)
        self.norm1 = LayerNorm(d_model, eps)
        self.norm2 = LayerNorm(d_model, eps)
        self.norm3 = LayerNorm(d_model, eps)

    def forward(self, x, memory, *, memory_mask=None, is_causal=True):
        """x: (B, T, d_model) the target so far; memory: (B, S, d_model) the encoder's output;
        memory_mask: None or boolean (B, 1, S), True = may attend. Returns (B, T, d_model)."""
        ### BEGIN SOLUTION
        if self.norm_first:
            x = x + self.self_attn(self.norm1(x), is_causal=is_causal)[0]
            x = x + self.cross_attn(self.norm2(x), memory, mask=memory_mask)[0]
            x = x + self.ff(self.norm3(x))
        else:
            x = self.norm1(x + self.self_attn(x, is_causal=is_causal)[0])
            x = self.norm2(x + self.cross_attn(x, memory, mask=memory_mask)[0])
            x = self.norm3(x + self.ff(x))
        return x
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "decoder_block_test", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import transformer_blocks as check

check.decoder_block_example(DecoderBlock)
### BEGIN HIDDEN TESTS
check.decoder_block(DecoderBlock)
### END HIDDEN TESTS

# %% [markdown]
# ## 5. An encoder-decoder, trained with teacher forcing
#
# Now stack your blocks. `Seq2SeqTransformer` from the course package is the architecture of
# Vaswani et al. (2017) without anything of its own inside the blocks: token embeddings scaled by
# $\sqrt{d}$ plus sinusoidal positions (notebook 04), `n_layers` encoder blocks, `n_layers` decoder
# blocks, a final LayerNorm on each side for pre-LN stacks, and a linear layer to one logit per
# token. Its `block_factory` argument builds every block from **your** classes.
#
# The task: read 8 digits, output them reversed (`3 1 4 1 5 9 2 6` -> `6 2 9 5 1 4 1 3`). The
# decoder must find, for output position $t$, the source digit at position $7 - t$: a job for
# cross-attention.
#
# **Teacher forcing.** At generation time the decoder produces $y_0$, then $y_1$ given $y_0$, and
# so on, starting from a `BOS` ("begin") token. Training does all positions in one pass by feeding
# the *correct* previous tokens: the decoder input is the target **shifted right**,
# $[\mathrm{BOS}, y_0, \dots, y_{T-2}]$, and position $t$ is trained to predict $y_t$. The causal
# mask guarantees position $t$ sees only $\mathrm{BOS}, y_0, \dots, y_{t-1}$.
#
# > **Common bug: feeding the unshifted target.** With input $[y_0, \dots, y_{T-1}]$, position $t$
# > sees $y_t$, the token it must predict, and learns to copy it: the training loss drops to almost
# > 0, and greedy decoding, which never has $y_t$ before predicting it, produces nonsense.

# %%
vocab = DigitVocab()
src, tgt = make_digit_batch(2, 8, "reverse", rng=np.random.default_rng(0))
print("source          :", src[0])
print("target          :", tgt[0])
print("decoder input   :", np.concatenate([[vocab.bos], tgt[0, :-1]]), f"(BOS = {vocab.bos})")

# %% [markdown]
# ### Exercise 5: the teacher-forcing loss (2 points)
# *Difficulty: ★★☆ · about 15 minutes*
#
# Write `seq2seq_loss(model, src, tgt)`: build the decoder input by putting `BOS` in front of the
# target and dropping its last token (`torch.cat`, no loop), call `model(src, tgt_in)` (logits of
# shape $(B, T, V)$), and return the mean cross-entropy against `tgt` (`F.cross_entropy` wants the
# logits as $(B \cdot T, V)$ and the labels as $(B \cdot T,)$).
#
# <details><summary>Hint 1</summary>
#
# Three steps: the decoder input, the model's logits, the loss against the *unshifted* target. The
# decoder input has the same length $T$ as the target, and the model takes the source first. Do not
# modify `tgt` in place.
# </details>
#
# <details><summary>Hint 2</summary>
#
# The worked example's first target is $[4, 3, 2, 1]$; its decoder input is $[10, 4, 3, 2]$ (`BOS` $= 10$):
# a $(B, 1)$ column filled with `bos`, followed by the target without its last column, joined along the
# time axis. The labels are the target itself. Raw logits go into `F.cross_entropy` (no softmax first),
# with its default mean reduction.
# </details>

# %% nbgrader={"grade": false, "grade_id": "seq2seq_loss", "locked": false, "schema_version": 3, "solution": true, "task": false}
def seq2seq_loss(model, src, tgt, bos=vocab.bos):
    """Mean cross-entropy of `model` on (src, tgt) with teacher forcing.

    Args:
        model: called as model(src, tgt_in) -> logits (B, T, vocab_size).
        src: source token ids, (B, S).
        tgt: target token ids, (B, T).
        bos: the id of the begin-of-sequence token.

    Returns:
        A 0-d tensor: the mean cross-entropy over all B * T target positions.
    """
    ### BEGIN SOLUTION
    tgt_in = torch.cat([torch.full_like(tgt[:, :1], bos), tgt[:, :-1]], dim=1)   # [BOS, y_0, .., y_{T-2}]
    logits = model(src, tgt_in)                                                  # (B, T, V)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "seq2seq_loss_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import transformer_blocks as check

check.seq2seq_loss_example(seq2seq_loss)
### BEGIN HIDDEN TESTS
check.seq2seq_loss(seq2seq_loss)
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 6: the training loop, and a model that reverses digits (3 points)
# *Difficulty: ★★☆ · about 20 minutes (and about 15 s to train)*
#
# Write `train(model, steps, lr)`: Adam with `betas=(0.9, 0.98)` (Vaswani et al. 2017), and for each
# of `steps` steps a fresh batch from `make_digit_batch(batch_size, length, task, rng=gen)` moved to
# `device`, the loss from your `seq2seq_loss`, `zero_grad`, `backward`, `step`. Record every step's
# loss as a float (`loss.item()`) and return the list. Wrap the loop in `tqdm(...)` for a progress
# bar. With `warmup` $= W > 0$ the learning rate climbs linearly over the first $W$ steps,
# $\mathrm{lr} \cdot (s + 1)/W$ at step $s = 0, 1, \dots$, then stays at `lr`; with `warmup=0` it is `lr`
# from the first step (a `torch.optim.lr_scheduler.LambdaLR` does it in one line). Section 6 needs
# the warm-up, and the hidden test checks it on a tiny model (it records the rate of every optimiser step).
#
# The next cell trains a pre-LN model built from your blocks (2 + 2 layers, $d = 64$, 4 heads,
# $d_{ff} = 128$) for 400 steps: about 15 s on a laptop CPU. The test measures the exact-match
# rate of greedy decoding (every one of the 8 digits right) on sequences it has never seen: at
# least 95% (the model answer reaches about 100% after 400 steps; 100 steps give only about 95%,
# too close to count on, so train for the full 400).
#
# <details><summary>Hint 1</summary>
#
# Build the optimiser (and the schedule) once, before the loop, from `model.parameters()`. Each
# iteration: a fresh batch as tensors on `device`, the loss, `zero_grad`, `backward`, `step`, then append
# `loss.item()`. Exactly one optimiser step per training step.
# </details>
#
# <details><summary>Hint 2</summary>
#
# The warm-up is a multiplier of `lr` at step $s$: $\min\big(1, (s + 1)/W\big)$ for $W > 0$ and $1$ for
# $W = 0$ (do not divide by zero). With `lr=2e-3` and `warmup=4` the first five steps use
# $5 \times 10^{-4}$, $10^{-3}$, $1.5 \times 10^{-3}$, $2 \times 10^{-3}$, $2 \times 10^{-3}$. `LambdaLR` takes
# that multiplier as a function of the step; call the schedule's `step()` once per iteration, after the
# optimiser's. If the test says the model copies its input, the fault is in exercise 5: fix it, then
# rebuild and retrain.
# </details>

# %% nbgrader={"grade": false, "grade_id": "train", "locked": false, "schema_version": 3, "solution": true, "task": false}
def train(model, steps=400, lr=2e-3, *, batch_size=64, length=8, task="reverse", warmup=0, seed=0,
          desc="training"):
    """Train `model` with Adam on fresh digit batches; return the list of per-step losses."""
    gen = np.random.default_rng(seed)
    torch.manual_seed(seed)
    model.to(device).train()
    ### BEGIN SOLUTION
    optimiser = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.98))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: min(1.0, (step + 1) / warmup) if warmup else 1.0)
    losses = []
    for _ in tqdm(range(steps), desc=desc, leave=False):
        src, tgt = (torch.from_numpy(a).to(device) for a in make_digit_batch(batch_size, length, task, rng=gen))
        loss = seq2seq_loss(model, src, tgt)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        losses.append(loss.item())
    ### END SOLUTION
    model.eval()
    return losses


# %%
def make_block(kind, config):
    """block_factory for Seq2SeqTransformer: your blocks, with the config's sizes."""
    cls = EncoderBlock if kind == "encoder" else DecoderBlock
    return cls(config.d_model, config.n_heads, config.d_ff, norm_first=config.norm_first)


config = Seq2SeqConfig(d_model=64, n_heads=4, d_ff=128, n_layers=2, norm_first=True)
seq2seq_model = None              # so that the test below can say what is missing if the next lines fail
torch.manual_seed(0)
model = Seq2SeqTransformer(config, block_factory=make_block).to(device)
start = time.perf_counter()
losses = train(model, steps=400, lr=2e-3, desc="training the encoder-decoder")
seq2seq_model = model             # the trained model, which the test below evaluates
print(f"trained in {time.perf_counter() - start:.1f} s; final loss {np.mean(losses[-20:]):.4f}")
fig, ax = plot_loss(losses, title="Teacher-forcing loss while learning to reverse 8 digits", smooth=20)
ax.set_yscale("log")
ax.set_ylabel("cross-entropy loss (nats, log scale)")
plt.show()

# %% nbgrader={"grade": true, "grade_id": "train_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import transformer_blocks as check

check.trained_model_example(seq2seq_model)
### BEGIN HIDDEN TESTS
check.trained_model(seq2seq_model)
check.train_schedule(train)
### END HIDDEN TESTS

# %% [markdown]
# Greedy decoding of a few sequences the model has never seen (`greedy_decode` runs the decoder
# once per output token, feeding back its own predictions):

# %%
examples, answers = make_digit_batch(4, 8, "reverse", rng=np.random.default_rng(123))
decoded = greedy_decode(seq2seq_model, torch.from_numpy(examples).to(device), 8).cpu().numpy()
for s, a, p in zip(examples, answers, decoded):
    print(" ".join(map(str, s)), "->", " ".join(map(str, p)), "✓" if (p == a).all() else f"✗ (expected {a})")

# %% [markdown]
# ## 6. Post-LN against pre-LN: why warm-up was needed
#
# The original Transformer could not be trained without a learning-rate **warm-up**: a few thousand
# steps in which the rate climbs from 0. Xiong et al. (2020) traced this to post-LN. At
# initialisation, the gradients of the parameters near the output of a post-LN stack are large, and
# the LayerNorm placed *on the residual path* rescales the gradient flowing back through every block,
# so that how big each update is depends on depth; a large learning rate from step 1 sends the model
# somewhere it recovers from only slowly, if at all. In a pre-LN stack the residual path is an identity
# from the output to the embeddings: every block receives gradients of similar size, and the model
# trains at full learning rate from the first step.
#
# Two measurements on your own blocks, at a depth (6 + 6 layers) where the difference shows:
#
# 1. the gradient norm of each block's parameters at initialisation (averaged over 4 batches);
# 2. training curves with a high learning rate ($5 \times 10^{-3}$) and **no** warm-up, for the same
#    number of steps, plus post-LN **with** 50 warm-up steps, the original recipe.
#
# The settings are chosen honestly: at 2 + 2 layers and $\mathrm{lr} = 2 \times 10^{-3}$ (section 5)
# both arrangements train equally well, and at 6 + 6 layers with $\mathrm{lr} = 10^{-3}$ too; the gap
# opens with depth *and* learning rate. The three training runs below take about 25 s together.

# %%
def block_grad_norms(model, n_batches=4, seed=1):
    """Gradient norm of every encoder and decoder block's parameters, averaged over a few batches."""
    gen = np.random.default_rng(seed)
    model.to(device).train()
    norms = np.zeros((2, len(model.encoder)))
    for _ in range(n_batches):
        src, tgt = (torch.from_numpy(a).to(device) for a in make_digit_batch(64, 8, "reverse", rng=gen))
        model.zero_grad()
        seq2seq_loss(model, src, tgt).backward()
        for row, stack in enumerate((model.encoder, model.decoder)):
            for i, block in enumerate(stack):
                norms[row, i] += torch.sqrt(sum((p.grad ** 2).sum() for p in block.parameters())).item() / n_batches
    model.zero_grad()
    return norms


deep = dict(d_model=32, n_heads=4, d_ff=64, n_layers=6)
grad_norms = {}
for norm_first in (False, True):
    torch.manual_seed(0)
    fresh = Seq2SeqTransformer(Seq2SeqConfig(**deep, norm_first=norm_first), block_factory=make_block)
    grad_norms["pre-LN" if norm_first else "post-LN"] = block_grad_norms(fresh)

layers = np.arange(1, deep["n_layers"] + 1)
fig, ax = plot_lines(layers, {f"{name}, {side}": norms[row] for name, norms in grad_norms.items()
                              for row, side in enumerate(("encoder", "decoder"))},
                     xlabel="block (1 = nearest the input)", ylabel="gradient norm of the block's parameters",
                     title="Gradient norms at initialisation, 6 + 6 layers",
                     styles={"post-LN, encoder": "o--C0", "post-LN, decoder": "o-C0",
                             "pre-LN, encoder": "s--C1", "pre-LN, decoder": "s-C1"})
plt.show()

# %% [markdown]
# At this small size the effect on gradient norms is real but modest: post-LN's gradients are larger
# than pre-LN's in every block (about 1.3 to 2 times) and, in the encoder, grow slightly towards the
# output over most of the stack, while pre-LN's are flat. Xiong et al. (2020) show why the gap widens with size: the gradient of
# post-LN's last layers does not shrink as the stack gets deeper, while pre-LN's shrinks like
# $1/\sqrt{L}$, so with many layers post-LN's first updates at a fixed learning rate are the largest
# by far. The training curves show the consequence that matters:

# %%
runs = {}
for name, norm_first, warmup in (("post-LN, no warm-up", False, 0), ("pre-LN, no warm-up", True, 0),
                                 ("post-LN, 50 warm-up steps", False, 50)):
    torch.manual_seed(0)
    model = Seq2SeqTransformer(Seq2SeqConfig(**deep, norm_first=norm_first), block_factory=make_block)
    runs[name] = train(model, steps=120, lr=5e-3, batch_size=32, warmup=warmup, desc=name)

window = 9                                              # centred moving average, no partial windows at the ends
steps = np.arange(window // 2, 120 - window // 2)
fig, ax = plot_lines(steps, {name: np.convolve(l, np.ones(window) / window, mode="valid") for name, l in runs.items()},
                     xlabel="training step", ylabel=f"cross-entropy loss (nats, {window}-step average)",
                     title="6 + 6 layers at lr 5e-3: post-LN against pre-LN", markers=False)
plt.show()
for name, l in runs.items():
    print(f"{name:28s} loss at step 60: {np.mean(l[55:65]):.3f}   at step 120: {np.mean(l[-10:]):.3f}")

# %% [markdown]
# Same model size, same data, same learning rate, same seed: all three curves are the same for
# about 20 steps, then pre-LN pulls ahead, while post-LN without warm-up crawls (in our runs its loss
# is still about 1.5 after 120 steps, when pre-LN's is below 0.3). Give post-LN 50 steps of warm-up, which keeps its first updates small,
# and it trains as well as pre-LN. That is the recipe of the original Transformer (4,000 warm-up steps),
# and the reason GPT-2 and most later models moved the LayerNorm in front of each sublayer.

# %% [markdown]
# ## 7. Looking inside: what cross-attention does
#
# Type any 8 digits and pick a decoder layer. Each panel is one head's cross-attention: row $t$ is
# output position $t$, columns are the source positions it reads. For reversal, the answer at
# output position $t$ sits at source position $7 - t$: look for the anti-diagonal, and for heads
# that do something else (some look at neighbours, some attend broadly; a deeper layer can rely on
# what an earlier one already fetched). Try a sequence with repeated digits: the model still places
# them correctly, because the positions, not only the digits, decide where it looks.

# %%
def cross_attention_maps(model, src_ids):
    """Greedy output for one source sequence and every decoder layer's cross-attention weights."""
    captured = []

    def grab(module, args, kwargs, output):
        query, memory = args[0], args[1]
        _, weights = module.forward(query, memory, mask=kwargs.get("mask"), need_weights=True)
        captured.append(weights[0].detach().cpu())                        # (heads, T, S)

    src_t = torch.tensor([src_ids], device=device)
    out = greedy_decode(model, src_t, len(src_ids))
    hooks = [block.cross_attn.register_forward_hook(grab, with_kwargs=True) for block in model.decoder]
    try:
        with torch.no_grad():
            model(src_t, torch.cat([torch.full_like(out[:, :1], vocab.bos), out[:, :-1]], dim=1))
    finally:
        for h in hooks:
            h.remove()
    return out[0].tolist(), captured


def show_cross_attention(digits="31415926", layer=1):
    ids = [int(c) for c in digits if c.isdigit()][:8]
    if len(ids) != 8:
        print("type exactly 8 digits")
        return
    output, maps = cross_attention_maps(seq2seq_model, ids)
    expected = ids[::-1]
    print("source:", " ".join(map(str, ids)), "  output:", " ".join(map(str, output)),
          "✓" if output == expected else f"✗ (expected {' '.join(map(str, expected))})")
    weights = maps[layer - 1]
    src_labels = [f"{d}@{i}" for i, d in enumerate(ids)]
    out_labels = [f"{d}@{i}" for i, d in enumerate(output)]
    fig, axes = plot_attention_grid(weights, titles=[f"head {h + 1}" for h in range(weights.shape[0])],
                                    query_labels=out_labels, key_labels=src_labels,
                                    suptitle=f"Decoder layer {layer}: cross-attention (rows: output digit@position, "
                                             f"columns: source digit@position)")
    plt.show()


show_cross_attention()                 # the default sequence, layer 1; the explorer below changes both
widgets.interact(show_cross_attention,
                 digits=widgets.Text(value="31415926", description="8 digits"),
                 layer=widgets.IntSlider(value=1, min=1, max=config.n_layers, description="decoder layer"));

# %% [markdown]
# ### Written question (2 points, graded by hand)
#
# Use your measurements from section 6 and where the LayerNorm sits in each arrangement.
# (a) A colleague doubles the depth of section 6's models to 12 + 12 layers and reruns the three
# training runs at the same learning rate ($5 \times 10^{-3}$). Predict, for each run (post-LN without
# warm-up, pre-LN without warm-up, post-LN with 50 warm-up steps), whether it still trains, and explain
# your prediction by the path the gradient takes from the loss back to the early blocks. (b) The same
# colleague builds a pre-LN stack but forgets its final LayerNorm. What does the output layer now
# receive, and how does that change as blocks are added? Why does a post-LN stack need no final
# LayerNorm? Three to six sentences.

# %% [markdown] nbgrader={"grade": true, "grade_id": "pre_ln_question", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# (a) Pre-LN still trains from the first step: its residual stream is a plain sum,
# x_L = x_0 + f_1 + ... + f_L, so the gradient reaches every block through an identity path, and
# with more layers each block's gradient gets smaller, not larger (Xiong et al. 2020: about 1/sqrt(L)),
# so a fixed learning rate is, if anything, safer. Post-LN without warm-up trains at least as badly as
# at 6 + 6 layers, probably worse: every residual sum passes through a LayerNorm that rescales the
# gradient on its way back, its last layers' gradients do not shrink with depth, and there are now more
# blocks, each taking large first updates at full learning rate, so the model is pushed further into a
# bad region. Post-LN with warm-up should still train, because the warm-up keeps those first updates
# small until Adam's statistics and the weights have settled; a deeper post-LN stack may need a longer
# warm-up than 50 steps (the original Transformer used 4,000).
# (b) Without the final LayerNorm the output layer reads the raw residual stream, the un-normalised sum
# of the embeddings and every block's output, whose norm grows as blocks are added (roughly like the
# square root of the number of blocks at initialisation, often faster in training). The logits' scale
# then depends on depth: the output layer must learn to undo it, the softmax saturates more easily, and
# training is less stable. In post-LN the last operation of every block is a LayerNorm, so the stream
# that leaves the stack is already normalised and an extra one would change nothing essential.

# %% [markdown]
# ## Summary
#
# - LayerNorm normalises each position's features over the last axis, with the biased variance
#   and $\epsilon$ inside the square root, then scales by $\gamma$ and shifts by $\beta$.
# - The feed-forward network, `fc2(act(fc1(x)))` with $d_{ff} = 4d$, processes each position alone
#   and holds most of a block's parameters.
# - Every sublayer sits in a residual connection. Post-LN: `x = norm(x + f(x))`; pre-LN:
#   `x = x + f(norm(x))` plus a final LayerNorm. Pre-LN trains without warm-up; post-LN, deep and at
#   a high learning rate, does not (Xiong et al. 2020).
# - The decoder block adds causal self-attention and cross-attention to the encoder's output (the
#   `memory`), with the source's padding mask.
# - Teacher forcing feeds the target shifted right; feeding it unshifted lets the model copy
#   the answer, with a perfect training loss and useless generation.
#
# **Next:** `06_bert`: a stack of your encoder blocks alone, pre-trained by filling in masked
# words, loaded with real pretrained weights.
