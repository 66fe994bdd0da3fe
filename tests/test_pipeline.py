"""The notebook pipeline and the command line, on the real course and on a toy course.

The toy course (tests/fixtures/99_toy) has trivial exercises, so the machinery
(build, check, collect, autograde, feedback, export) is tested in seconds.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from notebook_tools import ROOT, build_toy_course, toy_submission

CLI = [sys.executable, "-m", "transformer_course"]


def run_cli(*args, root: Path = ROOT, cwd: str = "/", timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=cwd, timeout=timeout,
                          env={**os.environ, "TRANSFORMER_COURSE_ROOT": os.fspath(root)})


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    """A course checkout with one trivial assignment, built."""
    return build_toy_course(tmp_path_factory.mktemp("toycourse"))


def fresh_copy(toy: Path, dest: Path) -> Path:
    """A copy of the toy course with an empty instructor workspace."""
    shutil.copytree(toy, dest, ignore=shutil.ignore_patterns("submitted", "autograded", "feedback", "gradebook.db", "graded",
                                                              "grading_errors.json"))
    return dest


GOOD_DOUBLE = "def double(x):\n    return x + x"
GOOD_SQUARE = "def square(x):\n    return x ** 2"
HARDCODED_SQUARE = "def square(x):\n    return 4"


# --- build ---------------------------------------------------------------------

def test_generated_files_are_up_to_date():
    """CI fails when a source changed and `transformer-course build` was not run."""
    from transformer_course.build import stale_files

    stale = stale_files(ROOT)
    assert not stale, f"stale generated files, run `transformer-course build`: {stale}"


def test_build_twice_changes_nothing(toy):
    from transformer_course.build import build

    before = {p: p.read_bytes() for p in toy.rglob("*.ipynb")}
    assert build(toy, log=lambda *_: None) == []
    assert {p: p.read_bytes() for p in toy.rglob("*.ipynb")} == before


def test_build_makes_stubs_and_drops_hidden_tests(toy):
    student = (toy / "notebooks" / "99_toy" / "99_toy.ipynb").read_text()
    assert "raise NotImplementedError()" in student
    assert "return 2 * x" not in student and "square(5)" not in student
    assert "YOUR ANSWER HERE" in student
    nb = nbformat.read(toy / "notebooks" / "99_toy" / "99_toy.ipynb", as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
    assert not list((toy / "notebooks" / "99_toy").glob("*.py")), "the source (with solutions) was released"


def test_stale_source_is_detected(toy, tmp_path):
    from transformer_course.build import stale_files

    copy = tmp_path / "course"
    shutil.copytree(toy, copy)
    assert stale_files(copy) == []
    src = copy / "solutions" / "99_toy" / "99_toy.py"
    src.write_text(src.read_text().replace("A toy assignment", "A changed toy assignment"))
    stale = stale_files(copy)
    assert "solutions/99_toy/99_toy.ipynb" in stale and "notebooks/99_toy/99_toy.ipynb" in stale


def test_build_refuses_to_overwrite_a_learners_run(toy, tmp_path):
    from transformer_course.build import LearnerWorkError, build

    copy = tmp_path / "course"
    shutil.copytree(toy, copy)
    path = copy / "notebooks" / "99_toy" / "99_toy.ipynb"
    nb = nbformat.read(path, as_version=4)
    nb.cells[1].execution_count = 3
    nbformat.write(nb, path)
    with pytest.raises(LearnerWorkError, match="holds outputs"):
        build(copy, log=lambda *_: None)
    assert build(copy, log=lambda *_: None, force=True)
    # answers typed but never run (or outputs cleared) are work too
    toy_submission(copy, copy / "notebooks" / "99_toy", double=GOOD_DOUBLE)
    with pytest.raises(LearnerWorkError, match="double are filled in"):
        build(copy, log=lambda *_: None)


# --- check -----------------------------------------------------------------------

def test_check_json_grades_solution_and_untouched(toy):
    sol = run_cli("check", os.fspath(toy / "solutions" / "99_toy" / "99_toy.ipynb"), "--json", root=toy)
    assert sol.returncode == 0, sol.stderr
    result = json.loads(sol.stdout)
    assert set(result) >= {"notebook", "score", "max_score", "exercises"}
    assert (result["score"], result["max_score"]) == (5, 5)
    ex = {e["grade_id"]: e for e in result["exercises"]}
    assert set(ex) == {"double_test", "square_test", "why"}
    assert ex["why"]["needs_manual"] is True and "needs_manual" not in ex["double_test"]
    assert all(set(e) >= {"grade_id", "score", "max_score", "passed", "message"} for e in result["exercises"])

    untouched = json.loads(run_cli("check", os.fspath(toy / "notebooks" / "99_toy" / "99_toy.ipynb"), "--json", root=toy).stdout)
    assert untouched["score"] == 0 and untouched["max_score"] == 5
    assert "NotImplementedError" in {e["grade_id"]: e for e in untouched["exercises"]}["double_test"]["message"]


def test_check_hidden_tests_catch_a_hardcoded_answer(toy, tmp_path):
    path = toy_submission(toy, tmp_path, double=GOOD_DOUBLE, square=HARDCODED_SQUARE)
    proc = run_cli("check", os.fspath(path), root=toy)
    assert "5 / 5" not in proc.stdout
    assert "2 / 5" in proc.stdout, proc.stdout
    assert "did you hard-code the visible example?" in proc.stdout  # the hint reaches the learner


def test_check_generates_each_version_of_an_assignment_once(toy, tmp_path, monkeypatch):
    """`check` keeps the generated gradebook per version of the source notebook: the second check of the same
    assignment generates nothing and grades the same; a changed source (a new hidden test) is generated again
    and its new test counts."""
    from transformer_course.grader import nbgrading

    course = fresh_copy(toy, tmp_path / "course")
    monkeypatch.setenv("TRANSFORMER_COURSE_CACHE", os.fspath(tmp_path / "cache"))
    generated = []
    real_generate = nbgrading.generate_assignment
    monkeypatch.setattr(nbgrading, "generate_assignment",
                        lambda config, name: (generated.append(name), real_generate(config, name))[1])
    hardcoded = toy_submission(course, tmp_path / "sub", double=GOOD_DOUBLE, square=HARDCODED_SQUARE)

    first = nbgrading.check_notebook(hardcoded, root=course)
    second = nbgrading.check_notebook(hardcoded, root=course)
    assert generated == ["99_toy"]
    assert first.to_json()["exercises"] == second.to_json()["exercises"]
    assert (first.score, first.max_score) == (2, 5)              # the hidden test caught the hard-coded square
    assert len(list((tmp_path / "cache" / "check").glob("99_toy-*.db"))) == 1

    source = course / "solutions" / "99_toy" / "99_toy.py"
    source.write_text(source.read_text().replace('assert double(21) == 42, "double(21) should be 42"',
                                                 'assert double(21) == 42, "double(21) should be 42"\n'
                                                 'assert double(0.5) == 2, "a new hidden test"'))
    from transformer_course.build import build

    build(course, log=lambda *_: None)
    third = nbgrading.check_notebook(hardcoded, root=course)
    assert generated == ["99_toy", "99_toy"]
    assert third.score == 0 and "a new hidden test" in third.exercises[0].message
    assert len(list((tmp_path / "cache" / "check").glob("99_toy-*.db"))) == 1   # the old version was pruned


@pytest.mark.parametrize("content, expected", [
    ("{not json", "not a readable notebook"),
    ('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}', "has no cells"),
])
def test_check_reports_a_broken_notebook_clearly(toy, tmp_path, content, expected):
    bad = tmp_path / "99_toy.ipynb"
    bad.write_text(content)
    proc = run_cli("check", os.fspath(bad), "--json", root=toy)
    assert proc.returncode == 2
    result = json.loads(proc.stdout)
    assert expected in result["errors"][0]


def test_check_needs_an_assignment_file_name(toy, tmp_path):
    path = toy_submission(toy, tmp_path)
    renamed = path.with_name("my homework.ipynb")
    path.rename(renamed)
    proc = run_cli("check", os.fspath(renamed), root=toy)
    assert proc.returncode == 2 and "NN_name.ipynb" in proc.stderr


def test_doctor_reports_versions_and_device():
    proc = run_cli("doctor")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for word in ("torch", "nbgrader", "transformers", "device", "python3", "sandbox", "bubblewrap", "postgresql",
                 "chromium", "gpu extras"):
        assert word in proc.stdout, word


# --- the instructor loop -------------------------------------------------------------

def _class_sandbox() -> str:
    """The classroom's sandbox where bubblewrap works (always in CI); elsewhere the trusted path, with a note."""
    import warnings

    from transformer_course import system
    from transformer_course.grader.sandbox import sandbox_works

    ok, why = sandbox_works()
    if ok:
        return "bwrap"
    if system.in_ci():
        pytest.fail(f"CI must grade the class in the sandbox: {why}")
    warnings.warn(f"the instructor loop is tested without the sandbox (--sandbox none): {why}")
    return "none"


