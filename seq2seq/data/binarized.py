"""A binarized parallel corpus: each side's subword ids as one flat token array plus offsets,
in NumPy .npy files that every process maps read-only.

One folder per split and tokenizer pair, `<cache_dir>/data-<key>/`:
    src.tokens.npy   [total source tokens] uint16 (uint32 for vocabularies over 65,536)
    src.offsets.npy  [pairs + 1] int32 or int64: pair i's ids are tokens[offsets[i]:offsets[i+1]]
    src.lengths.npy  [pairs] uint16 (uint32 for sentences of 65,535 pieces or more): the
                     differences of the offsets, kept so that every rank's batching reads one
                     shared copy instead of computing its own
    tgt.*.npy        the same for the target side
    meta.json        pairs, dtypes and what the folder was built from

The key hashes the tokenizers and the files' identities, so a second run (any number of ranks and
DataLoader workers later) finds the folder and maps it: the page cache holds one copy per
machine, and a process pays only for the pages it touches. The folder is built under a temporary
name and renamed into place when complete, under a lock file, so a killed or failed preparation
never leaves anything a later run could take for a finished one, and two runs preparing the same
corpus at once encode it once. Encoding streams the files in chunks (never the whole corpus as
Python strings) with SentencePiece's threads on every core.
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import json
import logging
import os
import shutil
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from seq2seq.atomic import file_lock
from seq2seq.data.corpus import ParallelFiles
from seq2seq.data.errors import DataError, cache_write_error
from seq2seq.data.tokenizer import SubwordTokenizer

log = logging.getLogger(__name__)

# bumped when the folder layout changes, so older folders are never read as this one
FORMAT = 1
SIDES = ("src", "tgt")
# lines encoded per SentencePiece call: large enough for its threads, small enough for memory
CHUNK_LINES = 65_536
# bytes of a streamed .npy file's header: magic, version, length, then the padded dict
_NPY_HEADER = 128


class DamagedCache(Exception):
    """A binarized folder that is missing a file or does not agree with its meta.json."""


def token_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned integer type that holds ids below `vocab_size`."""
    return np.dtype(np.uint16 if vocab_size <= 1 << 16 else np.uint32)


class NpyWriter:
    """A 1-D .npy file written in pieces of unknown total length: a fixed-size header is
    reserved first and filled in by `close`, so the data is never copied."""

    def __init__(self, path: Path, dtype: np.dtype):
        self.path, self.dtype, self.length = path, np.dtype(dtype), 0
        self.file = open(path, "wb")  # noqa: SIM115 - closed by close()
        self.file.write(b"\0" * _NPY_HEADER)

    def write(self, values: np.ndarray) -> None:
        self.file.write(np.ascontiguousarray(values, dtype=self.dtype).tobytes())
        self.length += len(values)

    def close(self) -> None:
        descr = np.lib.format.dtype_to_descr(self.dtype)
        header = f"{{'descr': {descr!r}, 'fortran_order': False, 'shape': ({self.length},), }}"
        room = _NPY_HEADER - 10  # magic (6), version (2), header length (2)
        self.file.seek(0)
        self.file.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", room)
                        + header.ljust(room - 1).encode("latin1") + b"\n")
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()


class TokenArray:
    """One side of a binarized split: item i is pair i's ids ([len_i] array, a view of the
    mapped file)."""

    def __init__(self, tokens: np.ndarray, offsets: np.ndarray, lengths: np.ndarray):
        self.tokens, self.offsets, self._lengths = tokens, offsets, lengths

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        return self.tokens[self.offsets[i] : self.offsets[i + 1]]

    def lengths(self) -> np.ndarray:
        """[pairs] uint16 or uint32 (mapped, read-only), the number of ids of each pair."""
        return self._lengths


class BinarizedSplit:
    """A binarized split's folder, mapped read-only: `src` and `tgt` TokenArrays.

    Raises DamagedCache when a file is missing, truncated or does not agree with meta.json.
    """

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        try:
            self.meta = json.loads((self.folder / "meta.json").read_text(encoding="utf-8"))
            if self.meta.get("format") != FORMAT:
                raise DamagedCache(f"format {self.meta.get('format')}, expected {FORMAT}")
            arrays = {side: self._open(side) for side in SIDES}
        except DamagedCache:
            raise
        except Exception as e:  # any damage is answered the same way: build again
            raise DamagedCache(f"{type(e).__name__}: {e}") from None
        self.src, self.tgt = arrays["src"], arrays["tgt"]

    def _open(self, side: str) -> TokenArray:
        pairs, dtype = self.meta["pairs"], np.dtype(self.meta[side]["dtype"])
        tokens = np.load(self.folder / f"{side}.tokens.npy", mmap_mode="r")
        offsets = np.load(self.folder / f"{side}.offsets.npy", mmap_mode="r")
        if tokens.dtype != dtype or tokens.shape != (self.meta[side]["tokens"],):
            raise DamagedCache(f"{side}.tokens.npy holds {tokens.shape} {tokens.dtype}, "
                               f"meta.json says ({self.meta[side]['tokens']},) {dtype}")
        if offsets.shape != (pairs + 1,) or offsets[0] != 0 or offsets[-1] != len(tokens):
            raise DamagedCache(f"{side}.offsets.npy does not index {side}.tokens.npy")
        lengths = np.load(self.folder / f"{side}.lengths.npy", mmap_mode="r")
        if lengths.shape != (pairs,) or int(lengths.sum(dtype=np.int64)) != len(tokens):
            raise DamagedCache(f"{side}.lengths.npy does not add up to {side}.tokens.npy")
        return TokenArray(tokens, offsets, lengths)

    def __len__(self) -> int:
        return int(self.meta["pairs"])


