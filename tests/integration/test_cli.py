"""The documented commands, run as a user runs them: train.py, then translate.py."""

from __future__ import annotations

import gzip
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from seq2seq.data.corpus import read_lines
from tests.conftest import ROOT
from tests.integration.conftest import NARROW, tiny_overrides


def run(args: list[str], cwd: Path, timeout: int = 900, stdin: str | None = None,
        env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "WANDB_MODE": "offline", **(env or {})}
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, input=stdin, env=full_env)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_root):
    """The README's first command, `python train.py`, cut to 60 steps of the default model
    narrowed (NARROW)."""
    tmp = tmp_path_factory.mktemp("cli")
    proc = run([str(ROOT / "train.py"), f"hydra.run.dir={tmp}/RUN", "trainer.accelerator=cpu",
                "trainer.devices=1", "trainer.max_steps=60", "trainer.limit_val_batches=2",
                *NARROW],
               cwd=tmp, env={"SEQ2SEQ_DATA_DIR": str(data_root),
                             "SEQ2SEQ_CACHE_DIR": str(tmp / "cache")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp, proc


@pytest.mark.slow
def test_train_writes_last_checkpoint_and_prints_test_bleu(trained):
    tmp, proc = trained
    assert (tmp / "RUN" / "checkpoints" / "last.ckpt").is_file()
    assert "BLEU" in proc.stdout and "nrefs:1|case:mixed" in proc.stdout
    hyps = (tmp / "RUN" / "translations" / "test.hyp.txt").read_text().splitlines()
    assert len(hyps) == 1000


@pytest.mark.slow
def test_checkpoint_loads_with_torch_weights_only(trained):
    tmp, _ = trained
    proc = run(["-c", "import torch; torch.load('RUN/checkpoints/last.ckpt', weights_only=True)"],
               cwd=tmp)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.slow
def test_translate_gives_one_line_per_input_line(trained):
    tmp, _ = trained
    lines = ["Ein Mann schläft.", "", "Zwei Kinder spielen im Park.", "Ein Hund."]
    (tmp / "IN").write_text("\n".join(lines) + "\n", encoding="utf-8")
    proc = run([str(ROOT / "translate.py"), "ckpt=RUN/checkpoints/last.ckpt", "src=IN",
                "out=OUT"], cwd=tmp)
    assert proc.returncode == 0, proc.stderr
    out = (tmp / "OUT").read_text(encoding="utf-8").split("\n")
    assert out[-1] == "" and len(out[:-1]) == 4
    assert out[1] == "" and all(out[i] for i in (0, 2, 3))


@pytest.mark.slow
def test_translate_streams_stdin_to_stdout(trained):
    tmp, _ = trained
    proc = run([str(ROOT / "translate.py"), "ckpt=RUN/checkpoints/last.ckpt"], cwd=tmp,
               stdin="Ein Mann schläft.\nEine Frau liest.\n")
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 2


@pytest.mark.slow
def test_translate_empty_input_writes_empty_output(trained):
    tmp, _ = trained
    (tmp / "EMPTY").write_text("")
    proc = run([str(ROOT / "translate.py"), "ckpt=RUN/checkpoints/last.ckpt", "src=EMPTY",
                "out=OUT_EMPTY"], cwd=tmp)
    assert proc.returncode == 0, proc.stderr
    assert (tmp / "OUT_EMPTY").read_text() == ""


def test_translate_missing_checkpoint_fails_clearly(tmp_path):
    (tmp_path / "IN").write_text("Hallo\n")
    proc = run([str(ROOT / "translate.py"), "ckpt=missing.ckpt", "src=IN", "out=OUT"],
               cwd=tmp_path, timeout=120)
    assert proc.returncode != 0
    assert "missing.ckpt" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "OUT").exists()


def test_unequal_parallel_files_fail_clearly(tmp_path):
    (tmp_path / "T.de").write_text("eins\nzwei\ndrei\n")
    (tmp_path / "T.en").write_text("one\ntwo\n")
    proc = run([str(ROOT / "train.py"), "data=parallel_files", "data.train.src=T.de",
                "data.train.tgt=T.en", "data.val.src=T.de", "data.val.tgt=T.en",
                "data.test.src=T.de", "data.test.tgt=T.en", f"hydra.run.dir={tmp_path}/RUN",
                f"data.cache_dir={tmp_path}/cache"], cwd=tmp_path, timeout=120)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert "T.de has 3 lines" in proc.stderr and "T.en has 2 lines" in proc.stderr


@pytest.mark.slow
def test_training_files_given_as_a_list_of_plain_and_gzip_files(tmp_path, data_root):
    """`data.train.src=[a.de,b.de.gz]`: both corpora are read, the plain one first."""
    overrides = [o for o in tiny_overrides(tmp_path, data_root)
                 if not o.startswith("data.train.")]
    m = data_root / "multi30k"
    for lang in ("de", "en"):
        lines = read_lines(m / f"train.{lang}.gz")[:200]
        (tmp_path / f"a.{lang}").write_text("\n".join(lines[:120]) + "\n", encoding="utf-8")
        (tmp_path / f"b.{lang}.gz").write_bytes(gzip.compress(
            ("\n".join(lines[120:]) + "\n").encode("utf-8")))
    proc = run([str(ROOT / "train.py"), *overrides, "data.train.src=[a.de,b.de.gz]",
                "data.train.tgt=[a.en,b.en.gz]", f"hydra.run.dir={tmp_path}/RUN",
                "trainer.max_steps=2", "trainer.limit_val_batches=1", "test=false"],
               cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts = re.search(r"training pairs: (\d+) kept, (\d+) empty skipped, (\d+) longer",
                       proc.stdout + proc.stderr)
    assert counts, (proc.stdout + proc.stderr)[-3000:]
    kept, empty, long = map(int, counts.groups())
    assert kept + empty + long == 200 and kept > 120  # pairs of b.* too


@pytest.mark.slow
def test_translate_with_beam_and_reference(trained, data_root):
    tmp, _ = trained
    m = data_root / "multi30k"
    (tmp / "SRC").write_text("\n".join(read_lines(m / "val.de.gz")[:20]) + "\n")
    (tmp / "REF").write_text("\n".join(read_lines(m / "val.en.gz")[:20]) + "\n")
    proc = run([str(ROOT / "translate.py"), "ckpt=RUN/checkpoints/last.ckpt", "src=SRC",
                "out=OUT5", "beam=5", "ref=REF"], cwd=tmp)
    assert proc.returncode == 0, proc.stderr
    assert len((tmp / "OUT5").read_text().splitlines()) == 20
    assert "BLEU" in proc.stderr and "nrefs:1|case:mixed" in proc.stderr


@pytest.mark.slow
def test_wandb_command_logs_bleu_heatmaps_and_images(tmp_path, data_root):
    """The observability command as written: offline W&B, validation every 20 steps."""
    proc = run([str(ROOT / "train.py"), f"hydra.run.dir={tmp_path}/RUN", "trainer.accelerator=cpu",
                "trainer.devices=1", "trainer.max_steps=40", "trainer.val_check_interval=20",
                "trainer.limit_val_batches=2", "logger=wandb", *NARROW], cwd=tmp_path,
               env={"SEQ2SEQ_DATA_DIR": str(data_root), "WANDB_DIR": str(tmp_path),
                    "WANDB_CACHE_DIR": str(tmp_path / "wc"), "WANDB_DATA_DIR": str(tmp_path / "wd"),
                    "SEQ2SEQ_CACHE_DIR": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = tmp_path / "RUN"
    assert len(list((run_dir / "attention").glob("*.png"))) == 2 * 3  # steps 20 and 40
    runs = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list((runs[0] / "files").rglob("*.png"))
    logged = next(runs[0].glob("run-*.wandb")).read_bytes()
    assert b"val/bleu" in logged and b"val/chrf" in logged


def test_translate_help_lists_only_translate_options(tmp_path):
    proc = run([str(ROOT / "translate.py"), "--help"], cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "ckpt:" in proc.stdout and "rerank_weight:" in proc.stdout and "beam:" in proc.stdout
    for group in ("data", "experiment", "hparams_search", "callbacks", "logger", "model",
                  "optim", "scheduled_sampling", "trainer", "debug"):
        assert f"{group}:" not in proc.stdout and f"\n{group}\n" not in proc.stdout, group
    assert "Configuration groups" not in proc.stdout
