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
# # 08 · Scaling: what grows, what it costs, and how to spend a compute budget
#
# Notebook 07 built a GPT with a few hundred thousand parameters. GPT-3 has 175 billion, and it
# is the same model: the same blocks, more of them, wider. This notebook asks what that costs and
# what it buys. How many parameters does a configuration give, counted without building anything?
# How many floating-point operations does a token cost, and a whole training run? How does the loss
# fall as models grow, and, for a fixed budget of compute, how big should the model be and how much
# data should it read?
#
# **Learning objectives.** You will
# - count the parameters of GPT-2 small (124,439,808), BERT-base (109,482,240) and GPT-3
#   (174,604,259,328) from their configurations, by formula;
# - count a token's forward FLOPs, find where attention starts to dominate, and derive the
#   $C \approx 6ND$ cost of training (GPT-3: about $3.14 \times 10^{23}$ FLOPs);
# - measure attention's $T^2$ in time and memory on your own machine;
# - fit a power law with an irreducible loss to a sweep whose true constants you know;
# - work out the compute-optimal model size in closed form, fit the Chinchilla law the way its
#   replication does, and find the optimum from isoFLOP curves;
# - see why "20 tokens per parameter" is not a law, and why rounding two exponents moved a
#   famous answer by a sixth;
# - train a sweep of tiny GPTs and watch a power law appear.
#
# **Prerequisites:** `03_multi_head_attention` (the $4d^2$ of attention), `05_transformer_blocks`
# (the block), `06_bert` (BERT's embeddings and pooler), `07_gpt` (the GPT, its training loop, and
# counting parameters on the meta device).
#
# **Estimated time:** about 2 hours. **Points:** 19 autograded in 9 exercises, plus 2 for a written
# answer graded by hand.
#
# **How to check your work:** each exercise has an answer cell (replace `raise NotImplementedError()`
# with your code) followed by a test cell. Run the test cell: a ✓ line means the visible check (a
# small case worked by hand, or a published figure) passed. When the notebook is graded, hidden tests
# compare your counts with transformers' `GPT2LMHeadModel` and `BertModel` built on random
# configurations, your FLOPs with PyTorch's `FlopCounterMode` on the GPT of notebook 07, and your fits
# with freshly generated data whose true constants the grader knows. Each exercise says its difficulty
# and a rough time; hints open on demand. To see your grade, run
# `transformer-course check 08_scaling.ipynb` in a terminal.

# %%
import time

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
import tqdm as tqdm_package
from tqdm.auto import tqdm
from transformers import BertConfig, GPT2Config

from transformer_course import scaling
from transformer_course.corpus import CharTokenizer, load_corpus, train_val_split
from transformer_course.device import default_device
from transformer_course.gpt import GPT, GPTConfig, train_gpt
from transformer_course.plots import plain_log_ticks, plot_lines

np.set_printoptions(precision=4, suppress=True)
torch.manual_seed(0)
device = default_device()
if device.type == "cpu":
    torch.set_num_threads(min(2, torch.get_num_threads()))
tqdm_package.tqdm.monitor_interval = 0   # no background thread refreshing progress bars from outside the cell
print("device:", device)

# %% [markdown]
# ## 1. Parameters, counted from the configuration
#
# Notebook 07 counted GPT-2 small by building it on the meta device: shapes without storage. Here you
# count from the configuration alone, which is how anyone sizes a model before building it, and how
# you learn where the parameters live. With $d$ = `n_embd`, $f$ = the MLP's width (`n_inner`, or $4d$
# when it is `None`), $V$ the vocabulary and $P$ the number of positions, a GPT-2 block holds
#
# | part | weights | biases and gains |
# |---|---|---|
# | `ln_1`, `ln_2` | | $2 \cdot 2d$ |
# | attention: $W_Q, W_K, W_V$, output $W_O$ | $4d^2$ | $4d$ |
# | MLP: $d \to f \to d$ | $2df$ | $f + d$ |
#
# and the model adds the token table $Vd$, the position table $Pd$, the final LayerNorm $2d$, and the
# output layer, whose weight **is** the token table (tied, as in 07): it adds nothing. With $f = 4d$
# a block is $12d^2 + 13d$, and for large $d$ almost all of it is the $12d^2$: a third attention, two
# thirds MLP.
#
# > **Common bug: counting the tied matrix twice.** Summing the shapes of `wte` and `lm_head` counts
# > one $V \times d$ matrix twice; for GPT-2 small that is 38.6M parameters, 31% too many.
# > `model.parameters()` lists a shared tensor once, and so should your formula.

# %% [markdown]
# ### Exercise 1: GPT-2's parameters from its configuration (3 points)
# *Difficulty: ★☆☆ · about 10 minutes*
#
# Write `gpt2_param_count(config)` for a transformers `GPT2Config`: read `vocab_size`,
# `n_positions`, `n_embd`, `n_layer` and `n_inner` (`None` means $4 \cdot$ `n_embd`), and return the
# parameter count of `GPT2LMHeadModel(config)` (embeddings tied) as an `int`. Do not build a model:
# the check forbids it.
#
# <details><summary>Hint 1</summary>
#
# Go part by part through the table above: the embeddings once, a block times `n_layer`, then the
# final LayerNorm. Every `Linear` has a bias here; every LayerNorm has a weight and a bias.
# </details>
#
# <details><summary>Hint 2</summary>
#
# The worked example's config (vocabulary 10, 5 positions, $d = 3$, one layer) has 198 parameters:
# 30 + 15 for the tables, 147 for the block, 6 for `ln_f`. If yours is 228, the tied matrix is in twice.
# </details>

# %% nbgrader={"grade": false, "grade_id": "gpt2_param_count", "locked": false, "schema_version": 3, "solution": true, "task": false}
def gpt2_param_count(config):
    """Parameters of GPT2LMHeadModel(config), the tied wte/lm_head matrix counted once (an int)."""
    ### BEGIN SOLUTION
    V, P, d, L = config.vocab_size, config.n_positions, config.n_embd, config.n_layer
    f = config.n_inner if config.n_inner is not None else 4 * d
    block = 2 * d + (4 * d * d + 4 * d) + 2 * d + (2 * d * f + f + d)   # ln_1, attention, ln_2, MLP
    return V * d + P * d + L * block + 2 * d                            # tables, blocks, ln_f (lm_head is wte)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "gpt2_param_count_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import scaling as check

