"""Data-layer benchmark: set-up time and memory of the training data, not of the model.

    python experiments/data_benchmark.py --pairs 1000000          # make bench-data ARGS=...
    python experiments/data_benchmark.py --pairs 20000 --phases cold,warm
    python experiments/data_benchmark.py --pairs 20000 --override data.vocab_type=bpe

Builds a synthetic parallel corpus of N pairs from Multi30k train ($SEQ2SEQ_DATA_DIR/multi30k,
default ../shared/data beside the checkout): copy k of every line has its words rotated by k
places, so the text grows without repeating lines verbatim. The datamodule is built from the
train config (data=parallel_files on those files, every other data option at its default), as
train.py builds it, and each phase runs in a fresh process so that imports and memory of one do
not leak into the next:

    cold   empty cache: prepare_data, setup("fit"), train_dataloader and its first batch
           (SentencePiece training and numericalization included, data.num_workers=0 so
           that no worker start-up is timed): wall seconds, peak RSS, cache size on disk
    warm   the same from the filled cache: seconds to the first batch and the memory the data
           adds to a process that has imported everything
    ranks  2 processes at once (as 2 DDP ranks on one machine would) with 2 DataLoader workers
           each, then 1 process alone; after --batches batches (default 200), with the workers
           alive, the memory the DATA takes (below) and, for comparison, Rss, Pss and USS of
           every whole process from /proc/<pid>/smaps_rollup

What the data takes (the figures the target is about: at most 400 MiB for one rank, and 2 ranks
together at most 1.2 times one rank):

    mapped_pss_mib  of every rank and worker: the Pss of its mappings of files under the data
                    cache folder (data.cache_dir; the memory-mapped token arrays), from
                    /proc/<pid>/smaps. A page that both ranks map is split between them.
    anon_added_mib  of every rank: RssAnon (/proc/self/status) after set-up and the batches
                    minus RssAnon after the imports, just before the datamodule is built: the
                    data's Python objects and arrays in the rank's own memory.
    data_mib        per configuration: the sum of both over its processes. A worker's own
                    anonymous growth is not attributable to the data (it is mostly copy-on-write
                    of the rank's heap as reference counts are touched), so only its mapped
                    Pss counts; its whole-process USS is listed beside it.

Whole-process Pss is dominated by torch and the Python heap, which every process holds
privately, so its 2-to-1 ratio stays near 2 whatever the data layer does; it is reported as
whole-process (torch included), after the data figures.

Why per-process memory: under DDP every rank loads the training data, and each of its DataLoader
workers is a forked copy of the rank. Rss counts shared pages in every process that maps them,
so summing it overstates the total; Pss splits each shared page among its sharers, so the Pss of
all processes adds up to what the machine really holds, and USS (private pages) is what a process
alone costs. Data held as Python objects turns private in every worker as reference counts
touch its pages (copy-on-write); data memory-mapped from one cache file stays shared. The
ratio of the 2-rank data_mib to the 1-rank one shows which: near 2 when every rank holds its
own copy, lower when the ranks share it. Both ranks read the same cache folder and, not being
real DDP ranks, each iterates the whole training set (the same batches).

Prints the machine, a table (figure, value, unit) and one JSON line starting with
{"benchmark": "data", ...} holding every figure.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from itertools import count
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PHASES = ("cold", "warm", "ranks")
VAL_LINES = 1000  # Multi30k val lines used for the val and test splits
RANK_BATCHES = 200  # default of --batches: batches a rank takes before its memory is read
MIB = 1024 * 1024


# -- the corpus ---------------------------------------------------------------------------------

def rotate(line: str, k: int) -> str:
    """`line` with its space-separated words rotated left by k places (k modulo their number)."""
    words = line.split(" ")
    r = k % len(words)
    return " ".join(words[r:] + words[:r])


def rotated_pairs(src: list[str], tgt: list[str], n: int) -> Iterator[tuple[str, str]]:
    """n pairs: every pair of (src, tgt) in order, then again with both sides rotated by 1
    word, then by 2, ... (copy k rotates by k)."""
    if len(src) != len(tgt) or not src:
        raise ValueError(f"need as many source as target lines, and some: {len(src)}, {len(tgt)}")
    made = 0
    for k in count():
        for s, t in zip(src, tgt, strict=True):
            if made == n:
                return
            yield rotate(s, k), rotate(t, k)
            made += 1


def read_gz_lines(path: Path) -> list[str]:
    """Lines of a gzipped UTF-8 file, split at "\\n" only (as the corpus files pair them)."""
    with gzip.open(path, "rt", encoding="utf-8", newline="\n") as f:
        return [line.removesuffix("\n").removesuffix("\r") for line in f]


def write_corpus(data_root: Path, workdir: Path, n: int) -> dict[str, Path]:
    """train.de/en (n rotated Multi30k train pairs) and val.de/en (the first 1,000 Multi30k val
    pairs, also used as the test split) under `workdir`. Returns {"train.de": path, ...}."""
    m = data_root / "multi30k"
    paths = {f"{split}.{lang}": workdir / f"{split}.{lang}"
             for split in ("train", "val") for lang in ("de", "en")}
    pairs = rotated_pairs(read_gz_lines(m / "train.de.gz"), read_gz_lines(m / "train.en.gz"), n)
    with open(paths["train.de"], "w", encoding="utf-8") as de, \
            open(paths["train.en"], "w", encoding="utf-8") as en:
        for s, t in pairs:
            de.write(s + "\n")
            en.write(t + "\n")
    for lang in ("de", "en"):
        lines = read_gz_lines(m / f"val.{lang}.gz")[:VAL_LINES]
        paths[f"val.{lang}"].write_text("\n".join(lines) + "\n", encoding="utf-8")
    return paths


def data_overrides(workdir: Path, num_workers: int, extra: list[str]) -> list[str]:
    """Overrides of the train config that point data=parallel_files at the corpus in `workdir`
    and its cache at workdir/cache; `extra` (--override) come last and win."""
    files = {"train": "train", "val": "val", "test": "val"}
    return ["data=parallel_files",
            *(f"data.{split}.{side}={workdir}/{name}.{lang}" for split, name in files.items()
              for side, lang in (("src", "de"), ("tgt", "en"))),
            f"data.cache_dir={workdir / 'cache'}", f"data.num_workers={num_workers}", *extra]


# -- memory of this process and its children ----------------------------------------------------

def status_mib(field: str, pid: int | str = "self") -> float:
    """A memory line of /proc/<pid>/status (VmRSS, VmHWM = peak RSS, RssAnon) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def smaps_mib(pid: int) -> dict[str, float]:
    """{rss, pss, uss} of a process in MiB from /proc/<pid>/smaps_rollup; uss = private pages
    (Private_Clean + Private_Dirty)."""
    kb = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, value = line.split(":", 1)
        kb[key] = int(value.split()[0])
    return {"rss": kb["Rss"] / 1024, "pss": kb["Pss"] / 1024,
            "uss": (kb["Private_Clean"] + kb["Private_Dirty"]) / 1024}


