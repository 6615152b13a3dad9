"""Recurrent decoder with attention, input feeding and an attentional output layer.

The decoder owns its state: `init_state` builds it from the encoder (the bridge), `step`
advances one token for search, and `forward` runs a teacher-forced target.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import nn

from seq2seq.models.attention import Attention
from seq2seq.models.contract import Decoder, EncoderOutput, masked_mean
from seq2seq.models.rnn import check_shape, rnn_class


@dataclass
class DecoderState:
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

    def index_select(self, rows: torch.Tensor, same_source: bool = False) -> DecoderState:
        """The state of rows `rows` ([B'] long), in that order (beam reordering, pruning).

        same_source: row i and row rows[i] translate the same sentence (beams reordered within
        their sentence), so keys, values and mask, which depend only on the sentence, are kept
        as they are instead of being copied.
        """
        out = {}
        for f in fields(self):
            t = getattr(self, f.name)
            if same_source and f.name in ("keys", "values", "src_mask"):
                out[f.name] = t
                continue
            dim = 1 if f.name in ("hidden", "cell") else 0
            out[f.name] = None if t is None else t.index_select(dim, rows)
        return DecoderState(**out)


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

    def init_state(self, enc: EncoderOutput, src_mask: torch.Tensor) -> DecoderState:
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
        return DecoderState(hidden=h, cell=h.clone() if self.is_lstm else None, feed=feed,
                            keys=self.attention.project_keys(enc.states), values=enc.states,
                            src_mask=src_mask)

    def _advance(self, emb: torch.Tensor, state: DecoderState):
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
        new = DecoderState(hidden=h, cell=c, feed=att[:, -1] if self.input_feeding else None,
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

    def step(self, prev_tokens: torch.Tensor, state: DecoderState):
        """prev_tokens: [B] long -> logits [B, V], new state, attention weights [B, S]."""
        att, state, weights = self._advance(self.embedding(prev_tokens)[:, None, :], state)
        return self.output(att[:, 0]), state, weights[:, 0]

    def forward(self, tgt_in: torch.Tensor, state: DecoderState,
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
