"""Noisy-channel reranking of n-best lists with a reverse-direction model (Yee et al. 2019,
"Simple and Effective Noisy Channel Modeling for Neural Machine Translation").

The direct model proposes candidates y for a source x; a model trained the other way (target ->
source) scores how well each candidate explains the source, and the candidates are reordered by

    score(y) = search_score(y) + weight * log p(x | y) / (|x| + 1)

where search_score is the search's own score (log p(y|x) / lp(|y|) for beam search) and the
channel term is normalized by the source length, eos included, like the direct one by lp.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from seq2seq.data.batch import collate
from seq2seq.data.sampler import ordered_batches
from seq2seq.data.tokenizer import PAD_ID
from seq2seq.decoding.hypothesis import Hypothesis
from seq2seq.models.ensemble import Ensemble, mean_log_prob


def _position_log_probs(model, batch) -> torch.Tensor:
    """[B, T] log-probabilities of batch.tgt_out by one teacher-forced pass of each model; an
    Ensemble gives the log of its members' mean probability at each position."""
    members = list(model.members) if isinstance(model, Ensemble) else [model]
    per = []
    for m in members:
        logits, _ = m(batch.src, batch.src_lengths, batch.src_mask, batch.tgt_in)  # [B, T, V]
        per.append(torch.log_softmax(logits.float(), dim=-1)
                   .gather(2, batch.tgt_out[:, :, None])[:, :, 0])  # [B, T]
    return mean_log_prob(per)  # [B, T]


@torch.no_grad()
def forced_log_probs(model, src: list[list[int]], tgt: list[list[int]], *, max_tokens: int,
                     device: str | torch.device = "cpu") -> list[float]:
    """log p(tgt_i + eos | src_i) of each pair under `model` (a Seq2Seq or an Ensemble),
    teacher forced. src, tgt: ids without eos (an empty source or target is fine)."""
    out = [0.0] * len(src)
    for idx in ordered_batches([len(s) + 1 for s in src], [len(t) + 1 for t in tgt], max_tokens):
        batch = collate([(i, torch.tensor(src[i], dtype=torch.long),
                          torch.tensor(tgt[i], dtype=torch.long)) for i in idx]).to(device)
        logp = _position_log_probs(model, batch).masked_fill(batch.tgt_out == PAD_ID, 0.0)
        for i, value in zip(idx, logp.sum(dim=1).tolist(), strict=True):
            out[i] = value
    return out


def channel_rerank(channel, src_ids: list[list[int]], nbest: list[list[Hypothesis]],
                   weight: float, *, max_tokens: int, device: str | torch.device = "cpu",
                   ) -> list[list[Hypothesis]]:
    """Each n-best list reordered, best first, by score + weight * log p(x | y) / (|x| + 1)
    under `channel` (a target -> source Seq2Seq or Ensemble); the hypotheses' `score` becomes
    that sum and their `log_prob` stays the direct model's. src_ids: the sources' ids, no eos."""
    pairs = [(i, k) for i, hyps in enumerate(nbest) for k in range(len(hyps))]
    lps = forced_log_probs(channel, [nbest[i][k].tokens for i, k in pairs],
                           [src_ids[i] for i, _ in pairs], max_tokens=max_tokens, device=device)
    out: list[list[Hypothesis]] = [[] for _ in nbest]
    for (i, k), lp in zip(pairs, lps, strict=True):
        h = nbest[i][k]
        out[i].append(replace(h, score=h.score + weight * lp / (len(src_ids[i]) + 1)))
    for hyps in out:
        hyps.sort(key=lambda h: -h.score)
    return out
