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
# # 04 · Positional encoding: telling attention where tokens are
#
# Attention looks things up by content. That is what let notebook 02's one-layer model find a
# symbol at any distance, and it is also a blind spot: shuffle the tokens and attention computes
# the same outputs, shuffled. "dog bites man" and "man bites dog" look alike to it. This notebook
# measures that blindness and then fixes it three ways, all in use today.
#
# **Learning objectives.** You will learn to
# - show, by measurement, that self-attention without positions is *permutation-equivariant*;
# - build the sinusoidal position table of Vaswani et al. (2017) without a Python loop, and avoid
#   its classic exponent bug;
# - write learned position embeddings as used by BERT and GPT-2;
# - implement rotary position embeddings (RoPE, Su et al. 2021) in the split-halves layout of
#   Hugging Face `transformers`' Llama code, and relate it to the paper's interleaved layout;
# - verify numerically that with RoPE a query-key score depends only on the *relative* position.
#
# **Prerequisites:** `02_attention` (scaled dot-product attention) and `03_multi_head_attention`
# (heads, `d_head`); numpy broadcasting; PyTorch tensors and `nn.Module`.
#
# **Estimated time:** about 75 minutes. **Points:** 17 autograded in 7 exercises, plus 2 for a written
# answer graded by hand.
#
# **How to check your work:** each exercise has an answer cell (replace
# `raise NotImplementedError()` with your code) followed by a test cell. Run the test cell: a
# ✓ line means the visible check on a small worked example passed. When the notebook is graded,
# hidden tests also run your code on random inputs and compare it with the formulas of the papers
# and with the rotary code of `transformers`' Llama model. Each exercise says its difficulty and a
# rough time; hints open on demand. To see your grade on this machine, run
# `transformer-course check 04_positional_encoding.ipynb` in a terminal.

# %%
import math

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn as nn
from IPython.display import display

from transformer_course.attention import MultiHeadAttention
from transformer_course.device import default_device
from transformer_course.plots import plot_lines, plot_position_table

np.set_printoptions(precision=4, suppress=True)
torch.manual_seed(0)
torch.set_num_threads(1)        # every tensor here is tiny: one thread is fastest
device = default_device()
print("device:", device)

# %% [markdown]
# ## 1. Attention does not know the order
#
# Take self-attention on a sequence $X$ of $T$ token vectors (the rows of $X$) and reorder the
# rows with a permutation matrix $P$. The queries, keys and values are $XW_Q$, $XW_K$, $XW_V$, so
# they are reordered the same way, and
#
# $$
# \mathrm{softmax}\!\left(\frac{(PQ)(PK)^\top}{\sqrt{d_k}}\right) PV
# = P\,\mathrm{softmax}\!\left(\frac{QK^\top}{\sqrt{d_k}}\right) P^\top P V
# = P\,\mathrm{Attention}(Q, K, V),
# $$
#
# because the softmax acts on each row separately (so $P$ on the left and $P^\top$ on the right
# just reorder rows and columns) and $P^\top P = I$. Shuffling the input shuffles the output
# the same way and changes nothing else: attention is **permutation-equivariant**. The output at
# the token "dog" is the same whether "dog" comes first or last.
#
# You will measure this. For a permutation `perm` of the positions $0..T-1$, the input
# `x[:, perm]` holds at position $i$ the token that was at `perm[i]`. An equivariant layer gives
# `layer(x[:, perm]) == layer(x)[:, perm]`. Equivalently, undo the shuffle on the output:
# the inverse permutation is `torch.argsort(perm)`, and `layer(x[:, perm])[:, torch.argsort(perm)]`
# equals `layer(x)`.

# %% [markdown]
# ### Exercise 1: measure the permutation gap (2 points)
# *Difficulty: ★☆☆ · about 10 minutes*
#
# Write `permutation_gap(layer, x, perm)`: run `layer` on `x` and on `x` with its positions
# (axis 1) permuted by `perm`, undo the permutation on the second output, and return the
# largest absolute difference between the two outputs as a Python `float`, over the whole
# batch (every sequence, position and feature). It is 0 up to rounding for an equivariant layer
# and clearly positive for a layer that uses positions. Run the layer under `torch.no_grad()`
# (you only measure), and do not modify `x`.
#
# `layer` returns a plain tensor of shape `(B, T, d_out)`. (`MultiHeadAttention` returns a pair
# `(out, weights)`; that is why the demo below wraps it as `lambda x: mha(x)[0]` before passing it
# in.) So do not write `layer(x)[0]` inside your function: on a tensor, `[0]` picks the first
# sequence of the batch and your gap would ignore the others.
#
# <details><summary>Hint 1</summary>
#
# You need three tensors: `layer(x)`, `layer` applied to the shuffled input, and that second output put
# back in the original order. The inverse of `perm` is `torch.argsort(perm)`, not `perm` itself (apply
# it to axis 1). Then reduce the difference to one number over every axis.
# </details>
#
# <details><summary>Hint 2</summary>
#
# The visible check has x = `[[1, 1, 1, 1], [1, 2, 3, 5]]` (shape (2, 4, 1)) and perm = `[1, 2, 3, 0]`,
# so `argsort(perm)` = `[3, 0, 1, 2]`. For the running sum, the second sequence's un-permuted output is
# `[11, 2, 5, 10]` against `[1, 3, 6, 11]`: a gap of 10. The first sequence alone gives 3, so an answer of
# 3 compared only sequence 0. Take the absolute value before the maximum.
# </details>

