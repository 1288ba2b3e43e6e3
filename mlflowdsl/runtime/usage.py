"""Resource use of one task attempt: wall time, CPU time and peak memory (RSS).

A Dask worker runs several tasks in threads of one process, so what can be measured is the
*worker process*: CPU time is the process's CPU time delta over the attempt (user + system,
plus reaped children, which covers attempts run in a forked child for a timeout), and peak
RSS is the highest resident set size of the worker process (and its children) during the
attempt. When two tasks run at the same time on one worker both see each other's use: the
numbers are an upper bound per task, exact when a worker runs one task at a time
(``--nthreads 1``).

Peak RSS comes from two sources. The kernel's high-water mark (``getrusage``'s
``ru_maxrss``) is read at the start and the end of the attempt: when it rose, its new value
*is* the attempt's peak. When it did not (the process was bigger before), a small sampling
thread shared by the process's attempts reads the RSS every ``interval`` seconds, and the
attempt's peak is the highest sample taken while it ran -- for an attempt shorter than the
interval, the process's RSS as last sampled (at most a couple of intervals old while tasks
run; read afresh when older). The attempt's own thread makes two ``getrusage`` calls and no
file reads: each read of ``/proc`` hands the GIL to the worker's event loop and waits to get it
back, which on a busy worker costs more than a millisecond-long task. Attempts in a forked
child (a timeout) add the children's RSS, which scans ``/proc``.

>>> with UsageSampler(attempt=1, worker="tcp://127.0.0.1:1") as sampler:
...     _ = sum(range(10_000))
>>> u = sampler.usage
>>> u.attempt, u.worker, u.wall_s >= 0, u.cpu_s >= 0, u.peak_rss > 0
(1, 'tcp://127.0.0.1:1', True, True, True)
"""

from __future__ import annotations

import logging
import os
import resource
import threading
import time
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

SAMPLE_INTERVAL_S = 0.075  # between 50 and 100 ms: cheap, and catches short peaks of a fit


@dataclass(frozen=True)
class Usage:
    attempt: int
    wall_s: float
    cpu_s: float
    peak_rss: int  # bytes
    worker: str | None = None

    def as_dict(self) -> dict[str, Any]:
        # by hand: dataclasses.asdict deep-copies, which costs more than the rest of a sample
        return {"attempt": self.attempt, "wall_s": self.wall_s, "cpu_s": self.cpu_s,
                "peak_rss": self.peak_rss, "worker": self.worker}


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _high_water() -> int:
    """The process's peak RSS so far in bytes (Linux reports KiB); no file read, and the
    call keeps the GIL."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class _LastSample:
    """The process's RSS as last read (by the sampling thread or an attempt), and when."""

    rss = 0
    at = float("-inf")
    pid = 0


def _sampled_rss(process, max_age: float) -> int:
    """The last sampled RSS of this process when at most ``max_age`` old, else a fresh read."""
    now = time.monotonic()
    if _LastSample.pid == os.getpid() and now - _LastSample.at <= max_age:
        return _LastSample.rss
    return _record(_rss(process, False), now)


def _record(rss: int, now: float) -> int:
    _LastSample.rss, _LastSample.at, _LastSample.pid = rss, now, os.getpid()
    return rss


_PROCESS: dict[int, Any] = {}  # pid -> psutil.Process: one per (forked) worker process


def _this_process():
    pid = os.getpid()
    if pid not in _PROCESS:
        import psutil  # noqa: PLC0415 - heavy: psutil only in a process that measures usage

        _PROCESS[pid] = psutil.Process(pid)
    return _PROCESS[pid]


def _rss(process, children: bool) -> int:
    """RSS of the process, plus its children's when the attempt runs in a forked child.
    Listing children scans every process of the machine, so only then."""
    try:
        total = process.memory_info().rss
    except Exception as exc:  # noqa: BLE001 - a measurement must never fail the attempt
        log.debug("RSS of process %s could not be read (going away?): %s", process.pid, exc)
        return 0
    if not children:
        return total
    try:
        for child in process.children(recursive=True):
            try:
                total += child.memory_info().rss
            except Exception as exc:  # noqa: BLE001 - a measurement must never fail the attempt
                log.debug("RSS of child %s not read (it exited after the listing?): %s", child.pid, exc)
    except Exception as exc:  # noqa: BLE001 - a measurement must never fail the attempt
        log.debug("children of process %s could not be listed: %s", process.pid, exc)
    return total


