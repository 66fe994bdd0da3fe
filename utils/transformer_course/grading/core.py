"""Building blocks for the checks that notebook test cells call.

Every check takes the *learner's* function or module, runs it on inputs the
check chooses (a worked example for the visible test, random inputs and edge
cases for the hidden ones), compares with the reference implementation in this
package, and raises :class:`CheckFailed` with a message that says what is wrong
and, where a known mistake explains it, why.

Checks never write to stderr: nbgrader scores any test cell with stderr output
zero, so an honest warning would cost a learner their points.
"""
from __future__ import annotations

import contextlib
import inspect
import io
import sys
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import torch

__all__ = [
    "CheckFailed",
    "AnswerFailed",
    "EarlierFailed",
    "fail",
    "as_numpy",
    "call",
    "expect",
    "expect_shape",
    "expect_finite",
    "expect_close",
    "matches",
    "diagnose",
    "passed",
    "rng",
    "model_loss",
    "expect_tensor",
    "quiet",
    "model_device",
    "describe",
    "gist",
    "forbidden",
    "FUSED_ATTENTION",
    "Earlier",
    "learner_global",
    "blame_earlier",
    "worked_example",
]


class CheckFailed(AssertionError):
    """A learner's answer is wrong; the message explains what and hints why."""


class EarlierFailed(CheckFailed):
    """The answer under check fails because an earlier answer it uses is wrong (see :func:`blame_earlier`)."""


class AnswerFailed(CheckFailed):
    """The answer under check fails by itself: it is still a stub, or it calls what the exercise asks for.
    An earlier exercise is never blamed for it (see :func:`blame_earlier`)."""


def fail(message: str, hint: str | None = None) -> None:
    """Raise :class:`CheckFailed` with ``message`` and an optional hint."""
    if hint:
        message = f"{message}\nHint: {hint}"
    raise CheckFailed(message)


def expect(condition: Any, message: str, hint: str | None = None) -> None:
    """Fail with ``message`` (and ``hint``) unless ``condition`` holds."""
    if not bool(condition):
        fail(message, hint)


def rng(seed: int | None = None) -> np.random.Generator:
    """A fresh numpy generator; hidden tests pass seeds the learner never sees."""
    return np.random.default_rng(seed)


def as_numpy(x: Any, what: str = "the result") -> np.ndarray:
    """Turn a learner's result (numpy array, torch tensor, list, scalar) into numpy."""
    if x is None:
        fail(f"{what} is None.", "Did you forget to `return` it?")
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", dtype=torch.float64 if x.is_floating_point() else x.dtype).numpy()
    try:
        return np.asarray(x)
    except Exception as exc:  # noqa: BLE001 - anything a learner returns
        fail(f"{what} could not be read as an array ({type(x).__name__}: {exc}).")
    raise AssertionError("unreachable")


def _qualname(f: Callable) -> str:
    return f"{getattr(f, '__module__', None) or '?'}.{getattr(f, '__qualname__', getattr(f, '__name__', repr(f)))}"


@contextlib.contextmanager
def _watch_calls(forbid: Iterable[Callable]):
    """Record calls into the functions in ``forbid`` while active (a list of their names).

    Python functions are recognised by the identity of their code object, so every
    alias a learner holds (``from transformer_course.attention import softmax``) is
    caught; built-in and C functions (``torch.nn.functional.scaled_dot_product_attention``)
    by their identity as the profiler reports them.
    """
    codes: dict[int, str] = {}
    builtins: dict[int, str] = {}
    methods: dict[str, list[tuple[type, str]]] = {}
    for entry in forbid:
        f, label = entry if isinstance(entry, tuple) else (entry, _qualname(entry))
        # a decorated function (@torch.no_grad(), functools.wraps) runs the decorator's wrapper, whose code
        # object every function with that decorator shares: recognise the function it wraps instead
        code = getattr(inspect.unwrap(f), "__code__", None) if callable(f) else None
        if code is not None:
            codes[id(code)] = label
        else:
            builtins[id(f)] = label
            owner = getattr(f, "__objclass__", None)
            if isinstance(owner, type):
                # a C method (torch.Tensor.softmax): the profiler reports each call on a fresh bound method
                # (x.softmax), never the descriptor itself, so recognise it by its name and owner class
                methods.setdefault(f.__name__, []).append((owner, label))
    hits: list[str] = []
    if not codes and not builtins:
        yield hits
        return

    def hook(frame, event, arg):  # noqa: ANN001 - the profiler protocol
        if event == "call":
            name = codes.get(id(frame.f_code))
            if name is not None:
                hits.append(name)
        elif event == "c_call" and builtins:
            name = builtins.get(id(arg))
            if name is None and methods:
                owner = getattr(arg, "__self__", None)
                name = next((label for cls, label in methods.get(getattr(arg, "__name__", ""), ())
                             if isinstance(owner, cls)), None)
            if name is not None:
                hits.append(name)

    previous = sys.getprofile()
    sys.setprofile(hook)
    try:
        yield hits
    finally:
        switched_off = sys.getprofile() is not hook
        sys.setprofile(previous)
        if switched_off:
            # the learner's code removed or replaced the watch: what it called can no longer be known
            hits.append(SWITCHED_OFF)


