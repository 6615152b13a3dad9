"""Greedy decoding, batched; finished sentences leave the batch so no work is thrown away."""

from __future__ import annotations

import torch

from seq2seq.decoding.hypothesis import Hypothesis, decode_rows, max_output_length
from seq2seq.models.seq2seq import Seq2Seq


def _most_likely(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """logits [R, V] -> the most likely token of each row [R] and its log-probability [R]."""
    best_logp, best = torch.log_softmax(logits.float(), dim=-1).max(dim=-1)
    return best, best_logp


@torch.no_grad()
def greedy_decode(model: Seq2Seq, src: torch.Tensor, src_lengths: torch.Tensor,
                  src_mask: torch.Tensor, *, max_len_a: float, max_len_b: int,
                  ) -> list[list[Hypothesis]]:
    """The most likely token at each step until eos or max_len_a * src_len + max_len_b tokens.

    src: [B, S] long; src_lengths: [B] long; src_mask: [B, S] bool. Returns one hypothesis per
    sentence (score = log_prob), as a one-element list like the other searches' n-best lists.
    """
    state = model.encode(src, src_lengths, src_mask)
    limit = max_output_length(src_lengths, max_len_a, max_len_b)  # [B]
    hyps = decode_rows(model.decoder.step, state, src_lengths, limit, _most_likely)
    return [[h] for h in hyps]
