"""evaluate.py scores a checkpoint with the figures of training's test phase, on Multi30k test
sets or the user's own files, and writes them as a run record."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from seq2seq.data.errors import DataError
from seq2seq.evaluation import evaluate, evaluate_config
from seq2seq.pipeline import train
from seq2seq.record import RunRecord
from tests.conftest import ROOT, compose_train
from tests.integration.conftest import TINY, tiny_multi30k


def _best(run_dir):
    return sorted((run_dir / "checkpoints").glob("best-*.ckpt"))[-1]


def test_the_record_holds_training_s_test_figures(tiny_run, tmp_path):
    """The checkpoint training tested, scored again on the same test files with the same
    search, gives the same test/* figures, in a record beside the run's own."""
    run_dir, metrics, overrides = tiny_run
    files = dict(o.split("=", 1) for o in overrides if o.startswith("data.test."))
    ckpt = tmp_path / "run" / "checkpoints" / "best.ckpt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(_best(run_dir).read_bytes())
    record = evaluate(evaluate_config(ckpt=str(ckpt), src=files["data.test.src"],
                                      ref=files["data.test.tgt"]))
    for key in ("test/bleu", "test/bleu_lc", "test/chrf", "test/len_ratio"):
        assert record.metrics[key] == pytest.approx(metrics[key], abs=1e-9), key
    saved = tmp_path / "run" / "evaluations" / "best-beam1.json"
    assert RunRecord.read(saved).metrics == record.metrics
    hyps = (saved.with_suffix("") / "test.hyp.txt").read_text(encoding="utf-8")
    assert hyps == (run_dir / "translations" / "test.hyp.txt").read_text(encoding="utf-8")
    # beam 3 is the search test_beam=3 scored at the end of training
    beam = evaluate(evaluate_config(ckpt=str(ckpt), src=files["data.test.src"],
                                    ref=files["data.test.tgt"], beam=3,
                                    out=str(tmp_path / "b3.json")))
    assert beam.metrics["test/bleu"] == pytest.approx(metrics["test/bleu_beam"], abs=1e-9)
    assert json.loads((tmp_path / "b3.json").read_text())["config"]["beam"] == 3


def test_bad_input_is_refused_before_any_decoding(tiny_run, data_root):
    run_dir, _, _ = tiny_run
    ckpt = str(_best(run_dir))
    with pytest.raises(DataError, match="src=FILE and ref=FILE go together"):
        evaluate(evaluate_config(ckpt=ckpt, src="x.de"))
    with pytest.raises(DataError, match=r"x\.de: no such file"):
        evaluate(evaluate_config(ckpt=ckpt, src="x.de", ref="x.en"))
    with pytest.raises(DataError, match="trained on train.de -> train.en, not a pair of "
                                        "Multi30k languages; score it on your files with src"):
        evaluate(evaluate_config(ckpt=ckpt, data_root=str(data_root)))
    assert not (run_dir / "evaluations").exists()


@pytest.fixture(scope="module")
def multi30k_run(tmp_path_factory, data_root):
    """A tiny model trained one epoch on a Multi30k stand-in (de -> en): the data root, and
    its checkpoints after epochs 1 and 2."""
    tmp = tmp_path_factory.mktemp("m30k")
    root = tiny_multi30k(tmp / "data", data_root, {"test_2017_flickr": 30})
    ckpts = []
    for epochs in (1, 2):
        run_dir = tmp / f"run{epochs}"
        train(compose_train([f"data.root={root}", f"data.cache_dir={tmp}/cache", *TINY,
                             f"run_dir={run_dir}", f"trainer.max_epochs={epochs}",
                             "test=false"]))
        ckpts.append(run_dir / "checkpoints" / "last.ckpt")
    return root, ckpts


@pytest.mark.slow
def test_multi30k_test_sets_and_ensembles(multi30k_run, tmp_path):
    """test_sets name Multi30k sets under data_root in the model's direction; the first is
    also test/*. An ensemble of two different checkpoints scores otherwise than its first."""
    root, ckpts = multi30k_run
    sets = ["test_2016_flickr", "test_2017_flickr"]
    one = evaluate(evaluate_config(ckpt=str(ckpts[0]), data_root=str(root), test_sets=sets,
                                   out=str(tmp_path / "one.json")))
    assert one.test_sets == sets
    assert one.config.src_lang == "de" and one.config.tgt_lang == "en"
    assert one.metrics["test/bleu"] == one.metrics["test/test_2016_flickr/bleu"]
    for name, n in (("test_2016_flickr", 40), ("test_2017_flickr", 30)):
        assert f"test/{name}/chrf" in one.metrics
        assert len((tmp_path / "one" / f"{name}.hyp.txt").read_text().splitlines()) == n
    both = evaluate(evaluate_config(ckpt=[str(c) for c in ckpts], data_root=str(root),
                                    test_sets=sets[:1], out=str(tmp_path / "both.json")))
    assert both.extra["evaluated"]["checkpoints"] == [str(c) for c in ckpts]
    mine = (tmp_path / "one" / "test_2016_flickr.hyp.txt").read_text()
    assert (tmp_path / "both" / "test_2016_flickr.hyp.txt").read_text() != mine
    with pytest.raises(DataError, match=r"nowhere/multi30k/test_2016_flickr\.de\.gz: no such"):
        evaluate(evaluate_config(ckpt=str(ckpts[0]), data_root=str(tmp_path / "nowhere")))


@pytest.mark.slow
def test_evaluate_py_as_written(multi30k_run, tmp_path):
    root, ckpts = multi30k_run
    ckpt = tmp_path / "last.ckpt"
    ckpt.write_bytes(ckpts[1].read_bytes())
    env = {"SEQ2SEQ_DATA_DIR": str(root), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "evaluate.py", f"ckpt={ckpt}",
                          "test_sets=[test_2016_flickr]", "beam=5"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert "test_2016_flickr (40 sentences, beam 5): BLEU" in run.stdout
    record = RunRecord.read(tmp_path / "evaluations" / "last-beam5.json")
    assert record.config.beam == 5 and 0 < record.metrics["test/chrf"] < 100
    bad = subprocess.run([sys.executable, "evaluate.py", f"ckpt={ckpt}", "test_sets=[nope]"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and bad.stderr.startswith("error: test_sets: ")
