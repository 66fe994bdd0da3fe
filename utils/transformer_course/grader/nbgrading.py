"""The one grading path: nbgrader configured for this course.

``transformer-course check`` (a learner grading their own notebook) and
``transformer-course autograde`` (an instructor grading a class) both end in
:func:`autograde_submission`, which runs nbgrader's autograde for one student and
one assignment and reads the result back from the gradebook, so a learner sees
exactly the marks and messages a classroom would give.
"""
from __future__ import annotations

import ast
import contextlib
import hashlib
import os
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# jsonschema (under nbformat) checks the "iri" string format with rfc3987_syntax where that is importable, and
# importing it builds a Lark grammar: 0.9 s of every `check` and every grading worker on a 2-core machine. No
# schema the grader validates (nbformat's) uses that format, so this process goes without it.
sys.modules.setdefault("rfc3987_syntax", None)

import nbformat  # noqa: E402 - after the line above

from . import harness
from .course import CHECKS_PACKAGE, GradingError, assignment_of, check_module, course_root
from .settings import CELL_TIMEOUT_S

KERNEL_NAME = "python3"
#: Files of an assignment folder that are never released to students: the
#: jupytext sources hold the solutions and hidden tests in plain text.
IGNORE = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", ".*", "*.py", "*.md~"]


def apply_course_config(c: Any, root: str | os.PathLike) -> Any:
    """Fill a traitlets ``Config`` with the course's nbgrader settings.

    Used by ``autograder/nbgrader_config.py`` (so plain ``nbgrader`` commands run
    from ``autograder/`` see the same course) and by this package's commands.
    """
    root = os.fspath(Path(root).resolve())
    c.CourseDirectory.root = root
    c.CourseDirectory.source_directory = "solutions"
    c.CourseDirectory.release_directory = "notebooks"
    c.CourseDirectory.submitted_directory = os.path.join("autograder", "submitted")
    c.CourseDirectory.autograded_directory = os.path.join("autograder", "autograded")
    c.CourseDirectory.feedback_directory = os.path.join("autograder", "feedback")
    # nbgrader's default course id is "", which creates no course row: SQLite does not mind, but
    # PostgreSQL enforces the assignments' foreign key to it
    c.CourseDirectory.course_id = "transformer_course"
    # SQLite by default; any SQLAlchemy URL (postgresql://...) through TRANSFORMER_COURSE_DB_URL
    c.CourseDirectory.db_url = os.environ.get("TRANSFORMER_COURSE_DB_URL") or (
        "sqlite:///" + os.path.join(root, "autograder", "gradebook.db"))
    c.CourseDirectory.ignore = list(IGNORE)
    # Autograding runs in the course's harness (below), not in nbgrader's Execute; `nbgrader validate` still
    # executes through Execute, in a Jupyter kernel, so it gets the course's cell timeout too
    c.Execute.timeout = int(CELL_TIMEOUT_S)
    c.Execute.kernel_name = KERNEL_NAME
    # and without the kernel's start-up warnings (ipykernel 7's about its TCP transport), which alarm learners
    c.Execute.extra_arguments = ["--IPKernelApp.log_level=ERROR"]
    # The notebook runs in the course's sandboxed harness (grader/sandbox.py), not in a Jupyter kernel
    # the learner's code controls: nbgrader's Execute is replaced, every other step is nbgrader's own.
    from nbconvert.preprocessors import ClearMetadataPreprocessor
    from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, IgnorePattern, LimitOutput,
                                        SaveAutoGrades)
    c.Autograde.autograde_preprocessors = [SandboxedExecute, IgnorePattern, ClearMetadataPreprocessor,
                                           LimitOutput, SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]
    from nbgrader.preprocessors import GetGrades
    from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
    # feedback shows what failed and why, never the hidden tests' code
    from .feedback_html import MathMLPreprocessor
    c.GenerateFeedback.preprocessors = [GetGrades, HideHiddenTests, MathMLPreprocessor, CSSHTMLHeaderPreprocessor]
    # formgrader's pages too: math drawn as MathML by the browser, with no MathJax from a CDN
    c.HTMLExporter.preprocessors = [MathMLPreprocessor]
    c.ClearSolutions.enforce_metadata = True
    # A learner who deletes a test cell gets it back from the gradebook.
    c.OverwriteCells.add_missing_cells = True
    c.ClearOutput.enabled = True
    return c