def split_key(files: ParallelFiles, src_tok: SubwordTokenizer, tgt_tok: SubwordTokenizer) -> str:
    """The cache key of a split: its files' identities and both tokenizers."""
    blob = json.dumps({"format": FORMAT, "files": files.identity(),
                       "src": hashlib.sha256(src_tok.model_proto).hexdigest(),
                       "tgt": hashlib.sha256(tgt_tok.model_proto).hexdigest()})
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def binarized(files: ParallelFiles, src_tok: SubwordTokenizer, tgt_tok: SubwordTokenizer,
              cache_dir: str | Path) -> BinarizedSplit:
    """The binarized split of `files`, mapped from the cache, or encoded into it first.

    A damaged folder is built again; while another process builds the same folder this one
    waits for it and maps its result. Raises DataError (naming the folder) when the cache
    cannot be written, and the DataErrors of reading the files.
    """
    cache_dir = Path(cache_dir)
    key = split_key(files, src_tok, tgt_tok)
    folder = cache_dir / f"data-{key}"
    try:
        return BinarizedSplit(folder)  # the usual case: built before, no lock needed
    except DamagedCache as e:
        if folder.exists():
            log.warning("binarized data %s is damaged (%s); building it again", folder, e)
    try:
        with file_lock(cache_dir / f".data-{key}.lock"):
            try:
                return BinarizedSplit(folder)  # built by another process while we waited
            except DamagedCache:
                _remove(folder)
            for stale in cache_dir.glob(f".data-{key}.*.tmp"):  # left by a killed build
                _remove(stale)
            _build(files, src_tok, tgt_tok, folder)
    except OSError as e:
        raise _write_error(folder, e) from e
    return BinarizedSplit(folder)


def _build(files: ParallelFiles, src_tok: SubwordTokenizer, tgt_tok: SubwordTokenizer,
           folder: Path) -> None:
    """Encode both sides into a temporary folder beside `folder`, then rename it into place."""
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
    tmp.mkdir(parents=True)
    try:
        start = time.perf_counter()
        meta = {"format": FORMAT, "files": {"src": [str(p) for p in files.src_files],
                                            "tgt": [str(p) for p in files.tgt_files]}}
        counts = {}
        for side, tok in (("src", src_tok), ("tgt", tgt_tok)):
            counts[side], meta[side] = _encode_side(files.lines(side), tok, tmp, side)
        if counts["src"] != counts["tgt"]:  # files that changed since they were checked
            raise DataError(f"{files.src_path} has {counts['src']} lines but {files.tgt_path} "
                            f"has {counts['tgt']}; line i of one must translate line i of the "
                            "other")
        meta["pairs"] = counts["src"]
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
        os.rename(tmp, folder)
        log.info("binarized %d pairs of %s / %s in %.1f s: %s", meta["pairs"], files.src_path,
                 files.tgt_path, time.perf_counter() - start, folder)
    finally:
        _remove(tmp)


def _encode_side(lines: Iterator[str], tok: SubwordTokenizer, folder: Path, side: str
                 ) -> tuple[int, dict]:
    """Encode `lines` chunk by chunk into folder/<side>.tokens.npy and <side>.offsets.npy;
    returns (lines, their meta.json entry)."""
    writer = NpyWriter(folder / f"{side}.tokens.npy", token_dtype(len(tok)))
    lengths = []
    try:
        while chunk := list(itertools.islice(lines, CHUNK_LINES)):
            ids = tok.sp.encode(chunk, out_type=int, num_threads=os.cpu_count() or 1)
            n = np.fromiter(map(len, ids), dtype=np.int32, count=len(ids))
            writer.write(np.fromiter(itertools.chain.from_iterable(ids), dtype=writer.dtype,
                                     count=int(n.sum())))
            lengths.append(n)
    finally:
        writer.close()
    lengths = np.concatenate(lengths) if lengths else np.zeros(0, np.int32)
    offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
    _save(folder / f"{side}.offsets.npy",
          offsets.astype(np.int32 if offsets[-1] < 1 << 31 else np.int64))
    _save(folder / f"{side}.lengths.npy",
          lengths.astype(np.uint16 if lengths.max(initial=0) < (1 << 16) - 1 else np.uint32))
    return len(offsets) - 1, {"tokens": writer.length, "dtype": writer.dtype.str}


def _save(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, array)
        f.flush()
        os.fsync(f.fileno())


def _remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _write_error(folder: Path, err: OSError) -> DataError:
    if err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return DataError(
            f"the disk of the cache folder {folder.parent} filled up while writing the "
            f"binarized corpus ({err.strerror}); nothing was kept. Free space there or set "
            "data.cache_dir (or SEQ2SEQ_CACHE_DIR) to a folder with room: the binarized data "
            "takes about 2 bytes per subword token (4 above 65,536 pieces)")
    return cache_write_error(folder, err)
