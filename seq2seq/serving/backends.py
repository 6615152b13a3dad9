"""What the server translates with: one interface over a checkpoint's module (torch) and an
exported model (seq2seq.runtime, torch-free), each imported only when chosen.

A backend's `translate(texts, options, attention)` returns, per text, its n-best list as
dicts {text, score, tokens, attention}; `attention` (when asked for) is
{source: pieces, target: pieces, weights: [target steps][source pieces]}.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class ServeError(ValueError):
    """A server setting or model that cannot be served; the server refuses to start."""


# the search options a request may set, with what each means (conf/train.yaml's decode section)
OPTIONS = {
    "beam": "beam size; 1 = greedy",
    "nbest": "hypotheses returned per text (the beam is widened to at least this)",
    "alpha": "length penalty ((5 + |Y|) / 6) ** alpha; 0 = off",
    "coverage": "coverage penalty weight beta; 0 = off",
    "no_repeat_ngram_size": "forbid repeating n-grams of this size; 0 = off",
    "min_len": "tokens before eos is allowed",
    "max_len_a": "outputs hold at most max_len_a * source length + max_len_b tokens",
    "max_len_b": "(eos excluded)",
}


class ModuleBackend:
    """A checkpoint (or an ensemble of them) decoded with seq2seq.translation.search_lines."""

    kind = "checkpoint"

    def __init__(self, paths: list[str], device: str | None, max_tokens: int,
                 threads: int | None = None, precision: str = "32"):
        import torch

        from seq2seq.checkpoint import direction, load_ensemble
        from seq2seq.precision import decode_dtype

        if threads:
            torch.set_num_threads(int(threads))
        self.threads = torch.get_num_threads()  # intra-op threads of each decode worker
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.paths, self.max_tokens = paths, max_tokens
        self.module = load_ensemble(paths, map_location=self.device).to(self.device)
        # translate.py's `precision`: bf16 casts the weights once, for good (scores, softmax
        # and search stay float32 in the model, as translate.py's cast_weights leaves them)
        self.dtype = decode_dtype(precision, self.device, self.module)
        for p in self.module.parameters():  # tied weights are one Parameter: cast once
            if p.is_floating_point():
                p.data = p.data.to(self.dtype)
        for m in self.module.modules():  # cuDNN wants an RNN's weights in one chunk again
            if isinstance(m, torch.nn.RNNBase):
                m.flatten_parameters()
        self.direction = direction(self.module)
        self.defaults = {k: v for k, v in self.module.config["decode"].items()}

    def count_tokens(self, text: str) -> int:
        """Source subwords of `text` plus eos: what a batch's token budget counts."""
        return len(self.module.src_tokenizer.encode([text])[0]) + 1

    def translate(self, texts: list[str], options: dict[str, Any],
                  attention: bool) -> list[list[dict]]:
        import torch

        from seq2seq.decoding.options import DecodeOptions
        from seq2seq.translation import search_lines

        opts = DecodeOptions.from_dict({**self.defaults, **options, "sample": False})
        opts.beam = max(opts.beam, opts.nbest)
        with torch.inference_mode():
            ids, nbest = search_lines(self.module, texts, opts, max_tokens=self.max_tokens,
                                      device=self.device)
        src_tok, tgt_tok = self.module.src_tokenizer, self.module.tgt_tokenizer
        out = []
        for src, hyps in zip(ids, nbest, strict=True):
            decoded = tgt_tok.decode([h.tokens for h in hyps]) if hyps else []
            items = []
            for h, text in zip(hyps, decoded, strict=True):
                item = {"text": text, "score": float(h.score), "tokens": list(h.tokens)}
                if attention:
                    target = (tgt_tok.pieces(h.tokens) + ["</s>"])[: len(h.attention)]
                    item["attention"] = {"source": src_tok.pieces(src) + ["</s>"],
                                         "target": target,
                                         "weights": h.attention.float().tolist()}
                items.append(item)
            out.append(items)
        return out

    def info(self) -> dict:
        return {"kind": self.kind, "model": [str(p) for p in self.paths],
                "source_lang": self.direction[0] if self.direction else None,
                "target_lang": self.direction[1] if self.direction else None,
                "architecture": _architecture(self.module.model),
                "parameters": sum(p.numel() for p in self.module.model.parameters()),
                "device": self.device, "decode": self.defaults,
                "threads": self.threads, "precision": str(self.dtype).replace("torch.", "")}


