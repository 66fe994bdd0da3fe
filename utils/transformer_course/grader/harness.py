"""The process that runs one submission's cells (inside the sandbox) and reports on a private channel.

Started by :mod:`transformer_course.grader.sandbox` as
``python -m transformer_course.grader.harness FD``; it reads a *plan* (JSON) on
stdin and writes one JSON line per event to file descriptor ``FD``:

- ``{"event": "ready", "token": ...}`` once the grading environment is loaded;
- ``{"event": "start", "cell": i, "token": ...}`` before cell ``i``;
- ``{"event": "end", "cell": i, "token": ..., "outputs": [...], "error": null | {...}, "tampered": [...]}``.

Cells are of two kinds:

``code``
    the learner's cells (answers and everything else they can edit), run by an
    IPython shell so that magics and ``display`` work as in a notebook;
``test``
    the instructor's test cells, restored from the gradebook.  They are *not*
    run through the shell: no input transformer, AST transformer or event hook
    the learner registered sees them.  They are compiled and run here, with the
    real builtins, and only after :class:`Guard` has checked that nothing the
    checks rely on was replaced; the check runs again afterwards, because the
    learner's functions run inside the test.

What a learner can and cannot change is written down in ``autograder/README.md``
(the threat model).  The verdicts are written by the trusted side from these
events; this process never touches a gradebook.
"""
from __future__ import annotations

import builtins
import io
import json
import os
import sys
import time
import traceback

from .settings import PROTECTED_PACKAGES

#: Modules whose public constants (``numpy.inf``, ``math.pi``, ``torch.float32``) are protected too.
CONSTANT_MODULES = frozenset({"numpy", "torch", "math", "cmath", "torch.nn.functional"})
#: Module globals that change in honest runs (caches, registries written on import, last results).
VOLATILE = frozenset({
    "__warningregistry__", "_", "__", "___", "__builtins__", "__loader__", "__spec__", "__cached__",
    "_cache", "_abc_registry", "_ONNX_RUN_FROM_INSIDE", "_profile_hook",
    "getfile",                      # inspect.getfile: IPython wraps it to find the source of cells
})
#: Attributes of ``sys`` that the checks depend on (the rest of ``sys`` changes all the time).
SYS_NAMES = ("setprofile", "getprofile", "settrace", "gettrace", "modules", "_getframe", "exc_info",
             "audit", "addaudithook")
#: Builtins that IPython swaps in and out around every cell (and that no check uses).
BUILTINS_SWAPPED = frozenset({"exit", "quit", "display", "get_ipython", "help", "copyright", "credits",
                              "license", "_", "__", "___", "__IPYTHON__", "__doc__", "__name__",
                              "__package__", "__loader__", "__spec__", "dreload"})
#: Loaded before the snapshot in every run: what the checks use, and the modules that rebind torch's
#: functions when they are first imported (torch._dynamo wraps torch.manual_seed, for one).
BASE_PRELOAD = ("numpy", "torch", "torch._dynamo", "torch.nn.functional", "torch.optim")
#: Output kept per cell (characters); the rest is cut with a note.
OUTPUT_LIMIT = 100_000
#: What a cell's displays may bring back (figures as PNG, a widget marker, text): at most this many per cell,
#: each PNG at most this many base64 characters. The trusted side checks again (nbgrading._display_output).
DISPLAYS_PER_CELL = 12
PNG_LIMIT = 2_000_000
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"

_MISSING = object()


