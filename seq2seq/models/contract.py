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
    state.tensors() -> [(StateTensor, tensor)]; type(state).from_tensors({name: tensor})

A state is a `DecoderState`: it lists its tensors, each with the axes search and export need
(`StateTensor`), and rebuilds itself from them. Search reorders rows through that list, export
turns it into the fixed inputs and outputs of an ONNX graph, and the torch-free runtime reads the
same list from export.json, so a new decoder exports and serves without any code outside its own
module.

The attention a decoder returns is one distribution over the source per output token (rows
sum to 1, exactly zero at padding): the heatmaps, the attention entropy and the coverage
penalty read it. Decoders with several attention heads return their mean over the heads of
the last layer unless told otherwise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import ClassVar

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


def check_shape(name: str, tensor: torch.Tensor, expected: tuple) -> None:
    """Raise if `tensor`'s shape differs from `expected` (None matches any size)."""
    actual = tuple(tensor.shape)
    if len(actual) != len(expected) or any(
        e is not None and e != a for e, a in zip(expected, actual, strict=False)
    ):
        raise ValueError(f"{name}: expected shape {expected}, got {actual}")


@dataclass(frozen=True)
class StateTensor:
    """One tensor of a decoder state, as search, export and the runtime see it.

    name: unique within the state; batch_axis: the axis of the B rows (search selects rows
    along it); static: depends on the source only, so the step reads it but never changes it
    (beams of one sentence share it, and the exported step does not return it); source_axis:
    the axis of the S source positions, or None; time_axis: the axis that grows by one each
    step (a self-attention cache), or None.
    """

    name: str
    batch_axis: int = 0
    static: bool = False
    source_axis: int | None = None
    time_axis: int | None = None

    def as_dict(self) -> dict:
        """The entry export.json's `state` list holds for this tensor."""
        return asdict(self)


class DecoderState:
    """Base of every decoder state: what one decoding step needs, for B rows.

    Subclasses (usually dataclasses) define `tensors` and `from_tensors`; `index_select`
    follows from them. Tensors that a state does not hold (an LSTM's cell in a GRU's state)
    are left out of `tensors()`, and `from_tensors` gets only those it listed.
    """

    def tensors(self) -> list[tuple[StateTensor, torch.Tensor]]:
        """Every tensor of the state with its description, in a fixed order."""
        raise NotImplementedError

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor]) -> DecoderState:
        """The state holding `tensors` (by `StateTensor.name`): the inverse of `tensors()`."""
        raise NotImplementedError

    def index_select(self, rows: torch.Tensor, same_source: bool = False) -> DecoderState:
        """The state of rows `rows` ([B'] long), in that order (beam reordering, pruning).
        same_source: row i and row rows[i] translate the same sentence (beams reordered within
        their sentence), so static tensors are kept as they are instead of copied."""
        return type(self).from_tensors({
            spec.name: t if same_source and spec.static else t.index_select(spec.batch_axis, rows)
            for spec, t in self.tensors()})


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

    def init_state(self, enc: EncoderOutput, src_mask: torch.Tensor) -> DecoderState:
        """The state before the first target token. src_mask: [B, S] bool."""
        raise NotImplementedError

    def step(self, prev_tokens: torch.Tensor, state: DecoderState
             ) -> tuple[torch.Tensor, DecoderState, torch.Tensor]:
        """prev_tokens: [B] long -> logits [B, V], new state, attention weights [B, S]."""
        raise NotImplementedError

    def forward(self, tgt_in: torch.Tensor, state: DecoderState,
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