def _not_implemented_message(name: str, fn: Callable, exc: BaseException) -> str:
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    code = tb.tb_frame.f_code if tb is not None else None
    bare = inspect.unwrap(fn) if callable(fn) else fn          # through @torch.no_grad() and other decorators
    own = {getattr(f, "__code__", None) for f in (fn, bare)}
    own |= {getattr(getattr(fn, "forward", None), "__code__", None), getattr(getattr(fn, "__call__", None), "__code__", None)}
    inner = code.co_name if code is not None else None
    if code is not None and code not in own and inner not in ("<module>", "forward", "__init__"):
        return (f"{name} is not finished: it calls {inner}, which still raises NotImplementedError. "
                f"Complete {inner} first.")
    return f"{name} is not implemented yet: {_STUB_ADVICE}"


_STUB_ADVICE = "replace `raise NotImplementedError()` with your code."


def call(fn: Callable, *args: Any, what: str | None = None, forbid: Iterable[Any] = (),
         explain: Callable[[Exception], str | None] | None = None, label_errors: bool = True,
         **kwargs: Any) -> Any:
    """Call the learner's ``fn`` and turn 'not done yet' into a clear failure.

    Output the learner's code prints, and its warnings, are captured and dropped so
    that nothing lands on stderr.  ``forbid`` lists the functions that *are* the
    exercise (the package's reference, torch's fused attention), each a callable or a
    ``(callable, name to show)`` pair: a learner's
    function that calls one of them fails, since comparing the reference with itself
    would test nothing.  Any exception other than ``NotImplementedError``
    propagates unchanged, with its own traceback.
    """
    name = what or getattr(fn, "__name__", "your function")
    if not callable(fn):
        fail(f"{name} is not a function (got {type(fn).__name__}).")
    out, err = io.StringIO(), io.StringIO()
    try:
        with _watch_calls(forbid) as hits:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings(record=True):
                warnings.simplefilter("always")
                result = fn(*args, **kwargs)
    except NotImplementedError as exc:
        message = _not_implemented_message(name, fn, exc)
        raise (AnswerFailed if message.endswith(_STUB_ADVICE) else CheckFailed)(message) from None
    except Exception as exc:  # noqa: BLE001 - anything the learner's code raises
        if hits:
            _forbidden(name, hits)
        if not label_errors or isinstance(exc, CheckFailed):
            raise
        hint = explain(exc) if explain is not None else None
        message = f"{name} raised {type(exc).__name__}: {exc}"
        raise CheckFailed(f"{message}\nHint: {hint}" if hint else message) from exc
    if hits:
        _forbidden(name, hits)
    return result


#: Recorded when the code under test switched the call watch off (``sys.setprofile``).
SWITCHED_OFF = "<sys.setprofile, switching off the grader's watch>"


def _forbidden(name: str, hits: list[str]) -> None:
    if SWITCHED_OFF in hits:
        message, hint = (f"{name} changed the profiler (sys.setprofile) that the grader uses to watch what it "
                         "calls, so this answer cannot be graded.",
                         "Leave sys.setprofile and sys.settrace alone in your answers.")
    else:
        message, hint = (f"{name} calls {hits[0]}, which computes the very thing this exercise asks you to write.",
                         "Write the computation yourself with numpy/torch operations. The check compares your "
                         "answer with a reference implementation, so an answer that calls one would test nothing "
                         "(the package's versions are there to read after you have tried).")
    raise AnswerFailed(f"{message}\nHint: {hint}")


