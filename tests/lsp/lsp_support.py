"""Helpers of the language-server tests: open or change a document and wait for the
server's next diagnostics of it."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from lsprotocol import types
from pytest_lsp import LanguageClient

_MISSING = object()

REPO_ROOT = Path(__file__).resolve().parents[2]
MLW = str(Path(sys.executable).parent / "mlw")
EXAMPLES = REPO_ROOT / "examples"


def server_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


async def diagnostics_after(client: LanguageClient, uri: str, action, timeout: float = 30.0) -> list[types.Diagnostic]:
    """Run ``action`` (an open or a change) and wait for the next publishDiagnostics of ``uri``
    (pytest-lsp stores each notification's list as a new object)."""
    before = client.diagnostics.get(uri, _MISSING)
    action()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while client.diagnostics.get(uri, _MISSING) is before:
        if loop.time() > deadline:
            raise AssertionError(f"no diagnostics for {uri} within {timeout} s")
        await asyncio.sleep(0.005)
    return list(client.diagnostics[uri])


def open_doc(client: LanguageClient, path: Path, text: str | None = None, version: int = 1) -> str:
    uri = path.resolve().as_uri()
    client.text_document_did_open(types.DidOpenTextDocumentParams(text_document=types.TextDocumentItem(
        uri=uri, language_id="mlw", version=version, text=path.read_text() if text is None else text)))
    return uri


def change_doc(client: LanguageClient, uri: str, text: str, version: int) -> None:
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
        content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)]))


def close_doc(client: LanguageClient, uri: str) -> None:
    client.text_document_did_close(types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri)))
