import numpy as np
import pytest

from seq2seq.data.errors import DataError
from seq2seq.data.sampler import BucketBatchSampler, ResumableLoader


def _lengths(n=1003, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(2, 60, n), rng.integers(2, 60, n)


@pytest.mark.parametrize("world", [1, 2, 3])
def test_ranks_cover_every_example_once_with_equal_batch_counts(world):
    src, tgt = _lengths()
    for epoch in (0, 1):
        seen, counts = [], []
        for rank in range(world):
            s = BucketBatchSampler(src, tgt, max_tokens=500, seed=7, num_replicas=world,
                                   rank=rank)
            s.set_epoch(epoch)
            batches = list(s)
            assert len(batches) == len(s)
            counts.append(len(batches))
            seen += [i for b in batches for i in b]
        assert len(set(counts)) == 1
        assert sorted(seen) == list(range(len(src)))


def test_token_budget_counts_padded_tokens():
    src, tgt = _lengths()
    s = BucketBatchSampler(src, tgt, max_tokens=500, seed=1)
    for b in s:
        assert len(b) * max(src[b].max(), tgt[b].max()) <= 500


def test_batches_change_with_epoch_but_not_with_rank_view():
    src, tgt = _lengths()
    a = BucketBatchSampler(src, tgt, max_tokens=500, seed=1)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first
    a.set_epoch(0)
    assert list(a) == first


def test_sentence_count_batches():
    src, tgt = _lengths(100)
    s = BucketBatchSampler(src, tgt, batch_size=16, shuffle=False)
    sizes = sorted(len(b) for b in s)
    assert sizes[-1] == 16 and sum(sizes) == 100


def test_budget_smaller_than_longest_example_is_refused():
    with pytest.raises(DataError, match="data.max_tokens=10 is smaller than the longest"):
        BucketBatchSampler([5, 30], [4, 12], max_tokens=10)


def test_sorting_keeps_padding_low():
    src, tgt = _lengths(5000)
    assert BucketBatchSampler(src, tgt, max_tokens=2000).padding_efficiency() > 0.5


def _ids(batch):
    return list(batch)


@pytest.mark.parametrize("workers", [0, 1])
def test_loader_resumed_mid_epoch_continues_at_the_next_batch(workers):
    src, tgt = _lengths(300)

    def loader(world=2, rank=1):
        sampler = BucketBatchSampler(src, tgt, max_tokens=500, seed=7, num_replicas=world,
                                     rank=rank)
        return ResumableLoader(list(range(len(src))), batch_sampler=sampler, collate_fn=_ids,
                               num_workers=workers)

    full = loader()
    full.batch_sampler.set_epoch(3)
    epoch3 = list(full)
    first = loader()
    first.batch_sampler.set_epoch(3)
    it = iter(first)
    head = [next(it) for _ in range(5)]  # workers have prefetched more: those do not count
    state = first.state_dict()
    assert state == {"epoch": 3, "batches": 5} and head == epoch3[:5]

    resumed = loader()
    resumed.load_state_dict(state)  # sets the epoch too (no on_train_epoch_start mid-epoch)
    assert len(resumed) == len(epoch3)
    assert list(resumed) == epoch3[5:]
    assert resumed.state_dict() == {"epoch": 3, "batches": len(epoch3)}
    resumed.batch_sampler.set_epoch(4)  # the next epoch is whole again
    full.batch_sampler.set_epoch(4)
    assert list(resumed) == list(full)


def test_loader_resumed_from_an_epoch_end_starts_the_next_epoch_whole():
    src, tgt = _lengths(300)
    sampler = BucketBatchSampler(src, tgt, max_tokens=500, seed=7)
    loader = ResumableLoader(list(range(len(src))), batch_sampler=sampler, collate_fn=_ids)
    loader.load_state_dict({"epoch": 2, "batches": len(sampler)})
    sampler.set_epoch(3)
    assert len(list(loader)) == len(sampler)


def _reference_batches(src, tgt, max_tokens, seed, epoch=0):
    """The batching rule written example by example: sort by (tgt, src), ties in a random order,
    add each example while (count + 1) * longest fits the budget, then shuffle the batches."""
    rng = np.random.default_rng(seed + epoch)
    rank = np.empty(len(src), dtype=np.int64)
    rank[rng.permutation(len(src))] = np.arange(len(src))  # example i's place in the tie order
    order = np.lexsort((rank, src, tgt))
    batches, current, longest = [], [], 0
    for i in order.tolist():
        size = max(src[i], tgt[i])
        if current and (len(current) + 1) * max(longest, size) > max_tokens:
            batches.append(current)
            current, longest = [], 0
        current.append(i)
        longest = max(longest, size)
    batches.append(current)
    return [batches[j] for j in rng.permutation(len(batches))]


@pytest.mark.parametrize("n, budget", [(1, 100), (997, 240), (3000, 1000), (5000, 80)])
def test_vectorised_batching_matches_the_example_by_example_rule(n, budget):
    src, tgt = _lengths(n, seed=n)
    src, tgt = np.minimum(src, budget), np.minimum(tgt, budget)
    for epoch in (0, 2):
        s = BucketBatchSampler(src, tgt, max_tokens=budget, seed=5)
        s.set_epoch(epoch)
        assert list(s) == _reference_batches(src, tgt, budget, seed=5, epoch=epoch)


def test_padding_efficiency_counts_each_batch_longest_side():
    s = BucketBatchSampler([3, 1, 2], [1, 4, 2], batch_size=3, shuffle=False)
    # one batch of 3: real 3+1+2 + 1+4+2 = 13, padded 3 * (3 + 4) = 21
    assert s.padding_efficiency() == pytest.approx(13 / 21)