# %% nbgrader={"grade": false, "grade_id": "permutation_gap", "locked": false, "schema_version": 3, "solution": true, "task": false}
def permutation_gap(layer, x, perm):
    """How far `layer` is from permutation-equivariance on one input and one permutation.

    Args:
        layer: a function mapping a tensor (B, T, d) to a tensor (B, T, d_out).
        x: the input, shape (B, T, d).
        perm: a LongTensor (T,), a permutation of 0 .. T-1 (positions).

    Returns:
        max |layer(x[:, perm]) un-permuted - layer(x)| as a float.
    """
    ### BEGIN SOLUTION
    inverse = torch.argsort(perm)                          # inverse[perm[i]] = i
    with torch.no_grad():
        plain = layer(x)
        shuffled = layer(x[:, perm])                       # position i holds token perm[i]
    return float((shuffled[:, inverse] - plain).abs().max())
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "permutation_gap_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import positional_encoding as check

check.permutation_gap_example(permutation_gap)
### BEGIN HIDDEN TESTS
check.permutation_gap(permutation_gap)
### END HIDDEN TESTS

# %% [markdown]
# Now the measurement. A multi-head self-attention layer (the one from notebook 03) is
# equivariant to float32 rounding; so is a position-wise feed-forward layer, which treats every
# position alike. A **causal** attention layer is not: position $i$ sees only positions
# $\le i$, and *which* tokens those are changes with the order. Nor is attention once something
# position-dependent is added to the input, as the rest of this notebook does (here, for now, a
# random vector per position).

# %%
torch.manual_seed(1)
d_model, T = 32, 10
mha = MultiHeadAttention(d_model, n_heads=4).eval()
ffn = nn.Sequential(nn.Linear(d_model, 64), nn.ReLU(), nn.Linear(64, d_model)).eval()
position_vectors = torch.randn(T, d_model)
layers = {
    "self-attention": lambda x: mha(x)[0],
    "feed-forward, per position": ffn,
    "causal self-attention": lambda x: mha(x, is_causal=True)[0],
    "self-attention on x + position vectors": lambda x: mha(x + position_vectors)[0],
}
x_demo = torch.randn(2, T, d_model)
perm_demo = torch.randperm(T)
print("permutation:", perm_demo.tolist())
for name, layer in layers.items():
    print(f"{name:40s} gap = {permutation_gap(layer, x_demo, perm_demo):.2e}")

# %% [markdown]
# ## 2. Sinusoidal positions
#
# The original Transformer (Vaswani et al. 2017, section 3.5) adds a fixed vector $PE_p$ to the
# embedding of the token at position $p$. Its $d$ components come in pairs, one pair per
# frequency $\omega_i$:
#
# $$
# PE_{p,\,2i} = \sin(p\,\omega_i), \qquad PE_{p,\,2i+1} = \cos(p\,\omega_i), \qquad
# \omega_i = \frac{1}{10000^{2i/d}}, \quad i = 0, 1, \dots, d/2 - 1 .
# $$
#
# Column pair 0 turns once every $2\pi \approx 6.3$ positions; pair $i$ once every
# $2\pi \cdot 10000^{2i/d}$ positions, so the last pair's period approaches $2\pi \cdot 10000$
# for large $d$ (about 47,000 positions for $d = 64$). Like the hands of a clock, fast columns tell nearby positions
# apart and slow ones tell far-apart positions apart. The paper chose sinusoids because for any
# offset $k$, $PE_{p+k}$ is a fixed linear function of $PE_p$ (a rotation of each pair by
# $k\omega_i$), which may make relative offsets easy to learn.
#
# The layout matters: sines in the **even** columns $0, 2, 4, \dots$ and cosines in the **odd**
# columns $1, 3, 5, \dots$, interleaved. (Some libraries concatenate all sines, then all cosines;
# that is a different table.)
#
# > **Common bug: the even index used twice.** In code the even columns are
# > `i = np.arange(0, d, 2)`, which *already* counts $0, 2, 4, \dots$, so it is the paper's $2i$.
# > Writing `10000 ** (2 * i / d)` with that `i` doubles the exponent: the frequencies fall twice
# > as fast, the second half of the columns barely change over thousands of positions, and nothing
# > crashes. Either use `i = np.arange(d // 2)` with `2 * i / d`, or `np.arange(0, d, 2)` with
# > `/ d`, never both.

# %% [markdown]
# ### Exercise 2: the sinusoidal table, vectorised (3 points)
# *Difficulty: ★★☆ · about 15 minutes*
#
# Write `sinusoidal_table(n_positions, d_model, base=10000.0)` returning a float64 numpy array
# of shape `(n_positions, d_model)` (`d_model` is even), with `base` in place of 10000 in the
# formula. Vectorise: build a column of positions `(n_positions, 1)` and a row of frequencies
# `(d_model / 2,)`; their product broadcasts to every angle at once. Then fill the even columns
# with the sines (`table[:, 0::2] = ...`) and the odd columns with the cosines. No Python loop over
# positions: the hidden test builds a 2048-row table and counts the lines your code executes.
#
# <details><summary>Hint 1</summary>
#
# Build the angles first, one $(n_\text{positions}, d/2)$ array from a column of positions times a row of
# frequencies, then write the sines and the cosines into the table with slices. Decide once whether
# your index counts $0, 1, 2, \dots$ (then the exponent is $2i/d$) or $0, 2, 4, \dots$ (then it already
# is $2i$), and use `base` rather than a hard-coded 10000.
# </details>
#
# <details><summary>Hint 2</summary>
#
# `sinusoidal_table(4, 4)` has the frequencies $1$ and $10000^{-2/4} = 0.01$, so row $p$ is
# $[\sin p, \cos p, \sin 0.01p, \cos 0.01p]$: row 0 is `[0, 1, 0, 1]` and row 1 about
# `[0.8415, 0.5403, 0.0100, 1.0000]`. If your third column grows 100 times more slowly, the even index is
# counted twice; if row 0 is `[1, 0, 1, 0]`, sin and cos are swapped.
# </details>

