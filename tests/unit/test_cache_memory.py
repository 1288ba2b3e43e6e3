"""Memory cache: hits, misses, LRU eviction by pickled size, TTL, thread safety."""

from __future__ import annotations

import pickle
import threading
import time

from mlflowdsl.runtime.cache import MemoryCache, open_cache, reset_open_caches
from mlflowdsl.runtime.cache.serialize import new_entry
from mlflowdsl.settings import Settings


def blob_of(n: int) -> bytes:
    return b"x" * n


def test_hit_and_miss():
    cache = MemoryCache(1_000_000)
    assert cache.get("a1") == (False, None)
    cache.put("a1", {"accuracy": 0.9}, meta={"task_id": "train", "task_type": "model_training"})
    assert cache.get("a1") == (True, {"accuracy": 0.9})
    assert cache.contains("a1") and not cache.contains("b2")
    [info] = list(cache.entries())
    assert (info.key, info.backend, info.task_id, info.task_type) == ("a1", "memory", "train", "model_training")
    assert info.size == len(pickle.dumps({"accuracy": 0.9}, protocol=5))


def test_values_are_copies_so_a_consumer_cannot_change_the_cache():
    cache = MemoryCache(1_000_000)
    cache.put("k1", [1, 2])
    _, got = cache.get("k1")
    got.append(3)
    assert cache.get("k1") == (True, [1, 2])


def test_lru_eviction_by_pickled_size():
    one = len(pickle.dumps(blob_of(1000), protocol=5))
    cache = MemoryCache(3 * one)
    for key in ("k1", "k2", "k3"):
        cache.put(key, blob_of(1000))
    assert cache.used_bytes == 3 * one
    cache.get("k1")  # k1 becomes the most recently used: k2 is now the oldest
    cache.put("k4", blob_of(1000))
    assert [cache.contains(k) for k in ("k1", "k2", "k3", "k4")] == [True, False, True, True]
    assert cache.used_bytes <= 3 * one
    cache.put("k5", blob_of(2000))  # needs two slots: evicts k3 and k1
    assert sorted(e.key for e in cache.entries()) == ["k4", "k5"]


def test_value_larger_than_the_budget_is_not_stored_and_drops_an_older_copy():
    cache = MemoryCache(500)
    cache.put("k1", blob_of(10))
    cache.put("k1", blob_of(10_000))
    assert cache.get("k1") == (False, None)
    assert cache.used_bytes == 0


def test_ttl_expiry():
    cache = MemoryCache(1_000_000)
    cache.put("k1", "v", ttl=0.05)
    cache.put("k2", "v")
    assert cache.get("k1") == (True, "v")
    time.sleep(0.08)
    assert cache.get("k1") == (False, None)
    assert not cache.contains("k1")
    assert [e.key for e in cache.entries()] == ["k2"]
    assert cache.used_bytes == len(new_entry("v").payload)


def test_non_positive_ttl_stores_nothing():
    cache = MemoryCache(1_000_000)
    cache.put("k1", "v", ttl=0)
    assert cache.get("k1") == (False, None)


def test_delete_and_clear():
    cache = MemoryCache(1_000_000)
    cache.put("k1", 1)
    cache.put("k2", 2)
    cache.delete("k1")
    assert not cache.contains("k1")
    assert cache.clear() == 1
    assert cache.used_bytes == 0 and list(cache.entries()) == []


def test_unpicklable_by_pickle_falls_back_to_cloudpickle():
    cache = MemoryCache(1_000_000)
    cache.put("k1", lambda x: x + 1)
    hit, fn = cache.get("k1")
    assert hit and fn(1) == 2


def test_thread_safe_under_concurrent_puts_and_gets():
    one = len(pickle.dumps(blob_of(100), protocol=5))
    cache = MemoryCache(20 * one)
    errors = []

    def work(t: int) -> None:
        try:
            for i in range(300):
                cache.put(f"k{t}-{i % 40}", blob_of(100))
                cache.get(f"k{t}-{(i * 7) % 40}")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert cache.used_bytes == sum(e.size for e in cache.entries()) <= 20 * one


def test_open_cache_memoizes_one_memory_layer_per_process(tmp_path):
    reset_open_caches()
    settings = Settings(home=str(tmp_path), memory_cache_bytes=10_000)
    memory = open_cache("memory", settings)
    assert open_cache("memory", settings) is memory
    hybrid = open_cache("hybrid", settings)
    assert hybrid.front is memory  # hybrid shares the process's memory layer
    assert open_cache("none", settings).get("k1") == (False, None)
    reset_open_caches()


def test_an_entry_that_cannot_be_unpickled_is_deleted_and_a_miss():
    from mlflowdsl.runtime.cache.memory import MemoryCache as Memory
    from mlflowdsl.runtime.cache.serialize import StoredEntry

    cache = Memory(max_bytes=10_000)
    cache.put_entry("k1", StoredEntry(payload=b"\x80\x05garbage, not a pickle", created=0.0))
    assert cache.contains("k1")
    assert cache.get("k1") == (False, None)
    assert not cache.contains("k1")  # deleted: the task recomputes and writes a good one
    cache.put("k1", "recomputed")
    assert cache.get("k1") == (True, "recomputed")
