"""The GPU checks in one run, for a lent GPU machine (not a test; ENGINEERING.md "GPU checks").

    python tests/benchmarks/gpu_checks.py [--quick]

Such machines have torch, Triton and transformers but no Jupyter or nbgrader, so the notebooks run as
their jupytext sources (a percent-format source is a Python script whose markdown cells are comments;
the hidden tests run too), with ipywidgets stood in for when it is absent and figures drawn off screen.
In order, each with its wall time and the card's name:

1. the `gpu`-marked tests (tests/test_kernels.py: Triton against sdpa in fp16, bf16 and fp32, forward and
   backward, lengths up to 16384; the tiled path's memory on the CUDA allocator);
2. tests/benchmarks/attention_bench.py (--quick: D=64 and T up to 8192 only);
3. tests/benchmarks/gpt_bench.py's section 4 (the GPT's training step in fp32, bf16, fp16, and with the
   course's flash attention);
4. notebooks 07 and 10 top to bottom on the GPU.
"""
from __future__ import annotations

import argparse
import os
import runpy
import subprocess
import sys
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def section(title: str) -> float:
    print(f"\n===== {title}", flush=True)
    return time.perf_counter()


def stub_widgets() -> None:
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        module = types.ModuleType("ipywidgets")

        class Widget:
            def __init__(self, *args, **kwargs):
                self.value = kwargs.get("value")

        module.__getattr__ = lambda name: Widget
        module.interact = lambda fn, **kwargs: None
        sys.modules["ipywidgets"] = module


def run_notebook(name: str) -> None:
    start = time.perf_counter()
    source = ROOT / "solutions" / name / f"{name}.py"
    cwd = os.getcwd()
    os.chdir(source.parent)
    try:
        runpy.run_path(str(source), run_name="__main__")
    finally:
        os.chdir(cwd)
    print(f"{name}: ran top to bottom in {time.perf_counter() - start:.1f} s", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("MPLBACKEND", "Agg")
    os.environ.setdefault("TRANSFORMER_COURSE_OFFLINE", "1")
    import torch

    print("torch", torch.__version__, "| cuda:", torch.cuda.is_available(),
          "|", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU", flush=True)
    py = sys.executable
    failures = 0
    t = section("1. gpu-marked tests")
    failures += subprocess.call([py, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider",
                                 str(ROOT / "tests" / "test_kernels.py")], cwd=ROOT) != 0
    print(f"({time.perf_counter() - t:.0f} s)")
    t = section("2. attention benchmark")
    bench = [py, str(ROOT / "tests" / "benchmarks" / "attention_bench.py")]
    if args.quick:
        bench += ["--dims", "64", "--lengths", "1024", "4096", "8192", "--repeats", "5"]
    failures += subprocess.call(bench, cwd=ROOT) != 0
    print(f"({time.perf_counter() - t:.0f} s)")
    t = section("3. GPT training step per precision")
    code = ("import sys; sys.path.insert(0, 'tests/benchmarks'); import torch, gpt_bench; "
            "gpt_bench.precision_and_attention(torch.device('cuda'), 20)")
    failures += subprocess.call([py, "-c", code], cwd=ROOT) != 0
    print(f"({time.perf_counter() - t:.0f} s)")
    section("4. notebooks 07 and 10 on the GPU")
    stub_widgets()
    sys.path.insert(0, str(ROOT / "utils"))
    for name in ("07_gpt", "10_efficient_attention"):
        try:
            run_notebook(name)
        except Exception as exc:  # noqa: BLE001 - report and go on to the next
            failures += 1
            print(f"{name}: FAILED with {type(exc).__name__}: {exc}", flush=True)
    print(f"\n{failures} part(s) failed")
    return int(failures > 0)


if __name__ == "__main__":
    raise SystemExit(main())
