"""BLEU by source sentence length, the analysis behind figure 2 of Bahdanau et al. (2015): each
run's test translations scored in buckets of source length, as a markdown table and a plot.

    python experiments/lengths.py RUN_DIR [RUN_DIR ...] [--out DIR] [--beam]
        [--buckets 1-8,9-12,13-16,17-20,21-25,26+] [--test-set test_2016_flickr]
        [--src FILE --ref FILE]

A sentence's length is its number of whitespace-separated source words. Each bucket's BLEU is
sacreBLEU corpus BLEU (cased, and lowercased) over exactly that bucket's sentences, with the
settings of test/bleu (seq2seq.metrics), so the "all" column is the run's test BLEU.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from seq2seq.data import multi30k
from seq2seq.data.corpus import ParallelText, files_label, read_lines, read_parallel
from seq2seq.data.errors import DataError
from seq2seq.metrics import corpus_scores
from seq2seq.plotting import bleu_by_length_figure, save_figure
from seq2seq.record import FILENAME, RunRecord, format_bleu, run_labels

DEFAULT_BUCKETS = "1-8,9-12,13-16,17-20,21-25,26+"
_RANGE = re.compile(r"(\d+)-(\d+)|(\d+)\+")


@dataclass(frozen=True)
class Bucket:
    """Source lengths low..high words, both included; high None: no upper bound."""

    low: int
    high: int | None

    @property
    def label(self) -> str:
        return f"{self.low}+" if self.high is None else f"{self.low}-{self.high}"

    def holds(self, length: int) -> bool:
        return self.low <= length and (self.high is None or length <= self.high)


def parse_buckets(spec: str) -> list[Bucket]:
    """'1-8,9-12,26+' -> buckets, ascending and not overlapping (gaps allowed), an open 'N+'
    only last. Raises DataError naming the bad part of the spec."""
    how = (f"--buckets {spec!r}: {{}}; write comma-separated ranges of source words, "
           f"ascending and not overlapping, an open one last, e.g. {DEFAULT_BUCKETS}")
    buckets: list[Bucket] = []
    for part in (p.strip() for p in spec.split(",")):
        m = _RANGE.fullmatch(part)
        if not m:
            raise DataError(how.format(f"{part!r} is not a range like 9-12 or 26+"))
        low, high = (int(m[1]), int(m[2])) if m[3] is None else (int(m[3]), None)
        if high is not None and high < low:
            raise DataError(how.format(f"{part!r} ends before it starts"))
        if buckets and buckets[-1].high is None:
            raise DataError(how.format(f"{buckets[-1].label!r} has no end, so it must be last"))
        if buckets and low <= buckets[-1].high:
            raise DataError(how.format(f"{part!r} overlaps or precedes {buckets[-1].label!r}"))
        buckets.append(Bucket(low, high))
    return buckets


@dataclass
class LengthScores:
    """One run's figures by bucket (lists aligned with `buckets`; BLEU None: empty bucket) and
    over the whole test set ("all")."""

    label: str  # the run's name in the table and the plot legend
    test_set: str
    hypotheses: Path
    sources: str  # the source files, for the table
    buckets: list[Bucket]
    counts: list[int]
    bleu: list[float | None]
    bleu_lc: list[float | None]
    total: int
    all_bleu: float
    all_bleu_lc: float


def bleu_by_length(sources: list[str], references: list[str], hypotheses: list[str],
                   buckets: list[Bucket], label: str = "", test_set: str = "test",
                   hyp_path: Path = Path("-"), src_label: str = "-") -> LengthScores:
    """Corpus BLEU of the aligned lines of each bucket of source length (whitespace words).
    A sentence in no bucket counts only in "all"."""
    lengths = [len(s.split()) for s in sources]
    rows = [[i for i, n in enumerate(lengths) if b.holds(n)] for b in buckets]

    def bleu(idx: list[int], lowercase: bool) -> float | None:
        if not idx:
            return None
        return corpus_scores([hypotheses[i] for i in idx], [references[i] for i in idx],
                             lowercase=lowercase).bleu

    every = list(range(len(sources)))
    return LengthScores(label, test_set, hyp_path, src_label, buckets, [len(r) for r in rows],
                        [bleu(r, False) for r in rows], [bleu(r, True) for r in rows],
                        len(sources), bleu(every, False) or 0.0, bleu(every, True) or 0.0)


# -- a run's files --------------------------------------------------------------------------


def hypothesis_path(run_dir: Path, record: RunRecord, test_set: str, beam: bool) -> Path:
    """translations/<test_set>.hyp.txt (the run's own search), or with `beam`
    translations/test.beam<N>.hyp.txt (N: the run's test/beam; the headline test set only)."""
    folder = run_dir / "translations"
    headline = record.headline_test_set
    if not beam:
        path = folder / f"{test_set}.hyp.txt"
    elif test_set not in ("test", headline):
        raise DataError(f"--beam: {run_dir} has beam translations of its headline test set "
                        f"{headline} only; drop --test-set {test_set} or --beam")
    else:
        n = record.metrics.get("test/beam")
        found = sorted(folder.glob("test.beam*.hyp.txt"))
        if n:
            path = folder / f"test.beam{int(n)}.hyp.txt"
        else:  # results.json without test/beam: the one beam file there is, if only one
            path = found[0] if len(found) == 1 else folder / "test.beam<N>.hyp.txt"
    if not path.is_file():
        have = ", ".join(p.name for p in sorted(folder.glob("*.hyp.txt"))) or "none"
        todo = (f"make one with: python experiments/rescore.py {run_dir} --beam 5" if beam
                else "choose a test set the run scored with --test-set")
        raise DataError(f"{path}: no such hypothesis file (the run has: {have}); {todo}")
    return path


def _hydra_cfg(run_dir: Path):
    """The run's saved config and the folder train.py ran in (relative data paths start
    there), or (None, cwd) without .hydra/config.yaml."""
    path = run_dir / ".hydra" / "config.yaml"
    if not path.is_file():
        return None, Path.cwd()
    cfg = OmegaConf.load(path)
    hydra = run_dir / ".hydra" / "hydra.yaml"
    cwd = OmegaConf.load(hydra).hydra.runtime.get("cwd") if hydra.is_file() else None
    return cfg, Path(cwd) if cwd else Path.cwd()


def _anchored(spec, cwd: Path):
    """A data path (or list of them) made absolute from `cwd`."""
    if isinstance(spec, str):
        return str(cwd / spec)
    return [str(cwd / s) for s in spec]


def run_test_files(run_dir: Path, record: RunRecord, test_set: str) -> tuple[object, object]:
    """The source and reference files (a path, or a list/glob for data=parallel_files) of
    `test_set` of a run, from its .hydra/config.yaml, else Multi30k under SEQ2SEQ_DATA_DIR."""
    cfg, cwd = _hydra_cfg(run_dir)
    data = cfg.data if cfg is not None else None
    headline = record.headline_test_set
    name = headline if test_set == "test" else test_set
    if data is not None and "root" not in data:  # data=parallel_files: one test set, "test"
        test = data.get("test")
        if name != headline or not test or OmegaConf.is_missing(test, "src") \
                or OmegaConf.is_missing(test, "tgt"):
            raise DataError(f"{run_dir}: its data=parallel_files config names no test files "
                            f"for {test_set}; give them with --src and --ref")
        return _anchored(test.src, cwd), _anchored(test.tgt, cwd)
    try:
        root = data.root if data is not None else os.environ.get("SEQ2SEQ_DATA_DIR", "data")
    except OmegaConfBaseException:
        root = os.environ.get("SEQ2SEQ_DATA_DIR", "data")
    if name not in multi30k.TEST_SETS:
        raise DataError(f"{run_dir}: {name!r} is not a Multi30k test set; give --src and --ref")
    langs = record.config.src_lang, record.config.tgt_lang
    if None in langs:
        raise DataError(f"{run_dir / FILENAME}: names no source or target language; give "
                        "--src and --ref")
    return tuple(os.path.normpath(multi30k.split_path(cwd / str(root), name, lang))
                 for lang in langs)


def score_runs(run_dirs: list[str | Path], buckets: list[Bucket], test_set: str | None = None,
               beam: bool = False, src: str | None = None, ref: str | None = None
               ) -> list[LengthScores]:
    """Each run's BLEU by length on `test_set` (default: its headline test set). `src` and
    `ref` replace the run's test files. Raises DataError naming the file at fault."""
    dirs = [Path(d) for d in run_dirs]
    records = [RunRecord.read(d / FILENAME) for d in dirs]
    texts: dict[tuple, ParallelText] = {}
    scores = []
    for run_dir, record, label in zip(dirs, records, run_labels(dirs, records), strict=True):
        name = test_set or record.headline_test_set
        hyp_path = hypothesis_path(run_dir, record, name, beam)
        src_spec, ref_spec = src, ref
        if not (src and ref):
            run_src, run_ref = run_test_files(run_dir, record, name)
            src_spec, ref_spec = src or run_src, ref or run_ref
        key = (str(src_spec), str(ref_spec))
        if key not in texts:
            texts[key] = read_parallel(src_spec, ref_spec, ("--src" if src else "the source",
                                                            "--ref" if ref else "the reference"))
        text = texts[key]
        hyps = read_lines(hyp_path)
        if len(hyps) != len(text.src):
            raise DataError(f"{hyp_path} has {len(hyps)} lines but the source "
                            f"{text.src_path} has {len(text.src)}; they must be the same test "
                            "set (check --test-set, --src and --ref)")
        scores.append(bleu_by_length(text.src, text.tgt, hyps, buckets, label, name,
                                     hyp_path, files_label(text.src_files)))
    return scores


# -- table and plot -------------------------------------------------------------------------


def table(scores: list[LengthScores], what: str) -> str:
    """A markdown table, one row per run: `what` is "bleu", "bleu_lc" or "counts"."""
    labels = [b.label for b in scores[0].buckets]
    head = ["run", *labels, "all"]
    if what == "counts":
        head = ["run", "hypotheses", "source", *labels, "all"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for s in scores:
        if what == "counts":
            row = [s.label, str(s.hypotheses), s.sources, *map(str, s.counts), str(s.total)]
        else:
            lc = what == "bleu_lc"
            row = [s.label, *map(format_bleu, s.bleu_lc if lc else s.bleu),
                   format_bleu(s.all_bleu_lc if lc else s.all_bleu)]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def lengths_figure(scores: list[LengthScores], title: str = ""):
    """Cased BLEU against source-length bucket, one line per run (an empty bucket: a gap);
    the sentence counts go under the bucket names when every run has the same -> Figure."""
    buckets = [b.label for b in scores[0].buckets]
    if all(s.counts == scores[0].counts for s in scores):
        buckets = [f"{b}\n({n})" for b, n in zip(buckets, scores[0].counts, strict=True)]
    return bleu_by_length_figure(buckets, [(s.label, s.bleu) for s in scores], title)


def default_out(run_dirs: list[str | Path]) -> Path:
    """The folder the runs share (a single run: its own dir)."""
    paths = [Path(d).resolve() for d in run_dirs]
    common = Path(os.path.commonpath(paths))
    if common == Path(common.anchor):
        raise DataError(f"the runs share no folder but {common}; give --out DIR")
    return common


def write_lengths(run_dirs: list[str | Path], out: str | Path | None = None,
                  buckets: str = DEFAULT_BUCKETS, test_set: str | None = None,
                  beam: bool = False, src: str | None = None, ref: str | None = None) -> Path:
    """lengths.md and bleu_by_length.png in `out` (default: the runs' common folder)."""
    if not run_dirs:
        raise DataError("no run dir given; name one or more run dirs holding results.json")
    parsed = parse_buckets(buckets)
    scores = score_runs(run_dirs, parsed, test_set, beam, src, ref)
    out = Path(out) if out else default_out(run_dirs)
    out.mkdir(parents=True, exist_ok=True)
    search = "beam translations (test.beam<N>.hyp.txt)" if beam else \
        "translations of the run's own search (<test set>.hyp.txt)"
    which = ", ".join(dict.fromkeys(s.test_set for s in scores))
    save_figure(lengths_figure(scores, f"{which}, {search}"), out / "bleu_by_length.png")
    outside = [f"{s.label}: {s.total - sum(s.counts)}" for s in scores
               if s.total > sum(s.counts)]
    note = f"\nSentences in no bucket (counted in \"all\" only): {', '.join(outside)}.\n" \
        if outside else ""
    md = (f"# BLEU by source length\n\n{which}, {search}. Buckets of source words "
          "(whitespace-split); sacreBLEU corpus BLEU of each bucket's sentences, \"all\" over "
          f"the whole test set.\n\n## BLEU (cased)\n\n{table(scores, 'bleu')}\n"
          f"## BLEU (lowercased)\n\n{table(scores, 'bleu_lc')}\n"
          f"## Sentences\n\n{table(scores, 'counts')}{note}\n"
          "![BLEU by source length](bleu_by_length.png)\n")
    (out / "lengths.md").write_text(md, encoding="utf-8")
    return out / "lengths.md"


def print_lengths(*args, **kwargs) -> Path:
    """write_lengths(*args, **kwargs), then its table and where it went on stdout (the
    scripts' output)."""
    path = write_lengths(*args, **kwargs)
    print(path.read_text(encoding="utf-8"))
    print(f"written: {path}")
    return path
