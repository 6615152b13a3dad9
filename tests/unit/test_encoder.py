import pytest
import torch

from seq2seq.models.encoder import RNNEncoder


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
