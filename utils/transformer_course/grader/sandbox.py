"""Running one submission's cells in a sandbox, with limits, and reading back what happened.

The trusted side of grading.  :func:`run_cells` starts
:mod:`~transformer_course.grader.harness` in a bubblewrap sandbox (Debian's
``bubblewrap``) that sees only

- the Python installation and this package, read-only;
- a private, empty working folder and a private ``/tmp``;
- no network, no other process, no course checkout (no ``solutions/``, no
  gradebook, no other submission);

with a memory limit (address space, and a cgroup where the machine allows one),
a process limit (cgroup), a time limit per cell and one for the whole notebook.
Its events arrive on a private pipe, each carrying a token the sandbox was given
on stdin: anything else the process prints is ignored.

When the process dies (``os._exit``, a signal, memory exhausted) or a cell runs
past its time, the cell is recorded with the reason, and the notebook is run
again from the top with that cell left out, so the exercises after it are still
graded (at most :data:`MAX_RESTARTS` times).  Every cell ends with an outcome:
nothing is left silently empty.
"""
from __future__ import annotations

import json
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .course import course_root
from .settings import CELL_TIMEOUT_S, MAX_PROCESSES, MEMORY_MB, NOTEBOOK_TIMEOUT_S

#: How often a notebook is run again after its process died or hung.
MAX_RESTARTS = 3
#: Time allowed for the process to start and load the grading modules (seconds).
STARTUP_TIMEOUT_S = 120.0


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing or cannot make a sandbox on this machine."""


@dataclass
class CellOutcome:
    """What one cell did: its output chunks, its error (or None), and any tampering seen around it."""

    index: int
    outputs: list[dict] = field(default_factory=list)
    error: dict | None = None
    tampered: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class RunReport:
    cells: list[CellOutcome]
    sandboxed: bool
    restarts: int = 0
    problems: list[str] = field(default_factory=list)   # crashes, timeouts, protocol violations
    seconds: float = 0.0


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


def sandbox_mode(requested: str | None = None) -> str:
    """``"bwrap"`` or ``"none"``. ``TRANSFORMER_COURSE_SANDBOX`` (``auto``, ``bwrap``, ``none``) chooses;
    ``auto`` (the default) uses bubblewrap where it works."""
    want = (requested or os.environ.get("TRANSFORMER_COURSE_SANDBOX", "auto")).lower()
    if want not in ("auto", "bwrap", "none"):
        raise ValueError(f"TRANSFORMER_COURSE_SANDBOX={want!r}: use auto, bwrap or none")
    if want == "none":
        return "none"
    ok, why = sandbox_works()
    if ok:
        return "bwrap"
    if want == "bwrap":
        raise SandboxUnavailable(why)
    return "none"


_WORKS: tuple[bool, str] | None = None


def sandbox_works() -> tuple[bool, str]:
    """Whether a bubblewrap sandbox can be made here, and if not, why (cached per process)."""
    global _WORKS
    if _WORKS is None:
        exe = bwrap_path()
        if exe is None:
            _WORKS = (False, "bubblewrap (bwrap) is not installed: `apt-get install bubblewrap` on Debian/Ubuntu")
        else:
            with tempfile.TemporaryDirectory(prefix="tc-probe-") as tmp:
                cmd = _bwrap_args(Path(tmp)) + ["--chdir", "/tmp/submission", sys.executable, "-c", "print('ok')"]
                try:
                    out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
                    _WORKS = (out.returncode == 0 and out.stdout.strip() == "ok",
                              f"bubblewrap could not start a sandbox: {(out.stderr or out.stdout).strip()[:300]}")
                except (OSError, subprocess.TimeoutExpired) as exc:
                    _WORKS = (False, f"bubblewrap could not start a sandbox: {exc}")
    return _WORKS


def _readonly_roots() -> list[str]:
    """What the graded process may read: the interpreter, its libraries, the environment, this package."""
    import transformer_course

    package_parent = Path(transformer_course.__file__).resolve().parent.parent
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, os.fspath(package_parent),
             os.path.dirname(os.path.realpath(sys.executable))}
    roots = {os.path.realpath(r) for r in roots if r and os.path.isdir(r)}
    # never the course checkout itself (solutions/, autograder/): only the package folder inside it
    try:
        course = os.fspath(course_root())
    except Exception:  # noqa: BLE001 - no checkout: nothing to hide
        course = None
    keep = []
    for r in sorted(roots, key=len):
        if course and (r == course or course.startswith(r.rstrip("/") + "/")):
            continue                                   # a folder holding the checkout would expose it
        if any(r.startswith(k.rstrip("/") + "/") for k in keep):
            continue
        keep.append(r)
    return keep


def _bwrap_args(workdir: Path) -> list[str]:
    args = [bwrap_path() or "bwrap", "--unshare-all", "--die-with-parent", "--new-session",
            "--uid", "65534", "--gid", "65534", "--hostname", "grader"]
    for top in ("/usr", "/etc/alternatives", "/etc/ld.so.cache", "/etc/ssl/certs", "/etc/fonts"):
        if os.path.exists(top):
            args += ["--ro-bind", top, top]
    for link in ("lib", "lib64", "bin", "sbin"):
        p = f"/{link}"
        if os.path.islink(p):
            args += ["--symlink", os.readlink(p), p]
        elif os.path.isdir(p):
            args += ["--ro-bind", p, p]
    args += ["--proc", "/proc", "--dev", "/dev"]
    for node in _gpu_devices():                            # a GPU, where there is one, for notebooks that use it
        args += ["--dev-bind", node, node]
    # the private /tmp first: an environment that lives under /tmp (a CI checkout) is bound on top of it
    args += ["--tmpfs", "/tmp"]
    for root in _readonly_roots():
        if not root.startswith("/usr/"):
            args += ["--ro-bind", root, root]
    args += ["--bind", os.fspath(workdir), "/tmp/submission"]
    return args


def _gpu_devices() -> list[str]:
    import glob

    return sorted(glob.glob("/dev/nvidia*")) + sorted(glob.glob("/dev/dri/renderD*"))


def _environment(sandboxed: bool) -> dict[str, str]:
    env = {
        "PATH": os.path.dirname(sys.executable) + os.pathsep + "/usr/bin:/bin",
        "HOME": "/tmp" if sandboxed else os.environ.get("HOME", "/tmp"),
        "USER": "learner", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1",
        "MPLBACKEND": "Agg", "TRANSFORMER_COURSE_OFFLINE": "1", "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "NBGRADER_EXECUTION": "autograde",
    }
    if sandboxed:
        env["HF_HOME"] = "/tmp/hf"
        env["MPLCONFIGDIR"] = "/tmp/mpl"
    # threads as the caller has them: a class's workers set one each (classroom), a learner's `check` uses
    # the machine's cores unless told otherwise
    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TORCH_NUM_THREADS"):
        if key in os.environ:
            env[key] = os.environ[key]
    return env


class _Cgroup:
    """A v1 cgroup for the pids (and memory) controllers, where this process may make one (root, Linux)."""

    BASE = Path("/sys/fs/cgroup")

    def __init__(self, memory_mb: int, max_processes: int) -> None:
        self.dirs: list[Path] = []
        name = f"transformer-course-{os.getpid()}-{secrets.token_hex(4)}"
        for controller, settings in (("pids", {"pids.max": str(max_processes)}),
                                     ("memory", {"memory.limit_in_bytes": str(memory_mb * 2**20)})):
            d = self.BASE / controller / name
            try:
                d.mkdir()
                for key, value in settings.items():
                    (d / key).write_text(value)
                self.dirs.append(d)
            except OSError:
                try:
                    d.rmdir()
                except OSError:
                    pass

    def join(self) -> None:                              # runs in the child, before exec
        for d in self.dirs:
            try:
                (d / "cgroup.procs").write_text(str(os.getpid()))
            except OSError:
                pass

    def oom_killed(self) -> bool:
        for d in self.dirs:
            if d.parent.name == "memory":
                try:
                    return int((d / "memory.failcnt").read_text().strip() or 0) > 0
                except OSError:
                    return False
        return False

    def close(self) -> None:
        for d in self.dirs:
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except OSError:
                    time.sleep(0.05)


def _limits(memory_mb: int, cgroup: _Cgroup):
    def apply() -> None:
        import resource

        os.setsid()
        cgroup.join()
        # an address-space limit turns a runaway allocation into a MemoryError, but CUDA maps far more
        # address space than memory: with a GPU, the memory cgroup (where there is one) is the limit
        for which, value in ((resource.RLIMIT_AS, None if _gpu_devices() else memory_mb * 2**20),
                             (resource.RLIMIT_CORE, 0)):
            if value is not None:
                try:
                    resource.setrlimit(which, (value, value))
                except (ValueError, OSError):          # a platform that does not offer this limit
                    pass
    return apply


#: The most that is copied from beside the notebook into the sandbox's working folder (bytes).
FILES_LIMIT = 200 * 2**20


def _copy_beside(source: Path | None, work: str) -> None:
    """The files beside the notebook (an assignment's data), not the notebooks, into the working folder."""
    if source is None or not source.is_dir():
        return
    total = 0
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source)
        if path.is_symlink() or not path.is_file() or path.suffix == ".ipynb" \
                or any(part.startswith(".") for part in rel.parts):
            continue
        total += path.stat().st_size
        if total > FILES_LIMIT:
            break
        dest = Path(work) / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
        os.chmod(dest, 0o644)


