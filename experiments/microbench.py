"""Microbenchmarks behind two choices of the training step, at the reference model's sizes.

    OMP_NUM_THREADS=1 python experiments/microbench.py [--batch 64] [--repeats 7]

1. One decoder time step (LSTM 512, input 768 = embedding 256 + input-feeding 512): a length-1
   nn.LSTM call (which goes through oneDNN on CPU) against torch.lstm_cell on the same weights,
   forward and backward.
2. One Adam update of the reference model's 13,182,464 parameters: the default implementation
   (foreach) against fused=True.

Each figure is the median over `--repeats` rounds of the mean time of many calls; the two sides
of a comparison alternate within a round, so both see the same machine load.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from seq2seq.models.seq2seq import build_seq2seq

ROOT = Path(__file__).resolve().parents[1]


def _mean_seconds(fn, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def compare(a, b, calls: int, repeats: int) -> tuple[float, float]:
    """Median seconds per call of a and of b, alternating rounds after one warm-up each."""
    a(), b()
    times_a, times_b = [], []
    for _ in range(repeats):
        times_a.append(_mean_seconds(a, calls))
        times_b.append(_mean_seconds(b, calls))
    return statistics.median(times_a), statistics.median(times_b)


def decoder_step(batch: int, repeats: int) -> tuple[float, float]:
    rnn = torch.nn.LSTM(768, 512, batch_first=True)
    x = torch.randn(batch, 768)
    h, c = torch.randn(1, batch, 512), torch.randn(1, batch, 512)
    weights = (rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0)

    def module_call():
        out, _ = rnn(x.unsqueeze(1), (h, c))  # [B, 1, 512]
        out.sum().backward()

    def cell_call():
        h1, _ = torch.lstm_cell(x, (h[0], c[0]), *weights)  # [B, 512]
        h1.sum().backward()

    return compare(module_call, cell_call, calls=50, repeats=repeats)


def adam_update(repeats: int) -> tuple[float, float]:
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=reference", "run_dir=."])
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    optimizers = []
    for fused in (None, True):
        model = build_seq2seq(model_cfg, 8000, 8000)  # 13,182,464 parameters
        for p in model.parameters():
            p.grad = torch.randn_like(p)
        optimizers.append(torch.optim.Adam(model.parameters(), lr=1e-4, fused=fused))
    return compare(optimizers[0].step, optimizers[1].step, calls=10, repeats=repeats)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--batch", type=int, default=64, help="sentences in the decoder step")
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    module, cell = decoder_step(args.batch, args.repeats)
    print(f"decoder step, batch {args.batch}: nn.LSTM length-1 call {module * 1e3:.3f} ms, "
          f"lstm_cell {cell * 1e3:.3f} ms: {module / cell:.2f}x")
    default, fused = adam_update(args.repeats)
    print(f"Adam update, 13.2M parameters: default {default * 1e3:.2f} ms, fused "
          f"{fused * 1e3:.2f} ms: {default / fused:.2f}x")


if __name__ == "__main__":
    main()
