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
SPLITS = {"train": "train", "val": "val"}
# the test sets of the official repository and the languages each has
TEST_SETS = {
    "test_2016_flickr": ("cs", "de", "en", "fr"),
    "test_2017_flickr": ("de", "en", "fr"),
    "test_2017_mscoco": ("de", "en", "fr"),
    "test_2018_flickr": ("cs", "de", "en", "fr"),
}

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
    "test_2017_flickr.de.gz": "a2c89666db00c495cd8513b9d708d5a3acc205d7de312ef2bf5fb7ebc1540aee",
    "test_2017_flickr.en.gz": "76a444ee25172e72695cddb13ae4a3bda59430617be88e0bb46b60504f054074",
    "test_2017_flickr.fr.gz": "3ba671ceb2299f3304ffafefea7a833d08632fbaf0ba18546f8a2ec2391af496",
    "test_2017_mscoco.de.gz": "799e4854c25d601cb6cb6be29eabe5667734c61ace2f495e03e429031a0bc338",
    "test_2017_mscoco.en.gz": "aab300bfb4427697987e02cd0aacd44bfe8aa50456231b6474c08038bbed2b58",
    "test_2017_mscoco.fr.gz": "754f3072ba9f124569ba5258b32730fc1d214bbf8e0c6dfb2b74401676220db0",
    "test_2018_flickr.cs.gz": "7d0a9db904f94c554a8c58049a9f3a5357c27f46cc3d710d70cb0b4a2585b8c2",
    "test_2018_flickr.de.gz": "ddd0130c7d97482dc5197a02141dae8dd79f20f03586c480d675c09a32daf608",
    "test_2018_flickr.en.gz": "ef4f4844037d4c5dea75c9a8ed5fd78905967a26f67c255e230cc9780032654d",
    "test_2018_flickr.fr.gz": "fb2b83fcceb937a4f7e3e93c1c51c22aba92f1e342391e6b5ba392b16a920501",
}


def check_language(lang: str, option: str) -> None:
    if lang not in LANGUAGES:
        raise DataError(
            f"{option}={lang!r}: Multi30k task 1 has no such language; choose one of "
            f"{', '.join(LANGUAGES)} (or use data=parallel_files for your own corpus)"
        )


def check_test_sets(names: list[str], langs: tuple[str, ...],
                    option: str = "data.test_sets") -> None:
    """`names` (the option `option`) must be known test sets, each with text in every one of
    `langs`, none named twice, at least one."""
    choices = "; ".join(f"{n} ({', '.join(ls)})" for n, ls in TEST_SETS.items())
    if not names:
        raise DataError(f"{option} is empty; name at least one of: {choices}")
    for name in names:
        if name not in TEST_SETS:
            raise DataError(f"{option}: {name!r} is not a Multi30k task 1 test set; "
                            f"choose from: {choices}")
        missing = [lang for lang in langs if lang not in TEST_SETS[name]]
        if missing:
            raise DataError(f"{option}: {name} has no {missing[0]} text; the test sets "
                            f"and their languages: {choices}")
    if len(set(names)) < len(names):
        raise DataError(f"{option} names a test set twice: {', '.join(names)}")


def split_path(root: str | Path, split: str, lang: str) -> Path:
    """Where the file of `split` (train, val or a test set's name) in `lang` lives under
    `root`."""
    return Path(root) / "multi30k" / f"{SPLITS.get(split, split)}.{lang}.gz"


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
    root: str | Path, langs: tuple[str, ...], base_url: str, test_sets: list[str],
    verify: bool = False,
) -> None:
    """Make sure the training and validation splits and the `test_sets` of every language in
    `langs` are under `root`, downloading what is missing. With `verify`, files already present
    are checked against their sha256 too."""
    for lang in langs:
        for split in (*SPLITS, *test_sets):
            path = split_path(root, split, lang)
            if path.is_file():
                if verify and file_digest(path) != SHA256[path.name]:
                    raise DataError(f"{path}: sha256 mismatch; delete it to download it again")
                continue
            download(path.name, path, base_url)
