"""Result messages from workers to the runs of a client: one Dask topic per client.

Workers send each task's lifecycle messages (``worker.py``: started, retried, done) in batches
on the topic named in its ``TaskSpec``. A client subscribes to its topic once; the handler
routes each message to the queue of the run it belongs to, by execution id.
"""

from __future__ import annotations

import queue
import threading
import uuid
import weakref

from mlflowdsl.runtime.worker import decode_batch


class Dispatcher:
    """The handler of one client's message topic: routes each message to the queue of the run
    it belongs to (by execution id). It holds the queues of runs in flight only: a run removes
    its own when it ends."""

    def __init__(self) -> None:
        self.queues: dict[str, queue.Queue] = {}

    def __call__(self, event: tuple[float, dict]) -> None:  # runs on the client's event loop
        for msg in decode_batch(event[1].get("batch")):
            messages = self.queues.get(msg.get("execution_id"))
            if messages is not None:
                messages.put(("event", msg))


_client_topics: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # client -> (topic, dispatcher)
_client_topics_lock = threading.Lock()


def client_topic(client) -> tuple[str, Dispatcher]:
    """The topic on which workers send a client's runs their messages, subscribed once per
    client. A subscription is a message on the client's batched stream to the scheduler, which
    then holds the next message -- a run's first graph -- for its batching interval: one per
    run would delay every run's first task by that much. (A handler per run would also stay in
    the client after ``unsubscribe_topic``, with everything it referenced.)"""
    with _client_topics_lock:
        entry = _client_topics.get(client)
        if entry is None:
            topic, dispatcher = f"mlw-{uuid.uuid4().hex[:12]}", Dispatcher()
            client.subscribe_topic(topic, dispatcher)
            entry = _client_topics[client] = (topic, dispatcher)
        return entry
