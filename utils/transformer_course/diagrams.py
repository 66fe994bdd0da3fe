"""Architecture diagrams drawn by code: attention's data flow, the head split and merge, post-LN and pre-LN
blocks with the decoder's cross-attention, and the GPT stack with its key/value cache.

Shown in notebooks 02 (:func:`attention_flow`), 03 (:func:`heads_split_merge`), 05 (:func:`blocks`) and
07 (:func:`gpt_stack`).  Each function draws with matplotlib alone (boxes, arrows, shapes written on the
arrows), returns ``(figure, axes)`` like the helpers in :mod:`transformer_course.plots`, and never calls
``plt.show()``: the figures are part of the notebooks' outputs, so they appear in JupyterLab and in the
student release alike.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.patches import FancyBboxPatch, Rectangle

__all__ = ["attention_flow", "heads_split_merge", "blocks", "gpt_stack"]

# one colour per kind of thing, the same in every diagram
INPUT, WEIGHTS, OPERATION, NORM, ATTENTION, MLP, CACHE = (
    "#e9ecef", "#ffd6a5", "#cfe8ff", "#e2f0cb", "#f1c0e8", "#fde4cf", "#b9fbc0")


def _canvas(width: float, height: float, title: str):
    fig, ax = plt.subplots(figsize=(width, height))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title)
    return fig, ax


def _box(ax, x: float, y: float, text: str, colour: str = OPERATION, w: float = 2.0, h: float = 0.6,
         size: int = 9) -> tuple[float, float, float, float]:
    """A rounded box centred at (x, y); returns its (left, right, bottom, top)."""
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.02,rounding_size=0.12",
                                facecolor=colour, edgecolor="#333333", linewidth=1))
    ax.text(x, y, text, ha="center", va="center", fontsize=size)
    return x - w / 2, x + w / 2, y - h / 2, y + h / 2


def _arrow(ax, start, end, label: str = "", side: str = "right", colour: str = "#333333",
           style: str = "-|>", size: int = 8) -> None:
    ax.annotate("", xy=end, xytext=start, arrowprops=dict(arrowstyle=style, color=colour, lw=1.2,
                                                           shrinkA=0, shrinkB=0))
    if label:
        mx, my = (start[0] + end[0]) / 2, (start[1] + end[1]) / 2
        dx = 0.08 if side == "right" else -0.08
        ax.text(mx + dx, my, label, ha="left" if side == "right" else "right", va="center", fontsize=size,
                color="#444444", family="monospace")


def attention_flow(n_q: str = "n_q", n_k: str = "n_k", d_k: str = "d_k", d_v: str = "d_v"):
    """Scaled dot-product attention as data flow, with the shape of every intermediate (notebook 02)."""
    fig, ax = _canvas(8.4, 7.2, "Scaled dot-product attention: what flows where")
    _box(ax, 1.4, 6.4, "Q  queries", INPUT, w=1.9)
    _box(ax, 3.9, 6.4, "K  keys", INPUT, w=1.9)
    _box(ax, 6.6, 6.4, "V  values", INPUT, w=1.9)
    _box(ax, 2.65, 5.0, "S = Q Kᵀ", OPERATION, w=2.2)
    _arrow(ax, (1.4, 6.1), (2.2, 5.3), f"({n_q}, {d_k})", side="left")
    _arrow(ax, (3.9, 6.1), (3.1, 5.3), f"({n_k}, {d_k})")
    _box(ax, 2.65, 3.9, "÷ √d_k   (scale)", OPERATION, w=2.2)
    _arrow(ax, (2.65, 4.7), (2.65, 4.2), f"({n_q}, {n_k})  scores")
    _box(ax, 2.65, 2.8, "mask: −∞ where not allowed", OPERATION, w=3.0)
    _arrow(ax, (2.65, 3.6), (2.65, 3.1), f"({n_q}, {n_k})")
    _box(ax, 2.65, 1.7, "softmax over keys", OPERATION, w=2.4)
    _arrow(ax, (2.65, 2.5), (2.65, 2.0), f"({n_q}, {n_k})")
    _box(ax, 5.6, 1.7, "A V", OPERATION, w=1.4)
    _arrow(ax, (3.85, 1.7), (4.9, 1.7))
    ax.text(4.35, 1.5, f"A: ({n_q}, {n_k})\nrows sum to 1", ha="center", va="top", fontsize=8,
            family="monospace", color="#444444")
    _arrow(ax, (6.6, 6.1), (5.8, 2.0), f"({n_k}, {d_v})")
    _box(ax, 5.6, 0.55, "output", INPUT, w=1.6)
    _arrow(ax, (5.6, 1.4), (5.6, 0.85), f"({n_q}, {d_v})")
    ax.text(0.2, 0.2, "a row of A says how much of each value one query takes", fontsize=8, color="#666666")
    return fig, ax


def heads_split_merge(d_model: int = 8, n_heads: int = 2, T: int = 4):
    """Multi-head attention's reshapes: project, split ``d_model`` into heads, attend per head, merge, project
    (notebook 03)."""
    d_head = d_model // n_heads
    colours = plt.cm.Set2.colors
    fig, ax = _canvas(10.5, 5.2, f"Multi-head attention: d_model = {d_model} split into {n_heads} heads of {d_head}")

    def grid(x0, y0, rows, cols, colour_of, cell=0.22, label=""):
        for r in range(rows):
            for c in range(cols):
                ax.add_patch(Rectangle((x0 + c * cell, y0 + (rows - 1 - r) * cell), cell, cell,
                                       facecolor=colour_of(c), edgecolor="white", linewidth=0.8))
        if label:
            ax.text(x0 + cols * cell / 2, y0 - 0.25, label, ha="center", va="top", fontsize=8, family="monospace")
        return x0 + cols * cell, y0 + rows * cell

    cell = 0.22
    y = 3.0
    right, _ = grid(0.3, y, T, d_model, lambda c: colours[c // d_head], cell, f"x W_Q: (B, T, {d_model})")
    ax.text(0.3, y + T * cell + 0.15, "columns coloured by the head\nthey will belong to", fontsize=8,
            color="#555555")
    _arrow(ax, (right + 0.15, y + T * cell / 2), (right + 1.0, y + T * cell / 2))
    ax.text(right + 0.55, y + T * cell / 2 + 0.15, "split_heads", ha="center", fontsize=8)
    x = right + 1.2
    for h in range(n_heads):
        grid(x, y + 0.15 * (n_heads - 1 - h) - 0.1 * h, T, d_head, lambda c, h=h: colours[h], cell)
        x += 0.25
    ax.text(right + 1.2 + d_head * cell / 2 + 0.3, y - 0.35, f"(B, {n_heads}, T, {d_head})", ha="center",
            va="top", fontsize=8, family="monospace")
    x_att = right + 1.2 + d_head * cell + 0.25 * n_heads + 0.4
    _arrow(ax, (x_att - 0.3, y + T * cell / 2), (x_att + 0.4, y + T * cell / 2))
    _box(ax, x_att + 1.45, y + T * cell / 2, f"attention\nper head\n({n_heads} (T, T) maps)", ATTENTION, w=1.9,
         h=1.1, size=8)
    x_merge = x_att + 2.5
    _arrow(ax, (x_att + 2.4, y + T * cell / 2), (x_merge + 0.5, y + T * cell / 2))
    ax.text(x_merge + 0.15, y + T * cell / 2 + 0.35, "merge_heads", ha="center", fontsize=8)
    right2, _ = grid(x_merge + 0.65, y, T, d_model, lambda c: colours[c // d_head], cell, f"(B, T, {d_model})")
    _arrow(ax, (right2 - d_model * cell / 2, y - 0.55), (right2 - d_model * cell / 2, 1.6))
    _box(ax, right2 - d_model * cell / 2, 1.25, "W_O  mixes the heads", WEIGHTS, w=2.2)
    ax.text(0.3, 1.3, "split: reshape (B, T, h, d_head), then swap T and h.\n"
            "merge: the inverse, back to (B, T, h · d_head).\n"
            "Each head sees its own columns of Q, K, V: a subspace.", fontsize=8.5, va="center")
    return fig, ax


def blocks():
    """The Transformer block three ways: encoder post-LN (2017), encoder pre-LN (GPT-2 and most models since),
    and a pre-LN decoder block with cross-attention to the encoder's output (notebook 05)."""
    fig, ax = _canvas(11.5, 7.8, "Transformer blocks: post-LN, pre-LN, and the decoder's cross-attention")

    def residual(x0, x_side, y_from, y_to):
        """The residual stream: from the main path at y_from, around, into the addition at y_to."""
        ax.plot([x0, x_side, x_side], [y_from, y_from, y_to], color="#888888", lw=1.1, ls="--")
        ax.plot([x0], [y_from], "o", color="#888888", markersize=3.5)
        _arrow(ax, (x_side, y_to), (x0 - 0.23, y_to), colour="#888888")

    def column(x0, title, steps):
        """steps: list of (text, colour) from bottom to top; '+' marks an addition of the residual."""
        ax.text(x0, 7.3, title, ha="center", fontsize=10, weight="bold")
        y = 0.75
        _box(ax, x0, y, "x", INPUT, w=0.8)
        tops = {}
        for text, colour in steps:
            y_next = y + 0.85
            _arrow(ax, (x0, y + 0.3), (x0, y_next - 0.3))
            if text == "+":
                ax.add_patch(plt.Circle((x0, y_next), 0.22, facecolor="white", edgecolor="#333333"))
                ax.text(x0, y_next, "+", ha="center", va="center", fontsize=11)
            else:
                _box(ax, x0, y_next, text, colour, w=2.1, size=8.5)
            tops[len(tops)] = y_next
            y = y_next
        _arrow(ax, (x0, y + 0.3), (x0, y + 0.75))
        return tops

    # post-LN: x -> attn -> + -> LN -> FFN -> + -> LN
    t = column(1.8, "encoder, post-LN", [("self-attention", ATTENTION), ("+", None), ("LayerNorm", NORM),
                                         ("feed-forward", MLP), ("+", None), ("LayerNorm", NORM)])
    residual(1.8, 0.45, 0.75, t[1])
    residual(1.8, 0.45, t[2] + 0.42, t[4])
    # pre-LN: x -> LN -> attn -> + -> LN -> FFN -> +
    t = column(5.6, "encoder, pre-LN", [("LayerNorm", NORM), ("self-attention", ATTENTION), ("+", None),
                                        ("LayerNorm", NORM), ("feed-forward", MLP), ("+", None)])
    residual(5.6, 4.25, 0.75, t[2])
    residual(5.6, 4.25, t[2] + 0.42, t[5])
    # decoder, pre-LN, with cross-attention
    t = column(9.5, "decoder, pre-LN", [("LayerNorm", NORM), ("causal self-attn", ATTENTION), ("+", None),
                                        ("LayerNorm", NORM), ("cross-attention", ATTENTION), ("+", None)])
    residual(9.5, 8.15, 0.75, t[2])
    residual(9.5, 8.15, t[2] + 0.42, t[5])
    _box(ax, 11.05, t[4], "memory\n(encoder\noutput)", INPUT, w=0.8, h=1.0, size=7.5)
    _arrow(ax, (10.65, t[4]), (10.56, t[4]))
    ax.text(9.5, t[5] + 1.0, "then a third sublayer: LayerNorm → feed-forward → +", ha="center", va="center",
            fontsize=7.5, color="#555555")
    ax.text(0.2, 0.05, "dashed: the residual stream.  Post-LN normalises after each addition; pre-LN normalises "
            "each sublayer's input and leaves the stream itself untouched.", fontsize=8, color="#444444")
    return fig, ax


