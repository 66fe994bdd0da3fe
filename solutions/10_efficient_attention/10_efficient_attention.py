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
# # 10 · Efficient attention: why it is memory-bound, and how GPUs make it fast
#
# Every notebook since 02 computed attention the same way: the whole $(n_q, n_k)$ matrix of scores,
# a softmax over it, then the weighted sum of values. Notebook 08 measured what that costs: time and
# memory growing with $T^2$. Yet `scaled_dot_product_attention` was several times faster and its
# memory grew only linearly. This notebook opens that box. Why is the plain version slow even though its
# arithmetic is the same? How can a softmax be computed without ever seeing a whole row? And what does
# a GPU kernel that does all this look like?
#
# **Learning objectives.** You will
# - count the bytes attention moves against the FLOPs it does, and see why the plain version is
#   limited by memory bandwidth, not arithmetic (arithmetic intensity, the roofline);
# - compute a softmax in one pass over blocks with a running maximum and a rescaled running sum
#   (the *online softmax*);
# - write FlashAttention's forward pass in torch: tiles of queries against tiles of keys, never the
#   whole score matrix, returning the output and the log-sum-exp;
# - write its backward pass by recomputation from the log-sum-exp, and match autograd;
# - read and run a Triton kernel of the same algorithm (under Triton's interpreter on a CPU, compiled on
#   a GPU);
# - time naive, tiled, fused and Triton attention on your own machine, and measure what bfloat16 and
#   float16 cost in accuracy and buy in speed.
#
# **Prerequisites:** `02_attention` (scaled dot-product attention, the stable softmax),
# `03_multi_head_attention` (the `(B, H, T, d)` layout), `07_gpt` (causal masks), `08_scaling`
# (attention's $T^2$ in time and memory).
#
# **Estimated time:** about 2 hours. **Points:** 12 autograded in 3 exercises, plus 2 for a written
# answer graded by hand.
#
# **Which cells need a GPU:** none. On a CPU everything runs (in about a minute on two cores); the Triton
# kernel runs under Triton's interpreter, which checks correctness, not speed. The cells marked
# **[GPU]** show real speed only on an NVIDIA GPU: the compiled Triton kernel and the bfloat16 speed-up.
#
# **How to check your work:** each exercise has an answer cell (replace `raise NotImplementedError()`
# with your code) followed by a test cell. Run the test cell: a ✓ line means the visible check (a small
# case worked by hand) passed. When the notebook is graded, hidden tests compare your functions with
# torch's softmax, `scaled_dot_product_attention`, `logsumexp` and autograd on random shapes and tile
# sizes, and watch every tensor your code creates: a "tiled" answer that builds the whole score matrix
# does not pass. Each exercise says its difficulty and a rough time; hints open on demand. To see your
# grade, run `transformer-course check 10_efficient_attention.ipynb` in a terminal.

# %%
import os

import torch

# Triton (section 5) decides when it is first imported whether it compiles for a GPU or runs its
# interpreter on the CPU: without a GPU, ask for the interpreter before anything imports it.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import math
import time

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch.nn.functional as F
import tqdm as tqdm_package
from matplotlib.patches import Patch
from tqdm.auto import tqdm

from transformer_course import kernels
from transformer_course.device import default_device, mixed_precision
from transformer_course.plots import plain_log_ticks

torch.manual_seed(0)
device = default_device()
if device.type == "cpu":
    torch.set_num_threads(min(2, torch.get_num_threads()))
tqdm_package.tqdm.monitor_interval = 0   # no background thread refreshing progress bars from outside the cell
print("device:", device, "| Triton:", "installed" if kernels.triton_available() else "not installed",
      "(interpreter)" if kernels.TRITON_INTERPRET else "")

# %% [markdown]
# ## 1. Attention is limited by memory, not arithmetic
#
# A processor does two things: arithmetic, and moving data between its memory and its cores. An NVIDIA
# H100 SXM does about $989 \times 10^{12}$ bfloat16 FLOP/s in its tensor cores but reads and writes its
# main memory (HBM3) at about $3.35 \times 10^{12}$ bytes/s (NVIDIA's H100 datasheet). To keep the
# arithmetic busy, a computation must do about $989 / 3.35 \approx 295$ FLOPs for every byte it moves.
# That ratio, **FLOPs per byte**, is a computation's *arithmetic intensity* $I$; the machine's ratio of
# peak FLOP/s to bandwidth is its *ridge point*. Below the ridge a computation is **memory-bound**: its
# time is bytes / bandwidth, and faster arithmetic would not help. This is the *roofline* model
# (Williams, Waterman and Patterson 2009):
#
# $$\text{time} \ge \max\left(\frac{\text{FLOPs}}{\text{peak FLOP/s}},\; \frac{\text{bytes}}{\text{bandwidth}}\right).$$
#
# A matrix product of two $n \times n$ matrices does $2n^3$ FLOPs and moves at least $3n^2$ numbers, so its
# intensity grows with $n$: large matrix products are compute-bound, which is why GPUs are fast at them.
# Attention, done plainly for one head with $T$ positions of size $d$ and $b$ bytes per number:
#
# | step | reads | writes | FLOPs |
# |---|---|---|---|
# | $S = QK^\top / \sqrt d$ | $Q, K$: $2Td$ | $S$: $T^2$ | $2T^2 d$ |
# | $P = \mathrm{softmax}(S)$ | $T^2$ | $T^2$ | about $5T^2$ |
# | $O = PV$ | $P, V$: $T^2 + Td$ | $O$: $Td$ | $2T^2 d$ |
#
# That is about $4T^2 d$ FLOPs for $(4T^2 + 4Td)\,b$ bytes: for $T \gg d$ the intensity is about $d / b$,
# **32 FLOP/byte** for $d = 64$ in bfloat16, a ninth of the H100's ridge. The plain version spends most of
# its time writing and reading the $T \times T$ matrices, not multiplying.
#
# FlashAttention (Dao et al. 2022; in the form taught here, FlashAttention-2, Dao 2023) keeps each tile of
# $S$ and $P$ in the chip's on-chip memory (SRAM, about 228 KB per streaming multiprocessor on an H100) and
# never writes them out. It reads $Q$ and writes $O$ once, and reads $K$ and $V$ once per tile of $B_q$
# queries: about $2Td + 2Td \cdot T / B_q$ numbers, an intensity of about $2 B_q / b$ for large $T$:
# 128 FLOP/byte with $B_q = 128$ in bfloat16, four times the plain version's, and its memory use is linear
# in $T$. That is still below the H100's ridge by this count, but the count is an upper bound: query tiles
# that run at the same time read the same $K$ and $V$ tiles, which the 50 MB L2 cache serves after the
# first read, so the main-memory traffic is lower, and tuned kernels reach a large share of the peak
# (FlashAttention-3 reports about 75% of an H100's, Shah et al. 2024).

