"""Positional encoding (notebook 04): the grading checks pass the notebook's own solution
code and fail each planted mistake with the hint that names it."""
from __future__ import annotations

import math
import textwrap

import numpy as np
import pytest
import torch
import torch.nn as nn

from notebook_tools import ROOT
from transformer_course import positions as ref
from transformer_course.grading import positional_encoding as check
from check_tools import fails_with


def learner(source: str) -> dict:
    """Run answer-cell code the way a notebook does, in one namespace with the notebook's imports."""
    namespace = {"math": math, "np": np, "torch": torch, "nn": nn, "__name__": "__main__"}
    exec(compile(textwrap.dedent(source), "<learner cell>", "exec"), namespace)   # noqa: S102
    return namespace


def solution_source() -> str:
    """The answer cells of the notebook source, solution markers stripped."""
    import re
    text = (ROOT / "solutions" / "04_positional_encoding" / "04_positional_encoding.py").read_text()
    cells = re.split(r"^# %%.*$", text, flags=re.M)
    answers = [c for c in cells if "### BEGIN SOLUTION" in c]
    return "\n".join(a.replace("### BEGIN SOLUTION", "").replace("### END SOLUTION", "") for a in answers)


@pytest.fixture(scope="module")
def solution():
    return learner(solution_source())


NAMES = {
    "permutation_gap": "permutation_gap",
    "sinusoidal_table": "sinusoidal_table",
    "learned_positions": "LearnedPositions",
    "rotate_half": "rotate_half",
    "rope_cos_sin": "rope_cos_sin",
    "apply_rope": "apply_rope",
    "interleaved_to_halves": "interleaved_to_halves",
}


def test_checks_pass_on_the_solution(solution, capsys):
    for exercise, name in NAMES.items():
        getattr(check, f"{exercise}_example")(solution[name])
        getattr(check, exercise)(solution[name])
    out = capsys.readouterr()
    assert out.err == ""
    assert out.out.count("all checks passed") == 2 * len(NAMES)


def test_checks_return_none_and_print_no_stderr(solution, capsys):
    assert check.sinusoidal_table(solution["sinusoidal_table"]) is None
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("exercise,name", NAMES.items())
def test_unfinished_answers_say_so(exercise, name):
    stub = learner(f"""
        def {name}(*args, **kwargs):
            raise NotImplementedError()
    """) if name != "LearnedPositions" else learner("""
        class LearnedPositions(nn.Module):
            def __init__(self, max_positions, d_model):
                super().__init__()
                raise NotImplementedError()
    """)
    fails_with(getattr(check, f"{exercise}_example"), stub[name], hint="not implemented")
    fails_with(getattr(check, exercise), stub[name], hint="not implemented")


@pytest.mark.parametrize("exercise,reference", [
    ("sinusoidal_table", ref.sinusoidal_table), ("rotate_half", ref.rotate_half),
    ("interleaved_to_halves", ref.interleaved_to_halves),
])
def test_calling_the_reference_fails(exercise, reference):
    message = fails_with(getattr(check, exercise), lambda *a, **k: reference(*a, **k),
                         hint=f"calls transformer_course.positions.{exercise}, ")
    assert "reference implementation" in message


def test_subclassing_the_reference_table_fails():
    message = fails_with(check.learned_positions, ref.LearnedPositions,
                         hint="calls transformer_course.positions.LearnedPositions, ")
    assert "reference implementation" in message


def test_calling_the_reference_forward_fails():
    """LearnedPositions is forbidden through its forward too, not only by being built."""
    source = """
        class LearnedPositions(nn.Module):
            def __init__(self, max_positions, d_model):
                super().__init__()
                self.embedding = nn.Embedding(max_positions, d_model)

            def forward(self, x, offset=0):
                return REF.forward(self, x, offset=offset)
    """
    namespace = learner(f"REF = None\n{textwrap.dedent(source)}")
    namespace["REF"] = ref.LearnedPositions
    fails_with(check.learned_positions_example, namespace["LearnedPositions"],
               hint="calls transformer_course.positions.LearnedPositions, ")


