"""Where the course is and what it holds: the checkout, its assignments, and each one's check module."""
from __future__ import annotations

import os
import re
from pathlib import Path

#: An assignment's name: two digits, an underscore, a lower-case name (``02_attention``).
ASSIGNMENT_RE = re.compile(r"^(\d\d)_([a-z0-9_]+)$")
#: Where the checks of assignment ``NN_name`` live: ``transformer_course.grading.<name>``.
CHECKS_PACKAGE = "transformer_course.grading"


class GradingError(RuntimeError):
    """A submission or a command could not be graded at all (not a wrong answer: a broken input)."""


def course_root() -> Path:
    """The course checkout holding ``solutions/``.

    ``TRANSFORMER_COURSE_ROOT`` wins; otherwise the checkout this package was
    installed from (editable installs), then the current directory and its parents.
    """
    env = os.environ.get("TRANSFORMER_COURSE_ROOT")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[3])
    cwd = Path.cwd().resolve()
    candidates.extend([cwd, *cwd.parents])
    for cand in candidates:
        if (cand / "solutions").is_dir() and (cand / "pyproject.toml").is_file():
            return cand
    raise GradingError(
        "cannot find the course checkout (a folder with solutions/ and pyproject.toml); "
        "run from inside it or set TRANSFORMER_COURSE_ROOT"
    )


def assignments(root: Path | None = None) -> list[str]:
    """Names of the assignments that have a source, in course order."""
    root = root or course_root()
    return sorted(
        p.name for p in (root / "solutions").iterdir()
        if p.is_dir() and ASSIGNMENT_RE.match(p.name) and (p / f"{p.name}.py").is_file()
    )


def assignment_of(notebook: Path) -> str:
    """The assignment a notebook belongs to, from its file name ``NN_name.ipynb``."""
    stem = notebook.name[:-len(".ipynb")] if notebook.name.endswith(".ipynb") else notebook.stem
    if not ASSIGNMENT_RE.match(stem):
        raise GradingError(
            f"cannot tell the assignment from the file name {notebook.name!r}: "
            "name it NN_name.ipynb, e.g. 02_attention.ipynb")
    return stem


def check_module(assignment: str) -> str:
    """The module holding the checks of ``assignment``: ``02_attention`` -> ``transformer_course.grading.attention``."""
    m = ASSIGNMENT_RE.match(assignment)
    if not m:
        raise GradingError(f"not an assignment name: {assignment!r}")
    return f"{CHECKS_PACKAGE}.{m.group(2)}"
