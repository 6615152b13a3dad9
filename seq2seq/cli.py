"""Entry points: Hydra parses the command line, the pipeline does the work, and bad input
ends in one clear message instead of a traceback."""

from __future__ import annotations

import os
import sys

import hydra
from omegaconf import DictConfig

from seq2seq import CONF_DIR
from seq2seq.allocator import limit_onednn_cache, tune_glibc_malloc
from seq2seq.checkpoint import CheckpointError
from seq2seq.data.errors import DataError
from seq2seq.decoding.options import DecodeConfigError
from seq2seq.module import NonFiniteLossError
from seq2seq.precision import PrecisionError

CONF = str(CONF_DIR)
USER_ERRORS = (DataError, CheckpointError, PrecisionError, NonFiniteLossError, DecodeConfigError)


def _run(fn, cfg: DictConfig):
    tune_glibc_malloc()
    limit_onednn_cache()
    try:
        return fn(cfg)
    except USER_ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


@hydra.main(version_base="1.3", config_path=CONF, config_name="train")
def train_main(cfg: DictConfig) -> float | None:
    """python train.py [group=option ...] [key=value ...]"""
    os.environ.setdefault("WANDB_MODE", "offline")
    from seq2seq.pipeline import train

    metrics = _run(train, cfg)
    return (metrics or {}).get(cfg.optimized_metric)


@hydra.main(version_base="1.3", config_path=CONF, config_name="translate")
def translate_main(cfg: DictConfig) -> None:
    """python translate.py ckpt=PATH [src=FILE] [out=FILE]"""
    from seq2seq.translation import translate

    _run(translate, cfg)
