"""`mlw events tail` on the JSONL file and `mlw schema --events`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from mlflowdsl.cli import cli
from mlflowdsl.runtime.events.base import EVENT_TYPES, Event
from mlflowdsl.runtime.events.jsonl import JsonlBus

MLW = str(Path(sys.executable).parent / "mlw")


def write_events(path: Path) -> list[Event]:
    events = [
        Event.create("workflow.started", execution_id="aaa111", workflow_id="churn", payload={"run": 2, "cached": 0}),
        Event.create("task.completed", execution_id="aaa111", workflow_id="churn", payload={"task_id": "train"}),
        Event.create("task.failed", execution_id="bbb222", workflow_id="other", payload={"task_id": "x", "error": "boom"}),
    ]
    bus = JsonlBus(path)
    for e in events:
        bus.emit(e)
    bus.close()
    return events


def test_tail_filters_by_execution_prefix_and_type_glob(tmp_path):
    path = tmp_path / "events.jsonl"
    events = write_events(path)
    runner = CliRunner()
    out = runner.invoke(cli, ["events", "tail", "--file", str(path), "--from", "beginning", "--no-follow", "--json",
                              "--execution", "aaa", "--type", "task.*"])
    assert out.exit_code == 0, out.output
    assert [json.loads(line)["event_id"] for line in out.output.splitlines()] == [events[1].event_id]
    text = runner.invoke(cli, ["events", "tail", "--file", str(path), "--from", "beginning", "--no-follow"])
    lines = text.output.splitlines()
    assert len(lines) == 3 and "task.failed" in lines[2] and "bbb222" in lines[2] and "error=boom" in lines[2]
    # --from now on a finished file shows nothing
    assert runner.invoke(cli, ["events", "tail", "--file", str(path), "--no-follow"]).output == ""


def test_tail_of_a_missing_file_is_a_clear_error(tmp_path):
    out = CliRunner().invoke(cli, ["events", "tail", "--file", str(tmp_path / "none.jsonl"), "--no-follow"])
    assert out.exit_code == 1 and "no events file at" in out.output and "Traceback" not in out.output


def test_tail_follows_new_lines_until_ctrl_c(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text("")
    proc = subprocess.Popen([MLW, "events", "tail", "--file", str(path), "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, MLW_KAFKA_BOOTSTRAP=""))
    try:
        time.sleep(1.5)  # let it start and reach the end of the (empty) file
        events = write_events(path)
        first = proc.stdout.readline()
        assert json.loads(first)["event_id"] == events[0].event_id
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
        assert proc.returncode == 0 and "Traceback" not in err
        assert len(out.splitlines()) <= 2
    finally:
        if proc.poll() is None:
            proc.kill()


def test_schema_events_prints_every_type():
    out = CliRunner().invoke(cli, ["schema", "--events"])
    assert out.exit_code == 0
    schemas = json.loads(out.output)
    assert set(schemas) == set(EVENT_TYPES)
    assert schemas["task.failed"]["properties"]["payload"]["properties"]["error"]


def test_bad_events_setting_names_the_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("MLW_EVENTS", "kafak")
    from mlflowdsl.errors import ConfigError
    from mlflowdsl.runtime.events.factory import open_bus
    from mlflowdsl.settings import load_settings

    try:
        open_bus(load_settings())
    except ConfigError as exc:
        assert "MLW_EVENTS" in str(exc) and "kafak" in str(exc)
    else:
        raise AssertionError("no error for an unknown backend")
