"""The Hydra entry points of train.py, translate.py, evaluate.py, export.py and serve.py
(seq2seq/entry.py checks each command's pip extra, then calls one of them): Hydra parses the
command line, a plain function does the work, and bad input ends in one clear message instead of a traceback.

train.py composes conf/train.yaml with the training groups (model, data, optim, ...); the other
commands read conf/tools/, which holds no groups, so that serve.py's `model=DIR` is a plain key.
This module imports no torch: serve.py model=DIR runs on the torch-free runtime."""

from __future__ import annotations

import functools
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import hydra
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from seq2seq import CONF_DIR
from seq2seq.allocator import limit_onednn_cache, tune_glibc_malloc
from seq2seq.decoding.options import RANGES, check_option

CONF = str(CONF_DIR)  # train.py's config root
TOOLS = str(CONF_DIR / "tools")  # translate.py's, evaluate.py's, export.py's and serve.py's
START = time.time()  # what a run dir made after this was made by this process


def user_errors() -> tuple[type[Exception], ...]:
    """The errors of bad input, which end in one line, not a traceback (imported here, with
    torch, only by the commands that need torch)."""
    from seq2seq.checkpoint import CheckpointError
    from seq2seq.data.errors import DataError
    from seq2seq.decoding.options import DecodeConfigError
    from seq2seq.module import NonFiniteLossError
    from seq2seq.precision import PrecisionError

    return DataError, CheckpointError, PrecisionError, NonFiniteLossError, DecodeConfigError


def _fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def _one_line(e: BaseException) -> str:
    """Hydra's and OmegaConf's several-line messages (and their causes') as one line."""
    cause = e.__cause__
    if isinstance(cause, (ConfigKeyError, ConfigAttributeError)) and "not in struct" in str(
            cause):
        key = getattr(cause, "full_key", None) or str(cause)
        return f"{key}: no such option (`--help` lists them; a new key is written +{key}=...)"
    lines = []
    for part in (e, cause):
        for line in str(part or "").splitlines():
            line = line.strip()
            if line.startswith(("Config search path", "See https://hydra.cc")):
                break
            if line and not line.startswith(("full_key", "object_type", "reference_type",
                                              "Set the environment", "To append")):
                lines.append(line)
    text, listing = "", False  # after a line ending in ":", the lines are a list
    for line in dict.fromkeys(lines):
        text += (", " if listing and not text.endswith(":") else " " if listing
                 else "; " if text else "") + line
        listing = listing or line.endswith(":")
    return text or type(e).__name__


def _variants(overrides: list[str], multirun: bool) -> list[list[str]]:
    """The override lists a command line stands for: itself, or under -m each sweep's every
    value with the other sweeps at their first (each value is checked, not each combination)."""
    if not multirun:
        return [overrides]
    parsed = OverridesParser.create().parse_overrides(overrides)
    first = [f"{o.get_key_element()}={next(iter(o.sweep_string_iterator()))}"
             if o.is_sweep_override() else o.input_line for o in parsed]
    out = [first]
    for i, o in enumerate(parsed):
        if o.is_sweep_override():
            for value in list(o.sweep_string_iterator())[1:]:
                out.append([*first[:i], f"{o.get_key_element()}={value}", *first[i + 1:]])
    return out


def check_command_line(config_dir: str, config_name: str, args: list[str]) -> None:
    """Compose the config the way Hydra will, before Hydra runs anything: a mistake Hydra
    would answer with several lines and exit status 1 (an unknown key, an option a group does
    not have, a malformed override) ends in one `error:` line and exit status 2, and nothing
    is written. The tools' options are checked for type and range too. Hydra's own flags
    (--help, --cfg, -cn, ...) are left to Hydra."""
    multirun = any(a in ("-m", "--multirun") for a in args)
    overrides = [a for a in args if a not in ("-m", "--multirun")]
    if any(a.startswith("-") for a in overrides):
        return
    parser = OverridesParser.create()
    for a in overrides:
        try:
            parser.parse_overrides([a])
        except HydraException as e:
            _fail(f"{a}: not an override Hydra can read ({str(e).splitlines()[0]}); write "
                  "key=value, and quote values with spaces or brackets")
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir, version_base="1.3"):
            defaults = compose(config_name) if config_dir == TOOLS else None
            for variant in _variants(overrides, multirun):
                cfg = compose(config_name, overrides=variant, return_hydra_config=True)
                _check_value_types(config_dir, config_name, variant, cfg)
                if defaults is not None:
                    _check_tool_options(config_name, cfg, defaults)
                elif not multirun:
                    run = Path(str(OmegaConf.select(cfg, "hydra.run.dir")))
                    if run.exists() and not run.is_dir():
                        _fail(f"hydra.run.dir={run}: a file is there; name a folder")
    except (HydraException, OmegaConfBaseException) as e:
        _fail(_one_line(e))
    finally:
        GlobalHydra.instance().clear()


