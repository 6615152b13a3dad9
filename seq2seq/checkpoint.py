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
from omegaconf import DictConfig, OmegaConf

from seq2seq import CONF_DIR
from seq2seq.atomic import atomic_open
from seq2seq.models.ensemble import Ensemble
from seq2seq.models.seq2seq import MOVED
from seq2seq.module import Seq2SeqModule
from seq2seq.scheduled_sampling import SCHEDULES


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


def _yaml(*parts: str) -> dict:
    return OmegaConf.to_container(OmegaConf.load(CONF_DIR.joinpath(*parts)))


def _filled(values: dict, defaults: dict) -> dict:
    """`values` with the keys it lacks taken from `defaults`, section by section."""
    out = dict(values)
    for key, default in defaults.items():
        if key not in out:
            out[key] = default
        elif isinstance(default, dict) and isinstance(out[key], dict):
            out[key] = _filled(out[key], default)
    return out


def _upgraded(config: dict) -> dict:
    """A checkpoint's module config as the loading code expects it. Keys added since the
    checkpoint was written take their conf/ values (train.yaml's sections, the optimizer's file,
    the default model's top-level keys and the encoder and decoder files of the checkpoint's
    cells); class paths that have moved take their new place (seq2seq/models/seq2seq.py,
    MOVED); scheduled-sampling keys its schedule does not read are dropped."""
    train_yaml = _yaml("train.yaml")
    model = dict(config.get("model", {}))
    for part in ("encoder", "attention", "decoder"):
        if isinstance(model.get(part), dict) and model[part].get("_target_") in MOVED:
            model[part] = {**model[part], "_target_": MOVED[model[part]["_target_"]]}
    for part in ("encoder", "decoder"):
        if isinstance(model.get(part), dict) and model[part].get("cell") in ("lstm", "gru"):
            model[part] = _filled(model[part], _yaml("model", part, f"{model[part]['cell']}.yaml"))
    preset = _yaml("model", "base", "rnn.yaml")  # the RNN presets' top-level keys
    config = _filled({**config, "model": _filled(model, preset)},
                     {**{k: train_yaml[k] for k in ("seed", "loss", "decode", "monitor")},
                      "optim": _yaml("optim", "adam.yaml")})
    ss = dict(config.get("scheduled_sampling", {}))
    if ss.get("schedule") in SCHEDULES:
        reads = SCHEDULES[ss["schedule"]][0]
        config["scheduled_sampling"] = {k: v for k, v in ss.items()
                                        if k == "schedule" or k in reads}
    return config


def upgraded_run_config(cfg: DictConfig) -> DictConfig:
    """A run's saved train config (RUN/.hydra/config.yaml) with the keys of its data group's
    conf/data/*.yaml that it lacks (a run configured before a data option existed), at their
    conf/ values; its own values kept."""
    for path in sorted((CONF_DIR / "data").glob("*.yaml")):
        defaults = OmegaConf.load(path)
        if defaults.get("_target_") == cfg.data.get("_target_"):
            cfg.data = OmegaConf.merge(defaults, cfg.data)
    return cfg


def direction(module: Seq2SeqModule) -> tuple[str, str] | None:
    """(source, target) a model translates, as recorded in its checkpoint; None for a
    checkpoint that predates the record."""
    data = module.config.get("data") or {}
    return (data["src"], data["tgt"]) if "src" in data and "tgt" in data else None


def _arrow(way: tuple[str, str]) -> str:
    return " -> ".join(way)


def check_pairing(module: Seq2SeqModule, label: str, reference: Seq2SeqModule,
                  reference_label: str, reverse: bool = False) -> None:
    """Refuse a model that cannot decode beside `reference`: an ensemble member must translate
    the same direction with the same SentencePiece models; a reranker (`reverse`) the other
    direction with the models swapped. Directions are checked where both checkpoints record
    one. Raises CheckpointError naming `label`."""
    role = "reranking" if reverse else "an ensemble with"
    want, got = direction(reference), direction(module)
    if want and got and got != (want[::-1] if reverse else want):
        raise CheckpointError(
            f"{label} translates {_arrow(got)}, but {role} {reference_label} ({_arrow(want)}) "
            f"needs a model that translates {_arrow(want[::-1] if reverse else want)} (the "
            "direction is data.src_lang -> data.tgt_lang at training, or the training file "
            "names)")
    src, tgt = reference.src_tokenizer, reference.tgt_tokenizer
    if reverse:
        src, tgt = tgt, src
    if (module.src_tokenizer.model_proto != src.model_proto
            or module.tgt_tokenizer.model_proto != tgt.model_proto):
        raise CheckpointError(
            f"{label}: its SentencePiece models are not those of {reference_label}"
            f"{' swapped' if reverse else ''}; {role} it needs a model trained on the same data "
            "with the same data.vocab_size, vocab_type and joint_vocab")


def load_module(path: str | Path, map_location: str | torch.device = "cpu") -> Seq2SeqModule:
    """Rebuild the trained model, with its tokenizers, from a checkpoint file."""
    ckpt = load_checkpoint(path, map_location)
    hp = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    if not hp or "config" not in hp or "state_dict" not in ckpt or "tokenizers" not in ckpt:
        raise CheckpointError(f"{path}: not a seq2seq checkpoint (no model config, weights or "
                              "tokenizers inside)")
    try:
        module = Seq2SeqModule(_upgraded(hp["config"]), hp["src_vocab_size"],
                               hp["tgt_vocab_size"])
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{path}: its config cannot build a model with this code "
                              f"({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
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
        check_pairing(m, path, first, paths[0])
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
