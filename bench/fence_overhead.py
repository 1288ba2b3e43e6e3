"""What execution fencing adds per task attempt on a worker: the start check (one EVALSHA that
checks the token and lists the attempt) and the end (one EVALSHA that unlists it), against a
raw redis-py PING round trip, interleaved in batches on one valkey started here.

    python bench/fence_overhead.py [--n 5000] [--markdown]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import redis  # noqa: E402

from locks import start_server  # noqa: E402  (bench/locks.py: a valkey on a free port)
from mlflowdsl.runtime.coordination import ownership  # noqa: E402
from mlflowdsl.runtime.coordination.gateway import RedisGateway  # noqa: E402
from mlflowdsl.runtime.coordination.ownership import AttemptGuard  # noqa: E402
from mlflowdsl.settings import Settings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="mlw-bench-fence-cost-"))
    server, url = start_server(str(workdir))
    try:
        raw = redis.Redis.from_url(url)
        gateway = RedisGateway(url, prefix="mlw")
        fence, _ = ownership.claim(gateway, "bench", lambda: set())
        settings = Settings(redis_url=url)
        AttemptGuard(settings, fence, "warm", "w").start()
        ping, guard = [], []
        batch = 100
        for b in range(args.n // batch):
            t0 = time.perf_counter()
            for _ in range(batch):
                raw.ping()
            ping.append((time.perf_counter() - t0) / batch)
            t0 = time.perf_counter()
            for i in range(batch):
                g = AttemptGuard(settings, fence, f"t{i}", "tcp://w")
                g.start()
                g.end()
            guard.append((time.perf_counter() - t0) / batch)
        p, g = statistics.median(ping) * 1e6, statistics.median(guard) * 1e6
    finally:
        server.kill()
        server.wait()
        shutil.rmtree(workdir, ignore_errors=True)
    summary = (f"per attempt: fencing start + end {g:.0f} us, raw PING {p:.0f} us ({g / p:.2f}x a round trip; "
               f"median of {args.n // batch} interleaved batches of {batch})")
    if args.markdown:
        machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
        print(f"Fencing cost ({when}; {machine}; `{load}`): {summary}")
    else:
        print(summary)


if __name__ == "__main__":
    main()
