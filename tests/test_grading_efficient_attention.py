"""Checks of notebook 10 (efficient attention): they pass model answers, reject untouched stubs and answers that
call what the exercise is, and each listed mistake (COURSE.md) fails its exercise with the hint that names it.

The model answers are the solution notebook's own answer cells; each mistake is planted into that source
(`planted`), so the tests follow the notebook.  The reference module is tested in test_kernels.py.
"""
from __future__ import annotations

import math
import os

import pytest
import torch
import torch.nn.functional as F

from transformer_course import kernels
from transformer_course.grading import efficient_attention as check

from check_tools import fails_with, seed_check_module
from notebook_tools import planted, solution_cells

NAME = "10_efficient_attention"
SEED = int(os.environ.get("EFFICIENT_CHECK_SEED", "0"))


@pytest.fixture(autouse=True)
def seeded(monkeypatch):
    seed_check_module(monkeypatch, check, SEED)


def answer(grade_id: str, source: str | None = None):
    """The function an answer cell defines (the solution's, or ``source``)."""
    namespace = {"torch": torch, "math": math, "F": F}
    exec(source if source is not None else solution_cells(NAME)[grade_id], namespace)
    return namespace[grade_id]


def mistake(grade_id: str, old: str, new: str, *more: str):
    """The solution's answer with ``old`` replaced by ``new`` (and each further (old, new) pair in ``more``)."""
    source = planted(NAME, grade_id, old, new)
    for a, b in zip(more[::2], more[1::2]):
        assert a in source, a
        source = source.replace(a, b)
    return answer(grade_id, source)


def stub(grade_id: str):
    def fn(*args, **kwargs):
        raise NotImplementedError()
    fn.__name__ = grade_id
    return fn


EXERCISES = ["online_softmax", "tiled_attention", "tiled_attention_backward"]


# ============================================================ model answers ===

@pytest.mark.parametrize("name", EXERCISES)
def test_model_answers_pass_visible_and_hidden(name, capsys):
    fn = answer(name)
    getattr(check, f"{name}_example")(fn)
    getattr(check, name)(fn)
    out = capsys.readouterr()
    assert out.out.count("all checks passed") == 2 and out.err == ""


@pytest.mark.parametrize("seed", range(1, 6))
def test_model_answers_pass_other_draws(seed, monkeypatch):
    seed_check_module(monkeypatch, check, seed)
    for name in EXERCISES:
        getattr(check, name)(answer(name))


def test_other_tile_sizes_than_asked_still_pass():
    """The tiles are the learner's business: any sizes give the same numbers."""
    def other_tiles(q, k, v, causal=False, block_q=16, block_k=16):
        return answer("tiled_attention")(q, k, v, causal=causal, block_q=block_k + 3, block_k=block_q)
    check.tiled_attention(other_tiles)


@pytest.mark.parametrize("name", EXERCISES)
def test_stubs_are_not_implemented(name):
    fails_with(getattr(check, f"{name}_example"), stub(name), hint="not implemented yet")
    fails_with(getattr(check, name), stub(name), hint="not implemented yet")


# ===================================================== 1. online softmax ===

SOFTMAX_UPDATE = "l = l * torch.exp(m - m_new) + torch.exp(block - m_new[..., None]).sum(dim=-1)"


@pytest.mark.parametrize("new,hint", [
    ("l = l + torch.exp(block - m_new[..., None]).sum(dim=-1)", "not rescaled"),
    ("l = l * torch.exp(m_new - m) + torch.exp(block - m_new[..., None]).sum(dim=-1)", "upside down"),
    ("l = torch.exp(block - m_new[..., None]).sum(dim=-1)", "last block's sum only"),
])
def test_online_softmax_rescaling_mistakes(new, hint):
    fn = mistake("online_softmax", SOFTMAX_UPDATE, new)
    fails_with(check.online_softmax_example, fn, hint=hint)
    fails_with(check.online_softmax, fn, hint=hint)


def test_online_softmax_final_division_forgotten():
    fn = mistake("online_softmax", "return torch.exp(x - m[..., None]) / l[..., None]", "return torch.exp(x - m[..., None])")
    fails_with(check.online_softmax_example, fn, hint="final division is missing")


def test_online_softmax_without_the_max_overflows():
    source = '''
def online_softmax(x, block_size):
    l = torch.zeros(x.shape[:-1], dtype=x.dtype)
    for start in range(0, x.shape[-1], block_size):
        l = l + torch.exp(x[..., start:start + block_size]).sum(dim=-1)
    return torch.exp(x) / l[..., None]
'''
    fails_with(check.online_softmax_example, answer("online_softmax", source), hint="overflows")
    fails_with(check.online_softmax, answer("online_softmax", source), hint="overflows")


def test_online_softmax_over_whole_rows_is_not_one_pass():
    source = '''
def online_softmax(x, block_size):
    m = x.amax(dim=-1, keepdim=True)
    e = torch.exp(x - m)
    return e / e.sum(dim=-1, keepdim=True)
'''
    fails_with(check.online_softmax_example, answer("online_softmax", source), hint="one pass over blocks")


