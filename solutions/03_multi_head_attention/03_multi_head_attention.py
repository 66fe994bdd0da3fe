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
# # 03 · Multi-head attention: several lookups at once
#
# In notebook 02 each position made **one** soft lookup: one query, one set of weights, one
# weighted average. But a word often needs several things at once: its subject, the previous
# word, the matching bracket. One softmax can only blend them into a single average.
# Transformers therefore run several attentions side by side, each in its own smaller space,
# and concatenate what they find (Vaswani et al. 2017, "Attention is all you need", section 3.2.2).
#
# **Learning objectives.** You will learn to
# - split a `(B, T, d_model)` tensor into `h` heads of width `d_head = d_model / h` and merge
#   them back, and see why a reshape without a transpose scrambles positions;
# - write multi-head attention in numpy with batched (4-D) matrix products, and avoid `np.dot`;
# - build a PyTorch `MultiHeadAttention` module for self-attention and for cross-attention
#   (queries from one sequence, keys and values from another, of a different length), with
#   padding and causal masks, that matches `torch.nn.MultiheadAttention` number for number;
# - count its parameters, and see that the number of heads does not change the count;
# - watch heads specialise on a task that needs two lookups, which one head finds hard.
#
# **Prerequisites:** `02_attention` (scaled dot-product attention, the stable softmax, masks
# with `True` = may attend); PyTorch `nn.Module`, `nn.Linear` and a training loop.
#
# **Estimated time:** about 90 minutes. **Points:** 15 autograded in 4 exercises, plus 2 for a written
# answer graded by hand.
#
# **How to check your work:** each exercise has an answer cell (replace
# `raise NotImplementedError()` with your code) followed by a test cell. Run the test cell: a
# ✓ line means the visible check on a small worked example passed. When the notebook is graded,
# hidden tests run your code on random sizes and compare it with `torch.nn.MultiheadAttention`
# after copying the same weights into both. Each exercise says its difficulty and a rough time; hints
# open on demand. To see your grade on this machine, run
# `transformer-course check 03_multi_head_attention.ipynb` in a terminal.

# %%
import math

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from IPython.display import display
from tqdm.auto import tqdm

from transformer_course.attention import load_torch_mha
from transformer_course.device import default_device
from transformer_course.plots import plot_attention_grid

np.set_printoptions(precision=4, suppress=True)
torch.manual_seed(0)
device = default_device()
print("device:", device)


def softmax(x, axis=-1):
    """The numerically stable softmax of notebook 02 (an all -inf slice gives zeros)."""
    x = np.asarray(x, dtype=float)
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    e = np.exp(x - m)
    total = np.sum(e, axis=axis, keepdims=True)
    return e / np.where(total == 0, 1.0, total)


# %% [markdown]
# ## 1. Why one lookup is not enough
#
# Attention's output at a position is a weighted **average** of value vectors. If a position
# needs the token one step back *and* the token three steps back, a single attention can
# put half its weight on each and return $\tfrac12 v_{t-1} + \tfrac12 v_{t-3}$. Averaging is
# symmetric: from the blend you cannot tell which token was where (swap the two and the
# average is the same). The weights need not be exactly one half each, but one softmax always gives
# **one** blended vector, from which a linear read-out cannot reliably pull both tokens apart.
# Section 6 trains a model on exactly this task: a single head gets stuck far above two heads.
#
# Multi-head attention gives each position $h$ independent lookups. Head $i$ has its own
# projections $W_Q^{(i)}, W_K^{(i)}, W_V^{(i)}$ into a space of width $d_\text{head} = d_\text{model}/h$,
# attends there, and the $h$ results are concatenated and mixed by one output projection $W_O$:
#
# $$
# \mathrm{head}_i = \mathrm{Attention}\big(X W_Q^{(i)},\; Z W_K^{(i)},\; Z W_V^{(i)}\big), \qquad
# \mathrm{MultiHead}(X, Z) = \big[\mathrm{head}_1 \,\|\, \cdots \,\|\, \mathrm{head}_h\big]\, W_O ,
# $$
#
# where $X$ $(T_q \times d_\text{model})$ provides the queries and $Z$ $(T_k \times d_\text{model})$
# the keys and values. **Self-attention** is $Z = X$. **Cross-attention** is $Z \ne X$: in a
# translation model the decoder's positions (queries) look up the encoder's output (keys and
# values), and the two sequences have different lengths (notebook 05 builds that decoder).
#
# The $h$ small projections need not be separate matrices. Stack the $W_Q^{(i)}$ side by side
# and they form one $d_\text{model} \times d_\text{model}$ matrix $W_Q$: one matrix product computes every
# head's queries at once, and head $i$'s queries are columns $i\,d_\text{head}$ to
# $(i+1)\,d_\text{head} - 1$ of $X W_Q$. Cutting those columns apart is the **head split**.