# %%
PEAKS = {  # (peak FLOP/s, memory bandwidth in bytes/s), dense
    "H100 SXM (bf16 tensor cores)": (989e12, 3.35e12),     # NVIDIA's H100 datasheet
    "laptop CPU (fp32, 4 cores)": (0.5e12, 60e9),          # a typical figure, not a published one
}


def attention_traffic(T, d, bytes_per, block_q=128):
    """FLOPs and bytes moved for one head of attention, plain and tiled (FlashAttention)."""
    flops = 4 * T * T * d
    plain = (4 * T * T + 4 * T * d) * bytes_per
    tiled = (2 * T * d + 2 * T * d * math.ceil(T / block_q)) * bytes_per
    return flops, plain, tiled


Ts = np.array([256, 512, 1024, 2048, 4096, 8192, 16384, 32768])
fig, ax = plt.subplots(figsize=(7, 4))
for d, style in ((64, "-"), (128, "--")):
    traffic = [attention_traffic(T, d, 2) for T in Ts]
    ax.plot(Ts, [f / p for f, p, _ in traffic], "o" + style, color="C3", label=f"plain attention, d={d}")
    ax.plot(Ts, [f / t for f, _, t in traffic], "s" + style, color="C0", label=f"tiled (FlashAttention), d={d}, B_q=128")
for (name, (peak, bandwidth)), colour in zip(PEAKS.items(), ("k", "grey")):
    ax.axhline(peak / bandwidth, color=colour, lw=1, ls=":")
    ax.text(Ts[0], peak / bandwidth * 1.1, f"ridge point, {name}: {peak / bandwidth:.0f}", fontsize=8)
ax.set_xscale("log", base=2)
ax.set_yscale("log")
ax.set_ylim(5, 600)
ax.set_yticks([8, 16, 32, 64, 128, 295])
ax.set_yticklabels(["8", "16", "32", "64", "128", "295"])
ax.minorticks_off()
ax.set_xlabel("sequence length T (positions)")
ax.set_ylabel("arithmetic intensity (FLOP / byte)")
ax.set_title("Attention's FLOPs per byte moved (bfloat16 traffic, one head)")
ax.legend(fontsize=8, loc="lower right")
plt.tight_layout()
plt.show()

# %% [markdown]
# The two tiled lines lie on top of each other: the tiled version's intensity, about $2B_q/b$, depends on the
# tile size, not on $d$. Explore the bound below: pick a length, a head size, a number format and a machine, and compare the
# roofline's lower bound on the time of one head of attention, plain and tiled. Where the bound says
# "memory", faster arithmetic would change nothing.

# %%
def roofline(T=4096, d=64, fmt="bfloat16 (2 bytes)", machine=list(PEAKS)[0], block_q=128):
    bytes_per = 2 if fmt.startswith(("bfloat16", "float16")) else 4
    flops, plain, tiled = attention_traffic(T, d, bytes_per, block_q)
    peak, bandwidth = PEAKS[machine]
    for name, moved in (("plain", plain), ("tiled", tiled)):
        compute_s, memory_s = flops / peak, moved / bandwidth
        bound = "memory" if memory_s > compute_s else "compute"
        print(f"{name:>5}: {flops / 1e9:8.2f} GFLOP, {moved / 2**20:9.1f} MiB moved, intensity "
              f"{flops / moved:6.1f} FLOP/byte -> at least {max(compute_s, memory_s) * 1e6:9.1f} us ({bound}-bound)")
    print(f"score matrix of one head: {T * T * bytes_per / 2**20:.1f} MiB")


widgets.interact(roofline,
                 T=widgets.SelectionSlider(options=[int(t) for t in Ts], value=4096, description="T"),
                 d=widgets.Dropdown(options=[32, 64, 128, 256], value=64),
                 fmt=widgets.Dropdown(options=["bfloat16 (2 bytes)", "float16 (2 bytes)", "float32 (4 bytes)"],
                                      description="format"),
                 machine=widgets.Dropdown(options=list(PEAKS)),
                 block_q=widgets.Dropdown(options=[32, 64, 128, 256], value=128, description="B_q"));

