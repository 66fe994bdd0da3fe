"""A class graded in parallel, resumably: killed workers and killed batches lose nothing and grade nothing twice;
the gradebook can be PostgreSQL (a real server, started here from Debian's package)."""
from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from notebook_tools import build_toy_course, need_system_package, toy_submission

CLI = [sys.executable, "-m", "transformer_course"]
# a class of 8 in the suite; TRANSFORMER_COURSE_SCALE_STUDENTS=40 runs the 40-submission batch
N = int(os.environ.get("TRANSFORMER_COURSE_SCALE_STUDENTS", "8"))
# student i: double right when i is even, square right when i % 3 != 0: scores differ, and are known
EXPECTED = {f"s{i:02d}": (2 if i % 2 == 0 else 0) + (3 if i % 3 else 0) for i in range(N)}


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    return build_toy_course(tmp_path_factory.mktemp("scale-course"))


def _class(course: Path, dest: Path) -> Path:
    """A fresh copy of the course with N collected submissions."""
    from transformer_course.grader import classroom

    shutil.copytree(course, dest)
    inbox = dest.parent / (dest.name + "-inbox")
    for i, student in enumerate(EXPECTED):
        toy_submission(dest, inbox / student,
                       double="def double(x):\n    return 2 * x\n" if i % 2 == 0 else "def double(x):\n    return x\n",
                       square="def square(x):\n    return x * x\n" if i % 3 else "def square(x):\n    return 4\n")
    classroom.collect("99_toy", inbox, root=dest)
    return dest


def _env(root: Path, **extra: str) -> dict:
    return {**os.environ, "TRANSFORMER_COURSE_ROOT": os.fspath(root), **extra}


def _workers_of(pid: int) -> list[int]:
    """The pool's worker processes: children of ``pid`` started by multiprocessing's spawn."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid and "multiprocessing" in cmd and "resource_tracker" not in cmd:
            out.append(int(entry))
    return out


def _graded(root: Path) -> int:
    return len(list((root / "autograder" / "graded" / "99_toy").glob("*.json")))


def _assert_every_grade_once(root: Path, db_url: str | None = None) -> None:
    from nbgrader.api import Gradebook

    from transformer_course.grader import classroom
    from transformer_course.grader.nbgrading import make_config

    url = db_url or make_config(root).CourseDirectory.db_url
    with Gradebook(url) as gb:
        subs = gb.assignment_submissions("99_toy")
        students = sorted(s.student.id for s in subs)
        scores = {s.student.id: s.score for s in subs}
    assert students == sorted(EXPECTED), f"one submission per student in the gradebook, got {students}"
    assert scores == EXPECTED, scores
    env_before = os.environ.get("TRANSFORMER_COURSE_DB_URL")
    if db_url:
        os.environ["TRANSFORMER_COURSE_DB_URL"] = db_url
    try:
        out = classroom.export(os.fspath(root / "grades.csv"), root=root)
    finally:
        if db_url and env_before is None:
            os.environ.pop("TRANSFORMER_COURSE_DB_URL", None)
    rows = list(csv.DictReader(out.open()))
    assert sorted(r["student_id"] for r in rows) == sorted(EXPECTED), "every student exactly once in the export"
    assert {r["student_id"]: float(r["score"]) for r in rows} == EXPECTED
    assert {r["status"] for r in rows} == {"ok"}, {r["student_id"]: r["status"] for r in rows}


def test_a_killed_worker_loses_nothing(course, tmp_path):
    root = _class(course, tmp_path / "course")
    proc = subprocess.Popen([*CLI, "autograde", "99_toy", "--workers", "2", "--sandbox", "auto"],
                            env=_env(root), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    killed = None
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline:
        workers = _workers_of(proc.pid)
        if workers and _graded(root) >= 1:
            killed = workers[0]
            os.kill(killed, signal.SIGKILL)
            break
        time.sleep(0.2)
    out, _ = proc.communicate(timeout=600)
    assert killed is not None, f"no worker to kill: the batch ended first\n{out}"
    assert _graded(root) == N, f"the batch must finish after a worker died:\n{out}"
    _assert_every_grade_once(root)


def test_a_killed_batch_is_finished_by_a_rerun(course, tmp_path):
    root = _class(course, tmp_path / "course")
    proc = subprocess.Popen([*CLI, "autograde", "99_toy", "--workers", "2", "--sandbox", "auto"],
                            env=_env(root), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 240
    while proc.poll() is None and _graded(root) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)                  # the command, its workers and their sandboxes
    proc.wait()
    first = _graded(root)
    assert 0 < first < N, f"the kill should land mid-batch (graded {first} of {N})"
    rerun = subprocess.run([*CLI, "autograde", "99_toy", "--workers", "2", "--sandbox", "auto"], env=_env(root),
                           capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"{first} already graded" in rerun.stdout, rerun.stdout
    assert _graded(root) == N
    _assert_every_grade_once(root)


# ------------------------------------------------------------------ PostgreSQL ---

def _pg_bin() -> Path | None:
    for base in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (base / "initdb").exists() and (base / "pg_ctl").exists():
            return base
    return None


@pytest.fixture(scope="module")
def postgres():
    """A PostgreSQL server of our own, on a Unix socket in a temporary folder, stopped at the end."""
    need_system_package("postgresql")
    pg = _pg_bin()
    if pg is None:
        pytest.skip("PostgreSQL's initdb and pg_ctl are not in /usr/lib/postgresql/*/bin")
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        pytest.fail("psycopg2 is missing: it is in the dev extra")
    import tempfile

    # not under pytest's own temporary folder, which only its owner can enter
    base = Path(tempfile_dir := tempfile.mkdtemp(prefix="tc-pg-"))
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    # PostgreSQL refuses to run as root: run it as nobody when we are root
    as_user: list[str] = []
    if os.geteuid() == 0:
        as_user = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        for p in (base, sock):
            os.chown(p, 65534, 65534)
    subprocess.run([*as_user, os.fspath(pg / "initdb"), "-D", os.fspath(data), "-U", "grader", "--auth=trust",
                    "-E", "UTF8"], check=True, capture_output=True, cwd=tempfile_dir)
    log = base / "log"
    subprocess.run([*as_user, os.fspath(pg / "pg_ctl"), "-D", os.fspath(data), "-l", os.fspath(log), "-w",
                    "-o", f"-c listen_addresses='' -c unix_socket_directories='{sock}'", "start"],
                   check=True, capture_output=True, cwd=tempfile_dir)
    try:
        subprocess.run([os.fspath(pg / "createdb"), "-h", os.fspath(sock), "-U", "grader", "course"], check=True,
                       capture_output=True)
        yield f"postgresql+psycopg2://grader@/course?host={sock}"
    finally:
        subprocess.run([*as_user, os.fspath(pg / "pg_ctl"), "-D", os.fspath(data), "-m", "immediate", "stop"],
                       capture_output=True, cwd=tempfile_dir)
        shutil.rmtree(base, ignore_errors=True)


def test_postgresql_gradebook(course, tmp_path, postgres):
    root = _class(course, tmp_path / "course")
    proc = subprocess.run([*CLI, "autograde", "99_toy", "--workers", "2", "--sandbox", "auto", "--db", postgres],
                          env=_env(root), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not (root / "autograder" / "gradebook.db").exists(), "the SQLite gradebook must not be used"
    _assert_every_grade_once(root, db_url=postgres)
