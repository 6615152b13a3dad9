"""Learning-rate schedules as multipliers of the base rate, one value per optimizer step."""

from __future__ import annotations

import math


class WarmupSchedule:
    """lr multiplier at step i.

    name: "constant"; "inverse_sqrt" (linear warmup, then sqrt(warmup / i));
    "cosine" (linear warmup, then cosine decay to `min_ratio` at `total_steps`);
    "noam" (Vaswani et al. 2017, eq. 3: d_model^-0.5 * min(s^-0.5, s * warmup^-1.5) at step
    s = i + 1, divided by its peak d_model^-0.5 * warmup^-0.5, so the base lr is the peak,
    reached at s = warmup; the paper's own rate is lr = (d_model * warmup)^-0.5).
    A plain object (not a closure) so LambdaLR can save and restore it in checkpoints.
    """

    NAMES = ("constant", "inverse_sqrt", "cosine", "noam")

    def __init__(self, name: str, warmup_steps: int, total_steps: int, min_ratio: float):
        if name not in self.NAMES:
            raise ValueError(f"optim.schedule={name!r}: choose one of {', '.join(self.NAMES)} "
                             "or plateau")
        self.name, self.warmup_steps = name, warmup_steps
        self.total_steps, self.min_ratio = total_steps, min_ratio

    def __call__(self, step: int) -> float:
        if self.name == "noam":
            s, w = step + 1, max(self.warmup_steps, 1)
            return min(s ** -0.5, s * w ** -1.5) * math.sqrt(w)
        if self.warmup_steps and step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if self.name == "constant":
            return 1.0
        if self.name == "inverse_sqrt":
            return math.sqrt(max(self.warmup_steps, 1) / max(step, 1))
        span = max(self.total_steps - self.warmup_steps, 1)
        progress = min(1.0, (step - self.warmup_steps) / span)
        return self.min_ratio + (1 - self.min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def epoch_limit_note(max_steps: int, planned: int, max_epochs: int | None) -> str | None:
    """A warning when trainer.max_epochs ends training before trainer.max_steps, else None.

    planned: the updates the trainer will run (Lightning's estimated_stepping_batches, the
    smaller of max_steps and max_epochs' updates), which a step schedule spans. A recipe whose
    max_steps is raised without its max_epochs stops early and, unless the cut falls on a
    validation, skips the validation at the end."""
    if max_steps is None or max_steps <= 0 or not 0 < planned < max_steps:
        return None
    return (f"trainer.max_epochs={max_epochs} ends training after {planned} updates, before "
            f"trainer.max_steps={max_steps}: the learning-rate schedule spans {planned}, and "
            "the last validation is the last multiple of trainer.val_check_interval; raise "
            f"trainer.max_epochs to train all {max_steps} updates")
