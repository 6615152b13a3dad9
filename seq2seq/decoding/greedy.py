"""Greedy decoding, batched; finished sentences leave the batch so no work is thrown away."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from seq2seq.data.tokenizer import BOS_ID, EOS_ID
from seq2seq.models.seq2seq import Seq2Seq


@dataclass
class Hypotheses:
    """tokens: one list of ids per sentence (eos excluded); scores: [B] sum of log-probs;
    attention: one [len + 1, S_i] float tensor per sentence (rows for the tokens and eos)."""

    tokens: list[list[int]]
    scores: torch.Tensor
    attention: list[torch.Tensor]


def max_output_length(src_lengths: torch.Tensor, a: float, b: int) -> torch.Tensor:
    """Longest output allowed per sentence: a * source length + b.  [B] long."""
    return (src_lengths.float() * a + b).long()


@torch.no_grad()
def greedy_decode(model: Seq2Seq, src: torch.Tensor, src_lengths: torch.Tensor,
                  src_mask: torch.Tensor, max_len_a: float = 1.5, max_len_b: int = 10,
                  ) -> Hypotheses:
    """The most likely token at each step until eos or a * src_len + b tokens.

    src: [B, S] long; src_lengths: [B] long; src_mask: [B, S] bool.
    """
    B, device = src.size(0), src.device
    state = model.encode(src, src_lengths, src_mask)
    limit = max_output_length(src_lengths, max_len_a, max_len_b)  # [B]
    alive = torch.arange(B, device=device)  # rows of the original batch still decoding
    prev = torch.full((B,), BOS_ID, dtype=torch.long, device=device)
    tokens: list[list[int]] = [[] for _ in range(B)]
    attn: list[list[torch.Tensor]] = [[] for _ in range(B)]
    scores = torch.zeros(B, device=device)
    t = 0
    while alive.numel() > 0:
        logits, state, weights = model.decoder.step(prev, state)
        logp = torch.log_softmax(logits.float(), dim=-1)
        best_logp, best = logp.max(dim=-1)  # [B']
        scores.index_add_(0, alive, best_logp)
        t += 1
        done = (best == EOS_ID) | (t >= limit[alive])
        best_l, done_l, alive_l = best.tolist(), done.tolist(), alive.tolist()
        w = weights.float().cpu()
        for j, row in enumerate(alive_l):
            attn[row].append(w[j])
            if best_l[j] != EOS_ID:
                tokens[row].append(best_l[j])
        if any(done_l):
            keep = (~done).nonzero().squeeze(1)
            alive, prev, state = alive[keep], best[keep], state.index_select(keep)
        else:
            prev = best
    lengths = src_lengths.tolist()
    attention = [torch.stack(a)[:, : lengths[i]] for i, a in enumerate(attn)]
    return Hypotheses(tokens, scores.cpu(), attention)
