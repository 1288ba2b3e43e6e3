"""The Dask private APIs ``runtime/dask_graph.py`` relies on, checked against the installed Dask.

Each assumption fails with a message that names it: after a Dask upgrade, a failure here
says which private name changed, so the adapter and the version bound in ``pyproject.toml``
can be updated together.
"""

from __future__ import annotations

import inspect
import operator
import subprocess
import sys

import pytest
from distributed import Client, LocalCluster

from mlflowdsl.runtime.dask_graph import Graph, ref

UPDATE = "update mlflowdsl/runtime/dask_graph.py and the dask bound in pyproject.toml"


def broken(assumption: str) -> None:
    pytest.fail(f"{assumption}: {UPDATE}", pytrace=False)


def test_dask_task_spec_task_and_taskref():
    try:
        from dask._task_spec import Task, TaskRef  # noqa: PLC0415 - a missing name fails with its message
    except ImportError as exc:
        broken(f"dask._task_spec.Task or dask._task_spec.TaskRef no longer exists ({exc})")
    params = list(inspect.signature(Task.__init__).parameters.values())
    kinds = [(p.name, p.kind) for p in params[1:4]]
    if kinds[:2] != [("key", inspect.Parameter.POSITIONAL_ONLY), ("func", inspect.Parameter.POSITIONAL_ONLY)] \
            or kinds[2][1] != inspect.Parameter.VAR_POSITIONAL:
        broken(f"dask._task_spec.Task is no longer Task(key, func, /, *args) (it is {kinds})")
    if list(inspect.signature(TaskRef.__init__).parameters) != ["self", "key"] or TaskRef("k").key != "k":
        broken("dask._task_spec.TaskRef is no longer TaskRef(key) with a .key")


def test_dask_expr_llgexpr_takes_a_determ_token():
    try:
        from dask._expr import Expr, LLGExpr  # noqa: PLC0415 - a missing name fails with its message
    except ImportError as exc:
        broken(f"dask._expr.LLGExpr no longer exists ({exc})")
    from dask._task_spec import Task  # noqa: PLC0415 - after the check above

    if LLGExpr._parameters != ["dsk"]:
        broken(f"dask._expr.LLGExpr's operands are no longer ['dsk'] (they are {LLGExpr._parameters})")
    if "_determ_token" not in inspect.signature(Expr.__new__).parameters:
        broken("dask._expr.Expr(..., _determ_token=...) no longer takes a _determ_token")

    def no_tokenizing(self):
        raise AssertionError("tokenized")

    original = LLGExpr.__dask_tokenize__
    LLGExpr.__dask_tokenize__ = no_tokenizing
    try:
        graph = LLGExpr({"k-1": Task("k-1", operator.add, 1, 2)}, _determ_token="0123abcd")
        name, keys = graph._name, list(graph.__dask_keys__())
    except AssertionError:
        broken("dask._expr.LLGExpr(dsk, _determ_token=...) tokenizes the graph despite the token")
    finally:
        LLGExpr.__dask_tokenize__ = original
    if "0123abcd" not in name:
        broken(f"dask._expr.LLGExpr(dsk, _determ_token=...) is no longer named by the token (name {name!r})")
    if keys != ["k-1"]:
        broken(f"dask._expr.LLGExpr's keys are no longer its graph's keys (got {keys})")


def test_client_get_takes_an_expression_without_waiting():
    params = inspect.signature(Client.get).parameters
    missing = [p for p in ("dsk", "keys", "sync", "resources") if p not in params]
    if missing:
        broken(f"distributed.Client.get no longer takes {', '.join(missing)}")


def test_graphs_built_by_the_adapter_run_on_an_in_process_cluster():
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0",
                      resources={"CPU": 2.0}) as cluster, Client(cluster) as client:
        try:
            first = Graph()
            first.add("mlw_test-a", operator.add, 1, 2)
            first.add("mlw_test-b", operator.add, 10, deps=["mlw_test-a"])  # a dependency in the same graph
            a, b = first.submit(client, None)
            second = Graph()
            second.add("mlw_test-c", operator.add, deps=["mlw_test-a", "mlw_test-b"])  # in an earlier graph
            (c,) = second.submit(client, {"CPU": 1.0})
            d = client.submit(operator.add, ref(a), ref(c), pure=False)  # a reference in client.submit
            results = [f.result(timeout=30) for f in (a, b, c, d)]
        except Exception as exc:  # noqa: BLE001 - reported as the broken assumption
            broken(f"a graph of dask._task_spec.Task/TaskRef in dask._expr.LLGExpr no longer runs through "
                   f"Client.get ({type(exc).__name__}: {exc})")
    assert results == [3, 13, 16, 19]
    assert len(first) == 2


def test_importing_the_adapter_does_not_import_dask():
    code = "import sys, mlflowdsl.runtime.dask_graph; print('dask' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
