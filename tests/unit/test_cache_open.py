"""``import mlflowdsl.runtime.cache`` stays light; ``open_cache`` memoizes per process."""

from __future__ import annotations

import subprocess
import sys

from mlflowdsl.compiler.directives import CACHE_STRATEGIES as compiler_strategies
from mlflowdsl.ir import CACHE_STRATEGIES, CachePolicy
from mlflowdsl.runtime.cache import open_cache, reset_open_caches
from mlflowdsl.runtime.cache.store import NullCache
from mlflowdsl.settings import Settings


def test_importing_the_cache_package_does_not_import_redis_or_cloudpickle():
    code = ("import sys, mlflowdsl.runtime.cache; "
            "print(sorted(m for m in ('redis', 'cloudpickle', 'distributed') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_open_cache_returns_the_same_backend_for_equal_settings(tmp_path):
    reset_open_caches()
    a = open_cache("disk", Settings(home=str(tmp_path)))
    b = open_cache("disk", Settings(home=str(tmp_path), extra={"unhashable": []}))
    assert a is b
    assert open_cache("disk", Settings(home=str(tmp_path / "other"))) is not a
    reset_open_caches()
    assert open_cache("disk", Settings(home=str(tmp_path))) is not a
    reset_open_caches()


KEYGEN = ("import sys; from pathlib import Path; "
          "from mlflowdsl.runtime.cache.hmac_key import read_or_create_key_file; "
          "print(read_or_create_key_file(Path(sys.argv[1])).decode())")


def test_processes_racing_to_create_the_signing_key_all_get_the_same_one(tmp_path):
    import os
    import stat

    path = tmp_path / "home" / "cache_hmac.key"
    procs = [subprocess.Popen([sys.executable, "-c", KEYGEN, str(path)], stdout=subprocess.PIPE, text=True)
             for _ in range(4)]
    keys = {p.communicate()[0].strip() for p in procs}
    assert len(keys) == 1 and len(keys.pop()) == 64
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(path.parent) == ["cache_hmac.key"]  # no temp files left


def test_a_readable_key_file_is_warned_about_and_an_empty_one_is_a_config_error(tmp_path, caplog):
    import logging

    import pytest

    from mlflowdsl.errors import ConfigError
    from mlflowdsl.runtime.cache.hmac_key import read_or_create_key_file

    path = tmp_path / "cache_hmac.key"
    path.write_text("k" * 64)
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="mlflowdsl.runtime.cache"):
        assert read_or_create_key_file(path) == b"k" * 64
    assert any("readable by other users" in r.getMessage() for r in caplog.records)
    path.write_text("")
    with pytest.raises(ConfigError, match="is empty") as err:
        read_or_create_key_file(path)
    assert err.value.subject == "MLW_CACHE_HMAC_KEY"


def test_one_strategy_vocabulary_knows_shared_and_off(tmp_path):
    assert compiler_strategies == CACHE_STRATEGIES == ("none", "memory", "disk", "redis", "hybrid")
    assert [s for s in CACHE_STRATEGIES if CachePolicy(strategy=s).shared] == ["disk", "redis", "hybrid"]
    assert [s for s in CACHE_STRATEGIES if CachePolicy(strategy=s).off] == ["none"]
    assert isinstance(open_cache("none", Settings(home=str(tmp_path))), NullCache)
