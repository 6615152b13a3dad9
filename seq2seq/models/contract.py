"""The encoder/decoder contract: what search, ensembles, callbacks and results rely on.

Any encoder (RNN, Transformer, a user's own) maps source ids to states; any decoder builds its
state from the encoder output, advances it one token for search, and runs a teacher-forced
target for training. Nothing outside seq2seq/models/ asks which one it holds: a new architecture
is one module subclassing `Encoder` or `Decoder` and one config file naming it with `_target_`.

    encoder(src [B, S], src_lengths [B], src_mask [B, S]) -> EncoderOutput
    decoder.init_state(EncoderOutput, src_mask [B, S]) -> state
    decoder.step(prev_tokens [B], state) -> logits [B, V], state, attention [B, S]
    decoder(tgt_in [B, T], state, teacher_forcing_ratio) -> logits [B, T, V], attention [B, T, S]
    state.index_select(rows [B'], same_source=False) -> the state of those rows

The attention a decoder returns is one distribution over the source per output token (rows
sum to 1, exactly zero at padding): the heatmaps, the attention entropy and the coverage
penalty read it. Decoders with several attention heads return their mean over the heads of
the last layer unless told otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol

import torch
from torch import nn


@dataclass
class EncoderOutput:
    """states: [B, S, H_enc] top-layer outputs (zero at padding);
    summary: [B, H_enc] one vector per sentence for decoders that start from one (an RNN's
    final state, both directions concatenated), or None where the encoder has none (decoders
    then use `masked_mean(states, src_mask)`)."""

    states: torch.Tensor
    summary: torch.Tensor | None = None


def masked_mean(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """states: [B, S, H]; mask: [B, S] bool, True = real token -> [B, H], the mean over the
    real positions."""
    m = mask.to(states.dtype)[:, :, None]  # [B, S, 1]
    return (states * m).sum(1) / m.sum(1).clamp_min(1)


class DecoderStateLike(Protocol):
    """What search needs of a decoder state: its rows can be selected and reordered."""

    def index_select(self, rows: torch.Tensor, same_source: bool = False) -> DecoderStateLike:
        """The state of rows `rows` ([B'] long), in that order. same_source: row i and row
        rows[i] translate the same sentence (beams reordered within their sentence), so what
        depends only on the source may be kept as it is instead of copied."""
        ...


class Encoder(nn.Module):
    """Base of every encoder. Subclasses set `output_size` (H_enc) and `name` (a short label
    for results and reports, e.g. "gru", "transformer") and define `forward`.

    Constructors take keyword arguments: vocab_size, emb_size and pad_id are wired in code
    (seq2seq/models/seq2seq.py), everything else comes from the config file.
    """

    output_size: int
    name: ClassVar[str] = "encoder"

    def forward(self, src: torch.Tensor, src_lengths: torch.Tensor,
                src_mask: torch.Tensor) -> EncoderOutput:
        """src: [B, S] long; src_lengths: [B] long (>= 1); src_mask: [B, S] bool, True = real
        token -> EncoderOutput."""
        raise NotImplementedError

    def describe(self) -> str:
        """The label results.json and reports show for this encoder."""
        return self.name


class Decoder(nn.Module):
    """Base of every decoder. Subclasses set `vocab_size` (V) and define `init_state`, `step`
    and `forward` as in the module docstring.

    Class attribute `uses_attention`: True when the decoder is built around a separate
    attention module (the `model/attention` config group, built with query_size =
    the decoder's `hidden_size`); False when it has its own (a Transformer's cross-attention),
    and then model.attention must be left empty. `name`: a short label ("gru", "transformer").

    Constructors take keyword arguments: vocab_size, emb_size, encoder_size, tie_embeddings,
    pad_id (and attention, when `uses_attention`) are wired in code.
    """

    vocab_size: int
    uses_attention: ClassVar[bool] = False
    name: ClassVar[str] = "decoder"

    def init_state(self, enc: EncoderOutput, src_mask: torch.Tensor) -> DecoderStateLike:
        """The state before the first target token. src_mask: [B, S] bool."""
        raise NotImplementedError

    def step(self, prev_tokens: torch.Tensor, state: DecoderStateLike
             ) -> tuple[torch.Tensor, DecoderStateLike, torch.Tensor]:
        """prev_tokens: [B] long -> logits [B, V], new state, attention weights [B, S]."""
        raise NotImplementedError

    def forward(self, tgt_in: torch.Tensor, state: DecoderStateLike,
                teacher_forcing_ratio: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """tgt_in: [B, T] long (bos + y) -> logits [B, T, V], attention weights [B, T, S].
        teacher_forcing_ratio < 1 (scheduled sampling) may be refused by decoders that cannot
        feed their own outputs back during training, with a message saying so."""
        raise NotImplementedError

    def describe(self) -> str:
        """The label results.json and reports show for this decoder."""
        return self.name

    def attention_name(self) -> str:
        """The label of the attention the decoder uses (e.g. "luong_concat", "multihead")."""
        attention = getattr(self, "attention", None)
        return getattr(attention, "name", "none") if attention is not None else "none"
