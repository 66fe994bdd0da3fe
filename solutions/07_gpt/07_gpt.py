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
# # 07 · GPT: a decoder-only model, trained on text, sampled, and made fast with a KV cache
#
# Notebook 06 kept the encoder and trained it to fill in blanks. GPT (Radford et al. 2018, 2019)
# keeps a stack of the same blocks, makes every one of them **causal**, and trains it on the
# simplest objective there is: predict the next token. Everything a chatbot does is this model run
# in a loop, one token at a time.
#
# **Learning objectives.** You will
# - write causal self-attention and prove, numerically, that no position reads the future;
# - write the forward pass of a GPT-2-shaped model (nanoGPT's names: `n_layer`, `n_head`, `n_embd`,
#   `block_size`, `vocab_size`, `dropout`, `bias`) and match transformers' `GPT2LMHeadModel` after
#   copying its weights, `Conv1D` transposes included;
# - count GPT-2 small's 124,439,808 parameters without allocating a single weight;
# - write the shifted next-token loss, then train a character-level GPT on real text;
# - write greedy, temperature, top-k and top-p (nucleus) sampling;
# - write a key/value cache (keys and values appended per layer, and the causal mask offset for queries
#   that start at position `len(cache)`), and generation with it that gives exactly the tokens of full
#   recomputation; measure how much faster it is.
#
# **Prerequisites:** `02_attention` (masks), `03_multi_head_attention`, `04_positional_encoding`
# (learned positions), `05_transformer_blocks`
# (the blocks here are the course's `EncoderBlock`, the model answer of 05, run pre-LN and causal),
# `06_bert` (loading pretrained weights by name).
#
# **Estimated time:** about 2.5 hours. **Points:** 26 autograded (24 in 10 exercises, 2 for the model you
# train in section 6), plus 2 for a written answer graded by hand.
#
# **How to check your work:** each exercise has an answer cell (replace
# `raise NotImplementedError()` with your code) followed by a test cell. Run the test cell: a ✓ line
# means the visible check on a small worked example passed. When the notebook is graded, hidden
# tests run your code on fresh random inputs against transformers' `GPT2LMHeadModel` (weights
# re-initialised large enough that small mistakes show), check your samplers' distributions over
# tens of thousands of draws, and watch what your generation loop feeds the model. Each exercise
# says its difficulty and a rough time; hints open on demand. To see your grade on this machine, run
# `transformer-course check 07_gpt.ipynb` in a terminal.

# %%
import math
import time
from dataclasses import dataclass

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import tqdm as tqdm_package
from IPython.display import display
from tqdm.auto import tqdm

from transformer_course.blocks import EncoderBlock, LayerNorm
from transformer_course.corpus import CharTokenizer, load_corpus, train_val_split
from transformer_course.device import default_device
from transformer_course.gpt import hf_gpt2_config, train_gpt
from transformer_course.plots import plot_attention, plot_lines

np.set_printoptions(precision=4, suppress=True)
torch.manual_seed(0)
device = default_device()
if device.type == "cpu":
    # models this small gain little from more than two threads, and a laptop stays responsive
    torch.set_num_threads(min(2, torch.get_num_threads()))
tqdm_package.tqdm.monitor_interval = 0   # no background thread refreshing progress bars from outside the cell
print("device:", device)

# %% [markdown]
# ## 1. Causal self-attention
#
# A language model predicts token $t+1$ from tokens $0, \dots, t$. Trained on a whole sequence at
# once, position $t$ must therefore not see positions after it: the **causal mask** sets the score
# of every key $j > i$ to $-\infty$ before the softmax, so those weights are exactly 0:
#
# $$
# \mathrm{CausalAttn}(Q, K, V) = \mathrm{softmax}\!\left(\frac{QK^\top}{\sqrt{d_{\text{head}}}} + M\right)V,
# \qquad M_{ij} = \begin{cases} 0 & j \le i \\ -\infty & j > i \end{cases}
# $$
#
# The allowed entries form the **lower** triangle, diagonal included (a position may read itself;
# position 0 reads only itself). This is what lets one forward pass over $T$ tokens give $T$
# training signals, one per position, without any of them cheating.
#
# > **Common bug: the wrong triangle, or the diagonal excluded.** `torch.triu` instead of `tril`
# > lets every position read itself and the future, never the past; `tril(-1)` excludes the diagonal and leaves position 0
# > with nothing to attend to (a row of $-\infty$: NaN). And, as in notebook 02, build the mask with
# > `masked_fill(~allowed, float("-inf"))`: `(1 - mask) * -inf` gives $0 \cdot \infty$ = NaN.

# %% [markdown]
# ### Exercise 1: causal attention (2 points)
# *Difficulty: ★☆☆ · about 10 minutes*
#
# Write `causal_attention(q, k, v)` for tensors of shape $(B, h, T, d_{\text{head}})$, with plain
# torch operations (no `F.scaled_dot_product_attention` or the course's attention functions: the
# check compares yours with a plain reference and would learn nothing from itself). The
# hidden check also changes the inputs after position $t$ and verifies that your outputs up to $t$
# do not move.
#
# <details><summary>Hint 1</summary>
#
# Four steps: the scores $QK^\top$ of shape $(B, h, T, T)$, scaled by $1/\sqrt{d_{\text{head}}}$ (the size
# of the *last* axis of `q`, not $T$); the mask; the softmax over the keys (the last axis); the product
# with `v`. The mask is the same for every batch and head: one boolean $(T, T)$ matrix, made on
# `q.device`, broadcasts over both.
# </details>
#
# <details><summary>Hint 2</summary>
#
# In the worked example position 0 sees only itself, so its output is $v_0 = [1, 0]$. Position 1 has
# the scores $q_1 \cdot k_0 = 0$ and $q_1 \cdot k_1 = 2$, divided by $\sqrt 2$: weights
# $\mathrm{softmax}(0, 1.414) = (0.196, 0.804)$ and output $[0.196, 0.804]$. A first row of NaN means the
# diagonal is masked too, or the mask was built by multiplying with $-\infty$.
# </details>

