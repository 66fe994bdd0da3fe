"""The grader's architecture and the check-module contract (docs/AUTHORING.md, docs/ARCHITECTURE.md).

Each rule here is one a maintainer adding a notebook could break without any other test noticing:
an import cycle, a setting or protected-package list defined twice, a test cell whose check module the
harness does not load before the integrity snapshot, an oracle imported lazily but not declared, a
visible check without its hidden counterpart.
"""
from __future__ import annotations

import ast
import importlib
import importlib.util
import re
import warnings
from pathlib import Path

import nbformat
import pytest

from notebook_tools import ROOT, assignment_names

from transformer_course.grader import harness, review, settings
from transformer_course.grader.course import CHECKS_PACKAGE, check_module
from transformer_course.grader.nbgrading import check_modules_named, grading_plan

PACKAGE = ROOT / "utils" / "transformer_course"
HIDDEN = "### BEGIN HIDDEN TESTS"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, lazy_only: bool = False) -> list[tuple[str, int]]:
    """Absolute names of the modules ``path`` imports (relative imports resolved), with their lines.
    ``lazy_only``: only the imports inside functions."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text())
    top_level = set(map(id, tree.body))
    found = []
    for node in ast.walk(tree):
        if lazy_only and id(node) in top_level:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((target, node.lineno))
            for alias in node.names:                  # `from pkg import submodule`
                sub = f"{target}.{alias.name}"
                if _is_module(sub):
                    found.append((sub, node.lineno))
        elif isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
    return found


def _is_module(name: str) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")               # deprecated aliases some libraries keep
            return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


PACKAGE_FILES = sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)
CHECK_MODULES = sorted(p for p in (PACKAGE / "grading").glob("*.py") if p.stem not in ("__init__", "core"))


# ------------------------------------------------------------------ the layout ---

def test_no_import_cycle_in_the_package():
    modules = {_module_name(p): p for p in PACKAGE_FILES}
    graph = {m: {t for t, _ in _imports(p) if t in modules and t != m} for m, p in modules.items()}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                pytest.fail("import cycle: " + " -> ".join(path[path.index(nxt):] + [node, nxt]))
            if not state.get(nxt):
                visit(nxt, path + [node])
        state[node] = 2

    for module in sorted(graph):
        if not state.get(module):
            visit(module, [])


def test_the_checks_do_not_import_the_grader_and_the_grader_no_checks():
    """The checks (teaching content) and the grader (running submissions) are apart: a check module imports
    nothing of the grader; the grader names check modules only as strings, never imports their code."""
    for path in (PACKAGE / "grading").glob("*.py"):
        for target, line in _imports(path):
            assert not target.startswith("transformer_course.grader"), f"{path.name}:{line} imports {target}"
    for path in (PACKAGE / "grader").glob("*.py"):
        for target, line in _imports(path):
            assert not target.startswith(CHECKS_PACKAGE + "."), f"grader/{path.name}:{line} imports {target}"


def test_each_setting_is_defined_once():
    """The environment variables that set the grader's limits are read in grader/settings.py only."""
    for variable in ("TRANSFORMER_COURSE_CELL_TIMEOUT", "TRANSFORMER_COURSE_NOTEBOOK_TIMEOUT",
                     "TRANSFORMER_COURSE_MEMORY_MB", "TRANSFORMER_COURSE_MAX_PROCESSES"):
        readers = [p.relative_to(PACKAGE).as_posix() for p in PACKAGE_FILES if variable in p.read_text()]
        assert readers == ["grader/settings.py"], (variable, readers)
    definitions = [p.relative_to(PACKAGE).as_posix() for p in PACKAGE_FILES
                   if re.search(r"^(PROTECTED_\w+|CELL_TIMEOUT_S)\s*[:=]", p.read_text(), re.M)]
    assert definitions == ["grader/settings.py"], definitions
    assert harness.PROTECTED_PACKAGES is settings.PROTECTED_PACKAGES is review.PROTECTED_PACKAGES


# ------------------------------------------------------- the check-module contract ---

