"""The optional dependency groups of pyproject.toml (pip extras), and one clear error when a
command needs a group that is not installed.

    pip install -e '.[runtime]'          # seq2seq.runtime: NumPy, onnxruntime, sentencepiece
    pip install -e '.[runtime,serve]'    # + serve.py model=DIR (an exported model)
    pip install -e '.[train]'            # train.py, translate.py, evaluate.py (torch, Lightning, Hydra, ...)
    pip install -e '.[all]'              # everything a user runs; make install adds dev tools

(in a checkout; a wheel built with `pip wheel --no-deps .` takes the same extras, and carries
conf/ as package data)

The base install holds only what every part needs (NumPy, sentencepiece), so the runtime comes
without torch. This module imports nothing beyond the standard library.
"""

from __future__ import annotations

import importlib.util

_TRAIN = ("torch", "lightning", "hydra", "omegaconf", "sacrebleu", "torchmetrics", "matplotlib")
_RUNTIME = ("onnxruntime",)

# extra -> the modules that show it is installed (import names, not distribution names)
EXTRAS = {
    "train": _TRAIN,
    "runtime": _RUNTIME,
    "export": (*_TRAIN, "onnx", "onnxscript", *_RUNTIME),  # pyproject: seq2seq[train,runtime]
    "serve": ("fastapi", "uvicorn", "hydra"),
}


class MissingExtra(ImportError):
    """A command needs an extra that is not installed; the message says what to install."""


def missing(extra: str) -> list[str]:
    """The modules of `extra` that cannot be imported here."""
    out = []
    for name in EXTRAS[extra]:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a parent package missing, or sys.modules[name] None
            found = False
        if not found:
            out.append(name)
    return out


def require(extra: str, what: str) -> None:
    """Raise MissingExtra naming the missing modules and the pip command, when `what` (a
    command or feature) cannot run without `extra`."""
    absent = missing(extra)
    if absent:
        raise MissingExtra(
            f"{what} needs {', '.join(absent)}, from the '{extra}' extra: in a checkout, pip "
            f"install -e '.[{extra}]' (or make install); with a wheel, pip install "
            f"'<the .whl file>[{extra}]'")
