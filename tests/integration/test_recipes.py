"""Every documented recipe (conf/experiment/*.yaml) runs end to end, not only composes: three
updates of its model narrowed (NARROW) on a tiny Multi30k copy, a validation, its checkpoints,
and the test phase on a small test set."""

from __future__ import annotations

import gzip
import json

import pytest

from seq2seq.data.corpus import read_lines
from seq2seq.pipeline import train
from tests.conftest import CONF, compose_train
from tests.integration.conftest import NARROW, tiny_multi30k

EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
TEST_PAIRS = 8  # an untrained model decodes every test sentence to its length limit


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory, data_root):
    """data.root of a tiny Multi30k copy whose test set holds TEST_PAIRS pairs, and a cache
    folder the recipes share (the same narrowed vocabulary: SentencePiece trains once)."""
    tmp = tmp_path_factory.mktemp("recipes")
    root = tiny_multi30k(tmp / "data", data_root, {})
    for lang in ("de", "en"):
        path = root / "multi30k" / f"test_2016_flickr.{lang}.gz"
        lines = read_lines(path)[:TEST_PAIRS]
        path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode("utf-8")))
    return root, tmp / "cache"


@pytest.mark.slow
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_the_recipe_trains_validates_checkpoints_and_tests(experiment, tiny_data, tmp_path):
    root, cache = tiny_data
    run_dir = tmp_path / "run"
    cfg = compose_train([f"experiment={experiment}", f"data.root={root}",
                         f"data.cache_dir={cache}", *NARROW, f"run_dir={run_dir}",
                         "trainer.max_steps=3", "trainer.val_check_interval=3",
                         "trainer.check_val_every_n_epoch=null", "trainer.limit_val_batches=1",
                         "data.val_max_sentences=4", "show_examples=0"])
    assert cfg.name == experiment
    metrics = train(cfg)
    results = json.loads((run_dir / "results.json").read_text())
    assert (results["name"], results["steps"]) == (experiment, 3)
    assert "val/loss" in metrics and "test/bleu" in metrics
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert list((run_dir / "checkpoints").glob("best-*step3.ckpt"))
    hyps = (run_dir / "translations" / "test.hyp.txt").read_text(encoding="utf-8").splitlines()
    assert len(hyps) == TEST_PAIRS
