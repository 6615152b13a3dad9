"""Speed benchmark on the reference configuration (conf/experiment/reference.yaml).

    python experiments/benchmark.py                     # full run, CPU
    python experiments/benchmark.py --quick             # a short version (under 2 minutes)
    python experiments/benchmark.py --ckpt RUN/checkpoints/last.ckpt   # decode a trained model
    python experiments/benchmark.py --device cuda

Measures training throughput (target tokens/s and sentences/s over the steady state, after
warm-up steps), padding efficiency, peak resident memory, decoding of test_2016_flickr (greedy,
beam 5, and a per-sentence beam search with a Python loop over hypotheses as a baseline),
parameters, model FLOPs per target token, the machine's float32 matmul peak and the fraction of
it training uses (MFU). Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from seq2seq.allocator import tune_glibc_malloc  # noqa: E402
from seq2seq.checkpoint import load_module  # noqa: E402
from seq2seq.data.batch import collate  # noqa: E402
from seq2seq.data.tokenizer import BOS_ID, EOS_ID  # noqa: E402
from seq2seq.decoding.search import DecodeOptions  # noqa: E402
from seq2seq.loss import label_smoothed_nll  # noqa: E402
from seq2seq.module import Seq2SeqModule  # noqa: E402
from seq2seq.pipeline import module_config  # noqa: E402
from seq2seq.translation import translate_lines  # noqa: E402


def matmul_peak(device: str, n: int = 2048, repeats: int = 10) -> float:
    """Measured float32 matmul GFLOP/s."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    for _ in range(2):
        a @ b
    _sync(device)
    t = time.perf_counter()
    for _ in range(repeats):
        a @ b
    _sync(device)
    return 2 * n**3 * repeats / (time.perf_counter() - t) / 1e9


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def train_throughput(module: Seq2SeqModule, loader, device: str, warmup: int, steps: int,
                     clip: float) -> dict:
    """The training step of Seq2SeqModule (forward, label-smoothed loss, backward, clipping,
    its Adam) over `steps` batches after `warmup`."""
    model = module.model.to(device).train()
    opt = module.configure_optimizers()["optimizer"]
    smoothing = module.config["loss"]["label_smoothing"]
    it = _endless(loader)
    tokens = sents = 0
    start = None
    flops_per_token = None
    for i in range(warmup + steps):
        batch = next(it).to(device)
        if i == warmup:
            _sync(device)
            start = time.perf_counter()
        if i == warmup - 1 or (warmup == 0 and i == 0):
            counter = FlopCounterMode(display=False)
        else:
            counter = None
        with counter if counter is not None else _null():
            logits, _ = model(batch.src, batch.src_lengths, batch.src_mask, batch.tgt_in)
            loss, _, ntok = label_smoothed_nll(logits, batch.tgt_out, smoothing)
            opt.zero_grad(set_to_none=True)
            (loss / ntok).backward()
        if counter is not None:
            flops_per_token = counter.get_total_flops() / ntok
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        if i >= warmup:
            tokens += ntok
            sents += len(batch)
    _sync(device)
    elapsed = time.perf_counter() - start
    return {"train_tokens_per_s": tokens / elapsed, "train_sents_per_s": sents / elapsed,
            "flops_per_target_token": flops_per_token, "train_steps": steps}