# %% nbgrader={"grade": false, "grade_id": "sinusoidal_table", "locked": false, "schema_version": 3, "solution": true, "task": false}
def sinusoidal_table(n_positions, d_model, base=10000.0):
    """The sinusoidal position table of Vaswani et al. (2017).

    Args:
        n_positions: number of positions (rows), 0 .. n_positions - 1.
        d_model: number of features (columns), even.
        base: the 10000 of the paper's formula.

    Returns:
        float64 numpy array (n_positions, d_model): sin(p w_i) in column 2i, cos(p w_i) in
        column 2i + 1, with w_i = base ** (-2i / d_model).
    """
    ### BEGIN SOLUTION
    p = np.arange(n_positions, dtype=np.float64)[:, None]          # (P, 1)
    even_columns = np.arange(0, d_model, 2, dtype=np.float64)     # 0, 2, 4, ...: this IS 2i
    omega = base ** (-even_columns / d_model)                     # (d/2,)
    angles = p * omega                                            # (P, d/2)
    table = np.zeros((n_positions, d_model))
    table[:, 0::2] = np.sin(angles)
    table[:, 1::2] = np.cos(angles)
    return table
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "sinusoidal_table_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import positional_encoding as check

check.sinusoidal_table_example(sinusoidal_table)
### BEGIN HIDDEN TESTS
check.sinusoidal_table(sinusoidal_table)
### END HIDDEN TESTS

# %% [markdown]
# Here is the table for 100 positions and 64 features. The left columns oscillate fast, the
# right ones hardly change over 100 positions; each row is a unique "fingerprint" of its position.
# Hardly changing means they stay near their values at $p = 0$: $\sin \approx 0$ (white) in the
# even columns and $\cos \approx 1$ (red) in the odd ones, hence the vertical stripes on the right.

# %%
table_demo = sinusoidal_table(100, 64)
fig, ax = plot_position_table(table_demo, title="Sinusoidal position table, d = 64")
plt.show()

# %% [markdown]
# ### What does the dot product between two positions say?
#
# Expand $PE_p \cdot PE_{p+k}$ pair by pair:
# $\sin(p\omega)\sin((p+k)\omega) + \cos(p\omega)\cos((p+k)\omega) = \cos(k\omega)$, so
#
# $$
# PE_p \cdot PE_{p+k} = \sum_{i=0}^{d/2-1} \cos(k\,\omega_i),
# $$
#
# which depends on the distance $k$ only, not on $p$, and is largest ($d/2$) at $k = 0$. So nearby
# positions have similar vectors and distant ones less similar, at every place in the sequence.
# (Inside a real model the learned projections $W_Q$, $W_K$ sit in between and can use this,
# or not.)
#
# ### Explore: the table and the similarity against distance
#
# The explorer shows the table for your choice of width $d$ and base, with the chosen position
# $p$ marked, and $PE_p \cdot PE_{p+k}$ divided by its maximum $d/2$ against the distance $k$
# (the dashed curve is the same for $p = 0$: the two coincide). The third panel is the RoPE score
# of section 4, drawn once you have done exercises 4-6: the cosine between a random query and a
# random key rotated to positions $m$ and $n$, against $k = m - n$, for two different $m$ (the
# curves coincide again). Things to try: a small $d$ (few frequencies: the similarity oscillates
# and comes back up, so far positions look alike), a large $d$, and a small base (all frequencies
# high: similarity drops fast and stays near 0).

# %%
def similarity_by_distance(table, p, max_distance):
    """PE[p] . PE[p + k] for k = 0 .. max_distance (the table must have p + max_distance + 1 rows)."""
    return table[p + np.arange(max_distance + 1)] @ table[p]


def draw_positions(d_model=64, base=10000.0, position=20, max_distance=100):
    table = sinusoidal_table(position + max_distance + 1, d_model, base)
    k = np.arange(max_distance + 1)
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2))
    plot_position_table(table, title=f"Sinusoidal table, d = {d_model}, base = {base:g}", ax=axes[0],
                        mark_position=position)
    plot_lines(k, {f"p = {position}": similarity_by_distance(table, position, max_distance) / (d_model / 2),
                   "p = 0": similarity_by_distance(table, 0, max_distance) / (d_model / 2)},
               xlabel="distance k (positions)", ylabel="PE[p] · PE[p+k] / (d/2)",
               title="Similarity depends on the distance only", ax=axes[1], markers=False,
               styles={"p = 0": "k--"})
    if rope_ready():
        near, far = rope_labels(0, max_distance), rope_labels(position, max_distance)
        plot_lines(k, {near: rope_score_by_distance(d_model, base, max_distance),
                       far: rope_score_by_distance(d_model, base, max_distance, position)},
                   xlabel="relative distance k = m - n (positions)", ylabel="cosine of rotated q and k",
                   title="RoPE: random q, k rotated to m and n", ax=axes[2], markers=False,
                   styles={far: "k--"} if far != near else None)
    else:
        axes[2].set_axis_off()
        axes[2].set_title("RoPE score: finish exercises 4-6 (section 4)")
    fig.tight_layout()
    plt.show()


def rope_ready():
    """True once section 4's functions work (the explorer's third panel uses them)."""
    try:
        rope_score_by_distance(8, 10000.0, 2)
        return True
    except Exception:                 # NameError or NotImplementedError before section 4 is done
        return False