# %% [markdown]
# ## 2. Splitting into heads, and merging back
#
# For a batch, $XW_Q$ has shape $(B, T, d_\text{model})$. Attention wants the heads as a batch axis,
# $(B, h, T, d_\text{head})$, so that `q @ k.swapaxes(-1, -2)` gives one $(T \times T)$ score matrix
# per head. Two steps get there:
#
# 1. **reshape** $(B, T, d_\text{model}) \to (B, T, h, d_\text{head})$: each position's features are
#    cut into $h$ consecutive chunks (this reshape only regroups the last axis, so positions stay apart);
# 2. **swap axes 1 and 2**: $(B, T, h, d_\text{head}) \to (B, h, T, d_\text{head})$.
#
# Merging undoes both, in reverse order: swap back to $(B, T, h, d_\text{head})$, then reshape to
# $(B, T, d_\text{model})$.
#
# > **Common bug: reshape without the transpose.** `x.reshape(B, h, T, d_head)` has the right
# > shape, so nothing complains. But a reshape never moves numbers: it reads them in memory order,
# > where all of position 0's features come first, then position 1's, and so on. "Head 0" then
# > holds the first $T \cdot d_\text{head}$ numbers, which are whole positions, not the first
# > $d_\text{head}$ features of every position. The same goes for merging with a bare reshape.
# > The model still trains, just worse, and it cannot load a pretrained model's weights.
#
# The picture below makes it visible: every feature of position $t$ is set to the number $t$,
# and we look at what lands in head 0.


# %%
from transformer_course import diagrams

diagrams.heads_split_merge()
plt.show()

