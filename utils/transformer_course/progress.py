"""A learner's progress through the course: ``transformer-course progress [FOLDER]``.

Every successful ``transformer-course check`` leaves a record of its result, keyed by the SHA-256 of the
notebook it graded (and of the assignment's source, so a course update grades again)::

    FOLDER/.transformer_course/NN_name.check.json

where FOLDER is the folder holding ``NN_name.ipynb``, or the one above ``NN_name/NN_name.ipynb`` (the
layout of the course's ``notebooks/``): the records stay out of the assignment folders, which
``transformer-course build`` regenerates. ``progress`` reads the records of the notebooks that did not change
since, grades the others, and prints one table for the whole course with what is left to do.
"""
from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .grader.course import ASSIGNMENT_RE, GradingError, assignment_of, assignments, course_root

#: The hidden folder beside the notebooks that holds the check records (in .gitignore).
RECORD_DIR = ".transformer_course"
#: Bump when a record's layout changes: records of another format are graded again.
RECORD_FORMAT = 1


# ------------------------------------------------------------------ the records ---

def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def record_path(notebook: Path) -> Path:
    """Where the check record of ``notebook`` (``NN_name.ipynb``) lives: ``.transformer_course/`` in the folder
    holding it, or in the folder above when it sits in its own ``NN_name/`` folder."""
    notebook = Path(notebook).resolve()
    name = assignment_of(notebook)
    base = notebook.parent.parent if notebook.parent.name == name else notebook.parent
    return base / RECORD_DIR / f"{name}.check.json"


def _source_sha(assignment: str, root: Path | None = None) -> str | None:
    """SHA-256 of the assignment's graded source (solutions/NN_name/NN_name.ipynb), None when unreadable."""
    try:
        return sha256_of((root or course_root()) / "solutions" / assignment / f"{assignment}.ipynb")
    except (OSError, GradingError):
        return None


def write_record(notebook: Path, result: Any, sha256: str, source_sha256: str | None) -> Path:
    """Write the record of ``result`` (a SubmissionResult) for the notebook version ``sha256``, atomically."""
    path = record_path(notebook)
    record = {
        "format": RECORD_FORMAT,
        "sha256": sha256,
        "assignment_sha256": source_sha256,
        "checked_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **result.to_json(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "x", encoding="utf-8") as f:        # the umask's permissions, unlike mkstemp's 0600
            json.dump(record, f, indent=1)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)          # atomic: a reader sees the old record or the new one, never half
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def read_record(notebook: Path) -> dict | None:
    """The record of ``notebook``, or None when there is none or it cannot be read."""
    try:
        record = json.loads(record_path(notebook).read_text(encoding="utf-8"))
    except (OSError, ValueError, GradingError):
        return None
    if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT or "sha256" not in record:
        return None
    return record


def check_and_record(notebook: str | os.PathLike) -> Any:
    """Grade ``notebook`` (:func:`.grader.nbgrading.check_notebook`) and record the result beside it.

    Raises what the check raises (GradingError for a notebook that cannot be graded). A record that cannot
    be written costs a warning on stderr, never the check; a notebook saved while it was being graded is
    not recorded (the record would claim a grade for a version that was not graded).
    """
    from .grader import nbgrading

    path = Path(notebook)
    try:
        before = sha256_of(path)
    except OSError:
        before = None                                  # check_notebook says what is wrong with the path
    result = nbgrading.check_notebook(path)
    try:
        if before is None or sha256_of(path) != before:
            print(f"note: {path.name} changed while it was being checked; its result was not recorded",
                  file=sys.stderr)
        else:
            write_record(path, result, before, _source_sha(assignment_of(path.resolve())))
    except Exception as exc:  # noqa: BLE001 - recording is a convenience: the grade stands without it
        print(f"warning: could not record the result of checking {path.name} ({type(exc).__name__}: {exc})",
              file=sys.stderr)
    return result


# -------------------------------------------------------------- finding notebooks ---

def notebook_in(folder: Path, assignment: str) -> Path | None:
    """The learner's notebook of ``assignment`` in ``folder``: ``NN_name/NN_name.ipynb`` (the layout of the
    course's notebooks/), else ``NN_name.ipynb``."""
    for candidate in (folder / assignment / f"{assignment}.ipynb", folder / f"{assignment}.ipynb"):
        if candidate.is_file():
            return candidate
    return None


