"""Coordination roles run as separate processes by the coordination tests and benchmarks.

    python tests/integration/coord_proc.py candidate --url URL --prefix P --id ID --events FILE ...
    python tests/integration/coord_proc.py locker    --url URL --prefix P --cycles N --counter KEY
    python tests/integration/coord_proc.py holder    --url URL --prefix P --name LOCK --ttl S --events FILE

Events are JSON lines appended (and flushed) to ``--events`` so a test can read what a process
saw even after SIGKILL.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from mlflowdsl.runtime.coordination import (
    BackoffPolicy,
    DistributedLock,
    LeaderElector,
    LeaderLease,
    RedisGateway,
    RedisUnavailable,
)
from mlflowdsl.runtime.coordination import leader as leader_module

_EPOCH_CHECK = "if current > epoch then return 0 end\n"


class UnfencedLease(LeaderLease):
    """The control run's lease: fenced writes without the epoch check (the script minus the
    line that rejects an older epoch), to show that the fencing test can fail."""

    def __init__(self, gateway: RedisGateway, *args, **kwargs):
        super().__init__(gateway, *args, **kwargs)
        assert _EPOCH_CHECK in leader_module._FENCED, "the fenced-write script changed: update UnfencedLease"
        self._fenced = gateway.script(leader_module._FENCED.replace(_EPOCH_CHECK, ""))


class Events:
    def __init__(self, path: str | None):
        self._file = open(path, "a", buffering=1) if path else None
        self._lock = threading.Lock()

    def emit(self, kind: str, **fields) -> None:
        if self._file is None:
            return
        with self._lock:
            self._file.write(json.dumps({"t": time.time(), "pid": os.getpid(), "type": kind, **fields}) + "\n")
            self._file.flush()


def gateway(args) -> RedisGateway:
    return RedisGateway(args.url, prefix=args.prefix, socket_timeout=0.5,
                        retry=BackoffPolicy(attempts=3, base_s=0.02, cap_s=0.2, max_delay_s=0.5),
                        breaker_fail_max=5, breaker_reset_s=0.5)


def run_candidate(args) -> None:
    """Stand for leader; while leader, append a fenced entry to ``<prefix>:work`` every
    ``--write-interval``. After a pause longer than the lease (SIGSTOP) it attempts
    ``--stale-writes`` writes with the token it held before the pause, without asking whether
    it is still leader: the worst case of the check-then-write race that fencing must stop."""
    events = Events(args.events)
    gw = gateway(args)
    lease = (UnfencedLease if args.no_fencing else LeaderLease)(gw, args.id, lease_s=args.lease, renew_s=args.renew)
    elector = LeaderElector(lease, on_elected=lambda e: events.emit("elected", id=args.id, epoch=e),
                            on_lost=lambda e: events.emit("lost", id=args.id, epoch=e))
    elector.start()
    events.emit("started", id=args.id)
    work_key = gw.key("work")
    seq = 0
    held_token = None  # the token used in the previous iteration (what a paused leader remembers)
    last = time.monotonic()
    while True:
        now = time.monotonic()
        paused, last = now - last > args.lease, now  # stopped (or starved) past the lease
        if paused and held_token is not None:
            for _ in range(args.stale_writes):
                seq += 1
                try:
                    accepted = lease.fenced_xadd(work_key, {"writer": args.id, "seq": seq}, epoch=held_token)
                except RedisUnavailable:
                    continue
                events.emit("stale_write", id=args.id, epoch=held_token, accepted=accepted)
            held_token = None
            last = time.monotonic()
            continue
        held_token = lease.epoch if lease.is_leader else None
        if held_token is not None:
            seq += 1
            try:
                accepted = lease.fenced_xadd(work_key, {"writer": args.id, "seq": seq}, epoch=held_token)
                events.emit("write", id=args.id, epoch=held_token, accepted=accepted)
            except RedisUnavailable:
                pass
        time.sleep(args.write_interval)


def run_locker(args) -> None:
    """``--cycles`` lock/GET/SET+1/unlock cycles on a shared counter (no INCR on purpose: a
    broken lock shows up as lost updates)."""
    gw = gateway(args)
    counter = gw.key(args.counter)
    lock = DistributedLock(gw, args.name, ttl_s=args.ttl, timeout_s=None)
    for _ in range(args.cycles):
        with lock:
            value = int(gw.call(lambda r: r.get(counter)) or 0)
            gw.call(lambda r: r.set(counter, value + 1))
    print("done", flush=True)


def run_holder(args) -> None:
    """Take the lock, report it, and hold it forever (until killed)."""
    events = Events(args.events)
    gw = gateway(args)
    lock = DistributedLock(gw, args.name, ttl_s=args.ttl, timeout_s=10)
    lock.acquire()
    events.emit("held", name=args.name, token=lock.token)
    while True:
        time.sleep(3600)


class Procs:
    """Start roles as separate processes (own session, output in ``workdir``) and end every one
    of them on :meth:`close` (SIGCONT first: a stopped process cannot die of SIGTERM)."""

    def __init__(self, url: str, prefix: str, workdir: Path):
        self.url, self.prefix, self.workdir = url, prefix, Path(workdir)
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, role: str, name: str, *args: str) -> subprocess.Popen:
        log = open(self.workdir / f"{name}.log", "ab")
        try:
            proc = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), role, "--url", self.url, "--prefix", self.prefix,
                 "--events", str(self.events_path(name)), *args],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            log.close()
        self.procs[name] = proc
        return proc

    def events_path(self, name: str) -> Path:
        return self.workdir / f"{name}.events"

    def events(self, name: str, kind: str | None = None) -> list[dict]:
        path = self.events_path(name)
        if not path.exists():
            return []
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return [r for r in rows if kind is None or r["type"] == kind]

    def signal(self, name: str, sig: int) -> None:
        os.kill(self.procs[name].pid, sig)

    def kill(self, name: str) -> None:
        proc = self.procs[name]
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                for sig in (signal.SIGCONT, signal.SIGKILL):
                    try:
                        os.kill(proc.pid, sig)
                    except ProcessLookupError:
                        pass
                proc.wait(10)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="coord_proc")
    sub = parser.add_subparsers(dest="role", required=True)
    for role in ("candidate", "locker", "holder"):
        p = sub.add_parser(role)
        p.add_argument("--url", required=True)
        p.add_argument("--prefix", default="mlw")
        p.add_argument("--events")
        p.add_argument("--name", default="counter-lock")
        p.add_argument("--ttl", type=float, default=10.0)
        if role == "candidate":
            p.add_argument("--id", required=True)
            p.add_argument("--lease", type=float, default=3.0)
            p.add_argument("--renew", type=float, default=1.0)
            p.add_argument("--write-interval", type=float, default=0.1)
            p.add_argument("--stale-writes", type=int, default=5)
            p.add_argument("--no-fencing", action="store_true", help="the control run (UnfencedLease)")
        if role == "locker":
            p.add_argument("--cycles", type=int, default=1000)
            p.add_argument("--counter", default="counter")
    args = parser.parse_args(argv)
    {"candidate": run_candidate, "locker": run_locker, "holder": run_holder}[args.role](args)


if __name__ == "__main__":
    sys.exit(main())
