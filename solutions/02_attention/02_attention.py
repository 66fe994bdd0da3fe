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
# # 02 · Attention: looking things up by similarity
#
# In notebook 01 an RNN had to squeeze everything it had read into one fixed-size state,
# and its accuracy on the recall task fell to chance as the distance grew. Attention removes
# the squeeze: every position may look directly at every other position and take what it
# needs, however far back it is.
#
# **Learning objectives.** You will learn to
# - read attention as a *soft dictionary lookup* with queries, keys and values;
# - write a numerically stable softmax, and see why the naive one overflows;
# - implement scaled dot-product attention in numpy, then batched in PyTorch;
# - explain, and measure, why the scores are divided by $\sqrt{d_k}$;
# - build causal and padding masks, and avoid the NaN that a careless mask produces;
# - solve notebook 01's recall task with a one-layer attention model, at any distance.
#
# **Prerequisites:** `01_rnn_limitations` (the recall task and why an RNN fails it); numpy;
# PyTorch tensors, autograd and a basic training loop.
#
# **Estimated time:** about 90 minutes. **Points:** 19 autograded in 7 exercises, plus 2 for a written
# answer graded by hand.
#
# **How to check your work:** each exercise has an answer cell (replace
# `raise NotImplementedError()` with your code) followed by a test cell. Run the test cell: a
# ✓ line means the visible check on a small worked example passed. When the notebook is graded,
# hidden tests also run your code on random inputs and edge cases and compare it with PyTorch's
# `torch.nn.functional.scaled_dot_product_attention`. Each exercise says its difficulty and a rough
# time; hints open on demand. To see your grade on this machine, run
# `transformer-course check 02_attention.ipynb` in a terminal.

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
from tqdm.auto import tqdm

from transformer_course.data import RecallVocab, make_recall_batch
from transformer_course.device import default_device
from transformer_course.plots import plot_attention, plot_attention_grid, plot_lines, plot_loss

np.set_printoptions(precision=4, suppress=True)
torch.manual_seed(0)
device = default_device()
print("device:", device)

# %% [markdown]
# ## 1. A dictionary you can differentiate
#
# A Python `dict` answers a query by finding the one key that equals it and returning that
# key's value. That lookup is all-or-nothing, so there is no gradient to learn from.
#
# Attention makes it soft. Give every entry a **key** vector $k_j$ and a **value** vector $v_j$.
# A **query** vector $q$ is compared with every key by a dot product (large when they point the
# same way). The scores become **weights** that are positive and sum to 1, and the answer is
# the weighted average of the values:
#
# $$
# s_j = q \cdot k_j, \qquad
# w_j = \frac{e^{s_j}}{\sum_{j'} e^{s_{j'}}}, \qquad
# \text{output} = \sum_j w_j\, v_j .
# $$
#
# A query close to one key returns mostly that key's value; a query halfway between two keys
# returns a blend. Every step is differentiable, so a network can *learn* what to ask for
# (queries), how to be found (keys) and what to hand over (values).

# %%
keys = np.array([[4.0, 0.0],      # "cat"
                 [0.0, 4.0],      # "dog"
                 [-4.0, 0.0]])    # "fish"
values = np.array([10.0, 20.0, 30.0])

for name, query in [("near cat", np.array([1.0, 0.1])), ("between cat and dog", np.array([1.0, 1.0]))]:
    scores = keys @ query
    weights = np.exp(scores) / np.exp(scores).sum()   # the textbook softmax (see section 2)
    print(f"query {name:20s} weights {weights}  ->  output {weights @ values:.2f}")

# %% [markdown]
# ## 2. Softmax, and how it overflows
#
# The textbook formula $\mathrm{softmax}(x)_i = e^{x_i} / \sum_j e^{x_j}$ breaks on a computer.
# In float32, the type of every torch tensor in this course, $e^{89}$ is already `inf` (float64, numpy's
# default used in the cell below, lasts until $e^{710}$), and scores in the hundreds are ordinary in a
# large model (or in a model whose scores were never scaled, as you will see in section 4):

# %%
with np.errstate(over="ignore", invalid="ignore"):
    big = np.array([1000.0, 1001.0, 1002.0])
    print("exp(x)         :", np.exp(big))
    print("textbook softmax:", np.exp(big) / np.exp(big).sum())

# %% [markdown]
# The fix costs one line. For any constant $m$,
#
# $$
# \frac{e^{x_i - m}}{\sum_j e^{x_j - m}} = \frac{e^{-m}\,e^{x_i}}{e^{-m}\sum_j e^{x_j}} = \mathrm{softmax}(x)_i ,
# $$
#
# so choose $m = \max_j x_j$. Then every exponent is $\le 0$ (no overflow), and the largest term
# is $e^0 = 1$ (the sum is at least 1, so no division by zero).
#
# One more case matters for attention. When a mask forbids a query from seeing *any* key (a
# combination of masks can do it, for instance a causal mask together with *left* padding, where the
# first positions of a short sequence are padding), every score in its row is $-\infty$. Then $m = -\infty$, and
# $-\infty - (-\infty)$ is NaN. We follow PyTorch's fused attention: such a row gets **all-zero
# weights** (the query looks at nothing) instead of NaN.
#
# > **Common bug: softmax without subtracting the maximum.** It works in every small test you
# > try by hand, then returns NaN the first time a score passes about 88.7 in float32 (710 in float64),
# > or when every score falls below about −104 in float32 (−745 in float64), where every term underflows to 0
# > and you compute 0/0. Always shift by the maximum
# > *of each row*: with `keepdims=True` so that it broadcasts, along the same axis as the sum.

