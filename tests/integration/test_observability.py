"""Validation metrics, heatmaps, sample translations and the offline W&B run."""

from __future__ import annotations

import csv

import pytest

from seq2seq.pipeline import train
from tests.conftest import compose_train
from tests.integration.conftest import tiny_overrides


def _metrics(run_dir):
    with open(run_dir / "csv" / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_validation_logs_bleu_and_diagnostics(tiny_run):
    rows = [r for r in _metrics(tiny_run[0]) if r.get("val/bleu")]
    assert len(rows) == 2  # one validation per epoch, 2 epochs
    for key in ("val/chrf", "val/loss", "val/ppl", "val/len_ratio", "val/unk_share",
                "val/attention_entropy"):
        assert rows[-1][key] != "", key
    assert 0.0 <= float(rows[-1]["val/unk_share"]) <= 1.0
    assert float(rows[-1]["val/attention_entropy"]) >= 0.0
    assert any(r.get("train/grad_norm") for r in _metrics(tiny_run[0]))


def test_each_validation_logs_the_wall_clock_of_the_run(tiny_run):
    """val/minutes: minutes since training began at each validation, rising, within the
    run's own wall time (results.json `seconds`)."""
    import json

    minutes = [float(r["val/minutes"]) for r in _metrics(tiny_run[0]) if r.get("val/bleu")]
    seconds = json.loads((tiny_run[0] / "results.json").read_text())["seconds"]
    assert len(minutes) == 2 and 0 < minutes[0] < minutes[1] <= seconds / 60


def test_heatmaps_are_written_per_validation(tiny_run):
    pngs = sorted((tiny_run[0] / "attention").glob("*.png"))
    assert len(pngs) == 2 * 3  # 2 validations x 3 sentences
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in pngs)


@pytest.mark.slow
def test_offline_wandb_run_holds_metrics_and_heatmaps(tmp_path, data_root, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb-data"))
    run_dir = tmp_path / "run"
    cfg = compose_train([*tiny_overrides(tmp_path, data_root, n=120), f"run_dir={run_dir}",
                         "logger=wandb", "trainer.max_steps=6", "trainer.val_check_interval=3",
                         "trainer.log_every_n_steps=1",
                         "trainer.limit_val_batches=1", "test=false"])
    train(cfg)
    runs = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    files = runs[0] / "files"
    images = list(files.rglob("*.png"))
    assert images, "no heatmap image in the offline W&B run"
    history = list(runs[0].glob("run-*.wandb"))
    assert history, "no W&B history file"
    logged = history[0].read_bytes()
    assert b"val/bleu" in logged and b"train/loss" in logged


@pytest.mark.slow
def test_early_stopping_ends_a_run_whose_bleu_stopped_rising(tmp_path, data_root):
    run_dir = tmp_path / "run"
    # lr 0: the weights never change, so val/bleu never improves after the first validation
    cfg = compose_train([*tiny_overrides(tmp_path, data_root, n=120), f"run_dir={run_dir}",
                         "optim.lr=0", "trainer.max_epochs=20",
                         "callbacks.early_stopping.patience=2", "test=false"])
    train(cfg)
    validations = [r for r in _metrics(run_dir) if r.get("val/bleu")]
    assert len(validations) == 3  # the first, then `patience` without improvement