# %% nbgrader={"grade": false, "grade_id": "causal_attention", "locked": false, "schema_version": 3, "solution": true, "task": false}
def causal_attention(q, k, v):
    """q, k, v: (B, h, T, d_head). Returns (B, h, T, d_head): position i attends to positions j <= i."""
    ### BEGIN SOLUTION
    T, d = q.shape[-2], q.shape[-1]
    scores = q @ k.transpose(-2, -1) / math.sqrt(d)                        # (B, h, T, T)
    allowed = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
    scores = scores.masked_fill(~allowed, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "causal_attention_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import gpt as check

check.causal_attention_example(causal_attention)
### BEGIN HIDDEN TESTS
check.causal_attention(causal_attention)
### END HIDDEN TESTS

# %% [markdown]
# The test that matters, done by hand: change the last token's query, key and value and watch which
# outputs move. Only the last row may change.

# %%
try:
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 1, 6, 4, generator=g) for _ in range(3))
    base = causal_attention(q, k, v)
    q2, k2, v2 = q.clone(), k.clone(), v.clone()
    for x in (q2, k2, v2):
        x[..., -1, :] += 10.0
    moved = (causal_attention(q2, k2, v2) - base).abs().amax(dim=-1)[0, 0]
    print("largest change of the output at each position:", moved.numpy())
    # with v = the identity matrix, each output row IS that position's attention weights
    weights = causal_attention(q, k, torch.eye(6)[None, None])[0, 0]
    words = ["the", "cat", "sat", "on", "the", "mat"]
    fig, ax = plot_attention(weights, words, words, title="Causal attention weights (random q, k): the lower triangle")
    plt.show()
except NotImplementedError:
    print("complete exercise 1 first")

# %% [markdown]
# ## 2. A GPT-2-shaped model
#
# GPT-2 (Radford et al. 2019) is a stack of pre-LN blocks (notebook 05) with causal self-attention,
# between an input and an output:
#
# 1. token embeddings `wte` ($V \times d$) plus **learned** absolute position embeddings `wpe`
#    (`block_size` $\times d$, notebook 04), then dropout;
# 2. `n_layer` blocks, each `x = x + attn(ln_1(x))` then `x = x + mlp(ln_2(x))`, with the MLP's
#    tanh-approximated GELU;
# 3. a final LayerNorm `ln_f` (a pre-LN stack's residual stream is never normalised otherwise) and
#    the language-model head `lm_head`, whose weight **is** `wte`'s (weight tying, Press & Wolf
#    2017): the same matrix reads tokens in and scores them out.
#
# The configuration uses nanoGPT's names (Karpathy 2022), whose defaults are GPT-2 small. The
# blocks are the course's `EncoderBlock`: called as `block(x, is_causal=True, kv_cache=...)`, its
# `MultiHeadAttention` applies the same causal mask as your exercise 1 (through PyTorch's fused kernel).
# nanoGPT pads the vocabulary to 50,304 for speed; this notebook keeps GPT-2's 50,257.

# %%
@dataclass
class GPTConfig:
    block_size: int = 1024      # the longest context: the number of learned positions
    vocab_size: int = 50257     # GPT-2's byte-pair vocabulary
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = True           # biases in the Linear layers and LayerNorms (GPT-2 has them)


# %% [markdown]
# ### Exercise 2: the forward pass (4 points)
# *Difficulty: ★★☆ · about 25 minutes*
#
# `__init__` is given: keep its names, since the checks copy `GPT2LMHeadModel`'s weights in by them.
# Write `forward(idx, targets=None, kv_caches=None)`:
#
# - positions: `past, past + 1, ..., past + T - 1`, where `past = len(kv_caches[0])` when caches are
#   given (section 6 uses them; they hold the earlier tokens) and 0 otherwise;
# - `x = drop(wte(idx) + wpe(positions))`, then each block as
#   `block(x, is_causal=True, kv_cache=kv_caches[i] if kv_caches is not None else None)`, then `ln_f`
#   and `lm_head`;
# - `targets` $(B, T)$ are the next tokens, already shifted by the caller: the loss is
#   `F.cross_entropy` over the flattened positions, ignoring targets equal to $-1$
#   (`ignore_index=-1`). Return `(logits, loss)`, with `loss = None` when `targets` is None.
#
# <details><summary>Hint 1</summary>
#
# Follow the list in order and keep the shapes in view: `idx` is $(B, T)$, `wte(idx)` is $(B, T, d)$,
# and `wpe` of a 1-D tensor of $T$ positions (`torch.arange`, on `idx.device`) is $(T, d)$, which
# broadcasts over the batch. Do not skip `ln_f`: a pre-LN stack never normalises its residual stream
# otherwise, and the worked example compares with GPT-2 itself.
# </details>
#
# <details><summary>Hint 2</summary>
#
# `F.cross_entropy` wants raw logits of shape $(N, V)$ and targets of shape $(N,)$: flatten $(B, T, V)$
# to $(BT, V)$ and $(B, T)$ to $(BT,)$ (given 3-D logits it reads axis 1 as the classes). With caches,
# a single new token after a 5-token prompt sits at position 5, not 0: restarting at 0 passes the
# one-pass comparison and fails the hidden cache check.
# </details>

# %% nbgrader={"grade": false, "grade_id": "gpt_forward", "locked": false, "schema_version": 3, "solution": true, "task": false}
class GPT(nn.Module):
    """A GPT-2-shaped language model: embeddings, n_layer causal pre-LN blocks, ln_f, a tied lm_head."""

    def __init__(self, config):
        super().__init__()
        self.config = c = config
        self.wte = nn.Embedding(c.vocab_size, c.n_embd)
        self.wpe = nn.Embedding(c.block_size, c.n_embd)
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList([
            EncoderBlock(c.n_embd, c.n_head, 4 * c.n_embd, dropout=c.dropout, activation="gelu_tanh",
                         norm_first=True, eps=1e-5, bias=c.bias)
            for _ in range(c.n_layer)])
        self.ln_f = LayerNorm(c.n_embd, 1e-5, bias=c.bias)
        self.lm_head = nn.Linear(c.n_embd, c.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight                 # weight tying: one matrix, two uses
        self.apply(self._init_weights)
        for name, p in self.named_parameters():       # GPT-2: the layers that write into the residual stream
            if name.endswith(("out_proj.weight", "fc2.weight")):      # start smaller, 0.02 / sqrt(2 n_layer)
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * c.n_layer))

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)

    def forward(self, idx, targets=None, kv_caches=None):
        """idx: (B, T) token ids; targets: None or (B, T) next tokens (-1 = ignore);
        kv_caches: None or one KVCache per block. Returns (logits (B, T, vocab_size), loss or None)."""
        ### BEGIN SOLUTION
        B, T = idx.shape
        past = len(kv_caches[0]) if kv_caches is not None else 0
        pos = torch.arange(past, past + T, device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(pos))                      # (B, T, n_embd)
        for i, block in enumerate(self.blocks):
            x = block(x, is_causal=True, kv_cache=kv_caches[i] if kv_caches is not None else None)
        logits = self.lm_head(self.ln_f(x))                               # (B, T, vocab_size)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(B * T, -1), targets.reshape(B * T), ignore_index=-1)
        return logits, loss
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "gpt_forward_test", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import gpt as check

