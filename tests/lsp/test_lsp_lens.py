"""The optional plan code lens (initialization option ``planLens``): after a save, each task
(and each template use, for the tasks it expands to) shows what `mlw plan` says of it."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

import pytest
import pytest_lsp
from lsp_support import EXAMPLES, MLW, close_doc, diagnostics_after, open_doc, server_env
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

ASYNC = pytest.mark.asyncio(loop_scope="module")
HOME = tempfile.mkdtemp(prefix="mlw-lsp-lens-home-")  # an empty cache and state: nothing is cached


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[MLW, "lsp"], server_env={**server_env(), "MLW_HOME": HOME}),
                    scope="module")
async def lens_client(lsp_client: LanguageClient):
    refreshed = lsp_client.lens_refreshes = []

    @lsp_client.feature(types.WORKSPACE_CODE_LENS_REFRESH)
    def refresh(params: None) -> None:
        refreshed.append(True)

    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"), initialization_options={"planLens": True}))
    yield
    await lsp_client.shutdown_session()
    shutil.rmtree(HOME, ignore_errors=True)


async def lenses(client: LanguageClient, uri: str) -> list[types.CodeLens]:
    return await client.text_document_code_lens_async(types.CodeLensParams(
        text_document=types.TextDocumentIdentifier(uri=uri)))


@ASYNC
async def test_a_saved_file_gets_a_lens_per_task(lens_client: LanguageClient, tmp_path: Path):
    shutil.copytree(EXAMPLES / "lib", tmp_path / "lib")
    path = tmp_path / "templated.mlw"
    shutil.copy(EXAMPLES / "templated.mlw", path)
    uri = path.resolve().as_uri()
    await diagnostics_after(lens_client, uri, lambda: open_doc(lens_client, path))
    assert not await lenses(lens_client, uri)  # nothing planned before a save
    lens_client.text_document_did_save(types.DidSaveTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri)))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 120
    found = []
    while not lens_client.lens_refreshes:  # the server asks the editor to fetch the lenses again
        assert loop.time() < deadline, "no code lens refresh after the save"
        await asyncio.sleep(0.1)
    found = await lenses(lens_client, uri)
    text = path.read_text().split("\n")
    shown = {text[lens.range.start.line][lens.range.start.character:lens.range.end.character]: lens.command.title
             for lens in found}
    assert shown == {"prep": "will run (no entry)", "rf": "2 will run", "gb": "2 will run",
                     "compare": "will run (no entry)", "deploy": "will run (caching is off (strategy none))"}
    close_doc(lens_client, uri)
