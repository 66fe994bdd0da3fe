"""Benchmark (not a test): time each solution notebook top to bottom, and `check` on it.

    python tests/benchmarks/notebook_times.py [NN_name ...] [--threads N]

Prints, per notebook, the seconds to execute it in a fresh kernel (hidden tests
included, as the instructor version holds them); the seconds `transformer-course
check` takes on it the first time (the assignment's gradebook generated into an empty
cache) and again (the gradebook from the cache: what a learner waits for every time
after the first); the overhead of the second check over the execution; and the
budget from COURSE.md (120 s; 180 s for 07-09). Both run with the same threads.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUDGET = {"07": 180, "08": 180, "09": 180, "10": 180}


def execute(path: Path, env: dict) -> float:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        old = os.environ.copy()
        os.environ.update(env)
        try:
            NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": tmp}}).execute()
        finally:
            os.environ.clear()
            os.environ.update(old)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("names", nargs="*")
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for the kernels")
    args = parser.parse_args()
    names = args.names or sorted(p.parent.name for p in ROOT.glob("solutions/*/*.py") if p.stem == p.parent.name)
    env = {"OMP_NUM_THREADS": str(args.threads)} if args.threads else {}
    print(f"{'notebook':<26}{'execute s':>10}{'check 1st':>10}{'check s':>10}{'overhead s':>11}{'budget s':>10}")
    with tempfile.TemporaryDirectory(prefix="tc-bench-cache-") as cache:
        check_env = {**os.environ, **env, "TRANSFORMER_COURSE_CACHE": cache}
        for name in names:
            nb = ROOT / "solutions" / name / f"{name}.ipynb"
            t_exec = execute(nb, env)
            times = []
            for _ in range(2):                          # cold cache, then warm
                start = time.perf_counter()
                subprocess.run([sys.executable, "-m", "transformer_course", "check", str(nb), "--json"],
                               check=True, capture_output=True, env=check_env)
                times.append(time.perf_counter() - start)
            print(f"{name:<26}{t_exec:>10.1f}{times[0]:>10.1f}{times[1]:>10.1f}{times[1] - t_exec:>+11.1f}"
                  f"{BUDGET.get(name[:2], 120):>10}", flush=True)


if __name__ == "__main__":
    main()
