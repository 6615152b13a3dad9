"""Attention heatmaps: a plain function from weights and subwords to a matplotlib figure."""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def attention_figure(weights: np.ndarray, src_pieces: Sequence[str],
                     out_pieces: Sequence[str], title: str | None = None):
    """weights: [T, S] (rows: output subwords, columns: source subwords) -> Figure."""
    T, S = weights.shape
    fig, ax = plt.subplots(figsize=(max(4.0, 0.35 * S + 1.5), max(3.0, 0.35 * T + 1.2)))
    im = ax.imshow(weights, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(S), list(src_pieces)[:S], rotation=90, fontsize=8)
    ax.set_yticks(range(T), list(out_pieces)[:T], fontsize=8)
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    if title:
        ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.04)
    fig.tight_layout()
    return fig


def figure_png(fig) -> bytes:
    """The figure as PNG bytes (the figure is closed)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()
