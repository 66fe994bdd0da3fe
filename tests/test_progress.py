"""`transformer-course progress` and the check records it reads (utils/transformer_course/progress.py).

On a toy course of two trivial assignments (tests/fixtures/99_toy, twice: 98_toy and 99_toy), so that the
real grader runs in seconds: a handful of real checks, and fakes of `check_notebook` where only the
bookkeeping is under test.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil
from pathlib import Path

import nbformat
import pytest

from notebook_tools import ROOT

from transformer_course import cli, progress
from transformer_course.grader import nbgrading
from transformer_course.grader.nbgrading import ExerciseResult, SubmissionResult

GOOD_DOUBLE = "def double(x):\n    return x + x"
GOOD_SQUARE = "def square(x):\n    return x ** 2"
HARDCODED_SQUARE = "def square(x):\n    return 4"


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    """A course checkout with two toy assignments, 98_toy and 99_toy, built."""
    from transformer_course.build import build

    root = tmp_path_factory.mktemp("progress-course")
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    (root / "autograder").mkdir()
    for name in ("98_toy", "99_toy"):
        (root / "solutions" / name).mkdir(parents=True)
        shutil.copy(ROOT / "tests" / "fixtures" / "99_toy" / "99_toy.py", root / "solutions" / name / f"{name}.py")
    build(root, log=lambda *_: None)
    return root


@pytest.fixture(autouse=True)
def in_course(course, tmp_path_factory, monkeypatch):
    cache = tmp_path_factory.getbasetemp() / "progress-cache"     # the generated gradebooks, shared by the tests
    monkeypatch.setenv("TRANSFORMER_COURSE_ROOT", os.fspath(course))
    monkeypatch.setenv("TRANSFORMER_COURSE_CACHE", os.fspath(cache))
    monkeypatch.setenv("TRANSFORMER_COURSE_OFFLINE", "1")


@pytest.fixture
def calls(monkeypatch) -> list[str]:
    """The real check_notebook, counting the notebooks it grades."""
    graded: list[str] = []
    real = nbgrading.check_notebook

    def counting(path, *args, **kwargs):
        graded.append(Path(path).name)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(nbgrading, "check_notebook", counting)
    return graded


def learner_copy(course: Path, dest: Path, answers: dict[str, dict[str, str]] | None = None) -> Path:
    """The course's student notebooks in ``dest/NN_name/NN_name.ipynb``; ``answers`` maps an assignment to
    grade_id -> source for the cells to fill."""
    shutil.copytree(course / "notebooks", dest)
    for name, cells in (answers or {}).items():
        edit(dest / name / f"{name}.ipynb", cells)
    return dest


def edit(path: Path, cells: dict[str, str]) -> None:
    nb = nbformat.read(os.fspath(path), as_version=4)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in cells:
            cell.source = cells[gid]
    nbformat.write(nb, os.fspath(path))


def run(capsys, *args) -> tuple[int, str, str]:
    rc = cli.main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


def row(out: str, name: str) -> str:
    """The table's line of notebook ``name``."""
    return next(line for line in out.splitlines() if line.strip().startswith(name + " "))


def todo(out: str) -> str:
    return out.split("What is left", 1)[1]


def fake_result(path, score=2.0, errors=()) -> SubmissionResult:
    return SubmissionResult(
        notebook=os.fspath(path), assignment=Path(path).stem, student="learner", score=score, max_score=5.0,
        exercises=[ExerciseResult("double_test", 2.0, 2.0, True, ""),
                   ExerciseResult("square_test", score - 2.0, 3.0, score >= 5.0, "AssertionError: square(5)"),
                   ExerciseResult("why", 0.0, 1.0, False, "written answer: graded by hand", needs_manual=True)],
        errors=list(errors))


# ------------------------------------------------------------------ the record ---

def test_check_records_its_result_beside_the_notebook(course, tmp_path, capsys, calls):
    """`check` (not only `progress`) leaves a record keyed by the notebook's SHA-256, enough for the table."""
    folder = learner_copy(course, tmp_path / "work",
                          {"99_toy": {"double": GOOD_DOUBLE, "square": HARDCODED_SQUARE}})
    notebook = folder / "99_toy" / "99_toy.ipynb"
    rc, out, err = run(capsys, "check", os.fspath(notebook), "--json")
    assert rc == 0, err
    assert json.loads(out)["score"] == 2                     # stdout is still exactly one JSON object
    assert calls == ["99_toy.ipynb"]
    # out of the assignment's own folder (which `build` regenerates), in the folder above it
    path = folder / ".transformer_course" / "99_toy.check.json"
    assert progress.record_path(notebook) == path and not (folder / "99_toy" / ".transformer_course").exists()
    record = json.loads(path.read_text())
    assert record["sha256"] == hashlib.sha256(notebook.read_bytes()).hexdigest()
    assert record["assignment_sha256"] == hashlib.sha256(
        (course / "solutions" / "99_toy" / "99_toy.ipynb").read_bytes()).hexdigest()
    assert datetime.datetime.fromisoformat(record["checked_at"]).tzinfo is not None
    assert (record["score"], record["max_score"]) == (2, 5)
    ex = {e["grade_id"]: e for e in record["exercises"]}
    assert ex["double_test"]["passed"] and not ex["square_test"]["passed"]
    assert "hard-code" in ex["square_test"]["message"] and ex["why"]["needs_manual"]
    assert not [p for p in path.parent.iterdir() if p != path], "a temporary file was left behind"
    # a flat folder: the record is in that folder
    assert progress.record_path(tmp_path / "flat" / "02_attention.ipynb") == \
        (tmp_path / "flat" / ".transformer_course" / "02_attention.check.json").resolve()