def _run_once(cells: list[dict], preload: list[str], *, sandboxed: bool, cell_timeout: float,
              deadline: float, memory_mb: int, files_from: Path | None = None
              ) -> tuple[dict[int, CellOutcome], dict]:
    """One run of the harness. Returns the outcomes of the cells that ended, and how the run ended:
    ``{"state": "done" | "died" | "timeout" | "notebook_timeout" | "protocol", "cell": i or None, "detail": str}``."""
    token = secrets.token_hex(16)
    plan = json.dumps({"token": token, "cells": cells, "preload": preload, "sandboxed": sandboxed})
    outcomes: dict[int, CellOutcome] = {}
    with tempfile.TemporaryDirectory(prefix="tc-submission-") as work:
        os.chmod(work, 0o777)
        _copy_beside(files_from, work)
        read_fd, write_fd = os.pipe()
        # The process starts in an empty folder, so that `-m` puts nothing of the submission's on sys.path
        # before the harness's own imports (a numpy.py there would be imported instead of numpy); the harness
        # moves to the working folder, and puts it last on sys.path, after its snapshot. -s: no user site.
        flags = ["-s", "-P"] if sys.version_info >= (3, 11) else ["-s"]
        inside = "/tmp/submission" if sandboxed else work
        cmd = [sys.executable, *flags, "-m", "transformer_course.grader.harness", str(write_fd), inside]
        start_dir = os.path.join(work, ".start")          # hidden: _copy_beside skips dot-folders
        os.mkdir(start_dir)
        if sandboxed:
            cmd = _bwrap_args(Path(work)) + ["--chdir", "/tmp/submission/.start"] + cmd
        cgroup = _Cgroup(memory_mb, MAX_PROCESSES)
        stdin_file = tempfile.TemporaryFile()
        stdin_file.write(plan.encode())
        stdin_file.seek(0)
        try:
            proc = subprocess.Popen(cmd, stdin=stdin_file, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                    pass_fds=(write_fd,), cwd=start_dir, env=_environment(sandboxed),
                                    preexec_fn=_limits(memory_mb, cgroup))
        finally:
            os.close(write_fd)
            stdin_file.close()
        ended = {"state": "died", "cell": None, "detail": ""}
        buf = b""
        current: int | None = None
        started_at = time.monotonic()
        ready = False
        stderr_tail = bytearray()
        stderr_open = proc.stderr is not None
        try:
            while True:
                fds = [read_fd] + ([proc.stderr.fileno()] if stderr_open else [])
                r, _, _ = select.select(fds, [], [], 0.5)     # the time limits are checked below
                if stderr_open and proc.stderr.fileno() in r:
                    chunk = os.read(proc.stderr.fileno(), 65536)
                    stderr_open = bool(chunk)                  # end of file: stop watching it
                    stderr_tail.extend(chunk)
                    del stderr_tail[:-4000]
                if read_fd in r:
                    chunk = os.read(read_fd, 1 << 20)
                    if not chunk:
                        break                                  # the process closed the channel (exit or crash)
                    buf += chunk
                    while b"\n" in buf:
                        line, buf = buf.split(b"\n", 1)
                        try:
                            event = json.loads(line)
                        except ValueError:
                            event = {}
                        if not isinstance(event, dict) or event.get("token") != token:
                            ended = {"state": "protocol", "cell": current,
                                     "detail": "something other than the grader wrote on the grader's channel"}
                            raise _Stop
                        kind = event.get("event")
                        if kind == "ready":
                            ready = True
                        elif kind == "start":
                            if event.get("cell") != (current + 1 if current is not None else _next(outcomes)):
                                ended = {"state": "protocol", "cell": current, "detail": "cells reported out of order"}
                                raise _Stop
                            current = event["cell"]
                            started_at = time.monotonic()
                        elif kind == "end":
                            if event.get("cell") != current or current in outcomes:
                                ended = {"state": "protocol", "cell": current,
                                         "detail": "a cell's result was reported twice"}
                                raise _Stop
                            outcomes[current] = CellOutcome(
                                index=current, outputs=list(event.get("outputs") or []), error=event.get("error"),
                                tampered=list(event.get("tampered") or []),
                                seconds=time.monotonic() - started_at)
                            current = None
                        elif kind == "done":
                            ended = {"state": "done", "cell": None, "detail": ""}
                            raise _Stop
                if time.monotonic() >= deadline:
                    ended = {"state": "notebook_timeout", "cell": current, "detail": ""}
                    raise _Stop
                if current is not None and time.monotonic() >= started_at + cell_timeout:
                    ended = {"state": "timeout", "cell": current, "detail": ""}
                    raise _Stop
                if current is None and not ready and time.monotonic() - started_at > STARTUP_TIMEOUT_S:
                    ended = {"state": "died", "cell": None, "detail": "the grader did not start in time"}
                    raise _Stop
        except _Stop:
            pass
        finally:
            if ended["state"] in ("died", "done"):
                try:                                          # let it exit by itself, to read its status
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
            _kill(proc)
            os.close(read_fd)
            try:
                rest = proc.stderr.read() if proc.stderr else b""
                stderr_tail.extend(rest or b"")
                proc.stderr.close()
            except (OSError, ValueError):
                pass
            oom = cgroup.oom_killed()
            cgroup.close()
        if ended["state"] == "died":
            ended["cell"] = current
            rc = proc.returncode
            if oom:
                why = f"it ran out of memory (limit {memory_mb} MiB) and was killed"
            elif rc is not None and (rc < 0 or (sandboxed and rc > 128)):
                # bubblewrap reports a child killed by signal N as exit status 128 + N
                number = -rc if rc < 0 else rc - 128
                try:
                    name = signal.Signals(number).name
                except ValueError:
                    name = str(number)
                why = f"it was killed by signal {name}"
            else:
                why = f"it exited with status {rc}"
                if rc == 0:
                    why += " (os._exit or sys.exit outside a cell?)"
            tail = stderr_tail.decode(errors="replace").strip().splitlines()
            if not ready and tail:
                why += f": {tail[-1][:300]}"
            ended["detail"] = ended["detail"] or why
    return outcomes, ended


