"""The encoder-decoder: composition of the parts, and building them from plain config."""

from __future__ import annotations

import importlib
import inspect
import re
from typing import Any

import torch
from torch import nn

from seq2seq.models.attention import Attention
from seq2seq.models.contract import Decoder, DecoderState, Encoder
from seq2seq.models.init import init_parameters

PARTS = {"encoder": Encoder, "attention": Attention, "decoder": Decoder}
# class paths that moved: checkpoints that name the old path are migrated when loaded
# (seq2seq/checkpoint.py); a config that names one is refused with the new path
MOVED = {"seq2seq.models.encoder.RNNEncoder": "seq2seq.models.rnn.RNNEncoder",
         "seq2seq.models.decoder.RNNDecoder": "seq2seq.models.rnn.RNNDecoder"}


def locate(target: str, part: str = "encoder") -> Any:
    """The class named by a config's `_target_` ("package.module.Class"), which must be a
    subclass of the part's base class (Encoder, Attention or Decoder): configs come from
    checkpoints too, and must never name arbitrary callables. Any importable module may hold
    it, so a new architecture needs no change here."""
    base = PARTS[part]
    option = f"model.{part}._target_"
    if not isinstance(target, str) or "." not in target:
        raise ValueError(f"{option}={target!r} is not a class path like "
                         f"seq2seq.models.rnn.RNNEncoder")
    if target in MOVED:
        raise ValueError(f"{option}={target!r} has moved: write {MOVED[target]}")
    module, _, name = target.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"{option}={target!r} cannot be imported ({e}); check the name, or "
                         "install the package that defines it") from None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ValueError(f"{option}={target!r} is not a subclass of "
                         f"{base.__module__}.{base.__name__}")
    return cls


def _kwargs(cfg: dict) -> dict:
    return {k: v for k, v in cfg.items() if k != "_target_"}


def _check_ranges(part: str, options: dict) -> None:
    """The options every part shares by name: sizes and counts (`*_size`, `num_*`) are whole
    numbers of at least 1, dropouts are probabilities below 1."""
    for key, value in options.items():
        if key.endswith("_size") or key.startswith("num_"):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 1):
                raise ValueError(f"model.{part}.{key}={value!r}: give a whole number of at "
                                 "least 1")
        elif "dropout" in key and not (isinstance(value, (int, float))
                                       and not isinstance(value, bool) and 0 <= value < 1):
            raise ValueError(f"model.{part}.{key}={value!r}: give a probability from 0 to "
                             "below 1")


def _build(part: str, cls: type, cfg: dict, **wired) -> nn.Module:
    """cls(**wired, **options of cfg); a constructor that refuses its options raises a
    ValueError naming them as config keys: model.<part>.<key>=<value>."""
    options = _kwargs(cfg)
    _check_ranges(part, options)
    try:
        return cls(**wired, **options)
    except TypeError as e:
        text = str(e)
        unknown = re.search(r"unexpected keyword argument '(\w+)'", text)
        if unknown:
            known = [k for k in inspect.signature(cls).parameters if k not in wired]
            raise ValueError(f"model.{part}.{unknown[1]}: not an option of {cls.__name__} "
                             f"(its options: {', '.join(known)})") from None
        missing = re.search(r"missing \d+ required keyword-only arguments?: '(\w+)'", text)
        if missing:
            raise ValueError(f"model.{part}.{missing[1]} is missing: {cls.__name__} needs it "
                             "(set it in the part's config file or on the command line)") from None
        raise
    except (ValueError, RuntimeError) as e:
        named = [f"model.{part}.{k}={v}" for k, v in options.items()
                 if re.search(rf"\b{re.escape(k)}\b", str(e))]
        where = ", ".join(named) if named else f"model.{part} ({cls.__name__})"
        raise ValueError(f"{where}: {e}") from None


