"""Benchmark (not a test): the package's GPT, KV cache and attention against their peers, in one run.

    python tests/benchmarks/gpt_bench.py [--steps 60] [--full] [--threads N]

Prints, from measurements taken in this run on this machine (ratios, not absolute targets):

1. training step time on nanoGPT's CPU recipe (4 layers, 4 heads, 128 wide, block 64, batch 12,
   AdamW, vocabulary 65): the package's GPT against transformers' GPT2LMHeadModel of the same shape,
   the two interleaved step by step so that machine noise hits both alike (median of --steps);
2. KV-cache decoding of 256 new tokens (4 layers, 256 wide, vocabulary 65, greedy) against
   recomputing the whole context each step, with the same tokens asserted;
3. the package's attention (``transformer_course.attention.attention``) against
   ``torch.nn.functional.scaled_dot_product_attention`` for lengths 128 to 2048 (causal, 4 heads of 64);
4. the package GPT's training step per precision (float32, bfloat16 autocast, on a GPU float16 with a
   gradient scaler) and with its attention layers on the course's ``flash_attention``, on --device
   (CUDA when present: GPT-2 small's shape; else the CPU recipe);
5. with --full: 2,000 iterations of the recipe on Tiny Shakespeare (from the course's cache, or seeded
   from ../shared/data/tinyshakespeare.txt when that file exists) and the validation loss, replaying
   nanoGPT's run: its seed (1337) set before the model is built, the global generator for the
   initialisation and every batch, in nanoGPT's order; nanoGPT's 20-batch estimate and a 400-batch one.

Targets (COURSE.md): step time at least as fast as nanoGPT (nanoGPT is 1.20x faster than
GPT2LMHeadModel here), KV cache at least 4x, attention within 1.1x of sdpa, val loss <= 1.89.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from transformer_course import corpus, sampling
from transformer_course.attention import attention, use_flash_attention
from transformer_course.device import mixed_precision
from transformer_course.gpt import GPT, GPTConfig, configure_optimizer, estimate_loss, hf_gpt2_config, train_gpt

ROOT = Path(__file__).resolve().parents[2]
# nanoGPT's config/train_shakespeare_char.py with its CPU overrides; like nanoGPT's model, no biases
# (bias=False) and the exact GELU (nn.GELU())
RECIPE = dict(block_size=64, vocab_size=65, n_layer=4, n_head=4, n_embd=128, dropout=0.0, bias=False,
              activation="gelu")


def step_times(steps: int) -> None:
    from transformers import GPT2LMHeadModel

    config = GPTConfig(**RECIPE)
    torch.manual_seed(0)
    ours = GPT(config)
    # transformers' GPT-2 always has biases; its fastest attention (sdpa) is used
    theirs = GPT2LMHeadModel(hf_gpt2_config(GPTConfig(**{**RECIPE, "bias": True, "activation": "gelu_tanh"}),
                                            attn_implementation="sdpa"))
    opts = {name: configure_optimizer(m, lr=1e-3, weight_decay=0.1, betas=(0.9, 0.99))
            for name, m in (("ours", ours), ("theirs", theirs))}
    data = torch.randint(65, (200_000,), generator=torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(1)

    def step(name: str) -> float:
        x, y = corpus.get_batch(data, config.block_size, 12, generator=gen)
        start = time.perf_counter()
        if name == "ours":
            _, loss = ours(x, y)
        else:
            # the same loss on the same targets (labels= would shift them again inside transformers)
            loss = F.cross_entropy(theirs(input_ids=x).logits.reshape(-1, 65), y.reshape(-1))
        opts[name].zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_((ours if name == "ours" else theirs).parameters(), 1.0)
        opts[name].step()
        return time.perf_counter() - start

    for _ in range(10):                                    # warm-up: allocator, kernels
        step("ours"), step("theirs")
    times = {"ours": [], "theirs": []}
    for i in range(steps):
        order = ("ours", "theirs") if i % 2 == 0 else ("theirs", "ours")
        for name in order:
            times[name].append(step(name))
    a, b = statistics.median(times["ours"]), statistics.median(times["theirs"])
    print(f"1. training step, nanoGPT CPU recipe ({steps} interleaved steps, median):")
    print(f"   package GPT          {1000 * a:7.1f} ms")
    print(f"   GPT2LMHeadModel      {1000 * b:7.1f} ms")
    print(f"   package is {b / a:.2f}x faster per step (nanoGPT's measured margin over GPT2LMHeadModel: 1.20x)")


def kv_cache(new_tokens: int = 256) -> None:
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=512, vocab_size=65, n_layer=4, n_head=4, n_embd=256)).eval()
    prompt = torch.randint(65, (1, 16), generator=torch.Generator().manual_seed(0))
    times, outs = {}, {}
    for use_cache in (False, True, False, True):           # twice each, alternating; keep the faster run
        start = time.perf_counter()
        out = sampling.generate(model, prompt, new_tokens, temperature=0, use_cache=use_cache)
        t = time.perf_counter() - start
        times[use_cache] = min(t, times.get(use_cache, float("inf")))
        outs[use_cache] = out
    assert torch.equal(outs[True], outs[False]), "the KV cache changed the generated tokens"
    print(f"2. greedy decoding of {new_tokens} new tokens (4 layers x 256, vocabulary 65), same tokens:")
    print(f"   recompute {times[False]:.2f} s, KV cache {times[True]:.2f} s: {times[False] / times[True]:.1f}x faster")


def attention_vs_sdpa(repeats: int = 7) -> None:
    print("3. causal attention, 1 x 4 heads x T x 64 (median of alternating runs):")
    print(f"   {'T':>5} {'package ms':>11} {'sdpa ms':>9} {'package/sdpa':>13}")
    for T in (128, 256, 512, 1024, 2048):
        q, k, v = (torch.randn(1, 4, T, 64) for _ in range(3))
        ours, theirs = [], []
        for _ in range(repeats):
            start = time.perf_counter()
            attention(q, k, v, is_causal=True)
            ours.append(time.perf_counter() - start)
            start = time.perf_counter()
            F.scaled_dot_product_attention(q, k, v, is_causal=True)
            theirs.append(time.perf_counter() - start)
        a, b = statistics.median(ours), statistics.median(theirs)
        print(f"   {T:>5} {1000 * a:>11.2f} {1000 * b:>9.2f} {a / b:>13.2f}")


def precision_and_attention(device: torch.device, steps: int) -> None:
    """The package GPT's training step on ``device`` in each precision train_gpt offers there, and with the
    attention layers on the course's flash_attention, interleaved step by step (median)."""
    if device.type == "cuda":   # GPT-2 small's shape at a context of 1024: large enough to fill a GPU
        config, batch = GPTConfig(block_size=1024, vocab_size=50257, n_layer=12, n_head=12, n_embd=768), 8
        variants = [("fp32", "sdpa"), ("bf16", "sdpa"), ("fp16", "sdpa"), ("bf16", "flash")]
    else:                       # the CPU recipe
        config, batch = GPTConfig(**RECIPE), 12
        variants = [("fp32", "sdpa"), ("bf16", "sdpa"), ("fp32", "flash")]
    torch.manual_seed(0)
    model = GPT(config).to(device)
    opt = configure_optimizer(model, lr=1e-4, weight_decay=0.1, betas=(0.9, 0.95))
    data = torch.randint(config.vocab_size, (500_000,), generator=torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(2)

    def step(precision: str, attn: str) -> float:
        use_flash_attention(model, attn == "flash")
        autocast, scaler = mixed_precision(device, precision)
        x, y = corpus.get_batch(data, config.block_size, batch, generator=gen, device=device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with autocast:
            _, loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        (scaler.scale(loss) if scaler else loss).backward()
        if scaler:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    for v in variants * 3:                                 # warm-up: kernels, autotuning, the Triton compile
        step(*v)
    times: dict = {v: [] for v in variants}
    for i in range(steps):
        for v in (variants if i % 2 == 0 else variants[::-1]):
            times[v].append(step(*v))
    base = statistics.median(times[variants[0]])
    print(f"4. training step of the package GPT on {device} ({config.n_layer} layers x {config.n_embd}, context "
          f"{config.block_size}, batch {batch}; {steps} interleaved steps, median):")
    for (precision, attn), ts in times.items():
        t = statistics.median(ts)
        print(f"   {precision:>4} {attn:>5} attention {1000 * t:8.1f} ms   {base / t:5.2f}x fp32 sdpa's speed")


def full_run() -> None:
    shared = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
    try:
        text = corpus.load_tiny_shakespeare(download=False)
    except corpus.CorpusUnavailable:
        if not shared.exists():
            print("5. skipped: Tiny Shakespeare is neither cached nor in ../shared/data")
            return
        text = shared.read_text(encoding="utf-8")
        assert len(text.encode()) == corpus.TINY_SHAKESPEARE_BYTES
    tok = corpus.CharTokenizer(text)
    ids = torch.tensor(tok.encode(text), dtype=torch.long)
    train, val = corpus.train_val_split(ids)
    # nanoGPT's run, draw for draw: its seed set before the model is built, the global generator for
    # the initialisation and every batch, an evaluation of 20 batches per split every 250 steps
    torch.manual_seed(1337)
    model = GPT(GPTConfig(**{**RECIPE, "vocab_size": tok.vocab_size}))
    start = time.perf_counter()
    history = train_gpt(model, train, val, iters=2000, batch_size=12, lr=1e-3, min_lr=1e-4, warmup=100,
                        eval_every=250, eval_iters=20, generator=None, progress=False)
    elapsed = time.perf_counter() - start
    # the 20-batch estimate is noisy (about 0.02): a 400-batch estimate of the same model beside it
    precise = estimate_loss(model, val, batch_size=12, eval_iters=400, generator=torch.Generator().manual_seed(0))
    print(f"5. 2,000 iterations on Tiny Shakespeare, seeded as nanoGPT's run: {elapsed:.0f} s "
          f"({1000 * elapsed / 2000:.1f} ms per iteration including evaluations)")
    print(f"   step 2000: train loss {history['train'][-1]:.4f}, val loss {history['val'][-1]:.4f} "
          f"(nanoGPT's run on this kind of machine: val 1.886; target val <= 1.89)")
    print(f"   val loss over 400 batches: {precise:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--full", action="store_true", help="also train 2,000 iterations on Tiny Shakespeare")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default=None, help="for section 4 (default: cuda when present, else cpu)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU; section 4 on {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))
    step_times(args.steps)
    kv_cache()
    attention_vs_sdpa()
    precision_and_attention(device, args.steps)
    if args.full:
        full_run()


if __name__ == "__main__":
    main()
