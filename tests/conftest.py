"""Shared fixtures: the Multi30k copy, a tiny model config, config composition."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
PRESETS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))
# the decode section of conf/train.yaml, for tests that call a search directly
DECODE = OmegaConf.to_container(OmegaConf.load(CONF / "train.yaml").decode)
LIMITS = {k: DECODE[k] for k in ("max_len_a", "max_len_b")}
# translate.py's batch budget, for tests that translate or rescore lines directly
MAX_TOKENS = OmegaConf.load(CONF / "translate.yaml").max_tokens


def search_options(**overrides):
    """DecodeOptions of conf/train.yaml's decode section, with `overrides`."""
    from seq2seq.decoding.options import DecodeOptions

    return DecodeOptions.from_dict({**DECODE, **overrides})

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def data_root() -> Path:
    """Folder holding multi30k/ (SEQ2SEQ_DATA_DIR, else ../shared/data beside the checkout)."""
    root = Path(os.environ.get("SEQ2SEQ_DATA_DIR", ROOT.parent / "shared" / "data"))
    assert (root / "multi30k" / "train.de.gz").is_file(), (
        f"Multi30k not found under {root}; set SEQ2SEQ_DATA_DIR")
    return root


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


def compose_train(overrides: list[str] | None = None):
    """The train config as train.py would see it, with `overrides`."""
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("train", overrides=overrides or [])


def model_config(preset: str = "lstm_bahdanau", overrides: list[str] | None = None,
                 small: bool = True) -> dict:
    """The plain model config of a preset, shrunk to a tiny size by default."""
    tiny = ["model.emb_size=16", "model.encoder.hidden_size=12", "model.decoder.hidden_size=20",
            "model.encoder.dropout=0", "model.decoder.dropout=0",
            "model.decoder.hidden_dropout=0"] if small else []
    if small and preset.startswith("gru_luong_dot"):
        tiny[2] = "model.decoder.hidden_size=24"  # dot attention: decoder = 2 x encoder
    cfg = compose_train([f"model={preset}", *tiny, *(overrides or [])])
    return OmegaConf.to_container(cfg.model, resolve=True)


def count_casts(monkeypatch, where: str) -> list:
    """The dtypes of every seq2seq.precision.cast_weights call made through `where` (the
    module attribute to patch, e.g. "seq2seq.translation.cast_weights"), appended as they come."""
    from seq2seq import precision

    calls, cast = [], precision.cast_weights

    def counting(module, dtype):
        calls.append(dtype)
        return cast(module, dtype)

    monkeypatch.setattr(where, counting)
    return calls
