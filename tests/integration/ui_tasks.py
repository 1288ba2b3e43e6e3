"""Custom tasks that print and log, for the attempt-log and UI tests (workers import this
module as ``tests.integration.ui_tasks``)."""

from __future__ import annotations

import logging
import os
import sys
import time

from mlflowdsl.tasks import TaskOutputs

log = logging.getLogger("ui_tasks")


def chatty(tag: str, fail_attempts: int = 0, lines: int = 1, marker_dir: str = "") -> TaskOutputs:
    """Print ``lines`` lines to stdout, one to stderr, log a warning; fail the first
    ``fail_attempts`` attempts (the attempt number is counted in the marker of ``tag``)."""
    for i in range(lines):
        print(f"{tag} stdout line {i}")
    print(f"{tag} on stderr", file=sys.stderr)
    log.warning("%s logged a warning", tag)
    if fail_attempts:
        marker = os.path.join(marker_dir, f"chatty-{tag}")
        count = int(open(marker).read()) if os.path.exists(marker) else 0
        with open(marker, "w") as fh:
            fh.write(str(count + 1))
        if count < fail_attempts:
            raise RuntimeError(f"{tag} failed on purpose (attempt {count + 1})")
    return TaskOutputs(outputs={"output": tag}, metrics={"lines": float(lines)})


def print_then_wait(tag: str, marker: str, seconds: float = 60.0) -> int:
    """Print, create ``marker``, then wait ``seconds`` (to be killed meanwhile); when ``marker``
    exists already (a rerun after the kill) print that and return at once."""
    if os.path.exists(marker):
        print(f"{tag} second run")
        return 2
    print(f"{tag} before the kill", flush=True)
    with open(marker, "w") as fh:
        fh.write(str(os.getpid()))
    time.sleep(seconds)
    return 1


def printer(tag: str, count: int = 3, interval: float = 0.3) -> int:
    """Print ``count`` lines, ``interval`` seconds apart (output that grows while it runs)."""
    for i in range(count):
        print(f"{tag} tick {i}", flush=True)
        time.sleep(interval)
    return count


def gated(tag: str, gate: str, timeout: float = 60.0) -> int:
    """Print, then wait until the file ``gate`` exists (a test lets it finish)."""
    print(f"{tag} waiting for its gate", flush=True)
    deadline = time.time() + timeout
    while not os.path.exists(gate) and time.time() < deadline:
        time.sleep(0.05)
    print(f"{tag} passed its gate", flush=True)
    return 1


def noisy(tag: str, nbytes: int) -> int:
    """Print ``nbytes`` bytes of numbered lines (to overflow the bound)."""
    written = 0
    i = 0
    while written < nbytes:
        line = f"{tag} {i:08d}\n"
        sys.stdout.write(line)
        written += len(line)
        i += 1
    print(f"{tag} last line")
    return written
