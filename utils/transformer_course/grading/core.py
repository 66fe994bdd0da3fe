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
from typing import Any, Callable, Iterable, Mapping

import numpy as np

__all__ = [
    "CheckFailed",
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
]


class CheckFailed(AssertionError):
    """A learner's answer is wrong; the message explains what and hints why."""


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
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        torch = None
    if x is None:
        fail(f"{what} is None.", "Did you forget to `return` it?")
    if torch is not None and isinstance(x, torch.Tensor):
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
    for entry in forbid:
        f, label = entry if isinstance(entry, tuple) else (entry, _qualname(entry))
        # a decorated function (@torch.no_grad(), functools.wraps) runs the decorator's wrapper, whose code
        # object every function with that decorator shares: recognise the function it wraps instead
        code = getattr(inspect.unwrap(f), "__code__", None) if callable(f) else None
        if code is not None:
            codes[id(code)] = label
        else:
            builtins[id(f)] = label
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
    own = {getattr(fn, "__code__", None), getattr(getattr(fn, "forward", None), "__code__", None),
           getattr(getattr(fn, "__call__", None), "__code__", None)}
    inner = code.co_name if code is not None else None
    if code is not None and code not in own and inner not in ("<module>", "forward", "__init__"):
        return (f"{name} is not finished: it calls {inner}, which still raises NotImplementedError. "
                f"Complete {inner} first.")
    return f"{name} is not implemented yet: replace `raise NotImplementedError()` with your code."


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
        fail(_not_implemented_message(name, fn, exc))
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
        fail(f"{name} changed the profiler (sys.setprofile) that the grader uses to watch what it calls, so "
             "this answer cannot be graded.", "Leave sys.setprofile and sys.settrace alone in your answers.")
    fail(f"{name} calls {hits[0]}, which computes the very thing this exercise asks you to write.",
         "Write the computation yourself with numpy/torch operations. The check compares your answer with a "
         "reference implementation, so an answer that calls one would test nothing (the package's versions are "
         "there to read after you have tried).")


HINT_NOT_TENSOR = "return a torch tensor, computed with torch operations on the inputs (stay on the autograd graph)."


def expect_tensor(out: Any, what: str, hint: str | None = HINT_NOT_TENSOR):
    """``out`` itself when it is a torch tensor; otherwise a failure saying what came back instead."""
    import torch

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
    import torch
    import torch.nn.functional as F

    try:
        device = next(model.parameters()).device
    except StopIteration:
        device = torch.device("cpu")
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
