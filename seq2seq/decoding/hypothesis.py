"""What every search shares: the hypothesis it returns, the output length limit, and the
token-by-token loop of greedy search and sampling."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from seq2seq.data.tokenizer import BOS_ID, EOS_ID


@dataclass
class Hypothesis:
    """One output of a search for one source sentence.

    tokens: ids without eos; score: what the search ranks by (beam search: log_prob / lp + cp;
    greedy search and sampling: log_prob); log_prob: sum of the token log-probabilities (eos
    included when produced); attention: [steps, S_i] weights of each output step (eos included
    when produced), on the CPU.
    """

    tokens: list[int]
    score: float
    log_prob: float
    attention: torch.Tensor


def max_output_length(src_lengths: torch.Tensor, a: float, b: int) -> torch.Tensor:
    """Longest output allowed per sentence, eos excluded: a * source length + b.  [B] long."""
    return (src_lengths.float() * a + b).long()


def decode_rows(step: Callable, state, src_lengths: torch.Tensor, limit: torch.Tensor,
                choose: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
                ) -> list[Hypothesis]:
    """Decode R rows one token at a time, each until it chooses eos or reaches its length limit;
    finished rows leave the batch, so no step is spent on them.

    step: the decoder's step(prev_tokens [R'], state) -> (logits [R', V], state, weights
    [R', S]); state: the initial decoder state of the R rows; src_lengths: [R] long;
    limit: [R] long, tokens allowed without eos; choose: logits [R', V] -> (next tokens [R']
    long, their log-probabilities [R'] float). Returns one Hypothesis per row (score =
    log_prob).
    """
    R, device = src_lengths.size(0), src_lengths.device
    alive = torch.arange(R, device=device)  # rows still decoding
    prev = torch.full((R,), BOS_ID, dtype=torch.long, device=device)
    tokens: list[list[int]] = [[] for _ in range(R)]
    attn: list[list[torch.Tensor]] = [[] for _ in range(R)]
    scores = torch.zeros(R, device=device)
    t = 0
    while alive.numel() > 0:
        logits, state, weights = step(prev, state)
        nxt, logp = choose(logits)  # [R'], [R']
        scores.index_add_(0, alive, logp.float())
        t += 1
        done = (nxt == EOS_ID) | (t >= limit[alive])
        w = weights.float().cpu()
        for j, (row, tok) in enumerate(zip(alive.tolist(), nxt.tolist(), strict=True)):
            attn[row].append(w[j])
            if tok != EOS_ID:
                tokens[row].append(tok)
        if bool(done.any()):
            keep = (~done).nonzero().squeeze(1)
            alive, nxt, state = alive[keep], nxt[keep], state.index_select(keep)
        prev = nxt
    lengths, totals = src_lengths.tolist(), scores.tolist()
    return [Hypothesis(tokens[r], totals[r], totals[r], torch.stack(attn[r])[:, : lengths[r]])
            for r in range(R)]