# %% [markdown]
# ### Exercise 1: a numerically stable softmax (2 points)
# *Difficulty: ★☆☆ · about 15 minutes*
#
# Write `softmax(x, axis=-1)` for numpy arrays of any shape. It must
# - subtract the maximum along `axis` before exponentiating, taking both the max and the sum with
#   `keepdims=True` so that they broadcast back against `x` (the test example is 4 x 5, not square);
# - return zeros (not NaN) for a slice that is entirely `-inf`;
# - leave its input unchanged (compute `x - m` into a new array rather than `x -= m`).
#
# <details><summary>Hint 1</summary>
#
# Walk the visible test's four rows through your code: `[0, 1, 2, 3, 4]` is ordinary; `[1000, 1001, ...]`
# overflows unless you shift by the row's **own** maximum (not the whole array's); the third row has
# some `-inf` entries, which must get weight 0; the fourth is all `-inf`, so its maximum is `-inf` too
# and $x - m$ is $-\infty - (-\infty)$ = NaN.
# </details>
#
# <details><summary>Hint 2</summary>
#
# Shift an all `-inf` slice by 0 instead of by its maximum (`np.isfinite` says which maxima are
# usable, `np.where` picks): then all its exponentials are 0 and so is its sum, and dividing by 1
# wherever the sum is 0 gives $0/1 = 0$. Replacing `-inf` by a finite number such as `-1e9` does not
# work: that row comes out uniform, not zero. The first row's answer is
# `[0.0117, 0.0317, 0.0861, 0.2341, 0.6364]`.
# </details>

# %% nbgrader={"grade": false, "grade_id": "softmax", "locked": false, "schema_version": 3, "solution": true, "task": false}
def softmax(x, axis=-1):
    """Numerically stable softmax of `x` along `axis`.

    Args:
        x: numpy array of any shape (entries may be -inf).
        axis: the axis along which the result sums to 1.

    Returns:
        An array of the same shape as `x`: non-negative, summing to 1 along `axis`,
        except that a slice made only of -inf gives all zeros.
    """
    ### BEGIN SOLUTION
    x = np.asarray(x, dtype=float)
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)          # an all -inf slice: shift by 0, not by -inf
    e = np.exp(x - m)
    total = np.sum(e, axis=axis, keepdims=True)
    return e / np.where(total == 0, 1.0, total)   # 0 / 1 = 0 for an all -inf slice
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "softmax_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import attention as check

check.softmax_example(softmax)
### BEGIN HIDDEN TESTS
check.softmax(softmax)
### END HIDDEN TESTS

# %% [markdown]
# ### Softmax saturates
#
# Multiply a fixed set of logits by a growing factor $c$ and watch the weights. For small $c$
# the softmax is nearly uniform; for large $c$ it is nearly one-hot: the largest logit takes
# everything. This is also where learning stops: the softmax's derivative is
# $\partial w_i / \partial x_j = w_i(\delta_{ij} - w_j)$, which goes to 0 when one weight is 1
# and the rest are 0. Keep this picture in mind for section 4.

# %%
base_logits = np.array([1.0, 0.5, 0.0, -0.5, -1.0])
factors = np.geomspace(0.05, 50, 60)
weights_by_factor = np.stack([softmax(c * base_logits) for c in factors])    # (60, 5)
largest_jacobian = [np.max(np.abs(np.diag(w) - np.outer(w, w))) for w in weights_by_factor]
series = {f"weight of logit {x:+.1f}": weights_by_factor[:, i] for i, x in enumerate(base_logits)}
series["largest |d w_i / d x_j|"] = largest_jacobian
fig, ax = plot_lines(factors, series, xlabel="factor c multiplying the logits (log scale)",
                     ylabel="softmax weight / derivative (unitless)",
                     title="Softmax of c · logits saturates as c grows", logx=True, markers=False,
                     styles={"largest |d w_i / d x_j|": "k--"}, legend_outside=True)
plt.show()

# %% [markdown]
# ## 3. Scaled dot-product attention
#
# Now do many lookups at once. Stack $n_q$ queries as the rows of $Q$ $(n_q \times d_k)$, $n_k$
# keys as the rows of $K$ $(n_k \times d_k)$ and their values as the rows of $V$ $(n_k \times d_v)$.
# All scores are one matrix product, $QK^\top$ $(n_q \times n_k)$: row $i$ holds query $i$'s score
# for every key. A softmax along each row (over the keys) gives the weights, and one more
# product averages the values:
#
# $$
# \mathrm{Attention}(Q, K, V) = \mathrm{softmax}\!\left(\frac{QK^\top}{\sqrt{d_k}}\right) V
# \qquad (n_q \times n_k)\,(n_k \times d_v) = (n_q \times d_v).
# $$
#
# The division by $\sqrt{d_k}$ is the "scaled" in the name; section 4 shows why it is there.
#
# A **mask** says which keys each query may use. In this course a mask is a boolean array
# broadcastable to $(n_q \times n_k)$ where `True` means *query $i$ may attend to key $j$*
# (the same convention as PyTorch's `scaled_dot_product_attention`). A forbidden score is set
# to $-\infty$ **before** the softmax, so its weight is exactly $e^{-\infty} = 0$ and the
# remaining weights still sum to 1.


# %%
from transformer_course import diagrams

diagrams.attention_flow()
plt.show()

