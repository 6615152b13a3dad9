import unicodedata

import pytest

from seq2seq.data.corpus import read_lines
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


def test_second_call_loads_from_cache(multi30k_text, cache_dir, joint):
    files = sorted(cache_dir.glob("spm-joint-*.model"))
    assert len(files) == 1
    again = train_or_load(multi30k_text, 8000, "unigram", cache_dir, "joint")
    assert again.model_proto == joint.model_proto
    assert sorted(cache_dir.glob("spm-joint-*.model")) == files


def test_bpe_option(cache_dir):
    tok = train_or_load(["ein kleiner hund", "zwei große katzen"] * 50, 40, "bpe", cache_dir,
                        "tiny")
    assert tok.sp.decode(tok.encode(["ein hund"])[0]) == "ein hund"
