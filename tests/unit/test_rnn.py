"""The recurrent family (seq2seq/models/rnn.py): encoder, decoder and their state, and the
parts every preset builds."""

import pytest
import torch

from seq2seq.models.rnn import RNNEncoder
from seq2seq.models.seq2seq import build_seq2seq, locate
from tests.conftest import PRESETS, model_config

V = 23


def _batch():
    torch.manual_seed(1)
    src = torch.randint(4, V, (3, 6))
    lengths = torch.tensor([6, 4, 2])
    mask = torch.arange(6)[None] < lengths[:, None]
    src = src.masked_fill(~mask, 0)
    tgt_in = torch.randint(4, V, (3, 5))
    return src, lengths, mask, tgt_in


@pytest.mark.parametrize("preset", PRESETS)
def test_stepwise_logits_equal_forward_logits(preset):
    torch.manual_seed(0)
    model = build_seq2seq(model_config(preset), V, V).eval()
    src, lengths, mask, tgt_in = _batch()
    logits, weights = model(src, lengths, mask, tgt_in)
    assert logits.shape == (3, 5, V) and weights.shape == (3, 5, 6)
    state = model.encode(src, lengths, mask)
    for t in range(tgt_in.size(1)):
        step_logits, state, step_w = model.decoder.step(tgt_in[:, t], state)
        torch.testing.assert_close(step_logits, logits[:, t], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(step_w, weights[:, t], rtol=1e-5, atol=1e-6)


def test_parallel_forward_is_used_only_when_allowed():
    model = build_seq2seq(model_config("lstm_luong_general",
                                       ["model.decoder.input_feeding=false"]), V, V)
    assert model.decoder.parallel_forward
    assert not build_seq2seq(model_config("lstm_luong_general"), V, V).decoder.parallel_forward
    assert not build_seq2seq(model_config("lstm_bahdanau",
                                          ["model.decoder.input_feeding=false"]), V, V
                             ).decoder.parallel_forward


def test_parallel_forward_equals_stepwise():
    torch.manual_seed(0)
    model = build_seq2seq(model_config("gru_luong_general",
                                       ["model.decoder.input_feeding=false"]), V, V).eval()
    src, lengths, mask, tgt_in = _batch()
    logits, _ = model(src, lengths, mask, tgt_in)
    state = model.encode(src, lengths, mask)
    for t in range(tgt_in.size(1)):
        step_logits, state, _ = model.decoder.step(tgt_in[:, t], state)
        torch.testing.assert_close(step_logits, logits[:, t], rtol=1e-5, atol=1e-5)


def test_state_index_select_reorders_rows():
    model = build_seq2seq(model_config("lstm_bahdanau"), V, V).eval()
    src, lengths, mask, _ = _batch()
    state = model.encode(src, lengths, mask)
    rows = torch.tensor([2, 0])
    sub = state.index_select(rows)
    assert sub.hidden.shape[1] == 2 and sub.keys.shape[0] == 2
    torch.testing.assert_close(sub.hidden[:, 0], state.hidden[:, 2])
    torch.testing.assert_close(sub.src_mask, state.src_mask[rows])


def test_beam_reordering_within_a_sentence_keeps_the_source_side():
    """Reordering beams of the same sentence moves the recurrent state, never the keys, values
    or mask, which are the same for every beam of a sentence."""
    model = build_seq2seq(model_config("lstm_bahdanau"), V, V).eval()
    src, lengths, mask, _ = _batch()
    K = 2
    state = model.encode(src, lengths, mask).index_select(torch.arange(3).repeat_interleave(K))
    state.hidden = torch.randn_like(state.hidden)
    rows = torch.tensor([1, 1, 2, 3, 5, 4])  # each row stays within its sentence's block
    moved = state.index_select(rows, same_source=True)
    copied = state.index_select(rows)
    assert moved.keys is state.keys and moved.values is state.values
    torch.testing.assert_close(moved.hidden, copied.hidden)
    torch.testing.assert_close(moved.cell, copied.cell)
    torch.testing.assert_close(moved.keys, copied.keys)
    torch.testing.assert_close(moved.src_mask, copied.src_mask)


def test_tied_embeddings_share_weights():
    model = build_seq2seq(model_config("gru_bahdanau", ["model.tie_embeddings=true"]), V, V)
    assert model.decoder.output.weight is model.decoder.embedding.weight


def test_scheduled_sampling_changes_inputs_but_keeps_shapes():
    torch.manual_seed(0)
    model = build_seq2seq(model_config("gru_bahdanau"), V, V).eval()
    src, lengths, mask, tgt_in = _batch()
    tf, _ = model(src, lengths, mask, tgt_in, teacher_forcing_ratio=1.0)
    own, _ = model(src, lengths, mask, tgt_in, teacher_forcing_ratio=0.0)
    assert own.shape == tf.shape
    torch.testing.assert_close(own[:, 0], tf[:, 0])  # the first input is always bos
    assert not torch.allclose(own[:, 1:], tf[:, 1:])


def test_targets_that_are_not_model_parts_are_refused():
    with pytest.raises(ValueError, match="not a subclass of seq2seq.models.contract.Encoder"):
        locate("os.system", "encoder")
    with pytest.raises(ValueError, match="not a subclass of seq2seq.models.contract.Decoder"):
        locate("seq2seq.models.rnn.RNNEncoder", "decoder")
    with pytest.raises(ValueError, match="has moved: write seq2seq.models.rnn.RNNEncoder"):
        locate("seq2seq.models.encoder.RNNEncoder", "encoder")
    with pytest.raises(ValueError, match="model.attention._target_='seq2seq.models.nope.X' "
                                         "cannot be imported"):
        locate("seq2seq.models.nope.X", "attention")


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_cell_step_equals_the_rnn_module_on_one_step(cell):
    """`_cell_step` runs the decoder RNN's own weights through its cells, layer by layer."""
    torch.manual_seed(0)
    model = build_seq2seq(model_config("lstm_bahdanau", [f"model.decoder.cell={cell}",
                                                         "model.decoder.num_layers=2"]), V, V)
    dec = model.decoder.eval()
    B, In = 4, dec.rnn.input_size
    x = torch.randn(B, In)
    h0 = torch.randn(2, B, dec.hidden_size)
    c0 = torch.randn(2, B, dec.hidden_size) if cell == "lstm" else None
    out, state = dec.rnn(x[:, None], (h0, c0) if cell == "lstm" else h0)
    h, c = dec._cell_step(x, h0, c0)
    expected_h, expected_c = state if cell == "lstm" else (state, None)
    torch.testing.assert_close(h, expected_h, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(h[-1], out[:, 0], rtol=1e-5, atol=1e-6)
    if cell == "lstm":
        torch.testing.assert_close(c, expected_c, rtol=1e-5, atol=1e-6)
    else:
        assert c is None

@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [True, False])
def test_padding_does_not_change_a_sentence_encoding(cell, bidirectional):
    torch.manual_seed(0)
    enc = RNNEncoder(vocab_size=20, emb_size=8, cell=cell, hidden_size=6, num_layers=2,
                     bidirectional=bidirectional, dropout=0.0).eval()
    sent = torch.tensor([[5, 6, 7, 3]])
    alone = enc(sent, torch.tensor([4]))
    padded = torch.tensor([[5, 6, 7, 3, 0, 0, 0], [4, 5, 6, 7, 8, 9, 3]])
    together = enc(padded, torch.tensor([4, 7]))
    dirs = 2 if bidirectional else 1
    assert together.states.shape == (2, 7, 6 * dirs)
    torch.testing.assert_close(together.states[0, :4], alone.states[0])
    torch.testing.assert_close(together.summary[0], alone.summary[0])
    assert torch.all(together.states[0, 4:] == 0)


def test_unknown_cell_names_the_option():
    with pytest.raises(ValueError, match="model.encoder.cell='rnn'"):
        RNNEncoder(vocab_size=20, emb_size=8, cell="rnn", hidden_size=6, num_layers=1,
                   bidirectional=True, dropout=0.0)