# %% [markdown]
# ### Exercise 2: attention in numpy (3 points)
# *Difficulty: ★☆☆ · about 15 minutes*
#
# Write `scaled_dot_product_attention(q, k, v, mask=None)` returning `(output, weights)`, in that
# order. Allow any leading axes (for example a batch axis): transpose only the last two axes of `k`,
# with `np.swapaxes(k, -1, -2)` (numpy's `k.transpose(-2, -1)` is not torch's: it takes the order of
# *all* axes, so on a 2-D array it changes nothing). Compute the scale as `math.sqrt(d_k)`. Use your
# `softmax` from exercise 1 (if it fails its own test, this one fails too).
#
# <details><summary>Hint 1</summary>
#
# Follow the formula one product at a time and check the shapes: scores `(..., n_q, n_k)`, weights of
# the same shape with each row summing to 1 over the keys (the last axis), output `(..., n_q, d_v)`.
# Multiply with `@`, which batches over the leading axes (`np.dot` does not), and return
# `(output, weights)` in that order.
# </details>
#
# <details><summary>Hint 2</summary>
#
# The mask acts on the scores, **before** the softmax: where it is `False` the score becomes `-np.inf`.
# Use `np.where`, which broadcasts a `(n_q, n_k)` or `(B, 1, 1, n_k)` mask against the scores; boolean
# indexing needs the exact shape. Your softmax then gives blocked keys weight exactly 0, and a query with
# no allowed key all zeros. In the visible example query `[1, 0]` scores the three keys
# $[1, 0, 1]/\sqrt 2$, weights `[0.401, 0.198, 0.401]`; with the mask `[True, False, True]` they become
# `[0.5, 0, 0.5]`, and the output `[0.5, 50]`.
# </details>

# %% nbgrader={"grade": false, "grade_id": "scaled_dot_product_attention", "locked": false, "schema_version": 3, "solution": true, "task": false}
def scaled_dot_product_attention(q, k, v, mask=None):
    """softmax(q k^T / sqrt(d_k)) v, in numpy.

    Args:
        q: queries, shape (..., n_q, d_k).
        k: keys, shape (..., n_k, d_k).
        v: values, shape (..., n_k, d_v).
        mask: None, or a boolean array broadcastable to (..., n_q, n_k);
            True where the query may attend to the key.

    Returns:
        (output, weights) with shapes (..., n_q, d_v) and (..., n_q, n_k).
        A query whose keys are all masked gets zero weights and a zero output.
    """
    ### BEGIN SOLUTION
    d_k = q.shape[-1]
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(d_k)      # (..., n_q, n_k)
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)            # blocked keys: weight exactly 0
    weights = softmax(scores, axis=-1)                      # over the keys
    return weights @ v, weights                             # (..., n_q, d_v), (..., n_q, n_k)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "scaled_dot_product_attention_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import attention as check

check.scaled_dot_product_attention_example(scaled_dot_product_attention)
### BEGIN HIDDEN TESTS
check.scaled_dot_product_attention(scaled_dot_product_attention)
### END HIDDEN TESTS

# %% [markdown]
# ### Seeing the weights
#
# Here is self-attention on a made-up sentence: each word gets a random 16-dimensional
# embedding, and that embedding serves as its query, its key and its value at once. A word's
# query usually matches its own key best: its dot product with itself is its squared length, about
# 16, while random 16-dimensional vectors are nearly orthogonal, so their dot products with other
# words scatter around 0 (standard deviation about 4; section 4 measures exactly this). So the
# diagonal lights up, and the two copies of "the" share one embedding, so each attends to both. In a trained transformer, learned projections decide who attends to whom; section 7
# trains one.

# %%
words = ["the", "cat", "sat", "on", "the", "mat"]
vocabulary = sorted(set(words))
word_rng = np.random.default_rng(2)
embedding_table = word_rng.normal(size=(len(vocabulary), 16))
sentence = embedding_table[[vocabulary.index(w) for w in words]]        # (6, 16)
_, sentence_weights = scaled_dot_product_attention(sentence, sentence, sentence)
fig, ax = plot_attention(sentence_weights, words, words, title="Self-attention with untrained embeddings")
plt.show()

# %% [markdown]
# ## 4. Why divide by $\sqrt{d_k}$?
#
# Suppose the entries of $q$ and $k$ are independent, with mean 0 and variance 1 (roughly what
# a well-initialised network produces). The score is a sum of $d_k$ products,
# $q \cdot k = \sum_{i=1}^{d_k} q_i k_i$. Each product has mean $\mathbb{E}[q_i]\mathbb{E}[k_i] = 0$
# and variance $\mathbb{E}[q_i^2]\,\mathbb{E}[k_i^2] = 1$, and variances of independent terms add:
#
# $$
# \mathrm{Var}(q \cdot k) = \sum_{i=1}^{d_k} \mathrm{Var}(q_i k_i) = d_k,
# \qquad
# \mathrm{Var}\!\left(\frac{q \cdot k}{\sqrt{d_k}}\right) = \frac{d_k}{d_k} = 1 .
# $$
#
# So without the scale, typical scores grow like $\sqrt{d_k}$: about ±23 for $d_k = 512$. That is
# the large-$c$ end of the saturation plot above: one key takes nearly all the weight, and the
# gradients through the softmax all but vanish, at initialisation, before anything has been
# learned. Dividing by $\sqrt{d_k}$ (the standard deviation), not by $d_k$, puts the scores back
# at variance 1 whatever the width. (Dividing by $d_k$ would shrink them towards 0 and make
# every attention pattern nearly uniform.)

