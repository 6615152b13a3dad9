"""Mixed precision on CPU: bf16 autocast trains a GRU model with finite loss and exact masking;
what this CPU cannot run is refused with a message that says what to use instead."""

from __future__ import annotations

import os

import pytest
import torch

from seq2seq import precision
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


def test_lstm_in_bf16_is_refused_clearly_where_the_cpu_lacks_the_kernel(monkeypatch):
    """The probe faked, so that every CPU checks the refusal: an LSTM model in bf16 (16-mixed is
    bf16 autocast on a CPU) is refused with the settings to use; float32 and a GRU model pass."""
    monkeypatch.setattr(precision, "cpu_bf16_lstm_supported", lambda: False)
    model = build_seq2seq(model_config("lstm_bahdanau"), V, V)
    check_precision("32-true", "cpu", model)
    check_precision("bf16-mixed", "cpu", build_seq2seq(model_config("gru_bahdanau"), V, V))
    for name in ("bf16-mixed", "16-mixed"):
        with pytest.raises(PrecisionError) as err:
            check_precision(name, "cpu", model)
        msg = str(err.value)
        assert f"trainer.precision={name}" in msg
        assert "32-true" in msg and "gru" in msg


def test_lstm_in_bf16_is_accepted_where_the_cpu_has_the_kernel(monkeypatch):
    monkeypatch.setattr(precision, "cpu_bf16_lstm_supported", lambda: True)
    model = build_seq2seq(model_config("lstm_bahdanau"), V, V)
    for name in ("32-true", "bf16-mixed", "16-mixed"):
        check_precision(name, "cpu", model)


def test_this_cpu_runs_an_lstm_in_bf16_when_the_probe_says_so():
    """The probe itself on this CPU: where it says yes, an LSTM model trains a step in bf16."""
    if not cpu_bf16_lstm_supported():
        pytest.skip("this CPU's oneDNN has no bf16 kernel for nn.LSTM (the refusal is tested "
                    "above with the probe faked)")
    model = build_seq2seq(model_config("lstm_bahdanau"), V, V)
    src, lengths, mask, tgt = _batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, _ = model(src, lengths, mask, tgt)
    loss, _, n = label_smoothed_nll(logits, tgt, 0.1)
    (loss / n).backward()
    assert torch.isfinite(loss)


def test_one_table_gives_the_dtype_of_the_products(monkeypatch):
    """precision.HALF: 16-mixed is bf16 autocast on a CPU and float16 on a GPU; bf16-true runs
    bfloat16 too, but only the mixed ones (CPU_BF16) keep float32 weights. Every precision that
    runs bfloat16 on a CPU meets the one LSTM check."""
    assert precision.compute_dtype("16-mixed", "cpu") == torch.bfloat16
    assert precision.compute_dtype("16-mixed", "gpu") == torch.float16
    assert precision.compute_dtype("bf16-true", "cpu") == torch.bfloat16
    assert precision.compute_dtype("32-true", "cuda:0") == torch.float32
    assert set(precision.CPU_BF16) == {"bf16-mixed", "bf16", "16-mixed", "16"}
    monkeypatch.setattr(precision, "cpu_bf16_lstm_supported", lambda: False)
    lstm = build_seq2seq(model_config("lstm_bahdanau"), V, V)
    for name in ("bf16-mixed", "bf16", "bf16-true", "16-mixed", "16"):
        with pytest.raises(PrecisionError, match="no bf16 kernel for nn.LSTM"):
            check_precision(name, "cpu", lstm)


def test_gpu_precision_is_not_checked_against_the_cpu():
    model = build_seq2seq(model_config("lstm_bahdanau"), V, V)
    check_precision("16-mixed", "gpu", model)


@pytest.mark.parametrize(("flags", "want"), [
    ({"avx512_bf16": False, "amx_bf16": False}, "32-true"),
    ({"avx512_bf16": True, "amx_bf16": False}, "bf16-mixed"),
    ({"avx512_bf16": False, "amx_bf16": True}, "bf16-mixed"),
])
def test_auto_precision_uses_native_bf16_only(monkeypatch, flags, want):
    monkeypatch.setattr(precision, "cpu_features", lambda: {"capability": "X", **flags})
    assert precision.resolve_precision("auto", "cpu") == want
    assert precision.resolve_precision("32-true", "cpu") == "32-true"  # explicit values stay
    assert precision.resolve_precision("bf16-mixed", "cpu") == "bf16-mixed"


def test_auto_precision_keeps_float32_for_an_lstm_onednn_cannot_run(monkeypatch):
    monkeypatch.setattr(precision, "cpu_features",
                        lambda: {"capability": "X", "avx512_bf16": True, "amx_bf16": False})
    monkeypatch.setattr(precision, "cpu_bf16_lstm_supported", lambda: False)
    lstm = build_seq2seq(model_config("lstm_bahdanau"), V, V)
    gru = build_seq2seq(model_config("gru_bahdanau"), V, V)
    assert precision.resolve_precision("auto", "cpu", lstm) == "32-true"
    assert precision.resolve_precision("auto", "cpu", gru) == "bf16-mixed"