check.gpt_forward_example(GPT, GPTConfig)
### BEGIN HIDDEN TESTS
check.gpt_forward(GPT, GPTConfig)
### END HIDDEN TESTS

# %% [markdown]
# ## 3. GPT-2's weights, and the `Conv1D` trap
#
# transformers' GPT-2 keeps OpenAI's original layout. Its linear layers are `Conv1D` modules
# whose weight is stored as $(d_{in}, d_{out})$, the **transpose** of `nn.Linear`'s
# $(d_{out}, d_{in})$, and its attention has one `c_attn` layer of width $3d$ that computes the query,
# key and value side by side:
#
# | GPT-2 (`transformer.h.N.`...) | course (`blocks.N.`...) | how |
# |---|---|---|
# | `ln_1`, `ln_2` | `norm1`, `norm2` | copy |
# | `attn.c_attn` $(d, 3d)$ | `self_attn.q_proj`, `k_proj`, `v_proj` | split along dim 1 into three, transpose each |
# | `attn.c_proj` $(d, d)$ | `self_attn.out_proj` | transpose |
# | `mlp.c_fc` $(d, 4d)$ | `ff.fc1` | transpose |
# | `mlp.c_proj` $(4d, d)$ | `ff.fc2` | transpose |
#
# plus `wte`, `wpe` and `ln_f`, which copy as they are (`lm_head` is `wte`).
#
# > **Common bug: a missing transpose on a square matrix.** `mlp.c_fc` is $(d, 4d)$: copied into
# > a $(4d, d)$ `Linear` without a transpose, it raises a shape error and you notice. `attn.c_proj`
# > is $d \times d$, and so are the three blocks that `c_attn` splits into for $W_Q$, $W_K$, $W_V$: each
# > loads silently, untransposed, and every output is wrong by about 0.3.

# %% [markdown]
# ### Exercise 3: load GPT-2's weights (3 points)
# *Difficulty: ★★☆ · about 25 minutes*
#
# Write `load_gpt2_weights(model, hf_model)`: copy every parameter of a transformers
# `GPT2LMHeadModel` into your `GPT` (same config) with `.copy_()` inside `torch.no_grad()` (so that
# `lm_head` stays tied to `wte`), and return `model`. `hf_model.transformer` holds `wte`, `wpe`,
# `h` (the blocks) and `ln_f`.
#
# <details><summary>Hint 1</summary>
#
# Walk the table row by row, one block of yours beside one block of `hf_model.transformer.h` at a
# time. Print a few shapes first: `attn.c_attn.weight` is $(d, 3d)$, your `q_proj.weight` is
# $(d_{out}, d_{in}) = (d, d)$. Every `Conv1D` weight goes in transposed; biases and LayerNorm parameters
# are 1-D and copy as they are (`ln_1` into `norm1`, `ln_2` into `norm2`).
# </details>
#
# <details><summary>Hint 2</summary>
#
# `c_attn`'s output axis (dim 1) holds $[W_q \,|\, W_k \,|\, W_v]$, $d$ columns each, in that order:
# split it into chunks of $d$ along dim 1 (`torch.split`), and its $(3d,)$ bias into chunks of $d$. Only
# the MLP's two matrices complain about a forgotten transpose: the three $(d, d)$ pieces of `c_attn`
# and `attn.c_proj` are square and load without an error, so check them against the table rather than
# waiting for one. Assigning a new `nn.Parameter` instead of `.copy_()` cuts the tie between `wte` and
# `lm_head`.
# </details>

# %% nbgrader={"grade": false, "grade_id": "load_gpt2_weights", "locked": false, "schema_version": 3, "solution": true, "task": false}
@torch.no_grad()
def load_gpt2_weights(model, hf_model):
    """Copy a transformers GPT2LMHeadModel into `model` (a GPT of the same config); returns `model`."""
    ### BEGIN SOLUTION
    t = hf_model.transformer
    d = model.config.n_embd
    model.wte.weight.copy_(t.wte.weight)
    model.wpe.weight.copy_(t.wpe.weight)

    def linear(mine, conv_weight, bias):
        mine.weight.copy_(conv_weight.T)                      # Conv1D (in, out) -> Linear (out, in)
        mine.bias.copy_(bias)

    for block, h in zip(model.blocks, t.h):
        for proj, w, b in zip((block.self_attn.q_proj, block.self_attn.k_proj, block.self_attn.v_proj),
                              h.attn.c_attn.weight.split(d, dim=1), h.attn.c_attn.bias.split(d)):
            linear(proj, w, b)
        linear(block.self_attn.out_proj, h.attn.c_proj.weight, h.attn.c_proj.bias)
        linear(block.ff.fc1, h.mlp.c_fc.weight, h.mlp.c_fc.bias)
        linear(block.ff.fc2, h.mlp.c_proj.weight, h.mlp.c_proj.bias)
        for mine, theirs in ((block.norm1, h.ln_1), (block.norm2, h.ln_2)):
            mine.weight.copy_(theirs.weight)
            mine.bias.copy_(theirs.bias)
    model.ln_f.weight.copy_(t.ln_f.weight)
    model.ln_f.bias.copy_(t.ln_f.bias)
    return model
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "load_gpt2_weights_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import gpt as check

check.load_gpt2_weights_example(load_gpt2_weights, GPT, GPTConfig)
### BEGIN HIDDEN TESTS
check.load_gpt2_weights(load_gpt2_weights, GPT, GPTConfig)
### END HIDDEN TESTS

# %% [markdown]
# Your model against transformers' on a small random GPT-2, in one forward pass over 20 tokens. The
# weights are re-initialised at standard deviation 0.3 (GPT-2's own 0.02 makes every layer so small
# that even a wrong GELU hides below $10^{-5}$), the way the hidden checks do.

# %%
from transformers import GPT2LMHeadModel