check.gpt2_param_count_example(gpt2_param_count)
### BEGIN HIDDEN TESTS
check.gpt2_param_count(gpt2_param_count)
### END HIDDEN TESTS

# %% [markdown]
# The GPT-2 family and GPT-3, from their published configurations (Radford et al. 2019; Brown et al.
# 2020, table 2.1). GPT-3 alternates dense and locally banded sparse attention, which changes no
# parameter count, so GPT-2's layout gives its size: 174.6 billion, "175B".

# %%
family = {
    "GPT-2 small": dict(n_layer=12, n_embd=768, n_head=12, n_positions=1024),
    "GPT-2 medium": dict(n_layer=24, n_embd=1024, n_head=16, n_positions=1024),
    "GPT-2 large": dict(n_layer=36, n_embd=1280, n_head=20, n_positions=1024),
    "GPT-2 XL": dict(n_layer=48, n_embd=1600, n_head=25, n_positions=1024),
    "GPT-3": dict(n_layer=96, n_embd=12288, n_head=96, n_positions=2048),
}
try:
    shares = {"embeddings": [], "attention": [], "MLP": []}
    for name, sizes in family.items():
        cfg = GPT2Config(vocab_size=50257, **sizes)
        n = gpt2_param_count(cfg)
        d, L = sizes["n_embd"], sizes["n_layer"]
        shares["embeddings"].append((50257 + sizes["n_positions"]) * d / n)
        shares["attention"].append(L * (4 * d * d + 4 * d) / n)
        shares["MLP"].append(L * (8 * d * d + 5 * d) / n)
        print(f"{name:13s} {L:2d} layers x {d:5d}: {n:>17,} parameters")
    fig, ax = plt.subplots(figsize=(9, 3.8))
    bottom = np.zeros(len(family))
    for part, values in shares.items():
        ax.bar(list(family), values, bottom=bottom, label=part)
        bottom += np.array(values)
    ax.set_ylabel("share of the parameters")
    ax.set_title("Where the parameters live: embeddings shrink to nothing as d grows")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    plt.show()
except NotImplementedError:
    print("complete exercise 1 first")

# %% [markdown]
# ### Exercise 2: BERT-base with its pooler (2 points)
# *Difficulty: ★☆☆ · about 10 minutes*
#
# BERT (notebook 06) names things differently and has three extra pieces: **segment** (token type)
# embeddings, `type_vocab_size` $\times d$; a LayerNorm right after the summed embeddings; and the
# **pooler**, one $d \times d$ layer with its bias applied to the `[CLS]` token. It has no output head
# in `BertModel`. Its feed-forward width is `intermediate_size`. Write `bert_param_count(config)` for a
# transformers `BertConfig` (`vocab_size`, `hidden_size`, `num_hidden_layers`, `intermediate_size`,
# `max_position_embeddings`, `type_vocab_size`): the parameters of `BertModel(config)`, pooler included.
#
# <details><summary>Hint 1</summary>
#
# List the pieces before counting: three embedding tables, the LayerNorm after them, `num_hidden_layers`
# layers, and the pooler. Every `Linear` and every LayerNorm has a bias.
# </details>
#
# <details><summary>Hint 2</summary>
#
# A BERT layer is a GPT-2 block with its LayerNorms after the sublayers instead of before: the same
# count. Check yourself on BERT-base: 109,482,240, of which 590,592 are the pooler.
# </details>

# %% nbgrader={"grade": false, "grade_id": "bert_param_count", "locked": false, "schema_version": 3, "solution": true, "task": false}
def bert_param_count(config):
    """Parameters of transformers' BertModel(config), pooler included (an int)."""
    ### BEGIN SOLUTION
    V, d, L, f = config.vocab_size, config.hidden_size, config.num_hidden_layers, config.intermediate_size
    P, S = config.max_position_embeddings, config.type_vocab_size
    embeddings = (V + P + S) * d + 2 * d                                  # three tables and a LayerNorm
    layer = (4 * d * d + 4 * d) + 2 * d + (2 * d * f + f + d) + 2 * d     # attention, LN, feed-forward, LN
    return embeddings + L * layer + d * d + d                            # ... and the pooler
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "bert_param_count_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import scaling as check

check.bert_param_count_example(bert_param_count)
### BEGIN HIDDEN TESTS
check.bert_param_count(bert_param_count)
### END HIDDEN TESTS

# %%
try:
    bert_base = BertConfig(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                           intermediate_size=3072, max_position_embeddings=512, type_vocab_size=2)
    n = bert_param_count(bert_base)
    print(f"BERT-base: {n:,} parameters, of which the pooler {768 * 768 + 768:,} and the word embeddings "
          f"{30522 * 768:,} ({30522 * 768 / n:.0%})")
except NotImplementedError:
    print("complete exercise 2 first")

# %% [markdown]
# ## 2. FLOPs: what a token costs, and what training costs
#
# Multiplying an $(m \times k)$ matrix by a $(k \times n)$ one takes $mkn$ multiplications and as
# many additions: $2mkn$ floating-point operations (FLOPs). A token passing through a `Linear` layer
# with a $d_{in} \times d_{out}$ weight therefore costs $2 d_{in} d_{out}$: **2 FLOPs per weight**.
# Which weights does a token meet going forward through a GPT?
#
# - every matrix of every block, $n_{layer}(4d^2 + 2df)$;
# - the output layer, $Vd$: tied or not, the token is multiplied by it;
# - *not* the embedding tables: looking up a row multiplies nothing. Biases, LayerNorms, GELU and the
#   softmax cost a few FLOPs per feature, negligible beside the products (and not counted here).
#
# Attention adds products that involve no weight: per layer, the scores $QK^\top$ and the weighted
# values $AV$. For one query over a context of $T$ keys each costs $2Td$, so attention adds
# $4 n_{layer} T d$ per token (a plain implementation computes all $T$ scores even under a causal mask).
# With $N_w$ the multiplied weights,
#
# $$
# C_{\text{forward}} \approx 2 N_w + 4\, n_{layer}\, T\, d \quad \text{FLOPs per token}.
# $$
#
# Kaplan et al. (2020, table 1) count the same way but keep one attention product and leave out the output
# layer; here both products and the output layer are in, which is what a forward pass computes. PyTorch
# can count for you: `torch.utils.flop_counter.FlopCounterMode` records every matrix product a
# forward pass runs, and the hidden test compares your formula with it on the GPT of notebook 07.

