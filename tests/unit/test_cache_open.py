"""``import mlflowdsl.runtime.cache`` stays light; ``open_cache`` memoizes per process."""

from __future__ import annotations

import subprocess
import sys

from mlflowdsl.runtime.cache import open_cache, reset_open_caches
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