def make_config(root: str | os.PathLike, **overrides: str) -> Any:
    """The course config with ``CourseDirectory`` traits overridden (temporary workspaces)."""
    from traitlets.config import Config

    c = apply_course_config(Config(), root)
    for key, value in overrides.items():
        setattr(c.CourseDirectory, key, value)
    return c


@contextlib.contextmanager
def _alembic_findable():
    """nbgrader creates a new gradebook by running the ``alembic`` program: while it may, put the one beside
    this interpreter (the virtual environment's bin) on PATH, for a venv that is not activated."""
    here = os.path.dirname(sys.executable)
    before = os.environ.get("PATH", "")
    if here in before.split(os.pathsep):
        yield
        return
    os.environ["PATH"] = here + os.pathsep + before
    try:
        yield
    finally:
        os.environ["PATH"] = before


def _api(config: Any):
    import warnings

    # nbgrader 0.9.6 trips SQLAlchemy 2's autoflush warnings; they are noise to a learner.
    try:
        from sqlalchemy.exc import SAWarning

        warnings.filterwarnings("ignore", category=SAWarning)
    except ImportError:  # pragma: no cover
        pass
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    coursedir = CourseDirectory(config=config)
    return NbGraderAPI(coursedir=coursedir, config=config)


def _checked(result: dict, what: str) -> dict:
    if not result.get("success"):
        detail = (result.get("error") or result.get("log") or "").strip().splitlines()
        raise GradingError(f"{what} failed: {detail[-1] if detail else 'no detail'}")
    return result


def generate_assignment(config: Any, assignment: str) -> None:
    """nbgrader generate_assignment: student version into the release folder, gradebook filled."""
    with _alembic_findable():
        _checked(_api(config).generate_assignment(assignment, force=True, create=True),
                 f"generate_assignment {assignment}")


# ------------------------------------------------------------ the grading run ---

#: Where the grading run leaves its notes in the autograded notebook's metadata.
META_KEY = "transformer_course"
HIDDEN_BEGIN, HIDDEN_END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"


def _is_test(cell) -> bool:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return cell.get("cell_type") == "code" and bool(meta.get("grade")) and not meta.get("solution")


def _module_exists(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):                # a name inside a package, not a module
        return False


def check_modules_named(source: str) -> list[str]:
    """The check modules (``transformer_course.grading.<name>``) that test code imports, in any import form
    (``from transformer_course.grading import x as check``, ``import transformer_course.grading.x``,
    ``from transformer_course.grading.x import f``), read from its syntax tree after IPython's own rewriting
    (magics). Names that are not modules (``from transformer_course.grading import CheckFailed``) are left out.
    """
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        source = TransformerManager().transform_cell(source)
    except Exception:  # noqa: BLE001 - not readable by IPython: parse it as it is
        pass
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    named: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == CHECKS_PACKAGE:
                named += [f"{CHECKS_PACKAGE}.{a.name}" for a in node.names]
            elif node.module.startswith(CHECKS_PACKAGE + "."):
                named.append(node.module)
        elif isinstance(node, ast.Import):
            named += [a.name for a in node.names if a.name.startswith(CHECKS_PACKAGE + ".")]
    return [name for name in dict.fromkeys(named) if _module_exists(name)]


