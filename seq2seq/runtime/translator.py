"""Translator: an export folder in, translations out, without PyTorch."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from seq2seq.data.buckets import ordered_batch_lists
from seq2seq.data.tokenizer import check_encodable
from seq2seq.decoding.options import DEFAULTS, MAX_TOKENS
from seq2seq.runtime.bundle import Bundle
from seq2seq.runtime.search import Hypothesis, beam_search, max_output_length, sample

log = logging.getLogger(__name__)

# the search options `translate` takes by name (the others have arguments of their own)
SEARCH_OPTIONS = tuple(k for k in DEFAULTS
                       if k not in ("beam", "nbest", "alpha", "max_len_a", "max_len_b"))


def source_batch(ids: list[list[int]], eos: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source ids without eos -> src [B, S] int64 (eos appended, pad 0), src_lengths [B]
    int64, src_mask [B, S] bool: what seq2seq/data/batch.py's collate builds."""
    lengths = np.array([len(s) + 1 for s in ids], dtype=np.int64)
    src = np.zeros((len(ids), int(lengths.max())), dtype=np.int64)
    for i, s in enumerate(ids):
        src[i, : len(s)] = s
        src[i, len(s)] = eos
    return src, lengths, np.arange(src.shape[1])[None, :] < lengths[:, None]


class Translator:
    """Translate with an exported model (see the package docstring for what `translate`
    returns).

    path: the export folder; threads: onnxruntime intra-op threads (0 = its own choice);
    max_tokens: padded source tokens per batch.
    """

    def __init__(self, path: str | Path, threads: int = 0, max_tokens: int = MAX_TOKENS):
        self.bundle = Bundle(path, threads=threads)
        self.manifest = m = self.bundle.manifest
        self.defaults = dict(m["decode"])
        self.max_tokens = max_tokens
        self.bos, self.eos = m["ids"]["bos"], m["ids"]["eos"]

    def info(self) -> dict:
        """What a server shows: languages, vocabulary sizes, parameters, decode defaults."""
        m = self.manifest
        return {"path": str(self.bundle.path), "format_version": m["format_version"],
                "languages": m["languages"], "vocab_size": m["vocab_size"],
                "parameters": m["model"]["parameters"], "model": m["model"],
                "max_len": m["max_len"], "decode": dict(self.defaults)}

    # -- translation --------------------------------------------------------------------------

    def search(self, texts: list[str], opts: dict) -> tuple[list[list[int]],
                                                             list[list[Hypothesis]]]:
        """Source ids and n-best lists (or samples) of `texts`, in input order; empty texts
        get none. opts: every search option of the model's `decode` defaults."""
        check_encodable(texts)
        ids = [self.bundle.src_spm.encode(t if t.strip() else "", out_type=int) for t in texts]
        nbest_lists: list[list[Hypothesis]] = [[] for _ in texts]
        rows = [i for i, s in enumerate(ids) if s]
        seed = opts.get("seed")  # every batch starts from it, as translate.py's sampling
        lengths = [len(ids[i]) + 1 for i in rows]  # translate.py's batches (data/sampler.py)
        for batch in ordered_batch_lists(lengths, [0] * len(rows), self.max_tokens):
            idx = [rows[j] for j in batch]
            src, lengths, mask = source_batch([ids[i] for i in idx], self.eos)
            graphs = self.bundle.graphs
            state = graphs.encode(src, lengths, mask)
            limit = max_output_length(lengths, opts["max_len_a"], opts["max_len_b"])
            if opts.get("sample"):
                hyps = sample(graphs.step, state, lengths, limit, n=opts["nbest"],
                              temperature=opts["temperature"], top_k=opts["top_k"],
                              top_p=opts["top_p"], seed=seed, bos=self.bos, eos=self.eos)
            else:
                hyps = beam_search(graphs.step, state, lengths, limit, beam=opts["beam"],
                                   alpha=opts["alpha"], nbest=opts["nbest"],
                                   min_len=opts["min_len"], coverage=opts["coverage"],
                                   no_repeat_ngram_size=opts["no_repeat_ngram_size"],
                                   bos=self.bos, eos=self.eos)
            for i, h in zip(idx, hyps, strict=True):
                nbest_lists[i] = h
        return ids, nbest_lists

    def translate(self, texts: list[str], beam: int | None = None, nbest: int = 1,
                  alpha: float | None = None, max_len_a: float | None = None,
                  max_len_b: int | None = None, with_scores: bool = False,
                  with_attention: bool = False, **options) -> list:
        """One result per text: its best translation (a string), or with nbest > 1,
        with_scores or with_attention a list of dicts, best first (see the package docstring).
        None takes the model's decode default; `options` sets the other search options by
        name (coverage, no_repeat_ngram_size, min_len, sample, temperature, top_k, top_p,
        seed)."""
        if isinstance(texts, str):
            raise TypeError("translate() takes a list of texts; wrap one text in a list")
        unknown = sorted(set(options) - set(SEARCH_OPTIONS))
        if unknown:
            raise ValueError(f"{unknown[0]}: unknown search option; the options are beam, "
                             f"nbest, alpha, max_len_a, max_len_b, {', '.join(SEARCH_OPTIONS)}")
        opts = {**DEFAULTS, **self.defaults,
                **{k: v for k, v in options.items() if v is not None}}
        for k, v in (("beam", beam), ("nbest", nbest), ("alpha", alpha),
                     ("max_len_a", max_len_a), ("max_len_b", max_len_b)):
            if v is not None:
                opts[k] = v
        for k, cast in (("beam", int), ("nbest", int), ("min_len", int), ("max_len_b", int),
                        ("no_repeat_ngram_size", int), ("top_k", int), ("alpha", float),
                        ("max_len_a", float), ("coverage", float), ("temperature", float),
                        ("top_p", float)):
            opts[k] = cast(opts[k])
        beam, nbest = opts["beam"], opts["nbest"]
        if beam < 1 or nbest < 1:
            raise ValueError(f"beam={beam}, nbest={nbest}: both must be at least 1")
        opts["beam"] = max(beam, nbest)  # as translate.py: n-best lists need a beam as wide
        ids, lists = self.search(list(texts), opts)
        tgt = self.bundle.tgt_spm
        if nbest == 1 and not with_scores and not with_attention:
            best = tgt.decode([[i for i in h[0].tokens if i > self.eos] if h else []
                               for h in lists])
            return [b if h else "" for b, h in zip(best, lists, strict=True)]
        out = []
        for src, hyps in zip(ids, lists, strict=True):
            items = []
            for h in hyps:
                item = {"text": tgt.decode([i for i in h.tokens if i > self.eos]),
                        "score": h.score, "tokens": list(h.tokens)}
                if with_attention:
                    item["attention"] = h.attention.tolist()
                    item["src_pieces"] = [self.bundle.src_spm.id_to_piece(i) for i in src] + [
                        "</s>"]
                    item["tgt_pieces"] = ([tgt.id_to_piece(i) for i in h.tokens]
                                          + ["</s>"])[: len(h.attention)]
                items.append(item)
            out.append(items)
        return out
