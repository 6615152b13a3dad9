"""A tiny trained run shared by the integration tests: 300 Multi30k pairs, a small vocabulary."""

from __future__ import annotations

from pathlib import Path

import pytest

from seq2seq.data.corpus import read_lines
from seq2seq.pipeline import train
from tests.conftest import compose_train


def tiny_overrides(tmp: Path, data_root: Path, n: int = 300) -> list[str]:
    """Overrides that train a tiny model on the first `n` Multi30k pairs written to `tmp`."""
    m = data_root / "multi30k"
    for split, name, k in (("train", "train", n), ("val", "val", 40),
                           ("test", "test_2016_flickr", 40)):
        for lang in ("de", "en"):
            lines = read_lines(m / f"{name}.{lang}.gz")[:k]
            (tmp / f"{split}.{lang}").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return [
        "data=parallel_files",
        *(f"data.{s}.{side}={tmp}/{s}.{lang}" for s in ("train", "val", "test")
          for side, lang in (("src", "de"), ("tgt", "en"))),
        f"data.cache_dir={tmp}/cache", "data.vocab_size=300", "data.max_tokens=400",
        "model=gru_bahdanau", "model.emb_size=32", "model.encoder.hidden_size=32",
        "model.decoder.hidden_size=48", "trainer.accelerator=cpu",
        "trainer.enable_progress_bar=false", "logger=csv", "show_examples=0",
    ]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, data_root):
    """(run dir, metrics, overrides) of a 2-epoch tiny training, tested greedy and beam 3."""
    tmp = tmp_path_factory.mktemp("tiny")
    overrides = tiny_overrides(tmp, data_root)
    run_dir = tmp / "run"
    cfg = compose_train([*overrides, f"run_dir={run_dir}", "trainer.max_epochs=2",
                         "test_beam=3"])
    metrics = train(cfg)
    return run_dir, metrics, overrides