# ============================================================ 1. permutation gap ===

GAP = {
    "no_undo": ("""
        def permutation_gap(layer, x, perm):
            with torch.no_grad():
                return float((layer(x[:, perm]) - layer(x)).abs().max())
    """, "without undoing the permutation"),
    "perm_twice": ("""
        def permutation_gap(layer, x, perm):
            with torch.no_grad():
                return float((layer(x[:, perm])[:, perm] - layer(x)).abs().max())
    """, "torch.argsort(perm)"),
    "mean": ("""
        def permutation_gap(layer, x, perm):
            with torch.no_grad():
                return float((layer(x[:, perm])[:, torch.argsort(perm)] - layer(x)).abs().mean())
    """, "LARGEST"),
    "no_abs": ("""
        def permutation_gap(layer, x, perm):
            with torch.no_grad():
                return float((layer(x) - layer(x[:, perm])[:, torch.argsort(perm)]).max())
    """, "absolute value"),
    "batch_axis": ("""
        def permutation_gap(layer, x, perm):
            with torch.no_grad():
                return float((layer(x[perm])[torch.argsort(perm)] - layer(x)).abs().max())
    """, "axis 1"),
}


@pytest.mark.parametrize("kind", GAP)
def test_permutation_gap_mistakes(kind):
    source, hint = GAP[kind]
    fn = learner(source)["permutation_gap"]
    fails_with(check.permutation_gap_example, fn, hint=hint)
    fails_with(check.permutation_gap, fn, hint=hint)


def test_permutation_gap_no_abs_caught_whatever_the_sign():
    """max(diff) without abs must fail on every run: the hidden check also negates a layer."""
    source, hint = GAP["no_abs"]
    fn = learner(source)["permutation_gap"]
    flipped = learner(source.replace("(layer(x) - layer(x[:, perm])[:, torch.argsort(perm)])",
                                     "(layer(x[:, perm])[:, torch.argsort(perm)] - layer(x))"))["permutation_gap"]
    for _ in range(5):
        fails_with(check.permutation_gap, fn, hint=hint)
        fails_with(check.permutation_gap, flipped, hint=hint)


BATCH0 = {
    # diff[0]: only the first sequence of the batch
    "diff_first": """
        def permutation_gap(layer, x, perm):
            with torch.no_grad():
                return float((layer(x[:, perm])[:, perm.argsort()] - layer(x))[0].abs().max())
    """,
    # layer(x)[0] as if it unpacked MultiHeadAttention's (out, weights): on a tensor it is batch 0
    "tuple_unpack": """
        def permutation_gap(layer, x, perm):
            with torch.no_grad():
                a = layer(x)[0]
                b = layer(x[:, perm])[0]
            return float((b[torch.argsort(perm)] - a).abs().max())
    """,
}


@pytest.mark.parametrize("kind", BATCH0)
def test_permutation_gap_first_sequence_only_never_passes(kind):
    """Review 04, finding 1: batch 0 only passed the hidden check about 1 run in 5."""
    fn = learner(BATCH0[kind])["permutation_gap"]
    for _ in range(30):
        fails_with(check.permutation_gap, fn, hint="only the first sequence of the batch")
    fails_with(check.permutation_gap_example, fn, hint="only the first sequence of the batch")


def test_permutation_gap_perm_twice_always_named():
    """Review 04, finding 5: perm applied twice got the 'no undo' hint when the largest gap sat in a
    3-cycle of perm; the hidden check now permutes along one cycle through all positions."""
    fn = learner(GAP["perm_twice"][0])["permutation_gap"]
    for _ in range(30):
        message = fails_with(check.permutation_gap, fn, hint=check.HINT_GAP_PERM_TWICE)
        assert check.HINT_GAP_NO_UNDO not in message


def test_permutation_gap_hidden_perm_is_one_cycle():
    gen = np.random.default_rng(0)
    for T in range(5, 10):
        for _ in range(20):
            perm = check._one_cycle(gen, T).numpy()
            seen, i = set(), 0
            while i not in seen:
                seen.add(i)
                i = perm[i]
            assert len(seen) == T