def rope_labels(start, max_distance):
    """Legend text for rope_score_by_distance(..., max_distance, start)."""
    m = start + max_distance
    return f"keys at n = {start}..{m} (query at m = {m})"


def rope_score_by_distance(d_head, base, max_distance, start=0, seed=0):
    """Cosine between a random query rotated to m = start + max_distance and a random key rotated
    to n = m - k, for k = 0 .. max_distance (the same q and k for every k)."""
    gen = torch.Generator().manual_seed(seed)
    q, k = torch.randn(2, d_head, generator=gen, dtype=torch.float64)
    m = start + max_distance
    cos, sin = (t.double() for t in rope_cos_sin(m + 1, d_head, base))
    q_m = apply_rope(q, cos[m], sin[m])
    keys = apply_rope(k.expand(max_distance + 1, d_head), cos[start:], sin[start:])   # n = start .. m
    return (keys @ q_m).flip(0).numpy() / float(q.norm() * k.norm())                  # index k = m - n


explorer = widgets.interactive(
    draw_positions,
    d_model=widgets.IntSlider(value=64, min=4, max=256, step=4, description="d_model"),
    base=widgets.Dropdown(options=[100.0, 1000.0, 10000.0, 100000.0], value=10000.0, description="base"),
    position=widgets.IntSlider(value=20, min=0, max=200, step=1, description="position p"),
    max_distance=widgets.IntSlider(value=100, min=10, max=500, step=10, description="max k"),
)
display(explorer)

# %% [markdown]
# The similarity for three widths side by side, for when the explorer is not live (a static copy
# of the notebook, say). With $d = 8$ there are only four frequencies and the similarity swings
# back up: position $p + 63$ looks more like $p$ (0.95) than $p + 1$ does (0.88). With more columns
# the curve is smoother and far positions stay less similar than near ones.

# %%
k_static = np.arange(201)
table_static = {d: sinusoidal_table(201, d) for d in (8, 32, 128)}
fig, ax = plot_lines(k_static, {f"d = {d}": similarity_by_distance(t, 0, 200) / (d / 2) for d, t in table_static.items()},
                     xlabel="distance k (positions)", ylabel="PE[p] · PE[p+k] / (d/2)",
                     title="Sinusoidal similarity against distance (any p)", markers=False)
plt.show()

# %% [markdown]
# Adding the table to the embeddings breaks the symmetry of section 1: the same layer, fed
# `x + PE`, now gives different outputs for different orders.

# %%
pe_demo = torch.tensor(sinusoidal_table(T, d_model), dtype=torch.float32)
print("self-attention on x      : gap =", f"{permutation_gap(lambda x: mha(x)[0], x_demo, perm_demo):.2e}")
print("self-attention on x + PE : gap =", f"{permutation_gap(lambda x: mha(x + pe_demo)[0], x_demo, perm_demo):.2e}")

# %% [markdown]
# ## 3. Learned positions
#
# BERT (Devlin et al. 2019) and GPT-2 (Radford et al. 2019) do not use a formula: they learn the
# table. It is an `nn.Embedding(max_positions, d_model)`, a trainable matrix with one row per
# position, looked up at positions $0, 1, \dots, T-1$ and added to the token embeddings. It can
# learn whatever suits the data, at a cost: it has $\text{max\_positions} \times d$ parameters (GPT-2:
# $1024 \times 768$), and a row that was never trained (or does not exist: position 1024 in
# GPT-2) means nothing, so the model cannot run on longer sequences than it was trained on.
#
# When a model generates one token at a time with a cache (notebook 07), the new tokens sit at
# positions $t, t+1, \dots$, not $0, 1, \dots$; `offset` says where the input starts.

# %% [markdown]
# ### Exercise 3: a learned position table (3 points)
# *Difficulty: ★☆☆ · about 10 minutes*
#
# Complete `LearnedPositions`: `__init__` creates the table as an `nn.Embedding` (so it is a
# trainable parameter, registered with the module); `forward(x, offset=0)` adds rows
# `offset .. offset + T - 1` of the table to `x` of shape `(B, T, d_model)`, and raises a
# `ValueError` that says so when `offset + T > max_positions`. Build the positions with
# `torch.arange(..., device=x.device)` so that it also works on a GPU.
#
# <details><summary>Hint 1</summary>
#
# An `nn.Embedding` assigned to an attribute in `__init__` is already a registered, trainable table;
# keep `max_positions` too, for the check in `forward`. There, $T$ is `x.shape[-2]`: `x.shape[0]` is the
# batch size.
# </details>
#
# <details><summary>Hint 2</summary>
#
# Look up positions `offset` to `offset + T - 1` and add the resulting $(T, d_\text{model})$ rows to `x`;
# broadcasting adds them to every sequence of the batch. In the visible check the table has 6 rows:
# with $T = 3$, `offset=3` uses rows 3 to 5 and must work ($3 + 3 = 6$ fits exactly), while `offset=4`
# must raise `ValueError` before the lookup, not the `IndexError` of `nn.Embedding`.
# </details>

