"""Faults end cleanly. Data that cannot be prepared ends in one `error: ...` line naming the
files and leaves no cache file behind; a damaged cache file is rebuilt. A NaN loss stops the run
with a clear message and keeps the last good checkpoint, or, with loss.on_nonfinite=skip, the
batch is skipped and training goes on."""

from __future__ import annotations

import gzip
import logging
import math

import pytest
import torch
from hydra.utils import instantiate

from seq2seq.data.errors import DataError
from seq2seq.module import NonFiniteLossError, Seq2SeqModule
from seq2seq.pipeline import train
from tests.conftest import ROOT, compose_train
from tests.integration.conftest import tiny_overrides
from tests.integration.test_cli import run


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


# -- data that cannot be prepared ---------------------------------------------------------------


def test_train_on_files_of_empty_lines_ends_in_one_error_line(tmp_path):
    src, tgt = tmp_path / "e.de", tmp_path / "e.en"
    src.write_text("\n\n\n")
    tgt.write_text("\n\n\n")
    cache = tmp_path / "cache"
    proc = run([str(ROOT / "train.py"), "data=parallel_files",
                *(f"data.{split}.{side}={path}" for split in ("train", "val", "test")
                  for side, path in (("src", src), ("tgt", tgt)))],
               cwd=tmp_path, timeout=300, env={"SEQ2SEQ_CACHE_DIR": str(cache)})
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr + proc.stdout
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and str(src) in errors[0] and "one sentence a line" in errors[0]
    # nothing a later run could trust (the empty lock file that serialises training may stay)
    assert not cache.exists() or [p for p in cache.rglob("*") if p.suffix != ".lock"] == []


def parallel_files(tmp_path, src: list[str], tgt: list[str], *overrides: str):
    """The datamodule train.py builds for data=parallel_files on `src` / `tgt` (every split)."""
    for name, lines in (("s", src), ("t", tgt)):
        (tmp_path / name).write_text("".join(f"{ln}\n" for ln in lines), encoding="utf-8")
    files = [f"data.{split}.{side}={tmp_path / name}" for split in ("train", "val", "test")
             for side, name in (("src", "s"), ("tgt", "t"))]
    cfg = compose_train(["data=parallel_files", *files, f"data.cache_dir={tmp_path / 'c'}",
                         *overrides])
    return instantiate(cfg.data)


def test_one_empty_side_without_joint_vocab_names_that_file(tmp_path):
    dm = parallel_files(tmp_path, ["ein hund", "eine katze"] * 10, [""] * 20,
                        "data.joint_vocab=false", "data.vocab_size=30")
    with pytest.raises(DataError) as err:
        dm.setup("fit")
    assert str(err.value).startswith(f"every line of {tmp_path / 't'} is empty")
    assert not list((tmp_path / "c").glob("spm-tgt-*"))


def test_vocab_size_too_small_for_the_characters_names_the_files(tmp_path):
    dm = parallel_files(tmp_path, ["ein hund", "eine katze"] * 10, ["a dog", "a cat"] * 10,
                        "data.vocab_size=12")
    with pytest.raises(DataError) as err:
        dm.setup("fit")
    msg = str(err.value)
    assert f"{tmp_path / 's'} and {tmp_path / 't'}" in msg
    assert msg.endswith("raise data.vocab_size to at least 18")  # 13 letters, ▁, 4 special


@pytest.mark.parametrize("damage", ["truncated", "not gzip"])
def test_damaged_gzip_file_is_named(tmp_path, damage):
    dm = parallel_files(tmp_path, ["ein hund"] * 200, ["a dog"] * 200)
    good = gzip.compress(b"ein hund\n" * 200)
    (tmp_path / "s.gz").write_bytes(good[:40] if damage == "truncated" else b"ein hund\n")
    dm.files["train"]["src"] = str(tmp_path / "s.gz")
    with pytest.raises(DataError) as err:
        dm.setup("fit")
    msg = str(err.value)
    assert msg.startswith(f"{tmp_path / 's.gz'}: not a readable gzip file")
    assert "truncated or damaged" in msg


def test_folder_given_as_a_data_file_is_named(tmp_path):
    dm = parallel_files(tmp_path, ["ein hund"] * 5, ["a dog"] * 5)
    dm.files["train"]["src"] = str(tmp_path)
    with pytest.raises(DataError, match=f"^{tmp_path}: is a folder"):
        dm.setup("fit")
