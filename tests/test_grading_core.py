"""The shared comparison helpers and the recall task generator."""
import numpy as np
import pytest
import torch

from transformer_course.data import RecallVocab, make_recall_batch
from transformer_course.grading import core
from transformer_course.grading.core import CheckFailed


def test_expect_close_names_the_known_mistake():
    expected = np.array([0.1, 0.9])
    with pytest.raises(CheckFailed, match="Hint: wrong axis"):
        core.expect_close(np.array([0.5, 0.5]), expected, "weights",
                          mistakes={"wrong axis": np.array([0.5, 0.5])})


def test_expect_close_reports_the_worst_difference_and_nan():
    with pytest.raises(CheckFailed, match=r"at index \(1,\) yours is 2.5, expected 2 \(difference 0.5"):
        core.expect_close([1.0, 2.5], [1.0, 2.0], "x")
    with pytest.raises(CheckFailed, match="NaN where the reference has numbers"):
        core.expect_close([np.nan, 1.0], [0.0, 1.0], "x")
    with pytest.raises(CheckFailed, match=r"shape \(2,\), expected \(3,\)"):
        core.expect_close([1.0, 2.0], [1.0, 2.0, 3.0], "x")
    assert core.expect_close(torch.tensor([1.0, 2.0]), [1.0, 2.0], "x").dtype == np.float64


def test_call_turns_not_implemented_into_a_message_and_keeps_stderr_clean(capsys):
    def stub(x):
        raise NotImplementedError()

    with pytest.raises(CheckFailed, match="not implemented yet"):
        core.call(stub, 1)

    def noisy(x):
        import sys
        import warnings
        print("debug", file=sys.stderr)
        warnings.warn("honest warning")
        return x + 1

    assert core.call(noisy, 1) == 2
    assert capsys.readouterr().err == ""


def test_as_numpy_rejects_none_with_a_hint():
    with pytest.raises(CheckFailed, match="forget to `return`"):
        core.as_numpy(None, "softmax(x)")


def test_recall_batch_layout():
    vocab = RecallVocab(n_symbols=5, n_noise=7)
    x, y = make_recall_batch(200, 9, vocab, np.random.default_rng(0))
    assert x.shape == (200, 10) and y.shape == (200,) and x.dtype == y.dtype == np.int64
    assert np.array_equal(x[:, 0], y) and np.all(x[:, -1] == vocab.query)
    assert np.all((x[:, 1:-1] >= 5) & (x[:, 1:-1] < 12))
    assert set(np.unique(y)) == set(range(5))
    x2, _ = make_recall_batch(200, 9, vocab, np.random.default_rng(0))
    assert np.array_equal(x, x2)
    with pytest.raises(ValueError):
        make_recall_batch(4, 0)


def test_call_names_an_unfinished_helper_and_forbids_the_reference():
    def helper():
        raise NotImplementedError()

    def learner(x):
        return helper() + x

    with pytest.raises(CheckFailed, match="it calls helper, which still raises NotImplementedError"):
        core.call(learner, 1)

    from transformer_course import data

    def lazy(batch_size, distance):
        return data.make_recall_batch(batch_size, distance)

    with pytest.raises(CheckFailed, match="calls transformer_course.data.make_recall_batch"):
        core.call(lazy, 2, 3, forbid=[data.make_recall_batch])
    x, y = core.call(lazy, 2, 3, forbid=[np.mean])  # other functions are fine to use
    assert x.shape == (2, 4)


def test_expect_close_points_at_the_entry_outside_its_tolerance():
    # entry 0 differs most in absolute terms but is within rtol of a large value
    expected = np.array([1000.0, 0.5])
    actual = np.array([1000.0005, 0.51])
    with pytest.raises(CheckFailed, match=r"at index \(1,\) yours is 0.51, expected 0.5"):
        core.expect_close(actual, expected, "x", atol=1e-6, rtol=1e-5)


def test_forbidding_a_decorated_reference_does_not_catch_other_decorated_functions():
    """@torch.no_grad() wrappers share one code object: the check must look at the wrapped function."""
    import torch

    from transformer_course.grading.core import call

    @torch.no_grad()
    def reference(x):
        return x + 1

    @torch.no_grad()
    def learners(x):
        return x + 1

    @torch.no_grad()
    def cheat(x):
        return reference(x)

    assert call(learners, 1, forbid=[reference]) == 2
    with pytest.raises(CheckFailed, match="computes the very thing"):
        call(cheat, 1, forbid=[reference])


# ------------------------------------------------------------ shared plumbing ---

def _notebook(source: str, **names) -> dict:
    """A learner's notebook namespace: ``source`` executed with ``names`` defined."""
    namespace = dict(names)
    exec(source, namespace)                               # noqa: S102 - test fixture
    return namespace


def _double_example(fn):
    core.expect(core.call(fn, 2, what="double") == 4, "double(2) should be 4", "return 2 * x")


