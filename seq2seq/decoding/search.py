"""One entry to every search: options as a dataclass, a batch in, n-best lists out."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from seq2seq.decoding.beam_search import Hypothesis, beam_search
from seq2seq.decoding.sampling import sample
from seq2seq.models.seq2seq import Seq2Seq


@dataclass
class DecodeOptions:
    """beam: beam size (1 = greedy); alpha: length penalty; coverage: coverage penalty beta;
    no_repeat_ngram_size: forbid repeating n-grams (0 = off); min_len: tokens before eos;
    max_len_a, max_len_b: at most a * src_len + b tokens; nbest: hypotheses returned per input;
    sample: draw `nbest` samples instead of searching, with temperature, top_k (0 = off),
    top_p (1 = off) and seed."""

    beam: int = 1
    alpha: float = 0.6
    coverage: float = 0.0
    no_repeat_ngram_size: int = 0
    min_len: int = 0
    max_len_a: float = 1.5
    max_len_b: int = 10
    nbest: int = 1
    sample: bool = False
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int | None = None

    @classmethod
    def from_dict(cls, d: dict) -> DecodeOptions:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names and v is not None})


def decode(model: Seq2Seq, src: torch.Tensor, src_lengths: torch.Tensor, src_mask: torch.Tensor,
           opts: DecodeOptions) -> list[list[Hypothesis]]:
    """src: [B, S]; src_lengths: [B]; src_mask: [B, S] -> per sentence, `nbest` hypotheses."""
    if opts.sample:
        return sample(model, src, src_lengths, src_mask, n=opts.nbest,
                      temperature=opts.temperature, top_k=opts.top_k, top_p=opts.top_p,
                      seed=opts.seed, max_len_a=opts.max_len_a, max_len_b=opts.max_len_b)
    return beam_search(model, src, src_lengths, src_mask, beam_size=max(opts.beam, opts.nbest),
                       alpha=opts.alpha, beta=opts.coverage,
                       no_repeat_ngram_size=opts.no_repeat_ngram_size, min_len=opts.min_len,
                       max_len_a=opts.max_len_a, max_len_b=opts.max_len_b, nbest=opts.nbest)