def test_a_record_that_cannot_be_written_does_not_fail_the_check(course, tmp_path, capsys, monkeypatch):
    folder = learner_copy(course, tmp_path / "work")
    (folder / ".transformer_course").write_text("a file where the folder should be")
    monkeypatch.setattr(nbgrading, "check_notebook", lambda path, *a, **k: fake_result(path))
    rc, out, err = run(capsys, "check", os.fspath(folder / "99_toy" / "99_toy.ipynb"))
    assert rc == 0
    assert "2 / 5 autograded points" in out
    assert "warning: could not record" in err


def test_a_notebook_saved_during_its_check_is_not_recorded(course, tmp_path, capsys, monkeypatch):
    folder = learner_copy(course, tmp_path / "work")
    notebook = folder / "99_toy" / "99_toy.ipynb"

    def saved_meanwhile(path, *a, **k):
        edit(notebook, {"double": GOOD_DOUBLE})
        return fake_result(path)

    monkeypatch.setattr(nbgrading, "check_notebook", saved_meanwhile)
    rc, _, err = run(capsys, "check", os.fspath(notebook))
    assert rc == 0 and "not recorded" in err
    assert not progress.record_path(notebook).exists()


# ------------------------------------------------------------------ progress ---

def test_progress_grades_what_changed_and_only_that(course, tmp_path, capsys, calls):
    """The whole loop: first run grades the worked notebook (not the untouched one), the second grades
    nothing, an edit shows as changed with --no-run and is graded again without it."""
    folder = learner_copy(course, tmp_path / "work",
                          {"99_toy": {"double": GOOD_DOUBLE, "square": HARDCODED_SQUARE}})
    notebook = folder / "99_toy" / "99_toy.ipynb"

    rc, first, err = run(capsys, "progress", os.fspath(folder))
    assert rc == 0, err
    assert calls == ["99_toy.ipynb"]                          # 98_toy is untouched: nothing to grade
    assert "checking 99_toy/99_toy.ipynb (never checked)" in err
    assert "0/5" in row(first, "98_toy") and "not started" in row(first, "98_toy")
    assert "2/5" in row(first, "99_toy") and "2 to do" in row(first, "99_toy")  # square + the essay
    left = todo(first)
    assert "square_test" in left and "0/3 points" in left and "hard-code" in left
    assert "double_test" not in left                          # passed: not on the to-do list
    assert "98_toy: not started (2 graded tests, 5 points; 1 written answer)" in left
    why = next(line for line in left.splitlines() if "why" in line)
    assert "written answer" in why and "instructor" in why and "\u2717" not in why   # not a failure
    record = progress.record_path(notebook)
    stamp = record.stat().st_mtime_ns

    rc, second, err = run(capsys, "progress", os.fspath(folder))
    assert rc == 0 and calls == ["99_toy.ipynb"], "a notebook that did not change was graded again"
    assert second == first and "checking" not in err
    assert record.stat().st_mtime_ns == stamp

    edit(notebook, {"square": GOOD_SQUARE, "why": "Because x + x is 2x."})
    rc, stale, err = run(capsys, "progress", "--no-run", os.fspath(folder))
    assert rc == 0 and calls == ["99_toy.ipynb"]
    assert "changed since last check" in row(stale, "99_toy")

    rc, fresh, err = run(capsys, "progress", os.fspath(folder))
    assert rc == 0 and calls == ["99_toy.ipynb", "99_toy.ipynb"]
    assert "changed since the last check" in err
    assert "5/5" in row(fresh, "99_toy") and row(fresh, "99_toy").endswith("done")
    assert "square_test" not in todo(fresh)
    assert "waiting for an instructor" in next(line for line in todo(fresh).splitlines() if "why" in line)
    assert json.loads(record.read_text())["sha256"] == hashlib.sha256(notebook.read_bytes()).hexdigest()

    rc, out, err = run(capsys, "progress", "--json", os.fspath(folder))
    assert rc == 0 and calls == ["99_toy.ipynb", "99_toy.ipynb"]
    [line] = [ln for ln in out.splitlines() if ln.strip()]
    data = json.loads(line)
    by = {n["assignment"]: n for n in data["notebooks"]}
    assert list(by) == ["98_toy", "99_toy"]
    assert by["98_toy"]["status"] == "not started" and by["98_toy"]["left"] == ["double_test", "square_test", "why"]
    assert by["99_toy"]["status"] == "done" and by["99_toy"]["source"] == "record"
    assert (by["99_toy"]["score"], by["99_toy"]["max_score"]) == (5, 5)
    assert by["99_toy"]["left"] == [] and by["99_toy"]["waiting_for_hand_grading"] == ["why"]
    assert data["total"] == {"score": 5, "max_score": 10, "counted": 2, "not_counted": 0}


