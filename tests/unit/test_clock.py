"""seq2seq/clock.py: the run's one clock, and the checkpoints it reads."""

import pytest

from seq2seq.clock import RunClock, saved_seconds


class FakeNow:
    def __init__(self):
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_the_clock_counts_from_the_start_of_training_after_the_seconds_before():
    now = FakeNow()
    clock = RunClock(now)
    now.t += 7.0  # before training (the sanity check): not counted
    assert clock.elapsed() == 0.0
    clock.start()
    now.t += 12.5
    assert clock.elapsed() == 12.5
    checkpoint = {}
    clock.save(checkpoint)
    resumed = RunClock(now)
    resumed.restore(checkpoint)
    assert resumed.elapsed() == 12.5  # not started: what earlier processes spent
    resumed.start()
    now.t += 2.0
    assert resumed.elapsed() == pytest.approx(14.5)


@pytest.mark.parametrize("checkpoint, seconds", [
    ({"run_clock": {"seconds": 40.0}, "callbacks": {}}, 40.0),
    # written when the module and the fitted schedule each kept a time: the callback's counts
    # as trainer.max_time does (the module's included the sanity check)
    ({"wall_seconds": 47.0, "callbacks": {"ScheduleToTime": {"elapsed": 45.0, "plan": None}}},
     45.0),
    ({"wall_seconds": 47.0, "callbacks": {"ModelCheckpoint{}": {"best_model_path": ""}}}, 47.0),
    ({"callbacks": {}}, 0.0),  # older still: no time kept
])
def test_saved_seconds_reads_every_checkpoint_layout(checkpoint, seconds):
    assert saved_seconds(checkpoint) == seconds