def _endless(loader):
    """The loader's batches, epoch after epoch (reshuffled as in training), for step counts
    beyond one epoch."""
    epoch = 0
    while True:
        sampler = getattr(loader, "batch_sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        yield from loader
        epoch += 1


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


@torch.no_grad()
def per_sentence_beam(module: Seq2SeqModule, lines: list[str], beam: int = 5,
                      alpha: float = 0.6, a: float = 1.5, b: int = 10) -> list[list[int]]:
    """Baseline: one sentence at a time, one decoder call per hypothesis (a Python loop)."""
    model = module.model
    ids = module.src_tokenizer.encode(lines)
    outputs = []
    for seq in ids:
        batch = collate([(0, torch.tensor(seq), None)])
        state = model.encode(batch.src, batch.src_lengths, batch.src_mask)
        beams = [([BOS_ID], state, 0.0)]
        done = []
        for _ in range(int(batch.src_lengths[0] * a + b)):
            cands = []
            for toks, st, score in beams:
                logits, new_st, _ = model.decoder.step(torch.tensor([toks[-1]]), st)
                logp = F.log_softmax(logits, -1)[0]
                top, idx = logp.topk(beam)
                for s, t in zip(top.tolist(), idx.tolist(), strict=True):
                    cands.append((toks + [t], new_st, score + s))
            cands.sort(key=lambda c: -c[2])
            beams = []
            for c in cands[:beam]:
                (done if c[0][-1] == EOS_ID else beams).append(c)
            if not beams or len(done) >= beam:
                break
        pool = done or beams
        best = max(pool, key=lambda c: c[2] / ((5 + len(c[0]) - 1) / 6) ** alpha)
        outputs.append([t for t in best[0][1:] if t != EOS_ID])
    return outputs


def decode_speed(module: Seq2SeqModule, lines: list[str], device: str, baseline_n: int) -> dict:
    module = module.to(device).eval()
    out = {}
    for name, opts in (("greedy", DecodeOptions(beam=1)), ("beam5", DecodeOptions(beam=5))):
        translate_lines(module, lines[:50], device=device, opts=opts)  # warm-up
        _sync(device)
        t = time.perf_counter()
        hyps = translate_lines(module, lines, device=device, opts=opts)
        _sync(device)
        out[f"{name}_sents_per_s"] = len(lines) / (time.perf_counter() - t)
        out[f"{name}_hyps"] = hyps
    if baseline_n and device == "cpu":
        t = time.perf_counter()
        per_sentence_beam(module, lines[:baseline_n])
        out["beam5_per_sentence_baseline_sents_per_s"] = baseline_n / (time.perf_counter() - t)
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="short version (under 2 minutes)")
    p.add_argument("--ckpt", help="trained checkpoint to decode with (default: untrained weights)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--steps", type=int, default=None, help="timed training steps")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--json", help="also write the JSON line to this file")
    p.add_argument("overrides", nargs="*", help="Hydra overrides of the reference config")
    args = p.parse_args(argv)
    tune_glibc_malloc()
    steps = args.steps or (15 if args.quick else 100)
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=reference", "run_dir=.", *args.overrides])
    dm = instantiate(cfg.data)
    dm.prepare_data()
    src_tok, tgt_tok = dm.build_tokenizers()
    dm.setup("fit")
    loader = dm.train_dataloader()
    module = Seq2SeqModule(module_config(cfg), len(src_tok), len(tgt_tok))
    module.set_tokenizers(src_tok, tgt_tok)
    result = {"device": args.device, "threads": torch.get_num_threads(),
              "parameters": sum(p.numel() for p in module.parameters()),
              "padding_efficiency": loader.batch_sampler.padding_efficiency()}
    result.update(train_throughput(module, loader, args.device, args.warmup, steps,
                                   cfg.trainer.gradient_clip_val))
    result["train_peak_rss_mib"] = peak_rss_mib()
    result["matmul_peak_gflops"] = matmul_peak(args.device)
    result["mfu"] = (result["train_tokens_per_s"] * result["flops_per_target_token"] / 1e9
                     / result["matmul_peak_gflops"])
    if args.ckpt:
        module = load_module(args.ckpt)
    lines = dm.sources("test")[: 200 if args.quick else None]
    dec = decode_speed(module, lines, args.device, 20 if args.quick else 50)
    refs = dm.references("test")[: len(lines)]
    from seq2seq.metrics import corpus_scores

    for name in ("greedy", "beam5"):
        result[f"{name}_bleu"] = corpus_scores(dec.pop(f"{name}_hyps"), refs).bleu
    result.update(dec)
    result["test_sentences"] = len(lines)
    width = max(len(k) for k in result)
    for k, v in result.items():
        print(f"{k:<{width}}  {v:,.3f}" if isinstance(v, float) and not math.isnan(v)
              else f"{k:<{width}}  {v}")
    line = json.dumps(result)
    print(line)
    if args.json:
        Path(args.json).write_text(line + "\n")
    return result


if __name__ == "__main__":
    main()
