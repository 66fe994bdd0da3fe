"""Benchmark (not a test): naive, tiled torch, Triton and torch's fused attention, measured in one run.

    python tests/benchmarks/attention_bench.py                 # this device's default grid
    python tests/benchmarks/attention_bench.py --lengths 512 1024 --dims 64 --modes fwd --causal 1

For every head size D, causal or not, forward ("fwd") or forward and backward ("fwd+bwd"), and
length T, it prints each implementation's median time in ms, its throughput in TFLOP/s, its
throughput as a fraction of ``scaled_dot_product_attention``'s ("x sdpa", higher is faster) and
its peak extra memory (the CUDA allocator on a GPU; on a CPU the tensors its operators create,
which misses a fused kernel's private scratch: see ``kernels.TensorWatch``).

- naive: ``kernels.naive_attention``, the (T, T) matrix in memory (skipped where that matrix alone
  would pass --naive-limit-gb);
- tiled: ``kernels.flash_attention(backend="torch")``, the tiles in plain torch;
- triton: ``kernels.flash_attention(backend="triton")`` on CUDA when Triton is installed (its
  backward is the torch recomputation); not timed on a CPU, where it only runs interpreted;
- sdpa: ``torch.nn.functional.scaled_dot_product_attention``.

FLOPs counted as FlashAttention's papers do: 4 B H T^2 D for the forward (two matrix products),
half of it when causal, and 2.5 times the forward for the backward.  Defaults: on CUDA the
issue's grid (B=4, H=16, D=64 and 128, T from 512 to 16384, bf16); on a CPU B=1, H=4, D=64, T from
256 to 4096, float32.  Targets (COURSE.md): on an H100/H200 the Triton forward at least 0.8x
sdpa's throughput at T >= 4096 and at least 5x naive; on a CPU the tiled memory flat in T where
naive's grows with T^2.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from transformer_course import kernels
from transformer_course.device import describe_device


def attention_flops(B: int, H: int, T: int, D: int, causal: bool, mode: str) -> float:
    forward = 4 * B * H * T * T * D * (0.5 if causal else 1.0)
    return forward * (3.5 if mode == "fwd+bwd" else 1.0)


def time_ms(fn, device: torch.device, repeats: int) -> float:
    """Median milliseconds of ``fn()`` after one warm-up call (CUDA events on a GPU)."""
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
        times = []
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
        return statistics.median(times)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def implementations(device: torch.device) -> dict:
    impls = {
        "naive": lambda q, k, v, c: kernels.naive_attention(q, k, v, c),
        "tiled": lambda q, k, v, c: kernels.flash_attention(q, k, v, causal=c, backend="torch"),
        "sdpa": lambda q, k, v, c: F.scaled_dot_product_attention(q, k, v, is_causal=c),
    }
    if device.type == "cuda" and kernels.triton_available() and not kernels.TRITON_INTERPRET:
        impls["triton"] = lambda q, k, v, c: kernels.flash_attention(q, k, v, causal=c, backend="triton")
    return impls


def run_case(fn, q, k, v, causal: bool, mode: str, device, repeats: int):
    if mode == "fwd":
        def step():
            with torch.no_grad():
                return fn(q, k, v, causal)
    else:
        dout = torch.randn_like(q)

        def step():
            for t in (q, k, v):
                t.grad = None
            fn(q, k, v, causal).backward(dout)
    ms = time_ms(step, device, repeats)
    peak = kernels.peak_memory(step, device)
    return ms, peak


def main(argv=None) -> int:
    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if cuda else "cpu")
    parser.add_argument("--batch", type=int, default=4 if cuda else 1)
    parser.add_argument("--heads", type=int, default=16 if cuda else 4)
    parser.add_argument("--dims", type=int, nargs="+", default=[64, 128] if cuda else [64])
    parser.add_argument("--lengths", type=int, nargs="+",
                        default=[512, 1024, 2048, 4096, 8192, 16384] if cuda else [256, 512, 1024, 2048, 4096])
    parser.add_argument("--modes", nargs="+", default=["fwd", "fwd+bwd"], choices=["fwd", "fwd+bwd"])
    parser.add_argument("--causal", type=int, nargs="+", default=[0, 1], choices=[0, 1])
    parser.add_argument("--dtype", default="bfloat16" if cuda else "float32",
                        choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--repeats", type=int, default=10 if cuda else 3)
    parser.add_argument("--naive-limit-gb", type=float, default=8.0 if cuda else 2.0,
                        help="skip naive attention where its (B, H, T, T) float32 scores alone pass this")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    impls = implementations(device)
    print(f"device: {describe_device() if device.type == 'cuda' else 'cpu'} ({torch.get_num_threads()} threads); "
          f"torch {torch.__version__}; Triton {'installed' if kernels.triton_available() else 'absent'}"
          f"{' (interpreter: not timed)' if 'triton' not in impls else ''}; dtype {args.dtype}; "
          f"B={args.batch} H={args.heads}")
    B, H = args.batch, args.heads
    gen = torch.Generator().manual_seed(0)
    for D in args.dims:
        for causal in map(bool, args.causal):
            for mode in args.modes:
                print(f"\nD={D} causal={causal} {mode}")
                print(f"{'T':>6} {'impl':>7} {'ms':>10} {'TFLOP/s':>8} {'x sdpa':>7} {'peak MiB':>9}")
                for T in args.lengths:
                    q, k, v = (torch.randn(B, H, T, D, generator=gen).to(device, dtype).requires_grad_(mode != "fwd")
                               for _ in range(3))
                    rows = {}
                    for name, fn in impls.items():
                        if name == "naive" and B * H * T * T * 4 / 2**30 > args.naive_limit_gb:
                            rows[name] = None
                            continue
                        try:
                            rows[name] = run_case(fn, q, k, v, causal, mode, device, args.repeats)
                        except torch.OutOfMemoryError:
                            rows[name] = None
                            torch.cuda.empty_cache()
                    flops = attention_flops(B, H, T, D, causal, mode)
                    sdpa_ms = rows["sdpa"][0] if rows.get("sdpa") else float("nan")
                    for name, row in rows.items():
                        if row is None:
                            print(f"{T:>6} {name:>7} {'skipped (memory)':>27}")
                            continue
                        ms, peak = row
                        print(f"{T:>6} {name:>7} {ms:>10.3f} {flops / ms / 1e9:>8.3f} {sdpa_ms / ms:>7.2f} "
                              f"{peak / 2**20:>9.1f}")
                    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
