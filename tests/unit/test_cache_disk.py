"""Disk cache: hits, TTL, atomic writes across processes, corruption detected and dropped."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mlflowdsl.errors import ConfigError
from mlflowdsl.runtime.cache import DiskCache, open_cache, reset_open_caches
from mlflowdsl.runtime.cache.disk import PREFIX
from mlflowdsl.settings import Settings

KEY = "ab" + "0" * 62
SECRET = b"test signing key"


@pytest.fixture
def cache(tmp_path) -> DiskCache:
    return DiskCache(tmp_path / "cache", SECRET)


def test_hit_miss_and_layout(cache, tmp_path):
    assert cache.get(KEY) == (False, None)
    cache.put(KEY, {"rows": 569}, meta={"task_id": "prep", "task_type": "data_preprocessing"})
    assert cache.get(KEY) == (True, {"rows": 569})
    assert cache.contains(KEY)
    path = tmp_path / "cache" / "ab" / f"{KEY}.entry"
    assert path.is_file() and path.read_bytes().startswith(b"MLWCACHE")
    [info] = list(cache.entries())
    assert (info.key, info.backend, info.task_id, info.task_type, info.size) == (
        KEY, "disk", "prep", "data_preprocessing", path.stat().st_size)
    assert info.expires is None and abs(info.created - time.time()) < 60


def test_overwrite_replaces_value(cache):
    cache.put(KEY, 1)
    cache.put(KEY, 2)
    assert cache.get(KEY) == (True, 2)
    assert len(list(cache.entries())) == 1


def test_ttl_expiry_is_a_miss_and_drops_the_file(cache):
    cache.put(KEY, "v", ttl=0.05)
    assert cache.contains(KEY)
    time.sleep(0.08)
    assert not cache.contains(KEY)
    assert cache.get(KEY) == (False, None)
    assert not cache.path_for(KEY).exists()


def test_keys_cannot_escape_the_cache_dir(cache):
    with pytest.raises(ValueError, match="invalid cache key"):
        cache.put("../../etc/passwd", 1)


def _corrupt(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "flip-payload":
        data[-10] ^= 0xFF
    elif how == "flip-header":
        data[PREFIX.size + 3] ^= 0x01
    elif how == "flip-magic":
        data[0] ^= 0xFF
    elif how == "truncate":
        data = data[: len(data) // 2]
    elif how == "truncate-prefix":
        data = data[:10]
    elif how == "empty":
        data = bytearray()
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["flip-payload", "flip-header", "flip-magic", "truncate", "truncate-prefix", "empty"])
def test_corrupt_entry_is_detected_dropped_and_a_miss(cache, caplog, how):
    cache.put(KEY, list(range(1000)))
    path = cache.path_for(KEY)
    _corrupt(path, how)
    with caplog.at_level(logging.WARNING, logger="mlflowdsl.runtime.cache"):
        assert cache.get(KEY) == (False, None)
    assert not path.exists()
    assert any("corrupt or unsigned cache entry" in r.getMessage() and KEY in r.getMessage() for r in caplog.records)
    cache.put(KEY, "recomputed")  # the task recomputes and writes again
    assert cache.get(KEY) == (True, "recomputed")


def test_corrupt_entries_are_not_listed_but_cleared(cache):
    cache.put(KEY, 1)
    other = "cd" + "1" * 62
    cache.put(other, 2)
    _corrupt(cache.path_for(KEY), "truncate-prefix")
    assert [e.key for e in cache.entries()] == [other]
    assert cache.clear() == 2
    assert list(cache.entries()) == []


WRITER = textwrap.dedent("""
    import sys
    from mlflowdsl.runtime.cache import DiskCache
    root, key, tag, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    cache = DiskCache(root, b"test signing key")
    value = {"tag": tag, "data": bytes([ord(tag[0])]) * 8_000_000}
    for i in range(rounds):
        cache.put(key, value, meta={"task_id": tag})
        print(i, flush=True)
