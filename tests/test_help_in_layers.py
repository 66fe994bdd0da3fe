"""Every notebook helps in layers (COURSE.md "What every notebook has"): the header states the points, each
autograded exercise states its difficulty and time and has hints that open on demand, and no hint holds a
line of the answer's code. Read from the student notebooks, which are what learners open."""
from __future__ import annotations

import re

import nbformat
import pytest

from notebook_tools import assignment_names, solution_cells, student_notebook

NAMES = assignment_names()
DIFFICULTY = re.compile(r"\*Difficulty: [★☆]{3} · about \d+[^*]*minutes[^*]*\*")


def _cells(name: str):
    return nbformat.read(str(student_notebook(name)), as_version=4).cells


def _exercises(cells):
    """(markdown before the answer cell, the answer cell's grade_id, the test cell's points) per autograded
    exercise: an answer code cell followed by a graded test code cell."""
    out = []
    for i, cell in enumerate(cells):
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code" or not meta.get("solution"):
            continue
        test = next((c for c in cells[i + 1:] if c.metadata.get("nbgrader", {}).get("grade")), None)
        if test is None or test.cell_type != "code":
            continue
        j = i - 1
        while j >= 0 and cells[j].cell_type != "markdown":
            j -= 1
        out.append((cells[j].source if j >= 0 else "", meta["grade_id"], test.metadata["nbgrader"]["points"]))
    return out


@pytest.mark.parametrize("name", NAMES)
def test_the_header_states_the_points(name):
    cells = _cells(name)
    auto = sum(c.metadata["nbgrader"].get("points", 0) for c in cells
               if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade"))
    header = cells[0].source
    match = re.search(r"\*\*Points:\*\* (\d+) autograded", header)
    assert match, f"{name}: the header has no '**Points:** N autograded ...'"
    assert int(match.group(1)) == auto, f"{name}: the header says {match.group(1)} autograded points, the tests hold {auto}"


@pytest.mark.parametrize("name", NAMES)
def test_each_exercise_has_difficulty_time_and_hints(name):
    for markdown, grade_id, _ in _exercises(_cells(name)):
        assert DIFFICULTY.search(markdown), f"{name}/{grade_id}: no '*Difficulty: ★☆☆ · about N minutes*' line"
        hints = re.findall(r"<details><summary>Hint \d</summary>", markdown)
        assert len(hints) >= 2, f"{name}/{grade_id}: {len(hints)} hint(s); a nudge and a key idea are expected"


@pytest.mark.parametrize("name", NAMES)
def test_no_hint_holds_a_line_of_the_answer(name):
    answers = solution_cells(name)
    for markdown, grade_id, _ in _exercises(_cells(name)):
        solution = answers[grade_id].split("### BEGIN SOLUTION")[-1].split("### END SOLUTION")[0]
        code_lines = {re.sub(r"\s+", "", line.split("#")[0]) for line in solution.splitlines()}
        code_lines = {line for line in code_lines if len(line) >= 20}
        for hint in re.findall(r"<details>.*?</details>", markdown, flags=re.S):
            squeezed = re.sub(r"\s+", "", hint)
            leaked = [line for line in code_lines if line in squeezed]
            assert not leaked, f"{name}/{grade_id}: a hint holds the answer's line {leaked[0]!r}"