def _architecture(model) -> str:
    """encoder/decoder/attention of the model (each member's, for an ensemble), in the names
    results.json uses (seq2seq/models/contract.py)."""
    return ", ".join(f"{m.encoder.describe()}/{m.decoder.describe()}/"
                     f"{m.decoder.attention_name()}" for m in getattr(model, "members", [model]))


class ExportBackend:
    """An exported model directory, decoded by seq2seq.runtime.Translator (no torch)."""

    kind = "export"
    supported = tuple(OPTIONS)  # the runtime's search ports every option a request may set

    def __init__(self, path: str, max_tokens: int, threads: int | None = None):
        if not Path(path).is_dir():
            raise ServeError(f"{path}: exported model not found (looked at "
                             f"{Path(path).resolve()}); write one with python export.py")
        try:
            from seq2seq.runtime import Translator
        except ImportError as e:
            raise ServeError(f"model={path}: serving an exported model needs seq2seq.runtime "
                             f"and its dependencies (pip install -e '.[runtime]'): {e}") from None
        try:
            self.translator = Translator(path, threads=threads or 0, max_tokens=max_tokens)
        except ValueError as e:  # the runtime's ExportError: missing, damaged, other version
            raise ServeError(str(e)) from None
        self.path = path
        self._info = {**self.translator.info(), "threads": threads or None}
        self.defaults = dict(self._info.get("decode") or {})

    def count_tokens(self, text: str) -> int:
        return len(text.split()) * 2 + 1  # about two subwords a word; the runtime hides its ids

    def translate(self, texts: list[str], options: dict[str, Any],
                  attention: bool) -> list[list[dict]]:
        unsupported = sorted(set(options) - set(self.supported))
        if unsupported:
            raise ServeError(f"{unsupported[0]}: not supported by an exported model (it takes "
                             f"{', '.join(self.supported)})")
        if "nbest" in options:
            options = {**options, "beam": max(options.get("beam", self.defaults.get("beam") or 1),
                                              options["nbest"])}
        # the server searches (as the checkpoint backend); a model's decode.sample stays off
        results = self.translator.translate(list(texts), **options, sample=False, with_scores=True,
                                            with_attention=attention)
        out = []
        for res in results:
            hyps = [{"text": res}] if isinstance(res, str) else list(res)
            items = []
            for h in hyps:
                item = {"text": h["text"], "score": _float(h.get("score")),
                        "tokens": [int(t) for t in h["tokens"]] if h.get("tokens") is not None
                        else None}
                if attention and h.get("attention") is not None:
                    item["attention"] = {"source": list(h.get("src_pieces") or []),
                                         "target": list(h.get("tgt_pieces") or []),
                                         "weights": _matrix(h["attention"])}
                items.append(item)
            out.append(items)
        return out

    def info(self) -> dict:
        langs = self._info.get("languages") or {}
        return {**self._info, "kind": self.kind, "model": str(self.path),
                "architecture": _name(self._info.get("model")),
                "source_lang": langs.get("src"), "target_lang": langs.get("tgt"),
                "decode": self.defaults}


def _name(model) -> str | None:
    """A short name of the exported model's description (export.json's `model`)."""
    if isinstance(model, dict):
        return model.get("name") or model.get("architecture") or model.get("kind")
    return str(model) if model else None


def _float(x) -> float | None:
    return None if x is None else float(x)


def _matrix(a) -> list[list[float]]:
    return [[float(w) for w in row] for row in (a.tolist() if hasattr(a, "tolist") else a)]


def load_backend(ckpt, model: str | None, device: str | None, max_tokens: int,
                 threads: int | None, precision: str | int = "32"):
    """The backend of ckpt=PATH (or a list: an ensemble) or model=DIR; exactly one is given."""
    if bool(ckpt) == bool(model):
        raise ServeError("give one of ckpt=PATH (a checkpoint written by train.py, or a list "
                         "[A,B] for an ensemble) or model=DIR (a model written by export.py)")
    if model:
        if str(precision) not in ("32", "32-true", "fp32"):
            raise ServeError(f"precision={precision}: an exported model decodes in float32 "
                             "(the precision of its ONNX graphs); leave precision=32")
        return ExportBackend(str(model), max_tokens, threads)
    from seq2seq.extras import MissingExtra, require

    try:
        require("train", "serving a checkpoint (ckpt=PATH)")
    except MissingExtra as e:
        raise ServeError(f"{e}; or serve an exported model: model=DIR") from None
    paths = [str(p) for p in ckpt] if isinstance(ckpt, (list, tuple)) or hasattr(
        ckpt, "__iter__") and not isinstance(ckpt, str) else [str(ckpt)]
    return ModuleBackend(paths, device, max_tokens, threads, str(precision))
