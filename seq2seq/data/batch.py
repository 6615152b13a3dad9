"""A padded batch of sentence pairs, and the collate function that builds it."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from seq2seq.data.tokenizer import BOS_ID, EOS_ID, PAD_ID


@dataclass
class Batch:
    """Right-padded source and target of B pairs.

    src: [B, S] long; src_lengths: [B] long; src_mask: [B, S] bool, True = real token;
    tgt_in: [B, T] long, bos + y; tgt_out: [B, T] long, y + eos; ids: [B] long, the examples'
    positions in their split (to restore input order).
    """

    src: torch.Tensor
    src_lengths: torch.Tensor
    src_mask: torch.Tensor
    tgt_in: torch.Tensor | None
    tgt_out: torch.Tensor | None
    ids: torch.Tensor

    def __len__(self) -> int:
        return self.src.size(0)

    @property
    def num_tgt_tokens(self) -> int:
        """Real target tokens (eos included)."""
        return int((self.tgt_out != PAD_ID).sum()) if self.tgt_out is not None else 0

    def _map(self, fn) -> Batch:
        """A batch of `fn` applied to every tensor field (None fields stay None)."""
        return Batch(*(None if (t := getattr(self, f.name)) is None else fn(t)
                       for f in fields(self)))

    def rows(self, start: int, stop: int) -> Batch:
        """Pairs start..stop-1 of the batch (views, same padded lengths)."""
        return self._map(lambda t: t[start:stop])

    def select(self, index: torch.Tensor) -> Batch:
        """Pairs `index` ([N] long) of the batch, padding cut to their longest source and
        target (search and the encoder expect S = the longest source)."""
        part = self._map(lambda t: t[index])
        s = int(part.src_lengths.max()) if len(part) else 0
        part.src, part.src_mask = part.src[:, :s], part.src_mask[:, :s]
        if part.tgt_out is not None:
            t = int((part.tgt_out != PAD_ID).sum(1).max()) if len(part) else 0
            part.tgt_in, part.tgt_out = part.tgt_in[:, :t], part.tgt_out[:, :t]
        return part

    def to(self, device: torch.device | str) -> Batch:
        return self._map(lambda t: t.to(device, non_blocking=True))


def pad(seqs: list[torch.Tensor], value: int = PAD_ID) -> torch.Tensor:
    """Right-pad 1-D tensors into [N, max_len]."""
    return torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True, padding_value=value)


def collate(examples: list[tuple[int, torch.Tensor, torch.Tensor | None]]) -> Batch:
    """Examples (id, src ids [S_i], tgt ids [T_i] or None) -> Batch. Sources carry eos."""
    ids = torch.tensor([e[0] for e in examples], dtype=torch.long)
    src = [torch.cat([e[1].long(), torch.tensor([EOS_ID])]) for e in examples]
    src_lengths = torch.tensor([len(s) for s in src], dtype=torch.long)
    src_padded = pad(src)
    # an empty source is just [eos]; the mask is built from lengths so it is never all False
    src_mask = torch.arange(src_padded.size(1))[None, :] < src_lengths[:, None]
    if examples[0][2] is None:
        return Batch(src_padded, src_lengths, src_mask, None, None, ids)
    bos, eos = torch.tensor([BOS_ID]), torch.tensor([EOS_ID])
    tgt_in = pad([torch.cat([bos, e[2].long()]) for e in examples])
    tgt_out = pad([torch.cat([e[2].long(), eos]) for e in examples])
    return Batch(src_padded, src_lengths, src_mask, tgt_in, tgt_out, ids)
