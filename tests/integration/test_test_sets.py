"""Several Multi30k test sets scored at the end of training (data.test_sets): each has its own
metrics, translations, results.json entries and report column; the first stays the headline."""

from __future__ import annotations

import csv
import functools
import gzip
import hashlib
import http.server
import json
import re
import threading

import pytest

from seq2seq.checkpoint import load_module
from seq2seq.data import multi30k
from seq2seq.data.corpus import read_lines
from seq2seq.metrics import corpus_scores
from seq2seq.pipeline import train
from seq2seq.report import write_report
from seq2seq.translation import translate_lines
from tests.conftest import MAX_TOKENS, ROOT, compose_train
from tests.integration.conftest import TINY, tiny_multi30k
from tests.integration.test_cli import run

SETS = ["test_2016_flickr", "test_2017_flickr", "test_2018_flickr"]


@pytest.fixture
def server(tmp_path):
    """A local HTTP server on 127.0.0.1 serving a stand-in test_2018_flickr.{de,en}.gz."""
    served = tmp_path / "served"
    served.mkdir()
    for lang in ("de", "en"):
        lines = [f"test_2018_flickr {lang} {i}" for i in range(12)]
        (served / f"test_2018_flickr.{lang}.gz").write_bytes(
            gzip.compress(("\n".join(lines) + "\n").encode()))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", served
    httpd.shutdown()


@pytest.mark.slow
def test_every_test_set_gets_its_metrics_translations_results_and_report_column(
        tmp_path, data_root, server, monkeypatch):
    url, served = server
    for lang in ("de", "en"):  # the stand-in's hash in place of the official one
        name = f"test_2018_flickr.{lang}.gz"
        monkeypatch.setitem(multi30k.SHA256, name,
                            hashlib.sha256((served / name).read_bytes()).hexdigest())
    root = tiny_multi30k(tmp_path / "data", data_root, {"test_2017_flickr": 30})
    run_dir = tmp_path / "runs" / "a"
    cfg = compose_train([f"data.root={root}", f"data.url={url}", f"data.cache_dir={tmp_path}/c",
                         f"data.test_sets=[{','.join(SETS)}]", *TINY, f"run_dir={run_dir}",
                         "trainer.max_epochs=1", "test_beam=2"])
    metrics = train(cfg)

    m = root / "multi30k"
    assert (m / "test_2018_flickr.de.gz").read_bytes() == (served / "test_2018_flickr.de.gz"
                                                           ).read_bytes()  # downloaded
    results = json.loads((run_dir / "results.json").read_text())
    assert results["test_sets"] == SETS
    hyps = {}
    for name, n in zip(SETS, (40, 30, 12), strict=True):
        hyps[name] = (run_dir / "translations" / f"{name}.hyp.txt").read_text().splitlines()
        refs = read_lines(m / f"{name}.en.gz")
        assert len(hyps[name]) == len(refs) == n
        scores = corpus_scores(hyps[name], refs)
        expected = {"bleu": scores.bleu, "chrf": scores.chrf, "len_ratio": scores.length_ratio,
                    "bleu_lc": corpus_scores(hyps[name], refs, lowercase=True).bleu}
        for figure, value in expected.items():
            assert metrics[f"test/{name}/{figure}"] == value, (name, figure)
            assert results["metrics"][f"test/{name}/{figure}"] == value, (name, figure)
        assert results["metrics"][f"test/{name}/loss"] > 0
        assert results["metrics"][f"test/{name}/ppl"] > 1
    assert len({metrics[f"test/{name}/loss"] for name in SETS}) == 3
    # the first set is the headline: test/*, translations/test.hyp.txt, the beam rescoring
    headline = (run_dir / "translations" / "test.hyp.txt").read_text().splitlines()
    assert headline == hyps[SETS[0]]
    for figure in ("bleu", "chrf", "bleu_lc", "len_ratio", "loss", "ppl"):
        assert metrics[f"test/{figure}"] == metrics[f"test/{SETS[0]}/{figure}"]
    beam = (run_dir / "translations" / "test.beam2.hyp.txt").read_text().splitlines()
    assert metrics["test/bleu_beam"] == corpus_scores(beam, read_lines(m / f"{SETS[0]}.en.gz")
                                                      ).bleu
    with (run_dir / "csv" / "metrics.csv").open() as f:  # logged under the set's name
        logged = next(csv.reader(f))
    assert {f"test/{name}/bleu" for name in SETS} <= set(logged)
    assert not [k for k in logged if "dataloader_idx" in k]

    report = write_report(tmp_path / "runs").read_text()
    header, _, row = report.splitlines()[2:5]
    columns = [c.strip() for c in header.strip("|").split("|")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    for name in SETS:
        assert cells[columns.index(f"{name} BLEU")] == f"{metrics[f'test/{name}/bleu']:.2f}"


@pytest.mark.slow
def test_two_ranks_decode_their_share_of_every_test_set(tmp_path, data_root):
    """Under DDP each rank decodes part of each test set; every set's gathered translations
    are the single-process ones, in order."""
    root = tiny_multi30k(tmp_path / "data", data_root, {"test_2017_flickr": 30})
    sets = ["test_2016_flickr", "test_2017_flickr"]
    proc = run([str(ROOT / "train.py"), f"data.root={root}", f"data.cache_dir={tmp_path}/c",
                "data.url=http://127.0.0.1:9/", f"data.test_sets=[{','.join(sets)}]", *TINY,
                "trainer.devices=2", "trainer.max_epochs=3", "optim.lr=5e-3",
                f"hydra.run.dir={tmp_path}/RUN"], cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = tmp_path / "RUN"
    best = sorted((run_dir / "checkpoints").glob("best-*.ckpt"))
    module = load_module(best[-1])
    for name in sets:
        gathered = (run_dir / "translations" / f"{name}.hyp.txt").read_text().splitlines()
        single = translate_lines(module, read_lines(root / "multi30k" / f"{name}.de.gz"),
                                 max_tokens=MAX_TOKENS)
        assert len(set(single)) > 5  # the comparison is not between degenerate outputs
        assert gathered == single, name
        printed = re.search(rf"Test {name} .*\nBLEU (\d+\.\d+)", proc.stdout).group(1)
        refs = read_lines(root / "multi30k" / f"{name}.en.gz")
        assert float(printed) == pytest.approx(corpus_scores(single, refs).bleu, abs=0.005)
