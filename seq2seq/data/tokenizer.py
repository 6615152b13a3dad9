"""SentencePiece subword tokenizers, trained once on the training split and cached by content.

Special ids are fixed for every model: pad 0, unk 1, bos 2, eos 3.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import sentencepiece as spm

from seq2seq.atomic import atomic_write_bytes, file_lock
from seq2seq.data.errors import DataError, cache_write_error

log = logging.getLogger(__name__)

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
SPECIAL_PIECES = 4
# SentencePiece's default: it leaves longer lines out of training
MAX_SENTENCE_BYTES = 4192
# "Vocabulary size is smaller than required_chars. 10 vs 31." (31 = characters + special pieces)
_REQUIRED_CHARS = re.compile(r"smaller than required_chars\. (\d+) vs (\d+)")


def check_encodable(texts: Sequence[str]) -> None:
    """Raise a ValueError naming the first text that is not Unicode text SentencePiece can take:
    one holding a lone surrogate (U+D800 to U+DFFF, which a JSON string can carry as an escape
    but no UTF-8 text can)."""
    for i, text in enumerate(texts):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as e:
            raise ValueError(
                f"text {i} ({text[:40]!r}) cannot be encoded: character {e.start} is "
                f"U+{ord(text[e.start]):04X}, a lone surrogate, which is not Unicode text; "
                "send the text as valid UTF-8") from None


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
        """Subword ids of each text, without bos/eos. A text that is not Unicode text raises
        a ValueError naming it (check_encodable)."""
        check_encodable(texts)
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
        max_sentence_length=MAX_SENTENCE_BYTES,
        num_threads=max(1, os.cpu_count() or 1),
        minloglevel=2,
    )
    return buf.getvalue()


def _distinct_chars(sentences: Iterable[str]) -> int:
    """Characters SentencePiece must give a piece each: those of the NFKC-normalized text, plus
    the word-boundary mark."""
    norm = spm.SentencePieceNormalizer(rule_name="nmt_nfkc")
    chars = {"\u2581"}
    for s in sentences:
        chars.update(norm.normalize(s))
    return len(chars)


def _check_inputs(sentences: Sequence[str], vocab_size: int, source: str) -> None:
    """Raise DataError on input SentencePiece cannot train on; SentencePiece itself would stop
    with an internal assertion that names neither the files nor the option."""
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int):
        raise DataError(f"data.vocab_size={vocab_size!r} is not a whole number; give the number "
                        "of subword pieces, e.g. data.vocab_size=8000")
    text = [s for s in sentences if s.strip()]
    if not text:
        raise DataError(f"every line of {source} is empty, so there is no text to train the "
                        "SentencePiece model on; the training files need one sentence a line")
    too_long = sum(len(s.encode("utf-8")) > MAX_SENTENCE_BYTES for s in text)
    if too_long == len(text):
        raise DataError(
            f"every non-empty line of {source} is longer than {MAX_SENTENCE_BYTES} bytes, the "
            "longest line SentencePiece trains on, so there is no text to train it on; the "
            "training files need one sentence a line (split the long lines)")
    if too_long:
        log.warning("%d of %d lines of %s are longer than %d bytes and left out of "
                    "SentencePiece training", too_long, len(text), source,
                    MAX_SENTENCE_BYTES)
    if vocab_size <= SPECIAL_PIECES:
        need = SPECIAL_PIECES + _distinct_chars(text)
        raise DataError(
            f"data.vocab_size={vocab_size} leaves no room for subwords: {SPECIAL_PIECES} pieces "
            f"are reserved for <pad>, <unk>, <s> and </s>, and each character of {source} needs "
            f"one more; raise data.vocab_size to at least {need}")


def _training_error(err: Exception, vocab_size: int, model_type: str, source: str) -> DataError:
    """SentencePiece's RuntimeError (an internal assertion) as a message a user can act on."""
    msg = str(err)
    chars = _REQUIRED_CHARS.search(msg)
    if chars:
        need = int(chars.group(2))
        return DataError(
            f"data.vocab_size={vocab_size} is too small for {source}: SentencePiece needs a "
            f"piece for each of the {need - SPECIAL_PIECES} distinct characters of its text "
            f"(the word boundary included) besides the {SPECIAL_PIECES} special pieces; raise "
            f"data.vocab_size to at least {need}")
    if "all_chars_count" in msg or "sentences_.empty()" in msg:
        return DataError(
            f"no text of {source} is left for SentencePiece once it drops control and invisible "
            "characters (such as U+200B) and lines longer than "
            f"{MAX_SENTENCE_BYTES} bytes; the training files need one sentence a line")
    first = msg.strip().splitlines()[0] if msg.strip() else type(err).__name__
    return DataError(
        f"SentencePiece could not train a {model_type} model of data.vocab_size={vocab_size} on "
        f"{source} ({first}); check the files and data.vocab_size / data.vocab_type")