try:
    small_cfg = GPTConfig(block_size=32, vocab_size=100, n_layer=2, n_head=4, n_embd=64)
    torch.manual_seed(0)
    hf = GPT2LMHeadModel(hf_gpt2_config(small_cfg)).eval()
    with torch.no_grad():
        for name, p in hf.named_parameters():
            p.normal_(1.0 if name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")) else 0.0, 0.3)
    mine = load_gpt2_weights(GPT(small_cfg), hf).eval()
    idx = torch.randint(100, (2, 20))
    with torch.no_grad():
        diff = (mine(idx)[0] - hf(idx).logits).abs().max().item()
    print(f"largest difference between your logits and GPT2LMHeadModel's: {diff:.1e}")
except NotImplementedError:
    print("complete exercises 2 and 3 first")

# %% [markdown]
# ## 4. How many parameters?
#
# Per block: attention has $4d^2 + 4d$ (notebook 03), the MLP $8d^2 + 5d$, the two LayerNorms
# $4d$, so $12d^2 + 13d$. Around the blocks: $Vd$ for `wte` (and `lm_head`, the same tensor),
# `block_size`$\cdot d$ for `wpe`, $2d$ for `ln_f`. For GPT-2 small, $V = 50257$,
# `block_size` = 1024, $d = 768$, 12 layers: **124,439,808**, the "124M" of the model card.
#
# Counting does not need the weights. On PyTorch's **meta** device a tensor has a shape and a dtype
# but no storage, so `with torch.device("meta"): GPT(config)` builds GPT-2 small instantly, without
# 500 MB of random numbers.
#
# > **Common bug: counting the tied matrix twice.** `model.parameters()` yields a shared tensor once;
# > `model.state_dict()` lists it under both names (`wte.weight` and `lm_head.weight`), which
# > gives 163 million.

# %% [markdown]
# ### Exercise 4: count without allocating (2 points)
# *Difficulty: ★☆☆ · about 5 minutes*
#
# Build the model on the meta device and return the count as a Python `int`. The hidden check
# counts GPT-2 small too, and fails an answer that builds it with real tensors.
#
# <details><summary>Hint 1</summary>
#
# Two things, both named in the section above: the device to build on, and a way to visit every
# parameter exactly once. Of `parameters()` and `state_dict()`, which one lists the tied matrix once?
# A meta tensor has no values, but its `numel()` works.
# </details>
#
# <details><summary>Hint 2</summary>
#
# The worked example (vocabulary 10, block 4, one layer, $d = 2$) has 106 parameters: 20 for `wte`,
# 8 for `wpe`, $12 \cdot 2^2 + 13 \cdot 2 = 74$ for the block, 4 for `ln_f`. 126 means `lm_head` was counted
# a second time; 98 means `wpe` is missing.
# </details>

# %% nbgrader={"grade": false, "grade_id": "count_parameters", "locked": false, "schema_version": 3, "solution": true, "task": false}
def count_parameters(config):
    """The number of parameters of GPT(config), the tied lm_head/wte counted once, built on the meta device."""
    ### BEGIN SOLUTION
    with torch.device("meta"):
        model = GPT(config)
    return sum(p.numel() for p in model.parameters())
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "count_parameters_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import gpt as check

check.count_parameters_example(count_parameters, GPTConfig)
### BEGIN HIDDEN TESTS
check.count_parameters(count_parameters, GPTConfig)
### END HIDDEN TESTS

# %% [markdown]
# The GPT-2 family (Radford et al. 2019 list 117M, 345M, 762M and 1542M, counted differently; these
# are the sizes of the released checkpoints):

# %%
try:
    for name, (n_layer, n_embd, n_head) in {"small": (12, 768, 12), "medium": (24, 1024, 16),
                                             "large": (36, 1280, 20), "xl": (48, 1600, 25)}.items():
        n = count_parameters(GPTConfig(n_layer=n_layer, n_embd=n_embd, n_head=n_head))
        print(f"GPT-2 {name:6s} {n_layer:2d} layers x {n_embd:4d}: {n:>13,} parameters")
except NotImplementedError:
    print("complete exercise 4 first")

# %% [markdown]
# ## 5. The next-token loss
#
# The logits at position $t$ predict the token at $t + 1$. With a sequence `idx` of length $T$,
# the predictions are `logits[:, :-1]` (the last position predicts a token we do not have) and the
# answers are `idx[:, 1:]`:
#
# $$
# \mathcal{L} = -\frac{1}{B(T-1)} \sum_{b} \sum_{t=0}^{T-2} \log \mathrm{softmax}(z_{b,t})_{x_{b,t+1}} .
# $$
#
# > **Common bug: labels not shifted.** `F.cross_entropy(logits.reshape(-1, V), idx.reshape(-1))`
# > asks each position for its *own* token, which a model that can read position $t$ copies
# > trivially: a training loss near 0 and a model that has learned nothing about what comes next.

# %% [markdown]
# ### Exercise 5: the shifted loss (2 points)
# *Difficulty: ★☆☆ · about 5 minutes*
#
# <details><summary>Hint 1</summary>
#
# The logits at position $t$ are scored against the token at $t + 1$: one side loses its last
# position, the other its first, and both keep $T - 1$. Which side loses which?
# </details>
#
# <details><summary>Hint 2</summary>
#
# Flatten to $(B(T-1), V)$ and $(B(T-1),)$ for `F.cross_entropy` (raw logits, mean reduction; use
# `reshape`, since a slice is not contiguous and `view` may refuse). In the worked example `logits[0, t]`
# is 10 at index $t + 1$ and $-10$ elsewhere, so the right loss is $\log(1 + 4e^{-20})$, about
# $8 \times 10^{-9}$; the unshifted loss is about 15.4.
# </details>

# %% nbgrader={"grade": false, "grade_id": "next_token_loss", "locked": false, "schema_version": 3, "solution": true, "task": false}
def next_token_loss(logits, idx):
    """logits: (B, T, V) for the sequence idx: (B, T). Returns the mean cross-entropy of
    predicting idx[:, t + 1] from logits[:, t]."""
    ### BEGIN SOLUTION
    V = logits.shape[-1]
    return F.cross_entropy(logits[:, :-1].reshape(-1, V), idx[:, 1:].reshape(-1))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "next_token_loss_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import gpt as check

check.next_token_loss_example(next_token_loss)
### BEGIN HIDDEN TESTS
check.next_token_loss(next_token_loss)
### END HIDDEN TESTS

# %% [markdown]
# The training loop below hands `forward` targets that are already shifted (`y` is `x` moved one
# step left), so the loss inside `forward` is your `next_token_loss` in another form:

# %%
try:
    tiny = GPT(GPTConfig(block_size=16, vocab_size=20, n_layer=1, n_head=2, n_embd=16)).eval()
    x = torch.randint(20, (2, 16), generator=torch.Generator().manual_seed(0))
    targets = torch.full_like(x, -1)                 # the last position has no next token: ignored
    targets[:, :-1] = x[:, 1:]
    with torch.no_grad():
        logits, loss = tiny(x, targets)
    print(f"next_token_loss(logits, x) = {next_token_loss(logits, x).item():.6f}")
    print(f"forward(x, shifted targets) = {loss.item():.6f}")
except NotImplementedError:
    print("complete exercises 2 and 5 first")

# %% [markdown]
# ## 6. Training a character-level GPT
#
# The corpus is **Tiny Shakespeare** (1.1 million characters of the plays, from Karpathy's
# char-rnn): downloaded once into a cache and checked against its SHA-256 checksum. Offline, the
# course falls back to text every Python installation has: the docstrings of the standard library.
# The tokenizer is one id per character; the first 90% of the text is for training, the last 10%
# for validation.
#
# The model is nanoGPT's CPU recipe at under a third of its length: 4 layers, 4 heads, 128 wide, a
# context of 64 characters, batches of 12, AdamW with a warm-up and cosine decay
# (`transformer_course.gpt.train_gpt`, which calls your `forward` with inputs and next-token
# targets). 600 steps take about 40 seconds on a laptop CPU; nanoGPT's 2,000 bring the validation
# loss on Tiny Shakespeare to about 1.89.

# %%
text, corpus_name = load_corpus()
tokenizer = CharTokenizer(text)
ids = torch.tensor(tokenizer.encode(text), dtype=torch.long)
train_ids, val_ids = train_val_split(ids)
corpus_title = {"tinyshakespeare": "Tiny Shakespeare", "offline": "standard-library docstrings"}[corpus_name]
default_prompt = "ROMEO:\n" if corpus_name == "tinyshakespeare" else "Return the "
print(f"corpus: {corpus_title}, {len(text):,} characters, {tokenizer.vocab_size} distinct")
print(repr(text[:300]))

# %%
char_config = GPTConfig(block_size=64, vocab_size=tokenizer.vocab_size, n_layer=4, n_head=4, n_embd=128, dropout=0.0)
char_model = None
try:
    torch.manual_seed(0)
    model = GPT(char_config).to(device)
    start = time.perf_counter()
    history = train_gpt(model, train_ids, val_ids, iters=600, batch_size=12, lr=1e-3, min_lr=1e-4, warmup=50,
                        eval_every=100, eval_iters=10, generator=torch.Generator().manual_seed(0))
    print(f"trained in {time.perf_counter() - start:.0f} s; validation loss {history['val'][-1]:.3f} nats per character")
    char_model = model
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(history["loss"], alpha=0.4, label="training batch")
    ax.plot(history["step"], history["train"], "o-", label="training text (mean of 10 batches)")
    ax.plot(history["step"], history["val"], "s-", label="validation text (mean of 10 batches)")
    ax.set_xlabel("training step")
    ax.set_ylabel("cross-entropy (nats per character)")
    ax.set_title(f"Character-level GPT on {corpus_title}: 4 layers x 128")
    ax.legend()
    plt.show()
except NotImplementedError:
    print("complete exercise 2 first")

# %% [markdown]
# The test below is graded (2 points): your trained model must score below 2.5 nats per character
# on fixed windows of the validation text (a model that knows only how often each character
# occurs scores about 3.3).

# %% nbgrader={"grade": true, "grade_id": "trained_gpt_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import gpt as check

check.trained_gpt(char_model, corpus_name)
### BEGIN HIDDEN TESTS
check.trained_gpt(char_model, corpus_name, max_loss=2.5)
### END HIDDEN TESTS

# %% [markdown]
# ## 7. Choosing the next token
#
# The model gives a distribution over the next token; a **decoding strategy** picks one.
#
# - **Greedy**: the most likely token. Deterministic, and prone to loops.
# - **Temperature** $\tau$: sample from $\mathrm{softmax}(z / \tau)$. $\tau < 1$ sharpens the
#   distribution towards greedy, $\tau > 1$ flattens it towards uniform.
# - **Top-k** (Fan et al. 2018): keep the $k$ most likely tokens, renormalise, sample.
# - **Top-p**, or nucleus sampling (Holtzman et al. 2020): keep the smallest set of most likely
#   tokens whose probabilities add up to at least $p$. Where the model is sure, that is one or two
#   tokens; where it is not, many.
#
# Filters work on **logits**: a removed token's logit becomes $-\infty$, so the softmax gives it
# probability 0 and renormalises the others. The order is temperature, then top-k, then top-p, then
# the draw.
#
# > **Common bug: softmax without the max shift** (notebook 02) is the classic, but `torch.softmax`
# > shifts for you. The bug that survives here is filling removed logits with 0 instead of $-\infty$:
# > $e^0 = 1$, so every "removed" token keeps a real probability.

# %% [markdown]
# ### Exercise 6: top-k (1 point)
# *Difficulty: ★☆☆ · about 5 minutes*
#
# The $k$-th largest logit of each row (`torch.topk(logits, k).values[..., -1:]`) is the threshold:
# logits below it become $-\infty$, and any tied with it stay. Return a new tensor.
#
# <details><summary>Hint 1</summary>
#
# Keep the last axis of the threshold, shape $(B, 1)$, so that comparing it with the $(B, V)$ logits
# broadcasts row by row. `masked_fill` and `torch.where` return new tensors; an assignment into
# `logits[...]` changes the caller's tensor, which the check catches.
# </details>
#
# <details><summary>Hint 2</summary>
#
# Worked example: logits $[1, 3, 0.5, 2, -1]$ with $k = 2$ have the threshold 2, and the answer is
# $[-\infty, 3, -\infty, 2, -\infty]$. Fill with `float("-inf")`, never 0: $e^0 = 1$ keeps a "removed"
# token in the draw.
# </details>

# %% nbgrader={"grade": false, "grade_id": "top_k_filter", "locked": false, "schema_version": 3, "solution": true, "task": false}
def top_k_filter(logits, k):
    """logits: (B, V). Keep the k largest logits of each row (ties with the k-th too); the others -> -inf.
    Return a new tensor (do not modify `logits`)."""
    ### BEGIN SOLUTION
    kth = torch.topk(logits, min(k, logits.shape[-1]), dim=-1).values[..., -1:]     # (B, 1)
    return logits.masked_fill(logits < kth, float("-inf"))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "top_k_filter_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import gpt as check

check.top_k_filter_example(top_k_filter)
### BEGIN HIDDEN TESTS
check.top_k_filter(top_k_filter)
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 7: top-p (2 points)
# *Difficulty: ★★☆ · about 20 minutes*
#
# Sort the probabilities in descending order and take their cumulative sum. A token is **removed**
# when the tokens before it already hold at least $p$ (cumulative sum minus its own probability
# $\ge p$); so the token that carries the sum past $p$ stays, and the most likely token always stays.
# Put the mask back into vocabulary order (`scatter` with the sort's indices) before applying it.
#
# <details><summary>Hint 1</summary>
#
# `torch.sort(..., descending=True)` gives the sorted logits and the indices that sorted them; the
# probabilities are the softmax of the sorted logits, and `torch.cumsum` along the last axis gives the
# running sum. Decide what to remove in sorted order, where the rule is one comparison, then map back.
# </details>
#
# <details><summary>Hint 2</summary>
#
# Worked example, probabilities $[0.1, 0.5, 0.05, 0.3, 0.05]$, $p = 0.7$: sorted
# $0.5, 0.3, 0.1, 0.05, 0.05$; running sums $0.5, 0.8, 0.9, 0.95, 1.0$; mass *before* each token
# $0, 0.5, 0.8, 0.9, 0.95$. The last three reach 0.7 and go; tokens 1 and 3 stay. Comparing the
# running sum itself with $p$ would also drop the 0.3 that crosses $p$. To map back, scatter the
# sorted mask into a boolean tensor of `False` along the last axis, with the sort's indices as the
# index: entry $i$ lands at the vocabulary position named by the $i$-th sort index.
# </details>

# %% nbgrader={"grade": false, "grade_id": "top_p_filter", "locked": false, "schema_version": 3, "solution": true, "task": false}
def top_p_filter(logits, p):
    """logits: (B, V). Keep the smallest set of most likely tokens whose probability sum is >= p;
    the others -> -inf. Return a new tensor."""
    ### BEGIN SOLUTION
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probs = torch.softmax(sorted_logits, dim=-1)
    remove_sorted = (torch.cumsum(probs, dim=-1) - probs) >= p
    remove_sorted[..., 0] = False
    remove = torch.zeros_like(remove_sorted).scatter(-1, order, remove_sorted)
    return logits.masked_fill(remove, float("-inf"))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "top_p_filter_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import gpt as check

check.top_p_filter_example(top_p_filter)
### BEGIN HIDDEN TESTS
check.top_p_filter(top_p_filter)
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 8: draw the next token (2 points)
# *Difficulty: ★☆☆ · about 10 minutes*
#
# Write `sample_next`: `temperature == 0` is greedy (`argmax`); otherwise divide the logits by the
# temperature, apply your `top_k_filter` and `top_p_filter` when asked, and draw with
# `torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)`. The hidden check draws
# tens of thousands of tokens with fixed seeds and compares their frequencies with the distribution
# they should follow.
#
# <details><summary>Hint 1</summary>
#
# Mind the order: handle `temperature == 0` first (so nothing is divided by 0), then the temperature,
# then top-k, then top-p, then the softmax and the draw. Pass `generator` on to `torch.multinomial`, or
# two identically seeded runs draw different tokens.
# </details>
#
# <details><summary>Hint 2</summary>
#
# The temperature divides the *logits*: $\mathrm{softmax}(z/\tau)_i \propto p_i^{1/\tau}$, so at $\tau = 0.5$
# (the worked example) each token's probability becomes proportional to the square of its old one.
# Dividing the probabilities instead changes nothing after renormalisation. `torch.multinomial(probs, 1)`
# returns $(B, 1)$; the answer is $(B,)$.
# </details>

# %% nbgrader={"grade": false, "grade_id": "sample_next", "locked": false, "schema_version": 3, "solution": true, "task": false}
def sample_next(logits, *, temperature=1.0, top_k=None, top_p=None, generator=None):
    """logits: (B, V) for the next token. Returns (B,) token ids (int64)."""
    ### BEGIN SOLUTION
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits / temperature
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    return torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator).squeeze(-1)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "sample_next_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import gpt as check