# %% nbgrader={"grade": false, "grade_id": "learned_positions", "locked": false, "schema_version": 3, "solution": true, "task": false}
class LearnedPositions(nn.Module):
    """Adds a trainable (max_positions, d_model) position table to embeddings."""

    def __init__(self, max_positions, d_model):
        super().__init__()
        ### BEGIN SOLUTION
        self.max_positions = max_positions
        self.table = nn.Embedding(max_positions, d_model)
        ### END SOLUTION

    def forward(self, x, offset=0):
        """x: (B, T, d_model) -> x + table[offset : offset + T], same shape."""
        ### BEGIN SOLUTION
        T = x.shape[-2]
        if offset + T > self.max_positions:
            raise ValueError(f"positions {offset}..{offset + T - 1} exceed max_positions={self.max_positions}")
        positions = torch.arange(offset, offset + T, device=x.device)      # (T,)
        return x + self.table(positions)                                    # (T, d) broadcasts over B
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "learned_positions_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import positional_encoding as check

check.learned_positions_example(LearnedPositions)
### BEGIN HIDDEN TESTS
check.learned_positions(LearnedPositions)
### END HIDDEN TESTS

# %% [markdown]
# ## 4. Rotary position embeddings (RoPE)
#
# Adding a vector to the token embedding mixes "what" and "where" in one vector, and the attention
# score between positions $m$ and $n$ then depends on $m$ and $n$ separately. Su et al. (2021,
# "RoFormer") asked for something else: a score that depends only on the **relative** position
# $m - n$. Their answer is to *rotate* the query and the key, inside each attention layer,
# by angles proportional to their positions.
#
# In two dimensions, let $R(\alpha)$ be the rotation by angle $\alpha$. Rotate the query at
# position $m$ by $m\theta$ and the key at position $n$ by $n\theta$. Since $R(\alpha)^\top = R(-\alpha)$,
#
# $$
# \big(R(m\theta)\,q\big) \cdot \big(R(n\theta)\,k\big) = q^\top R(-m\theta)\, R(n\theta)\, k
# = q^\top R\big((n - m)\theta\big)\, k ,
# $$
#
# a function of $m - n$ only. For $d$ dimensions, split the features into $d/2$ pairs and
# rotate pair $i$ at its own speed $\theta_i = 10000^{-2i/d}$ (the sinusoidal table's frequencies).
# Rotations keep lengths, and nothing is added to the values.
#
# **Which features form a pair?** The paper pairs neighbours, $(x_0, x_1), (x_2, x_3), \dots$: the
# **interleaved** layout. Meta's Llama code, and `transformers` after it, pairs feature $i$ with
# feature $i + d/2$: the **split-halves** layout. Call the two halves $a$ and $b$, so
# $x = [a \,|\, b]$ with $a = (x_0, \dots, x_{d/2-1})$ and $b = (x_{d/2}, \dots, x_{d-1})$; pair $i$
# is $(a_i, b_i) = (x_i, x_{i+d/2})$. Rotating every pair by its angle $\alpha_i$ is
#
# $$
# \mathrm{RoPE}(x) = x \odot \cos\alpha + \mathrm{rotate\_half}(x) \odot \sin\alpha,
# \qquad \mathrm{rotate\_half}([a \,|\, b]) = [-b \,|\, a],
# $$
#
# where $\cos\alpha$ and $\sin\alpha$ are vectors of length $d$ that hold each pair's angle twice,
# at feature $i$ and at feature $i + d/2$: $[\alpha_0, \dots, \alpha_{d/2-1}, \alpha_0, \dots, \alpha_{d/2-1}]$.
# (Check one pair: $a_i' = a_i\cos\alpha_i - b_i\sin\alpha_i$ and
# $b_i' = b_i\cos\alpha_i + a_i\sin\alpha_i$: a rotation.) This notebook, like the
# hidden tests' oracle (`transformers`' `LlamaRotaryEmbedding` and `apply_rotary_pos_emb`), uses
# **split halves** throughout.
#
# > **Common bug: mixing the layouts.** Code written from the paper (neighbouring pairs, angles
# > repeated as $\alpha_0, \alpha_0, \alpha_1, \alpha_1, \dots$) and weights or tables from Llama
# > (halves) run without an error and give wrong scores. Both are valid RoPE; only consistency
# > matters. Section 5 shows the exact relation.

# %% [markdown]
# ### Exercise 4: `rotate_half` (2 points)
# *Difficulty: ★☆☆ · about 5 minutes*
#
# Write `rotate_half(x)` for a tensor with any leading axes: split the **last** axis into its two
# halves `a = x[..., :d/2]` and `b = x[..., d/2:]` and return `[-b, a]` concatenated along the last
# axis. (`torch.chunk` and `torch.cat` work on axis 0 unless you pass `dim=-1`.) The hints of the
# checks, like `transformers`' code, call the halves `x1` and `x2`.
#
# <details><summary>Hint 1</summary>
#
# Everything happens on the last axis: slice with `...` so any leading axes pass through, and give
# `dim=-1` to whatever splits or concatenates. Build a new tensor; negating a slice of `x` in place
# changes `x` too.
# </details>
#
# <details><summary>Hint 2</summary>
#
# `rotate_half([1, 2, 3, 4, 5, 6, 7, 8])` is `[-5, -6, -7, -8, 1, 2, 3, 4]`: the second half, negated,
# moves to the front. `[5, 6, 7, 8, -1, -2, -3, -4]` rotates the wrong way, and `[-2, 1, -4, 3, ...]` is the
# paper's interleaved layout, not the split halves used here.
# </details>

# %% nbgrader={"grade": false, "grade_id": "rotate_half", "locked": false, "schema_version": 3, "solution": true, "task": false}
def rotate_half(x):
    """[a | b] -> [-b | a] on the last axis, a and b its two halves. Shape unchanged."""
    ### BEGIN SOLUTION
    half = x.shape[-1] // 2
    a, b = x[..., :half], x[..., half:]
    return torch.cat([-b, a], dim=-1)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "rotate_half_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import positional_encoding as check

