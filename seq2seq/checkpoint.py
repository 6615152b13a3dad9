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
from seq2seq.models.ensemble import Ensemble
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


def load_ensemble(paths: list[str | Path], map_location: str | torch.device = "cpu",
                  ) -> Seq2SeqModule:
    """Rebuild several trained models as one module that decodes with their ensemble
    (seq2seq/models/ensemble.py), for translation only.

    The result is the first checkpoint's module (its tokenizers, `decode` settings and
    max_len) with its model replaced by the ensemble of all. The checkpoints may hold different
    architectures but must carry the same SentencePiece models, since their vocabularies are
    combined id by id. One path gives the plain model.
    """
    if not paths:
        raise CheckpointError("no checkpoints to ensemble")
    modules = [load_module(p, map_location) for p in paths]
    first = modules[0]
    if len(modules) == 1:
        return first
    for path, m in zip(paths[1:], modules[1:], strict=True):
        if (m.src_tokenizer.model_proto != first.src_tokenizer.model_proto
                or m.tgt_tokenizer.model_proto != first.tgt_tokenizer.model_proto):
            raise CheckpointError(
                f"{path}: its SentencePiece models differ from those of {paths[0]}; an ensemble "
                "needs models trained on the same data with the same data.vocab_size, "
                "vocab_type and joint_vocab")
    first.model = Ensemble([m.model for m in modules])
    return first.eval()


def _same_tokenizers(a: dict, b: dict) -> bool:
    """Whether two checkpoints carry the same SentencePiece models (serialized as uint8 tensors)."""
    ta, tb = a.get("tokenizers") or {}, b.get("tokenizers") or {}
    return ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)


def average_checkpoints(paths: list[str | Path]) -> dict:
    """One checkpoint whose weights are the element-wise mean of those in `paths` (checkpoint
    averaging, as JoeyNMT's and OpenNMT-py's average scripts do), for decoding.

    Every checkpoint must hold the same model config and tokenizers. The result is the last
    checkpoint with its weights replaced by the mean (accumulated in float64) and its optimizer
    and scheduler states dropped, since they cannot be averaged meaningfully: translate.py and
    `load_module` read it like any other checkpoint; it cannot resume training.
    """
    if not paths:
        raise CheckpointError("no checkpoints to average")
    first_path, first = Path(paths[0]), load_checkpoint(paths[0])
    config = first.get("hyper_parameters", {}).get("config", {}).get("model")
    total = {k: v.double() if v.is_floating_point() else v
             for k, v in first["state_dict"].items()}
    last = first
    for path in paths[1:]:
        ckpt = load_checkpoint(path)
        other = ckpt.get("hyper_parameters", {}).get("config", {}).get("model")
        if (other != config or ckpt["state_dict"].keys() != total.keys()
                or not _same_tokenizers(ckpt, first)):
            raise CheckpointError(
                f"{path}: another model than {first_path} (model config, weight names or "
                "tokenizers differ); average checkpoints of one run only")
        for k, v in ckpt["state_dict"].items():
            if v.shape != total[k].shape:
                raise CheckpointError(f"{path}: {k} has shape {tuple(v.shape)}, "
                                      f"{tuple(total[k].shape)} in {first_path}")
            if v.is_floating_point():
                total[k] += v.double()
        last = ckpt
    state = {k: (v / len(paths)).to(last["state_dict"][k].dtype) if v.is_floating_point()
             else last["state_dict"][k] for k, v in total.items()}
    drop = {"optimizer_states", "lr_schedulers", "loops", "callbacks"}
    out = {k: v for k, v in last.items() if k not in drop}
    out["state_dict"] = state
    out["averaged_from"] = [str(p) for p in paths]
    return out
