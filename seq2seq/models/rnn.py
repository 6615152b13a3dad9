"""The recurrent family: a (bi)directional GRU/LSTM encoder, and a GRU/LSTM decoder with
attention, input feeding and an attentional output layer (Luong et al. 2015).

The decoder owns its state (`RNNState`): `init_state` builds it from the encoder (the bridge),
`step` advances one token for search, and `forward` runs a teacher-forced target.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seq2seq.models.attention import Attention
from seq2seq.models.contract import (
    Decoder,
    DecoderState,
    Encoder,
    EncoderOutput,
    StateTensor,
    check_shape,
    masked_mean,
)

RNN_CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}


def rnn_class(cell: str, option: str) -> type[nn.RNNBase]:
    """The torch RNN of `cell` ("lstm" or "gru"); `option` names the config key in the error."""
    if cell not in RNN_CELLS:
        raise ValueError(f"{option}={cell!r}: choose one of {', '.join(RNN_CELLS)}")
    return RNN_CELLS[cell]


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


@dataclass
class RNNState(DecoderState):
    """Everything one decoding step needs, for B rows.

    hidden: [L, B, H]; cell: [L, B, H] (LSTM) or None; feed: [B, Ha] previous attentional
    vector (input feeding) or None; keys: [B, S, Hk] attention keys, projected once per batch;
    values: [B, S, Hv] encoder states; src_mask: [B, S] bool, True = real token.
    """

    hidden: torch.Tensor
    cell: torch.Tensor | None
    feed: torch.Tensor | None
    keys: torch.Tensor
    values: torch.Tensor
    src_mask: torch.Tensor

    # keys, values and mask depend only on the sentence: beams of one sentence share them
    LAYOUT = (StateTensor("hidden", batch_axis=1), StateTensor("cell", batch_axis=1),
              StateTensor("feed"), StateTensor("keys", static=True, source_axis=1),
              StateTensor("values", static=True, source_axis=1),
              StateTensor("src_mask", static=True, source_axis=1))

    def tensors(self) -> list[tuple[StateTensor, torch.Tensor]]:
        return [(spec, getattr(self, spec.name)) for spec in self.LAYOUT
                if getattr(self, spec.name) is not None]

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor]) -> RNNState:
        return cls(**{spec.name: tensors.get(spec.name) for spec in cls.LAYOUT})


class RNNDecoder(Decoder):
    """Target embeddings, a GRU/LSTM, attention and the output layer over [s_t; c_t].

    Args:
        vocab_size: target vocabulary size V (wired in code).
        emb_size: embedding size E (wired in code).
        attention: the attention module (built with query_size = hidden_size).
        encoder_size: encoder output size Hv (wired in code).
        cell: "lstm" or "gru".
        hidden_size: RNN units H.
        num_layers: stacked layers.
        dropout: on target embeddings and between layers.
        hidden_dropout: on [s_t; c_t] before the attentional layer.
        input_feeding: feed the previous attentional vector to the RNN (Luong et al. 2015).
        bridge: initialize the state from the encoder's final state (else zeros).
        tie_embeddings: share the target embedding matrix with the output projection
            (the attentional vector then has size E).
        pad_id: padding id.
    """

    uses_attention = True

    def __init__(self, *, vocab_size: int, emb_size: int, attention: Attention,
                 encoder_size: int, cell: str, hidden_size: int, num_layers: int, dropout: float,
                 hidden_dropout: float, input_feeding: bool, bridge: bool, tie_embeddings: bool,
                 pad_id: int = 0):
        super().__init__()
        if attention.query_size != hidden_size:
            raise ValueError(f"attention query size {attention.query_size} != decoder hidden "
                             f"size {hidden_size}")
        self.vocab_size, self.hidden_size, self.num_layers = vocab_size, hidden_size, num_layers
        self.is_lstm = cell == "lstm"
        self.attention = attention
        self.input_feeding = input_feeding
        self.attentional_size = emb_size if tie_embeddings else hidden_size
        self.embedding = nn.Embedding(vocab_size, emb_size, padding_idx=pad_id)
        self.dropout = nn.Dropout(dropout)
        self.hidden_dropout = nn.Dropout(hidden_dropout)
        rnn_input = emb_size + (self.attentional_size if input_feeding else 0)
        rnn_input += encoder_size if attention.before_rnn else 0
        self.rnn = rnn_class(cell, "model.decoder.cell")(
            rnn_input, hidden_size, num_layers=num_layers, batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.bridge = nn.Linear(encoder_size, num_layers * hidden_size) if bridge else None
        self.att_layer = nn.Linear(hidden_size + encoder_size, self.attentional_size)
        self.output = nn.Linear(self.attentional_size, vocab_size, bias=False)
        if tie_embeddings:
            self.output.weight = self.embedding.weight

    def describe(self) -> str:
        return "lstm" if self.is_lstm else "gru"

    @property
    def parallel_forward(self) -> bool:
        """Whether teacher forcing can run the RNN over all steps in one call."""
        return not self.input_feeding and not self.attention.before_rnn

    def init_state(self, enc: EncoderOutput, src_mask: torch.Tensor) -> RNNState:
        """The state before the first target token, from the encoder output."""
        B = enc.states.size(0)
        check_shape("src_mask", src_mask, (B, enc.states.size(1)))
        if self.bridge is not None:
            summary = enc.summary if enc.summary is not None else masked_mean(enc.states,
                                                                              src_mask)
            h = torch.tanh(self.bridge(summary))  # [B, L * H]
            h = h.view(B, self.num_layers, self.hidden_size).transpose(0, 1).contiguous()
        else:
            h = enc.states.new_zeros(self.num_layers, B, self.hidden_size)
        feed = enc.states.new_zeros(B, self.attentional_size) if self.input_feeding else None
        return RNNState(hidden=h, cell=h.clone() if self.is_lstm else None, feed=feed,
                            keys=self.attention.project_keys(enc.states), values=enc.states,
                            src_mask=src_mask)

    def _advance(self, emb: torch.Tensor, state: RNNState):
        """emb: [B, T, E] (T = 1 unless `parallel_forward`) -> attentional vectors [B, T, Ha],
        new state, attention weights [B, T, S]."""
        inputs = [self.dropout(emb)]
        if self.input_feeding:
            inputs.append(state.feed[:, None, :])
        if self.attention.before_rnn:
            query = state.hidden[-1][:, None, :]  # [B, 1, H]
            context, weights = self.attention(query, state.keys, state.values, state.src_mask)
            inputs.append(context)
        x = torch.cat(inputs, dim=-1)  # [B, T, In]
        if x.size(1) == 1:
            h, c = self._cell_step(x[:, 0], state.hidden, state.cell)
            out = h[-1][:, None, :]  # [B, 1, H]
        else:
            rnn_state = (state.hidden, state.cell) if self.is_lstm else state.hidden
            out, rnn_state = self.rnn(x, rnn_state)  # [B, T, H]
            h, c = rnn_state if self.is_lstm else (rnn_state, None)
        if not self.attention.before_rnn:
            context, weights = self.attention(out, state.keys, state.values, state.src_mask)
        att = torch.tanh(self.att_layer(self.hidden_dropout(torch.cat([out, context], -1))))
        new = RNNState(hidden=h, cell=c, feed=att[:, -1] if self.input_feeding else None,
                           keys=state.keys, values=state.values, src_mask=state.src_mask)
        return att, new, weights

    def _cell_step(self, x: torch.Tensor, hidden: torch.Tensor, cell: torch.Tensor | None):
        """One time step of `self.rnn` through its cells: x [B, In], hidden/cell [L, B, H] ->
        new hidden and cell [L, B, H] (cell None for a GRU).

        Same weights and arithmetic as calling `self.rnn` on a length-1 sequence, but a
        per-step nn.LSTM/nn.GRU call goes through oneDNN and costs more than a cell call on CPU
        (measured in experiments/README.md, "What made training faster").
        """
        rnn = self.rnn
        hs, cs = [], []
        for layer in range(self.num_layers):
            weights = (getattr(rnn, f"weight_ih_l{layer}"), getattr(rnn, f"weight_hh_l{layer}"),
                       getattr(rnn, f"bias_ih_l{layer}"), getattr(rnn, f"bias_hh_l{layer}"))
            if self.is_lstm:
                h, c = torch.lstm_cell(x, (hidden[layer], cell[layer]), *weights)
                cs.append(c)
            else:
                h = torch.gru_cell(x, hidden[layer], *weights)
            hs.append(h)
            x = h
            if layer + 1 < self.num_layers and rnn.dropout > 0:
                x = nn.functional.dropout(x, rnn.dropout, self.training)
        return torch.stack(hs), (torch.stack(cs) if self.is_lstm else None)

    def step(self, prev_tokens: torch.Tensor, state: RNNState):
        """prev_tokens: [B] long -> logits [B, V], new state, attention weights [B, S]."""
        att, state, weights = self._advance(self.embedding(prev_tokens)[:, None, :], state)
        return self.output(att[:, 0]), state, weights[:, 0]

    def forward(self, tgt_in: torch.Tensor, state: RNNState,
                teacher_forcing_ratio: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced decoding of tgt_in: [B, T] (bos + y).

        With teacher_forcing_ratio < 1 (scheduled sampling, Bengio et al. 2015) each input after
        the first is, with probability 1 - ratio, the model's own most likely previous token.
        Returns logits [B, T, V] and attention weights [B, T, S].
        """
        emb = self.embedding(tgt_in)  # [B, T, E]
        if self.parallel_forward and teacher_forcing_ratio >= 1.0:
            att, _, weights = self._advance(emb, state)
            return self.output(att), weights
        sampling = teacher_forcing_ratio < 1.0
        atts, all_weights = [], []
        prev_logits = None
        for t in range(tgt_in.size(1)):
            emb_t = emb[:, t : t + 1]  # [B, 1, E]
            if sampling and prev_logits is not None:
                own = prev_logits.argmax(-1)  # [B]
                use_own = torch.rand(own.shape, device=own.device) >= teacher_forcing_ratio
                emb_t = torch.where(use_own[:, None, None], self.embedding(own)[:, None], emb_t)
            att, state, weights = self._advance(emb_t, state)
            atts.append(att)
            all_weights.append(weights)
            if sampling:
                prev_logits = self.output(att[:, 0]).detach() if t + 1 < tgt_in.size(1) else None
        att = torch.cat(atts, dim=1)  # [B, T, Ha]
        return self.output(att), torch.cat(all_weights, dim=1)
