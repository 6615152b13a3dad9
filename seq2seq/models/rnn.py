"""The recurrent cells the encoder and decoder can use, chosen by name in the config."""

from torch import nn

RNN_CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}


def rnn_class(cell: str, option: str) -> type[nn.RNNBase]:
    if cell not in RNN_CELLS:
        raise ValueError(f"{option}={cell!r}: choose one of {', '.join(RNN_CELLS)}")
    return RNN_CELLS[cell]


def check_shape(name: str, tensor, expected: tuple) -> None:
    """Raise if `tensor`'s shape differs from `expected` (None matches any size)."""
    actual = tuple(tensor.shape)
    if len(actual) != len(expected) or any(
        e is not None and e != a for e, a in zip(expected, actual, strict=False)
    ):
        raise ValueError(f"{name}: expected shape {expected}, got {actual}")
