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
TOOLS = CONF / "tools"  # the configs of translate.py, export.py and serve.py
PRESETS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))
# the decode section of conf/train.yaml, for tests that call a search directly
DECODE = OmegaConf.to_container(OmegaConf.load(CONF / "train.yaml").decode)
LIMITS = {k: DECODE[k] for k in ("max_len_a", "max_len_b")}
# translate.py's batch budget, for tests that translate or rescore lines directly
MAX_TOKENS = OmegaConf.load(TOOLS / "translate.yaml").max_tokens


def search_options(**overrides):
    """DecodeOptions of conf/train.yaml's decode section, with `overrides`."""
    from seq2seq.decoding.options import DecodeOptions

    return DecodeOptions.from_dict({**DECODE, **overrides})

torch.set_num_threads(1)

# fixtures that train a model: a test using one trains, so `make test-fast` skips it
TRAINING_FIXTURES = {"tiny_run", "tiny_training", "trained", "multi30k_run"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if TRAINING_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


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
    """The train config as train.py would see it, with `overrides`, in float32 unless they
    name a precision: `trainer.precision=auto` (the default) would otherwise train in bf16 on
    some machines and float32 on others, and tests compare exact values."""
    overrides = list(overrides or [])
    if not any(o.startswith("trainer.precision=") for o in overrides):
        overrides.append("trainer.precision=32-true")
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("train", overrides=overrides)


# overrides that shrink each kind of part to a tiny size, by the config name of the part
TINY_PART = {
    "transformer": ["hidden_size=16", "num_heads=2", "ff_size=32", "dropout=0",
                    "attention_dropout=0"],
    "rnn_encoder": ["hidden_size=12", "dropout=0"],
    "rnn_decoder": ["hidden_size=20", "dropout=0", "hidden_dropout=0"],
}


def _part_name(preset: str, part: str, overrides: list[str]) -> str:
    """The config name of a preset's encoder or decoder (after `model/<part>=` overrides)."""
    for o in overrides:
        if o.startswith(f"model/{part}="):
            return o.split("=", 1)[1]
    defaults = OmegaConf.to_container(OmegaConf.load(CONF / "model" / f"{preset}.yaml").defaults)
    for entry in defaults:
        if isinstance(entry, dict) and part in entry:
            return entry[part]
    raise KeyError(f"preset {preset} has no {part}")


def src_vocab_for(cfg: dict, src_vocab: int, tgt_vocab: int) -> int:
    """The source vocabulary size to build `cfg` with: tgt_vocab when it shares one embedding
    matrix between the sides (model.share_all_embeddings needs one joint vocabulary), else
    src_vocab (tests keep the two sizes different to catch a swapped source and target)."""
    return tgt_vocab if cfg.get("share_all_embeddings") else src_vocab


def model_config(preset: str = "lstm_bahdanau", overrides: list[str] | None = None,
                 small: bool = True) -> dict:
    """The plain model config of a preset, shrunk to a tiny size by default."""
    overrides = list(overrides or [])
    tiny = []
    if small:
        tiny.append("model.emb_size=16")
        for part in ("encoder", "decoder"):
            name = _part_name(preset, part, overrides)
            kind = name if name == "transformer" else f"rnn_{part}"
            tiny += [f"model.{part}.{o}" for o in TINY_PART[kind]]
        if preset.startswith("gru_luong_dot"):  # dot attention: decoder = 2 x encoder
            tiny[tiny.index("model.decoder.hidden_size=20")] = "model.decoder.hidden_size=24"
    cfg = compose_train([f"model={preset}", *tiny, *overrides])
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
