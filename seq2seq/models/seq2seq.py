"""The encoder-decoder: composition of the parts, and building them from plain config."""

from __future__ import annotations

import importlib
from typing import Any

import torch
from torch import nn

from seq2seq.models.decoder import DecoderState, RNNDecoder
from seq2seq.models.encoder import RNNEncoder
from seq2seq.models.init import init_parameters

ALLOWED_PREFIX = "seq2seq.models."


def locate(target: str) -> Any:
    """The class named by a config's `_target_`, only from inside seq2seq.models (configs come
    from checkpoints too, and must never name arbitrary callables)."""
    if not isinstance(target, str) or not target.startswith(ALLOWED_PREFIX):
        raise ValueError(f"_target_ {target!r} is not a class of {ALLOWED_PREFIX}*")
    module, _, name = target.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _kwargs(cfg: dict) -> dict:
    return {k: v for k, v in cfg.items() if k != "_target_"}


class Seq2Seq(nn.Module):
    """An encoder and a decoder (which holds the attention)."""

    def __init__(self, encoder: RNNEncoder, decoder: RNNDecoder):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    def encode(self, src: torch.Tensor, src_lengths: torch.Tensor,
               src_mask: torch.Tensor) -> DecoderState:
        """src: [B, S]; src_lengths: [B]; src_mask: [B, S] -> the decoder's initial state."""
        return self.decoder.init_state(self.encoder(src, src_lengths), src_mask)

    def forward(self, src, src_lengths, src_mask, tgt_in, teacher_forcing_ratio: float = 1.0):
        """Teacher-forced pass -> logits [B, T, V], attention weights [B, T, S]."""
        state = self.encode(src, src_lengths, src_mask)
        return self.decoder(tgt_in, state, teacher_forcing_ratio)


def build_seq2seq(cfg: dict, src_vocab_size: int, tgt_vocab_size: int,
                  pad_id: int = 0) -> Seq2Seq:
    """Build from a plain-data model config ({emb_size, tie_embeddings, init, emb_init_std,
    encoder, attention, decoder}, each part with its `_target_` and every key given: conf/model/
    is where the defaults live), wiring the sizes that depend on other parts, then initialize
    the parameters (seq2seq/models/init.py)."""
    enc_cfg, att_cfg, dec_cfg = (dict(cfg[k]) for k in ("encoder", "attention", "decoder"))
    encoder = locate(enc_cfg["_target_"])(vocab_size=src_vocab_size, emb_size=cfg["emb_size"],
                                          pad_id=pad_id, **_kwargs(enc_cfg))
    attention = locate(att_cfg["_target_"])(
        query_size=dec_cfg["hidden_size"], value_size=encoder.output_size, **_kwargs(att_cfg))
    decoder = locate(dec_cfg["_target_"])(
        vocab_size=tgt_vocab_size, emb_size=cfg["emb_size"], attention=attention,
        encoder_size=encoder.output_size, tie_embeddings=cfg["tie_embeddings"],
        pad_id=pad_id, **_kwargs(dec_cfg))
    model = Seq2Seq(encoder, decoder)
    init_parameters(model, cfg["init"], cfg["emb_init_std"])
    return model
