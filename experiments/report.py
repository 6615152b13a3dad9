"""Compare the runs of a sweep (or any folder of run dirs) from their local files.

    python experiments/report.py SWEEP_DIR [--out DIR]

Writes report.md (a markdown table: config, parameters, best val BLEU, test BLEU cased and
lowercased, the BLEU of each test set when the runs scored several (data.test_sets), training
tokens/s, wall-clock time), bleu_by_run.png and val_curves.png.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from seq2seq.report import write_report  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", help="a sweep dir or run dir (searched for results.json)")
    ap.add_argument("--out", help="where to write the report (default: the runs dir)")
    args = ap.parse_args()
    try:
        path = write_report(args.runs, args.out)
    except FileNotFoundError as e:
        sys.exit(f"error: {e}")
    print(path.read_text(encoding="utf-8"))
    print(f"written: {path}")


if __name__ == "__main__":
    main()
