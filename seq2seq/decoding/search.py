"""One entry to every search: options as a dataclass, a batch in, n-best lists out."""

from __future__ import annotations

from dataclasses import replace

import torch

from seq2seq.decoding.beam_search import beam_search
from seq2seq.decoding.hypothesis import Hypothesis
from seq2seq.decoding.options import DecodeOptions
from seq2seq.decoding.sampling import sample
from seq2seq.models.seq2seq import Seq2Seq


def decode(model: Seq2Seq, src: torch.Tensor, src_lengths: torch.Tensor, src_mask: torch.Tensor,
           opts: DecodeOptions) -> list[list[Hypothesis]]:
    """src: [B, S]; src_lengths: [B]; src_mask: [B, S] -> per sentence, `nbest` hypotheses
    (samples with opts.sample, else beam search with a beam of at least `nbest`)."""
    if opts.sample:
        return sample(model, src, src_lengths, src_mask, opts)
    return beam_search(model, src, src_lengths, src_mask,
                       replace(opts, beam=max(opts.beam, opts.nbest)))
