"""Scheduled sampling (Bengio et al. 2015): the probability of feeding the gold token decays."""

from __future__ import annotations

import math


class ScheduledSampling:
    """Teacher-forcing probability eps_i at training step i.

    schedule: "constant" (eps = k), "linear" (max(eps_min, k - c * i)),
    "exponential" (max(eps_min, k ** i), k < 1), "inverse_sigmoid" (k / (k + exp(i / k)), k >= 1).
    eps_i is a pure function of the step, so a resumed run continues the same schedule.
    """

    SCHEDULES = ("constant", "linear", "exponential", "inverse_sigmoid")

    def __init__(self, schedule: str = "constant", k: float = 1.0, c: float = 0.0,
                 eps_min: float = 0.0):
        if schedule not in self.SCHEDULES:
            raise ValueError(f"scheduled_sampling.schedule={schedule!r}: choose one of "
                             f"{', '.join(self.SCHEDULES)}")
        if schedule == "inverse_sigmoid" and k < 1:
            raise ValueError("scheduled_sampling.k must be >= 1 for inverse_sigmoid")
        self.schedule, self.k, self.c, self.eps_min = schedule, k, c, eps_min

    def __call__(self, step: int) -> float:
        if self.schedule == "constant":
            eps = self.k
        elif self.schedule == "linear":
            eps = max(self.eps_min, self.k - self.c * step)
        elif self.schedule == "exponential":
            eps = max(self.eps_min, self.k**step)
        else:
            eps = self.k / (self.k + math.exp(min(step / self.k, 700.0)))
        return float(min(1.0, max(0.0, eps)))
