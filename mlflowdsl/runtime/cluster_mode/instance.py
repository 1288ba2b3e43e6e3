"""One orchestrator instance: what ``mlw orchestrator start`` runs in the foreground.

Every tick (half a heartbeat) the instance

1. as leader, recomputes the shard map (domains -> live instances) and writes it fenced;
2. refreshes its claim on the stream entries of the executions it runs (``XCLAIM ... JUSTID``
   resets their idle time, so a live owner's long execution is never reclaimed), passes on
   cancel flags, writes buffered state, and acknowledges (``XACK``) executions that ended
   once their records are in Redis;
3. unless Redis is unreachable or it is shutting down, claims work from the streams of the
   domains the shard map gives it: first entries a dead instance left unacknowledged for more
   than 3 heartbeats (``XAUTOCLAIM``), then new ones (``XREADGROUP``). An entry delivered more
   than ``max_deliveries`` times goes to the dead-letter stream instead.

A claimed execution runs under a renewed ``DistributedLock`` named after its id and under a
fencing token (:mod:`mlflowdsl.runtime.coordination.ownership`): taking it over first lets the
attempts a previous owner started end (none starts meanwhile), then hands out a newer token,
which fences the previous owner's task starts, side effects and state writes out. An owner
that finds its token superseded (every tick, and on its first rejected write or refused task)
stops its graph and writes and emits nothing more. The run is ``run_plan(...,
resume_from=<the stored execution>)``: tasks committed before a failover are carried over (or
loaded from the shared cache) and not run again. Guarantees: a task that a previous owner
started runs again only if that attempt died with its worker or left no entry in a shared
cache (at-least-once execution); exactly-once result commit (:mod:`mlflowdsl.runtime.state.redis`).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import redis.exceptions as rexc

from mlflowdsl.errors import MlwError, StateError
from mlflowdsl.ir import Plan
from mlflowdsl.runtime.api import run_plan
from mlflowdsl.runtime.cluster_mode import submission as sub
from mlflowdsl.runtime.coordination import (
    Heartbeat,
    InstanceInfo,
    InstanceRegistry,
    LeaderElector,
    LeaderLease,
    RedisUnavailable,
    ShardBalancer,
    coordination_config,
    gateway_from_settings,
    read_shard_map,
)
from mlflowdsl.runtime.coordination.shards import eligible
from mlflowdsl.runtime.coordination import ownership
from mlflowdsl.runtime.coordination.locks import DistributedLock
from mlflowdsl.runtime.coordination.ownership import Fence
from mlflowdsl.runtime.events.coordination import InstanceEvents
from mlflowdsl.runtime.state.redis import RedisState
from mlflowdsl.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Job:
    """An execution this instance claimed and runs in a thread."""

    execution_id: str
    domain: str
    entry_id: str
    base_dir: str | None
    lock: DistributedLock
    thread: threading.Thread | None = None
    done: threading.Event = field(default_factory=threading.Event)
    cancel_reason: str | None = None
    status: str | None = None
    fence: Fence | None = None  # our ownership token (coordination.ownership)
    lost: bool = False  # another instance took the execution over: stop, write nothing


class OrchestratorInstance:
    """Register, elect, balance shards, claim and run executions; see the module docstring.

    ``client`` is a Dask client on the cluster that runs the tasks (shared by the executions).
    """

    def __init__(self, settings: Settings, instance_id: str, client: Any, *, domains: tuple[str, ...] = (),
                 max_running: int = 4):
        self.settings = settings
        self.id = instance_id
        self.client = client
        self.domains = tuple(domains)
        self.max_running = max_running
        self.config = coordination_config(settings)
        self.gateway = gateway_from_settings(settings)
        self.state = RedisState(self.gateway)
        self.registry = InstanceRegistry(self.gateway, beat_s=self.config.heartbeat_s)
        self.heartbeat = Heartbeat(self.registry, InstanceInfo(instance_id, self.domains),
                                   load=lambda: float(len(self.jobs)))
        self.lease = LeaderLease(self.gateway, instance_id, lease_s=self.config.lease_s, renew_s=self.config.renew_s)
        self.balancer = ShardBalancer(self.lease, self.registry)
        self.elector = LeaderElector(self.lease, on_elected=self._on_elected)
        self.jobs: dict[str, Job] = {}
        self.stopping = threading.Event()
        self.idle_ms = int(3 * self.config.heartbeat_s * 1000)
        self.owned_domains: list[str] = []
        # After an outage every owner's entries look idle (nobody could refresh them): wait
        # one reclaim period before reclaiming, so live owners refresh theirs first.
        self._outage_seen = -float("inf")
        # Coordination events (Kafka, when configured) wake the tick early; Redis decides.
        self._wake = threading.Event()
        self.events = InstanceEvents(settings, instance_id, self._on_event)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> "OrchestratorInstance":
        self.heartbeat.start()
        self.elector.start()
        self.events.start(self.domains)
        log.info("instance %s started (domains: %s)", self.id, ", ".join(self.domains) or "*")
        return self

    def _on_elected(self, epoch: int) -> None:
        log.info("instance %s is leader (epoch %d)", self.id, epoch)
        self.events.publish("leader.elected", {"epoch": epoch})

    def _on_event(self, event) -> None:
        """A coordination event from any instance (or ``mlw cancel``): act now, not at the next poll."""
        if event.type == "execution.cancel_requested":
            job = self.jobs.get(event.execution_id)
            if job is not None and not job.cancel_reason:
                job.cancel_reason = event.payload.get("reason") or "cancelled"
                log.info("execution %s: cancel requested (event from %s)", job.execution_id, event.instance_id)
            elif job is not None:  # the poll of the Redis flag, set before the event was sent, came first
                log.info("execution %s: cancel requested (event from %s, after the flag's poll)",
                         job.execution_id, event.instance_id)
        elif event.instance_id != self.id and event.type in ("shards.changed", "instance.joined", "instance.left"):
            self._wake.set()  # re-read the shard map (or, as leader, rebalance) now

    def run(self, until: threading.Event | None = None) -> None:
        """Tick until ``stop()`` (or ``until``) is set, then finish the running executions."""
        tick = max(0.05, self.config.heartbeat_s / 2)
        while not self.stopping.is_set() and not (until is not None and until.is_set()):
            self.tick()
            self._wake.wait(tick)
            self._wake.clear()
        self.stopping.set()
        while self.jobs:  # let running executions finish (their claims stay fresh meanwhile)
            self.tick()
            time.sleep(tick)
        self.close()

    def stop(self) -> None:
        """Stop claiming; :meth:`run` returns once the running executions have ended."""
        self.stopping.set()
        self._wake.set()

    def close(self) -> None:
        self.events.close(self.domains)
        self.elector.stop()
        self.heartbeat.stop(deregister=True)
        self.state.flush_pending()
        log.info("instance %s stopped", self.id)

    # ------------------------------------------------------------------ one tick

    def tick(self) -> None:
        try:
            if self.lease.is_leader:
                self.balancer.domains = set(sub.known_domains(self.gateway))
                changed = self.balancer.rebalance()
                if changed is not None:
                    log.info("shard map epoch %d: %s", changed.epoch, changed.assignments)
                    self.events.publish("shards.changed", {"epoch": changed.epoch,
                                                           "assignments": dict(changed.assignments)})
            self._tend_jobs()
            if not self.stopping.is_set() and self.gateway.breaker_state == "closed":
                self._claim()
        except RedisUnavailable as exc:
            self._outage_seen = time.monotonic()
            log.warning("instance %s: Redis unavailable, holding on to running work: %s", self.id, exc)
        except MlwError as exc:
            log.error("instance %s: %s", self.id, exc)
        except Exception:  # a bug or an odd reply must not kill the instance and its executions
            log.exception("instance %s: tick failed", self.id)

    def _tend_jobs(self) -> None:
        self._check_ownership()
        running = [j for j in self.jobs.values() if not j.done.is_set() and not j.lost]
        for job in running:
            key = sub.queue_key(self.gateway, job.domain)
            try:
                self.gateway.call(lambda r, job=job, key=key: r.xclaim(
                    key, sub.GROUP, self.id, min_idle_time=0, message_ids=[job.entry_id], justid=True))
            except rexc.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                sub.ensure_group(self.gateway, job.domain)  # Redis restarted empty
        for eid, reason in sub.cancel_reasons(self.gateway, [j.execution_id for j in running]).items():
            self.jobs[eid].cancel_reason = reason
        for job in [j for j in self.jobs.values() if j.done.is_set() and j.lost]:
            self._forget(job)  # the new owner acknowledges it
            log.info("execution %s: left to its new owner", job.execution_id)
        for job in [j for j in self.jobs.values() if j.done.is_set()]:
            if not self.state.flush_pending():
                return  # acknowledge only what Redis has: the entry must survive our death
            try:
                finished = self.state.get_execution(job.execution_id).finished
            except StateError:
                # Redis lost the record while the run went on (it restarted without
                # persistence): there is nothing to acknowledge against. Forget the job instead
                # of failing every tick, which would stop this instance from claiming anything.
                log.warning("execution %s has no record any more (Redis restarted empty?); dropping it",
                            job.execution_id)
                finished = False
            if finished:
                key = sub.queue_key(self.gateway, job.domain)
                self.gateway.call(lambda r, job=job, key=key: r.xack(key, sub.GROUP, job.entry_id))
            else:
                # The run broke off without a final record (e.g. Redis went away before it
                # started): leave the entry unacknowledged so it is delivered again.
                log.warning("execution %s ended without a final record; it will be redelivered", job.execution_id)
            self._forget(job)
            if finished:
                log.info("execution %s %s (acknowledged)", job.execution_id, job.status)

    def _check_ownership(self) -> None:
        """Mark the jobs another instance took over (a newer token, or a write of ours fenced
        out): their runs stop at once, and this instance no longer refreshes their claims."""
        held = [j for j in self.jobs.values() if not j.lost and j.fence is not None]
        tokens = ownership.current_tokens(self.gateway, [j.execution_id for j in held])
        for job in held:
            token = tokens.get(job.execution_id, 0)
            if token != job.fence.token or self.state.fenced_out(job.execution_id):
                job.lost = True
                log.warning("execution %s was taken over (token %d, ours %d): stopping our run of it",
                            job.execution_id, token, job.fence.token)

    def _forget(self, job: Job) -> None:
        try:
            job.lock.release(strict=False)
        except RedisUnavailable:
            pass  # the lock expires with its TTL
        self.state.unfence(job.execution_id)
        del self.jobs[job.execution_id]

    # ------------------------------------------------------------------ claiming

    def _claim(self) -> None:
        shard_map = read_shard_map(self.gateway)
        self.owned_domains = shard_map.domains_of(self.id) if shard_map else []
        for domain in self.owned_domains:
            if len(self.jobs) >= self.max_running:
                return
            for entry_id, fields in self._next_entries(domain):
                self._take(domain, entry_id, fields)
        # Several consumers per domain: with slots to spare, help with the domains of other
        # instances that this one may serve, taking only entries their owner left waiting for
        # more than a heartbeat (an owner with a free slot takes a new entry within half a one).
        for domain in self._helpable(shard_map):
            if len(self.jobs) >= self.max_running:
                return
            if sub.head_wait_s(self.gateway, domain) > self.config.heartbeat_s:
                for entry_id, fields in self._next_entries(domain, reclaim=False):
                    log.info("helping with domain %s (owner %s)", domain, shard_map.owner_of(domain))
                    self._take(domain, entry_id, fields)

    def _helpable(self, shard_map) -> list[str]:
        if shard_map is None:
            return []
        return sorted(d for d, owner in shard_map.assignments.items()
                      if owner != self.id and eligible(self.domains, d))

    def _next_entries(self, domain: str, *, reclaim: bool = True) -> list[tuple[str, dict[str, str]]]:
        key = sub.queue_key(self.gateway, domain)
        reclaim = reclaim and time.monotonic() - self._outage_seen > 2 * self.idle_ms / 1000

        def read(r):
            try:
                if reclaim:
                    _, claimed, *_ = r.xautoclaim(key, sub.GROUP, self.id, min_idle_time=self.idle_ms,
                                                  start_id="0-0", count=1)
                    claimed = [c for c in claimed if c and c[1]]
                    if claimed:
                        return claimed
                found = r.xreadgroup(sub.GROUP, self.id, {key: ">"}, count=1)
                return found[0][1] if found else []
            except rexc.ResponseError as exc:
                if "NOGROUP" in str(exc):
                    return None
                raise

        entries = self.gateway.call(read)
        if entries is None:  # the stream or group is gone (Redis restarted empty): recreate it
            sub.ensure_group(self.gateway, domain)
            return []
        return [(i.decode(), {k.decode(): v.decode() for k, v in f.items()}) for i, f in entries]

    def _deliveries(self, domain: str, entry_id: str) -> int:
        key = sub.queue_key(self.gateway, domain)
        info = self.gateway.call(lambda r: r.xpending_range(key, sub.GROUP, min=entry_id, max=entry_id, count=1))
        return int(info[0]["times_delivered"]) if info else 1

    def _ack(self, domain: str, entry_id: str) -> None:
        key = sub.queue_key(self.gateway, domain)
        self.gateway.call(lambda r: r.xack(key, sub.GROUP, entry_id))

    def _take(self, domain: str, entry_id: str, fields: dict[str, str]) -> None:
        execution_id = fields.get("execution_id", "")
        if execution_id in self.jobs:
            return  # our own entry (e.g. reclaimed while we still run it)
        deliveries = self._deliveries(domain, entry_id)
        if deliveries > self.settings.max_deliveries:
            self._dead_letter(domain, entry_id, execution_id, deliveries)
            return
        lock = DistributedLock(self.gateway, f"exec:{execution_id}", ttl_s=max(1.0, 3 * self.config.heartbeat_s),
                               timeout_s=0, renew=True)
        if not lock.try_acquire():
            log.info("execution %s is held by another instance; leaving it", execution_id)
            return
        try:
            stored = self.state.get_execution(execution_id)
        except MlwError as exc:
            log.error("entry %s names an unknown execution %s: %s", entry_id, execution_id, exc)
            self._ack(domain, entry_id)
            lock.release(strict=False)
            return
        if stored.finished:
            self._ack(domain, entry_id)
            lock.release(strict=False)
            return
        job = Job(execution_id=stored.id, domain=domain, entry_id=entry_id, base_dir=fields.get("base_dir"),
                  lock=lock)
        job.cancel_reason = sub.cancel_reasons(self.gateway, [stored.id]).get(stored.id)
        self.jobs[stored.id] = job
        verb = "resuming" if stored.status == "running" else "starting"
        log.info("%s execution %s (domain %s, delivery %d)", verb, stored.id, domain, deliveries)
        job.thread = threading.Thread(target=self._run_job, args=(job, stored), daemon=True,
                                      name=f"mlw-exec-{stored.id}")
        job.thread.start()

    def _dead_letter(self, domain: str, entry_id: str, execution_id: str, deliveries: int) -> None:
        reason = f"delivered {deliveries} times (max_deliveries = {self.settings.max_deliveries})"
        self.gateway.call(lambda r: r.xadd(sub.dead_key(self.gateway), {
            "execution_id": execution_id, "domain": domain, "entry": entry_id, "deliveries": str(deliveries),
            "reason": reason, "instance": self.id}))
        self._ack(domain, entry_id)
        try:
            stored = self.state.get_execution(execution_id)
            if not stored.finished:
                self.state.save_execution_checked(stored.advance("failed", ended=time.time(),
                                                                 error=f"dead-lettered: {reason}"))
        except MlwError as exc:  # no record to mark (unknown id, or Redis away): the dead letter says it
            log.debug("execution %s: not marked failed: %s", execution_id, exc)
        log.error("execution %s dead-lettered: %s", execution_id, reason)

    # ------------------------------------------------------------------ running

    def _run_job(self, job: Job, stored) -> None:
        try:
            if job.cancel_reason:
                self._cancel_unstarted(stored, job.cancel_reason)
                job.status = "cancelled"
                return
            self._claim_ownership(job)
            stored = self.state.get_execution(job.execution_id)  # what a previous owner committed meanwhile
            if stored.finished:  # it finished the execution itself while we waited
                job.status = stored.status
                return
            plan = Plan.from_json(stored.plan_json)
            result = run_plan(plan, self.settings, client=self.client, state=self.state, resume_from=stored,
                              keep_going=stored.keep_going, base_dir=job.base_dir, flush_interval_s=0.0,
                              cancel_check=lambda: job.cancel_reason, fence=job.fence,
                              owner_check=lambda: not job.lost and not self.state.fenced_out(job.execution_id))
            job.status = result.status
            if result.status == "running":  # the run stopped because another instance took over
                job.lost = True
        except Exception as exc:  # noqa: BLE001 - the execution fails, the instance lives on
            if job.lost:
                log.info("execution %s: our run of it ended after it was taken over: %s", job.execution_id, exc)
                return
            log.exception("execution %s could not run", job.execution_id)
            job.status = "failed"
            try:
                current = self.state.get_execution(job.execution_id)
                if not current.finished:
                    self.state.save_execution(current.advance("failed", ended=time.time(),
                                                              error=f"{type(exc).__name__}: {exc}"))
            except Exception as record_exc:  # noqa: BLE001 - the tick sees no final record and leaves it for redelivery
                log.debug("execution %s: the failure could not be recorded: %s", job.execution_id, record_exc)
        finally:
            job.done.set()

    def _claim_ownership(self, job: Job) -> list[str]:
        """Take the execution over (``coordination.ownership.claim``): attempts a previous owner
        started (it stalled, or died with tasks in flight) end first, so their tasks are not run
        again beside them; then every earlier owner is fenced out. Returns the task ids waited for."""
        def live_workers() -> set[str]:
            return set(self.client.scheduler_info(n_workers=-1).get("workers", {}))

        job.fence, waited = ownership.claim(self.gateway, job.execution_id, live_workers,
                                            give_up=lambda: bool(job.cancel_reason))
        self.state.fence(job.execution_id, job.fence.token)
        if waited:
            log.info("execution %s: waited for the previous owner's attempts of %s", job.execution_id,
                     ", ".join(waited))
        return waited

    def _cancel_unstarted(self, stored, reason: str) -> None:
        now = time.time()
        self.state.save_task_results(stored.id, [r.advance("skipped", error=reason)
                                                 for r in stored.tasks.values() if not r.finished])
        self.state.save_execution(stored.advance("cancelled", ended=now, error=reason))
