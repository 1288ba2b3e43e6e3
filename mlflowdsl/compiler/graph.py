"""The graph pass: dependencies as a networkx DiGraph (edge = dependency -> dependent).

MLW303 for an ``after`` naming no task, MLW301 for a cycle (the whole path
``a -> b -> c -> a``), and the order the IR lists tasks in.

>>> topological_order(nx.DiGraph([("a", "b"), ("b", "c")]))
['a', 'b', 'c']
"""

from __future__ import annotations

import networkx as nx

from mlflowdsl import ir
from mlflowdsl.compiler.evaluate import did_you_mean
from mlflowdsl.grammar.diagnostics import Diagnostic, Span


def build_graph(tasks) -> tuple[nx.DiGraph, list[str], list[Diagnostic]]:
    """The dependency graph of checked tasks (``id``, ``deps`` id -> span, ``after``), its
    topological order (empty when there are errors) and the diagnostics."""
    diags: list[Diagnostic] = []
    g = nx.DiGraph()
    ids = {t.id for t in tasks}
    g.add_nodes_from(t.id for t in tasks)
    for t in tasks:
        for dep, span in t.after:
            if dep not in ids:
                diags.append(Diagnostic("MLW303", f"task `{t.id}` runs after unknown task `{dep}`", span,
                                        hint=did_you_mean(dep, ids) or "declare that task or remove it from `after`"))
    g.add_edges_from([(dep, t.id) for t in tasks for dep in t.deps if dep in ids])
    if diags:
        return g, [], diags
    try:
        return g, topological_order(g), diags
    except ir.DependencyCycle:  # a cycle: find and print every one
        by_id = {t.id: t for t in tasks}
        return g, [], find_cycles(g, lambda dep, task: by_id[task].deps.get(dep))


def find_cycles(g: nx.DiGraph, edge_span=lambda dep, task: None) -> list[Diagnostic]:
    """One MLW301 per strongly connected cycle, printed from its smallest task id so the
    message does not depend on declaration order. ``edge_span(dep, task)`` is the span of
    the reference or ``after`` that makes ``task`` depend on ``dep``."""
    if nx.is_directed_acyclic_graph(g):
        return []
    diags = []
    components = [c for c in nx.strongly_connected_components(g) if len(c) > 1 or any(g.has_edge(n, n) for n in c)]
    for comp in sorted(components, key=min):
        start = min(comp)
        path = _cycle_from(g.subgraph(comp), start)
        text = " -> ".join(path)
        span: Span | None = edge_span(path[0], path[1])
        diags.append(Diagnostic("MLW301", f"dependency cycle: {text}", span,
                                hint=f"`{path[1]}` depends on `{path[0]}`; remove one dependency of the cycle"))
    return diags


def _cycle_from(g: nx.DiGraph, start: str) -> list[str]:
    """The shortest cycle through ``start`` (breadth-first, neighbours in id order)."""
    if g.has_edge(start, start):
        return [start, start]
    parents = {start: None}
    queue = [start]
    while queue:
        nxt = []
        for node in queue:
            for succ in sorted(g.successors(node)):
                if succ == start:
                    path = [node]
                    while parents[path[-1]] is not None:
                        path.append(parents[path[-1]])
                    return list(reversed(path)) + [start]
                if succ not in parents:
                    parents[succ] = node
                    nxt.append(succ)
        queue = nxt
    return [start, start]  # unreachable for a strongly connected component


def topological_order(g: nx.DiGraph) -> list[str]:
    """Topological order, ties broken by task id: the IR's order (:func:`mlflowdsl.ir.topological_order`
    over the graph's own adjacency dicts); :class:`mlflowdsl.ir.DependencyCycle` for a cycle.

    >>> g = nx.DiGraph([("c", "a")])
    >>> g.add_node("b")
    >>> topological_order(g)
    ['b', 'c', 'a']
    """
    return ir.topological_order(g.pred, g.succ)
