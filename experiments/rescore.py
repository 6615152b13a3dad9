"""Score finished runs on their test split again with beam search, after training.

    python experiments/rescore.py SWEEP_DIR [--beam 5]

For each run dir under SWEEP_DIR (a folder with results.json and .hydra/config.yaml), decodes the
test split with the best checkpoint (checkpoints/best-*.ckpt, else last.ckpt) and beam search,
writes translations/test.beam{N}.hyp.txt and adds test/bleu_beam, test/bleu_lc_beam and
test/chrf_beam to results.json, which `make report` then shows. `test_beam=N` on the train.py
command line does the same at the end of training.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from seq2seq.atomic import atomic_write_bytes
from seq2seq.checkpoint import load_module
from seq2seq.translation import beam_test_scores

ROOT = Path(__file__).resolve().parents[1]


def best_checkpoint(run_dir: Path) -> Path:
    """The run's best checkpoint (the one train.py tests), else last.ckpt."""
    best = sorted((run_dir / "checkpoints").glob("best-*.ckpt"))
    path = best[-1] if best else run_dir / "checkpoints" / "last.ckpt"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir}: no checkpoints/best-*.ckpt or last.ckpt")
    return path


def with_new_data_keys(cfg: DictConfig) -> DictConfig:
    """cfg with the keys of its data group's conf/data/*.yaml that cfg.data lacks (a run
    configured before a data option existed), at their conf/ values."""
    for path in sorted((ROOT / "conf" / "data").glob("*.yaml")):
        defaults = OmegaConf.load(path)
        if defaults.get("_target_") == cfg.data.get("_target_"):
            cfg.data = OmegaConf.merge(defaults, cfg.data)
    return cfg


def rescore(run_dir: Path, beam: int) -> dict:
    """Beam-search test scores of one run, also merged into its results.json."""
    cfg_path = run_dir / ".hydra" / "config.yaml"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{run_dir}: no .hydra/config.yaml (not a train.py run dir)")
    cfg = with_new_data_keys(OmegaConf.load(cfg_path))
    datamodule = instantiate(cfg.data)
    module = load_module(best_checkpoint(run_dir))
    scores = beam_test_scores(module, datamodule.sources("test"), datamodule.references("test"),
                              beam, max_tokens=datamodule.eval_max_tokens,
                              out_dir=run_dir / "translations")
    results_path = run_dir / "results.json"
    results = json.loads(results_path.read_text(encoding="utf-8"))
    results["metrics"].update(scores)
    atomic_write_bytes(results_path, json.dumps(results, indent=2).encode())
    return scores


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", help="a sweep dir or run dir (searched for results.json)")
    ap.add_argument("--beam", type=int, default=5, help="beam size (default 5)")
    args = ap.parse_args()
    run_dirs = sorted(p.parent for p in Path(args.runs).rglob("results.json"))
    if not run_dirs:
        sys.exit(f"error: no results.json under {args.runs}: point at a sweep or run dir whose "
                 "training finished")
    for run_dir in run_dirs:
        try:
            s = rescore(run_dir, args.beam)
        except FileNotFoundError as e:
            sys.exit(f"error: {e}")
        print(f"{run_dir}: beam {args.beam} BLEU {s['test/bleu_beam']:.2f} "
              f"(lowercased {s['test/bleu_lc_beam']:.2f}, chrF {s['test/chrf_beam']:.2f})")


if __name__ == "__main__":
    main()