# ============================================================ 2. sinusoidal table ===

SIN_BODY = """
    def sinusoidal_table(n_positions, d_model, base=10000.0):
        p = np.arange(n_positions, dtype=np.float64)[:, None]
        {freq}
        angles = p * omega
        table = np.zeros((n_positions, d_model))
        {fill}
        return table
"""
OK_FREQ = "omega = base ** (-np.arange(0, d_model, 2) / d_model)"
OK_FILL = "table[:, 0::2] = np.sin(angles); table[:, 1::2] = np.cos(angles)"

SIN = {
    "doubled": (dict(freq="i = np.arange(0, d_model, 2); omega = base ** (-2 * i / d_model)"), "even index twice"),
    "doubled_positive": (dict(freq="i = np.arange(0, d_model, 2); omega = 1 / base ** (2 * i / d_model)"),
                         "even index twice"),
    "no_two": (dict(freq="omega = base ** (-np.arange(d_model // 2) / d_model)"), "twice as fast"),
    "sign": (dict(freq="omega = base ** (np.arange(0, d_model, 2) / d_model)"), "growing instead of shrinking"),
    "swapped": (dict(fill="table[:, 0::2] = np.cos(angles); table[:, 1::2] = np.sin(angles)"), "swapped"),
    "concat": (dict(fill="table = np.concatenate([np.sin(angles), np.cos(angles)], axis=1)"), "interleaved"),
    "base_hardcoded": (dict(freq="omega = 10000.0 ** (-np.arange(0, d_model, 2) / d_model)"), "ignores the `base`"),
    "base_e": (dict(freq="omega = np.exp(-np.arange(0, d_model, 2) / d_model)"), "base e"),
    "base_1000": (dict(freq="omega = (base / 10) ** (-np.arange(0, d_model, 2) / d_model)"), "different base"),
    "from_one": (dict(freq="p = p + 1; omega = base ** (-np.arange(0, d_model, 2) / d_model)"), "start at 0"),
}


@pytest.mark.parametrize("kind", SIN)
def test_sinusoidal_mistakes(kind):
    parts, hint = SIN[kind]
    fn = learner(SIN_BODY.format(freq=parts.get("freq", OK_FREQ), fill=parts.get("fill", OK_FILL)))["sinusoidal_table"]
    fails_with(check.sinusoidal_table, fn, hint=hint)
    if kind not in ("base_hardcoded", "base_1000"):                 # the example uses the default base
        fails_with(check.sinusoidal_table_example, fn, hint=hint)


def test_doubled_exponent_hint_names_the_common_bug():
    fn = learner(SIN_BODY.format(freq=SIN["doubled"][0]["freq"], fill=OK_FILL))["sinusoidal_table"]
    message = fails_with(check.sinusoidal_table_example, fn, hint="already IS the paper's 2i")
    assert "[sin p, cos p, sin 0.01p, cos 0.01p]" in message           # the worked example is shown


@pytest.mark.parametrize("loop", [
    """
    def sinusoidal_table(n_positions, d_model, base=10000.0):
        table = np.zeros((n_positions, d_model))
        omega = base ** (-np.arange(0, d_model, 2) / d_model)
        for p in range(n_positions):
            table[p, 0::2] = np.sin(p * omega)
            table[p, 1::2] = np.cos(p * omega)
        return table
    """,
    """
    def sinusoidal_table(n_positions, d_model, base=10000.0):
        omega = base ** (-np.arange(0, d_model, 2) / d_model)
        rows = [np.stack([np.sin(p * omega), np.cos(p * omega)], axis=1).reshape(-1) for p in range(n_positions)]
        return np.array(rows).reshape(n_positions, d_model)
    """,
])
def test_sinusoidal_loop_over_positions_fails(loop):
    fn = learner(loop)["sinusoidal_table"]
    check.sinusoidal_table_example(fn)                                  # right numbers ...
    fails_with(check.sinusoidal_table, fn, hint="without a Python loop")   # ... but a loop


