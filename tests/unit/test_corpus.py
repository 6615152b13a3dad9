import gzip

import pytest

from seq2seq.data.corpus import read_lines, read_parallel
from seq2seq.data.errors import DataError


def test_plain_and_gzip_files_read_alike(tmp_path):
    text = "eins\nzwei  drei\n\nvier\n"
    (tmp_path / "a.txt").write_text(text, encoding="utf-8")
    with gzip.open(tmp_path / "a.txt.gz", "wt", encoding="utf-8") as f:
        f.write(text)
    assert read_lines(tmp_path / "a.txt") == ["eins", "zwei  drei", "", "vier"]
    assert read_lines(tmp_path / "a.txt.gz") == read_lines(tmp_path / "a.txt")


def test_line_count_mismatch_names_both_files_and_counts(tmp_path):
    (tmp_path / "T.de").write_text("a\nb\nc\n")
    (tmp_path / "T.en").write_text("a\nb\n")
    with pytest.raises(DataError, match=r"T.de has 3 lines but .*T.en has 2 lines"):
        read_parallel(tmp_path / "T.de", tmp_path / "T.en")


def test_invalid_utf8_names_file_and_line(tmp_path):
    (tmp_path / "bad.de").write_bytes(b"gut\nschlecht \xff\n")
    with pytest.raises(DataError, match=r"bad.de:2: invalid UTF-8"):
        read_lines(tmp_path / "bad.de")


def test_missing_file_says_where_it_looked(tmp_path):
    with pytest.raises(DataError, match="file not found") as err:
        read_lines(tmp_path / "nope.de")
    msg = str(err.value)
    assert str((tmp_path / "nope.de").resolve()) in msg
    assert "data=multi30k" in msg and "SEQ2SEQ_DATA_DIR" in msg
