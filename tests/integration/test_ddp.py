"""Two CPU processes (DDP over gloo) decode their shares of the test set; the gathered output is
the single-process output, in order, with the same BLEU."""

from __future__ import annotations

import json
import re

import pytest

from seq2seq.checkpoint import load_module
from seq2seq.data.corpus import read_lines
from seq2seq.metrics import corpus_scores
from seq2seq.translation import translate_lines
from tests.conftest import MAX_TOKENS, ROOT
from tests.integration.conftest import tiny_overrides
from tests.integration.test_cli import run


@pytest.mark.slow
def test_two_ranks_give_the_single_process_translations_and_bleu(tmp_path, data_root):
    overrides = [o for o in tiny_overrides(tmp_path, data_root, n=300)
                 if not o.startswith("show_examples")]
    recorder = "+callbacks.recorder._target_=tests.integration.batch_recorder.BatchRecorder"
    proc = run([str(ROOT / "train.py"), *overrides, "trainer.devices=2", "trainer.max_epochs=6",
                "optim.lr=5e-3", f"hydra.run.dir={tmp_path}/RUN", recorder,
                f"+callbacks.recorder.folder={tmp_path}/batches"], cwd=tmp_path, timeout=600,
               env={"PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    # both ranks trained, on disjoint batches covering the training set once per epoch
    kept = int(re.search(r"training pairs: (\d+) kept", proc.stdout + proc.stderr).group(1))
    assert kept > 250  # the tiny vocabulary makes a few of the 300 pairs too long
    for epoch in range(6):
        r0, r1 = (json.loads((tmp_path / "batches" / f"rank{r}-epoch{epoch}.json").read_text())
                  for r in (0, 1))
        assert len(r0) == len(r1) > 0
        ids0, ids1 = [i for b in r0 for i in b], [i for b in r1 for i in b]
        assert not set(ids0) & set(ids1)
        assert sorted(ids0 + ids1) == list(range(kept))
    run_dir = tmp_path / "RUN"
    best = sorted((run_dir / "checkpoints").glob("best-*.ckpt"))
    assert len(best) == 1 and (run_dir / "checkpoints" / "last.ckpt").is_file()
    gathered = (run_dir / "translations" / "test.hyp.txt").read_text(encoding="utf-8").splitlines()
    single = translate_lines(load_module(best[0]), read_lines(tmp_path / "test.de"),
                             max_tokens=MAX_TOKENS)
    assert len(set(single)) > 10  # the comparison is not between degenerate outputs
    assert gathered == single
    bleu = corpus_scores(single, read_lines(tmp_path / "test.en")).bleu
    printed = float(re.search(r"BLEU (\d+\.\d+)", proc.stdout).group(1))
    assert printed == pytest.approx(bleu, abs=0.005)
