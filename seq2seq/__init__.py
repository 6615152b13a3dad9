"""seq2seq: RNN encoder-decoder models with attention, on PyTorch Lightning and Hydra."""

__version__ = "0.1.0"

from pathlib import Path as _Path

CONF_DIR = _Path(__file__).resolve().parents[1] / "conf"  # the Hydra configs, where defaults live
