"""experiments/data_benchmark.py: the rotated corpus it builds, its /proc readings, and one
end-to-end run whose figures must be plausible."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from experiments import data_benchmark as db
from tests.conftest import ROOT


def _gz(path: Path, lines: list[str]) -> None:
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode("utf-8")))


def test_rotate_moves_words_left_by_k_modulo_their_number():
    assert db.rotate("a b c", 0) == "a b c"
    assert db.rotate("a b c", 1) == "b c a"
    assert db.rotate("a b c", 2) == "c a b"
    assert db.rotate("a b c", 4) == "b c a"
    assert db.rotate("word", 3) == "word"
    assert db.rotate("", 5) == ""


def test_write_corpus_writes_exactly_n_rotated_pairs(tmp_path):
    m = tmp_path / "data" / "multi30k"
    m.mkdir(parents=True)
    _gz(m / "train.de.gz", ["a b c", "d e", "f"])
    _gz(m / "train.en.gz", ["A B C", "D E", "F"])
    _gz(m / "val.de.gz", [f"v{i}" for i in range(1200)])
    _gz(m / "val.en.gz", [f"V{i}" for i in range(1200)])
    work = tmp_path / "work"
    work.mkdir()
    paths = db.write_corpus(tmp_path / "data", work, 8)
    # copy k of every line rotates both sides by k words; the 8th pair is copy 2's second line
    assert paths["train.de"].read_text(encoding="utf-8").split("\n") == [
        "a b c", "d e", "f", "b c a", "e d", "f", "c a b", "d e", ""]
    assert paths["train.en"].read_text(encoding="utf-8").split("\n") == [
        "A B C", "D E", "F", "B C A", "E D", "F", "C A B", "D E", ""]
    val = paths["val.de"].read_text(encoding="utf-8").splitlines()
    assert val == [f"v{i}" for i in range(db.VAL_LINES)]
    assert paths["val.en"].read_text(encoding="utf-8").splitlines()[-1] == "V999"


def test_rotated_pairs_stops_at_n_even_mid_copy():
    pairs = list(db.rotated_pairs(["x y"], ["X Y"], 3))
    assert pairs == [("x y", "X Y"), ("y x", "Y X"), ("x y", "X Y")]
    assert list(db.rotated_pairs(["x"], ["X"], 0)) == []


def test_memory_readings_of_a_process_and_its_children():
    mine = db.smaps_mib(os.getpid())
    assert 0 < mine["uss"] <= mine["pss"] <= mine["rss"]
    assert db.status_mib("VmHWM") >= db.status_mib("VmRSS") > 0
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert child.pid in db.child_pids(os.getpid())
    finally:
        child.kill()
        child.wait()


FAKE_SMAPS = """\
55d0c0a00000-55d0c0a21000 r--p 00000000 08:01 1311 /usr/bin/python3.12
Rss:                 132 kB
Pss:                 100 kB
Private_Dirty:         0 kB
VmFlags: rd mr mw me dw sd
7f1000000000-7f1000400000 r--s 00000000 08:01 2222 {cache}/data-abc/train.src.tokens.npy
Size:               4096 kB
Rss:                2048 kB
Pss:                1024 kB
Shared_Clean:       2048 kB
VmFlags: rd sh mr mw me ms sd
7f1000400000-7f1000500000 r--s 00000000 08:01 2223 {cache}/data-abc/a file.npy (deleted)
Pss:                  10 kB
7f1000500000-7f1000600000 rw-p 00000000 00:00 0
Pss:                 500 kB
7f1000600000-7f1000700000 r--s 00000000 08:01 2224 {cache}-other/data-abc/x.npy
Pss:                  20 kB
7f1000700000-7f1000800000 r--s 00000000 08:01 2225 {cache}/spm.model
Pss:                   3 kB
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0 [stack]
Pss:                  40 kB
"""


def test_mapped_pss_sums_only_the_mappings_under_the_cache_folder(tmp_path):
    cache = tmp_path / "cache"
    smaps = FAKE_SMAPS.format(cache=cache)
    # the two .npy mappings (one with a space, deleted) and the model file; not the executable,
    # the anonymous mapping, the [stack] nor a sibling folder whose name merely starts alike
    assert db.mapped_pss_kib(smaps, cache) == 1024 + 10 + 3
    assert db.mapped_pss_kib(smaps, cache / "data-abc") == 1024 + 10
    assert db.mapped_pss_kib(smaps, tmp_path / "elsewhere") == 0
    assert db.mapped_pss_kib("", cache) == 0


def test_mapped_pss_of_a_live_process_sees_its_memory_mapped_file(tmp_path):
    np = pytest.importorskip("numpy")
    cache = tmp_path / "cache"
    (cache / "data-k").mkdir(parents=True)
    np.save(cache / "data-k" / "tokens.npy", np.arange(1 << 20, dtype=np.int32))  # 4 MiB
    tokens = np.load(cache / "data-k" / "tokens.npy", mmap_mode="r")
    assert int(tokens.sum()) == (1 << 20) * ((1 << 20) - 1) // 2  # touch every page
    mapped = db.mapped_pss_mib(os.getpid(), cache.resolve())
    assert 3.5 < mapped <= 4.1
    assert db.mapped_pss_mib(os.getpid(), (tmp_path / "elsewhere").resolve()) == 0
    del tokens


def test_a_workdir_inside_the_repository_is_refused():
    inside = ROOT / "data_benchmark_should_not_exist"
    with pytest.raises(SystemExit, match="inside the repository"):
        db.main(["--pairs", "10", "--workdir", str(inside)])
    assert not inside.exists()


def _empty_python_peak_rss_mib() -> float:
    code = ("from pathlib import Path; print(next(int(l.split()[1]) for l in "
            "Path('/proc/self/status').read_text().splitlines() if l.startswith('VmHWM')))")
    return int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              check=True).stdout) / 1024


@pytest.mark.slow
def test_end_to_end_figures_are_plausible(tmp_path, data_root):
    work, out = tmp_path / "work", tmp_path / "result.json"
    env = {**os.environ, "SEQ2SEQ_DATA_DIR": str(data_root), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "experiments" / "data_benchmark.py"), "--pairs", "3000",
         "--batches", "20", "--workdir", str(work), "--keep", "--json-out", str(out)],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith('{"benchmark": "data"')]
    assert len(lines) == 1
    r = json.loads(lines[0])
    assert json.loads(out.read_text()) == r
    assert "cold: build to first batch" in proc.stdout  # the table
    assert "DATA 2 ranks / 1 rank" in proc.stdout
    # the data figures come first, after what names the run
    assert list(r)[:5] == ["benchmark", "pairs", "ranks1_data_mib", "ranks2_data_mib",
                           "ranks_data_ratio"]

    assert r["pairs"] == 3000 and 0 < r["train_pairs_kept"] <= 3000
    assert r["cores"] == os.cpu_count() and isinstance(r["avx512_bf16"], bool)
    assert len((work / "train.de").read_text(encoding="utf-8").splitlines()) == 3000
    # cold: everything built from an empty cache, which now holds its files
    cached = [p for p in (work / "cache").rglob("*") if p.is_file()]
    assert len(cached) >= r["cache_files"] > 0 and r["cache_mib"] > 0
    empty = _empty_python_peak_rss_mib()
    for phase in ("cold", "warm"):
        assert r[f"{phase}_seconds"] > 0
        assert r[f"{phase}_peak_rss_mib"] > r[f"{phase}_rss_before_mib"] > empty
        assert r[f"{phase}_data_adds_mib"] > 0
    # ranks: 2 ranks with 2 live workers each, then 1 rank with its 2
    assert r["ranks_batches"] == 20
    assert r["ranks_cache_dir"] == str((work / "cache").resolve())
    npy = len(list((work / "cache").rglob("*.npy")))  # none with a data layer that maps nothing
    assert r["ranks_npy_files"] == npy
    for n in (2, 1):
        procs = r[f"ranks{n}_processes"]
        assert len(procs) == 3 * n and len({p["pid"] for p in procs}) == 3 * n
        workers = [p for p in procs if p["role"].endswith(("worker0", "worker1"))]
        ranks = [p for p in procs if p not in workers]
        assert len(workers) == 2 * n and len(ranks) == n
        for p in procs:
            assert 0 < p["uss"] <= p["pss"] <= p["rss"]
            # the mapped cache files are part of the process's Pss
            assert 0 <= p["mapped_pss_mib"] <= p["pss"]
            assert ("anon_added_mib" in p) == (p in ranks)
        for p in ranks:
            assert 0 < p["anon_added_mib"] < p["rss"]
            if npy:  # the ranks map the cache's token arrays and read them for their batches
                assert p["mapped_pss_mib"] > 0
        assert r[f"ranks{n}_mapped_pss_mib"] == pytest.approx(
            sum(p["mapped_pss_mib"] for p in procs))
        assert r[f"ranks{n}_anon_added_mib"] == pytest.approx(
            sum(p["anon_added_mib"] for p in ranks))
        assert r[f"ranks{n}_data_mib"] == pytest.approx(
            r[f"ranks{n}_mapped_pss_mib"] + r[f"ranks{n}_anon_added_mib"])
        assert 0 < r[f"ranks{n}_data_mib"] < r[f"ranks{n}_process_pss_mib"]
        # whole processes, torch included
        assert r[f"ranks{n}_process_pss_mib"] == pytest.approx(sum(p["pss"] for p in procs))
        assert (r[f"ranks{n}_process_uss_mib"] <= r[f"ranks{n}_process_pss_mib"]
                < r[f"ranks{n}_process_rss_mib"])
    # a second rank adds data memory, at most a second copy of it (shared pages count once)
    assert r["ranks_data_ratio"] == pytest.approx(r["ranks2_data_mib"] / r["ranks1_data_mib"])
    assert 0.8 < r["ranks_data_ratio"] < 2.5
    assert 1 < r["ranks_process_pss_ratio"] < 2.2
    assert r["ranks_process_pss_ratio"] == pytest.approx(
        r["ranks2_process_pss_mib"] / r["ranks1_process_pss_mib"])
