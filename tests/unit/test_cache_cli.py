"""``mlw cache ls|clear`` through click's CliRunner."""

from __future__ import annotations

import json
import os
import socket
import time

import pytest
from click.testing import CliRunner

from mlflowdsl.cli import cli
from mlflowdsl.runtime.cache import DiskCache

K1 = "ab" + "1" * 62
K2 = "cd" + "2" * 62


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    for var in ("MLW_REDIS_URL", "MLW_CACHE_DIR", "MLW_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray mlw.toml
    path = tmp_path / "cache"
    disk = DiskCache(path, b"cli test key")
    disk.put(K1, {"m": 1}, meta={"task_id": "train", "task_type": "model_training"})
    disk.put(K2, "x" * 5000, ttl=3600, meta={"task_id": "prep", "task_type": "data_preprocessing"})
    return path


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(cli, list(args), input=input)


def test_ls_table(cache_dir):
    result = run("cache", "ls", "--cache-dir", str(cache_dir))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["KEY", "TASK", "TYPE", "BACKEND", "SIZE", "AGE", "EXPIRES"]
    rows = {line.split()[0]: line.split() for line in lines[1:-1]}
    assert rows[K1[:12]][1:4] == ["train", "model_training", "disk"]
    assert rows[K1[:12]][-1] == "never"
    assert rows[K2[:12]][1:4] == ["prep", "data_preprocessing", "disk"]
    assert rows[K2[:12]][-2:] == ["in", "59m"] or rows[K2[:12]][-2:] == ["in", "1h"]
    assert lines[-1].startswith("2 entries, ")


def test_ls_json(cache_dir):
    result = run("cache", "ls", "--cache-dir", str(cache_dir), "--json")
    assert result.exit_code == 0, result.output
    records = {r["key"]: r for r in json.loads(result.output)}
    assert set(records) == {K1, K2}
    assert records[K1]["task_id"] == "train" and records[K1]["backend"] == "disk"
    assert records[K1]["expires"] is None and 0 <= records[K1]["age_s"] < 60
    assert records[K2]["size"] == (cache_dir / "cd" / f"{K2}.entry").stat().st_size
    assert 3500 < records[K2]["expires"] - time.time() <= 3600


def test_ls_empty(tmp_path, monkeypatch):
    monkeypatch.delenv("MLW_REDIS_URL", raising=False)
    result = run("cache", "ls", "--cache-dir", str(tmp_path / "nothing"))
    assert (result.exit_code, result.output) == (0, "cache is empty\n")


def test_ls_uses_mlw_cache_dir(cache_dir, monkeypatch):
    monkeypatch.setenv("MLW_CACHE_DIR", str(cache_dir))
    result = run("cache", "ls", "--json")
    assert len(json.loads(result.output)) == 2


def test_clear_asks_and_aborts_without_yes(cache_dir):
    result = run("cache", "clear", "--cache-dir", str(cache_dir), input="n\n")
    assert result.exit_code == 1
    assert "Remove cache entries from disk" in result.output
    assert len(list(DiskCache(cache_dir).entries())) == 2


def test_clear_with_confirmation(cache_dir):
    result = run("cache", "clear", "--cache-dir", str(cache_dir), input="y\n")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "removed 2 entries (disk: 2)"
    assert list(DiskCache(cache_dir).entries()) == []


def test_clear_yes(cache_dir):
    result = run("cache", "clear", "--cache-dir", str(cache_dir), "--yes")
    assert (result.exit_code, result.output) == (0, "removed 2 entries (disk: 2)\n")


def test_clear_older_than(cache_dir):
    old = cache_dir / "ab" / f"{K1}.entry"
    disk = DiskCache(cache_dir, b"cli test key")
    # rewrite K1 as if created ten days ago
    from mlflowdsl.runtime.cache.serialize import new_entry

    disk.put_entry(K1, new_entry({"m": 1}, now=time.time() - 10 * 86400, meta={"task_id": "train"}))
    result = run("cache", "clear", "--cache-dir", str(cache_dir), "--older-than", "7d", "--yes")
    assert (result.exit_code, result.output) == (0, "removed 1 entries (disk: 1)\n")
    assert not old.exists()
    assert [e.key for e in disk.entries()] == [K2]


def test_clear_bad_older_than_is_a_usage_error(cache_dir):
    result = run("cache", "clear", "--cache-dir", str(cache_dir), "--older-than", "soon", "--yes")
    assert result.exit_code == 2
    assert "'soon' is not a duration" in result.output


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens here once the socket is closed


@pytest.mark.parametrize("command", [["ls"], ["clear", "--yes"]])
def test_unreachable_redis_is_a_clean_error(cache_dir, command):
    url = f"redis://127.0.0.1:{_closed_port()}/0"
    result = run("cache", *command, "--cache-dir", str(cache_dir), "--redis", url)
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: {url}: cannot ")
    assert "check that Redis is running" in result.output
    assert isinstance(result.exception, SystemExit)  # a clean exit, not an uncaught error


def test_invalid_redis_url_is_a_clean_error(cache_dir):
    result = run("cache", "ls", "--cache-dir", str(cache_dir), "--redis", "localhost:6379")
    assert result.exit_code == 1
    assert "invalid Redis URL" in result.output and "MLW_REDIS_URL / --redis" in result.output


def test_ls_and_clear_do_not_create_a_signing_key(cache_dir, tmp_path):
    run("cache", "ls", "--cache-dir", str(cache_dir))
    assert not os.path.exists(tmp_path / ".mlw")


def test_every_cache_command_has_help():
    for args in (["cache", "--help"], ["cache", "ls", "--help"], ["cache", "clear", "--help"]):
        result = run(*args)
        assert result.exit_code == 0 and "--help" in result.output
    assert "--older-than" in run("cache", "clear", "--help").output