HINT_NOT_TENSOR = "return a torch tensor, computed with torch operations on the inputs (stay on the autograd graph)."


def expect_tensor(out: Any, what: str, hint: str | None = HINT_NOT_TENSOR):
    """``out`` itself when it is a torch tensor; otherwise a failure saying what came back instead."""
    if out is None:
        fail(f"{what} returned None.", "Did you forget to `return` the result?")
    if not isinstance(out, torch.Tensor):
        fail(f"{what} returned {type(out).__name__}, not a torch tensor.", hint)
    return out


def expect_shape(actual: Any, shape: tuple[int, ...], what: str = "the result", hint: str | None = None) -> np.ndarray:
    """Fail unless ``actual`` has exactly ``shape``; returns it as numpy."""
    arr = as_numpy(actual, what)
    if tuple(arr.shape) != tuple(shape):
        fail(f"{what} has shape {tuple(arr.shape)}, expected {tuple(shape)}.", hint)
    return arr


def expect_finite(actual: Any, what: str = "the result", hint: str | None = None) -> np.ndarray:
    """Fail if ``actual`` holds NaN or infinity; returns it as numpy."""
    arr = as_numpy(actual, what)
    if arr.dtype.kind in "fc" and not np.all(np.isfinite(arr)):
        n_nan = int(np.isnan(arr).sum())
        n_inf = int(np.isinf(arr).sum())
        fail(f"{what} contains {n_nan} NaN and {n_inf} infinite values.", hint)
    return arr


def matches(actual: Any, expected: Any, atol: float = 1e-6, rtol: float = 1e-5) -> bool:
    """True when both have the same shape and agree within tolerance (NaN equals NaN)."""
    a, e = np.asarray(actual), np.asarray(expected)
    if a.shape != e.shape:
        return False
    with np.errstate(invalid="ignore"):
        return bool(np.allclose(a.astype(np.float64), e.astype(np.float64), atol=atol, rtol=rtol, equal_nan=True))


def diagnose(actual: Any, mistakes: Mapping[str, Any] | Iterable[tuple[str, Any]] | None, what: str,
             atol: float = 1e-6, rtol: float = 1e-5) -> None:
    """Fail with the hint of the first known mistake whose output ``actual`` reproduces.

    ``mistakes``: a mapping hint -> wrong output, or ordered ``(hint, wrong output)``
    pairs; a wrong output of ``None`` (a mistake that does not apply) is skipped.
    """
    pairs = mistakes.items() if isinstance(mistakes, Mapping) else (mistakes or ())
    for mistake_hint, wrong in pairs:
        if wrong is not None and matches(actual, wrong, atol=atol, rtol=rtol):
            fail(f"{what} does not match the reference.", mistake_hint)


def expect_close(
    actual: Any,
    expected: Any,
    what: str = "the result",
    atol: float = 1e-6,
    rtol: float = 1e-5,
    mistakes: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None,
    hint: str | None = None,
) -> np.ndarray:
    """Compare a learner's result with the reference and explain a mismatch.

    ``mistakes`` maps a hint to the output a known wrong implementation gives on
    the same input (a mapping, or ordered ``(hint, output)`` pairs when one hint
    covers several outputs); when the learner's output matches one of them, that
    hint is what the learner reads (see :func:`diagnose`).  Otherwise ``hint``
    (if any) is given.
    """
    arr = as_numpy(actual, what)
    exp = np.asarray(expected)
    if arr.shape != exp.shape:
        fail(f"{what} has shape {arr.shape}, expected {exp.shape}.", hint)
    if matches(arr, exp, atol=atol, rtol=rtol):
        return arr
    diagnose(arr, mistakes, what, atol=atol, rtol=rtol)
    a64, e64 = arr.astype(np.float64), exp.astype(np.float64)
    nan_where = np.isnan(a64) & ~np.isnan(e64)
    if nan_where.any():
        fail(f"{what} has NaN where the reference has numbers (first at index "
             f"{tuple(int(i) for i in np.argwhere(nan_where)[0])}).", hint)
    with np.errstate(invalid="ignore"):
        diff = np.abs(a64 - e64)
        # how far each entry is outside its tolerance: report the worst offender,
        # not the largest absolute difference (which may be within rtol of a big value)
        excess = diff - (atol + rtol * np.abs(e64))
    excess = np.where(np.isnan(excess), np.inf, excess)
    worst = np.unravel_index(int(np.argmax(excess)), excess.shape) if excess.ndim else ()
    fail(
        f"{what} does not match the reference: at index {tuple(int(i) for i in worst)} yours is "
        f"{_num(a64[worst])}, expected {_num(e64[worst])} (difference {_num(diff[worst])}; "
        f"tolerance atol={atol:g}, rtol={rtol:g}).",
        hint,
    )
    raise AssertionError("unreachable")


