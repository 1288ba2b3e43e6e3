"""``graph.topological_order`` (its own Kahn loop, for speed) gives exactly networkx's
lexicographical topological order, and its error for a cycle."""

from __future__ import annotations

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlflowdsl.compiler.graph import topological_order
from mlflowdsl.ir import DependencyCycle



def build_graph_from_edges(nodes, edges) -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_nodes_from(nodes)
    g.add_edges_from(edges)
    return g


names = st.text(alphabet="abt0123[]._", min_size=1, max_size=4)


@settings(max_examples=200, deadline=None)
@given(st.lists(names, min_size=1, max_size=25, unique=True), st.data())
def test_the_same_order_as_networkx_or_the_same_cycle_error(nodes, data):
    edges = data.draw(st.lists(st.tuples(st.sampled_from(nodes), st.sampled_from(nodes)), max_size=40))
    g = build_graph_from_edges(nodes, edges)
    try:
        expected = list(nx.lexicographical_topological_sort(g))
    except nx.NetworkXUnfeasible:
        with pytest.raises(DependencyCycle):
            topological_order(g)
    else:
        assert topological_order(g) == expected


def test_ties_go_to_the_smallest_id_and_a_self_loop_is_a_cycle():
    assert topological_order(build_graph_from_edges(["c", "b", "a"], [("c", "a")])) == ["b", "c", "a"]
    with pytest.raises(DependencyCycle):
        topological_order(build_graph_from_edges(["a"], [("a", "a")]))