def test_blame_earlier_names_the_earlier_answer_in_one_shape():
    ns = _notebook("def double(x):\n    return x + 1\n\ndef quadruple(x):\n    return double(double(x))\n")
    with pytest.raises(CheckFailed) as info:
        with core.blame_earlier(ns["quadruple"], "quadruple", core.Earlier("double", "exercise 1", _double_example)):
            core.fail("quadruple(1) is 3, expected 4.")
    message = str(info.value)
    assert message.startswith("your double from exercise 1 fails its checks, and quadruple uses it: fix double "
                              "first (run its test cell), then run this cell again.")
    assert "What double's check says: double(2) should be 4\nHint: return 2 * x" in message
    assert "What this check saw: quadruple(1) is 3, expected 4." in message


def test_blame_earlier_leaves_a_failure_alone_when_the_earlier_answer_is_right_or_unused():
    good = _notebook("def double(x):\n    return 2 * x\n\ndef quadruple(x):\n    return double(double(x)) + 1\n")
    unused = _notebook("def double(x):\n    return x + 1\n\ndef quadruple(x):\n    return 4 * x + 1\n")
    for ns in (good, unused):
        with pytest.raises(CheckFailed, match=r"^quadruple\(1\) is 5"):
            with core.blame_earlier(ns["quadruple"], "quadruple", core.Earlier("double", "exercise 1", _double_example)):
                core.fail("quadruple(1) is 5, expected 4.")


def test_blame_earlier_never_blames_for_a_stub_or_a_forbidden_call():
    ns = _notebook("def double(x):\n    return x + 1\n\ndef quadruple(x):\n    double(x)\n    raise NotImplementedError()\n")
    earlier = core.Earlier("double", "exercise 1", _double_example)
    with pytest.raises(core.AnswerFailed, match="quadruple is not implemented yet"):
        with core.blame_earlier(ns["quadruple"], "quadruple", earlier):
            core.call(ns["quadruple"], 1)

    def reference(x):
        return 4 * x

    cheat = _notebook("def quadruple(x):\n    double(x)\n    return reference(x)\n", reference=reference,
                      double=ns["double"])
    with pytest.raises(core.AnswerFailed, match="computes the very thing"):
        with core.blame_earlier(cheat["quadruple"], "quadruple", earlier):
            core.call(cheat["quadruple"], 1, forbid=[reference])


def test_blame_earlier_finds_the_earlier_answer_through_a_class_and_its_base():
    ns = _notebook(
        "import torch\n"
        "def double(x):\n    return x + 1\n"
        "class Base(torch.nn.Module):\n    def forward(self, x):\n        return double(double(x))\n"
        "class Quadruple(Base):\n    def __init__(self):\n        super().__init__()\n")
    with pytest.raises(CheckFailed, match="^your double from exercise 1 fails its checks, and Quadruple uses it"):
        with core.blame_earlier(ns["Quadruple"](), "Quadruple", core.Earlier("double", "exercise 1", _double_example)):
            core.fail("Quadruple()(1) is 3, expected 4.")


def test_blame_earlier_with_an_object_that_is_not_a_global():
    def check_norm(module):
        core.expect(module == "right", "the norm is wrong", "eps inside the square root")

    with pytest.raises(CheckFailed, match="^your LayerNorm \\(norm1\\) from exercise 1 fails its checks"):
        with core.blame_earlier(object(), "EncoderBlock", core.Earlier("LayerNorm (norm1)", "exercise 1", check_norm,
                                                                       obj="wrong")):
            core.fail("the block is off.")


def test_forbidden_lists_functions_classes_and_complains_about_typos():
    import torch.nn as nn
    import torch.nn.functional as F

    entries = core.forbidden(F, "layer_norm") + core.forbidden(nn, "LayerNorm", methods=("__init__", "forward"))
    assert entries == [(F.layer_norm, "torch.nn.functional.layer_norm"),
                       (nn.LayerNorm.__init__, "torch.nn.LayerNorm"), (nn.LayerNorm.forward, "torch.nn.LayerNorm")]
    with pytest.raises(AttributeError, match="no 'layer_nrom'"):
        core.forbidden(F, "layer_nrom")
    assert core.forbidden(F, "layer_nrom", optional=True) == []


@pytest.mark.parametrize("how", ["functional", "aten", "aten.default", "module"])
def test_every_fused_attention_entry_point_is_caught(how):
    import torch

    q = k = v = torch.randn(1, 2, 3, 4)

    def attention(q, k, v):
        if how == "functional":
            return torch.nn.functional.scaled_dot_product_attention(q, k, v)
        if how == "aten":
            return torch.ops.aten.scaled_dot_product_attention(q, k, v)
        if how == "aten.default":
            return torch.ops.aten.scaled_dot_product_attention.default(q, k, v)
        mha = torch.nn.MultiheadAttention(4, 1, batch_first=True)
        return mha(q[0], k[0], v[0])[0]

    with pytest.raises(core.AnswerFailed, match="computes the very thing"):
        core.call(attention, q, k, v, forbid=core.FUSED_ATTENTION)


