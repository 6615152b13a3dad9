"""Reading parallel text: plain or gzip files, one sentence a line, checked line by line.

One side of a split may be several files (a list, or a glob pattern expanded in sorted order);
the i-th source file pairs with the i-th target file and their lines are concatenated.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import logging
import os
import zlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from seq2seq.data.errors import DataError

log = logging.getLogger(__name__)

# characters that make a data path a glob pattern (fnmatch syntax)
_GLOB_CHARS = frozenset("*?[")
# file names listed in a message before "and N more"
_LISTED = 3


def _check_file(path: Path) -> None:
    """Raise DataError naming `path` unless it is a file."""
    if path.is_dir():
        raise DataError(f"{path}: is a folder; the data.* paths must name text files")
    if not path.is_file():
        raise DataError(
            f"{path}: file not found (looked at {path.resolve()}). Check the data.* paths; for "
            "Multi30k use data=multi30k, which downloads missing files into data.root, or set "
            "SEQ2SEQ_DATA_DIR to a folder holding multi30k/")


@contextmanager
def _opened(path: Path) -> Iterator[BinaryIO]:
    """`path` opened for reading bytes (gunzipped when it ends in .gz); read errors become a
    DataError naming the file."""
    _check_file(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            yield f
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise DataError(f"{path}: not a readable gzip file ({e}); it is truncated or damaged: "
                        "fetch or compress it again") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read the file ({e.strerror or e}); check its "
                        "permissions") from None


def iter_lines(path: str | Path) -> Iterator[str]:
    """The lines of a text file (plain or `.gz`) without their line endings, one at a time.

    Raises DataError naming the file (and line) on a missing, unreadable or damaged file or
    invalid UTF-8.
    """
    path = Path(path)
    with _opened(path) as f:
        for i, line in enumerate(f, start=1):
            try:
                text = line.removesuffix(b"\n").decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(
                    f"{path}:{i}: invalid UTF-8 at byte {e.start} of the line; "
                    "convert the file to UTF-8 (e.g. with iconv)"
                ) from None
            yield text.rstrip("\r")


def count_lines(path: str | Path) -> int:
    """The number of lines `iter_lines` gives for `path` (a last line without a newline
    counts), read in blocks without splitting it into lines."""
    count, last = 0, b"\n"
    with _opened(Path(path)) as f:
        while block := f.read(1 << 22):
            count += block.count(b"\n")
            last = block[-1:]
    return count + (last != b"\n")


def read_lines(path: str | Path) -> list[str]:
    """Read a text file (plain or `.gz`) into lines without their line endings (see
    `iter_lines` for the errors)."""
    return list(iter_lines(path))


def _glob_folder(pattern: str) -> Path:
    """The folder a glob pattern searches: its leading parts that hold no glob character."""
    parts = Path(pattern).parts[:-1]
    fixed = []
    for part in parts:
        if _GLOB_CHARS & set(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def expand_files(spec: str | Path | Iterable[str | Path], name: str = "the file list"
                 ) -> list[Path]:
    """The files `spec` names, in order: one path, a glob pattern, or a list of either.

    A pattern gives its matches sorted by path (code-point order, the same on every machine);
    a path that exists is taken as it is even when it holds glob characters. `name` (e.g.
    "data.train.src") starts the messages. Raises DataError on an empty list and on a pattern
    that matches no file, naming the pattern and the folder searched.
    """
    entries = [spec] if isinstance(spec, (str, os.PathLike)) else list(spec)
    if not entries:
        raise DataError(f"{name} is an empty list; name at least one file")
    files: list[Path] = []
    for entry in map(os.fspath, entries):
        if not (_GLOB_CHARS & set(entry)) or os.path.lexists(entry):
            files.append(Path(entry))
            continue
        matches = sorted(glob.glob(entry, recursive=True))
        if not matches:
            folder = _glob_folder(entry)
            where = "" if folder.is_dir() else ", which is not a folder"
            raise DataError(f"{name}: the pattern {entry!r} matches no file (looked in "
                            f"{folder.resolve()}{where})")
        files.extend(map(Path, matches))
    return files


def files_label(files: Sequence[Path]) -> str:
    """The files of one side, for messages: 'a.de', or 'a.de + b.de.gz + c.de + 2 more'."""
    shown = " + ".join(str(p) for p in files[:_LISTED])
    return shown + (f" + {len(files) - _LISTED} more" if len(files) > _LISTED else "")


def _language_suffix(path: Path) -> str:
    """'de' of news.de and news.de.gz; '' for a name without a suffix."""
    name = path.name.removesuffix(".gz")
    return name.rsplit(".", 1)[1] if "." in name else ""


def _stem(path: Path) -> str:
    """The name without the language suffix and .gz: 'news' of news.de.gz."""
    name = path.name.removesuffix(".gz")
    return name.rsplit(".", 1)[0] if "." in name else name


def corpus_name(files: Sequence[Path]) -> str:
    """A stable name of one side's training files, recorded as a model's direction when the
    languages are not named: the file's name for one file ('train.de'); for several, their common
    language suffix ('de' for news.de + wiki.de.gz), else the first name and how many more
    ('news.txt+2 more')."""
    if len(files) == 1:
        return files[0].name
    suffixes = {_language_suffix(p) for p in files}
    if len(suffixes) == 1 and "" not in suffixes:
        return suffixes.pop()
    return f"{files[0].name}+{len(files) - 1} more"


def _warn_unlike_names(src_files: Sequence[Path], tgt_files: Sequence[Path]) -> None:
    """Warn when files paired by position differ in more than their language suffix: a sorted
    list of one side that does not line up with the other's pairs the wrong corpora."""
    unlike = [(s, t) for s, t in zip(src_files, tgt_files, strict=True) if _stem(s) != _stem(t)]
    if unlike:
        shown = ", ".join(f"{s} with {t}" for s, t in unlike[:_LISTED])
        more = f" and {len(unlike) - _LISTED} more" if len(unlike) > _LISTED else ""
        log.warning("%d of %d file pairs differ in more than the language suffix (%s%s); files "
                    "pair by position after sorting, so check that both sides list the same "
                    "corpora", len(unlike), len(src_files), shown, more)


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes, hex."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class _SplitFiles:
    """A split's source and target files (`src_files`, `tgt_files`), named in messages."""

    src_files: list[Path]
    tgt_files: list[Path]

    @property
    def src_path(self) -> str:
        """The source files, for messages."""
        return files_label(self.src_files)

    @property
    def tgt_path(self) -> str:
        """The target files, for messages."""
        return files_label(self.tgt_files)


