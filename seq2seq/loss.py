"""Label-smoothed cross-entropy over target tokens, padding ignored."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def label_smoothed_nll(logits: torch.Tensor, target: torch.Tensor, smoothing: float = 0.0,
                       pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor, int]:
    """logits: [B, T, V]; target: [B, T] long.

    Returns (loss summed over real tokens, nll summed over real tokens, number of real tokens).
    The smoothed loss spreads `smoothing` of the mass uniformly over the vocabulary
    (Szegedy et al. 2016); the nll is the plain negative log-likelihood, for perplexity.
    """
    flat = logits.reshape(-1, logits.size(-1)).float()  # [B*T, V]
    gold = target.reshape(-1)  # [B*T]
    loss = F.cross_entropy(flat, gold, ignore_index=pad_id, label_smoothing=smoothing,
                           reduction="sum")
    if smoothing > 0:
        with torch.no_grad():
            nll = F.cross_entropy(flat, gold, ignore_index=pad_id, reduction="sum")
    else:
        nll = loss.detach()
    return loss, nll, int((gold != pad_id).sum())
