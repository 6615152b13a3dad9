"""Request batching: concurrent requests with the same search options are decoded together.

Requests wait on futures in an asyncio queue; whenever one of `workers` decode threads is free,
a batch is collected and decoded in it (idle workers split the batch between them) while new
requests queue up. A batch closes when no request has joined it for `window_s` (requests that
come in a burst share one batch), when its oldest request has waited `max_wait_s`, or when it
holds `max_tokens` source tokens. Closed-loop clients all send their next request as soon as a
batch is answered: closing on a quiet gap, not a fixed time after the first arrival, keeps those
bursts in one batch instead of splitting them in two halves that alternate. A full queue refuses at once
(QueueFull), never hangs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


MAX_AUTO_WORKERS = 4  # small batches gain little from more intra-op threads than a quarter


def plan_workers(workers: int | str | None, threads: int | None, gpu: bool,
                 cores: int | None = None) -> tuple[int, int | None]:
    """(decode workers, intra-op threads per worker) for batching.workers and threads.

    workers=auto: one worker on a GPU (kernels queue on one device); on a CPU, one worker per
    `threads` cores when threads is set, else min(cores, MAX_AUTO_WORKERS) workers sharing the
    cores. A server's batches are small (one per client burst), and there two batches decoded
    side by side on one core each beat one batch on two cores (experiments/README.md,
    "Translation server under load"). threads=None on a GPU stays None (the library's default)."""
    if not cores:
        cores = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                 else os.cpu_count() or 1)
    if workers in (None, "auto"):
        if gpu:
            return 1, threads
        workers = max(1, cores // threads) if threads else min(cores, MAX_AUTO_WORKERS)
    else:
        try:
            workers = int(workers)
        except (TypeError, ValueError):
            raise ValueError(f"batching.workers={workers!r}: give a number of workers (1, 2, "
                             "...) or auto") from None
        if workers < 1:
            raise ValueError(f"batching.workers={workers}: give at least 1 (or auto)")
    threads = int(threads) if threads else None
    if threads is None and not gpu:
        threads = max(1, cores // workers)
    return workers, threads


class QueueFull(Exception):
    """More texts wait than the queue holds; the client should retry later."""


@dataclass
class Job:
    """One request's texts, its search options and the future its handler awaits."""

    texts: list[str]
    options: dict[str, Any]
    attention: bool
    tokens: int
    future: asyncio.Future
    arrival: float = field(default_factory=time.monotonic)

    @property
    def key(self) -> tuple:
        return tuple(sorted(self.options.items())), self.attention


class RequestBatcher:
    """Collects jobs into batches and runs `backend.translate` on them in `workers` threads.

    window_s: a quiet gap that closes a batch; max_wait_s: how long its oldest request may wait
    for company (None: window_s, i.e. a fixed window from the first arrival); max_tokens: source
    tokens that close a batch early; max_queue: texts that may wait (more: QueueFull)."""

    def __init__(self, backend, window_s: float, max_tokens: int, max_queue: int,
                 max_wait_s: float | None = None, workers: int = 1):
        self.backend, self.window_s = backend, window_s
        self.max_wait_s = window_s if max_wait_s is None else max(max_wait_s, window_s)
        self.max_tokens, self.max_queue = max_tokens, max_queue
        self.queue: asyncio.Queue[Job] = asyncio.Queue()
        self.waiting = 0  # texts submitted and not yet answered
        self.batches = self.texts_done = 0
        self.decode_seconds = 0.0  # summed over workers: busy share = this / (workers * time)
        self.workers = max(1, int(workers))
        self.executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="decode")
        self._task: asyncio.Task | None = None
        self._slots: asyncio.Semaphore | None = None
        self._decoding: set[asyncio.Task] = set()

    def start(self) -> None:
        self._slots = asyncio.Semaphore(self.workers)
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Finish what is queued, then stop the worker and its thread."""
        while self.waiting and self._task and not self._task.done():
            await asyncio.sleep(0.01)
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._decoding:
            await asyncio.gather(*self._decoding, return_exceptions=True)
        self.executor.shutdown(wait=True)

    async def submit(self, texts: list[str], options: dict[str, Any],
                     attention: bool) -> list[list[dict]]:
        """The n-best lists of `texts`, once their batch is decoded; QueueFull at once when
        more than max_queue texts would wait."""
        if self.waiting + len(texts) > self.max_queue:
            raise QueueFull(f"{self.waiting} texts are waiting (server.max_queue="
                            f"{self.max_queue}); retry shortly")
        tokens = sum(self.backend.count_tokens(t) for t in texts)
        future = asyncio.get_running_loop().create_future()
        self.waiting += len(texts)
        self.queue.put_nowait(Job(texts, options, attention, tokens, future))
        try:
            return await future
        finally:
            self.waiting -= len(texts)

    async def _collect(self) -> list[Job]:
        """The oldest job and those that join it before a quiet gap of window_s, its max_wait_s
        or the token budget."""
        jobs = [await self.queue.get()]
        try:
            return await self._fill(jobs)
        except asyncio.CancelledError:  # shutting down: no request may wait forever
            for job in jobs:
                job.future.cancel()
            raise

    async def _fill(self, jobs: list[Job]) -> list[Job]:
        tokens = jobs[0].tokens
        deadline = jobs[0].arrival + self.max_wait_s
        while tokens < self.max_tokens:
            if not self.queue.empty():
                job = self.queue.get_nowait()
            else:
                left = min(deadline, jobs[-1].arrival + self.window_s) - time.monotonic()
                if left <= 0:
                    break
                try:
                    job = await asyncio.wait_for(self.queue.get(), left)
                except asyncio.TimeoutError:  # TimeoutError from 3.11
                    break
            jobs.append(job)
            tokens += job.tokens
        return jobs

    async def _run(self) -> None:
        """Collect a batch whenever a worker is free (the backlog grows meanwhile, so the next
        batch is full), and decode it in that worker."""
        while True:
            await self._slots.acquire()
            try:
                jobs = [j for j in await self._collect() if not j.future.done()]  # gone: cancelled
            except BaseException:
                self._slots.release()
                raise
            held = 1  # idle workers share the batch
            while held < len(jobs) and not self._slots.locked():
                await self._slots.acquire()
                held += 1
            parts = _split(jobs, held)
            for _ in range(held - len(parts)):
                self._slots.release()
            for part in parts:
                task = asyncio.get_running_loop().create_task(self._decode(part))
                self._decoding.add(task)
                task.add_done_callback(self._decoding.discard)

    async def _decode(self, jobs: list[Job]) -> None:
        """Decode `jobs` (one backend call per set of search options) and answer each."""
        loop = asyncio.get_running_loop()
        try:
            groups: dict[tuple, list[Job]] = {}
            for job in jobs:
                groups.setdefault(job.key, []).append(job)
            for group in groups.values():
                texts = [t for job in group for t in job.texts]
                started = time.monotonic()
                try:
                    results = await loop.run_in_executor(
                        self.executor, self.backend.translate, texts, group[0].options,
                        group[0].attention)
                except Exception as e:  # answer every request of the batch, keep serving
                    log.exception("decoding a batch of %d texts failed", len(texts))
                    for job in group:
                        if not job.future.done():
                            job.future.set_exception(e)
                    continue
                finally:
                    self.decode_seconds += time.monotonic() - started
                self.batches += 1
                self.texts_done += len(texts)
                start = 0
                for job in group:
                    if not job.future.done():
                        job.future.set_result(results[start:start + len(job.texts)])
                    start += len(job.texts)
        finally:
            self._slots.release()


def _split(jobs: list[Job], parts: int) -> list[list[Job]]:
    """`jobs` in `parts` runs of consecutive jobs with about equal source tokens each."""
    total = sum(j.tokens for j in jobs)
    out: list[list[Job]] = [[]]
    done = 0
    for job in jobs:  # a new part starts where the cut lies nearer the next equal share
        if out[-1] and len(out) < parts and done + job.tokens / 2 > total * len(out) / parts:
            out.append([])
        out[-1].append(job)
        done += job.tokens
    return out
