import functools
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
    multi30k.ensure_files(root, ("de", "en"), base_url=server)
    for split in ("train", "val", "test"):
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