# %%
B_demo, T_demo, h_demo, d_model_demo = 1, 6, 2, 8
position_ids = np.broadcast_to(np.arange(T_demo)[None, :, None], (B_demo, T_demo, d_model_demo)).astype(float)
right = position_ids.reshape(B_demo, T_demo, h_demo, d_model_demo // h_demo).swapaxes(1, 2)    # (B, h, T, d_head)
wrong = position_ids.reshape(B_demo, h_demo, T_demo, d_model_demo // h_demo)                     # the bug

fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
for ax, arr, title in ((axes[0], right, "reshape, then swap axes (right)"),
                       (axes[1], wrong, "reshape only (wrong)")):
    im = ax.imshow(arr[0, 0], cmap="viridis", vmin=0, vmax=T_demo - 1)
    ax.set_title(title)
    ax.set_xlabel("feature index within head 0")
    ax.set_ylabel("row of head 0 (should be position t)")
    for (i, j), value in np.ndenumerate(arr[0, 0]):
        ax.text(j, i, f"{value:.0f}", ha="center", va="center", color="w", fontsize=9)
fig.suptitle("Which position do head 0's numbers come from?", y=1.03)
fig.colorbar(im, ax=list(axes), label="source position t")
plt.show()

# %% [markdown]
# On the left, row $t$ of head 0 is position $t$ (its first $d_\text{head}$ features). On the right,
# "head 0"'s six rows come from positions 0, 0, 1, 1, 2, 2 (each row is half of one position's
# features), and positions 3 to 5 went entirely to head 1. Attention over these "positions" would
# compare halves of the same token with each other.

# %% [markdown]
# ### Exercise 1: split and merge heads (3 points)
# *Difficulty: ★☆☆ · about 10 minutes*
#
# Write `split_heads(x, n_heads)`: $(B, T, d_\text{model}) \to (B, h, T, d_\text{head})$ and
# `merge_heads(x)`: $(B, h, T, d_\text{head}) \to (B, T, h \cdot d_\text{head})$. They must work on numpy
# arrays **and** torch tensors, which is easy if you use only `.shape`, `.reshape(...)` and
# `.swapaxes(1, 2)` (both libraries have all three). Careful: numpy's `x.transpose(1, 2)` is not
# torch's; numpy's `transpose` wants the order of *all* axes. And torch's `.view` refuses a
# swapped (non-contiguous) tensor, while `.reshape` copies when it has to.
#
# <details><summary>Hint 1</summary>
#
# Follow the two steps of section 2 and print the shape after each. `merge_heads` undoes them in
# reverse order: first the swap, then the reshape. Read the sizes from `x.shape` inside each function.
# </details>
#
# <details><summary>Hint 2</summary>
#
# The visible check splits `np.arange(16.0).reshape(1, 2, 8)` into 2 heads of 4. Head 0 must be
# `[[0, 1, 2, 3], [8, 9, 10, 11]]` (the first four features of positions 0 and 1) and head 1
# `[[4, 5, 6, 7], [12, 13, 14, 15]]`. If your head 0 is `[[0, 1, 2, 3], [4, 5, 6, 7]]`, position 0 filled
# the whole head: you reshaped straight to $(B, h, T, d_\text{head})$. If it is `[[0, 2, 4, 6], ...]`,
# your heads take every second feature instead of consecutive chunks.
# </details>

# %% nbgrader={"grade": false, "grade_id": "split_heads", "locked": false, "schema_version": 3, "solution": true, "task": false}
def split_heads(x, n_heads):
    """(B, T, d_model) -> (B, n_heads, T, d_head), d_head = d_model // n_heads.

    Head i of position t holds x[b, t, i*d_head:(i+1)*d_head]. Works on numpy arrays and
    torch tensors.
    """
    ### BEGIN SOLUTION
    B, T, d_model = x.shape
    return x.reshape(B, T, n_heads, d_model // n_heads).swapaxes(1, 2)
    ### END SOLUTION


def merge_heads(x):
    """(B, n_heads, T, d_head) -> (B, T, n_heads * d_head): the inverse of split_heads."""
    ### BEGIN SOLUTION
    B, h, T, d_head = x.shape
    return x.swapaxes(1, 2).reshape(B, T, h * d_head)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "split_heads_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import multi_head_attention as check

check.split_heads_example(split_heads, merge_heads)
### BEGIN HIDDEN TESTS
check.split_heads(split_heads, merge_heads)
### END HIDDEN TESTS

# %% [markdown]
# ## 3. Multi-head attention in numpy
#
# With the split in hand, multi-head self-attention is a handful of lines. With $x$ of shape
# $(B, T, d_\text{model})$ and four $(d_\text{model} \times d_\text{model})$ matrices:
#
# 1. project: $Q = x W_Q$, $K = x W_K$, $V = x W_V$, each $(B, T, d_\text{model})$;
# 2. split each into heads: $(B, h, T, d_\text{head})$;
# 3. per head, scaled dot-product attention with the scale $1/\sqrt{d_\text{head}}$ (each head's dot
#    products sum over $d_\text{head}$ features, so their variance is $d_\text{head}$; notebook 02,
#    section 4): weights $(B, h, T, T)$, outputs $(B, h, T, d_\text{head})$;
# 4. merge the heads: $(B, T, d_\text{model})$, and apply the output projection $W_O$.
#
# Step 3 multiplies 4-D arrays, and `@` (`np.matmul`) treats every axis but the last two as a
# batch: $(B, h, T, d_\text{head}) \,@\, (B, h, d_\text{head}, T) \to (B, h, T, T)$, one product per
# (batch, head) pair.
#
# > **Common bug: `np.dot` on 4-D arrays.** For 2-D arrays `np.dot(a, b)` and `a @ b` agree, so it
# > is tempting to use `np.dot` everywhere. For more axes they do not: `np.dot` multiplies the last
# > axis of `a` with the second-to-last of `b` for **every combination** of the other axes. Nothing
# > fails at first; the result just has six axes. The fix is `@` (`np.matmul`), or `np.einsum` with the
# > axes spelled out:

# %%
q_demo = np.zeros((2, 4, 5, 8))          # (B, h, T, d_head)
k_demo = np.zeros((2, 4, 5, 8))
print("q @ k^T          :", (q_demo @ k_demo.swapaxes(-1, -2)).shape, "   one (T, T) map per batch and head")
print("np.dot(q, k^T)   :", np.dot(q_demo, k_demo.swapaxes(-1, -2)).shape, "   every batch/head paired with every other")

# %% [markdown]
# ### Exercise 2: multi-head self-attention in numpy (4 points)
# *Difficulty: ★★☆ · about 20 minutes*
#
# Write `multi_head_attention_np(x, w_q, w_k, w_v, w_o, n_heads)` returning `(output, weights)`.
# Projections are written as in the paper, $Q = x W_Q$ with each $W$ of shape
# $(d_\text{in}, d_\text{out})$, so `x @ w_q` (no biases here). Use your `split_heads` and `merge_heads`
# and the `softmax` defined at the top of this notebook; no masks yet. The check compares
# with `torch.nn.MultiheadAttention` given the same matrices.
#
# <details><summary>Hint 1</summary>
#
# Print the shapes along the four steps of section 3 on a small input. With $x$ of shape (1, 3, 8) and
# 2 heads: projections (1, 3, 8), heads (1, 2, 3, 4), scores and weights (1, 2, 3, 3), per-head outputs
# (1, 2, 3, 4), result (1, 3, 8). Six axes anywhere means an `np.dot` slipped in.
# </details>
#
# <details><summary>Hint 2</summary>
#
# Scale by $1/\sqrt{d_\text{head}}$, with $d_\text{head}$ taken from the split queries' last axis (here
# $\sqrt 4 = 2$), not by $\sqrt{d_\text{model}}$, and take the softmax over the last axis (the keys), so
# every row of `weights` sums to 1. Use the matrices as given, $xW$ without a transpose (unlike
# `nn.Linear`), and apply $W_O$ after merging the heads. The notebook's stable `softmax` matters: the
# hidden test feeds scores in the thousands.
# </details>

# %% nbgrader={"grade": false, "grade_id": "mha_numpy", "locked": false, "schema_version": 3, "solution": true, "task": false}
def multi_head_attention_np(x, w_q, w_k, w_v, w_o, n_heads):
    """Multi-head self-attention in numpy.

    Args:
        x: (B, T, d_model).
        w_q, w_k, w_v, w_o: (d_model, d_model) projection matrices (x @ w).
        n_heads: h, which divides d_model.

    Returns:
        (output, weights): output (B, T, d_model), weights (B, h, T, T), each head's softmax
        over the keys.
    """
    ### BEGIN SOLUTION
    q = split_heads(x @ w_q, n_heads)                       # (B, h, T, d_head)
    k = split_heads(x @ w_k, n_heads)
    v = split_heads(x @ w_v, n_heads)
    d_head = q.shape[-1]
    scores = q @ k.swapaxes(-1, -2) / math.sqrt(d_head)     # (B, h, T, T)
    weights = softmax(scores, axis=-1)                      # over the keys
    return merge_heads(weights @ v) @ w_o, weights          # (B, T, d_model), (B, h, T, T)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "mha_numpy_test", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import multi_head_attention as check

check.mha_numpy_example(multi_head_attention_np)
### BEGIN HIDDEN TESTS
check.mha_numpy(multi_head_attention_np)
### END HIDDEN TESTS

# %% [markdown]
# ## 4. A PyTorch module for self- and cross-attention
#
# Now the version the rest of the course uses. Each projection is an `nn.Linear(d_model, d_model)`
# (with a bias by default). Note `nn.Linear` stores its weight as $(d_\text{out}, d_\text{in})$ and
# computes $x W^\top + b$; you just call the layer, `self.q_proj(x)`.
#
# **Cross-attention** changes one line: the queries come from `x` $(B, T_q, d_\text{model})$, the keys
# and values from `memory` $(B, T_k, d_\text{model})$, so the weights are $(B, h, T_q, T_k)$ and the output
# has $x$'s length, $(B, T_q, d_\text{model})$: one answer per query.
#
# **Masks** keep notebook 02's convention: boolean, `True` = *may attend*, broadcastable to the
# scores $(B, h, T_q, T_k)$:
# - 2-D masks $(T_q, T_k)$ and 4-D masks such as $(B, 1, 1, T_k)$ broadcast as they are;
# - a 3-D mask, such as notebook 02's padding mask $(B, 1, T_k)$, first needs a head axis,
#   `mask[:, None]` $\to (B, 1, 1, T_k)$; without it broadcasting lines up the **batch** axis with the
#   **head** axis;
# - `is_causal=True` adds the causal mask (query $i$ sees keys $j \le i$; only for self-attention,
#   $T_q = T_k$), combined with any `mask` by AND.
#
# Set blocked scores to $-\infty$ with `scores.masked_fill(~mask, float("-inf"))` before the softmax.
#
# > **PyTorch's convention is the opposite.** `nn.MultiheadAttention`'s `key_padding_mask` and its
# > boolean `attn_mask` mark the **blocked** positions with `True`. When you compare with it (the
# > test does), pass `~mask`. The fused `F.scaled_dot_product_attention` uses our convention. Mixing
# > the two up is a silent bug: the model attends only to padding.

# %% [markdown]
# ### Exercise 3: `MultiHeadAttention.forward` (6 points: 3 without masks, 3 with masks)
# *Difficulty: ★★★ · about 30 minutes*
#
# `__init__` is given: keep its attribute names (`q_proj`, `k_proj`, `v_proj`, `out_proj`), which
# the check and the later notebooks rely on. Write `forward`. Compute the attention yourself, as in
# notebook 02 (`torch.softmax` is fine): calling `F.scaled_dot_product_attention`,
# `nn.MultiheadAttention` or the package's `MultiHeadAttention`/`attention` fails the check,
# because the point is to write the maths. Use your `split_heads` and `merge_heads`. Apply dropout
# to the weights only in training (`F.dropout(weights, self.dropout, self.training)`); the checks run
# in eval mode, so dropout is not graded, but notebook 05 trains with it. The hidden tests copy the
# weights of a random `torch.nn.MultiheadAttention(d_model, n_heads, batch_first=True)` into yours and
# compare outputs and per-head weights. Two test cells grade it: the first (3 points) without masks,
# for self- and cross-attention with different lengths, one head, no biases, float32 and float64, and
# checks that gradients reach every projection; the second (3 points) with padding masks (3-D and
# 4-D), `is_causal=True`, both together, and a $(T_q, T_k)$ mask shared by the batch.
#
# <details><summary>Hint 1</summary>
#
# Start from your numpy function: the same steps, with the layers `self.q_proj` and friends in place of
# the matrices, `torch.softmax` over the last axis and `.transpose(-2, -1)`. For cross-attention only the
# source of the keys and values changes (`memory` when it is given, `x` otherwise). Always return a pair,
# with `None` as the weights unless `need_weights`. Pass the first test cell before adding masks.
# </details>
#
# <details><summary>Hint 2</summary>
#
# Block the scores where the mask is False with $-\infty$ (`masked_fill`) *before* the softmax, so the
# remaining weights still sum to 1. A 3-D mask first gets a head axis at position 1, $(B, 1, T_k) \to
# (B, 1, 1, T_k)$. The causal mask is the lower triangle *with* the diagonal (`torch.tril`) of a
# $(T_q, T_k)$ boolean matrix, combined with any `mask`. Keep this course's convention (True = may
# attend); do not invert it for torch. Check: with `is_causal=True` and $T = 4$, row 0 of every head's
# weights is `[1, 0, 0, 0]`, and row 3 has no zeros.
# </details>

# %% nbgrader={"grade": false, "grade_id": "multi_head_attention", "locked": false, "schema_version": 3, "solution": true, "task": false}
class MultiHeadAttention(nn.Module):
    """Multi-head attention for self-attention (memory=None) and cross-attention."""

    def __init__(self, d_model, n_heads, *, bias=True, dropout=0.0):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
        self.d_model, self.n_heads, self.d_head = d_model, n_heads, d_model // n_heads
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)
        self.dropout = dropout

    def forward(self, x, memory=None, *, mask=None, is_causal=False, need_weights=False):
        """x: (B, T_q, d_model) queries' source; memory: (B, T_k, d_model) keys' and values'
        source (None: self-attention, memory = x).
        mask: boolean, True = may attend, broadcastable to (B, h, T_q, T_k) once a 3-D mask
        gets a head axis (mask[:, None]). is_causal: query i attends to keys j <= i.
        Returns (output (B, T_q, d_model), weights (B, h, T_q, T_k) if need_weights else None).
        """
        ### BEGIN SOLUTION
        source = x if memory is None else memory
        q = split_heads(self.q_proj(x), self.n_heads)             # (B, h, T_q, d_head)
        k = split_heads(self.k_proj(source), self.n_heads)        # (B, h, T_k, d_head)
        v = split_heads(self.v_proj(source), self.n_heads)        # (B, h, T_k, d_head)
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.d_head)  # (B, h, T_q, T_k)
        if mask is not None:
            if mask.dim() == 3:
                mask = mask[:, None]                              # (B, 1, T_q or 1, T_k)
            scores = scores.masked_fill(~mask, float("-inf"))
        if is_causal:
            n_q, n_k = scores.shape[-2:]
            causal = torch.ones(n_q, n_k, dtype=torch.bool, device=scores.device).tril()
            scores = scores.masked_fill(~causal, float("-inf"))
        weights = torch.softmax(scores, dim=-1)                   # over the keys
        out = F.dropout(weights, self.dropout, self.training) @ v  # (B, h, T_q, d_head)
        return self.out_proj(merge_heads(out)), (weights if need_weights else None)
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "multi_head_attention_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import multi_head_attention as check

check.multi_head_attention_example(MultiHeadAttention)
### BEGIN HIDDEN TESTS
check.multi_head_attention(MultiHeadAttention)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "multi_head_attention_masks_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import multi_head_attention as check

check.multi_head_attention_masks_example(MultiHeadAttention)
### BEGIN HIDDEN TESTS
check.multi_head_attention_masks(MultiHeadAttention)
### END HIDDEN TESTS

# %% [markdown]
# Here is the comparison the check makes, once, in the open. `load_torch_mha` copies torch's
# weights into yours: torch keeps $W_Q, W_K, W_V$ stacked in one `in_proj_weight` of shape
# $(3 d_\text{model}, d_\text{model})$. The decoder-like queries (length 4) attend over an
# encoder-like memory (length 7) whose last two positions are padding.

# %%
torch.manual_seed(1)
theirs = nn.MultiheadAttention(16, 4, batch_first=True).eval()
mine = load_torch_mha(MultiHeadAttention(16, 4), theirs).eval()
x_cross, memory_cross = torch.randn(1, 4, 16), torch.randn(1, 7, 16)
real_keys = torch.tensor([[[True] * 5 + [False] * 2]])                      # (B, 1, T_k): 5 real keys
with torch.no_grad():
    out_mine, w_mine = mine(x_cross, memory_cross, mask=real_keys, need_weights=True)
    out_theirs, w_theirs = theirs(x_cross, memory_cross, memory_cross, key_padding_mask=~real_keys[:, 0],
                                  need_weights=True, average_attn_weights=False)
print("output shape", tuple(out_mine.shape), " weights shape", tuple(w_mine.shape))
print("largest difference from torch: output", (out_mine - out_theirs).abs().max().item(),
      " weights", (w_mine - w_theirs).abs().max().item())
fig, axes = plot_attention_grid(w_mine[0], titles=[f"head {i}" for i in range(4)],
                                query_labels=[f"q{i}" for i in range(4)],
                                key_labels=[f"m{j}" for j in range(5)] + ["pad", "pad"],
                                suptitle="Cross-attention (untrained): 4 queries over 7 memory positions")
plt.show()

# %% [markdown]
# ## 5. How many parameters?
#
# A head of width $d_\text{head}$ needs $d_\text{model} \times d_\text{head}$ weights for each of its
# query, key and value projections, so $h$ heads need $3\, h\, d_\text{model}\, d_\text{head} = 3\, d_\text{model}^2$:
# exactly the stacked matrices of section 1. The output projection adds $d_\text{model}^2$, and with
# biases each of the four projections adds $d_\text{model}$:
#
# $$
# \#\text{params} = 4\, d_\text{model}^2 + 4\, d_\text{model} \quad \text{(with biases)},
# $$
#
# **whatever the number of heads**. More heads means more, narrower lookups for the same price.
# (The matrix products cost the same multiply-adds for any $h$; what grows with $h$ is the number of
# $T_q \times T_k$ score matrices to mask, softmax and hold in memory.)

# %% [markdown]
# ### Exercise 4: the parameter count (2 points)
# *Difficulty: ★☆☆ · about 5 minutes*
#
# Write `mha_param_count(d_model, n_heads, bias=True)` from the formula (an `int`). Do not build a
# module to count: the hidden test also asks about GPT-3's width, $d_\text{model} = 12288$ with 96
# heads (Brown et al. 2020), and compares the rest with `torch.nn.MultiheadAttention`.
#
# <details><summary>Hint 1</summary>
#
# Count one projection, an `nn.Linear(d_model, d_model)`: how many weights, how many biases? There are
# four such projections. Then ask where `n_heads` enters the count.
# </details>
#
# <details><summary>Hint 2</summary>
#
# It does not: the heads only slice the projections' outputs. The visible check, $d_\text{model} = 8$
# with 2 heads, expects 288 with biases and 256 without; GPT-3's width gives about 604 million, far too
# many to build a module for.
# </details>

# %% nbgrader={"grade": false, "grade_id": "param_count", "locked": false, "schema_version": 3, "solution": true, "task": false}
def mha_param_count(d_model, n_heads, bias=True):
    """Number of parameters of multi-head attention with q, k, v and output projections."""
    ### BEGIN SOLUTION
    return 4 * d_model * d_model + (4 * d_model if bias else 0)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "param_count_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import multi_head_attention as check

check.param_count_example(mha_param_count)
### BEGIN HIDDEN TESTS
check.param_count(mha_param_count)
### END HIDDEN TESTS

# %%
for h in (1, 2, 4, 8, 16):
    counted = sum(p.numel() for p in MultiHeadAttention(256, h).parameters())
    print(f"d_model=256, {h:2d} head{'s' if h > 1 else ' '} of width {256 // h:3d}: {counted:,} parameters "
          f"(formula {mha_param_count(256, h):,})")

# %% [markdown]
# ## 6. Heads specialise
#
# Time to see why the split pays off. The task: a random sequence of digits `0..7`, and at each
# position $t \ge 3$ the model must output **two** things, the token one step back ($x_{t-1}$) and
# the token three steps back ($x_{t-3}$). The model is as small as it can be:
#
# - token embedding plus a learned **position** embedding, so that attention can tell *where*
#   a key is (notebook 04 is about positions; here a table of one learned vector per position will do);
# - one `MultiHeadAttention` (yours) with a causal mask, and **no** residual connection, so everything
#   the model knows about earlier tokens comes through attention;
# - two linear read-outs, one per answer.
#
# We train it twice, with 2 heads of width 16 and with 1 head of width 32. Both have exactly the
# same number of parameters (section 5). A few seconds each.

# %%
N_DIGITS, SEQ_LEN, OFFSETS = 8, 16, (1, 3)


def make_offset_batch(batch_size, gen):
    """Random digits (B, SEQ_LEN) and, per offset o, the targets x[t - o] (valid for t >= 3)."""
    x = torch.from_numpy(gen.integers(0, N_DIGITS, size=(batch_size, SEQ_LEN)))
    return x, [torch.roll(x, o, dims=1) for o in OFFSETS]


class OffsetModel(nn.Module):
    def __init__(self, n_heads, d_model=32):
        super().__init__()
        self.tokens = nn.Embedding(N_DIGITS, d_model)
        self.positions = nn.Embedding(SEQ_LEN, d_model)
        self.attn = MultiHeadAttention(d_model, n_heads)
        self.read_outs = nn.ModuleList([nn.Linear(d_model, N_DIGITS) for _ in OFFSETS])

    def forward(self, x, need_weights=False):
        e = self.tokens(x) + self.positions(torch.arange(x.shape[1], device=x.device))
        a, weights = self.attn(e, is_causal=True, need_weights=need_weights)
        return [read(a) for read in self.read_outs], weights


SNAPSHOT_STEPS = sorted(set(range(0, 60, 4)) | set(range(60, 401, 20)))


def train_offset(n_heads, steps=400, batch_size=64, seed=0):
    """Adam on the summed cross-entropies; keeps the attention map of one probe sequence."""
    torch.manual_seed(seed)
    gen = np.random.default_rng(seed)
    model = OffsetModel(n_heads).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    probe, _ = make_offset_batch(1, np.random.default_rng(123))
    probe = probe.to(device)
    losses, snapshots = [], []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)                  # a tiny model: one thread is fastest
    try:
        for step in tqdm(range(steps + 1), desc=f"training with {n_heads} head(s)"):
            if step in SNAPSHOT_STEPS:
                with torch.no_grad():
                    snapshots.append((step, model(probe, need_weights=True)[1][0].cpu().numpy()))
            if step == steps:
                break
            x, targets = make_offset_batch(batch_size, gen)
            logits, _ = model(x.to(device))
            loss = sum(F.cross_entropy(lg[:, 3:].reshape(-1, N_DIGITS), y[:, 3:].reshape(-1).to(device))
                       for lg, y in zip(logits, targets))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
    finally:
        torch.set_num_threads(threads)
    return model, losses, snapshots, probe[0].cpu().numpy()


