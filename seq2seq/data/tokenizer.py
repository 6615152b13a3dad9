"""SentencePiece subword tokenizers, trained once on the training split and cached by content.

Special ids are fixed for every model: pad 0, unk 1, bos 2, eos 3.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import sentencepiece as spm

from seq2seq.atomic import atomic_write_bytes

log = logging.getLogger(__name__)

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3


class SubwordTokenizer:
    """Text <-> subword ids with a SentencePiece model held in memory as bytes."""

    def __init__(self, model_proto: bytes):
        self.model_proto = bytes(model_proto)
        self.sp = spm.SentencePieceProcessor(model_proto=self.model_proto)
        if (self.sp.pad_id(), self.sp.unk_id(), self.sp.bos_id(), self.sp.eos_id()) != (
            PAD_ID, UNK_ID, BOS_ID, EOS_ID,
        ):
            raise ValueError("SentencePiece model does not use the ids pad 0, unk 1, bos 2, eos 3")

    def __len__(self) -> int:
        return self.sp.get_piece_size()

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Subword ids of each text, without bos/eos."""
        return self.sp.encode(list(texts), out_type=int)

    def decode(self, ids: Sequence[Sequence[int]]) -> list[str]:
        """Detokenized text of each id sequence; special ids are dropped."""
        return self.sp.decode([[i for i in seq if i > EOS_ID] for seq in ids])

    def pieces(self, ids: Sequence[int]) -> list[str]:
        """The subword strings of `ids` (for attention plots)."""
        return [self.sp.id_to_piece(int(i)) for i in ids]


def _train_proto(sentences: Iterable[str], vocab_size: int, model_type: str) -> bytes:
    import io

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=buf,
        vocab_size=vocab_size,
        model_type=model_type,
        # 1.0: the default 0.9995 maps rare letters (Ü, Ä, Q) to <unk> on Multi30k
        character_coverage=1.0,
        pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID,
        input_sentence_size=2_000_000,
        shuffle_input_sentence=True,
        hard_vocab_limit=False,
        num_threads=max(1, os.cpu_count() or 1),
        minloglevel=2,
    )
    return buf.getvalue()


def train_or_load(
    sentences: Sequence[str],
    vocab_size: int,
    model_type: str,
    cache_dir: str | Path,
    tag: str,
) -> SubwordTokenizer:
    """A SentencePiece model of `sentences`, loaded from `cache_dir` when one with the same
    inputs and settings was trained before, else trained and cached."""
    key = hashlib.sha256(
        json.dumps({"v": vocab_size, "t": model_type, "spm": spm.__version__}).encode()
    )
    for s in sentences:
        key.update(s.encode("utf-8"))
        key.update(b"\n")
    path = Path(cache_dir) / f"spm-{tag}-{model_type}{vocab_size}-{key.hexdigest()[:16]}.model"
    if path.is_file():
        log.info("SentencePiece model from cache: %s", path)
        return SubwordTokenizer(path.read_bytes())
    log.info("training SentencePiece %s (%d pieces) on %d lines", model_type, vocab_size,
             len(sentences))
    proto = _train_proto(sentences, vocab_size, model_type)
    atomic_write_bytes(path, proto)
    return SubwordTokenizer(proto)