def _check_value_types(config_dir: str, config_name: str, overrides: list[str],
                       cfg: DictConfig) -> None:
    """Each key=value override against the type of the value it replaces (in the config the
    groups chosen compose to): a number where a number is, true/false where a flag is."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    values = [o for o in parsed if not o.is_delete() and not o.is_add()
              and not o.is_force_add() and "/" not in o.key_or_group
              and not o.key_or_group.startswith("hydra.")
              and not o.key_or_group.endswith("devices")  # a count, "auto" or a list
              and not (Path(config_dir) / o.key_or_group).is_dir()]
    if not values:
        return
    base = compose(config_name, overrides=[o.input_line for o in parsed if o not in values])
    for o in values:
        default = OmegaConf.select(base, o.key_or_group, default=None,
                                   throw_on_resolution_failure=False)
        value = OmegaConf.select(cfg, o.key_or_group, default=None,
                                 throw_on_resolution_failure=False)
        kind = type(default)
        if kind in (bool, int, float) and value is not None and not (
                type(value) is kind or kind is float and type(value) is int):
            _fail(f"{o.key_or_group}={value!r}: give {_KINDS[kind]} (it is {default!r} "
                  "unless set)")


# what each tool writes where, and whether that is a file or a folder
OUTPUTS = {"translate": {"out": "file", "attention_png": "folder"},
           "evaluate": {"out": "file"}, "export": {"out": "folder"}}
_KINDS = {bool: "true or false", int: "a whole number", float: "a number", str: "a text"}


def _check_tool_options(name: str, cfg: DictConfig, defaults: DictConfig) -> None:
    """Each option of a tool's config against its default's type, the search options against
    their ranges (seq2seq/decoding/options.py), and the paths it writes."""
    for key, default in defaults.items():
        value = cfg.get(key)
        if key in RANGES and value is not None:
            try:
                check_option(key, value, where="")
            except ValueError as e:
                _fail(str(e))
        elif type(default) in _KINDS and value is not None and not (
                isinstance(value, type(default)) and not (isinstance(value, bool)
                                                          and type(default) is not bool)
                or type(default) is float and type(value) is int):
            _fail(f"{key}={value!r}: give {_KINDS[type(default)]} (conf/tools/{name}.yaml)")
    for key, kind in OUTPUTS.get(name, {}).items():
        path = cfg.get(key)
        if path is not None and Path(str(path)).exists() and (
                Path(str(path)).is_dir() != (kind == "folder")):
            there = "a folder" if Path(str(path)).is_dir() else "a file"
            _fail(f"{key}={path}: {there} is there; name a {kind}")


def _remove_unstarted_run_dir() -> None:
    """Remove the run dir Hydra made for this process when nothing but Hydra's own files are
    in it (a run stopped by a mistake before any work), and the parents it leaves empty."""
    try:
        hc = HydraConfig.get()
    except ValueError:
        return
    out, cwd = Path(hc.runtime.output_dir).resolve(), Path.cwd().resolve()
    if out == cwd or not (out / ".hydra").is_dir():
        return
    if (out / ".hydra").stat().st_mtime < START:
        return  # there before this process
    if {p.name for p in out.iterdir()} <= {".hydra", f"{hc.job.name}.log"}:
        for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
            for handler in list(getattr(logger, "handlers", [])):  # Hydra's log file in it
                if isinstance(handler, logging.FileHandler) and Path(
                        handler.baseFilename).resolve().is_relative_to(out):
                    handler.close()
                    logger.removeHandler(handler)
        shutil.rmtree(out, ignore_errors=True)
        for parent in out.parents:
            if parent == cwd or not parent.is_dir() or any(parent.iterdir()):
                break
            parent.rmdir()


def _command(config_dir: str, config_name: str):
    """The main of a command: Hydra's, over `config_name` in `config_dir`, once the command
    line has passed check_command_line."""
    def wrap(task: Callable[[DictConfig], Any]) -> Callable[[], Any]:
        hydra_main = hydra.main(version_base="1.3", config_path=config_dir,
                                config_name=config_name)(task)

        @functools.wraps(task)
        def main() -> Any:
            check_command_line(config_dir, config_name, sys.argv[1:])
            return hydra_main()
        return main
    return wrap


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
        _remove_unstarted_run_dir()
        _fail(str(e))


@_command(CONF, "train")
def train_main(cfg: DictConfig) -> float | None:
    """python train.py [group=option ...] [key=value ...]"""
    os.environ.setdefault("WANDB_MODE", "offline")
    from seq2seq.pipeline import train

    metrics = _run(train, cfg, user_errors())
    return (metrics or {}).get(cfg.optimized_metric)


@_command(TOOLS, "translate")
def translate_main(cfg: DictConfig) -> None:
    """python translate.py ckpt=PATH [src=FILE] [out=FILE]"""
    from seq2seq.translation import translate

    _run(translate, cfg, user_errors())


@_command(TOOLS, "evaluate")
def evaluate_main(cfg: DictConfig) -> None:
    """python evaluate.py ckpt=PATH [test_sets=[...]] [beam=5] [src=FILE ref=FILE] [out=FILE]"""
    from seq2seq.evaluation import evaluate

    _run(evaluate, cfg, user_errors())


@_command(TOOLS, "export")
def export_main(cfg: DictConfig) -> None:
    """python export.py ckpt=PATH out=DIR"""
    from seq2seq.export import export

    _run(export, cfg, user_errors())


@_command(TOOLS, "serve")
def serve_main(cfg: DictConfig) -> None:
    """python serve.py ckpt=PATH | model=DIR [port=8000]"""
    from seq2seq.serving.backends import ServeError
    from seq2seq.serving.cli import serve

    try:
        errors = (ServeError, *user_errors()) if cfg.get("ckpt") else (ServeError,)
    except ImportError:  # no torch: load_backend says which extra serving a checkpoint needs
        errors = (ServeError,)
    _run(serve, cfg, errors, tune_malloc=False)  # a long-lived server returns freed memory
