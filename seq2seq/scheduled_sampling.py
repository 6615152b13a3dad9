"""Scheduled sampling (Bengio et al. 2015): the probability of feeding the gold token decays."""

from __future__ import annotations

import math

# schedule -> (the keys it reads, eps_i as a function of step i and those keys)
SCHEDULES = {
    "constant": (("k",), lambda i, k: k),
    "linear": (("k", "c", "eps_min"), lambda i, k, c, eps_min: max(eps_min, k - c * i)),
    "exponential": (("k", "eps_min"), lambda i, k, eps_min: max(eps_min, k**i)),
    "inverse_sigmoid": (("k",), lambda i, k: k / (k + math.exp(min(i / k, 700.0)))),
}


class ScheduledSampling:
    """Teacher-forcing probability eps_i at training step i.

    schedule: "constant" (eps = k), "linear" (max(eps_min, k - c * i)),
    "exponential" (max(eps_min, k ** i), k < 1), "inverse_sigmoid" (k / (k + exp(i / k)), k >= 1).
    params: exactly the keys the schedule reads (SCHEDULES); their values live in
    conf/scheduled_sampling/*.yaml, so a missing or an unread key is an error, not a default.
    eps_i is a pure function of the step, so a resumed run continues the same schedule.
    """

    def __init__(self, schedule: str, **params: float):
        if schedule not in SCHEDULES:
            raise ValueError(f"scheduled_sampling.schedule={schedule!r}: choose one of "
                             f"{', '.join(SCHEDULES)}")
        keys = SCHEDULES[schedule][0]
        reads = f"schedule={schedule!r} reads {', '.join(keys)}"
        for key in params:
            if key not in keys:
                raise ValueError(f"scheduled_sampling.{key} is not read by the {reads}")
        for key in keys:
            if key not in params:
                raise ValueError(f"scheduled_sampling.{key} is missing: the {reads}")
        if schedule == "inverse_sigmoid" and params["k"] < 1:
            raise ValueError("scheduled_sampling.k must be >= 1 for schedule='inverse_sigmoid'")
        self.schedule, self.params = schedule, params

    def __call__(self, step: int) -> float:
        eps = SCHEDULES[self.schedule][1](step, **self.params)
        return float(min(1.0, max(0.0, eps)))