def _next(outcomes: dict[int, CellOutcome]) -> int:
    return max(outcomes) + 1 if outcomes else 0


class _Stop(Exception):
    pass


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            proc.kill()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:  # pragma: no cover - an unkillable process
        pass


def run_cells(cells: list[dict], *, preload: list[str] = (), sandbox: str | None = None,
              cell_timeout: float | None = None, notebook_timeout: float | None = None,
              memory_mb: int | None = None, files_from: str | os.PathLike | None = None) -> RunReport:
    """Run ``cells`` (dicts with ``kind`` ``"code"`` or ``"test"``, ``source``, optional ``grade_id``) and
    return one :class:`CellOutcome` per cell, in order.

    ``sandbox``: ``"bwrap"``, ``"none"`` or ``"auto"`` (see :func:`sandbox_mode`).
    ``files_from``: a folder whose files (not notebooks) are copied into the working folder first.
    """
    mode = sandbox_mode(sandbox)
    cell_timeout = CELL_TIMEOUT_S if cell_timeout is None else cell_timeout
    notebook_timeout = NOTEBOOK_TIMEOUT_S if notebook_timeout is None else notebook_timeout
    memory_mb = MEMORY_MB if memory_mb is None else memory_mb
    start = time.monotonic()
    deadline = start + notebook_timeout
    plan = [dict(c) for c in cells]
    skipped: dict[int, CellOutcome] = {}
    report = RunReport(cells=[], sandboxed=mode == "bwrap")
    outcomes: dict[int, CellOutcome] = {}
    while True:
        outcomes, ended = _run_once(plan, list(preload), sandboxed=mode == "bwrap", cell_timeout=cell_timeout,
                                    deadline=deadline, memory_mb=memory_mb,
                                    files_from=Path(files_from) if files_from else None)
        state, at = ended["state"], ended["cell"]
        if state == "done":
            break
        if state == "timeout":
            why = f"this cell ran for more than {cell_timeout:g} s and was stopped"
        elif state == "notebook_timeout":
            why = f"the notebook ran for more than {notebook_timeout:g} s in all and was stopped here"
        elif state == "protocol":
            why = f"grading was stopped: {ended['detail']} (flagged for review)"
        else:
            why = f"the notebook's process died while this cell ran: {ended['detail']}"
        report.problems.append((f"cell {at + 1}: " if at is not None else "before the first cell: ") + why)
        if at is None or state in ("notebook_timeout", "protocol") or report.restarts >= MAX_RESTARTS:
            stop = at if at is not None else _next(outcomes)
            for i in range(stop, len(plan)):
                if i not in outcomes:
                    reason = why if i == stop else f"not run: grading stopped at cell {stop + 1} ({why})"
                    outcomes[i] = CellOutcome(index=i, error={"ename": "NotRun" if i != stop else "GradingStopped",
                                                              "evalue": reason})
            break
        skipped[at] = CellOutcome(index=at, outputs=outcomes.get(at, CellOutcome(at)).outputs,
                                  error={"ename": "CellStopped", "evalue": why})
        plan[at] = {**plan[at], "skip": f"left out after a first run: {why}"}
        report.restarts += 1
    for i, o in skipped.items():
        outcomes[i] = o
    for i, o in sorted(outcomes.items()):
        if o.error and o.error.get("ename") == "MemoryError":
            report.problems.append(f"cell {i + 1}: ran out of memory (MemoryError; the limit is {memory_mb} MiB)")
    report.cells = [outcomes.get(i, CellOutcome(index=i, error={"ename": "NotRun", "evalue": "no result"}))
                    for i in range(len(plan))]
    report.seconds = time.monotonic() - start
    return report