def _load_cached(path: Path) -> SubwordTokenizer | None:
    """The cached model at `path`, or None when there is none or it cannot be read (a later
    training overwrites a damaged one)."""
    if not path.is_file():
        return None
    try:
        tok = SubwordTokenizer(path.read_bytes())
    except (OSError, RuntimeError, ValueError) as e:
        log.warning("cached SentencePiece model %s is unreadable (%s); training it again",
                    path, e)
        return None
    log.info("SentencePiece model from cache: %s", path)
    return tok


def train_or_load(
    sentences: Sequence[str] | Callable[[], Sequence[str]],
    vocab_size: int,
    model_type: str,
    cache_dir: str | Path,
    tag: str,
    source: str = "the training text",
    key: str | None = None,
) -> SubwordTokenizer:
    """A SentencePiece model of `sentences`, loaded from `cache_dir` when one with the same
    inputs and settings was trained before, else trained and cached.

    `sentences` is the text, or a function that returns it: it is then called only when no model
    is cached, so a cached model of a large corpus costs no reading. `key` identifies the inputs
    in the cache (default: a hash of the sentences, which must then be given as text). `source`
    names the files the sentences come from in error messages. Raises DataError when
    SentencePiece cannot train on them or the cache folder cannot be written.
    """
    if not callable(sentences):
        _check_inputs(sentences, vocab_size, source)  # before anything is written
    if key is None:
        if callable(sentences):
            raise TypeError("train_or_load: give `key` when `sentences` is a function")
        digest = hashlib.sha256()
        for s in sentences:
            digest.update(s.encode("utf-8"))
            digest.update(b"\n")
        key = digest.hexdigest()
    key = hashlib.sha256(
        json.dumps({"v": vocab_size, "t": model_type, "spm": spm.__version__, "in": key}).encode()
    ).hexdigest()
    path = Path(cache_dir) / f"spm-{tag}-{model_type}{vocab_size}-{key[:16]}.model"
    tok = _load_cached(path)
    if tok is None:
        try:
            with file_lock(path.with_name(f".{path.name}.lock")):
                tok = _load_cached(path)  # trained by another process while we waited
                if tok is None:
                    tok = _train(sentences() if callable(sentences) else sentences, vocab_size,
                                 model_type, path, source)
        except OSError as e:
            raise cache_write_error(path, e) from e
    if len(tok) < vocab_size:
        log.warning("the SentencePiece model of %s has %d pieces, not data.vocab_size=%d: its "
                    "text allows no more", source, len(tok), vocab_size)
    return tok


def _train(sentences: Sequence[str], vocab_size: int, model_type: str, path: Path, source: str
           ) -> SubwordTokenizer:
    """Train a model on `sentences` and write it to `path` atomically."""
    _check_inputs(sentences, vocab_size, source)
    log.info("training SentencePiece %s (%d pieces) on %d lines", model_type, vocab_size,
             len(sentences))
    try:
        proto = _train_proto(sentences, vocab_size, model_type)
    except (RuntimeError, ValueError) as e:
        raise _training_error(e, vocab_size, model_type, source) from e
    atomic_write_bytes(path, proto)
    return SubwordTokenizer(proto)
