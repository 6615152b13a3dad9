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
from seq2seq.data.errors import cache_write_error
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


def _load_cached(path: Path, text: ParallelText) -> PairDataset | None:
    """The cached ids at `path`, or None when there are none or the file is damaged (truncated,
    overwritten, another format): the caller then encodes again and replaces it."""
    if not path.is_file():
        return None
    try:
        blob = torch.load(path, weights_only=True)
        data = PairDataset(_unpack(blob["src"]), _unpack(blob["tgt"]))
        if len(data.src) != len(text.src) or len(data.tgt) != len(text.tgt):
            raise ValueError(f"{len(data.src)} pairs for {len(text.src)} lines")
    except Exception as e:  # any damage is answered the same way: encode again
        log.warning("cached ids %s are unreadable (%s: %s); encoding %s again", path,
                    type(e).__name__, str(e).splitlines()[0] if str(e) else "", text.src_path)
        return None
    return data


def numericalize(
    text: ParallelText,
    src_tok: SubwordTokenizer,
    tgt_tok: SubwordTokenizer,
    cache_dir: str | Path | None,
) -> PairDataset:
    """Encode both sides of `text`, from the cache when the same text and models were seen.

    A damaged cache file is encoded again and replaced; a cache folder that cannot be written
    raises DataError naming it.
    """
    key = hashlib.sha256(src_tok.model_proto + tgt_tok.model_proto)
    for line in text.src + ["\0"] + text.tgt:
        key.update(line.encode("utf-8"))
        key.update(b"\n")
    path = Path(cache_dir) / f"ids-{key.hexdigest()[:24]}.pt" if cache_dir else None
    if path is not None and (cached := _load_cached(path, text)) is not None:
        return cached
    src, tgt = _to_tensors(src_tok.encode(text.src)), _to_tensors(tgt_tok.encode(text.tgt))
    if path is not None:
        buf = io.BytesIO()
        torch.save({"src": _pack(src), "tgt": _pack(tgt)}, buf)
        try:
            atomic_write_bytes(path, buf.getvalue())
        except OSError as e:
            raise cache_write_error(path, e) from e
    return PairDataset(src, tgt)
