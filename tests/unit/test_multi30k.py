import functools
import gzip
import hashlib
import http.server
import shutil
import threading

import pytest

from seq2seq.data import multi30k
from seq2seq.data.corpus import file_digest
from seq2seq.data.errors import DataError


@pytest.fixture
def server(data_root, tmp_path):
    """A local HTTP server on 127.0.0.1 serving the Multi30k raw files (one of them corrupt)."""
    served = tmp_path / "served"
    shutil.copytree(data_root / "multi30k", served)
    (served / "val.cs.gz").write_bytes(b"not the real file")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


def test_missing_files_are_downloaded_and_verified(server, tmp_path):
    root = tmp_path / "data"
    multi30k.ensure_files(root, ("de", "en"), base_url=server, test_sets=["test_2016_flickr"])
    for split in ("train", "val", "test_2016_flickr"):
        for lang in ("de", "en"):
            path = multi30k.split_path(root, split, lang)
            assert file_digest(path) == multi30k.SHA256[path.name]
    assert not list((root / "multi30k").glob(".*"))  # no temporary file left behind


def test_corrupt_download_leaves_no_file(server, tmp_path):
    dest = tmp_path / "data" / "multi30k" / "val.cs.gz"
    with pytest.raises(DataError, match="sha256"):
        multi30k.download("val.cs.gz", dest, base_url=server)
    assert not dest.exists() and not list(dest.parent.iterdir())


def test_unreachable_server_gives_a_clear_message(tmp_path):
    with pytest.raises(DataError, match="could not download .*SEQ2SEQ_DATA_DIR"):
        multi30k.download("val.de.gz", tmp_path / "val.de.gz", base_url="http://127.0.0.1:9/",
                          timeout=2)


def test_unknown_language_lists_the_choices():
    with pytest.raises(DataError, match="data.src_lang='xx'.*de, en, fr, cs"):
        multi30k.check_language("xx", "data.src_lang")


def test_later_test_sets_are_downloaded_and_checked_against_their_sha256(server, tmp_path,
                                                                          monkeypatch):
    """The 2017 and 2018 test sets come from the same server under their official names and
    are checked against the table's sha256: a file with other content is refused (naming the
    official hash) until the table holds that file's hash."""
    served = {f"{name}.{lang}.gz": gzip.compress(f"{name} {lang} line\n".encode() * 3)
              for name in ("test_2017_flickr", "test_2018_flickr") for lang in ("de", "en")}
    folder = tmp_path / "served"  # the server fixture's folder
    for file, content in served.items():
        (folder / file).write_bytes(content)
    root = tmp_path / "data"
    shutil.copytree(folder, root / "multi30k", ignore=shutil.ignore_patterns("test_201[78]*"))
    sets = ["test_2017_flickr", "test_2018_flickr"]
    with pytest.raises(DataError, match="test_2017_flickr.de.gz: sha256 .* does not match the "
                       "expected a2c89666db00c495cd8513b9d708d5a3acc205d7de312ef2bf5fb7ebc1540aee"):
        multi30k.ensure_files(root, ("de", "en"), base_url=server, test_sets=sets)
    assert not (root / "multi30k" / "test_2017_flickr.de.gz").exists()
    for file, content in served.items():
        monkeypatch.setitem(multi30k.SHA256, file, hashlib.sha256(content).hexdigest())
    multi30k.ensure_files(root, ("de", "en"), base_url=server, test_sets=sets)
    for file, content in served.items():
        assert (root / "multi30k" / file).read_bytes() == content
    assert multi30k.split_path(root, "test_2018_flickr", "en") == root / "multi30k" / \
        "test_2018_flickr.en.gz"


def test_every_official_test_file_has_a_sha256():
    files = {f"{name}.{lang}.gz" for name, langs in multi30k.TEST_SETS.items() for lang in langs}
    assert files <= set(multi30k.SHA256) and len(files) == 14
    assert all(len(multi30k.SHA256[f]) == 64 for f in files)


@pytest.mark.parametrize("names, langs, message", [
    (["test_2019_flickr"], ("de", "en"),
     "data.test_sets: 'test_2019_flickr' is not a Multi30k task 1 test set; choose from: "
     "test_2016_flickr .*test_2017_flickr .*test_2017_mscoco .*test_2018_flickr"),
    (["test_2016_flickr", "test_2017_mscoco"], ("cs", "en"),
     "data.test_sets: test_2017_mscoco has no cs text; .*test_2017_mscoco \\(de, en, fr\\)"),
    (["test_2017_flickr"], ("en", "cs"), "data.test_sets: test_2017_flickr has no cs text"),
    ([], ("de", "en"), "data.test_sets is empty; .*test_2016_flickr"),
    (["test_2016_flickr", "test_2016_flickr"], ("de", "en"), "names a test set twice"),
])
def test_unknown_or_unsupported_test_sets_are_refused(names, langs, message):
    with pytest.raises(DataError, match=message):
        multi30k.check_test_sets(names, langs)


def test_every_test_set_in_its_languages_is_accepted():
    multi30k.check_test_sets(["test_2018_flickr", "test_2016_flickr"], ("cs", "de"))
    multi30k.check_test_sets(list(multi30k.TEST_SETS), ("fr", "en"))
