"""The scale commands as written: DDP over two CPU processes, and a Hydra multirun sweep."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT
from tests.integration.conftest import NARROW, tiny_multi30k
from tests.integration.test_cli import run


def _env(data_root, tmp):
    return {"SEQ2SEQ_DATA_DIR": str(data_root), "SEQ2SEQ_CACHE_DIR": str(tmp / "cache"),
            "OMP_NUM_THREADS": "1"}


@pytest.mark.slow
def test_two_cpu_ranks_make_one_run_dir_and_one_checkpoint(tmp_path, data_root):
    proc = run([str(ROOT / "train.py"), "hydra.run.dir=RUN", "trainer.accelerator=cpu",
                "trainer.devices=2", "trainer.max_steps=10", "trainer.limit_val_batches=1",
                *NARROW],
               cwd=tmp_path, env=_env(data_root, tmp_path), timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert "GLOBAL_RANK: 0, MEMBER: 1/2" in log and "GLOBAL_RANK: 1, MEMBER: 2/2" in log
    assert [p.name for p in (tmp_path / "RUN" / "checkpoints").glob("*.ckpt")].count(
        "last.ckpt") == 1
    # Hydra ran once: the only output dirs are the one asked for (and no outputs/ default)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["RUN", "cache"]
    assert len(list(tmp_path.glob("RUN/**/.hydra"))) == 1


@pytest.mark.slow
def test_multirun_gives_each_job_its_own_run_dir(tmp_path, data_root):
    proc = run([str(ROOT / "train.py"), "-m", "hydra.sweep.dir=SWEEP",
                "model=gru_bahdanau,lstm_luong_general", "trainer.accelerator=cpu",
                "trainer.devices=1", "trainer.max_steps=5", "trainer.limit_val_batches=1", *NARROW],
               cwd=tmp_path, env=_env(data_root, tmp_path), timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = sorted(p for p in (tmp_path / "SWEEP").iterdir() if p.is_dir())
    assert [p.name for p in jobs] == ["0", "1"]
    for job, preset in zip(jobs, ("gru_bahdanau", "lstm_luong_general"), strict=True):
        assert (job / "checkpoints" / "last.ckpt").is_file()
        assert f"model={preset}" in (job / ".hydra" / "overrides.yaml").read_text()


# train.py run with the CPU probe saying that oneDNN has no bf16 kernel for nn.LSTM, so that the
# refusal is checked on every CPU, those with the kernel too
_NO_BF16_LSTM = """
import runpy, sys
from seq2seq import precision
precision.cpu_bf16_lstm_supported = lambda: False
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_bf16_with_lstm_where_the_cpu_lacks_the_kernel_ends_in_a_clear_message(tmp_path,
                                                                               data_root):
    root = tiny_multi30k(tmp_path / "data", data_root, {})  # the refusal needs no full corpus
    proc = run(["-c", _NO_BF16_LSTM, str(ROOT / "train.py"), "hydra.run.dir=RUN",
                "trainer.accelerator=cpu", "trainer.precision=bf16-mixed", "trainer.max_steps=1",
                f"data.root={root}", *NARROW],
               cwd=tmp_path, env=_env(data_root, tmp_path), timeout=600)
    assert proc.returncode == 2
    assert "error: trainer.precision=bf16-mixed" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_two_cpu_ranks_train_in_bf16_with_float32_master_weights(tmp_path, data_root):
    """bf16-mixed under DDP: each rank casts its weights once per step, gradients reach the
    float32 parameters DDP all-reduces, and both ranks stay in step (a GRU model, which oneDNN
    runs in bf16 on any CPU)."""
    import torch

    proc = run([str(ROOT / "train.py"), "hydra.run.dir=RUN", "trainer.accelerator=cpu",
                "model=gru_bahdanau", "trainer.devices=2", "trainer.precision=bf16-mixed",
                "trainer.max_steps=6", "trainer.limit_val_batches=1", "test=false", *NARROW],
               cwd=tmp_path, env=_env(data_root, tmp_path), timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "precision bf16-mixed (trainer.precision=bf16-mixed" in proc.stdout + proc.stderr
    ckpt = torch.load(tmp_path / "RUN" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 6
    weights = [v for v in ckpt["state_dict"].values() if v.is_floating_point()]
    assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in weights)
