"""The ``transformer-course`` command line.

    transformer-course check NOTEBOOK [--json]   grade one notebook as a classroom would (and record it)
    transformer-course progress [FOLDER]         your table of notebooks 01-10 and what is left in each
    transformer-course build [--check]           sources -> solutions/*.ipynb and notebooks/
    transformer-course collect ASSIGNMENT DIR    copy students' notebooks into the workspace
    transformer-course autograde [ASSIGNMENT]    grade every collected submission, in parallel
    transformer-course feedback [ASSIGNMENT]     HTML feedback for autograded submissions
    transformer-course export [--to FILE]        grades as CSV
    transformer-course doctor                    versions, device, what is missing
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _cmd_check(args: argparse.Namespace) -> int:
    from .grader.nbgrading import GradingError, format_result
    from .progress import check_and_record

    try:
        result = check_and_record(args.notebook)
    except GradingError as exc:
        if args.json:
            print(json.dumps({"notebook": str(args.notebook), "score": 0, "max_score": None,
                              "exercises": [], "errors": [str(exc)]}))
        else:
            print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result.to_json()))
    else:
        print(format_result(result))
    return 0 if not result.errors else 1


def _cmd_progress(args: argparse.Namespace) -> int:
    from .progress import default_folder, format_progress, progress, progress_json

    folder = (Path(args.folder) if args.folder else default_folder()).resolve()
    if not folder.is_dir():
        print(f"error: no such folder: {folder}", file=sys.stderr)
        return 2
    entries = progress(folder, run=not args.no_run)
    if all(e.status == "missing" for e in entries):
        print(f"error: no notebook of the course in {folder}: looked for NN_name.ipynb and NN_name/NN_name.ipynb "
              f"({', '.join(e.assignment for e in entries) or 'no assignments found'})", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(progress_json(folder, entries)))
    else:
        print(format_progress(folder, entries))
    return 0


def _cmd_build(args: argparse.Namespace) -> int:
    from .build import build, stale_files

    if args.check:
        stale = stale_files()
        if stale:
            print("stale generated files (run `transformer-course build`):")
            for s in stale:
                print(f"  {s}")
            return 1
        print("generated files are up to date")
        return 0
    from .build import LearnerWorkError

    try:
        changed = build(only=args.assignment or None, force=args.force)
    except LearnerWorkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not changed:
        print("nothing to do: every generated file is up to date")
    return 0


def _cmd_collect(args: argparse.Namespace) -> int:
    from .grader.classroom import collect

    n = collect(args.assignment, Path(args.path))
    print(f"collected {n} submission(s) of {args.assignment}")
    return 0


def _cmd_autograde(args: argparse.Namespace) -> int:
    from .grader.classroom import autograde

    summary = autograde(args.assignment or None, workers=args.workers, force=args.force, sandbox=args.sandbox,
                        db_url=args.db)
    print(summary.report())
    return 0 if not summary.failures else 1


def _cmd_feedback(args: argparse.Namespace) -> int:
    from .grader.classroom import feedback

    for path in feedback(args.assignment or None):
        print(f"wrote {path}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from .grader.classroom import export

    print(f"wrote {export(args.to)}")
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import doctor

    return doctor()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="transformer-course", description="From RNNs to CLIP: build, check and grade the course notebooks.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("check", help="grade one notebook with the hidden tests, as a classroom would")
    p.add_argument("notebook", help="a notebook named NN_name.ipynb, anywhere")
    p.add_argument("--json", action="store_true", help="print exactly one JSON object")
    p.set_defaults(func=_cmd_check)

    p = sub.add_parser("progress", help="a table of your notebooks 01-10: score, status and what is left")
    p.add_argument("folder", nargs="?", default=None,
                   help="the folder of your notebooks, NN_name.ipynb or NN_name/NN_name.ipynb (default: the current "
                        "directory if it holds some, else the course's notebooks/)")
    p.add_argument("--no-run", action="store_true",
                   help="grade nothing: show notebooks changed or never checked as such")
    p.add_argument("--json", action="store_true", help="print exactly one JSON object")
    p.set_defaults(func=_cmd_progress)

    p = sub.add_parser("build", help="regenerate solutions/*.ipynb and notebooks/ from the sources")
    p.add_argument("assignment", nargs="*", help="only these assignments (default: all)")
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if a generated file is stale")
    p.add_argument("--force", action="store_true", help="overwrite student notebooks that hold a learner's run")
    p.set_defaults(func=_cmd_build)

    p = sub.add_parser("collect", help="copy submissions into autograder/submitted/")
    p.add_argument("assignment")
    p.add_argument("path", help="a folder of STUDENT/ASSIGNMENT.ipynb or STUDENT.ipynb files, or a .zip of one")
    p.set_defaults(func=_cmd_collect)

    p = sub.add_parser("autograde", help="grade every collected submission, in parallel")
    p.add_argument("assignment", nargs="*")
    p.add_argument("--workers", type=int, default=None, help="parallel graders (default: all cores)")
    p.add_argument("--force", action="store_true", help="regrade submissions already graded")
    p.add_argument("--sandbox", choices=("bwrap", "auto", "none"), default="bwrap",
                   help="isolate each submission with bubblewrap (default, required for untrusted classes); "
                        "'none' trusts the code")
    p.add_argument("--db", default=None, metavar="URL",
                   help="gradebook database (SQLAlchemy URL, e.g. postgresql://user@host/course); "
                        "default TRANSFORMER_COURSE_DB_URL or autograder/gradebook.db")
    p.set_defaults(func=_cmd_autograde)

    p = sub.add_parser("feedback", help="HTML feedback for autograded submissions")
    p.add_argument("assignment", nargs="*")
    p.set_defaults(func=_cmd_feedback)

    p = sub.add_parser("export", help="export grades as CSV")
    p.add_argument("--to", default=None, help="CSV path (default autograder/grades.csv)")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("doctor", help="report versions, device and what is missing")
    p.set_defaults(func=_cmd_doctor)

    args = parser.parse_args(argv)
    from .grader.course import GradingError

    try:
        return int(args.func(args) or 0)
    except GradingError as exc:  # a bad input, explained: not a crash
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:      # Ctrl-C: stop quietly; what was recorded stays recorded
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
