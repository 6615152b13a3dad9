"""BLEU by source sentence length (Bahdanau et al. 2015, figure 2) of finished runs.

    python experiments/lengths.py RUN_DIR [RUN_DIR ...] [--out DIR] [--beam]
        [--buckets 1-8,9-12,13-16,17-20,21-25,26+] [--test-set test_2016_flickr]
        [--src FILE --ref FILE]
    make lengths RUNS="RUN_DIR RUN_DIR" ARGS="--beam --out DIR"

Scores each run's test translations (translations/<test set>.hyp.txt, or with --beam
translations/test.beam<N>.hyp.txt) in buckets of source length in words: sacreBLEU corpus BLEU
cased and lowercased per bucket, and the sentences in each. The source and reference files come
from the run's .hydra/config.yaml (Multi30k under data.root, or data=parallel_files' test
files), else from $SEQ2SEQ_DATA_DIR/multi30k; --src and --ref replace them. Writes lengths.md
(one row per run) and bleu_by_length.png (one line per run) to --out (default: the folder the
runs share).
"""

from __future__ import annotations

import argparse
import sys

from seq2seq.data.errors import DataError
from seq2seq.lengths import DEFAULT_BUCKETS, print_lengths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="run dirs (each with results.json and translations/)")
    ap.add_argument("--out", help="where to write lengths.md and the plot (default: the folder "
                                  "the runs share)")
    ap.add_argument("--buckets", default=DEFAULT_BUCKETS,
                    help=f"ranges of source words (default {DEFAULT_BUCKETS})")
    ap.add_argument("--test-set", help="the test set to score (default: each run's headline "
                                       "test set, results.json test_sets[0])")
    ap.add_argument("--beam", action="store_true",
                    help="score translations/test.beam<N>.hyp.txt (test_beam=N, or "
                         "experiments/rescore.py) instead of the run's own search")
    ap.add_argument("--src", help="source file replacing the run's test source")
    ap.add_argument("--ref", help="reference file replacing the run's test reference")
    args = ap.parse_args()
    try:
        print_lengths(args.runs, args.out, args.buckets, args.test_set, args.beam, args.src,
                      args.ref)
    except DataError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