_SMAPS_HEADER = re.compile(r"^[0-9a-f]+-[0-9a-f]+ ")


def mapped_pss_kib(smaps: str, folder: Path) -> int:
    """Sum of the `Pss:` lines (kB) of the mappings in `smaps` (the text of /proc/<pid>/smaps)
    whose file lies under `folder` (an absolute, resolved path). A mapping's header line is
    "start-end perms offset dev inode [pathname]"; its pathname may hold spaces and ends in
    " (deleted)" once the file is removed."""
    total, inside = 0, False
    for line in smaps.splitlines():
        if _SMAPS_HEADER.match(line):
            parts = line.split(None, 5)
            path = parts[5].removesuffix(" (deleted)") if len(parts) == 6 else ""
            inside = path.startswith("/") and Path(path).is_relative_to(folder)
        elif inside and line.startswith("Pss:"):
            total += int(line.split()[1])
    return total


def mapped_pss_mib(pid: int, folder: Path) -> float:
    """Pss in MiB of the files under `folder` that process `pid` maps."""
    return mapped_pss_kib(Path(f"/proc/{pid}/smaps").read_text(), folder) / 1024


def child_pids(pid: int) -> list[int]:
    """The children of a process (its DataLoader workers), from /proc/<pid>/task/*/children."""
    pids = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            pids += [int(p) for p in (task / "children").read_text().split()]
        except FileNotFoundError:  # a thread that ended meanwhile
            pass
    return sorted(set(pids))


