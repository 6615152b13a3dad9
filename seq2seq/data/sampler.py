"""Length-bucketed batches under a token budget, sharded whole across data-parallel ranks: the
one batcher of training, evaluation, translation and reranking."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import DataLoader, Sampler

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
        self.src_lengths = np.asarray(src_lengths, dtype=np.int64)
        self.tgt_lengths = np.asarray(tgt_lengths, dtype=np.int64)
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
        self._cache: tuple[int, list[list[int]]] | None = None

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

    def _all_batches(self) -> list[list[int]]:
        if self._cache is not None and self._cache[0] == self.epoch:
            return self._cache[1]
        n = len(self.src_lengths)
        rng = np.random.default_rng(self.seed + self.epoch)
        tie = rng.random(n) if self.shuffle else np.arange(n)
        order = np.lexsort((tie, self.src_lengths, self.tgt_lengths))
        batches: list[list[int]] = []
        current: list[int] = []
        longest = 0
        for i in order.tolist():
            size = max(int(self.src_lengths[i]), int(self.tgt_lengths[i]))
            if current and (
                (self.batch_size is not None and len(current) >= self.batch_size)
                or (self.max_tokens is not None
                    and (len(current) + 1) * max(longest, size) > self.max_tokens)
            ):
                batches.append(current)
                current, longest = [], 0
            current.append(i)
            longest = max(longest, size)
        if current:
            batches.append(current)
        if self.shuffle:
            perm = rng.permutation(len(batches))
            batches = [batches[j] for j in perm]
        batches = _split_to_multiple(batches, self.num_replicas)
        self._cache = (self.epoch, batches)
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        start, self._resume = self.batches_to_skip(), None
        yield from self._all_batches()[self.rank :: self.num_replicas][start:]

    def __len__(self) -> int:
        return len(self._all_batches()) // self.num_replicas

    def padding_efficiency(self) -> float:
        """Real tokens / padded tokens over this epoch's batches of all ranks (both sides)."""
        real = padded = 0
        for b in self._all_batches():
            s, t = self.src_lengths[b], self.tgt_lengths[b]
            real += int(s.sum() + t.sum())
            padded += len(b) * int(s.max() + t.max())
        return real / max(padded, 1)


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
    longest = max(max(src_lengths, default=1), max(tgt_lengths, default=1))
    return BucketBatchSampler(src_lengths, tgt_lengths, max_tokens=max(max_tokens, longest),
                              shuffle=False, num_replicas=num_replicas, rank=rank)


def _split_to_multiple(batches: list[list[int]], world: int) -> list[list[int]]:
    """Halve the largest batches until len(batches) is a multiple of `world`."""
    if world <= 1 or len(batches) % world == 0:
        return batches
    need = math.ceil(len(batches) / world) * world - len(batches)
    if len(batches) + need < world or sum(len(b) for b in batches) < len(batches) + need:
        raise DataError(
            f"not enough examples to give each of {world} ranks a batch; use fewer devices"
        )
    batches = list(batches)
    for _ in range(need):
        j = max(range(len(batches)), key=lambda k: len(batches[k]))
        b = batches[j]
        batches[j : j + 1] = [b[: len(b) // 2], b[len(b) // 2 :]]
    return batches
