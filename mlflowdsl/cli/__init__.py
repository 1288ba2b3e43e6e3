"""The ``mlw`` command line: thin click commands over the library API.

Commands live in small modules and are imported lazily, so ``mlw lint`` does not pay for
importing Dask. Every ``MlwError`` becomes a clean one-line message (exit 1 for bad input,
2 for usage errors); no traceback reaches a user for bad input.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from mlflowdsl import __version__

# command name -> "module:attribute"; each module holds one or a few related commands.
COMMANDS: dict[str, str] = {
    "lint": "mlflowdsl.cli.compile_cmds:lint",
    "compile": "mlflowdsl.cli.compile_cmds:compile_",
    "fmt": "mlflowdsl.cli.compile_cmds:fmt",
    "schema": "mlflowdsl.cli.compile_cmds:schema",
    "run": "mlflowdsl.cli.run_cmds:run",
    "status": "mlflowdsl.cli.run_cmds:status",
    "cache": "mlflowdsl.cli.cache_cmds:cache",
    "orchestrator": "mlflowdsl.cli.cluster_cmds:orchestrator",
    "submit": "mlflowdsl.cli.cluster_cmds:submit",
    "cluster": "mlflowdsl.cli.cluster_cmds:cluster",
    "cancel": "mlflowdsl.cli.cluster_cmds:cancel",
    "models": "mlflowdsl.cli.models_cmds:models",
    "serve": "mlflowdsl.cli.models_cmds:serve",
    "deployments": "mlflowdsl.cli.models_cmds:deployments",
    "plan": "mlflowdsl.cli.observe_cmds:plan", "explain": "mlflowdsl.cli.observe_cmds:explain",
    "diff": "mlflowdsl.cli.observe_cmds:diff", "report": "mlflowdsl.cli.observe_cmds:report",
    "new": "mlflowdsl.cli.observe_cmds:new",
    "events": "mlflowdsl.cli.events_cmds:events",
    "lsp": "mlflowdsl.cli.lsp_cmds:lsp",
    "logs": "mlflowdsl.cli.ui_cmds:logs", "ui": "mlflowdsl.cli.ui_cmds:ui",
    "mlflow": "mlflowdsl.cli.mlflow_cmds:mlflow",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(COMMANDS))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        cmd = super().get_command(ctx, name)
        if cmd is not None or name not in COMMANDS:
            return cmd
        module_name, attr = COMMANDS[name].split(":")
        return getattr(importlib.import_module(module_name), attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mlw")
def cli() -> None:
    """mlw: compile, check and run machine-learning pipelines written in .mlw."""


# Commands that only read files and write their output (written atomically, then closed):
# nothing of theirs needs Python's shutdown, which frees every object one by one and on a
# large plan takes noticeable time after the work is done, so they leave with ``os._exit``.
# Only the console script does this; tests call ``cli`` in-process.
EXIT_WITHOUT_TEARDOWN = frozenset({"lint", "compile"})


def main(argv: list[str] | None = None) -> None:
    from mlflowdsl.errors import MlwError

    args = sys.argv[1:] if argv is None else argv
    try:
        cli.main(args=argv, prog_name="mlw", standalone_mode=True)
    except MlwError as exc:  # pragma: no cover - commands convert their own errors
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except SystemExit as done:
        if args and args[0] in EXIT_WITHOUT_TEARDOWN and isinstance(done.code, (int, type(None))):
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except (OSError, ValueError):  # a closed pipe (`mlw compile f | head`)
                    pass
            os._exit(done.code or 0)
        raise