class Guard:
    """A snapshot of everything the checks rely on, and the list of what has changed since.

    Taken once, after the grading modules (and the oracles they compare with) are
    imported and before any learner code runs.  Identity, not equality, is
    compared: a replaced function is a different object even when it has the same name.
    """

    def __init__(self) -> None:
        self.modules: dict[str, tuple[object, dict]] = {}
        for name, mod in list(sys.modules.items()):
            self._add(name, mod)
        self.builtins = {k: v for k, v in vars(builtins).items() if k not in BUILTINS_SWAPPED}
        self.sys = {k: getattr(sys, k, _MISSING) for k in SYS_NAMES}
        self.modules_dict = sys.modules
        self.classes = []
        try:
            import torch

            for cls in (torch.Tensor, torch.nn.Module, torch.nn.Parameter, torch.nn.Linear, torch.nn.Embedding,
                        torch.nn.LayerNorm, torch.optim.Optimizer, torch.optim.AdamW, torch.Generator):
                self.classes.append((cls, dict(vars(cls))))
            self._torch_C = torch._C
        except Exception:  # noqa: BLE001 - torch-free notebooks
            self._torch_C = None

    def _add(self, name: str, mod) -> None:
        top = name.split(".")[0]
        if mod is None or top not in PROTECTED_PACKAGES or top in ("sys", "builtins"):
            return                                      # sys and builtins: watched entry by entry, above
        d = getattr(mod, "__dict__", None)
        if isinstance(d, dict):
            own = name.split(".")[0] == "transformer_course"
            top = name in CONSTANT_MODULES
            # everything of this package (its tolerances too); elsewhere the functions, classes and modules,
            # and the public constants of the top-level modules (np.inf, torch.float32); libraries keep
            # state of their own in other globals
            self.modules[name] = (mod, {k: v for k, v in d.items() if k not in VOLATILE and (
                own or callable(v) or isinstance(v, type(sys)) or (top and not k.startswith("_")))})

    def violations(self, limit: int = 5) -> list[str]:
        """What was replaced since the snapshot (at most ``limit`` entries); empty when nothing was."""
        found: list[str] = []

        def note(what: str) -> bool:
            found.append(what)
            return len(found) >= limit

        if sys.modules is not self.modules_dict:
            note("sys.modules was replaced")
        for k, v in self.sys.items():
            if getattr(sys, k, _MISSING) is not v and note(f"sys.{k} was replaced"):
                return found
        if sys.getprofile() is not None and note("a profiler was left installed (sys.setprofile)"):
            return found
        if sys.gettrace() is not None and note("a tracer was left installed (sys.settrace)"):
            return found
        current = vars(builtins)
        for k, v in self.builtins.items():
            if current.get(k, _MISSING) is not v and note(f"builtins.{k} was replaced"):
                return found
        modules = self.modules_dict
        for name, (mod, attrs) in self.modules.items():
            if modules.get(name, mod) is not mod and note(f"sys.modules[{name!r}] was replaced"):
                return found
            d = mod.__dict__
            for k, v in attrs.items():
                if d.get(k, _MISSING) is not v and note(f"{name}.{k} was replaced"):
                    return found
        for cls, attrs in self.classes:
            d = cls.__dict__
            for k, v in attrs.items():
                if d.get(k, _MISSING) is not v and note(f"{cls.__module__}.{cls.__qualname__}.{k} was replaced"):
                    return found
        C = self._torch_C
        if C is not None:
            if C._len_torch_function_stack() and note("a torch function mode was left active"):
                return found
            stack = getattr(C, "_len_torch_dispatch_stack", None)
            if stack is not None and stack() and note("a torch dispatch mode was left active"):
                return found
        return found


class _Capture(io.TextIOBase):
    """Collects what a cell writes, in order, as (stream name, text) chunks, up to OUTPUT_LIMIT characters."""

    def __init__(self, sink: list, name: str, budget: list) -> None:
        self.sink, self.name, self.budget = sink, name, budget

    def writable(self) -> bool:
        return True

    def write(self, text) -> int:
        text = str(text)
        left = self.budget[0]
        if left <= 0:
            return len(text)
        piece = text[:left]
        self.budget[0] -= len(piece)
        if len(piece) < len(text):
            piece += "\n[output cut: more than %d characters]\n" % OUTPUT_LIMIT
            self.budget[0] = 0
        if self.sink and self.sink[-1][0] == self.name:
            self.sink[-1][1] += piece
        else:
            self.sink.append([self.name, piece])
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def _last_redraw(text: str) -> str:
    """What a terminal would show: a progress bar redrawn with carriage returns keeps its last state."""
    lines = text.split("\n")
    return "\n".join(line.rstrip("\r").rsplit("\r", 1)[-1] for line in lines)


