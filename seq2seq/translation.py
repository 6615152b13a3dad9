"""translate(cfg): a checkpoint and a text file (or stdin) in, one translation per line out."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import torch
from omegaconf import DictConfig

from seq2seq.checkpoint import load_module
from seq2seq.data.batch import collate
from seq2seq.data.corpus import read_lines
from seq2seq.data.errors import DataError
from seq2seq.data.tokenizer import atomic_write_bytes
from seq2seq.module import Seq2SeqModule

log = logging.getLogger(__name__)


def _batches(ids: list[list[int]], max_tokens: int) -> Iterator[list[int]]:
    """Indices of non-empty inputs, sorted by length, cut into batches of <= max_tokens padded
    source tokens (a longer single sentence gets a batch of its own)."""
    order = sorted((i for i in range(len(ids)) if ids[i]), key=lambda i: len(ids[i]))
    batch: list[int] = []
    for i in order:
        if batch and (len(batch) + 1) * (len(ids[i]) + 1) > max_tokens:
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


def translate_lines(module: Seq2SeqModule, lines: list[str], max_tokens: int = 4000,
                    device: str = "cpu") -> list[str]:
    """Translations of `lines`, in input order; an empty (or blank) line gives an empty line."""
    ids = module.src_tokenizer.encode([ln if ln.strip() else "" for ln in lines])
    max_len = module.config.get("max_len")
    out = [""] * len(lines)
    for idx in _batches(ids, max_tokens):
        if max_len and len(ids[idx[-1]]) > max_len:
            log.warning("line %d has %d subwords, more than the training max_len %d",
                        idx[-1] + 1, len(ids[idx[-1]]), max_len)
        batch = collate([(i, torch.tensor(ids[i]), None) for i in idx]).to(device)
        for i, hyp in zip(idx, module.translate_batch(batch), strict=True):
            out[i] = hyp
    return out


def translate(cfg: DictConfig) -> list[str] | None:
    """Translate cfg.src (or stdin) into cfg.out (or stdout) with the model in cfg.ckpt."""
    if not cfg.get("ckpt"):
        raise DataError("ckpt=PATH is required: the checkpoint to translate with")
    device = cfg.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
    module = load_module(cfg.ckpt, map_location=device).to(device)
    for k in ("max_len_a", "max_len_b"):
        if cfg.get(k) is not None:
            module.config["decode"][k] = cfg[k]
    with torch.inference_mode():
        if cfg.get("src"):
            hyps = translate_lines(module, read_lines(cfg.src), cfg.max_tokens, device)
        elif sys.stdin.isatty():  # interactive: answer each line as it comes
            for line in sys.stdin:
                print(translate_lines(module, [line.rstrip("\n")], cfg.max_tokens, device)[0],
                      flush=True)
            return None
        else:
            hyps = translate_lines(module, sys.stdin.read().splitlines(), cfg.max_tokens, device)
    text = "".join(h + "\n" for h in hyps)
    if cfg.get("out"):
        atomic_write_bytes(Path(cfg.out), text.encode("utf-8"))
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    return hyps
