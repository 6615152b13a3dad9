"""Numericalized parallel data, encoded once and cached by content."""

from __future__ import annotations

import hashlib
import io
import logging
from pathlib import Path

import torch
from torch.utils.data import Dataset

from seq2seq.atomic import atomic_write_bytes
from seq2seq.data.corpus import ParallelText
from seq2seq.data.tokenizer import SubwordTokenizer

log = logging.getLogger(__name__)


class PairDataset(Dataset):
    """Subword ids of aligned sentences; item i is (i, src ids [S_i], tgt ids [T_i] or None).

    Ids exclude bos/eos; collate adds them.
    """

    def __init__(self, src: list[torch.Tensor], tgt: list[torch.Tensor] | None):
        self.src, self.tgt = src, tgt

    def __len__(self) -> int:
        return len(self.src)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor, torch.Tensor | None]:
        return i, self.src[i], None if self.tgt is None else self.tgt[i]

    @property
    def src_lengths(self) -> list[int]:
        """Source tokens each example has in a batch (eos included)."""
        return [len(s) + 1 for s in self.src]

    @property
    def tgt_lengths(self) -> list[int]:
        """Target tokens each example has in a batch (bos + y, or y + eos)."""
        return [len(t) + 1 for t in self.tgt] if self.tgt is not None else [0] * len(self.src)

    def subset(self, keep: list[int]) -> PairDataset:
        return PairDataset([self.src[i] for i in keep],
                           None if self.tgt is None else [self.tgt[i] for i in keep])


def _to_tensors(ids: list[list[int]]) -> list[torch.Tensor]:
    return [torch.tensor(x, dtype=torch.int32) for x in ids]


def _pack(seqs: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    flat = torch.cat(seqs) if seqs else torch.zeros(0, dtype=torch.int32)
    return {"flat": flat, "lengths": lengths}


def _unpack(d: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    return list(torch.split(d["flat"], d["lengths"].tolist()))


def numericalize(
    text: ParallelText,
    src_tok: SubwordTokenizer,
    tgt_tok: SubwordTokenizer,
    cache_dir: str | Path | None,
) -> PairDataset:
    """Encode both sides of `text`, from the cache when the same text and models were seen."""
    key = hashlib.sha256(src_tok.model_proto + tgt_tok.model_proto)
    for line in text.src + ["\0"] + text.tgt:
        key.update(line.encode("utf-8"))
        key.update(b"\n")
    path = Path(cache_dir) / f"ids-{key.hexdigest()[:24]}.pt" if cache_dir else None
    if path is not None and path.is_file():
        blob = torch.load(path, weights_only=True)
        return PairDataset(_unpack(blob["src"]), _unpack(blob["tgt"]))
    src, tgt = _to_tensors(src_tok.encode(text.src)), _to_tensors(tgt_tok.encode(text.tgt))
    if path is not None:
        buf = io.BytesIO()
        torch.save({"src": _pack(src), "tgt": _pack(tgt)}, buf)
        atomic_write_bytes(path, buf.getvalue())
    return PairDataset(src, tgt)
