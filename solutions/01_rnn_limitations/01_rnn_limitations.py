# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · What recurrent networks cannot do
#
# Before Transformers, the standard way to read a sequence was a **recurrent neural network**
# (RNN): read one token, update a hidden state, repeat. This notebook builds one from scratch and
# then measures, with experiments you run yourself, the three problems that made people look for
# something else:
#
# 1. **Sequential dependence**: step $t$ needs the result of step $t-1$, so the time to read a
#    sequence grows with its length and the steps cannot run in parallel.
# 2. **Vanishing (and exploding) gradients**: the signal that tells an early token it mattered is
#    multiplied by one Jacobian per step, and shrinks or blows up exponentially with the distance.
# 3. **The fixed-size bottleneck**: whatever the network remembers about the whole input has to
#    fit in one vector of $d_h$ numbers.
#
# **Objectives.** You will
# - write an RNN's forward pass in numpy and check it against `torch.nn.RNN`;
# - compute how strongly the last hidden state depends on earlier ones, $\|\partial h_T / \partial h_{T-d}\|$,
#   and watch it decay with the distance $d$;
# - build the *long-range recall* task that notebook 02 reuses, train a small RNN on it, and see its
#   accuracy collapse as the distance grows;
# - measure how the time of a forward pass grows with the sequence length.
#
# **Prerequisites**: none. You should be comfortable with numpy arrays and matrix products;
# some PyTorch (tensors, `backward()`, an optimizer loop) helps in sections 2 and 4.
#
# **Estimated time:** about 60–90 minutes. **Points:** 14 autograded in 5 exercises, plus 2 for a written
# answer graded by hand.
#
# **How to check your work**: every exercise has a test cell right below it; run it and read its
# message. The notebook's grader runs more tests than you see (random inputs, edge cases, PyTorch as
# the oracle). Each exercise says its difficulty and a rough time; hints open on demand. To grade the
# whole notebook the way the classroom does, save it and run
# `transformer-course check 01_rnn_limitations.ipynb` in a terminal.

# %%
import time

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import display
from tqdm.auto import tqdm

from transformer_course.data import RecallVocab
from transformer_course.rnn import RecallRNN, jacobian_norms_analytic, random_rnn_weights, recall_accuracy

torch.manual_seed(0)
np.set_printoptions(precision=4, suppress=True)
# The models here are tiny: the CPU is the right device for them even where a GPU exists.
print("torch", torch.__version__)

# %% [markdown]
# ## 1. An RNN reads one token at a time
#
# An RNN keeps a hidden state $h_t \in \mathbb{R}^{d_h}$. At every step it mixes the new input
# $x_t \in \mathbb{R}^{d_{in}}$ with the previous state and squashes the result with $\tanh$:
#
# $$h_t = \tanh\left(W_{xh}\, x_t + W_{hh}\, h_{t-1} + b\right), \qquad t = 1, \dots, T,$$
#
# starting from a given $h_0$ (often zeros). The same weights
# $W_{xh} \in \mathbb{R}^{d_h \times d_{in}}$, $W_{hh} \in \mathbb{R}^{d_h \times d_h}$ and
# $b \in \mathbb{R}^{d_h}$ are used at every step: that is what lets one network read sequences of
# any length.
#
# **Shapes in code.** Like the rest of the course we put the batch first: `x` has shape
# `(B, T, d_in)`, `h0` has shape `(B, d_h)`. Each row of a batch is one vector, so the product
# $W_{xh} x_t$ becomes `x_t @ W_xh.T` for a `(B, d_in)` block of rows — and likewise for $W_{hh}$.
# (The weight layout is PyTorch's: `nn.RNN` stores $W_{xh}$ as `weight_ih_l0` with shape `(d_h, d_in)`.)
#
# **A worked example.** One input unit, one hidden unit, $W_{xh} = 1$, $W_{hh} = 0.5$, $b = 0$,
# $h_0 = 0$, and the input $x = (1, 0, 0)$:
#
# | step | computation | $h_t$ |
# |---|---|---|
# | 1 | $\tanh(1 \cdot 1 + 0.5 \cdot 0)$ | 0.7616 |
# | 2 | $\tanh(1 \cdot 0 + 0.5 \cdot 0.7616)$ | 0.3634 |
# | 3 | $\tanh(1 \cdot 0 + 0.5 \cdot 0.3634)$ | 0.1797 |
#
# The input seen at step 1 fades: after two steps only a quarter of it (roughly) is left.
# Keep that in mind for section 2.
#
# ### Exercise 1 (3 points): the forward pass
# *Difficulty: ★☆☆ · about 10 minutes*
#
# Write `rnn_forward` in numpy. Return **every** hidden state, `hs[:, t]` being the state *after*
# reading `x[:, t]` (so $h_1, \dots, h_T$; not $h_0$), and the last one separately.
#
# <details><summary>Hint 1</summary>
#
# Keep one variable for the current state: it starts as `h0` and is overwritten at every step, so that
# step $t$ uses the state step $t-1$ produced. Collect each new state *after* computing it. Then check
# your first step against the table: $h_1 = \tanh(1) = 0.7616$.
# </details>
#
# <details><summary>Hint 2</summary>
#
# The rule `x_t @ W_xh.T` above holds for the recurrent term too: `h` is `(B, d_h)`, and the
# product with the transpose of `W_hh` is again `(B, d_h)`. The $\tanh$ wraps the whole sum, bias
# included. A list of $T$ arrays of shape `(B, d_h)` becomes `(B, T, d_h)` with `np.stack` along axis 1
# (not a Python list, and no $h_0$ in it); `h_last` equals `hs[:, -1]`.
# </details>