def _test_cells(name: str) -> list[tuple[str, str]]:
    nb = nbformat.read(ROOT / "solutions" / name / f"{name}.ipynb", as_version=4)
    return [(c.metadata["nbgrader"]["grade_id"], c.source) for c in nb.cells
            if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")
            and not c.metadata["nbgrader"].get("solution")]


@pytest.mark.parametrize("name", assignment_names())
def test_test_cells_use_their_notebooks_check_module_which_is_preloaded(name):
    own = check_module(name)
    assert _is_module(own), f"{name}: its checks belong in {own} (utils/{own.replace('.', '/')}.py)"
    nb = nbformat.read(ROOT / "solutions" / name / f"{name}.ipynb", as_version=4)
    _, _, preload = grading_plan(nb, name)
    assert own in preload
    for grade_id, source in _test_cells(name):
        named = check_modules_named(source)
        assert named == [own], f"{name}/{grade_id}: test cells import {own} (as `check`), not {named}"


@pytest.mark.parametrize("name", assignment_names())
def test_every_visible_check_has_its_hidden_check(name):
    module = importlib.import_module(check_module(name))
    public = set(module.__all__)
    for grade_id, source in _test_cells(name):
        visible, _, hidden = source.partition(HIDDEN)
        shown = re.findall(r"\bcheck\.(\w+)\(", visible)
        graded = re.findall(r"\bcheck\.(\w+)\(", hidden)
        assert shown, f"{grade_id}: the visible part calls no check"
        assert graded, f"{grade_id}: no hidden check (between the hidden-test markers)"
        for called in shown + graded:
            assert called in public, f"{grade_id}: check.{called} is not in {module.__name__}.__all__"
        for example in (s for s in shown if s.endswith("_example")):
            assert example[:-len("_example")] in graded, f"{grade_id}: {example} without its hidden check"
    for example in (n for n in public if n.endswith("_example")):
        assert example[:-len("_example")] in public, f"{module.__name__}: {example} without its hidden check"


@pytest.mark.parametrize("path", CHECK_MODULES, ids=lambda p: p.stem)
def test_lazy_imports_of_protected_modules_are_declared_oracles(path):
    """A module a check imports inside a function is loaded after the integrity snapshot unless the harness
    preloads it: every such import of a protected package must be in the module's ORACLES (or imported at
    the top of the module), or learner code could replace it first."""
    module = importlib.import_module(_module_name(path))
    oracles = tuple(getattr(module, "ORACLES", ()))
    for oracle in oracles:
        assert _is_module(oracle), f"{module.__name__}.ORACLES names {oracle}, which is not a module"
    top = {t for t, _ in _imports(path)} - {t for t, _ in _imports(path, lazy_only=True)}
    preloaded = set(harness.BASE_PRELOAD) | top | set(oracles)
    for target, line in _imports(path, lazy_only=True):
        if target.split(".")[0] not in settings.PROTECTED_PACKAGES or not _is_module(target):
            continue
        covered = any(target == p or target.startswith(p + ".") for p in preloaded) or any(
            p.startswith(target + ".") for p in preloaded)            # a parent of a preloaded module
        assert covered, (f"{path.name}:{line} imports {target} inside a function: add it to ORACLES "
                         f"(now {oracles}) so that the harness loads it before any learner code")


def test_check_modules_named_reads_every_import_form():
    assert check_modules_named("from transformer_course.grading import attention as check") == \
        ["transformer_course.grading.attention"]
    assert check_modules_named("import transformer_course.grading.gpt as g\ng.generate(f)") == \
        ["transformer_course.grading.gpt"]
    assert check_modules_named("from transformer_course.grading.bert import mlm_loss\n%time mlm_loss(f)") == \
        ["transformer_course.grading.bert"]
    assert check_modules_named("from transformer_course.grading import CheckFailed, attention") == \
        ["transformer_course.grading.attention"]
    assert check_modules_named("from transformer_course import grading") == []


def test_old_check_module_names_still_import():
    from transformer_course.grading import heads, positions

    assert heads.__name__ == f"{CHECKS_PACKAGE}.multi_head_attention"
    assert positions.__name__ == f"{CHECKS_PACKAGE}.positional_encoding"
