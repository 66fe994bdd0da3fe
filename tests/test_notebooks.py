"""Every notebook, end to end, through `transformer-course check` (the classroom path).

Each solution notebook executes and earns full marks; each untouched student
notebook earns zero; the student notebook with the solution's code pasted into its
answer cells earns full marks; and planted mistakes cost their exercise's points
with a hint.  Each case is one test so that pytest-xdist spreads them over cores.
"""
from __future__ import annotations

import re
import time

import nbformat
import pytest

from notebook_tools import (ROOT, assignment_names, check, fill_student, solution_notebook,
                            student_notebook)

NAMES = assignment_names()
pytestmark = pytest.mark.slow


def test_there_are_notebooks():
    assert {"01_rnn_limitations", "02_attention", "03_multi_head_attention", "04_positional_encoding",
            "05_transformer_blocks", "06_bert", "07_gpt", "08_scaling", "09_clip",
            "10_efficient_attention"} <= set(NAMES), NAMES


@pytest.mark.parametrize("name", NAMES)
def test_solution_earns_full_marks(name):
    start = time.perf_counter()
    result = check(solution_notebook(name))
    elapsed = time.perf_counter() - start
    print(f"\n{name}: solution checked in {elapsed:.1f} s (notebook executed once, hidden tests included)")
    assert not result["errors"], result["errors"]
    assert result["max_score"] > 0
    failed = [(e["grade_id"], e["message"]) for e in result["exercises"] if not e.get("needs_manual") and not e["passed"]]
    assert not failed, f"solution lost points: {failed}"
    assert result["score"] == result["max_score"]
    assert any(e.get("needs_manual") for e in result["exercises"]), "no hand-graded written question"


@pytest.mark.parametrize("name", NAMES)
def test_untouched_student_notebook_earns_zero(name):
    result = check(student_notebook(name))
    assert result["max_score"] > 0
    assert result["score"] == 0, [(e["grade_id"], e["score"]) for e in result["exercises"] if e["score"]]
    for ex in result["exercises"]:
        if not ex.get("needs_manual"):
            assert ex["message"], f"{ex['grade_id']} failed without saying why"


@pytest.mark.parametrize("name", NAMES)
def test_student_notebook_with_solution_code_earns_full_marks(name, tmp_path):
    result = check(fill_student(name, tmp_path))
    failed = [(e["grade_id"], e["message"]) for e in result["exercises"] if not e.get("needs_manual") and not e["passed"]]
    assert not failed, failed
    assert result["score"] == result["max_score"] > 0


SOLUTION_BLOCK = re.compile(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", re.S)
HIDDEN_BLOCK = re.compile(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", re.S)


@pytest.mark.parametrize("name", NAMES)
def test_student_notebook_holds_no_solution_or_hidden_test(name):
    source = (ROOT / "solutions" / name / f"{name}.py").read_text()
    student = nbformat.read(student_notebook(name), as_version=4)
    text = "\n".join(c.source for c in student.cells)
    assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text
    outside = HIDDEN_BLOCK.sub("", SOLUTION_BLOCK.sub("", source))
    distinctive = set()
    for block in SOLUTION_BLOCK.findall(source) + HIDDEN_BLOCK.findall(source):
        for line in block.splitlines():
            line = line.strip().lstrip("#").strip()
            # long enough not to occur by chance, and not also written outside the blocks
            if len(line) >= 25 and line not in outside:
                distinctive.add(line)
    leaked = [line for line in distinctive if line in text]
    assert not leaked, f"solution or hidden-test lines leaked into the student notebook: {leaked[:5]}"
    files = [p.name for p in (ROOT / "notebooks" / name).iterdir()]
    assert not [f for f in files if f.endswith(".py")], files


@pytest.mark.parametrize("name", NAMES)
def test_notebook_has_what_every_notebook_needs(name):
    nb = nbformat.read(solution_notebook(name), as_version=4)
    md = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown").lower()
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    for word in ("objectives", "prerequisites", "estimated time", "check your work", "common bug"):
        assert word in md, f"{name}: header or call-out missing '{word}'"
    assert "ipywidgets" in code, f"{name}: no ipywidgets explorer"
    assert "$" in md, f"{name}: no math"
    graded = [c.metadata["nbgrader"] for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]
    tests = [m for m in graded if m.get("locked") and not m.get("solution")]
    assert len(tests) >= 3, f"{name}: only {len(tests)} autograded test cells"
    assert all(m.get("points", 0) > 0 for m in graded)
    ids = [c.metadata["nbgrader"]["grade_id"] for c in nb.cells if "nbgrader" in c.metadata]
    assert len(ids) == len(set(ids)), f"{name}: duplicate grade_ids"
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade") and cell.cell_type == "code":
            assert "BEGIN HIDDEN TESTS" in cell.source, f"{name}/{meta['grade_id']}: no hidden tests"
