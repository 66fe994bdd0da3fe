"""The reference modules of notebook 09 (CLIP): shapes.py (images, captions, tokenizer), vision.py (patches, ViT)
and clip.py (text tower, CLIP, loss, zero-shot, retrieval, training), against real oracles: torch's Conv2d,
hand computations, and transformers' CLIPModel with our weights copied in. The checks of the notebook's exercises
are tested in test_grading_clip.py."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from transformer_course import clip, shapes, vision

ALL_PAIRS = list(itertools.product(shapes.COLOURS, shapes.SHAPES))


@pytest.fixture(scope="module")
def tok():
    return shapes.ShapeTokenizer()


# ================================================================== shapes ===

def test_render_is_deterministic_for_a_seed():
    colours, kinds = ["red", "blue", "yellow"], ["circle", "cross", "triangle"]
    a = shapes.render(colours, kinds, seed=7)
    b = shapes.render(colours, kinds, seed=7)
    assert torch.equal(a, b)
    assert not torch.equal(a, shapes.render(colours, kinds, seed=8))


def test_make_batch_is_deterministic_for_a_seed(tok):
    a = shapes.make_batch(16, tok, seed=3)
    b = shapes.make_batch(16, tok, seed=3)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert a[2] == b[2] and a[3] == b[3]
    c = shapes.make_batch(16, tok, seed=4)
    assert not torch.equal(a[0], c[0])


def test_make_batch_shapes_range_and_captions(tok):
    images, ids, captions, pairs = shapes.make_batch(24, tok, seed=0)
    assert images.shape == (24, 3, 32, 32) and images.dtype == torch.float32
    assert float(images.min()) >= 0.0 and float(images.max()) <= 1.0
    assert ids.shape == (24, tok.context_length) and ids.dtype == torch.long
    assert len(captions) == len(pairs) == 24
    for text, (c, s), row in zip(captions, pairs, ids):
        assert text in [shapes.caption(c, s, t) for t in shapes.TEMPLATES]
        assert tok.decode(row) == text


@pytest.mark.parametrize("image_size", [16, 32, 48])
def test_render_size_and_range(image_size):
    images = shapes.render(["green", "purple"], ["square", "circle"], image_size=image_size, seed=1)
    assert images.shape == (2, 3, image_size, image_size)
    assert float(images.min()) >= 0.0 and float(images.max()) <= 1.0


def test_shape_pixels_carry_the_colour():
    """The most common colour among the bright (non-background) pixels is the named colour, within its jitter."""
    for colour, kind in ALL_PAIRS:
        images = shapes.render([colour] * 4, [kind] * 4, seed=11)
        for img in images:
            pixels = img.reshape(3, -1).T                                   # (S*S, 3)
            bright = pixels[pixels.max(dim=1).values > 0.45]                # the background is about 0.08 +- 0.05
            assert len(bright) >= 20, (colour, kind, len(bright))
            values, counts = torch.unique(bright, dim=0, return_counts=True)
            mode = values[counts.argmax()]
            assert counts.max() >= 20, (colour, kind)                      # one flat colour, not noise
            assert torch.allclose(mode, torch.tensor(shapes.COLOURS[colour]), atol=0.07 + 1e-6), (colour, kind, mode)
            # and it is closer to its own colour than to any other
            dist = {c: float((mode - torch.tensor(rgb)).abs().max()) for c, rgb in shapes.COLOURS.items()}
            assert min(dist, key=dist.get) == colour


def test_held_out_pairs_never_appear_in_training_batches(tok):
    seen = set()
    gen = np.random.default_rng(0)
    for _ in range(40):
        _, ids, captions, pairs = shapes.make_batch(64, tok, generator=gen)
        seen.update(pairs)
        for (c, s), text in zip(pairs, captions):
            assert (c, s) not in shapes.HELD_OUT
            assert c in text.split() and s in text.split()
    assert seen == set(shapes.TRAIN_PAIRS)            # and every training pair does appear


def test_train_pairs_cover_every_colour_and_shape():
    assert {c for c, _ in shapes.TRAIN_PAIRS} == set(shapes.COLOURS)
    assert {s for _, s in shapes.TRAIN_PAIRS} == set(shapes.SHAPES)
    assert not set(shapes.TRAIN_PAIRS) & set(shapes.HELD_OUT)
    assert set(shapes.TRAIN_PAIRS) | set(shapes.HELD_OUT) == set(ALL_PAIRS)
    assert {c for c, _ in shapes.HELD_OUT} == set(shapes.COLOURS)      # a held-out pair for every colour


@pytest.mark.parametrize("colours, kinds, match", [
    (["pink"], ["circle"], "unknown colour 'pink'"),
    (["red"], ["hexagon"], "unknown shape 'hexagon'"),
    (["red", "blue"], ["circle"], "2 colours for 1 shapes"),
])
def test_render_rejects_bad_input(colours, kinds, match):
    with pytest.raises(ValueError, match=match):
        shapes.render(colours, kinds, seed=0)


def test_make_batch_rejects_unknown_pair(tok):
    with pytest.raises(ValueError, match="unknown colour 'pink'"):
        shapes.make_batch(4, tok, pairs=[("pink", "circle")], seed=0)


# =============================================================== tokenizer ===

def test_eot_is_the_largest_id_and_not_two(tok):
    assert tok.eot_id == tok.vocab_size - 1 == max(tok.stoi.values())
    assert tok.eot_id != 2                           # transformers reads eos_token_id == 2 as a legacy config
    assert (tok.pad_id, tok.sot_id) == (0, 1)
    assert len(set(tok.itos)) == tok.vocab_size


def test_encode_decode_round_trip(tok):
    texts = [shapes.caption(c, s, t) for (c, s), t in itertools.product(ALL_PAIRS, shapes.TEMPLATES)]
    ids = tok.encode(texts)
    assert ids.shape == (len(texts), tok.context_length)
    assert (ids[:, 0] == tok.sot_id).all()
    assert ((ids == tok.eot_id).sum(dim=1) == 1).all()                # exactly one end-of-text token each
    for text, row in zip(texts, ids):
        n = len(text.split())
        assert int(row[n + 1]) == tok.eot_id and (row[n + 2:] == tok.pad_id).all()
        assert tok.decode(row) == text
        assert tok.decode(row.tolist()) == text
    assert torch.equal(tok.encode("a red circle"), tok.encode(["a red circle"]))


def test_encode_rejects_long_captions(tok):
    with pytest.raises(ValueError, match=r"needs 11 tokens .* more than the context length 8"):
        tok.encode("a photo of a picture of a red circle")
    short = shapes.ShapeTokenizer(context_length=4)
    with pytest.raises(ValueError, match="context length 4"):
        short.encode(["a red circle"])


def test_encode_rejects_unknown_words(tok):
    with pytest.raises(ValueError, match=r"unknown word\(s\) \['pink'\]"):
        tok.encode(["a red circle", "a pink circle"])


# ================================================================== vision ===

@pytest.mark.parametrize("seed", range(5))
def test_patchify_equals_conv2d(seed):
    gen = np.random.default_rng(seed)
    p = int(gen.integers(1, 6))
    B, C = int(gen.integers(1, 4)), int(gen.integers(1, 5))
    H, W = p * int(gen.integers(1, 5)), p * int(gen.integers(1, 5))
    d = int(gen.integers(1, 9))
    x = torch.from_numpy(gen.standard_normal((B, C, H, W)))
    torch.manual_seed(seed)
    conv = nn.Conv2d(C, d, kernel_size=p, stride=p, bias=False).double()
    with torch.no_grad():
        want = conv(x).flatten(2).transpose(1, 2)                          # (B, rows * cols, d)
        patches = vision.patchify(x, p)
        assert patches.shape == (B, (H // p) * (W // p), C * p * p)
        got = patches @ conv.weight.reshape(d, -1).T
        torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-12)
        emb = vision.PatchEmbedding(C, d, p).double()
        emb.proj.weight.copy_(conv.weight)
        torch.testing.assert_close(emb(x), want, atol=0, rtol=0)


def test_patchify_rejects_sizes_not_a_multiple():
    with pytest.raises(ValueError, match="not a multiple of the patch size 4"):
        vision.patchify(torch.zeros(1, 3, 10, 8), 4)


@pytest.mark.parametrize("shape", [(2, 3, 16, 16), (2, 1, 32, 32), (3, 32, 32), (2, 3, 32, 24)])
def test_vit_rejects_images_of_the_wrong_size(shape):
    vit = vision.VisionTransformer(image_size=32, patch_size=8, d_model=16, n_layers=1, n_heads=2)
    with pytest.raises(ValueError, match=r"expected images of shape \(B, 3, 32, 32\)"):
        vit(torch.rand(shape))


def test_vit_output_and_bad_patch_size():
    vit = vision.VisionTransformer(image_size=32, patch_size=8, d_model=16, n_layers=1, n_heads=2)
    pooled, tokens = vit(torch.rand(2, 3, 32, 32), return_tokens=True)
    assert pooled.shape == (2, 16) and tokens.shape == (2, 17, 16)
    with pytest.raises(ValueError, match="not a multiple of patch_size"):
        vision.VisionTransformer(image_size=30, patch_size=8)


# ======================================================= transformers' CLIP ===

def _default_cfg(tok):
    return clip.CLIPConfig(vocab_size=tok.vocab_size, eos_token_id=tok.eot_id, context_length=tok.context_length)


def _random_cfg(tok, seed):
    gen = np.random.default_rng(seed)
    heads = int(gen.integers(1, 4))
    width = heads * int(gen.integers(2, 6))
    p = int(gen.integers(2, 5))
    return clip.CLIPConfig(vocab_size=tok.vocab_size, eos_token_id=tok.eot_id, context_length=tok.context_length,
                           image_size=p * int(gen.integers(2, 4)), patch_size=p, vision_width=width,
                           vision_layers=int(gen.integers(1, 3)), vision_heads=heads, text_width=width,
                           text_layers=int(gen.integers(1, 3)), text_heads=heads, embed_dim=int(gen.integers(2, 9)))


def _random_model(cfg, seed=0):
    torch.manual_seed(seed)
    model = clip.CLIP(cfg).double().eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.tensor(1.1, dtype=p.dtype) if name == "logit_scale" else torch.randn_like(p) * 0.3)
    return model


def _hf_copy(model, hf_cfg):
    from transformers import CLIPModel

    hf = CLIPModel(hf_cfg).double().eval()
    clip.copy_to_hf(model, hf)
    return hf


def _batch(tok, cfg, seed, n=6):
    images, ids, _, _ = shapes.make_batch(n, tok, image_size=cfg.image_size, seed=seed)
    return images.double(), ids


@pytest.mark.parametrize("which", ["default", "random0", "random1"])
def test_parity_with_transformers_clip(tok, which):
    cfg = _default_cfg(tok) if which == "default" else _random_cfg(tok, int(which[-1]))
    model = _random_model(cfg)
    hf = _hf_copy(model, clip.hf_clip_config(cfg))
    images, ids = _batch(tok, cfg, seed=5)
    with torch.no_grad():
        out = hf(input_ids=ids, pixel_values=images, return_loss=True)
        img, txt = model.encode_image(images), model.encode_text(ids)
        logits_per_image, logits_per_text = model(images, ids)
        loss = clip.clip_loss(img, txt, model.logit_scale)
    torch.testing.assert_close(out.image_embeds, nn.functional.normalize(img, dim=-1), atol=1e-6, rtol=0)
    torch.testing.assert_close(out.text_embeds, nn.functional.normalize(txt, dim=-1), atol=1e-6, rtol=0)
    torch.testing.assert_close(out.logits_per_image, logits_per_image, atol=1e-6, rtol=0)
    torch.testing.assert_close(out.logits_per_text, logits_per_text, atol=1e-6, rtol=0)
    assert abs(float(out.loss) - float(loss)) < 1e-6
    assert float(loss) > 0.1                               # a random model: the loss is not trivially zero


def test_hf_names_map_every_parameter_one_to_one(tok):
    from transformers import CLIPModel

    for cfg in (_default_cfg(tok), _random_cfg(tok, 0)):
        names = clip.HF_NAMES(cfg)
        mine = dict(clip.CLIP(cfg).named_parameters())
        theirs = dict(CLIPModel(clip.hf_clip_config(cfg)).named_parameters())
        assert set(names) == set(mine)
        assert sorted(names.values()) == sorted(theirs)
        for a, b in names.items():
            assert mine[a].shape == theirs[b].shape, (a, b)


def test_without_our_eos_token_id_transformers_pools_position_zero(tok):
    """Why hf_clip_config must set eos_token_id: with CLIPTextConfig's default (49407, not in a small vocabulary)
    CLIPModel reads the text features at position 0 (the start token), not at the end-of-text token."""
    cfg = _default_cfg(tok)
    model = _random_model(cfg)
    hf_cfg = clip.hf_clip_config(cfg)
    assert hf_cfg.text_config.eos_token_id == tok.eot_id
    hf_cfg.text_config.eos_token_id = 49407
    hf = _hf_copy(model, hf_cfg)
    images, ids = _batch(tok, cfg, seed=6)
    with torch.no_grad():
        out = hf(input_ids=ids, pixel_values=images)
        ours = nn.functional.normalize(model.encode_text(ids), dim=-1)
        assert (out.text_embeds - ours).abs().max() > 1e-2
        torch.testing.assert_close(out.image_embeds, nn.functional.normalize(model.encode_image(images), dim=-1),
                                   atol=1e-6, rtol=0)
        model.text.eos_token_id = tok.sot_id               # read at the first <sot>: position 0
        at_zero = nn.functional.normalize(model.encode_text(ids), dim=-1)
    torch.testing.assert_close(out.text_embeds, at_zero, atol=1e-6, rtol=0)


# ============================================================== text tower ===

def test_text_encoder_rejects_long_ids_and_missing_eot(tok):
    enc = clip.TextEncoder(tok.vocab_size, tok.context_length, tok.eot_id, d_model=16, n_layers=1, n_heads=2)
    ids = tok.encode(["a red circle", "a photo of a blue cross"])
    assert enc(ids).shape == (2, 16)
    too_long = torch.cat([ids, torch.zeros(2, 1, dtype=torch.long)], dim=1)
    with pytest.raises(ValueError, match="longer than the context length 8"):
        enc(too_long)
    no_eot = ids.clone()
    no_eot[1][no_eot[1] == tok.eot_id] = tok.pad_id
    with pytest.raises(ValueError, match="end-of-text token"):
        enc(no_eot)
    with pytest.raises(ValueError, match=r"shape \(B, T\)"):
        enc(ids[0])


def test_text_encoder_ignores_what_follows_the_eot(tok):
    """Causal blocks: the padding after a caption's end-of-text token cannot change its features."""
    torch.manual_seed(0)
    enc = clip.TextEncoder(tok.vocab_size, tok.context_length, tok.eot_id, d_model=16, n_layers=2, n_heads=2).eval()
    ids = tok.encode(["a red circle"])
    other = ids.clone()
    other[0, 5:] = torch.tensor([3, 4, 5])
    with torch.no_grad():
        torch.testing.assert_close(enc(ids), enc(other))


