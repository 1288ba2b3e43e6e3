"""The run report of real runs, opened in headless Debian chromium: every task, its timing,
resources and metrics are in the page; the screenshot is not blank; the DOM has one row per task."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from mlflowdsl.ir import CachePolicy, Plan, RetryPolicy, Task, Workflow, key_part  # noqa: E402
from mlflowdsl.report import write_report  # noqa: E402
from mlflowdsl.runtime.api import run_plan  # noqa: E402
from mlflowdsl.settings import Settings  # noqa: E402
from tests.integration.browser import dump_dom, png_pixels, screenshot  # noqa: E402

pytestmark = pytest.mark.integration
FN = "tests.integration.observe_tasks"
MLW = str(Path(sys.executable).parent / "mlw")


def _task(id: str, fn: str, deps=(), *, retry: RetryPolicy | None = None, **params) -> Task:
    uses = f"{FN}:{fn}"
    t = Task(id=id, type="custom", uses=uses, dependencies=sorted(deps), params=params,
             cache=CachePolicy(strategy="disk"), retry=retry or RetryPolicy())
    return t.model_copy(update={"key_part": key_part("custom", "1", uses, params, "")})


def _rows(dom: str) -> list[str]:
    return re.findall(r'<tr class="task-row[^"]*" data-task="([^"]+)"', dom)


def test_report_of_a_real_run_renders_in_chromium(tmp_path, dask_cluster):
    settings = Settings(home=str(tmp_path / "home"), scheduler=dask_cluster.address)
    plan = Plan(workflow=Workflow(id="report_demo", name="Report <demo>"), tasks=[
        _task("prepare", "burn", seconds=0.2, mb=40, score=0.25),
        _task("train[a]", "burn", ["prepare"], seconds=0.3, score=0.875),
        _task("train[b]", "burn", ["prepare"], seconds=0.1, score=0.625),
        _task("broken", "fail_always", ["prepare"], message="bad <input> & worse",
              retry=RetryPolicy(attempts=2, initial=0, jitter=False)),
        _task("after_broken", "burn", ["broken"], seconds=0.01),
    ]).with_fingerprint()
    execution = run_plan(plan, settings, keep_going=True, base_dir=str(tmp_path))
    assert {t: r.status for t, r in execution.tasks.items()} == {
        "prepare": "succeeded", "train[a]": "succeeded", "train[b]": "succeeded", "broken": "failed",
        "after_broken": "skipped"}

    html_path = Path(write_report(execution, tmp_path / "out" / "report.html", settings=settings))
    html = html_path.read_text()
    assert not re.search(r'(src|href)="https?:', html)  # self-contained: nothing fetched
    for tid, r in execution.tasks.items():
        assert f'data-task="{tid}"' in html
    assert "score = 0.875" in html and "score = 0.625" in html  # metrics
    assert "bad &lt;input&gt; &amp; worse" in html and "bad <input>" not in html  # escaped error
    assert "Traceback (most recent call last)" in html  # the attempts' tracebacks
    assert "attempt 2: ValueError" in html
    assert "Report &lt;demo&gt;" in html

    dom = dump_dom(html_path)
    assert sorted(_rows(dom)) == sorted(execution.tasks)  # one row per task, in the rendered DOM
    assert len(re.findall(r'<g class="node status-', dom)) == 5  # the DAG's nodes
    assert len(re.findall(r'<rect class="bar"', dom)) == 4  # ran on a worker: all but the skipped one
    row = re.search(r'<tr class="task-row[^"]*" data-task="prepare".*?</tr>', dom, re.S).group(0)
    cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
    task, status, attempts, duration, cpu, peak = cells[:6]
    assert (task, status, attempts) == ("prepare", "succeeded", "1")
    assert re.fullmatch(r"\d+ ms|\d+\.\d\d s", duration) and re.fullmatch(r"\d+ ms|\d+\.\d\d s", cpu)
    assert re.fullmatch(r"\d+(\.\d)?MiB", peak)  # it held 40 MiB

    png = tmp_path / "report.png"
    screenshot(html_path, png, size="1000,900")
    width, height, pixels = png_pixels(png)
    assert (width, height) == (1000, 900)
    colors = set(pixels)
    assert len(colors) > 30, f"the screenshot looks blank ({len(colors)} colours)"
    green = (0x2E, 0x9D, 0x5B)  # the `succeeded` colour of DAG nodes and badges
    assert any(sum(abs(a - b) for a, b in zip(p, green)) < 12 for p in colors)


def test_mlw_run_report_and_mlw_report(tmp_path, dask_cluster):
    (tmp_path / "wf.mlw").write_text(f"""\
workflow cli_report {{
  defaults {{ cache {{ strategy = disk }} }}
  task a: custom {{ uses = "{FN}:burn"  seconds = 0.05  score = 0.5 }}
  task b: custom after a {{ uses = "{FN}:burn"  seconds = 0.05  score = 0.75 }}
}}
""")
    env = dict(os.environ, MLW_HOME=str(tmp_path / "home"), MLW_DASK_SCHEDULER=dask_cluster.address,
               PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))

    def mlw(*args):
        return subprocess.run([MLW, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180)

    done = mlw("run", "wf.mlw", "--report", "run.html", "--dashboard")
    assert done.returncode == 0, done.stderr
    assert f"report: {tmp_path / 'run.html'}" in done.stdout
    assert done.stdout.splitlines()[0].startswith("dashboard")  # its address, or why there is none
    execution_id = done.stdout.split("(execution ", 1)[1].split(",", 1)[0]
    assert sorted(_rows((tmp_path / "run.html").read_text())) == ["a", "b"]

    again = mlw("report", execution_id[:6], "-o", "later.html")
    assert again.returncode == 0, again.stderr
    html = (tmp_path / "later.html").read_text()
    assert execution_id in html and "score = 0.75" in html

    missing = mlw("report", "nope", "-o", "x.html")
    assert missing.returncode == 1 and "no execution 'nope'" in missing.stderr
    assert "Traceback" not in missing.stderr and not (tmp_path / "x.html").exists()
