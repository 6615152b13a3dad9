"""The server's request batching (seq2seq/serving/batching.py), over a fake backend: which
requests share a batch, how idle workers share one, and how many workers and threads a server
plans for its machine."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from seq2seq.serving.batching import Job, QueueFull, RequestBatcher, _split, plan_workers


class Recorder:
    """Answers each text with its upper case after `delay` seconds; records every batch and the
    most batches decoded at once."""

    def __init__(self, delay: float = 0.0):
        self.delay, self.batches = delay, []
        self.running = self.most_running = 0
        self.lock = threading.Lock()

    def count_tokens(self, text: str) -> int:
        return len(text.split()) + 1

    def translate(self, texts, options, attention):
        with self.lock:
            self.running += 1
            self.most_running = max(self.most_running, self.running)
            self.batches.append(list(texts))
        time.sleep(self.delay)
        with self.lock:
            self.running -= 1
        return [[{"text": t.upper(), "score": 0.0}] for t in texts]


def run_clients(batcher: RequestBatcher, texts: list[str], spacing_s: float) -> list[str]:
    """Submit one request per text, `spacing_s` apart; their answers, in order."""

    async def main():
        batcher.start()

        async def one(i: int, text: str):
            await asyncio.sleep(i * spacing_s)
            return (await batcher.submit([text], {}, False))[0][0]["text"]

        try:
            return await asyncio.gather(*(one(i, t) for i, t in enumerate(texts)))
        finally:
            await batcher.stop()

    return asyncio.run(main())


TEXTS = [f"sentence number {i}" for i in range(12)]


def test_a_burst_shares_one_batch_closed_by_a_quiet_gap():
    """Requests 2 ms apart keep a 10 ms gap window open: one batch of all twelve (a window
    fixed at 10 ms from the first arrival would have split them)."""
    backend = Recorder()
    answers = run_clients(RequestBatcher(backend, 0.010, 10_000, 100, max_wait_s=1.0),
                          TEXTS, spacing_s=0.002)
    assert answers == [t.upper() for t in TEXTS]
    assert [len(b) for b in backend.batches] == [12]


def test_without_max_wait_the_window_is_fixed_from_the_first_arrival():
    backend = Recorder()
    run_clients(RequestBatcher(backend, 0.010, 10_000, 100), TEXTS, spacing_s=0.002)
    assert len(backend.batches) >= 2 and sum(len(b) for b in backend.batches) == 12


def test_max_wait_caps_how_long_the_oldest_request_waits():
    """A steady trickle (every 10 ms, under the 30 ms gap) is cut by max_wait (45 ms)."""
    backend = Recorder()
    answers = run_clients(RequestBatcher(backend, 0.030, 10_000, 100, max_wait_s=0.045),
                          TEXTS, spacing_s=0.010)
    assert answers == [t.upper() for t in TEXTS]
    sizes = [len(b) for b in backend.batches]
    assert sum(sizes) == 12 and len(sizes) >= 3 and max(sizes) <= 6


def test_the_token_budget_closes_a_batch_early():
    backend = Recorder()
    run_clients(RequestBatcher(backend, 0.050, 8, 100, max_wait_s=1.0), TEXTS, spacing_s=0)
    assert [len(b) for b in backend.batches] == [2] * 6  # 4 tokens a text, 8 a batch


def test_idle_workers_share_a_batch_and_decode_side_by_side():
    backend = Recorder(delay=0.2)
    batcher = RequestBatcher(backend, 0.005, 10_000, 100, max_wait_s=0.5, workers=2)
    answers = run_clients(batcher, TEXTS, spacing_s=0)
    assert answers == [t.upper() for t in TEXTS]  # each request gets its own answer back
    assert sorted(len(b) for b in backend.batches) == [6, 6]
    assert backend.most_running == 2
    assert 0.4 <= batcher.decode_seconds < 1.0  # both workers' busy time (/info reports it)


def test_one_worker_decodes_one_batch_at_a_time():
    backend = Recorder(delay=0.05)
    run_clients(RequestBatcher(backend, 0.001, 10_000, 100, workers=1), TEXTS, spacing_s=0.02)
    assert backend.most_running == 1 and sum(len(b) for b in backend.batches) == 12


def test_stop_finishes_the_batches_being_decoded():
    backend = Recorder(delay=0.3)

    async def main():
        batcher = RequestBatcher(backend, 0.001, 10_000, 100, workers=2)
        batcher.start()
        pending = [asyncio.ensure_future(batcher.submit([t], {}, False)) for t in TEXTS[:4]]
        await asyncio.sleep(0.05)  # both workers are decoding now
        await batcher.stop()
        return [p.result()[0][0]["text"] for p in pending]

    assert asyncio.run(main()) == [t.upper() for t in TEXTS[:4]]


def test_a_full_queue_refuses_at_once():
    async def main():
        batcher = RequestBatcher(Recorder(delay=0.2), 0.001, 10_000, max_queue=3)
        batcher.start()
        first = asyncio.ensure_future(batcher.submit(TEXTS[:3], {}, False))
        await asyncio.sleep(0.01)
        with pytest.raises(QueueFull, match="max_queue=3"):
            await batcher.submit(TEXTS[3:4], {}, False)
        await batcher.stop()
        return first.result()

    assert len(asyncio.run(main())) == 3


def test_split_keeps_order_and_balances_tokens():
    loop = asyncio.new_event_loop()
    try:
        jobs = [Job([str(i)], {}, False, tokens, loop.create_future())
                for i, tokens in enumerate([5, 5, 5, 5, 10, 10])]
        parts = _split(jobs, 2)
        assert [j for p in parts for j in p] == jobs and len(parts) == 2
        assert [sum(j.tokens for j in p) for p in parts] == [20, 20]
        assert len(_split(jobs[:1], 2)) == 1  # one job cannot be split
        tail = [Job(["x"], {}, False, tokens, loop.create_future()) for tokens in [1, 1, 1, 1, 10]]
        assert [len(p) for p in _split(tail, 2)] == [4, 1]  # a heavy last job gets its own
        assert _split(jobs, 1) == [jobs]
    finally:
        loop.close()


@pytest.mark.parametrize("workers, threads, gpu, cores, expected", [
    ("auto", None, False, 2, (2, 1)),     # this machine: two batches side by side, a core each
    ("auto", None, False, 16, (4, 4)),    # at most 4 workers; the cores shared among them
    ("auto", 8, False, 16, (2, 8)),       # threads given: a worker per `threads` cores
    ("auto", None, True, 16, (1, None)),  # a GPU: one worker, the library's thread default
    (None, None, False, 1, (1, 1)),
    (3, None, False, 2, (3, 1)),
    ("1", None, False, 8, (1, 8)),
])
def test_plan_workers(workers, threads, gpu, cores, expected):
    assert plan_workers(workers, threads, gpu, cores) == expected


@pytest.mark.parametrize("workers", [0, "many"])
def test_plan_workers_refuses_what_is_not_a_count(workers):
    with pytest.raises(ValueError, match="batching.workers"):
        plan_workers(workers, None, False, 2)
