"""The binarized corpus: ids round-trip through the mapped files, and faults (a missing or
mismatched shard, a truncated file, a killed or concurrent preparation, a full disk) end in a
clear message or a correct result, never in half-written data being used."""

from __future__ import annotations

import errno
import gzip
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from seq2seq.data import binarized as bz
from seq2seq.data.corpus import ParallelFiles
from seq2seq.data.errors import DataError
from seq2seq.data.tokenizer import train_or_load
from tests.conftest import ROOT

DE = ["ein kleiner hund", "zwei große katzen", "", "ein mann läuft über die straße"]
EN = ["a small dog", "two big cats", "", "a man walks across the street"]


def _write(path: Path, lines: list[str]) -> Path:
    data = "".join(f"{ln}\n" for ln in lines).encode()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


@pytest.fixture
def corpus(tmp_path) -> ParallelFiles:
    src = _write(tmp_path / "train.de", DE * 50)
    tgt = _write(tmp_path / "train.en", EN * 50)
    return ParallelFiles.find(src, tgt)


@pytest.fixture
def tok(tmp_path):
    return train_or_load(DE + EN, 60, "unigram", tmp_path / "spm", "joint")


def _same(split: bz.BinarizedSplit, tok, src: list[str], tgt: list[str]) -> None:
    assert len(split) == len(src)
    for i, (s, t) in enumerate(zip(src, tgt, strict=True)):
        assert split.src[i].tolist() == tok.encode([s])[0]
        assert split.tgt[i].tolist() == tok.encode([t])[0]


def test_ids_round_trip_through_mapped_files_of_the_smallest_types(corpus, tok, tmp_path):
    split = bz.binarized(corpus, tok, tok, tmp_path / "c")
    _same(split, tok, DE * 50, EN * 50)
    assert isinstance(split.src.tokens, np.memmap) and split.src.tokens.dtype == np.uint16
    assert split.src.offsets.dtype == np.int32 and split.src.offsets[0] == 0
    assert split.src.lengths().tolist()[:4] == [len(x) for x in tok.encode(DE)]
    # plain .npy files any NumPy reads
    assert np.array_equal(np.load(split.folder / "tgt.tokens.npy"), split.tgt.tokens)
    assert bz.token_dtype(8000) == np.uint16 and bz.token_dtype(70000) == np.uint32


def test_a_second_run_maps_the_cache_without_encoding(corpus, tok, tmp_path, monkeypatch):
    first = bz.binarized(corpus, tok, tok, tmp_path / "c")
    monkeypatch.setattr(bz, "_build", lambda *a: pytest.fail("encoded again"))
    again = bz.binarized(ParallelFiles.find(corpus.src_files, corpus.tgt_files), tok, tok,
                         tmp_path / "c")
    assert again.folder == first.folder
    assert np.array_equal(again.tgt.tokens, first.tgt.tokens)


def test_several_shards_binarize_as_their_concatenation(tmp_path, tok):
    a = ParallelFiles.find([_write(tmp_path / "a.de", DE), _write(tmp_path / "b.de.gz", DE[::-1])],
                           [_write(tmp_path / "a.en", EN), _write(tmp_path / "b.en.gz", EN[::-1])])
    _same(bz.binarized(a, tok, tok, tmp_path / "c"), tok, DE + DE[::-1], EN + EN[::-1])


def test_a_changed_file_is_encoded_again(corpus, tok, tmp_path):
    first = bz.binarized(corpus, tok, tok, tmp_path / "c")
    _write(corpus.tgt_files[0], EN[::-1] * 50)
    again = bz.binarized(ParallelFiles.find(corpus.src_files, corpus.tgt_files), tok, tok,
                         tmp_path / "c")
    assert again.folder != first.folder
    _same(again, tok, DE * 50, EN[::-1] * 50)


