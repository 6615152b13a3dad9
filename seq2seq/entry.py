"""The command-line entry points (train.py, translate.py, export.py, serve.py and the seq2seq-*
console scripts). Each checks that its extra is installed before it imports anything heavy, so
that a runtime-only install answers `seq2seq-train` with the pip command to run, not a
traceback from `import torch`; then it calls its Hydra main in seq2seq/cli.py."""

from __future__ import annotations

import importlib
import sys

from seq2seq.extras import MissingExtra, require


def _start(extra: str, what: str, module: str, function: str) -> None:
    try:
        require(extra, what)
    except MissingExtra as e:  # exit status 2, as the CLIs' other one-line errors
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    getattr(importlib.import_module(module), function)()


def train_main() -> None:
    _start("train", "train.py", "seq2seq.cli", "train_main")


def translate_main() -> None:
    _start("train", "translate.py", "seq2seq.cli", "translate_main")


def evaluate_main() -> None:
    _start("train", "evaluate.py", "seq2seq.cli", "evaluate_main")


def export_main() -> None:
    _start("export", "export.py", "seq2seq.cli", "export_main")


def serve_main() -> None:
    """serve.py itself needs the serve extra; ckpt=PATH also needs train, model=DIR runtime
    (checked when the model is loaded: seq2seq/serving/backends.py)."""
    _start("serve", "serve.py", "seq2seq.cli", "serve_main")