# %% nbgrader={"grade": false, "grade_id": "rnn_forward", "locked": false, "schema_version": 3, "solution": true, "task": false}
def rnn_forward(x, h0, W_xh, W_hh, b):
    """Run a tanh RNN over a batch of sequences.

    x:    (B, T, d_in)  inputs, batch first
    h0:   (B, d_h)      initial hidden state
    W_xh: (d_h, d_in)   input-to-hidden weights
    W_hh: (d_h, d_h)    hidden-to-hidden weights
    b:    (d_h,)        bias

    Returns (hs, h_last):
    hs:     (B, T, d_h) hs[:, t] is the state after reading x[:, t]
    h_last: (B, d_h)    the final state, equal to hs[:, -1]
    """
    ### BEGIN SOLUTION
    B, T, _ = x.shape
    states = []
    h = h0
    for t in range(T):
        # each step needs the previous state: this loop is inherently sequential
        h = np.tanh(x[:, t] @ W_xh.T + h @ W_hh.T + b)
        states.append(h)
    return np.stack(states, axis=1), h
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "rnn_forward_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import rnn_limitations as check
check.rnn_forward_example(rnn_forward)
### BEGIN HIDDEN TESTS
check.rnn_forward(rnn_forward)
### END HIDDEN TESTS

# %% [markdown]
# > **Common bug: a state that never moves.** Computing every step from `h0` (instead of the
# > state the previous step produced), or appending the state to `hs` *before* updating it, both
# > give arrays of the right shape. The first makes every step forget everything but the current
# > input; the second shifts all states by one step. Both look plausible in a shape check, so test
# > one step by hand, as in the table above.
#
# ### Your RNN is PyTorch's RNN
# `torch.nn.RNN` computes the same recurrence. One detail: it has **two** biases, `bias_ih_l0`
# and `bias_hh_l0`, which are simply added — so any split of our $b$ into two parts gives the
# same network. Below we copy random weights into an `nn.RNN`, split $b$ in two arbitrary halves,
# and compare its outputs with yours.

# %%
rng = np.random.default_rng(0)
d_in, d_h = 3, 5
# radius = the spectral radius of W_hh (largest |eigenvalue|); section 2 explains why it matters
W_xh, W_hh, b = random_rnn_weights(d_in, d_h, radius=0.9, rng=rng)
x_demo, h0_demo = rng.normal(size=(2, 6, d_in)), rng.normal(size=(2, d_h))

torch_rnn = torch.nn.RNN(d_in, d_h, nonlinearity="tanh", batch_first=True, dtype=torch.float64)
b_split = rng.normal(size=d_h)  # any split of b into two biases is the same network
with torch.no_grad():
    torch_rnn.weight_ih_l0.copy_(torch.from_numpy(W_xh))
    torch_rnn.weight_hh_l0.copy_(torch.from_numpy(W_hh))
    torch_rnn.bias_ih_l0.copy_(torch.from_numpy(b - b_split))
    torch_rnn.bias_hh_l0.copy_(torch.from_numpy(b_split))
    out_torch, h_n = torch_rnn(torch.from_numpy(x_demo), torch.from_numpy(h0_demo)[None])  # h0 as (layers, B, d_h)

hs_mine, h_last_mine = rnn_forward(x_demo, h0_demo, W_xh, W_hh, b)
print("largest difference, all states:", np.abs(hs_mine - out_torch.numpy()).max())
print("largest difference, last state:", np.abs(h_last_mine - h_n[0].numpy()).max())

