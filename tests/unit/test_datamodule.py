import gzip

import pytest
import torch

from seq2seq.data.datamodule import decoded_subset
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


def test_a_list_or_a_glob_of_training_files_trains_like_their_concatenation(tmp_path,
                                                                            monkeypatch):
    src = [f"ein hund {i}" for i in range(20)] + [f"eine katze {i}" for i in range(10)]
    tgt = [f"a dog {i}" for i in range(20)] + [f"a cat {i}" for i in range(10)]
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for lang, lines in (("de", src), ("en", tgt)):
        (corpus / f"a.{lang}").write_text("\n".join(lines[:20]) + "\n")
        (corpus / f"b.{lang}.gz").write_bytes(gzip.compress(("\n".join(lines[20:]) + "\n")
                                                             .encode()))
        (tmp_path / f"all.{lang}").write_text("\n".join(lines) + "\n")
    monkeypatch.chdir(tmp_path)  # relative paths, as typed on the command line
    rest = ["data=parallel_files", "data.val.src=all.de", "data.val.tgt=all.en",
            "data.test.src=all.de", "data.test.tgt=all.en", "data.cache_dir=cache",
            "data.vocab_size=40"]
    listed = datamodule(*rest, "data.train.src=[corpus/a.de,corpus/b.de.gz]",
                        "data.train.tgt=[corpus/a.en,corpus/b.en.gz]")
    globbed = datamodule(*rest, "data.train.src=corpus/*.de*", "data.train.tgt=corpus/*.en*")
    whole = datamodule(*rest, "data.train.src=all.de", "data.train.tgt=all.en")
    for dm in (whole, listed, globbed):
        dm.setup("fit")
    assert listed.sources("train") == globbed.sources("train") == src
    assert listed.references("train") == globbed.references("train") == tgt
    assert listed.description() == {"max_len": 100, "src": "de", "tgt": "en"}
    assert whole.description()["src"] == "all.de"
    # the caches are keyed by the files: the list and the glob name the same files and share
    # one model and one binarized corpus; the concatenation trains the same model
    assert listed.src_tokenizer.model_proto == whole.src_tokenizer.model_proto
    assert len(list((tmp_path / "cache").glob("spm-*.model"))) == 2
    assert listed.datasets["train"].split.folder == globbed.datasets["train"].split.folder
    assert all(torch.equal(a, b) for a, b in zip(listed.datasets["train"].src,
                                                 whole.datasets["train"].src, strict=True))


def test_a_training_pattern_matching_nothing_fails_when_the_direction_is_recorded(tmp_path):
    dm = parallel_files(tmp_path, f"data.train.src={tmp_path}/corpus/*.de")
    with pytest.raises(DataError, match=r"^data.train.src: the pattern .*corpus/\*.de' matches "
                                        r"no file \(looked in .*corpus, which is not a folder\)"):
        dm.description()


def test_the_readme_command_finds_the_files_of_every_multi30k_test_set(data_root):
    """data.test_sets lists the sets and the datamodule names each one's source and reference
    files (tests/integration/test_test_sets.py scores them)."""
    sets = ["test_2016_flickr", "test_2017_flickr", "test_2017_mscoco", "test_2018_flickr"]
    dm = datamodule("experiment=multi30k_quick", f"data.test_sets=[{','.join(sets)}]",
                    f"data.root={data_root}")
    assert dm.test_sets == sets
    for i, name in enumerate(sets):  # the first set is the "test" split
        files = dm.files["test" if i == 0 else name]
        assert files["src"].endswith(f"multi30k/{name}.de.gz"), name
        assert files["tgt"].endswith(f"multi30k/{name}.en.gz"), name
    assert datamodule(f"data.root={data_root}").test_sets == ["test_2016_flickr"]


@pytest.mark.parametrize("overrides, message", [
    (["data.test_sets=[test_2017_mscoco]", "data.src_lang=cs"],
     "data.test_sets: test_2017_mscoco has no cs text"),
    (["data.test_sets=[test_2016_flickr,test_2016]"],
     "data.test_sets: 'test_2016' is not a Multi30k task 1 test set; choose from: "
     "test_2016_flickr"),
])
def test_unknown_or_unsupported_test_sets_are_refused_at_construction(data_root, overrides,
                                                                       message):
    with pytest.raises(DataError, match=message):
        datamodule(f"data.root={data_root}", *overrides)


def test_decoded_subset_is_the_first_n_pairs_or_all():
    assert decoded_subset(5, 3).tolist() == [True, True, True, False, False]
    assert decoded_subset(3, 10).tolist() == [True] * 3
    assert decoded_subset(4, None).all() and decoded_subset(0, 2).numel() == 0


def test_val_max_sentences_fixes_the_decoded_validation_pairs(tmp_path):
    (tmp_path / "s").write_text("".join(f"ein satz {i}\n" for i in range(30)))
    (tmp_path / "t").write_text("".join(f"a sentence {i}\n" for i in range(30)))
    dm = parallel_files(tmp_path, "data.vocab_size=40", "data.val_max_sentences=12")
    first = dm.decoded_mask("val")
    assert int(first.sum()) == 12 and first[:12].all() and dm.decoded_mask("val") is first
    assert dm.decoded_mask("test") is None
    assert parallel_files(tmp_path, "data.val_max_sentences=99").decoded_mask("val").sum() == 30
    assert parallel_files(tmp_path).decoded_mask("val") is None
    with pytest.raises(DataError, match="data.val_max_sentences=0"):
        parallel_files(tmp_path, "data.val_max_sentences=0")
