"""Key prefixes and ACL users: the documented ACL rule is enough for every primitive, and a user
confined to another prefix gets a clear RedisUnavailable naming the redacted URL."""

from __future__ import annotations

import pytest
import redis

from mlflowdsl.runtime.coordination import (
    DistributedLock,
    InstanceInfo,
    InstanceRegistry,
    LeaderLease,
    RedisGateway,
    RedisUnavailable,
    ShardBalancer,
    coordination_status,
)

pytestmark = pytest.mark.integration

# The rule docs/operations.md gives, for prefix "team-a".
ACL_RULE = ["on", ">s3cret-pw", "~team-a:*", "+@read", "+@write", "+@scripting", "+@stream", "+@connection",
            "+time", "-@dangerous"]


@pytest.fixture
def acl_user(redis_url):
    admin = redis.Redis.from_url(redis_url)
    admin.execute_command("ACL", "SETUSER", "mlw-team-a", "reset", *ACL_RULE)
    yield redis_url.replace("redis://", "redis://mlw-team-a:s3cret-pw@")
    admin.execute_command("ACL", "DELUSER", "mlw-team-a")
    admin.close()


def test_documented_acl_rule_is_enough_for_every_primitive(acl_user):
    gw = RedisGateway(acl_user, prefix="team-a")
    registry = InstanceRegistry(gw)
    registry.register(InstanceInfo("orch-a", ("training",)))
    assert registry.heartbeat("orch-a", 0.1)
    lease = LeaderLease(gw, "orch-a")
    assert lease.try_acquire() == 1 and lease.renew()
    assert ShardBalancer(lease, registry).rebalance().owner_of("training") == "orch-a"
    with DistributedLock(gw, "claim"):
        pass
    status = coordination_status(gw)
    assert status["leader"] == {"id": "orch-a", "epoch": 1}
    assert status["redis"].startswith("redis://mlw-team-a:***@")
    lease.release()
    gw.close()


def test_user_confined_to_another_prefix_gets_a_clear_error(acl_user):
    gw = RedisGateway(acl_user, prefix="team-b")
    with pytest.raises(RedisUnavailable) as info:
        DistributedLock(gw, "claim").try_acquire()
    text = str(info.value)
    assert "mlw-team-a:***@" in text and "s3cret-pw" not in text
    assert "ACL" in text
    gw.close()


def test_wrong_password_is_not_retried_and_names_the_url(redis_url, acl_user):
    gw = RedisGateway(redis_url.replace("redis://", "redis://mlw-team-a:wrong@"), prefix="team-a")
    with pytest.raises(RedisUnavailable) as info:
        gw.ping()
    assert "credentials" in str(info.value) and "wrong" not in str(info.value)
    assert gw.breaker_state == "closed"
    gw.close()
