"""What the trust work costs, side by side with its anchor in one run (ratios printed):

1. ``plan_components`` of 200 custom tasks with code-aware keys vs without (the code
   fingerprint replaced by nothing): first plan in a process (files parsed) and later plans
   (memoized per file versions);
2. reading a disk-cache entry: HMAC-SHA256 verification (today) vs the plain sha256 checksum
   it replaced (computed here as the anchor), for a 64 KiB and a 16 MiB entry;
3. what planning adds for a task it will *load*: ``verify`` (read and check the whole entry)
   vs the header-only ``contains``.

Run: ``PYTHONPATH=. .venv/bin/python bench/trust_costs.py`` (from the repository root).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlflowdsl.runtime import keys as keys_module  # noqa: E402
from mlflowdsl.runtime.cache.disk import PREFIX, DiskCache, decode_entry  # noqa: E402
from mlflowdsl.runtime.keyparts import plan_components  # noqa: E402
from mlflowdsl.tasks import codeprint, source  # noqa: E402
from tests.integration.runtime_helpers import plan, task  # noqa: E402


def _median(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def planning() -> None:
    wide = plan(*[task(f"t{i}", "value", x=i, cache="disk") for i in range(200)])
    real = keys_module.code_fingerprints
    codeprint._MEMO.clear()
    codeprint._module_digest.cache_clear()
    source._parse.cache_clear()
    cold = _median(lambda: plan_components(wide, "."), 1)
    warm = _median(lambda: plan_components(wide, "."), 15)
    keys_module.code_fingerprints = lambda task, base_dir: []
    try:
        anchor = _median(lambda: plan_components(wide, "."), 15)
    finally:
        keys_module.code_fingerprints = real
    print(f"plan_components, 200 custom tasks: without code keys {anchor * 1e3:.1f} ms; with: first plan "
          f"{cold * 1e3:.1f} ms ({cold / anchor:.2f}x), later plans {warm * 1e3:.1f} ms ({warm / anchor:.2f}x)")


def disk(size: int, repeat: int) -> None:
    with tempfile.TemporaryDirectory() as root:
        cache = DiskCache(root, b"bench signing key")
        key = "ab" + "0" * 62
        cache.put(key, os.urandom(size))
        data = cache.path_for(key).read_bytes()

        body = memoryview(data)[PREFIX.size:]
        # the anchor: the check version 1 made (sha256 of header + payload); against it the
        # HMAC alone, and the whole decode (HMAC, header, payload copy) as a read does it
        anchor = _median(lambda: hashlib.sha256(body).digest(), repeat)
        mac = _median(lambda: hmac.new(b"bench signing key", key.encode() + b"\n", hashlib.sha256).update(body), repeat)
        signed = _median(lambda: decode_entry(data, b"bench signing key", key), repeat)
        contains = _median(lambda: cache.contains(key), repeat)
        verify = _median(lambda: cache.verify(key), repeat)
    print(f"disk entry {size // 1024} KiB: sha256 {anchor * 1e6:.0f} us, HMAC-SHA256 {mac * 1e6:.0f} us "
          f"({mac / anchor:.2f}x), whole decode {signed * 1e6:.0f} us ({signed / anchor:.2f}x); "
          f"planning: contains {contains * 1e6:.0f} us, verify {verify * 1e6:.0f} us ({verify / contains:.1f}x)")


if __name__ == "__main__":
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; Python {sys.version.split()[0]}; "
          f"load average {os.getloadavg()[0]:.1f}")
    planning()
    disk(64 * 1024, 50)
    disk(16 * 1024 * 1024, 7)
