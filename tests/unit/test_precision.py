"""Mixed precision on CPU: bf16 autocast trains a GRU model with finite loss and exact masking;
what this CPU cannot run is refused with a message that says what to use instead."""

from __future__ import annotations

import pytest
import torch

from seq2seq.loss import label_smoothed_nll
from seq2seq.models.seq2seq import build_seq2seq
from seq2seq.precision import PrecisionError, check_precision, cpu_bf16_lstm_supported
from tests.conftest import model_config

V = 29


def _batch():
    torch.manual_seed(2)
    lengths = torch.tensor([7, 3, 5])
    mask = torch.arange(7)[None] < lengths[:, None]
    src = torch.randint(4, V, (3, 7)).masked_fill(~mask, 0)
    tgt = torch.randint(4, V, (3, 6))
    return src, lengths, mask, tgt


@pytest.mark.parametrize("preset", ["gru_bahdanau", "gru_luong_general"])
def test_bf16_autocast_on_a_gru_model_gives_finite_loss_and_exact_masking(preset):
    torch.manual_seed(0)
    model = build_seq2seq(model_config(preset), V, V)
    check_precision("bf16-mixed", "cpu", model)  # GRUs are fine
    src, lengths, mask, tgt = _batch()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(5):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits, weights = model(src, lengths, mask, tgt)
        assert logits.dtype == torch.bfloat16 and weights.dtype == torch.float32
        assert torch.all(weights.masked_select(~mask[:, None, :].expand_as(weights)) == 0)
        loss, _, n = label_smoothed_nll(logits, tgt, 0.1)
        assert torch.isfinite(loss)
        opt.zero_grad()
        (loss / n).backward()
        opt.step()
        losses.append(loss.item() / n)
    assert losses[-1] < losses[0]


def test_lstm_in_bf16_on_this_cpu_is_refused_clearly_or_runs():
    model = build_seq2seq(model_config("lstm_bahdanau"), V, V)
    check_precision("32-true", "cpu", model)
    if cpu_bf16_lstm_supported():
        check_precision("bf16-mixed", "cpu", model)  # this CPU runs it: nothing to refuse
        return
    for precision in ("bf16-mixed", "16-mixed"):
        with pytest.raises(PrecisionError) as err:
            check_precision(precision, "cpu", model)
        msg = str(err.value)
        assert f"trainer.precision={precision}" in msg
        assert "32-true" in msg and "gru" in msg


def test_gpu_precision_is_not_checked_against_the_cpu():
    model = build_seq2seq(model_config("lstm_bahdanau"), V, V)
    check_precision("16-mixed", "gpu", model)