# %% [markdown]
# ### Exercise 3: forward FLOPs per token (2 points)
# *Difficulty: ★★☆ · about 15 minutes*
#
# Write `forward_flops_per_token(config, T)` for the course's `GPTConfig` (notebook 07: `n_layer`,
# `n_embd`, `vocab_size`; the MLP is $4d$ wide): the FLOPs of one token's forward pass at context
# length `T`, as above.
#
# <details><summary>Hint 1</summary>
#
# $N_w = n_{layer} \cdot 12 d^2 + V d$. Then add attention's two products.
# </details>
#
# <details><summary>Hint 2</summary>
#
# For the worked example (one layer, $d = 4$, $V = 10$, $T = 8$): $2 \cdot 232 + 4 \cdot 1 \cdot 8
# \cdot 4 = 592$.
# </details>

# %% nbgrader={"grade": false, "grade_id": "forward_flops", "locked": false, "schema_version": 3, "solution": true, "task": false}
def forward_flops_per_token(config, T):
    """FLOPs of one token's forward pass through GPT(config) at context length T (a number)."""
    ### BEGIN SOLUTION
    d, L, V = config.n_embd, config.n_layer, config.vocab_size
    weights = L * 12 * d * d + V * d          # the blocks' matrices and lm_head; no embedding look-ups
    return 2 * weights + 4 * L * T * d        # 2 per weight, plus Q K^T and A V
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "forward_flops_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import scaling as check

check.forward_flops_example(forward_flops_per_token)
### BEGIN HIDDEN TESTS
check.forward_flops(forward_flops_per_token)
### END HIDDEN TESTS

# %% [markdown]
# Count it yourself with PyTorch: a small GPT, one batch, `FlopCounterMode`. (`scaling.count_flops`
# runs PyTorch's attention as plain products, which the counter sees; its fused kernels are invisible
# to it on a CPU.)

# %%
try:
    cfg = GPTConfig(block_size=128, vocab_size=65, n_layer=2, n_head=4, n_embd=64)
    small = GPT(cfg).eval()
    idx = torch.randint(0, 65, (4, 128))
    with torch.no_grad():
        counted = scaling.count_flops(lambda: small(idx))
    print(f"FlopCounterMode: {counted / idx.numel():,.0f} FLOPs per token; "
          f"your formula: {forward_flops_per_token(cfg, 128):,.0f}")
except NotImplementedError:
    print("complete exercise 3 first")

# %% [markdown]
# **Where does attention take over?** The weight term is $2 \cdot 12 n_{layer} d^2$ and the attention
# term $4 n_{layer} T d$: leaving the output layer aside, they are equal at $T = 6d$. For GPT-2 small,
# $6 \cdot 768 = 4608$, beyond its 1024 positions, so its cost is almost all weights; GPT-3's
# $6 \cdot 12288 = 73{,}728$ is far beyond its 2048. Models with long contexts and modest width cross
# the line, which is why the last notebook, 10, is about making attention cheaper.

# %%
try:
    lengths = np.geomspace(64, 65536, 11).astype(int)
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for d in (256, 768, 2048):
        cfg = GPTConfig(block_size=int(lengths[-1]), vocab_size=50257, n_layer=12, n_head=8, n_embd=d)
        # the blocks only: take the output layer's 2 V d out, as the T = 6d argument does
        blocks = np.array([forward_flops_per_token(cfg, int(T)) for T in lengths], dtype=float) - 2 * 50257 * d
        share = 4 * 12 * lengths * d / blocks
        ax.plot(lengths, share, "o-", label=f"d = {d} (T = 6d at {6 * d:,})")
    ax.axhline(0.5, color="gray", ls=":")
    ax.set_xscale("log")
    ax.set_xlabel("context length T (tokens)")
    ax.set_ylabel("attention's share of the blocks' FLOPs")
    ax.set_title("Attention's share of a token's FLOPs in the blocks (12 layers)")
    ax.legend()
    plt.show()
except NotImplementedError:
    print("complete exercise 3 first")

# %% [markdown]
# **What it costs on your machine.** FLOPs are not the whole story: attention as notebook 02 wrote it
# also *stores* the $(T \times T)$ score matrix of every head, and moving that through memory is what
# makes it slow. PyTorch's `scaled_dot_product_attention` computes the same thing in tiles without
# keeping the matrix (notebook 10 shows how). Below, both on random $q, k, v$ of 4 heads of 32
# dimensions: time (best of 3) and the peak bytes of the tensors each allocates. On a log-log plot a
# power law is a straight line: slope 2 for the score matrix, slope 1 for what grows with $T$ only.

# %%
cost = scaling.measure_attention([128, 256, 512, 1024, 2048], heads=4, d_head=32, causal=True, device=device)
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
plot_lines(cost["T"], {"naive (notebook 02)": cost["naive_s"], "scaled_dot_product_attention": cost["sdpa_s"]},
           xlabel="sequence length T (tokens)", ylabel="time (s)", title=f"Attention forward time on {device.type}",
           logx=True, logy=True, ax=ax1)
plot_lines(cost["T"], {"naive (notebook 02)": np.array(cost["naive_bytes"]) / 2**20,
                       "scaled_dot_product_attention": np.array(cost["sdpa_bytes"]) / 2**20},
           xlabel="sequence length T (tokens)", ylabel="peak extra memory (MiB)",
           title="Attention forward memory", logx=True, logy=True, ax=ax2)
for ax in (ax1, ax2):
    plain_log_ticks(ax, "x", ticks=cost["T"])
plt.tight_layout()
plt.show()
for T, a, b, ma, mb in zip(cost["T"], cost["naive_s"], cost["sdpa_s"], cost["naive_bytes"], cost["sdpa_bytes"]):
    print(f"T = {T:5d}: naive {a * 1e3:7.2f} ms, {ma / 2**20:7.1f} MiB | fused {b * 1e3:7.2f} ms, "
          f"{mb / 2**20:5.2f} MiB | {a / b:4.1f}x faster")
slope = np.polyfit(np.log(cost["T"]), np.log(cost["naive_bytes"]), 1)[0]
print(f"naive memory grows as T^{slope:.2f}")