def test_a_missing_shard_is_named(tmp_path):
    _write(tmp_path / "a.de", DE)
    _write(tmp_path / "a.en", EN)
    with pytest.raises(DataError, match=r"b\.de: file not found"):
        ParallelFiles.find([tmp_path / "a.de", tmp_path / "b.de"],
                           [tmp_path / "a.en", tmp_path / "b.en"])


def test_a_shard_pair_of_different_lengths_is_named(tmp_path, tok):
    files = ParallelFiles.find(
        [_write(tmp_path / "a.de", DE), _write(tmp_path / "b.de", DE)],
        [_write(tmp_path / "a.en", EN), _write(tmp_path / "b.en", EN[:3])])
    with pytest.raises(DataError) as err:
        files.count_pairs()
    assert str(err.value).startswith(f"parallel files differ in length: {tmp_path / 'b.de'} "
                                     f"has 4 lines but {tmp_path / 'b.en'} has 3 lines")
    with pytest.raises(DataError, match="has 8 lines but .* has 7"):
        bz.binarized(files, tok, tok, tmp_path / "c")  # the counts also meet when encoding
    assert not list((tmp_path / "c").glob("*data-*[!k]"))  # only the lock file stays


@pytest.mark.parametrize("damage", ["truncated tokens", "truncated offsets", "no meta.json",
                                    "empty tokens"])
def test_a_damaged_cache_file_is_never_used_but_built_again(corpus, tok, tmp_path, damage,
                                                            caplog):
    folder = bz.binarized(corpus, tok, tok, tmp_path / "c").folder
    target = {"truncated tokens": "src.tokens.npy", "truncated offsets": "tgt.offsets.npy",
              "no meta.json": "meta.json", "empty tokens": "tgt.tokens.npy"}[damage]
    path = folder / target
    if damage == "no meta.json":
        path.unlink()
    else:
        path.write_bytes(path.read_bytes()[: 0 if damage == "empty tokens" else -7])
    with caplog.at_level(logging.WARNING, logger="seq2seq.data.binarized"):
        again = bz.binarized(corpus, tok, tok, tmp_path / "c")
    if damage != "no meta.json":
        assert f"binarized data {folder} is damaged" in caplog.text
    _same(again, tok, DE * 50, EN * 50)


def test_a_full_disk_ends_in_a_clear_error_and_leaves_nothing(corpus, tok, tmp_path,
                                                              monkeypatch):
    def full(self, values):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(bz.NpyWriter, "write", full)
    with pytest.raises(DataError) as err:
        bz.binarized(corpus, tok, tok, tmp_path / "c")
    assert str(err.value).startswith(f"the disk of the cache folder {tmp_path / 'c'} filled up")
    assert "data.cache_dir" in str(err.value)
    assert [p.name for p in (tmp_path / "c").iterdir() if not p.name.endswith(".lock")] == []
    monkeypatch.undo()  # space again: the next run builds it whole
    _same(bz.binarized(corpus, tok, tok, tmp_path / "c"), tok, DE * 50, EN * 50)


def test_an_unwritable_cache_folder_is_named(corpus, tok, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with pytest.raises(DataError) as err:
        bz.binarized(corpus, tok, tok, blocker)
    assert str(err.value).startswith(f"cannot write the cache folder {blocker} (it is a file)")


# A preparation in its own process, each chunk slowed down (so a test can kill it half-way
# or start a second one meanwhile) and, given a file name, held before its first chunk until
# that file exists; it appends "<pid> enters|leaves <time>" around its call to
# <cache>/../events and prints the folder it mapped.
_PREPARE = """
import logging, os, sys, time
from pathlib import Path
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
from seq2seq.data import binarized as bz
from seq2seq.data.corpus import ParallelFiles
from seq2seq.data.tokenizer import SubwordTokenizer
model, stem, cache, delay, hold = sys.argv[1:6]
bz.CHUNK_LINES = 20
write = bz.NpyWriter.write
def slow(self, values):
    while hold and not os.path.exists(hold):
        time.sleep(0.01)
    write(self, values)
    time.sleep(float(delay))
bz.NpyWriter.write = slow
def event(what):
    with open(Path(cache).parent / "events", "a") as f:
        f.write(f"{os.getpid()} {what} {time.time()}\\n")
tok = SubwordTokenizer(Path(model).read_bytes())
files = ParallelFiles.find(stem + ".de", stem + ".en")
event("enters")
folder = bz.binarized(files, tok, tok, cache).folder
event("leaves")
print(folder, flush=True)
"""


def _prepare(tok, corpus, cache: Path, delay: float, hold: Path | None = None
             ) -> subprocess.Popen:
    model = cache.parent / "tok.model"
    model.write_bytes(tok.model_proto)
    stem = str(corpus.src_files[0]).removesuffix(".de")
    return subprocess.Popen([sys.executable, "-c", _PREPARE, str(model), stem, str(cache),
                             str(delay), str(hold or "")], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})


