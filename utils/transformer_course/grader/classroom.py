"""The instructor loop on the workspace in ``autograder/``: collect, autograde,
feedback, export.  Every grade goes through :func:`nbgrading.autograde_submission`,
the same path ``transformer-course check`` uses.
"""
from __future__ import annotations

import csv
import json
import os
import re
import shutil
import tempfile
import time
import zipfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

from .course import ASSIGNMENT_RE, GradingError, assignments, course_root
from .nbgrading import (
    SubmissionResult,
    _validate_notebook,
    autograde_submission,
    generate_assignment,
    make_config,
    run_notes,
)

STUDENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


def collect(assignment: str, path: Path, root: Path | None = None) -> int:
    """Copy submissions into ``autograder/submitted/STUDENT/ASSIGNMENT/``.

    ``path`` is a folder (or a .zip of one) holding either ``STUDENT/ANY.ipynb``
    or ``STUDENT.ipynb`` files.  A file that is not a readable notebook is still
    collected (it will be graded as a recorded failure, never silently dropped).
    """
    if not ASSIGNMENT_RE.match(assignment):
        raise GradingError(f"not an assignment name: {assignment!r}")
    root = root or course_root()
    dest_root = root / "autograder" / "submitted"
    with tempfile.TemporaryDirectory(prefix="tc-collect-") as tmp:
        if path.is_file() and path.suffix == ".zip":
            with zipfile.ZipFile(path) as zf:
                zf.extractall(tmp)
            path = Path(tmp)
        if not path.is_dir():
            raise GradingError(f"{path} is neither a folder nor a .zip")
        entries = [p for p in path.iterdir() if not p.name.startswith((".", "__MACOSX"))]
        if len(entries) == 1 and entries[0].is_dir() and not list(path.glob("*.ipynb")) \
                and any(p.is_dir() for p in entries[0].iterdir()):
            path = entries[0]  # a zip of the folder itself: inbox/STUDENT/...
        found: dict[str, Path] = {}
        for nb in sorted(path.rglob("*.ipynb")):
            if ".ipynb_checkpoints" in nb.parts:
                continue
            rel = nb.relative_to(path)
            student = rel.parts[0] if len(rel.parts) > 1 else nb.stem
            if not STUDENT_RE.match(student):
                raise GradingError(f"cannot use {student!r} (from {rel}) as a student id")
            if student in found:
                raise GradingError(f"two notebooks for student {student!r}: {found[student]} and {nb}")
            found[student] = nb
        for student, nb in found.items():
            dest = dest_root / student / assignment
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(nb, dest / f"{assignment}.ipynb")
    return len(found)


