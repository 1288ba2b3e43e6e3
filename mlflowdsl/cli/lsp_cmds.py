"""``mlw lsp``: the language server for editors (docs/editors.md)."""

from __future__ import annotations

import click


@click.command()
@click.option("--stdio", "stdio", is_flag=True, help="Talk LSP over standard input/output (the default).")
@click.option("--tcp", "tcp", type=click.IntRange(1, 65535), default=None, metavar="PORT",
              help="Listen on 127.0.0.1:PORT instead of standard input/output.")
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on with --tcp.")
def lsp(stdio: bool, tcp: int | None, host: str) -> None:
    """Run the language server (an editor starts it; see docs/editors.md)."""
    if stdio and tcp is not None:
        raise click.UsageError("--stdio and --tcp cannot be combined")
    from mlflowdsl.lsp.server import main

    main(tcp=tcp, host=host)
