"""Which course folder the command line works on: the copy it runs in, then the installed checkout,
with TRANSFORMER_COURSE_ROOT as an explicit override (README, "Teach")."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from transformer_course.grader.course import GradingError, course_root, find_course_root

from notebook_tools import ROOT

INSTALLED = ROOT.resolve()


def _copy_of_the_course(where: Path) -> Path:
    """A copy of the course as an instructor makes one: the project file, one assignment, the workspace."""
    where.mkdir(parents=True)
    shutil.copy(ROOT / "pyproject.toml", where / "pyproject.toml")
    shutil.copytree(ROOT / "solutions" / "02_attention", where / "solutions" / "02_attention")
    (where / "autograder").mkdir()
    shutil.copy(ROOT / "autograder" / "nbgrader_config.py", where / "autograder" / "nbgrader_config.py")
    return where


@pytest.fixture
def copy(tmp_path, monkeypatch):
    monkeypatch.delenv("TRANSFORMER_COURSE_ROOT", raising=False)
    return _copy_of_the_course(tmp_path / "term-2027")


def test_a_copy_of_the_course_works_on_itself(copy, monkeypatch):
    monkeypatch.chdir(copy)
    assert find_course_root() == (copy.resolve(), "the current directory")
    monkeypatch.chdir(copy / "autograder")
    assert find_course_root() == (copy.resolve(), "a parent of the current directory")


def test_outside_any_checkout_the_installed_one_is_used(tmp_path, monkeypatch):
    monkeypatch.delenv("TRANSFORMER_COURSE_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    assert find_course_root() == (INSTALLED, "the checkout this package was installed from")


def test_the_environment_variable_overrides_the_current_directory(copy, tmp_path, monkeypatch):
    monkeypatch.chdir(copy)
    monkeypatch.setenv("TRANSFORMER_COURSE_ROOT", str(INSTALLED))
    assert find_course_root() == (INSTALLED, "TRANSFORMER_COURSE_ROOT")
    monkeypatch.setenv("TRANSFORMER_COURSE_ROOT", str(tmp_path))
    with pytest.raises(GradingError, match="TRANSFORMER_COURSE_ROOT=.* is not a course checkout"):
        course_root()


def test_another_python_project_with_a_solutions_folder_is_not_a_course(tmp_path, monkeypatch):
    monkeypatch.delenv("TRANSFORMER_COURSE_ROOT", raising=False)
    other = tmp_path / "other"
    (other / "solutions").mkdir(parents=True)
    (other / "pyproject.toml").write_text('[project]\nname = "homework-solutions"\n')
    monkeypatch.chdir(other)
    assert course_root() == INSTALLED


def test_collect_and_doctor_in_a_copy_use_the_copy(copy, tmp_path, monkeypatch):
    """The command line, run in the copy with the original's environment, collects into the copy."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    shutil.copy(ROOT / "notebooks" / "02_attention" / "02_attention.ipynb", inbox / "ada.ipynb")
    cli = [sys.executable, "-m", "transformer_course"]
    out = subprocess.run([*cli, "collect", "02_attention", str(inbox)], cwd=copy, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert (copy / "autograder" / "submitted" / "ada" / "02_attention" / "02_attention.ipynb").is_file()
    assert not (INSTALLED / "autograder" / "submitted" / "ada").exists()
    out = subprocess.run([*cli, "doctor"], cwd=copy / "autograder", capture_output=True, text=True, timeout=300)
    line = next(x for x in out.stdout.splitlines() if x.startswith("course"))
    assert str(copy.resolve()) in line and "1 assignment;" in line and "parent of the current directory" in line
