"""The VS Code extension's files agree with each other and with the language: what
package.json names exists, the grammar's scope is the one it declares, and every snippet,
expanded with its placeholders' defaults, parses (the whole-workflow one compiles clean)."""

from __future__ import annotations

import json
import re

import pytest

from mlflowdsl.compiler.api import compile_text
from mlflowdsl.grammar.parser import parse_text

from lsp_support import REPO_ROOT

EXT = REPO_ROOT / "editors" / "vscode"
PACKAGE = json.loads((EXT / "package.json").read_text())
SNIPPETS = json.loads((EXT / "snippets" / "mlw.json").read_text())
PREP = 'task prep: data_preprocessing { source = "sklearn:iris" }'
# where each fragment may stand: {} is the expanded snippet
CONTEXT = {
    "task": "workflow w {\n" + PREP + "\n{}\n}\n",
    "params": "workflow w {\n{}\n}\n",
    "defaults": "workflow w {\n{}\n}\n",
    "resources": "workflow w {\n" + PREP + "\ntask t: model_training {\n{}\n}\n}\n",
    "cache": "workflow w {\n" + PREP + "\ntask t: model_training {\n{}\n}\n}\n",
    "retry": "workflow w {\n" + PREP + "\ntask t: model_training {\n{}\n}\n}\n",
    "tune": "workflow w {\n" + PREP + "\ntask train: model_training { }\n{}\n}\n",
    "template": "{}\nworkflow w { }\n",
    "use": "workflow w {\n" + PREP + "\n{}\n}\n",
}


def expand(body: list[str]) -> str:
    """A snippet's text with each placeholder's default (``${1:x}`` -> ``x``, ``$0`` -> '')."""
    text = "\n".join(body)
    text = re.sub(r"\$\{\d+:([^}]*)\}", r"\1", text)
    return re.sub(r"\$\d+", "", text)


def test_package_json_names_files_that_exist():
    contributes = PACKAGE["contributes"]
    paths = [PACKAGE["main"]] + [x["path"] for x in contributes["grammars"] + contributes["snippets"]] + [
        x["configuration"] for x in contributes["languages"]]
    missing = [p for p in paths if not (EXT / p).is_file()]
    assert not missing
    grammar = json.loads((EXT / contributes["grammars"][0]["path"]).read_text())
    assert grammar["scopeName"] == contributes["grammars"][0]["scopeName"] == "source.mlw"
    assert contributes["languages"][0]["extensions"] == [".mlw"]
    assert "vscode-languageclient" in PACKAGE["dependencies"] and "@vscode/vsce" in PACKAGE["devDependencies"]
    json.loads((EXT / "language-configuration.json").read_text())


def test_the_whole_workflow_snippet_compiles_clean():
    result = compile_text(expand(SNIPPETS["workflow"]["body"]), "snippet.mlw")
    assert result.diagnostics == [] and result.plan is not None


@pytest.mark.parametrize("name", sorted(CONTEXT))
def test_each_snippet_parses_where_it_belongs(name: str):
    text = CONTEXT[name].replace("{}", expand(SNIPPETS[name]["body"]))
    parse_text(text, f"{name}.mlw")


def test_every_snippet_is_tested():
    assert set(SNIPPETS) == set(CONTEXT) | {"workflow"}
