"""The package's efficient attention (transformer_course.kernels) against torch's attention and autograd.

The tiled torch path runs everywhere; the Triton kernel runs here under Triton's interpreter
(tests/conftest.py sets TRITON_INTERPRET=1 when there is no GPU) and for real on a GPU (`gpu` marks).
"""
from __future__ import annotations

import math
import os
import sys

import pytest
import torch
import torch.nn.functional as F

from transformer_course import kernels
from transformer_course.attention import attention, use_flash_attention
from transformer_course.device import mixed_precision
from transformer_course.gpt import GPT, GPTConfig, train_gpt

CUDA = torch.cuda.is_available()
needs_triton = pytest.mark.skipif(not kernels.triton_available(),
                                  reason="Triton is not installed (the gpu extra: pip install -e '.[gpu]', Linux)")
needs_interpreter = pytest.mark.skipif(
    kernels.triton_available() and not kernels.TRITON_INTERPRET,
    reason="Triton compiles for the GPU in this process; its interpreter tests need TRITON_INTERPRET=1 "
           "before Triton is imported (tests/conftest.py sets it where there is no GPU)")


def qkv(B, H, n_q, n_k, d, d_v=None, *, dtype=torch.float64, device="cpu", seed=0):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(B, H, n_q, d, generator=gen, dtype=torch.float64)
    k = torch.randn(B, H, n_k, d, generator=gen, dtype=torch.float64)
    v = torch.randn(B, H, n_k, d_v or d, generator=gen, dtype=torch.float64)
    return [t.to(device=device, dtype=dtype) for t in (q, k, v)]


def reference_lse(q, k, causal, scale=None):
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    s = q.double() @ k.double().transpose(-2, -1) * scale
    if causal:
        s = s.masked_fill(~torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool, device=q.device).tril(), -math.inf)
    return torch.logsumexp(s, dim=-1)


def sdpa_grads(q, k, v, dout, **kw):
    leaves = [t.detach().clone().requires_grad_() for t in (q, k, v)]
    out = F.scaled_dot_product_attention(*leaves, **kw)
    out.backward(dout)
    return out.detach(), [t.grad for t in leaves]


def flash_grads(q, k, v, dout, **kw):
    leaves = [t.detach().clone().requires_grad_() for t in (q, k, v)]
    out = kernels.flash_attention(*leaves, **kw)
    out.backward(dout)
    return out.detach(), [t.grad for t in leaves]


# ------------------------------------------------------------ online softmax ---

@pytest.mark.parametrize("block", [1, 3, 16, 64, 1000])
def test_online_softmax_equals_softmax(block):
    x = torch.randn(4, 7, 100, dtype=torch.float64) * 5
    torch.testing.assert_close(kernels.online_softmax(x, block), torch.softmax(x, -1), rtol=0, atol=1e-12)


def test_online_softmax_rescales_when_the_max_grows():
    # each block's values exceed the previous block's: the running sum must be rescaled every time
    x = torch.arange(64, dtype=torch.float64).reshape(1, 64) * 0.7
    torch.testing.assert_close(kernels.online_softmax(x, 8), torch.softmax(x, -1), rtol=0, atol=1e-12)


def test_online_softmax_large_logits_do_not_overflow():
    x = torch.tensor([[1000.0, 999.0, 1001.0, -1000.0]])
    out = kernels.online_softmax(x, 2)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, torch.softmax(x, -1))


# ------------------------------------------------------- tiled forward (torch) ---