# %% [markdown]
# ## 2. The online softmax
#
# The obstacle to tiling is the softmax: each weight $e^{x_j - m} / \sum_k e^{x_k - m}$ needs the row's
# maximum $m$ (for stability, notebook 02) and its sum, and both seem to need the whole row first. They
# do not (Milakov and Gimelshein 2018). Walk over the row in blocks, keeping a running maximum $m$ and a
# running sum $\ell$ of $e^{x - m}$. When a block raises the maximum from $m$ to $m'$, every term already
# in $\ell$ was computed against the old maximum; multiplying by $e^{m - m'}$ converts them all at once:
#
# $$m' = \max\big(m, \max_{j \in \text{block}} x_j\big), \qquad
#   \ell' = \ell \, e^{m - m'} + \sum_{j \in \text{block}} e^{x_j - m'}.$$
#
# Start from $m = -\infty$, $\ell = 0$. After the last block, $\ell = \sum_j e^{x_j - m}$ with $m$ the row's
# maximum, and $\mathrm{softmax}(x)_j = e^{x_j - m} / \ell$. The pass reads each value once and never holds
# more than one block; $\log \ell + m$ is the row's log-sum-exp, which section 4 will need.
#
# > **Common bug: not rescaling.** Adding each block's $\sum e^{x_j - m'}$ to an $\ell$ that still counts
# > against the old maximum gives a sum that is too large whenever the maximum grows: wrong weights that
# > still look like probabilities if you then normalise them.

# %% [markdown]
# ### Exercise 1: the online softmax (3 points)
# *Difficulty: ★☆☆ · about 15 minutes*
#
# Write `online_softmax(x, block_size)`: the softmax of `x` over its last axis, its maximum and sum
# gathered in one pass over blocks of `block_size` values (`x[..., start:start + block_size]`; the last
# block may be shorter). Do not call `torch.softmax` or `logsumexp`, and never reduce over more than one
# block at a time: the check watches. `x` is a float tensor of any shape; return a tensor of the same shape.
#
# <details><summary>Hint 1</summary>
#
# Keep `m` and `l` with the shape `x.shape[:-1]` (one per row). `torch.maximum(m, block.amax(dim=-1))`
# gives the new maximum; `torch.full(shape, -math.inf, dtype=x.dtype, device=x.device)` starts `m`.
# </details>
#
# <details><summary>Hint 2</summary>
#
# With $m = -\infty$ at the start, $e^{m - m'} = 0$: the first block needs no special case. At the end,
# broadcast: `torch.exp(x - m[..., None]) / l[..., None]`.
# </details>

# %% nbgrader={"grade": false, "grade_id": "online_softmax", "locked": false, "schema_version": 3, "solution": true, "task": false}
def online_softmax(x, block_size):
    """Softmax of x over its last axis, with the max and the sum gathered block by block (one pass)."""
    ### BEGIN SOLUTION
    m = torch.full(x.shape[:-1], -math.inf, dtype=x.dtype, device=x.device)   # running max
    l = torch.zeros(x.shape[:-1], dtype=x.dtype, device=x.device)            # running sum of exp(x - m)
    for start in range(0, x.shape[-1], block_size):
        block = x[..., start:start + block_size]
        m_new = torch.maximum(m, block.amax(dim=-1))
        l = l * torch.exp(m - m_new) + torch.exp(block - m_new[..., None]).sum(dim=-1)
        m = m_new
    return torch.exp(x - m[..., None]) / l[..., None]
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "online_softmax_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import efficient_attention as check

check.online_softmax_example(online_softmax)
### BEGIN HIDDEN TESTS
check.online_softmax(online_softmax)
### END HIDDEN TESTS

# %% [markdown]
# Watch the statistics of one row whose values rise, block after block. Each time the maximum grows, the
# rescaled sum shrinks by $e^{m - m'}$ before the new block's terms are added, so it stays near the true
# sum; the sum without rescaling only grows.

# %%
row = torch.linspace(0, 12, 48, dtype=torch.float64) + 0.8 * torch.randn(48, dtype=torch.float64)
block = 6
ms, ls, naive_ls = [], [], []
m, l, l_naive = -math.inf, 0.0, 0.0
for start in range(0, len(row), block):
    b = row[start:start + block]
    m_new = max(m, b.max().item())
    l = l * math.exp(m - m_new) + torch.exp(b - m_new).sum().item()
    l_naive = l_naive + torch.exp(b - m_new).sum().item()
    m = m_new
    ms.append(m), ls.append(l), naive_ls.append(l_naive)
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.4))
ax1.plot(row.numpy(), ".", color="grey", label="x")
ax1.hlines(ms, np.arange(0, len(row), block), np.arange(block, len(row) + 1, block) - 1, color="C3",
           label="running max m after each block")
ax1.set_xlabel("position in the row")
ax1.set_ylabel("value")
ax1.set_title("The running maximum, block by block")
ax1.legend()
ax2.plot(range(1, len(ls) + 1), ls, "o-", label="rescaled: l e^(m - m') + new terms")
ax2.plot(range(1, len(ls) + 1), naive_ls, "s--", label="not rescaled (the common bug)")
ax2.axhline(torch.exp(row - row.max()).sum().item(), color="k", lw=1, ls=":", label="sum of e^(x - max), whole row")
ax2.set_xlabel("blocks read")
ax2.set_ylabel("running sum l")
ax2.set_title("The running sum")
ax2.legend(fontsize=8)
plt.tight_layout()
plt.show()
print("yours equals torch.softmax:", torch.allclose(online_softmax(row[None], block), torch.softmax(row[None], -1)))

