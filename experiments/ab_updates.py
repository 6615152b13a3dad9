"""Short A/B runs of a recipe: train a fixed number of updates, then validation perplexity and
greedy validation BLEU. Used to tune `experiment=multi30k_quick` (experiments/README.md).

    python experiments/ab_updates.py 300 model.encoder.dropout=0.1 optim.lr=3e-3

Training is the module's own training step in Lightning's loop, exactly as
`python train.py trainer.max_steps=N` runs it (schedules that depend on the run's length, such as
cosine, span the N updates), without validation or checkpoints along the way. The seed is fixed,
so two variants differ only by their overrides. Run one thread per variant (OMP_NUM_THREADS=1)
to compare two side by side.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hydra import compose, initialize_config_dir

from seq2seq.allocator import limit_onednn_cache, tune_glibc_malloc
from seq2seq.pipeline import build_trainer, fit_steps

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("updates", type=int)
    ap.add_argument("overrides", nargs="*", help="Hydra overrides on top of --experiment")
    ap.add_argument("--experiment", default="multi30k_quick")
    args = ap.parse_args(argv)
    tune_glibc_malloc()  # as train.py does
    limit_onednn_cache()
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[f"experiment={args.experiment}", "run_dir=.",
                                          "test=false", *args.overrides])
    dm, module, _ = fit_steps(cfg, args.updates)
    validator = build_trainer(cfg, [], [], enable_progress_bar=False, enable_model_summary=False,
                              limit_val_batches=1.0, devices=1)
    metrics = {k: float(v) for k, v in validator.validate(module, datamodule=dm,
                                                          verbose=False)[0].items()}
    params = sum(p.numel() for p in module.parameters())
    tokens_per_s = module.train_tokens / max(module.train_seconds, 1e-9)
    print(f"{' '.join(args.overrides) or 'recipe'}: {args.updates} updates, {params / 1e6:.2f}M "
          f"parameters, val ppl {metrics['val/ppl']:.2f}, val BLEU {metrics['val/bleu']:.2f}, "
          f"length ratio {metrics['val/len_ratio']:.3f}, {tokens_per_s:.0f} target tokens/s")
    return {**metrics, "updates": args.updates, "params": params, "tokens_per_s": tokens_per_s}


if __name__ == "__main__":
    main()
