"""A registry record that points a version's artifact outside ``<home>/models`` is refused
before anything is read or unpickled (issue 14, point 5), in SQLite and in Redis (cluster mode,
where anyone who can write Redis can edit records)."""

from __future__ import annotations

import hashlib
import json
import pickle
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from mlflowdsl.runtime.registry import RegistryError, open_registry
from mlflowdsl.settings import Settings
from registry_support import fitted

MAIN = "import sys; from mlflowdsl.cli import main; main(sys.argv[1:])"


class _Touch:
    """Unpickling this creates ``path``: a stand-in for a payload that runs code."""

    def __init__(self, path):
        self.path = Path(path)

    def __reduce__(self):
        return (Path.touch, (self.path,))


@pytest.fixture(params=["sqlite", "redis"])
def registry(request, tmp_path):
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    settings = Settings(home=str(tmp_path / "home"), redis_url=redis_url)
    reg = open_registry(settings)
    yield request.param, settings, reg
    reg.close()


def _forge(kind, settings, reg, name, version, **changes):
    mv = reg.resolve(f"{name}/{version}", check_artifact=False)
    body = json.dumps({**mv.to_dict(), **changes}, sort_keys=True)
    if kind == "sqlite":
        conn = sqlite3.connect(Path(settings.home) / "registry.db")
        conn.execute("UPDATE model_versions SET body = ? WHERE name = ? AND version = ?", (body, name, version))
        conn.commit()
        conn.close()
    else:
        import redis

        client = redis.Redis.from_url(settings.redis_url)
        client.hset(reg.store._key("versions", name), str(version), body)
        client.close()


def test_a_forged_artifact_path_is_refused_before_unpickling(registry, tmp_path):
    kind, settings, reg = registry
    reg.register("fraud", fitted(0.9))
    ran = tmp_path / "payload-ran"
    evil = tmp_path / "evil.joblib"
    evil.write_bytes(pickle.dumps(_Touch(ran)))
    # the forger controls the record, so the checksum matches their file: it proves nothing
    _forge(kind, settings, reg, "fraud", 1, artifact_path=str(evil),
           sha256=hashlib.sha256(evil.read_bytes()).hexdigest())
    for attempt in (lambda: reg.load("fraud/1"), lambda: reg.resolve("fraud/1"), lambda: reg.load("fraud")):
        with pytest.raises(RegistryError, match="outside the registry's artifact directory") as info:
            attempt()
        assert info.value.subject == str(evil) and "register the model again" in info.value.hint
    assert not ran.exists()
    # a path that climbs out of the root is caught too
    _forge(kind, settings, reg, "fraud", 1, artifact_path=str(Path(settings.home) / "models" / ".." / "evil.joblib"))
    with pytest.raises(RegistryError, match="outside"):
        reg.load("fraud/1")
    # the forged version can still be deleted, and nothing outside the root is touched
    reg.delete("fraud", 1)
    assert evil.exists() and not ran.exists()


def test_the_cli_reports_it_without_a_traceback(registry, tmp_path):
    kind, settings, reg = registry
    reg.register("fraud", fitted(0.9))
    evil = tmp_path / "evil.joblib"
    evil.write_bytes(pickle.dumps(_Touch(tmp_path / "payload-ran")))
    _forge(kind, settings, reg, "fraud", 1, artifact_path=str(evil),
           sha256=hashlib.sha256(evil.read_bytes()).hexdigest())
    env = {"MLW_HOME": settings.home, **({"MLW_REDIS_URL": settings.redis_url} if settings.redis_url else {})}
    import os

    out = subprocess.run([sys.executable, "-c", MAIN, "serve", "fraud/1", "--port", "0"], capture_output=True,
                         text=True, timeout=60, env={**os.environ, **env}, cwd=tmp_path)
    assert out.returncode != 0
    assert "outside the registry's artifact directory" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "payload-ran").exists()
