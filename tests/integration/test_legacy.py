"""Files written before the RNN parts moved to seq2seq/models/rnn.py still work: a checkpoint
and an export folder made by that code (tests/fixtures/legacy, see make.py there) load,
translate to what they translated to then, export, serve and resume."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest
import torch

from seq2seq.checkpoint import load_checkpoint, load_module
from seq2seq.decoding.options import DecodeOptions
from seq2seq.export import write_export
from seq2seq.pipeline import train
from seq2seq.runtime import Translator
from seq2seq.translation import search_lines, translate_lines
from tests.conftest import compose_train
from tests.fixtures.legacy.make import PINNED
from tests.integration.conftest import tiny_overrides
from tests.integration.test_serve import start_server, stop_server

LEGACY = Path(__file__).resolve().parents[1] / "fixtures" / "legacy"
CKPT, EXPORT = LEGACY / "lstm_bahdanau.ckpt", LEGACY / "lstm_bahdanau_export"
EXPECTED = json.loads((LEGACY / "expected.json").read_text(encoding="utf-8"))
LINES = EXPECTED["lines"]


def _beam3_scores(module) -> list[list[float]]:
    opts = DecodeOptions.from_dict({**module.config["decode"], "beam": 3, "nbest": 3})
    return [[h.score for h in hyps]
            for hyps in search_lines(module, LINES, opts, max_tokens=4000)[1]]


def test_the_fixtures_name_the_old_class_paths():
    """What makes these fixtures worth testing: their config names today's-gone modules."""
    model = load_checkpoint(CKPT)["hyper_parameters"]["config"]["model"]
    assert model["encoder"]["_target_"] == "seq2seq.models.encoder.RNNEncoder"
    assert model["decoder"]["_target_"] == "seq2seq.models.decoder.RNNDecoder"


def test_an_old_checkpoint_loads_and_translates_as_it_did():
    module = load_module(CKPT)
    assert type(module.model.encoder).__module__ == "seq2seq.models.rnn"
    assert translate_lines(module, LINES, max_tokens=4000) == EXPECTED["checkpoint_greedy"]
    for got, want in zip(_beam3_scores(module), EXPECTED["checkpoint_beam3_scores"],
                         strict=True):
        assert got == pytest.approx(want, abs=1e-4)


def test_an_old_export_folder_translates_as_it_did():
    translator = Translator(EXPORT, threads=1)
    assert translator.translate(LINES, beam=1) == EXPECTED["export_greedy"]
    assert translator.translate(LINES, beam=3) == EXPECTED["export_beam3"]
    scores = [[h["score"] for h in hyps]
              for hyps in translator.translate(LINES, beam=3, nbest=3, with_scores=True)]
    for got, want in zip(scores, EXPECTED["export_beam3_scores"], strict=True):
        assert got == pytest.approx(want, abs=1e-4)


def test_an_old_checkpoint_exports_to_what_the_old_export_decodes(tmp_path):
    module = load_module(CKPT)
    out = write_export(tmp_path / "exp", module.model, module.src_tokenizer.model_proto,
                       module.tgt_tokenizer.model_proto, module.config["decode"])
    layout = json.loads((out / "export.json").read_text())["state"]
    assert [e["name"] for e in layout] == ["hidden", "cell", "feed", "keys", "values",
                                           "src_mask"]
    assert Translator(out, threads=1).translate(LINES, beam=3) == EXPECTED["export_beam3"]


@pytest.mark.slow
@pytest.mark.parametrize("what", ["model", "ckpt"])
def test_serve_py_serves_old_files(what):
    proc, url = start_server([f"model={EXPORT}" if what == "model" else f"ckpt={CKPT}"])
    try:
        r = httpx.post(f"{url}/translate", json={"text": LINES}, timeout=60)
        assert r.status_code == 200, r.text
        want = EXPECTED["export_greedy" if what == "model" else "checkpoint_greedy"]
        assert [t["text"] for t in r.json()["translations"]] == want
    finally:
        assert stop_server(proc) == 0


@pytest.mark.slow
def test_an_old_checkpoint_resumes(tmp_path, data_root):
    """Training resumes from the old checkpoint where it stopped (epoch 12) and goes on."""
    run = tmp_path / "run"
    shutil.copytree(LEGACY, tmp_path / "legacy")
    ckpt = tmp_path / "legacy" / CKPT.name
    before = load_checkpoint(ckpt)
    overrides = [o for o in PINNED if not o.startswith("trainer.max_epochs=")]
    cfg = compose_train([*tiny_overrides(tmp_path, data_root), *overrides,
                         "trainer.max_epochs=13", f"run_dir={run}", f"ckpt_path={ckpt}"])
    train(cfg)
    after = load_checkpoint(run / "checkpoints" / "last.ckpt")
    assert after["epoch"] == before["epoch"] + 1
    assert after["global_step"] > before["global_step"]
    changed = [k for k, v in before["state_dict"].items()
               if not torch.equal(v, after["state_dict"][k])]
    assert changed, "one more epoch left every weight as it was"