def test_online_softmax_calling_softmax_is_forbidden():
    source = "def online_softmax(x, block_size):\n    return torch.softmax(x, dim=-1)\n"
    fails_with(check.online_softmax_example, answer("online_softmax", source), hint="computes the very thing")
    source = "def online_softmax(x, block_size):\n    return x.softmax(-1)\n"
    fails_with(check.online_softmax_example, answer("online_softmax", source), hint="computes the very thing")


# ===================================================== 2. tiled forward ===

@pytest.mark.parametrize("old,new,hint", [
    ("l = l * alpha + p.sum(dim=-1)\n            acc = acc * alpha[..., None] + p @ v[..., j0:j1, :]",
     "l = l + p.sum(dim=-1)\n            acc = acc + p @ v[..., j0:j1, :]", "rescale"),
    ("acc = acc * alpha[..., None] + p @ v[..., j0:j1, :]", "acc = acc + p @ v[..., j0:j1, :]", "rescale"),
    ("out[..., i0:i1, :] = acc / l[..., None]", "out[..., i0:i1, :] = acc", "final division is missing"),
    ("scale = 1 / math.sqrt(d)", "scale = 1", "scale is missing"),
])
def test_tiled_forward_mistakes(old, new, hint):
    fn = mistake("tiled_attention", old, new)
    fails_with(check.tiled_attention_example, fn, hint=hint)
    fails_with(check.tiled_attention, fn, hint=hint)


@pytest.mark.parametrize("old,new,hint", [
    # the mask in tile coordinates, on the straddling tiles (right only where a tile's corner is on the diagonal)
    ("future = torch.arange(j0, j1, device=q.device)[None, :] > torch.arange(i0, i1, device=q.device)[:, None]",
     "future = torch.arange(j1 - j0)[None, :] > torch.arange(i1 - i0)[:, None]", "tile coordinates"),
    # tiles on the diagonal not masked, only those above skipped
    ("if causal and j1 - 1 > i0:", "if False:", "straddle the diagonal"),
    # causal ignored altogether
    ("last_key = min(n_k, i1) if causal else n_k                            # causal: skip tiles above the diagonal\n",
     "last_key = n_k\n        causal = False\n", "unmasked answer"),
])
def test_tiled_forward_causal_mask_on_the_wrong_tiles(old, new, hint):
    fn = mistake("tiled_attention", old, new)
    fails_with(check.tiled_attention_example, fn, hint=hint)     # unequal tiles: the worked example shows it too
    fails_with(check.tiled_attention, fn, hint=hint)


def test_masking_every_tile_in_global_coordinates_is_right_just_slower():
    fn = mistake("tiled_attention", "if causal and j1 - 1 > i0:", "if causal:")
    check.tiled_attention_example(fn)
    check.tiled_attention(fn)


def test_the_same_triangle_in_every_tile_fails():
    fn = mistake("tiled_attention", "if causal and j1 - 1 > i0:", "if causal:",
                 "future = torch.arange(j0, j1, device=q.device)[None, :] > torch.arange(i0, i1, device=q.device)[:, None]",
                 "future = ~torch.ones(i1 - i0, j1 - j0, dtype=torch.bool).tril()")
    fails_with(check.tiled_attention_example, fn, hint="tile coordinates")
    fails_with(check.tiled_attention, fn, hint="tile coordinates")


@pytest.mark.parametrize("new,hint", [
    ("lse[..., i0:i1] = torch.log(l)", "forgets the maximum"),
    ("lse[..., i0:i1] = (m + torch.log(l)) / math.log(2)", "base 2"),
])
def test_tiled_forward_logsumexp_mistakes(new, hint):
    fn = mistake("tiled_attention", "lse[..., i0:i1] = m + torch.log(l)", new)
    fails_with(check.tiled_attention, fn, hint=hint)


def test_tiled_forward_logsumexp_of_the_last_block_only():
    fn = answer("tiled_attention", planted(NAME, "tiled_attention", "            m = m_new\n",
                                           "            m = m_new\n            last_m, last_l = m_new, p.sum(dim=-1)\n")
                .replace("lse[..., i0:i1] = m + torch.log(l)", "lse[..., i0:i1] = last_m + torch.log(last_l)"))
    fails_with(check.tiled_attention_example, fn, hint="last key tile only")
    fails_with(check.tiled_attention, fn, hint="last key tile only")


