"""The structure the repository promises (docs/architecture.md): the import contracts in
``.importlinter`` hold and catch a break, ``ruff check`` is clean, imports left inside functions
say why, no source module grows past the size a reader can hold, and the dependencies whose
private APIs we use have upper bounds."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SOURCES = ("mlflowdsl", "stdlib_tasks")
MAX_LINES = 500


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(BIN / "lint-imports"), "--no-cache"], cwd=root, env=env, capture_output=True,
                          text=True, timeout=300)


def test_the_import_contracts_hold():
    out = lint_imports(ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Contracts: 5 kept, 0 broken." in out.stdout


@pytest.fixture(scope="module")
def copy_of_the_tree(tmp_path_factory):
    """The packages and the contracts in a scratch directory, to break on purpose."""
    root = tmp_path_factory.mktemp("tree")
    for name in SOURCES:
        shutil.copytree(ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / ".importlinter", root / ".importlinter")
    return root


@pytest.mark.parametrize("module, line, broken, shown", [
    # the runtime reaching up into the compiler
    ("mlflowdsl/runtime/records.py", "import mlflowdsl.compiler.api", "Layers",
     "mlflowdsl.runtime.records -> mlflowdsl.compiler.api"),
    # the framework importing a plug-in
    ("mlflowdsl/tasks/values.py", "import stdlib_tasks.metrics", "The framework never imports its plug-ins",
     "mlflowdsl.tasks.values -> stdlib_tasks.metrics"),
    # a plug-in importing runtime internals
    ("stdlib_tasks/model_deployment.py", "import mlflowdsl.runtime.registry.deployments",
     "Plug-ins use the task API only", "stdlib_tasks.model_deployment -> mlflowdsl.runtime.registry.deployments"),
    # the language server reaching into the runtime
    ("mlflowdsl/lsp/schema.py", "import mlflowdsl.runtime.planning", "The language server checks text",
     "mlflowdsl.lsp.schema -> mlflowdsl.runtime.planning"),
    # a cycle between two runtime modules, hidden in a function
    ("mlflowdsl/runtime/retry.py", "def _later():\n    import mlflowdsl.runtime.worker", "No import cycles",
     "mlflowdsl.runtime"),
])
def test_each_contract_fails_when_broken(copy_of_the_tree, module, line, broken, shown):
    path = copy_of_the_tree / module
    original = path.read_text()
    path.write_text(original + "\n\n" + line + "\n")
    try:
        out = lint_imports(copy_of_the_tree)
    finally:
        path.write_text(original)
    assert out.returncode != 0, out.stdout
    broken_section = out.stdout.split("Broken contracts", 1)[-1]
    assert broken in broken_section and shown in broken_section, out.stdout


def test_ruff_is_clean():
    out = subprocess.run([str(BIN / "ruff"), "check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr


def test_imports_left_inside_functions_say_why():
    unexplained = []
    for name in SOURCES:
        for path in sorted((ROOT / name).rglob("*.py")):
            for number, text in enumerate(path.read_text().splitlines(), 1):
                if "noqa: PLC0415" in text and not re.search(r"noqa: PLC0415 - \S{3,}", text):
                    unexplained.append(f"{path.relative_to(ROOT)}:{number}: {text.strip()}")
    assert not unexplained, "give the reason after `# noqa: PLC0415 - `:\n" + "\n".join(unexplained)


def test_no_source_module_is_too_long():
    long = {str(p.relative_to(ROOT)): n for name in SOURCES for p in (ROOT / name).rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines (split them by purpose): {long}"


def test_dependencies_whose_private_apis_we_use_are_bounded():
    requirements = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for name in ("dask", "lark", "optuna"):
        spec = next(r for r in requirements if re.match(rf"{name}\b", r))
        assert "<" in spec, f"{spec!r}: we use {name}'s private API, so it needs an upper bound"