# =============================================================== clip_loss ===

def test_clip_loss_by_hand():
    img = torch.tensor([[1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    txt = torch.tensor([[2.0, 0.0], [0.0, 0.5]], dtype=torch.float64)
    scale = torch.tensor(math.log(2.0), dtype=torch.float64)            # logits = 2 * cosine
    r = math.sqrt(2.0)                                                  # logits [[2, 0], [r, r]]
    rows = (math.log(1 + math.exp(-2)) + math.log(2)) / 2
    cols = (math.log(1 + math.exp(r - 2)) + math.log(1 + math.exp(-r))) / 2
    assert float(clip.clip_loss(img, txt, scale)) == pytest.approx((rows + cols) / 2, abs=1e-12)


def test_clip_loss_is_symmetric_and_scale_free():
    gen = torch.Generator().manual_seed(0)
    img = torch.randn(7, 5, generator=gen, dtype=torch.float64)
    txt = torch.randn(7, 5, generator=gen, dtype=torch.float64)
    s = torch.tensor(2.3, dtype=torch.float64)
    loss = clip.clip_loss(img, txt, s)
    torch.testing.assert_close(clip.clip_loss(txt, img, s), loss)
    torch.testing.assert_close(clip.clip_loss(3 * img, 0.5 * txt, s), loss)   # embeddings are normalised
    perm = torch.randperm(7, generator=gen)
    torch.testing.assert_close(clip.clip_loss(img[perm], txt[perm], s), loss)


# ========================================================== zero-shot, recall ===

def test_recall_at_k_by_hand():
    sim = torch.tensor([[0.9, 0.1, 0.0], [0.8, 0.5, 0.1], [0.2, 0.3, 0.1]])
    assert clip.recall_at_k(sim, 1) == pytest.approx(1 / 3)
    assert clip.recall_at_k(sim, 2) == pytest.approx(2 / 3)
    assert clip.recall_at_k(sim, 3) == pytest.approx(1.0)
    assert clip.recall_at_k(sim, 10) == pytest.approx(1.0)               # k beyond the batch: every row hits
    assert clip.recall_at_k(torch.eye(4), 1) == 1.0
    with pytest.raises(ValueError, match="k must be at least 1"):
        clip.recall_at_k(sim, 0)


def test_class_embeddings_unit_rows_and_one_template(tok):
    model = _random_model(_default_cfg(tok))
    emb = clip.class_embeddings(model, tok, ALL_PAIRS, shapes.TEMPLATES)
    assert emb.shape == (20, model.config.embed_dim)
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(20, dtype=emb.dtype))
    # with one template a class's embedding is its caption's normalised text embedding
    one = clip.class_embeddings(model, tok, ALL_PAIRS[:3], ["a photo of a {c} {s}"])
    with torch.no_grad():
        ids = tok.encode([f"a photo of a {c} {s}" for c, s in ALL_PAIRS[:3]])
        want = nn.functional.normalize(model.encode_text(ids), dim=-1)
    torch.testing.assert_close(one, want)


def test_zero_shot_predict_picks_the_most_similar_class(tok):
    model = _random_model(_default_cfg(tok))
    images, _ = _batch(tok, model.config, seed=2, n=5)
    with torch.no_grad():
        own = nn.functional.normalize(model.encode_image(images), dim=-1)
    assert torch.equal(clip.zero_shot_predict(model, images, own), torch.arange(5))
    assert torch.equal(clip.zero_shot_predict(model, images, own.flip(0)), torch.arange(5).flip(0))


# ================================================================ training ===

def test_train_clip_runs_and_clamps_logit_scale(tok):
    torch.manual_seed(0)
    model = clip.CLIP(_default_cfg(tok))
    with torch.no_grad():
        model.logit_scale.fill_(5.0)
    history = clip.train_clip(model, tok, steps=30, batch_size=32, progress=False)
    assert set(history) == {"loss", "logit_scale"}
    assert len(history["loss"]) == len(history["logit_scale"]) == 30
    assert all(math.isfinite(v) for v in history["loss"])
    assert all(0.0 <= v <= clip.LOGIT_SCALE_MAX + 1e-6 for v in history["logit_scale"])
    assert float(model.logit_scale.detach()) <= math.log(100) + 1e-6
    assert not model.training
