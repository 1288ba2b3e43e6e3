"""``ir.topological_order``, the one order of a plan's tasks: networkx's lexicographical
topological order (what the compiler lists tasks in), and the executor's order of a plan."""

from __future__ import annotations

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlflowdsl.ir import DependencyCycle, Plan, Task, UnknownDependency, Workflow, topological_order
from mlflowdsl.runtime.planning import topological

names = st.text(alphabet="abt0123[]._", min_size=1, max_size=4)


@settings(max_examples=200, deadline=None)
@given(st.lists(names, min_size=1, max_size=25, unique=True), st.data())
def test_the_same_order_as_networkx_lexicographical_or_a_cycle(nodes, data):
    edges = data.draw(st.lists(st.tuples(st.sampled_from(nodes), st.sampled_from(nodes)), max_size=40))
    g = nx.DiGraph()
    g.add_nodes_from(nodes)
    g.add_edges_from(edges)
    deps = {n: [a for a, b in edges if b == n] for n in nodes}  # duplicates kept, as a plan may have
    try:
        expected = list(nx.lexicographical_topological_sort(g))
    except nx.NetworkXUnfeasible:
        with pytest.raises(DependencyCycle):
            topological_order(deps)
    else:
        assert topological_order(deps) == expected
        plan = Plan(workflow=Workflow(id="w"), tasks=[Task(id=n, type="custom", dependencies=sorted(set(deps[n])))
                                                       for n in nodes])
        assert [t.id for t in topological(plan)] == expected


def test_unknown_dependencies_and_cycles_are_named():
    with pytest.raises(UnknownDependency, match="'a' depends on unknown task\\(s\\) ghost") as caught:
        topological_order({"a": ["ghost"]})
    assert caught.value.unknown == ["ghost"]
    with pytest.raises(DependencyCycle) as cycle:
        topological_order({"a": ["b"], "b": ["a"], "c": []})
    assert cycle.value.blocked == ["a", "b"]


@settings(max_examples=100, deadline=None)
@given(st.lists(names, min_size=1, max_size=25, unique=True), st.data())
def test_a_networkx_graph_orders_the_same_through_its_adjacency(nodes, data):
    edges = data.draw(st.lists(st.tuples(st.sampled_from(nodes), st.sampled_from(nodes)), max_size=40))
    g = nx.DiGraph()
    g.add_nodes_from(nodes)
    g.add_edges_from(edges)
    try:
        expected = list(nx.lexicographical_topological_sort(g))
    except nx.NetworkXUnfeasible:
        with pytest.raises(DependencyCycle):
            topological_order(g.pred, g.succ)
    else:
        assert topological_order(g.pred, g.succ) == expected == topological_order(g.pred)
