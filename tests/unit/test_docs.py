"""Every ```mlw block in the user docs is a complete file that compiles as the docs claim.

A fence's info string says what the block shows:

* ```` ```mlw ```` — a complete file that compiles with no diagnostics at all (not even a
  warning), so readers can copy it as is;
* ```` ```mlw error=MLW203 ```` — a file that fails with exactly these error codes, no other
  (comma-separated for several);
* ```` ```mlw warning=MLW401 ```` — a file that compiles, with exactly these warnings;
* ```` ```mlw file=examples/templated.mlw ```` — the block is that file of the repository, word for
  word, and is compiled as that file (so its imports and relative paths resolve);
* ```` ```mlw p=lr=0.05 ```` — compiled with that parameter override (``-p lr=0.05``; repeatable).

```json`` and ```yaml`` blocks holding a workflow document (a ``workflow_id`` key) are the
seed's form and must compile without diagnostics too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlflowdsl.compiler.api import compile_file, compile_text

REPO = Path(__file__).resolve().parents[2]
DOC_FILES = ("docs/language.md", "README.md", "docs/cli.md")
FENCE = re.compile(r"^```(?P<lang>mlw|json|yaml)(?P<info>[^\n`]*)\n(?P<body>.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Block:
    doc: str
    line: int
    text: str
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    file: str | None = None
    params: tuple[tuple[str, str], ...] = ()
    lang: str = "mlw"

    @property
    def name(self) -> str:
        return f"{self.doc}:{self.line}"


def _parse_info(info: str) -> dict[str, str]:
    """``error=MLW203 p=lr=0.05 p=env=prod`` -> options; ``p`` values are joined by spaces."""
    options: dict[str, str] = {}
    for word in info.split():
        key, sep, value = word.partition("=")
        if not sep or not value:
            raise ValueError(f"fence option {word!r} is not of the form key=value")
        if key not in ("error", "warning", "file", "p"):
            raise ValueError(f"unknown fence option {key!r}")
        options[key] = f"{options[key]} {value}" if key in options else value
    return options


def blocks_of(doc: str) -> list[Block]:
    text = (REPO / doc).read_text(encoding="utf-8")
    found = []
    for m in FENCE.finditer(text):
        if m.group("lang") != "mlw" and "workflow_id" not in m.group("body"):
            continue  # a JSON/YAML block that is not a workflow document (e.g. a plan)
        options = _parse_info(m.group("info"))

        def codes(key: str) -> tuple[str, ...]:
            return tuple(sorted(c for c in options.get(key, "").split(",") if c))

        found.append(
            Block(
                doc=doc,
                line=text.count("\n", 0, m.start()) + 1,
                text=m.group("body"),
                errors=codes("error"),
                warnings=codes("warning"),
                file=options.get("file"),
                params=tuple(tuple(p.split("=", 1)) for p in options.get("p", "").split()),
                lang=m.group("lang"),
            )
        )
    return found


ALL_BLOCKS = [b for doc in DOC_FILES if (REPO / doc).exists() for b in blocks_of(doc)]


def _compile(block: Block):
    params = dict(block.params) or None
    if block.file is not None:
        # Custom-task modules next to the workflow are found by the compiler itself.
        return compile_file(REPO / block.file, params=params)
    # Compiled as if the block were a file in docs/, so a relative path means the same thing
    # as it would for a reader who saves the block next to the docs.
    return compile_text(block.text, file=str(REPO / "docs" / f"block_{block.line}.{block.lang}"), params=params)


def test_the_language_reference_has_many_examples():
    in_reference = [b for b in ALL_BLOCKS if b.doc == "docs/language.md"]
    assert len(in_reference) >= 25
    assert {"json", "yaml"} <= {b.lang for b in in_reference}


def test_fence_parser_reads_codes_and_files():
    assert _parse_info(" error=MLW203,MLW204 ") == {"error": "MLW203,MLW204"}
    assert _parse_info("file=examples/templated.mlw") == {"file": "examples/templated.mlw"}
    assert _parse_info("p=lr=0.05 p=env=prod") == {"p": "lr=0.05 env=prod"}
    with pytest.raises(ValueError):
        _parse_info("errors=MLW203")


@pytest.mark.parametrize("block", ALL_BLOCKS, ids=lambda b: b.name)
def test_block_compiles_as_documented(block: Block):
    if block.file is not None:
        on_disk = (REPO / block.file).read_text(encoding="utf-8")
        assert block.text == on_disk, f"{block.name} differs from {block.file}: update the docs"
    result = _compile(block)
    # The codes reported, each once (one mistake may be reported at several places).
    errors = sorted({d.code for d in result.diagnostics if d.severity == "error"})
    warnings = sorted({d.code for d in result.diagnostics if d.severity == "warning"})
    shown = "\n".join(f"{d.code} {d.span.line if d.span else '-'}: {d.message}" for d in result.diagnostics)
    assert errors == sorted(block.errors), f"{block.name}: unexpected errors\n{shown}"
    if not block.errors:
        assert result.plan is not None
        assert warnings == sorted(block.warnings), f"{block.name}: unexpected warnings\n{shown}"


def test_every_diagnostic_code_is_documented():
    from mlflowdsl.grammar.diagnostics import CODES

    text = (REPO / "docs/language.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\|\s*`?(MLW\d{3})`?\s*\|\s*(error|warning)\s*\|", text, re.MULTILINE))
    assert rows == {code: severity for code, (severity, _title) in CODES.items()}


def test_readme_starts_with_the_two_commands():
    lines = [line for line in (REPO / "README.md").read_text(encoding="utf-8").splitlines() if line.strip()]
    commands = [re.match(r"^`?(make \w+)`?\s+\S", line) for line in lines[:2]]
    assert [m.group(1) if m else None for m in commands] == ["make demo", "make test"]


def _type_sections() -> dict[str, str]:
    text = (REPO / "docs/language.md").read_text(encoding="utf-8")
    part = text[text.index("## 16. The standard task types") : text.index("## 17.")]
    pieces = re.split(r"^### `(\w+)`\s*$", part, flags=re.MULTILINE)
    return dict(zip(pieces[1::2], pieces[2::2]))


def test_every_standard_task_type_attribute_is_documented():
    from mlflowdsl.tasks import registry

    sections = _type_sections()
    standard = {name: cls for name, cls in registry().items() if cls.__module__.startswith("stdlib_tasks.") and name != "custom"}
    assert len(standard) == 8 and set(standard) <= set(sections)
    for name, cls in standard.items():
        table = sections[name].split("| attribute |", 1)[1].split("\n\n", 1)[0]
        documented = set(re.findall(r"^\| `(\w+)` \|", table, re.MULTILINE))
        assert documented == set(cls.Params.model_fields) | set(cls.inputs), name
        for output in cls.outputs:
            assert f"`{output}` (" in sections[name], (name, output)
        for alias, attribute in cls.aliases.items():
            assert f"`{alias}` → `{attribute}`" in sections[name], (name, alias)


def test_the_documented_plan_is_what_the_compiler_produces():
    """§19 shows the compiled plan of §1's workflow; it must be the real one."""
    import json

    text = (REPO / "docs/language.md").read_text(encoding="utf-8")
    first = re.search(r"## 1\. A first workflow\n\n```mlw\n(.*?)```", text, re.DOTALL).group(1)
    section = text[text.index("## 19. The compiled plan") : text.index("## 20.")]
    shown = re.search(r"```json\n(.*?)```", section, re.DOTALL).group(1)
    plan = compile_text(first, file="hello.mlw").raise_for_errors()
    assert json.loads(shown) == json.loads(plan.canonical_json())