# %% [markdown]
# ### Training: about $6ND$
#
# The backward pass runs two matrix products per weight matrix: one sends the gradient back to the
# layer's input ($\partial L / \partial x = \partial L / \partial y \cdot W^\top$), the other gives the
# weight's own gradient ($\partial L / \partial W = x^\top \cdot \partial L / \partial y$). Each costs as
# much as the forward product, so a training step costs three forward passes: $6$ FLOPs per weight per
# token. Ignoring attention and the embeddings, a model of $N$ parameters trained on $D$ tokens costs
#
# $$
# C \approx 6 N D.
# $$
#
# (Kaplan et al. 2020 derive the same; `FlopCounterMode` on forward and backward of the GPT above
# counts exactly $3\times$ its forward.)

# %% [markdown]
# ### Exercise 4: training FLOPs (1 point)
# *Difficulty: ★☆☆ · about 2 minutes*
#
# Write `training_flops(n_params, n_tokens)`. GPT-3 (174.6B parameters, 300B tokens; Brown et al.
# 2020, table D.1) should come out at about $3.14 \times 10^{23}$.
#
# <details><summary>Hint 1</summary>
#
# $2ND$ is one forward pass over the data. What does the backward pass add?
# </details>
#
# <details><summary>Hint 2</summary>
#
# The backward pass multiplies by each weight twice: once for the gradient of the layer's input, once for
# the weight's own gradient. That is $4ND$ more.
# </details>

# %% nbgrader={"grade": false, "grade_id": "training_flops", "locked": false, "schema_version": 3, "solution": true, "task": false}
def training_flops(n_params, n_tokens):
    """Approximate FLOPs to train n_params parameters on n_tokens tokens."""
    ### BEGIN SOLUTION
    return 6 * n_params * n_tokens
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "training_flops_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import scaling as check

check.training_flops_example(training_flops)
### BEGIN HIDDEN TESTS
check.training_flops(training_flops)
### END HIDDEN TESTS

# %%
try:
    C = training_flops(scaling.GPT3_175B_PARAMS, 300e9)
    print(f"GPT-3: {C:.3g} FLOPs; at 400 TFLOP/s of useful work (a good share of one H100 in bf16), "
          f"{C / 400e12 / 86400 / 365:.0f} GPU-years")
except NotImplementedError:
    print("complete exercise 4 first")

# %% [markdown]
# ## 3. Power laws: how loss falls with size
#
# Train a family of models, each to convergence on plenty of data, and plot the test loss against
# the parameter count: Kaplan et al. (2020) found a straight line on log-log axes over seven orders
# of magnitude, a power law $L(N) \propto N^{-\alpha}$. It cannot go on for ever: text has an entropy
# no model removes, so the law is better written with an **irreducible loss** $c$:
#
# $$
# L(N) = a\,N^{-\alpha} + c.
# $$
#
# The course generates a sweep from constants it knows ($a = 400$, $\alpha = 0.34$, $c = 1.7$, of the
# size real sweeps show) plus 2% noise. Generated, not copied: you can check a fit against the truth.

# %%
N_sweep, L_sweep, truth = scaling.synthetic_sweep(12, seed=0)
line_a, line_alpha = scaling.fit_loglog_line(N_sweep, L_sweep)
print(f"truth: a = {truth.a}, alpha = {truth.alpha}, c = {truth.c}")
print(f"a straight line in log-log (no c): alpha = {line_alpha:.3f}, a third of the truth")

# %% [markdown]
# Leaving out $c$ is the first mistake: the curve flattens towards $c$, a straight line through it
# is a compromise, and its slope is several times too shallow. The second is fitting in linear space:
# least squares on $L$ itself lets the largest losses dominate and treats a 0.01 error at $L = 5$
# the same as at $L = 1.8$. Fit in **log space** instead,
#
# $$
# \min_{a, \alpha, c}\; \sum_i \left(\log L_i - \log\left(a N_i^{-\alpha} + c\right)\right)^2,
# $$
#
# where every point counts by its *relative* error, as the noise of real runs behaves.

# %% [markdown]
# ### Exercise 5: fit $L = aN^{-\alpha} + c$ in log space (3 points)
# *Difficulty: ★★★ · about 25 minutes*
#
# Write `fit_power_law(N, L)` returning `(a, alpha, c)` that minimise the sum above, with
# $0 \le c < \min L$. Any method is fine (numpy, `scipy.optimize`, torch) as long as the result is
# the least-squares optimum in log space: the checks compare your objective with the best one (within
# 0.01%), on exact points, on the sweep above, and on freshly generated sweeps whose constants the
# exact fit recovers.
#
# <details><summary>Hint 1</summary>
#
# A nonlinear fit needs a good start. For a *fixed* $c$, $\log(L - c) = \log a - \alpha \log N$ is a
# straight line, and `np.polyfit` gives $a$ and $\alpha$; scoring each $c$ of a grid in $[0, \min L)$ by the
# log-space objective gives a good starting point. It is only a start: that line minimises the
# residuals of $\log(L - c)$, not those of $\log L$, so its answer is a little off the optimum.
# </details>
#
# <details><summary>Hint 2</summary>
#
# From that start, minimise the right sum over all three parameters at once:
# `scipy.optimize.least_squares` on the residuals $\log L_i - \log(a N_i^{-\alpha} + c)$, with bounds that
# keep $0 \le c \le \min L$ (optimise $\log a$ rather than $a$ to keep $a$ positive). `curve_fit` on $L$
# itself fits in linear space, the mistake this exercise is about.
# </details>

# %% nbgrader={"grade": false, "grade_id": "fit_power_law", "locked": false, "schema_version": 3, "solution": true, "task": false}
def fit_power_law(N, L):
    """(a, alpha, c) minimising sum (log L - log(a N^-alpha + c))^2, with 0 <= c < min(L)."""
    ### BEGIN SOLUTION
    from scipy.optimize import least_squares

    N, L = np.asarray(N, dtype=float), np.asarray(L, dtype=float)

    def line(c):                                  # the best (log a, alpha) for a fixed c
        slope, intercept = np.polyfit(np.log(N), np.log(L - c), 1)
        return intercept, -slope

    def objective(c):
        log_a, alpha = line(c)
        return np.sum((np.log(L) - np.log(np.exp(log_a) * N ** -alpha + c)) ** 2)

    grid = np.linspace(0.0, L.min() * (1 - 1e-6), 400)
    c0 = grid[np.argmin([objective(c) for c in grid])]
    log_a, alpha = line(c0)
    fit = least_squares(lambda x: np.log(L) - np.log(np.exp(x[0]) * N ** -x[1] + x[2]), [log_a, alpha, c0],
                        bounds=([-np.inf, -np.inf, 0.0], [np.inf, np.inf, L.min()]), xtol=1e-14, ftol=1e-14, gtol=1e-14)
    return float(np.exp(fit.x[0])), float(fit.x[1]), float(fit.x[2])
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "fit_power_law_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import scaling as check