check.rotate_half_example(rotate_half)
### BEGIN HIDDEN TESTS
check.rotate_half(rotate_half)
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 5: the cos and sin tables (2 points)
# *Difficulty: ★☆☆ · about 10 minutes*
#
# Write `rope_cos_sin(n_positions, d_head, base=10000.0)` returning `(cos, sin)`, two float32
# tensors of shape `(n_positions, d_head)`. Row $p$ holds $\cos$ (resp. $\sin$) of the angles
# $p\,\theta_i$, $\theta_i = \text{base}^{-2i/d}$ for $i = 0 .. d/2 - 1$, **repeated twice**
# (concatenate the $(T, d/2)$ angles with themselves: `torch.cat([angles, angles], dim=-1)`).
# The same even-index bug as in section 2 lurks here: `torch.arange(0, d_head, 2)` is already $2i$.
# Compute the angles in float64 and convert at the end, as precision matters at long positions.
#
# <details><summary>Hint 1</summary>
#
# The recipe of exercise 2 in torch: a column of positions times a row of $d/2$ frequencies gives a
# $(T, d/2)$ array of angles. In the split-halves layout the whole row is repeated, not each angle.
# </details>
#
# <details><summary>Hint 2</summary>
#
# `rope_cos_sin(3, 4)` has $\theta = [1, 0.01]$, so row $p$ of the angles is $[p, 0.01p, p, 0.01p]$
# (not $[p, p, 0.01p, 0.01p]$, the interleaved layout), and row 1 of `cos` is about
# `[0.5403, 1.0000, 0.5403, 1.0000]`. Return float32 tensors, `cos` first.
# </details>

# %% nbgrader={"grade": false, "grade_id": "rope_cos_sin", "locked": false, "schema_version": 3, "solution": true, "task": false}
def rope_cos_sin(n_positions, d_head, base=10000.0):
    """Cosines and sines of the RoPE angles, split-halves layout.

    Returns:
        (cos, sin), float32 tensors of shape (n_positions, d_head); row p, column j holds
        cos/sin(p * theta_{j mod d/2}) with theta_i = base ** (-2i / d_head).
    """
    ### BEGIN SOLUTION
    theta = base ** (-torch.arange(0, d_head, 2, dtype=torch.float64) / d_head)   # (d/2,)
    angles = torch.arange(n_positions, dtype=torch.float64)[:, None] * theta       # (T, d/2)
    angles = torch.cat([angles, angles], dim=-1)                                  # (T, d)
    return angles.cos().float(), angles.sin().float()
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "rope_cos_sin_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import positional_encoding as check

check.rope_cos_sin_example(rope_cos_sin)
### BEGIN HIDDEN TESTS
check.rope_cos_sin(rope_cos_sin)
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 6: apply the rotation (3 points)
# *Difficulty: ★☆☆ · about 5 minutes*
#
# Write `apply_rope(x, cos, sin)`: rotate `x` of shape `(..., T, d_head)` with the formula above,
# using your `rotate_half`. `cos` and `sin` broadcast against `x`: `(T, d_head)` tables for a
# `(B, h, T, d_head)` input, or single rows for a single vector. The hidden test compares your
# rotation with `transformers`' `apply_rotary_pos_emb` on the tables of a tiny Llama model
# (importing `transformers` takes a few seconds).
#
# <details><summary>Hint 1</summary>
#
# The formula above is already elementwise: no indexing, no matrix product. Broadcasting lines up a
# $(T, d_\text{head})$ table with the last two axes of `x`, and a single row with a single vector.
# </details>
#
# <details><summary>Hint 2</summary>
#
# On the visible example, $x = [1, 2, 3, 4]$ with angles $[\pi/2, 0, \pi/2, 0]$: the pair
# $(x_0, x_2) = (1, 3)$ turns by 90° to $(-3, 1)$ and $(x_1, x_3) = (2, 4)$ stays, so the answer is
# `[-3, 2, 1, 4]`. If you get `[3, 2, -1, 4]`, the rotation goes the wrong way (a sign in
# `rotate_half` or in the formula). If the check blames `rotate_half`, fix exercise 4 first.
# </details>

# %% nbgrader={"grade": false, "grade_id": "apply_rope", "locked": false, "schema_version": 3, "solution": true, "task": false}
def apply_rope(x, cos, sin):
    """Rotary position embedding, split-halves layout.

    Args:
        x: queries or keys, (..., T, d_head).
        cos, sin: tables broadcastable to x (from rope_cos_sin, rows for x's positions).

    Returns:
        The rotated tensor, same shape as x.
    """
    ### BEGIN SOLUTION
    return x * cos + rotate_half(x) * sin
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "apply_rope_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import positional_encoding as check

check.apply_rope_example(apply_rope)
### BEGIN HIDDEN TESTS
check.apply_rope(apply_rope)
### END HIDDEN TESTS

# %% [markdown]
# ### The relative-position property, measured
#
# Rotate one query $q$ at every position $m$ and one key $k$ at every position $n$, and draw all
# the scores $q_m \cdot k_n$ as a matrix. If the score depends only on $m - n$, the matrix is
# constant along each diagonal. Then compare with *adding* the sinusoidal table to $q$ and $k$
# instead: the scores are no longer a function of $m - n$ alone.