SHAPES = [(1, 1, 1, 1, 8), (2, 3, 37, 91, 16), (2, 2, 91, 37, 16), (1, 2, 128, 128, 32), (3, 1, 65, 65, 8)]


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("B,H,n_q,n_k,d", SHAPES)
def test_tiled_forward_equals_sdpa_and_logsumexp(B, H, n_q, n_k, d, causal):
    q, k, v = qkv(B, H, n_q, n_k, d, d_v=d + 3)
    out, lse = kernels.tiled_attention_forward(q, k, v, causal=causal, block_q=32, block_k=16)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=causal), rtol=0, atol=1e-12)
    torch.testing.assert_close(lse, reference_lse(q, k, causal), rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_tiled_forward_random_shapes_float32(seed):
    gen = torch.Generator().manual_seed(seed)
    n_q, n_k, d = (int(x) for x in torch.randint(1, 150, (3,), generator=gen))
    block_q, block_k = (int(x) for x in torch.randint(1, 70, (2,), generator=gen))
    causal = bool(seed % 2)
    q, k, v = qkv(2, 2, n_q, n_k, d, dtype=torch.float32, seed=seed)
    scale = 0.3 if seed == 4 else None
    out, lse = kernels.tiled_attention_forward(q, k, v, causal=causal, scale=scale, block_q=block_q, block_k=block_k)
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(lse.double(), reference_lse(q, k, causal, scale), rtol=1e-5, atol=1e-5)


def test_tiled_forward_with_masks_matches_the_course_attention():
    q, k, v = qkv(2, 3, 40, 50, 8)
    lengths = torch.tensor([50, 17])
    padding = (torch.arange(50)[None, :] < lengths[:, None])[:, None, None, :]          # (B, 1, 1, n_k)
    full = torch.rand(2, 3, 40, 50, generator=torch.Generator().manual_seed(1)) > 0.3
    full[0, 0, 5] = False                                                                # an empty row
    for mask in (padding, full):
        for causal in (False, True):
            want_mask = mask & torch.ones(40, 50, dtype=torch.bool).tril() if causal else mask
            want, _ = attention(q, k, v, want_mask.expand(2, 3, 40, 50), need_weights=True)
            out, lse = kernels.tiled_attention_forward(q, k, v, causal=causal, mask=mask, block_q=16, block_k=16)
            torch.testing.assert_close(out, want, rtol=0, atol=1e-12)
    assert torch.isneginf(lse[0, 0, 5]) and (out[0, 0, 5] == 0).all()


# ------------------------------------------------------ backward (torch) ---

@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("B,H,n_q,n_k,d", SHAPES)
def test_flash_attention_gradients_equal_autograd(B, H, n_q, n_k, d, causal):
    q, k, v = qkv(B, H, n_q, n_k, d, d_v=d + 1)
    dout = torch.randn(B, H, n_q, d + 1, dtype=torch.float64)
    out, grads = flash_grads(q, k, v, dout, causal=causal)
    ref, ref_grads = sdpa_grads(q, k, v, dout, is_causal=causal)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    for name, g, r in zip("qkv", grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=0, atol=1e-10, msg=lambda m, name=name: f"d{name}: {m}")


def test_backward_by_recomputation_directly_float32():
    q, k, v = qkv(2, 2, 70, 45, 16, dtype=torch.float32, seed=3)
    dout = torch.randn(2, 2, 70, 16)
    out, lse = kernels.tiled_attention_forward(q, k, v, causal=True, block_q=16, block_k=32)
    grads = kernels.tiled_attention_backward(q, k, v, out, lse, dout, causal=True, block_q=32, block_k=16)
    _, ref = sdpa_grads(q, k, v, dout, is_causal=True)
    for g, r in zip(grads, ref):
        torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-5)


def test_gradients_with_a_padding_mask():
    q, k, v = qkv(2, 2, 30, 30, 8)
    mask = (torch.arange(30)[None, :] < torch.tensor([30, 11])[:, None])[:, None, None, :]
    dout = torch.randn(2, 2, 30, 8, dtype=torch.float64)
    _, grads = flash_grads(q, k, v, dout, mask=mask)
    _, ref = sdpa_grads(q, k, v, dout, attn_mask=mask)
    for g, r in zip(grads, ref):
        torch.testing.assert_close(g, r, rtol=0, atol=1e-10)


def test_gradcheck_float64_small():
    q, k, v = (t.requires_grad_() for t in qkv(1, 2, 5, 7, 3))
    assert torch.autograd.gradcheck(lambda q, k, v: kernels.flash_attention(q, k, v, causal=True), (q, k, v))


