"""Redis cache against a real server: round trip, TTL, signatures, outages, hybrid promotion."""

from __future__ import annotations

import json
import logging
import os
import pickle
import stat
import time

import pytest
import redis

from mlflowdsl.runtime.cache import CacheUnavailable, open_cache, reset_open_caches
from mlflowdsl.runtime.cache.hmac_key import cache_hmac_key
from mlflowdsl.runtime.cache.redis_cache import PREFIX, RedisCache
from mlflowdsl.settings import Settings

pytestmark = pytest.mark.integration

KEY = "ab" + "0" * 62
SECRET = b"test-secret"


class WritesMarker:
    """Unpickling this runs ``open(path, "w")``: proof that a payload was (not) unpickled."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture
def cache(redis_url):
    backend = RedisCache(redis_url, secret=SECRET, prefix="mlwtest", retry_after=0.0)
    yield backend
    backend.close()


@pytest.fixture
def raw(redis_url):
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def test_round_trip_with_metadata(cache, raw):
    cache.put(KEY, {"accuracy": 0.97}, meta={"task_id": "train", "task_type": "model_training"})
    assert cache.get(KEY) == (True, {"accuracy": 0.97})
    assert cache.contains(KEY)
    assert raw.exists(f"mlwtest:cache:{KEY}")
    assert raw.pttl(f"mlwtest:cache:{KEY}") == -1  # no ttl -> no expiry
    [info] = list(cache.entries())
    assert (info.key, info.backend, info.task_id, info.task_type) == (KEY, "redis", "train", "model_training")
    assert info.size == raw.strlen(f"mlwtest:cache:{KEY}")
    cache.delete(KEY)
    assert cache.get(KEY) == (False, None)


def test_ttl_is_set_in_redis_and_expires(cache, raw):
    cache.put(KEY, "v", ttl=0.3)
    assert 0 < raw.pttl(f"mlwtest:cache:{KEY}") <= 300
    assert cache.get(KEY) == (True, "v")
    time.sleep(0.4)
    assert cache.get(KEY) == (False, None)
    assert not cache.contains(KEY)


def test_tampered_payload_is_never_unpickled(cache, raw, tmp_path, caplog):
    marker = tmp_path / "pwned"
    cache.put(KEY, "honest value")
    rkey = f"mlwtest:cache:{KEY}"
    stored = raw.get(rkey)
    _, _, _, header_len = PREFIX.unpack_from(stored)
    evil = pickle.dumps(WritesMarker(str(marker)), protocol=5)
    # keep the signature and header, swap the payload for one that runs code when unpickled
    tampered = stored[: PREFIX.size + header_len] + evil
    pickle.loads(evil).close()
    assert marker.exists()  # the payload really would run code...
    marker.unlink()
    raw.set(rkey, tampered)
    with caplog.at_level(logging.WARNING, logger="mlflowdsl.runtime.cache"):
        assert cache.get(KEY) == (False, None)
    assert not marker.exists()  # ...but the cache never unpickled it
    assert not raw.exists(rkey)  # and dropped it
    assert any("rejected redis cache entry" in r.getMessage() and "bad signature" in r.getMessage()
               for r in caplog.records)


def test_flipped_byte_anywhere_is_rejected(cache, raw):
    cache.put(KEY, list(range(100)))
    rkey = f"mlwtest:cache:{KEY}"
    stored = raw.get(rkey)
    for index in (5, PREFIX.size + 2, len(stored) - 1):  # in the mac, the header, the payload
        data = bytearray(stored)
        data[index] ^= 0x01
        raw.set(rkey, bytes(data))
        assert cache.get(KEY) == (False, None)
        assert not raw.exists(rkey)


def test_unsigned_entry_is_rejected_without_unpickling(cache, raw, tmp_path, caplog):
    marker = tmp_path / "pwned"
    raw.set(f"mlwtest:cache:{KEY}", pickle.dumps(WritesMarker(str(marker)), protocol=5))
    with caplog.at_level(logging.WARNING, logger="mlflowdsl.runtime.cache"):
        assert cache.get(KEY) == (False, None)
    assert not marker.exists()
    assert not raw.exists(f"mlwtest:cache:{KEY}")
    assert any("unsigned" in r.getMessage() for r in caplog.records)


def test_entry_signed_with_another_key_or_moved_to_another_key_is_rejected(cache, raw, redis_url):
    other = RedisCache(redis_url, secret=b"another-secret", prefix="mlwtest")
    other.put(KEY, "theirs")
    assert cache.get(KEY) == (False, None)
    other.close()
    cache.put(KEY, "mine")
    moved = "cd" + "1" * 62
    raw.set(f"mlwtest:cache:{moved}", raw.get(f"mlwtest:cache:{KEY}"))  # replay under another key
    assert cache.get(moved) == (False, None)
    assert cache.get(KEY) == (True, "mine")


def test_clear_removes_only_this_prefix(cache, raw):
    cache.put(KEY, 1)
    cache.put("cd" + "1" * 62, 2)
    raw.set("unrelated", b"keep me")
    assert cache.clear() == 2
    assert list(cache.entries()) == []
    assert raw.get("unrelated") == b"keep me"


def test_redis_down_gives_misses_and_skipped_puts_without_errors(redis_server, redis_url, caplog):
    cache = RedisCache(redis_url, secret=SECRET, prefix="mlwtest", retry_after=0.0)
    cache.put(KEY, "before")
    redis_server.stop()
    try:
        with caplog.at_level(logging.WARNING, logger="mlflowdsl.runtime.cache"):
            assert cache.get(KEY) == (False, None)
            cache.put(KEY, "during")  # skipped, no exception
            assert not cache.contains(KEY)
            cache.delete(KEY)
        warnings = [r for r in caplog.records if "unreachable" in r.getMessage()]
        assert len(warnings) == 1  # one warning per outage, not one per call
        with pytest.raises(CacheUnavailable, match="cannot list the redis cache"):
            list(cache.entries())
        with pytest.raises(CacheUnavailable, match="cannot clear"):
            cache.clear()
    finally:
        redis_server.start()
    cache.put(KEY, "after")  # the same backend object works again once Redis is back
    assert cache.get(KEY) == (True, "after")
    cache.close()


def test_backoff_after_failure_skips_the_server_for_a_while(redis_server, redis_url):
    cache = RedisCache(redis_url, secret=SECRET, prefix="mlwtest", retry_after=60.0)
    redis_server.stop()
    try:
        assert cache.get(KEY) == (False, None)  # pays the failed connect once
        started = time.monotonic()
        for _ in range(50):
            assert cache.get(KEY) == (False, None)
        assert time.monotonic() - started < 0.5  # ...and not again while backing off
    finally:
        redis_server.start()
    cache.close()


def test_hybrid_promotes_redis_hits_to_memory(redis_url, tmp_path):
    reset_open_caches()
    settings = Settings(home=str(tmp_path), redis_url=redis_url, cache_hmac_key="shared", key_prefix="mlwtest")
    hybrid = open_cache("hybrid", settings)
    assert isinstance(hybrid.back, RedisCache)
    # another process (a different worker) wrote the entry to Redis
    writer = RedisCache(redis_url, secret=b"shared", prefix="mlwtest")
    writer.put(KEY, {"model": "rf"}, ttl=60, meta={"task_id": "train"})
    assert not hybrid.front.contains(KEY)
    assert hybrid.get(KEY) == (True, {"model": "rf"})
    assert hybrid.front.contains(KEY)
    [promoted] = list(hybrid.front.entries())
    assert promoted.task_id == "train" and 0 < promoted.expires - time.time() <= 60  # remaining TTL kept
    writer.delete(KEY)
    assert hybrid.get(KEY) == (True, {"model": "rf"})  # now served from memory
    hybrid.put("cd" + "1" * 62, "both layers")
    assert writer.get("cd" + "1" * 62) == (True, "both layers")
    writer.close()
    reset_open_caches()


def test_open_cache_redis_generates_a_private_key_file_once(redis_url, tmp_path):
    reset_open_caches()
    settings = Settings(home=str(tmp_path), redis_url=redis_url, key_prefix="mlwtest")
    cache = open_cache("redis", settings)
    key_file = tmp_path / "cache_hmac.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(key_file.read_text().strip()) == 64
    cache.put(KEY, "v")
    reset_open_caches()
    again = open_cache("redis", settings)  # a new process on the same home reads the same key
    assert cache_hmac_key(settings) == key_file.read_text().strip().encode()
    assert again.get(KEY) == (True, "v")
    reset_open_caches()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".cache_hmac")]  # no temp files left


def test_configured_hmac_key_is_used_instead_of_a_file(redis_url, tmp_path):
    settings = Settings(home=str(tmp_path), redis_url=redis_url, cache_hmac_key="from-env")
    assert cache_hmac_key(settings) == b"from-env"
    assert not (tmp_path / "cache_hmac.key").exists()


def test_cli_lists_and_clears_disk_and_redis(redis_url, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from mlflowdsl.cli import cli
    from mlflowdsl.runtime.cache import DiskCache

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLW_KEY_PREFIX", "mlwtest")
    DiskCache(tmp_path / "cache", SECRET).put(KEY, 1, meta={"task_id": "prep"})
    RedisCache(redis_url, secret=SECRET, prefix="mlwtest").put("cd" + "1" * 62, 2, ttl=600,
                                                                meta={"task_id": "train", "task_type": "model_training"})
    runner = CliRunner()
    listed = runner.invoke(cli, ["cache", "ls", "--json", "--cache-dir", str(tmp_path / "cache"), "--redis", redis_url])
    assert listed.exit_code == 0, listed.output
    by_backend = {r["backend"]: r for r in json.loads(listed.output)}
    assert by_backend["disk"]["task_id"] == "prep"
    assert by_backend["redis"]["task_id"] == "train" and by_backend["redis"]["task_type"] == "model_training"
    assert not (tmp_path / ".mlw").exists()  # listing needs no signing key
    cleared = runner.invoke(cli, ["cache", "clear", "--yes", "--cache-dir", str(tmp_path / "cache"), "--redis", redis_url])
    assert (cleared.exit_code, cleared.output) == (0, "removed 2 entries (disk: 1, redis: 1)\n")


def test_hybrid_keeps_serving_from_memory_while_redis_is_down(redis_server, redis_url, tmp_path):
    reset_open_caches()
    hybrid = open_cache("hybrid", Settings(home=str(tmp_path), redis_url=redis_url, cache_hmac_key="shared"))
    hybrid.put(KEY, "kept")
    redis_server.stop()
    try:
        assert hybrid.get(KEY) == (True, "kept")
        hybrid.put("cd" + "1" * 62, "memory only")  # the redis half is skipped, no error
        assert hybrid.get("cd" + "1" * 62) == (True, "memory only")
        assert hybrid.get("ef" + "2" * 62) == (False, None)
    finally:
        redis_server.start()
        reset_open_caches()
