"""Scoring terms of beam search as small pure functions (Wu et al. 2016, GNMT, section 7)."""

from __future__ import annotations

import torch


def length_penalty(length: torch.Tensor | int, alpha: float) -> torch.Tensor | float:
    """lp(Y) = ((5 + |Y|) / 6) ** alpha; alpha = 0 gives 1 (no normalization)."""
    return ((5.0 + length) / 6.0) ** alpha


def coverage_penalty(coverage: torch.Tensor, src_mask: torch.Tensor, beta: float) -> torch.Tensor:
    """cp(X; Y) = beta * sum_i log(min(sum_t a_ti, 1)) over real source positions i.

    coverage: [R, S] attention summed over the output steps; src_mask: [R, S] bool -> [R].
    Positions never attended are floored at 1e-6 so the penalty stays finite.
    """
    if beta == 0:
        return coverage.new_zeros(coverage.size(0))
    logs = coverage.clamp(min=1e-6, max=1.0).log().masked_fill(~src_mask, 0.0)
    return beta * logs.sum(-1)


def block_repeated_ngrams(logp: torch.Tensor, history: torch.Tensor, n: int) -> torch.Tensor:
    """Forbid tokens that would repeat an n-gram already in each row's history.

    logp: [R, V] log-probs of the next token; history: [R, t] tokens so far (bos excluded).
    Returns logp with -inf at the banned tokens.
    """
    R, t = history.shape
    if n <= 0 or t < n:  # no complete n-gram yet
        return logp
    if n == 1:
        banned = history
        hit = torch.ones_like(banned, dtype=torch.bool)
    else:
        grams = history.unfold(1, n, 1)  # [R, t - n + 1, n]
        prefix = history[:, t - n + 1 :]  # [R, n - 1], the last n - 1 tokens
        hit = (grams[:, :, :-1] == prefix[:, None, :]).all(-1)  # [R, t - n + 1]
        banned = grams[:, :, -1]
    V = logp.size(1)
    penalty = logp.new_zeros(R, V + 1)  # column V collects the non-matches
    penalty.scatter_(1, banned.masked_fill(~hit, V), float("-inf"))
    return logp + penalty[:, :V]