# %% [markdown]
# ## 3. Tiled attention: FlashAttention's forward pass
#
# Now apply the same idea to attention. Split the queries into tiles of $B_q$ rows and the keys and values
# into tiles of $B_k$ rows. For one query tile $Q_i$, walk over the key tiles $K_j, V_j$ keeping, per
# query, the running maximum $m$, the running sum $\ell$ and an **unnormalised** output $\text{acc}$:
#
# $$S = Q_i K_j^\top / \sqrt d,\quad m' = \max(m, \mathrm{rowmax}\, S),\quad P = e^{S - m'},$$
# $$\ell' = \ell\, e^{m - m'} + \mathrm{rowsum}\, P,\qquad \text{acc}' = \text{acc}\; e^{m - m'} + P V_j .$$
#
# The accumulator is rescaled for the same reason as the sum: its rows were weighted against the old
# maximum. After the last key tile, divide once: $O_i = \text{acc} / \ell$. Also return, per query, the
# **log-sum-exp** $m + \log \ell = \log \sum_j e^{S_{ij}}$: the backward pass uses it to recompute the
# weights exactly, and it is what FlashAttention stores instead of the $T \times T$ weights. The biggest
# thing in memory is one $B_q \times B_k$ tile of scores: extra memory linear in $T$ (outputs and per-row
# statistics), not quadratic.
#
# **Causal attention** (query $i$ sees keys $j \le i$, as in `is_causal=True`) sorts the tiles into three
# kinds, drawn below: tiles entirely above the diagonal hide every key from every query, so they are
# **skipped** (half the work saved); tiles entirely below it need **no mask**; only the tiles that straddle
# the diagonal need the mask, computed from the positions $i$ and $j$ in the whole sequence, not within
# the tile.

# %%
def tile_kinds(T, bq, bk):
    """0 = skipped, 1 = masked (straddles the diagonal), 2 = computed without a mask, per (query tile, key tile)."""
    kinds = np.zeros((math.ceil(T / bq), math.ceil(T / bk)))
    for a, i0 in enumerate(range(0, T, bq)):
        i1 = min(i0 + bq, T)
        for b, j0 in enumerate(range(0, T, bk)):
            j1 = min(j0 + bk, T)
            kinds[a, b] = 0 if j0 > i1 - 1 else (1 if j1 - 1 > i0 else 2)
    return kinds


fig, axes = plt.subplots(1, 2, figsize=(9, 4))
for ax, (bq, bk) in zip(axes, ((8, 8), (8, 4))):
    kinds = tile_kinds(64, bq, bk)
    ax.imshow(kinds, cmap=plt.matplotlib.colors.ListedColormap(["#eeeeee", "#f4a261", "#2a9d8f"]), vmin=0, vmax=2,
              extent=(0, 64, 64, 0))
    for x in range(0, 65, bk):
        ax.axvline(x, color="white", lw=1)
    for y in range(0, 65, bq):
        ax.axhline(y, color="white", lw=1)
    ax.plot([0, 64], [0, 64], "k--", lw=1)
    ax.set_xlabel("key position j")
    ax.set_ylabel("query position i")
    ax.set_title(f"Causal tiles, T = 64, B_q = {bq}, B_k = {bk}")
fig.legend(handles=[Patch(color="#eeeeee", label="skipped (all j > i)"), Patch(color="#f4a261", label="masked (straddles j = i)"),
                    Patch(color="#2a9d8f", label="no mask needed")], loc="lower center", ncol=3)
plt.tight_layout(rect=(0, 0.08, 1, 1))
plt.show()

# %% [markdown]
# ### Exercise 2: the tiled forward pass (5 points)
# *Difficulty: ★★☆ · about 35 minutes*
#
# Write `tiled_attention(q, k, v, causal=False, block_q=16, block_k=16)` for `q` of shape `(B, H, n_q, d)`,
# `k` of shape `(B, H, n_k, d)` and `v` of shape `(B, H, n_k, d_v)`. Return `(out, lse)`: the attention output
# `(B, H, n_q, d_v)`, equal to `F.scaled_dot_product_attention(q, k, v, is_causal=causal)`, and the
# log-sum-exp of each query's scaled scores, `(B, H, n_q)`, equal to `torch.logsumexp` over the keys of
# $QK^\top/\sqrt d$ (masked when causal). Lengths need not be multiples of the tiles, and $n_q$ may differ
# from $n_k$ (causal means $j \le i$ counted from the start of both, as `is_causal` does; the flash-attn
# library aligns the diagonal to the end instead when $n_q \ne n_k$). Never build the `(n_q, n_k)` score matrix:
# the check watches every tensor your code creates. Work in the inputs' dtype.
#
# <details><summary>Hint 1</summary>
#
# Two loops: one over the query tiles, starting every `block_q` positions, and inside it one over the key
# tiles, every `block_k` positions; the last tile of each may be shorter, so end each slice at the sequence's
# length. Slices `q[..., i0:i1, :]` keep the batch and head axes, so every
# operation works on all heads at once. Keep `m`, `l` with shape `(B, H, i1 - i0)` and `acc` with
# `(B, H, i1 - i0, d_v)`, then write `acc / l[..., None]` into `out[..., i0:i1, :]`.
# </details>
#
# <details><summary>Hint 2</summary>
#
# Causal: the key loop can stop at `min(n_k, i1)` (later tiles are all hidden). In the tiles that cross the
# diagonal, compare global positions: `torch.arange(j0, j1, device=q.device)[None, :] >
# torch.arange(i0, i1, device=q.device)[:, None]` is `True` where the key is in the future; fill those
# scores with `-math.inf`. Key 0 is in the first tile and every query sees it, so no row's maximum stays
# $-\infty$.
# </details>

