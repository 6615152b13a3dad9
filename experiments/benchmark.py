"""Speed benchmark on the reference configuration (conf/experiment/reference.yaml).

    python experiments/benchmark.py                     # full run, CPU
    python experiments/benchmark.py --quick             # a short version (under 2 minutes)
    python experiments/benchmark.py --ckpt RUN/checkpoints/last.ckpt   # decode a trained model
    python experiments/benchmark.py --device cuda --precision 16-mixed
    python experiments/benchmark.py --precision bf16-mixed   # or auto; make bench runs both

Measures training throughput (target tokens/s and sentences/s over the steady state, after
warm-up steps), padding efficiency, peak resident memory, decoding of test_2016_flickr (greedy,
beam 5, and a per-sentence beam search with a Python loop over hypotheses as a baseline),
parameters, model FLOPs per target token, the machine's matmul peak in float32 and in the
precision used (bf16 measured the same way), the fraction of the latter training uses (MFU),
and what the CPU offers (torch's capability, avx512_bf16, amx_bf16). With bf16 the training step
runs through CastWeightsPrecision and decoding with the weights cast to bfloat16 once. Prints a
table and one JSON line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import resource
import time
from dataclasses import replace
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from torch.utils.flop_counter import FlopCounterMode

from seq2seq.allocator import limit_onednn_cache, tune_glibc_malloc
from seq2seq.checkpoint import load_module
from seq2seq.data.batch import collate
from seq2seq.data.tokenizer import BOS_ID, EOS_ID
from seq2seq.decoding.options import DecodeOptions
from seq2seq.module import Seq2SeqModule
from seq2seq.pipeline import fit_steps
from seq2seq.precision import cast_weights, compute_dtype, cpu_features, resolve_precision
from seq2seq.translation import translate_lines

ROOT = Path(__file__).resolve().parents[1]


def matmul_peak(device: str, dtype: torch.dtype = torch.float32, n: int | None = None,
                repeats: int = 10) -> float:
    """Measured matmul GFLOP/s in `dtype`, of n x n products (2048 on a CPU; 8192 on a GPU,
    which smaller products leave partly idle)."""
    n = n or (8192 if device.startswith("cuda") else 2048)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
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


class StepTimer(L.Callback):
    """Times the training steps after the first `warmup` ones, from the start of the first
    timed batch to the end of the last (target tokens and sentences per second), and counts the
    FLOPs of the last warm-up step per target token (FLOP counting slows the step it watches, so
    it needs warmup >= 1)."""

    def __init__(self, warmup: int, device: str):
        if warmup < 1:
            raise ValueError("--warmup must be at least 1: its last step counts the FLOPs")
        self.warmup, self.device = warmup, device
        self.step, self.tokens, self.sents = 0, 0, 0
        self.start = self.end = None
        self.counter = self.flops_per_token = None

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if self.step == self.warmup:
            _sync(self.device)
            self.start = time.perf_counter()
        if self.step == self.warmup - 1:
            self.counter = FlopCounterMode(display=False)
            self.counter.__enter__()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if self.counter is not None:
            self.counter.__exit__(None, None, None)
            self.flops_per_token = self.counter.get_total_flops() / batch.num_tgt_tokens
            self.counter = None
        if self.step >= self.warmup:
            self.tokens += batch.num_tgt_tokens
            self.sents += len(batch)
            _sync(self.device)
            self.end = time.perf_counter()
        self.step += 1

    @property
    def elapsed(self) -> float:
        return self.end - self.start


def train_throughput(cfg, device: str, warmup: int, steps: int):
    """`warmup + steps` updates of the configured model by Seq2SeqModule's own training step
    (Lightning's loop: scheduled sampling, label smoothing, clipping, the configured optimizer
    and schedule); the last `steps` are timed. Returns (datamodule, module, figures)."""
    timer = StepTimer(warmup, device)
    accelerator = "gpu" if device.startswith("cuda") else device
    dm, module, _ = fit_steps(cfg, warmup + steps, [timer], accelerator=accelerator,
                                    devices=1)
    return dm, module, {
        "train_tokens_per_s": timer.tokens / timer.elapsed,
        "train_sents_per_s": timer.sents / timer.elapsed,
        "flops_per_target_token": timer.flops_per_token, "train_steps": steps,
        "padding_efficiency": dm.train_sampler.padding_efficiency()}


@torch.no_grad()
def per_sentence_beam(module: Seq2SeqModule, lines: list[str], beam: int = 5) -> list[list[int]]:
    """Baseline: one sentence at a time, one decoder call per hypothesis (a Python loop), with
    the model's length penalty and output length limit."""
    model = module.model
    d = module.config["decode"]
    alpha, a, b = d["alpha"], d["max_len_a"], d["max_len_b"]
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