offset_runs = {h: train_offset(h) for h in (2, 1)}
fig, ax = plt.subplots(figsize=(7, 3.8))
for h, (_, losses, _, _) in offset_runs.items():
    ax.plot(losses, label=f"{h} head{'s' if h > 1 else ''} of width {32 // h}")
ax.axhline(math.log(N_DIGITS), color="grey", ls="--", lw=1,
           label=f"ln {N_DIGITS}: one answer right, the other a guess among {N_DIGITS}")
ax.axhline(2 * math.log(2), color="grey", ls=":", lw=1,
           label="2 ln 2: both digits known, which is which a coin flip")
ax.set_xlabel("training step")
ax.set_ylabel("summed cross-entropy (nats)")
ax.set_title("Two heads solve the two-lookup task; one head plateaus")
ax.legend(fontsize=8)
plt.show()

# %%
eval_x, eval_targets = make_offset_batch(1000, np.random.default_rng(7))
for h, (model, _, _, _) in offset_runs.items():
    model.eval()
    with torch.no_grad():
        logits, weights = model(eval_x.to(device), need_weights=True)
    accs = [(lg[:, 3:].argmax(-1).cpu() == y[:, 3:]).float().mean().item() for lg, y in zip(logits, eval_targets)]
    t = torch.arange(3, SEQ_LEN)
    on_offset = {o: weights[:, :, t, t - o].mean(dim=(0, 2)).cpu().numpy() for o in OFFSETS}
    print(f"{h} head{'s' if h > 1 else ' '}: accuracy on x[t-1] {accs[0]:.1%}, on x[t-3] {accs[1]:.1%}; "
          + "; ".join(f"mean weight on t-{o} per head {np.round(v, 2)}" for o, v in on_offset.items()))

