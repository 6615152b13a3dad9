"""Sampling: temperature, top-k and nucleus (top-p) sampling, seeded, n samples per input."""

from __future__ import annotations

import torch

from seq2seq.decoding.hypothesis import Hypothesis, decode_rows, max_output_length
from seq2seq.decoding.options import DecodeOptions
from seq2seq.models.seq2seq import Seq2Seq


def top_k_top_p_filter(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Set to -inf every logit outside the k most likely tokens and outside the nucleus: the
    smallest set of most likely tokens whose probability mass reaches top_p.

    logits: [R, V] -> [R, V].
    """
    if top_k and top_k < logits.size(-1):
        kth = logits.topk(top_k, dim=-1).values[:, -1:]  # [R, 1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(-1)
        mass_before = probs.cumsum(-1) - probs  # mass of the more likely tokens
        drop_sorted = mass_before >= top_p  # the token that reaches p is kept
        drop = drop_sorted.scatter(1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


@torch.no_grad()
def sample(model: Seq2Seq, src: torch.Tensor, src_lengths: torch.Tensor, src_mask: torch.Tensor,
           opts: DecodeOptions) -> list[list[Hypothesis]]:
    """`opts.nbest` samples per sentence (scores are the log-probs under the filtered
    distribution), drawn with opts.temperature, top_k, top_p and seed (None: a fresh one), each
    at most max_len_a * src_len + max_len_b tokens long.

    src: [B, S] long; src_lengths: [B] long; src_mask: [B, S] bool.
    """
    n, temperature, top_k, top_p, seed = (opts.nbest, opts.temperature, opts.top_k, opts.top_p,
                                          opts.seed)
    if temperature <= 0:
        raise ValueError(f"temperature={temperature}: must be > 0 (use greedy for 0)")
    B, device = src.size(0), src.device
    gen = torch.Generator(device=device)
    gen.manual_seed(seed if seed is not None else torch.seed())

    def draw(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logp = top_k_top_p_filter(logits.float() / temperature, top_k, top_p).log_softmax(-1)
        nxt = torch.multinomial(logp.exp(), 1, generator=gen).squeeze(1)  # [R']
        return nxt, logp.gather(1, nxt[:, None]).squeeze(1)

    expand = torch.arange(B, device=device).repeat_interleave(n)  # [B*n]
    state = model.encode(src, src_lengths, src_mask).index_select(expand)
    limit = max_output_length(src_lengths, opts.max_len_a, opts.max_len_b)[expand]
    hyps = decode_rows(model.decoder.step, state, src_lengths[expand], limit, draw)
    return [hyps[b * n : (b + 1) * n] for b in range(B)]