def test_quiet_model_device_describe_gist():
    import torch

    assert core.quiet(lambda: (print("noise"), 3)[1]) == 3
    assert core.model_device(torch.nn.Linear(2, 2)) == torch.device("cpu")
    assert core.model_device(object()) == torch.device("cpu")
    assert core.describe(np.array([0.123456, 1e-9])) == "[0.1235, 0.    ]"
    assert core.gist(CheckFailed("first line\n[[1, 2]]\nHint: the hint")) == "first line\nHint: the hint"


def test_blame_earlier_looks_through_decorators():
    ns = _notebook("import torch\ndef double(x):\n    return x + 1\n\n"
                   "@torch.no_grad()\ndef quadruple(x):\n    return double(double(x))\n")
    with pytest.raises(CheckFailed, match="^your double from exercise 1 fails its checks, and quadruple uses it"):
        with core.blame_earlier(ns["quadruple"], "quadruple", core.Earlier("double", "exercise 1", _double_example)):
            core.fail("quadruple(1) is 3, expected 4.")


def test_blame_earlier_never_blames_a_reference_passed_as_obj():
    import torch.nn as nn

    def always_fails(obj):
        core.fail("wrong")

    with pytest.raises(CheckFailed, match="^the block is off"):
        with core.blame_earlier(object(), "Block", core.Earlier("LayerNorm", "exercise 1", always_fails,
                                                                obj=nn.LayerNorm(4))):
            core.fail("the block is off.")


def test_worked_example_is_spelled_out_after_a_wrong_answer_only():
    with pytest.raises(CheckFailed) as info:
        with core.worked_example(lambda: "double(2) = 2 + 2 = 4."):
            core.fail("double(2) is 5, expected 4.", "return 2 * x")
    assert str(info.value) == "double(2) is 5, expected 4.\nHint: return 2 * x\n\nThe worked example: double(2) = 2 + 2 = 4."
    with pytest.raises(core.AnswerFailed) as info:                # unfinished: nothing to work by hand yet
        with core.worked_example("double(2) = 4."):
            core.call(_notebook("def double(x):\n    raise NotImplementedError()\n")["double"], 2, what="double")
    assert "worked example" not in str(info.value)
    ns = _notebook("def double(x):\n    return x + 1\n\ndef quadruple(x):\n    return double(double(x))\n")
    with pytest.raises(core.EarlierFailed) as info:              # sent back to the earlier exercise
        with core.worked_example("quadruple(1) = 4."):
            with core.blame_earlier(ns["quadruple"], "quadruple", core.Earlier("double", "exercise 1", _double_example)):
                core.fail("quadruple(1) is 3, expected 4.")
    assert "worked example" not in str(info.value)


def test_a_failed_check_in_a_notebook_shows_its_message_not_the_course_internals():
    """In a Jupyter kernel (JupyterLab, nbgrader's Validate) a failed check is its message and hint; where the
    learner's own code raised, the learner's lines follow; the learner's other errors keep their tracebacks."""
    import re

    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in [
        "import torch\nfrom transformer_course.grading import efficient_attention as check\n"
        "def online_softmax(x, block_size):\n    return torch.exp(x - x.amax(-1, keepdim=True))\n"
        "check.online_softmax_example(online_softmax)",
        "def online_softmax(x, block_size):\n    return helper(x)\ndef helper(y):\n    return y[100000]\n"
        "check.online_softmax_example(online_softmax)",
        "1 / 0",
    ]]
    NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True).execute()
    errors = [[o for o in cell.outputs if o.output_type == "error"][0] for cell in nb.cells]
    text = ["\n".join(re.sub(r"\x1b\[[0-9;]*m", "", line) for line in e.traceback) for e in errors]
    assert errors[0].ename == "CheckFailed" and len(errors[0].traceback) == 1
    assert "Hint: the final division is missing" in text[0] and "core.py" not in text[0]
    assert "raised IndexError" in text[1] and "Where your code raised it" in text[1]
    assert re.search(r"Cell In\[2\], line 4, in helper\n    return y\[100000\]", text[1]), text[1]
    assert "grading" not in text[1].split("Where your code raised it")[1]
    assert errors[2].ename == "ZeroDivisionError" and "Traceback" in text[2]


def test_a_forbidden_tensor_method_is_caught_when_called_on_a_tensor():
    """The profiler reports ``x.softmax(-1)`` as a fresh bound method, never ``torch.Tensor.softmax`` itself."""
    import torch

    from transformer_course.grading import core

    forbid = core.forbidden(torch.Tensor, "softmax")
    with pytest.raises(core.AnswerFailed, match="calls Tensor.softmax"):
        core.call(lambda x: x.softmax(-1), torch.randn(3, 4), what="answer", forbid=forbid)
    # other methods of the same class, and the same name on another class, are not caught
    core.call(lambda x: x.exp().sum(-1), torch.randn(3, 4), what="answer", forbid=forbid)
    core.call(lambda s: s.capitalize(), "softmax", what="answer", forbid=forbid)