def test_sinusoidal_loop_over_frequencies_is_fine():
    fn = learner("""
        def sinusoidal_table(n_positions, d_model, base=10000.0):
            p = np.arange(n_positions, dtype=np.float64)
            table = np.zeros((n_positions, d_model))
            for i in range(0, d_model, 2):
                table[:, i] = np.sin(p / base ** (i / d_model))
                table[:, i + 1] = np.cos(p / base ** (i / d_model))
            return table
    """)["sinusoidal_table"]
    check.sinusoidal_table(fn)


def test_sinusoidal_torch_and_float32():
    fine = learner("""
        def sinusoidal_table(n_positions, d_model, base=10000.0):
            p = torch.arange(n_positions, dtype=torch.float64)[:, None]
            a = p * base ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
            return torch.stack([a.sin(), a.cos()], dim=-1).reshape(n_positions, d_model)
    """)["sinusoidal_table"]
    check.sinusoidal_table(fine)
    low = learner(SIN_BODY.format(freq=OK_FREQ, fill=OK_FILL).replace("return table", "return table.astype(np.float32)"))
    check.sinusoidal_table(low["sinusoidal_table"])                      # float32 of the right table is close enough
    wrong_shape = learner(SIN_BODY.format(freq=OK_FREQ, fill=OK_FILL).replace("return table", "return table.T"))
    fails_with(check.sinusoidal_table, wrong_shape["sinusoidal_table"], hint="swapped")


def test_sinusoidal_torch_float32_gets_the_float32_hint():
    """Review 04, finding 4: a torch float32 table got the generic formula hint (as_numpy made it float64)."""
    fn = learner("""
        def sinusoidal_table(n_positions, d_model, base=10000.0):
            p = torch.arange(n_positions)[:, None].float()
            a = p * base ** (-torch.arange(0, d_model, 2).float() / d_model)
            table = torch.zeros(n_positions, d_model)
            table[:, 0::2] = a.sin()
            table[:, 1::2] = a.cos()
            return table
    """)["sinusoidal_table"]
    fails_with(check.sinusoidal_table, fn, hint="not to float64 precision")


# ============================================================ 3. learned positions ===

LP_OK_INIT = "self.max_positions = max_positions\n        self.table = nn.Embedding(max_positions, d_model)"
LP_OK_FORWARD = """T = x.shape[-2]
        if offset + T > self.max_positions:
            raise ValueError("too long")
        return x + self.table(torch.arange(offset, offset + T, device=x.device))"""
LP_BODY = """
class LearnedPositions(nn.Module):
    def __init__(self, max_positions, d_model):
        super().__init__()
        {init}

    def forward(self, x, offset=0):
        {forward}
"""

LP = {
    "buffer": (dict(init="self.max_positions = max_positions\n        self.register_buffer('w', torch.randn(max_positions, d_model))",
                    forward="T = x.shape[-2]\n        if offset + T > self.max_positions: raise ValueError('x')\n"
                            "        return x + self.w[offset:offset + T]"), "buffer"),
    "plain_tensor": (dict(init="self.max_positions = max_positions\n        self.w = torch.randn(max_positions, d_model)",
                          forward="T = x.shape[-2]\n        if offset + T > self.max_positions: raise ValueError('x')\n"
                                  "        return x + self.w[offset:offset + T]"), "plain tensor"),
    "frozen": (dict(init=LP_OK_INIT + "\n        self.table.weight.requires_grad_(False)"), "does not require grad"),
    "offset_ignored": (dict(forward="T = x.shape[-2]\n        if offset + T > self.max_positions: raise ValueError('x')\n"
                                    "        return x + self.table(torch.arange(T))"), "offset is ignored"),
    "no_x": (dict(forward="T = x.shape[-2]\n        if offset + T > self.max_positions: raise ValueError('x')\n"
                          "        return self.table(torch.arange(offset, offset + T)).expand_as(x)"), "add them to x"),
    "no_value_error": (dict(forward="T = x.shape[-2]\n        return x + self.table(torch.arange(offset, offset + T))"),
                       "raise ValueError"),
    "off_by_one": (dict(forward="T = x.shape[-2]\n        if offset + T >= self.max_positions: raise ValueError('x')\n"
                                "        return x + self.table(torch.arange(offset, offset + T))"), "off"),
    "batch_as_T": (dict(forward="T = x.shape[0]\n        if offset + T > self.max_positions: raise ValueError('x')\n"
                                "        return x + self.table(torch.arange(offset, offset + T))"), "x.shape[-2]"),
    # review 04, finding 5: T = x.shape[0] made to broadcast, one row per sequence (no error)
    "batch_as_T_broadcast": (dict(forward="T = x.shape[0]\n        if offset + T > self.max_positions: raise ValueError('x')\n"
                                          "        return x + self.table(torch.arange(offset, offset + T))[:, None]"),
                             "x.shape[-2]"),
}