check.sample_next_example(sample_next)
### BEGIN HIDDEN TESTS
check.sample_next(sample_next)
### END HIDDEN TESTS

# %% [markdown]
# What the knobs do to your trained model's next-character distribution. Type a prompt: the bars
# are the probabilities of the 20 most likely next characters, before (grey) and after (blue) the
# temperature and filters, and below is text sampled with those settings.

# %%
def show_sampling(prompt=default_prompt, temperature=1.0, top_k=0, top_p=1.0, seed=0):
    if char_model is None:
        print("train the model in section 6 first")
        return
    try:
        prompt = "".join(ch for ch in prompt if ch in tokenizer.stoi) or "\n"
        idx = torch.tensor([tokenizer.encode(prompt)[-char_config.block_size:]], device=device)
        with torch.no_grad():
            logits = char_model(idx)[0][:, -1, :].float().cpu()
        z = logits / max(temperature, 1e-6)
        if top_k:
            z = top_k_filter(z, top_k)
        if top_p < 1.0:
            z = top_p_filter(z, top_p)
    except NotImplementedError:
        print("complete exercises 6 and 7 first")
        return
    before, after = torch.softmax(logits, -1)[0], torch.softmax(z, -1)[0]
    top = torch.argsort(before, descending=True)[:20]
    labels = [{" ": "space", "\n": "newline"}.get(tokenizer.itos[i], tokenizer.itos[i]) for i in top.tolist()]
    fig, ax = plt.subplots(figsize=(9, 3))
    x = np.arange(len(top))
    ax.bar(x - 0.2, before[top].numpy(), width=0.4, color="grey", label="model (temperature 1)")
    ax.bar(x + 0.2, after[top].numpy(), width=0.4, color="C0", label="after temperature and filters")
    ax.set_xticks(x, labels, rotation=45)
    ax.set_xlabel("next character")
    ax.set_ylabel("probability")
    ax.set_title(f"Next character after {prompt[-20:]!r}")
    ax.legend()
    plt.show()
    try:
        # 200 characters outgrow the 64 learned positions: recompute over the last 64 at every step
        out = generate(char_model, idx, 200, temperature=temperature, top_k=top_k or None,
                       top_p=top_p if top_p < 1.0 else None, use_cache=False,
                       generator=torch.Generator(device=idx.device).manual_seed(seed))
        print(tokenizer.decode(out[0].tolist()))
    except (NotImplementedError, NameError):
        print("(sampled text appears once exercises 8 and 9 are done)")


