"""experiments/benchmark.py and experiments/ab_updates.py measure the training step users run:
Seq2SeqModule.training_step in Lightning's loop, across epochs."""

from __future__ import annotations

import pytest
import torch

from experiments import ab_updates, benchmark
from seq2seq.data.corpus import read_lines
from seq2seq.metrics import corpus_scores
from seq2seq.module import Seq2SeqModule
from seq2seq.pipeline import fit_steps
from seq2seq.translation import translate_lines
from tests.conftest import MAX_TOKENS, compose_train, search_options
from tests.integration.conftest import tiny_overrides


@pytest.fixture
def counted_steps(monkeypatch):
    """(steps, epochs): every call of Seq2SeqModule.training_step, and its epoch."""
    calls = []
    real = Seq2SeqModule.training_step

    def counted(self, batch, batch_idx):
        calls.append(self.current_epoch)
        return real(self, batch, batch_idx)

    monkeypatch.setattr(Seq2SeqModule, "training_step", counted)
    return calls


@pytest.mark.slow
def test_benchmark_times_the_module_training_step_across_epochs(tmp_path, data_root,
                                                                 counted_steps):
    cfg = compose_train([*tiny_overrides(tmp_path, data_root, n=60), "run_dir=" + str(tmp_path),
                         "data.max_tokens=600"])
    dm, module, figures = benchmark.train_throughput(cfg, "cpu", warmup=2, steps=12)
    per_epoch = len(dm.train_sampler)
    assert per_epoch <= 7  # the 14 steps span several epochs, re-shuffled
    assert counted_steps == [i // per_epoch for i in range(14)]
    assert figures["train_steps"] == 12 and figures["train_tokens_per_s"] > 0
    assert figures["flops_per_target_token"] > 0
    assert module.global_step == 14


@pytest.mark.slow
def test_ab_updates_trains_with_the_module_then_validates(tmp_path, data_root, counted_steps,
                                                          monkeypatch, capsys):
    """6 updates, then the figures of the whole validation set translated by the trained model
    (greedy, as validation decodes)."""
    trained = []

    def fit_and_keep(*args, **kwargs):
        out = fit_steps(*args, **kwargs)
        trained.append(out[1])
        return out

    monkeypatch.setattr(ab_updates, "fit_steps", fit_and_keep)
    monkeypatch.chdir(tmp_path)
    result = ab_updates.main(["--experiment", "reference", "6",
                              *tiny_overrides(tmp_path, data_root, n=60),
                              "optim.schedule=cosine", "optim.warmup_steps=2",
                              "scheduled_sampling=linear"])
    assert len(counted_steps) == 6 and result["updates"] == 6
    assert result["val/ppl"] > 1
    (module,) = trained
    hyps = translate_lines(module.eval(), read_lines(tmp_path / "val.de"), max_tokens=MAX_TOKENS,
                           opts=search_options(beam=1))
    scores = corpus_scores(hyps, read_lines(tmp_path / "val.en"))
    assert result["val/bleu"] == pytest.approx(scores.bleu, abs=1e-4)
    assert result["val/chrf"] == pytest.approx(scores.chrf, abs=1e-4) and scores.chrf > 0
    assert "6 updates" in capsys.readouterr().out


@pytest.mark.slow
def test_fit_steps_is_seeded_and_runs_every_update(tmp_path, data_root):
    """Two runs of one config end with the same weights (the seed fixes the initial weights,
    the batches and dropout), so A/B variants differ only by their overrides; a time limit of
    the recipe does not cut the updates short."""
    cfg = compose_train([*tiny_overrides(tmp_path, data_root, n=60), f"run_dir={tmp_path}",
                         "trainer.max_time=00:00:00:00"])
    _, a, _ = fit_steps(cfg, 3)
    _, b, _ = fit_steps(cfg, 3)
    assert a.global_step == b.global_step == 3
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), name


@pytest.mark.parametrize("precision, device, dtype", [
    ("32-true", "cpu", torch.float32), ("bf16-mixed", "cpu", torch.bfloat16),
    ("16-mixed", "cpu", torch.bfloat16),  # Lightning's 16-mixed on a CPU is bf16 autocast
    ("16-mixed", "cuda", torch.float16), ("bf16-mixed", "cuda:0", torch.bfloat16),
    ("32-true", "cuda", torch.float32)])
def test_the_peak_and_decoding_use_the_dtype_the_products_run_in(precision, device, dtype):
    """MFU is measured against the peak of that dtype: float16 for 16-mixed on a GPU."""
    assert benchmark.compute_dtype(precision, device) == dtype
