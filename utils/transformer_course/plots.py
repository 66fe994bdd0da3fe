"""Plotting helpers the notebooks share: attention heat maps, curves, log-log fits.

First used in notebook 02 (attention heat maps, variance against d_k, softmax
saturation); reused by 03 (one heat map per head), 04 (positional tables),
05-09 (loss curves, similarity matrices) and 08 (log-log scaling fits).

Every helper gives its plot a title and labelled axes, returns the matplotlib
``(figure, axes)`` so a notebook can add to it, and never calls ``plt.show()``
itself (a notebook's inline backend shows figures at the end of the cell).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

__all__ = ["plain_log_ticks", "plot_attention", "plot_attention_grid", "plot_lines", "plot_loss", "plot_position_table"]


def _as_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):                      # a torch tensor
        x = x.detach().to("cpu").float().numpy()
    return np.asarray(x, dtype=float)


def plot_attention(
    weights,
    query_labels: Sequence[str] | None = None,
    key_labels: Sequence[str] | None = None,
    title: str = "Attention weights",
    ax: plt.Axes | None = None,
    annotate: bool | None = None,
    colorbar: bool = True,
    vmax: float | None = None,
):
    """Heat map of an ``(n_q, n_k)`` weight matrix: one row per query, one column per key.

    Args:
        weights: numpy array or torch tensor of shape ``(n_q, n_k)``.
        query_labels, key_labels: tick labels (tokens); positions by default.
        title: the plot's title.
        ax: draw into this axes instead of a new figure.
        annotate: write each weight in its cell (default: when the matrix is small).
        colorbar: add a colour bar labelled "weight".
        vmax: the weight drawn brightest (default: the largest in ``weights``); pass 1.0
            to compare several maps on one scale.

    Returns:
        ``(fig, ax)``.
    """
    w = _as_numpy(weights)
    if w.ndim != 2:
        raise ValueError(f"plot_attention takes one (n_q, n_k) matrix, got shape {w.shape}")
    n_q, n_k = w.shape
    if ax is None:
        # at least 2.6 inches tall: a single query row still leaves room for the title and key labels
        fig, ax = plt.subplots(figsize=(min(1.5 + 0.55 * n_k, 12), min(max(2.6, 1.6 + 0.45 * n_q), 10)))
    else:
        fig = ax.figure
    if vmax is None:
        vmax = max(1e-12, float(np.nanmax(w))) if w.size else 1.0
    image = ax.imshow(w, cmap="viridis", vmin=0.0, vmax=vmax, aspect="auto")
    ax.set_title(title)
    ax.set_xlabel("key position (attended to)")
    ax.set_ylabel("query position (attending)")
    ax.set_xticks(range(n_k))
    ax.set_yticks(range(n_q))
    ax.set_xticklabels(list(key_labels) if key_labels is not None else range(n_k),
                       rotation=90 if n_k > 8 else 0)
    ax.set_yticklabels(list(query_labels) if query_labels is not None else range(n_q))
    if annotate is None:
        annotate = n_q * n_k <= 100
    if annotate:
        top = vmax
        for i in range(n_q):
            for j in range(n_k):
                ax.text(j, i, f"{w[i, j]:.2f}", ha="center", va="center", fontsize=8,
                        color="black" if w[i, j] > 0.6 * top else "white")
    if colorbar:
        fig.colorbar(image, ax=ax, label="weight")
    return fig, ax


def plot_attention_grid(
    weights,
    titles: Sequence[str],
    query_labels: Sequence[str] | None = None,
    key_labels: Sequence[str] | None = None,
    suptitle: str | None = None,
):
    """Several ``(n_q, n_k)`` heat maps side by side (heads, layers, temperatures).

    ``weights`` has shape ``(n_maps, n_q, n_k)``; ``titles`` names each map.  All maps
    share one colour scale (0 to the largest weight) and one colour bar, so they can be
    compared.  Returns ``(fig, axes)``.
    """
    w = _as_numpy(weights)
    n = w.shape[0]
    vmax = max(1e-12, float(np.nanmax(w))) if w.size else 1.0
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n + 1.5, 3.6), squeeze=False)
    for i, ax in enumerate(axes[0]):
        plot_attention(w[i], query_labels, key_labels, title=titles[i], ax=ax,
                       annotate=False, colorbar=False, vmax=vmax)
        if i:
            ax.set_ylabel("")
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    fig.colorbar(axes[0][0].images[0], ax=list(axes[0]), label="weight", fraction=0.03, pad=0.02)
    return fig, axes[0]


def plot_lines(
    x,
    series: Mapping[str, Sequence[float]],
    xlabel: str,
    ylabel: str,
    title: str,
    logx: bool = False,
    logy: bool = False,
    ax: plt.Axes | None = None,
    markers: bool = True,
    styles: Mapping[str, str] | None = None,
    legend_outside: bool = False,
):
    """One line per entry of ``series`` against ``x``, with a legend.

    ``logx``/``logy`` give log axes (a power law ``y = c x^p`` is then a straight
    line of slope ``p``).  ``styles`` maps a series name to a matplotlib format
    string such as ``"k--"``.  ``legend_outside`` puts the legend to the right of
    the axes, where it cannot cover a curve.  Returns ``(fig, ax)``.
    """
    if ax is None:
        fig, ax = plt.subplots(figsize=(9, 4) if legend_outside else (6, 4))
    else:
        fig = ax.figure
    xs = _as_numpy(x)
    for name, ys in series.items():
        fmt = (styles or {}).get(name, "o-" if markers else "-")
        ax.plot(xs, _as_numpy(ys), fmt, label=name)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both" if (logx or logy) else "major", alpha=0.3)
    if len(series) > 1:
        if legend_outside:
            ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
            fig.tight_layout()
        else:
            ax.legend()
    return fig, ax


def plot_loss(
    losses: Sequence[float],
    title: str = "Training loss",
    ylabel: str = "cross-entropy loss (nats)",
    xlabel: str = "training step",
    smooth: int = 0,
    ax: plt.Axes | None = None,
):
    """A training curve; ``smooth > 1`` overlays a centred moving average over that many steps.

    The average at step ``t`` is taken over the window centred on ``t`` (so it does not lag
    behind the curve); the first and last ``smooth // 2`` steps, which have no full window,
    are left out.  Returns ``(fig, ax)``.
    """
    y = _as_numpy(losses)
    series = {"loss": y}
    if smooth > 1 and len(y) >= smooth:
        kernel = np.ones(smooth) / smooth
        avg = np.convolve(y, kernel, mode="valid")                 # len(y) - smooth + 1 windows
        left = (smooth - 1) // 2
        centred = np.concatenate([np.full(left, np.nan), avg, np.full(smooth - 1 - left, np.nan)])
        series = {"loss": y, f"centred moving average ({smooth} steps)": centred}
    return plot_lines(np.arange(len(y)), series, xlabel, ylabel, title, markers=False, ax=ax)


def plot_position_table(
    table,
    title: str = "Position table",
    ax: plt.Axes | None = None,
    mark_position: int | None = None,
    colorbar: bool = True,
):
    """Heat map of a ``(n_positions, d_model)`` position table (sinusoidal, learned, RoPE angles).

    Rows are positions (top to bottom), columns are features; values are drawn on a
    symmetric diverging scale (blue negative, red positive).  ``mark_position`` draws a
    horizontal line at that row, black dashes on a white line so that it shows on dark and light
    stripes alike.  Tables with more than 300 rows or columns are drawn antialiased (no moire
    when there are more cells than pixels), smaller ones cell by cell.  Returns ``(fig, ax)``.
    """
    t = _as_numpy(table)
    if t.ndim != 2:
        raise ValueError(f"plot_position_table takes one (n_positions, d_model) table, got shape {t.shape}")
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 4.5))
    else:
        fig = ax.figure
    limit = max(1e-12, float(np.nanmax(np.abs(t)))) if t.size else 1.0
    smooth = max(t.shape) > 300             # more rows/columns than pixels: antialias (no moire); else crisp cells
    image = ax.imshow(t, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto",
                      interpolation="antialiased" if smooth else "nearest")
    ax.set_title(title)
    ax.set_xlabel("feature (column of the table)")
    ax.set_ylabel("position p (token index)")
    if mark_position is not None and 0 <= mark_position < t.shape[0]:
        ax.axhline(mark_position, color="white", linewidth=3.5)              # a white band under the dashes
        ax.axhline(mark_position, color="black", linewidth=1.5, linestyle=(0, (4, 3)), label=f"p = {mark_position}")
        ax.legend(loc="upper right", fontsize=8, framealpha=0.9)
    if colorbar:
        fig.colorbar(image, ax=ax, label="value (unitless)")
    return fig, ax


def plain_log_ticks(ax: plt.Axes, axis: str = "both", ticks: Sequence[float] | None = None) -> None:
    """Label a log axis with plain numbers (``2.5``, ``512``) instead of ``2.5 x 10^0``; ``ticks`` puts the
    ticks exactly there (the lengths of a sweep, say).  Call it after plotting: an axis spanning less than a
    factor of 30 gets about five evenly spaced labelled ticks (a log locator would label one or none)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

    plain = FuncFormatter(lambda v, _: f"{v:g}")
    for name in ("x", "y") if axis == "both" else (axis,):
        target = ax.xaxis if name == "x" else ax.yaxis
        low, high = sorted(ax.get_xlim() if name == "x" else ax.get_ylim())
        if ticks is not None:
            target.set_ticks(list(ticks))
        elif low > 0 and high / low < 30:
            target.set_major_locator(MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10]))
        else:
            target.set_major_locator(LogLocator(base=10))
        target.set_major_formatter(plain)
        target.set_minor_formatter(NullFormatter())
