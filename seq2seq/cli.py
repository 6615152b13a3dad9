"""The Hydra entry points of train.py, translate.py, evaluate.py, export.py and serve.py
(seq2seq/entry.py checks each command's pip extra, then calls one of them): Hydra parses the
command line, a plain function does the work, and bad input ends in one clear message instead of a traceback.

train.py composes conf/train.yaml with the training groups (model, data, optim, ...); the other
commands read conf/tools/, which holds no groups, so that serve.py's `model=DIR` is a plain key.
This module imports no torch: serve.py model=DIR runs on the torch-free runtime."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import hydra
from omegaconf import DictConfig

from seq2seq import CONF_DIR
from seq2seq.allocator import limit_onednn_cache, tune_glibc_malloc

CONF = str(CONF_DIR)  # train.py's config root
TOOLS = str(CONF_DIR / "tools")  # translate.py's, export.py's and serve.py's


def user_errors() -> tuple[type[Exception], ...]:
    """The errors of bad input, which end in one line, not a traceback (imported here, with
    torch, only by the commands that need torch)."""
    from seq2seq.checkpoint import CheckpointError
    from seq2seq.data.errors import DataError
    from seq2seq.decoding.options import DecodeConfigError
    from seq2seq.module import NonFiniteLossError
    from seq2seq.precision import PrecisionError

    return DataError, CheckpointError, PrecisionError, NonFiniteLossError, DecodeConfigError


def _run(fn: Callable[[DictConfig], Any], cfg: DictConfig, errors: tuple[type[Exception], ...],
         tune_malloc: bool = True) -> Any:
    """fn(cfg) with oneDNN's caches limited (and glibc's allocator tuned for decoding and
    training loops, unless `tune_malloc` is false); one of `errors` ends the process with its
    message and exit status 2."""
    if tune_malloc:
        tune_glibc_malloc()
    limit_onednn_cache()
    try:
        return fn(cfg)
    except errors as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


@hydra.main(version_base="1.3", config_path=CONF, config_name="train")
def train_main(cfg: DictConfig) -> float | None:
    """python train.py [group=option ...] [key=value ...]"""
    os.environ.setdefault("WANDB_MODE", "offline")
    from seq2seq.pipeline import train

    metrics = _run(train, cfg, user_errors())
    return (metrics or {}).get(cfg.optimized_metric)


@hydra.main(version_base="1.3", config_path=TOOLS, config_name="translate")
def translate_main(cfg: DictConfig) -> None:
    """python translate.py ckpt=PATH [src=FILE] [out=FILE]"""
    from seq2seq.translation import translate

    _run(translate, cfg, user_errors())


@hydra.main(version_base="1.3", config_path=TOOLS, config_name="evaluate")
def evaluate_main(cfg: DictConfig) -> None:
    """python evaluate.py ckpt=PATH [test_sets=[...]] [beam=5] [src=FILE ref=FILE] [out=FILE]"""
    from seq2seq.evaluation import evaluate

    _run(evaluate, cfg, user_errors())


@hydra.main(version_base="1.3", config_path=TOOLS, config_name="export")
def export_main(cfg: DictConfig) -> None:
    """python export.py ckpt=PATH out=DIR"""
    from seq2seq.export import export

    _run(export, cfg, user_errors())


@hydra.main(version_base="1.3", config_path=TOOLS, config_name="serve")
def serve_main(cfg: DictConfig) -> None:
    """python serve.py ckpt=PATH | model=DIR [port=8000]"""
    from seq2seq.serving.backends import ServeError
    from seq2seq.serving.cli import serve

    try:
        errors = (ServeError, *user_errors()) if cfg.get("ckpt") else (ServeError,)
    except ImportError:  # no torch: load_backend says which extra serving a checkpoint needs
        errors = (ServeError,)
    _run(serve, cfg, errors, tune_malloc=False)  # a long-lived server returns freed memory