# %% [markdown]
# ### Exercise 3: measure it (2 points)
# *Difficulty: ★☆☆ · about 10 minutes*
#
# Check the argument empirically. Draw `n_samples` pairs of vectors $q, k \in \mathbb{R}^{d_k}$
# with independent standard-normal entries from `np.random.default_rng(seed)`, compute the
# `n_samples` dot products, and return the variance of the raw dot products and the variance
# of the dot products divided by $\sqrt{d_k}$. Vectorise: no Python loop over samples. Multiply
# `q * k` elementwise and sum over the last axis; do not use `q @ k.T`, which would build an
# `n_samples x n_samples` matrix (3.2 GB for 20,000 samples) to use only its diagonal.
#
# <details><summary>Hint 1</summary>
#
# One generator, made from `seed`, and two draws of shape `(n_samples, d_k)` with standard-normal entries
# (`standard_normal`, not `random`, which is uniform on $[0, 1)$). Row $i$ of `q` pairs with row $i$ of
# `k`: that is one sample.
# </details>
#
# <details><summary>Hint 2</summary>
#
# You want a vector of `n_samples` dot products, shape `(n_samples,)`, and its variance (`.var()`, not
# `.std()`): it should come out near $d_k$, about 16 in the visible check. Dividing every dot product by
# $\sqrt{d_k} = 4$ divides the variance by 16, since $\mathrm{Var}(X/c) = \mathrm{Var}(X)/c^2$, so the second
# number is near 1. Return two Python floats, measured, not the theoretical values.
# </details>

# %% nbgrader={"grade": false, "grade_id": "qk_variance", "locked": false, "schema_version": 3, "solution": true, "task": false}
def qk_variance(d_k, n_samples=20_000, seed=0):
    """Measure Var(q . k) and Var(q . k / sqrt(d_k)) for random unit-variance vectors.

    Args:
        d_k: the dimension of q and k.
        n_samples: how many (q, k) pairs to draw.
        seed: seed for np.random.default_rng.

    Returns:
        (variance of q . k, variance of q . k / sqrt(d_k)) as two floats.
    """
    ### BEGIN SOLUTION
    gen = np.random.default_rng(seed)
    q = gen.standard_normal((n_samples, d_k))
    k = gen.standard_normal((n_samples, d_k))
    dots = (q * k).sum(axis=-1)                  # (n_samples,) dot products
    return float(dots.var()), float((dots / np.sqrt(d_k)).var())
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "qk_variance_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import attention as check

check.qk_variance_example(qk_variance)
### BEGIN HIDDEN TESTS
check.qk_variance(qk_variance)
### END HIDDEN TESTS

# %% [markdown]
# On log-log axes a power law $y = c\,x^p$ is a straight line of slope $p$. The raw variance
# should follow the slope-1 line $y = d_k$; the scaled one should stay flat at 1.

# %%
dims = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
measured = [qk_variance(d, n_samples=4_000, seed=d) for d in dims]
fig, ax = plot_lines(
    dims,
    {"Var(q·k)": [m[0] for m in measured], "Var(q·k / √d_k)": [m[1] for m in measured],
     "theory: d_k": dims},
    xlabel="key dimension d_k", ylabel="variance of the score (unitless)",
    title="Unscaled scores grow like d_k; scaled ones stay at 1", logx=True, logy=True,
    styles={"theory: d_k": "k:"},
)
plt.show()

# %% [markdown]
# ### Explore: how the scale shapes the weights
#
# The explorer draws random unit-variance queries and keys and divides the scores by
# $d_k^{\,p}$. Try $p = 0$ (no scaling), $p = 0.5$ (the right one) and $p = 1$ (dividing by $d_k$)
# for a small and a large $d_k$. The title reports the mean entropy of a row, in nats: $\log 8
# \approx 2.08$ is uniform attention over the 8 keys, 0 is attention on a single key.

# %%
explore_rng = np.random.default_rng(7)
explore_q = {d: explore_rng.standard_normal((8, d)) for d in (4, 64, 512)}
explore_k = {d: explore_rng.standard_normal((8, d)) for d in (4, 64, 512)}


def scaled_weights(d_k, power):
    """Softmax of q k^T / d_k**power for the explorer's random vectors: (8, 8)."""
    return softmax(explore_q[d_k] @ explore_k[d_k].T / d_k ** power, axis=-1)


def mean_entropy(weights):
    return float(-(weights * np.log(np.clip(weights, 1e-12, None))).sum(-1).mean())


def draw_scaled_weights(d_k=512, power=0.5):
    w = scaled_weights(d_k, power)
    plot_attention(w, title=f"scores / d_k^{power:g} with d_k = {d_k}: mean row entropy {mean_entropy(w):.2f} nats",
                   annotate=False)
    plt.show()


explorer = widgets.interactive(
    draw_scaled_weights,
    d_k=widgets.Dropdown(options=[4, 64, 512], value=512, description="d_k"),
    power=widgets.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.25, description="power p"),
)
display(explorer)

# %% [markdown]
# The same three settings side by side, for when the explorer is not live (a static copy of
# the notebook, say). At $d_k = 512$ the unscaled weights are almost one-hot, the $1/d_k$ ones
# almost uniform, and only $1/\sqrt{d_k}$ sits in between.

