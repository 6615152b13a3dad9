"""One entry to every search: options as a dataclass, a batch in, n-best lists out."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from seq2seq.decoding.beam_search import beam_search
from seq2seq.decoding.hypothesis import Hypothesis
from seq2seq.decoding.sampling import sample
from seq2seq.models.seq2seq import Seq2Seq


class DecodeConfigError(ValueError):
    """A search option that is unknown or missing."""


@dataclass
class DecodeOptions:
    """The `decode` section of conf/train.yaml, where every value's default and meaning live.

    beam: beam size (1 = greedy); alpha: length penalty; coverage: coverage penalty beta;
    no_repeat_ngram_size: forbid repeating n-grams (0 = off); min_len: tokens before eos;
    max_len_a, max_len_b: at most a * src_len + b tokens; nbest: hypotheses returned per input;
    sample: draw `nbest` samples instead of searching, with temperature, top_k (0 = off),
    top_p (1 = off) and seed (null = a fresh one).
    """

    beam: int
    alpha: float
    coverage: float
    no_repeat_ngram_size: int
    min_len: int
    max_len_a: float
    max_len_b: int
    nbest: int
    sample: bool
    temperature: float
    top_k: int
    top_p: float
    seed: int | None

    @classmethod
    def from_dict(cls, d: dict, where: str = "decode") -> DecodeOptions:
        """Options from a config section `where`; an unknown or missing key is an error."""
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise DecodeConfigError(f"{where}.{unknown[0]}: unknown search option; the options are "
                             f"{', '.join(names)}")
        missing = [k for k in names if k not in d]
        if missing:
            raise DecodeConfigError(f"{where}.{missing[0]} is missing (see the decode section of "
                             "conf/train.yaml)")
        return cls(**d)


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