# %% [markdown]
# With two heads, one head puts nearly all its weight one step back and the other three steps
# back: the bright diagonals below sit one and three cells left of the dotted line (the query's
# own position). Rows 0 to 2 have no valid target and were not trained. Each lookup is clean, and
# the read-outs can tell the two answers apart because they arrive through different heads
# (different columns before `out_proj`). The single head splits its weight between the two offsets,
# not exactly half each, and returns one blend of the two tokens; after 400 steps it reads one answer
# well and the other poorly. Its loss first sits near $\ln 8$ (one answer learned, the other a guess)
# and then falls slowly: uneven weights make the blend slightly lopsided, which a read-out can
# exploit with much training (in our runs the single head's loss was still about 0.4 after 1200
# steps). Two heads need under 100.

# %%
model_2, _, snapshots_2, probe_tokens = offset_runs[2]
labels = [f"{t}:{int(tok)}" for t, tok in enumerate(probe_tokens)]       # position:token


def draw_heads(maps, suptitle):
    fig, axes = plot_attention_grid(maps, titles=[f"head {i}" for i in range(len(maps))], query_labels=labels,
                                    key_labels=labels, suptitle=suptitle)
    for ax in axes:
        ax.plot([-0.5, SEQ_LEN - 0.5], [-0.5, SEQ_LEN - 0.5], "w:", lw=1)   # the diagonal: offset 0
        ax.set_xlabel("key (position:token)")
    axes[0].set_ylabel("query (position:token)")
    plt.show()


