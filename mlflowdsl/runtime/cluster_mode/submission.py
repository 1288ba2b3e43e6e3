"""Submission queue: one Redis Stream per capability domain, read by the consumer group
``orchestrators``.

The *shard* of an execution is its domain: the domain shared by most of its tasks (ties go
to the alphabetically first; ``default`` for a plan without tasks). An instance reads only
the streams of the domains the shard map gives it. Keys (under the gateway prefix):
``queue:<domain>`` (entries ``execution_id``, ``base_dir``), ``queue:dead`` (dead letters),
``domains`` (every domain ever submitted, so the leader maps them even when no instance
declares them), ``exec:<id>:cancel`` (the cancel flag with its reason).

>>> from mlflowdsl.ir import Plan, Task, Workflow
>>> p = Plan(workflow=Workflow(id="w"), tasks=[
...     Task(id="a", type="custom", domain="training"), Task(id="b", type="custom", domain="rag"),
...     Task(id="c", type="custom", domain="rag")])
>>> execution_domain(p)
'rag'
"""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter
from typing import Any

import redis.exceptions as rexc

from mlflowdsl.ir import Plan
from mlflowdsl.runtime.coordination.gateway import RedisGateway
from mlflowdsl.runtime.events.base import Event
from mlflowdsl.runtime.events.coordination import publish
from mlflowdsl.runtime.records import TaskResult, WorkflowExecution
from mlflowdsl.runtime.state.redis import RedisState
from mlflowdsl.settings import Settings

GROUP = "orchestrators"


def execution_domain(plan: Plan) -> str:
    """The domain most of the plan's tasks declare (ties: alphabetical; no tasks: ``default``)."""
    counts = Counter(t.domain or "default" for t in plan.tasks)
    if not counts:
        return "default"
    return min(counts, key=lambda d: (-counts[d], d))


def queue_key(gateway: RedisGateway, domain: str) -> str:
    return gateway.key("queue", domain)


def dead_key(gateway: RedisGateway) -> str:
    # A separate key space from the per-domain queues, so a domain named "dead" cannot collide.
    return gateway.key("deadletters")


def domains_key(gateway: RedisGateway) -> str:
    return gateway.key("domains")


def cancel_key(gateway: RedisGateway, execution_id: str) -> str:
    return gateway.key("exec", execution_id, "cancel")


def ensure_group(gateway: RedisGateway, domain: str) -> None:
    """Create the stream and its consumer group if missing (after a Redis restart too)."""
    def create(r):
        try:
            r.xgroup_create(queue_key(gateway, domain), GROUP, id="0", mkstream=True)
        except rexc.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
    gateway.call(create)


def known_domains(gateway: RedisGateway) -> list[str]:
    return sorted(d.decode() for d in gateway.call(lambda r: r.smembers(domains_key(gateway))))


def submit_plan(gateway: RedisGateway, plan: Plan, *, base_dir: str | None = None, keep_going: bool = False,
                execution_id: str | None = None) -> str:
    """Store ``plan`` as a pending execution and queue it on its domain's stream; returns the id."""
    state = RedisState(gateway)
    execution_id = execution_id or uuid.uuid4().hex[:12]
    source = plan.workflow.source
    base = base_dir or (os.path.dirname(os.path.abspath(source)) if source else os.getcwd())
    execution = WorkflowExecution(
        id=execution_id, workflow_id=plan.workflow.id, workflow_name=plan.workflow.name,
        plan_fingerprint=plan.fingerprint or plan.compute_fingerprint(), plan_json=plan.model_dump_json(),
        params=dict(plan.workflow.params), source=source, keep_going=keep_going, created=time.time())
    state.save_execution_checked(execution)
    state.commit_task_results(execution_id, [TaskResult(task_id=t.id) for t in plan.tasks])
    domain = execution_domain(plan)
    ensure_group(gateway, domain)

    def enqueue(r):
        pipe = r.pipeline()
        pipe.sadd(domains_key(gateway), domain)
        pipe.xadd(queue_key(gateway, domain), {"execution_id": execution_id, "base_dir": base})
        return pipe.execute()

    gateway.call(enqueue)
    return execution_id


