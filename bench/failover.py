"""Leader failover time after SIGKILL, with the default lease (3 s) and renew period (1 s).

Three candidate processes (``tests/integration/coord_proc.py candidate``) share a valkey/redis
server started by this script. Each trial SIGKILLs the current leader, starts a replacement
candidate, and measures the time until another instance holds the lease. Target (issue 4):
failover <= lease + 0.5 s in 20/20 trials (the tests use a 1 s lease and allow the renew period
on top; here the bound is the issue's).

    python bench/failover.py [--trials 20] [--lease 3] [--renew 1] [--markdown]

Not measured here yet: the time for a submitted workflow to resume after its instance dies
(that needs the submission stream and the orchestrator instance process).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "integration"))
sys.path.insert(0, str(ROOT / "bench"))

import redis  # noqa: E402

from coord_proc import Procs  # noqa: E402
from locks import start_server  # noqa: E402  (bench/locks.py: a valkey on a free port)


def holder(client: redis.Redis) -> tuple[str, int] | None:
    raw = client.get("bench:leader")
    if raw is None:
        return None
    who, _, epoch = raw.decode().rpartition(":")
    return who, int(epoch)


def wait_for(check, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.002)
    raise RuntimeError(f"nothing happened within {timeout}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--lease", type=float, default=3.0)
    parser.add_argument("--renew", type=float, default=1.0)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="mlw-bench-failover-")
    server, url = start_server(workdir)
    procs = Procs(url, "bench", Path(workdir))
    times: list[float] = []
    epochs: list[int] = []
    try:
        client = redis.Redis.from_url(url)
        common = ("--lease", str(args.lease), "--renew", str(args.renew), "--write-interval", "0.1")
        for i in range(3):
            procs.start("candidate", f"c{i}", "--id", f"c{i}", *common)
        current = wait_for(lambda: holder(client), 30)
        spawned = 3
        for trial in range(args.trials):
            victim, _ = current
            # Kill at a random point of the renew cycle, as a crash would.
            time.sleep(args.renew * (0.5 + (trial % 5) / 10))
            procs.kill(victim)
            killed_at = time.monotonic()
            procs.start("candidate", f"c{spawned}", "--id", f"c{spawned}", *common)
            spawned += 1
            current = wait_for(lambda: (h := holder(client)) and h[0] != victim and h, args.lease * 3 + 5)
            times.append(time.monotonic() - killed_at)
            epochs.append(current[1])
            print(f"trial {trial + 1:2d}: {victim} killed, {current[0]} leader (epoch {current[1]}) "
                  f"after {times[-1]:.3f}s", file=sys.stderr)
        logged = [int(f[b"epoch"]) for _, f in client.xrange("bench:leader:log")]
    finally:
        procs.close()
        server.kill()
        server.wait()
        shutil.rmtree(workdir, ignore_errors=True)

    bound = args.lease + 0.5
    within = sum(t <= bound for t in times)
    monotone = all(a <= b for a, b in zip(logged, logged[1:]))
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    summary = (f"min {min(times):.2f} s, median {statistics.median(times):.2f} s, max {max(times):.2f} s; "
               f"{within}/{len(times)} within lease + 0.5 s = {bound:g} s; "
               f"accepted-write epochs never decrease: {monotone} ({len(logged)} writes, "
               f"epochs {min(logged)}..{max(logged)})")
    if args.markdown:
        print(f"Leader failover after SIGKILL ({when}; {machine}; lease {args.lease:g} s, renew {args.renew:g} s, "
              f"3 candidate processes, {len(times)} trials): {summary}.")
    else:
        print(summary)


if __name__ == "__main__":
    main()