draw_heads(snapshots_2[-1][1], "Trained 2-head model: where each head looks (dotted: the query itself)")

# %% [markdown]
# ### Explore: how the heads specialise during training
#
# Drag the slider through training and switch between the models. At step 0 every head spreads
# its weight over the whole past (a causal smear). Watch when the two heads of the 2-head model
# lock onto different offsets, and compare with the loss curve above; the 1-head model ends with
# two dimmer diagonals, its weight split between the offsets, instead of one bright one.

# %%
def show_heads(step, n_heads):
    maps = dict(offset_runs[n_heads][2])[step]
    draw_heads(maps, f"{n_heads} head{'s' if n_heads > 1 else ''}, after {step} training steps")


step_slider = widgets.SelectionSlider(options=SNAPSHOT_STEPS, value=SNAPSHOT_STEPS[-1], description="step",
                                      continuous_update=False)
heads_toggle = widgets.ToggleButtons(options=[("2 heads", 2), ("1 head", 1)], value=2, description="model")
display(widgets.VBox([widgets.HBox([step_slider, heads_toggle]),
                      widgets.interactive_output(show_heads, {"step": step_slider, "n_heads": heads_toggle})]))

# %% [markdown]
# ### Written question (2 points, graded by hand)
#
# Carry this notebook's argument over to two variants, still with $d_\text{model} = 32$.
# (a) Keep one head of width 32 and the inputs of section 6, but replace the two read-outs by one whose
# target is the **sum** $x_{t-1} + x_{t-3}$ (one of 15 classes, 0 to 14). Would the single head still
# plateau? Explain why or why not.
# (b) Someone proposes 32 heads of width 1, "since heads are free". In a width-1 head the score of query
# $i$ on key $j$ is a product of two numbers, $q_i k_j$. What does that imply about the key to which a
# query can give the most weight? Name a lookup such a head cannot make, and say what, in general, each
# head gives up as $h$ grows at fixed $d_\text{model}$.
# Three to six sentences.

