"""Where a training step's time goes: torch.profiler over the module's own training steps.

    python experiments/profile_step.py                          # reference config, float32
    python experiments/profile_step.py --precision bf16-mixed   # the same in bf16
    python experiments/profile_step.py experiment=multi30k_quick --steps 20

Runs `--warmup` updates, then profiles `--steps` updates (Lightning's loop, as
experiments/benchmark.py times them) and prints the share of CPU time by kind of work (matrix
products, recurrent cells, attention, loss, optimizer, casts and copies, ...) and the most
expensive operators. `--trace FILE` also writes a Chrome trace.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import lightning as L
import torch
from hydra import compose, initialize_config_dir

from seq2seq.allocator import limit_onednn_cache, tune_glibc_malloc
from seq2seq.pipeline import fit_steps

ROOT = Path(__file__).resolve().parents[1]

# operator name (without the aten:: prefix) -> kind; the first matching prefix wins
KINDS = (
    ("matrix products", ("addmm", "mm", "bmm", "matmul", "linear", "baddbmm", "mkldnn_",
                         "_mkl_linear", "onednn")),
    ("recurrent cells", ("gru_cell", "lstm_cell", "_thnn", "gru", "lstm", "rnn",
                         "mkldnn_rnn")),
    ("softmax and loss", ("_log_softmax", "log_softmax", "_softmax", "softmax", "nll",
                          "cross_entropy", "logsumexp")),
    ("optimizer and clipping", ("_fused_adam", "adam", "_foreach", "norm", "clip")),
    ("casts and copies", ("to", "_to_copy", "copy_", "clone", "contiguous", "empty",
                          "zeros", "fill_", "zero_", "resize_")),
    ("gather, cat and indexing", ("cat", "stack", "index", "gather", "embedding", "select",
                                  "slice", "masked", "where", "scatter", "narrow")),
    ("element-wise", ("add", "mul", "sub", "div", "tanh", "sigmoid", "relu", "exp", "sum",
                      "mean", "neg", "rsub", "pow", "dropout", "bernoulli", "threshold",
                      "native_dropout")),
)


def kind(name: str) -> str:
    op = name.removeprefix("aten::").lstrip("_")
    for label, prefixes in KINDS:
        if any(op.startswith(p.lstrip("_")) for p in prefixes):
            return label
    return "other"


class StepProfiler(L.Callback):
    """torch.profiler around the updates after the first `warmup`."""

    def __init__(self, warmup: int):
        self.warmup = warmup
        self.prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if trainer.global_step == self.warmup:
            self.prof.__enter__()

    def on_train_end(self, trainer, module):
        self.prof.__exit__(None, None, None)


def summary(prof: torch.profiler.profile, top: int) -> str:
    """Self CPU time by kind, then the `top` operators by self CPU time."""
    events = [e for e in prof.key_averages() if not e.key.startswith(("ProfilerStep",
                                                                       "[pl]", "Optimizer."))]
    total = sum(e.self_cpu_time_total for e in events) or 1
    by_kind: dict[str, float] = defaultdict(float)
    for e in events:
        by_kind[kind(e.key)] += e.self_cpu_time_total
    lines = ["| kind of work | share of CPU time | ms |", "| --- | --- | --- |"]
    for label, us in sorted(by_kind.items(), key=lambda kv: -kv[1]):
        lines.append(f"| {label} | {100 * us / total:.1f}% | {us / 1000:.0f} |")
    lines += ["", "| operator | calls | self CPU ms | share |", "| --- | --- | --- | --- |"]
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:top]:
        lines.append(f"| {e.key} | {e.count} | {e.self_cpu_time_total / 1000:.0f} | "
                     f"{100 * e.self_cpu_time_total / total:.1f}% |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--steps", type=int, default=20, help="profiled updates")
    p.add_argument("--warmup", type=int, default=5, help="updates before profiling")
    p.add_argument("--precision", default="32-true", help="trainer.precision (32-true, "
                   "bf16-mixed, auto)")
    p.add_argument("--top", type=int, default=15, help="operators listed")
    p.add_argument("--trace", help="also write a Chrome trace (chrome://tracing) here")
    p.add_argument("overrides", nargs="*", help="Hydra overrides (default: experiment=reference)")
    args = p.parse_args(argv)
    tune_glibc_malloc()
    limit_onednn_cache()
    overrides = args.overrides or ["experiment=reference"]
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["run_dir=.", "logger=csv",
                                          f"trainer.precision={args.precision}", *overrides])
    profiler = StepProfiler(args.warmup)
    fit_steps(cfg, args.warmup + args.steps, [profiler])
    if args.trace:
        profiler.prof.export_chrome_trace(args.trace)
    text = (f"{args.steps} updates of `{' '.join(overrides)}`, trainer.precision="
            f"{args.precision}, {torch.get_num_threads()} threads\n\n"
            f"{summary(profiler.prof, args.top)}")
    print(text)
    return text


if __name__ == "__main__":
    main()
