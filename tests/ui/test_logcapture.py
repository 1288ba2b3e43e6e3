"""Log capture in one process (runtime/logcapture.py): output is routed by thread, bounded,
stored only when there is some, and survives something replacing sys.stdout in between."""

from __future__ import annotations

import io
import logging
import sys
import threading

from mlflowdsl.runtime import logcapture
from mlflowdsl.runtime.state.sqlite import SQLiteState
from mlflowdsl.settings import Settings


def _setup(tmp_path, **kw):
    state = SQLiteState(tmp_path / "state.db")
    return state, state.log_target(), Settings(home=str(tmp_path), **kw)


def test_each_thread_writes_to_its_own_attempt_only(tmp_path):
    state, target, settings = _setup(tmp_path)
    barrier = threading.Barrier(2)

    def attempt(task: str) -> None:
        with logcapture.capture(target, settings, "e1", task, 1):
            barrier.wait()
            for i in range(50):
                print(f"{task} {i}")
            logging.getLogger("t").error("%s logged", task)
            barrier.wait()

    threads = [threading.Thread(target=attempt, args=(t,)) for t in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("outside any attempt")
    rows = {(task, n): text for task, n, text in state._conn().execute(
        "SELECT task_id, attempt, CAST(data AS TEXT) FROM attempt_logs WHERE execution_id = 'e1'")}
    assert set(rows) == {("a", 1), ("b", 1)}
    for me, other in (("a", "b"), ("b", "a")):
        assert rows[(me, 1)].count(f"{me} ") == 50 + 1 and f"{other} " not in rows[(me, 1)]
        assert f"ERROR t: {me} logged" in rows[(me, 1)] and "outside" not in rows[(me, 1)]


def test_a_quiet_attempt_writes_nothing_and_the_bound_holds(tmp_path):
    state, target, settings = _setup(tmp_path, attempt_log_bytes=100)
    with logcapture.capture(target, settings, "e2", "quiet", 1):
        pass
    with logcapture.capture(target, settings, "e2", "loud", 1):
        for i in range(1000):
            print(f"line {i:04d}")
    (row,) = state._conn().execute("SELECT task_id, data, total FROM attempt_logs WHERE execution_id = 'e2'")
    assert row[0] == "loud" and len(row[1]) == 100 and row[1].endswith(b"line 0999\n") and row[2] == 10 * 1000


def test_capture_comes_back_after_sys_stdout_was_replaced(tmp_path, monkeypatch):
    state, target, settings = _setup(tmp_path)
    with logcapture.capture(target, settings, "e3", "t", 1):
        print("first")
    monkeypatch.setattr(sys, "stdout", io.StringIO())  # e.g. a test runner's capture
    with logcapture.capture(target, settings, "e3", "t", 2):
        print("second")
    texts = dict(state._conn().execute("SELECT attempt, CAST(data AS TEXT) FROM attempt_logs WHERE execution_id = 'e3'"))
    assert texts == {1: "first\n", 2: "second\n"}


def test_capture_is_off_without_a_target_or_with_a_zero_bound(tmp_path):
    _, target, settings = _setup(tmp_path, attempt_log_bytes=0)
    assert not isinstance(logcapture.capture(target, settings, "e", "t", 1), logcapture.AttemptCapture)
    assert not isinstance(logcapture.capture(None, Settings(), "e", "t", 1), logcapture.AttemptCapture)
