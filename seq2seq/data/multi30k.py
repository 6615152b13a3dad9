"""Multi30k task 1: file locations, and a verified, atomic download of missing files.

Files are the raw gzip text of the official repository (https://github.com/multi30k/dataset,
data/task1/raw); where they are fetched from is `data.url` (conf/data/multi30k.yaml).
"""

from __future__ import annotations

import logging
import os
import tempfile
import urllib.request
from pathlib import Path

from seq2seq.data.corpus import file_digest
from seq2seq.data.errors import DataError

log = logging.getLogger(__name__)

LANGUAGES = ("de", "en", "fr", "cs")
SPLITS = {"train": "train", "val": "val", "test": "test_2016_flickr"}

# sha256 of each raw file of the official repository
SHA256 = {
    "train.de.gz": "726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6",
    "train.en.gz": "d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f",
    "train.fr.gz": "622e75069e9f4c577425c4f277116ce66e63a2401c0a2312d90073cb12379a3c",
    "train.cs.gz": "a65adb8b32e3bc664f21ecba7a6e7f6950fd1f405e135f7c312faabdb6255077",
    "val.de.gz": "f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a",
    "val.en.gz": "14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28",
    "val.fr.gz": "ca3106f1a72390591d25f6c45cb4cd39dec4cd3f123e099748a3ce5256c160e9",
    "val.cs.gz": "b63226e05c4bd5dd6a42897d74b86a1b9d2c31498252c572b1ea7f7996927fcc",
    "test_2016_flickr.de.gz": "9204244e408ccb38d2a55cfcd344df15005fc42a07a6e55ca6c52b6ababb8cc8",
    "test_2016_flickr.en.gz": "611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9",
    "test_2016_flickr.fr.gz": "6d326e188d259fb1d04ac19eae3af956559b3a0b93d7635e56c90987c40c8b90",
    "test_2016_flickr.cs.gz": "200a4a74cc9560f051924abb9803be008d1908d77f747e9141aeb86dfd2797f1",
}


def check_language(lang: str, option: str) -> None:
    if lang not in LANGUAGES:
        raise DataError(
            f"{option}={lang!r}: Multi30k task 1 has no such language; choose one of "
            f"{', '.join(LANGUAGES)} (or use data=parallel_files for your own corpus)"
        )


def split_path(root: str | Path, split: str, lang: str) -> Path:
    """Where the file of `split` (train, val, test) in `lang` lives under `root`."""
    return Path(root) / "multi30k" / f"{SPLITS[split]}.{lang}.gz"


def download(name: str, dest: Path, base_url: str, timeout: float = 60.0) -> Path:
    """Fetch `base_url + name` to `dest`, verify its sha256, then rename into place.

    A partial or corrupt download never appears under `dest`'s name.
    """
    if name not in SHA256:
        raise DataError(f"{name}: not a Multi30k task 1 raw file")
    dest.parent.mkdir(parents=True, exist_ok=True)
    url = base_url.rstrip("/") + "/" + name
    log.info("downloading %s -> %s", url, dest)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            while chunk := resp.read(1 << 20):
                out.write(chunk)
        digest = file_digest(tmp)
        if digest != SHA256[name]:
            raise DataError(f"{url}: sha256 {digest} does not match the expected {SHA256[name]}")
        os.replace(tmp, dest)
    except OSError as e:
        raise DataError(
            f"could not download {url} ({e}); put the Multi30k raw files under {dest.parent} "
            "by hand, or point data.root (or SEQ2SEQ_DATA_DIR) at a folder holding multi30k/"
        ) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest


def ensure_files(
    root: str | Path, langs: tuple[str, ...], base_url: str, verify: bool = False
) -> None:
    """Make sure every split of every language in `langs` is under `root`, downloading what is
    missing. With `verify`, files already present are checked against their sha256 too."""
    for lang in langs:
        for split in SPLITS:
            path = split_path(root, split, lang)
            if path.is_file():
                if verify and file_digest(path) != SHA256[path.name]:
                    raise DataError(f"{path}: sha256 mismatch; delete it to download it again")
                continue
            download(path.name, path, base_url)
