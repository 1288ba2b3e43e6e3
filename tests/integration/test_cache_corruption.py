"""Corrupt or forged cache entries are deleted and recomputed in the same run, never fatal,
and a forged one is never unpickled (issue 14, points 3 and 4), on disk and in Redis.

The run that meets the bad entry needs it *loaded* (the cached task ``a`` feeds ``b``, whose
parameter changed): planning verifies the entry's signature, finds it bad and reruns ``a``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mlflowdsl.runtime.api import run_plan  # noqa: E402
from mlflowdsl.runtime.cache import DiskCache, open_cache, reset_open_caches  # noqa: E402
from mlflowdsl.runtime.cache.redis_cache import RedisCache  # noqa: E402
from mlflowdsl.settings import Settings  # noqa: E402
from tests.integration.runtime_helpers import plan, ref, task  # noqa: E402
from tests.integration.tasks_for_tests import runs  # noqa: E402

pytestmark = pytest.mark.integration


class _Touch:
    """Unpickling this creates ``path``: a stand-in for a payload that runs code."""

    def __init__(self, path):
        self.path = Path(path)

    def __reduce__(self):
        return (Path.touch, (self.path,))


@pytest.fixture(params=["disk", "redis"])
def backend(request, tmp_path, dask_cluster):
    reset_open_caches()
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    settings = Settings(home=str(tmp_path / "home"), scheduler=dask_cluster.address, redis_url=redis_url,
                        key_prefix="mlwcorrupt")
    yield request.param, settings
    reset_open_caches()


def _chain(logs, strategy, b_x):
    return plan(task("a", "step", name="a", log_dir=logs, x=1, cache=strategy),
                task("b", "step", ["a"], name="b", log_dir=logs, x=b_x, inputs=[ref("a")], cache=strategy))


def _calls(logs):
    return {name: len(runs(logs, name)) for name in "ab"}


def _damage(strategy, settings, key, how, tmp_path):
    if strategy == "disk":
        path = DiskCache(settings.cache_path).path_for(key)
        if how == "corrupt":
            data = bytearray(path.read_bytes())
            data[-5] ^= 0xFF
            path.write_bytes(bytes(data))
        else:  # a valid-looking entry signed with a key that is not the home's
            DiskCache(settings.cache_path, b"forger's key").put(key, _Touch(tmp_path / "payload-ran"))
        return
    forger = RedisCache(settings.redis_url, secret=b"forger's key", prefix=settings.key_prefix)
    if how == "corrupt":
        raw = forger._client.get(forger.redis_key(key))
        forger._client.set(forger.redis_key(key), raw[:-5] + bytes(b ^ 0xFF for b in raw[-5:]))
    else:
        forger.put(key, _Touch(tmp_path / "payload-ran"))
    forger.close()


@pytest.mark.parametrize("how", ["corrupt", "forged"])
def test_a_bad_entry_to_load_is_recomputed_in_the_same_run(backend, tmp_path, how):
    strategy, settings = backend
    logs = str(tmp_path / "logs")
    first = run_plan(_chain(logs, strategy, 2), settings)
    assert first.status == "succeeded" and _calls(logs) == {"a": 1, "b": 1}
    key_a = first.tasks["a"].cache_key
    _damage(strategy, settings, key_a, how, tmp_path)

    second = run_plan(_chain(logs, strategy, 20), settings)
    assert second.status == "succeeded", second.error
    assert {t: r.status for t, r in second.tasks.items()} == {"a": "succeeded", "b": "succeeded"}
    assert _calls(logs) == {"a": 2, "b": 2}
    assert not (tmp_path / "payload-ran").exists()
    # the rerun wrote a good entry again: the next run is served from the cache
    reset_open_caches()
    assert open_cache(strategy, settings).get(key_a)[0]
    third = run_plan(_chain(logs, strategy, 20), settings)
    assert third.status == "succeeded" and _calls(logs) == {"a": 2, "b": 2}