# %% [markdown]
# ## 2. Backpropagation through time, and why gradients vanish
#
# To learn that the token at step $t$ mattered for a loss computed at the end, training needs
# $\partial L / \partial h_t$. The chain rule walks backwards through every step in between:
#
# $$\frac{\partial L}{\partial h_{T-d}} = \frac{\partial L}{\partial h_T}\,
#   \frac{\partial h_T}{\partial h_{T-d}}, \qquad
#   \frac{\partial h_T}{\partial h_{T-d}} = \prod_{s=T}^{T-d+1} \frac{\partial h_s}{\partial h_{s-1}}
#   = J_T\, J_{T-1} \cdots J_{T-d+1}.$$
#
# Each factor comes from differentiating $h_s = \tanh(a_s)$ with $a_s = W_{xh} x_s + W_{hh} h_{s-1} + b$.
# Since $\tanh'(a) = 1 - \tanh(a)^2$,
#
# $$J_s = \frac{\partial h_s}{\partial h_{s-1}} = \mathrm{diag}\!\left(1 - h_s^2\right) W_{hh}.$$
#
# So a signal that travels $d$ steps is multiplied by $d$ matrices. Two things decide its size:
#
# - **The tanh factors** $1 - h_s^2$ lie in $(0, 1]$: they can only shrink it, and they are close to
#   0 when the state saturates ($|h| \to 1$).
# - **The recurrent matrix.** When the tanh factors are close to 1 the product behaves like
#   $W_{hh}^d$, whose size grows or shrinks like $\rho(W_{hh})^d$, where $\rho$ is the **spectral
#   radius** (the largest $|\lambda|$ over the eigenvalues of $W_{hh}$). With $\rho < 1$ it vanishes
#   exponentially; with $\rho > 1$ it can explode — until the states saturate and the tanh factors
#   pull it back down.
#
# Either way, once the signal has travelled more than a few dozen steps the gradient is almost useless:
# either too small to move the weights, or so large that training blows up. Gradient clipping treats the
# second; the first needs a change of architecture: gated cells such as LSTMs (section 4 comes back to
# them) carry the state through an additive path and last longer, and attention, from notebook 02 on,
# removes the long path altogether.
#
# ### Exercise 2 (3 points): how far back does the last state look?
# *Difficulty: ★★☆ · about 20 minutes*
#
# For **one** sequence (no batch axis), compute
#
# $$\text{norms}[d] = \left\| \frac{\partial h_T}{\partial h_{T-d}} \right\|_F \quad\text{for } d = 0, 1, \dots, T,$$
#
# the Frobenius norm of a $d_h \times d_h$ Jacobian. $d = 0$ is the identity (norm $\sqrt{d_h}$),
# $d = T$ is the dependence on the initial state $h_0$.
#
# Two routes work, pick one:
# - **analytically**: run the forward pass, then multiply the $J_s$ above, newest on the left;
# - **with autograd**: make the state `h` at step $T-d$ a tensor with `requires_grad=True`, run the
#   remaining steps, and build the full Jacobian, e.g. with `torch.autograd.functional.jacobian`.
#
# Calling your `rnn_forward` from Exercise 1 is fine. If this test fails while your `rnn_forward` still
# fails its own test, the message says so: fix Exercise 1 first.
#
# <details><summary>Hint 1</summary>
#
# The analytic route is the shorter one: run `rnn_forward` once (on `x[None]` and `h0[None]`, a batch
# of one) to get every $h_s$, then walk backwards from $s = T$ to $s = 1$ with a running
# $d_h \times d_h$ matrix that starts as the identity, recording its norm before the first factor and
# after each one. The visible check starts with zero input and $W_{hh} = 0.5$: every state is 0, every
# tanh factor is 1, and the norms are $0.5^d$, `[1, 0.5, 0.25, 0.125]`.
# </details>
#
# <details><summary>Hint 2</summary>
#
# Three details decide the numbers. $J_s$ uses the state $h_s$ that step $s$ *produced* (with `hs`
# holding $h_1, \dots, h_T$ that is `hs[s - 1]`), not $h_{s-1}$; and the factor is $1 - h_s^2$, with the
# square. $\mathrm{diag}(1 - h_s^2)$ scales the **rows** of $W_{hh}$ (a column vector broadcast against
# `W_hh` does it without building the diagonal). Going back in time, each older factor joins on the
# **right** of the running product, so the newest, $J_T$, stays on the left: $J_T$, then $J_T J_{T-1}$,
# and so on. `np.linalg.norm` with no `ord` is the Frobenius norm, so `norms[0]` is $\sqrt{d_h}$.
# </details>

# %% nbgrader={"grade": false, "grade_id": "jacobian_norms", "locked": false, "schema_version": 3, "solution": true, "task": false}
def jacobian_norms(x, h0, W_xh, W_hh, b):
    """Frobenius norms of d h_T / d h_{T-d} for d = 0 .. T, for ONE sequence.

    x:    (T, d_in)    inputs (no batch axis)
    h0:   (d_h,)       initial state
    W_xh: (d_h, d_in), W_hh: (d_h, d_h), b: (d_h,)   as in rnn_forward

    Returns a numpy array of shape (T + 1,): element d is ||d h_T / d h_{T-d}||_F.
    """
    ### BEGIN SOLUTION
    T = x.shape[0]
    d_h = W_hh.shape[0]
    hs, _ = rnn_forward(x[None], h0[None], W_xh, W_hh, b)
    hs = hs[0]  # hs[s - 1] is h_s
    jac = np.eye(d_h)  # d h_T / d h_T
    norms = [np.linalg.norm(jac)]
    for s in range(T, 0, -1):
        local = (1.0 - hs[s - 1] ** 2)[:, None] * W_hh  # J_s = diag(1 - h_s^2) W_hh
        jac = jac @ local  # d h_T / d h_{s-1}
        norms.append(np.linalg.norm(jac))
    return np.array(norms)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "jacobian_norms_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import rnn_limitations as check
check.jacobian_norms_example(jacobian_norms)
### BEGIN HIDDEN TESTS
check.jacobian_norms(jacobian_norms)
### END HIDDEN TESTS

