"""Average the weights of several checkpoints of one run into one checkpoint, for decoding.

    python experiments/average.py RUN/checkpoints/best-*.ckpt -o RUN/checkpoints/averaged.ckpt
    python translate.py ckpt=RUN/checkpoints/averaged.ckpt src=... beam=5

Keep several checkpoints while training with `callbacks.model_checkpoint.save_top_k=5` (the five
best by val/bleu). The output has no optimizer state: it decodes, it does not resume training.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from seq2seq.atomic import atomic_open
from seq2seq.checkpoint import CheckpointError, average_checkpoints


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="+", help="checkpoints of one run")
    ap.add_argument("-o", "--output", required=True, help="the averaged checkpoint to write")
    args = ap.parse_args(argv)
    if Path(args.output).resolve() in {Path(p).resolve() for p in args.checkpoints}:
        ap.error(f"--output {args.output} is one of the inputs; write the average elsewhere")
    try:
        averaged = average_checkpoints(args.checkpoints)
    except CheckpointError as e:
        sys.exit(f"error: {e}")
    with atomic_open(args.output) as f:
        torch.save(averaged, f)
    print(f"{args.output}: mean of {len(args.checkpoints)} checkpoints")


if __name__ == "__main__":
    main()
