"""A promoter process for test_registry_redis: moves ``champion`` of ``fraud`` ``N`` times
between the versions given, through the Redis registry store (lock + WATCHed MULTI)."""

import sys

from mlflowdsl.runtime.registry import open_registry
from mlflowdsl.settings import Settings

if __name__ == "__main__":
    home, redis_url, count, *versions = sys.argv[1:]
    registry = open_registry(Settings(home=home, redis_url=redis_url))
    for i in range(int(count)):
        registry.promote(f"fraud/{versions[i % len(versions)]}", "champion", by=f"p{versions[0]}")
    registry.close()
