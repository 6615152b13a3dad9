"""model.init: the xavier scheme's promises (orthogonal recurrent blocks, zero biases, small
embeddings with a zero padding row, a tied output layer left as the embedding)."""

from __future__ import annotations

import pytest
import torch

from seq2seq.models.init import init_parameters
from seq2seq.models.seq2seq import build_seq2seq
from tests.conftest import model_config


def test_xavier_scheme():
    torch.manual_seed(0)
    model = build_seq2seq(model_config("gru_bahdanau", ["model.init=xavier",
                                                        "model.tie_embeddings=true",
                                                        "model.emb_init_std=0.05"]), 500, 500)
    emb = model.decoder.embedding.weight
    assert torch.all(emb[0] == 0)
    assert emb[1:].std().item() == pytest.approx(0.05, rel=0.1)
    assert model.decoder.output.weight is emb
    rnn = model.decoder.rnn
    for block in rnn.weight_hh_l0.chunk(3, 0):  # GRU: 3 gates
        torch.testing.assert_close(block @ block.T, torch.eye(block.size(0)), atol=1e-4,
                                   rtol=0)
    assert torch.all(rnn.bias_ih_l0 == 0) and torch.all(model.decoder.att_layer.bias == 0)


def test_pytorch_scheme_keeps_the_defaults_and_unknown_schemes_are_refused():
    torch.manual_seed(0)
    model = build_seq2seq(model_config("gru_bahdanau"), 500, 500)
    assert model.decoder.embedding.weight[1:].std().item() == pytest.approx(1.0, rel=0.1)
    with pytest.raises(ValueError, match="model.init='he'"):
        init_parameters(model, "he", 0.1)