# %% nbgrader={"grade": false, "grade_id": "tiled_attention", "locked": false, "schema_version": 3, "solution": true, "task": false}
def tiled_attention(q, k, v, causal=False, block_q=16, block_k=16):
    """FlashAttention's forward pass, tile by tile: returns (out (B, H, n_q, d_v), lse (B, H, n_q))."""
    ### BEGIN SOLUTION
    n_q, n_k, d = q.shape[-2], k.shape[-2], q.shape[-1]
    scale = 1 / math.sqrt(d)
    out = torch.empty(*q.shape[:-1], v.shape[-1], dtype=q.dtype, device=q.device)
    lse = torch.empty(q.shape[:-1], dtype=q.dtype, device=q.device)
    for i0 in range(0, n_q, block_q):
        i1 = min(i0 + block_q, n_q)
        qi = q[..., i0:i1, :]                                                 # (B, H, bq, d)
        m = torch.full(qi.shape[:-1], -math.inf, dtype=q.dtype, device=q.device)
        l = torch.zeros(qi.shape[:-1], dtype=q.dtype, device=q.device)
        acc = torch.zeros(*qi.shape[:-1], v.shape[-1], dtype=q.dtype, device=q.device)
        last_key = min(n_k, i1) if causal else n_k                            # causal: skip tiles above the diagonal
        for j0 in range(0, last_key, block_k):
            j1 = min(j0 + block_k, n_k)
            s = qi @ k[..., j0:j1, :].transpose(-2, -1) * scale               # (B, H, bq, bk): one tile
            if causal and j1 - 1 > i0:                                        # the tile straddles the diagonal
                future = torch.arange(j0, j1, device=q.device)[None, :] > torch.arange(i0, i1, device=q.device)[:, None]
                s = s.masked_fill(future, -math.inf)
            m_new = torch.maximum(m, s.amax(dim=-1))
            p = torch.exp(s - m_new[..., None])
            alpha = torch.exp(m - m_new)                                      # rescales what was summed so far
            l = l * alpha + p.sum(dim=-1)
            acc = acc * alpha[..., None] + p @ v[..., j0:j1, :]
            m = m_new
        out[..., i0:i1, :] = acc / l[..., None]                               # the one division
        lse[..., i0:i1] = m + torch.log(l)
    return out, lse
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "tiled_attention_test", "locked": true, "points": 5, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import efficient_attention as check

check.tiled_attention_example(tiled_attention)
### BEGIN HIDDEN TESTS
check.tiled_attention(tiled_attention)
### END HIDDEN TESTS

# %% [markdown]
# Now measure what it saves. For each length, the cell records the peak of the bytes held at once by the
# tensors each version creates (a `TorchDispatchMode` that sees every operator's output: on a CPU this is
# what the allocator would hold; on a GPU the allocator's own counter is used) and the largest single tensor.

# %%
lengths = [256, 512, 1024, 2048, 4096]
memory = {"naive": [], "yours (tiles 64 x 64)": []}
largest = {}
for T in tqdm(lengths, desc="memory"):
    q, k, v = (torch.randn(1, 4, T, 64, device=device) for _ in range(3))
    with torch.no_grad():
        memory["naive"].append(kernels.peak_memory(lambda: kernels.naive_attention(q, k, v, True), device))
        memory["yours (tiles 64 x 64)"].append(
            kernels.peak_memory(lambda: tiled_attention(q, k, v, causal=True, block_q=64, block_k=64), device))
        if device.type == "cpu":
            with kernels.TensorWatch() as watch:
                tiled_attention(q, k, v, causal=True, block_q=64, block_k=64)
            largest[T] = watch.largest_matrix_shape
fig, ax = plt.subplots(figsize=(6, 3.8))
for name, values in memory.items():
    ax.plot(lengths, np.array(values) / 2**20, "o-", label=name)
ax.set_xscale("log", base=2)
ax.set_yscale("log")
ax.set_xlabel("sequence length T")
ax.set_ylabel("peak extra memory (MiB)")
ax.set_title("Causal attention, 4 heads of 64, float32: memory")
ax.set_yticks([1, 3, 10, 30, 100, 300, 1000])
ax.set_yticklabels(["1", "3", "10", "30", "100", "300", "1000"])
ax.minorticks_off()
ax.legend()
plt.tight_layout()
plt.show()
for T, shape in largest.items():
    print(f"T = {T}: the most entries in the last two axes of a tensor yours created: {shape}; "
          f"the naive version's: (1, 4, {T}, {T})")

# %% [markdown]
# Doubling $T$ quadruples the naive version's memory (the $T \times T$ scores and weights) and only doubles
# the tiled one's (the output and the per-row statistics). The peak memory is what decides the longest
# context that fits on a GPU at all.

# %% [markdown]
# ## 4. The backward pass, by recomputation
#
# Autograd would keep every tile's weights $P$ for the backward pass: the $T \times T$ matrix again. The
# backward pass of FlashAttention keeps only $O$ and the log-sum-exp $L$ per row, and **recomputes** each
# tile of weights exactly: $P = e^{S - L}$ (no running maximum needed: $L$ already is the whole row's). It
# does more FLOPs than autograd would, and is still faster, because recomputing a tile in on-chip memory is
# cheaper than reading it back from main memory.
#
# With $dO$ the gradient of the output and $s = 1/\sqrt d$, per tile:
#
# $$dV_j \mathrel{+}= P^\top dO_i,\qquad dP = dO_i V_j^\top,\qquad dS = P \circ (dP - D_i),$$
# $$dQ_i \mathrel{+}= s\; dS\, K_j,\qquad dK_j \mathrel{+}= s\; dS^\top Q_i,$$
#
# where $D = \mathrm{rowsum}(dO \circ O)$. $D$ comes from the softmax's Jacobian: for one row,
# $dS_j = P_j (dP_j - \sum_k P_k dP_k)$, and $\sum_k P_k dP_k = \sum_k P_k (dO \cdot V_k) = dO \cdot O$, a
# number per query computed once, before the loops, from $O$ and $dO$ alone.

