import pytest

from seq2seq.data.errors import DataError
from seq2seq.pipeline import build_datamodule
from tests.conftest import compose_train


def datamodule(*overrides: str):
    """The datamodule train.py would build with `overrides`."""
    return build_datamodule(compose_train(list(overrides)))


def parallel_files(tmp_path, *overrides: str):
    """data=parallel_files on tmp_path/s and tmp_path/t for every split."""
    files = [f"data.{split}.{side}={tmp_path / name}" for split in ("train", "val", "test")
             for side, name in (("src", "s"), ("tgt", "t"))]
    return datamodule("data=parallel_files", *files, f"data.cache_dir={tmp_path / 'c'}",
                      *overrides)


@pytest.fixture(scope="module")
def multi30k(data_root, cache_dir):
    dm = datamodule(f"data.root={data_root}", f"data.cache_dir={cache_dir}")
    dm.setup("fit")
    return dm


def test_token_batches_on_multi30k_train_are_at_least_90_percent_real(multi30k):
    loader = multi30k.train_dataloader()
    assert loader.batch_sampler.padding_efficiency() >= 0.90
    batch = next(iter(loader))
    assert batch.src.shape[0] * max(batch.src.shape[1], batch.tgt_in.shape[1]) <= 3000
    assert len(multi30k.datasets["train"]) == 29000 and len(multi30k.references("val")) == 1014


def test_languages_must_be_multi30k_languages(data_root):
    with pytest.raises(DataError, match="data.tgt_lang='ja'"):
        datamodule(f"data.root={data_root}", "data.tgt_lang=ja")


def test_empty_pairs_are_skipped_and_long_ones_dropped(tmp_path):
    src = ["ein hund", "", "eine katze", "sehr " * 80, "ein vogel"] * 20
    tgt = ["a dog", "", "a cat", "very " * 80, "a bird"] * 20
    for name, lines in (("s", src), ("t", tgt)):
        (tmp_path / name).write_text("\n".join(lines) + "\n")
    dm = parallel_files(tmp_path, "data.vocab_size=60", "data.max_len=30")
    dm.setup("fit")
    assert dm.filter_counts == {"kept": 60, "empty": 20, "too_long": 20}


def test_training_set_empty_after_filtering_is_an_error(tmp_path):
    (tmp_path / "s").write_text("ein langer satz hier\n" * 30)
    (tmp_path / "t").write_text("a long sentence here\n" * 30)
    dm = parallel_files(tmp_path, "data.vocab_size=30", "data.max_len=1")
    with pytest.raises(DataError, match="no training pairs left .*data.max_len=1"):
        dm.setup("fit")
