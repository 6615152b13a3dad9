"""Mixed precision on CPU: refuse, with a clear message, what this CPU's oneDNN cannot run.

On CPUs without native bf16 support, oneDNN has no bf16 kernel for `nn.LSTM` and fails deep in
the first forward pass ("could not create a primitive descriptor for the LSTM forward
propagation primitive"). GRU, LSTMCell and GRUCell run. Lightning turns `16-mixed` on CPU into
bf16 autocast, so the same applies to it.
"""

from __future__ import annotations

import functools

import torch
from torch import nn

CPU_HALF = ("bf16-mixed", "bf16", "bf16-true", "16-mixed", "16")


class PrecisionError(ValueError):
    """A precision the configured device cannot run."""


@functools.cache
def cpu_bf16_lstm_supported() -> bool:
    """Whether nn.LSTM runs under bf16 autocast on this CPU (probed once on a tiny LSTM)."""
    lstm = nn.LSTM(8, 8, batch_first=True, bidirectional=True)
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out, _ = lstm(torch.zeros(1, 2, 8))
        out.float().sum().backward()
    except RuntimeError:
        return False
    return True


def check_precision(precision: str | int, accelerator: str, model: nn.Module) -> None:
    """Raise PrecisionError when `precision` on `accelerator` cannot run `model` here."""
    on_cpu = accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())
    if not on_cpu or str(precision) not in CPU_HALF:
        return
    if any(isinstance(m, nn.LSTM) for m in model.modules()) and not cpu_bf16_lstm_supported():
        raise PrecisionError(
            f"trainer.precision={precision} on CPU runs bf16 autocast, and this CPU's oneDNN has "
            "no bf16 kernel for nn.LSTM. Use trainer.precision=32-true, a GRU model (e.g. "
            "model=gru_bahdanau, or model/encoder=gru model/decoder=gru), or a GPU.")