# %% [markdown]
# > **Common bug: dropping the tanh derivative.** Multiplying $W_{hh}$ by itself $d$ times gives
# > the right shapes and a curve that decays for small weights, so it looks fine — but it ignores the
# > $\mathrm{diag}(1 - h_s^2)$ factors and overestimates every gradient. With autograd the classic
# > slip is `h_T.sum().backward()`: that gives the *sum of the rows* of the Jacobian, not the
# > Jacobian, and its norm is a different number.
#
# Now your function on a 16-unit RNN, 50 steps of random input, for several spectral radii of
# $W_{hh}$. The vertical axis is logarithmic: a straight line means exponential decay or growth.

# %%
T_plot, d_h_plot = 50, 16
radii = [0.5, 0.9, 1.0, 1.5, 3.0]
rng = np.random.default_rng(1)
x_plot = rng.normal(size=(T_plot, 4))

fig, ax = plt.subplots(figsize=(7, 4))
for radius in radii:
    Wx, Wh, bb = random_rnn_weights(4, d_h_plot, radius=radius, rng=np.random.default_rng(2))
    norms = jacobian_norms(x_plot, np.zeros(d_h_plot), Wx, Wh, bb)
    ax.semilogy(np.arange(T_plot + 1), norms, label=f"spectral radius {radius}")
ax.set_title("How much the last state depends on a state d steps earlier")
ax.set_xlabel("distance d (steps)")
ax.set_ylabel(r"$\|\partial h_T / \partial h_{T-d}\|_F$ (dimensionless)")
ax.legend()
plt.show()

# %% [markdown]
# Read the curves. Radii 0.5 to 1 give nearly straight downward lines: exponential decay, faster for a
# smaller radius. Even $\rho = 1$ decays, and so does $\rho = 1.5$ — more slowly and less regularly, down to
# about $10^{-4}$ after 50 steps — because the factors $1 - h_s^2$ are below 1 whenever the states are
# not exactly zero. Only the large radius grows — the exploding gradient — and it wobbles rather than
# growing cleanly, because its saturated units contribute factors close to 0. The gradient survives 50
# steps only on a knife edge, and training does not stay on it.
#
# **Explore.** Move the sliders: the spectral radius of $W_{hh}$, and the scale of the inputs
# (larger inputs push the states towards $\pm 1$, where $\tanh$ is flat). The dashed line is
# $\sqrt{d_h}\,\rho^d$, roughly what you would get if there were no tanh. (The explorer uses the package's
# `jacobian_norms_analytic` so that it redraws quickly whatever your implementation.)

# %%
def draw_gradient_decay(radius=0.9, input_scale=1.0):
    rng = np.random.default_rng(3)
    Wx, Wh, bb = random_rnn_weights(4, 16, radius=radius, rng=rng)
    x = input_scale * rng.normal(size=(60, 4))
    norms = jacobian_norms_analytic(x, np.zeros(16), Wx, Wh, bb)
    d = np.arange(len(norms))
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.semilogy(d, norms, label="with tanh (the real RNN)")
    ax.semilogy(d, np.sqrt(16) * radius ** d, "--", label=r"$\sqrt{d_h}\,\rho^d$ (no tanh)")
    ax.set_ylim(1e-30, 1e6)  # low enough for the decaying curves; radius^d above 1e6 is cut off
    ax.set_title(f"Gradient signal vs distance (spectral radius {radius:.2f}, input scale {input_scale:.1f})")
    ax.set_xlabel("distance d (steps)")
    ax.set_ylabel(r"$\|\partial h_T / \partial h_{T-d}\|_F$ (dimensionless)")
    ax.legend(loc="lower left")
    plt.show()


gradient_explorer = widgets.interactive(
    draw_gradient_decay,
    radius=widgets.FloatSlider(value=0.9, min=0.2, max=3.0, step=0.05, description="radius ρ",
                               continuous_update=False),
    input_scale=widgets.FloatSlider(value=1.0, min=0.0, max=3.0, step=0.1, description="input scale",
                                    continuous_update=False),
)
display(gradient_explorer)

# %% [markdown]
# ## 3. A task that needs a long memory: recall
#
# To see what vanishing gradients cost, we need a task whose answer depends on something far
# back. The **recall task** is the simplest: the first token is a *symbol* to remember, then come
# `distance - 1` *noise* tokens, then a *query* marker; the right answer at the query is the
# symbol. With 8 symbols and 8 noise tokens the vocabulary (`RecallVocab`) is:
#
# | ids | meaning |
# |---|---|
# | 0 – 7 | symbols (`vocab.n_symbols = 8`) |
# | 8 – 15 | noise (`vocab.n_noise = 8`) |
# | 16 | the query marker (`vocab.query`) |
#
# For `distance = 4` a sequence and its label look like `x = [5, 12, 9, 14, 16]`, `y = 5`: the query
# sits `distance` steps after the symbol, and the sequence has `distance + 1` tokens. Guessing is
# right 1 time in 8.
#
# ### Exercise 3 (3 points): the recall task generator
# *Difficulty: ★☆☆ · about 10 minutes*
#
# Write `make_recall_batch`. Draw **every** random number from the generator `rng` you are given
# (that makes batches reproducible: the same seed gives the same batch), labels uniformly from the
# symbols, noise uniformly from the noise ids (drawing a whole row of noise and then writing the symbol and
# the query over its two ends is fine). Remember that
# `rng.integers(low, high)` never returns `high`. For `distance < 1` raise `ValueError`.
#
# The test checks a small batch (printed), a smaller vocabulary (`RecallVocab(n_symbols=5, n_noise=3)`:
# use the `vocab` you are given, not the numbers 8 and 16), 2000 sequences (every id must come up, about
# equally often), that the same seed gives the same batch, and that `distance=0` raises `ValueError`.
#
# <details><summary>Hint 1</summary>
#
# Start with the argument check (`raise ValueError(...)`; `assert` is for your own bugs). Then every
# random number comes from `rng`: one label per sequence, and one noise id per position, a whole
# `(batch_size, distance + 1)` block of them, whose first and last columns you then overwrite. Nothing
# from `np.random.*`, and no new generator inside the function.
# </details>
#
# <details><summary>Hint 2</summary>
#
# `rng.integers(low, high, size=...)` draws from `low` to `high - 1`, so `high` is one past the last id
# you want: labels are the ids $0, \dots,$ `n_symbols` $- 1$, noise the next `n_noise` ids after them.
# Write the ranges with `vocab.n_symbols` and `vocab.n_noise` (the test's small vocabulary has symbols
# 0–4, noise 5–7, query 8), put the labels in column 0 and `vocab.query` in the last column, and finish
# with `.astype(np.int64)`. For `distance = 4` a row has 5 tokens, the query at index 4.
# </details>

