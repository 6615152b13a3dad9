"""Figures (seq2seq/plotting.py): plain functions from arrays to a figure, and the one place
matplotlib's backend is chosen."""

from __future__ import annotations

import re

import numpy as np

from seq2seq.plotting import (
    attention_figure,
    bleu_by_length_figure,
    bleu_by_run_figure,
    figure_png,
    save_figure,
    val_bleu_figure,
)
from tests.conftest import ROOT

PNG = b"\x89PNG\r\n\x1a\n"


def test_figures_of_runs_are_pngs(tmp_path):
    runs = bleu_by_run_figure(["a", "b"], [30.0, 31.5], [32.0, 33.0])
    assert len(runs.axes[0].patches) == 4
    save_figure(runs, tmp_path / "runs.png")
    assert (tmp_path / "runs.png").read_bytes()[:8] == PNG
    by_step = val_bleu_figure([("a", [(10, 1.0), (20, 2.0)]), ("b", [])], [("a", []), ("b", [])])
    assert len(by_step.axes) == 1 and len(by_step.axes[0].lines) == 1  # no clock: one panel
    both = val_bleu_figure([("a", [(10, 1.0)])], [("a", [(0.5, 1.0)])])
    assert len(both.axes) == 2
    lengths = bleu_by_length_figure(["1-8", "9+"], [("a", [40.0, None])], "title")
    assert np.isnan(lengths.axes[0].lines[0].get_ydata()[1])  # an empty bucket is a gap
    for fig in (by_step, both, lengths):
        assert figure_png(fig)[:8] == PNG
    assert figure_png(attention_figure(np.eye(2), ["a", "b"], ["c", "d"]))[:8] == PNG


def test_only_plotting_chooses_the_backend():
    choosers = [p.relative_to(ROOT).as_posix() for p in sorted((ROOT / "seq2seq").rglob("*.py"))
                if re.search(r"matplotlib\.use\(", p.read_text(encoding="utf-8"))]
    assert choosers == ["seq2seq/plotting.py"]
