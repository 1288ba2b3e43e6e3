"""Resource use of one task attempt: wall time, CPU time and peak memory (RSS).

A Dask worker runs several tasks in threads of one process, so what can be measured is the
*worker process*: CPU time is the process's CPU time delta over the attempt (user + system,
plus reaped children, which covers attempts run in a forked child for a timeout), and peak
RSS is the highest resident set size of the worker process (and its children) seen by a
small sampling thread every ``interval`` seconds. When two tasks run at the same time on one
worker both see each other's use: the numbers are an upper bound per task, exact when a worker
runs one task at a time (``--nthreads 1``). A task shorter than the sampling interval still gets
one sample at its start and one at its end.

>>> with UsageSampler(attempt=1, worker="tcp://127.0.0.1:1") as sampler:
...     _ = sum(range(10_000))
>>> u = sampler.usage
>>> u.attempt, u.worker, u.wall_s >= 0, u.cpu_s >= 0, u.peak_rss > 0
(1, 'tcp://127.0.0.1:1', True, True, True)
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

SAMPLE_INTERVAL_S = 0.075  # between 50 and 100 ms: cheap, and catches short peaks of a fit


@dataclass(frozen=True)
class Usage:
    attempt: int
    wall_s: float
    cpu_s: float
    peak_rss: int  # bytes
    worker: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


_PROCESS: dict[int, Any] = {}  # pid -> psutil.Process: one per (forked) worker process


def _this_process():
    pid = os.getpid()
    if pid not in _PROCESS:
        import psutil

        _PROCESS[pid] = psutil.Process(pid)
    return _PROCESS[pid]


def _rss(process, children: bool) -> int:
    """RSS of the process, plus its children's when the attempt runs in a forked child.
    Listing children scans every process of the machine, so only then."""
    try:
        total = process.memory_info().rss
    except Exception:  # noqa: BLE001 - the process is going away
        return 0
    if not children:
        return total
    try:
        for child in process.children(recursive=True):
            try:
                total += child.memory_info().rss
            except Exception:  # noqa: BLE001 - the child exited between listing and reading
                continue
    except Exception:  # noqa: BLE001
        pass
    return total


class _Monitor:
    """One sampling thread per worker process, shared by the attempts running in it: starting
    a thread per attempt cost more than a millisecond-long task itself."""

    def __init__(self) -> None:
        self.active: set[UsageSampler] = set()
        self.cond = threading.Condition()
        self.thread: threading.Thread | None = None
        self.pid = os.getpid()

    def add(self, sampler: "UsageSampler") -> None:
        with self.cond:
            if self.thread is None or self.pid != os.getpid():  # first use, or a forked process
                self.pid, self.active = os.getpid(), set()
                self.thread = threading.Thread(target=self._run, name="mlw-usage", daemon=True)
                self.thread.start()
            self.active.add(sampler)
            self.cond.notify()

    def remove(self, sampler: "UsageSampler") -> None:
        with self.cond:
            self.active.discard(sampler)

    def _run(self) -> None:
        while True:
            with self.cond:
                while not self.active:
                    self.cond.wait()
                samplers = list(self.active)
            interval = min(s.interval for s in samplers)
            time.sleep(interval)
            process = _this_process()
            plain = _rss(process, False)
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
        self.observe(_rss(_this_process(), self.children))
        _monitor.add(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        _monitor.remove(self)
        self.observe(_rss(_this_process(), self.children))
        self.usage = Usage(attempt=self.attempt, wall_s=time.perf_counter() - self._wall0,
                           cpu_s=max(0.0, _cpu_seconds() - self._cpu0), peak_rss=self._peak, worker=self.worker)


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