# %% [markdown]
# ### Exercise 3: the backward pass by recomputation (4 points)
# *Difficulty: ★★★ · about 30 minutes*
#
# Write `tiled_attention_backward(q, k, v, out, lse, dout, causal=False, block_q=16, block_k=16)`, returning
# `(dq, dk, dv)` with the shapes of `q`, `k`, `v`: the gradients of $\sum O \circ dO$, as autograd gives them
# for `scaled_dot_product_attention`. `out` and `lse` are the forward's output and log-sum-exp (the check
# computes them for you), `dout` is $dO$. Tile as in exercise 2 and never build the score matrix.
#
# <details><summary>Hint 1</summary>
#
# Start `dq, dk, dv` as `torch.zeros_like(q)` (and `k`, `v`) and add into slices:
# `dk[..., j0:j1, :] += ...`. Compute $D$ once, before the loops: one number per query, the sum over the
# last axis of the elementwise product of `dout` and `out`.
# </details>
#
# <details><summary>Hint 2</summary>
#
# Recompute the tile's scores and mask exactly as the forward did, then $P = e^{S - L}$ with the tile's rows
# of the log-sum-exp broadcast along the keys: masked scores are $-\infty$, so their $P$ is 0. $D$ is
# broadcast the same way in $dS = P \circ (dP - D)$. Both `dq` and `dk` carry the scale.
# </details>

# %% nbgrader={"grade": false, "grade_id": "tiled_attention_backward", "locked": false, "schema_version": 3, "solution": true, "task": false}
def tiled_attention_backward(q, k, v, out, lse, dout, causal=False, block_q=16, block_k=16):
    """(dq, dk, dv) by recomputing each tile's weights from the saved log-sum-exp."""
    ### BEGIN SOLUTION
    n_q, n_k, d = q.shape[-2], k.shape[-2], q.shape[-1]
    scale = 1 / math.sqrt(d)
    dq, dk, dv = torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v)
    D = (dout * out).sum(dim=-1)                                              # (B, H, n_q)
    for i0 in range(0, n_q, block_q):
        i1 = min(i0 + block_q, n_q)
        qi, doi = q[..., i0:i1, :], dout[..., i0:i1, :]
        last_key = min(n_k, i1) if causal else n_k
        for j0 in range(0, last_key, block_k):
            j1 = min(j0 + block_k, n_k)
            kj, vj = k[..., j0:j1, :], v[..., j0:j1, :]
            s = qi @ kj.transpose(-2, -1) * scale
            if causal and j1 - 1 > i0:
                future = torch.arange(j0, j1, device=q.device)[None, :] > torch.arange(i0, i1, device=q.device)[:, None]
                s = s.masked_fill(future, -math.inf)
            p = torch.exp(s - lse[..., i0:i1, None])                          # the forward's weights, exactly
            dv[..., j0:j1, :] += p.transpose(-2, -1) @ doi
            dp = doi @ vj.transpose(-2, -1)
            ds = p * (dp - D[..., i0:i1, None])
            dq[..., i0:i1, :] += ds @ kj * scale
            dk[..., j0:j1, :] += ds.transpose(-2, -1) @ qi * scale
    return dq, dk, dv
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "tiled_attention_backward_test", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import efficient_attention as check

check.tiled_attention_backward_example(tiled_attention_backward)
### BEGIN HIDDEN TESTS
check.tiled_attention_backward(tiled_attention_backward)
### END HIDDEN TESTS

# %% [markdown]
# Your forward and backward together are a differentiable attention: wrap them in a
# `torch.autograd.Function`, and autograd calls your backward instead of its own. The package's
# `kernels.flash_attention` is exactly this, and the course's attention layers switch to it with
# `transformer_course.attention.use_flash_attention(model)`.

# %%
class YourFlashAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, causal):
        out, lse = tiled_attention(q, k, v, causal=causal, block_q=32, block_k=24)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.causal = causal
        return out

    @staticmethod
    def backward(ctx, dout):
        dq, dk, dv = tiled_attention_backward(*ctx.saved_tensors, dout, causal=ctx.causal, block_q=32, block_k=24)
        return dq, dk, dv, None


q, k, v = (torch.randn(2, 4, 100, 32, dtype=torch.float64, requires_grad=True) for _ in range(3))
YourFlashAttention.apply(q, k, v, True).square().sum().backward()
yours = [t.grad.clone() for t in (q, k, v)]
for t in (q, k, v):
    t.grad = None
F.scaled_dot_product_attention(q, k, v, is_causal=True).square().sum().backward()
print("largest gradient difference from autograd:",
      max((a - t.grad).abs().max().item() for a, t in zip(yours, (q, k, v))))

# %% [markdown]
# ## 5. The same algorithm as a GPU kernel, in Triton
#
# Your tiles are torch operations: each one reads its inputs from memory and writes its result back, so
# every tile still makes several round trips. A **fused kernel** does a whole query tile's work in one
# program that keeps $m$, $\ell$, the accumulator and the current tile in on-chip memory and registers,
# and writes only the finished $O$ and $L$. Triton (Tillet, Kung and Cox 2019) writes such kernels in
# Python: one *program* per (query tile, batch × head), `tl.load` / `tl.store` on blocks of pointers
# computed from strides, with masks for the rows and columns past the end, and `tl.dot` on the tiles.
#
# The package's kernel, below, is your exercise 2 in that form. Three details differ: the
# running statistics are float32 whatever the inputs' type; it works in base 2 (`exp2`, one instruction,
# with the scale multiplied by $\log_2 e$); and the causal loop's upper bound skips the tiles above the
# diagonal. It computes its addresses with plain pointer arithmetic, which every Triton version accepts, rather
# than block pointers (`tl.make_block_ptr`), which Triton has dropped from 3.8 on in favour of tensor descriptors.

