"""Reading parallel text: plain or gzip files, one sentence a line, checked line by line."""

from __future__ import annotations

import gzip
import hashlib
import logging
import zlib
from dataclasses import dataclass
from pathlib import Path

from seq2seq.data.errors import DataError

log = logging.getLogger(__name__)


def read_lines(path: str | Path) -> list[str]:
    """Read a text file (plain or `.gz`) into lines without their line endings.

    Raises DataError naming the file (and line) on a missing, unreadable or damaged file or
    invalid UTF-8.
    """
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a folder; the data.* paths must name text files")
    if not path.is_file():
        raise DataError(
            f"{path}: file not found (looked at {path.resolve()}). Check the data.* paths; for "
            "Multi30k use data=multi30k, which downloads missing files into data.root, or set "
            "SEQ2SEQ_DATA_DIR to a folder holding multi30k/")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise DataError(f"{path}: not a readable gzip file ({e}); it is truncated or damaged: "
                        "fetch or compress it again") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read the file ({e.strerror or e}); check its "
                        "permissions") from None
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    out = []
    for i, line in enumerate(lines, start=1):
        try:
            out.append(line.decode("utf-8").rstrip("\r"))
        except UnicodeDecodeError as e:
            raise DataError(
                f"{path}:{i}: invalid UTF-8 at byte {e.start} of the line; "
                "convert the file to UTF-8 (e.g. with iconv)"
            ) from None
    return out


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes, hex."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class ParallelText:
    """Aligned source and target sentences of one split, with the files they came from."""

    src: list[str]
    tgt: list[str]
    src_path: Path
    tgt_path: Path

    def __len__(self) -> int:
        return len(self.src)


def read_parallel(src_path: str | Path, tgt_path: str | Path) -> ParallelText:
    """Read two aligned files; raises DataError if their line counts differ."""
    src, tgt = read_lines(src_path), read_lines(tgt_path)
    if len(src) != len(tgt):
        raise DataError(
            f"parallel files differ in length: {src_path} has {len(src)} lines but "
            f"{tgt_path} has {len(tgt)} lines; line i of one must translate line i of the other"
        )
    return ParallelText(src, tgt, Path(src_path), Path(tgt_path))
