"""Every construct of LANGUAGE.md parses into the expected AST (types, values, some spans)."""

from __future__ import annotations

import pytest

from mlflowdsl.grammar import ast
from mlflowdsl.grammar.diagnostics import Span
from mlflowdsl.grammar.parser import parse_file, parse_text


def wf(body: str) -> ast.Workflow:
    return parse_text("workflow w {\n" + body + "\n}", "t.mlw").workflow


def value(text: str) -> ast.Expr:
    """The value of ``x = text`` inside a workflow."""
    return wf(f"x = {text}").items[0].value


def task(text: str) -> ast.Task:
    return wf(text).tasks[0]


# ----------------------------------------------------------------------------- file structure


def test_file_structure_header_import_template_workflow_in_order():
    m = parse_text(
        'mlw 1\nimport "lib/common.mlw"\ntemplate t() { }\nworkflow fraud { name = "F" }\n', "f.mlw"
    )
    assert m.version == 1
    assert [i.path for i in m.imports] == ["lib/common.mlw"]
    assert m.imports[0].path_span == Span("f.mlw", 2, 8, 2, 24)
    assert [t.name for t in m.templates] == ["t"]
    assert m.workflow.id == "fraud"
    assert m.workflow.id_span == Span("f.mlw", 4, 10, 4, 15)
    assert [type(x).__name__ for x in m.order] == ["Import", "Template", "Workflow"]
    assert m.file == "f.mlw"


def test_header_is_optional_and_template_only_files_parse():
    m = parse_text("template t(a) { output o = a.output }")
    assert m.version is None and m.workflow is None and len(m.templates) == 1


def test_workflow_items_keep_source_order():
    w = wf('name = "n"\nparams { a: int = 1 }\ndefaults { timeout = 1h }\ntask t: custom { }\n'
           "tune t { trials = 3 }\nuse u = tpl(a = 1)\nversion = \"1\"")
    kinds = [type(i).__name__ for i in w.items]
    assert kinds == ["Attr", "Params", "Defaults", "Task", "Tune", "Use", "Attr"]
    assert [a.name for a in w.attrs] == ["name", "version"]


# ----------------------------------------------------------------------------- params


def test_params_with_types_defaults_ranges_and_choices():
    p = wf(
        'params {\n dataset: path = "d.csv"\n test_size: float = 0.2 in 0..1\n'
        ' seed: int = 42 in 1..\n n: int in ..100\n env: str = "dev" in ["dev", "prod"]\n'
        ' algos: list[str] = ["a", "b"]\n w: map[str, float] = { a = 1.5 }\n lr: float\n'
        " t: duration = 30s in 1s..1h\n}"
    ).items[0]
    assert isinstance(p, ast.Params)
    d = {x.name: x for x in p.decls}
    assert list(d) == ["dataset", "test_size", "seed", "n", "env", "algos", "w", "lr", "t"]
    assert d["dataset"].type.name == "path" and d["dataset"].default.text == "d.csv"
    r = d["test_size"].constraint
    assert isinstance(r, ast.Range) and r.low.value == 0 and r.high.value == 1
    assert d["seed"].constraint.low.value == 1 and d["seed"].constraint.high is None
    assert d["n"].constraint.low is None and d["n"].constraint.high.value == 100 and d["n"].default is None
    ch = d["env"].constraint
    assert isinstance(ch, ast.Choices) and [v.text for v in ch.values.items] == ["dev", "prod"]
    assert d["algos"].type.spelled() == "list[str]"
    assert d["w"].type.spelled() == "map[str, float]"
    assert d["lr"].default is None and d["lr"].constraint is None
    assert d["t"].constraint.low.unit == "s" and d["t"].constraint.high.unit == "h"
    assert d["test_size"].name_span == Span("t.mlw", 4, 2, 4, 11)


# ----------------------------------------------------------------------------- tasks


def test_task_header_with_after_and_foreach():
    t = task("task train: model_training after prep, feats foreach algo in params.algos { algorithm = algo }")
    assert (t.id, t.type) == ("train", "model_training")
    assert [a.name for a in t.after] == ["prep", "feats"]
    assert t.foreach.var == "algo"
    assert t.foreach.iterable.dotted() == "params.algos"
    assert isinstance(t.body[0].value, ast.Name) and t.body[0].value.name == "algo"
    assert t.span == Span("t.mlw", 2, 1, 2, 95)
    assert t.id_span == Span("t.mlw", 2, 6, 2, 11)
    assert t.type_span == Span("t.mlw", 2, 13, 2, 27)
    assert t.after[1].span == Span("t.mlw", 2, 40, 2, 45)