@pytest.mark.parametrize("kind", LP)
def test_learned_positions_mistakes(kind):
    parts, hint = LP[kind]
    cls = learner(LP_BODY.format(init=parts.get("init", LP_OK_INIT),
                                 forward=parts.get("forward", LP_OK_FORWARD)))["LearnedPositions"]
    fails_with(check.learned_positions, cls, hint=hint)
    fails_with(check.learned_positions_example, cls, hint=hint)    # offset=3 fills the example's table exactly


def test_learned_positions_parameter_instead_of_embedding_is_fine():
    cls = learner(LP_BODY.format(
        init="self.n = max_positions\n        self.w = nn.Parameter(torch.randn(max_positions, d_model) * 0.02)",
        forward="T = x.shape[1]\n        if offset + T > self.n: raise ValueError('x')\n"
                "        return x + self.w[offset:offset + T]"))["LearnedPositions"]
    check.learned_positions_example(cls)
    check.learned_positions(cls)


# ============================================================ 4. rotate_half ===

ROT = {
    "interleaved": ("""
        def rotate_half(x):
            out = torch.empty_like(x)
            out[..., 0::2] = -x[..., 1::2]
            out[..., 1::2] = x[..., 0::2]
            return out
    """, "INTERLEAVED"),
    "sign": ("""
        def rotate_half(x):
            x1, x2 = x.chunk(2, dim=-1)
            return torch.cat([x2, -x1], dim=-1)
    """, "signs are the wrong way round"),
    "no_neg": ("""
        def rotate_half(x):
            x1, x2 = x.chunk(2, dim=-1)
            return torch.cat([x2, x1], dim=-1)
    """, "must be negated"),
    "chunk_dim0": ("""
        def rotate_half(x):
            x1, x2 = x.chunk(2)
            return torch.cat([-x2, x1], dim=-1)
    """, "LAST axis"),
    # review 04, finding 3: chunk AND cat without dim=: right shape, no error, rows rotated
    "chunk_cat_dim0": ("""
        def rotate_half(x):
            x1, x2 = torch.chunk(x, 2)
            return torch.cat([-x2, x1])
    """, "LAST axis"),
    "in_place": ("""
        def rotate_half(x):
            half = x.shape[-1] // 2
            x2 = x[..., half:]
            x2.neg_()
            return torch.cat([x2, x[..., :half]], dim=-1)
    """, "changed its input"),
}


@pytest.mark.parametrize("kind", ROT)
def test_rotate_half_mistakes(kind):
    source, hint = ROT[kind]
    fn = learner(source)["rotate_half"]
    fails_with(check.rotate_half, fn, hint=hint)
    if kind not in ("chunk_dim0", "chunk_cat_dim0"):     # on the 1-D example, axis 0 is the last axis
        fails_with(check.rotate_half_example, fn, hint=hint)


# ============================================================ 5. rope_cos_sin ===

CS_BODY = """
    def rope_cos_sin(n_positions, d_head, base=10000.0):
        {theta}
        angles = torch.arange(n_positions, dtype=torch.float64)[:, None] * theta
        {repeat}
        return {ret}
"""
CS_OK = dict(theta="theta = base ** (-torch.arange(0, d_head, 2, dtype=torch.float64) / d_head)",
             repeat="angles = torch.cat([angles, angles], dim=-1)", ret="angles.cos().float(), angles.sin().float()")
