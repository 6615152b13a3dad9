"""Every string a JSON body can carry gets an answer from the server, never a 500: a
translation (200) or a 4xx that names what is wrong. JSON strings may hold any code point,
lone surrogates included (as \\ud800 escapes), which no UTF-8 text can."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from seq2seq.runtime import Translator
from seq2seq.serving.app import create_app
from seq2seq.serving.backends import ExportBackend
from seq2seq.serving.schema import Limits

EXPORT = Path(__file__).resolve().parents[1] / "fixtures" / "legacy" / "lstm_bahdanau_export"
# any code point, surrogates and control characters included
ANY_TEXT = st.text(st.characters(codec=None, categories=None), max_size=40)


@pytest.fixture(scope="module")
def client():
    from fastapi.testclient import TestClient

    app = create_app(ExportBackend(str(EXPORT), 4000, threads=1),
                     Limits(max_body_bytes=65536, max_chars=300, max_texts=8, max_beam=4,
                            max_nbest=4), window_ms=1, max_tokens=4000, max_queue=64)
    with TestClient(app) as c:
        yield c


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(ANY_TEXT, min_size=1, max_size=3))
@example(texts=["\ud800"])
@example(texts=["ok", "a\udfffb"])
@example(texts=["\x00", "\u2028", "\ufeff", "\U0010ffff"])
def test_any_json_string_gets_a_200_or_a_4xx(client, texts):
    body = json.dumps({"text": texts, "beam": 2})  # ensure_ascii: surrogates as escapes
    r = client.post("/translate", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 200 or 400 <= r.status_code < 500, (r.status_code, r.text)
    encodable = all(not any(0xD800 <= ord(c) <= 0xDFFF for c in t) for t in texts)
    if encodable:
        assert r.status_code == 200, r.text
        assert len(r.json()["translations"]) == len(texts)
    else:
        assert r.status_code == 422 and "lone surrogate" in r.text


def test_the_runtime_names_a_text_it_cannot_encode():
    translator = Translator(EXPORT, threads=1)
    with pytest.raises(ValueError, match=r"text 1 \('a\\ud800b'\) cannot be encoded: character "
                                         r"1 is U\+D800, a lone surrogate"):
        translator.translate(["ok", "a\ud800b"])
