"""Plumbing the command modules share: the error exit, the common options, settings and
compiling a workflow. Command modules import from here and from :mod:`.views`, never from
each other; this module imports no command module.

Imports of the library stay inside the functions, so ``mlw --help`` and ``mlw lint`` load
only what they use.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, NoReturn

import click

if TYPE_CHECKING:  # pragma: no cover
    from mlflowdsl.ir import Plan
    from mlflowdsl.settings import Settings


def fail(message: str, hint: str | None = None) -> NoReturn:
    """``error: MESSAGE`` (then ``hint: HINT``) on standard error, and exit 1."""
    click.echo(f"error: {message}", err=True)
    if hint:
        click.echo(f"hint: {hint}", err=True)
    sys.exit(1)


# --------------------------------------------------------------------------- options

def _parse_params(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"expected NAME=VALUE, got {item!r}", ctx=ctx, param=param)
        out[name.strip()] = value
    return out


def param_options(fn):
    """``-p NAME=VALUE`` (repeatable; the command receives ``params`` as a dict) and
    ``--params-file FILE``: the workflow parameters of a command that compiles FILE."""
    fn = click.option("--params-file", type=click.Path(dir_okay=False), default=None,
                      help="JSON or YAML file of parameter values (overridden by -p).")(fn)
    fn = click.option("-p", "--param", "params", multiple=True, callback=_parse_params, metavar="NAME=VALUE",
                      help="Set a workflow parameter (parsed by its declared type). Repeatable.")(fn)
    return fn


def redis_option(help_text: str):
    """``--redis URL`` (the command receives ``redis_url``), with the command's own help."""
    return click.option("--redis", "redis_url", metavar="URL", default=None, help=help_text)


# --------------------------------------------------------------------------- settings, compiling

def load_settings(**overrides: Any) -> "Settings":
    """The settings with these overrides on top (``None`` values are ignored, so click options
    pass straight in). Raises ``MlwError`` on a bad setting: the caller reports it."""
    from mlflowdsl.settings import load_settings as load

    return load(overrides)


def print_diagnostics(diagnostics, sources) -> None:
    from mlflowdsl.grammar.diagnostics import render_text

    click.echo(render_text(diagnostics, sources).rstrip(), err=True)


def compile_plan(file: str, params: dict[str, str] | None = None, params_file: str | None = None, *,
                 show_warnings: bool = True) -> "Plan":
    """The plan of FILE, or exit 1 with the compiler's diagnostics on standard error.

    ``show_warnings``: also print the diagnostics (warnings) of a file that compiles."""
    from mlflowdsl.compiler.api import compile_file
    from mlflowdsl.errors import CompileError

    try:
        result = compile_file(file, params=params or {}, params_file=params_file)
    except CompileError as exc:
        print_diagnostics(exc.diagnostics, {})
        sys.exit(1)
    failed = not result.ok or result.plan is None
    if failed or (show_warnings and result.diagnostics):
        print_diagnostics(result.diagnostics, result.sources)
    if failed:
        sys.exit(1)
    return result.plan