CS = {
    "doubled": (dict(theta="i = torch.arange(0, d_head, 2, dtype=torch.float64); theta = base ** (-2 * i / d_head)"),
                "even index twice"),
    "no_two": (dict(theta="theta = base ** (-torch.arange(d_head // 2, dtype=torch.float64) / d_head)"), "factor 2"),
    "sign": (dict(theta="theta = base ** (torch.arange(0, d_head, 2, dtype=torch.float64) / d_head)"), "negative"),
    "interleaved": (dict(repeat="angles = torch.repeat_interleave(angles, 2, dim=-1)"), "INTERLEAVED"),
    "swapped": (dict(ret="angles.sin().float(), angles.cos().float()"), "(cos, sin) in that order"),
    "base_hardcoded": (dict(theta="theta = 10000.0 ** (-torch.arange(0, d_head, 2, dtype=torch.float64) / d_head)"),
                       "ignores the `base`"),
    "base_e": (dict(theta="theta = torch.exp(-torch.arange(0, d_head, 2, dtype=torch.float64) / d_head)"), "base e"),
    "not_repeated": (dict(repeat="pass"), "twice"),
    "float64": (dict(ret="angles.cos(), angles.sin()"), "float32"),
}


@pytest.mark.parametrize("kind", CS)
def test_rope_cos_sin_mistakes(kind):
    parts, hint = CS[kind]
    fn = learner(CS_BODY.format(**{**CS_OK, **parts}))["rope_cos_sin"]
    fails_with(check.rope_cos_sin, fn, hint=hint)
    if kind != "base_hardcoded":
        fails_with(check.rope_cos_sin_example, fn, hint=hint)


def test_rope_cos_sin_in_float32_like_llama_is_fine():
    fn = learner("""
        def rope_cos_sin(n_positions, d_head, base=10000.0):
            inv = 1.0 / (base ** (torch.arange(0, d_head, 2, dtype=torch.int64).float() / d_head))
            a = torch.arange(n_positions).float()[:, None] * inv
            a = torch.cat([a, a], dim=-1)
            return a.cos(), a.sin()
    """)["rope_cos_sin"]
    for _ in range(3):
        check.rope_cos_sin(fn)


# ============================================================ 6. apply_rope ===

ROT_OK = ROT_SRC = """
    def rotate_half(x):
        half = x.shape[-1] // 2
        return torch.cat([-x[..., half:], x[..., :half]], dim=-1)
"""
AR = {
    "swapped": ("return x * sin + rotate_half(x) * cos", "swapped"),
    "minus": ("return x * cos - rotate_half(x) * sin", "wrong way"),
    "no_rotation": ("return x * cos", "missing"),
    "interleaved_inline": ("""out = torch.empty_like(x)
        out[..., 0::2] = -x[..., 1::2]
        out[..., 1::2] = x[..., 0::2]
        return x * cos + out * sin""", "INTERLEAVED"),
    # review 04, finding 5: the paper's pair formula, angles from the first half of the tables
    "interleaved_pair_formula": ("""h = x.shape[-1] // 2
        c, s = cos[..., :h], sin[..., :h]
        e, o = x[..., 0::2], x[..., 1::2]
        return torch.stack([e * c - o * s, o * c + e * s], dim=-1).flatten(-2)""", "INTERLEAVED"),
}


@pytest.mark.parametrize("kind", AR)
def test_apply_rope_mistakes(kind):
    body, hint = AR[kind]
    fn = learner(textwrap.dedent(ROT_SRC) + textwrap.dedent(f"""
    def apply_rope(x, cos, sin):
        {body}
    """))["apply_rope"]
    fails_with(check.apply_rope, fn, hint=hint)
    fails_with(check.apply_rope_example, fn, hint=hint)