# ----------------------------------------------------------- entry point ---

def test_non_contiguous_inputs():
    q, k, v = (t.transpose(1, 2).contiguous().transpose(1, 2) for t in qkv(2, 3, 20, 20, 8))
    q = q[..., ::2, :]                                            # strided in time as well
    assert not q.is_contiguous()
    torch.testing.assert_close(kernels.flash_attention(q, k, v), F.scaled_dot_product_attention(q, k, v),
                               rtol=0, atol=1e-12)


def test_empty_query_sequence_gives_an_empty_output():
    q, k, v = qkv(2, 2, 0, 5, 4)
    assert kernels.flash_attention(q, k, v).shape == (2, 2, 0, 4)


@pytest.mark.parametrize("make,match", [
    (lambda q, k, v: (q, k[..., :3], v, None), "same head size"),
    (lambda q, k, v: (q, k[..., :0, :], v[..., :0, :], None), "empty sequence"),
    (lambda q, k, v: (q, k, v[..., :4, :], None), "same length"),
    (lambda q, k, v: (q[0], k[0], v[0], None), r"\(B, H, T, D\)"),
    (lambda q, k, v: (q, k[:1], v[:1], None), "share"),
    (lambda q, k, v: (q, k, v, torch.ones(3, 9, dtype=torch.bool)), "does not broadcast"),
    (lambda q, k, v: (q, k, v, torch.zeros(6, 9)), "boolean"),
])
def test_bad_input_gets_a_clear_error(make, match):
    q, k, v, mask = make(*qkv(2, 2, 6, 9, 4))
    with pytest.raises(ValueError, match=match):
        kernels.flash_attention(q, k, v, mask=mask)


def test_bad_backend_and_block_sizes():
    q, k, v = qkv(1, 1, 4, 4, 4)
    with pytest.raises(ValueError, match="backend"):
        kernels.flash_attention(q, k, v, backend="cudnn")
    with pytest.raises(ValueError, match="block_q"):
        kernels.tiled_attention_forward(q, k, v, block_q=0)
    with pytest.raises(ValueError, match="block_size"):
        kernels.online_softmax(q, 0)


def test_auto_on_a_cpu_takes_the_torch_path(monkeypatch):
    def no_triton(*args, **kwargs):
        raise AssertionError("the Triton kernel ran for CPU tensors under backend='auto'")
    monkeypatch.setattr(kernels, "triton_attention_forward", no_triton)
    q, k, v = qkv(1, 1, 8, 8, 4, dtype=torch.float32)
    kernels.flash_attention(q, k, v)


# ------------------------------------------------------------- memory ---

def test_tiled_forward_never_creates_the_score_matrix():
    n = 512
    q, k, v = qkv(1, 2, n, n, 16, dtype=torch.float32)
    with kernels.TensorWatch() as watch:
        kernels.tiled_attention_forward(q, k, v, causal=True, block_q=64, block_k=64)
    assert watch.largest_numel < n * n, watch.largest_shape
    with kernels.TensorWatch() as naive:
        kernels.naive_attention(q, k, v, causal=True)
    assert naive.largest_numel >= 2 * n * n, naive.largest_shape       # the check can see the matrix


def test_tiled_memory_grows_linearly_where_naive_grows_quadratically():
    def peak(fn, n):
        q, k, v = qkv(1, 2, n, n, 32, dtype=torch.float32)
        return kernels.peak_memory(lambda: fn(q, k, v))
    tiled = lambda q, k, v: kernels.tiled_attention_forward(q, k, v, block_q=64, block_k=64)   # noqa: E731
    naive = kernels.naive_attention
    t1, t2 = peak(tiled, 512), peak(tiled, 2048)
    n1, n2 = peak(naive, 512), peak(naive, 2048)
    assert t2 / t1 < 5, (t1, t2)              # 4x the length: about 4x (outputs and row statistics)
    assert n2 / n1 > 12, (n1, n2)             # about 16x: the (n, n) matrices
    assert t2 < n2 / 10


# ---------------------------------------------------------------- switch ---

