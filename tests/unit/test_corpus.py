import gzip
from pathlib import Path

import pytest

from seq2seq.data import corpus
from seq2seq.data.corpus import corpus_name, read_lines, read_parallel
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


def write(path, lines):
    """`lines` into `path`, gzip-compressed when its name ends in .gz."""
    data = "".join(line + "\n" for line in lines).encode("utf-8")
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


def test_a_list_of_a_plain_and_a_gzip_file_reads_their_lines_in_order(tmp_path):
    write(tmp_path / "a.de", ["a1", "a2"])
    write(tmp_path / "a.en", ["A1", "A2"])
    write(tmp_path / "b.de.gz", ["b1", "b2", "b3"])
    write(tmp_path / "b.en.gz", ["B1", "B2", "B3"])
    text = read_parallel([tmp_path / "a.de", str(tmp_path / "b.de.gz")],
                         [tmp_path / "a.en", str(tmp_path / "b.en.gz")])
    assert text.src == ["a1", "a2", "b1", "b2", "b3"]
    assert text.tgt == ["A1", "A2", "B1", "B2", "B3"]
    assert text.src_files == [tmp_path / "a.de", tmp_path / "b.de.gz"]
    assert text.src_path == f"{tmp_path / 'a.de'} + {tmp_path / 'b.de.gz'}"


def test_a_glob_pairs_files_in_sorted_order(tmp_path, monkeypatch, caplog):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in ("wiki", "books", "news"):  # written out of order
        write(corpus / f"{name}.de", [f"{name} de {i}" for i in range(2)])
        write(corpus / f"{name}.en", [f"{name} en {i}" for i in range(2)])
    monkeypatch.chdir(tmp_path)  # a relative pattern, as typed on the command line
    text = read_parallel("corpus/*.de", "corpus/*.en")
    assert [p.name for p in text.src_files] == ["books.de", "news.de", "wiki.de"]
    assert [p.name for p in text.tgt_files] == ["books.en", "news.en", "wiki.en"]
    assert text.src == [f"{n} de {i}" for n in ("books", "news", "wiki") for i in range(2)]
    assert text.tgt == [s.replace(" de ", " en ") for s in text.src]
    assert not caplog.records  # the names line up: no warning


def test_a_pattern_matching_no_file_names_the_pattern_and_the_folder(tmp_path, monkeypatch):
    (tmp_path / "corpus").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError) as err:
        read_parallel("corpus/*.de", "corpus/*.en", ("data.train.src", "data.train.tgt"))
    msg = str(err.value)
    assert msg.startswith("data.train.src: the pattern 'corpus/*.de' matches no file")
    assert f"looked in {(tmp_path / 'corpus').resolve()}" in msg


def test_sides_naming_different_numbers_of_files_fail(tmp_path):
    for name in ("a.de", "b.de", "a.en"):
        write(tmp_path / name, ["x"])
    with pytest.raises(DataError, match=r"data.train.src names 2 files \(.*a.de \+ .*b.de\) "
                                        r"but data.train.tgt names 1 \(.*a.en\)"):
        read_parallel(str(tmp_path / "*.de"), str(tmp_path / "*.en"),
                      ("data.train.src", "data.train.tgt"))


def test_a_pair_of_unequal_files_is_named_with_both_counts(tmp_path):
    write(tmp_path / "a.de", ["x", "y"])
    write(tmp_path / "a.en", ["x", "y"])
    write(tmp_path / "b.de.gz", ["x", "y", "z"])
    write(tmp_path / "b.en", ["x"])
    with pytest.raises(DataError, match=r"b.de.gz has 3 lines but .*b.en has 1 lines"):
        read_parallel([tmp_path / "a.de", tmp_path / "b.de.gz"],
                      [tmp_path / "a.en", tmp_path / "b.en"])


def test_invalid_utf8_in_a_later_file_names_that_file_and_its_own_line(tmp_path):
    write(tmp_path / "a.de", ["x", "y", "z"])
    write(tmp_path / "a.en", ["x", "y", "z"])
    (tmp_path / "b.de.gz").write_bytes(gzip.compress(b"gut\nschlecht \xff\n"))
    write(tmp_path / "b.en.gz", ["good", "bad"])
    with pytest.raises(DataError, match=r"b.de.gz:2: invalid UTF-8"):
        read_parallel(str(tmp_path / "*.de*"), str(tmp_path / "*.en*"))


def test_a_missing_file_of_a_list_is_named_before_any_is_read(tmp_path, monkeypatch):
    write(tmp_path / "a.de", ["x"])
    write(tmp_path / "a.en", ["x"])
    write(tmp_path / "b.de", ["x"])
    read = []
    monkeypatch.setattr(corpus, "iter_lines", lambda p: read.append(p) or iter(()))
    with pytest.raises(DataError, match=r"b.en: file not found"):
        read_parallel([tmp_path / "a.de", tmp_path / "b.de"],
                      [tmp_path / "a.en", tmp_path / "b.en"])
    assert read == []


def test_pairs_whose_names_differ_beyond_the_language_suffix_warn(tmp_path, caplog):
    for name in ("news.de", "news.en", "wiki.de", "books.en"):
        write(tmp_path / name, ["x"])
    text = read_parallel([tmp_path / "news.de", tmp_path / "wiki.de"],
                         [tmp_path / "news.en", tmp_path / "books.en"])
    assert len(text) == 2
    assert "1 of 2 file pairs differ in more than the language suffix" in caplog.text
    assert f"{tmp_path / 'wiki.de'} with {tmp_path / 'books.en'}" in caplog.text


def test_corpus_name_is_the_file_name_or_the_common_language_suffix():
    assert corpus_name([Path("c/train.de")]) == "train.de"
    assert corpus_name([Path("c/news.de"), Path("c/wiki.de.gz")]) == "de"
    assert corpus_name([Path("c/news.txt"), Path("c/wiki.src"), Path("c/x")]) == "news.txt+2 more"
