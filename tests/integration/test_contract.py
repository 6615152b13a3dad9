"""Adding an architecture is one module and one config file: an encoder defined here, named by a
config file in a folder of its own, trains, decodes, heatmaps and reports with no change to
the package."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from seq2seq.checkpoint import load_module
from seq2seq.data.corpus import read_lines
from seq2seq.lengths import write_lengths
from seq2seq.metrics import corpus_scores
from seq2seq.models.contract import Encoder, EncoderOutput
from seq2seq.pipeline import train
from seq2seq.report import load_runs, table
from seq2seq.translation import translate_lines
from tests.conftest import MAX_TOKENS, compose_train, search_options
from tests.integration.conftest import tiny_overrides


class BagOfWordsEncoder(Encoder):
    """Each state is its token's embedding through one tanh layer: no order, no summary.

    Args:
        vocab_size, emb_size, pad_id: wired in code.
        hidden_size: output size.
    """

    name = "bag_of_words"

    def __init__(self, *, vocab_size: int, emb_size: int, hidden_size: int, pad_id: int = 0):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, emb_size, padding_idx=pad_id)
        self.proj = nn.Linear(emb_size, hidden_size)
        self.output_size = hidden_size

    def forward(self, src, src_lengths, src_mask):
        states = torch.tanh(self.proj(self.embedding(src)))  # [B, S, H]
        return EncoderOutput(states=states * src_mask[:, :, None])  # no summary: decoders
        # that want one (the GRU's bridge) take the masked mean


CONFIG = f"""# A bag-of-words encoder (tests/integration/test_contract.py)
_target_: {__name__}.BagOfWordsEncoder
hidden_size: 24          # output size
"""


@pytest.mark.slow
def test_a_new_encoder_trains_decodes_and_reports_through_config_alone(tmp_path, data_root):
    conf = tmp_path / "conf"
    (conf / "model" / "encoder").mkdir(parents=True)
    (conf / "model" / "encoder" / "bag_of_words.yaml").write_text(CONFIG, encoding="utf-8")
    run_dir = tmp_path / "run"
    cfg = compose_train([*tiny_overrides(tmp_path, data_root), f"run_dir={run_dir}",
                         f"hydra.searchpath=[file://{conf}]", "model/encoder=bag_of_words",
                         "trainer.max_epochs=2", "test_beam=2"])
    metrics = train(cfg)
    hyps = (run_dir / "translations" / "test.hyp.txt").read_text(encoding="utf-8").splitlines()
    refs = read_lines(tmp_path / "test.en")
    assert len(hyps) == len(refs) == 40
    scores = corpus_scores(hyps, refs)  # the figures are those of the translations written
    assert (metrics["test/bleu"], metrics["test/chrf"]) == (scores.bleu, scores.chrf)
    assert metrics["test/chrf"] > 0 and "test/bleu_beam" in metrics

    results = json.loads((run_dir / "results.json").read_text())
    assert results["config"]["encoder"] == "bag_of_words"
    assert results["config"]["decoder"] == "gru"
    assert results["config"]["attention"] == "bahdanau"
    assert "| bag_of_words | gru | bahdanau |" in table(load_runs(run_dir), run_dir)
    assert list((run_dir / "attention").glob("*.png")), "no attention heatmap was written"
    lengths = write_lengths([run_dir], tmp_path / "lengths", src=str(tmp_path / "test.de"),
                            ref=str(tmp_path / "test.en")).read_text()
    assert "bag_of_words/gru/bahdanau" in lengths

    module = load_module(run_dir / "checkpoints" / "last.ckpt")
    assert isinstance(module.model.encoder, BagOfWordsEncoder)
    lines = ["Ein Mann fährt Fahrrad.", "Zwei Hunde spielen im Schnee."]
    greedy = translate_lines(module, lines, max_tokens=MAX_TOKENS, device="cpu",
                             opts=search_options(beam=1))
    beam = translate_lines(module, lines, max_tokens=MAX_TOKENS, device="cpu",
                           opts=search_options(beam=3))
    assert len(greedy) == len(beam) == 2
    assert all(t.strip() for t in greedy + beam), (greedy, beam)  # every line translated