def test_gpt_with_flash_attention_matches_sdpa_forward_and_backward():
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=40, vocab_size=30, n_layer=2, n_head=2, n_embd=16)).double()
    idx = torch.randint(0, 30, (2, 40))
    logits, loss = model(idx, idx)
    loss.backward()
    ref_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    use_flash_attention(model)
    assert {m.backend for m in model.modules() if hasattr(m, "backend")} == {"flash"}
    logits2, loss2 = model(idx, idx)
    loss2.backward()
    torch.testing.assert_close(logits2, logits, rtol=0, atol=1e-10)
    for g, r in zip((p.grad for p in model.parameters()), ref_grads):
        torch.testing.assert_close(g, r, rtol=0, atol=1e-10)
    use_flash_attention(model, False)
    assert {m.backend for m in model.modules() if hasattr(m, "backend")} == {"sdpa"}


def test_mixed_precision_choices():
    ctx, scaler = mixed_precision("cpu")
    assert scaler is None and not isinstance(ctx, torch.autocast)
    ctx, scaler = mixed_precision("cpu", "bf16")
    assert isinstance(ctx, torch.autocast) and ctx.fast_dtype == torch.bfloat16 and scaler is None
    ctx, scaler = mixed_precision("cpu", "fp16")
    assert ctx.fast_dtype == torch.float16 and scaler is not None
    with pytest.raises(ValueError, match="precision"):
        mixed_precision("cpu", "int8")


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_train_gpt_in_low_precision_learns(precision):
    torch.manual_seed(0)
    ids = torch.arange(4000) % 7                                        # a cycle: easy to learn
    model = GPT(GPTConfig(block_size=16, vocab_size=7, n_layer=1, n_head=2, n_embd=16))
    history = train_gpt(model, ids[:3000], ids[3000:], iters=60, batch_size=8, lr=1e-2, warmup=5,
                        eval_iters=2, progress=False, precision=precision)
    assert history["val"][-1] < 0.5 * history["val"][0]
    assert all(p.dtype == torch.float32 for p in model.parameters())   # weights stay float32


# ------------------------------------------------- Triton, interpreted on CPU ---

@needs_triton
@needs_interpreter
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("n_q,n_k,d,d_v", [(1, 1, 16, 16), (37, 50, 24, 24), (50, 37, 16, 32), (64, 64, 8, 8)])
def test_triton_kernel_interpreted_equals_sdpa(n_q, n_k, d, d_v, causal):
    q, k, v = qkv(2, 2, n_q, n_k, d, d_v, dtype=torch.float32)
    out, lse = kernels.triton_attention_forward(q, k, v, causal=causal)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=causal), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(lse.double(), reference_lse(q, k, causal), rtol=1e-5, atol=1e-5)


@needs_triton
@needs_interpreter
def test_triton_kernel_interpreted_non_contiguous_and_backward():
    q, k, v = (t.transpose(1, 2).contiguous().transpose(1, 2) for t in qkv(1, 3, 33, 33, 16, dtype=torch.float32))
    q = q[:, :, 1:]
    assert not q.is_contiguous()
    dout = torch.randn(1, 3, 32, 16)
    out, grads = flash_grads(q, k, v, dout, causal=True, backend="triton")
    ref, ref_grads = sdpa_grads(q, k, v, dout, is_causal=True)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-5)


@needs_triton
@needs_interpreter
def test_triton_kernel_refuses_what_it_cannot_run():
    q, k, v = qkv(1, 1, 8, 8, 16, dtype=torch.bfloat16)
    with pytest.raises(ValueError, match="numpy"):
        kernels.triton_attention_forward(q, k, v)
    q, k, v = qkv(1, 1, 8, 8, 16, dtype=torch.float32)
    with pytest.raises(ValueError, match="mask"):
        kernels.flash_attention(q, k, v, mask=torch.ones(8, 8, dtype=torch.bool), backend="triton")
    with pytest.raises(ValueError, match="head size"):
        kernels.triton_attention_forward(*qkv(1, 1, 4, 4, 300, dtype=torch.float32))