def test_collect_autograde_feedback_export(toy, tmp_path):
    """A small class: a perfect, a partial, an untouched and a malformed submission."""
    from transformer_course.grader import classroom

    sandbox = _class_sandbox()

    toy = fresh_copy(toy, tmp_path / "course")

    inbox = tmp_path / "inbox"
    toy_submission(toy, inbox / "ada", double=GOOD_DOUBLE, square=GOOD_SQUARE)
    toy_submission(toy, inbox / "bob", double=GOOD_DOUBLE, square=HARDCODED_SQUARE)
    toy_submission(toy, inbox / "cy")
    (inbox / "dee").mkdir()
    (inbox / "dee" / "99_toy.ipynb").write_text("{truncated")
    assert classroom.collect("99_toy", inbox, root=toy) == 4

    summary = classroom.autograde(["99_toy"], workers=2, root=toy, sandbox=sandbox)
    scores = {r.student: r.score for r in summary.graded}
    assert scores == {"ada": 5, "bob": 2, "cy": 0, "dee": 0}, summary.report()
    dee = next(r for r in summary.graded if r.student == "dee")
    assert dee.errors and "not a readable notebook" in dee.errors[0]
    assert [f[1] for f in summary.failures] == ["dee"], "the malformed submission must be reported, not silent"

    again = classroom.autograde(["99_toy"], workers=2, root=toy, sandbox=sandbox)
    assert {s for _, s in again.skipped} >= {"ada", "bob", "cy"}, "graded submissions are not graded twice"

    html = classroom.feedback(["99_toy"], root=toy)
    assert {p.parts[-3] for p in html} >= {"ada", "bob", "cy"}
    bob = next(p for p in html if p.parts[-3] == "bob").read_text()
    assert "hard-code" in bob

    out = classroom.export(os.fspath(tmp_path / "grades.csv"), root=toy)
    rows = {r["student_id"]: r for r in csv.DictReader(out.open())}
    assert {s: float(r["score"]) for s, r in rows.items()} == {"ada": 5, "bob": 2, "cy": 0, "dee": 0}
    # the malformed submission is in the export, with why: never a silent zero, never left out
    assert rows["dee"]["status"].startswith("error:") and "not a readable notebook" in rows["dee"]["status"]
    assert rows["dee"]["max_score"] == rows["ada"]["max_score"]
    # their written answers were left as "YOUR ANSWER HERE", which nbgrader scores 0 without a human
    assert {rows[s]["status"] for s in ("ada", "bob", "cy")} == {"ok"}


