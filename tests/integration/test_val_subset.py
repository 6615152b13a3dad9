"""data.val_max_sentences: the validation loss covers every pair, BLEU the first N decoded."""

from __future__ import annotations

import csv

import pytest
import sacrebleu

from seq2seq.checkpoint import load_module
from seq2seq.pipeline import build_datamodule, build_trainer, fit_steps
from tests.conftest import ROOT, compose_train
from tests.integration.conftest import tiny_overrides
from tests.integration.test_cli import run


def validate(cfg, ckpt):
    """(logged metrics, decoded outputs by example id, sentences searched) of
    trainer.validate on `ckpt`."""
    module, outputs, searched = load_module(ckpt), {}, []
    gather, search = module._gather, module.search

    def recording_gather(stage):
        outputs.update(gather(stage))
        return dict(outputs)

    def counting_search(batch, opts=None):
        searched.append(len(batch))
        return search(batch, opts)

    module._gather, module.search = recording_gather, counting_search
    trainer = build_trainer(cfg, [], [], enable_progress_bar=False,
                            enable_model_summary=False)
    (metrics,) = trainer.validate(module, datamodule=build_datamodule(cfg), verbose=False)
    return metrics, outputs, sum(searched)


@pytest.mark.slow
def test_val_max_sentences_decodes_a_fixed_subset_and_keeps_the_full_loss(tmp_path, data_root):
    overrides = [*tiny_overrides(tmp_path, data_root), f"run_dir={tmp_path / 'run'}"]
    _, _, trainer = fit_steps(compose_train(overrides), 300)
    ckpt = tmp_path / "model.ckpt"
    trainer.save_checkpoint(ckpt)

    full, full_out, full_searched = validate(compose_train(overrides), ckpt)
    cut, cut_out, cut_searched = validate(
        compose_train([*overrides, "data.val_max_sentences=7"]), ckpt)

    assert (full_searched, cut_searched) == (40, 7)
    assert sorted(full_out) == list(range(40)) and sorted(cut_out) == list(range(7))
    assert cut["val/loss"] == pytest.approx(full["val/loss"], rel=1e-6)
    assert cut["val/ppl"] == pytest.approx(full["val/ppl"], rel=1e-6)
    refs = (tmp_path / "val.en").read_text(encoding="utf-8").splitlines()
    bleu = sacrebleu.corpus_bleu([cut_out[i] for i in range(7)], [refs[:7]]).score
    assert bleu > 0  # the model says something, so the equality below means something
    assert cut["val/bleu"] == pytest.approx(bleu, abs=1e-6)
    # the decoded sentences are the full run's first 7: only which are decoded changes
    assert cut_out == {i: full_out[i] for i in range(7)}


@pytest.mark.slow
def test_two_ranks_decode_the_same_subset_with_the_same_figures(tmp_path, data_root):
    overrides = tiny_overrides(tmp_path, data_root)
    proc = run([str(ROOT / "train.py"), *overrides, "trainer.devices=2", "trainer.max_epochs=3",
                "optim.lr=5e-3", "data.val_max_sentences=7", f"hydra.run.dir={tmp_path}/RUN"],
               cwd=tmp_path, timeout=600, env={"PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = tmp_path / "RUN"
    with (run_dir / "csv" / "metrics.csv").open() as f:
        logged = [r for r in csv.DictReader(f) if r.get("val/bleu")][-1]
    single, outputs, searched = validate(
        compose_train([*overrides, "data.val_max_sentences=7", f"run_dir={tmp_path / 'one'}"]),
        run_dir / "checkpoints" / "last.ckpt")
    assert searched == 7 and sorted(outputs) == list(range(7))
    assert float(logged["val/bleu"]) > 0  # not a comparison of empty outputs
    for name in ("val/loss", "val/ppl", "val/bleu", "val/chrf"):
        assert float(logged[name]) == pytest.approx(single[name], rel=1e-5, abs=1e-6), name
