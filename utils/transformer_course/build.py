"""``transformer-course build``: notebook sources to instructor and student notebooks.

``solutions/NN_name/NN_name.py`` (jupytext percent format with nbgrader cell
metadata) becomes ``solutions/NN_name/NN_name.ipynb`` (outputs cleared, metadata
normalised), and nbgrader's generate_assignment turns that into the student
version ``notebooks/NN_name/NN_name.ipynb``.  Files are only rewritten when their
content changes, so building twice changes nothing, and :func:`stale_files`
tells CI which generated files are out of date.
"""
from __future__ import annotations

import filecmp
import os
import shutil
import tempfile
from pathlib import Path

import jupytext
import nbformat

from .grader.course import assignments, course_root
from .grader.nbgrading import generate_assignment, make_config

NOTEBOOK_METADATA = {
    "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
    "language_info": {"name": "python"},
}
#: Cell metadata keys kept from a source; jupytext's own layout keys are dropped.
CELL_METADATA_KEEP = ("nbgrader", "tags", "editable", "deletable")


def source_to_notebook(source: Path) -> nbformat.NotebookNode:
    """Read a percent-format source into a clean notebook: no outputs, fixed metadata."""
    nb = jupytext.read(os.fspath(source), fmt="py:percent")
    nb.metadata = nbformat.from_dict(NOTEBOOK_METADATA)
    for i, cell in enumerate(nb.cells):
        cell.metadata = nbformat.from_dict({k: v for k, v in cell.metadata.items() if k in CELL_METADATA_KEEP})
        # Stable ids make builds reproducible (nbformat 4.5 requires an id).
        cell["id"] = f"cell-{i:03d}"
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    nb.nbformat, nb.nbformat_minor = 4, 5
    return nb


def _write_if_changed(path: Path, text: str) -> bool:
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return True


def _dumps(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb, version=4) + "\n"


def _normalise_release(path: Path) -> str:
    nb = nbformat.read(os.fspath(path), as_version=4)
    nb.metadata = nbformat.from_dict(NOTEBOOK_METADATA)
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i:03d}"
    return _dumps(nb)


#: What nbgrader leaves in an answer cell of a student notebook.
STUB_CODE = "raise NotImplementedError()"
STUB_TEXT = "YOUR ANSWER HERE"


class LearnerWorkError(RuntimeError):
    """A student notebook holds a learner's run; building would overwrite it."""


def _refuse_to_overwrite_work(out: Path, names: list[str]) -> None:
    """A generated student notebook holds no outputs and only stubs in its answer cells:
    if one has outputs, or an answer cell without its stub, a learner worked in it."""
    for name in names:
        path = out / "notebooks" / name / f"{name}.ipynb"
        if not path.is_file():
            continue
        nb = nbformat.read(os.fspath(path), as_version=4)
        ran = any(c.get("outputs") or c.get("execution_count") for c in nb.cells if c.cell_type == "code")
        answered = [c.metadata["nbgrader"].get("grade_id", "?") for c in nb.cells
                    if c.get("metadata", {}).get("nbgrader", {}).get("solution")
                    and (STUB_CODE if c.cell_type == "code" else STUB_TEXT) not in c.source]
        if ran or answered:
            why = "it holds outputs" if ran else f"answer cells {', '.join(answered)} are filled in"
            raise LearnerWorkError(
                f"{path} holds a learner's work ({why}): building would overwrite it. "
                "Save it elsewhere, or pass --force.")


def build(root: Path | None = None, out: Path | None = None, only: list[str] | None = None, log=print,
          force: bool = False) -> list[Path]:
    """Build every assignment (or ``only`` these) and return the files written.

    ``out`` is the tree to write into (default: the checkout itself); tests build
    into a temporary copy to find stale files without touching the checkout.
    """
    root = (root or course_root()).resolve()
    out = (out or root).resolve()
    names = only or assignments(root)
    if not force:
        _refuse_to_overwrite_work(out, names)
    changed: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="tc-build-") as tmp:
        tmp_path = Path(tmp)
        src_dir = tmp_path / "solutions"
        for name in names:
            source = root / "solutions" / name / f"{name}.py"
            if not source.is_file():
                raise FileNotFoundError(f"no source {source}")
            text = _dumps(source_to_notebook(source))
            target = out / "solutions" / name / f"{name}.ipynb"
            if _write_if_changed(target, text):
                changed.append(target)
            # nbgrader works on a copy of the assignment folder, so that files
            # other than the sources (data a notebook reads) are released too.
            staged = src_dir / name
            shutil.copytree(root / "solutions" / name, staged, ignore=shutil.ignore_patterns("*.ipynb", "__pycache__"))
            (staged / f"{name}.ipynb").write_text(text, encoding="utf-8")
        config = make_config(
            tmp_path,
            source_directory=os.fspath(src_dir),
            release_directory="release",
            db_url="sqlite:///" + os.fspath(tmp_path / "gradebook.db"),
        )
        for name in names:
            generate_assignment(config, name)
            released = tmp_path / "release" / name
            dest = out / "notebooks" / name
            dest.mkdir(parents=True, exist_ok=True)
            wanted = set()
            for file in sorted(released.rglob("*")):
                if file.is_dir():
                    continue
                rel = file.relative_to(released)
                wanted.add(rel)
                target = dest / rel
                if file.suffix == ".ipynb":
                    if _write_if_changed(target, _normalise_release(file)):
                        changed.append(target)
                elif not (target.is_file() and filecmp.cmp(file, target, shallow=False)):
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(file, target)
                    changed.append(target)
            for file in sorted(dest.rglob("*")):
                if file.is_file() and file.relative_to(dest) not in wanted and ".ipynb_checkpoints" not in file.parts:
                    file.unlink()
                    changed.append(file)
    for path in changed:
        log(f"wrote {path.relative_to(out)}")
    return changed


def stale_files(root: Path | None = None) -> list[str]:
    """Generated files that differ from a fresh build (empty when up to date)."""
    root = (root or course_root()).resolve()
    with tempfile.TemporaryDirectory(prefix="tc-stale-") as tmp:
        out = Path(tmp)
        build(root, out=out, log=lambda *_: None)
        stale = []
        for name in assignments(root):
            for rel in (Path("solutions") / name / f"{name}.ipynb",):
                if not (root / rel).is_file() or (root / rel).read_bytes() != (out / rel).read_bytes():
                    stale.append(os.fspath(rel))
            fresh = out / "notebooks" / name
            current = root / "notebooks" / name
            fresh_files = {p.relative_to(out) for p in fresh.rglob("*") if p.is_file()}
            current_files = {p.relative_to(root) for p in current.rglob("*")
                             if p.is_file() and ".ipynb_checkpoints" not in p.parts} if current.exists() else set()
            for rel in sorted(fresh_files | current_files):
                if not (root / rel).is_file() or not (out / rel).is_file() or (root / rel).read_bytes() != (out / rel).read_bytes():
                    stale.append(os.fspath(rel))
        return stale