def _holds_notebooks(folder: Path) -> bool:
    try:
        entries = list(folder.iterdir())
    except OSError:
        return False
    for entry in entries:
        if entry.suffix == ".ipynb" and ASSIGNMENT_RE.match(entry.stem) and entry.is_file():
            return True
        if ASSIGNMENT_RE.match(entry.name) and (entry / f"{entry.name}.ipynb").is_file():
            return True
    return False


def default_folder() -> Path:
    """The current directory when it holds NN_name notebooks (directly or in NN_name/ folders), else the
    course's notebooks/."""
    cwd = Path.cwd()
    if _holds_notebooks(cwd):
        return cwd
    return course_root() / "notebooks"


@dataclass
class Work:
    """What a notebook holds, read from its cells without running it."""

    #: anything run, or an answer cell that is not its stub any more (as ``transformer-course build`` judges)
    started: bool
    #: the graded cells, as a result's exercises with no points scored
    exercises: list[dict]
    #: answer cells graded by hand (written answers) still holding their stub
    unanswered: set[str]


def read_work(notebook: Path) -> Work | None:
    """What ``notebook`` holds; None when it cannot be read (the check then says why)."""
    import nbformat

    from .build import STUB_CODE, STUB_TEXT

    try:
        nb = nbformat.read(os.fspath(notebook), as_version=4)
    except Exception:  # noqa: BLE001 - unreadable: the check says why
        return None
    started, exercises, unanswered = False, [], set()
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        code = cell.get("cell_type") == "code"
        if code and (cell.get("outputs") or cell.get("execution_count")):
            started = True
        stub = meta.get("solution") and (STUB_CODE if code else STUB_TEXT) in cell.get("source", "")
        if meta.get("solution") and not stub:
            started = True
        if meta.get("grade"):
            manual = bool(meta.get("solution")) or not code      # an answer cell with points: graded by hand
            if manual and stub:
                unanswered.add(meta.get("grade_id", "?"))
            exercises.append({"grade_id": meta.get("grade_id", "?"), "score": 0.0,
                              "max_score": float(meta.get("points", 0) or 0), "passed": False, "message": "",
                              **({"needs_manual": True} if manual else {})})
    return Work(started, exercises, unanswered)


def _not_started(work: Work) -> dict:
    """The result of a notebook nobody worked in, from its graded cells."""
    return {"score": 0.0, "max_score": sum(e["max_score"] for e in work.exercises if not e.get("needs_manual")),
            "exercises": work.exercises, "errors": [], "flags": []}


# ------------------------------------------------------------------ the progress ---

