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


def is_course_checkout(folder: Path) -> bool:
    """A folder holding this course: ``solutions/`` and a ``pyproject.toml`` naming ``transformer-course``."""
    project = folder / "pyproject.toml"
    if not ((folder / "solutions").is_dir() and project.is_file()):
        return False
    try:
        return re.search(r'^name\s*=\s*"transformer-course"', project.read_text(encoding="utf-8"), re.M) is not None
    except OSError:
        return False


def find_course_root() -> tuple[Path, str]:
    """``(checkout, why)``: the course checkout the command line works on, and how it was chosen.

    In this order: ``TRANSFORMER_COURSE_ROOT`` when set (an explicit override; it must be a checkout);
    the current directory or the nearest parent that is a course checkout (an instructor's copy of the
    course, a fork, a term's folder: each works on itself with one shared environment); the checkout
    this package was installed from (editable installs), so that commands also work from elsewhere.
    """
    env = os.environ.get("TRANSFORMER_COURSE_ROOT")
    if env:
        cand = Path(env).expanduser().resolve()
        if not is_course_checkout(cand):
            raise GradingError(f"TRANSFORMER_COURSE_ROOT={env} is not a course checkout (a folder with "
                               "solutions/ and the course's pyproject.toml)")
        return cand, "TRANSFORMER_COURSE_ROOT"
    cwd = Path.cwd().resolve()
    for cand in (cwd, *cwd.parents):
        if is_course_checkout(cand):
            return cand, "the current directory" if cand == cwd else "a parent of the current directory"
    installed = Path(__file__).resolve().parents[3]
    if is_course_checkout(installed):
        return installed, "the checkout this package was installed from"
    raise GradingError(
        "cannot find the course checkout (a folder with solutions/ and the course's pyproject.toml); "
        "run from inside it or set TRANSFORMER_COURSE_ROOT"
    )


def course_root() -> Path:
    """The course checkout holding ``solutions/`` (see :func:`find_course_root` for the order)."""
    return find_course_root()[0]


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