# %% nbgrader={"grade": false, "grade_id": "make_recall_batch", "locked": false, "schema_version": 3, "solution": true, "task": false}
def make_recall_batch(batch_size, distance, vocab=RecallVocab(), rng=None):
    """A batch of the recall task.

    Each sequence is [symbol, noise_1, ..., noise_{distance-1}, QUERY] and its label is the symbol.
    batch_size: number of sequences
    distance:   steps from the symbol to the query (>= 1; raise ValueError otherwise)
    vocab:      a RecallVocab (symbols 0..n_symbols-1, then noise ids, then vocab.query)
    rng:        a numpy Generator (np.random.default_rng() when None)

    Returns (x, y): x (batch_size, distance + 1) and y (batch_size,), both numpy int64.
    """
    ### BEGIN SOLUTION
    if distance < 1:
        raise ValueError(f"distance must be at least 1, got {distance}")
    if rng is None:
        rng = np.random.default_rng()
    labels = rng.integers(0, vocab.n_symbols, size=batch_size)
    tokens = rng.integers(vocab.n_symbols, vocab.n_symbols + vocab.n_noise, size=(batch_size, distance + 1))
    tokens[:, 0] = labels  # the symbol to remember
    tokens[:, -1] = vocab.query  # the question, `distance` steps later
    return tokens.astype(np.int64), labels.astype(np.int64)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "make_recall_batch_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import rnn_limitations as check
check.make_recall_batch_example(make_recall_batch)
### BEGIN HIDDEN TESTS
check.make_recall_batch(make_recall_batch)
### END HIDDEN TESTS

# %% [markdown]
# ## 4. Training an RNN on recall
#
# The model (`RecallRNN` in the package, printed below) embeds each token into 16 numbers, runs a
# tanh `nn.RNN` with 32 hidden units over the sequence, and predicts the symbol from the **last
# hidden state only**, with a linear layer: `logits = head(h_T)`, shape `(B, 8)`. Everything it knows
# when it answers has to be in those 32 numbers.

# %%
print(RecallRNN())

# %% [markdown]
# ### Exercise 4 (3 points): the training loop
# *Difficulty: ★★☆ · about 15 minutes (and a few seconds to run)*
#
# Write `train_recall_rnn`: train the model you are given **in place** and return the loss of every
# step. Each step:
#
# 1. draw a fresh batch with `make_recall_batch` (yours, from a `np.random.default_rng(seed)` made
#    once before the loop) and turn `x`, `y` into torch tensors (`torch.from_numpy`);
# 2. `logits = model(x)`, then the cross-entropy between `logits` and `y`;
# 3. zero the gradients, `loss.backward()`, optionally clip the gradient norm
#    (`torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)` guards against explosions), take an
#    **Adam** step with learning rate `lr`;
# 4. record `loss.item()`.
#
# The test watches your loop through a hook on the model it passes in, which records every batch the
# model is given and its weights at that moment. A few short runs check that you take exactly `steps`
# steps of `batch_size` fresh sequences, that the batches depend on `seed` (same seed, same batches), that
# each recorded loss is the cross-entropy of that step, and that the weights change exactly as Adam with
# learning rate `lr` would change them (clipping or not makes no visible difference). Then it trains a fresh
# model at a short distance and measures its accuracy on new sequences: it must reach at least 0.9. Expect
# a few seconds. Your loop uses your `make_recall_batch`: if this test fails while Exercise 3 still fails
# its own test, the message says so — fix that one first.
#
# <details><summary>Hint 1</summary>
#
# Two things are made once, before the loop, and never again: the Adam optimiser over
# `model.parameters()` with `lr=lr`, and the generator from `seed`. Adam keeps running averages between
# steps, and a generator re-seeded inside the loop hands out the same batch every time. Inside the loop
# the order is: batch, forward, loss, zero the gradients, backward, (clip), step, record.
# </details>
#
# <details><summary>Hint 2</summary>
#
# Pass the generator to `make_recall_batch` through its `rng` argument. Call the model itself, `model(x)`,
# outside `torch.no_grad()`: the test's hook sees only that. `F.cross_entropy` wants the raw logits
# `(B, 8)` and the labels `(B,)` as int64, and averages over the batch: no softmax before it, no
# `reduction="sum"`. Forgetting `zero_grad()` lets the gradients pile up (`backward()` adds to `.grad`),
# and the check sees it in the weight updates. At distance 2 the loss should start near
# $\ln 8 \approx 2.08$ and fall towards 0.
# </details>