""")


def _writer(root: Path, tag: str, rounds: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WRITER, str(root), KEY, tag, str(rounds)],
                            stdout=subprocess.PIPE, text=True)


def _assert_whole(value, tags):
    assert value["tag"] in tags
    assert value["data"] == bytes([ord(value["tag"][0])]) * 8_000_000


def test_two_processes_writing_one_key_both_complete_and_readers_never_see_a_part(tmp_path, caplog):
    root = tmp_path / "cache"
    writers = [_writer(root, "A", 8), _writer(root, "B", 8)]
    cache = DiskCache(root, SECRET)
    seen = set()
    with caplog.at_level(logging.WARNING, logger="mlflowdsl.runtime.cache"):
        while any(w.poll() is None for w in writers):
            hit, value = cache.get(KEY)
            if hit:
                _assert_whole(value, {"A", "B"})
                seen.add(value["tag"])
    assert [w.wait() for w in writers] == [0, 0]
    assert [len(w.stdout.read().split()) for w in writers] == [8, 8]  # every put completed
    hit, value = cache.get(KEY)
    assert hit
    _assert_whole(value, {"A", "B"})
    assert seen  # the reader did read while writers were writing
    assert not [r for r in caplog.records if "corrupt" in r.getMessage()]
    assert list(root.glob("*/.*.tmp")) == []  # no temp file left behind


def test_a_writer_killed_mid_write_leaves_the_old_entry_intact(tmp_path):
    root = tmp_path / "cache"
    cache = DiskCache(root, SECRET)
    cache.put(KEY, {"tag": "old", "data": b"o" * 8_000_000})
    writer = _writer(root, "new", 10_000)
    deadline = time.monotonic() + 30
    while not list(root.glob("*/.*.tmp")) and time.monotonic() < deadline:
        pass  # wait until a write is in progress (its temp file exists)
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    assert list(root.glob("*/.*.tmp")), "the writer was not killed mid-write"
    hit, value = cache.get(KEY)
    assert hit and value["tag"] in {"old", "new"}
    _assert_whole(value, {"old", "new"})
    assert cache.clear() == 1
    assert list(root.glob("*/*")) == []  # clear also removes a killed writer's temp file


def test_unwritable_cache_dir_is_a_warning_not_an_error(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    cache = DiskCache(blocker, SECRET)
    with caplog.at_level(logging.WARNING, logger="mlflowdsl.runtime.cache"):
        cache.put(KEY, 1)
    assert cache.get(KEY) == (False, None)
    assert any("cannot write cache entry" in r.getMessage() for r in caplog.records)


def test_open_cache_disk_uses_settings_cache_path(tmp_path):
    reset_open_caches()
    disk = open_cache("disk", Settings(home=str(tmp_path / "home")))
    assert disk.root == tmp_path / "home" / "cache"
    other = open_cache("disk", Settings(home=str(tmp_path), cache_dir=str(tmp_path / "elsewhere")))
    assert other.root == tmp_path / "elsewhere"
    hybrid = open_cache("hybrid", Settings(home=str(tmp_path / "home")))
    assert hybrid.back is disk  # no redis configured: memory in front of disk
    reset_open_caches()


def test_hybrid_without_redis_promotes_disk_hits_to_memory(tmp_path):
    reset_open_caches()
    settings = Settings(home=str(tmp_path))
    hybrid = open_cache("hybrid", settings)
    hybrid.back.put(KEY, "from disk", meta={"task_id": "t"})
    assert not hybrid.front.contains(KEY)
    assert hybrid.get(KEY) == (True, "from disk")
    assert hybrid.front.contains(KEY)
    hybrid.back.delete(KEY)
    assert hybrid.get(KEY) == (True, "from disk")  # served by memory now
    reset_open_caches()


def test_redis_strategy_without_url_is_a_config_error_naming_the_setting(tmp_path):
    with pytest.raises(ConfigError) as err:
        open_cache("redis", Settings(home=str(tmp_path)))
    assert "MLW_REDIS_URL" in str(err.value) and "--redis" in str(err.value)


def test_unknown_strategy_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="unknown cache strategy"):
        open_cache("ssd", Settings(home=str(tmp_path)))


class _Touch:
    """Unpickling this creates ``path``: a stand-in for a payload that runs code."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def _forge_v1(path: Path, value) -> None:
    """An entry in the old checksummed (unsigned) format: anyone who can write the directory
    could make one."""
    import hashlib
    import struct

    from mlflowdsl.runtime.cache.serialize import encode_header, new_entry

    entry = new_entry(value)
    header = encode_header(entry)
    digest = hashlib.sha256(header + entry.payload).digest()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack(">8sHI32s", b"MLWCACHE", 1, len(header), digest) + header + entry.payload)


