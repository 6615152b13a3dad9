"""Corpus loss, perplexity, unknown-token share and attention entropy of an evaluation split.

Each figure is a ratio of two corpus sums (loss = label-smoothed loss summed over target tokens
/ target tokens), so the states are the sums themselves, summed over processes when computed.
A mean of per-process (or per-batch) means would weight a process holding few tokens like one
holding many; the ratio of summed sums is the single-process corpus figure however the split
is shared out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch
from torchmetrics import Metric

STATES = ("loss_sum", "nll_sum", "target_tokens", "unk_tokens", "output_tokens", "entropy_sum",
          "attention_steps")


class Output(Protocol):
    """One decoded sentence (a `Hypothesis`): tokens without eos; attention: [steps, S_i]."""

    tokens: list[int]
    attention: torch.Tensor


class CorpusStats(Metric):
    """Sums over an evaluation split, exact under DDP (every state is summed over processes).

    Args:
        unk_id: id of the unknown token, counted in the decoded outputs.

    `compute()` gives `loss` (label-smoothed loss per target token), `ppl` (exp of the plain
    negative log-likelihood per target token), `unk_share` (unknown tokens / output tokens) and
    `attention_entropy` (mean entropy of an output step's attention weights, eos step included).
    A figure whose denominator is zero is 0 (ppl: 1). States are float64 and, as torchmetrics
    states are by default, not saved in checkpoints.
    """

    is_differentiable = False
    higher_is_better = None
    full_state_update = False

    def __init__(self, unk_id: int, **kwargs):
        super().__init__(**kwargs)
        self.unk_id = unk_id
        for name in STATES:
            self.add_state(name, default=torch.tensor(0.0, dtype=torch.float64),
                           dist_reduce_fx="sum")

    def _add(self, name: str, value) -> None:
        # out of place: the states may be inference tensors created by a reset under
        # torch.inference_mode (Lightning's evaluation loops)
        state = getattr(self, name)
        setattr(self, name, state + torch.as_tensor(value).to(state))

    def update(self, loss_sum: torch.Tensor, nll_sum: torch.Tensor, target_tokens: int,
               outputs: Sequence[Output] = ()) -> None:
        """loss_sum, nll_sum: [] summed over the `target_tokens` real target tokens of a batch
        (as `label_smoothed_nll` returns them); outputs: the batch's decoded sentences, if any."""
        self._add("loss_sum", loss_sum.detach())
        self._add("nll_sum", nll_sum.detach())
        self._add("target_tokens", target_tokens)
        if not outputs:
            return
        self._add("unk_tokens", sum(sum(t == self.unk_id for t in o.tokens) for o in outputs))
        self._add("output_tokens", sum(len(o.tokens) for o in outputs))
        weights = [o.attention.float().clamp_min(1e-12) for o in outputs]  # [steps, S_i] each
        entropy = torch.stack([-(a * a.log()).sum() for a in weights]).sum()  # all steps
        self._add("entropy_sum", entropy)
        self._add("attention_steps", sum(a.size(0) for a in weights))

    def compute(self) -> dict[str, torch.Tensor]:
        tokens = self.target_tokens.clamp_min(1)
        return {"loss": self.loss_sum / tokens,
                "ppl": torch.exp(self.nll_sum / tokens),
                "unk_share": self.unk_tokens / self.output_tokens.clamp_min(1),
                "attention_entropy": self.entropy_sum / self.attention_steps.clamp_min(1)}
