"""Multi-head attention, positions and blocks (notebooks 03-05): the reference
implementations against their real oracles (torch.nn.MultiheadAttention,
torch.nn.LayerNorm, TransformerEncoderLayer/DecoderLayer, transformers' Llama
rotary code) and the interfaces later notebooks rely on (masks, cross-attention
memory, the key/value cache, RoPE through the attention module)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from transformer_course import attention as att
from transformer_course import blocks, positions
from transformer_course.data import DigitVocab, make_digit_batch
from transformer_course.seq2seq import (Seq2SeqConfig, Seq2SeqTransformer, exact_match, greedy_decode, shift_right,
                                        train_seq2seq)


def close(a, b, atol=1e-5):
    torch.testing.assert_close(a, b, atol=atol, rtol=1e-5)


# ================================================================ heads ===

class TestHeads:
    def test_split_then_merge_is_identity_numpy_and_torch(self):
        x = np.random.default_rng(0).normal(size=(2, 5, 12))
        assert att.split_heads(x, 3).shape == (2, 3, 5, 4)
        np.testing.assert_array_equal(att.merge_heads(att.split_heads(x, 3)), x)
        t = torch.randn(2, 5, 12)
        assert torch.equal(att.merge_heads(att.split_heads(t, 4)), t)

    def test_head_h_holds_features_h_dhead_to_next(self):
        x = torch.arange(2 * 3 * 8, dtype=torch.float32).reshape(2, 3, 8)
        heads = att.split_heads(x, 2)
        assert torch.equal(heads[:, 1], x[:, :, 4:8])

    def test_reshape_without_transpose_differs(self):
        x = torch.randn(2, 5, 12)
        assert not torch.allclose(x.reshape(2, 3, 5, 4), att.split_heads(x, 3))

    def test_indivisible_raises(self):
        with pytest.raises(ValueError, match="divisible"):
            att.split_heads(torch.randn(1, 2, 10), 3)


def torch_pair(d=16, h=4, bias=True):
    theirs = nn.MultiheadAttention(d, h, bias=bias, batch_first=True)
    mine = att.load_torch_mha(att.MultiHeadAttention(d, h, bias=bias), theirs)
    return mine.eval(), theirs.eval()


class TestMultiHeadAttention:
    def test_self_attention_matches_torch(self):
        mine, theirs = torch_pair()
        x = torch.randn(3, 7, 16)
        out, w = mine(x, need_weights=True)
        ref, ref_w = theirs(x, x, x, need_weights=True, average_attn_weights=False)
        close(out, ref)
        close(w, ref_w)
        close(mine(x)[0], ref)                                   # fused path agrees too

    def test_cross_attention_different_lengths(self):
        mine, theirs = torch_pair(d=24, h=3)
        x, mem = torch.randn(2, 4, 24), torch.randn(2, 9, 24)
        out, w = mine(x, mem, need_weights=True)
        assert out.shape == (2, 4, 24) and w.shape == (2, 3, 4, 9)
        close(out, theirs(x, mem, mem)[0])

    def test_padding_and_causal_masks(self):
        mine, theirs = torch_pair()
        x = torch.randn(3, 6, 16)
        keep = att.padding_mask(torch.tensor([6, 4, 2]), 6)             # (B, 1, T), True = real
        close(mine(x, mask=keep)[0], theirs(x, x, x, key_padding_mask=~keep[:, 0])[0])
        causal = att.causal_mask(6, device="cpu")
        close(mine(x, is_causal=True)[0], theirs(x, x, x, attn_mask=~causal)[0])
        close(mine(x, mask=causal)[0], mine(x, is_causal=True)[0])

    def test_no_bias(self):
        mine, theirs = torch_pair(bias=False)
        x = torch.randn(2, 5, 16)
        close(mine(x)[0], theirs(x, x, x)[0])

    def test_param_count(self):
        for d, h, bias in ((16, 4, True), (64, 8, False), (768, 12, True)):
            m = att.MultiHeadAttention(d, h, bias=bias)
            assert sum(p.numel() for p in m.parameters()) == att.mha_param_count(d, h, bias)
            assert att.mha_param_count(d, h, bias) == sum(p.numel() for p in nn.MultiheadAttention(d, h, bias=bias).parameters())

    def test_kv_cache_equals_full_recompute(self):
        torch.manual_seed(0)
        m = att.MultiHeadAttention(16, 4).eval()
        x = torch.randn(2, 7, 16)
        full = m(x, is_causal=True)[0]
        cache = att.KVCache()
        steps = [m(x[:, :3], is_causal=True, kv_cache=cache)[0]]          # prompt of 3
        for t in range(3, 7):
            steps.append(m(x[:, t:t + 1], is_causal=True, kv_cache=cache)[0])
        close(torch.cat(steps, dim=1), full)
        assert len(cache) == 7

    def test_kv_cache_chunk_uses_bottom_right_causal_mask(self):
        m = att.MultiHeadAttention(8, 2).eval()
        x = torch.randn(1, 6, 8)
        cache = att.KVCache()
        a = m(x[:, :2], is_causal=True, kv_cache=cache)[0]
        b = m(x[:, 2:], is_causal=True, kv_cache=cache)[0]               # 4 queries over 6 keys
        close(torch.cat([a, b], 1), m(x, is_causal=True)[0])

    def test_dropout_only_in_training(self):
        m = att.MultiHeadAttention(16, 4, dropout=0.5)
        x = torch.randn(2, 5, 16)
        m.eval()
        close(m(x)[0], m(x)[0])
        m.train()
        assert not torch.allclose(m(x)[0], m(x)[0])


# ============================================================ positions ===

class TestSinusoidal:
    def test_matches_paper_formula_loop(self):
        P, d = 20, 16
        table = positions.sinusoidal_table(P, d)
        for p in range(P):
            for i in range(d // 2):
                angle = p / 10000 ** (2 * i / d)
                assert table[p, 2 * i] == pytest.approx(math.sin(angle), abs=1e-12)
                assert table[p, 2 * i + 1] == pytest.approx(math.cos(angle), abs=1e-12)

    def test_module_adds_table(self):
        pe = positions.SinusoidalPositions(10, 8)
        x = torch.zeros(2, 6, 8)
        close(pe(x)[0], torch.tensor(positions.sinusoidal_table(6, 8), dtype=torch.float32))
        with pytest.raises(ValueError, match="max_positions"):
            pe(torch.zeros(1, 11, 8))

    def test_learned_positions(self):
        lp = positions.LearnedPositions(10, 8)
        x = torch.zeros(1, 4, 8)
        close(lp(x, offset=3)[0], lp.embedding.weight[3:7])


class TestRope:
    def llama_rotary(self, d_head=8, n_heads=4, T=10, theta=10000.0):
        from transformers import LlamaConfig
        from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb
        cfg = LlamaConfig(hidden_size=d_head * n_heads, num_attention_heads=n_heads, num_key_value_heads=n_heads,
                          num_hidden_layers=1, intermediate_size=64, vocab_size=32, max_position_embeddings=64,
                          rope_theta=theta)
        return LlamaRotaryEmbedding(config=cfg), apply_rotary_pos_emb

    def test_parity_with_transformers_llama(self):
        rot, apply_hf = self.llama_rotary()
        q, k = torch.randn(2, 4, 10, 8), torch.randn(2, 4, 10, 8)
        pos = torch.arange(10)[None].expand(2, 10)
        cos_hf, sin_hf = rot(q, pos)
        cos, sin = positions.rope_cos_sin(10, 8)
        close(cos, cos_hf[0])
        close(sin, sin_hf[0])
        q_hf, k_hf = apply_hf(q, k, cos_hf, sin_hf)
        close(positions.apply_rope(q, cos, sin), q_hf)
        close(positions.apply_rope(k, cos, sin), k_hf)

    def test_parity_with_other_positions_and_base(self):
        rot, apply_hf = self.llama_rotary(theta=500.0)
        q = torch.randn(1, 4, 5, 8)
        pos = torch.tensor([[3, 9, 20, 21, 40]])
        cos_hf, sin_hf = rot(q, pos)
        cos, sin = positions.rope_cos_sin(pos[0], 8, base=500.0)
        close(positions.apply_rope(q, cos, sin), apply_hf(q, q, cos_hf, sin_hf)[0])

    def test_relative_position_property(self):
        d = 16
        q, k = torch.randn(d, dtype=torch.float64), torch.randn(d, dtype=torch.float64)
        cos, sin = positions.rope_cos_sin(64, d, dtype=torch.float64)
        rot = lambda x, p: positions.apply_rope(x, cos[p], sin[p])  # noqa: E731
        for m, n in ((5, 2), (40, 37), (12, 9)):                       # all distance 3
            assert float(rot(q, m) @ rot(k, n)) == pytest.approx(float(rot(q, 3) @ rot(k, 0)), abs=1e-10)
        assert float(rot(q, 7) @ rot(k, 0)) != pytest.approx(float(rot(q, 3) @ rot(k, 0)), abs=1e-3)

    def test_rotation_preserves_norm(self):
        x = torch.randn(3, 10, 8, dtype=torch.float64)
        cos, sin = positions.rope_cos_sin(10, 8, dtype=torch.float64)
        close(positions.apply_rope(x, cos, sin).norm(dim=-1), x.norm(dim=-1))

    def test_interleaved_is_a_permutation_of_halves(self):
        x = torch.randn(2, 6, 8)
        cos, sin = positions.rope_cos_sin(6, 8)
        inter = positions.apply_rope_interleaved(x, 6)
        close(positions.interleaved_to_halves(inter), positions.apply_rope(positions.interleaved_to_halves(x), cos, sin))
        assert torch.equal(positions.halves_to_interleaved(positions.interleaved_to_halves(x)), x)
        assert not torch.allclose(inter, positions.apply_rope(x, cos, sin), atol=1e-3)

    def test_rotary_through_attention_with_cache(self):
        m = att.MultiHeadAttention(16, 2).eval()
        x = torch.randn(1, 6, 16)
        rotary = positions.rope_cos_sin(32, 8)
        full = m(x, is_causal=True, rotary=rotary)[0]
        cache = att.KVCache()
        parts = [m(x[:, :4], is_causal=True, rotary=rotary, kv_cache=cache)[0]]
        parts += [m(x[:, t:t + 1], is_causal=True, rotary=rotary, kv_cache=cache)[0] for t in (4, 5)]
        close(torch.cat(parts, 1), full)


class TestPermutation:
    def test_attention_without_positions_is_equivariant(self):
        m = att.MultiHeadAttention(16, 4).eval()
        assert positions.permutation_gap(m, torch.randn(2, 8, 16)) < 1e-5

    def test_positions_break_it(self):
        m = att.MultiHeadAttention(16, 4).eval()
        pe = positions.SinusoidalPositions(8, 16)
        assert positions.permutation_gap(lambda x: m(pe(x)), torch.randn(2, 8, 16)) > 1e-2


# =============================================================== blocks ===

class TestLayerNorm:
    @pytest.mark.parametrize("eps", [1e-5, 1e-12])
    def test_matches_torch(self, eps):
        theirs = nn.LayerNorm(10, eps=eps)
        nn.init.normal_(theirs.weight)
        nn.init.normal_(theirs.bias)
        mine = blocks.LayerNorm(10, eps)
        mine.load_state_dict(theirs.state_dict())
        x = torch.randn(3, 4, 10) * 5 + 2
        close(mine(x), theirs(x))

    def test_eps_matters_at_small_variance(self):
        x = torch.randn(2, 8) * 1e-3
        assert not torch.allclose(blocks.layer_norm(x, None, None, 1e-5), blocks.layer_norm(x, None, None, 1e-12),
                                  atol=1e-3)


def encoder_pair(norm_first, d=16, h=4, ff=32, activation="relu"):
    theirs = nn.TransformerEncoderLayer(d, h, ff, dropout=0.0, batch_first=True, norm_first=norm_first,
                                        activation=activation)
    for p in theirs.parameters():                    # away from LayerNorm's identity init
        nn.init.normal_(p, std=0.3)
    mine = blocks.EncoderBlock(d, h, ff, norm_first=norm_first, activation=activation)
    return blocks.load_torch_encoder_layer(mine, theirs).eval(), theirs.eval()


@pytest.mark.parametrize("norm_first", [False, True])
class TestBlocksAgainstTorch:
    def test_encoder(self, norm_first):
        mine, theirs = encoder_pair(norm_first)
        x = torch.randn(2, 7, 16)
        close(mine(x), theirs(x))
        keep = att.padding_mask(torch.tensor([7, 3]), 7)
        ref = theirs(x, src_key_padding_mask=~keep[:, 0])
        close(mine(x, keep)[0], ref[0])
        close(mine(x, keep)[1, :3], ref[1, :3])                    # real positions only
        close(mine(x, is_causal=True), theirs(x, src_mask=~att.causal_mask(7, "cpu")))

    def test_encoder_gelu(self, norm_first):
        mine, theirs = encoder_pair(norm_first, activation="gelu")
        x = torch.randn(2, 5, 16)
        close(mine(x), theirs(x))

    def test_decoder(self, norm_first):
        theirs = nn.TransformerDecoderLayer(16, 4, 32, dropout=0.0, batch_first=True, norm_first=norm_first)
        for p in theirs.parameters():
            nn.init.normal_(p, std=0.3)
        mine = blocks.load_torch_decoder_layer(blocks.DecoderBlock(16, 4, 32, norm_first=norm_first), theirs).eval()
        theirs.eval()
        x, mem = torch.randn(2, 5, 16), torch.randn(2, 9, 16)
        causal = att.causal_mask(5, "cpu")
        close(mine(x, mem), theirs(x, mem, tgt_mask=~causal))
        keep = att.padding_mask(torch.tensor([9, 4]), 9)
        close(mine(x, mem, memory_mask=keep), theirs(x, mem, tgt_mask=~causal, memory_key_padding_mask=~keep[:, 0]))


def test_norm_first_mismatch_refused():
    theirs = nn.TransformerEncoderLayer(16, 4, 32, batch_first=True, norm_first=True)
    with pytest.raises(ValueError, match="norm_first"):
        blocks.load_torch_encoder_layer(blocks.EncoderBlock(16, 4, 32, norm_first=False), theirs)


def test_decoder_block_kv_cache_equals_full():
    torch.manual_seed(0)
    blk = blocks.DecoderBlock(16, 4, 32, norm_first=True).eval()
    x, mem = torch.randn(1, 5, 16), torch.randn(1, 3, 16)
    cache = att.KVCache()
    parts = [blk(x[:, t:t + 1], mem, kv_cache=cache) for t in range(5)]
    close(torch.cat(parts, 1), blk(x, mem))


# ============================================================== seq2seq ===

def test_digit_batches():
    src, tgt = make_digit_batch(4, 6, "reverse", rng=np.random.default_rng(0))
    np.testing.assert_array_equal(tgt, src[:, ::-1])
    src, tgt = make_digit_batch(4, 6, "sort", rng=np.random.default_rng(0))
    np.testing.assert_array_equal(tgt, np.sort(src, 1))
    assert src.max() < 10 and DigitVocab().bos == 10


def test_decoder_never_sees_the_future():
    torch.manual_seed(0)
    m = Seq2SeqTransformer(Seq2SeqConfig(n_layers=1)).eval()
    src = torch.randint(0, 10, (2, 6))
    tgt = torch.randint(0, 10, (2, 6))
    a = m(src, shift_right(tgt))
    tgt2 = tgt.clone()
    tgt2[:, 4:] = (tgt2[:, 4:] + 1) % 10
    b = m(src, shift_right(tgt2))
    close(a[:, :5], b[:, :5])                      # positions up to 4 see tgt[:4] only
    assert not torch.allclose(a[:, 5], b[:, 5])


@pytest.mark.slow
def test_seq2seq_learns_to_reverse():
    torch.manual_seed(0)
    m = Seq2SeqTransformer(Seq2SeqConfig())
    losses = train_seq2seq(m, steps=400, lr=2e-3, progress=False)
    assert losses[-1] < 0.05 < losses[0]
    assert exact_match(m, n=300, rng=np.random.default_rng(1)) >= 0.95
    assert greedy_decode(m, torch.tensor([[1, 2, 3, 4, 5, 6, 7, 8]]), 8).tolist() == [[8, 7, 6, 5, 4, 3, 2, 1]]


def test_causal_encoder_block_with_cache_is_a_gpt_block():
    """07 stacks EncoderBlock(norm_first=True, activation="gelu_tanh") with is_causal and a cache."""
    torch.manual_seed(0)
    blk = blocks.EncoderBlock(16, 4, 64, norm_first=True, activation="gelu_tanh").eval()
    x = torch.randn(2, 6, 16)
    full = blk(x, is_causal=True)
    cache = att.KVCache()
    parts = [blk(x[:, :2], is_causal=True, kv_cache=cache)]
    parts += [blk(x[:, t:t + 1], is_causal=True, kv_cache=cache) for t in range(2, 6)]
    close(torch.cat(parts, 1), full)
    changed = x.clone()
    changed[:, 4:] += 1.0                                       # the future never leaks backwards
    close(blk(changed, is_causal=True)[:, :4], full[:, :4])
