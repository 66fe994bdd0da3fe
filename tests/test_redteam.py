"""The red-team suite: attacks on the grader, each of which must earn no undeserved points.

Two levels:

- every notebook's first exercise, graded by the real harness in the real sandbox with a wrong
  answer and one attack at a time (numpy/torch comparisons replaced, the grading helpers
  replaced, sys.modules swapped, builtins replaced, a torch function mode, IPython transformers
  that rewrite later cells, reading the instructor's files); each attack is undone afterwards
  and the notebook ends with the honest answer, which must pass;
- the toy course end to end through ``transformer-course check --json``: crashes, hangs, memory,
  forged results, honest warnings, no network, a gradebook out of reach, hidden tests out of
  the feedback.

Attacks that would only fail anyway prove nothing: each assertion names the mechanism that
stopped the attack (the guard's report, the file that was not there, the check's own message).
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest

from notebook_tools import (ROOT, assignment_names, build_toy_course, need_system_package, solution_notebook,
                            toy_submission)

from transformer_course.grader import sandbox
from transformer_course.grader.nbgrading import grading_plan

CLI = [sys.executable, "-m", "transformer_course"]


def _need_sandbox() -> None:
    need_system_package("bubblewrap")
    ok, why = sandbox.sandbox_works()
    if not ok:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the red-team suite in the sandbox: {why}")
        pytest.skip(why)


# ------------------------------------------------------------ every notebook ---

#: Per notebook: the first answer cell, its test cell, and a wrong answer (a replacement in the solution).
FIRST_EXERCISE = {
    "01_rnn_limitations": ("rnn_forward", "rnn_forward_test",
                           "np.tanh(x[:, t] @ W_xh.T + h @ W_hh.T + b)", "np.tanh(x[:, t] @ W_xh.T + h @ W_hh.T)"),
    "02_attention": ("softmax", "softmax_test", "e = np.exp(x - m)", "e = np.exp(x - m) + 1e-3"),
    "03_multi_head_attention": ("split_heads", "split_heads_test",
                                "return x.reshape(B, T, n_heads, d_model // n_heads).swapaxes(1, 2)",
                                "return x.reshape(B, n_heads, T, d_model // n_heads)"),
    "04_positional_encoding": ("permutation_gap", "permutation_gap_test",
                               "return float((shuffled[:, inverse] - plain).abs().max())",
                               "return float((shuffled[:, inverse] - plain).abs().max()) + 0.5"),
    "05_transformer_blocks": ("layer_norm", "layer_norm_test", "torch.sqrt(var + eps)", "torch.sqrt(var + 1e-5)"),
    "06_bert": ("mlm_mask", "mlm_mask_test", "< p) & ~special", "< p)"),
    "07_gpt": ("causal_attention", "causal_attention_test", ".tril()", ".tril(-1)"),
    "08_scaling": ("gpt2_param_count", "gpt2_param_count_test", "return V * d + P * d + L * block + 2 * d",
                   "return 2 * V * d + P * d + L * block + 2 * d"),
    "09_clip": ("patchify", "patchify_test", ".permute(0, 2, 4, 1, 3, 5)", ".permute(0, 2, 4, 3, 5, 1)"),
    "10_efficient_attention": ("online_softmax", "online_softmax_test", "return torch.exp(x - m[..., None]) / l[..., None]",
                               "return torch.exp(x - m[..., None]) / l[..., None] + 1e-3"),
}

#: (name, attack code run after the wrong answer, code that undoes it, what must be reported)
ATTACKS = [
    ("comparisons always agree", """
        import numpy as _np, torch as _t
        _saved = (_np.allclose, _np.isclose, _np.array_equal, _np.testing.assert_allclose, _t.allclose, _t.equal,
                  _t.testing.assert_close)
        _np.allclose = lambda *a, **k: True
        _np.isclose = lambda a, b, *r, **k: _np.ones(_np.broadcast(a, b).shape, dtype=bool)
        _np.array_equal = lambda *a, **k: True
        _np.testing.assert_allclose = lambda *a, **k: None
        _t.allclose = lambda *a, **k: True
        _t.equal = lambda *a, **k: True
        _t.testing.assert_close = lambda *a, **k: None
        """, """
        (_np.allclose, _np.isclose, _np.array_equal, _np.testing.assert_allclose, _t.allclose, _t.equal,
         _t.testing.assert_close) = _saved
        """, "tampered:numpy.allclose was replaced"),
    ("grading helpers disarmed", """
        import transformer_course.grading.core as _core
        _saved = (_core.fail, _core.expect, _core.matches)
        _core.fail = lambda *a, **k: None
        _core.expect = lambda *a, **k: None
        _core.matches = lambda *a, **k: True
        """, """
        _core.fail, _core.expect, _core.matches = _saved
        """, "tampered:transformer_course.grading.core."),
    ("the check module swapped in sys.modules", """
        import sys as _sys, types as _types
        class _Anything:                                  # every check is a no-op that passes
            def __getattr__(self, name):
                return lambda *a, **k: None
        _fake = _types.ModuleType("fake")
        _fake.__getattr__ = lambda name: _Anything()
        _real = {k: v for k, v in _sys.modules.items() if k.startswith("transformer_course.grading")}
        for _k in _real:
            _sys.modules[_k] = _fake
        import transformer_course as _tc
        _real_grading = _tc.grading
        _tc.grading = _fake
        """, """
        _sys.modules.update(_real)
        _tc.grading = _real_grading
        """, "tampered:sys.modules"),
    ("builtins replaced", """
        import builtins as _b
        _saved = (_b.all, _b.abs, _b.max)
        _b.all = lambda *a: True
        _b.abs = lambda x: 0
        """, """
        _b.all, _b.abs, _b.max = _saved
        """, "tampered:builtins."),
    ("a torch function mode that says yes", """
        import torch as _t
        from torch.overrides import TorchFunctionMode as _Mode
        class _Yes(_Mode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                if func in (_t.allclose, _t.equal, _t.Tensor.all, _t.all):
                    return True
                return func(*args, **(kwargs or {}))
        _mode = _Yes()
        _mode.__enter__()
        """, """
        _mode.__exit__(None, None, None)
        """, "tampered:torch function mode"),
    ("IPython transformers that rewrite the tests", """
        import ast as _ast
        class _NoAsserts(_ast.NodeTransformer):
            def visit_Assert(self, node):
                return _ast.Pass()
            def visit_Expr(self, node):                      # check.xxx(...) calls become no-ops
                return _ast.Pass()
        _ip = get_ipython()
        _ip.ast_transformers.append(_NoAsserts())
        _ip.input_transformers_post.append(
            lambda lines: ["pass\\n"] if any("check." in l for l in lines) else lines)
        """, """
        _ = _ip.ast_transformers.clear()            # assignments: the transformer turns expressions into pass
        _ = _ip.input_transformers_post.pop()
        """, "failed"),
    ("reading the instructor's files", """
        import os as _os
        _found = [p for p in ("{root}/solutions/{name}/{name}.py", "{root}/solutions/{name}/{name}.ipynb",
                              "{root}/autograder/gradebook.db", "{root}/solutions", "{root}/README.md")
                  if _os.path.exists(p)]
        print("visible:", _found)
        """, "", "output:visible: []"),
]


def _plan_for(name: str) -> tuple[list[dict], int]:
    """The plan of ``name`` up to its first test: setup cells, then a slot for the answer, then the test."""
    answer_id, test_id, _, _ = FIRST_EXERCISE[name]
    nb = nbformat.read(os.fspath(solution_notebook(name)), as_version=4)
    cells, where, _ = grading_plan(nb)
    ids = [nb.cells[i].metadata.get("nbgrader", {}).get("grade_id") for i in where]
    a, t = ids.index(answer_id), ids.index(test_id)
    assert a < t, "the answer comes before its test"
    return cells[: t + 1], a


def test_the_table_covers_every_notebook():
    assert sorted(FIRST_EXERCISE) == assignment_names(), "add the new notebook's first exercise to FIRST_EXERCISE"


@pytest.mark.parametrize("name", sorted(FIRST_EXERCISE))
def test_attacks_on_the_first_exercise_earn_nothing(name):
    _need_sandbox()
    answer_id, test_id, old, new = FIRST_EXERCISE[name]
    cells, a = _plan_for(name)
    setup, answer, test = cells[:a], cells[a], cells[-1]
    assert test["kind"] == "test" and answer["kind"] == "code"
    assert old in answer["source"], f"{name}: the solution no longer contains {old!r}"
    wrong = answer["source"].replace(old, new)
    plan = list(setup)
    slots = {}
    for label, attack, undo, _ in ATTACKS:
        attack = textwrap.dedent(attack).replace("{root}", os.fspath(ROOT)).replace("{name}", name)
        plan.append({"kind": "code", "source": wrong + "\n\n" + attack})
        slots[label] = len(plan)
        plan.append(dict(test))
        plan.append({"kind": "code", "source": textwrap.dedent(undo) or "pass"})
    plan.append({"kind": "code", "source": wrong})          # the wrong answer alone fails on its merits
    plain_wrong = len(plan)
    plan.append(dict(test))
    plan.append(answer)                                      # and the honest answer, last, passes
    honest = len(plan)
    plan.append(dict(test))
    report = sandbox.run_cells(plan, preload=grading_plan(nbformat.read(
        os.fspath(solution_notebook(name)), as_version=4), name)[2], sandbox="bwrap")
    assert report.sandboxed and not report.problems, report.problems
    setup_errors = [(i, o.error) for i, o in enumerate(report.cells[:a]) if o.error]
    assert not setup_errors, f"{name}: setup cells failed: {setup_errors}"
    wrong_outcome = report.cells[plain_wrong]
    assert wrong_outcome.error is not None and not wrong_outcome.tampered, \
        f"{name}: the planted mistake alone must fail its test"
    for label, _, _, expected in ATTACKS:
        attack_cell, outcome = report.cells[slots[label] - 1], report.cells[slots[label]]
        assert attack_cell.error is None, f"{name}, {label}: the attack itself failed: {attack_cell.error}"
        kind, _, text = expected.partition(":")
        if kind == "tampered":
            assert any(text in t for t in outcome.tampered), \
                f"{name}, {label}: not reported as tampering ({outcome.tampered}, error {outcome.error})"
        elif kind == "output":
            printed = "".join(c["text"] for c in attack_cell.outputs)
            assert text in printed, f"{name}, {label}: the sandbox let the learner see {printed!r}"
            assert outcome.error is not None, f"{name}, {label}: the wrong answer passed"
        else:
            assert outcome.error is not None and not outcome.tampered, \
                f"{name}, {label}: the test did not run and fail as written ({outcome})"
            assert outcome.error["ename"] == "CheckFailed", outcome.error
    final = report.cells[honest]
    assert final.error is None and not final.tampered, f"{name}: the honest answer failed after the attacks: {final}"


def test_switching_off_the_call_watch_is_caught():
    """An answer that calls the reference with the profiler switched off is caught by the check itself."""
    _need_sandbox()
    cells, a = _plan_for("02_attention")
    sneaky = ("import sys\nfrom transformer_course import attention as _ref\n"
              "def softmax(x, axis=-1):\n    sys.setprofile(None)\n    return _ref.softmax(x, axis)\n")
    report = sandbox.run_cells(cells[:a] + [{"kind": "code", "source": sneaky}, cells[-1]],
                               preload=["transformer_course.grading", "transformer_course.grading.attention"])
    outcome = report.cells[-1]
    assert outcome.error is not None and "setprofile" in outcome.error["evalue"], outcome


def test_static_review_flags_code_that_reaches_into_the_grader():
    from transformer_course.grader.review import scan_cells

    flags = scan_cells([
        (1, "import numpy as np\nnp.allclose = lambda *a, **k: True"),
        (2, "import gc\nobjs = gc.get_objects()"),
        (3, "import sys\nf = sys._getframe(1).f_back"),
        (4, "get_ipython().ast_transformers.append(object())"),
        (5, "import os\nos._exit(0)"),
        (6, "import torch\ntorch.backends.cudnn.deterministic = True\nimport matplotlib.pyplot as plt\n"
            "plt.rcParams['figure.dpi'] = 100\n%matplotlib inline\nx = np.ones(3)\nx[0] = 2"),
    ])
    text = "\n".join(flags)
    for cell, word in ((1, "np.allclose"), (2, "gc"), (3, "_getframe"), (4, "ast_transformers"), (5, "_exit")):
        assert f"cell {cell}," in text and word in text, (cell, word, flags)
    assert not [f for f in flags if f.startswith("cell 6,")], f"honest code was flagged: {flags}"


# ---------------------------------------------------------- the toy course, end to end ---

@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    return build_toy_course(tmp_path_factory.mktemp("redteam-course"))


def check_toy(toy: Path, tmp_path: Path, double: str, square: str = "def square(x):\n    return x * x\n",
              env: dict | None = None, timeout: int = 300) -> dict:
    path = toy_submission(toy, tmp_path, double=double, square=square)
    proc = subprocess.run([*CLI, "check", os.fspath(path), "--json"], capture_output=True, text=True, cwd="/",
                          timeout=timeout, env={**os.environ, "TRANSFORMER_COURSE_ROOT": os.fspath(toy),
                                                "TRANSFORMER_COURSE_SANDBOX": "bwrap", **(env or {})})
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert proc.returncode in (0, 1) and len(lines) == 1, proc.stdout + proc.stderr[-2000:]
    result = json.loads(lines[0])
    result["by_id"] = {e["grade_id"]: e for e in result["exercises"]}
    return result


def _double_lost(result: dict, *words: str) -> None:
    ex = result["by_id"]["double_test"]
    assert ex["score"] == 0, f"double_test kept its points: {ex}"
    text = ex["message"] + " " + " ".join(result.get("errors", []))
    for w in words:
        assert w in text, f"{w!r} not explained in {text!r}"
    assert result["by_id"]["square_test"]["score"] == 3, "the exercise after the attack must still be graded"


def test_honest_prints_and_warnings_keep_their_marks(toy, tmp_path):
    _need_sandbox()
    honest = ("import sys, warnings\n"
              "print('working on it', file=sys.stderr)\n"
              "warnings.warn('an honest warning')\n"
              "def double(x):\n    warnings.warn('still thinking')\n    print('debug', x, file=sys.stderr)\n"
              "    return 2 * x\n")
    result = check_toy(toy, tmp_path, honest)
    assert result["score"] == result["max_score"] == 5, result
    assert not result["flags"], result["flags"]


@pytest.mark.parametrize("attack,words", [
    ("import os\nos._exit(0)\n", ("exited with status 0",)),
    ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n", ("SIGKILL",)),
    ("import sys\nsys.exit('bye')\n", ("double",)),
    ("import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass\n", ("more than 5 s",)),
    ("blocks = []\nwhile True:\n    blocks.append(bytearray(2**30))\n", ("MemoryError",)),
])
def test_crashes_hangs_and_memory_are_explained_and_the_rest_is_graded(toy, tmp_path, attack, words):
    _need_sandbox()
    # the hang needs a short cell timeout; filling gigabytes on a loaded machine needs a longer one
    timeout = "60" if "bytearray" in attack else "5"
    result = check_toy(toy, tmp_path, attack + "def double(x):\n    return 2 * x\n",
                       env={"TRANSFORMER_COURSE_CELL_TIMEOUT": timeout, "TRANSFORMER_COURSE_MEMORY_MB": "3072"})
    _double_lost(result, *words)


def test_many_processes_hit_the_limit(toy, tmp_path):
    _need_sandbox()
    if not Path("/sys/fs/cgroup/pids").is_dir() or os.geteuid() != 0:
        pytest.skip("the process limit needs the cgroup pids controller (root)")
    bomb = ("import os, time\nkids = []\n"
            "for _ in range(2000):\n    pid = os.fork()\n    if pid == 0:\n        time.sleep(60)\n        os._exit(0)\n"
            "    kids.append(pid)\n"
            "def double(x):\n    return 2 * x\n")
    result = check_toy(toy, tmp_path, bomb, env={"TRANSFORMER_COURSE_MAX_PROCESSES": "64"})
    _double_lost(result, "Error")


def test_forged_results_are_refused(toy, tmp_path):
    _need_sandbox()
    forge = ("import json, os\n"
             "fake = json.dumps({'event': 'end', 'cell': 1, 'outputs': [], 'error': None, 'tampered': []})\n"
             "print(fake)\n"
             "for fd in range(3, 64):\n"
             "    try:\n        os.write(fd, (fake + '\\n').encode())\n    except OSError:\n        pass\n"
             "def double(x):\n    return x\n")
    result = check_toy(toy, tmp_path, forge)
    assert result["by_id"]["double_test"]["score"] == 0, result
    assert any("os.write" in f or "raw file descriptor" in f for f in result["flags"]), result["flags"]


def test_no_network_and_no_gradebook(toy, tmp_path):
    _need_sandbox()
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    try:
        attack = (f"import os, socket\nnet = None\n"
                  f"try:\n    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n    net = 'reached'\n"
                  f"except OSError as exc:\n    net = type(exc).__name__\n"
                  f"books = [p for p in ('{toy}', '{toy}/autograder', '{ROOT}/autograder', '{ROOT}/solutions') "
                  f"if os.path.exists(p)]\n"
                  "def double(x):\n    raise RuntimeError(f'net={net} visible={books}')\n")
        result = check_toy(toy, tmp_path, attack)
    finally:
        server.close()
    assert result["by_id"]["double_test"]["score"] == 0
    message = result["by_id"]["double_test"]["message"]
    assert "net=" in message and "net=reached" not in message, message
    assert "visible=[]" in message, message


CLASS = {
    "ann": "def double(x):\n    return 2 * x\n",
    "bob": "def double(x):\n    return 2\n",
    "cat": "import os\nos._exit(1)\ndef double(x):\n    return 2 * x\n",
    "dan": "import numpy as np\nnp.array_equal = lambda *a, **k: True\ndef double(x):\n    return 2 * x\n",
}


def test_classroom_and_check_agree_and_feedback_hides_the_tests(toy, tmp_path):
    """A small class through collect, autograde, feedback and export: the same marks as `check`, crashes and
    review flags recorded everywhere, hidden test code nowhere."""
    _need_sandbox()
    from transformer_course.grader import classroom

    course = tmp_path / "course"
    shutil.copytree(toy, course, ignore=shutil.ignore_patterns("submitted", "autograded", "feedback", "gradebook.db",
                                                               "graded"))
    inbox = tmp_path / "inbox"
    for student, body in CLASS.items():
        toy_submission(course, inbox / student, double=body, square="def square(x):\n    return x * x\n")
    classroom.collect("99_toy", inbox, root=course)
    summary = classroom.autograde(["99_toy"], workers=2, root=course, sandbox="bwrap")
    graded = {r.student: r for r in summary.graded}
    assert {s: r.score for s, r in graded.items()} == {"ann": 5, "bob": 3, "cat": 3, "dan": 0}, summary.report()

    # the same marks and messages as a learner's own `check`
    for student, body in CLASS.items():
        mine = check_toy(toy, tmp_path / student, body)
        theirs = {e.grade_id: (e.score, e.message) for e in graded[student].exercises}
        assert {e["grade_id"]: (e["score"], e["message"]) for e in mine["exercises"]} == theirs, student

    pages = {p.parts[-3]: p.read_text() for p in classroom.feedback(["99_toy"], root=course)}
    for student, page in pages.items():
        assert "assert double(21) == 42" not in page and "BEGIN HIDDEN TESTS" not in page, \
            f"hidden test code leaked into {student}'s feedback"
    assert "should be 42" in pages["bob"], "the failure message must reach the learner"
    assert "Notes from grading" in pages["cat"] and "exited with status 1" in pages["cat"]
    assert "np.array_equal" in pages["dan"], "the review flag must be in the feedback"

    rows = {r["student_id"]: r for r in csv.DictReader(classroom.export(os.fspath(tmp_path / "g.csv"),
                                                                        root=course).open())}
    assert rows["ann"]["status"] == "ok" and rows["bob"]["status"] == "ok"
    assert rows["cat"]["status"].startswith("graded with problems:") and "exited" in rows["cat"]["status"]
    assert rows["dan"]["status"].startswith("flagged for review:") and "np.array_equal" in rows["dan"]["status"]


@pytest.mark.parametrize("name", assignment_names())
def test_the_course_itself_is_not_flagged(name):
    """The instructor's own cells and answers pass the static review: a flag on every submission would be noise."""
    from transformer_course.grader.review import scan_cells

    cells, _, _ = grading_plan(nbformat.read(os.fspath(solution_notebook(name)), as_version=4))
    flags = scan_cells([(i + 1, c["source"]) for i, c in enumerate(cells) if c["kind"] == "code"])
    assert not flags, f"{name}'s own code is flagged: {flags}"


def test_files_beside_the_notebook_are_there_but_cannot_shadow_modules(tmp_path):
    """An assignment's data files reach the working folder; a numpy.py among them does not replace numpy."""
    _need_sandbox()
    (tmp_path / "numpy.py").write_text("raise SystemExit('the fake numpy was imported')\n")
    (tmp_path / "data.txt").write_text("forty-two\n")
    (tmp_path / "helper.py").write_text("ANSWER = 42\n")
    report = sandbox.run_cells([
        {"kind": "code", "source": "import numpy, helper\nprint(numpy.__file__)\nprint(open('data.txt').read())\n"
                                   "print(helper.ANSWER)"},
        {"kind": "test", "source": "import numpy as np\nassert np.allclose(1, 1)"},
    ], files_from=tmp_path, sandbox="bwrap")
    code, test = report.cells
    printed = "".join(c["text"] for c in code.outputs)
    assert code.error is None, code.error
    assert "site-packages" in printed and "forty-two" in printed and "42" in printed, printed
    assert test.error is None and not test.tampered, test
