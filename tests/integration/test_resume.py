"""A run killed with SIGKILL mid-epoch and resumed with ckpt_path=last ends with exactly the
weights of an uninterrupted run (CPU, same seed), and leaves no half-written file behind."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch

from tests.conftest import ROOT
from tests.integration.conftest import tiny_overrides
from tests.integration.test_cli import run

EPOCHS = 6


def _args(overrides, run_dir):
    return [str(ROOT / "train.py"), *overrides, f"hydra.run.dir={run_dir}",
            f"trainer.max_epochs={EPOCHS}", "callbacks.early_stopping=null", "test=false"]


def _weights(path):
    return torch.load(path, weights_only=True)["state_dict"]


@pytest.mark.slow
def test_killed_and_resumed_run_ends_with_the_uninterrupted_weights(tmp_path, data_root):
    overrides = tiny_overrides(tmp_path, data_root, n=300)
    env = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    full = run(_args(overrides, tmp_path / "FULL"), cwd=tmp_path, env=env, timeout=600)
    assert full.returncode == 0, full.stderr[-3000:]

    killed = tmp_path / "KILLED"
    proc = subprocess.Popen([sys.executable, *_args(overrides, killed)], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = killed / "checkpoints" / "last.ckpt"
    deadline = time.time() + 300
    while not last.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(random.uniform(0.0, 0.5))  # somewhere in a later epoch
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    epoch_at_kill = torch.load(last, weights_only=True)["epoch"]
    assert epoch_at_kill < EPOCHS - 1

    resumed = run([*_args(overrides, killed), "ckpt_path=last"], cwd=tmp_path, env=env,
                  timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = _weights(tmp_path / "FULL" / "checkpoints" / "last.ckpt"), _weights(last)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    leftovers = [p.name for p in killed.rglob("*") if p.is_file()
                 and (".tmp" in p.name or p.name.startswith("tmp"))]
    assert leftovers == []


def _step_args(overrides, run_dir, steps, every):
    return [str(ROOT / "train.py"), *overrides, f"hydra.run.dir={run_dir}",
            f"trainer.max_steps={steps}", "callbacks.early_stopping=null", "test=false",
            f"callbacks.last_checkpoint.every_n_train_steps={every}"]


@pytest.mark.slow
def test_run_stopped_mid_epoch_resumes_at_the_next_batch(tmp_path, data_root):
    # 36 batches an epoch: stopped at step 20 (epoch 0) and 45 (epoch 1), each time resumed from
    # its mid-epoch last.ckpt, the run ends at step 60 with the uninterrupted run's weights
    overrides = tiny_overrides(tmp_path, data_root, n=300)
    env = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    full = run(_step_args(overrides, tmp_path / "FULL", 60, 5), cwd=tmp_path, env=env,
               timeout=600)
    assert full.returncode == 0, full.stderr[-3000:]

    stopped, last = tmp_path / "STOPPED", tmp_path / "STOPPED" / "checkpoints" / "last.ckpt"
    for i, (steps, epoch, batches) in enumerate(((20, 0, 20), (45, 1, 9), (60, 1, 24))):
        resume = ["ckpt_path=last"] if i else []
        proc = run([*_step_args(overrides, stopped, steps, 5), *resume], cwd=tmp_path, env=env,
                   timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        ckpt = torch.load(last, weights_only=True)
        assert (ckpt["global_step"], ckpt["epoch"]) == (steps, epoch)
        # the training DataLoader's place in the epoch, saved by Lightning with the fit loop
        assert ckpt["loops"]["fit_loop"]["state_dict"]["combined_loader"] == [
            {"epoch": epoch, "batches": batches}]
    a, b = _weights(tmp_path / "FULL" / "checkpoints" / "last.ckpt"), _weights(last)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
