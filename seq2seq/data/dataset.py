"""The examples of a split: pairs of a binarized corpus, kept or dropped by length."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from seq2seq.data.binarized import BinarizedSplit, TokenArray


class _Side:
    """One side of a dataset as a sequence: item i is example i's ids ([L_i] long tensor)."""

    def __init__(self, array: TokenArray, index: np.ndarray | None):
        self.array, self.index = array, index

    def __len__(self) -> int:
        return len(self.array) if self.index is None else len(self.index)

    def __getitem__(self, i: int) -> torch.Tensor:
        j = i if self.index is None else int(self.index[i])
        return torch.from_numpy(self.array[j].astype(np.int64))

    def lengths(self) -> np.ndarray:
        """[N] uint16 or uint32, ids of each example (mapped when the dataset is a whole
        split)."""
        lengths = self.array.lengths()
        return lengths if self.index is None else lengths[self.index]

    def batch_lengths(self) -> np.ndarray:
        """[N] uint16 or uint32, the tokens each example has on this side of a batch: its ids
        plus eos (source) or bos / eos (target). The lengths' type has room for the + 1."""
        return self.lengths() + np.ones(1, dtype=self.array.lengths().dtype)


class PairDataset(Dataset):
    """Subword ids of aligned sentences, read from a binarized split that every process maps;
    item i is (i, src ids [S_i] long, tgt ids [T_i] long).

    `index` ([N] int, optional) lists the pairs of the split that are examples, in order (the
    training split drops empty and over-long pairs); example i is pair index[i]. Ids exclude
    bos/eos; collate adds them. Nothing is held per example: a pickled dataset (a DataLoader
    worker started by spawn) maps the files again.
    """

    def __init__(self, split: BinarizedSplit, index: np.ndarray | None = None):
        self.split, self.index = split, index
        self.src, self.tgt = _Side(split.src, index), _Side(split.tgt, index)

    def __len__(self) -> int:
        return len(self.src)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor, torch.Tensor]:
        return i, self.src[i], self.tgt[i]

    @property
    def src_lengths(self) -> np.ndarray:
        """[N] unsigned int, source tokens each example has in a batch (eos included)."""
        return self.src.batch_lengths()

    @property
    def tgt_lengths(self) -> np.ndarray:
        """[N] unsigned int, target tokens each example has in a batch (bos + y, or y + eos)."""
        return self.tgt.batch_lengths()

    def subset(self, keep: np.ndarray) -> PairDataset:
        """The examples `keep` ([M] int, positions in this dataset), as a dataset."""
        keep = np.asarray(keep, dtype=np.int64)
        index = keep if self.index is None else self.index[keep]
        return PairDataset(self.split, index.astype(np.min_scalar_type(max(len(self.split), 1))))

    def __getstate__(self) -> dict:
        return {"folder": self.split.folder, "index": self.index}

    def __setstate__(self, state: dict) -> None:
        self.__init__(BinarizedSplit(state["folder"]), state["index"])
