"""Compare the runs of a sweep (or any folder of run dirs) from their local files.

    python experiments/report.py SWEEP_DIR [--out DIR] [--budget 10,20,30,60]
        [--by-length [--beam]]

Writes report.md (a markdown table: config, parameters, best val BLEU, test BLEU cased and
lowercased, the BLEU of each test set when the runs scored several (data.test_sets), training
tokens/s, wall-clock time), bleu_by_run.png and val_curves.png (validation BLEU by update and by
wall-clock minute). For runs that log val/minutes, also "the same budget": the best validation
BLEU each run had reached within each budget of minutes. With --by-length, also BLEU by source
sentence length of every run (lengths.md, bleu_by_length.png: see experiments/lengths.py).
"""

from __future__ import annotations

import argparse
import sys

from seq2seq.data.errors import DataError
from seq2seq.lengths import print_lengths
from seq2seq.report import DEFAULT_BUDGETS, load_runs, write_report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", help="a sweep dir or run dir (searched for results.json)")
    ap.add_argument("--out", help="where to write the report (default: the runs dir)")
    ap.add_argument("--budget", default=DEFAULT_BUDGETS,
                    help=f"wall-clock minutes for the same-budget table (default "
                         f"{DEFAULT_BUDGETS})")
    ap.add_argument("--by-length", action="store_true",
                    help="also BLEU by source length of every run (lengths.md)")
    ap.add_argument("--beam", action="store_true",
                    help="--by-length: score the beam translations (test.beam<N>.hyp.txt)")
    args = ap.parse_args()
    try:
        path = write_report(args.runs, args.out, args.budget)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")
    print(path.read_text(encoding="utf-8"))
    print(f"written: {path}")
    if args.by_length:
        try:
            print_lengths([r.path for r in load_runs(args.runs)], args.out or args.runs,
                          beam=args.beam)
        except DataError as e:
            sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
