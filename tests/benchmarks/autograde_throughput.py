"""Benchmark (not a test): grading a class of notebook 02, the course's grader against plain nbgrader.

    python tests/benchmarks/autograde_throughput.py [--students 40] [--workers N]

Builds two throwaway course folders holding notebook 02 and the same ``--students`` submissions
(the student notebook filled with the solution's answers; every fourth one with a planted mistake),
then grades them, in this one run:

1. ``transformer-course autograde --workers N`` (each submission in its bubblewrap sandbox when
   bubblewrap is installed, N in parallel, one thread each);
2. plain nbgrader: ``nbgrader autograde 02_attention`` with nbgrader's own Execute step, one
   submission after the other (the only way it runs), one thread per kernel as well.

Prints the wall-clock time of each, submissions per minute, the ratio, and whether the two gave
every student the same score.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, os.fspath(ROOT / "tests"))

from notebook_tools import fill_student, solution_cells  # noqa: E402

NAME = "02_attention"
MISTAKE = ("softmax", "e = np.exp(x - m)", "e = np.exp(x)")          # no max shift: overflows


def make_course(dest: Path, students: int) -> None:
    (dest / "solutions").mkdir(parents=True)
    (dest / "notebooks").mkdir()
    (dest / "autograder").mkdir()
    shutil.copy(ROOT / "pyproject.toml", dest / "pyproject.toml")
    shutil.copytree(ROOT / "solutions" / NAME, dest / "solutions" / NAME)
    shutil.copytree(ROOT / "notebooks" / NAME, dest / "notebooks" / NAME)
    grade_id, old, new = MISTAKE
    wrong = solution_cells(NAME)[grade_id].replace(old, new)
    with tempfile.TemporaryDirectory() as tmp:
        good = fill_student(NAME, Path(tmp) / "good")
        bad = fill_student(NAME, Path(tmp) / "bad", {grade_id: wrong})
        for i in range(students):
            target = dest / "autograder" / "submitted" / f"s{i:03d}" / NAME
            target.mkdir(parents=True)
            shutil.copy(bad if i % 4 == 3 else good, target / f"{NAME}.ipynb")


PLAIN_CONFIG = """\
c = get_config()
c.CourseDirectory.root = {root!r}
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "notebooks"
c.CourseDirectory.submitted_directory = "autograder/submitted"
c.CourseDirectory.autograded_directory = "autograder/autograded"
c.CourseDirectory.db_url = "sqlite:///{root}/autograder/gradebook.db"
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", ".*", "*.py"]
c.Execute.timeout = 300
c.Execute.kernel_name = "python3"
"""


def scores_from(db_url: str) -> dict[str, float]:
    from nbgrader.api import Gradebook

    with Gradebook(db_url) as gb:
        return {s.student.id: float(s.score) for s in gb.assignment_submissions(NAME)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--students", type=int, default=40)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    bindir = os.path.dirname(sys.executable)
    env = {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", ""), "OMP_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "TRANSFORMER_COURSE_OFFLINE": "1"}
    with tempfile.TemporaryDirectory(prefix="tc-throughput-") as tmp:
        ours, plain = Path(tmp) / "ours", Path(tmp) / "plain"
        make_course(ours, args.students)
        make_course(plain, args.students)
        (plain / "nbgrader_config.py").write_text(PLAIN_CONFIG.format(root=os.fspath(plain)))

        start = time.perf_counter()
        run = subprocess.run([sys.executable, "-m", "transformer_course", "autograde", NAME, "--workers",
                              str(args.workers), "--sandbox", "auto"], cwd=ours,
                             env={**env, "TRANSFORMER_COURSE_ROOT": os.fspath(ours)}, capture_output=True, text=True)
        t_ours = time.perf_counter() - start
        if run.returncode not in (0, 1):
            sys.exit(f"transformer-course autograde failed:\n{run.stdout}\n{run.stderr[-3000:]}")

        subprocess.run([os.path.join(bindir, "nbgrader"), "generate_assignment", NAME, "--force"], cwd=plain,
                       env=env, capture_output=True, text=True, check=True)
        start = time.perf_counter()
        run = subprocess.run([os.path.join(bindir, "nbgrader"), "autograde", NAME], cwd=plain, env=env,
                             capture_output=True, text=True)
        t_plain = time.perf_counter() - start
        if run.returncode != 0:
            sys.exit(f"nbgrader autograde failed:\n{run.stdout}\n{run.stderr[-3000:]}")

        a = scores_from(f"sqlite:///{ours}/autograder/gradebook.db")
        b = scores_from(f"sqlite:///{plain}/autograder/gradebook.db")
    n = args.students
    from transformer_course.grader.sandbox import sandbox_works

    print(f"{n} submissions of {NAME}, {os.cpu_count()} cores")
    print(f"  transformer-course autograde, {args.workers} workers, sandbox: "
          f"{'bubblewrap' if sandbox_works()[0] else 'none'}: {t_ours:6.1f} s  ({60 * n / t_ours:5.1f} per minute)")
    print(f"  nbgrader autograde, sequential:                  {t_plain:6.1f} s  ({60 * n / t_plain:5.1f} per minute)")
    print(f"  ratio: {t_plain / t_ours:.2f}x the throughput of plain nbgrader")
    same = a == b and len(a) == n
    print(f"  same score for every student: {same}" + ("" if same else f"\n  ours {a}\n  plain {b}"))


if __name__ == "__main__":
    main()
