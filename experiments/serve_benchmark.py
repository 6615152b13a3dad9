"""Load benchmark of the translation server (serve.py), beside offline translate.py.

    python experiments/serve_benchmark.py --ckpt RUN/checkpoints/last.ckpt [--seconds 20]
        [--clients 1,8,64] [--threads N] [--workers W] [--beam K] [--precision 32|bf16]
        [--model EXPORTED_DIR]

Starts `serve.py ckpt=...` on a free port of 127.0.0.1; for each number of concurrent clients,
each client sends one test_2016_flickr sentence per request, the next as soon as the last is
answered, for --seconds; prints requests/s, sentences/s and p50/p99 latency per level, then the
offline throughput of the same model on the same sentences (translate_lines, translate.py's
batched path, with translate.py's threads: torch's default unless --threads is given). Not a
test: the figures depend on the machine.

With --model DIR (a directory written by export.py from the same checkpoint) the server serves
the exported model (`serve.py model=DIR`, seq2seq.runtime: onnxruntime and NumPy) and the table
gives its share of both offline figures: translate.py's (PyTorch, the checkpoint) and the
runtime's own batched `Translator.translate` on the same sentences and batch budget.

The clients share the server's machine, so they are kept cheap: plain HTTP/1.1 keep-alive
requests over asyncio streams (an httpx client costs about as much CPU per request as the
server's whole HTTP layer, and at 64 clients halved the figures measured).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(port: int, path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return json.load(r)


def start_server(source: str, port: int, threads: int | None, extra: list[str]
                 ) -> subprocess.Popen:
    """serve.py on 127.0.0.1:port; source is `ckpt=PATH` or `model=DIR`."""
    proc = subprocess.Popen([sys.executable, str(ROOT / "serve.py"), source,
                             f"port={port}", *([f"threads={threads}"] if threads else []),
                             "log_level=warning", *extra], cwd=ROOT)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"serve.py exited with {proc.returncode}")
        try:
            get_json(port, "/health")
            return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    sys.exit("serve.py did not answer /health within 600 s")


async def post(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
               body: bytes) -> int:
    """One POST /translate on a kept-alive connection; the status code (the body is read)."""
    writer.write(b"POST /translate HTTP/1.1\r\nhost: 127.0.0.1\r\n"
                 b"content-type: application/json\r\ncontent-length: %d\r\n\r\n"
                 % len(body) + body)
    await writer.drain()
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    length = next(int(h.split(":", 1)[1]) for h in head
                  if h.lower().startswith("content-length:"))
    await reader.readexactly(length)
    return int(head[0].split()[1])


async def load(port: int, sentences: list[str], clients: int, seconds: float,
               options: dict) -> dict:
    """`clients` closed-loop clients for `seconds`: latencies of answered requests, errors."""
    latencies: list[float] = []
    errors = 0
    next_index = 0
    stop = time.monotonic() + seconds

    async def client():
        nonlocal errors, next_index
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.monotonic() < stop:
                text = sentences[next_index % len(sentences)]
                next_index += 1
                body = json.dumps({"text": text, **options}).encode()
                start = time.monotonic()
                if await post(reader, writer, body) == 200:
                    latencies.append(time.monotonic() - start)
                else:
                    errors += 1
        finally:
            writer.close()

    start = time.monotonic()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.monotonic() - start
    latencies.sort()

    def q(p: float) -> float:
        return (latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000
                if latencies else float("nan"))

    return {"clients": clients, "requests": len(latencies), "errors": errors,
            "req_s": len(latencies) / elapsed, "seconds": elapsed, "p50_ms": q(0.5), "p99_ms": q(0.99),
            "mean_ms": statistics.fmean(latencies) * 1000 if latencies else float("nan")}


def offline(ckpt: str, sentences: list[str], threads: int | None, max_tokens: int,
            beam: int | None, precision: str = "32") -> float:
    """Sentences/s of translate_lines (translate.py's batched path) on `sentences`."""
    import torch

    from seq2seq.checkpoint import load_module
    from seq2seq.decoding.options import DecodeOptions
    from seq2seq.precision import cast_weights, decode_dtype
    from seq2seq.translation import translate_lines

    if threads:
        torch.set_num_threads(threads)
    module = load_module(ckpt)
    opts = DecodeOptions.from_dict({**module.config["decode"],
                                    **({"beam": beam} if beam else {})})
    dtype = decode_dtype(precision, "cpu", module)  # translate.py's precision option
    with torch.inference_mode(), cast_weights(module, dtype):
        translate_lines(module, sentences[:32], max_tokens=max_tokens, opts=opts)  # warm-up
        start = time.monotonic()
        translate_lines(module, sentences, max_tokens=max_tokens, opts=opts)
    return len(sentences) / (time.monotonic() - start)


def offline_runtime(model_dir: str, sentences: list[str], threads: int | None, max_tokens: int,
                    beam: int | None) -> float:
    """Sentences/s of the exported model's batched Translator.translate on `sentences`."""
    from seq2seq.runtime import Translator

    translator = Translator(model_dir, threads=threads or 0, max_tokens=max_tokens)
    options = {"beam": beam} if beam else {}
    translator.translate(sentences[:32], **options)  # warm-up
    start = time.monotonic()
    translator.translate(sentences, **options)
    return len(sentences) / (time.monotonic() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ckpt", required=True, help="checkpoint written by train.py")
    p.add_argument("--seconds", type=float, default=20, help="load time per level")
    p.add_argument("--clients", default="1,8,64", help="concurrent clients, comma-separated")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads of each server worker and of the offline run (default: "
                        "the server's own choice, torch's default offline)")
    p.add_argument("--workers", default="auto", help="the server's batching.workers")
    p.add_argument("--beam", type=int, default=None, help="beam size (default: the model's)")
    p.add_argument("--precision", default="32", help="32 or bf16, server and offline alike")
    p.add_argument("--max-tokens", type=int, default=4000, help="batch token budget")
    p.add_argument("--window-ms", type=float, default=5, help="server's collection window")
    p.add_argument("--data-dir", default=os.environ.get("SEQ2SEQ_DATA_DIR",
                                                        str(ROOT.parent / "shared" / "data")))
    p.add_argument("--no-offline", action="store_true", help="skip the offline comparison")
    p.add_argument("--model", default=None,
                   help="serve this exported model (export.py of --ckpt) instead of the "
                        "checkpoint; the runtime's offline throughput is given too")
    args = p.parse_args()

    from seq2seq.allocator import limit_onednn_cache
    from seq2seq.data.corpus import read_lines

    limit_onednn_cache()  # the offline side as translate.py, the server (a child) as serve.py

    sentences = [s for s in read_lines(Path(args.data_dir) / "multi30k" /
                                       "test_2016_flickr.de.gz") if s.strip()]
    port = free_port()
    source = f"model={args.model}" if args.model else f"ckpt={args.ckpt}"
    proc = start_server(source, port, args.threads,
                        [f"batching.max_tokens={args.max_tokens}",
                         f"batching.workers={args.workers}", f"precision={args.precision}",
                         f"batching.window_ms={args.window_ms}", "batching.max_queue=100000"])
    options = {"beam": args.beam} if args.beam else {}
    rows = []
    try:
        asyncio.run(load(port, sentences, 1, 2, options))  # warm-up
        for n in (int(c) for c in args.clients.split(",")):
            before = get_json(port, "/info")["batching"]
            rows.append(asyncio.run(load(port, sentences, n, args.seconds, options)))
            after = get_json(port, "/info")["batching"]
            r = rows[-1]
            r["batch"] = ((after["texts"] - before["texts"])
                          / max(1, after["batches"] - before["batches"]))
            r["busy"] = ((after["decode_seconds"] - before["decode_seconds"])
                         / (after["workers"] * r["seconds"]))
            print(f"{n:>3} clients: {r['req_s']:7.1f} requests/s  {r['req_s']:7.1f} sentences/s  "
                  f"p50 {r['p50_ms']:7.1f} ms  p99 {r['p99_ms']:7.1f} ms  "
                  f"mean batch {r['batch']:.1f}  workers busy {r['busy']:.0%}  "
                  f"({r['requests']} answered, {r['errors']} errors)", flush=True)
        server = get_json(port, "/info")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    best = offline(args.ckpt, sentences, args.threads, args.max_tokens, args.beam,
                   args.precision) \
        if not args.no_offline else float("nan")
    runtime = offline_runtime(args.model, sentences, args.threads, args.max_tokens, args.beam) \
        if args.model and not args.no_offline else None
    offline_rows = [(f"offline translate.py (max_tokens={args.max_tokens})", best)]
    if runtime:
        offline_rows.append((f"offline runtime Translator (max_tokens={args.max_tokens})",
                             runtime))
    b = server["batching"]
    print(f"\n{args.model or args.ckpt}, server: {b['workers']} workers x "
          f"{server.get('threads')} threads, offline: {args.threads or 'torch default'} "
          f"threads; precision {args.precision}; beam {args.beam or 'model default'}; "
          f"{len(sentences)} test_2016_flickr sentences, one per request\n")
    shares = ["share of offline translate.py", "share of offline runtime"][:len(offline_rows)]
    print("| clients | requests/s | sentences/s | " + " | ".join(shares) +
          " | p50 ms | p99 ms | mean batch | workers busy | errors |")
    print("|" + "---:|" * (8 + len(shares)))
    for r in rows:
        cells = [r["clients"], f"{r['req_s']:.1f}", f"{r['req_s']:.1f}",
                 *(f"{r['req_s'] / tput:.0%}" for _, tput in offline_rows),
                 f"{r['p50_ms']:.0f}", f"{r['p99_ms']:.0f}", f"{r['batch']:.1f}",
                 f"{r['busy']:.0%}", r["errors"]]
        print("| " + " | ".join(map(str, cells)) + " |")
    for name, tput in offline_rows:
        print(f"| {name} | | {tput:.1f} |" + " |" * (5 + len(shares)))


if __name__ == "__main__":
    main()
