"""Hypothesis strategies for *valid* `.mlw` programs, and an AST comparison helper.

A program is generated as a list of tokens joined by random separators (spaces, newlines,
trailing and own-line comments), so the formatter sees every layout and comment placement.
"""

from __future__ import annotations

import dataclasses

from hypothesis import strategies as st

from mlflowdsl.grammar import ast
from mlflowdsl.grammar.strings import escape
from mlflowdsl.grammar.units import UNITS

KEYWORDS = set(
    "workflow task tune template use import params defaults after foreach in output true false null and or not mlw".split()
)

names = st.from_regex(r"[a-z_][a-z0-9_]{0,5}", fullmatch=True).filter(lambda s: s not in KEYWORDS)
comment_text = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=12
).map(lambda s: "#" + s)
separators = st.one_of(
    st.sampled_from([" ", " ", " ", "\n", "  ", "\n    ", "\n\n", "\t"]),
    comment_text.map(lambda c: " " + c + "\n"),
    comment_text.map(lambda c: "\n" + c + "\n"),
)

ints = st.integers(-10**6, 10**12).map(str)
floats = st.one_of(
    st.sampled_from(["0.2", "1e-4", "2.5E3", "-0.5", "3.0", "1e10"]),
    st.floats(0, 1e6, allow_nan=False, allow_infinity=False).map(repr).filter(lambda s: "e" not in s or "." in s),
)
quantities = st.builds(lambda n, u: f"{n}{u}", st.sampled_from(["1", "250", "4", "1.5", "0"]), st.sampled_from(sorted(UNITS)))
plain_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=10)


@st.composite
def string_tokens(draw) -> str:
    pieces = draw(
        st.lists(
            st.one_of(
                plain_text.map(lambda t: ("text", t)),
                interp_refs.map(lambda r: ("raw", "${" + r + "}")),
                st.sampled_from([r"\u00e9", r"\/", r"\$", r"\ud83d\ude00"]).map(lambda r: ("raw", r)),
            ),
            max_size=3,
        )
    )
    out: list[str] = []
    text = ""
    for kind, p in pieces + [("raw", "")]:
        if kind == "text":
            text += p  # escape whole runs of text, so `$` + `{` cannot meet unescaped
            continue
        out.append(escape(text) + p)
        text = ""
    return '"' + "".join(out) + '"'


