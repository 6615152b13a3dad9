import logging
import unicodedata

import pytest

from seq2seq.data import tokenizer
from seq2seq.data.corpus import read_lines
from seq2seq.data.errors import DataError
from seq2seq.data.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID, train_or_load


@pytest.fixture(scope="module")
def multi30k_text(data_root):
    return read_lines(data_root / "multi30k" / "train.de.gz") + read_lines(
        data_root / "multi30k" / "train.en.gz")


@pytest.fixture(scope="module")
def joint(multi30k_text, cache_dir):
    return train_or_load(multi30k_text, 8000, "unigram", cache_dir, "joint")


def test_special_ids_are_fixed(joint):
    sp = joint.sp
    assert (sp.pad_id(), sp.unk_id(), sp.bos_id(), sp.eos_id()) == (PAD_ID, UNK_ID, BOS_ID,
                                                                     EOS_ID)
    assert len(joint) == 8000


def test_multi30k_lines_round_trip(joint, multi30k_text):
    # nmt_nfkc normalization changes double spaces and NBSP; BLEU uses raw references anyway
    lines = [ln for ln in multi30k_text[::50]
             if "  " not in ln and ln == ln.strip() and unicodedata.normalize("NFKC", ln) == ln]
    assert len(lines) > 1000
    ids = joint.encode(lines)
    assert sum(i == UNK_ID for seq in ids for i in seq) == 0  # full character coverage
    assert joint.decode(ids) == lines


def test_second_call_loads_from_cache_without_training(multi30k_text, cache_dir, joint,
                                                       monkeypatch):
    files = sorted(cache_dir.glob("spm-joint-*.model"))  # other tests cache models here too
    assert files

    def no_training(*args, **kwargs):
        raise AssertionError("SentencePiece trained again although the model is cached")

    monkeypatch.setattr(tokenizer, "_train_proto", no_training)
    again = train_or_load(multi30k_text, 8000, "unigram", cache_dir, "joint")
    assert again.model_proto == joint.model_proto
    assert sorted(cache_dir.glob("spm-joint-*.model")) == files


def test_the_cached_file_is_what_is_loaded(tmp_path):
    """A model planted under the cache name of other settings is what a call with those
    settings returns: the cache decides, not a training that happens to give the same bytes."""
    text = ["ein kleiner hund", "zwei große katzen"] * 50
    planted = train_or_load(text, 40, "bpe", tmp_path, "tiny")
    (path,) = tmp_path.glob("spm-tiny-bpe40-*.model")
    unigram = train_or_load(text, 40, "unigram", tmp_path / "other", "tiny")
    assert unigram.model_proto != planted.model_proto
    (cached,) = (tmp_path / "other").glob("spm-tiny-unigram40-*.model")
    cached.write_bytes(path.read_bytes())
    assert train_or_load(text, 40, "unigram", tmp_path / "other", "tiny").model_proto == \
        planted.model_proto


def test_bpe_option(cache_dir):
    tok = train_or_load(["ein kleiner hund", "zwei große katzen"] * 50, 40, "bpe", cache_dir,
                        "tiny")
    assert tok.sp.decode(tok.encode(["ein hund"])[0]) == "ein hund"


# -- text SentencePiece cannot train on: one DataError naming the files, nothing cached ---------

FILES = "/d/train.de and /d/train.en"


def _fails(sentences, vocab_size, cache_dir, model_type="unigram") -> str:
    """The DataError message of training on `sentences`; checks nothing was cached (the empty
    lock file that serialises training may stay)."""
    with pytest.raises(DataError) as err:
        train_or_load(sentences, vocab_size, model_type, cache_dir, "t", source=FILES)
    assert not cache_dir.exists() or [p for p in cache_dir.iterdir() if p.suffix != ".lock"] == []
    return str(err.value)


def test_text_of_empty_lines_names_the_files(tmp_path):
    for lines in ([], ["", "  ", "\t"]):
        msg = _fails(lines, 100, tmp_path / "c")
        assert msg.startswith(f"every line of {FILES} is empty")
        assert "one sentence a line" in msg