def _outputs(chunks: list) -> list[dict]:
    out = []
    for name, payload in chunks:
        if name == "display":
            out.append({"display": payload})
        else:
            out.append({"name": name, "text": _last_redraw(payload)})
    return out


def _display_bundle(data: dict) -> dict | None:
    """The part of a display's data worth bringing back: a PNG, a widget marker, its text."""
    if not isinstance(data, dict):
        return None
    bundle = {}
    png = data.get("image/png")
    if isinstance(png, bytes):
        import base64

        png = base64.b64encode(png).decode("ascii")
    if isinstance(png, str) and len(png) <= PNG_LIMIT:
        bundle["image/png"] = png
    if WIDGET_MIME in data:
        bundle[WIDGET_MIME] = True
    text = data.get("text/plain")
    if isinstance(text, str):
        bundle["text/plain"] = text[:2000]
    return bundle or None


class _Displays:
    """Where ``display()``, a figure shown inline and a cell's last value go: the current cell's chunks."""

    def __init__(self) -> None:
        self.sink: list | None = None
        self.count = 0
        self.mark: int | None = None

    def start(self, sink: list | None) -> None:
        self.sink, self.count, self.mark = sink, 0, None

    def add(self, data: dict) -> None:
        bundle = _display_bundle(data)
        if self.sink is None or bundle is None or self.count >= DISPLAYS_PER_CELL:
            return
        self.count += 1
        self.sink.append(["display", bundle])

    def clear(self) -> None:
        """``clear_output()``: what was shown since the previous clear goes (an animation keeps its last
        frame). Without a frontend there is no telling which output area a clear means (an interact's
        own, usually), so what the cell showed before its first clear stays."""
        if self.sink is None:
            return
        if self.mark is not None:
            del self.sink[self.mark:]
        self.mark = len(self.sink)


def _capture_displays(shell, displays: _Displays) -> None:
    """Route the shell's rich output to ``displays``: figures come back as PNG as in a notebook."""
    from IPython.core.displayhook import DisplayHook
    from IPython.core.displaypub import DisplayPublisher

    class Publisher(DisplayPublisher):
        def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kwargs):
            displays.add(data)

        def clear_output(self, wait=False):
            displays.clear()

    class Hook(DisplayHook):
        def write_output_prompt(self):
            pass

        def write_format_data(self, format_dict, md_dict=None):
            displays.add(format_dict)

        def finish_displayhook(self):
            pass

    try:
        shell.enable_matplotlib("inline")          # plt.show() and open figures are displayed as PNG, then closed
    except Exception:  # noqa: BLE001 - no matplotlib: nothing to draw
        pass
    shell.display_pub = Publisher(shell=shell, parent=shell)
    hook = Hook(shell=shell, cache_size=shell.cache_size, parent=shell)
    shell.displayhook = hook
    shell.display_trap.hook = hook


def _describe(exc: BaseException) -> dict:
    return {"ename": type(exc).__name__, "evalue": str(exc)}


