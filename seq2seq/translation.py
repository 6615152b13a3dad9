"""translate(cfg): a checkpoint and a text file (or stdin) in, translations out."""

from __future__ import annotations

import contextlib
import logging
import sys
from dataclasses import fields, replace
from pathlib import Path

import torch
from omegaconf import DictConfig, ListConfig

from seq2seq.atomic import atomic_write_bytes
from seq2seq.checkpoint import check_pairing, direction, load_ensemble
from seq2seq.data.batch import collate
from seq2seq.data.corpus import read_lines
from seq2seq.data.errors import DataError
from seq2seq.data.sampler import ordered_batches
from seq2seq.decoding.hypothesis import Hypothesis
from seq2seq.decoding.options import DecodeOptions
from seq2seq.decoding.rerank import channel_rerank
from seq2seq.metrics import corpus_scores
from seq2seq.module import Seq2SeqModule
from seq2seq.plotting import attention_figure, figure_png
from seq2seq.precision import cast_weights, decode_dtype

log = logging.getLogger(__name__)

SEARCH_KEYS = tuple(f.name for f in fields(DecodeOptions))  # translate.py options of the search


def search_lines(module: Seq2SeqModule, lines: list[str], opts: DecodeOptions, *,
                 max_tokens: int, device: str = "cpu",
                 ) -> tuple[list[list[int]], list[list[Hypothesis]]]:
    """Source ids and n-best lists of `lines`, in input order; empty lines get no hypothesis.
    A line longer than the model's training data.max_len is translated, with a warning."""
    ids = module.src_tokenizer.encode([ln if ln.strip() else "" for ln in lines])
    max_len = module.config["data"]["max_len"] if "data" in module.config else None
    for i, seq in enumerate(ids):
        if max_len and len(seq) > max_len:
            log.warning("line %d has %d subwords, more than the %d the model was trained on "
                        "(data.max_len): its translation may be cut short or poor", i + 1,
                        len(seq), max_len)
    nbest: list[list[Hypothesis]] = [[] for _ in lines]
    rows = [i for i, seq in enumerate(ids) if seq]
    for batch_rows in ordered_batches([len(ids[i]) + 1 for i in rows], [0] * len(rows),
                                      max_tokens):
        idx = [rows[j] for j in batch_rows]
        batch = collate([(i, torch.tensor(ids[i]), None) for i in idx]).to(device)
        for i, hyps in zip(idx, module.search(batch, opts), strict=True):
            nbest[i] = hyps
    return ids, nbest


def translate_lines(module: Seq2SeqModule, lines: list[str], *, max_tokens: int,
                    device: str = "cpu", opts: DecodeOptions | None = None) -> list[str]:
    """The best translation of each line, in input order; an empty line gives an empty line."""
    opts = opts or DecodeOptions.from_dict(module.config["decode"])
    _, nbest = search_lines(module, lines, opts, max_tokens=max_tokens, device=device)
    texts = module.tgt_tokenizer.decode([h[0].tokens if h else [] for h in nbest])
    return [t if h else "" for t, h in zip(texts, nbest, strict=True)]


def beam_test_scores(module: Seq2SeqModule, srcs: list[str], refs: list[str], beam: int, *,
                     max_tokens: int, out_dir: Path | None = None,
                     print_scores: bool = False) -> dict:
    """Score the test split again with beam search of width `beam` (the model's other search
    settings kept) in batches of `max_tokens` padded source tokens: test/bleu_beam,
    test/bleu_lc_beam, test/chrf_beam, test/beam. Writes out_dir/test.beam{beam}.hyp.txt when
    out_dir is given."""
    opts = DecodeOptions.from_dict({**module.config["decode"], "beam": beam})
    device = next(module.parameters()).device
    hyps = translate_lines(module, srcs, max_tokens=max_tokens, device=str(device), opts=opts)
    scores = corpus_scores(hyps, refs)
    lowercased = corpus_scores(hyps, refs, lowercase=True)
    if out_dir is not None:
        atomic_write_bytes(Path(out_dir) / f"test.beam{beam}.hyp.txt",
                           ("\n".join(hyps) + "\n").encode("utf-8"))
    if print_scores:
        print(f"\nTest (beam {beam}): {scores}")
    return {"test/beam": float(beam), "test/bleu_beam": scores.bleu,
            "test/bleu_lc_beam": lowercased.bleu, "test/chrf_beam": scores.chrf}


def _options(cfg: DictConfig, module: Seq2SeqModule) -> DecodeOptions:
    d = dict(module.config["decode"])
    d.update({k: cfg[k] for k in SEARCH_KEYS if cfg.get(k) is not None})
    if cfg.get("greedy"):
        d["beam"] = 1
    return DecodeOptions.from_dict(d)


def _format(module: Seq2SeqModule, nbest: list[list[Hypothesis]], n: int,
            scores: bool) -> list[str]:
    """n lines per input (the n-best list, padded with empty lines), `score<TAB>text` with
    scores."""
    out = []
    for hyps in nbest:
        texts = module.tgt_tokenizer.decode([h.tokens for h in hyps]) if hyps else []
        for k in range(n):
            text = texts[k] if k < len(texts) else ""
            out.append(f"{hyps[k].score:.4f}\t{text}" if scores and k < len(hyps) else text)
    return out


