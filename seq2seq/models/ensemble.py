"""An ensemble of trained models that decodes as one: at each step the next-token
distribution is the mean of the members' distributions (as in fairseq and Marian).

`Ensemble` has the interface every search uses (`encode`, then `decoder.step`), so greedy,
beam search and sampling decode an ensemble unchanged. Members may differ in architecture
(cell, attention, sizes) but must share the target vocabulary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from seq2seq.models.contract import DecoderState
from seq2seq.models.seq2seq import Seq2Seq


def mean_log_prob(log_probs: list[torch.Tensor]) -> torch.Tensor:
    """log of the members' mean probability: log((1/M) sum_m p_m) from the M members'
    log-probabilities, each [..., V] (or gathered [..., T]) -> the same shape."""
    return torch.logsumexp(torch.stack(log_probs), dim=0) - math.log(len(log_probs))


@dataclass
class EnsembleState:
    """One decoder state per member, each for the same B rows."""

    states: list[DecoderState]

    def index_select(self, rows: torch.Tensor, same_source: bool = False) -> EnsembleState:
        """The state of rows `rows` ([B'] long) in every member (see DecoderState.index_select)."""
        return EnsembleState([s.index_select(rows, same_source) for s in self.states])


class EnsembleDecoder:
    """`step` over all members: log of the mean probability, and the mean attention weights."""

    def __init__(self, members: nn.ModuleList):
        self.members = members

    def step(self, prev_tokens: torch.Tensor, state: EnsembleState):
        """prev_tokens: [B] long -> log-probabilities [B, V] (already normalized, so searches
        that apply log_softmax get them back unchanged), new state, attention weights [B, S]."""
        logps, states, weights = [], [], []
        for model, s in zip(self.members, state.states, strict=True):
            logits, s, w = model.decoder.step(prev_tokens, s)
            logps.append(torch.log_softmax(logits.float(), dim=-1))
            states.append(s)
            weights.append(w.float())
        return mean_log_prob(logps), EnsembleState(states), torch.stack(weights).mean(dim=0)


class Ensemble(nn.Module):
    """Several trained Seq2Seq models decoding together (inference only)."""

    def __init__(self, members: list[Seq2Seq]):
        super().__init__()
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least 2 models, got {len(members)}")
        sizes = {m.decoder.vocab_size for m in members}
        if len(sizes) > 1:
            raise ValueError(f"ensemble members have different target vocabularies: {sorted(sizes)}")
        self.members = nn.ModuleList(members)
        self.decoder = EnsembleDecoder(self.members)

    def encode(self, src: torch.Tensor, src_lengths: torch.Tensor,
               src_mask: torch.Tensor) -> EnsembleState:
        """src: [B, S]; src_lengths: [B]; src_mask: [B, S] -> every member's initial state."""
        return EnsembleState([m.encode(src, src_lengths, src_mask) for m in self.members])

    def forward(self, *args, **kwargs):
        raise TypeError("an Ensemble only decodes (encode, decoder.step); train its members")