# %% [markdown]
# ## 8. Generation, and the key/value cache
#
# Generating $n$ tokens runs the model $n$ times. Without a cache, step $s$ feeds the whole
# sequence so far: the keys and values of every earlier token are recomputed, although they have not
# changed (a causal model's earlier positions never depend on later ones). A **KV cache** keeps, for
# every layer, the keys and values computed so far: the first call feeds the prompt and fills the
# caches; every later call feeds **only the newest token**, whose query attends to all the cached
# keys. The embeddings, projections and MLP of a step then process one position instead of $T$; the
# attention itself still reads all $T$ cached keys and values, so its part of the work still grows
# with $T$, but it is a small part at these sizes.
#
# You write the cache next. One `KVCache()` per block goes into `model(idx, kv_caches=caches)`; the
# course's attention layer hands each call's new keys and values to its block's cache with
# `update(k, v)` and attends over what `update` returns, and your `forward` starts the positions at
# `len(kv_caches[0])`. When a call feeds fewer queries than there are keys (a single new token against
# the whole cache), the plain causal triangle is wrong, and the layer asks the cache for the right mask,
# `causal_mask(n_q)`: the $n_q$ new queries are the **last** $n_q$ positions, so query $i$ sits at
# position $n_k - n_q + i$ and may see the keys $j \le n_k - n_q + i$.
#
# > **Common bug: a cache fed the whole sequence.** Creating the caches but feeding the whole
# > sequence every step appends the old tokens to the cache again, and the outputs go wrong; feeding
# > the right single token but restarting its position at 0 gives plausible, wrong text.


