"""Load benchmark of the translation server (serve.py), beside offline translate.py.

    python experiments/serve_benchmark.py --ckpt RUN/checkpoints/last.ckpt [--seconds 20]
        [--clients 1,8,64] [--threads N] [--beam K]

Starts `serve.py ckpt=...` on a free port of 127.0.0.1; for each number of concurrent clients,
each client sends one test_2016_flickr sentence per request, the next as soon as the last is
answered, for --seconds; prints requests/s, sentences/s and p50/p99 latency per level, then the
offline throughput of the same model on the same sentences (translate_lines, translate.py's
batched path, same thread count). Not a test: the figures depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(ckpt: str, port: int, threads: int, extra: list[str]) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, str(ROOT / "serve.py"), f"ckpt={ckpt}",
                             f"port={port}", f"threads={threads}", "log_level=warning", *extra],
                            cwd=ROOT)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"serve.py exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.5)
    proc.kill()
    sys.exit("serve.py did not answer /health within 600 s")


async def load(url: str, sentences: list[str], clients: int, seconds: float,
               options: dict) -> dict:
    """`clients` closed-loop clients for `seconds`: latencies of answered requests, errors."""
    latencies: list[float] = []
    errors = 0
    next_index = 0
    stop = time.monotonic() + seconds

    async def client(http: httpx.AsyncClient):
        nonlocal errors, next_index
        while time.monotonic() < stop:
            text = sentences[next_index % len(sentences)]
            next_index += 1
            start = time.monotonic()
            r = await http.post(url, json={"text": text, **options})
            if r.status_code == 200:
                latencies.append(time.monotonic() - start)
            else:
                errors += 1

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    start = time.monotonic()
    async with httpx.AsyncClient(limits=limits, timeout=300) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    elapsed = time.monotonic() - start
    latencies.sort()

    def q(p: float) -> float:
        return (latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000
                if latencies else float("nan"))

    return {"clients": clients, "requests": len(latencies), "errors": errors,
            "req_s": len(latencies) / elapsed, "p50_ms": q(0.5), "p99_ms": q(0.99),
            "mean_ms": statistics.fmean(latencies) * 1000 if latencies else float("nan")}


def offline(ckpt: str, sentences: list[str], threads: int, max_tokens: int,
            beam: int | None) -> float:
    """Sentences/s of translate_lines (translate.py's batched path) on `sentences`."""
    import torch

    from seq2seq.checkpoint import load_module
    from seq2seq.decoding.options import DecodeOptions
    from seq2seq.translation import translate_lines

    torch.set_num_threads(threads)
    module = load_module(ckpt)
    opts = DecodeOptions.from_dict({**module.config["decode"],
                                    **({"beam": beam} if beam else {})})
    with torch.inference_mode():
        translate_lines(module, sentences[:32], max_tokens=max_tokens, opts=opts)  # warm-up
        start = time.monotonic()
        translate_lines(module, sentences, max_tokens=max_tokens, opts=opts)
    return len(sentences) / (time.monotonic() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ckpt", required=True, help="checkpoint written by train.py")
    p.add_argument("--seconds", type=float, default=20, help="load time per level")
    p.add_argument("--clients", default="1,8,64", help="concurrent clients, comma-separated")
    p.add_argument("--threads", type=int, default=os.cpu_count(),
                   help="torch threads of the server and of the offline run")
    p.add_argument("--beam", type=int, default=None, help="beam size (default: the model's)")
    p.add_argument("--max-tokens", type=int, default=4000, help="batch token budget")
    p.add_argument("--window-ms", type=float, default=5, help="server's collection window")
    p.add_argument("--data-dir", default=os.environ.get("SEQ2SEQ_DATA_DIR",
                                                        str(ROOT.parent / "shared" / "data")))
    p.add_argument("--no-offline", action="store_true", help="skip the offline comparison")
    args = p.parse_args()

    from seq2seq.data.corpus import read_lines

    sentences = [s for s in read_lines(Path(args.data_dir) / "multi30k" /
                                       "test_2016_flickr.de.gz") if s.strip()]
    port = free_port()
    proc = start_server(args.ckpt, port, args.threads,
                        [f"batching.max_tokens={args.max_tokens}",
                         f"batching.window_ms={args.window_ms}", "batching.max_queue=100000"])
    options = {"beam": args.beam} if args.beam else {}
    url = f"http://127.0.0.1:{port}/translate"
    rows = []
    try:
        asyncio.run(load(url, sentences, 1, 2, options))  # warm-up
        for n in (int(c) for c in args.clients.split(",")):
            rows.append(asyncio.run(load(url, sentences, n, args.seconds, options)))
            r = rows[-1]
            print(f"{n:>3} clients: {r['req_s']:7.1f} requests/s  {r['req_s']:7.1f} sentences/s  "
                  f"p50 {r['p50_ms']:7.1f} ms  p99 {r['p99_ms']:7.1f} ms  "
                  f"({r['requests']} answered, {r['errors']} errors)", flush=True)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    best = offline(args.ckpt, sentences, args.threads, args.max_tokens, args.beam) \
        if not args.no_offline else float("nan")
    print(f"\n{args.ckpt}, {args.threads} threads, beam {args.beam or 'model default'}, "
          f"{len(sentences)} test_2016_flickr sentences, one per request\n")
    print("| clients | requests/s | sentences/s | p50 ms | p99 ms | errors |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['clients']} | {r['req_s']:.1f} | {r['req_s']:.1f} | {r['p50_ms']:.0f} | "
              f"{r['p99_ms']:.0f} | {r['errors']} |")
    print(f"| offline translate.py (max_tokens={args.max_tokens}) | | {best:.1f} | | | |")


if __name__ == "__main__":
    main()