@dataclass
class ParallelText(_SplitFiles):
    """Aligned source and target sentences of one split, with the files they came from (in
    order; a single path is taken as a list of one)."""

    src: list[str]
    tgt: list[str]
    src_files: list[Path]
    tgt_files: list[Path]

    def __post_init__(self):
        if isinstance(self.src_files, (str, os.PathLike)):
            self.src_files = [Path(self.src_files)]
        if isinstance(self.tgt_files, (str, os.PathLike)):
            self.tgt_files = [Path(self.tgt_files)]

    def __len__(self) -> int:
        return len(self.src)


def read_parallel(src: str | Path | Iterable[str | Path], tgt: str | Path | Iterable[str | Path],
                  names: tuple[str, str] = ("the source side", "the target side")
                  ) -> ParallelText:
    """Read aligned text. `src` and `tgt` each name one file, a glob pattern or a list of them
    (see `expand_files`); the i-th source file pairs with the i-th target file, and the lines
    of the pairs are concatenated in order.

    `names` names the two sides in messages (e.g. "data.train.src"). Every file is checked to
    exist before any is read. Raises DataError when the sides name different numbers of files
    or the files of a pair differ in line count; warns when the names of a pair differ in more
    than their language suffix.
    """
    files = ParallelFiles.find(src, tgt, names)
    src_files, tgt_files = files.src_files, files.tgt_files
    src_lines: list[str] = []
    tgt_lines: list[str] = []
    for src_path, tgt_path in zip(src_files, tgt_files, strict=True):
        n_src, n_tgt = len(src_lines), len(tgt_lines)
        src_lines.extend(iter_lines(src_path))  # straight into the split: no per-file copy
        tgt_lines.extend(iter_lines(tgt_path))
        n_src, n_tgt = len(src_lines) - n_src, len(tgt_lines) - n_tgt
        if n_src != n_tgt:
            raise DataError(_length_mismatch(src_path, n_src, tgt_path, n_tgt))
    return ParallelText(src_lines, tgt_lines, src_files, tgt_files)