def folder_mib(path: Path) -> tuple[float, int]:
    """(MiB, files) of everything under `path`."""
    files = [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / MIB, len(files)


# -- phases (each in its own process) -----------------------------------------------------------

def compose_config(overrides: list[str]):
    """The train config as train.py would see it, with `overrides`."""
    from hydra import compose, initialize_config_dir

    import seq2seq

    with initialize_config_dir(str(seq2seq.CONF_DIR), version_base="1.3"):
        return compose("train", overrides=overrides)


def first_batch(cfg):
    """Build the datamodule of `cfg`, prepare it for fitting and take the first training batch.
    Returns (the training loader, its open iterator): keeping the iterator keeps its workers."""
    from seq2seq.pipeline import build_datamodule

    dm = build_datamodule(cfg)
    dm.prepare_data()
    dm.setup("fit")
    loader = dm.train_dataloader()
    batches = iter(loader)
    next(batches)
    return loader, batches


def phase_prepare(args, name: str) -> dict:
    """cold or warm: seconds from building the datamodule to its first training batch, RSS
    before (everything imported, the config composed) and after, peak RSS."""
    import torch  # noqa: F401  (imported before the "before" reading, as any trainer would)

    import seq2seq.pipeline  # noqa: F401

    cfg = compose_config(data_overrides(args.workdir, 0, args.override))
    before = status_mib("VmRSS")
    start = time.perf_counter()
    loader, _ = first_batch(cfg)
    seconds = time.perf_counter() - start
    after = status_mib("VmRSS")
    out = {f"{name}_seconds": seconds, f"{name}_rss_before_mib": before,
           f"{name}_rss_after_mib": after, f"{name}_data_adds_mib": after - before,
           f"{name}_peak_rss_mib": status_mib("VmHWM"),
           "train_pairs_kept": len(loader.dataset)}
    if name == "cold":
        out["cache_mib"], out["cache_files"] = folder_mib(args.workdir / "cache")
    return out


def _wait_for(paths: list[Path], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not all(p.exists() for p in paths):
        if time.monotonic() > deadline:
            missing = ", ".join(p.name for p in paths if not p.exists())
            raise TimeoutError(f"waited {timeout:.0f} s for {what}: {missing} missing")
        time.sleep(0.05)


def phase_rank(args) -> dict:
    """One simulated rank: the datamodule with `--workers` DataLoader workers, `--batches`
    batches, then (once every rank got there) of itself and its live workers: the Pss of the
    cache files they map, the rank's anonymous memory added since just before the datamodule
    was built, and whole-process Rss/Pss/USS."""
    import torch  # noqa: F401  (imported before the "before" reading, as any trainer would)

    import seq2seq.pipeline  # noqa: F401

    cfg = compose_config(data_overrides(args.workdir, args.workers, args.override))
    cache = Path(str(cfg.data.cache_dir)).resolve()  # relative to this process's cwd, ROOT
    anon_before = status_mib("RssAnon")
    loader, batches = first_batch(cfg)
    taken = 1
    # the iterator must stay open (the workers exit when it runs out): stop before its end
    for _ in range(min(args.batches, len(loader) - 1) - 1):
        next(batches)
        taken += 1
    anon_added = status_mib("RssAnon") - anon_before
    sync = Path(args.sync_dir)
    ranks = range(args.ranks)
    (sync / f"ready-{args.rank}").touch()
    _wait_for([sync / f"ready-{r}" for r in ranks], args.sync_timeout, "every rank's batches")
    workers = child_pids(os.getpid())
    me = os.getpid()
    procs = [{"role": f"rank{args.rank}", "pid": me, "mapped_pss_mib": mapped_pss_mib(me, cache),
              "anon_added_mib": anon_added, **smaps_mib(me)}]
    procs += [{"role": f"rank{args.rank}/worker{i}", "pid": p,
               "mapped_pss_mib": mapped_pss_mib(p, cache), **smaps_mib(p)}
              for i, p in enumerate(workers)]
    # stay alive (and mapped) until every rank has read its memory
    (sync / f"measured-{args.rank}").touch()
    _wait_for([sync / f"measured-{r}" for r in ranks], args.sync_timeout, "every rank's reading")
    del batches
    return {"batches": taken, "cache_dir": str(cache),
            "npy_files": sum(1 for _ in cache.rglob("*.npy")), "processes": procs}


# -- the driver ---------------------------------------------------------------------------------

def _phase_command(args, phase: str, **extra) -> list[str]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--phase", phase,
           "--workdir", str(args.workdir), "--workers", str(args.workers),
           "--batches", str(args.batches),
           "--sync-timeout", str(args.sync_timeout)]
    for key, value in extra.items():
        cmd += [f"--{key.replace('_', '-')}", str(value)]
    for o in args.override:
        cmd += ["--override", o]
    return cmd


def _result(proc: subprocess.Popen, phase: str) -> dict:
    """The JSON line a phase process printed last; its stderr on failure."""
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"phase {phase} failed (exit {proc.returncode}):\n{err[-4000:]}")
    return json.loads(out.strip().splitlines()[-1])