# %% [markdown] nbgrader={"grade": true, "grade_id": "why_heads_question", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# (a) No, one head is enough. Its output is still one blend, about $\tfrac12(v_a + v_b)$ for
# $a = x_{t-1}$ and $b = x_{t-3}$, and the blend cannot say which digit sat at which offset; but the
# target cannot either, since $a + b = b + a$. What the blend loses is exactly what the sum does not
# need, and what the sum needs survives: if the values carry each digit's size as one feature, the blend
# carries $(a + b)/2$, and a linear read-out that scores class $s$ by $s(a + b) - s^2/2$ peaks at
# $s = a + b$. (In our runs one head reached 100% accuracy on this task within 400 steps; two heads
# were a little faster.) Section 6 was hard not because of two answers but because of two positions
# whose order matters.
# (b) $\exp(q_i k_j)$ is largest at the key with the largest $k_j$ when $q_i > 0$ and at the smallest
# when $q_i < 0$: every query ranks the keys by the same single number, and only chooses the direction
# and the sharpness, so among the same keys a query can favour only one of two. Such a head cannot
# attend to "the earlier position holding the same digit as me" for 8 digits, where the favourite must
# change with the query's digit. (Position lookups are still possible: in our runs 32 heads of width 1
# learned the offset task of section 6.) In general a head's $T_q \times T_k$ score matrix has rank at
# most $d_\text{head}$ and its values carry only $d_\text{head}$ numbers, so more heads make more but
# cruder comparisons, each carrying less; they also mean $h$ weight matrices of size $T_q \times T_k$ to
# store and normalise, although the multiply-adds stay the same. Real models use $d_\text{head}$ of 64
# or 128 (GPT-3: 96 heads of 128).

# %% [markdown]
# ## Summary
#
# - Multi-head attention runs $h$ attentions of width $d_\text{head} = d_\text{model}/h$ in parallel and
#   mixes their concatenated outputs with $W_O$ (Vaswani et al. 2017).
# - Split heads with reshape $(B, T, h, d_\text{head})$ **then** swap axes; merge by swapping back **then**
#   reshaping. A reshape alone scrambles positions without any error.
# - Batched products of 4-D arrays use `@` (`np.matmul`), never `np.dot`.
# - Cross-attention takes queries from `x` and keys and values from `memory`; lengths may differ.
# - Scale each head's scores by $1/\sqrt{d_\text{head}}$; masks are `True` = may attend here, the
#   opposite of `nn.MultiheadAttention`'s `key_padding_mask`.
# - Parameters: $4 d_\text{model}^2 + 4 d_\text{model}$, whatever $h$ is. More heads buy more
#   independent lookups, not more weights.
#
# **Next:** `04_positional_encoding`. The offset task needed a position table: attention by itself
# cannot tell positions apart. Notebook 04 shows why, and the better ways to add positions.