def _num(x: Any) -> str:
    """A number as a learner reads it: 0.959253, not np.float64(0.9592530129)."""
    return f"{float(x):.6g}"


def passed(what: str) -> None:
    """Tell the learner a check passed (stdout only)."""
    print(f"\u2713 {what}: all checks passed")


def model_loss(model: Any, inputs: Iterable[Any], labels: Any, what: str) -> float:
    """Mean cross-entropy of the learner's ``model`` on data the check chose, computed here.

    ``model(*inputs)`` runs (on the model's device, in eval mode, without gradients; its training mode is
    restored); its logits (the first output when it returns a tuple) are compared with ``labels`` by the
    check, labels of -100 ignored. Used to grade trained models by what they predict, not by a loss
    they report.
    """
    import torch.nn.functional as F

    device = model_device(model)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = call(model, *(x.to(device) for x in inputs), what=what)
            logits = out[0] if isinstance(out, (tuple, list)) else out
            if not isinstance(logits, torch.Tensor):
                fail(f"{what} returned {type(logits).__name__}, not a tensor of logits.")
            return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]).cpu(), labels.reshape(-1)).item()
    finally:
        model.train(was_training)


# ------------------------------------------------------------ shared plumbing ---
# One way to do each thing that several check modules need: quieting a nested check, finding a model's
# device, listing the calls an answer may not make, and blaming an earlier exercise.

