"""render_report without a cluster: escaping, the optional sections, the SVG layout."""

from __future__ import annotations

import re

from mlflowdsl.ir import Plan, Task, Workflow
from mlflowdsl.report import render_report
from mlflowdsl.report.svg import layers
from mlflowdsl.runtime.records import AttemptError, AttemptUsage, TaskResult, WorkflowExecution


def _execution(**task_fields) -> WorkflowExecution:
    plan = Plan(workflow=Workflow(id="w"), tasks=[Task(id="a", type="t"), Task(id="b", type="t", dependencies=["a"])])
    return WorkflowExecution(
        id="e1", workflow_id="w", status="failed", plan_json=plan.model_dump_json(), started=100.0, ended=103.0,
        tasks={"a": TaskResult(task_id="a", status="succeeded", started=100.0, ended=101.5, duration_s=1.5,
                               attempts=1, worker="tcp://10.0.0.1:1", cpu_s=1.25, peak_rss=300 * 2**20,
                               usage=[AttemptUsage(attempt=1, wall_s=1.5, cpu_s=1.25, peak_rss=300 * 2**20)],
                               metrics={"accuracy": 0.91}, **task_fields),
               "b": TaskResult(task_id="b", status="failed", attempts=1, started=101.5, ended=103.0,
                               error="ValueError: <script>alert(1)</script>", worker="tcp://10.0.0.2:1",
                               attempt_errors=[AttemptError(attempt=1, type="ValueError", message="<script>",
                                                            traceback="Traceback ...\nValueError: <script>")])})


def test_every_task_has_a_row_with_its_numbers_and_errors_are_escaped():
    html = render_report(_execution())
    assert re.findall(r'<tr class="task-row" data-task="(\w+)"', html) == ["a", "b"]
    assert "1.50 s" in html and "1.25 s" in html and "300MiB" in html and "accuracy = 0.91" in html
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.count("<script") == 2  # only the report's own data and code
    assert 'marker-end="url(#arrow)"' in html  # the a -> b edge from the stored plan
    assert not re.search(r'(src|href)="https?:', html)


def test_studies_and_models_appear_only_when_there_are_some():
    plain = render_report(_execution())
    assert 'id="studies"' not in plain and 'id="models"' not in plain
    study = {"metric": "accuracy", "direction": "maximize", "best_value": 0.93, "best_trial": 2,
             "best_params": {"C": 0.5}, "trials": [{"number": 0, "value": 0.8, "params": {"C": 2.0}},
                                                   {"number": 2, "value": 0.93, "params": {"C": 0.5}}]}
    execution = _execution()
    if "study" in TaskResult.model_fields:  # tuning records its study on the task
        execution = execution.with_tasks({"a": execution.tasks["a"].model_copy(update={"study": study})})
        html = render_report(execution)
        assert 'id="studies"' in html and "0.93" in html
        assert re.findall(r'<tr class="trial-row"><td>(\d+)', html) == ["2", "0"]  # best first
    html = render_report(execution, models=[{"name": "wine", "version": 3, "aliases": ["champion"], "task": "a",
                                             "metrics": {"accuracy": 0.91}}])
    assert 'id="models"' in html and "champion" in html


def test_layers_follow_the_longest_path():
    assert layers(["a", "b", "c", "d"], [("a", "c"), ("b", "c"), ("c", "d"), ("a", "d")]) == [["a", "b"], ["c"], ["d"]]


def test_doctests():
    import doctest

    import mlflowdsl.report as report
    import mlflowdsl.report.svg as svg
    import mlflowdsl.runtime.usage as usage

    for module in (report, svg, usage):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__


def test_usage_sampler_sees_memory_held_inside_the_block():
    from mlflowdsl.runtime.usage import UsageSampler

    import time

    import psutil

    before = psutil.Process().memory_info().rss
    with UsageSampler(attempt=2, worker="w", interval=0.01) as sampler:
        block = bytearray(64 * 1024 * 1024)
        for i in range(0, len(block), 4096):
            block[i] = 1
        time.sleep(0.1)  # held for several sampling intervals, then freed before the block ends
        del block
    after = psutil.Process().memory_info().rss
    u = sampler.usage
    assert (u.attempt, u.worker) == (2, "w")
    assert u.peak_rss >= before + 60 * 1024 * 1024 > after  # the peak was seen by the sampling thread
    assert u.cpu_s > 0 and u.wall_s >= 0.1


def test_usage_sampler_takes_a_new_high_water_mark_as_the_peak_without_a_sample():
    import resource

    import psutil

    from mlflowdsl.runtime.usage import UsageSampler

    rss = psutil.Process().memory_info().rss
    high_water = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    size = max(0, high_water - rss) + 48 * 2**20  # enough to raise the process's high-water mark
    # A sampling interval longer than the block: the peak can only come from getrusage.
    with UsageSampler(attempt=1, interval=1.0) as sampler:
        block = bytearray(size)  # zero-filled: every page is touched
        del block
    assert sampler.usage.peak_rss >= high_water + 40 * 2**20
    assert sampler.usage.wall_s < 1.0, "the block was slower than the interval: the test proves nothing"


def test_models_registered_by_the_execution_are_read_from_the_registry(tmp_path):
    from sklearn.dummy import DummyClassifier

    from mlflowdsl.report import registered_models
    from mlflowdsl.runtime.registry import open_registry
    from mlflowdsl.settings import Settings

    settings = Settings(home=str(tmp_path / "home"))
    assert registered_models(_execution(), settings) == []
    assert not (tmp_path / "home" / "registry.db").exists()  # looking does not create a registry

    model = DummyClassifier().fit([[0], [1]], [0, 1])
    registry = open_registry(settings)
    try:
        mine = registry.register("wine", model, lineage={"execution_id": "e1", "task_id": "a"}, metrics={"acc": 0.5})
        registry.register("wine", model, lineage={"execution_id": "other", "task_id": "a"})
        registry.promote(mine, "champion")
    finally:
        registry.close()
    found = registered_models(_execution(), settings)
    assert [(m["name"], m["version"], m["task"], m["aliases"]) for m in found] == [("wine", 1, "a", ["champion"])]
    assert "champion" in render_report(_execution(), models=found)