def test_task_body_attributes_and_blocks_without_separators():
    t = task(
        "task t: model_training {\n"
        "  resources { cpu = 2  memory = 4GiB  gpu = 0  storage = 10GiB  network = 1Gbps }\n"
        "  cache     { strategy = hybrid  ttl = 7d  version = \"2\" }\n"
        "  retry     { attempts = 3, backoff = exponential, initial = 1s, max = 1m, jitter = true }\n"
        "  timeout = 2h\n  domain = training\n  resourcs { cpu = 1 }\n}"
    )
    blocks = {b.name: b for b in t.body if isinstance(b, ast.Block)}
    assert list(blocks) == ["resources", "cache", "retry", "resourcs"]
    res = {a.name: a.value for a in blocks["resources"].attrs}
    assert res["cpu"] == ast.Int(res["cpu"].span, 2)
    assert (res["memory"].value, res["memory"].unit, res["memory"].raw) == (4.0, "GiB", "4GiB")
    assert res["network"].unit == "Gbps"
    cache = {a.name: a.value for a in blocks["cache"].attrs}
    assert cache["strategy"].name == "hybrid" and cache["ttl"].unit == "d"
    retry = {a.name: a.value for a in blocks["retry"].attrs}
    assert retry["jitter"].value is True and retry["backoff"].name == "exponential"
    attrs = {a.name: a.value for a in t.body if isinstance(a, ast.Attr)}
    assert attrs["timeout"].raw == "2h" and attrs["domain"].name == "training"
    assert blocks["resources"].name_span == Span("t.mlw", 3, 3, 3, 12)


def test_output_is_allowed_as_attribute_and_map_key():
    t = task('task b: batch_inference { output = "preds.csv"  options = { output = 1 } }')
    assert t.body[0].name == "output"
    assert t.body[1].value.entries[0].key == "output"


# ----------------------------------------------------------------------------- values


@pytest.mark.parametrize(
    "text, cls, val",
    [
        ("42", ast.Int, 42),
        ("-3", ast.Int, -3),
        ("0.2", ast.Float, 0.2),
        ("1e-4", ast.Float, 1e-4),
        ("2.5E3", ast.Float, 2500.0),
        ("true", ast.Bool, True),
        ("false", ast.Bool, False),
        ("hybrid", ast.Name, "hybrid"),
    ],
)
def test_scalars(text, cls, val):
    v = value(text)
    assert isinstance(v, cls)
    assert (v.name if cls is ast.Name else v.value) == val


def test_float_keeps_its_spelling_and_null_parses():
    assert value("1e-4").raw == "1e-4"
    assert isinstance(value("null"), ast.Null)


@pytest.mark.parametrize(
    "raw, number, unit",
    [("250ms", 250, "ms"), ("30s", 30, "s"), ("10m", 10, "m"), ("2h", 2, "h"), ("7d", 7, "d"),
     ("512MiB", 512, "MiB"), ("1TiB", 1, "TiB"), ("500MB", 500, "MB"), ("2GB", 2, "GB"),
     ("100Mbps", 100, "Mbps"), ("1.5KiB", 1.5, "KiB"), ("1e3ms", 1000, "ms")],
)
def test_quantities(raw, number, unit):
    q = value(raw)
    assert isinstance(q, ast.Quantity) and (q.value, q.unit, q.raw) == (number, unit, raw)


def test_strings_escapes_and_interpolation():
    s = value(r'"a\"b\\c\n\u00e9 ${params.target} and ${x}!"')
    assert s.parts[0] == 'a"b\\c\n\u00e9 '
    ref = s.parts[1]
    assert isinstance(ref, ast.Ref) and ref.dotted() == "params.target"
    # the literal starts at column 5 of line 2; `params` at column 24
    assert ref.span == Span("t.mlw", 2, 24, 2, 37)
    assert s.parts[2] == " and " and s.parts[3] == ast.Name(s.parts[3].span, "x") and s.parts[4] == "!"
    assert not s.is_plain


def test_escaped_dollar_is_literal_text():
    s = value(r'"\${not} $ {x}"')
    assert s.is_plain and s.text == "${not} $ {x}"


def test_triple_strings_span_lines_and_keep_quotes():
    s = value('"""Trains "fraud"\nmodels."""')
    assert s.triple and s.text == 'Trains "fraud"\nmodels.'
    assert s.span == Span("t.mlw", 2, 5, 3, 11)


def test_lists_and_maps_with_optional_commas():
    assert [i.value for i in value("[1, 2, 3,]").items] == [1, 2, 3]
    assert value("[]").items == ()
    m = value('{ a = 1, b = "x" c = [true] "d e" = 2, }')
    assert [e.key for e in m.entries] == ["a", "b", "c", "d e"]
    assert m.entries[0].key_span == Span("t.mlw", 2, 7, 2, 8)


@pytest.mark.parametrize(
    "text, parts",
    [
        ("prep.output", [("prep", None), ("output", None)]),
        ("params.seed", [("params", None), ("seed", None)]),
        ("train[random_forest].model", [("train", "random_forest"), ("model", None)]),
        ("train[*].model", [("train", "*"), ("model", None)]),
        ("train[0].model", [("train", "0"), ("model", None)]),
        ('train["a b"].model', [("train", "a b"), ("model", None)]),
        ("rf.train.model", [("rf", None), ("train", None), ("model", None)]),
    ],
)
def test_references(text, parts):
    r = value(text)
    assert isinstance(r, ast.Ref)
    assert [(p.name, p.index) for p in r.parts] == parts