def test_collect_accepts_a_zip_of_the_folder_and_explains_bad_input(toy, tmp_path):
    import zipfile

    from transformer_course.grader import classroom

    inbox = tmp_path / "inbox"
    toy_submission(toy, inbox / "eve", double=GOOD_DOUBLE)
    toy_submission(toy, inbox / "fay")
    archive = tmp_path / "inbox.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in inbox.rglob("*.ipynb"):
            zf.write(f, f.relative_to(tmp_path))  # entries start with inbox/, as `zip -r inbox.zip inbox` makes
    copy = fresh_copy(toy, tmp_path / "course")
    assert classroom.collect("99_toy", archive, root=copy) == 2
    assert sorted(p.name for p in (copy / "autograder" / "submitted").iterdir()) == ["eve", "fay"]
    proc = run_cli("collect", "99_toy", os.fspath(tmp_path / "missing"), root=copy)
    assert proc.returncode == 2 and proc.stderr.startswith("error:") and "Traceback" not in proc.stderr


# --- JupyterLab ------------------------------------------------------------------

def test_make_lab_serves_the_notebooks(tmp_path):
    """`make lab` starts JupyterLab at notebooks/; fetch a notebook through its API."""
    import socket
    import time
    import urllib.request

    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = "course-test-token"
    venv = Path(sys.executable).parent.parent
    args = f"--no-browser --ServerApp.ip=127.0.0.1 --ServerApp.port={port} --ServerApp.token={token} --ServerApp.open_browser=False"
    proc = subprocess.Popen(
        ["make", "-s", "-o", f"{venv}/.installed", "lab", f"VENV={venv}", f"LAB_ARGS={args}"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "JUPYTER_RUNTIME_DIR": os.fspath(tmp_path / "runtime"),
             "JUPYTER_CONFIG_DIR": os.fspath(tmp_path / "config")})
    try:
        url = f"http://127.0.0.1:{port}/api/contents/02_attention/02_attention.ipynb?token={token}"
        deadline = time.time() + 90
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as resp:
                    model = json.loads(resp.read())
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise AssertionError("JupyterLab did not serve the notebook:\n" + (proc.stdout.read().decode() if proc.poll() is not None else ""))
                time.sleep(1)
        assert model["type"] == "notebook"
        assert any("attention" in "".join(c["source"]).lower() for c in model["content"]["cells"])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/lab?token={token}", timeout=10) as resp:
            assert resp.status == 200 and b"JupyterLab" in resp.read()
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