# %% nbgrader={"grade": false, "grade_id": "train_recall_rnn", "locked": false, "schema_version": 3, "solution": true, "task": false}
def train_recall_rnn(model, distance, steps=200, batch_size=64, lr=1e-2, seed=0):
    """Train `model` (x: (B, T) int64 -> logits (B, n_symbols)) on recall batches at `distance`.

    Optimiser: torch.optim.Adam(model.parameters(), lr=lr), created once (default betas, no weight decay).
    `steps` steps, each on `batch_size` fresh sequences from make_recall_batch, all drawn from one
    generator np.random.default_rng(seed); loss: cross-entropy of the logits against the labels.
    Trains in place. Returns a list of `steps` floats: the training loss of each step, in order.
    """
    ### BEGIN SOLUTION
    torch.manual_seed(seed)
    data_rng = np.random.default_rng(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    history = []
    for _ in range(steps):
        xb, yb = make_recall_batch(batch_size, distance, rng=data_rng)
        logits = model(torch.from_numpy(xb))
        loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(yb))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
        optimizer.step()
        history.append(loss.item())
    return history
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "train_recall_rnn_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import rnn_limitations as check
check.train_recall_rnn_example(train_recall_rnn)
### BEGIN HIDDEN TESTS
check.train_recall_rnn(train_recall_rnn)
### END HIDDEN TESTS

# %% [markdown]
# ### The experiment: accuracy against distance
# Now the same model, the same training budget (200 steps of 64 sequences), and only the distance
# changes. Each distance is trained twice, from two random initialisations, and evaluated on 1000
# fresh sequences. This takes about 10–20 seconds.

# %%
distances = [2, 5, 10, 20, 40]
seeds = [0, 1]
accuracy = np.zeros((len(distances), len(seeds)))
loss_curves = {}
runs = [(i, d, j, s) for i, d in enumerate(distances) for j, s in enumerate(seeds)]
for i, distance, j, seed in tqdm(runs, desc="training RNNs"):
    torch.manual_seed(seed)
    model = RecallRNN()
    losses = train_recall_rnn(model, distance, steps=200, seed=seed)
    accuracy[i, j] = recall_accuracy(model, distance, n=1000, seed=10_000 + seed)
    loss_curves.setdefault(distance, losses)

for distance, accs in zip(distances, accuracy):
    print(f"distance {distance:3d}: accuracy {accs.round(3)}")

# %%
chance = 1 / RecallVocab().n_symbols
fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(12, 4))
for j in range(len(seeds)):
    ax_acc.plot(distances, accuracy[:, j], "o", color="tab:blue", alpha=0.5,
                label="one training run" if j == 0 else None)
ax_acc.plot(distances, accuracy.mean(axis=1), "-", color="tab:blue", label="mean over runs")
ax_acc.axhline(chance, color="gray", linestyle="--", label=f"chance (1/{RecallVocab().n_symbols})")
ax_acc.set_xscale("log", base=2)
ax_acc.set_xticks(distances, [str(d) for d in distances])
ax_acc.set_ylim(0, 1.05)
ax_acc.set_title("RNN recall accuracy collapses with distance")
ax_acc.set_xlabel("distance from symbol to query (steps)")
ax_acc.set_ylabel("accuracy on fresh sequences (fraction)")
ax_acc.legend()
for distance, losses in loss_curves.items():
    ax_loss.plot(losses, label=f"distance {distance}")
ax_loss.axhline(np.log(RecallVocab().n_symbols), color="gray", linestyle="--", label="loss of guessing (ln 8)")
ax_loss.set_title("Training loss (first seed)")
ax_loss.set_xlabel("training step")
ax_loss.set_ylabel("cross-entropy (nats)")
ax_loss.legend()
plt.show()

# %% [markdown]
# At short distances the RNN learns the task almost perfectly. As the distance grows the loss stays
# stuck at $\ln 8$, the loss of guessing: the gradient that should tell the first step "your token was
# the answer" has to cross every step in between, and, as section 2 showed, it arrives too weak to learn from.
# (With a much larger budget, careful initialisation or gated cells such as LSTMs, an RNN gets further
# — but the cost keeps growing with the distance. Notebook 02 solves the same task at every distance,
# because attention connects the query to the symbol in one step.)
#
# ## 5. The fixed-size bottleneck
#
# The recall task asks the model to keep one symbol. Many real tasks need much more: translating a
# sentence, answering a question about any earlier word, copying a paragraph. The information needed grows
# with the length of the input, while the RNN must compress the whole prefix into the same $d_h$ numbers
# $h_T$ before the question is even asked — and it cannot know in advance which details will be asked for.
#
# Attention, next notebook, removes the bottleneck too: it keeps **every** state $h_1, \dots, h_T$ and
# lets each query look back at all of them.

