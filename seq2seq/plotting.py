"""Figures as plain functions from arrays and labels to a matplotlib figure: attention heatmaps,
and the BLEU of runs that report.py and lengths.py draw. The one place that picks matplotlib's
backend (Agg: files, no display), so importing a module that plots never opens a window.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path

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


def save_figure(fig, path: str | Path) -> None:
    """Write the figure as a PNG to `path`, then close it."""
    fig.savefig(path, dpi=100)
    plt.close(fig)


def bleu_by_run_figure(labels: Sequence[str], cased: Sequence[float],
                       lowercased: Sequence[float]):
    """Test BLEU cased and lowercased, one pair of horizontal bars per run (lists aligned with
    `labels`, bottom to top) -> Figure."""
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(labels) + 1.5))
    y = range(len(labels))
    ax.barh([i - 0.2 for i in y], list(cased), height=0.4, label="cased")
    ax.barh([i + 0.2 for i in y], list(lowercased), height=0.4, label="lowercased")
    ax.set_yticks(list(y), list(labels), fontsize=8)
    ax.set_xlabel("test BLEU")
    ax.legend()
    fig.tight_layout()
    return fig


Curve = Sequence[tuple[float, float]]  # (x, BLEU) points in order


def val_bleu_figure(by_step: Sequence[tuple[str, Curve]],
                    by_minute: Sequence[tuple[str, Curve]] = ()):
    """Validation BLEU against training steps, one line per (label, curve); beside it, against
    the wall clock when any `by_minute` curve has points -> Figure. Empty curves are skipped."""
    clocked = any(points for _, points in by_minute)
    fig, axes = plt.subplots(1, 2 if clocked else 1, figsize=(12 if clocked else 7, 4.5),
                             squeeze=False)
    panels = [(axes[0][0], by_step, "step")]
    if clocked:
        panels.append((axes[0][1], by_minute, "minutes since training began"))
    for ax, curves, xlabel in panels:
        for label, points in curves:
            if points:
                x, bleu = zip(*points, strict=True)
                ax.plot(x, bleu, marker="o", label=label)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("val BLEU")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def bleu_by_length_figure(buckets: Sequence[str],
                          runs: Sequence[tuple[str, Sequence[float | None]]], title: str = ""):
    """BLEU against source-length bucket, one line per (label, BLEU of each bucket); a bucket
    without BLEU (None: no sentences) is a gap -> Figure."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    x = range(len(buckets))
    for label, bleu in runs:
        ax.plot(x, [math.nan if b is None else b for b in bleu], marker="o", label=label)
    ax.set_xticks(list(x), list(buckets), fontsize=8)
    ax.set_xlabel("source sentence length (words)")
    ax.set_ylabel("BLEU")
    if title:
        ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
