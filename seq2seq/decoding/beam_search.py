"""Batched beam search over `decoder.step()`.

All sentences and beams advance together as [B * K] rows; states are reordered with
index_select. Finished sentences leave the batch: a sentence is finished when no live beam can
beat the `nbest` best finished hypotheses it holds, or when it reaches its length limit.
Beam 1 is greedy search.
"""

from __future__ import annotations

import torch

from seq2seq.data.tokenizer import BOS_ID, EOS_ID
from seq2seq.decoding.greedy import greedy_decode
from seq2seq.decoding.hypothesis import Hypothesis, max_output_length
from seq2seq.decoding.options import DecodeOptions
from seq2seq.decoding.penalties import block_repeated_ngrams, coverage_penalty, length_penalty
from seq2seq.models.seq2seq import Seq2Seq


@torch.no_grad()
def beam_search(
    model: Seq2Seq,
    src: torch.Tensor,
    src_lengths: torch.Tensor,
    src_mask: torch.Tensor,
    opts: DecodeOptions,
) -> list[list[Hypothesis]]:
    """The `opts.nbest` best hypotheses of each sentence, best first.

    src: [B, S] long; src_lengths: [B] long; src_mask: [B, S] bool. opts: beam (K), alpha (length
    penalty exponent), coverage (coverage penalty weight beta), no_repeat_ngram_size, min_len
    (tokens before eos is allowed), max_len_a and max_len_b (outputs hold at most
    max_len_a * src_len + max_len_b tokens) and nbest; the sampling options are not read.
    """
    K, alpha, beta, nbest = opts.beam, opts.alpha, opts.coverage, opts.nbest
    no_repeat_ngram_size, min_len = opts.no_repeat_ngram_size, opts.min_len
    max_len_a, max_len_b = opts.max_len_a, opts.max_len_b
    if nbest > K:
        raise ValueError(f"nbest={nbest} cannot exceed the beam size {K}")
    if K == 1 and not (beta or no_repeat_ngram_size or min_len):
        return greedy_decode(model, src, src_lengths, src_mask, max_len_a=max_len_a,
                             max_len_b=max_len_b)
    B, S, device = src.size(0), src.size(1), src.device
    limit = max_output_length(src_lengths, max_len_a, max_len_b).tolist()  # tokens, eos excluded
    state = model.encode(src, src_lengths, src_mask)
    state = state.index_select(torch.arange(B, device=device).repeat_interleave(K))  # [B*K]
    live = torch.arange(B, device=device)  # sentences still searching, as batch indices
    scores = torch.full((B, K), float("-inf"), device=device)
    scores[:, 0] = 0.0  # the first step expands a single beam
    history = torch.zeros(B * K, 0, dtype=torch.long, device=device)  # [n*K, t]
    attn = torch.zeros(B * K, 0, S, device=device)  # [n*K, t, S]
    coverage = torch.zeros(B * K, S, device=device)
    prev = torch.full((B * K,), BOS_ID, dtype=torch.long, device=device)
    finished: list[list[Hypothesis]] = [[] for _ in range(B)]
    limit_t = torch.tensor(limit, device=device)
    # live log-probs only fall and lp only grows, so log_prob / lp(limit) bounds a live beam
    lp_max = length_penalty(limit_t.float(), alpha) if alpha > 0 else torch.ones(B, device=device)
    # score of the nbest-th best finished hypothesis; a live beam must beat it to matter
    kth = torch.full((B,), float("-inf"), device=device)
    t = 0
    while live.numel() > 0:
        n = live.numel()
        logits, state, weights = model.decoder.step(prev, state)  # [n*K, V], [n*K, S]
        weights = weights.float()
        logp = torch.log_softmax(logits.float(), dim=-1)
        t += 1
        if t <= min_len:
            logp[:, EOS_ID] = float("-inf")
        if no_repeat_ngram_size:
            logp = block_repeated_ngrams(logp, history, no_repeat_ngram_size)
        V = logp.size(1)
        cand = (scores[:, :, None] + logp.view(n, K, V)).view(n, K * V)  # [n, K*V]
        top, idx = cand.topk(min(2 * K, K * V), dim=1)  # [n, 2K]
        beam, tok = idx // V, idx % V
        rows = torch.arange(n, device=device)[:, None] * K + beam  # [n, 2K] rows of the step
        new_cov = coverage + weights if beta else coverage

        # eos among the K best candidates ends a hypothesis
        is_eos = (tok == EOS_ID) & torch.isfinite(top)
        is_eos[:, K:] = False
        for i, j in is_eos.nonzero().tolist():
            r = int(rows[i, j])
            b = int(live[i])
            _add(finished[b], K, history[r], top[i, j], torch.cat([attn[r], weights[r][None]]),
                 new_cov[r], src_mask[b], alpha, beta, int(src_lengths[b]))
            if len(finished[b]) >= nbest:
                kth[b] = finished[b][nbest - 1].score

        # the K best non-eos candidates continue
        key = torch.where(tok == EOS_ID, K * V + torch.arange(top.size(1), device=device),
                          torch.arange(top.size(1), device=device).expand_as(tok))
        pos = key.argsort(dim=1)[:, :K]  # [n, K]
        scores = top.gather(1, pos)
        sel = rows.gather(1, pos).view(-1)  # [n*K]
        prev = tok.gather(1, pos).view(-1)
        history = torch.cat([history[sel], prev[:, None]], dim=1)
        attn = torch.cat([attn[sel], weights[sel][:, None]], dim=1)
        coverage = new_cov[sel]
        state = state.index_select(sel, same_source=True)  # sel keeps rows in their sentence

        # a sentence is done at its length limit, or when no live beam can beat its n-best
        at_limit = t >= limit_t[live]  # [n]
        bound = scores.max(dim=1).values / lp_max[live]  # best score a live beam can reach
        done = at_limit | (bound <= kth[live])
        for i in at_limit.nonzero().squeeze(1).tolist():
            b = int(live[i])
            for k in range(K):
                r = i * K + k
                if torch.isfinite(scores[i, k]):
                    _add(finished[b], K, history[r], scores[i, k], attn[r], coverage[r],
                         src_mask[b], alpha, beta, int(src_lengths[b]), eos=False)
        if done.any():
            keep = (~done).nonzero().squeeze(1)
            keep_rows = (keep[:, None] * K + torch.arange(K, device=device)).view(-1)
            live, scores = live[keep], scores[keep]
            history, attn, coverage = history[keep_rows], attn[keep_rows], coverage[keep_rows]
            prev, state = prev[keep_rows], state.index_select(keep_rows)
    return [f[:nbest] for f in finished]


def _add(bucket: list[Hypothesis], K: int, tokens: torch.Tensor, log_prob: torch.Tensor,
         attention: torch.Tensor, coverage: torch.Tensor, mask: torch.Tensor, alpha: float,
         beta: float, src_len: int, eos: bool = True) -> None:
    """Score a finished hypothesis and keep the K best of its sentence, best first."""
    toks = tokens.tolist()
    length = len(toks) + (1 if eos else 0)
    score = float(log_prob) / length_penalty(length, alpha)
    if beta:
        score += float(coverage_penalty(coverage[None], mask[None], beta)[0])
    bucket.append(Hypothesis(toks, score, float(log_prob), attention[:, :src_len].cpu()))
    bucket.sort(key=lambda h: -h.score)
    del bucket[K:]