def _learner_traceback(exc: BaseException) -> list[str]:
    """The learner's own traceback (their cells are theirs to see), without this module's frames."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return traceback.format_exception(type(exc), exc, tb)


def _end_strays() -> None:
    """End every process a cell left behind (in the sandbox's own pid namespace, where /proc lists only
    its processes): a cell's processes do not outlive it, so they cannot hold the process limit."""
    import signal

    me = os.getpid()
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return
    for pid in pids:
        if pid not in (1, me):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def _run(plan: dict, emit) -> None:
    token = plan["token"]
    sandboxed = bool(plan.get("sandboxed"))
    import importlib

    # the process started in an empty folder (nothing of the submission's on sys.path to shadow the modules
    # the checks use); it moves to the working folder after the snapshot, which goes last on sys.path
    here = {"", os.getcwd()}
    sys.path[:] = [p for p in sys.path if p not in here]
    workdir = plan.get("workdir") or os.getcwd()

    # The grading modules the tests use, and the libraries they compare with, are loaded before any
    # learner code, so that the snapshot holds the genuine objects.
    for name in [*BASE_PRELOAD, *plan.get("preload", [])]:
        try:
            mod = importlib.import_module(name)
            for oracle in getattr(mod, "ORACLES", ()):
                importlib.import_module(oracle)
        except Exception:  # noqa: BLE001 - a missing optional oracle: that check will say so itself
            pass
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.enabled = False                 # no history database, no history thread
    shell = InteractiveShell.instance(config=config)
    shell.showtraceback = lambda *a, **k: None          # errors are reported as data, below
    displays = _Displays()
    _capture_displays(shell, displays)
    user_ns = shell.user_ns
    real_builtins = builtins
    real_stdout, real_stderr = sys.stdout, sys.stderr
    guard = Guard()
    os.chdir(workdir)
    sys.path.append(workdir)
    emit({"event": "ready", "token": token})
    for i, cell in enumerate(plan["cells"]):
        emit({"event": "start", "cell": i, "token": token})
        chunks: list = []
        budget = [OUTPUT_LIMIT]
        out, err = _Capture(chunks, "stdout", budget), _Capture(chunks, "stderr", budget)
        error = None
        tampered: list[str] = []
        if cell.get("skip"):
            error = {"ename": "NotRun", "evalue": cell["skip"]}
        elif cell["kind"] == "test":
            tampered = guard.violations()
            if not tampered:
                sys.stdout, sys.stderr = out, err
                user_ns["__builtins__"] = real_builtins
                try:
                    code = compile(cell["source"], f"<test {cell.get('grade_id', i)}>", "exec")
                    exec(code, user_ns)                     # noqa: S102 - the instructor's test
                except BaseException as exc:  # noqa: BLE001 - SystemExit and KeyboardInterrupt fail a test too
                    error = _describe(exc)
                finally:
                    sys.setprofile(None)
                    sys.settrace(None)
                    sys.stdout, sys.stderr = real_stdout, real_stderr
                tampered = guard.violations()
        else:
            sys.stdout, sys.stderr = out, err
            displays.start(chunks)
            try:
                result = shell.run_cell(cell["source"], store_history=True)
                exc = result.error_in_exec or result.error_before_exec
                if exc is not None:
                    error = {**_describe(exc), "traceback": _learner_traceback(exc)}
            except BaseException as exc:  # noqa: BLE001 - SystemExit raised past IPython
                error = {**_describe(exc), "traceback": _learner_traceback(exc)}
            finally:
                sys.stdout, sys.stderr = real_stdout, real_stderr
                displays.start(None)
        if sandboxed:
            _end_strays()
        emit({"event": "end", "cell": i, "token": token, "outputs": _outputs(chunks), "error": error,
              "tampered": tampered})


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    fd = int(argv[0])
    workdir = argv[1] if len(argv) > 1 else None
    channel = os.fdopen(fd, "w", buffering=1, encoding="utf-8")
    os.set_inheritable(fd, False)
    plan = json.loads(sys.stdin.read())
    if workdir:
        plan["workdir"] = workdir
    # the plan (with the token and the tests) is not left readable on fd 0; input() in a cell gets EOF
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    sys.stdin = io.StringIO("")

    def emit(event: dict) -> None:
        channel.write(json.dumps(event) + "\n")
        channel.flush()

    start = time.monotonic()
    _run(plan, emit)
    emit({"event": "done", "token": plan["token"], "seconds": time.monotonic() - start})
    channel.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