# %% [markdown]
# ### Written question (2 points, graded by hand)
# Answer in the cell below, in a few sentences.
#
# (a) An RNN with $d_h = 32$ hidden units in float32 reads text over a vocabulary of $V = 50{,}000$
# tokens. From about what length $T$ on must two different inputs end in exactly the same state $h_T$,
# whatever the weights? What follows for a question about the input asked after step $T$? And why does a
# real RNN run out of room at much shorter lengths than your number?
#
# (b) Our RNN failed the recall task at distance 40, although the answer is only one of 8 symbols.
# Was that failure the bottleneck of (a)? Argue with numbers, and say what the loss curves above tell you.

# %% [markdown] nbgrader={"grade": true, "grade_id": "why_bottleneck", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# *Model answer.* (a) $h_T$ is 32 float32 numbers, so it can take at most $2^{32 \cdot 32} = 2^{1024}$
# distinct values. There are $V^T = 2^{T \log_2 V}$ inputs of length $T$, with $\log_2 50{,}000 \approx 15.6$
# bits per token, so once $15.6\,T > 1024$, that is from about $T = 66$ tokens on, there are more inputs
# than states, and by the pigeonhole principle two different inputs must share the same $h_T$, however
# the network was trained. Everything after step $T$, the question included, is computed from $h_T$, so the
# two inputs get the same answer: a question about a position where they differ is answered wrongly for
# one of them. Only a larger $d_h$ moves the limit, and only in proportion. A real RNN fails much sooner:
# the readout and the later steps are smooth functions, so states must differ by far more than the last
# bit of a float to be told apart reliably; the same weights write
# every step into the same vector and overwrite older content; and training finds nothing like an optimal
# code.
#
# (b) No. The answer is $\log_2 8 = 3$ bits and $h_T$ has 32 numbers. A solution even exists inside this
# very model: three hidden units with a self-weight of about 3 and no input from noise tokens act as
# latches — $h = \tanh(3h)$ has stable fixed points near $\pm 0.995$ — so the symbol's 3 bits, written in
# at step 1, survive any number of steps, and a linear head can read the 8 sign patterns. The model *could*
# represent the answer; training did not find it. The loss curves show why: at distances 20 and 40 the loss
# sits at $\ln 8 \approx 2.08$ (pure guessing) from the first step to the last, so no useful gradient reached the
# first token — as expected when $\|\partial h_T / \partial h_{T-d}\|$ shrinks exponentially with $d$ (section 2).
# The failure is vanishing gradients, not the bottleneck.

# %% [markdown]
# ## 6. Time grows with length, one step after another
#
# The loop in your `rnn_forward` cannot be parallelised over time: step $t$ needs $h_{t-1}$. A GPU
# with thousands of cores still runs $T$ steps one after another, and the time of a forward pass grows
# linearly with the length however wide the machine is. To see it, you need a clock you can trust.
#
# ### Exercise 5 (2 points): a timer
# *Difficulty: ★☆☆ · about 5 minutes*
#
# Write `measure_time(fn, lengths, repeats)`: for each length `L`, call `fn(L)` exactly `repeats` times,
# time each call with `time.perf_counter()`, and keep the **median** (a single slow call — another
# program waking up, a cache miss — moves the mean but not the median). Return the medians in seconds,
# one per length, in the order given. The test uses a fake `fn` whose calls take different, known times
# (one slow call per length): only the median gives the expected numbers.
#
# <details><summary>Hint 1</summary>
#
# Two loops: over the lengths, and inside it over the `repeats` calls. Read `time.perf_counter()` just
# before and just after each call and keep the difference. No extra warm-up call inside the function:
# the test counts the calls.
# </details>
#
# <details><summary>Hint 2</summary>
#
# Of the `repeats` durations for one length keep the median (`np.median`), in seconds: not the
# mean, the sum, the minimum or the maximum, and not milliseconds. In the visible test the three calls
# at length $L$ take $3L$, $L$ and $10L$ ms, so for $L = 1$ the answer is about 0.003 s (the mean would
# be about 0.0047 s).
# </details>

# %% nbgrader={"grade": false, "grade_id": "measure_time", "locked": false, "schema_version": 3, "solution": true, "task": false}
def measure_time(fn, lengths, repeats=5):
    """Median wall-clock seconds of fn(L) for each L in `lengths`.

    fn:      a function of one integer (the sequence length)
    lengths: a list of lengths
    repeats: how many times to call fn(L) for each length (exactly that many)

    Returns a numpy array of shape (len(lengths),): the median time in seconds of fn(L).
    """
    ### BEGIN SOLUTION
    medians = []
    for L in lengths:
        durations = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn(L)
            durations.append(time.perf_counter() - start)
        medians.append(np.median(durations))
    return np.array(medians)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "measure_time_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import rnn_limitations as check
check.measure_time_example(measure_time)
### BEGIN HIDDEN TESTS
check.measure_time(measure_time)
### END HIDDEN TESTS