def test_tiled_forward_that_builds_the_score_matrix_fails_even_when_right():
    source = '''
def tiled_attention(q, k, v, causal=False, block_q=16, block_k=16):
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if causal:
        s = s.masked_fill(~torch.ones(s.shape[-2:], dtype=torch.bool).tril(), -math.inf)
    m = s.amax(dim=-1, keepdim=True)
    p = torch.exp(s - m)
    l = p.sum(dim=-1, keepdim=True)
    return (p / l) @ v, (m + torch.log(l))[..., 0]
'''
    fails_with(check.tiled_attention_example, answer("tiled_attention", source), hint="never holds the whole")
    # one head at a time does not hide it either
    per_head = '''
def tiled_attention(q, k, v, causal=False, block_q=16, block_k=16):
    outs, lses = [], []
    for b in range(q.shape[0]):
        for h in range(q.shape[1]):
            s = q[b, h] @ k[b, h].T / math.sqrt(q.shape[-1])
            if causal:
                s = s.masked_fill(~torch.ones(s.shape, dtype=torch.bool).tril(), -math.inf)
            outs.append(torch.softmax(s, -1) @ v[b, h])
            lses.append(torch.logsumexp(s, -1))
    B, H = q.shape[:2]
    return torch.stack(outs).reshape(B, H, q.shape[2], -1), torch.stack(lses).reshape(B, H, -1)
'''
    fails_with(check.tiled_attention, answer("tiled_attention", per_head), hint="never holds the whole")


def test_tiled_forward_calling_fused_attention_or_the_package_is_forbidden():
    source = '''
def tiled_attention(q, k, v, causal=False, block_q=16, block_k=16):
    out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    return out, torch.zeros(q.shape[:-1], dtype=q.dtype)
'''
    fails_with(check.tiled_attention_example, answer("tiled_attention", source), hint="computes the very thing")
    namespace = {"kernels": kernels}
    exec("def tiled_attention(q, k, v, causal=False, block_q=16, block_k=16):\n"
         "    return kernels.tiled_attention_forward(q, k, v, causal=causal, block_q=block_q, block_k=block_k)\n",
         namespace)
    fails_with(check.tiled_attention_example, namespace["tiled_attention"], hint="computes the very thing")


def test_tiled_forward_returning_only_the_output():
    fn = mistake("tiled_attention", "return out, lse", "return out")
    fails_with(check.tiled_attention_example, fn, hint="log-sum-exp per query")


# ================================================== 3. backward ===

@pytest.mark.parametrize("old,new,hint", [
    ("ds = p * (dp - D[..., i0:i1, None])", "ds = p * dp", "D = rowsum(dO * O) is missing"),
    ("D = (dout * out).sum(dim=-1)", "D = dout.sum(dim=-1)", "elementwise product"),
    ("dq[..., i0:i1, :] += ds @ kj * scale\n            dk[..., j0:j1, :] += ds.transpose(-2, -1) @ qi * scale",
     "dq[..., i0:i1, :] += ds @ kj\n            dk[..., j0:j1, :] += ds.transpose(-2, -1) @ qi", "carry that factor"),
    ("p = torch.exp(s - lse[..., i0:i1, None])", "p = torch.softmax(s, dim=-1)", "P = exp(S - lse)"),
])
def test_backward_mistakes(old, new, hint):
    fn = mistake("tiled_attention_backward", old, new)
    fails_with(check.tiled_attention_backward_example, fn, hint=hint)
    fails_with(check.tiled_attention_backward, fn, hint=hint)


def test_backward_without_the_causal_mask():
    fn = mistake("tiled_attention_backward", "if causal and j1 - 1 > i0:", "if False:")
    fails_with(check.tiled_attention_backward_example, fn, hint="need the causal mask too")
    fails_with(check.tiled_attention_backward, fn, hint="need the causal mask too")


def test_backward_mask_in_tile_coordinates():
    fn = mistake("tiled_attention_backward",
                 "future = torch.arange(j0, j1, device=q.device)[None, :] > torch.arange(i0, i1, device=q.device)[:, None]",
                 "future = torch.arange(j1 - j0)[None, :] > torch.arange(i1 - i0)[:, None]")
    fails_with(check.tiled_attention_backward_example, fn, hint="tile coordinates")
    fails_with(check.tiled_attention_backward, fn, hint="tile coordinates")


def test_backward_through_autograd_of_the_full_matrix_fails():
    source = '''
def tiled_attention_backward(q, k, v, out, lse, dout, causal=False, block_q=16, block_k=16):
    q, k, v = (t.detach().requires_grad_() for t in (q, k, v))
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if causal:
        s = s.masked_fill(~torch.ones(s.shape[-2:], dtype=torch.bool).tril(), -math.inf)
    (torch.softmax(s, dim=-1) @ v).backward(dout)
    return q.grad, k.grad, v.grad
'''
    fails_with(check.tiled_attention_backward, answer("tiled_attention_backward", source), hint="never holds the whole")


def test_backward_wrong_shapes_and_types():
    fn = mistake("tiled_attention_backward", "return dq, dk, dv", "return dq, dk")
    fails_with(check.tiled_attention_backward_example, fn, hint="")
    fn = mistake("tiled_attention_backward", "return dq, dk, dv", "return dq, dv, dk")
    fails_with(check.tiled_attention_backward, fn, hint="")