# %%
torch.manual_seed(3)
n_pos, d_head = 24, 16
q_vec, k_vec = torch.randn(d_head, dtype=torch.float64), torch.randn(d_head, dtype=torch.float64)
cos_t, sin_t = rope_cos_sin(n_pos, d_head)
cos_t, sin_t = cos_t.double(), sin_t.double()
q_rot = apply_rope(q_vec.expand(n_pos, d_head), cos_t, sin_t)            # row m: q rotated to position m
k_rot = apply_rope(k_vec.expand(n_pos, d_head), cos_t, sin_t)
rope_scores = (q_rot @ k_rot.T).numpy()                                   # [m, n] = q_m . k_n
pe_small = torch.tensor(sinusoidal_table(n_pos, d_head))
added_scores = ((q_vec + pe_small) @ (k_vec + pe_small).T).numpy()

for m, n in [(5, 2), (13, 10), (23, 20)]:
    print(f"m = {m:2d}, n = {n:2d} (m - n = 3):  RoPE score {rope_scores[m, n]:+.6f}   "
          f"added-PE score {added_scores[m, n]:+.6f}")

diag_spread = lambda s: max(np.ptp(np.diagonal(s, offset=o)) for o in range(-n_pos + 2, n_pos - 1))  # noqa: E731
print(f"largest spread along a diagonal: RoPE {diag_spread(rope_scores):.1e}, "
      f"added PE {diag_spread(added_scores):.2f}")

fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
for ax, scores, title in [(axes[0], rope_scores, "RoPE: constant along diagonals"),
                          (axes[1], added_scores, "Added sinusoidal PE: not constant")]:
    image = ax.imshow(scores, cmap="coolwarm")
    ax.set_title(title)
    ax.set_xlabel("key position n")
    ax.set_ylabel("query position m")
    fig.colorbar(image, ax=ax, label="score q_m · k_n")
fig.suptitle("One query and one key at every pair of positions")
fig.tight_layout()
plt.show()

# %% [markdown]
# (The RoPE spread is not exactly 0 because `rope_cos_sin` returns float32 tables: that is rounding.)
#
# Now the explorer of section 2 draws its third panel; run its cell again to play with it. Here
# is the same curve for two widths, each for two placements: the query at $m = 200$ with keys at
# $n = 0 \dots 200$, and the query at $m = 500$ with keys at $n = 300 \dots 500$. The two curves of
# a width coincide, because only $k = m - n$ matters.
#
# How the score changes with $k$ depends on $q$ and $k$. For $q = k = (1, \dots, 1)$ the score is
# exactly $2\sum_i \cos(k\theta_i)$, twice the dot product $PE_p \cdot PE_{p+k}$ of section 2 (each
# angle appears twice), and its cosine is the section-2 curve; Su et al. (2021, section 3.4.3) show
# that a bound on the score decays as the distance grows. For the *random* $q$ and $k$ drawn here
# there is no such decay: the $d = 16$ curve swings between negative and positive values, the
# $d = 128$ one stays near 0 at every distance.

# %%
series = {}
for d in (16, 128):
    series[f"d = {d}, {rope_labels(0, 200)}"] = rope_score_by_distance(d, 10000.0, 200)
    series[f"d = {d}, {rope_labels(300, 200)}"] = rope_score_by_distance(d, 10000.0, 200, start=300)
fig, ax = plot_lines(k_static, series, xlabel="relative distance k = m - n (positions)",
                     ylabel="cosine of rotated q and k", title="RoPE scores depend on m - n only",
                     markers=False, styles={f"d = 16, {rope_labels(300, 200)}": "k--",
                                            f"d = 128, {rope_labels(300, 200)}": "r:"},
                     legend_outside=True)
plt.show()

# %% [markdown]
# ## 5. The paper's interleaved layout
#
# The RoFormer paper writes RoPE with neighbouring pairs: $(x_0, x_1)$ turns by $p\theta_0$,
# $(x_2, x_3)$ by $p\theta_1$, and so on. Here it is, in a few lines (not an exercise):

