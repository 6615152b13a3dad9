"""Atomic writes: a failed write keeps the previous file; checkpoints stream to disk."""

from __future__ import annotations

import os
import stat

import pytest
import torch

from seq2seq.atomic import atomic_open, atomic_write_bytes
from seq2seq.checkpoint import StreamingCheckpointIO


class _Unpicklable:
    def __reduce__(self):
        raise RuntimeError("cannot pickle this")


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "out.txt"
    atomic_write_bytes(path, b"old")
    with pytest.raises(RuntimeError), atomic_open(path) as f:
        f.write(b"half")
        raise RuntimeError("crash")
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_written_files_get_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "a", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o644


def test_checkpoints_stream_to_disk_without_lightnings_in_memory_copy(tmp_path, monkeypatch):
    from lightning.pytorch.plugins.io import TorchCheckpointIO

    def in_memory(*_args, **_kw):
        raise AssertionError("went through Lightning's in-memory writer")

    monkeypatch.setattr(TorchCheckpointIO, "save_checkpoint", in_memory)
    io = StreamingCheckpointIO()
    path = tmp_path / "checkpoints" / "last.ckpt"
    state = {"state_dict": {"w": torch.arange(6.0).view(2, 3)}, "epoch": 3}
    io.save_checkpoint(state, path)
    loaded = torch.load(path, weights_only=True)
    assert loaded["epoch"] == 3 and torch.equal(loaded["state_dict"]["w"], state["state_dict"]["w"])

    with pytest.raises(RuntimeError, match="cannot pickle"):
        io.save_checkpoint({"epoch": 4, "bad": _Unpicklable()}, path)
    assert torch.load(path, weights_only=True)["epoch"] == 3  # the previous checkpoint is intact
    assert sorted(os.listdir(path.parent)) == ["last.ckpt"]
