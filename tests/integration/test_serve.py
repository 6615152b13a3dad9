"""The translation server (serve.py) as a process on 127.0.0.1: it translates like
translate.py, answers bad input with a clear 4xx and keeps serving, refuses to start on a bad
model, batches concurrent requests, and finishes requests in flight on SIGTERM."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import MAX_TOKENS, ROOT, TOOLS

SENTENCES = ["Ein Hund läuft über eine Wiese.", "Zwei Männer spielen Fußball.",
             "Eine Frau liest ein Buch."]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(args: list[str], timeout: float = 300) -> tuple[subprocess.Popen, str]:
    """serve.py with `args` on a free port of 127.0.0.1, once /health answers: (process, url)."""
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "serve.py"), f"port={port}",
                             "threads=1", "log_level=warning", *args],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"serve.py exited with {proc.returncode}: {proc.stderr.read()}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise AssertionError(f"serve.py did not answer /health within {timeout} s")


def stop_server(proc: subprocess.Popen) -> int:
    """SIGTERM, then the exit status once the server has shut down gracefully: 0 (uvicorn
    re-raises the signal after a graceful shutdown, so -SIGTERM counts as 0)."""
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=60)
        return 0 if code == -signal.SIGTERM else code
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


@pytest.fixture(scope="module")
def ckpt(tiny_run) -> Path:
    return tiny_run[0] / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="module")
def expected(ckpt) -> dict[str, str]:
    """translate.py's (translate_lines') greedy translation of each of SENTENCES."""
    from seq2seq.checkpoint import load_module
    from seq2seq.translation import translate_lines

    return dict(zip(SENTENCES, translate_lines(load_module(ckpt), SENTENCES,
                                               max_tokens=MAX_TOKENS), strict=True))


@pytest.fixture(scope="module")
def server(ckpt):
    """A server with small limits, so that bad input is cheap to send."""
    proc, url = start_server([f"ckpt={ckpt}", "batching.max_queue=64", "limits.max_texts=32",
                              "limits.max_chars=300", "limits.max_body_bytes=65536",
                              "limits.max_beam=8", "batching.workers=2", "threads=1"])
    yield url
    assert stop_server(proc) == 0


def still_serving(url: str, expected: dict[str, str]) -> None:
    """/health answers and a normal request translates as translate.py does."""
    assert httpx.get(f"{url}/health", timeout=10).json()["status"] == "ok"
    r = httpx.post(f"{url}/translate", json={"text": SENTENCES[0]}, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json() == {"translations": [{"text": expected[SENTENCES[0]]}]}


def test_translates_like_translate_py(server, expected):
    r = httpx.post(f"{server}/translate", json={"text": SENTENCES + [""]}, timeout=60)
    assert r.status_code == 200, r.text
    assert [t["text"] for t in r.json()["translations"]] == [expected[s] for s in SENTENCES] + [""]
    still_serving(server, expected)


def test_nbest_scores_and_attention(server):
    r = httpx.post(f"{server}/translate", timeout=60, json={
        "text": SENTENCES[1], "beam": 4, "nbest": 3, "scores": True, "attention": True})
    assert r.status_code == 200, r.text
    (t,) = r.json()["translations"]
    assert len(t["nbest"]) == 3 and t["text"] == t["nbest"][0]["text"]
    scores = [h["score"] for h in t["nbest"]]
    assert scores == sorted(scores, reverse=True)
    att = t["nbest"][0]["attention"]
    assert att["source"][-1] == "</s>" and len(att["weights"]) == len(att["target"])
    assert all(len(row) == len(att["source"]) and abs(sum(row) - 1) < 1e-3
               for row in att["weights"])


def test_info_and_openapi(server, ckpt):
    info = httpx.get(f"{server}/info", timeout=10).json()
    assert info["model"] == [str(ckpt)] and info["parameters"] > 0
    assert info["source_lang"] and info["target_lang"]
    assert info["decode"]["beam"] >= 1 and info["limits"]["max_texts"] == 32
    assert info["batching"]["workers"] == 2 and info["threads"] == 1
    spec = httpx.get(f"{server}/openapi.json", timeout=10).json()
    assert "/translate" in spec["paths"] and httpx.get(f"{server}/docs").status_code == 200


BAD = {  # name: (body bytes, status, words the answer must hold)
    "malformed JSON": (b'{"text": "Ein Hund', 422, ["json"]),
    "wrong type": (b'{"text": 5}', 422, ["text", "string"]),
    "empty list": (b'{"text": []}', 422, ["text", "empty"]),
    "unknown option": (b'{"text": "Ein Hund.", "bem": 5}', 422, ["bem"]),
    "beam too wide": (b'{"text": "Ein Hund.", "beam": 99}', 422, ["beam"]),
    "1 MB text": (json.dumps({"text": "a" * 1_000_000}).encode(), 413, ["max_body_bytes"]),
    "10,000 texts": (json.dumps({"text": ["a"] * 10_000}).encode(), 422, ["max_texts"]),
    "long text": (json.dumps({"text": "a" * 301}).encode(), 422, ["max_chars"]),
    "invalid UTF-8": (b'{"text": "Ein \xff\xfe Hund"}', 400, ["UTF-8"]),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input_gets_a_clear_4xx_and_the_server_keeps_serving(server, expected, name):
    body, status, words = BAD[name]
    r = httpx.post(f"{server}/translate", content=body, timeout=60,
                   headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    for word in words:
        assert word.lower() in r.text.lower(), r.text
    still_serving(server, expected)


def test_clients_that_disconnect_mid_request(server, expected):
    host, port = server.removeprefix("http://").split(":")
    head = (f"POST /translate HTTP/1.1\r\nHost: {host}\r\ncontent-type: application/json\r\n"
            "content-length: {n}\r\n\r\n")
    with socket.create_connection((host, int(port))) as s:  # half a body, then gone
        s.sendall(head.format(n=1000).encode() + b'{"text": "Ein')
    body = json.dumps({"text": SENTENCES * 10, "beam": 5}).encode()
    with socket.create_connection((host, int(port))) as s:  # a whole request, gone before the answer
        s.sendall(head.format(n=len(body)).encode() + body)
    time.sleep(0.5)
    still_serving(server, expected)


def test_500_requests_at_once_are_batched_or_refused_with_retry_after(server, expected):
    async def flood():
        limits = httpx.Limits(max_connections=500, max_keepalive_connections=0)
        async with httpx.AsyncClient(limits=limits, timeout=120) as client:
            return await asyncio.gather(*(client.post(f"{server}/translate",
                                                      json={"text": SENTENCES[i % 3]})
                                          for i in range(500)))

    before = httpx.get(f"{server}/info").json()["batching"]
    answers = asyncio.run(flood())
    ok = [r for r in answers if r.status_code == 200]
    refused = [r for r in answers if r.status_code == 503]
    assert len(ok) + len(refused) == 500, {r.status_code for r in answers}
    assert ok and all(r.headers.get("retry-after") for r in refused)
    for r in ok:
        (t,) = r.json()["translations"]
        assert t["text"] in expected.values()
    after = httpx.get(f"{server}/info").json()["batching"]
    assert after["texts"] - before["texts"] == len(ok)
    assert after["batches"] - before["batches"] < len(ok)  # requests were decoded together
    still_serving(server, expected)


def test_sigterm_finishes_the_requests_in_flight(ckpt):
    """SIGTERM is sent once /health counts the request's 20 texts as waiting (received, not yet
    answered), and the answer arrives after it, complete. The long texts take seconds to
    decode, so most of the work is left when the signal comes."""
    proc, url = start_server([f"ckpt={ckpt}"])
    answers = []  # (response, when it arrived)
    worker = threading.Thread(target=lambda: answers.append((httpx.post(
        f"{url}/translate", json={"text": [" ".join(SENTENCES * 3)] * 20, "beam": 8},
        timeout=120), time.monotonic())))
    worker.start()
    deadline = time.monotonic() + 60
    while httpx.get(f"{url}/health", timeout=10).json()["waiting_texts"] < 20:
        assert not answers and time.monotonic() < deadline, "the request was never in flight"
        time.sleep(0.02)
    signalled = time.monotonic()
    assert stop_server(proc) == 0
    worker.join(timeout=120)
    assert answers and answers[0][0].status_code == 200
    assert answers[0][1] > signalled  # still in flight when the signal came
    assert len(answers[0][0].json()["translations"]) == 20


def _refusal(args: list[str]) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(ROOT / "serve.py"), f"port={free_port()}", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


@pytest.mark.slow
def test_refuses_to_start_on_a_missing_truncated_or_foreign_model(ckpt, tmp_path):
    import torch

    truncated, foreign = tmp_path / "truncated.ckpt", tmp_path / "foreign.ckpt"
    truncated.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    torch.save({"state_dict": {}, "epoch": 3}, foreign)
    assert "not found" in _refusal([f"ckpt={tmp_path / 'missing.ckpt'}"])
    assert "truncated" in _refusal([f"ckpt={truncated}"])
    assert "not a seq2seq checkpoint" in _refusal([f"ckpt={foreign}"])
    assert "not found" in _refusal([f"model={tmp_path / 'missing_export'}"])
    if importlib.util.find_spec("seq2seq.runtime") is not None:
        (tmp_path / "foreign_export").mkdir()
        (tmp_path / "foreign_export" / "export.json").write_text('{"format_version": 999}')
        assert str(tmp_path / "foreign_export") in _refusal([f"model={tmp_path / 'foreign_export'}"])
    assert "ckpt=PATH" in _refusal([])


def test_model_is_serve_py_s_own_key_and_model_dir_names_it(tmp_path):
    """serve.py's config (conf/tools/) holds none of train.py's groups, so model=DIR is a plain
    key; the former model_dir=DIR is refused with a message that names model=."""
    from hydra import compose, initialize_config_dir

    from seq2seq.serving.backends import ServeError
    from seq2seq.serving.cli import build_app

    with initialize_config_dir(str(TOOLS), version_base="1.3"):
        cfg = compose("serve", overrides=[f"model={tmp_path}", "port=8080"])
        old = compose("serve", overrides=[f"model_dir={tmp_path}"])
    assert cfg.model == str(tmp_path) and cfg.port == 8080 and cfg.ckpt is None
    with pytest.raises(ServeError, match=f"model_dir= is now model=: .* model={tmp_path}"):
        build_app(old)


def test_serving_an_export_imports_no_torch(tmp_path):
    """serve.py model=DIR, from the command line to the model's loading, runs where torch
    cannot be imported (here it stops at a folder that does not exist)."""
    code = ("import sys; sys.modules['torch'] = None; sys.modules['lightning'] = None\n"
            f"sys.argv = ['serve.py', 'model={tmp_path / 'missing'}', 'port={free_port()}']\n"
            "import runpy; runpy.run_path('serve.py', run_name='__main__')\n")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 2, run.stderr
    assert run.stderr.strip().startswith("error: ") and "exported model not found" in run.stderr
    assert "Traceback" not in run.stderr


class FakeTranslator:
    """seq2seq.runtime.Translator's interface, for testing the adapter without an export."""

    def __init__(self, path, threads=0, max_tokens=4000):
        if not (Path(path) / "export.json").is_file():
            raise ValueError(f"{path}: no export.json (not an export of this version)")

    def info(self):
        return {"path": "x", "languages": {"src": "de", "tgt": "en"}, "parameters": 7,
                "model": {}, "decode": {"beam": 1, "nbest": 1, "alpha": 0.6}}

    calls: list[dict] = []  # the search options of each call

    def translate(self, texts, beam=None, nbest=1, alpha=None, max_len_a=None, max_len_b=None,
                  with_scores=False, with_attention=False, **options):
        assert with_scores and beam >= nbest
        FakeTranslator.calls.append({"beam": beam, "nbest": nbest, **options})
        return [[{"text": t.upper(), "score": -1.0 - k, "tokens": [5, 6],
                  **({"attention": [[0.5, 0.5], [1.0, 0.0]], "src_pieces": ["_ein", "</s>"],
                      "tgt_pieces": ["_EIN", "</s>"]} if with_attention else {})}
                 for k in range(nbest)] for t in texts]