# %%
fig, axes = plot_attention_grid(
    np.stack([scaled_weights(512, p) for p in (0.0, 0.5, 1.0)]),
    titles=["no scale (p = 0)", "1/√d_k (p = 0.5)", "1/d_k (p = 1)"],
    suptitle="Attention weights of random vectors, d_k = 512",
)
plt.show()

# %% [markdown]
# ## 5. Batches and heads, in PyTorch
#
# Real models run attention on tensors of shape $(B, h, n, d)$: a batch of $B$ sequences, $h$
# heads each (notebook 03), $n$ positions, $d$ features per head. Matrix multiplication
# `@` broadcasts over all leading axes, so the same three lines work for any number of them,
# provided you transpose only the last two axes of `k`: `k.transpose(-2, -1)` (`k.T` would
# reverse *every* axis). Masking is `scores.masked_fill(~mask, float("-inf"))`.
#
# Two PyTorch details to handle:
# - `torch.softmax` returns NaN for a row that is all $-\infty$; the fused
#   `F.scaled_dot_product_attention` returns zeros there, and so must you (exercise 1's trick
#   works with `torch.where`).
# - Stay in torch: no `.numpy()`, no `torch.tensor(...)` around intermediate results, or
#   gradients stop flowing and section 7's model cannot learn.

# %% [markdown]
# ### Exercise 4: batched attention in PyTorch (3 points)
# *Difficulty: ★★☆ · about 15 minutes*
#
# Write `attention_torch(q, k, v, mask=None)` returning `(output, weights)` as torch tensors,
# for inputs with any number of leading axes, keeping their dtype (scale by `math.sqrt(d_k)`, a
# Python float). Compute it yourself (the hidden test compares your result, and its gradients,
# with `F.scaled_dot_product_attention`, so calling that, under any name, would test nothing and
# fails the exercise).
#
# <details><summary>Hint 1</summary>
#
# It is exercise 2 in torch: `k.transpose(-2, -1)` for the keys, `masked_fill` (or `torch.where`) with
# `float("-inf")` where the mask is `False`, and the softmax along `dim=-1`. Every intermediate result
# stays a torch tensor: no `.numpy()`, no `.item()`, no `torch.tensor(...)` around it, or no gradient
# reaches `q`, `k` and `v`.
# </details>
#
# <details><summary>Hint 2</summary>
#
# `torch.softmax` gives NaN for a row that is all $-\infty$, so write the softmax yourself, exactly as in
# exercise 1: the row maximum with `amax(dim=-1, keepdim=True)`, a non-finite maximum replaced by 0 with
# `torch.where`, the exponentials, and a division by 1 wherever the sum is 0. `math.sqrt(d_k)` is a Python
# float, so float32 inputs stay float32 and float64 inputs keep full precision; `torch.sqrt(torch.tensor(d_k))`
# would be float32.
# </details>

# %% nbgrader={"grade": false, "grade_id": "attention_torch", "locked": false, "schema_version": 3, "solution": true, "task": false}
def attention_torch(q, k, v, mask=None):
    """Scaled dot-product attention for torch tensors with any leading axes.

    Args:
        q: (..., n_q, d_k); k: (..., n_k, d_k); v: (..., n_k, d_v), all the same dtype.
        mask: None, or a boolean tensor broadcastable to (..., n_q, n_k);
            True where the query may attend to the key.

    Returns:
        (output, weights) with shapes (..., n_q, d_v) and (..., n_q, n_k), differentiable
        with respect to q, k and v. A query whose keys are all masked gets zero weights.
    """
    ### BEGIN SOLUTION
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])     # (..., n_q, n_k)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    m = scores.amax(dim=-1, keepdim=True).detach()                # the shift needs no gradient
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))    # all-masked row: shift by 0
    e = torch.exp(scores - m)
    total = e.sum(dim=-1, keepdim=True)
    weights = e / torch.where(total == 0, torch.ones_like(total), total)
    return weights @ v, weights                                   # (..., n_q, d_v), (..., n_q, n_k)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "attention_torch_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import attention as check

check.attention_torch_example(attention_torch)
### BEGIN HIDDEN TESTS
check.attention_torch(attention_torch)
### END HIDDEN TESTS

# %% [markdown]
# Your function and PyTorch's fused kernel compute the same numbers. The fused one is faster,
# and its flash and memory-efficient kernels (which PyTorch picks on a GPU where it can) never store the
# $(n_q \times n_k)$ weight matrix at all; notebook 10 shows how. (Timings on a busy laptop vary from run to run.)

# %%
qb, kb, vb = (torch.randn(8, 4, 256, 64) for _ in range(3))      # (B, h, n, d)
ours, _ = attention_torch(qb, kb, vb)
theirs = F.scaled_dot_product_attention(qb, kb, vb)
print("largest difference from F.scaled_dot_product_attention:", (ours - theirs).abs().max().item())
for name, fn in [("your attention_torch", lambda: attention_torch(qb, kb, vb)),
                 ("F.scaled_dot_product_attention", lambda: F.scaled_dot_product_attention(qb, kb, vb))]:
    fn()                                                           # warm up
    start = time.perf_counter()
    for _ in range(5):
        fn()
    print(f"{name:32s} {(time.perf_counter() - start) / 5 * 1e3:6.1f} ms per call")

