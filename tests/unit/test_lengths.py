"""BLEU by source length (seq2seq/lengths.py, experiments/lengths.py) on a hand-built run dir
whose short sentences are translated perfectly and long ones badly."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys

import pytest
import sacrebleu

from seq2seq.data.errors import DataError
from seq2seq.lengths import DEFAULT_BUCKETS, Bucket, parse_buckets, score_runs, write_lengths
from seq2seq.record import RunRecord, run_labels
from tests.conftest import ROOT

NOUNS = ("man", "woman", "dog", "child", "girl", "boy", "cat", "horse", "bird", "worker")
VERBS = ("rides", "holds", "watches", "paints", "carries", "follows", "feeds", "washes")
THINGS = ("bike", "ball", "boat", "rope", "kite", "hat", "drum", "cart", "box", "flag")


def _pair(i: int, words: int) -> tuple[str, str]:
    """A source of exactly `words` words and a reference of several English words."""
    src = " ".join(f"w{i}_{k}" for k in range(words))
    ref = " ".join(f"A {NOUNS[(i + k) % 10]} {VERBS[(i + 2 * k) % 8]} a {THINGS[(i + k) % 10]} ."
                   for k in range(1 + words // 6))
    return src, ref


def _bad(ref: str) -> str:
    """A poor translation: the reference's first half, then its words reversed, lowercased
    (so lowercased BLEU is higher than cased)."""
    words = ref.lower().split()
    half = len(words) // 2
    return " ".join(words[:half] + words[half:][::-1])


# 5 short sentences (4 to 8 words, translated perfectly), 3 long ones (26, 30, 34 words, badly)
LENGTHS = [4, 8, 26, 5, 30, 6, 34, 7]
PAIRS = [_pair(i, n) for i, n in enumerate(LENGTHS)]
SRC = [s for s, _ in PAIRS]
REF = [r for _, r in PAIRS]
HYP = [r if n <= 8 else _bad(r) for (_, r), n in zip(PAIRS, LENGTHS, strict=True)]
BUCKETS = "1-8,9-25,26+"


def _write(path, lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    text = ("\n".join(lines) + "\n").encode("utf-8")
    path.write_bytes(gzip.compress(text) if path.suffix == ".gz" else text)
    return path


def _run(tmp_path, name="run", hyps=HYP, **config):
    """A finished run dir: results.json and translations/test_2016_flickr.hyp.txt."""
    run = tmp_path / name
    cfg = {"src_lang": "de", "tgt_lang": "en", "encoder": "gru", "decoder": "gru",
           "attention": "bahdanau", **config}
    results = {"name": "fake", "config": cfg, "test_sets": ["test_2016_flickr"],
               "metrics": {"test/bleu": 1.0}}
    run.mkdir(parents=True)
    (run / "results.json").write_text(json.dumps(results), encoding="utf-8")
    _write(run / "translations" / "test_2016_flickr.hyp.txt", hyps)
    return run


@pytest.fixture
def files(tmp_path):
    return _write(tmp_path / "src.de", SRC), _write(tmp_path / "ref.en", REF)


def test_short_sentences_score_100_and_long_ones_less(tmp_path, files):
    src, ref = files
    [s] = score_runs([_run(tmp_path)], parse_buckets(BUCKETS), src=str(src), ref=str(ref))
    assert s.counts == [5, 0, 3] and s.total == 8
    assert s.bleu[0] == pytest.approx(100.0)
    assert s.bleu[1] is None and s.bleu_lc[1] is None  # an empty bucket has no BLEU
    assert 0.0 < s.bleu[2] < s.bleu_lc[2] < 90.0


def test_each_bucket_is_corpus_bleu_of_exactly_its_lines(tmp_path, files):
    src, ref = files
    [s] = score_runs([_run(tmp_path)], parse_buckets(BUCKETS), src=str(src), ref=str(ref))
    long = [i for i, n in enumerate(LENGTHS) if n >= 26]
    hyps, refs = [HYP[i] for i in long], [REF[i] for i in long]
    assert s.bleu[2] == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score)
    assert s.bleu_lc[2] == pytest.approx(
        sacrebleu.corpus_bleu(hyps, [refs], lowercase=True).score)
    assert s.all_bleu == pytest.approx(sacrebleu.corpus_bleu(HYP, [REF]).score)
    assert s.bleu[2] < s.all_bleu < 100.0


def test_bucket_edges_and_default_buckets():
    buckets = parse_buckets(DEFAULT_BUCKETS)
    assert [b.label for b in buckets] == ["1-8", "9-12", "13-16", "17-20", "21-25", "26+"]
    assert buckets[0].holds(8) and not buckets[0].holds(9) and buckets[1].holds(9)
    assert buckets[-1] == Bucket(26, None) and buckets[-1].holds(1000)


@pytest.mark.parametrize("spec", ["", "1-8,x", "1-8,9-", "8-1", "1-8,8-12", "9-12,1-8",
                                  "26+,1-8"])
def test_malformed_buckets_are_named(spec):
    with pytest.raises(DataError, match=r"--buckets .*e\.g\. 1-8,9-12"):
        parse_buckets(spec)


def test_writes_table_and_plot(tmp_path, files):
    src, ref = files
    out = tmp_path / "out"
    md = write_lengths([_run(tmp_path)], out, BUCKETS, src=str(src), ref=str(ref))
    text = md.read_text(encoding="utf-8")
    assert md == out / "lengths.md"
    assert "| run | 1-8 | 9-25 | 26+ | all |" in text
    assert "| fake gru/gru/bahdanau de-en | 100.00 | - |" in text
    assert "| 5 | 0 | 3 | 8 |" in text and "## BLEU (lowercased)" in text
    assert (out / "bleu_by_length.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_test_files_come_from_the_saved_hydra_config(tmp_path, files):
    data = tmp_path / "data"
    _write(data / "multi30k" / "test_2016_flickr.de.gz", SRC)
    _write(data / "multi30k" / "test_2016_flickr.en.gz", REF)
    run = _run(tmp_path)
    (run / ".hydra").mkdir()
    (run / ".hydra" / "config.yaml").write_text(
        f"data:\n  _target_: seq2seq.data.datamodule.Multi30kDataModule\n  root: {data}\n")
    [s] = score_runs([run], parse_buckets(BUCKETS))
    src, ref = files
    [t] = score_runs([run], parse_buckets(BUCKETS), src=str(src), ref=str(ref))
    assert s.counts == t.counts and s.bleu == t.bleu
    assert s.sources.endswith("test_2016_flickr.de.gz")


def test_parallel_files_paths_start_in_the_folder_train_py_ran_in(tmp_path, files):
    run = _run(tmp_path)
    (run / ".hydra").mkdir()
    (run / ".hydra" / "config.yaml").write_text(
        "data:\n  _target_: seq2seq.data.datamodule.ParallelDataModule\n"
        "  test:\n    src: src.de\n    tgt: [ref.en]\n")
    (run / ".hydra" / "hydra.yaml").write_text(f"hydra:\n  runtime:\n    cwd: {tmp_path}\n")
    [s] = score_runs([run], parse_buckets(BUCKETS))
    assert s.sources == str(files[0]) and s.counts == [5, 0, 3]
    _write(run / "translations" / "test_2017_flickr.hyp.txt", HYP)
    with pytest.raises(DataError, match="give them with --src and --ref"):
        score_runs([run], parse_buckets(BUCKETS), "test_2017_flickr")


def test_beam_scores_the_runs_beam_file(tmp_path, files):
    run = _run(tmp_path)
    results = json.loads((run / "results.json").read_text())
    results["metrics"]["test/beam"] = 5.0
    (run / "results.json").write_text(json.dumps(results))
    _write(run / "translations" / "test.beam5.hyp.txt", REF)  # perfect everywhere
    src, ref = files
    [s] = score_runs([run], parse_buckets(BUCKETS), beam=True, src=str(src), ref=str(ref))
    assert s.hypotheses.name == "test.beam5.hyp.txt" and s.bleu[2] == pytest.approx(100.0)


def test_runs_alike_in_config_are_told_apart_by_folder(tmp_path):
    a, b, c = _run(tmp_path, "a"), _run(tmp_path, "b"), _run(tmp_path, "c", encoder="lstm")
    records = [RunRecord.read(d / "results.json") for d in (a, b, c)]
    labels = run_labels([a, b, c], records)
    assert labels == ["fake gru/gru/bahdanau de-en (a)", "fake gru/gru/bahdanau de-en (b)",
                      "fake lstm/gru/bahdanau de-en"]


def test_run_without_results_json(tmp_path, files):
    src, ref = files
    with pytest.raises(DataError, match=r"empty[/\\]results\.json: no such file"):
        score_runs([tmp_path / "empty"], parse_buckets(BUCKETS), src=str(src), ref=str(ref))


def test_run_without_hypothesis_file(tmp_path, files):
    src, ref = files
    run = _run(tmp_path)
    with pytest.raises(DataError, match=r"test_2017_flickr\.hyp\.txt: no such hypothesis file "
                                        r"\(the run has: test_2016_flickr\.hyp\.txt\)"):
        score_runs([run], parse_buckets(BUCKETS), "test_2017_flickr", src=str(src),
                   ref=str(ref))
    with pytest.raises(DataError, match=r"test\.beam<N>\.hyp\.txt: .*rescore\.py"):
        score_runs([run], parse_buckets(BUCKETS), beam=True, src=str(src), ref=str(ref))


def test_hypotheses_and_source_of_different_lengths(tmp_path, files):
    src, ref = files
    run = _run(tmp_path, hyps=HYP[:-1])
    with pytest.raises(DataError) as e:
        score_runs([run], parse_buckets(BUCKETS), src=str(src), ref=str(ref))
    assert "test_2016_flickr.hyp.txt has 7 lines" in str(e.value)
    assert f"source {src} has 8" in str(e.value)


def test_cli_prints_a_one_line_error(tmp_path, files):
    src, ref = files
    run = _run(tmp_path)
    cmd = [sys.executable, str(ROOT / "experiments" / "lengths.py"), str(run),
           "--src", str(src), "--ref", str(ref)]
    bad = subprocess.run([*cmd, "--buckets", "1-8,x"], capture_output=True, text=True)
    assert bad.returncode == 1
    assert bad.stderr.strip().count("\n") == 0 and bad.stderr.startswith("error: --buckets")
    ok = subprocess.run([*cmd, "--buckets", BUCKETS, "--out", str(tmp_path / "cli")],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "cli" / "bleu_by_length.png").is_file()


def test_report_by_length_scores_every_run_of_a_sweep(tmp_path):
    """`python experiments/report.py RUNS --by-length`: the sweep's table, then lengths.md of
    its runs, sources and references found under SEQ2SEQ_DATA_DIR."""
    data = tmp_path / "data"
    _write(data / "multi30k" / "test_2016_flickr.de.gz", SRC)
    _write(data / "multi30k" / "test_2016_flickr.en.gz", REF)
    sweep = tmp_path / "sweep"
    for name, attention in (("0", "bahdanau"), ("1", "luong_general")):
        run = _run(sweep, name, attention=attention, label_smoothing=0.1,
                   scheduled_sampling="none")
        results = json.loads((run / "results.json").read_text())
        results.update(params=1_000_000, train_tokens_per_s=100.0, seconds=60.0)
        (run / "results.json").write_text(json.dumps(results), encoding="utf-8")
    env = {**os.environ, "SEQ2SEQ_DATA_DIR": str(data)}
    proc = subprocess.run([sys.executable, str(ROOT / "experiments" / "report.py"), str(sweep),
                           "--by-length"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    lengths = (sweep / "lengths.md").read_text(encoding="utf-8")
    assert "gru/gru/bahdanau" in lengths and "gru/gru/luong_general" in lengths
    assert (sweep / "bleu_by_length.png").is_file() and (sweep / "report.md").is_file()
