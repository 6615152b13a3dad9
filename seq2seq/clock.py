"""The run's clock: seconds of training since the run began, across resumes.

One clock serves everything that asks how long a run has trained: the `val/minutes` every
validation logs (BLEU at a fixed budget, experiments/report.py) and the schedule fitted to
trainer.max_time (seq2seq/callbacks/schedule_to_time.py). It counts as trainer.max_time does:
from the start of training (after the sanity check), validations and checkpoint writes
included, and a checkpoint carries it, so a resumed run goes on from the seconds it held.
"""

from __future__ import annotations

import time
from collections.abc import Callable

KEY = "run_clock"  # the checkpoint entry: {"seconds": float}


class RunClock:
    """Seconds of training of one run, over all the processes that trained it.

    now: a monotonic clock in seconds (tests pass a fake one); everything that times a part of
    the run (an update, a validation) reads it too, so the parts add up to `elapsed()`."""

    def __init__(self, now: Callable[[], float] = time.perf_counter):
        self.now = now
        self.before = 0.0         # seconds of earlier processes of this run
        self._started = None      # `now()` when this process began to train

    def start(self) -> None:
        self._started = self.now()

    def elapsed(self) -> float:
        here = self.now() - self._started if self._started is not None else 0.0
        return self.before + here

    def save(self, checkpoint: dict) -> None:
        checkpoint[KEY] = {"seconds": self.elapsed()}

    def restore(self, checkpoint: dict) -> None:
        self.before = saved_seconds(checkpoint)


def saved_seconds(checkpoint: dict) -> float:
    """The seconds of training a checkpoint holds. One written before the run had a single
    clock holds two timings: the fitted schedule's `elapsed` (counted as trainer.max_time
    counts, so its plan stays right) is taken, else the module's `wall_seconds`; 0 if none."""
    if KEY in checkpoint:
        return float(checkpoint[KEY]["seconds"])
    for name, state in checkpoint.get("callbacks", {}).items():
        if name.startswith("ScheduleToTime") and "elapsed" in state:
            return float(state["elapsed"])
    return float(checkpoint.get("wall_seconds", 0.0))
