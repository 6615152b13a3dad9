"""Trainer options that interact with the token-budget batch sampler: gradient accumulation and
a wall-clock limit."""

from __future__ import annotations

import json
import math

import pytest
import torch

from seq2seq import precision
from seq2seq.pipeline import train
from tests.conftest import compose_train, count_casts
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


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_adam_is_fused_and_clips_in_float32_and_in_bf16_on_a_cpu(tmp_path, data_root,
                                                                  precision):
    """bf16-mixed on a CPU (CastWeightsPrecision) keeps float32 weights and gradients, so the
    fused Adam clips and steps as in float32 (Lightning's autocast plugin, used on GPUs, cannot
    clip for a fused optimizer)."""
    ckpt = _train_tiny(tmp_path, data_root, f"trainer.precision={precision}",
                       "trainer.max_steps=3", "trainer.gradient_clip_val=1.0")
    assert ckpt["global_step"] == 3
    assert ckpt["optimizer_states"][0]["param_groups"][0]["fused"] is True
    assert all(v.dtype == torch.float32 for v in ckpt["state_dict"].values()
               if v.is_floating_point())
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values())


@pytest.mark.slow
def test_bf16_casts_the_weights_once_per_step_and_reports_its_precision(tmp_path, data_root,
                                                                         monkeypatch):
    calls = count_casts(monkeypatch, "seq2seq.precision.cast_weights")
    run_dir = tmp_path / "run"
    train(compose_train([*tiny_overrides(tmp_path, data_root), f"run_dir={run_dir}",
                         "trainer.precision=bf16-mixed", "trainer.max_steps=4",
                         "trainer.limit_val_batches=0", "test=false"]))
    assert calls == [torch.bfloat16] * 4  # one cast per training step, none per time step
    results = json.loads((run_dir / "results.json").read_text())
    assert results["precision"]["requested"] == "bf16-mixed"
    assert results["precision"]["used"] == "bf16-mixed"
    assert set(results["precision"]["cpu"]) == {"capability", "avx512_bf16", "amx_bf16"}


@pytest.mark.slow
def test_auto_precision_is_resolved_and_recorded(tmp_path, data_root):
    run_dir = tmp_path / "run"
    train(compose_train([*tiny_overrides(tmp_path, data_root), f"run_dir={run_dir}",
                         "trainer.precision=auto", "trainer.max_steps=2", "test=false"]))
    results = json.loads((run_dir / "results.json").read_text())
    want = "bf16-mixed" if precision.native_bf16("cpu") else "32-true"
    assert results["precision"] == {"requested": "auto", "used": want,
                                    "cpu": precision.cpu_features()}


def test_auto_is_the_default_precision():
    from omegaconf import OmegaConf

    from tests.conftest import CONF

    assert OmegaConf.load(CONF / "trainer" / "default.yaml").precision == "auto"


@pytest.mark.slow
@pytest.mark.parametrize("requested", [None, "bf16-mixed"])
def test_the_quick_recipe_commands_train_in_the_precision_they_name(tmp_path, data_root,
                                                                    requested):
    """`python train.py experiment=multi30k_quick` (auto) and the same with
    `trainer.precision=bf16-mixed`, cut to 3 updates of a narrowed model (NARROW): the recipe
    trains in what it asked for and records it (its GRU model runs in bf16 on any CPU)."""
    from tests.conftest import ROOT
    from tests.integration.conftest import NARROW
    from tests.integration.test_cli import run

    args = [str(ROOT / "train.py"), "experiment=multi30k_quick", "hydra.run.dir=RUN",
            "trainer.max_steps=3", "trainer.val_check_interval=3", "trainer.limit_val_batches=1",
            "test=false", "logger=csv", *NARROW]
    if requested:
        args.append(f"trainer.precision={requested}")
    env = {"SEQ2SEQ_DATA_DIR": str(data_root), "SEQ2SEQ_CACHE_DIR": str(tmp_path / "cache"),
           "OMP_NUM_THREADS": "1"}
    proc = run(args, cwd=tmp_path, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "RUN" / "results.json").read_text())
    want = requested or ("bf16-mixed" if precision.native_bf16("cpu") else "32-true")
    assert results["precision"]["requested"] == (requested or "auto")
    assert results["precision"]["used"] == want
    assert results["steps"] == 3
