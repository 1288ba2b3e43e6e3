"""Diagnostics of the real ``mlw lsp`` process against ``mlw lint --format json`` on the same
text: code, range, message, severity and hint, for every test case of
tests/unit/test_diagnostic_codes.py (collected by running those tests with the compiler's
entry points recorded), for imports of open buffers, and for ``# mlw: ignore[...]``."""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from lsp_support import MLW, REPO_ROOT, change_doc, close_doc, diagnostics_after, open_doc, server_env
from pytest_lsp import LanguageClient

from mlflowdsl.compiler import api
from mlflowdsl.grammar.diagnostics import CODES, render_json


ASYNC = pytest.mark.asyncio(loop_scope="module")

CODES_TESTS = REPO_ROOT / "tests" / "unit" / "test_diagnostic_codes.py"
CASES_DIR = Path(tempfile.mkdtemp(prefix="mlw-lsp-cases-"))


def _collect_cases() -> list[tuple[str, Path]]:
    """(test name, main file) for every text the diagnostic-code tests compile: each test runs
    with ``compile_text``/``compile_file`` recorded; a text is written to a file of its name in
    a directory of its own (a file the test wrote itself, for imports, stays where it is).
    Calls with ``-p``/params-file overrides are left out: an editor has no such settings."""
    spec = importlib.util.spec_from_file_location("mlw_diagnostic_code_cases", CODES_TESTS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cases: list[tuple[str, Path]] = []
    current = [""]

    def record_text(text, file="<string>", **kw):
        result = api.compile_text(text, file, **kw)
        if not kw.get("params") and not kw.get("params_file"):
            where = CASES_DIR / f"{current[0]}-{len(cases)}"
            where.mkdir()
            path = where / Path(file).name
            path.write_text(text)
            cases.append((current[0], path))
        else:
            NOT_REPLAYED.update(d.code for d in result.diagnostics)
        return result

    def record_file(path, **kw):
        result = api.compile_file(path, **kw)
        if Path(path).exists() and not kw.get("params"):
            cases.append((current[0], Path(path)))
        else:
            NOT_REPLAYED.update(d.code for d in result.diagnostics)
        return result

    def record_spec(spec, *args, **kw):
        result = api.compile_spec(spec, *args, **kw)
        NOT_REPLAYED.update(d.code for d in result.diagnostics)
        return result

    module.compile_text = record_text
    module.compile_file = record_file
    module.compile_spec = record_spec
    for name, fn in inspect.getmembers(module, inspect.isfunction):
        if not name.startswith("test_mlw"):
            continue
        current[0] = name
        marks = [m for m in getattr(fn, "pytestmark", []) if m.name == "parametrize"]
        if len(marks) > 1 or (marks and "," in marks[0].args[0]):
            continue  # only the single-argument parametrization is replayed here
        calls = [{marks[0].args[0]: v} for v in marks[0].args[1]] if marks else [{}]
        wanted = set(inspect.signature(fn).parameters) - {"tmp_path"} - set(calls[0])
        if wanted:
            continue  # a test needing other fixtures: its texts are not collected
        for kwargs in calls:
            if "tmp_path" in inspect.signature(fn).parameters:
                tmp = CASES_DIR / f"{name}-tmp-{len(cases)}"
                tmp.mkdir()
                kwargs = {**kwargs, "tmp_path": tmp}
            fn(**kwargs)
    return cases


NOT_REPLAYED: set[str] = set()  # codes of the calls left out (settings, dict specs, missing files)
CASES = _collect_cases()


def lint_json(path: Path) -> list[dict]:
    """What ``mlw lint --format json PATH`` prints (the same function renders it)."""
    return json.loads(render_json(api.lint_file(path).diagnostics))


def as_lint(d, file: str) -> dict:
    """An LSP diagnostic in the shape of ``mlw lint --format json``."""
    r = d.range
    return {"code": d.code, "severity": "error" if d.severity == 1 else "warning", "message": d.message,
            "file": file, "line": r.start.line + 1, "column": r.start.character + 1,
            "end_line": r.end.line + 1, "end_column": r.end.character + 1, "hint": d.data["hint"]}


def test_the_cases_cover_every_diagnostic_code():
    covered = set()
    for _, path in CASES:
        covered |= {d["code"] for d in lint_json(path)}
    # a code only the left-out calls produce (an override, a missing file) has no text to open
    assert set(CODES) - covered <= NOT_REPLAYED - covered, sorted(set(CODES) - covered - NOT_REPLAYED)
    assert len(covered) >= len(CODES) - 2, sorted(set(CODES) - covered)


@ASYNC
@pytest.mark.parametrize("name,path", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
async def test_diagnostics_are_those_of_mlw_lint(client: LanguageClient, name: str, path: Path):
    expected = lint_json(path)
    uri = path.resolve().as_uri()
    got = await diagnostics_after(client, uri, lambda: open_doc(client, path))
    try:
        mine = [e for e in expected if e["line"] is None or Path(e["file"]).resolve() == path.resolve()]
        elsewhere = [e for e in expected if e not in mine]
        assert [as_lint(d, str(path)) for d in got] == [
            {**e, "file": str(path), "line": e["line"] or 1, "column": e["column"] or 1,
             "end_line": e["end_line"] or 1, "end_column": e["end_column"] or 1} for e in mine]
        for e in elsewhere:  # a diagnostic in an imported file is published on that file
            other = Path(e["file"]).resolve().as_uri()
            assert [as_lint(d, e["file"]) for d in client.diagnostics.get(other, [])] == [e]
    finally:
        close_doc(client, uri)


@ASYNC
async def test_an_import_is_read_from_its_open_buffer(client: LanguageClient, tmp_path: Path):
    lib = tmp_path / "lib.mlw"
    lib.write_text("template tr(data) {\n  task train: model_training { data = data }\n  output model = train.model\n}\n")
    main = tmp_path / "main.mlw"
    main.write_text('import "lib.mlw"\nworkflow w {\n  task prep: data_preprocessing { source = "sklearn:iris" }\n'
                    "  use a = tr(data = prep.output)\n"
                    '  task ev: model_evaluation { model = a.model  data = prep.output }\n}\n')
    uri = main.resolve().as_uri()
    assert await diagnostics_after(client, uri, lambda: open_doc(client, main)) == []
    # the template loses its `data` parameter in the editor, unsaved: the use is now wrong
    edited = lib.read_text().replace("tr(data)", "tr(dataset)").replace("data = data", "data = dataset")
    lib_uri = open_doc(client, lib, edited)
    got = await diagnostics_after(client, uri, lambda: change_doc(client, lib_uri, edited + "\n", 2))
    lib.write_text(edited)
    assert [(d.code, d.range.start.line + 1, d.range.start.character + 1) for d in got] == [
        (e["code"], e["line"], e["column"]) for e in lint_json(main)]
    assert {d.code for d in got} == {"MLW216"}
    close_doc(client, lib_uri)
    close_doc(client, uri)


@ASYNC
async def test_ignore_comments_silence_warnings_as_in_lint(client: LanguageClient, tmp_path: Path):
    path = tmp_path / "w.mlw"
    text = 'workflow w {\n  task prep: data_preprocessing { source = "sklearn:iris" }\n}\n'
    path.write_text(text)
    uri = path.resolve().as_uri()
    got = await diagnostics_after(client, uri, lambda: open_doc(client, path))
    assert [d.code for d in got] == ["MLW402"]
    quiet = text.replace('"sklearn:iris" }', '"sklearn:iris" }  # mlw: ignore[MLW402]')
    got = await diagnostics_after(client, uri, lambda: change_doc(client, uri, quiet, 2))
    path.write_text(quiet)
    assert got == [] and lint_json(path) == []
    close_doc(client, uri)


def test_lint_json_is_the_cli_output(tmp_path: Path):
    """``lint_json`` above is what the command prints (checked once through the real CLI)."""
    path = tmp_path / "w.mlw"
    path.write_text('workflow w {\n  task prep: data_preprocessing { source = "sklearn:iris" }\n}\n')
    out = subprocess.run([MLW, "lint", "--format", "json", str(path)], capture_output=True, text=True,
                         env=server_env(), timeout=60)
    assert json.loads(out.stdout) == lint_json(path) and lint_json(path)


def teardown_module() -> None:
    shutil.rmtree(CASES_DIR, ignore_errors=True)


@ASYNC
async def test_a_burst_of_edits_ends_with_the_diagnostics_of_the_last_text(client: LanguageClient, tmp_path: Path):
    path = tmp_path / "w.mlw"
    base = ('workflow w {\n  task prep: data_preprocessing { source = "sklearn:iris" }\n'
            '  task t: model_training { data = prep.output  X }\n}\n')
    path.write_text(base.replace("X", ""))
    uri = path.resolve().as_uri()
    await diagnostics_after(client, uri, lambda: open_doc(client, path))
    texts = [base.replace("X", "seed = " + "1" * n) for n in range(1, 8)] + [base.replace("X", "sed = 1")]
    for version, text in enumerate(texts, start=2):  # sent without waiting: checks run meanwhile
        change_doc(client, uri, text, version)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while client.diagnostics.get(uri) is None or not any(d.code == "MLW203" for d in client.diagnostics[uri]):
        assert loop.time() < deadline, "the last text's diagnostics never came"
        await asyncio.sleep(0.01)
    path.write_text(texts[-1])
    assert [as_lint(d, str(path)) for d in client.diagnostics[uri]] == lint_json(path)
    close_doc(client, uri)


@ASYNC
async def test_columns_after_non_ascii_text_are_utf16_units(client: LanguageClient, tmp_path: Path):
    # "🚀" is one code point (the compiler's column unit) and two UTF-16 units (LSP's default)
    path = tmp_path / "w.mlw"
    path.write_text('workflow w {\n  task prep: data_preprocessing { source = "🚀é.csv"  seeed = 1 }\n}\n', encoding="utf-8")
    uri = path.resolve().as_uri()
    got = await diagnostics_after(client, uri, lambda: open_doc(client, path))
    (lint,) = [e for e in lint_json(path) if e["code"] == "MLW203"]
    (d,) = [d for d in got if d.code == "MLW203"]
    line = path.read_text(encoding="utf-8").split("\n")[1]
    assert line[lint["column"] - 1:lint["end_column"] - 1] == "seeed"
    assert d.range.start.character == lint["column"] - 1 + 1  # one more unit for the rocket
    assert d.range.end.character - d.range.start.character == len("seeed")
    close_doc(client, uri)


@ASYNC
async def test_a_yaml_workflow_spec_gets_the_diagnostics_of_lint(client: LanguageClient, tmp_path: Path):
    path = tmp_path / "w.yaml"
    path.write_text("workflow_id: w\ntasks:\n  - task_id: prep\n    task_type: data_preprocesing\n"
                    "    parameters: {source: 'sklearn:iris'}\n")
    uri = path.resolve().as_uri()
    got = await diagnostics_after(client, uri, lambda: open_doc(client, path))
    assert [as_lint(d, str(path)) for d in got] == lint_json(path)
    assert [d.code for d in got] == ["MLW201"]
    close_doc(client, uri)
