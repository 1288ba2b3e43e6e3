"""What measuring resource use costs per task attempt (runtime/usage.py).

Every attempt is wrapped in a ``UsageSampler``: two RSS reads, two ``os.times`` and a
registration with the worker's shared sampling thread. Attempts with a timeout also list the
forked child's processes, which scans /proc. Run: ``.venv/bin/python bench/usage_overhead.py``.
"""

from __future__ import annotations

import time

from mlflowdsl.runtime.usage import UsageSampler


def per_attempt_ms(n: int, *, children: bool) -> float:
    start = time.perf_counter()
    for i in range(n):
        with UsageSampler(attempt=1, children=children):
            pass
    return (time.perf_counter() - start) / n * 1000


if __name__ == "__main__":
    per_attempt_ms(50, children=False)  # warm up: psutil import, the sampling thread
    for children in (False, True):
        n = 2000 if not children else 200
        print(f"usage sampling per attempt ({'with' if children else 'without'} children): "
              f"{per_attempt_ms(n, children=children):.3f} ms over {n} attempts")