# files up to this size are identified by their content, larger ones by size and change time
_HASHED_BYTES = 32 << 20


def file_identity(path: Path) -> list:
    """What identifies a data file in cache keys: its absolute path and, up to 32 MiB, the sha256
    of its bytes; above, its size and modification time (hashing a corpus of gigabytes at every
    start would cost more than the set-up it saves). Rewriting a file changes its identity."""
    stat = path.stat()
    if stat.st_size <= _HASHED_BYTES:
        return [str(path.resolve()), file_digest(path)]
    return [str(path.resolve()), stat.st_size, stat.st_mtime_ns]


@dataclass
class ParallelFiles(_SplitFiles):
    """The files of one split, checked to exist and to pair up, without reading their text
    (a corpus of any size): `src_files[i]` pairs with `tgt_files[i]`."""

    src_files: list[Path]
    tgt_files: list[Path]

    @classmethod
    def find(cls, src: str | Path | Iterable[str | Path], tgt: str | Path | Iterable[str | Path],
             names: tuple[str, str] = ("the source side", "the target side")) -> ParallelFiles:
        """The files `src` and `tgt` name (see `expand_files`); every one is checked to exist
        and both sides to list as many. `names` names the sides in messages."""
        src_files, tgt_files = expand_files(src, names[0]), expand_files(tgt, names[1])
        if len(src_files) != len(tgt_files):
            raise DataError(
                f"{names[0]} names {len(src_files)} files ({files_label(src_files)}) but "
                f"{names[1]} names {len(tgt_files)} ({files_label(tgt_files)}); the i-th source "
                "file pairs with the i-th target file, so both sides need as many files")
        for path in (*src_files, *tgt_files):
            _check_file(path)
        if len(src_files) > 1:
            _warn_unlike_names(src_files, tgt_files)
        return cls(src_files, tgt_files)

    def identity(self) -> dict:
        """Both sides' file identities (see file_identity), for cache keys."""
        return {"src": [file_identity(p) for p in self.src_files],
                "tgt": [file_identity(p) for p in self.tgt_files]}

    def count_pairs(self) -> int:
        """Pairs of the split; raises DataError naming the files of a pair whose line counts
        differ."""
        total = 0
        for src_path, tgt_path in zip(self.src_files, self.tgt_files, strict=True):
            n_src, n_tgt = count_lines(src_path), count_lines(tgt_path)
            if n_src != n_tgt:
                raise DataError(_length_mismatch(src_path, n_src, tgt_path, n_tgt))
            total += n_src
        return total

    def lines(self, side: str) -> Iterator[str]:
        """Every line of one side ("src" or "tgt"), file after file (see iter_lines)."""
        for path in self.src_files if side == "src" else self.tgt_files:
            yield from iter_lines(path)

    def sample(self, size: int, seed: int) -> tuple[list[str], list[str]]:
        """A seeded random sample of `size` pairs, in corpus order (every pair when there are
        no more): the same sample for the same files, size and seed."""
        total = self.count_pairs()
        if total <= size:
            return list(self.lines("src")), list(self.lines("tgt"))
        chosen = np.zeros(total, dtype=bool)
        chosen[np.random.default_rng(seed).choice(total, size, replace=False)] = True
        return ([ln for ln, keep in zip(self.lines("src"), chosen, strict=True) if keep],
                [ln for ln, keep in zip(self.lines("tgt"), chosen, strict=True) if keep])


def _length_mismatch(src_path: Path, n_src: int, tgt_path: Path, n_tgt: int) -> str:
    return (f"parallel files differ in length: {src_path} has {n_src} lines but {tgt_path} has "
            f"{n_tgt} lines; line i of one must translate line i of the other")
