"""Short A/B runs of a recipe: train a fixed number of updates, then validation perplexity and
greedy validation BLEU. Used to tune `experiment=multi30k_quick` (experiments/README.md).

    python experiments/ab_updates.py 300 model.encoder.dropout=0.1 optim.lr=3e-3

The cosine schedule is compressed to the given number of updates (warmup as configured); the
seed is fixed, so two variants differ only by their overrides. Run one thread per variant
(OMP_NUM_THREADS=1) to compare two side by side.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from seq2seq.loss import label_smoothed_nll  # noqa: E402
from seq2seq.lr_schedule import WarmupSchedule  # noqa: E402
from seq2seq.metrics import corpus_scores  # noqa: E402
from seq2seq.module import Seq2SeqModule  # noqa: E402
from seq2seq.pipeline import module_config  # noqa: E402
from seq2seq.translation import translate_lines  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("updates", type=int)
    ap.add_argument("overrides", nargs="*", help="Hydra overrides on top of --experiment")
    ap.add_argument("--experiment", default="multi30k_quick")
    args = ap.parse_args()
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[f"experiment={args.experiment}", "run_dir=.",
                                          *args.overrides])
    torch.manual_seed(cfg.seed)
    dm = instantiate(cfg.data)
    src_tok, tgt_tok = dm.build_tokenizers()
    dm.setup("fit")
    module = Seq2SeqModule(module_config(cfg), len(src_tok), len(tgt_tok))
    module.set_tokenizers(src_tok, tgt_tok)
    o = cfg.optim
    opt = torch.optim.Adam(module.parameters(), lr=o.lr, betas=tuple(o.betas), eps=o.eps)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, WarmupSchedule("cosine", o.warmup_steps, args.updates, o.min_ratio))
    loader = dm.train_dataloader()
    module.train()
    start, step, epoch, tokens = time.perf_counter(), 0, 0, 0
    while step < args.updates:
        dm.train_sampler.set_epoch(epoch)
        epoch += 1
        for b in loader:
            logits, _ = module.model(b.src, b.src_lengths, b.src_mask, b.tgt_in)
            loss, _, n = label_smoothed_nll(logits, b.tgt_out, cfg.loss.label_smoothing)
            opt.zero_grad()
            (loss / n).backward()
            torch.nn.utils.clip_grad_norm_(module.parameters(), cfg.trainer.gradient_clip_val)
            opt.step()
            sched.step()
            step, tokens = step + 1, tokens + n
            if step >= args.updates:
                break
    seconds = time.perf_counter() - start
    module.eval()
    nll, n_tok = 0.0, 0
    with torch.no_grad():
        for b in dm.val_dataloader():
            logits, _ = module.model(b.src, b.src_lengths, b.src_mask, b.tgt_in)
            _, s, n = label_smoothed_nll(logits, b.tgt_out, 0.0)
            nll, n_tok = nll + float(s), n_tok + n
        hyps = translate_lines(module, dm.sources("val"))
    scores = corpus_scores(hyps, dm.references("val"))
    params = sum(p.numel() for p in module.parameters())
    print(f"{' '.join(args.overrides) or 'recipe'}: {args.updates} updates, {params / 1e6:.2f}M "
          f"parameters, val ppl {math.exp(nll / n_tok):.2f}, val BLEU {scores.bleu:.2f}, "
          f"length ratio {scores.length_ratio:.3f}, {tokens / seconds:.0f} target tokens/s")


if __name__ == "__main__":
    main()
