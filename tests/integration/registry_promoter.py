"""A promoter process for test_registry_redis: moves ``champion`` of ``fraud`` ``N`` times
between the versions given, through the Redis registry store (lock + WATCHed MULTI)."""

import sys
import time

import redis

from mlflowdsl.runtime.registry import open_registry
from mlflowdsl.settings import Settings

if __name__ == "__main__":
    home, redis_url, count, *versions = sys.argv[1:]
    registry = open_registry(Settings(home=home, redis_url=redis_url))
    # Start together: on a busy machine one process could otherwise finish its moves before
    # the other has imported anything, and the test would prove nothing about concurrency.
    barrier = redis.Redis.from_url(redis_url)
    barrier.incr("test-promoters-ready")
    deadline = time.monotonic() + 60
    while int(barrier.get("test-promoters-ready") or 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    for i in range(int(count)):
        registry.promote(f"fraud/{versions[i % len(versions)]}", "champion", by=f"p{versions[0]}")
    registry.close()