# %%
from transformer_course import diagrams

diagrams.gpt_stack()
plt.show()

# %% [markdown]
# ### Exercise 9: the key/value cache (3 points)
# *Difficulty: ★★☆ · about 15 minutes*
#
# Complete `KVCache`, the cache of one attention layer:
# - `update(k, v)`: `k` and `v` are $(B, h, t_\text{new}, d_\text{head})$, the positions fed in this call.
#   Append them to what the cache holds and return **all** keys and **all** values so far,
#   $(B, h, T_\text{so far}, d_\text{head})$ each.
# - `len(cache)`: the number of positions held (0 for a new cache).
# - `causal_mask(n_q, device=None)`: called after `update`, the boolean $(n_q, \text{len})$ mask of the
#   $n_q$ newest queries against every cached key, `True` where attention is allowed.
#
# The test checks a prompt of 3 positions and then single tokens, random chunk sizes, and then your cache
# inside the course's GPT: a prompt, single tokens and a chunk of three must give the logits of
# recomputing the whole sequence.
#
# <details><summary>Hint 1</summary>
#
# Keep the keys and values as two tensors (`None` before the first update). The positions are the
# time axis, dim $-2$; what `update` returns is what the new queries attend to, so it must include the
# earlier positions.
# </details>
#
# <details><summary>Hint 2</summary>
#
# The mask for a prompt of $T$ positions (nothing cached before) is the usual $T \times T$ lower triangle;
# for one new token after $T - 1$ cached ones it is a single row of $T$ `True`s. Both are a lower triangle
# shifted right by the number of earlier positions, $n_k - n_q$: `torch.tril` takes that shift as an argument.
# </details>

# %% nbgrader={"grade": false, "grade_id": "kv_cache", "locked": false, "schema_version": 3, "solution": true, "task": false}
class KVCache:
    """Keys and values of the positions seen so far, for one attention layer."""

    def __init__(self):
        self.k = None       # (B, h, positions so far, d_head); None before the first update
        self.v = None

    def __len__(self):
        """The number of positions held."""
        ### BEGIN SOLUTION
        return 0 if self.k is None else self.k.shape[-2]
        ### END SOLUTION

    def update(self, k, v):
        """Append this call's k, v (B, h, t_new, d_head); return (all keys, all values) so far."""
        ### BEGIN SOLUTION
        if self.k is None:
            self.k, self.v = k, v
        else:
            self.k = torch.cat([self.k, k], dim=-2)
            self.v = torch.cat([self.v, v], dim=-2)
        return self.k, self.v
        ### END SOLUTION

    def causal_mask(self, n_q, device=None):
        """(n_q, len(self)) boolean: True where each of the n_q newest queries may attend."""
        ### BEGIN SOLUTION
        n_k = len(self)
        return torch.ones(n_q, n_k, dtype=torch.bool, device=device).tril(diagonal=n_k - n_q)
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "kv_cache_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import gpt as check

check.kv_cache_example(KVCache)
### BEGIN HIDDEN TESTS
check.kv_cache(KVCache)
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 10: generate, with and without the cache (3 points)
# *Difficulty: ★★☆ · about 25 minutes*
#
# Write `generate(model, idx, max_new_tokens, ...)`. Each step takes the logits of the **last**
# position and calls your `sample_next`. With `use_cache=False`, run the model on the whole sequence
# each step (cropped to its last `model.config.block_size` tokens). With `use_cache=True`, create one
# `KVCache()` (yours, from exercise 9) per layer, feed the prompt once, then one token per step. (Once the sequence is longer
# than `block_size` the learned positions run out; the check never asks for that.) Run under
# `torch.no_grad()` and return the prompt followed by the new tokens, $(B, T + n)$.
#
# <details><summary>Hint 1</summary>
#
# Write the loop without the cache first. The model returns a pair `(logits, loss)`; the next token
# comes from the $(B, V)$ logits of the last position; `sample_next` gets the same keyword arguments
# (`generator` included) and returns $(B,)$, which needs a time axis, $(B, 1)$, before `torch.cat` along
# dim 1 can append it.
# </details>
#
# <details><summary>Hint 2</summary>
#
# With the cache, the list of `KVCache()` objects is made once, before the loop, and the same list goes
# into every call. The first call gets the whole prompt, $(B, T)$; every later call only the newest
# token, sliced so that it stays $(B, 1)$. The worked example (a 3-token prompt, 6 new tokens) must
# call the model with lengths 3, 1, 1, 1, 1, 1 and give exactly the tokens of the loop without the
# cache.
# </details>