check.fit_power_law_example(fit_power_law)
### BEGIN HIDDEN TESTS
check.fit_power_law(fit_power_law)
### END HIDDEN TESTS

# %%
try:
    a, alpha, c = fit_power_law(N_sweep, L_sweep)
    print(f"your fit: a = {a:.4g}, alpha = {alpha:.4f}, c = {c:.4f}  (truth: {truth.a}, {truth.alpha}, {truth.c})")
    grid = np.geomspace(N_sweep[0], N_sweep[-1] * 30, 100)
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.plot(N_sweep, L_sweep, "ko", label="generated runs")
    ax.plot(grid, a * grid ** -alpha + c, "C0-", label=f"fit: {a:.0f} N^-{alpha:.3f} + {c:.2f}")
    ax.plot(grid, line_a * grid ** -line_alpha, "C3--", label=f"no c: {line_a:.1f} N^-{line_alpha:.3f}")
    ax.axhline(c, color="C0", ls=":", label="irreducible loss c")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("parameters N")
    ax.set_ylabel("loss (nats per token)")
    ax.set_title("A power law with an irreducible loss, and the line that leaves it out")
    plain_log_ticks(ax, "y")
    ax.legend()
    plt.show()
except NotImplementedError:
    print("complete exercise 5 first")

# %% [markdown]
# ## 4. Chinchilla: spending a compute budget
#
# With compute $C$ you can train a big model on few tokens or a small one on many: $6ND = C$. Which
# is best? Hoffmann et al. (2022) trained over 400 models and fitted a law in both variables,
#
# $$
# L(N, D) = E + \frac{A}{N^{\alpha}} + \frac{B}{D^{\beta}},
# $$
#
# an irreducible $E$ plus one term for a finite model and one for finite data. Minimising it along
# $6ND = C$ (substitute $D = C/6N$, set the derivative to zero) gives the optimum in closed form:
#
# $$
# N_{opt} = G \left(\frac{C}{6}\right)^{\frac{\beta}{\alpha + \beta}}, \qquad
# D_{opt} = G^{-1} \left(\frac{C}{6}\right)^{\frac{\alpha}{\alpha + \beta}}, \qquad
# G = \left(\frac{\alpha A}{\beta B}\right)^{\frac{1}{\alpha + \beta}}.
# $$
#
# With $\alpha \approx \beta$ both grow as $\sqrt{C}$: four times the compute buys twice the model on twice
# the data. Kaplan et al.
# (2020) had found $N_{opt} \propto C^{0.73}$ and spent most extra compute on size; Chinchilla, a 70B
# model trained on 1.4T tokens with the compute of the 280B Gopher, beat it.

# %% [markdown]
# ### Exercise 6: the compute-optimal allocation (2 points)
# *Difficulty: ★★☆ · about 10 minutes*
#
# Write `compute_optimal(C, law)` returning `(N_opt, D_opt)`, where `law` has the attributes `E`, `A`,
# `B`, `alpha` and `beta` (a `scaling.ChinchillaLaw`). Do not call the law's own `optimum`.
#
# <details><summary>Hint 1</summary>
#
# Use the closed form above: the exponents $\beta / (\alpha + \beta)$ and $\alpha / (\alpha + \beta)$ on $C/6$,
# and the constant $G$ on one side and $1/G$ on the other.
# </details>
#
# <details><summary>Hint 2</summary>
#
# Check yourself: $6 N_{opt} D_{opt}$ must equal $C$; with $A = B$ and $\alpha = \beta$ you must get
# $N_{opt} = D_{opt} = \sqrt{C/6}$; and the rounded Chinchilla constants at $2.21 \times 10^{19}$ give
# about 326M parameters (a symmetric law cannot tell the two exponents apart; this one can).
# </details>

# %% nbgrader={"grade": false, "grade_id": "compute_optimal", "locked": false, "schema_version": 3, "solution": true, "task": false}
def compute_optimal(C, law):
    """(N_opt, D_opt) minimising law(N, D) = E + A/N^alpha + B/D^beta subject to 6 N D = C."""
    ### BEGIN SOLUTION
    s = law.alpha + law.beta
    G = (law.alpha * law.A / (law.beta * law.B)) ** (1 / s)
    return G * (C / 6) ** (law.beta / s), (C / 6) ** (law.alpha / s) / G
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "compute_optimal_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import scaling as check

check.compute_optimal_example(compute_optimal)
### BEGIN HIDDEN TESTS
check.compute_optimal(compute_optimal)
### END HIDDEN TESTS

# %% [markdown]
# **A known disagreement.** The paper prints its fit rounded: $E = 1.69$, $A = 406.4$, $B = 410.7$,
# $\alpha = 0.34$, $\beta = 0.28$. Its TeX source has $\alpha = 0.3392$, $\beta = 0.2849$. Besiroglu
# et al. (2024, Epoch AI) refitted the law on data reconstructed from the paper's plots and got
# $E = 1.82$, $A = 482$, $B = 2085$, $\alpha = 0.348$, $\beta = 0.366$. The paper's table 3 puts a
# 400M-parameter model at about $2 \times 10^{19}$ FLOPs ($1.92 \times 10^{19}$, 8.0B tokens). What does
# each constant set say for $2.21 \times 10^{19}$ FLOPs, and for Gopher's and Chinchilla's
# $5.76 \times 10^{23}$?

# %%
try:
    table = [(C, law, *compute_optimal(C, law)) for C in (2.21e19, 5.76e23) for law in scaling.LAWS.values()]
    for C, law, N_opt, D_opt in table:
        print(f"C = {C:.3g} FLOPs  {law.name:22s} N_opt = {N_opt / 1e6:9,.0f}M  D_opt = {D_opt / 1e9:7,.1f}B tokens  "
              f"D/N = {D_opt / N_opt:5.1f}")
except NotImplementedError:
    print("complete exercise 6 first")