@dataclass
class AutogradeSummary:
    graded: list[SubmissionResult] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failures: list[tuple[str, str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def report(self) -> str:
        lines = [f"graded {len(self.graded)} submission(s) in {self.seconds:.1f} s; "
                 f"{len(self.skipped)} already graded; {len(self.failures)} with errors"]
        for r in self.graded:
            lines.append(f"  {r.assignment:<26} {r.student:<20} {r.score:g}/{r.max_score:g}")
        for a, s, err in self.failures:
            lines.append(f"  ! {a} {s}: {err}")
        return "\n".join(lines)


ERRORS_FILE = Path("autograder") / "grading_errors.json"


def _load_errors(root: Path) -> dict[str, str]:
    path = root / ERRORS_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def _save_errors(root: Path, errors: dict[str, str]) -> None:
    path = root / ERRORS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(errors, indent=1, sort_keys=True) + "\n")


def _grade_one(root: str, assignment: str, student: str) -> SubmissionResult:
    # One thread per worker: the class is graded in parallel across cores.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
    config = make_config(root)
    sub = Path(root) / config.CourseDirectory.submitted_directory / student / assignment / f"{assignment}.ipynb"
    try:
        _validate_notebook(sub)
    except GradingError as exc:
        return _failed_result(config, assignment, student, str(exc))
    return autograde_submission(config, assignment, student)


def _failed_result(config, assignment: str, student: str, error: str) -> SubmissionResult:
    from nbgrader.api import Gradebook

    result = SubmissionResult(notebook=f"{assignment}.ipynb", assignment=assignment, student=student,
                              score=0.0, max_score=0.0, errors=[error])
    with Gradebook(config.CourseDirectory.db_url) as gb:
        nb = gb.find_notebook(assignment, assignment)
        result.max_score = float(sum(c.max_score for c in nb.grade_cells if c.cell_type == "code"))
    return result


#: One file per graded submission, written (atomically) only once its grades are in the gradebook:
#: a rerun after a crash grades exactly the submissions that have none.
DONE_DIR = Path("autograder") / "graded"


def _done_path(root: Path, assignment: str, student: str) -> Path:
    return root / DONE_DIR / assignment / f"{student}.json"


def _submission_digest(root: Path, assignment: str, student: str) -> str:
    import hashlib

    config = make_config(root)
    path = root / config.CourseDirectory.submitted_directory / student / assignment / f"{assignment}.ipynb"
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""


def _mark_done(root: Path, result: SubmissionResult) -> None:
    path = _done_path(root, result.assignment, result.student)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    record = {"submission_sha256": _submission_digest(root, result.assignment, result.student),
              "result": result.to_json()}
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    os.replace(tmp, path)


def _is_done(root: Path, assignment: str, student: str) -> bool:
    """Graded, and the submission is still the one that was graded (a new one is graded again)."""
    path = _done_path(root, assignment, student)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return record.get("submission_sha256") == _submission_digest(root, assignment, student)


def pending(root: Path, names: list[str], force: bool = False) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(to grade, already graded): a submission is graded when its record in ``autograder/graded/`` exists."""
    todo, done = [], []
    config = make_config(root)
    submitted = root / config.CourseDirectory.submitted_directory
    for student_dir in sorted(p for p in submitted.glob("*") if p.is_dir()):
        for name in names:
            if not (student_dir / name).is_dir():
                continue
            key = (name, student_dir.name)
            if not force and _is_done(root, name, student_dir.name):
                done.append(key)
            else:
                todo.append(key)
    return todo, done


#: How often a submission is retried when the worker grading it dies (not the learner's process: the
#: grader's own, e.g. killed by the machine's out-of-memory killer or by an operator).
WORKER_RETRIES = 2


def autograde(names: list[str] | None = None, workers: int | None = None, force: bool = False,
              root: Path | None = None, sandbox: str | None = None, db_url: str | None = None) -> AutogradeSummary:
    """Grade every collected submission not yet graded, ``workers`` at a time.

    ``sandbox``: ``"bwrap"`` (the default for a class: each submission in its own bubblewrap
    sandbox, refused where bubblewrap cannot run), ``"auto"`` or ``"none"``;
    ``TRANSFORMER_COURSE_SANDBOX`` sets the default.  ``db_url``: the gradebook (SQLAlchemy URL;
    default ``TRANSFORMER_COURSE_DB_URL`` or ``sqlite:///autograder/gradebook.db``).

    Resumable: each graded submission gets a record in ``autograder/graded/`` once its grades
    are stored, so a rerun after a crash grades only the submissions without one, and regrading
    overwrites (nbgrader keeps one submission per student and assignment), never duplicates.
    """
    from concurrent.futures.process import BrokenProcessPool

    from .sandbox import SandboxUnavailable, sandbox_mode

    sandbox = sandbox or os.environ.get("TRANSFORMER_COURSE_SANDBOX", "bwrap")
    try:
        mode = sandbox_mode(sandbox)
    except SandboxUnavailable as exc:
        raise GradingError(f"{exc}; to grade trusted code without a sandbox, pass --sandbox none") from None
    os.environ["TRANSFORMER_COURSE_SANDBOX"] = mode         # the workers inherit it
    if db_url:
        os.environ["TRANSFORMER_COURSE_DB_URL"] = db_url
    root = (root or course_root()).resolve()
    names = names or assignments(root)
    config = make_config(root)
    summary = AutogradeSummary()
    start = time.perf_counter()
    todo, summary.skipped = pending(root, names, force)
    for name in sorted({a for a, _ in todo}):
        generate_assignment(config, name)  # the gradebook learns the assignment and its tests
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo) or 1))
    left = list(todo)
    deaths: dict[tuple[str, str], int] = {}
    while left:
        broken = False
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
            futures = {pool.submit(_grade_one, os.fspath(root), a, s): (a, s) for a, s in left}
            for fut in as_completed(futures):
                a, s = futures[fut]
                try:
                    result = fut.result()
                except BrokenProcessPool:
                    broken = True
                    continue
                except Exception as exc:  # noqa: BLE001 - one broken submission never stops the batch
                    summary.failures.append((a, s, f"{type(exc).__name__}: {exc}"))
                    left.remove((a, s))
                    continue
                left.remove((a, s))
                summary.graded.append(result)
                _mark_done(root, result)
                if result.errors:
                    summary.failures.append((a, s, "; ".join(result.errors)))
        if not broken:
            break
        # a worker died: the pool is gone. Everything not finished is graded again in a new pool; a
        # submission whose worker died more than WORKER_RETRIES times is recorded as such.
        for key in list(left):
            deaths[key] = deaths.get(key, 0) + 1
            if deaths[key] > WORKER_RETRIES:
                summary.failures.append((*key, f"the grading worker died {deaths[key]} times on this submission"))
                left.remove(key)
    summary.graded.sort(key=lambda r: (r.assignment, r.student))
    # Every submission that could not be graded is remembered, with why, so that
    # `export` lists it instead of leaving the student out.
    errors = _load_errors(root)
    for a, s in todo:
        errors.pop(f"{a}/{s}", None)
    for a, s, err in summary.failures:
        graded = next((r for r in summary.graded if r.assignment == a and r.student == s), None)
        # a submission graded in spite of a crashed cell keeps its marks (its export status says
        # "graded with problems"); one that could not be graded at all is an error
        if graded is None or not graded.exercises or any(e.startswith("autograde failed") for e in graded.errors):
            errors[f"{a}/{s}"] = err
    _save_errors(root, errors)
    summary.seconds = time.perf_counter() - start
    return summary


def feedback(names: list[str] | None = None, root: Path | None = None) -> list[Path]:
    """nbgrader generate_feedback for every autograded submission, finished by
    :func:`~transformer_course.grader.feedback_html.finish_feedback_page` (no CDN script; a note where
    written answers still wait for manual grading)."""
    from .nbgrading import _api, _checked

    from nbgrader.api import Gradebook

    from .feedback_html import finish_feedback_page

    root = (root or course_root()).resolve()
    config = make_config(root)
    api = _api(config)
    out = []
    for name in names or assignments(root):
        _checked(api.generate_feedback(name), f"generate_feedback {name}")
        with Gradebook(config.CourseDirectory.db_url) as gb:
            manual = {sub.student.id for a in gb.assignments if a.name == name for sub in a.submissions
                      if sub.needs_manual_grade}
        for page in sorted((root / config.CourseDirectory.feedback_directory).glob(f"*/{name}/*.html")):
            finish_feedback_page(page, needs_manual_grading=page.parent.parent.name in manual)
            out.append(page)
    return out


def export(to: str | None = None, root: Path | None = None) -> Path:
    """Grades of every student and assignment as CSV.

    nbgrader's CSV exporter's columns, plus ``status``: ``ok``, ``needs manual
    grading``, or ``error: ...`` for a submission that could not be graded (it is
    listed with score 0, never left out).
    """
    from nbgrader.api import Gradebook
    from nbgrader.plugins.export import CsvExportPlugin

    root = (root or course_root()).resolve()
    config = make_config(root)
    dest = Path(to) if to else root / "autograder" / "grades.csv"
    errors = _load_errors(root)
    with tempfile.TemporaryDirectory(prefix="tc-export-") as tmp:
        raw = Path(tmp) / "grades.csv"
        with Gradebook(config.CourseDirectory.db_url) as gb:
            CsvExportPlugin(to=os.fspath(raw)).export(gb)
            manual = {(sub.assignment.name, sub.student.id) for a in gb.assignments for sub in a.submissions
                      if sub.needs_manual_grade}
            max_scores = {a.name: a.max_score for a in gb.assignments}
        with raw.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
    fields = list(rows[0]) if rows else ["assignment", "duedate", "timestamp", "student_id", "last_name",
                                         "first_name", "email", "raw_score", "late_submission_penalty",
                                         "score", "max_score"]
    seen = set()
    autograded = root / config.CourseDirectory.autograded_directory
    for row in rows:
        key = (row["assignment"], row["student_id"])
        seen.add(key)
        notes = run_notes(autograded / key[1] / key[0] / f"{key[0]}.ipynb")
        problems = list(notes.get("problems", []))
        review = [f"the grading environment was changed: {t}" for t in notes.get("tampering", [])]
        review += list(notes.get("flags", []))
        if f"{key[0]}/{key[1]}" in errors:
            row["status"] = "error: " + errors[f"{key[0]}/{key[1]}"]
        elif problems:
            row["status"] = "graded with problems: " + "; ".join(problems)
        elif review:
            row["status"] = "flagged for review: " + "; ".join(review)
        else:
            row["status"] = "needs manual grading" if key in manual else "ok"
    for key, err in sorted(errors.items()):
        assignment, student = key.split("/", 1)
        if (assignment, student) not in seen:
            row = {f: "" for f in fields}
            row.update(assignment=assignment, student_id=student, raw_score=0.0, late_submission_penalty=0.0,
                       score=0.0, max_score=max_scores.get(assignment, ""), status="error: " + err)
            rows.append(row)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with dest.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=[*fields, "status"])
        writer.writeheader()
        writer.writerows(rows)
    return dest
