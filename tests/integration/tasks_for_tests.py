"""Small custom-task functions for the runtime's integration tests.

Worker processes import this module (the repo root is on their path): each function
leaves a trace on disk (``log_dir``) so tests can count invocations across processes.
"""

from __future__ import annotations

import json
import os
import time

from mlflowdsl.tasks import TaskFailed, TaskOutputs


def _log(log_dir: str, name: str, **fields) -> None:
    os.makedirs(log_dir, exist_ok=True)
    with open(os.path.join(log_dir, f"{name}.jsonl"), "a") as fh:
        fh.write(json.dumps({"pid": os.getpid(), "time": time.time(), **fields}) + "\n")


def runs(log_dir: str, name: str) -> list[dict]:
    path = os.path.join(log_dir, f"{name}.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as fh:
        return [json.loads(line) for line in fh]


def noop() -> int:
    return 0


def value(x: int = 1) -> int:
    return x


def step(name: str, log_dir: str, seconds: float = 0.0, x: int = 0, inputs: list | None = None) -> TaskOutputs:
    """Sleep, log start and end, return ``x`` plus the sum of the inputs."""
    start = time.time()
    time.sleep(seconds)
    _log(log_dir, name, start=start, end=time.time())
    total = x + sum(inputs or [])
    return TaskOutputs(outputs={"output": total}, metrics={"total": float(total)})


def flaky(name: str, log_dir: str, failures: int = 2) -> TaskOutputs:
    """Fail (retryably) the first ``failures`` times it is called."""
    previous = len(runs(log_dir, name))
    _log(log_dir, name)
    if previous < failures:
        raise RuntimeError(f"transient failure #{previous + 1}")
    return TaskOutputs(outputs={"output": previous}, metrics={"calls": float(previous + 1)})


def gate(name: str, log_dir: str) -> int:
    _log(log_dir, name)
    raise TaskFailed("accuracy 0.5 is below the threshold 0.9", retryable=False)


def hang(name: str, log_dir: str, seconds: float = 60.0) -> int:
    _log(log_dir, name)
    time.sleep(seconds)
    return 1


def big_output(size: int = 10_000_000) -> bytes:
    return b"x" * size


def gate_after(name: str, log_dir: str, seconds: float = 0.5) -> int:
    """Fail (not retryably) after ``seconds``."""
    time.sleep(seconds)
    return gate(name, log_dir)


def wait_for_file(name: str, log_dir: str, path: str, timeout: float = 60.0) -> int:
    """Log a start marker, then wait until ``path`` exists (tests release it)."""
    _log(log_dir, f"{name}-start")
    deadline = time.time() + timeout
    while not os.path.exists(path) and time.time() < deadline:
        time.sleep(0.05)
    _log(log_dir, name)
    return 1