# %% [markdown]
# ## 6. Masks: no peeking, no padding
#
# **Causal masks.** A model that writes text one token at a time (GPT, notebook 07) is trained
# to predict token $i+1$ from tokens $0..i$. If position $i$ could attend to position $i+1$ it
# would simply read the answer. So query $i$ may attend to key $j$ only when $j \le i$: the
# lower triangle of the $(n \times n)$ mask, **diagonal included** (a token may look at itself).
#
# $$
# \text{causal}_{ij} = [\, j \le i \,] \qquad
# \begin{pmatrix} 1&0&0&0\\ 1&1&0&0\\ 1&1&1&0\\ 1&1&1&1 \end{pmatrix}
# $$

# %% [markdown]
# ### Exercise 5: the causal mask (2 points)
# *Difficulty: ★☆☆ · about 5 minutes*
#
# <details><summary>Hint 1</summary>
#
# Row $i$ is the query, column $j$ the key, and `True` means "may attend": $j \le i$, the lower triangle
# with the diagonal (row 0 has exactly one `True`, which keeps the first query from attending to
# nothing). The result must have dtype `bool`: torch reads a float mask as a bias to add to the scores.
# </details>
#
# <details><summary>Hint 2</summary>
#
# `np.tril` keeps the lower triangle of a matrix, diagonal included, and zeros the rest; start it from a
# square of `True`s. (Or compare a column of row indices with a row of column indices, `np.arange` and
# broadcasting.) For $n = 4$ the rows hold 1, 2, 3 and 4 `True`s, as in the matrix above.
# </details>

# %% nbgrader={"grade": false, "grade_id": "causal_mask", "locked": false, "schema_version": 3, "solution": true, "task": false}
def causal_mask(n):
    """The (n, n) boolean mask letting query i attend to keys j <= i.

    Returns:
        numpy array of dtype bool, True on and below the diagonal.
    """
    ### BEGIN SOLUTION
    return np.tril(np.ones((n, n), dtype=bool))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "causal_mask_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import attention as check

check.causal_mask_example(causal_mask)
### BEGIN HIDDEN TESTS
check.causal_mask(causal_mask)
### END HIDDEN TESTS

# %% [markdown]
# **Padding masks.** Sentences in a batch have different lengths, but a tensor is a
# rectangle, so short sequences are padded at the end with filler tokens. No query should
# attend to filler: a sequence with `lengths[b]` real tokens has real keys at positions
# `0 .. lengths[b] - 1`. One mask row serves every query of a sequence, so the mask has shape
# $(B, 1, n_k)$, which broadcasts against scores of shape $(B, n_q, n_k)$; with heads,
# $(B, h, n_q, n_k)$, add one more axis: `mask[:, None]` is $(B, 1, 1, n_k)$.
#
# Some code (and many older models) adds a **bias** to the scores instead of selecting: $0$
# where attention is allowed and $-\infty$ where it is not. The sum has the same effect as the
# mask, and PyTorch accepts either form as `attn_mask`.
#
# > **Common bug: building the bias by multiplying.** `(1 - mask) * -np.inf` looks right, but
# > where the mask is `True` it computes `0 * -inf`, which IEEE arithmetic defines as NaN. One NaN
# > score turns its whole softmax row into NaN, and the NaN spreads through every later layer
# > and into the loss. Select instead of multiplying: 0 where the mask allows, $-\infty$ elsewhere
# > (`np.where` chooses between two values element by element).

# %%
with np.errstate(invalid="ignore"):
    print("(1 - mask) * -inf =", (1 - np.array([True, True, False])) * -np.inf)

# %% [markdown]
# ### Exercise 6: padding mask and additive bias (3 points)
# *Difficulty: ★☆☆ · about 10 minutes*
#
# <details><summary>Hint 1</summary>
#
# For the mask, two things to get right: the comparison (a sequence of length 3 has real positions
# 0, 1, 2, so it is a strict $<$, and `True` marks the real tokens) and the shape `(B, 1, max_len)`,
# with the query axis of size 1 in the middle. For the bias, select rather than multiply (see the box
# above) and keep `-inf`, not a large finite number.
# </details>
#
# <details><summary>Hint 2</summary>
#
# Broadcasting does the work: the positions `np.arange(max_len)` as a row `(1, max_len)` against the
# lengths as a column `(B, 1)` give `(B, max_len)`; `[:, None, :]` or `np.expand_dims` then adds the
# query axis. The visible check uses lengths `[3, 1, 4]` and `max_len = 4`: rows `[T T T F]`,
# `[T F F F]` and `[T T T T]`. The bias has the mask's shape and a float dtype.
# </details>

# %% nbgrader={"grade": false, "grade_id": "padding_mask", "locked": false, "schema_version": 3, "solution": true, "task": false}
def padding_mask(lengths, max_len):
    """Boolean mask of the real (non-padding) keys.

    Args:
        lengths: integer numpy array (B,): how many real tokens each sequence has.
        max_len: the padded length n_k.

    Returns:
        numpy bool array of shape (B, 1, max_len): True at positions j < lengths[b].
    """
    ### BEGIN SOLUTION
    positions = np.arange(max_len)                                # (max_len,)
    return (positions[None, :] < np.asarray(lengths)[:, None])[:, None, :]
    ### END SOLUTION


def mask_to_bias(mask):
    """Additive bias for a boolean mask: 0.0 where True, -inf where False (same shape, float)."""
    ### BEGIN SOLUTION
    return np.where(mask, 0.0, -np.inf)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "padding_mask_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import attention as check

check.padding_mask_example(padding_mask, mask_to_bias)
### BEGIN HIDDEN TESTS
check.padding_mask(padding_mask, mask_to_bias)
### END HIDDEN TESTS

