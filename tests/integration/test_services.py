"""Smoke tests: each service fixture starts a real server that really answers."""

from __future__ import annotations

import os
import time
import uuid

import pytest

pytestmark = pytest.mark.integration

# Test modules are not importable on the scheduler (it deserializes task graphs): submit
# functions from importable modules (os.getpid) or lambdas, which travel by value.


def test_redis_set_get(redis_url):
    import redis

    client = redis.Redis.from_url(redis_url)
    client.set("mlw:test:k", b"v", px=60_000)
    assert client.get("mlw:test:k") == b"v"
    assert 0 < client.pttl("mlw:test:k") <= 60_000
    client.close()


def test_redis_url_is_flushed_between_tests(redis_url):
    import redis

    client = redis.Redis.from_url(redis_url)
    assert client.get("mlw:test:k") is None  # set by the previous test, flushed by the fixture
    client.close()


def test_redis_stop_and_start(redis_server, redis_url):
    import redis

    redis_server.stop()
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=0.5)
    with pytest.raises(redis.ConnectionError):
        client.ping()
    redis_server.start()
    assert client.ping()
    client.close()


def test_kafka_produce_consume(kafka_bootstrap):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import KafkaAdminClient, NewTopic

    topic = f"mlw-smoke-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    admin.close()

    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    producer.send(topic, key=b"exec-1", value=b'{"type": "workflow.started"}').get(timeout=30)
    producer.close()

    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False)
    partition = TopicPartition(topic, 0)
    consumer.assign([partition])
    consumer.seek_to_beginning(partition)
    messages = []
    deadline = time.monotonic() + 30
    while not messages and time.monotonic() < deadline:
        messages = consumer.poll(timeout_ms=500).get(partition, [])
    consumer.close()
    assert [(m.key, m.value) for m in messages] == [(b"exec-1", b'{"type": "workflow.started"}')]


def test_dask_cluster_runs_tasks_in_other_processes(dask_cluster):
    from distributed import Client

    with Client(dask_cluster.address, timeout=30) as client:
        info = client.scheduler_info(n_workers=-1)["workers"]
        assert len(info) == 2
        resources = sorted(tuple(sorted(w["resources"])) for w in info.values())
        assert resources == [("CPU", "MEMORY", "domain:inference", "domain:training"),
                             ("CPU", "MEMORY", "domain:training")]
        pid = client.submit(os.getpid, pure=False).result(timeout=60)
        assert pid != os.getpid()
        assert pid not in {p.pid for p in dask_cluster.workers}  # the nanny's child runs tasks
        # domain routing: only the worker declaring domain:inference may run this
        worker_name = lambda: __import__("distributed").get_worker().name  # noqa: E731
        routed = [client.submit(worker_name, pure=False, resources={"domain:inference": 1}) for _ in range(4)]
        assert {f.result(timeout=60) for f in routed} == {"test-worker-1"}
        # the repo root is on the workers' PYTHONPATH
        assert client.submit(lambda: __import__("mlflowdsl").__file__, pure=False).result(timeout=60).startswith(
            str(os.path.dirname(os.path.dirname(os.path.dirname(__file__)))))


def test_dask_cluster_survives_a_killed_worker(dask_cluster):
    from distributed import Client

    dask_cluster.kill_worker(0)
    assert dask_cluster.workers[0].poll() is not None
    with Client(dask_cluster.address, timeout=30) as client:
        # the survivor still runs work
        assert client.submit(os.getpid, pure=False).result(timeout=60) != os.getpid()


def test_dask_cluster_is_healed_for_the_next_test(dask_cluster):
    from distributed import Client

    assert all(p.poll() is None for p in dask_cluster.workers)
    with Client(dask_cluster.address, timeout=30) as client:
        assert len(client.scheduler_info(n_workers=-1)["workers"]) == 2


def test_kafka_broker_stop_and_start(kafka_broker, kafka_bootstrap):
    import socket

    from kafka import KafkaAdminClient

    kafka_broker.stop()
    assert kafka_broker.proc.poll() is not None
    with socket.socket() as sock:  # (a kafka client would only time out after ~30 s)
        assert sock.connect_ex(("127.0.0.1", kafka_broker.port)) != 0
    kafka_broker.start()
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    assert isinstance(admin.list_topics(), list)
    admin.close()