# %% nbgrader={"grade": false, "grade_id": "generate", "locked": false, "schema_version": 3, "solution": true, "task": false}
@torch.no_grad()
def generate(model, idx, max_new_tokens, *, temperature=1.0, top_k=None, top_p=None, use_cache=True,
             generator=None):
    """Append max_new_tokens tokens to idx (B, T), one at a time. Returns (B, T + max_new_tokens)."""
    ### BEGIN SOLUTION
    caches = [KVCache() for _ in range(model.config.n_layer)] if use_cache else None
    for step in range(max_new_tokens):
        if use_cache:
            logits, _ = model(idx if step == 0 else idx[:, -1:], kv_caches=caches)
        else:
            logits, _ = model(idx[:, -model.config.block_size:])
        nxt = sample_next(logits[:, -1, :], temperature=temperature, top_k=top_k, top_p=top_p, generator=generator)
        idx = torch.cat([idx, nxt[:, None].to(idx.dtype)], dim=1)
    return idx
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "generate_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import gpt as check

check.generate_example(generate)
### BEGIN HIDDEN TESTS
check.generate(generate)
### END HIDDEN TESTS

# %% [markdown]
# Your trained model, sampled with your code. Move the knobs: temperature 0 is greedy (watch it
# loop), high temperatures fall apart into random characters, and top-p keeps the text readable at
# temperatures where plain sampling does not.

# %%
show_sampling()                   # the defaults; the explorer below changes them
widgets.interact(show_sampling,
                 prompt=widgets.Text(value=default_prompt, description="prompt", continuous_update=False),
                 temperature=widgets.FloatSlider(value=1.0, min=0.0, max=2.0, step=0.1, description="temperature"),
                 top_k=widgets.IntSlider(value=0, min=0, max=40, description="top-k (0: off)"),
                 top_p=widgets.FloatSlider(value=1.0, min=0.05, max=1.0, step=0.05, description="top-p"),
                 seed=widgets.IntSlider(value=0, min=0, max=20, description="seed"));

# %% [markdown]
# How much the cache saves, measured: a random model of 4 layers, 256 wide and vocabulary 65, with
# room for 512 positions, generating greedily after a 16-token prompt. Both runs must produce the
# same tokens; the time without the cache grows with the square of the length, with it nearly
# linearly (each step's attention over the cache still grows with the length, but at these sizes the
# per-token projections and MLP dominate).
# (The speed is shown here, not graded: the graded check verifies what makes it fast, one token per
# call after the prompt. On the 2-core machine this course is developed on, 256 tokens are 7 to 13
# times faster with the cache, depending on the number of threads.)

# %%
try:
    bench_model = GPT(GPTConfig(block_size=512, vocab_size=65, n_layer=4, n_head=4, n_embd=256)).to(device).eval()
    prompt = torch.randint(65, (1, 16), generator=torch.Generator().manual_seed(0)).to(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)   # GPU work is asynchronous
    generate(bench_model, prompt, 8, temperature=0)                                # warm-up
    lengths, times = [64, 128, 256], {"recompute": [], "KV cache": []}
    for n in tqdm(lengths, desc="timing generation"):
        outs = {}
        for name, use_cache in (("recompute", False), ("KV cache", True)):
            sync()
            start = time.perf_counter()
            outs[name] = generate(bench_model, prompt, n, temperature=0, use_cache=use_cache)
            sync()
            times[name].append(time.perf_counter() - start)
        assert torch.equal(outs["recompute"], outs["KV cache"]), "the cache changed the generated tokens"
    for n, a, b in zip(lengths, times["recompute"], times["KV cache"]):
        print(f"{n:4d} new tokens: recompute {a:.2f} s, KV cache {b:.2f} s: {a / b:.1f}x faster (same tokens)")
    fig, ax = plot_lines(lengths, times, xlabel="new tokens", ylabel="generation time (s)",
                         title="Greedy generation, 4 layers x 256: recompute against the KV cache")
    plt.show()
except (NotImplementedError, NameError) as exc:
    print(f"complete exercises 2, 8 and 9 first ({exc})")

# %% [markdown]
# ### Written question (2 points, graded by hand)
#
# (a) A KV cache makes generation faster, but nobody uses one to train. Why does training gain
# nothing from it? (b) What does the cache cost, and how does that cost grow with the context length,
# the number of layers and the batch size? Three to six sentences.

# %% [markdown] nbgrader={"grade": true, "grade_id": "kv_cache_question", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# (a) In training the whole sequence is known in advance, so one forward pass with the causal mask
# computes the keys, values and predictions of all T positions at once, each exactly once: there is
# nothing recomputed for a cache to save. Generation is different because tokens arrive one at a
# time; without a cache step s recomputes the keys and values of all s earlier tokens, which never
# change in a causal model.
# (b) Memory: the cache stores a key and a value vector per token, per layer (and per head), so its
# size is 2 x n_layer x T x d_model numbers per sequence, growing linearly with the context length,
# the number of layers and the batch size; for long contexts and large batches it can exceed the
# memory of the weights themselves, which is why inference systems manage it carefully (multi-query
# attention and paged caches exist to shrink it). The compute per step still grows with T, since the new
# query attends to every cached key.

# %% [markdown]
# ## Summary
#
# - A decoder-only model is a stack of causal pre-LN blocks between token + position embeddings and
#   a head tied to the token embeddings.
# - The causal mask (lower triangle, diagonal included) lets one pass over $T$ tokens train $T$
#   next-token predictions without leaks; the loss compares `logits[:, :-1]` with `idx[:, 1:]`.
# - GPT-2's `Conv1D` weights are the transpose of `nn.Linear`'s; the square `c_proj` loads silently
#   when you forget.
# - GPT-2 small has 124,439,808 parameters, countable on the meta device without allocating any.
# - Decoding: greedy, temperature, top-k and top-p all act on the logits before one draw.
# - A KV cache feeds one token per step and gives the same tokens, 7 to 13 times faster for 256
#   tokens on a 2-core CPU.
#
# **Next:** `08_scaling`: what grows when models grow, what it costs, and how to spend a compute
# budget.
