"""seq2seq: RNN encoder-decoder models with attention, on PyTorch Lightning and Hydra."""

__version__ = "0.1.0"