@pytest.mark.parametrize("model_type", ["unigram", "bpe"])
def test_fewer_pieces_than_characters_says_the_smallest_vocab_size(tmp_path, model_type):
    # 26 letters and the word boundary, plus <pad> <unk> <s> </s>: 31 pieces at least
    msg = _fails(["abcdefghijklmnopqrstuvwxyz"] * 20, 10, tmp_path / "c", model_type)
    assert msg.startswith(f"data.vocab_size=10 is too small for {FILES}")
    assert "27 distinct characters" in msg
    assert msg.endswith("raise data.vocab_size to at least 31")
    assert train_or_load(["abcdefghijklmnopqrstuvwxyz"] * 20, 31, model_type, tmp_path / "c",
                         "t", source=FILES)


@pytest.mark.parametrize("vocab_size", [-1, 0, 3, 4])
def test_vocab_size_without_room_beside_the_special_pieces(tmp_path, vocab_size):
    msg = _fails(["ein hund"] * 20, vocab_size, tmp_path / "c")
    assert msg.startswith(f"data.vocab_size={vocab_size} leaves no room for subwords")
    assert "<pad>, <unk>, <s> and </s>" in msg and FILES in msg
    assert msg.endswith("at least 11")  # e i n h u d, the word boundary, 4 special pieces


def test_vocab_size_that_is_not_a_number(tmp_path):
    msg = _fails(["ein hund"] * 20, "8k", tmp_path / "c")
    assert msg.startswith("data.vocab_size='8k' is not a whole number")


def test_lines_longer_than_sentencepiece_takes(tmp_path, caplog):
    long = "ab" * 3000  # 6000 bytes; SentencePiece skips lines over 4192
    msg = _fails([long, "", long], 30, tmp_path / "c")
    assert msg.startswith(f"every non-empty line of {FILES} is longer than 4192 bytes")
    assert "split the long lines" in msg
    with caplog.at_level(logging.WARNING, logger="seq2seq.data.tokenizer"):
        train_or_load([long] + ["ein hund"] * 5, 30, "unigram", tmp_path / "c", "t",
                      source=FILES)
    assert f"1 of 6 lines of {FILES} are longer than 4192 bytes" in caplog.text


def test_text_of_only_invisible_characters(tmp_path):
    # NFKC normalization removes zero-width spaces and control characters: nothing is left
    msg = _fails(["\u200b", "\x01\x02", "\u200b\u200b"] * 5, 100, tmp_path / "c")
    assert msg.startswith(f"no text of {FILES} is left for SentencePiece")
    assert "U+200B" in msg


@pytest.mark.parametrize("model_type", ["unigram", "bpe"])
def test_vocab_larger_than_the_text_allows_gives_a_smaller_model_and_a_warning(
        tmp_path, caplog, model_type):
    with caplog.at_level(logging.WARNING, logger="seq2seq.data.tokenizer"):
        tok = train_or_load(["ein kleiner hund"] * 10, 8000, model_type, tmp_path, "t",
                            source=FILES)
    assert 11 < len(tok) < 100
    assert (f"the SentencePiece model of {FILES} has {len(tok)} pieces, not "
            "data.vocab_size=8000") in caplog.text


def test_damaged_cached_model_is_trained_again(tmp_path, caplog):
    lines = ["ein kleiner hund", "zwei große katzen"] * 50
    tok = train_or_load(lines, 40, "bpe", tmp_path, "t")
    (cached,) = tmp_path.glob("spm-t-*.model")
    cached.write_bytes(tok.model_proto[:100])
    with caplog.at_level(logging.WARNING, logger="seq2seq.data.tokenizer"):
        again = train_or_load(lines, 40, "bpe", tmp_path, "t")
    assert "is unreadable" in caplog.text and str(cached) in caplog.text
    assert again.model_proto == tok.model_proto
    assert cached.read_bytes() == tok.model_proto


def test_cache_folder_that_cannot_be_written_is_named(tmp_path):
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder should be")
    with pytest.raises(DataError) as err:
        train_or_load(["ein hund"] * 20, 30, "unigram", blocker, "t")
    assert str(err.value).startswith(f"cannot write the cache folder {blocker} (it is a file)")
    assert "data.cache_dir" in str(err.value)
