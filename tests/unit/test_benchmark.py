"""experiments/benchmark.py: timed training steps may span several epochs."""

from itertools import islice

from experiments.benchmark import _endless


class _Loader:
    """Three batches an epoch; records the epochs its sampler was set to."""

    def __init__(self):
        self.epochs = []
        self.batch_sampler = self

    def set_epoch(self, epoch: int) -> None:
        self.epochs.append(epoch)

    def __iter__(self):
        return iter([f"e{self.epochs[-1]}b{i}" for i in range(3)])


def test_training_batches_continue_into_the_next_epoch_reshuffled():
    loader = _Loader()
    batches = list(islice(_endless(loader), 7))
    assert batches == ["e0b0", "e0b1", "e0b2", "e1b0", "e1b1", "e1b2", "e2b0"]
    assert loader.epochs == [0, 1, 2]