# %% [markdown]
# Rounding the two exponents, by 0.0008 and 0.0049, moves the optimum from 389M to 326M parameters, a sixth
# less, and at
# Chinchilla's budget the rounded law says 32B where Epoch's says 72B (Chinchilla itself is 70B). The
# optimum depends on $\beta/(\alpha+\beta)$, a ratio of two small, uncertain numbers, raised to the
# power of a huge $C/6$: small errors in the exponents become large errors in $N$.
#
# **"20 tokens per parameter"** is the ratio $D_{opt}/N_{opt}$ at Chinchilla's budget (1.4T / 70B). It
# is a constant only when $\alpha = \beta$; otherwise
# $D_{opt}/N_{opt} = G^{-2} (C/6)^{(\alpha - \beta)/(\alpha + \beta)}$ drifts with the budget:

# %%
try:
    budgets = np.geomspace(1e18, 1e26, 17)
    ratios = {}
    for law in scaling.LAWS.values():
        N_opt, D_opt = zip(*(compute_optimal(C, law) for C in budgets))
        ratios[law.name] = np.array(D_opt) / np.array(N_opt)
    fig, ax = plot_lines(budgets, ratios, xlabel="compute budget C (FLOPs)", ylabel="tokens per parameter D/N",
                         title="Compute-optimal tokens per parameter is not a constant", logx=True, logy=True,
                         markers=False)
    ax.axhline(20, color="gray", ls=":")
    ax.text(budgets[0], 21, "20", color="gray")
    plain_log_ticks(ax, "y")
    plt.show()
except NotImplementedError:
    print("complete exercise 6 first")

# %% [markdown]
# ### Fitting the law the way the replication does
#
# Hoffmann et al. fit $(E, A, B, \alpha, \beta)$ by minimising a Huber loss on the log-loss; Epoch AI
# redid it with the same objective and a converged optimiser. Write $A = e^a$, $B = e^b$, $E = e^e$;
# the predicted log-loss is then a log-sum-exp, stable for any values:
#
# $$
# \log \hat L_i = \operatorname{LSE}\left(a - \alpha \log N_i,\; b - \beta \log D_i,\; e\right),
# \qquad
# \text{objective} = \sum_i \operatorname{Huber}_\delta\left(\log \hat L_i - \log L_i\right),
# $$
#
# with $\operatorname{Huber}_\delta(r) = r^2/2$ for $|r| \le \delta$ and $\delta(|r| - \delta/2)$ beyond,
# $\delta = 10^{-3}$: squared near zero, linear for outliers, so a few bad runs cannot drag the fit.

# %% [markdown]
# ### Exercise 7: the Huber objective (2 points)
# *Difficulty: ★★☆ · about 15 minutes*
#
# Write `chinchilla_objective(params, log_N, log_D, log_L, delta=1e-3)`: `params` is a float64
# tensor $(a, b, e, \alpha, \beta)$ and the three others are 1-D tensors over the runs. Return the
# **sum** of the Huber terms as a scalar tensor, differentiable with respect to `params` (the package's
# `scaling.fit_chinchilla` runs L-BFGS on it).
#
# <details><summary>Hint 1</summary>
#
# `torch.logsumexp(torch.stack([...]), dim=0)` takes the log-sum-exp of three tensors elementwise;
# `e` is a scalar, so expand it to the runs' shape first (`e.expand_as(log_N)`).
# </details>
#
# <details><summary>Hint 2</summary>
#
# `torch.where(r.abs() <= delta, ..., ...)` picks between the two branches of Huber's loss.
# </details>

# %% nbgrader={"grade": false, "grade_id": "chinchilla_objective", "locked": false, "schema_version": 3, "solution": true, "task": false}
def chinchilla_objective(params, log_N, log_D, log_L, delta=1e-3):
    """Sum over runs of Huber_delta(LSE(a - alpha log N, b - beta log D, e) - log L); params = (a, b, e, alpha, beta)."""
    ### BEGIN SOLUTION
    a, b, e, alpha, beta = params.unbind(0)
    predicted = torch.logsumexp(torch.stack([a - alpha * log_N, b - beta * log_D, e.expand_as(log_N)]), dim=0)
    r = predicted - log_L
    return torch.where(r.abs() <= delta, 0.5 * r ** 2, delta * (r.abs() - 0.5 * delta)).sum()
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "chinchilla_objective_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import scaling as check

check.chinchilla_objective_example(chinchilla_objective)
### BEGIN HIDDEN TESTS
check.chinchilla_objective(chinchilla_objective)
### END HIDDEN TESTS

# %% [markdown]
# Now fit generated runs (generated from Epoch AI's constants, 1% noise) with your objective: four
# budgets from $10^{18}$ to $10^{21}$ FLOPs, nine model sizes each.

# %%
runs = scaling.synthetic_chinchilla_runs(scaling.EPOCH_REFIT, noise=0.01, seed=0)
try:
    fitted = scaling.fit_chinchilla(runs["N"], runs["D"], runs["L"], objective=chinchilla_objective)
    true = scaling.EPOCH_REFIT
    for name in ("E", "A", "B", "alpha", "beta"):
        print(f"{name:5s} fitted {getattr(fitted, name):9.4g}   generated with {getattr(true, name):9.4g}")
except NotImplementedError:
    print("complete exercise 7 first")

# %% [markdown]
# The exponents come back well; $A$ and $B$ less so, since a larger $A$ with a larger $\alpha$ fits
# nearly as well. That is the replication's point about the paper's confidence intervals: the data
# pin down some directions much better than others.

# %% [markdown]
# ### Explore: what a budget buys
#
# Pick a budget and a constant set (the published ones, or your fit of the generated runs above): the
# curve is the predicted loss of every split of that budget ($N$ on the axis, $D = C/6N$), the dot its
# optimum. Try $10^{24}$ with the rounded and the refitted constants, and watch how flat the curve is
# near its minimum: at $10^{24}$ FLOPs a model twice too big or too small costs about 0.005 nats per
# token under any of the three sets, four times too small about 0.02. That flatness is why training a
# smaller model on more tokens than "optimal" (cheaper to serve afterwards) loses so little.

# %%
laws = dict(scaling.LAWS)
try:
    laws["your fit (exercise 7)"] = fitted
except NameError:
    pass