def test_the_custom_function_shown_is_the_example_module():
    text = (REPO / "docs/language.md").read_text(encoding="utf-8")
    section = text[text.index("## 15. Custom tasks") : text.index("## 16.")]
    shown = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    source = (REPO / "examples/custom/custom_steps.py").read_text(encoding="utf-8")
    function = shown[shown.index("def ") :]
    assert function in source and "from mlflowdsl.tasks import Dataset" in source


def test_the_task_type_shown_registers_and_promotes_through_ctx_services(tmp_path):
    """§15's plug-in example runs as shown, against a real registry."""
    from test_registry_core import fitted

    from mlflowdsl.runtime.registry.services import RegistryServices
    from mlflowdsl.settings import Settings
    from mlflowdsl.tasks import TaskContext, TaskFailed

    text = (REPO / "docs/language.md").read_text(encoding="utf-8")
    section = text[text.index("### Task types in a package") : text.index("## 16.")]
    namespace: dict = {}
    exec(re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1), namespace)
    task = namespace["PromoteIfBetter"]()
    ctx = TaskContext(task_id="promote", execution_id="e1", services=RegistryServices(Settings(home=str(tmp_path))))
    params = task.Params(name="fraud")
    first = task.run(params, {"model": fitted(0.9)}, ctx)
    assert first.outputs["output"] == {"model": "fraud/1", "alias": "champion"}
    with pytest.raises(TaskFailed, match="refused"):
        task.run(params, {"model": fitted(0.8)}, ctx)


def test_the_diagnostics_shown_are_what_mlw_lint_prints(tmp_path, monkeypatch):
    """§17 shows a file and `mlw lint`'s output for it, as text and as JSON."""
    import json

    from click.testing import CliRunner

    from mlflowdsl.cli import cli

    text = (REPO / "docs/language.md").read_text(encoding="utf-8")
    section = text[text.index("## 17. Diagnostics") : text.index("All codes:")]
    source = re.search(r"```mlw error=MLW203\n(.*?)```", section, re.DOTALL).group(1)
    shown_text = re.search(r"```\n\$ mlw lint fraud\.mlw\n(.*?)```", section, re.DOTALL).group(1)
    shown_json = re.search(r"```json\n(.*?)```", section, re.DOTALL).group(1)
    (tmp_path / "fraud.mlw").write_text(source, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    as_text = CliRunner().invoke(cli, ["lint", "fraud.mlw"])
    assert as_text.exit_code == 1
    assert as_text.output.strip() == shown_text.strip()
    as_json = CliRunner().invoke(cli, ["lint", "--format", "json", "fraud.mlw"])
    assert json.loads(as_json.stdout) == json.loads(shown_json)


def test_the_readme_error_is_what_mlw_lint_prints_for_the_tour(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from mlflowdsl.cli import cli

    text = (REPO / "README.md").read_text(encoding="utf-8")
    tour = re.search(r"```mlw\n(workflow tour .*?)```", text, re.DOTALL).group(1)
    shown = re.search(r"```\n(error\[MLW203\].*?)```", text, re.DOTALL).group(1)
    anchor = "    algorithm = params.algorithm\n"
    assert anchor in tour
    (tmp_path / "tour.mlw").write_text(tour.replace(anchor, anchor + "    n_estimator = 200\n"), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["lint", "tour.mlw"])
    assert result.exit_code == 1
    assert result.output.strip() == shown.strip()
