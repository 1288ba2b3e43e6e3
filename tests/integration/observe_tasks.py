"""Small custom tasks for the observability tests: known CPU and memory use, and metrics."""

from __future__ import annotations

import time

from mlflowdsl.tasks import TaskOutputs


def burn(seconds: float = 0.3, mb: int = 0, score: float = 0.5, inputs: list | None = None) -> TaskOutputs:
    """Busy-loop ``seconds`` of CPU while holding ``mb`` MiB (touched, so it is resident)."""
    block = bytearray(mb * 1024 * 1024)
    for i in range(0, len(block), 4096):
        block[i] = 1
    end = time.process_time() + seconds
    n = 0
    while time.process_time() < end:
        n += 1
    del block
    return TaskOutputs(outputs={"output": n}, metrics={"score": score, "loops": float(n)})


def fail_always(message: str = "boom") -> int:
    raise ValueError(message)


def wait_file(path: str, timeout: float = 60.0) -> int:
    """Wait until ``path`` exists (the test's gate), then succeed."""
    import os

    end = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > end:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.05)
    return 1
