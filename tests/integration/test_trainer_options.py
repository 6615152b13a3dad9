"""Trainer options that interact with the token-budget batch sampler: gradient accumulation and
a wall-clock limit."""

from __future__ import annotations

import math

import pytest
import torch

from seq2seq.pipeline import train
from tests.conftest import compose_train
from tests.integration.conftest import tiny_overrides


def _train_tiny(tmp_path, data_root, *overrides) -> dict:
    """Train the tiny model with `overrides`; its last checkpoint."""
    run_dir = tmp_path / "run"
    train(compose_train([*tiny_overrides(tmp_path, data_root), f"run_dir={run_dir}",
                         "test=false", *overrides]))
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)


@pytest.mark.slow
def test_gradient_accumulation_takes_one_step_per_k_batches(tmp_path, data_root):
    ckpt = _train_tiny(tmp_path, data_root, "trainer.max_epochs=2",
                       "trainer.accumulate_grad_batches=3")
    batches = ckpt["loops"]["fit_loop"]["epoch_loop.batch_progress"]["total"]["completed"]
    assert batches > 6 and ckpt["epoch"] == 1
    assert ckpt["global_step"] == 2 * math.ceil(batches / 2 / 3)


@pytest.mark.slow
def test_max_time_stops_a_token_budget_run_and_keeps_a_checkpoint(tmp_path, data_root):
    ckpt = _train_tiny(tmp_path, data_root, "trainer.max_epochs=1000",
                       "trainer.max_time=00:00:00:08")
    assert 0 < ckpt["global_step"] and ckpt["epoch"] < 999


@pytest.mark.parametrize(("precision", "fused"), [("32-true", True), ("bf16-mixed", None)])
def test_adam_is_fused_unless_a_mixed_precision_plugin_clips_the_gradients(
        tmp_path, data_root, precision, fused):
    """The mixed-precision plugin refuses to clip for an optimizer that unscales gradients
    itself (a fused Adam), so `optim.fused=null` leaves it unfused there; training goes on."""
    ckpt = _train_tiny(tmp_path, data_root, f"trainer.precision={precision}",
                       "trainer.max_steps=3", "trainer.gradient_clip_val=1.0")
    assert ckpt["global_step"] == 3
    assert ckpt["optimizer_states"][0]["param_groups"][0]["fused"] is fused
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values())