def grading_plan(nb, assignment: str | None = None) -> tuple[list[dict], list[int], list[str]]:
    """The cells to run (learner code and instructor tests), the notebook index of each, and the check
    modules to load before any learner code: the assignment's own (:func:`.course.check_module`), and
    every one that a test cell imports, whatever the form of its import."""
    cells, where, preload = [], [], [CHECKS_PACKAGE]
    if assignment is not None and _module_exists(check_module(assignment)):
        preload.append(check_module(assignment))
    for i, cell in enumerate(nb.cells):
        if cell.get("cell_type") != "code":
            continue
        test = _is_test(cell)
        cells.append({"kind": "test" if test else "code", "source": cell.source,
                      "grade_id": cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")})
        where.append(i)
        if test:
            preload += [m for m in check_modules_named(cell.source) if m not in preload]
    return cells, where, preload


def _stream(name: str, text: str):
    return nbformat.v4.new_output("stream", name=name, text=text)


#: Figures a graded notebook keeps, in all (each cell's are capped by the harness too).
FIGURES_PER_NOTEBOOK = 60
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
WIDGET_NOTE = ("[an interactive widget (ipywidgets) was here: it needs a running kernel, so open the notebook in "
               "JupyterLab to use it; what it drew first is shown below it when it drew anything]")


def _display_output(bundle: Any, budget: list[int]):
    """A display the harness brought back, as a notebook output, or None. Only a real PNG and plain text are
    kept (never HTML or scripts from the learner's code), and at most ``budget[0]`` figures in all."""
    import base64
    import binascii

    if not isinstance(bundle, dict):
        return None
    if bundle.get(harness.WIDGET_MIME):
        return nbformat.v4.new_output("display_data", data={"text/plain": WIDGET_NOTE})
    png = bundle.get("image/png")
    if isinstance(png, str) and len(png) <= harness.PNG_LIMIT and budget[0] > 0:
        try:
            raw = base64.b64decode(png, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if raw.startswith(_PNG_SIGNATURE):
            budget[0] -= 1
            return nbformat.v4.new_output("display_data", data={"image/png": png, "text/plain": "<Figure>"})
    text = bundle.get("text/plain")
    if isinstance(text, str) and text:
        return nbformat.v4.new_output("display_data", data={"text/plain": text[:2000]})
    return None


def _error(ename: str, evalue: str, traceback: list[str] | None = None):
    return nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=traceback or [f"{ename}: {evalue}"])


def apply_outcomes(nb, cells: list[dict], where: list[int], report) -> None:
    """Write a grading run's outcomes into the notebook's cells as nbgrader reads them.

    A test cell passes when it raised nothing and nothing was tampered with around it.
    What it printed, on stdout or stderr, is kept as stdout: an honest warning costs nothing
    (nbgrader alone scores any stderr in a test cell zero). A failure is recorded as the error
    output nbgrader scores zero, with the check's message and no traceback: the traceback
    would quote the hidden test's code.
    """
    count = 0
    figures = [FIGURES_PER_NOTEBOOK]
    for plan_cell, index, outcome in zip(cells, where, report.cells):
        cell = nb.cells[index]
        count += 1
        cell.execution_count = count
        outputs = []
        if plan_cell["kind"] == "test":
            text = "".join(str(chunk.get("text", "")) for chunk in outcome.outputs if isinstance(chunk, dict))
            if text:
                outputs.append(_stream("stdout", text))
            if outcome.tampered:
                outputs.append(_error(
                    "GradingEnvironmentChanged",
                    "this test does not count: code in the notebook replaced what the checks rely on ("
                    + "; ".join(outcome.tampered) + "). Flagged for review. Remove the code that changes it "
                    "(the review notes say which cell) and check again."))
            elif outcome.error is not None:
                outputs.append(_error(outcome.error.get("ename", "Error"), outcome.error.get("evalue", "")))
        else:
            for chunk in outcome.outputs:
                if not isinstance(chunk, dict):
                    continue
                if "display" in chunk:
                    shown = _display_output(chunk["display"], figures)
                    if shown is not None:
                        outputs.append(shown)
                elif chunk.get("name") in ("stdout", "stderr"):
                    outputs.append(_stream(chunk["name"], str(chunk.get("text", ""))))
            if outcome.error is not None:
                outputs.append(_error(outcome.error.get("ename", "Error"), outcome.error.get("evalue", ""),
                                      outcome.error.get("traceback")))
        cell.outputs = outputs
    tampered = sorted({t for o in report.cells for t in o.tampered})
    notes = nb.metadata.setdefault(META_KEY, {})
    notes["sandboxed"] = report.sandboxed
    notes["restarts"] = report.restarts
    notes["problems"] = list(report.problems)
    notes["tampering"] = tampered
    notes["seconds"] = round(report.seconds, 1)


try:
    from nbgrader.preprocessors import NbGraderPreprocessor as _Base
except ImportError:  # pragma: no cover - nbgrader is a dependency
    _Base = object


class SandboxedExecute(_Base):
    """nbgrader's ``Execute`` step, done by the course's harness in a sandbox (see grader/sandbox.py).

    Learner cells run in an IPython shell inside the sandbox; test cells run outside that shell's
    reach, after an integrity check; a static review of the learner's cells flags code that reaches
    into the grader. The run's notes (sandbox, restarts, problems, tampering, flags) are kept in the
    notebook's metadata for the JSON result, the feedback and the grades export.
    """

    def preprocess(self, nb, resources):
        from . import review, sandbox

        assignment = ((resources or {}).get("nbgrader") or {}).get("assignment")
        cells, where, preload = grading_plan(nb, assignment)
        flags = review.scan_cells([(i + 1, c["source"]) for i, c in enumerate(cells) if c["kind"] == "code"])
        beside = (resources or {}).get("metadata", {}).get("path") or None
        report = sandbox.run_cells(cells, preload=preload, files_from=beside)
        apply_outcomes(nb, cells, where, report)
        nb.metadata[META_KEY]["flags"] = flags
        return nb, resources


class HideHiddenTests(_Base):
    """Feedback without the hidden tests' code, with the grading run's notes on top."""

    def preprocess(self, nb, resources):
        for cell in nb.cells:
            if _is_test(cell) and HIDDEN_BEGIN in cell.source:
                kept, hidden = [], False
                for line in cell.source.split("\n"):
                    if HIDDEN_BEGIN in line:
                        hidden = True
                        kept.append("# (hidden tests: not shown; the message below says what failed)")
                    elif HIDDEN_END in line:
                        hidden = False
                    elif not hidden:
                        kept.append(line)
                cell.source = "\n".join(kept)
        notes = nb.metadata.get(META_KEY, {})
        lines = []
        for p in notes.get("problems", []):
            lines.append(f"- {p}")
        for t in notes.get("tampering", []):
            lines.append(f"- the grading environment was changed: {t} (flagged for review)")
        for f in notes.get("flags", []):
            lines.append(f"- for review: {f}")
        if lines:
            nb.cells.insert(0, nbformat.v4.new_markdown_cell("**Notes from grading**\n\n" + "\n".join(lines)))
        return nb, resources


@dataclass
class ExerciseResult:
    grade_id: str
    score: float
    max_score: float
    passed: bool
    message: str
    needs_manual: bool = False


@dataclass
class SubmissionResult:
    notebook: str
    assignment: str
    student: str
    score: float
    max_score: float
    exercises: list[ExerciseResult] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: things a person should look at (code that reaches into the grader, a changed grading environment);
    #: they cost no points by themselves
    flags: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        out = asdict(self)
        for ex in out["exercises"]:
            if not ex["needs_manual"]:
                del ex["needs_manual"]
        return out


def _validate_notebook(path: Path) -> None:
    try:
        nb = nbformat.read(os.fspath(path), as_version=4)
    except Exception as exc:  # noqa: BLE001 - any unreadable file
        raise GradingError(f"{path.name} is not a readable notebook: {exc}") from None
    if not nb.get("cells"):
        raise GradingError(f"{path.name} has no cells")


def _cell_messages(autograded: Path) -> dict[str, str]:
    """grade_id -> what the learner should read, from the executed test cells."""
    messages: dict[str, str] = {}
    if not autograded.is_file():
        return messages
    nb = nbformat.read(os.fspath(autograded), as_version=4)
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if not meta.get("grade"):
            continue
        gid = meta.get("grade_id", "")
        parts = []
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                evalue = str(out.get("evalue", "")).strip()
                if out.get("ename") == "NotImplementedError" and not evalue:
                    evalue = "an answer cell still raises NotImplementedError: replace it with your code"
                parts.append(f"{out.get('ename', 'Error')}: {evalue}" if evalue else str(out.get("ename", "Error")))
        messages[gid] = "\n".join(parts)
    return messages


def autograde_submission(config: Any, assignment: str, student: str) -> SubmissionResult:
    """Autograde one submission with nbgrader and read its grades back.

    The gradebook must already know the assignment (see :func:`generate_assignment`).
    """
    from nbgrader.api import Gradebook

    with _alembic_findable():
        result = _api(config).autograde(assignment, student, force=True, create=True)
    root = Path(config.CourseDirectory.root)
    autograded_dir = root / config.CourseDirectory.autograded_directory / student / assignment
    errors: list[str] = []
    if not result.get("success"):
        detail = (result.get("error") or "").strip().splitlines()
        errors.append("autograde failed: " + (detail[-1] if detail else "no detail"))
    messages = _cell_messages(autograded_dir / f"{assignment}.ipynb")
    notes = run_notes(autograded_dir / f"{assignment}.ipynb")
    errors.extend(notes.get("problems", []))
    flags = [f"the grading environment was changed: {t}" for t in notes.get("tampering", [])]
    flags += list(notes.get("flags", []))
    exercises: list[ExerciseResult] = []
    with Gradebook(config.CourseDirectory.db_url) as gb:
        try:
            sub = gb.find_submission_notebook(assignment, assignment, student)
        except Exception:  # noqa: BLE001 - MissingEntry: the autograde never recorded it
            sub = None
        if sub is None:
            nb = gb.find_notebook(assignment, assignment)
            for cell in sorted(nb.grade_cells, key=lambda g: g.name):
                exercises.append(ExerciseResult(cell.name, 0.0, float(cell.max_score), False,
                                                "not graded: " + ("; ".join(errors) or "no result"),
                                                needs_manual=cell.cell_type == "markdown"))
        else:
            order = _grade_cell_order(config, assignment)
            for grade in sorted(sub.grades, key=lambda g: order.get(g.name, 1_000)):
                manual = grade.cell_type == "markdown" or (grade.auto_score is None and grade.manual_score is None)
                score = float(grade.score or 0.0)
                max_score = float(grade.max_score)
                if manual:
                    msg = "written answer: graded by hand"
                else:
                    msg = messages.get(grade.name, "")
                exercises.append(ExerciseResult(
                    grade_id=grade.name, score=0.0 if manual else score, max_score=max_score,
                    passed=(not manual) and score >= max_score, message=msg, needs_manual=manual))
    auto = [e for e in exercises if not e.needs_manual]
    return SubmissionResult(
        notebook=f"{assignment}.ipynb", assignment=assignment, student=student,
        score=sum(e.score for e in auto), max_score=sum(e.max_score for e in auto),
        exercises=exercises, errors=errors, flags=flags)


def run_notes(autograded: Path) -> dict:
    """The grading run's notes (problems, tampering, flags) kept in an autograded notebook."""
    if not autograded.is_file():
        return {}
    try:
        nb = nbformat.read(os.fspath(autograded), as_version=4)
    except Exception:  # noqa: BLE001 - an unreadable file has no notes
        return {}
    return dict(nb.metadata.get(META_KEY, {}))


def _grade_cell_order(config: Any, assignment: str) -> dict[str, int]:
    root = Path(config.CourseDirectory.root)
    src = Path(os.path.join(root, config.CourseDirectory.source_directory)) / assignment / f"{assignment}.ipynb"
    order: dict[str, int] = {}
    if src.is_file():
        nb = nbformat.read(os.fspath(src), as_version=4)
        for i, cell in enumerate(nb.cells):
            gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            if gid:
                order[gid] = i
    return order


#: Part of every cache key: bump it when what a cached gradebook must hold changes in a way that neither the
#: source notebook, nbgrader's version nor this file shows.
CHECK_CACHE_VERSION = 1


def _cached_gradebook(root: Path, assignment: str) -> Path | None:
    """A gradebook that knows ``assignment`` (its cells, points and hidden tests), as ``generate_assignment``
    makes it, kept in the cache and made again only when its inputs change.

    The key is the source notebook's SHA-256 with nbgrader's version, this file's SHA-256 (the course's
    nbgrader settings) and :data:`CHECK_CACHE_VERSION`. None when the cache cannot be written: the caller
    then generates into its own workspace.
    """
    import nbgrader

    from ..paths import cache_dir

    source = root / "solutions" / assignment / f"{assignment}.ipynb"
    key = hashlib.sha256()
    for part in (source.read_bytes(), Path(__file__).read_bytes(),
                 f"{nbgrader.__version__}/{CHECK_CACHE_VERSION}".encode()):
        key.update(hashlib.sha256(part).digest())
    folder = cache_dir() / "check"
    path = folder / f"{assignment}-{key.hexdigest()[:20]}.db"
    if path.is_file():
        return path
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="tc-gradebook-") as tmp:
            config = make_config(tmp, source_directory=os.fspath(root / "solutions"), release_directory="release",
                                 db_url="sqlite:///" + os.path.join(tmp, "gradebook.db"))
            generate_assignment(config, assignment)
            staged = folder / f".{path.name}.{os.getpid()}.tmp"
            shutil.copyfile(os.path.join(tmp, "gradebook.db"), staged)
            os.replace(staged, path)                   # atomic: a parallel check sees all of it or nothing
        for old in folder.glob(f"{assignment}-*.db"):   # older versions of this assignment's source
            if old != path:
                old.unlink(missing_ok=True)
    except OSError:
        return None
    return path


def check_notebook(notebook: str | os.PathLike, root: Path | None = None) -> SubmissionResult:
    """Grade one notebook as a learner's own submission, in a throwaway workspace.

    The hidden tests come from ``solutions/`` of the course checkout; the steps
    are those of a classroom: the assignment generated into a gradebook (cached
    per version of the source, see :func:`_cached_gradebook`), the notebook
    submitted as one student, autograded, its grades read back.
    """
    path = Path(notebook).resolve()
    if not path.is_file():
        raise GradingError(f"no such notebook: {notebook}")
    assignment = assignment_of(path)
    root = root or course_root()
    source = root / "solutions" / assignment / f"{assignment}.ipynb"
    if not source.is_file():
        raise GradingError(f"no assignment {assignment!r} in {root / 'solutions'} (run `transformer-course build`?)")
    _validate_notebook(path)
    cached = _cached_gradebook(root, assignment)
    with tempfile.TemporaryDirectory(prefix="tc-check-") as tmp:
        config = make_config(
            tmp,
            source_directory=os.fspath(root / "solutions"),
            release_directory="release",
            submitted_directory="submitted",
            autograded_directory="autograded",
            feedback_directory="feedback",
            db_url="sqlite:///" + os.path.join(tmp, "gradebook.db"),
        )
        if cached is not None:
            shutil.copyfile(cached, os.path.join(tmp, "gradebook.db"))
        else:
            generate_assignment(config, assignment)
        dest = Path(tmp) / "submitted" / "learner" / assignment
        dest.mkdir(parents=True)
        shutil.copyfile(path, dest / f"{assignment}.ipynb")
        result = autograde_submission(config, assignment, "learner")
    result.notebook = os.fspath(path)
    return result


def format_result(result: SubmissionResult) -> str:
    """The human summary ``check`` prints."""
    manual = sum(e.max_score for e in result.exercises if e.needs_manual)
    lines = [f"{Path(result.notebook).name}: {result.score:g} / {result.max_score:g} autograded points"
             + (f" (+{manual:g} for written answers, graded by hand)" if manual else "")]
    for err in result.errors:
        lines.append(f"  ! {err}")
    for flag in result.flags:
        lines.append(f"  ? for review: {flag}")
    for ex in result.exercises:
        if ex.needs_manual:
            mark = "\u270e"
            status = f"{ex.max_score:g} point{'' if ex.max_score == 1 else 's'}, graded by hand"
        else:
            mark = "\u2713" if ex.passed else "\u2717"
            status = f"{ex.score:g}/{ex.max_score:g}"
        lines.append(f"  {mark} {ex.grade_id:<28} {status}")
        if ex.message and not ex.passed and not ex.needs_manual:
            for line in ex.message.splitlines():
                lines.append(f"      {line}")
    return "\n".join(lines)