def _events(cache: Path) -> dict[tuple[int, str], float]:
    """(pid, "enters" | "leaves") -> time, as the preparations recorded them."""
    path = cache.parent / "events"
    lines = path.read_text().splitlines() if path.exists() else []
    return {(int(pid), what): float(t) for pid, what, t in (ln.split() for ln in lines)}


def _wait_for(condition, what: str, procs, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        time.sleep(0.02)


def test_a_killed_preparation_leaves_nothing_a_later_run_uses(corpus, tok, tmp_path):
    cache = tmp_path / "c"
    proc = _prepare(tok, corpus, cache, delay=30)
    deadline = time.monotonic() + 60
    while not list(cache.glob(".data-*.tmp/src.tokens.npy")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not list(cache.glob("data-*"))  # only the temporary folder exists
    assert list(cache.glob(".data-*.tmp"))
    split = bz.binarized(corpus, tok, tok, cache)  # the lock died with its holder
    _same(split, tok, DE * 50, EN * 50)
    assert not list(cache.glob(".data-*.tmp"))  # the leftover is cleared


def test_two_runs_preparing_at_once_encode_once_and_map_the_same_result(corpus, tok,
                                                                        tmp_path):
    """The second run starts while the first is building (held before its first chunk until
    the second has entered): it encodes nothing and maps the first one's result."""
    cache, hold = tmp_path / "c", tmp_path / "go"
    first = _prepare(tok, corpus, cache, delay=0.02, hold=hold)
    _wait_for(lambda: list(cache.glob(".data-*.tmp")), "the first run builds", [first])
    second = _prepare(tok, corpus, cache, delay=0.02)
    _wait_for(lambda: (second.pid, "enters") in _events(cache), "the second run enters",
              [first, second])
    time.sleep(0.5)  # the second run reaches the lock
    hold.touch()
    procs = [first, second]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    t = _events(cache)
    # the two overlapped: the second entered while the first was building
    assert t[first.pid, "enters"] < t[second.pid, "enters"] < t[first.pid, "leaves"]
    folders = {out.strip() for out, _ in outs}
    assert len(folders) == 1
    assert [err.count("binarized 200 pairs") for _, err in outs] == [1, 0]  # the first encoded
    _same(bz.BinarizedSplit(Path(folders.pop())), tok, DE * 50, EN * 50)


def test_a_pickled_dataset_maps_the_files_again(corpus, tok, tmp_path):
    """DataLoader workers started by spawn get the dataset pickled: the files' paths and the
    kept examples travel, not the data."""
    import pickle

    from seq2seq.data.dataset import PairDataset

    data = PairDataset(bz.binarized(corpus, tok, tok, tmp_path / "c")).subset(np.array([3, 1]))
    blob = pickle.dumps(data)
    assert len(blob) < 2000
    again = pickle.loads(blob)
    assert [again[i][1].tolist() for i in range(2)] == tok.encode([DE[3], DE[1]])
    assert again.tgt_lengths.tolist() == [len(t) + 1 for t in tok.encode([EN[3], EN[1]])]
