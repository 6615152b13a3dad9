"""Score finished runs on their test split again with beam search, after training.

    python experiments/rescore.py SWEEP_DIR [--beam 5]

For each run dir under SWEEP_DIR (a folder with results.json and .hydra/config.yaml), scores the
best checkpoint (checkpoints/best-*.ckpt, else last.ckpt) with beam search on the run's headline
test set through evaluate.py's code (seq2seq/evaluation.py, whose record goes to
evaluations/test-beam{N}.json), writes translations/test.beam{N}.hyp.txt and adds test/beam,
test/bleu_beam, test/bleu_lc_beam and test/chrf_beam to results.json, which `make report` then
shows. `test_beam=N` on the train.py command line does the same at the end of training.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from omegaconf import OmegaConf

from seq2seq.checkpoint import upgraded_run_config
from seq2seq.data.errors import DataError
from seq2seq.evaluation import evaluate, evaluate_config
from seq2seq.record import FILENAME, RunRecord


def best_checkpoint(run_dir: Path) -> Path:
    """The run's best checkpoint (the one train.py tests), else last.ckpt."""
    best = sorted((run_dir / "checkpoints").glob("best-*.ckpt"))
    path = best[-1] if best else run_dir / "checkpoints" / "last.ckpt"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir}: no checkpoints/best-*.ckpt or last.ckpt")
    return path


def rescore(run_dir: Path, beam: int) -> dict:
    """Beam-search test scores of one run, also merged into its results.json."""
    cfg_path = run_dir / ".hydra" / "config.yaml"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{run_dir}: no .hydra/config.yaml (not a train.py run dir)")
    data = upgraded_run_config(OmegaConf.load(cfg_path)).data
    if "test_sets" in data:  # Multi30k: the headline test set
        test = {"test_sets": [data.test_sets[0]], "data_root": data.root}
    else:  # the user's own test files
        test = {"src": data.test.src, "ref": data.test.tgt}
    out = run_dir / "evaluations" / f"test-beam{beam}.json"
    record = evaluate(evaluate_config(ckpt=str(best_checkpoint(run_dir)), beam=beam,
                                      max_tokens=data.eval_max_tokens, out=str(out), **test))
    name = record.test_sets[0]
    (run_dir / "translations").mkdir(exist_ok=True)
    shutil.copyfile(out.with_suffix("") / f"{name}.hyp.txt",
                    run_dir / "translations" / f"test.beam{beam}.hyp.txt")
    m = record.metrics
    scores = {"test/beam": float(beam), "test/bleu_beam": m["test/bleu"],
              "test/bleu_lc_beam": m["test/bleu_lc"], "test/chrf_beam": m["test/chrf"]}
    results = RunRecord.read(run_dir / FILENAME)
    results.metrics.update(scores)
    results.write(run_dir / FILENAME)
    return scores


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", help="a sweep dir or run dir (searched for results.json)")
    ap.add_argument("--beam", type=int, default=5, help="beam size (default 5)")
    args = ap.parse_args()
    run_dirs = sorted(p.parent for p in Path(args.runs).rglob(FILENAME))
    if not run_dirs:
        sys.exit(f"error: no {FILENAME} under {args.runs}: point at a sweep or run dir whose "
                 "training finished")
    for run_dir in run_dirs:
        try:
            s = rescore(run_dir, args.beam)
        except (FileNotFoundError, DataError) as e:
            sys.exit(f"error: {e}")
        print(f"{run_dir}: beam {args.beam} BLEU {s['test/bleu_beam']:.2f} "
              f"(lowercased {s['test/bleu_lc_beam']:.2f}, chrF {s['test/chrf_beam']:.2f})")


if __name__ == "__main__":
    main()