# %%
def rope_interleaved(x, base=10000.0):
    """RoPE as Su et al. (2021) write it: pair (x_2i, x_2i+1) turns by p * theta_i, p = row index."""
    T, d = x.shape[-2], x.shape[-1]
    theta = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    angles = (torch.arange(T, dtype=torch.float64)[:, None] * theta).to(x.dtype)   # (T, d/2)
    even, odd = x[..., 0::2], x[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = even * angles.cos() - odd * angles.sin()
    out[..., 1::2] = odd * angles.cos() + even * angles.sin()
    return out


# %% [markdown]
# Both layouts rotate $d/2$ pairs by the same angles; only the *places* of the pair members in
# the vector differ. Interleaved pair $i$ is features $(2i, 2i+1)$; split-halves pair $i$ is
# features $(i, i + d/2)$. So list the features of an interleaved vector evens first, then odds:
# $[x_0, x_2, x_4, \dots, x_1, x_3, x_5, \dots]$. Feature $2i$ lands at place $i$ and feature
# $2i + 1$ at place $i + d/2$: exactly a split-halves pair. With that fixed permutation
# $\pi$ of the features,
#
# $$
# \mathrm{RoPE}_{\text{halves}}(\pi x) = \pi\, \mathrm{RoPE}_{\text{interleaved}}(x).
# $$
#
# A permutation of features applied to both $q$ and $k$ leaves every dot product unchanged, so
# the two layouts give identical attention scores. That is how checkpoints move between them:
# permute the output features of $W_Q$ and $W_K$ (the columns of $W_Q$ in $XW_Q$, which are the
# rows of the `nn.Linear` weight), within each head, once, when converting (`transformers`' Llama
# conversion script does this to Meta's original weights).

# %% [markdown]
# ### Exercise 7: from interleaved to halves (2 points)
# *Difficulty: ★☆☆ · about 5 minutes*
#
# Write `interleaved_to_halves(x)`: reorder the last axis of `x` (any leading axes, even length
# `d`) as `[x_0, x_2, ..., x_{d-2}, x_1, x_3, ..., x_{d-1}]`.
#
# <details><summary>Hint 1</summary>
#
# Nothing is computed, only reordered along the last axis. Which features come first, and which
# slice with a step picks them out? Leading axes pass through with `...`.
# </details>
#
# <details><summary>Hint 2</summary>
#
# `[0, 1, 2, 3, 4, 5, 6, 7]` must become `[0, 2, 4, 6, 1, 3, 5, 7]`: the even-indexed features, then
# the odd ones, joined along the last axis. If you get `[0, 4, 1, 5, 2, 6, 3, 7]`, you wrote the inverse
# map, halves to interleaved.
# </details>

# %% nbgrader={"grade": false, "grade_id": "interleaved_to_halves", "locked": false, "schema_version": 3, "solution": true, "task": false}
def interleaved_to_halves(x):
    """Reorder the features of the last axis: even-indexed ones first, then the odd-indexed ones."""
    ### BEGIN SOLUTION
    return torch.cat([x[..., 0::2], x[..., 1::2]], dim=-1)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "interleaved_to_halves_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import positional_encoding as check

check.interleaved_to_halves_example(interleaved_to_halves)
### BEGIN HIDDEN TESTS
check.interleaved_to_halves(interleaved_to_halves)
### END HIDDEN TESTS

# %% [markdown]
# The identity, checked numerically with your functions, and the scores of the two layouts:

# %%
torch.manual_seed(4)
x_pair = torch.randn(2, 12, 16, dtype=torch.float64)          # (B, T, d)
cos12, sin12 = (t.double() for t in rope_cos_sin(12, 16))
halves_of_rotated = interleaved_to_halves(rope_interleaved(x_pair))
rotated_halves = apply_rope(interleaved_to_halves(x_pair), cos12, sin12)
print("max |RoPE_halves(pi x) - pi RoPE_interleaved(x)| =", f"{(halves_of_rotated - rotated_halves).abs().max():.1e}",
      "(float32 tables: rounding)")
q_i, k_i = torch.randn(12, 16, dtype=torch.float64), torch.randn(12, 16, dtype=torch.float64)
scores_interleaved = rope_interleaved(q_i) @ rope_interleaved(k_i).T
scores_halves = apply_rope(interleaved_to_halves(q_i), cos12, sin12) @ apply_rope(interleaved_to_halves(k_i), cos12, sin12).T
print("same attention scores:", torch.allclose(scores_interleaved, scores_halves))
print("but mixing layouts (interleaved data, halves rotation) changes them by up to",
      f"{(apply_rope(q_i, cos12, sin12) @ apply_rope(k_i, cos12, sin12).T - scores_interleaved).abs().max():.2f}")

# %% [markdown]
# ### Written question (2 points, graded by hand)
#
# Two small models are identical but for their positions: model L adds a learned table of 512 positions
# to its token embeddings (as GPT-2 does); model R applies RoPE to its queries and keys (as Llama does).
# Both were trained on sequences of at most 512 tokens. (a) Each is given a document of 800 tokens. What
# happens at positions 512 to 799 in each model, and why? (b) The same sentence appears twice in a long
# input, at positions 10–29 and again at 310–329. In the first layer, are the attention scores between the
# sentence's own tokens the same in both copies, for L and for R? Say why from how the position enters each
# model. Three to six sentences.

# %% [markdown] nbgrader={"grade": true, "grade_id": "rope_vs_learned_question", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# (a) Model L has no row for positions 512 and beyond: indexing its table fails (GPT-2's `wpe` raises, so
# the input must be cropped to the last 512 tokens), and rows added afterwards would be untrained. Model R
# computes its angles $p\theta_i$ for any $p$, so it runs on all 800 tokens; its quality beyond 512 is not
# guaranteed, since offsets over 512 and the slow dimensions' larger angles never occurred in training
# (position interpolation rescales the angles to stay in the trained range).
# (b) For R, yes: a query at $m$ and a key at $n$ score $q^\top R((n-m)\theta)k$, which depends on the
# tokens and the offset $n - m$ only, and the offsets inside the sentence are the same in both copies, so the
# first layer's scores within the sentence are exactly equal (later layers may differ, since the tokens
# around the copies differ). For L, no: each token's input is $x + p_m$, so the queries and keys themselves
# change with the absolute position, and every score changes; the model has to learn the same relation
# ("attend to the previous word") separately at each place.

# %% [markdown]
# ## Summary
#
# - Self-attention without positions is permutation-equivariant: shuffle the input and the
#   output shuffles the same way. Something must tell it where tokens are.
# - Sinusoidal positions (Vaswani et al. 2017) add a fixed table: $\sin$ in even, $\cos$ in odd
#   columns, frequencies $10000^{-2i/d}$ (mind the even index: `arange(0, d, 2)` is already $2i$).
#   Their dot product depends only on the distance.
# - Learned positions (BERT, GPT-2) add a trained `nn.Embedding` table: flexible, but limited to
#   `max_positions`.
# - RoPE (Su et al. 2021) rotates queries and keys by position-dependent angles, so scores depend
#   on $m - n$ only. Llama and `transformers` pair feature $i$ with $i + d/2$ (`rotate_half`); the
#   paper pairs neighbours; a fixed permutation of the features maps one onto the other.
#
# **Next:** `05_transformer_blocks`: attention, positions, LayerNorm and feed-forward layers
# assembled into encoder and decoder blocks, and a small encoder-decoder trained end to end.
