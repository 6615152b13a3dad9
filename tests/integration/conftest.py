"""A tiny trained run shared by the integration tests: 300 Multi30k pairs, a small vocabulary."""

from __future__ import annotations

import contextlib
import gzip
from collections.abc import Iterator
from pathlib import Path

import pytest

from seq2seq import pipeline
from seq2seq.data.corpus import read_lines
from seq2seq.module import Seq2SeqModule
from seq2seq.pipeline import train
from tests.conftest import compose_train

# a tiny model trained on the CPU in float32 (the default `auto` would pick bf16 on some machines
# only), with a small vocabulary and batches, that prints no examples; later overrides win
TINY = ["trainer.precision=32-true", "data.vocab_size=300", "data.max_tokens=400", "model=gru_bahdanau", "model.emb_size=32",
        "model.encoder.hidden_size=32", "model.decoder.hidden_size=48", "trainer.accelerator=cpu",
        "trainer.enable_progress_bar=false", "logger=csv", "show_examples=0"]

# the documented commands' default models narrowed, for tests of the commands as written (the
# parts, paths and options stay those of the command): a 1,000-piece vocabulary, 64 units and
# batches of a few sentences. An untrained model decodes every validation sentence to its
# length limit, and in bf16 on a CPU without native bf16 (emulated) the full-size model took
# minutes a step; the full sizes are trained by the recipes, not by tests
NARROW = ["data.vocab_size=1000", "data.max_tokens=500", "data.eval_max_tokens=500",
          "model.emb_size=64", "model.encoder.hidden_size=64", "model.decoder.hidden_size=64"]


def tiny_multi30k(root: Path, data_root: Path, extra: dict[str, int], n: int = 300) -> Path:
    """root/multi30k/ holding the first `n` training pairs, 40 validation and 40
    test_2016_flickr pairs (de, en) of the Multi30k copy, and for each `extra` test set name a
    small stand-in of that many pairs (validation pairs 40, 41, ...). Returns root."""
    m, out = data_root / "multi30k", root / "multi30k"
    out.mkdir(parents=True, exist_ok=True)
    for name, k in (("train", n), ("val", 40), ("test_2016_flickr", 40)):
        for lang in ("de", "en"):
            lines = read_lines(m / f"{name}.{lang}.gz")[:k]
            (out / f"{name}.{lang}.gz").write_bytes(gzip.compress(
                ("\n".join(lines) + "\n").encode("utf-8")))
    for name, k in extra.items():
        for lang in ("de", "en"):
            lines = read_lines(m / f"val.{lang}.gz")[40:40 + k]
            (out / f"{name}.{lang}.gz").write_bytes(gzip.compress(
                ("\n".join(lines) + "\n").encode("utf-8")))
    return root


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
        f"data.cache_dir={tmp}/cache", *TINY,
    ]


def detached_copy(module: Seq2SeqModule) -> Seq2SeqModule:
    """A module of its own (no trainer) holding a copy of `module`'s weights and its
    SentencePiece models, in eval mode: the trained model as it is in memory."""
    copy = Seq2SeqModule(module.config, module.hparams["src_vocab_size"],
                         module.hparams["tgt_vocab_size"])
    copy.load_state_dict(module.state_dict())
    copy.set_tokenizers(module.src_tokenizer, module.tgt_tokenizer)
    return copy.eval()


@contextlib.contextmanager
def kept_as_training_ended() -> Iterator[list[Seq2SeqModule]]:
    """Within it, train() leaves a detached_copy of its module as fitting ended, before its test
    phase loads the best checkpoint into it, in the list it yields (train() must test)."""
    kept: list[Seq2SeqModule] = []
    real = pipeline._test

    def test_after_copying(cfg, trainer, module, datamodule, run_dir):
        kept.append(detached_copy(module))
        return real(cfg, trainer, module, datamodule, run_dir)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pipeline, "_test", test_after_copying)
        yield kept


@pytest.fixture(scope="session")
def tiny_training(tmp_path_factory, data_root):
    """(run dir, metrics, overrides, trained) of a 2-epoch tiny training, tested greedy and
    beam 3; trained: the model as training ended (kept_as_training_ended), what last.ckpt saved."""
    tmp = tmp_path_factory.mktemp("tiny")
    overrides = tiny_overrides(tmp, data_root)
    run_dir = tmp / "run"
    cfg = compose_train([*overrides, f"run_dir={run_dir}", "trainer.max_epochs=2",
                         "test_beam=3"])
    with kept_as_training_ended() as kept:
        metrics = train(cfg)
    (trained,) = kept
    return run_dir, metrics, overrides, trained


@pytest.fixture(scope="session")
def tiny_run(tiny_training):
    """(run dir, metrics, overrides) of tiny_training."""
    return tiny_training[:3]
