"""Registry metadata in Redis (cluster mode: ``settings.redis_url`` is set).

Keys, all under the settings' key prefix (``mlw`` by default):

- ``<p>:registry:names`` (set) the registered names
- ``<p>:registry:counter:<name>`` (INCR) the last allocated version number: atomic by itself
- ``<p>:registry:versions:<name>`` (hash) version number -> ModelVersion JSON
- ``<p>:registry:aliases:<name>`` (hash) alias -> version number
- ``<p>:registry:history:<name>`` (list) alias moves as JSON, oldest first
- ``<p>:registry:deployments`` (hash) deployment name -> record JSON

An alias move holds the :class:`DistributedLock` ``registry-alias:<name>:<alias>`` while it reads
the current holder, runs the gate and writes; the write itself is a WATCHed MULTI of the alias
and its history entry, so even a holder whose lock expired mid-move cannot overwrite a move it
did not see (it fails with a clear error instead).
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis

from mlflowdsl.runtime.coordination.gateway import RedisGateway
from mlflowdsl.runtime.coordination.locks import DistributedLock
from mlflowdsl.runtime.registry.models import AliasCheck, AliasMove, ModelVersion, RegistryError


class RedisRegistryStore:
    def __init__(self, gateway: RedisGateway, *, lock_ttl_s: float = 10.0, lock_timeout_s: float = 30.0):
        self.gateway = gateway
        self.lock_ttl_s = lock_ttl_s
        self.lock_timeout_s = lock_timeout_s

    def _key(self, *parts: object) -> str:
        return self.gateway.key("registry", *parts)

    # ------------------------------------------------------------------ versions

    def allocate_version(self, name: str) -> int:
        def incr(r: redis.Redis) -> int:
            pipe = r.pipeline(transaction=True)
            pipe.sadd(self._key("names"), name)
            pipe.incr(self._key("counter", name))
            return int(pipe.execute()[1])
        return self.gateway.call(incr)

    def put_version(self, mv: ModelVersion) -> None:
        body = json.dumps(mv.to_dict(), sort_keys=True)
        self.gateway.call(lambda r: r.hset(self._key("versions", mv.name), str(mv.version), body))

    def get_version(self, name: str, version: int) -> ModelVersion | None:
        raw = self.gateway.call(lambda r: r.hget(self._key("versions", name), str(version)))
        return ModelVersion.from_dict(json.loads(raw)) if raw else None

    def versions(self, name: str | None = None) -> list[ModelVersion]:
        names = [name] if name is not None else sorted(
            n.decode() for n in self.gateway.call(lambda r: r.smembers(self._key("names"))))
        out: list[ModelVersion] = []
        for each in names:
            raw = self.gateway.call(lambda r, each=each: r.hvals(self._key("versions", each)))
            out.extend(sorted((ModelVersion.from_dict(json.loads(v)) for v in raw), key=lambda mv: mv.version))
        return out

    def delete_version(self, name: str, version: int) -> None:
        self.gateway.call(lambda r: r.hdel(self._key("versions", name), str(version)))

    # ------------------------------------------------------------------ aliases

    def aliases(self, name: str) -> dict[str, int]:
        raw = self.gateway.call(lambda r: r.hgetall(self._key("aliases", name)))
        return {k.decode(): int(v) for k, v in sorted(raw.items())}

    def move_alias(self, name: str, alias: str, version: int | None, *, by: str,
                   check: AliasCheck | None = None) -> AliasMove:
        aliases_key, history_key = self._key("aliases", name), self._key("history", name)
        lock = DistributedLock(self.gateway, f"registry-alias:{name}:{alias}", ttl_s=self.lock_ttl_s,
                               timeout_s=self.lock_timeout_s, renew=True)
        with lock:
            def move(r: redis.Redis) -> AliasMove:
                with r.pipeline(transaction=True) as pipe:
                    pipe.watch(aliases_key)
                    raw = pipe.hget(aliases_key, alias)
                    previous = int(raw) if raw is not None else None
                    holder = self.get_version(name, previous) if previous is not None else None
                    gate = check(holder) if check is not None else []
                    entry = AliasMove(name, alias, version, previous, time.time(), by, gate)
                    pipe.multi()
                    if version is None:
                        pipe.hdel(aliases_key, alias)
                    else:
                        pipe.hset(aliases_key, alias, str(version))
                    pipe.rpush(history_key, json.dumps(entry.to_dict()))
                    try:
                        pipe.execute()
                    except redis.WatchError:
                        raise RegistryError(
                            f"alias {name}@{alias} was moved by someone else while this move held its lock "
                            "(the lock's lease ran out)", hint="promote again") from None
                    return entry
            return self.gateway.call(move)

    def alias_history(self, name: str) -> list[AliasMove]:
        raw = self.gateway.call(lambda r: r.lrange(self._key("history", name), 0, -1))
        return [AliasMove.from_dict(json.loads(x)) for x in raw]

    # ------------------------------------------------------------------ deployments

    def put_deployment(self, record: dict[str, Any]) -> None:
        body = json.dumps(record, sort_keys=True)
        self.gateway.call(lambda r: r.hset(self._key("deployments"), record["name"], body))

    def get_deployment(self, name: str) -> dict[str, Any] | None:
        raw = self.gateway.call(lambda r: r.hget(self._key("deployments"), name))
        return json.loads(raw) if raw else None

    def deployments(self) -> list[dict[str, Any]]:
        raw = self.gateway.call(lambda r: r.hgetall(self._key("deployments")))
        return [json.loads(v) for _, v in sorted(raw.items())]

    def delete_deployment(self, name: str) -> None:
        self.gateway.call(lambda r: r.hdel(self._key("deployments"), name))

    def close(self) -> None:
        self.gateway.close()
