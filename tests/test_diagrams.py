"""The architecture diagrams (transformer_course.diagrams) draw, carry a title and the labels they promise,
and are shown by the notebooks that teach them."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from notebook_tools import ROOT  # noqa: E402
from transformer_course import diagrams  # noqa: E402

EXPECTED = {
    "attention_flow": ("02_attention", ["softmax over keys", "(n_q, n_k)", "÷ √d_k"]),
    "heads_split_merge": ("03_multi_head_attention", ["split_heads", "merge_heads", "W_O"]),
    "blocks": ("05_transformer_blocks", ["encoder, post-LN", "encoder, pre-LN", "cross-attention", "memory"]),
    "gpt_stack": ("07_gpt", ["ln_f", "wpe[5]", "cache of each layer"]),
}


@pytest.mark.parametrize("name", diagrams.__all__)
def test_diagram_draws_with_its_labels(name, tmp_path):
    fig, ax = getattr(diagrams, name)()
    try:
        texts = " | ".join(t.get_text() for t in ax.texts)
        assert ax.get_title()
        for label in EXPECTED[name][1]:
            assert label in texts, f"{name}: no {label!r} among {texts!r}"
        fig.savefig(tmp_path / f"{name}.png")
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000
    finally:
        plt.close(fig)


@pytest.mark.parametrize("name", diagrams.__all__)
def test_the_notebook_that_teaches_it_shows_it(name):
    notebook = EXPECTED[name][0]
    source = (ROOT / "solutions" / notebook / f"{notebook}.py").read_text()
    assert f"diagrams.{name}(" in source, f"{notebook} does not draw diagrams.{name}"