def test_reference_part_spans_include_the_index():
    r = value("train[rf].model")
    assert r.parts[0].span == Span("t.mlw", 2, 5, 2, 14)
    assert r.parts[1].span == Span("t.mlw", 2, 15, 2, 20)
    assert r.span == Span("t.mlw", 2, 5, 2, 20)


def test_calls_with_positional_and_keyword_args():
    c = value("float(1e-4, 1e-1, log = true)")
    assert isinstance(c, ast.Call) and c.func == "float"
    assert [a.name for a in c.args] == [None, None, "log"]
    assert c.args[2].value.value is True
    assert value('choice("gini", "entropy")').args[1].value.text == "entropy"
    assert value("maximize(accuracy)").args[0].value == ast.Name(Span("t.mlw", 2, 14, 2, 22), "accuracy")
    assert value("f()").args == ()


def test_when_expressions_precedence():
    e = value('not params.a == 1 and params.env == "prod" or (x != 2 and y >= 3)')
    assert isinstance(e, ast.BinOp) and e.op == "or"
    left, right = e.left, e.right
    assert left.op == "and"
    assert isinstance(left.left, ast.UnaryOp) and left.left.op == "not"
    assert left.left.operand.op == "=="
    assert right.op == "and" and right.left.op == "!=" and right.right.op == ">="
    for op in ["<", "<=", ">", ">=", "==", "!="]:
        assert value(f"a {op} 1").op == op


# ----------------------------------------------------------------------------- tune, use, templates


def test_tune_block():
    w = wf(
        "tune train {\n search {\n  n = int(10, 100)\n  lr = float(1e-4, 1e-1, log = true)\n"
        '  c = choice("gini", "entropy")\n }\n objective = maximize(accuracy)\n trials = 50\n'
        " sampler = tpe\n timeout = 30m\n}"
    )
    t = w.tunes[0]
    assert t.target == "train"
    search = t.body[0]
    assert isinstance(search, ast.Block) and [a.name for a in search.attrs] == ["n", "lr", "c"]
    assert t.body[1].value.func == "maximize"


def test_use_and_template():
    m = parse_text(
        "template train_and_check(data, algo: str, min_accuracy: float = 0.9) {\n"
        "  task train: model_training { data = data  algorithm = algo }\n"
        "  tune train { trials = 2 }\n"
        "  use inner = other(x = 1)\n"
        "  output model = train.model\n}\n"
        "workflow w { use rf = train_and_check(data = prep.output, algo = \"rf\",) }"
    )
    t = m.templates[0]
    assert [(p.name, p.type.spelled() if p.type else None) for p in t.params] == [
        ("data", None), ("algo", "str"), ("min_accuracy", "float")]
    assert t.params[2].default.value == 0.9
    assert [type(i).__name__ for i in t.items] == ["Task", "Tune", "Use", "Output"]
    assert t.items[3].name == "model" and t.items[3].value.dotted() == "train.model"
    u = m.workflow.uses[0]
    assert (u.alias, u.template) == ("rf", "train_and_check")
    assert [a.name for a in u.args] == ["data", "algo"]


# ----------------------------------------------------------------------------- comments, files


def test_comments_are_collected_with_spans():
    m = parse_text("# head\nworkflow w { # trailing\n  x = 1 # mlw: ignore[MLW401]\n}\n", "c.mlw")
    assert [c.text for c in m.comments] == ["# head", "# trailing", "# mlw: ignore[MLW401]"]
    assert m.comments[2].span == Span("c.mlw", 3, 9, 3, 30)


def test_comments_do_not_leak_between_parses():
    parse_text("# one\nworkflow w { }")
    assert parse_text("workflow w { }").comments == ()


def test_parse_file_uses_the_path_as_file_name(tmp_path):
    p = tmp_path / "x.mlw"
    p.write_text("\ufeffworkflow w { }", encoding="utf-8")
    m = parse_file(p)
    assert m.file == str(p) and m.workflow.span.file == str(p)


def test_module_span_covers_the_file():
    m = parse_text("workflow w {\n}\n", "s.mlw")
    assert m.span == Span("s.mlw", 1, 1, 3, 1)


@pytest.mark.parametrize("module_name", ["parser", "strings", "units"])
def test_doctests(module_name):
    import doctest
    import importlib

    module = importlib.import_module(f"mlflowdsl.grammar.{module_name}")
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


def test_crlf_line_endings():
    m = parse_text('workflow w {\r\n  x = 1 # note\r\n  y = """a\r\nb"""\r\n}\r\n', "crlf.mlw")
    assert [c.text for c in m.comments] == ["# note"]
    assert m.comments[0].span == Span("crlf.mlw", 2, 9, 2, 15)
    assert m.workflow.items[1].value.text == "a\r\nb"
    assert m.workflow.items[1].span.end_line == 4