# %% [markdown]
# Both masks together, on a batch of two sequences padded to length 6 (the second has only
# 4 real tokens). The combined mask is an elementwise AND; broadcasting does the rest. Look for
# the empty upper triangle (causal) and the empty last two columns of the second sequence
# (padding). Rows of padded *queries* still attend to real keys; their outputs are simply
# never used.

# %%
mask_rng = np.random.default_rng(3)
qm, km, vm = (mask_rng.normal(size=(2, 6, 8)) for _ in range(3))
combined = causal_mask(6)[None] & padding_mask(np.array([6, 4]), 6)      # (2, 6, 6)
_, masked_weights = scaled_dot_product_attention(qm, km, vm, combined)
fig, axes = plot_attention_grid(masked_weights, titles=["sequence 0 (length 6)", "sequence 1 (length 4)"],
                                suptitle="Causal and padding masks combined")
plt.show()

# %% [markdown]
# ## 7. Attention solves the recall task
#
# Back to notebook 01. A sequence is `[symbol, noise, noise, ..., noise, QUERY]`, and the model
# must output the symbol seen `distance` steps before the query. Ids `0..7` are symbols, `8..15`
# noise, `16` the query marker (`RecallVocab`). The RNN had to carry the symbol through every
# step and fell to chance, 1 in 8, as the distance grew.
#
# With attention the query position simply *looks back*: its query vector asks "which
# token is a symbol?", each token's key answers, and the value of the best match (the symbol)
# comes straight through, whatever the distance. A model this small is enough:
#
# 1. embed every token: $(B, T) \to (B, T, d)$;
# 2. compute one query from the **last** position, and keys and values from every position
#    (three `nn.Linear(d, d)` layers);
# 3. attend with your `attention_torch`: output $(B, 1, d)$;
# 4. a linear layer maps that vector to 8 logits, one per symbol.
#
# Use no positional information: the model only sees *what* each token is, never *where*.
# (The hidden test also moves the symbol to a random place before the query; a content lookup
# does not care. It also runs sequences of length 51 and 201, so your model must accept any
# length.)

# %% [markdown]
# ### Exercise 7: a one-layer attention model for recall (4 points)
# *Difficulty: ★★☆ · about 20 minutes (and a few seconds to train)*
#
# Complete `RecallAttention`. `forward` returns logits (the raw output of the last linear layer,
# not probabilities: `F.cross_entropy` applies the softmax itself); with `return_weights=True` it
# also returns the query position's attention weights, shape $(B, T)$. Training follows in the
# next cell (a few seconds); the test evaluates your trained `recall_model` on fresh sequences and
# needs at least 95% accuracy at distances 50 and 200 (the training cell below uses distances up
# to 64), with the query position's weights picking out the symbol, wherever it is.
#
# <details><summary>Hint 1</summary>
#
# `__init__` creates the five layers the list above names: an embedding of the `vocab_size` token ids
# into `d_model` numbers, three `d_model` → `d_model` linear maps for queries, keys and values, and a
# `d_model` → `n_classes` classifier. Nothing about positions and no fixed length: the hidden test runs
# sequences of 51 and 201 tokens.
# </details>
#
# <details><summary>Hint 2</summary>
#
# Shapes in `forward`: embeddings `(B, T, d)`; the query from the last position only, keeping a
# length-1 axis, `(B, 1, d)` (slice with `-1:` rather than index with `-1`); keys and values `(B, T, d)`.
# `attention_torch` then returns an output `(B, 1, d)` and weights `(B, 1, T)`: drop the middle axis of
# both, classify the output, and return the raw logits `(B, 8)`, no softmax. With `return_weights=True`
# return the pair `(logits, weights)`, the weights `(B, T)`.
# </details>

# %% nbgrader={"grade": false, "grade_id": "recall_model", "locked": false, "schema_version": 3, "solution": true, "task": false}
class RecallAttention(nn.Module):
    """Embedding -> one attention lookup from the last position -> linear classifier."""

    def __init__(self, vocab_size, n_classes, d_model=32):
        super().__init__()
        ### BEGIN SOLUTION
        self.embed = nn.Embedding(vocab_size, d_model)
        self.to_q = nn.Linear(d_model, d_model, bias=False)
        self.to_k = nn.Linear(d_model, d_model, bias=False)
        self.to_v = nn.Linear(d_model, d_model, bias=False)
        self.classify = nn.Linear(d_model, n_classes)
        ### END SOLUTION

    def forward(self, x, return_weights=False):
        """x: token ids (B, T) -> logits (B, n_classes); with return_weights=True, also
        the attention weights of the last position, shape (B, T)."""
        ### BEGIN SOLUTION
        e = self.embed(x)                           # (B, T, d)
        q = self.to_q(e[:, -1:])                    # (B, 1, d): only the query position asks
        k, v = self.to_k(e), self.to_v(e)           # (B, T, d)
        out, weights = attention_torch(q, k, v)     # (B, 1, d), (B, 1, T)
        logits = self.classify(out[:, 0])           # (B, n_classes)
        return (logits, weights[:, 0]) if return_weights else logits
        ### END SOLUTION


# %%
vocab = RecallVocab()


def train_recall(model, steps=300, batch_size=64, max_distance=64, lr=1e-2, seed=0):
    """Adam on cross-entropy, each step at a random distance in [2, max_distance]."""
    gen = np.random.default_rng(seed)
    torch.manual_seed(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)          # tensors this small: one thread beats several waiting on each other
    try:
        for _ in tqdm(range(steps), desc="training the recall model"):
            x, y = make_recall_batch(batch_size, int(gen.integers(2, max_distance + 1)), vocab, rng=gen)
            x, y = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
            loss = F.cross_entropy(model(x), y)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
    finally:
        torch.set_num_threads(threads)
    return losses