@needs_triton
def test_gpu_launch_falls_back_to_smaller_tiles_when_shared_memory_runs_out(monkeypatch):
    """On a GPU with less shared memory than an H100 the first tile size fails to launch: the next is tried."""
    import triton

    tried = []

    class FakeKernel:
        def __getitem__(self, grid):
            def launch(*args, BLOCK_M, BLOCK_N, num_warps, num_stages, **consts):
                tried.append((BLOCK_M, BLOCK_N, num_stages, grid))
                if BLOCK_M * BLOCK_N * num_stages > 64 * 64 * 2:
                    raise triton.runtime.errors.OutOfResources(200_000, 100_000, "shared memory")
            return launch

    monkeypatch.setattr(kernels, "TRITON_INTERPRET", False)
    monkeypatch.setattr(kernels, "_flash_forward", FakeKernel())
    monkeypatch.setattr(kernels, "_triton_unsupported", lambda *args: None)     # CPU tensors stand in for CUDA ones
    q, k, v = qkv(2, 3, 300, 300, 64, dtype=torch.float16)
    kernels.triton_attention_forward(q, k, v)
    assert [t[:3] for t in tried] == [(128, 64, 3), (64, 64, 2)]
    assert tried[-1][3] == (5, 6)                               # ceil(300 / 64) query tiles, B * H programs
    tried.clear()
    kernels.triton_attention_forward(*qkv(1, 1, 8, 8, 128, dtype=torch.float32))
    assert tried[0][:3] == (64, 64, 2)                         # float32 rows of 128: the largest tiles are skipped


@pytest.mark.skipif(not (os.environ.get("CI") == "true" and sys.platform == "linux"), reason="CI on Linux only")
def test_ci_on_linux_has_triton_so_the_interpreter_tests_run():
    assert kernels.triton_available(), "make test installs the gpu extra (Triton) on Linux: it is missing"


@pytest.mark.skipif(kernels.triton_available(), reason="Triton is installed")
def test_without_triton_the_kernel_says_how_to_get_it():
    q, k, v = qkv(1, 1, 4, 4, 16, dtype=torch.float32)
    with pytest.raises(ValueError, match="not installed"):
        kernels.triton_attention_forward(q, k, v)
    kernels.flash_attention(q, k, v)                                     # the torch path still runs


# ------------------------------------------------------------- on a GPU ---

@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
@pytest.mark.skipif(not kernels.triton_available(), reason="Triton is not installed")
@pytest.mark.parametrize("dtype,tol", [(torch.float16, 1e-2), (torch.bfloat16, 2e-2), (torch.float32, 1e-4)])
@pytest.mark.parametrize("n,d,causal", [(1, 64, False), (1000, 64, True), (4096, 128, False), (4096, 64, True),
                                        (16384, 64, True), (16384, 128, False)])
def test_triton_on_cuda_equals_sdpa(n, d, causal, dtype, tol):
    B, H = (1, 2) if n >= 16384 else (2, 4)
    q, k, v = qkv(B, H, n, n, d, dtype=dtype, device="cuda")
    out = kernels.flash_attention(q, k, v, causal=causal)
    ref = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=causal)
    torch.testing.assert_close(out.float(), ref, rtol=tol, atol=tol)
    if n <= 4096:                                                      # the torch backward: keep it short
        dout = torch.randn_like(out)
        _, grads = flash_grads(q, k, v, dout, causal=causal)
        _, ref_grads = sdpa_grads(q.float(), k.float(), v.float(), dout.float(), is_causal=causal)
        for g, r in zip(grads, ref_grads):
            torch.testing.assert_close(g.float(), r, rtol=tol * 5, atol=tol * 5)


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
def test_tiled_memory_on_cuda_is_linear():
    def peak(n):
        q, k, v = qkv(1, 4, n, n, 64, dtype=torch.float16, device="cuda")
        return kernels.peak_memory(lambda: kernels.tiled_attention_forward(q, k, v), "cuda")
    assert peak(8192) / peak(2048) < 5
