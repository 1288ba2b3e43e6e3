"""A real ``mlw lsp`` process per test module, driven by pytest-lsp's client, and helpers to
open documents and wait for their diagnostics."""

from __future__ import annotations

import pytest_lsp
from lsprotocol import types
from lsp_support import EXAMPLES, MLW, server_env
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

CONFIG = ClientServerConfig(server_command=[MLW, "lsp"], server_env=server_env())


@pytest_lsp.fixture(config=CONFIG, scope="module")
async def client(lsp_client: LanguageClient):
    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"), root_uri=EXAMPLES.as_uri()))
    yield
    await lsp_client.shutdown_session()