def test_apply_rope_example_states_its_input():
    """Review 04, finding 2: the example computed with x = [1, 2, 3, 5] but said [1, 2, 3, 4]."""
    wrong = learner(textwrap.dedent(ROT_SRC) + textwrap.dedent("""
        def apply_rope(x, cos, sin):
            return x * cos
    """))["apply_rope"]
    message = fails_with(check.apply_rope_example, wrong, hint="missing")
    assert "[1, 2, 3, 4]" in message and "[1, 2, 3, 5]" not in message
    assert "[-3, 2, 1, 4] = x * cos + rotate_half(x) * sin = [0, 2, 0, 4] + [-3, 0, 1, 0]" in message


def test_apply_rope_blames_a_wrong_rotate_half():
    source, _ = ROT["interleaved"]
    fn = learner(textwrap.dedent(source) + textwrap.dedent("""
        def apply_rope(x, cos, sin):
            return x * cos + rotate_half(x) * sin
    """))["apply_rope"]
    for check_fn in (check.apply_rope_example, check.apply_rope):
        message = fails_with(check_fn, fn, hint="your rotate_half from exercise 4 fails its checks, and apply_rope "
                                                "uses it: fix rotate_half first (run its test cell)")
        why, saw = message.split("What rotate_half's check says: ")[1].split("\n\nWhat this check saw: ")
        assert why.startswith("rotate_half(") and "INTERLEAVED" in why
        assert saw.startswith("apply_rope(") and "\nHint: " in saw
        assert "The worked example" not in message            # the gist of each failure, not its details


def test_apply_rope_unfinished_or_delegating_is_not_blamed_on_rotate_half():
    """A stub, or a call to the package's apply_rope, is the news even when the rotate_half it names is wrong."""
    source, _ = ROT["interleaved"]
    ns = learner(textwrap.dedent(source) + textwrap.dedent("""
        from transformer_course.positions import apply_rope as _package_apply_rope

        def stub(x, cos, sin):
            helper = rotate_half
            raise NotImplementedError()

        def delegate(x, cos, sin):
            helper = rotate_half
            return _package_apply_rope(x, cos, sin)
    """))
    for check_fn in (check.apply_rope_example, check.apply_rope):
        message = fails_with(check_fn, ns["stub"], hint="not implemented yet")
        assert "fails its checks" not in message
        message = fails_with(check_fn, ns["delegate"], hint="calls transformer_course.positions.apply_rope, ")
        assert "fails its checks" not in message


def test_apply_rope_matches_llama_in_both_dtypes(solution):
    check.apply_rope(solution["apply_rope"])
    check.rope_cos_sin(solution["rope_cos_sin"])


# ============================================================ 7. interleaved_to_halves ===

IH = {
    "inverse": ("""
        def interleaved_to_halves(x):
            half = x.shape[-1] // 2
            out = torch.empty_like(x)
            out[..., 0::2], out[..., 1::2] = x[..., :half], x[..., half:]
            return out
    """, "inverse permutation"),
    "odd_first": ("return torch.cat([x[..., 1::2], x[..., 0::2]], dim=-1)", "even-indexed"),
    "unchanged": ("return x.reshape(*x.shape[:-1], -1, 2).reshape(x.shape)", "unchanged"),
    "first_axis": ("return torch.cat([x[0::2], x[1::2]], dim=0)", "LAST axis"),
}


@pytest.mark.parametrize("kind", IH)
def test_interleaved_to_halves_mistakes(kind):
    source, hint = IH[kind]
    if not source.lstrip().startswith("def"):
        source = f"def interleaved_to_halves(x):\n    {source}\n"
    fn = learner(source)["interleaved_to_halves"]
    fails_with(check.interleaved_to_halves, fn, hint=hint if kind != "inverse" else "inverse")
    if kind != "first_axis":                              # on the 1-D example, axis 0 is the last axis
        fails_with(check.interleaved_to_halves_example, fn, hint="inverse" if kind == "inverse" else hint)


# ============================================================ helpers added to the package ===

def test_plot_position_table_labels():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from transformer_course.plots import plot_position_table
    fig, ax = plot_position_table(ref.sinusoidal_table(20, 8), title="t", mark_position=3)
    assert ax.get_title() == "t" and ax.get_xlabel() and ax.get_ylabel()
    plt.close(fig)
