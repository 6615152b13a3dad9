"""callbacks.schedule_to_time: end the cosine schedule, and training, at the update
trainer.max_time allows (conf/callbacks/schedule_to_time.yaml; off in the default callbacks).

A recipe sized in updates for one machine runs out of time mid-schedule on a slower one: the
max_time stop then comes at a high learning rate, which costs BLEU (Li et al. 2020, "Budgeted
training"). This callback measures the seconds an update and a validation take, and moves the end
of the decay (`WarmupSchedule.total_steps`) to the last update that fits, never past the one the
trainer planned (max_steps, or max_epochs' updates). Training stops there, with a validation.

It plans once when the warmup ends (the warmup does not depend on the end, so the rate is
continuous there) and again at the end of each validation, from the pace of the last updates and
the validations measured; when nothing more fits, that validation is the last. The time spent is
the run's clock (seq2seq/clock.py, owned by the LightningModule: the one `val/minutes` logs),
which checkpoints carry. The planned end is part of the scheduler's state, so a resumed run
continues the same schedule until its next plan. On several devices rank 0's plan is
broadcast, so every rank stops at the same update.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import lightning as L
from lightning.pytorch.callbacks import Timer

from seq2seq.clock import RunClock
from seq2seq.data.errors import DataError
from seq2seq.lr_schedule import WarmupSchedule

log = logging.getLogger(__name__)

MIN_MEASURED = 20   # updates timed before the first plan (the first SKIPPED are not counted)
SKIPPED = 3         # first updates of a process: one-off costs (allocations, kernel choice)
RECENT = 200        # updates whose mean is the pace a plan assumes


def budget_seconds(max_time) -> float:
    """Seconds of trainer.max_time in any form Lightning takes ("DD:HH:MM:SS", a dict of
    timedelta arguments, a timedelta); None or empty -> 0."""
    if not max_time:
        return 0.0
    if isinstance(max_time, Mapping):  # a DictConfig from the interpolation, too
        max_time = dict(max_time)
    return float(Timer(duration=max_time).time_remaining())


def planned_end(step: int, remaining: float, per_update: float, per_validation: float,
                validations: Callable[[int], int], last: int) -> int:
    """The last update T in [step, last] such that the updates step+1..T and the validations
    up to T (`validations(T)`, the one that ends training at T included) take at most
    `remaining` seconds; `step` (stop now) if none does. Validation counts grow with T, so the
    time needed does too, and a binary search finds T."""
    def fits(t: int) -> bool:
        return (t - step) * per_update + validations(t) * per_validation <= remaining

    lo, hi = step, max(last, step)
    while lo < hi:  # the largest t with fits(t), else step
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
    return lo


class ScheduleToTime(L.Callback):
    """Fit the end of a cosine `WarmupSchedule` to `max_time` (trainer.max_time, in any form
    Lightning takes) of training, as the module's run clock (`module.clock`) counts it.

    Plans at the end of the warmup and at the end of each validation; when the plan leaves no
    update after a validation, training stops there with no second validation. schedule: the
    configured optim.schedule, checked when the callback is built (only a cosine schedule has an
    end to move). reserve: the share of the budget kept free for what is not measured (the
    slower update of a long batch, other processes). The plan is logged, and `plan` (the planned
    end, seconds an update and a validation) goes into results.json."""

    def __init__(self, max_time, schedule: str = "cosine", reserve: float = 0.03):
        if schedule != "cosine":
            raise DataError(not_cosine(schedule))
        self.max_seconds, self.reserve = budget_seconds(max_time), reserve
        if self.max_seconds <= 0:
            raise DataError("callbacks.schedule_to_time fits the schedule to trainer.max_time, "
                            "which is not set: give one, e.g. trainer.max_time=00:00:20:00")
        self.clock: RunClock | None = None  # the module's, from setup()
        self.plan: dict | None = None
        self._last_end = None       # clock at the last training batch end (None: not training)
        self._validation_started = 0.0
        self._after_validation = False  # the interval since the last batch end held one
        self._updates = []          # seconds of the updates with no validation in between
        self._validations = []      # seconds of the validations, checkpoints and callbacks
        self._sanity = None         # (seconds, batches) of the sanity check
        self._sanity_started = 0.0
        self._first = None          # global step at this process's first timed batch

    # -- what a resumed run carries (the time spent travels in the run clock's entry) -----------

    def state_dict(self) -> dict:
        return {"plan": self.plan, "validations": list(self._validations)}

    def load_state_dict(self, state: dict) -> None:
        self.plan = state.get("plan")
        self._validations = list(state.get("validations", []))

    # -- measuring ---------------------------------------------------------------------------------

    def setup(self, trainer, module, stage: str) -> None:
        self.clock = module.clock

    def on_sanity_check_start(self, trainer, module) -> None:
        self._sanity_started = self.clock.now()

    def on_sanity_check_end(self, trainer, module) -> None:
        self._sanity = (self.clock.now() - self._sanity_started,
                        sum(trainer.num_sanity_val_batches))

    def on_train_start(self, trainer, module) -> None:
        self._last_end = self.clock.now()
        self._schedule(trainer)  # fails early on a schedule with no end to move

    def on_validation_start(self, trainer, module) -> None:
        self._validation_started = self.clock.now()

    def on_validation_end(self, trainer, module) -> None:
        if trainer.sanity_checking or self._last_end is None:
            return
        self._validations.append(self.clock.now() - self._validation_started)
        self._after_validation = True
        if trainer.should_stop:
            return  # the validation that ends training: the plan stays the one it ran to
        if self.plan is not None or len(self._updates) >= MIN_MEASURED:
            self._replan(trainer, validated=True)
            if self.plan is not None and self.plan["end"] <= trainer.global_step:
                trainer.should_stop = True  # this validation was the last

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        now = self.clock.now()
        seconds, self._last_end = now - self._last_end, now
        step = trainer.global_step
        if self._first is None:
            self._first = step
        if self._after_validation:
            # what the validation's own clock missed (checkpoint writes after it) counts too
            self._after_validation = False
            if self._updates:
                extra = seconds - self._update_seconds()
                self._validations[-1] = max(self._validations[-1], extra)
        elif step - self._first >= SKIPPED:
            self._updates.append(seconds)
            if self.plan is None and len(self._updates) >= MIN_MEASURED \
                    and step >= self._schedule(trainer).warmup_steps:
                self._replan(trainer, validated=False)
        if self.plan is not None and step >= self.plan["end"]:
            trainer.should_stop = True  # Lightning validates before it stops

    # -- planning ----------------------------------------------------------------------------------

    def _update_seconds(self) -> float:
        """Mean seconds of the last RECENT updates: the pace now, not the run's average."""
        recent = self._updates[-RECENT:]
        return sum(recent) / len(recent) if recent else 0.0

    def _validation_seconds(self, trainer) -> float:
        """Seconds of one validation: the mean of those measured, else the sanity check's time
        scaled to the whole validation set (an overestimate: it pays one-off costs too)."""
        if self._validations:
            return sum(self._validations) / len(self._validations)
        if self._sanity and self._sanity[1]:
            seconds, batches = self._sanity
            return seconds * sum(trainer.num_val_batches) / batches
        return 0.0

    def _validation_count(self, trainer, step: int, validated: bool) -> Callable[[int], int]:
        """validations(T): those still to come up to T, with the one that ends training at T
        (none at T = step when the validation at step has just run)."""
        if not trainer.enable_validation or not sum(trainer.num_val_batches):
            return lambda t: 0
        if trainer.check_val_every_n_epoch in (None, 1):
            every = trainer.val_check_batch  # updates apart (in an epoch, when n = 1)
        else:  # once every n epochs
            every = trainer.num_training_batches * trainer.check_val_every_n_epoch
        if not every or every == float("inf"):
            return lambda t: int(not (validated and t == step))
        every = int(every)

        def count(t: int) -> int:
            if validated:  # the validation at step has run
                return 0 if t == step else t // every - step // every + (t % every != 0)
            # the multiples of `every` in [step, t] (one at step runs after this batch), and
            # the validation a stop at t between two of them brings
            return t // every - (step - 1) // every + (t % every != 0)
        return count

    @staticmethod
    def _schedule(trainer) -> WarmupSchedule:
        sched = trainer.lr_scheduler_configs[0].scheduler if trainer.lr_scheduler_configs else None
        fn = getattr(sched, "lr_lambdas", [None])[0]
        if not isinstance(fn, WarmupSchedule) or fn.name != "cosine":
            name = getattr(fn, "name", type(sched).__name__ if sched else "none")
            raise DataError(not_cosine(name))
        return fn

    def _replan(self, trainer, validated: bool) -> None:
        if not self._updates:
            return
        sched, step = self._schedule(trainer), trainer.global_step
        last = self.plan["planned"] if self.plan else sched.total_steps  # the trainer's own end
        per_update, per_validation = self._update_seconds(), self._validation_seconds(trainer)
        remaining = self.max_seconds * (1 - self.reserve) - self.clock.elapsed()
        end = planned_end(step, remaining, per_update, per_validation,
                          self._validation_count(trainer, step, validated), last)
        end = int(trainer.strategy.broadcast(end, src=0))
        if trainer.is_global_zero and (self.plan is None or end != self.plan["end"]):
            log.info("schedule_to_time: the schedule ends at update %d of %d (%.3f s an update, "
                     "%.1f s a validation, %.0f of %.0f s left)", end, last, per_update,
                     per_validation, max(remaining, 0.0), self.max_seconds)
        sched.total_steps = max(end, sched.warmup_steps + 1)
        self.plan = {"end": end, "planned": last, "update_seconds": round(per_update, 4),
                     "validation_seconds": round(per_validation, 2), "at_step": step}


def not_cosine(name: str) -> str:
    return (f"callbacks.schedule_to_time moves the end of a cosine schedule, but "
            f"optim.schedule={name}: set optim.schedule=cosine, or "
            f"callbacks.schedule_to_time=null")