@dataclass
class Entry:
    """One assignment's line of the table."""

    assignment: str
    path: Path | None
    #: done | left | not started | not checked | changed | error | missing
    status: str
    score: float | None = None
    max_score: float | None = None
    exercises: list[dict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    checked_at: str | None = None
    #: where the result came from: "record", "check" (graded now), "notebook" (not started) or None
    source: str | None = None
    #: for status "changed": what changed ("notebook" or "assignment")
    changed: str | None = None
    #: written answers (graded by hand) still holding their stub in the notebook
    unanswered: set[str] = field(default_factory=set)

    @property
    def left(self) -> list[dict]:
        """Autograded exercises not passed."""
        return [e for e in self.exercises if not e.get("needs_manual") and not e.get("passed")]

    @property
    def manual(self) -> list[dict]:
        """Written answers, graded by an instructor."""
        return [e for e in self.exercises if e.get("needs_manual")]

    @property
    def to_write(self) -> list[dict]:
        """Written answers not written yet."""
        return [e for e in self.manual if e["grade_id"] in self.unanswered]

    @property
    def waiting(self) -> list[dict]:
        """Written answers written, waiting for an instructor's grade."""
        return [e for e in self.manual if e["grade_id"] not in self.unanswered]

    @property
    def current(self) -> bool:
        """The score is that of the notebook as it is now."""
        return self.status in ("done", "left", "not started") or (self.status == "error" and self.score is not None)

    @property
    def label(self) -> str:
        if self.status == "done":
            return "done"
        if self.status == "left":
            return f"{len(self.left) + len(self.to_write)} to do"
        if self.status == "changed":
            return ("course updated since last check" if self.changed == "assignment"
                    else "changed since last check")
        if self.status == "missing":
            return "no notebook"
        if self.status == "error":
            first = (self.errors[0] if self.errors else "could not be checked").splitlines()[0]
            return "error: " + (first if len(first) <= 60 else first[:57] + "...")
        return self.status

    def to_json(self) -> dict:
        return {"assignment": self.assignment, "path": os.fspath(self.path) if self.path else None,
                "status": self.status, "label": self.label, "score": self.score, "max_score": self.max_score,
                "checked_at": self.checked_at, "source": self.source, "exercises": self.exercises,
                "left": [e["grade_id"] for e in self.left + self.to_write],
                "waiting_for_hand_grading": [e["grade_id"] for e in self.waiting],
                "errors": self.errors, "flags": self.flags}


def _from_result(entry: Entry, result: dict) -> Entry:
    entry.score, entry.max_score = result.get("score"), result.get("max_score")
    entry.exercises = list(result.get("exercises") or [])
    entry.errors = list(result.get("errors") or [])
    entry.flags = list(result.get("flags") or [])
    entry.checked_at = result.get("checked_at")
    if entry.errors:
        entry.status = "error"
    else:
        entry.status = "left" if entry.left or entry.to_write else "done"
    return entry


def _log(message: str, end: str = "\n") -> None:
    print(message, end=end, file=sys.stderr, flush=True)


def progress(folder: Path, run: bool = True, log=_log) -> list[Entry]:
    """One entry per assignment of the course, in course order, for the notebooks in ``folder``.

    A notebook whose record matches it (same notebook, same assignment source) is not graded again; one
    never checked or changed since is graded now (``run``), or shown as such (not ``run``). A notebook with
    no learner work in it is "not started" and is not graded. A notebook that cannot be graded is an
    "error" entry; the others go on.
    """
    root = course_root()
    entries = []
    for assignment in assignments(root):
        path = notebook_in(folder, assignment)
        entry = Entry(assignment, path, "missing")
        entries.append(entry)
        if path is None:
            continue
        try:
            sha = sha256_of(path)
        except OSError as exc:
            entry.status, entry.errors = "error", [f"cannot read {path}: {exc}"]
            continue
        source_sha = _source_sha(assignment, root)
        work = read_work(path)
        entry.unanswered = set(work.unanswered) if work is not None else set()
        record = read_record(path)
        if record is not None and record["sha256"] == sha and record.get("assignment_sha256") == source_sha:
            _from_result(entry, record)
            entry.source = "record"
            continue
        if work is not None and not work.started and work.exercises:
            _from_result(entry, _not_started(work))
            entry.status, entry.source = "not started", "notebook"
            continue
        if record is None:
            why = "never checked"
        elif record["sha256"] != sha:
            why, entry.changed = "changed since the last check", "notebook"
        else:
            why, entry.changed = "the course's version of it changed since the last check", "assignment"
        if not run:
            entry.status = "changed" if record is not None else "not checked"
            if record is not None:                     # the last result, for reference
                entry.score, entry.max_score = record.get("score"), record.get("max_score")
                entry.checked_at = record.get("checked_at")
            continue
        shown = os.path.relpath(path, folder) if folder in path.parents else os.fspath(path)
        log(f"checking {shown} ({why}) ...", end=" ")
        started = time.monotonic()
        try:
            result = check_and_record(path)
        except GradingError as exc:
            log("error")
            entry.status, entry.errors, entry.source = "error", [str(exc)], "check"
            continue
        except Exception as exc:  # noqa: BLE001 - one notebook's crash must not stop the others
            log("error")
            entry.status, entry.errors, entry.source = "error", [f"{type(exc).__name__}: {exc}"], "check"
            continue
        log(f"{result.score:g}/{result.max_score:g} in {time.monotonic() - started:.0f} s")
        _from_result(entry, result.to_json())
        entry.source = "check"
        entry.checked_at = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return entries


# ------------------------------------------------------------------ the report ---

def _points(x: float | None) -> str:
    return "-" if x is None else f"{x:g}"


def _n(count: float, word: str) -> str:
    return f"{count:g} {word}{'' if count == 1 else 's'}"


def _first_line(message: str, width: int = 70) -> str:
    line = next((ln.strip() for ln in (message or "").splitlines() if ln.strip()), "")
    return line if len(line) <= width else line[:width - 3] + "..."


def format_progress(folder: Path, entries: list[Entry]) -> str:
    """The table and the to-do list ``progress`` prints."""
    width = max([len("notebook")] + [len(e.assignment) for e in entries])
    lines = [f"Progress in {folder}", "", f"  {'notebook':<{width}}  {'score':>9}  status"]
    for e in entries:
        score = f"{_points(e.score)}/{_points(e.max_score)}" if e.max_score is not None else "-"
        lines.append(f"  {e.assignment:<{width}}  {score:>9}  {e.label}")
    counted = [e for e in entries if e.current]
    if counted:
        total = f"{sum(e.score or 0 for e in counted):g}/{sum(e.max_score or 0 for e in counted):g}"
        uncounted = len(entries) - len(counted)
        lines.append(f"  {'total':<{width}}  {total:>9}  autograded points"
                     + (f" ({uncounted} notebook{'s' if uncounted != 1 else ''} not counted)" if uncounted else ""))
    manual = sum(x["max_score"] for e in entries if e.current for x in e.manual)
    if manual:
        lines.append(f"  {'':<{width}}  {'':>9}  (+{manual:g} for written answers, graded by an instructor)")

    lines += ["", "What is left"]
    todo = []
    for e in entries:
        where = f"{e.assignment} ({e.path})" if e.path else e.assignment
        if e.status == "missing":
            continue
        if e.status == "not checked":
            todo.append(f"  {where}: not checked yet (run `transformer-course progress` without --no-run)")
            continue
        if e.status == "changed":
            what = ("the course's version of this assignment changed" if e.changed == "assignment"
                    else "changed since the last check")
            todo.append(f"  {where}: {what}; run `transformer-course progress` without --no-run to grade it")
            continue
        if e.status == "not started":
            auto = [x for x in e.exercises if not x.get("needs_manual")]
            text = f"  {e.assignment}: not started ({_n(len(auto), 'graded test')}, {_n(e.max_score or 0, 'point')}"
            if e.manual:
                text += f"; {_n(len(e.manual), 'written answer')}"
            todo.append(text + ")")
            continue
        block = []
        for err in e.errors:
            for i, line in enumerate(err.splitlines() or [""]):
                block.append(f"    {'!' if i == 0 else ' '} {line}")
        for flag in e.flags:
            block.append(f"    ? for review: {flag}")
        for x in e.left:
            scored = f"{_points(x.get('score'))}/{_n(x.get('max_score') or 0, 'point')}"
            block.append(f"    \u2717 {x['grade_id']:<28} {scored}"
                         + (f"  {_first_line(x.get('message', ''))}" if x.get("message") else ""))
        for x in e.to_write:
            block.append(f"    \u270e {x['grade_id']:<28} {_n(x.get('max_score') or 0, 'point')}: written answer, "
                         "not written yet (graded by an instructor)")
        for x in e.waiting:
            block.append(f"    \u270e {x['grade_id']:<28} {_n(x.get('max_score') or 0, 'point')}: written answer, "
                         "waiting for an instructor to grade it (not counted here)")
        if block:
            todo.append(f"  {where}:")
            todo.extend(block)
    missing = [e.assignment for e in entries if e.status == "missing"]
    if missing:
        todo.append(f"  no notebook in {folder} for: {', '.join(missing)}")
    lines += todo or ["  nothing: every notebook is done"]
    return "\n".join(lines)


def progress_json(folder: Path, entries: list[Entry]) -> dict:
    counted = [e for e in entries if e.current]
    return {"folder": os.fspath(folder), "notebooks": [e.to_json() for e in entries],
            "total": {"score": sum(e.score or 0 for e in counted),
                      "max_score": sum(e.max_score or 0 for e in counted),
                      "counted": len(counted), "not_counted": len(entries) - len(counted)}}
