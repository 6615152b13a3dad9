"""The debug configs (conf/debug/*.yaml), each run in-process on the tiny corpus."""

from __future__ import annotations

import csv
import json
import logging

import pytest
from hydra.utils import instantiate

from seq2seq.pipeline import train
from tests.conftest import compose_train
from tests.integration.conftest import tiny_overrides

RECORDER = "+callbacks.recorder._target_=tests.integration.batch_recorder.BatchRecorder"


def _run(tmp_path, data_root, debug: str, *extra: str):
    cfg = compose_train([*tiny_overrides(tmp_path, data_root), f"run_dir={tmp_path}/run",
                         f"debug={debug}", *extra])
    metrics = train(cfg)
    return cfg, metrics, json.loads((tmp_path / "run" / "results.json").read_text())


@pytest.mark.slow
def test_fdr_runs_one_step_and_writes_no_checkpoint(tmp_path, data_root):
    _, metrics, results = _run(tmp_path, data_root, "fdr")
    assert results["steps"] == 1
    assert not (tmp_path / "run" / "checkpoints").exists()
    assert "test/bleu" in metrics  # the test step ran, on the weights in memory


@pytest.fixture(scope="module")
def overfit_run(tmp_path_factory, data_root):
    """debug=overfit with each epoch's batches recorded; lr 1e-2 so that the tiny model
    memorizes within the config's 40 epochs."""
    tmp = tmp_path_factory.mktemp("overfit")
    cfg, _, results = _run(tmp, data_root, "overfit", "optim.lr=1e-2",
                           RECORDER, f"+callbacks.recorder.folder={tmp}/batches")
    return tmp, cfg, results


@pytest.mark.slow
def test_overfit_trains_only_the_overfit_batches(overfit_run):
    _, cfg, results = overfit_run
    assert results["steps"] == cfg.trainer.overfit_batches * cfg.trainer.max_epochs


@pytest.mark.slow
def test_overfit_repeats_the_same_batches(overfit_run):
    tmp, cfg, _ = overfit_run
    epochs = [json.loads((tmp / "batches" / f"rank0-epoch{e}.json").read_text())
              for e in range(cfg.trainer.max_epochs)]
    assert all(batches == epochs[0] for batches in epochs)


@pytest.mark.slow
def test_overfit_drives_the_training_loss_down(overfit_run):
    tmp, _, _ = overfit_run
    with open(tmp / "run" / "csv" / "metrics.csv") as f:
        losses = [float(r["train/loss"]) for r in csv.DictReader(f) if r["train/loss"]]
    assert len(losses) >= 10
    # memorized on the same 4 batches (about 2.7 at the end when each epoch draws other batches)
    assert losses[-1] < 0.3 * losses[0], losses


@pytest.mark.slow
def test_limit_trains_the_limited_batches_each_epoch(tmp_path, data_root):
    cfg, _, results = _run(tmp_path, data_root, "limit")
    data = instantiate(cfg.data)
    data.build_tokenizers()
    data.setup("fit")
    per_epoch = int(len(data.train_dataloader()) * cfg.trainer.limit_train_batches)
    assert 1 <= per_epoch < len(data.train_dataloader())
    assert results["epochs"] == cfg.trainer.max_epochs
    assert results["steps"] == per_epoch * cfg.trainer.max_epochs


@pytest.mark.slow
def test_profiler_reports_the_training_step(tmp_path, data_root):
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())
    logger = logging.getLogger("lightning.pytorch.profilers")
    logger.addHandler(handler)
    try:
        _, _, results = _run(tmp_path, data_root, "profiler")
    finally:
        logger.removeHandler(handler)
    assert results["steps"] == 20
    report = "\n".join(records)
    assert "Profiler Report" in report and "run_training_batch" in report
