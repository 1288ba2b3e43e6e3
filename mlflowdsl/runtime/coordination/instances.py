"""Orchestrator instances: registration, heartbeats with a TTL, and the live set.

Keys: ``<prefix>:instance:<id>`` holds the instance's JSON (:class:`InstanceInfo`) with a
TTL of ``3 x beat_s``, refreshed by every heartbeat; ``<prefix>:instances`` is a sorted set of
known ids scored by their last heartbeat (Redis server time, so instances' clock skew does not
matter). An instance is *live* while its key exists: a dead instance disappears at most
``3 x beat_s`` after its last heartbeat. Stale ids are pruned from the sorted set by
:meth:`InstanceRegistry.live`.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from dataclasses import asdict, dataclass, field, replace

from mlflowdsl.runtime.coordination.gateway import RedisGateway, RedisUnavailable

log = logging.getLogger(__name__)

# Register/heartbeat in one script: stamp the server time, write the JSON with its TTL, score
# the id. ARGV: id, json-without-heartbeat, ttl ms. For heartbeat (ARGV[2] == ''), only load is
# updated and 0 is returned when the instance is unknown (it must register again).
_BEAT = """
local now = redis.call('TIME')
local ts = tonumber(now[1]) + tonumber(now[2]) / 1e6
local info
if ARGV[2] == '' then
  local raw = redis.call('GET', KEYS[1])
  if not raw then return 0 end
  info = cjson.decode(raw)
  info['load'] = tonumber(ARGV[4])
else
  info = cjson.decode(ARGV[2])
end
info['last_heartbeat'] = ts
redis.call('SET', KEYS[1], cjson.encode(info), 'PX', ARGV[3])
redis.call('ZADD', KEYS[2], ts, ARGV[1])
return 1
"""


@dataclass(frozen=True)
class InstanceInfo:
    """What an orchestrator instance tells the cluster about itself.

    ``domains``: the capability domains it serves (``("*",)`` or empty = every domain).

    >>> InstanceInfo("orch-a", ("training",)).serves("training"), InstanceInfo("orch-b").serves("rag")
    (True, True)
    """

    id: str
    domains: tuple[str, ...] = ()
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    started: float = field(default_factory=time.time)
    load: float = 0.0
    last_heartbeat: float | None = None  # Redis server time of the last beat (set by Redis)

    def serves(self, domain: str) -> bool:
        return not self.domains or "*" in self.domains or domain in self.domains

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "domains": list(self.domains)}, sort_keys=True)

    @classmethod
    def from_json(cls, raw: str | bytes) -> "InstanceInfo":
        data = json.loads(raw)
        # cjson encodes an empty Lua table as {}: treat any non-list as "no domains".
        domains = data.get("domains")
        data["domains"] = tuple(domains) if isinstance(domains, list) else ()
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


class InstanceRegistry:
    """Register instances, beat their heartbeat, list the live ones."""

    def __init__(self, gateway: RedisGateway, *, beat_s: float = 1.0):
        self.gateway = gateway
        self.beat_s = beat_s
        self.ttl_ms = int(3 * beat_s * 1000)
        self.index_key = gateway.key("instances")
        self._beat = gateway.script(_BEAT)

    def instance_key(self, instance_id: str) -> str:
        return self.gateway.key("instance", instance_id)

    def register(self, info: InstanceInfo) -> None:
        """Announce ``info`` (or refresh all of it); it stays live for ``3 x beat_s``."""
        self._beat(keys=[self.instance_key(info.id), self.index_key],
                   args=[info.id, info.to_json(), self.ttl_ms, info.load])

    def heartbeat(self, instance_id: str, load: float = 0.0) -> bool:
        """Extend the instance's TTL and record ``load``. ``False`` when Redis no longer knows
        the instance (it expired, or Redis restarted empty): call :meth:`register` again."""
        return bool(self._beat(keys=[self.instance_key(instance_id), self.index_key],
                               args=[instance_id, "", self.ttl_ms, load]))

    def deregister(self, instance_id: str) -> None:
        key = self.instance_key(instance_id)

        def remove(r):
            pipe = r.pipeline()
            pipe.delete(key)
            pipe.zrem(self.index_key, instance_id)
            return pipe.execute()

        self.gateway.call(remove)

    def live(self, *, prune: bool = True) -> list[InstanceInfo]:
        """The instances whose heartbeat key still exists, sorted by id. ``prune`` removes the
        ids of expired instances from the index (``False`` for read-only callers)."""
        ids = [i.decode() for i in self.gateway.call(lambda r: r.zrange(self.index_key, 0, -1))]
        if not ids:
            return []
        raws = self.gateway.call(lambda r: r.mget([self.instance_key(i) for i in ids]))
        live = [InstanceInfo.from_json(raw) for raw in raws if raw is not None]
        gone = [i for i, raw in zip(ids, raws) if raw is None]
        if gone and prune:
            # Prune ids whose key expired; a re-registration adds them back.
            self.gateway.call(lambda r: r.zrem(self.index_key, *gone))
        return sorted(live, key=lambda info: info.id)


class Heartbeat:
    """A daemon thread that registers ``info`` and beats every ``registry.beat_s``.

    ``load`` is a callable read at each beat. Redis outages are logged and retried at the next
    beat; when Redis has forgotten the instance (restart, or we were paused past the TTL) the
    full info is registered again. :meth:`stop` deregisters (best effort).
    """

    def __init__(self, registry: InstanceRegistry, info: InstanceInfo, load=lambda: 0.0):
        self.registry = registry
        self.info = info
        self.load = load
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"mlw-heartbeat-{info.id}")

    def start(self) -> "Heartbeat":
        try:
            self.registry.register(self.info)
        except RedisUnavailable as exc:
            log.warning("instance registration failed, will retry: %s", exc)
        self._thread.start()
        return self

    def _beat_once(self) -> None:
        load = float(self.load())
        if not self.registry.heartbeat(self.info.id, load):
            self.registry.register(replace(self.info, load=load))

    def _run(self) -> None:
        while not self._stop.wait(self.registry.beat_s):
            try:
                self._beat_once()
            except RedisUnavailable as exc:
                log.warning("heartbeat failed: %s", exc)
            except Exception:
                log.exception("heartbeat failed")

    def stop(self, *, deregister: bool = True) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        if deregister:
            try:
                self.registry.deregister(self.info.id)
            except RedisUnavailable:
                pass  # the key expires on its own
