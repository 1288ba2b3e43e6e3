"""Hover, completion, definition, references, rename, outline, formatting and quick fixes of
the real ``mlw lsp`` process on the examples (and small edits of them)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import pytest_asyncio
from lsp_support import EXAMPLES, change_doc, close_doc, diagnostics_after, open_doc
from lsprotocol import types
from pytest_lsp import LanguageClient

from mlflowdsl.compiler.api import lint_file
from mlflowdsl.compiler.fmt import format_text


ASYNC = pytest.mark.asyncio(loop_scope="module")
FRAUD = EXAMPLES / "fraud_detection.mlw"
TEMPLATED = EXAMPLES / "templated.mlw"
TUNING = EXAMPLES / "tuning.mlw"


def pos(path: Path, needle: str, nth: int = 0, offset: int = 0, text: str | None = None) -> types.Position:
    """The position of the ``nth`` occurrence of ``needle`` (plus ``offset`` characters)."""
    text = path.read_text() if text is None else text
    at = -1
    for _ in range(nth + 1):
        at = text.index(needle, at + 1)
    line = text.count("\n", 0, at)
    return types.Position(line, at - (text.rfind("\n", 0, at) + 1) + offset)


def doc_id(path: Path) -> types.TextDocumentIdentifier:
    return types.TextDocumentIdentifier(uri=path.resolve().as_uri())


async def opened(client: LanguageClient, path: Path, text: str | None = None) -> str:
    uri = path.resolve().as_uri()
    await diagnostics_after(client, uri, lambda: open_doc(client, path, text))
    return uri


async def hover_text(client: LanguageClient, path: Path, p: types.Position) -> str:
    h = await client.text_document_hover_async(types.HoverParams(text_document=doc_id(path), position=p))
    assert h is not None, f"no hover at {p}"
    return h.contents.value


async def labels(client: LanguageClient, path: Path, p: types.Position) -> list[str]:
    result = await client.text_document_completion_async(types.CompletionParams(text_document=doc_id(path), position=p))
    return [i.label for i in result.items]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def examples_open(client: LanguageClient):
    for path in (FRAUD, TEMPLATED, TUNING):
        await opened(client, path)
    yield
    for path in (FRAUD, TEMPLATED, TUNING):
        close_doc(client, path.resolve().as_uri())


@ASYNC
async def test_hover_on_task_type_attribute_output_param_unit_and_algorithm(client: LanguageClient, examples_open):
    # the type: its description and outputs, from the task type's class
    assert "outputs: `model` (model)" in await hover_text(client, FRAUD, pos(FRAUD, "model_training", offset=3))
    # an attribute: the pydantic field's type, description and default
    text = await hover_text(client, FRAUD, pos(FRAUD, "test_size = params", offset=2))
    assert text.startswith("**test_size**: `float`") and "default: `0.2`" in text
    # an input's output: which output of which type
    text = await hover_text(client, FRAUD, pos(FRAUD, "prepare.output", offset=9))
    assert "output `output` of `data_preprocessing` (dataset)" in text
    # a parameter reference: its declaration
    assert await hover_text(client, FRAUD, pos(FRAUD, "params.seed", offset=8)) == "**params.seed**: `int`"
    # a unit after a number
    assert "1 MiB = 1.04858e+06 bytes" in await hover_text(client, FRAUD, pos(FRAUD, "512MiB", offset=4))
    # an algorithm name: its hyperparameters (from the task type)
    text = await hover_text(client, FRAUD, pos(FRAUD, '"gradient_boosting"', offset=3))
    assert "`learning_rate`" in text and "`n_estimators`" in text


@ASYNC
async def test_completion_in_context(client: LanguageClient, examples_open, tmp_path: Path):
    # attributes of the task's type at the start of a line inside a task
    got = await labels(client, FRAUD, pos(FRAUD, "    seed      = params.seed", offset=4))
    assert {"source", "target", "test_size", "impute", "resources", "cache", "retry", "when"} <= set(got)
    assert "algorithm" not in got
    # params.*
    got = await labels(client, FRAUD, pos(FRAUD, "params.dataset", offset=7))
    assert {"dataset", "target", "seed", "deploy"} <= set(got)
    # TASK.<output>
    got = await labels(client, FRAUD, pos(FRAUD, "train.model", offset=6))
    assert set(got) == {"model", "metrics", "output"}
    # a block's fields
    got = await labels(client, FRAUD, pos(FRAUD, "resources { cpu", offset=12))
    assert got == []  # inline block: after `{` on the same line is not a line start
    # the algorithms of model_training, inside its string
    got = await labels(client, FRAUD, pos(FRAUD, '"gradient_boosting"', offset=1))
    assert {"random_forest", "gradient_boosting", "logistic_regression"} <= set(got)
    # hyperparameters inside `hyperparameters = {`
    got = await labels(client, FRAUD, pos(FRAUD, "n_estimators = 50", offset=0))
    assert "max_depth" in got and "n_estimators" in got
    # units after a number
    got = await labels(client, FRAUD, pos(FRAUD, "512MiB", offset=4))
    assert {"MiB", "GiB", "ms", "s"} <= set(got)
    # cache strategies
    got = await labels(client, FRAUD, pos(FRAUD, "strategy = disk", offset=11))
    assert set(got) == {"none", "memory", "disk", "redis", "hybrid"}
    # task types after `task ID:`
    got = await labels(client, FRAUD, pos(FRAUD, "data_preprocessing {"))
    assert {"data_preprocessing", "model_training", "custom"} <= set(got)
    # tune fields and the search block's hyperparameters
    got = await labels(client, TUNING, pos(TUNING, "    objective = maximize", offset=4))
    assert {"trials", "sampler", "pruner", "search"} <= set(got)
    got = await labels(client, TUNING, pos(TUNING, "      max_depth     = int(1, 5)", offset=6))
    assert {"learning_rate", "max_depth", "subsample"} <= set(got)


@ASYNC
async def test_definition_and_references(client: LanguageClient, examples_open):
    uri = FRAUD.resolve().as_uri()
    # `prepare` in `prepare.output` -> the task's id
    locs = await client.text_document_definition_async(types.DefinitionParams(
        text_document=doc_id(FRAUD), position=pos(FRAUD, "prepare.output", offset=2)))
    assert [(loc.uri, loc.range.start) for loc in locs] == [(uri, pos(FRAUD, "prepare: data", offset=0))]
    # `params.seed` -> its declaration
    locs = await client.text_document_definition_async(types.DefinitionParams(
        text_document=doc_id(FRAUD), position=pos(FRAUD, "params.seed", offset=8)))
    assert [loc.range.start for loc in locs] == [pos(FRAUD, "seed:        int")]
    # a template use -> the template in the imported file; the import -> that file
    lib = EXAMPLES / "lib" / "train_and_check.mlw"
    locs = await client.text_document_definition_async(types.DefinitionParams(
        text_document=doc_id(TEMPLATED), position=pos(TEMPLATED, "train_and_check(data", offset=3)))
    assert [(loc.uri, loc.range.start) for loc in locs] == [(lib.resolve().as_uri(), pos(lib, "train_and_check(data"))]
    locs = await client.text_document_definition_async(types.DefinitionParams(
        text_document=doc_id(TEMPLATED), position=pos(TEMPLATED, '"lib/train', offset=3)))
    assert [loc.uri for loc in locs] == [lib.resolve().as_uri()]
    # references of `seed` the parameter: the declaration and every params.seed
    refs = await client.text_document_references_async(types.ReferenceParams(
        text_document=doc_id(FRAUD), position=pos(FRAUD, "seed:        int"),
        context=types.ReferenceContext(include_declaration=True)))
    text = FRAUD.read_text()
    assert len(refs) == 1 + text.count("params.seed")


@ASYNC
async def test_rename_a_task_and_a_param(client: LanguageClient, tmp_path: Path):
    path = tmp_path / "fraud_detection.mlw"
    shutil.copytree(EXAMPLES / "data", tmp_path / "data")
    text = FRAUD.read_text()
    path.write_text(text)
    uri = await opened(client, path)
    edit = await client.text_document_rename_async(types.RenameParams(
        text_document=doc_id(path), position=pos(path, "prepare.output", offset=1), new_name="prep"))
    new_text = _apply(text, edit.changes[uri])
    assert "task prepare" not in new_text and "prepare." not in new_text
    assert "task prep: data_preprocessing" in new_text and "data            = prep.output" in new_text
    path.write_text(new_text)
    before = [(d.code, d.message) for d in lint_file(FRAUD).diagnostics]
    assert [(d.code, d.message.replace("`prep`", "`prepare`")) for d in lint_file(path).diagnostics] == before
    # a parameter: declaration and uses
    edit = await client.text_document_rename_async(types.RenameParams(
        text_document=doc_id(path), position=pos(path, "seed:        int"), new_name="random_seed"))
    renamed = _apply(text, edit.changes[uri])
    assert renamed.count("params.random_seed") == text.count("params.seed") and "random_seed: " in renamed
    close_doc(client, uri)


def _apply(text: str, edits: list[types.TextEdit]) -> str:
    lines = text.split("\n")
    for e in sorted(edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True):
        assert e.range.start.line == e.range.end.line
        row = lines[e.range.start.line]
        lines[e.range.start.line] = row[: e.range.start.character] + e.new_text + row[e.range.end.character:]
    return "\n".join(lines)


@ASYNC
async def test_formatting_is_mlw_fmt(client: LanguageClient, tmp_path: Path):
    path = tmp_path / "w.mlw"
    messy = 'workflow w {\n      task prep: data_preprocessing {source="sklearn:iris"}\n  task t: model_training after prep {  }\n}\n'
    path.write_text(messy)
    uri = await opened(client, path)
    edits = await client.text_document_formatting_async(types.DocumentFormattingParams(
        text_document=doc_id(path), options=types.FormattingOptions(tab_size=2, insert_spaces=True)))
    assert len(edits) == 1 and edits[0].new_text == format_text(messy, str(path)) != messy
    assert edits[0].range.start == types.Position(0, 0) and edits[0].range.end.line == messy.count("\n")
    # an example already in the canonical layout: nothing to change
    assert FRAUD.read_text() == format_text(FRAUD.read_text(), str(FRAUD))
    assert not await client.text_document_formatting_async(types.DocumentFormattingParams(
        text_document=doc_id(FRAUD), options=types.FormattingOptions(tab_size=2, insert_spaces=True)))
    close_doc(client, uri)


@ASYNC
async def test_quick_fix_from_a_did_you_mean_hint(client: LanguageClient, tmp_path: Path):
    path = tmp_path / "w.mlw"
    text = ('workflow w {\n  task prep: data_preprocessing { source = "sklearn:iris" }\n'
            '  task t: model_training after prep { algoritm = "svm"  resources { memory = 4Gx } }\n'
            '  task ev: model_evaluation { model = t.model  data = prepp.output }\n}\n')
    path.write_text(text)
    uri = path.resolve().as_uri()
    diags = await diagnostics_after(client, uri, lambda: open_doc(client, path))
    # the unit is a syntax-level error, so the others show once it is fixed: fix, check, repeat
    fixed, version, titles = text, 1, []
    while diags:
        d = diags[0]
        actions = await client.text_document_code_action_async(types.CodeActionParams(
            text_document=doc_id(path), range=d.range, context=types.CodeActionContext(diagnostics=[d])))
        assert len(actions) == 1 and actions[0].kind == types.CodeActionKind.QuickFix, (d, actions)
        titles.append(actions[0].title)
        fixed, version = _apply(fixed, actions[0].edit.changes[uri]), version + 1
        diags = await diagnostics_after(client, uri, lambda: change_doc(client, uri, fixed, version))
    assert titles == ["Change to `4GB`", "Change to `algorithm`", "Change to `prep`"]
    assert fixed == text.replace("4Gx", "4GB").replace("algoritm", "algorithm").replace("prepp", "prep")
    close_doc(client, uri)


@ASYNC
async def test_outline(client: LanguageClient, examples_open):
    symbols = await client.text_document_document_symbol_async(types.DocumentSymbolParams(text_document=doc_id(TEMPLATED)))
    assert [s.name for s in symbols] == ["lib/train_and_check.mlw", "templated"]
    children = [c.name for c in symbols[1].children]
    assert children == ["seed: int", "prep: data_preprocessing", "rf = train_and_check(...)",
                        "gb = train_and_check(...)", "compare: model_evaluation", "deploy: model_deployment"]


@ASYNC
async def test_features_keep_working_on_the_last_parse_during_a_syntax_error(client: LanguageClient, tmp_path: Path):
    path = tmp_path / "w.mlw"
    text = 'workflow w {\n  task prep: data_preprocessing { source = "sklearn:iris" }\n  task t: model_training { data = prep.output }\n}\n'
    path.write_text(text)
    uri = await opened(client, path)
    broken = text.replace("data = prep.output }", "data = prep.output }\n  task v: model_validation { model = t. }")
    got = await diagnostics_after(client, uri, lambda: change_doc(client, uri, broken, 2))
    assert [d.code for d in got] == ["MLW101"]
    got = await labels(client, path, pos(path, "t. }", offset=2, text=broken))
    assert set(got) == {"model", "metrics", "output"}
    close_doc(client, uri)
