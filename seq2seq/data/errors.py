"""The one error type for bad user input: entry points print its message without a traceback."""

from __future__ import annotations

from pathlib import Path


class DataError(ValueError):
    """Bad input data or data options; the message names the file or option and what to do."""


def cache_write_error(path: str | Path, err: OSError) -> DataError:
    """The DataError for a cache file that could not be written: it names the folder and the
    two ways out (make it writable, or point the cache elsewhere)."""
    folder = Path(path).parent
    if folder.exists() and not folder.is_dir():
        reason = "it is a file"
    else:
        reason = err.strerror or type(err).__name__
    return DataError(
        f"cannot write the cache folder {folder} ({reason}); make it a writable folder or set "
        "data.cache_dir (or SEQ2SEQ_CACHE_DIR) to one")
