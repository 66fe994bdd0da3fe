"""``transformer-course doctor``: what is installed, which device, what is missing."""
from __future__ import annotations

import importlib
import os
from importlib.util import find_spec
import platform
import shutil
import sys

REQUIRED = ["numpy", "torch", "matplotlib", "ipywidgets", "tqdm", "jupyterlab", "ipykernel",
            "nbgrader", "jupytext", "nbformat", "nbclient", "nbconvert", "transformers", "sentence_transformers"]


def doctor() -> int:
    """Print a report; return 1 when something required is missing."""
    missing = []
    print(f"python      {sys.version.split()[0]} ({platform.platform()})")
    for name in REQUIRED:
        try:
            mod = importlib.import_module(name)
            print(f"{name:<11} {getattr(mod, '__version__', 'installed')}")
        except Exception as exc:  # noqa: BLE001 - report anything that fails to import
            print(f"{name:<11} MISSING ({type(exc).__name__}: {exc})")
            missing.append(name)
    try:
        from .device import describe_device
        import torch

        print(f"device      {describe_device()} (torch {torch.__version__}, "
              f"cuda available: {torch.cuda.is_available()}, threads: {torch.get_num_threads()})")
    except Exception as exc:  # noqa: BLE001
        print(f"device      unknown ({exc})")
    try:
        from jupyter_client.kernelspec import KernelSpecManager

        specs = KernelSpecManager().find_kernel_specs()
        print(f"kernels     {', '.join(sorted(specs)) or 'none'}")
        if "python3" not in specs:
            missing.append("python3 kernel")
    except Exception as exc:  # noqa: BLE001
        print(f"kernels     unknown ({exc})")
    try:
        from .grader.course import assignments, find_course_root

        root, why = find_course_root()
        n = len(assignments(root))
        print(f"course      {root} ({n} assignment{'s' if n != 1 else ''}; chosen as {why})")
    except Exception as exc:  # noqa: BLE001
        print(f"course      not found ({exc})")
    try:
        from .grader.sandbox import sandbox_works

        ok, why = sandbox_works()
        print(f"sandbox     {'bubblewrap works: classroom autograding isolates each submission' if ok else why}")
        if not ok:
            print("            (`check` still grades, unsandboxed; `autograde` needs it or --sandbox none)")
    except Exception as exc:  # noqa: BLE001
        print(f"sandbox     unknown ({exc})")
    try:
        from .system import PACKAGES, how_to_install

        lacking = []
        for package in PACKAGES:
            where = package.find()
            print(f"{package.debian:<11} {where or 'not installed'} (for {package.needed_for})")
            if where is None:
                lacking.append(package)
        if lacking:
            print(f"            install with: {how_to_install(lacking)}")
    except Exception as exc:  # noqa: BLE001
        print(f"system      unknown ({exc})")
    try:
        version = importlib.import_module("triton").__version__ if find_spec("triton") else None
        print(f"gpu extras  {'triton ' + version if version else 'triton not installed'} "
              "(optional: pip install -e '.[gpu]' on Linux with a CUDA GPU)")
    except Exception as exc:  # noqa: BLE001
        print(f"gpu extras  unknown ({exc})")
    here = os.path.dirname(sys.executable)
    for tool in ("jupyter", "alembic"):
        beside = os.path.join(here, tool)
        print(f"{tool:<11} {beside if os.access(beside, os.X_OK) else shutil.which(tool) or 'MISSING'}")
        if not (os.access(beside, os.X_OK) or shutil.which(tool)):
            missing.append(tool)
    if missing:
        print(f"\nmissing: {', '.join(missing)}: run `make install`")
        return 1
    print("\neverything needed is present")
    return 0
