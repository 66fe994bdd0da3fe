"""Helpers for tests that grade whole notebooks through `transformer-course check`."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "transformer_course"]


def assignment_names() -> list[str]:
    return sorted(p.parent.name for p in ROOT.glob("solutions/*/*.py") if p.stem == p.parent.name)


def solution_notebook(name: str) -> Path:
    return ROOT / "solutions" / name / f"{name}.ipynb"


def student_notebook(name: str) -> Path:
    return ROOT / "notebooks" / name / f"{name}.ipynb"


def check(notebook: Path, timeout: int = 900) -> dict:
    """Run `transformer-course check NOTEBOOK --json` from an unrelated directory."""
    proc = subprocess.run(
        [*CLI, "check", os.fspath(notebook), "--json"],
        capture_output=True, text=True, timeout=timeout, cwd="/",
        # one thread per grading kernel, as classroom autograding runs them: the suite
        # grades notebooks in parallel (pytest-xdist) and tiny models oversubscribe badly
        env={**os.environ, "TRANSFORMER_COURSE_ROOT": os.fspath(ROOT), "OMP_NUM_THREADS": "1",
             "MKL_NUM_THREADS": "1", "TRANSFORMER_COURSE_OFFLINE": "1"},
    )
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"stdout must be exactly one JSON object, got:\n{proc.stdout}\nstderr:\n{proc.stderr[-3000:]}"
    return json.loads(lines[0])


def by_id(result: dict) -> dict[str, dict]:
    return {ex["grade_id"]: ex for ex in result["exercises"]}


def solution_cells(name: str) -> dict[str, str]:
    nb = nbformat.read(os.fspath(solution_notebook(name)), as_version=4)
    return {c.metadata["nbgrader"]["grade_id"]: c.source for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("solution") and c.cell_type == "code"}


def fill_student(name: str, dest: Path, replace: dict[str, str] | None = None) -> Path:
    """The student notebook with every answer cell holding the solution's code.

    ``replace`` maps grade_id -> source to plant a specific (wrong) answer instead.
    """
    answers = solution_cells(name)
    answers.update(replace or {})
    nb = nbformat.read(os.fspath(student_notebook(name)), as_version=4)
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution") and cell.cell_type == "code":
            cell.source = answers[meta["grade_id"]]
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / f"{name}.ipynb"
    nbformat.write(nb, os.fspath(path))
    return path


def planted(name: str, grade_id: str, old: str, new: str) -> str:
    """The solution's answer cell ``grade_id`` of notebook ``name`` with ``old`` replaced by ``new`` (a planted
    mistake); fails loudly when the solution no longer contains ``old``."""
    source = solution_cells(name)[grade_id]
    assert old in source, f"{grade_id}: {old!r} not in the solution any more"
    return source.replace(old, new)


def assert_lost_with_hints(result: dict[str, dict], expected_words: dict[str, str]) -> None:
    """Each test cell in ``expected_words`` scored 0 and its message holds the expected hint."""
    for grade_id, word in expected_words.items():
        ex = result[grade_id]
        assert ex["score"] == 0 and not ex["passed"], f"{grade_id} kept its points with a planted mistake"
        assert word in ex["message"], f"{grade_id}: hint missing from {ex['message']!r}"


# ------------------------------------------------------------ the toy course ---

def build_toy_course(root: Path) -> Path:
    """A course checkout at ``root`` with one trivial assignment (tests/fixtures/99_toy), built."""
    import shutil

    from transformer_course.build import build

    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    shutil.copytree(ROOT / "tests" / "fixtures" / "99_toy", root / "solutions" / "99_toy")
    (root / "autograder").mkdir()
    build(root, log=lambda *_: None)
    return root


def toy_submission(toy: Path, dest: Path, double: str | None = None, square: str | None = None) -> Path:
    """The toy student notebook with the given answers (None: left untouched), written to ``dest/99_toy.ipynb``."""
    nb = nbformat.read(toy / "notebooks" / "99_toy" / "99_toy.ipynb", as_version=4)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid == "double" and double is not None:
            cell.source = double
        if gid == "square" and square is not None:
            cell.source = square
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / "99_toy.ipynb"
    nbformat.write(nb, os.fspath(path))
    return path


# ------------------------------------------------------------ system packages ---

def need_system_package(debian: str) -> None:
    """Skip the calling test, with the reason and how to install it, when the Debian package ``debian``
    (``bubblewrap``, ``postgresql``, ``chromium``) is missing; under ``CI=true`` fail instead: there,
    `make test` must have installed it (transformer_course.system)."""
    import pytest

    from transformer_course import system

    why = system.skip_reason(debian)
    if why is None:
        return
    if system.in_ci():
        pytest.fail(f"CI must run this test: {why}")
    pytest.skip(why)