def show_budget(log10_C=21.0, constants="Epoch AI refit"):
    law, C = laws[constants], 10.0 ** log10_C
    try:
        N_opt, D_opt = compute_optimal(C, law)
    except NotImplementedError:
        print("complete exercise 6 first")
        return
    Ns = np.geomspace(N_opt / 100, N_opt * 100, 200)
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.plot(Ns, law(Ns, C / (6 * Ns)), "C0-")
    ax.plot([N_opt], [law(N_opt, D_opt)], "C3o")
    ax.set_xscale("log")
    ax.set_xlabel("parameters N (D = C / 6N)")
    ax.set_ylabel("predicted loss (nats per token)")
    ax.set_title(f"C = {C:.2g} FLOPs, {constants}")
    plt.show()
    print(f"N_opt = {N_opt:.3g} parameters, D_opt = {D_opt:.3g} tokens ({D_opt / N_opt:.1f} per parameter), "
          f"predicted loss {law(N_opt, D_opt):.3f}")


widgets.interact(show_budget,
                 log10_C=widgets.FloatSlider(value=21.0, min=17.0, max=26.0, step=0.25, description="log10 C"),
                 constants=widgets.Dropdown(options=list(laws), value="Epoch AI refit", description="constants"));

# %% [markdown]
# ### The isoFLOP approach
#
# Hoffmann et al.'s second approach needs no law in $N$ and $D$: at each budget, train several sizes,
# fit a parabola to the loss against $\log N$, and take its vertex as that budget's optimum. A straight
# line through the optima in log-log gives $N_{opt} \propto C^{a}$.

# %% [markdown]
# ### Exercise 8: the optimum of one isoFLOP curve (2 points)
# *Difficulty: ★★☆ · about 10 minutes*
#
# Write `isoflop_optimum(N, L)`: fit $L = p_0 (\log N)^2 + p_1 \log N + p_2$ to one budget's runs and
# return the $N$ at the parabola's vertex.
#
# <details><summary>Hint 1</summary>
#
# The parabola is in $\log N$, not in $N$: fit against the logarithm, find the vertex there, and come back
# with `np.exp`.
# </details>
#
# <details><summary>Hint 2</summary>
#
# `np.polyfit(x, y, 2)` returns $(p_0, p_1, p_2)$; the vertex of $p_0 x^2 + p_1 x + p_2$ is at
# $x = -p_1 / 2p_0$, and here $x$ is $\log N$.
# </details>

# %% nbgrader={"grade": false, "grade_id": "isoflop_optimum", "locked": false, "schema_version": 3, "solution": true, "task": false}
def isoflop_optimum(N, L):
    """The model size at the vertex of the parabola L = p0 (log N)^2 + p1 log N + p2 (a float)."""
    ### BEGIN SOLUTION
    p0, p1, _ = np.polyfit(np.log(N), L, 2)
    return float(np.exp(-p1 / (2 * p0)))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "isoflop_optimum_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import scaling as check

check.isoflop_optimum_example(isoflop_optimum)
### BEGIN HIDDEN TESTS
check.isoflop_optimum(isoflop_optimum)
### END HIDDEN TESTS

# %%
try:
    budgets, optima, (k, a_exp) = scaling.isoflop_fit(runs, optimum=isoflop_optimum)
    law = scaling.EPOCH_REFIT
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for i, C in enumerate(budgets):
        sel = runs["C"] == C
        ax1.plot(runs["N"][sel], runs["L"][sel], "o", color=f"C{i}", label=f"C = {C:.0e}")
        p = np.polyfit(np.log(runs["N"][sel]), runs["L"][sel], 2)
        grid = np.geomspace(runs["N"][sel].min(), runs["N"][sel].max(), 100)
        ax1.plot(grid, np.polyval(p, np.log(grid)), "-", color=f"C{i}")
        ax1.axvline(optima[i], color=f"C{i}", ls=":")
    ax1.set_xscale("log")
    ax1.set_xlabel("parameters N")
    ax1.set_ylabel("loss (nats per token)")
    ax1.set_title("isoFLOP curves and their vertices")
    ax1.legend()
    ax2.plot(budgets, optima, "ko", label="vertices")
    ax2.plot(budgets, k * budgets ** a_exp, "C0-", label=f"fit: N_opt ~ C^{a_exp:.3f}")
    ax2.plot(budgets, [law.optimum(C)[0] for C in budgets], "C3--",
             label=f"law's closed form: C^{law.beta / (law.alpha + law.beta):.3f}")
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xlabel("compute budget C (FLOPs)")
    ax2.set_ylabel("optimal parameters N_opt")
    ax2.set_title("Optimal size against budget")
    ax2.legend()
    plt.tight_layout()
    plt.show()
except NotImplementedError:
    print("complete exercise 8 first")

# %% [markdown]
# ## 5. A live sweep: a power law from models you train
#
# Everything so far used generated data. Now train real models: tiny GPTs of the same depth (2 blocks,
# heads of 16 dimensions, context 64) and growing width, each on the **same** 200 batches of 16 windows of
# 64 characters, and measure each one's loss on held-out text. At fixed data the loss falls with size, and
# the law to try is again $L(N) = a N^{-\alpha} + c$, where $c$ now also holds the limit of what this
# little data can teach.
#
# The corpus is the course's offline text (English docstrings of Python's standard library, notebook
# 07), so the numbers are the same on every machine.

# %%
text, corpus_name = load_corpus("offline")
tokenizer = CharTokenizer(text)
ids = torch.tensor(tokenizer.encode(text), dtype=torch.long)
train_ids, val_ids = train_val_split(ids)
widths = [8, 16, 32, 64, 128]
print(f"{corpus_name} corpus: {len(text):,} characters, vocabulary {tokenizer.vocab_size}; widths {widths}")

# %% [markdown]
# ### Exercise 9: run the sweep (2 points)
# *Difficulty: ★☆☆ · about 10 minutes (and about 20 s to run)*
#
# Write `run_sweep(widths, train_ids, val_ids, vocab_size, iters=200)`: for each width, seed with
# `torch.manual_seed(0)`, build `GPT(scaling.sweep_config(width, vocab_size=vocab_size))` on `device`,
# train it with notebook 07's `train_gpt(model, train_ids, val_ids, iters=iters, batch_size=16,
# lr=3e-3, min_lr=3e-4, warmup=20, eval_every=iters, eval_iters=2,
# generator=torch.Generator().manual_seed(0), progress=False)`, and return the list of trained models.
# The generator, seeded the same for every width, draws the same training windows for each model; the
# sparse evaluation keeps the sweep fast. The test measures the models itself on held-out text: loose
# bounds, since a CPU run is noisy, but the loss must fall with size.
#
# <details><summary>Hint 1</summary>
#
# Keep every model in the list (not only the last), and give each the same `iters` and `batch_size`:
# the sweep varies the size only.
# </details>
#
# <details><summary>Hint 2</summary>
#
# Seed before building each model, not once before the loop: then every width starts from the same
# random state, and the only difference between runs is the width.
# </details>

