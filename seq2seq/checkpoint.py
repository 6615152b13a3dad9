"""Loading checkpoints safely: `torch.load(weights_only=True)`, never arbitrary pickles."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from fsspec.implementations.local import LocalFileSystem
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.pytorch.plugins.io import TorchCheckpointIO

from seq2seq.atomic import atomic_open
from seq2seq.module import Seq2SeqModule


class CheckpointError(ValueError):
    """A checkpoint that is missing, damaged, unsafe or not one of ours."""


class StreamingCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, but local checkpoints stream straight into a temporary file
    beside the target, renamed into place when complete.

    Lightning's own writer serializes the whole checkpoint into memory and copies it before
    writing, which adds twice the checkpoint's size (weights and Adam moments: 170 MB for the
    reference model) to the peak memory of training. Remote paths (s3://, gs://, ...) still go
    through Lightning's writer.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any = None
                        ) -> None:
        if storage_options is not None or not isinstance(get_filesystem(path), LocalFileSystem):
            return super().save_checkpoint(checkpoint, path, storage_options)
        with atomic_open(path) as f:
            torch.save(checkpoint, f)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """The checkpoint's contents, loaded with `weights_only=True` (no code can run)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found (looked at {path.resolve()}); "
                              "train a model first or pass ckpt=<run dir>/checkpoints/last.ckpt")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{path}: refused to load: it holds objects other than tensors and plain data "
            f"({str(e).splitlines()[0][:200]}); only load checkpoints you trust, re-saved "
            "as plain data") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as e:
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or damaged? "
                              f"{str(e).splitlines()[0][:200]})") from None


def load_module(path: str | Path, map_location: str | torch.device = "cpu") -> Seq2SeqModule:
    """Rebuild the trained model, with its tokenizers, from a checkpoint file."""
    ckpt = load_checkpoint(path, map_location)
    hp = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    if not hp or "config" not in hp or "state_dict" not in ckpt or "tokenizers" not in ckpt:
        raise CheckpointError(f"{path}: not a seq2seq checkpoint (no model config, weights or "
                              "tokenizers inside)")
    module = Seq2SeqModule(hp["config"], hp["src_vocab_size"], hp["tgt_vocab_size"])
    try:
        module.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit the model config "
                              f"({str(e).splitlines()[0][:200]})") from None
    module.on_load_checkpoint(ckpt)
    return module.eval()
