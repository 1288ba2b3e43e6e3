"""The worker's outbox (runtime/worker.py ``_Outbox``): batching and folding of start messages.

A fake worker records what would be sent with ``log_event``; the sending thread is the real one."""

from __future__ import annotations

import threading
import time

from mlflowdsl.runtime.worker import _Outbox, decode_batch


class _FakeWorker:
    def __init__(self) -> None:
        self.sent: list[tuple[str, list[dict]]] = []
        self.lock = threading.Lock()

    def log_event(self, topic: str, msg: dict) -> None:
        with self.lock:
            self.sent.append((topic, decode_batch(msg["batch"])))


def _outbox() -> tuple[_Outbox, _FakeWorker]:
    box, worker = _Outbox(), _FakeWorker()
    box._worker = worker  # not on a Dask worker: skip get_worker()
    return box, worker


def _wait_for(worker: _FakeWorker, n_messages: int, timeout: float = 5.0) -> list[tuple[str, list[dict]]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with worker.lock:
            if sum(len(b) for _, b in worker.sent) >= n_messages:
                return list(worker.sent)
        time.sleep(0.005)
    raise AssertionError(f"expected {n_messages} messages, got {worker.sent}")


def test_a_start_followed_by_its_result_in_the_same_batch_is_folded_into_the_result():
    box, worker = _outbox()
    box.interval = 0.2  # long enough for both messages to join one batch
    box.put("t", {"kind": "started", "task_id": "a"})
    box.put("t", {"kind": "started", "task_id": "b"})
    box.put("t", {"kind": "done", "task_id": "a", "status": "succeeded"})
    sent = _wait_for(worker, 2)
    time.sleep(0.3)  # nothing else may follow
    assert worker.sent == sent
    assert [(m["kind"], m["task_id"]) for _, batch in sent for m in batch] == [("started", "b"), ("done", "a")]


def test_a_start_already_sent_is_not_folded_and_topics_stay_apart():
    box, worker = _outbox()
    box.interval = 0.01
    box.put("t1", {"kind": "started", "task_id": "a"})
    _wait_for(worker, 1)
    box.put("t1", {"kind": "done", "task_id": "a", "status": "succeeded"})
    box.put("t2", {"kind": "started", "task_id": "a"})
    sent = _wait_for(worker, 3)
    by_topic = {}
    for topic, batch in sent:
        by_topic.setdefault(topic, []).extend(m["kind"] for m in batch)
    assert by_topic == {"t1": ["started", "done"], "t2": ["started"]}


def test_messages_put_from_many_threads_all_arrive_once_in_order_per_thread():
    box, worker = _outbox()
    box.interval = 0.001
    raw_payloads: list[object] = []
    log_event = worker.log_event

    def record(topic: str, msg: dict) -> None:
        raw_payloads.append(msg["batch"])
        log_event(topic, msg)

    worker.log_event = record

    def producer(name: str) -> None:
        for i in range(500):
            box.put("t", {"kind": "retried", "task_id": name, "n": i})
            if i % 50 == 0:
                time.sleep(0.002)  # let the sender go idle now and then: the wake-up must not be lost

    threads = [threading.Thread(target=producer, args=(f"p{k}",)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sent = _wait_for(worker, 2000)
    time.sleep(0.05)
    messages = [m for _, batch in worker.sent for m in batch]
    assert len(messages) == 2000
    for k in range(4):
        assert [m["n"] for m in messages if m["task_id"] == f"p{k}"] == list(range(500))
    assert len(sent) > 1 and all(isinstance(p, bytes) for p in raw_payloads)  # batched, one blob each


def test_decode_batch_reads_blobs_and_plain_lists():
    import pickle

    from mlflowdsl.runtime.worker import decode_batch

    msgs = [{"kind": "done", "task_id": "a", "metrics": {"acc": 0.9}}]
    assert decode_batch(pickle.dumps(msgs)) == msgs
    assert decode_batch(msgs) == msgs and decode_batch(None) == []


def test_a_result_folds_only_the_start_of_the_same_execution():
    # A client's runs share one topic: the same task id in two executions are two tasks.
    box, worker = _outbox()
    box.interval = 0.2
    box.put("t", {"kind": "started", "task_id": "a", "execution_id": "e1"})
    box.put("t", {"kind": "done", "task_id": "a", "execution_id": "e2", "status": "succeeded"})
    sent = _wait_for(worker, 2)
    assert [(m["kind"], m["execution_id"]) for _, batch in sent for m in batch] == [("started", "e1"), ("done", "e2")]