def test_a_malformed_notebook_is_an_error_line_and_the_others_still_show(course, tmp_path, capsys, calls):
    folder = learner_copy(course, tmp_path / "work", {"99_toy": {"double": GOOD_DOUBLE}})
    (folder / "98_toy" / "98_toy.ipynb").write_text("{not json")     # first in course order
    rc, out, err = run(capsys, "progress", os.fspath(folder))
    assert rc == 0
    assert calls == ["98_toy.ipynb", "99_toy.ipynb"]
    assert "error" in row(out, "98_toy") and "not a readable notebook" in row(out, "98_toy")
    assert "2/5" in row(out, "99_toy")
    assert "square_test" in todo(out) and "NotImplementedError" in todo(out)
    assert not progress.record_path(folder / "98_toy" / "98_toy.ipynb").exists()


def test_a_crash_or_a_failed_grading_run_is_an_error_line(course, tmp_path, capsys, monkeypatch):
    """An unexpected exception in the grader, or a run that reports errors (a kernel that died), is that
    notebook's error; the other notebook is still graded."""
    folder = learner_copy(course, tmp_path / "work", {"98_toy": {"double": GOOD_DOUBLE},
                                                       "99_toy": {"double": GOOD_DOUBLE}})

    def grader(path, *a, **k):
        if Path(path).name == "98_toy.ipynb":
            raise RuntimeError("the grader fell over")
        return fake_result(path, errors=["the kernel died (out of memory?)"])

    monkeypatch.setattr(nbgrading, "check_notebook", grader)
    rc, out, _ = run(capsys, "progress", os.fspath(folder))
    assert rc == 0
    assert "error: RuntimeError: the grader fell over" in row(out, "98_toy")
    assert "error: the kernel died" in row(out, "99_toy") and "2/5" in row(out, "99_toy")
    assert "square_test" in todo(out)


def test_a_course_update_grades_again(course, tmp_path, capsys, monkeypatch):
    """A record of another version of the assignment (the hidden tests may have changed) does not count."""
    folder = learner_copy(course, tmp_path / "work", {"99_toy": {"double": GOOD_DOUBLE}})
    notebook = folder / "99_toy" / "99_toy.ipynb"
    progress.write_record(notebook, fake_result(notebook), hashlib.sha256(notebook.read_bytes()).hexdigest(),
                          "0" * 64)
    rc, out, _ = run(capsys, "progress", "--no-run", os.fspath(folder))
    assert rc == 0 and "course updated since last check" in row(out, "99_toy")
    monkeypatch.setattr(nbgrading, "check_notebook", lambda path, *a, **k: fake_result(path, score=5.0))
    rc, out, err = run(capsys, "progress", os.fspath(folder))
    assert "course's version" in err and "5/5" in row(out, "99_toy")


def test_no_run_on_a_notebook_never_checked(course, tmp_path, capsys, monkeypatch):
    folder = learner_copy(course, tmp_path / "work", {"99_toy": {"double": GOOD_DOUBLE}})
    monkeypatch.setattr(nbgrading, "check_notebook", lambda *a, **k: pytest.fail("--no-run graded a notebook"))
    rc, out, _ = run(capsys, "progress", "--no-run", os.fspath(folder))
    assert rc == 0 and "not checked" in row(out, "99_toy") and "not started" in row(out, "98_toy")


def test_flat_folder_and_missing_notebooks(course, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "flat"
    folder.mkdir()
    shutil.copy(course / "notebooks" / "99_toy" / "99_toy.ipynb", folder)
    monkeypatch.chdir(folder)                                  # the default folder: here, it holds a notebook
    rc, out, _ = run(capsys, "progress", "--no-run")
    assert rc == 0 and f"Progress in {folder}" in out
    assert "no notebook" in row(out, "98_toy") and "not started" in row(out, "99_toy")


def test_default_folder_is_the_courses_notebooks(course, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert progress.default_folder() == course / "notebooks"
    (tmp_path / "01_anything").mkdir()
    (tmp_path / "01_anything" / "01_anything.ipynb").write_text("{}")
    assert progress.default_folder() == tmp_path


def test_a_folder_without_notebooks_exits_2(course, tmp_path, capsys):
    rc, out, err = run(capsys, "progress", os.fspath(tmp_path))
    assert rc == 2 and not out and "no notebook of the course" in err
    rc, out, err = run(capsys, "progress", os.fspath(tmp_path / "nowhere"))
    assert rc == 2 and "no such folder" in err