def test_export_backend_adapter(tmp_path, monkeypatch):
    """model=DIR goes through seq2seq.runtime.Translator (here a stand-in with its API)."""
    import types

    from fastapi.testclient import TestClient

    from seq2seq.serving.app import create_app
    from seq2seq.serving.backends import ExportBackend, ServeError
    from seq2seq.serving.schema import Limits

    monkeypatch.setitem(sys.modules, "seq2seq.runtime",
                        types.SimpleNamespace(Translator=FakeTranslator))
    with pytest.raises(ServeError, match="no export.json"):
        ExportBackend(str(tmp_path), 100)
    (tmp_path / "export.json").write_text("{}")
    app = create_app(ExportBackend(str(tmp_path), 100), Limits(65536, 100, 8, 8, 8), window_ms=5,
                     max_tokens=100, max_queue=16)
    with TestClient(app) as client:
        r = client.post("/translate", json={"text": ["ein", "zwei"], "beam": 3, "nbest": 2,
                                            "attention": True})
        assert r.status_code == 200, r.text
        first = r.json()["translations"][0]
        assert first["text"] == "EIN" and [h["score"] for h in first["nbest"]] == [-1.0, -2.0]
        assert first["nbest"][0]["attention"] == {
            "source": ["_ein", "</s>"], "target": ["_EIN", "</s>"],
            "weights": [[0.5, 0.5], [1.0, 0.0]]}
        # the runtime ports every search option a request may set
        r = client.post("/translate", json={"text": "ein", "beam": 2, "coverage": 0.2,
                                            "no_repeat_ngram_size": 2, "min_len": 1})
        assert r.status_code == 200, r.text
        assert FakeTranslator.calls[-1] == {"beam": 2, "nbest": 1, "coverage": 0.2,
                                            "no_repeat_ngram_size": 2, "min_len": 1,
                                            "sample": False}  # searched, whatever decode says
        info = client.get("/info").json()
        assert info["kind"] == "export" and info["source_lang"] == "de"