triple_tokens = st.text(st.sampled_from(list('ab "\n\\$')), max_size=8).map(
    lambda t: '"""' + t.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"""'
)
index = st.one_of(names, st.sampled_from(["*", "0", "12", '"a b"']))
ref_part = st.builds(lambda n, i: n + (f"[{i}]" if i else ""), names, st.one_of(st.none(), index))
interp_refs = st.one_of(
    names,
    st.builds(lambda h, i, f: f"{h}[{i}].{f}" if i else f"{h}.{f}", names, st.one_of(st.none(), names, st.just("*")), names),
)
refs = st.builds(
    lambda head, rest: ".".join([head] + rest),
    st.one_of(ref_part, st.just("params")),
    st.lists(st.one_of(names, st.just("output")), min_size=1, max_size=2),
)


def values(depth: int = 2):
    leaves = st.one_of(
        ints.map(lambda s: [s]),
        floats.map(lambda s: [s]),
        quantities.map(lambda s: [s]),
        string_tokens().map(lambda s: [s]),
        triple_tokens.map(lambda s: [s]),
        st.sampled_from(["true", "false", "null"]).map(lambda s: [s]),
        names.map(lambda s: [s]),
        refs.map(lambda s: [s]),
    )
    if depth == 0:
        return leaves
    sub = values(depth - 1)
    lists = st.builds(_list, st.lists(sub, max_size=3), st.booleans())
    maps = st.builds(_map, st.lists(st.tuples(map_keys, sub, st.booleans()), max_size=3))
    calls = st.builds(_call, names, st.lists(st.tuples(st.one_of(st.none(), names), sub), max_size=3))
    ops = st.builds(
        lambda a, op, b, paren: (["("] if paren else []) + _operand(a) + [op] + _operand(b) + ([")"] if paren else []),
        sub, st.sampled_from(["and", "or", "==", "!=", "<", "<=", ">", ">="]), sub, st.booleans(),
    )
    nots = st.builds(lambda a: ["not", "("] + a + [")"], sub)
    return st.one_of(leaves, lists, maps, calls, ops, nots)


def _operand(tokens: list[str]) -> list[str]:
    """Compound operands get parentheses (a comparison takes only atoms)."""
    return tokens if len(tokens) == 1 else ["("] + tokens + [")"]


map_keys = st.one_of(names, st.just("output"), st.just('"a key"'))


def _list(items, trailing):
    out = ["["]
    for i, it in enumerate(items):
        if i:
            out.append(",")
        out += it
    if items and trailing:
        out.append(",")
    return out + ["]"]


def _map(entries):
    out = ["{"]
    for k, v, comma in entries:
        out += [k, "="] + v + ([","] if comma else [])
    return out + ["}"]


def _call(func, args):
    out = [func, "("]
    for i, (kw, v) in enumerate(args):
        if i:
            out.append(",")
        out += ([kw, "="] if kw else []) + v
    return out + [")"]


attr_keys = st.one_of(names, st.just("output"))
attrs = st.builds(lambda k, v: [k, "="] + v, attr_keys, values())
blocks = st.builds(
    lambda n, items: [n, "{"] + [t for a, comma in items for t in a + ([","] if comma else [])] + ["}"],
    names, st.lists(st.tuples(attrs, st.booleans()), max_size=3),
)
bodies = st.lists(st.one_of(attrs, blocks), max_size=4).map(lambda items: [t for i in items for t in i])

types = st.recursive(
    st.sampled_from(["str", "int", "float", "bool", "path", "duration", "size"]),
    lambda inner: st.one_of(st.builds(lambda t: f"list[{t}]", inner), st.builds(lambda t: f"map[str, {t}]", inner)),
    max_leaves=2,
)
bound = st.one_of(ints, floats.filter(lambda s: not s.startswith("-")), quantities)
constraints = st.one_of(
    st.none(),
    st.builds(lambda lo, hi: ["in"] + ([lo] if lo else []) + [".."] + ([hi] if hi else []),
              st.one_of(st.none(), bound), st.one_of(st.none(), bound)),
    st.builds(lambda v: ["in"] + _list(v, False), st.lists(string_tokens().map(lambda s: [s]), max_size=3)),
)
param_decls = st.builds(
    lambda n, t, d, c: [n, ":", *t.replace("[", " [ ").replace("]", " ] ").replace(",", " , ").split()]
    + (["="] + d if d else []) + (c or []),
    names, types, st.one_of(st.none(), values(1)), constraints,
)
params_blocks = st.lists(param_decls, max_size=3).map(lambda ds: ["params", "{"] + [t for d in ds for t in d] + ["}"])
defaults_blocks = bodies.map(lambda b: ["defaults", "{"] + b + ["}"])
tasks = st.builds(
    lambda i, ty, after, fe, body: ["task", i, ":", ty]
    + (["after"] + [t for k, a in enumerate(after) for t in ([","] if k else []) + [a]] if after else [])
    + (["foreach", fe[0], "in"] + fe[1] if fe else [])
    + ["{"] + body + ["}"],
    names, names, st.lists(names, max_size=2), st.one_of(st.none(), st.tuples(names, values(1))), bodies,
)
tunes = st.builds(lambda n, b: ["tune", n, "{"] + b + ["}"], names, bodies)
uses = st.builds(
    lambda a, t, args, trailing: ["use", a, "=", t, "("]
    + [tok for k, arg in enumerate(args) for tok in ([","] if k else []) + arg]
    + ([","] if args and trailing else []) + [")"],
    names, names, st.lists(attrs, max_size=3), st.booleans(),
)
outputs = st.builds(lambda n, v: ["output", n, "="] + v, names, values(1))
tparams = st.builds(
    lambda n, t, d: [n] + ([":", t] if t else []) + (["="] + d if d else []),
    names, st.one_of(st.none(), st.sampled_from(["str", "float", "int"])), st.one_of(st.none(), values(0)),
)
templates = st.builds(
    lambda n, ps, items: ["template", n, "("] + [t for k, p in enumerate(ps) for t in ([","] if k else []) + p]
    + [")", "{"] + [t for i in items for t in i] + ["}"],
    names, st.lists(tparams, max_size=3), st.lists(st.one_of(tasks, tunes, uses, outputs), max_size=3),
)
workflows = st.builds(
    lambda n, items: ["workflow", n, "{"] + [t for i in items for t in i] + ["}"],
    names, st.lists(st.one_of(attrs, params_blocks, defaults_blocks, tasks, tunes, uses), max_size=5),
)


@st.composite
def programs(draw) -> str:
    tokens: list[str] = []
    if draw(st.booleans()):
        tokens += ["mlw", "1"]
    for _ in range(draw(st.integers(0, 2))):
        tokens += ["import", draw(string_tokens().filter(lambda s: "${" not in s))]
    for t in draw(st.lists(templates, max_size=2)):
        tokens += t
    if draw(st.booleans()) or not any(t == "template" for t in tokens):
        tokens += draw(workflows)
    out = [draw(st.sampled_from(["", "# header\n", "\n"]))]
    for tok in tokens:
        out.append(tok)
        out.append(draw(separators))
    return "".join(out)


def strip_spans(node):
    """The AST as plain tuples without positions, for comparing two parses (the formatter
    strips trailing whitespace, also in comments)."""
    if isinstance(node, ast.Module):
        return (strip_spans(node.order), node.version, tuple(c.text.rstrip() for c in node.comments))
    if dataclasses.is_dataclass(node):
        return (type(node).__name__,) + tuple(
            strip_spans(getattr(node, f.name))
            for f in dataclasses.fields(node)
            if f.name != "span" and not f.name.endswith("_span")
        )
    if isinstance(node, (tuple, list)):
        return tuple(strip_spans(x) for x in node)
    if isinstance(node, float) and node != node:  # pragma: no cover - NaN never parses
        return "nan"
    return node
