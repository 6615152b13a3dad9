"""Length-bucketed batches under a token budget, sharded whole across data-parallel ranks: the
one batcher of training, evaluation, translation and reranking."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import DataLoader, Sampler

from seq2seq.data.buckets import (
    cut_batches,
    integers,
    length_order,
    permute,
    split_to_multiple,
)
from seq2seq.data.errors import DataError


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of examples of similar length.

    Every epoch the examples are sorted by (target length, source length) with ties broken at
    random (seeded by seed + epoch), cut into batches that fit the budget, and the batches are
    shuffled. The cost of a batch is its padded size, n * max(longest source, longest target),
    which must stay within `max_tokens`; or, with `batch_size`, the batch holds that many
    sentences.

    All ranks form the same batches; rank r takes batches r, r + W, r + 2W, ... Large batches are
    halved until the count divides by W, so every rank gets the same number of batches and every
    example is used exactly once per epoch (unequal counts hang gloo and NCCL).

    Lengths count the tokens each side will have in the batch (eos / bos included).
    Call `set_epoch` before each epoch; Lightning does not call it on batch samplers.
    """

    def __init__(
        self,
        src_lengths: Sequence[int],
        tgt_lengths: Sequence[int],
        max_tokens: int | None = None,
        batch_size: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ):
        if (max_tokens is None) == (batch_size is None):
            raise DataError("set exactly one of data.max_tokens and data.batch_size")
        # kept in their own (small) integer type: at tens of millions of examples int64 copies
        # would cost every rank hundreds of MiB
        self.src_lengths, self.tgt_lengths = integers(src_lengths), integers(tgt_lengths)
        longest = int(max(self.src_lengths.max(initial=0), self.tgt_lengths.max(initial=0)))
        if max_tokens is not None and max_tokens < longest:
            raise DataError(
                f"data.max_tokens={max_tokens} is smaller than the longest example ({longest} "
                f"tokens); raise data.max_tokens or lower data.max_len"
            )
        self.max_tokens, self.batch_size = max_tokens, batch_size
        self.shuffle, self.seed = shuffle, seed
        self.num_replicas, self.rank = num_replicas, rank
        self.epoch = 0
        self._resume: tuple[int, int] | None = None  # (epoch, batches to skip), see resume_at
        self._cache: tuple[int, np.ndarray, np.ndarray] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def resume_at(self, epoch: int, batches: int) -> None:
        """Set `epoch` and make its next pass skip this rank's first `batches` batches: a run
        resumed from a mid-epoch checkpoint continues at the next batch of the same order
        (Lightning does not call on_train_epoch_start when it resumes mid-epoch)."""
        self.epoch, self._resume = epoch, (epoch, batches)

    def batches_to_skip(self) -> int:
        """This rank's batches of the current epoch that its next pass skips (see resume_at)."""
        return self._resume[1] if self._resume and self._resume[0] == self.epoch else 0

    def _batches(self) -> tuple[np.ndarray, np.ndarray]:
        """This epoch's batches of all ranks, as (order [N] int64: example ids batch after batch,
        starts [n_batches + 1] int64: where each batch begins in `order`, then N)."""
        if self._cache is not None and self._cache[0] == self.epoch:
            return self._cache[1], self._cache[2]
        n = len(self.src_lengths)
        rng = np.random.default_rng(self.seed + self.epoch)
        order = length_order(self.src_lengths, self.tgt_lengths,
                              rng.permutation(n) if self.shuffle else None)
        starts = self._cut(np.maximum(self.src_lengths[order], self.tgt_lengths[order]))
        if self.shuffle:
            order, starts = permute(order, starts, rng.permutation(len(starts) - 1))
        order, starts = split_to_multiple(order, starts, self.num_replicas)
        order = order.astype(np.min_scalar_type(max(n - 1, 0)), copy=False)
        self._cache = (self.epoch, order, starts)
        return order, starts

    def _cut(self, sizes: np.ndarray) -> np.ndarray:
        return cut_batches(sizes, self.max_tokens, self.batch_size)

    def _all_batches(self) -> list[list[int]]:
        """This epoch's batches of all ranks, as lists (small inputs and tests)."""
        order, starts = self._batches()
        return [order[a:b].tolist() for a, b in zip(starts[:-1], starts[1:], strict=True)]

    def __iter__(self) -> Iterator[list[int]]:
        start, self._resume = self.batches_to_skip(), None
        order, starts = self._batches()
        mine = np.arange(self.rank, len(starts) - 1, self.num_replicas)[start:]
        for j in mine.tolist():
            yield order[starts[j] : starts[j + 1]].tolist()

    def __len__(self) -> int:
        return (len(self._batches()[1]) - 1) // self.num_replicas

    def padding_efficiency(self) -> float:
        """Real tokens / padded tokens over this epoch's batches of all ranks (both sides)."""
        order, starts = self._batches()
        if len(order) == 0:
            return 1.0
        s, t = self.src_lengths[order], self.tgt_lengths[order]
        first = starts[:-1]
        longest = (np.maximum.reduceat(s, first).astype(np.int64)
                   + np.maximum.reduceat(t, first).astype(np.int64))
        padded = np.diff(starts) * longest
        real = int(s.sum(dtype=np.int64)) + int(t.sum(dtype=np.int64))
        return real / max(int(padded.sum()), 1)


class ResumableLoader(DataLoader):
    """The training DataLoader, whose place in the epoch travels in Lightning's checkpoints.

    Lightning saves `state_dict()` with the fit loop (a plain DataLoader has none, and a run
    resumed mid-epoch would start the epoch's batches over) and, when it resumes mid-epoch, calls
    `load_state_dict()` before iterating: the batch sampler (a BucketBatchSampler) then skips the
    batches already trained, without loading them. Batches are counted as they leave the loader,
    so batches that workers have prefetched do not count.
    """

    _served = 0

    def __iter__(self) -> Iterator:
        self._served = self.batch_sampler.batches_to_skip()
        for batch in super().__iter__():
            self._served += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": int(self.batch_sampler.epoch), "batches": int(self._served)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.batch_sampler.resume_at(int(state["epoch"]), int(state["batches"]))


def ordered_batches(src_lengths: Sequence[int], tgt_lengths: Sequence[int], max_tokens: int,
                    num_replicas: int = 1, rank: int = 0) -> BucketBatchSampler:
    """Batches for evaluation, translation and rescoring: every example once, in length order,
    under a budget of `max_tokens` padded tokens raised to the longest example so that each
    one fits. Lengths as in BucketBatchSampler (eos / bos included)."""
    src_lengths, tgt_lengths = integers(src_lengths), integers(tgt_lengths)
    longest = max(int(src_lengths.max(initial=1)), int(tgt_lengths.max(initial=1)))
    return BucketBatchSampler(src_lengths, tgt_lengths, max_tokens=max(max_tokens, longest),
                              shuffle=False, num_replicas=num_replicas, rank=rank)