@pytest.mark.parametrize("forgery", ["other key", "old checksummed format", "copied from another entry"])
def test_a_forged_entry_is_rejected_deleted_and_never_unpickled(cache, tmp_path, forgery):
    ran = tmp_path / "payload-ran"
    path = cache.path_for(KEY)
    if forgery == "other key":
        DiskCache(tmp_path / "cache", b"the forger's key").put(KEY, _Touch(ran))
    elif forgery == "old checksummed format":
        _forge_v1(path, _Touch(ran))
    else:  # a signed entry of another key, renamed: the signature covers the key
        other = "cd" + "1" * 62
        cache.put(other, "harmless")
        path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(cache.path_for(other), path)
    assert path.exists()
    assert cache.contains(KEY) == (forgery != "old checksummed format")  # a header alone proves nothing
    assert not cache.verify(KEY)
    assert not path.exists() and not ran.exists()
    if forgery == "other key":
        DiskCache(tmp_path / "cache", b"the forger's key").put(KEY, _Touch(ran))
    assert cache.get(KEY) == (False, None)
    assert not path.exists() and not ran.exists()


def test_the_default_key_is_a_0600_file_in_the_home_created_at_first_use(tmp_path):
    reset_open_caches()
    settings = Settings(home=str(tmp_path / "home"))
    disk = open_cache("disk", settings)
    assert list(disk.entries()) == [] and not (tmp_path / "home" / "cache_hmac.key").exists()
    disk.put(KEY, 1)
    key_file = tmp_path / "home" / "cache_hmac.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    reset_open_caches()
    assert open_cache("disk", settings).get(KEY) == (True, 1)  # a new process reads the same key
    reset_open_caches()
    other = Settings(home=str(tmp_path / "home"), cache_hmac_key="a key given to every machine")
    assert open_cache("disk", other).get(KEY) == (False, None)  # signed with another key: rejected
    reset_open_caches()


def test_admin_handles_list_and_delete_but_never_read(cache):
    cache.put(KEY, 1)
    admin = DiskCache(cache.root)
    assert [e.key for e in admin.entries()] == [KEY]
    with pytest.raises(RuntimeError, match="no signing key"):
        admin.get(KEY)
    admin.delete(KEY)
    assert not cache.contains(KEY)


def test_a_key_file_written_by_another_user_is_refused(tmp_path, monkeypatch):
    # A writer of a shared home could replace the key file with one they know, then sign
    # entries with it: a key file that is not the current user's is not used.
    reset_open_caches()
    settings = Settings(home=str(tmp_path / "home"))
    open_cache("disk", settings).put(KEY, 1)
    owner = (tmp_path / "home" / "cache_hmac.key").stat().st_uid
    monkeypatch.setattr(os, "getuid", lambda: owner + 1)
    reset_open_caches()
    with pytest.raises(ConfigError, match="belongs to another user") as info:
        open_cache("disk", settings).get(KEY)
    assert "MLW_CACHE_HMAC_KEY" in info.value.hint
    reset_open_caches()


def test_verifying_before_any_key_exists_creates_none(tmp_path):
    # planning (also `mlw plan`, a read-only command) verifies entries it would load: with no
    # key yet, nothing can be validly signed, and no key file is made
    reset_open_caches()
    settings = Settings(home=str(tmp_path / "home"))
    disk = open_cache("disk", settings)
    DiskCache(settings.cache_path, b"someone else's key").put(KEY, 1)
    assert not disk.verify(KEY)
    assert not (tmp_path / "home" / "cache_hmac.key").exists()
    disk.put(KEY, 2)  # a run writes: now the key is made
    assert (tmp_path / "home" / "cache_hmac.key").exists() and disk.verify(KEY)
    reset_open_caches()
