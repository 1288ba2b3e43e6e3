"""Adaptive micro-batching inside one replica.

A fitted model's ``predict`` costs about the same for 1 row as for 100, so a replica answering
many 1-row requests one by one is bound by the per-call cost. :class:`Batcher` gathers the
requests that arrive while the model is busy and scores them in **one** ``predict`` call, run
on a single scoring thread (off the event loop, which keeps reading and parsing requests
meanwhile), then answers each request with its own slice of the predictions, in its rows'
order.

The batching is adaptive: a request that arrives while the model is idle is scored at once
and, being alone, on the event loop itself (no hand-over to the thread: a wake-up of another
thread costs up to a millisecond on a loaded machine); requests that arrive meanwhile wait in
the socket and form the next batch, which goes to the scoring thread. The batch grows with the load
and stays bounded by ``max_rows``. ``max_wait_s`` (0 by default) makes the batcher wait up to
that long for more requests before scoring an incomplete batch: it trades latency for larger
batches and is rarely needed.

A batch whose ``predict`` fails (one request's bad values) is scored again so that the error
reaches only the request that caused it: with a model that separates its preprocessing from
its estimator (``features``/``score_features``, as a ``TrainedModel`` does) each request's
rows are transformed alone and the good ones still go through the estimator in one call;
otherwise each request is scored alone.
"""

from __future__ import annotations

import asyncio
import collections
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

# What a model's predict raises on rows it cannot score (the request's fault, a 422).
SCORING_ERRORS = (ValueError, TypeError, KeyError, OverflowError, IndexError)


@dataclass
class Job:
    rows: list[Any]
    probabilities: bool
    future: asyncio.Future = field(repr=False)


Scorer = Callable[[list[Any], bool], tuple[list[Any], list[Any] | None]]


def stack(parts: list[Any]) -> Any:
    """Feature matrices (numpy, scipy sparse or pandas) of several requests, one under another."""
    first = parts[0]
    if hasattr(first, "tocsr"):
        from scipy import sparse  # noqa: PLC0415 - only for models whose preprocessing gives sparse matrices

        return sparse.vstack(parts).tocsr()
    if hasattr(first, "iloc"):
        import pandas as pd  # noqa: PLC0415 - loaded already by a model that makes DataFrames

        return pd.concat(parts, ignore_index=True)
    import numpy as np  # noqa: PLC0415 - loaded already by any model that made these arrays

    return np.concatenate(parts)


class Batcher:
    """Scores jobs with ``score(rows, probabilities) -> (predictions, probabilities or None)``.

    ``on_batch(rows, seconds)`` is called (on the scoring thread) after every ``predict`` call.
    """

    def __init__(self, score: Scorer, *, max_rows: int = 256, max_wait_s: float = 0.0,
                 on_batch: Callable[[int, float], None] | None = None,
                 features: Callable[[list[Any]], Any] | None = None,
                 score_features: Callable[[Any, bool], tuple[list[Any], list[Any] | None]] | None = None):
        self.score = score
        self.features = features
        self.score_features = score_features
        self.max_rows = max(1, int(max_rows))
        self.max_wait_s = max(0.0, float(max_wait_s))
        self.on_batch = on_batch or (lambda _rows, _seconds: None)
        self.pending: collections.deque[Job] = collections.deque()
        self.pending_rows = 0
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlw-score")
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task | None = None

    async def submit(self, rows: list[Any], probabilities: bool = False) -> tuple[list[Any], list[Any] | None]:
        """This request's (predictions, probabilities); raises what scoring its rows raised."""
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done():
            self._wakeup = asyncio.Event()
            self._task = loop.create_task(self._run())
        job = Job(rows, probabilities, loop.create_future())
        self.pending.append(job)
        self.pending_rows += len(rows)
        self._wakeup.set()
        return await job.future

    def _take(self) -> list[Job]:
        batch = [self.pending.popleft()]  # at least one job, whatever its size
        rows = len(batch[0].rows)
        while self.pending and rows + len(self.pending[0].rows) <= self.max_rows:
            job = self.pending.popleft()
            batch.append(job)
            rows += len(job.rows)
        self.pending_rows -= rows
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._wakeup is not None
        while True:
            if not self.pending:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if self.max_wait_s and self.pending_rows < self.max_rows:
                deadline = loop.time() + self.max_wait_s
                while self.pending_rows < self.max_rows and loop.time() < deadline:
                    self._wakeup.clear()
                    try:
                        await asyncio.wait_for(self._wakeup.wait(), deadline - loop.time())
                    except asyncio.TimeoutError:
                        break
            batch = self._take()
            try:
                if len(batch) == 1:  # light traffic: no hand-over to the thread (what it costs is the latency)
                    results = self._score_batch(batch)
                else:
                    results = await loop.run_in_executor(self.executor, self._score_batch, batch)
            except Exception as exc:  # noqa: BLE001 - handed to every request of the batch
                results = [exc] * len(batch)
            for job, result in zip(batch, results):
                if job.future.done():  # the client went away
                    continue
                if isinstance(result, BaseException):
                    job.future.set_exception(result)
                else:
                    job.future.set_result(result)

    def _timed(self, rows: list[Any], probabilities: bool) -> tuple[list[Any], list[Any] | None]:
        started = time.perf_counter()
        try:
            return self.score(rows, probabilities)
        finally:
            self.on_batch(len(rows), time.perf_counter() - started)

    @staticmethod
    def _split(batch: list[Job], predictions: list[Any], probs: list[Any] | None) -> list[Any]:
        out, start = [], 0
        for job in batch:
            end = start + len(job.rows)
            out.append((predictions[start:end], probs[start:end] if job.probabilities and probs is not None else None))
            start = end
        return out

    def _score_batch(self, batch: list[Job]) -> list[Any]:
        """Each job's result (or exception), from one predict call when the batch allows."""
        if len(batch) > 1 and len({type(job.rows[0]) for job in batch}) == 1:
            rows = [row for job in batch for row in job.rows]
            probabilities = any(job.probabilities for job in batch)
            try:
                predictions, probs = self._timed(rows, probabilities)
            except SCORING_ERRORS:
                pass  # some request's rows: find whose below
            else:
                return self._split(batch, predictions, probs)
            if self.features is not None and self.score_features is not None:
                return self._score_apart(batch)
        out = []
        for job in batch:
            try:
                out.append(self._timed(job.rows, job.probabilities))
            except SCORING_ERRORS as exc:
                out.append(exc)
        return out

    def _score_apart(self, batch: list[Job]) -> list[Any]:
        """Transform each job's rows alone (a bad one fails alone), score the good ones together."""
        started = time.perf_counter()
        out: list[Any] = [None] * len(batch)
        good, parts = [], []
        for i, job in enumerate(batch):
            try:
                parts.append(self.features(job.rows))  # type: ignore[misc]
                good.append(i)
            except SCORING_ERRORS as exc:
                out[i] = exc
        if good:
            jobs = [batch[i] for i in good]
            try:
                predictions, probs = self.score_features(stack(parts), any(j.probabilities for j in jobs))  # type: ignore[misc]
                results = self._split(jobs, predictions, probs)
            except SCORING_ERRORS:  # the estimator itself refused: each alone, as a last resort
                results = []
                for job in jobs:
                    try:
                        results.append(self.score(job.rows, job.probabilities))
                    except SCORING_ERRORS as exc:
                        results.append(exc)
            for i, result in zip(good, results):
                out[i] = result
        self.on_batch(sum(len(batch[i].rows) for i in good), time.perf_counter() - started)
        return out

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