recall_model = None               # so that the test below can say what is missing if the next line fails
torch.manual_seed(0)
recall_model = RecallAttention(vocab.size, vocab.n_symbols).to(device)
recall_losses = train_recall(recall_model)
fig, ax = plot_loss(recall_losses, title="Training the one-layer attention model on recall", smooth=10)
plt.show()

# %% nbgrader={"grade": true, "grade_id": "recall_model_test", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import attention as check

check.recall_model_example(recall_model)
### BEGIN HIDDEN TESTS
check.recall_model(recall_model)
### END HIDDEN TESTS

# %% [markdown]
# Accuracy against distance, far beyond the distances seen in training, and where the query
# position looks for one sequence. Compare with the RNN curve you drew in notebook 01.

# %%
distances = [1, 5, 20, 50, 100, 200, 500]
recall_model.eval()
accuracies = []
with torch.no_grad():
    for d in distances:
        x, y = make_recall_batch(500, d, vocab, rng=np.random.default_rng(1000 + d))
        predictions = recall_model(torch.from_numpy(x).to(device)).argmax(-1).cpu().numpy()
        accuracies.append(float((predictions == y).mean()))
    x, y = make_recall_batch(1, 15, vocab, rng=np.random.default_rng(5))
    _, example_weights = recall_model(torch.from_numpy(x).to(device), return_weights=True)
recall_model.train()

fig, ax_acc = plot_lines(
    distances, {"one-layer attention": accuracies, "chance (1/8)": [1 / vocab.n_symbols] * len(distances)},
    xlabel="distance between symbol and query (tokens, log scale)", ylabel="accuracy",
    title="Recall accuracy does not decay with distance", logx=True, styles={"chance (1/8)": "k:"})
ax_acc.set_ylim(0, 1.05)
plt.show()

token_names = [f"S{t}" if t < vocab.n_symbols else ("Q" if t == vocab.query else f"n{t}") for t in x[0]]
fig, ax_w = plot_attention(example_weights.cpu().numpy(), ["query"], token_names,
                           title=f"Where the query looks (answer: S{y[0]})")
ax_w.set_xlabel("key token (S = symbol, n = noise, Q = query marker)")
ax_w.set_ylabel("")
fig.tight_layout()
plt.show()

# %% [markdown]
# ### Written question (2 points, graded by hand)
#
# Your model never sees positions, and it was trained on sequences with exactly one symbol.
# (a) Feed it a sequence with **two** different symbols, one at the start and one halfway to the
# query, the rest noise. Predict where the query position looks and what the model answers. What
# changes if the two symbols swap places, and what would the model need in order to answer "the
# *first* symbol" reliably? (b) Suppose training left every symbol's score a margin $\Delta$ above
# every other token's. Write the symbol's attention weight in a sequence of $T$ tokens, and use it to
# predict how the accuracy behaves at lengths far beyond the 64 seen in training. Three to six sentences.

# %% [markdown] nbgrader={"grade": true, "grade_id": "position_blind_question", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# (a) The query comes from the query marker and each key depends only on which token it is, so
# both symbols score high: training only needed every symbol to beat the noise and the marker, not
# one symbol to beat another. The weight splits between the two in the ratio $e^{s_a} : e^{s_b}$ of
# their learned scores, the classifier receives the blend $w_a v_a + w_b v_b$, and the model answers
# whichever symbol has the larger score (with close scores, the logits of both are high and either may
# win) — a property of the two symbol ids, not of where they are. Swapping them changes nothing at
# all: without positions, attention is invariant to reordering the keys, so the output is identical.
# To answer "the first symbol" it needs to know where each token is: positional information added to
# the tokens (notebook 04: sinusoidal, learned or rotary positions).
# (b) With $T - 1$ other tokens each scoring $\Delta$ below the symbol, its weight is
# $1 / (1 + (T - 1)e^{-\Delta})$. That stays close to 1 while $T \ll e^{\Delta}$ and falls only slowly
# with the length: with $\Delta = 10$ it is 0.998 at $T = 50$ and still 0.82 at $T = 5{,}000$. So
# accuracy should hold far beyond the trained lengths (the plot above shows it at 500) and fall only
# once $\ln(T - 1)$ approaches $\Delta$ — nothing like the RNN's collapse with distance.

# %% [markdown]
# ## Summary
#
# - Attention is a differentiable lookup: scores $QK^\top$, a row-wise softmax, a weighted
#   average of $V$.
# - Softmax must subtract each row's maximum, and a fully masked row should give zeros, not NaN.
# - Unit-variance queries and keys give scores of variance $d_k$; dividing by $\sqrt{d_k}$ keeps
#   the softmax out of saturation at any width.
# - Masks are booleans (`True` = may attend): causal masks are the lower triangle with the
#   diagonal, padding masks have shape $(B, 1, n_k)$, and an additive bias must be built by
#   selecting, never by `(1 - mask) * -inf`.
# - One attention layer solves the recall task at any distance, because it looks up by
#   content, and for the same reason it is blind to order.
#
# **Next:** `03_multi_head_attention`: one lookup per position is limiting, so transformers run
# several in parallel ("heads"), each with its own projections, and learn to attend to
# different things at once.
