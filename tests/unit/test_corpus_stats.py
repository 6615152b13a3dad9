"""CorpusStats: corpus figures as ratios of sums, the same from one process or two gloo ranks."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
import torch

from seq2seq.corpus_stats import CorpusStats
from tests.conftest import ROOT
from tests.unit.corpus_stats_ranks import UNK_ID, shares


def _single_process() -> dict[str, float]:
    stats = CorpusStats(unk_id=UNK_ID)
    for share in shares():
        for update in share:
            stats.update(*update)
    return {k: float(v) for k, v in stats.compute().items()}


def test_figures_are_ratios_of_corpus_sums():
    # the shares' sums: 367 loss, 305 nll, 79 target tokens; 4 of 76 outputs unknown;
    # 9 steps over 2 source tokens, 32 over 8 and 40 over 16, all uniform
    figures = _single_process()
    assert figures["loss"] == pytest.approx(367 / 79)
    assert figures["ppl"] == pytest.approx(math.exp(305 / 79))
    assert figures["unk_share"] == pytest.approx(4 / 76)
    entropy = 9 * math.log(2) + 32 * math.log(8) + 40 * math.log(16)
    assert figures["attention_entropy"] == pytest.approx(entropy / 81)


def test_reset_empties_every_sum_and_an_empty_corpus_gives_zeros():
    stats = CorpusStats(unk_id=UNK_ID)
    for update in shares()[1]:
        stats.update(*update)
    stats.reset()
    stats.update(torch.tensor(0.0), torch.tensor(0.0), 0)  # no tokens, no outputs
    figures = {k: float(v) for k, v in stats.compute().items()}
    assert figures == {"loss": 0.0, "ppl": 1.0, "unk_share": 0.0, "attention_entropy": 0.0}


def test_states_stay_out_of_the_state_dict():
    stats = CorpusStats(unk_id=UNK_ID)
    stats.update(*shares()[0][0])
    assert stats.state_dict() == {}


@pytest.mark.slow
def test_two_ranks_holding_unequal_token_counts_give_the_single_process_figures(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "tests.unit.corpus_stats_ranks", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    exact = _single_process()
    for figures in ranks:
        assert figures["synced"] == pytest.approx(exact, rel=1e-9)
    # a mean of the ranks' own figures (what averaging per-rank means over ranks gives) is far
    # from every corpus figure here, so the comparison above can fail
    for k, v in exact.items():
        naive = sum(r["alone"][k] for r in ranks) / len(ranks)
        assert abs(naive - v) > 0.2 * v, k