# %% nbgrader={"grade": false, "grade_id": "run_sweep", "locked": false, "schema_version": 3, "solution": true, "task": false}
def run_sweep(widths, train_ids, val_ids, vocab_size, iters=200):
    """One tiny GPT per width, each trained on the same tokens; returns the list of trained models."""
    ### BEGIN SOLUTION
    models = []
    for width in tqdm(widths, desc="sweep"):
        torch.manual_seed(0)
        model = GPT(scaling.sweep_config(width, vocab_size=vocab_size)).to(device)
        train_gpt(model, train_ids.to(device), val_ids.to(device), iters=iters, batch_size=16, lr=3e-3, min_lr=3e-4,
                  warmup=20, eval_every=iters, eval_iters=2, generator=torch.Generator().manual_seed(0),
                  progress=False)
        models.append(model)
    return models
    ### END SOLUTION


# %%
try:
    start = time.perf_counter()
    sweep_models = run_sweep(widths, train_ids, val_ids, tokenizer.vocab_size)
    print(f"trained {len(sweep_models)} models in {time.perf_counter() - start:.0f} s")
except NotImplementedError:
    sweep_models = None
    print("complete exercise 9 first")

# %% nbgrader={"grade": true, "grade_id": "run_sweep_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import scaling as check

check.live_sweep(sweep_models, val_ids)
### BEGIN HIDDEN TESTS
check.live_sweep(sweep_models, val_ids, batches=16, seed=None)
### END HIDDEN TESTS

# %%
if sweep_models is not None:
    N_live, L_live = scaling.sweep_losses(sweep_models, val_ids)
    live_a, live_alpha = scaling.fit_loglog_line(N_live, L_live)
    grid = np.geomspace(N_live[0] / 2, N_live[-1] * 4, 100)
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.plot(N_live, L_live, "ko", label="held-out loss of each model")
    ax.plot(grid, live_a * grid ** -live_alpha, "C0-", label=f"line: {live_a:.3g} N^-{live_alpha:.3f}")
    try:
        a, alpha, c = fit_power_law(N_live, L_live)
        ax.plot(grid, a * grid ** -alpha + c, "C3--", label=f"with c: {a:.3g} N^-{alpha:.3f} + {c:.2f}")
    except (NotImplementedError, ValueError, RuntimeError, np.linalg.LinAlgError):
        pass
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("parameters N (without positions)")
    ax.set_ylabel("held-out loss (nats per character)")
    ax.set_title(f"Tiny GPTs, 2 layers, same {200 * 16 * 64:,} training characters")
    plain_log_ticks(ax, "y")
    ax.legend()
    plt.show()
    for n, v in zip(N_live, L_live):
        print(f"N = {n:8,.0f}: held-out loss {v:.3f}")

# %% [markdown]
# Five models trained for a few seconds each, and the held-out loss falls with size close to a power
# law. The straight line's exponent is far smaller than the generated sweep's, as expected of models
# that see 200 batches: at fixed data, size buys less. Compare it with the exponent of the fit with $c$:
# five noisy points cannot pin down three parameters, and $c$ and $\alpha$ trade off against each other
# (a larger $c$ with a steeper fall fits almost as well). Real sweeps use many more sizes, train each to
# its own compute-optimal length, and still argue about the exponent, as section 4 showed.

# %% [markdown]
# ### Written question (2 points, graded by hand)
#
# (a) Why do the rounded constants ($\alpha = 0.34$, $\beta = 0.28$) move the compute-optimal model
# size at $2.21 \times 10^{19}$ FLOPs from about 389M to about 326M parameters, although the exponents
# changed by only 0.0008 and 0.0049? (b) With Epoch AI's constants, what does a budget ten times larger buy:
# how much bigger should the model be, how many more tokens should it read, and why is the answer
# not "ten times bigger"? Three to six sentences.

# %% [markdown] nbgrader={"grade": true, "grade_id": "scaling_question", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# (a) The optimum is $N_{opt} = G (C/6)^{\beta/(\alpha+\beta)}$, and at this budget $C/6 \approx
# 3.7 \times 10^{18}$, so $\ln(C/6) \approx 42.8$ multiplies any error in the exponent: rounding takes
# $\beta/(\alpha+\beta)$ from $0.2849/0.6241 = 0.4565$ to $0.28/0.62 = 0.4516$, a change of $0.0049$,
# which alone shrinks $N_{opt}$ by a factor $e^{-0.0049 \cdot 42.8} \approx 0.81$; $G$ moves it back
# up a little (1.30 to 1.34), and the net is about 326M instead of 389M. The exponents are small,
# uncertain numbers, and the budget is astronomically large, so the law's prediction is very
# sensitive to them.
# (b) With $\alpha = 0.348$, $\beta = 0.366$, $N_{opt} \propto C^{0.513}$ and $D_{opt} \propto C^{0.487}$:
# ten times the compute buys a model $10^{0.513} \approx 3.3$ times bigger trained on $10^{0.487}
# \approx 3.1$ times more tokens. Compute is the product $6ND$, so a tenfold budget is split between
# size and data, roughly evenly because $\alpha \approx \beta$; growing the model alone (Kaplan's
# advice) would leave it under-trained. The predicted loss falls only modestly, since both reducible
# terms shrink as small powers and $E$ does not shrink at all.

# %% [markdown]
# ## Summary
#
# - Parameters follow from the configuration: about $12d^2$ per block, plus the tables; GPT-2 small
#   124,439,808, BERT-base 109,482,240, GPT-3 174,604,259,328. Tied weights count once.
# - A token costs 2 FLOPs per multiplied weight forward plus $4 n_{layer} T d$ for attention, which
#   overtakes the weights at $T = 6d$; training costs about $6ND$, GPT-3 about $3.14 \times 10^{23}$.
# - Attention as written in 02 stores a $T \times T$ matrix per head; fused kernels do not, and are
#   faster for it.
# - Loss falls as a power law plus an irreducible loss; fit it in log space, with $c$.
# - The compute-optimal split is a closed form of the Chinchilla law; its answer is sensitive to the
#   exponents, and "20 tokens per parameter" holds at one budget, not all of them.
#
# **Next:** `09_clip`: the same blocks, looking at images and reading captions.
