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