def _write_heatmaps(module: Seq2SeqModule, ids, nbest, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, (src, hyps) in enumerate(zip(ids, nbest, strict=True)):
        if not hyps:
            continue
        h = hyps[0]
        out_pieces = module.tgt_tokenizer.pieces(h.tokens) + ["</s>"]
        src_pieces = module.src_tokenizer.pieces(src) + ["</s>"]
        fig = attention_figure(h.attention.numpy(), src_pieces, out_pieces[: len(h.attention)])
        atomic_write_bytes(folder / f"{i + 1:05d}.png", figure_png(fig))


def _paths(value) -> list[str]:
    """One checkpoint path or a list of them, as a list."""
    return list(value) if isinstance(value, (list, ListConfig)) else [value]


def _load_channel(cfg: DictConfig, module: Seq2SeqModule, device: str) -> Seq2SeqModule:
    """The reverse-direction model(s) of cfg.rerank, checked against the direct model: it must
    translate the other way, with the direct model's SentencePiece models swapped."""
    paths = _paths(cfg.rerank)
    channel = load_ensemble(paths, map_location=device).to(device)
    check_pairing(channel, f"rerank={paths[0]}", module, f"ckpt={_paths(cfg.ckpt)[0]}",
                  reverse=True)
    return channel


def _search(module: Seq2SeqModule, lines: list[str], opts: DecodeOptions,
            channel: Seq2SeqModule | None, cfg: DictConfig, device: str,
            ) -> tuple[list[list[int]], list[list[Hypothesis]]]:
    """Source ids and n-best lists; with a channel model, the search's whole beam (or all
    samples) is reranked and the `nbest` best kept."""
    if channel is None:
        return search_lines(module, lines, opts, max_tokens=cfg.max_tokens, device=device)
    wide = opts if opts.sample else replace(opts, nbest=max(opts.beam, opts.nbest))
    ids, nbest = search_lines(module, lines, wide, max_tokens=cfg.max_tokens, device=device)
    nbest = channel_rerank(channel.model, ids, nbest, cfg.rerank_weight,
                           max_tokens=cfg.max_tokens, device=device)
    return ids, [hyps[: opts.nbest] for hyps in nbest]


def translate(cfg: DictConfig) -> list[str] | None:
    """Translate cfg.src (or stdin) into cfg.out (or stdout) with the model in cfg.ckpt, or with
    the ensemble of the models when cfg.ckpt is a list of checkpoints; cfg.rerank (a reverse
    model, or a list) reranks the search's candidates by noisy-channel score."""
    if not cfg.get("ckpt"):
        raise DataError("ckpt=PATH is required: the checkpoint to translate with (or "
                        "ckpt=[PATH,PATH,...] for an ensemble)")
    device = cfg.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
    module = load_ensemble(_paths(cfg.ckpt), map_location=device).to(device)
    way = direction(module)
    print(f"translating {' -> '.join(way) if way else '(direction not recorded)'} with "
          f"{', '.join(map(str, _paths(cfg.ckpt)))} on {device}", file=sys.stderr)
    channel = _load_channel(cfg, module, device) if cfg.get("rerank") else None
    opts = _options(cfg, module)
    if opts.nbest > 1 and not opts.sample and opts.beam < opts.nbest:
        opts.beam = opts.nbest
    if channel is not None and (opts.nbest if opts.sample else opts.beam) == 1:
        log.warning("rerank=%s has one candidate a sentence to rerank: use beam=5 or more (or "
                    "sample=true nbest=N)", cfg.rerank)
    dtype = decode_dtype(cfg.precision, device, module)
    with torch.inference_mode(), cast_weights(module, dtype), (
            cast_weights(channel, dtype) if channel is not None else contextlib.nullcontext()):
        if not cfg.get("src") and sys.stdin.isatty():  # interactive: answer each line at once
            for line in sys.stdin:
                _, nbest = _search(module, [line.rstrip("\n")], opts, channel, cfg, device)
                print("\n".join(_format(module, nbest, opts.nbest, cfg.scores)), flush=True)
            return None
        lines = read_lines(cfg.src) if cfg.get("src") else sys.stdin.read().splitlines()
        ids, nbest = _search(module, lines, opts, channel, cfg, device)
    out_lines = _format(module, nbest, opts.nbest, cfg.scores)
    text = "".join(line + "\n" for line in out_lines)
    if cfg.get("out"):
        atomic_write_bytes(Path(cfg.out), text.encode("utf-8"))
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    if cfg.get("attention_png"):
        _write_heatmaps(module, ids, nbest, Path(cfg.attention_png))
    if cfg.get("ref"):
        best = _format(module, nbest, 1, False)
        refs = read_lines(cfg.ref)
        if len(refs) != len(best):
            raise DataError(f"ref={cfg.ref} has {len(refs)} lines but src has {len(best)}")
        print(corpus_scores(best, refs), file=sys.stderr)
        lowercased = corpus_scores(best, refs, lowercase=True)
        print(f"BLEU {lowercased.bleu:.2f} ({lowercased.bleu_signature})", file=sys.stderr)
    return out_lines