class _Monitor:
    """One sampling thread per worker process, shared by the attempts running in it: starting
    a thread per attempt would cost more than a millisecond-long task itself. Attempts register
    without a lock (set operations are atomic under the GIL) and set an event only while the
    thread sleeps, so a task never blocks on the sampler (see the outbox in runtime/worker.py)."""

    def __init__(self) -> None:
        self.active: set[UsageSampler] = set()
        self.wake = threading.Event()
        self.idle = True
        self.adds = 0
        self.start_lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.pid = os.getpid()

    def add(self, sampler: "UsageSampler") -> None:
        if self.thread is None or self.pid != os.getpid():  # first use, or a forked process
            with self.start_lock:
                if self.thread is None or self.pid != os.getpid():
                    self.pid, self.active = os.getpid(), set()
                    self.thread = threading.Thread(target=self._run, name="mlw-usage", daemon=True)
                    self.thread.start()
        self.active.add(sampler)
        self.adds += 1  # racy between threads, and only ever compared for change: fine
        if self.idle:
            self.wake.set()

    def remove(self, sampler: "UsageSampler") -> None:
        self.active.discard(sampler)

    def _run(self) -> None:
        seen = -1
        while True:
            # Asleep only after a whole interval without any attempt: a stream of attempts
            # shorter than the interval keeps the samples (and _LastSample) coming instead of
            # waking this thread for each of them.
            if not self.active and self.adds == seen:
                self.idle = True
                if not self.active:  # re-checked after saying so: an add in between sets wake
                    self.wake.wait()
                self.wake.clear()
                self.idle = False
            seen = self.adds
            interval = min((s.interval for s in list(self.active)), default=SAMPLE_INTERVAL_S)
            time.sleep(interval)
            samplers = list(self.active)
            process = _this_process()
            plain = _record(_rss(process, False), time.monotonic())
            with_children = _rss(process, True) if any(s.children for s in samplers) else plain
            for s in samplers:
                s.observe(with_children if s.children else plain)


_monitor = _Monitor()


class UsageSampler:
    """A context manager that measures the block it wraps (see the module docstring)."""

    def __init__(self, *, attempt: int = 1, worker: str | None = None, interval: float = SAMPLE_INTERVAL_S,
                 children: bool = False):
        self.children = children  # the attempt runs in a forked child (a task with a timeout)
        self.attempt = attempt
        self.worker = worker
        self.interval = interval
        self.usage: Usage | None = None
        self._peak = 0

    def observe(self, rss: int) -> None:
        if rss > self._peak:
            self._peak = rss

    def __enter__(self) -> "UsageSampler":
        self._wall0 = time.perf_counter()
        self._cpu0 = _cpu_seconds()
        self._hw0 = _high_water()
        if self.children:
            self.observe(_rss(_this_process(), True))
        _monitor.add(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        _monitor.remove(self)
        wall = time.perf_counter() - self._wall0
        hw = _high_water()
        process = _this_process()
        if self.children:
            self.observe(_rss(process, True))
        elif hw > self._hw0:
            self.observe(hw)  # the high-water mark rose during the attempt: that is its peak
        elif not self._peak:
            # shorter than a sampling interval: the process's RSS as last sampled
            self.observe(_sampled_rss(process, 2 * self.interval))
        self.usage = Usage(attempt=self.attempt, wall_s=wall, cpu_s=max(0.0, _cpu_seconds() - self._cpu0),
                           peak_rss=self._peak, worker=self.worker)


def summarize(usages: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals over a task's attempts: CPU summed, peak memory the highest of any attempt.

    >>> summarize([{"attempt": 1, "wall_s": 1.0, "cpu_s": 0.5, "peak_rss": 10},
    ...            {"attempt": 2, "wall_s": 2.0, "cpu_s": 1.5, "peak_rss": 30}])
    {'cpu_s': 2.0, 'peak_rss': 30}
    >>> summarize([])
    {'cpu_s': None, 'peak_rss': None}
    """
    if not usages:
        return {"cpu_s": None, "peak_rss": None}
    return {"cpu_s": sum(u.get("cpu_s") or 0.0 for u in usages),
            "peak_rss": max(u.get("peak_rss") or 0 for u in usages)}


def fmt_bytes(n: int | None) -> str:
    """
    >>> fmt_bytes(1536), fmt_bytes(None), fmt_bytes(300 * 1024 * 1024)
    ('1.5KiB', '-', '300MiB')
    """
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f}{unit}" if unit in ("B",) or size >= 100 else f"{size:.1f}{unit}"
        size /= 1024
    return f"{size:.1f}TiB"  # pragma: no cover - unreachable