def test_cast_weights_casts_once_keeps_ties_and_trains_the_float32_weights():
    torch.manual_seed(0)
    cfg = model_config("gru_bahdanau")
    cfg["tie_embeddings"] = True
    model = build_seq2seq(cfg, V, V)
    originals = dict(model.named_parameters())
    src, lengths, mask, tgt = _batch()
    with precision.cast_weights(model, torch.bfloat16):
        assert all(p.dtype == torch.bfloat16 for p in model.parameters())
        dec = model.decoder
        assert dec.output.weight is dec.embedding.weight  # still tied
        logits, weights = model(src, lengths, mask, tgt)
    assert logits.dtype == torch.bfloat16 and weights.dtype == torch.float32
    loss, _, n = label_smoothed_nll(logits, tgt, 0.1)
    (loss / n).backward()
    after = dict(model.named_parameters())
    assert all(after[k] is originals[k] and after[k].dtype == torch.float32 for k in originals)
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in model.parameters())
    # the same loss as float32 up to bfloat16 rounding
    reference, _, _ = label_smoothed_nll(model(src, lengths, mask, tgt)[0], tgt, 0.1)
    assert abs(float(loss) - float(reference)) / float(reference) < 0.02


def test_translate_precision_option(monkeypatch, caplog):
    gru = build_seq2seq(model_config("gru_bahdanau"), V, V)
    assert precision.decode_dtype(32, "cpu", gru) == torch.float32
    with pytest.raises(PrecisionError, match="precision=fp16: choose 32"):
        precision.decode_dtype("fp16", "cpu", gru)
    monkeypatch.setattr(precision, "native_bf16", lambda accelerator: False)
    assert precision.decode_dtype("bf16", "cpu", gru) == torch.bfloat16
    assert "emulated and runs slower than float32" in caplog.text
    monkeypatch.setattr(precision, "cpu_bf16_lstm_supported", lambda: False)
    lstm = build_seq2seq(model_config("lstm_bahdanau"), V, V)
    with pytest.raises(PrecisionError, match="no bf16 kernel for nn.LSTM"):
        precision.decode_dtype("bf16", "cpu", lstm)
    assert precision.decode_dtype("bf16", "cuda", lstm) == torch.bfloat16


def _unset_cache_variables(monkeypatch):
    """Remove both cache variables for the test; set first, so monkeypatch restores the user's
    values (or their absence) afterwards."""
    from seq2seq.allocator import CACHE_VARIABLES

    for name in CACHE_VARIABLES:
        monkeypatch.setenv(name, "x")
        monkeypatch.delenv(name)


def test_onednn_caches_are_limited_unless_the_user_chose(monkeypatch):
    from seq2seq.allocator import CACHE_VARIABLES, ONEDNN_PRIMITIVE_CACHE, limit_onednn_cache

    assert set(CACHE_VARIABLES) == {"ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY"}
    _unset_cache_variables(monkeypatch)
    limit_onednn_cache()
    for name in CACHE_VARIABLES:
        assert os.environ[name] == str(ONEDNN_PRIMITIVE_CACHE)
    monkeypatch.setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "512")
    monkeypatch.setenv("LRU_CACHE_CAPACITY", "1")
    limit_onednn_cache()
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "512"
    assert os.environ["LRU_CACHE_CAPACITY"] == "1"


@pytest.mark.parametrize("entry", ["translate_main", "serve_main"])
def test_the_clis_limit_both_caches_before_their_work(monkeypatch, tmp_path, entry):
    """translate.py and serve.py (train.py shares translate.py's wrapper) set the two cache sizes
    before they load a model: the work they call sees them."""
    import logging
    import sys

    from seq2seq import cli
    from seq2seq.allocator import CACHE_VARIABLES, ONEDNN_PRIMITIVE_CACHE

    seen = {}

    def record(cfg):
        seen.update({name: os.environ.get(name) for name in CACHE_VARIABLES})

    if entry == "translate_main":
        monkeypatch.setattr("seq2seq.translation.translate", record)
    else:
        monkeypatch.setattr("seq2seq.serving.cli.serve", record)
    monkeypatch.setattr("seq2seq.cli.tune_glibc_malloc", lambda: False)  # not in pytest's process
    _unset_cache_variables(monkeypatch)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["prog", f"ckpt={tmp_path / 'x.ckpt'}"])
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    try:
        getattr(cli, entry)()
    finally:  # Hydra configures the root logger: leave it as the other tests expect it
        root.setLevel(level)
        root.handlers[:] = handlers
    assert seen == {name: str(ONEDNN_PRIMITIVE_CACHE) for name in CACHE_VARIABLES}
