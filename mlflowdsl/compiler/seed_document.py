"""The JSON/YAML workflow form as text -> a dict, refusing documents that cannot be read in
bounded time and memory (YAML alias bombs, self-referring aliases).

>>> load_document('{"workflow_id": "w", "tasks": []}', "w.json")
{'workflow_id': 'w', 'tasks': []}
"""

from __future__ import annotations

import json
from typing import Any

from mlflowdsl.errors import CompileError
from mlflowdsl.grammar import limits
from mlflowdsl.grammar.diagnostics import Diagnostic, Span


def load_document(text: str, file: str) -> dict:
    """Parse JSON (or YAML, for ``.yaml``/``.yml`` files and non-JSON text) into a dict."""
    is_yaml = file.endswith((".yaml", ".yml"))
    try:
        data = json.loads(text) if not is_yaml else load_yaml(text, file)
    except CompileError:
        raise
    except json.JSONDecodeError as exc:
        span = Span(file, exc.lineno, exc.colno, exc.lineno, exc.colno + 1)
        raise CompileError([Diagnostic("MLW106", f"invalid JSON: {exc.msg}", span)]) from None
    except Exception as exc:  # yaml.YAMLError and friends
        mark = getattr(exc, "problem_mark", None)
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        problem = getattr(exc, "problem", None) or str(exc)
        span = Span(file, line, col, line, col + 1)
        raise CompileError([Diagnostic("MLW106", f"invalid {'YAML' if is_yaml else 'JSON'}: {problem}", span)]) from None
    if not isinstance(data, dict):
        raise CompileError([Diagnostic("MLW106", "a workflow document must be an object", Span(file, 1, 1, 1, 2))])
    return data


def load_yaml(text: str, file: str) -> Any:
    """``yaml.safe_load`` that refuses alias bombs: the composed node graph (aliases are shared
    nodes) is measured before anything is constructed, and a document whose aliases add more
    than ``limits.MAX_YAML_ALIAS_NODES`` values, or refer to themselves, is MLW106."""
    import yaml  # noqa: PLC0415 - PyYAML only for a YAML document

    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        problem = _alias_problem(node)
        if problem:
            what, mark = problem
            line, col = mark.line + 1, mark.column + 1
            raise CompileError([Diagnostic("MLW106", f"invalid YAML: {what}", Span(file, line, col, line, col + 1),
                                           hint="write the repeated values out, or use fewer aliases (`*name`)")])
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _alias_problem(root: Any) -> tuple[str, Any] | None:
    """Why the node graph under ``root`` is refused (and where), or None. Sizes are computed
    once per node, so measuring is linear in the composed nodes, not in the expansion."""
    size: dict[int, int] = {}
    distinct = 0
    stack: list[tuple[Any, bool]] = [(root, False)]
    active: set[int] = set()
    while stack:
        node, done = stack.pop()
        key = id(node)
        children = [] if not isinstance(node.value, list) else [
            c for item in node.value for c in (item if isinstance(item, tuple) else (item,))]
        if done:
            active.discard(key)
            size[key] = 1 + sum(size[id(c)] for c in children)
            if size[key] - distinct > limits.MAX_YAML_ALIAS_NODES:
                return f"its aliases expand to more than {limits.MAX_YAML_ALIAS_NODES} values", node.start_mark
            continue
        if key in size:
            continue
        if key in active:
            return "an alias refers to the value that contains it", node.start_mark
        active.add(key)
        distinct += 1
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in size)
    return None