# %%
print(kernels.triton_kernel_source())

# %% [markdown]
# **[GPU]** On a CPU the next cell runs the kernel under Triton's interpreter, which executes each program
# with numpy: right answers, slowly (use small sizes). On an NVIDIA GPU it compiles the kernel and runs it.
# Without Triton (it is Linux-only: `pip install -e ".[gpu]"`) the cell says so and moves on.

# %%
if not kernels.triton_available():
    print("Triton is not installed here; on Linux: pip install -e \".[gpu]\". The rest of the notebook runs without it.")
elif device.type != "cuda" and not kernels.TRITON_INTERPRET:
    print("Triton was imported before TRITON_INTERPRET=1 was set: restart the kernel and run from the top.")
else:
    shape = (1, 2, 64, 16) if device.type == "cpu" else (4, 16, 4096, 64)
    dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    q, k, v = (torch.randn(*shape, device=device, dtype=dtype) for _ in range(3))
    t0 = time.perf_counter()
    out_triton, lse_triton = kernels.triton_attention_forward(q, k, v, causal=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - t0
    out_yours, lse_yours = tiled_attention(q.float(), k.float(), v.float(), causal=True, block_q=64, block_k=48)
    print(f"Triton kernel ({'interpreted' if kernels.TRITON_INTERPRET else 'compiled'}) on {tuple(shape)}: "
          f"{elapsed * 1e3:.0f} ms including {'interpretation' if kernels.TRITON_INTERPRET else 'compilation'}")
    print("largest difference from your tiled_attention: output",
          f"{(out_triton.float() - out_yours).abs().max().item():.2e}, log-sum-exp",
          f"{(lse_triton - lse_yours).abs().max().item():.2e}")

# %% [markdown]
# ## 6. Timing on your machine
#
# Four versions of causal attention, 4 heads of 64: the naive one, yours (tiles of 128 × 128), the
# package's tiled torch path (`kernels.flash_attention`, tiles of 256 × 128 on a CPU) and torch's fused
# `scaled_dot_product_attention` (one C++ or CUDA kernel); on a GPU also the Triton kernel. All in float32
# on a CPU and in bfloat16 on a GPU (where the tensor cores need it). Best of three runs each, forward only.

# %%
def best_time(fn, repeats=3):
    fn()
    best = math.inf
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


versions = {
    "naive": lambda q, k, v: kernels.naive_attention(q, k, v, True),
    "yours": lambda q, k, v: tiled_attention(q, k, v, causal=True, block_q=128, block_k=128),
    "package tiled": lambda q, k, v: kernels.flash_attention(q, k, v, causal=True, backend="torch"),
    "fused (sdpa)": lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
}
if device.type == "cuda" and kernels.triton_available():
    versions["Triton"] = lambda q, k, v: kernels.flash_attention(q, k, v, causal=True, backend="triton")
time_lengths = [256, 512, 1024, 2048, 4096] if device.type == "cpu" else [512, 1024, 2048, 4096, 8192, 16384]
time_dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
timings = {name: [] for name in versions}
for T in tqdm(time_lengths, desc="timing"):
    q, k, v = (torch.randn(1, 4, T, 64, device=device, dtype=time_dtype) for _ in range(3))
    with torch.no_grad():
        for name, fn in versions.items():
            timings[name].append(best_time(lambda: fn(q, k, v)))
fig, ax = plt.subplots(figsize=(6.5, 4))
for name, values in timings.items():
    ax.plot(time_lengths, np.array(values) * 1e3, "o-", label=name)
ax.set_xscale("log", base=2)
ax.set_yscale("log")
ax.set_xlabel("sequence length T")
ax.set_ylabel("time (ms), best of 3")
ax.set_title(f"Causal attention forward, 4 heads of 64, {str(time_dtype)[6:]} on {device.type}")
plain_log_ticks(ax, "y")
ax.legend()
plt.tight_layout()
plt.show()
for name, values in timings.items():
    print(f"{name:>14}: " + ", ".join(f"T={T}: {t * 1e3:7.1f} ms" for T, t in zip(time_lengths, values)))

# %% [markdown]
# On a CPU, your tiles pay Python's cost per tile (a few microseconds per operation, a dozen operations per
# tile), yet at long lengths they usually catch up with or pass the naive version (timings vary with
# whatever else the machine is doing), which spends its time moving
# $T \times T$ matrices through memory. The fused kernel wins everywhere: it does the same tiling in
# compiled code, with no per-tile overhead. On a GPU the gap between the naive version and a fused kernel is
# far larger, because the GPU's arithmetic is so much faster than its memory (section 1), and the
# compiled Triton kernel comes close to the fused one.

# %% [markdown]
# ## 7. Mixed precision
#
# Moving fewer bytes is the other way to go faster: 16-bit numbers halve the traffic, and GPU tensor cores
# multiply them several times faster than float32. Two 16-bit formats are in use:
#
# | format | exponent bits | mantissa bits | largest value | machine epsilon |
# |---|---|---|---|---|
# | float32 | 8 | 23 | $3.4 \times 10^{38}$ | $1.2 \times 10^{-7}$ |
# | bfloat16 | 8 | 7 | $3.4 \times 10^{38}$ | $7.8 \times 10^{-3}$ |
# | float16 | 5 | 10 | $65504$ | $9.8 \times 10^{-4}$ |
#
# bfloat16 keeps float32's range and gives up precision; float16 keeps more precision but overflows above
# 65504 and loses small gradients to zero, so training in float16 multiplies the loss by a large factor
# before the backward pass and divides the gradients by it afterwards (a gradient *scaler*). In *mixed*
# precision the matrix products run in 16 bits while the weights, the optimizer's state, softmax's sums
# and the loss stay in float32: the same reason the Triton kernel keeps float32 accumulators.

# %%
print("the numbers' own limits:")
for dtype in (torch.float32, torch.bfloat16, torch.float16):
    info = torch.finfo(dtype)
    print(f"  {str(dtype):15} max {info.max:.3g}, eps {info.eps:.3g}")

q, k, v = (torch.randn(1, 4, 512, 64, dtype=torch.float64) for _ in range(3))
exact = F.scaled_dot_product_attention(q, k, v, is_causal=True)
errors = {}
for dtype in (torch.float32, torch.bfloat16, torch.float16):
    out = F.scaled_dot_product_attention(*(t.to(device, dtype) for t in (q, k, v)), is_causal=True)
    errors[str(dtype).replace("torch.", "")] = ((out.double().cpu() - exact).norm() / exact.norm()).item()
print("\nattention's relative error against float64:", {name: f"{e:.1e}" for name, e in errors.items()})

n = 1024 if device.type == "cpu" else 8192
speeds = {}
for dtype in (torch.float32, torch.bfloat16):
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    seconds = best_time(lambda: a @ b, repeats=7)
    speeds[str(dtype).replace("torch.", "")] = 2 * n**3 / seconds / 1e12
print(f"{n} x {n} matrix product, TFLOP/s:", {name: f"{s:.3f}" for name, s in speeds.items()})
autocast, scaler = mixed_precision(device)
print("train_gpt's precision='auto' here:", getattr(autocast, "fast_dtype", "float32 (no autocast)"),
      "with a gradient scaler" if scaler is not None else "without a gradient scaler")

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.2))
ax1.bar(list(errors), list(errors.values()), color=["C0", "C1", "C2"])
ax1.set_yscale("log")
ax1.set_ylabel("relative error vs float64")
ax1.set_title("Attention's error by format")
ax2.bar(list(speeds), list(speeds.values()), color=["C0", "C1"])
ax2.set_ylabel("TFLOP/s")
ax2.set_title(f"{n} x {n} matrix product on {device.type}")
plt.tight_layout()
plt.show()