def run_phase(args, phase: str) -> dict:
    """Run one phase in a fresh Python process and return its figures."""
    proc = subprocess.Popen(_phase_command(args, phase), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        return _result(proc, phase)
    finally:
        if proc.poll() is None:
            proc.kill()


def run_ranks(args, ranks: int) -> dict:
    """`ranks` rank processes started at once, synchronised through files in a fresh folder:
    their processes, the data totals (mapped_pss over every process, anon_added over the ranks,
    data = both) and the whole-process totals of Rss, Pss and USS."""
    sync = Path(tempfile.mkdtemp(prefix="sync-", dir=args.workdir))
    procs = [subprocess.Popen(_phase_command(args, "rank", rank=r, ranks=ranks, sync_dir=sync),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
             for r in range(ranks)]
    try:
        results = [_result(p, f"rank {r} of {ranks}") for r, p in enumerate(procs)]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    rows = [row for r in results for row in r["processes"]]
    total = {k: sum(row.get(k, 0.0) for row in rows) for k in ("rss", "pss", "uss")}
    total |= {k: sum(row.get(f"{k}_mib", 0.0) for row in rows)
              for k in ("mapped_pss", "anon_added")}
    total["data"] = total["mapped_pss"] + total["anon_added"]
    return {"processes": rows, "batches": min(r["batches"] for r in results),
            "cache_dir": results[0]["cache_dir"], "npy_files": results[0]["npy_files"], **total}


def machine() -> dict:
    """CPU model, bf16 flags, torch's CPU capability and core count."""
    import torch

    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = next((ln.split(":", 1)[1].strip() for ln in lscpu.splitlines()
                      if ln.startswith("Model name")), "unknown")
    except OSError:
        lscpu, model = "", "unknown"
    flags = set()
    for ln in lscpu.splitlines() or Path("/proc/cpuinfo").read_text().splitlines():
        if ln.lower().startswith("flags"):
            flags |= set(ln.split(":", 1)[1].split())
    return {"cpu": model, "avx512_bf16": "avx512_bf16" in flags, "amx_bf16": "amx_bf16" in flags,
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "cores": os.cpu_count(), "torch": torch.__version__}


def table_rows(result: dict) -> list[tuple[str, object, str]]:
    """(figure, value, unit) rows of the figures present in `result`."""
    names = [
        ("pairs", "training pairs written", "pairs"),
        ("ranks1_data_mib", "DATA, 1 rank + workers: mapped cache Pss + rank anon added", "MiB"),
        ("ranks2_data_mib", "DATA, 2 ranks + workers: mapped cache Pss + ranks' anon added",
         "MiB"),
        ("ranks_data_ratio", "DATA 2 ranks / 1 rank", "x"),
        ("ranks1_mapped_pss_mib", "  1 rank: mapped cache Pss (rank + workers)", "MiB"),
        ("ranks1_anon_added_mib", "  1 rank: anon added by the data (rank)", "MiB"),
        ("ranks2_mapped_pss_mib", "  2 ranks: mapped cache Pss (ranks + workers)", "MiB"),
        ("ranks2_anon_added_mib", "  2 ranks: anon added by the data (ranks)", "MiB"),
        ("ranks_npy_files", "  .npy files in the cache", "files"),
        ("ranks_batches", "  batches each rank took before reading memory", "batches"),
        ("train_pairs_kept", "training pairs kept (data.max_len)", "pairs"),
        ("cold_seconds", "cold: build to first batch", "s"),
        ("cold_peak_rss_mib", "cold: peak RSS", "MiB"),
        ("cache_mib", "cache on disk", "MiB"),
        ("cache_files", "cache files", "files"),
        ("warm_seconds", "warm: build to first batch", "s"),
        ("warm_rss_before_mib", "warm: RSS after imports", "MiB"),
        ("warm_rss_after_mib", "warm: RSS at first batch", "MiB"),
        ("warm_data_adds_mib", "warm: data adds", "MiB"),
        ("warm_peak_rss_mib", "warm: peak RSS", "MiB"),
        ("ranks2_process_pss_mib", "whole processes (incl. torch), 2 ranks + workers: Pss",
         "MiB"),
        ("ranks2_process_uss_mib", "whole processes (incl. torch), 2 ranks + workers: USS",
         "MiB"),
        ("ranks2_process_rss_mib", "whole processes (incl. torch), 2 ranks + workers: Rss "
         "(shared pages counted twice)", "MiB"),
        ("ranks1_process_pss_mib", "whole processes (incl. torch), 1 rank + workers: Pss", "MiB"),
        ("ranks1_process_uss_mib", "whole processes (incl. torch), 1 rank + workers: USS", "MiB"),
        ("ranks1_process_rss_mib", "whole processes (incl. torch), 1 rank + workers: Rss", "MiB"),
        ("ranks_process_pss_ratio", "whole-process Pss (incl. torch) 2 ranks / 1 rank", "x"),
    ]
    return [(label, result[key], unit) for key, label, unit in names if key in result]


def _fmt(v) -> str:
    return f"{v:,.2f}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v)


def report(result: dict) -> None:
    """Print the machine, the table of figures and the per-process memory."""
    print(f"CPU: {result['cpu']}, {result['cores']} cores, torch {result['torch']} "
          f"(capability {result['cpu_capability']}), avx512_bf16: {result['avx512_bf16']}, "
          f"amx_bf16: {result['amx_bf16']}")
    rows = [("figure", "value", "unit")] + [(f, _fmt(v), u) for f, v, u in table_rows(result)]
    w0, w1 = (max(len(r[i]) for r in rows) for i in (0, 1))
    for f, v, u in rows:
        print(f"  {f:<{w0}}  {v:>{w1}}  {u}")
    for n in (2, 1):
        if f"ranks{n}_processes" in result:
            print(f"\n  {n} rank{'s' if n > 1 else ''}: {'process':<16} {'mapped Pss':>10} "
                  f"{'anon added':>10} {'Rss':>9} {'Pss':>9} {'USS':>9}  MiB (data | whole)")
            for p in result[f"ranks{n}_processes"]:
                anon = (f"{p['anon_added_mib']:10.1f}" if "anon_added_mib" in p
                        else f"{'-':>10}")
                print(f"  {'':<{len(str(n)) + 7}}{p['role']:<16} {p['mapped_pss_mib']:10.1f} {anon} "
                      f"{p['rss']:9.1f} {p['pss']:9.1f} {p['uss']:9.1f}")


def benchmark(args) -> dict:
    """Write the corpus, run the selected phases, return every figure."""
    data_root = Path(os.environ.get("SEQ2SEQ_DATA_DIR", ROOT.parent / "shared" / "data"))
    if not (data_root / "multi30k" / "train.de.gz").is_file():
        raise SystemExit(f"Multi30k not found under {data_root}; set SEQ2SEQ_DATA_DIR")
    result = {"benchmark": "data", "pairs": args.pairs, **machine()}
    write_corpus(data_root, args.workdir, args.pairs)
    cache = args.workdir / "cache"
    if "cold" in args.phases:
        result.update(run_phase(args, "cold"))
    elif not (cache.is_dir() and any(cache.iterdir())):
        run_phase(args, "cold")  # warm and ranks read a filled cache: fill it, unreported
    if "warm" in args.phases:
        result.update(run_phase(args, "warm"))
    if "ranks" in args.phases:
        data, whole = {}, {}
        for n in (2, 1):
            ranks = run_ranks(args, n)
            data.update({f"ranks{n}_{k}_mib": ranks[k]
                         for k in ("data", "mapped_pss", "anon_added")})
            whole.update({f"ranks{n}_process_{k}_mib": ranks[k] for k in ("rss", "pss", "uss")})
            whole[f"ranks{n}_processes"] = ranks["processes"]
            data.update(ranks_batches=ranks["batches"], ranks_npy_files=ranks["npy_files"],
                        ranks_cache_dir=ranks["cache_dir"])
        data["ranks_data_ratio"] = (data["ranks2_data_mib"] / data["ranks1_data_mib"]
                                    if data["ranks1_data_mib"] > 0 else None)
        whole["ranks_process_pss_ratio"] = (whole["ranks2_process_pss_mib"]
                                            / whole["ranks1_process_pss_mib"])
        # the data figures first (after what names the run), then the rest
        head = {k: result.pop(k) for k in ("benchmark", "pairs")}
        first = ("ranks1_data_mib", "ranks2_data_mib", "ranks_data_ratio")
        data = {**{k: data.pop(k) for k in first}, **dict(sorted(data.items()))}
        result = {**head, **data, **result, **whole}
    return result


def remove_work(workdir: Path, temporary: bool) -> None:
    """Remove the temporary work folder, or from a folder given by --workdir only what the
    benchmark wrote there (the corpus, the cache, the ranks' sync folders)."""
    if temporary:
        shutil.rmtree(workdir, ignore_errors=True)
        return
    for name in ("train.de", "train.en", "val.de", "val.en"):
        (workdir / name).unlink(missing_ok=True)
    for folder in [workdir / "cache", *workdir.glob("sync-*")]:
        shutil.rmtree(folder, ignore_errors=True)


def parse_args(argv: list[str] | None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--pairs", type=int, default=100_000, help="training pairs to generate")
    p.add_argument("--phases", default=",".join(PHASES), help="comma-separated: cold,warm,ranks")
    p.add_argument("--workdir", type=Path, help="corpus and cache folder (default: a new "
                   "temporary folder, removed at the end unless --keep)")
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    p.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                   help="Hydra override of the train config (repeatable), e.g. data.max_len=50")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers of each rank")
    p.add_argument("--batches", type=int, default=RANK_BATCHES,
                   help="ranks: batches each rank takes before its memory is read (more touch "
                   "more of the mapped token pages)")
    p.add_argument("--sync-timeout", type=float, default=600,
                   help="seconds a rank waits for the others")
    p.add_argument("--json-out", type=Path, help="also write the JSON line to this file")
    # internal: one phase in this process, its figures as a JSON line on stdout
    p.add_argument("--phase", choices=("cold", "warm", "rank"), help=argparse.SUPPRESS)
    p.add_argument("--rank", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--ranks", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--sync-dir", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.phases = [s.strip() for s in args.phases.split(",") if s.strip()]
    if unknown := set(args.phases) - set(PHASES):
        p.error(f"--phases: unknown {', '.join(sorted(unknown))}; choose from {', '.join(PHASES)}")
    if args.pairs < 1:
        p.error("--pairs must be at least 1")
    if args.batches < 1:
        p.error("--batches must be at least 1")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.phase:
        args.workdir = args.workdir.resolve()
        out = phase_rank(args) if args.phase == "rank" else phase_prepare(args, args.phase)
        print(json.dumps(out), flush=True)
        return out
    temporary = args.workdir is None
    args.workdir = Path(args.workdir or tempfile.mkdtemp(prefix="data_benchmark-")).resolve()
    if args.workdir.is_relative_to(ROOT):
        raise SystemExit(f"--workdir {args.workdir} is inside the repository; choose another")
    args.workdir.mkdir(parents=True, exist_ok=True)
    try:
        result = benchmark(args)
    finally:
        if not args.keep:
            remove_work(args.workdir, temporary)
    report(result)
    line = json.dumps(result)
    print(line)
    if args.json_out:
        args.json_out.write_text(line + "\n")
    return result


if __name__ == "__main__":
    main()
