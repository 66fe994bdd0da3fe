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
