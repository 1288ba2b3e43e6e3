"""``mlw lint``, ``mlw compile``, ``mlw fmt``, ``mlw schema``: thin commands over
``mlflowdsl.compiler.api``.

Exit codes: 0 fine, 1 errors in the input (diagnostics on stderr, or as JSON on stdout with
``--format json``), 2 usage errors (click's own, and malformed ``-p``).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

import click

from mlflowdsl.cli.common import param_options
from mlflowdsl.grammar.diagnostics import Diagnostic, render_json, render_text


def _report(diagnostics: list[Diagnostic], sources: dict[str, str], fmt: str) -> None:
    if fmt == "json":
        click.echo(render_json(diagnostics))
    elif diagnostics:
        click.echo(render_text(diagnostics, sources), err=True, nl=False)


def _summary(diagnostics: list[Diagnostic]) -> str:
    errors = sum(d.severity == "error" for d in diagnostics)
    warnings = len(diagnostics) - errors
    parts = []
    if errors:
        parts.append(f"{errors} error{'s' * (errors != 1)}")
    if warnings:
        parts.append(f"{warnings} warning{'s' * (warnings != 1)}")
    return ", ".join(parts)


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="How to print diagnostics.")
@click.option("--strict", is_flag=True, help="Treat warnings as errors.")
@param_options
def lint(file: str, fmt: str, strict: bool, params: dict[str, str], params_file: str | None) -> None:
    """Check FILE (.mlw, or a .json/.yaml workflow spec) and print its diagnostics."""
    from mlflowdsl.compiler.api import lint_file

    result = lint_file(file, params=params, params_file=params_file, strict=strict)
    _report(result.diagnostics, result.sources, fmt)
    if fmt == "text":
        summary = _summary(result.diagnostics)
        click.echo(f"{file}: {summary}" if summary else f"{file}: no problems found", err=True)
    sys.exit(0 if result.ok else 1)


@click.command("compile")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["json", "dot", "mermaid"]), default="json", show_default=True,
              help="Output: the IR as canonical JSON, or the task graph as Graphviz DOT or Mermaid.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Write the output to this file instead of standard output.")
@click.option("--strict", is_flag=True, help="Treat warnings as errors.")
@param_options
def compile_(file: str, fmt: str, output: str | None, strict: bool, params: dict[str, str],
             params_file: str | None) -> None:
    """Compile FILE to its execution plan (the IR). Diagnostics go to standard error."""
    from mlflowdsl.compiler.api import compile_file
    from mlflowdsl.compiler.render import render

    result = compile_file(file, params=params, params_file=params_file, strict=strict)
    _report(result.diagnostics, result.sources, "text")
    if not result.ok or result.plan is None:
        click.echo(f"{file}: {_summary(result.diagnostics)}; no plan written", err=True)
        sys.exit(1)
    text = render(result.plan, fmt)
    if output is None:
        click.echo(text, nl=False)
    else:
        _write_atomically(output, text)
        click.echo(f"wrote {output} ({len(result.plan.tasks)} tasks, fingerprint {result.plan.fingerprint[:12]})",
                   err=True)


def _write_atomically(path: str, text: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".mlw-", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        raise click.ClickException(f"cannot write {path}: {exc.strerror or exc}") from None


def _seed_as_mlw(text: str, file: str) -> str:
    """A JSON/YAML workflow spec as the equivalent ``.mlw`` file (same plan)."""
    from mlflowdsl.compiler.fmt import format_module
    from mlflowdsl.compiler.seed_spec import load_document, spec_to_module

    return format_module(spec_to_module(load_document(text, file), file, text))


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--check", is_flag=True, help="Exit 1 (and change nothing) when FILE is not formatted.")
@click.option("--write", "write", is_flag=True, help="Rewrite FILE in place.")
def fmt(file: str, check: bool, write: bool) -> None:
    """Print FILE in the canonical layout (or check it, or rewrite it).

    For a JSON/YAML workflow spec, print the equivalent .mlw file."""
    from mlflowdsl.compiler.api import is_seed_document
    from mlflowdsl.compiler.fmt import format_text
    from mlflowdsl.errors import CompileError

    if check and write:
        raise click.UsageError("--check and --write cannot be combined")
    try:
        with open(file, "rb") as fh:
            text = fh.read().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        from mlflowdsl.compiler.api import _unreadable

        _report([_unreadable(file, exc)], {}, "text")
        sys.exit(1)
    seed = is_seed_document(file, text)
    if seed and (check or write):
        raise click.UsageError("--check and --write are for .mlw files; `mlw fmt FILE.json` prints the .mlw equivalent")
    try:
        formatted = _seed_as_mlw(text, file) if seed else format_text(text, file)
    except CompileError as exc:
        _report(exc.diagnostics, {file: text}, "text")
        sys.exit(1)
    if check:
        if formatted != text:
            click.echo(f"would reformat {file}", err=True)
            sys.exit(1)
        click.echo(f"{file} is formatted", err=True)
    elif write:
        if formatted != text:
            _write_atomically(file, formatted)
            click.echo(f"reformatted {file}", err=True)
    else:
        click.echo(formatted, nl=False)


@click.command()
@click.option("--events", "events", is_flag=True,
              help="Print the JSON Schema of every event type instead (an object keyed by type).")
def schema(events: bool) -> None:
    """Print the JSON Schema of the compiled plan (the IR), or of the events with --events."""
    if events:
        from mlflowdsl.runtime.events.schema import event_schemas

        click.echo(json.dumps(event_schemas(), indent=2, sort_keys=True))
        return
    from mlflowdsl.ir import plan_json_schema

    click.echo(json.dumps(plan_json_schema(), indent=2, sort_keys=True))