# %% [markdown]
# **[GPU]** On a CPU the answer depends on the chip, and the figure says which kind yours is: recent server
# processors have bfloat16 instructions (AVX-512 BF16, AMX) and multiply it faster than float32 (two to five
# times as fast on the machine this course was written on, varying from run to run), while many laptop processors convert to float32 on
# the fly and gain nothing. On an NVIDIA GPU since Ampere, bfloat16 matrix products run many times faster
# than float32 ones, and `train_gpt` (notebook 07) trains with bfloat16 autocast there by default
# (`precision="auto"`), float16 with a gradient scaler on older GPUs, and float32 on a CPU, where the
# whole model gains less than the matrix product alone.

# %% [markdown]
# ### Written question (2 points, graded by hand)
#
# FlashAttention's backward pass does *more* arithmetic than the plain one (it recomputes every tile of
# scores), yet the whole training step runs faster. Explain why, using the roofline of section 1. Then say
# why no such trick speeds up a large matrix product. Three to six sentences.

# %% [markdown] nbgrader={"grade": true, "grade_id": "efficient_question", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# Plain attention is memory-bound: its intensity is about d / b FLOPs per byte (32 for d = 64 in bfloat16),
# far below a GPU's ridge point (about 295 on an H100), so its time is set by the bytes it moves, above all
# by writing the T x T scores and weights to main memory and reading them back, in the forward pass and
# again in the backward. Recomputing a tile of scores from Q, K and the saved log-sum-exp costs FLOPs, which
# the GPU has in excess, but saves reading a T x T matrix, which is the scarce resource; so the extra
# arithmetic is nearly free and the bytes saved are what count (and memory falls from quadratic to linear,
# which also allows longer contexts and larger batches). A large matrix product is already compute-bound:
# its 2n^3 FLOPs on 3n^2 numbers give an intensity far above the ridge, so its time is its arithmetic, and
# neither fusing nor recomputing can remove FLOPs; only faster arithmetic (lower precision, tensor cores)
# helps.

# %% [markdown]
# ## Summary
#
# - Arithmetic intensity (FLOPs per byte) against the machine's ridge point decides whether a computation
#   is limited by memory or by arithmetic; plain attention, at about $d/b$, is memory-bound.
# - The online softmax gathers the maximum and the sum in one pass, rescaling the sum by $e^{m - m'}$
#   whenever the maximum grows.
# - FlashAttention's forward pass runs the online softmax over tiles of keys with an unnormalised output,
#   divides once, and returns the log-sum-exp; causal tiles above the diagonal are skipped and only the
#   diagonal tiles are masked. Memory is linear in $T$.
# - The backward pass recomputes each tile's weights from the log-sum-exp, with $D = \mathrm{rowsum}(dO
#   \circ O)$ standing in for the softmax's Jacobian: more FLOPs, fewer bytes, faster.
# - A fused kernel (torch's, or one written in Triton) keeps each tile on the chip; mixed precision halves
#   the bytes again and uses the tensor cores, with float32 where sums accumulate.
#
# This is the last notebook of the course: from an RNN's bottleneck to attention, Transformers, BERT, GPT,
# scaling, CLIP, and now the kernels that make them fast.
