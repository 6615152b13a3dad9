"""Request batching: concurrent requests with the same search options are decoded together.

Requests wait on futures in an asyncio queue; one worker collects them for a short window
(from the arrival of the oldest) or until the batch holds `max_tokens` source tokens, then
decodes the batch in one thread (torch keeps its own thread pool) while new requests queue up.
Under load the queue is never empty, so batches fill from the backlog at once and throughput
approaches offline batched translation. A full queue refuses at once (QueueFull), never hangs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


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
    """Collects jobs into batches and runs `backend.translate` on them in one worker thread.

    window_s: how long the oldest waiting request may wait for company; max_tokens: source
    tokens that close a batch early; max_queue: texts that may wait (more: QueueFull)."""

    def __init__(self, backend, window_s: float, max_tokens: int, max_queue: int):
        self.backend, self.window_s = backend, window_s
        self.max_tokens, self.max_queue = max_tokens, max_queue
        self.queue: asyncio.Queue[Job] = asyncio.Queue()
        self.waiting = 0  # texts submitted and not yet answered
        self.batches = self.texts_done = 0
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode")
        self._task: asyncio.Task | None = None

    def start(self) -> None:
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
        """The oldest job and those that join it within the window and the token budget."""
        jobs = [await self.queue.get()]
        tokens = jobs[0].tokens
        deadline = jobs[0].arrival + self.window_s
        while tokens < self.max_tokens:
            if not self.queue.empty():
                job = self.queue.get_nowait()
            else:
                left = deadline - time.monotonic()
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
        loop = asyncio.get_running_loop()
        while True:
            jobs = [j for j in await self._collect() if not j.future.done()]  # gone: cancelled
            groups: dict[tuple, list[Job]] = {}
            for job in jobs:
                groups.setdefault(job.key, []).append(job)
            for group in groups.values():
                texts = [t for job in group for t in job.texts]
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
                self.batches += 1
                self.texts_done += len(texts)
                start = 0
                for job in group:
                    if not job.future.done():
                        job.future.set_result(results[start:start + len(job.texts)])
                    start += len(job.texts)