# %% [markdown]
# Now time three ways of reading **one** sequence of 64-dimensional vectors, as the length $T$ grows:
#
# - **your numpy RNN** — a Python loop over time: $T$ sequential steps;
# - **`torch.nn.RNN`** — the same recurrence, its loop in compiled code: still $T$ sequential steps;
# - **no recurrence**: one matrix product applied to all positions at once, $\tanh(x W_{xh}^\top + b)$
#   — the same arithmetic as the RNN's input term, but no position waits for another: **1 step**. This is
#   the kind of work attention layers are made of.
#
# Each function is called once per length before timing (a warm-up: the first call pays for memory
# allocation and caches), then 9 times; the plot shows the medians. One sequence, not a batch: reading a
# single input is where waiting for each step hurts most.

# %%
width = 64
lengths = [16, 32, 64, 128, 256, 512, 1024]
rng = np.random.default_rng(4)
Wx_t, Wh_t, b_t = random_rnn_weights(width, width, radius=0.9, rng=rng)
inputs = {L: rng.normal(size=(1, L, width)) for L in lengths}  # (batch 1, T, width)
h0_t = np.zeros((1, width))
torch_rnn_t = torch.nn.RNN(width, width, batch_first=True, dtype=torch.float64)
inputs_torch = {L: torch.from_numpy(v) for L, v in inputs.items()}

methods = {
    "your numpy RNN (T sequential steps)": lambda L: rnn_forward(inputs[L], h0_t, Wx_t, Wh_t, b_t),
    "torch.nn.RNN (T sequential steps)": lambda L: torch_rnn_t(inputs_torch[L]),
    "all positions at once (1 step)": lambda L: np.tanh(inputs[L] @ Wx_t.T + b_t),
}
timings = {}
with torch.no_grad():
    for name, fn in tqdm(methods.items(), desc="timing"):
        for L in lengths:  # warm-up, not timed
            fn(L)
        timings[name] = np.asarray(measure_time(fn, lengths, repeats=9))

fig, (ax_total, ax_token) = plt.subplots(1, 2, figsize=(12, 4))
for name, seconds in timings.items():
    ax_total.loglog(lengths, 1000 * seconds, "o-", label=name)
    ax_token.plot(lengths, 1e6 * seconds / np.array(lengths), "o-", label=name)
ax_total.set_title("Time of one forward pass (log-log)")
ax_total.set_xlabel("sequence length T (tokens)")
ax_total.set_ylabel("median time per forward pass (ms)")
ax_total.legend()
ax_token.set_xscale("log", base=2)
ax_token.set_ylim(bottom=0)
ax_token.set_title("Time per token: the cost of one sequential step")
ax_token.set_xlabel("sequence length T (tokens)")
ax_token.set_ylabel("median time / T (µs per token)")
fig.suptitle(f"Reading one sequence of width {width} on this CPU")
fig.tight_layout()
plt.show()
for name, seconds in timings.items():
    per_token = 1e6 * seconds / np.array(lengths)
    print(f"{name:38s} µs per token: {per_token.round(1)}")

# %% [markdown]
# **What to see.** On the left all three lines rise with slope 1: on a 2-core CPU there is little
# parallel hardware, so every method does its arithmetic more or less in turn and doubling $T$ doubles the
# time. The right panel shows what that time is made of. Both RNNs pay a roughly **fixed price per token**
# — one sequential step, several microseconds of overhead and a small matrix product — and they must pay it
# $T$ times in a row, because step $t$ cannot start before step $t-1$ has finished. The position-wise
# product does the same input arithmetic for all $T$ positions in **one** step and costs several times
# less per token even here. (Timings on a shared machine are noisy: expect the lines to wiggle by tens of
# percent, not the gap between them to close.)
#
# On a GPU the contrast grows: the one-step computation runs all $T$ positions side by side, so its time
# barely moves until the hardware is full, while the RNN's $T$ dependent steps give the extra cores nothing
# to do and its time keeps growing like $T$. (Attention is not free either — comparing every position
# with every other costs $T^2$ work; notebooks 08 and 10 deal with that.)
#
# ## Summary
#
# - An RNN compresses a sequence into one state, $h_t = \tanh(W_{xh} x_t + W_{hh} h_{t-1} + b)$, one
#   step at a time; your numpy version matches `torch.nn.RNN` (whose two biases just add up).
# - The gradient linking step $T$ to step $T-d$ is a product of $d$ Jacobians
#   $\mathrm{diag}(1 - h_s^2)\,W_{hh}$: its norm shrinks (or explodes) exponentially, at a rate set by the
#   spectral radius of $W_{hh}$ and the saturation of the tanh.
# - On the recall task that makes learning collapse with distance: perfect at 2–5 steps, chance at 40,
#   with the same model and budget.
# - Even when learning works, everything the model knows must fit in $d_h$ numbers, and reading a
#   sequence takes $T$ steps that cannot run in parallel.
#
# **Next: [02 · Attention](../02_attention/02_attention.ipynb).** Attention keeps every state, lets the
# query look up the one it needs directly — one step, whatever the distance — and processes all
# positions in parallel. You will use the recall task you just built to watch it succeed where the RNN
# failed.