def gpt_stack(n_layer: int = 3, cached: int = 5):
    """The GPT stack at one generation step with a key/value cache: one new token goes through every layer,
    each layer appends its key and value to its cache and attends over all of them (notebook 07)."""
    fig, ax = _canvas(10.5, 7.8, "GPT at one generation step, with a key/value cache")
    x = 3.0
    _box(ax, x, 0.45, f"new token (position {cached})", INPUT, w=2.6)
    _arrow(ax, (x, 0.75), (x, 1.15))
    _box(ax, x, 1.45, f"wte[token] + wpe[{cached}]", WEIGHTS, w=2.6)
    y = 1.45
    for layer in range(n_layer):
        y_block = y + 1.25
        _arrow(ax, (x, y + 0.3), (x, y_block - 0.45))
        _box(ax, x, y_block, f"block {layer}: LN → causal attention → +\nLN → MLP → +", ATTENTION, w=3.4, h=0.9,
             size=8)
        # this layer's cache: `cached` old (k, v) pairs plus the new one
        x0 = 5.6
        for i in range(cached + 1):
            colour = CACHE if i < cached else "#ff9f9f"
            ax.add_patch(Rectangle((x0 + i * 0.42, y_block - 0.05), 0.38, 0.38, facecolor=colour,
                                   edgecolor="#333333", lw=0.8))
            ax.add_patch(Rectangle((x0 + i * 0.42, y_block - 0.47), 0.38, 0.38, facecolor=colour,
                                   edgecolor="#333333", lw=0.8))
        ax.text(x0 - 0.12, y_block + 0.14, "k", ha="right", va="center", fontsize=8, family="monospace")
        ax.text(x0 - 0.12, y_block - 0.28, "v", ha="right", va="center", fontsize=8, family="monospace")
        _arrow(ax, (x + 1.7, y_block), (x0 - 0.35, y_block), style="<|-|>", colour="#aa3333")
        y = y_block
    ax.text(5.6, y + 0.6, f"cache of each layer: {cached} earlier keys and values (green), kept;\n"
            "the new token's key and value (red) appended; its query attends to all of them",
            fontsize=8, va="bottom")
    _arrow(ax, (x, y + 0.45), (x, y + 0.85))
    _box(ax, x, y + 1.1, "ln_f → lm_head (= wteᵀ)", NORM, w=2.6)
    _arrow(ax, (x, y + 1.4), (x, y + 1.8))
    _box(ax, x, y + 2.05, "logits (B, 1, V) → next token", INPUT, w=2.9)
    ax.text(5.6, 0.45, "without the cache, every step would rerun all\nearlier positions through every layer",
            fontsize=8, color="#666666", va="center")
    return fig, ax