class Seq2Seq(nn.Module):
    """An encoder and a decoder (which holds the attention), any pair that honours the contract
    of seq2seq/models/contract.py."""

    def __init__(self, encoder: Encoder, decoder: Decoder):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    def encode(self, src: torch.Tensor, src_lengths: torch.Tensor,
               src_mask: torch.Tensor) -> DecoderState:
        """src: [B, S]; src_lengths: [B]; src_mask: [B, S] -> the decoder's initial state."""
        return self.decoder.init_state(self.encoder(src, src_lengths, src_mask), src_mask)

    def forward(self, src, src_lengths, src_mask, tgt_in, teacher_forcing_ratio: float = 1.0):
        """Teacher-forced pass -> logits [B, T, V], attention weights [B, T, S]."""
        state = self.encode(src, src_lengths, src_mask)
        return self.decoder(tgt_in, state, teacher_forcing_ratio)


def _embedding(part: nn.Module, name: str) -> nn.Embedding:
    """The one token embedding of an encoder or decoder (share_all_embeddings ties them)."""
    found = [m for m in part.modules() if isinstance(m, nn.Embedding)]
    if len(found) != 1:
        raise ValueError(f"model.share_all_embeddings=true needs one token embedding in the "
                         f"{name}; {type(part).__name__} has {len(found)}")
    return found[0]


def share_all_embeddings(model: Seq2Seq) -> None:
    """Tie the source embedding to the target embedding (and so, with tie_embeddings, to the
    output layer too: three-way tying, as fairseq's --share-all-embeddings). Needs one
    vocabulary for both languages (data.joint_vocab=true) and the same embedding size."""
    src, tgt = _embedding(model.encoder, "encoder"), _embedding(model.decoder, "decoder")
    if src.weight.shape != tgt.weight.shape:
        raise ValueError(
            "model.share_all_embeddings=true needs the same vocabulary and embedding size on "
            f"both sides: the source embedding is {tuple(src.weight.shape)}, the target "
            f"{tuple(tgt.weight.shape)}; train one joint vocabulary (data.joint_vocab=true)")
    src.weight = tgt.weight


def build_seq2seq(cfg: dict, src_vocab_size: int, tgt_vocab_size: int,
                  pad_id: int = 0) -> Seq2Seq:
    """Build from a plain-data model config ({emb_size, tie_embeddings, init, emb_init_std,
    encoder, attention, decoder}, each part with its `_target_` and every key given: conf/model/
    is where the defaults live; `share_all_embeddings` may be absent, meaning false), wiring the
    sizes that depend on other parts, then initialize the parameters (seq2seq/models/init.py).

    The attention part is built only for decoders with `uses_attention` (query size = the
    decoder's hidden_size); decoders with their own attention need it empty (null).
    """
    enc_cfg, dec_cfg = dict(cfg["encoder"]), dict(cfg["decoder"])
    att_cfg = dict(cfg["attention"]) if cfg.get("attention") else None
    encoder = _build("encoder", locate(enc_cfg["_target_"], "encoder"), enc_cfg,
                     vocab_size=src_vocab_size, emb_size=cfg["emb_size"], pad_id=pad_id)
    decoder_cls = locate(dec_cfg["_target_"], "decoder")
    wired = {}
    if decoder_cls.uses_attention:
        if att_cfg is None:
            raise ValueError(f"{dec_cfg['_target_']} needs an attention: choose one with "
                             "model/attention=<name> (none for no attention)")
        wired["attention"] = _build("attention", locate(att_cfg["_target_"], "attention"),
                                    att_cfg, query_size=dec_cfg["hidden_size"],
                                    value_size=encoder.output_size)
    elif att_cfg is not None:
        raise ValueError(f"{dec_cfg['_target_']} has its own attention, so model.attention "
                         "must be empty: add `~model/attention` (or model/attention=null) to "
                         "the command, or use a preset that leaves it out")
    decoder = _build("decoder", decoder_cls, dec_cfg, vocab_size=tgt_vocab_size,
                     emb_size=cfg["emb_size"], encoder_size=encoder.output_size,
                     tie_embeddings=cfg["tie_embeddings"], pad_id=pad_id, **wired)
    model = Seq2Seq(encoder, decoder)
    if cfg.get("share_all_embeddings", False):
        share_all_embeddings(model)
    init_parameters(model, cfg["init"], cfg["emb_init_std"])
    return model