def quiet(fn: Callable, *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` with its printing (a nested check's ✓ line, a library's notice) and warnings
    kept off the learner's output; returns its result."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def model_device(model: Any) -> torch.device:
    """The device of ``model``'s first parameter; the CPU for a model without parameters (or not a module)."""
    try:
        return next(model.parameters()).device
    except (AttributeError, StopIteration, TypeError):
        return torch.device("cpu")


def describe(x: Any, precision: int = 4) -> str:
    """An array as a learner reads it in a message: rounded, small values shown as 0."""
    return np.array2string(as_numpy(x), precision=precision, suppress_small=True, separator=", ")


def gist(exc: BaseException) -> str:
    """The first line of a failure and its hint line, without the arrays in between."""
    lines = str(exc).split("\n") if str(exc) else [type(exc).__name__]
    hint = next((line for line in lines[1:] if line.startswith("Hint: ")), None)
    return lines[0] if hint is None else f"{lines[0]}\n{hint}"


# --- forbidden calls: what *is* the exercise -------------------------------------------------------

def forbidden(module: Any, *names: str, methods: tuple[str, ...] = ("forward",),
              optional: bool = False) -> list[tuple[Any, str]]:
    """Entries for :func:`call`'s ``forbid``: ``module.name`` for each name, labelled by its full name.

    A function (Python or built-in) is forbidden itself; a class through ``methods`` (its ``forward`` by
    default; add ``"__init__"`` where building one is the giveaway). A name the module lacks is an error (a
    typo would forbid nothing), unless ``optional``: a list of what only some versions of a library have.
    """
    out: list[tuple[Any, str]] = []
    label_root = getattr(module, "__name__", str(module))
    for name in names:
        obj = getattr(module, name, None)
        if obj is None:
            if optional:
                continue
            raise AttributeError(f"forbidden(): {label_root} has no {name!r}")
        label = f"{label_root}.{name}"
        if isinstance(obj, type):
            out += [(getattr(obj, m), label) for m in methods if m in vars(obj) or hasattr(obj, m)]
        else:
            out.append((obj, label))
    return out


def _fused_attention() -> list[tuple[Any, str]]:
    import torch.nn.functional as F

    found = forbidden(F, "scaled_dot_product_attention", "multi_head_attention_forward")
    found += forbidden(torch, "_scaled_dot_product_attention_math", optional=True)
    for name in ("scaled_dot_product_attention", "_scaled_dot_product_attention_math",
                 "_scaled_dot_product_flash_attention", "_scaled_dot_product_flash_attention_for_cpu",
                 "_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention",
                 "_flash_attention_forward", "_efficient_attention_forward"):
        packet = getattr(torch.ops.aten, name, None)
        for op in (packet, getattr(packet, "default", None)):
            inner = getattr(op, "_op", None)
            if inner is not None:
                found.append((inner, f"torch.ops.aten.{name}"))
    found += forbidden(torch.nn, "MultiheadAttention")
    return found


#: torch's attention under every name an answer might reach it by (the functional API, the ATen operators
#: behind it and their fused kernels, ``nn.MultiheadAttention``): forbidden wherever attention *is* the
#: exercise (notebooks 02, 03, 07, 10).
FUSED_ATTENTION: list[tuple[Any, str]] = _fused_attention()


# --- blaming an earlier exercise --------------------------------------------------------------------

@dataclass(frozen=True)
class Earlier:
    """An earlier exercise that a later answer builds on.

    ``name``: what the learner called it (``"softmax"``); ``exercise``: where it was asked (``"exercise 1"``);
    ``check``: a check that takes the learner's object and raises :class:`CheckFailed` when it is wrong (a
    visible ``*_example`` check is usually enough); ``obj``: the learner's object, when it is not a global
    of the notebook by that name (a submodule of the learner's block, say).
    """

    name: str
    exercise: str
    check: Callable[[Any], Any]
    obj: Any = None


def learner_global(fn: Any, name: str) -> Any:
    """What ``name`` means in the notebook that defined ``fn`` (a function, a class or a module instance)."""
    fn = inspect.unwrap(fn) if callable(fn) else fn     # @torch.no_grad() and other decorators
    for target in (fn, getattr(fn, "forward", None), getattr(fn, "__init__", None)):
        g = getattr(target, "__globals__", None)
        if isinstance(g, dict):
            return g.get(name)
    return None


def _code_names(fn: Any) -> set[str] | None:
    """Every global name ``fn``'s code (its methods', for a class or module; nested functions' too) mentions,
    or None when it has no Python code to read."""
    codes = []
    fn = inspect.unwrap(fn) if callable(fn) else fn
    if isinstance(fn, type) or not hasattr(fn, "__code__"):
        cls = fn if isinstance(fn, type) else type(fn)
        # the learner's classes along the MRO (a forward inherited from their own base class counts)
        for klass in cls.__mro__:
            if (klass.__module__ or "").split(".")[0] in ("builtins", "torch"):
                continue
            codes += [v.__code__ for v in vars(klass).values() if hasattr(v, "__code__")]
    if hasattr(fn, "__code__"):
        codes.append(fn.__code__)
    if not codes:
        return None
    names: set[str] = set()
    while codes:
        code = codes.pop()
        names.update(code.co_names)
        codes.extend(c for c in code.co_consts if hasattr(c, "co_names"))
    return names


def blame_message(earlier: Earlier, user: str, why: str, saw: str, then: str = "run this cell again") -> str:
    """The one message shape for "your earlier answer is the thing to fix" (docs/AUTHORING.md)."""
    return (f"your {earlier.name} from {earlier.exercise} fails its checks, and {user} uses it: fix "
            f"{earlier.name} first (run its test cell), then {then}.\n\n"
            f"What {earlier.name}'s check says: {why}\n\nWhat this check saw: {saw}")


@contextlib.contextmanager
def blame_earlier(fn: Any, user: str, *earlier: Earlier, then: str = "run this cell again"):
    """Run a check; when it fails and an earlier answer ``fn`` builds on fails its own check, say that instead.

    A later answer is judged on its own: only when its check fails are the earlier answers it uses (a global
    of the notebook that ``fn``'s code names, or an ``Earlier.obj``) checked, quietly, in order. An earlier
    answer that is the package's reference, or ``fn`` itself, is not blamed; nor is anything for an
    :class:`AnswerFailed` (``fn`` still a stub, or calling the reference: that is the news). ``then``: what
    to do after the fix, where running the cell again is not enough ("rebuild the model and run this cell
    again").
    """
    try:
        yield
    except AnswerFailed:
        raise
    except CheckFailed as exc:
        names = _code_names(fn)
        for e in earlier:
            dep = e.obj
            if dep is None:
                if names is not None and e.name not in names:
                    continue
                dep = learner_global(fn, e.name)
                if not callable(dep) or dep is fn:
                    continue
            owner = dep if isinstance(dep, type) or callable(dep) and hasattr(dep, "__code__") else type(dep)
            if (getattr(owner, "__module__", "") or "").startswith(("transformer_course.", "transformers.", "torch.")):
                continue                                  # the package's reference or a library's class
            try:
                quiet(e.check, dep)
            except CheckFailed as dep_exc:
                raise EarlierFailed(blame_message(e, user, gist(dep_exc), gist(exc), then)) from None
            except Exception as dep_exc:  # noqa: BLE001 - anything the learner's earlier code raises
                raise EarlierFailed(blame_message(e, user, f"it raised {type(dep_exc).__name__}: {dep_exc}",
                                                  gist(exc), then)) from None
        raise


@contextlib.contextmanager
def worked_example(explanation: str | Callable[[], str]):
    """Inside a visible check: a failure gets the worked example spelled out after it ("The worked example:
    ..."), so that the learner can work the small case by hand. Not for an unfinished or forbidden answer
    (:class:`AnswerFailed`) or one sent back to an earlier exercise (:class:`EarlierFailed`): those say what
    to do already. ``explanation`` may be a function, called only on failure."""
    try:
        yield
    except (AnswerFailed, EarlierFailed):
        raise
    except CheckFailed as exc:
        text = explanation() if callable(explanation) else explanation
        # keep what the learner's code raised, if anything: the notebook shows where in their code it was
        raise CheckFailed(f"{exc}\n\nThe worked example: {text}") from exc.__cause__


# --- how a failed check looks in a notebook ---------------------------------------------------------

_PACKAGE_DIR = str(__import__("pathlib").Path(__file__).resolve().parents[1])


def _learner_frames(exc: BaseException) -> list:
    """The frames of ``exc``'s traceback in the learner's own code: not the course's package, not a library,
    not the standard library."""
    import sysconfig
    import traceback

    library = (_PACKAGE_DIR, sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"],
               sysconfig.get_paths()["platlib"])
    return [f for f in traceback.extract_tb(exc.__traceback__)
            if not f.filename.startswith(library) and "site-packages" not in f.filename]


def _short_failure(shell, etype, value, tb, tb_offset=None) -> list[str]:
    """IPython's display of a failed check: its message and hint, not a traceback through the course's
    checks. Where the learner's own code raised (the check says "... raised ValueError"), the lines of the
    learner's code that the error went through follow, since that is where the bug is."""
    lines = [f"\x1b[0;31m{etype.__name__}\x1b[0m: {value}"]
    cause = value.__cause__
    if cause is not None and not isinstance(cause, CheckFailed):
        frames = _learner_frames(cause)
        if frames:
            cells = getattr(getattr(shell, "compile", None), "_filename_map", {})     # file -> execution count
            where = [f"  {'Cell In[%s]' % cells[f.filename] if f.filename in cells else f.filename}, line {f.lineno}, "
                     f"in {f.name}\n    {(f.line or '').strip()}" for f in frames]
            lines.append("\nWhere your code raised it:\n" + "\n".join(where))
    shell._showtraceback(etype, value, lines)
    return lines


def show_failures_briefly() -> None:
    """In an IPython kernel (JupyterLab, nbgrader's Validate), show a failed check as its message and hint
    only. Called when the grading package is imported; outside IPython it does nothing, and a learner's own
    exceptions keep their full tracebacks."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None or CheckFailed in getattr(shell, "custom_exceptions", ()):
        return
    shell.set_custom_exc((CheckFailed,), _short_failure)
