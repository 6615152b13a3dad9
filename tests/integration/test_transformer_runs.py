"""The Transformer presets through the whole pipeline: train, save and load, translate with
beam search and heatmaps, a hybrid chosen part by part, DDP."""

from __future__ import annotations

import json

import pytest
import torch
from hydra import compose, initialize_config_dir

from seq2seq.checkpoint import load_module
from seq2seq.data.batch import collate
from seq2seq.pipeline import train
from seq2seq.translation import translate
from tests.conftest import ROOT, TOOLS, compose_train
from tests.integration.conftest import kept_as_training_ended, tiny_overrides
from tests.integration.test_cli import run

SMALL = ["model.emb_size=32", "model.encoder.hidden_size=32", "model.decoder.hidden_size=32",
         "model.encoder.num_heads=2", "model.decoder.num_heads=2", "model.encoder.ff_size=64",
         "model.decoder.ff_size=64"]


@pytest.mark.slow
def test_transformer_trains_round_trips_and_translates_with_heatmaps(tmp_path, data_root):
    run_dir = tmp_path / "run"
    with kept_as_training_ended() as kept:
        metrics = train(compose_train([*tiny_overrides(tmp_path, data_root), "model=transformer",
                                       *SMALL, f"run_dir={run_dir}", "trainer.max_epochs=2",
                                       "test_beam=3"]))
    assert "test/bleu" in metrics and "test/bleu_beam" in metrics
    results = json.loads((run_dir / "results.json").read_text())
    assert results["config"]["encoder"] == results["config"]["decoder"] == "transformer"
    assert results["config"]["attention"] == "multihead"
    assert list((run_dir / "attention").glob("*.png"))

    # save/load round trip: last.ckpt reloads the model training ended with (in memory): the
    # same weights and the same logits
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    (trained,) = kept
    reloaded = load_module(ckpt).eval()
    for (name, a), b in zip(trained.state_dict().items(), reloaded.state_dict().values(),
                            strict=True):
        assert torch.equal(a, b), name
    batch = collate([(0, torch.tensor([5, 6, 7, 3]), torch.tensor([8, 9, 3])),
                     (1, torch.tensor([9, 3]), torch.tensor([4, 3]))])
    with torch.no_grad():
        la, _ = trained.model(batch.src, batch.src_lengths, batch.src_mask, batch.tgt_in)
        lb, _ = reloaded.model(batch.src, batch.src_lengths, batch.src_mask, batch.tgt_in)
    assert torch.equal(la, lb)

    (tmp_path / "IN").write_text("Ein Hund läuft.\nZwei Männer spielen Fußball.\n",
                                 encoding="utf-8")
    with initialize_config_dir(str(TOOLS), version_base="1.3"):
        cfg = compose("translate", overrides=[f"ckpt={ckpt}", f"src={tmp_path / 'IN'}",
                                              f"out={tmp_path / 'OUT'}", "beam=5",
                                              f"attention_png={tmp_path / 'att'}"])
    lines = translate(cfg)
    assert len(lines) == 2 and len((tmp_path / "OUT").read_text().splitlines()) == 2
    assert sorted(p.name for p in (tmp_path / "att").glob("*.png")) == ["00001.png",
                                                                       "00002.png"]


@pytest.mark.slow
def test_a_transformer_encoder_under_a_gru_decoder_by_parts(tmp_path, data_root):
    """`python train.py model/encoder=transformer model/decoder=gru model/attention=bahdanau`,
    cut to 3 updates."""
    run_dir = tmp_path / "run"
    train(compose_train([*tiny_overrides(tmp_path, data_root), "model=lstm_bahdanau",
                         "model/encoder=transformer", "model/decoder=gru",
                         "model/attention=bahdanau", "model.emb_size=32",
                         "model.encoder.hidden_size=32", "model.encoder.num_heads=2",
                         f"run_dir={run_dir}", "trainer.max_steps=3", "test=false"]))
    config = json.loads((run_dir / "results.json").read_text())["config"]
    assert (config["encoder"], config["decoder"], config["attention"]) == (
        "transformer", "gru", "bahdanau")


@pytest.mark.slow
def test_the_hybrid_trains_on_two_cpu_ranks(tmp_path, data_root):
    """`python train.py model=transformer_lstm trainer.devices=2`, cut to 4 updates."""
    proc = run([str(ROOT / "train.py"), "hydra.run.dir=RUN", "model=transformer_lstm",
                "trainer.accelerator=cpu", "trainer.devices=2", "trainer.max_steps=4",
                "trainer.limit_val_batches=1", "test=false", "logger=csv"],
               cwd=tmp_path, env={"SEQ2SEQ_DATA_DIR": str(data_root),
                                  "SEQ2SEQ_CACHE_DIR": str(tmp_path / "cache"),
                                  "OMP_NUM_THREADS": "1"}, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in log
    ckpt = torch.load(tmp_path / "RUN" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 4
    assert ckpt["hyper_parameters"]["config"]["model"]["encoder"]["_target_"].endswith(
        "TransformerEncoder")
