"""Recurrent encoder: embeddings and a (bi)directional GRU/LSTM over packed sequences."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seq2seq.models.contract import Encoder, EncoderOutput
from seq2seq.models.rnn import rnn_class

__all__ = ["EncoderOutput", "RNNEncoder"]


class RNNEncoder(Encoder):
    """Embeds source ids and runs a multi-layer (bi)directional RNN.

    Args:
        vocab_size: source vocabulary size V (wired in code).
        emb_size: embedding size E (wired in code from model.emb_size).
        cell: "lstm" or "gru".
        hidden_size: units per direction.
        num_layers: stacked layers.
        bidirectional: run a backward RNN too and concatenate.
        dropout: on the embeddings and between layers.
        pad_id: padding id (its embedding stays zero).
    """

    def __init__(self, *, vocab_size: int, emb_size: int, cell: str, hidden_size: int,
                 num_layers: int, bidirectional: bool, dropout: float, pad_id: int = 0):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, emb_size, padding_idx=pad_id)
        self.dropout = nn.Dropout(dropout)
        self.cell = cell
        self.rnn = rnn_class(cell, "model.encoder.cell")(
            emb_size, hidden_size, num_layers=num_layers, batch_first=True,
            bidirectional=bidirectional, dropout=dropout if num_layers > 1 else 0.0,
        )
        self.output_size = hidden_size * (2 if bidirectional else 1)

    def describe(self) -> str:
        return self.cell

    def forward(self, src: torch.Tensor, src_lengths: torch.Tensor,
                src_mask: torch.Tensor | None = None) -> EncoderOutput:
        """src: [B, S] long; src_lengths: [B] long (>= 1); src_mask: [B, S] bool (unused: the
        lengths pack the sequences) -> EncoderOutput, summary = the top layer's last state."""
        emb = self.dropout(self.embedding(src))  # [B, S, E]
        packed = pack_padded_sequence(emb, src_lengths.cpu(), batch_first=True,
                                      enforce_sorted=False)
        out, hidden = self.rnn(packed)
        states, _ = pad_packed_sequence(out, batch_first=True, total_length=src.size(1))
        h = hidden[0] if isinstance(hidden, tuple) else hidden  # [L * dirs, B, H]
        dirs = 2 if self.rnn.bidirectional else 1
        final = h[-dirs:].transpose(0, 1).reshape(src.size(0), -1)  # [B, dirs * H]
        return EncoderOutput(states=self.dropout(states), summary=final)
