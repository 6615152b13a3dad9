"""A NaN loss stops the run with a clear message and keeps the last good checkpoint, or, with
loss.on_nonfinite=skip, the batch is skipped and training goes on."""

from __future__ import annotations

import logging
import math

import pytest
import torch

from seq2seq.module import NonFiniteLossError, Seq2SeqModule
from seq2seq.pipeline import train
from tests.conftest import compose_train
from tests.integration.conftest import tiny_overrides


@pytest.fixture
def nan_in_second_epoch(monkeypatch):
    """The loss of the second batch of the second epoch becomes NaN."""
    original = Seq2SeqModule._loss
    calls = {"epoch": None, "batch": 0}

    def poisoned(self, batch, ratio=1.0):
        loss_sum, nll_sum, ntok = original(self, batch, ratio)
        if self.training:
            if calls["epoch"] != self.current_epoch:
                calls.update(epoch=self.current_epoch, batch=0)
            calls["batch"] += 1
            if self.current_epoch == 1 and calls["batch"] == 2:
                return loss_sum * math.nan, nll_sum, ntok
        return loss_sum, nll_sum, ntok

    monkeypatch.setattr(Seq2SeqModule, "_loss", poisoned)


@pytest.mark.slow
def test_nan_loss_stops_with_a_message_naming_the_last_good_checkpoint(
        nan_in_second_epoch, tmp_path, data_root):
    run_dir = tmp_path / "run"
    cfg = compose_train([*tiny_overrides(tmp_path, data_root), f"run_dir={run_dir}",
                         "trainer.max_epochs=3"])
    with pytest.raises(NonFiniteLossError) as err:
        train(cfg)
    msg = str(err.value)
    last = run_dir / "checkpoints" / "last.ckpt"
    assert "nan" in msg and "epoch 1" in msg and str(last) in msg and "on_nonfinite=skip" in msg
    ckpt = torch.load(last, weights_only=True)
    assert ckpt["epoch"] == 0
    assert all(torch.isfinite(t).all() for t in ckpt["state_dict"].values())


@pytest.mark.slow
def test_nan_loss_batch_is_skipped_when_configured(nan_in_second_epoch, tmp_path, data_root,
                                                   caplog):
    run_dir = tmp_path / "run"
    cfg = compose_train([*tiny_overrides(tmp_path, data_root), f"run_dir={run_dir}",
                         "trainer.max_epochs=2", "loss.on_nonfinite=skip", "test=false"])
    with caplog.at_level(logging.WARNING, logger="seq2seq.module"):
        train(cfg)
    skipped = [r.getMessage() for r in caplog.records if "non-finite loss" in r.getMessage()]
    assert len(skipped) == 1 and "epoch 1" in skipped[0]
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["epoch"] == 1  # training went on to the end
    assert all(torch.isfinite(t).all() for t in ckpt["state_dict"].values())