def decode_speed(module: Seq2SeqModule, lines: list[str], device: str, baseline_n: int,
                 max_tokens: int) -> dict:
    """Sentences/s of greedy and beam 5 (and the per-sentence baseline) of `module`, already on
    `device` and in eval mode."""
    out = {}
    base = DecodeOptions.from_dict(module.config["decode"])
    for name, opts in (("greedy", replace(base, beam=1)), ("beam5", replace(base, beam=5))):
        translate_lines(module, lines[:50], max_tokens=max_tokens, device=device,
                        opts=opts)  # warm-up
        _sync(device)
        t = time.perf_counter()
        hyps = translate_lines(module, lines, max_tokens=max_tokens, device=device, opts=opts)
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
    p.add_argument("--precision", default="32-true",
                   help="trainer.precision of training (32-true, bf16-mixed, auto; 16-mixed on "
                        "a GPU); decoding runs in bfloat16 (float16) weights when it resolves "
                        "to bf16 (16-mixed on a GPU)")
    p.add_argument("--skip-float32", action="store_true",
                   help="do nothing when --precision resolves to float32 (make bench's second "
                        "run on a machine without native bf16)")
    p.add_argument("--json", help="also write the JSON line to this file")
    p.add_argument("overrides", nargs="*", help="Hydra overrides of the reference config")
    args = p.parse_args(argv)
    tune_glibc_malloc()
    limit_onednn_cache()
    steps = args.steps or (15 if args.quick else 100)
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=reference", "run_dir=.",
                                          f"trainer.precision={args.precision}",
                                          *args.overrides])
    accelerator = "gpu" if args.device.startswith("cuda") else args.device
    precision = resolve_precision(args.precision, accelerator)
    dtype = compute_dtype(precision, args.device)
    if args.skip_float32 and dtype == torch.float32:
        print(f"--precision {args.precision} is {precision} here (no native bf16: "
              f"{cpu_features()}): nothing more to measure")
        return {}
    dm, module, train = train_throughput(cfg, args.device, args.warmup, steps)
    result = {"device": args.device, "threads": torch.get_num_threads(),
              "precision": precision, "cpu": cpu_features(),
              **({"gpu": torch.cuda.get_device_name(args.device)}
                 if args.device.startswith("cuda") else {}),
              "parameters": sum(p.numel() for p in module.parameters()), **train}
    result["train_peak_rss_mib"] = peak_rss_mib()
    if args.device.startswith("cuda"):
        result["train_peak_gpu_mib"] = torch.cuda.max_memory_allocated(args.device) / 2**20
    result["matmul_peak_gflops_fp32"] = matmul_peak(args.device)
    result["matmul_peak_gflops"] = (matmul_peak(args.device, dtype) if dtype != torch.float32
                                    else result["matmul_peak_gflops_fp32"])
    # MFU against the peak of the precision the matrix products run in
    result["mfu"] = (result["train_tokens_per_s"] * result["flops_per_target_token"] / 1e9
                     / result["matmul_peak_gflops"])
    if args.ckpt:
        module = load_module(args.ckpt)
    lines = dm.sources("test")[: 200 if args.quick else None]
    max_tokens = OmegaConf.load(ROOT / "conf" / "tools" / "translate.yaml").max_tokens  # as translate.py
    module = module.to(args.device).eval()
    with cast_weights(module, dtype) if dtype != torch.float32 else contextlib.nullcontext():
        dec = decode_speed(module, lines, args.device, 20 if args.quick else 50, max_tokens)
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