@pytest.mark.skipif(importlib.util.find_spec("seq2seq.runtime") is None,
                    reason="seq2seq.runtime (the exported-model runtime) is not in this checkout")
def test_serves_a_real_export(ckpt, tmp_path, expected):
    from omegaconf import OmegaConf

    try:
        from seq2seq.export import export  # the exporter beside the runtime
    except ImportError as e:
        pytest.skip(f"seq2seq.export cannot write an export here: {e}")
    export(OmegaConf.create({"ckpt": str(ckpt), "out": str(tmp_path / "export"), "opset": 17,
                             "atol": 1e-4}))
    proc, url = start_server([f"model={tmp_path / 'export'}"])
    try:
        r = httpx.post(f"{url}/translate", json={"text": SENTENCES, "beam": 1}, timeout=60)
        assert r.status_code == 200, r.text
        assert [t["text"] for t in r.json()["translations"]] == [expected[s] for s in SENTENCES]
    finally:
        assert stop_server(proc) == 0


def test_bf16_serves_what_translate_py_gives_in_bf16(ckpt):
    """precision=bf16 casts the weights once, for good: the same translations and scores as
    translate.py's precision=bf16 (cast_weights around the search); an export refuses it."""
    import torch

    from seq2seq.checkpoint import load_module
    from seq2seq.decoding.options import DecodeOptions
    from seq2seq.precision import PrecisionError, cast_weights, decode_dtype
    from seq2seq.serving.backends import ModuleBackend, ServeError, load_backend
    from seq2seq.translation import search_lines

    module = load_module(ckpt)
    try:
        dtype = decode_dtype("bf16", "cpu", module)
    except PrecisionError as e:  # an LSTM where this CPU's oneDNN has no bf16 kernel
        with pytest.raises(PrecisionError, match="precision=bf16"):
            ModuleBackend([str(ckpt)], "cpu", MAX_TOKENS, precision="bf16")
        pytest.skip(str(e))
    opts = DecodeOptions.from_dict({**module.config["decode"], "beam": 3, "nbest": 2})
    with torch.inference_mode(), cast_weights(module, dtype):
        _, nbest = search_lines(module, SENTENCES, opts, max_tokens=MAX_TOKENS)
    backend = ModuleBackend([str(ckpt)], "cpu", MAX_TOKENS, precision="bf16")
    assert backend.info()["precision"] == "bfloat16"
    assert {p.dtype for p in backend.module.parameters()} == {torch.bfloat16}
    got = backend.translate(SENTENCES, {"beam": 3, "nbest": 2}, attention=False)
    for hyps, want in zip(got, nbest, strict=True):
        assert [h["tokens"] for h in hyps] == [w.tokens for w in want]
        assert [h["score"] for h in hyps] == pytest.approx([w.score for w in want], abs=1e-5)
    with pytest.raises(ServeError, match="precision=bf16: an exported model decodes in float32"):
        load_backend(None, "exported/", None, MAX_TOKENS, None, "bf16")