def request_cancel(gateway: RedisGateway, execution_id: str, reason: str = "cancelled by `mlw cancel`", *,
                   settings: Settings | None = None) -> WorkflowExecution:
    """Set the cancel flag the owning instance polls; an execution nobody runs yet is
    cancelled at once. Returns the execution as stored now. With Kafka in ``settings`` an
    ``execution.cancel_requested`` event also tells the owner at once (the flag stays the
    source of truth: a lost event only means the owner finds the flag at its next poll)."""
    state = RedisState(gateway)
    execution = state.get_execution(execution_id)  # resolves a prefix; StateError when unknown
    if execution.finished:
        return execution
    gateway.call(lambda r: r.set(cancel_key(gateway, execution.id), reason))
    if execution.status == "pending":
        now = time.time()
        state.save_execution_checked(execution.advance("cancelled", ended=now, error=reason))
        state.commit_task_results(execution.id, [r.advance("skipped", error=reason)
                                                 for r in execution.tasks.values() if not r.finished])
    elif settings is not None:
        publish(settings, Event.create("execution.cancel_requested", execution_id=execution.id,
                                       workflow_id=execution.workflow_id, payload={"reason": reason}))
    return state.get_execution(execution.id)


def cancel_reasons(gateway: RedisGateway, execution_ids: list[str]) -> dict[str, str]:
    """The cancel flags set for these executions (id -> reason)."""
    if not execution_ids:
        return {}
    raws = gateway.call(lambda r: r.mget([cancel_key(gateway, e) for e in execution_ids]))
    return {e: raw.decode() for e, raw in zip(execution_ids, raws) if raw is not None}


def head_wait_s(gateway: RedisGateway, domain: str) -> float:
    """How long the oldest entry of ``domain``'s stream not yet delivered to any instance has
    been waiting (seconds, by the Redis clock; 0 when none waits)."""
    key = queue_key(gateway, domain)

    def read(r):
        try:
            groups = r.xinfo_groups(key)
        except rexc.ResponseError:  # no stream yet
            return None, None
        group = next((g for g in groups if g.get("name") in (GROUP, GROUP.encode())), None)
        if group is None or group.get("lag") == 0:
            return None, None
        last = group.get("last-delivered-id") or b"0-0"
        last = last.decode() if isinstance(last, bytes) else str(last)
        return r.xrange(key, min=f"({last}", count=1), r.time()

    entries, now = gateway.call(read)
    if not entries:
        return 0.0
    entry_id = entries[0][0]
    entry_ms = int((entry_id.decode() if isinstance(entry_id, bytes) else entry_id).split("-")[0])
    return max(0.0, now[0] + now[1] / 1e6 - entry_ms / 1000)


def queue_stats(gateway: RedisGateway) -> dict[str, Any]:
    """Per domain: entries not yet delivered (``queued``) and delivered but unacknowledged
    (``pending``, per consumer); and the dead letters."""
    out: dict[str, Any] = {}
    for domain in known_domains(gateway):
        key = queue_key(gateway, domain)

        def read(r, key=key):
            try:
                groups = r.xinfo_groups(key)
                summary = r.xpending(key, GROUP)
            except rexc.ResponseError:  # stream or group gone (a Redis restarted empty)
                return None, None
            return groups, summary

        groups, summary = gateway.call(read)
        group = next((g for g in groups or [] if g.get("name") in (GROUP, GROUP.encode())), None)
        consumers = {}
        for c in (summary or {}).get("consumers") or []:
            name = c["name"].decode() if isinstance(c["name"], bytes) else c["name"]
            consumers[name] = int(c["pending"])
        out[domain] = {"queued": int(group.get("lag") or 0) if group else 0,
                       "pending": int((summary or {}).get("pending") or 0), "pending_by_instance": consumers}
    dead = gateway.call(lambda r: r.xrange(dead_key(gateway)))
    letters = [{"id": i.decode(), **{k.decode(): v.decode() for k, v in f.items()}} for i, f in dead]
    return {"queues": out, "dead_letters": letters}
