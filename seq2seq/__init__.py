"""seq2seq: RNN encoder-decoder models with attention, on PyTorch Lightning and Hydra."""

__version__ = "0.1.0"

from pathlib import Path as _Path

# the Hydra configs, where defaults live: conf/ at the top of a checkout, which seq2seq/conf links
# to and a built wheel carries as package data
CONF_DIR = (_Path(__file__).parent / "conf").resolve()
