"""``mlw lsp``: the language server (pygls) for ``.mlw`` files and JSON/YAML workflow specs.

Every open document is checked as ``mlw lint`` checks a saved file (``analysis.py``); the
diagnostics are published per file (an import's own errors go to the imported file). Checks
run one at a time in a worker thread; edits that arrive meanwhile are coalesced into one
more check of the newest text, so a slow check (a huge file) never queues a backlog.
"""

from __future__ import annotations

import asyncio
import logging
import os

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from mlflowdsl import __version__
from mlflowdsl.compiler.api import SEED_SUFFIXES
from mlflowdsl.compiler.perf import no_gc_pauses
from mlflowdsl.lsp import actions, assist, lens, navigation
from mlflowdsl.lsp.analysis import Analysis, Lines, analyze, disk_text, path_to_uri, uri_to_path

log = logging.getLogger(__name__)


class MlwServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("mlw", __version__)
        self.analyses: dict[str, Analysis] = {}
        # target uri -> source uri -> diagnostics (a file's list is the union over the checks
        # that found something in it: its own, and those of the files importing it)
        self.published: dict[str, dict[str, list[types.Diagnostic]]] = {}
        self._lock = asyncio.Lock()
        self._dirty: set[str] = set()
        self._running: set[str] = set()
        self.plan_lens = False  # initialization option "planLens"
        self.plans: dict[str, list[dict]] = {}  # uri -> the tasks of `mlw plan` at the last save
        self.background: set[asyncio.Future] = set()

    # ------------------------------------------------------------------ checking

    def _read(self, path: str) -> str:
        """An imported file's text: the editor's buffer when it is open, else the disk."""
        uri = path_to_uri(path)
        doc = self.workspace.text_documents.get(uri)
        return doc.source if doc is not None else disk_text(path)

    def handles(self, uri: str) -> bool:
        path = uri_to_path(uri).lower()
        if path.endswith(".mlw"):
            return True
        if path.endswith(SEED_SUFFIXES):
            doc = self.workspace.text_documents.get(uri)
            return doc is not None and "workflow_id" in doc.source
        return False

    async def check(self, uri: str) -> None:
        """Check the document now, or (when a check of it is running) once more afterwards."""
        if uri in self._running:
            self._dirty.add(uri)
            return
        self._running.add(uri)
        try:
            while True:
                self._dirty.discard(uri)
                doc = self.workspace.text_documents.get(uri)
                if doc is None:
                    return
                text, version = doc.source, doc.version
                units = doc.position_codec.client_num_units
                async with self._lock:
                    try:
                        a = await asyncio.to_thread(analyze, uri, text, version, self._read, self.analyses.get(uri),
                                                    units)
                    except Exception as exc:  # noqa: BLE001 - a failed check must not stop the server
                        log.exception("checking %s failed", uri)
                        self.window_show_message(types.ShowMessageParams(
                            type=types.MessageType.Error, message=f"mlw: checking {uri_to_path(uri)} failed: {exc}"))
                        return
                if uri not in self._dirty:
                    self.analyses[uri] = a
                    self.publish(a)
                    return
        finally:
            self._running.discard(uri)

    def publish(self, a: Analysis) -> None:
        targets = {path_to_uri(p): ds for p, ds in a.published.items()}
        for target, per_source in self.published.items():  # clear what this check said before
            if a.uri in per_source and target not in targets:
                targets[target] = []
        for target, ds in targets.items():
            per_source = self.published.setdefault(target, {})
            per_source[a.uri] = ds
            merged = ds if len(per_source) == 1 else [d for per in per_source.values() for d in per]
            version = a.version if target == a.uri else None
            with no_gc_pauses():  # serializing thousands of diagnostics makes no cycles
                self.text_document_publish_diagnostics(
                    types.PublishDiagnosticsParams(uri=target, diagnostics=merged, version=version))

    def forget(self, uri: str) -> None:
        self.analyses.pop(uri, None)
        self.plans.pop(uri, None)
        for target, per_source in list(self.published.items()):
            if per_source.pop(uri, None) is not None or target == uri:
                merged = [d for per in per_source.values() for d in per]
                self.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=target, diagnostics=merged))

    async def recheck_importers(self, changed: str) -> None:
        """Check again the open files whose last check read ``changed`` (an import)."""
        path = os.path.abspath(uri_to_path(changed))
        for uri, a in list(self.analyses.items()):
            if uri != changed and path in {os.path.abspath(p) for p in a.result.imported}:
                await self.check(uri)


    async def replan(self, uri: str) -> None:
        """Run `mlw plan` on the saved file and ask the client to fetch the code lenses again."""
        statuses = await lens.plan_statuses(uri_to_path(uri))
        if statuses is None:
            self.plans.pop(uri, None)
        else:
            self.plans[uri] = statuses
        refresh = self.client_capabilities.workspace
        if refresh and refresh.code_lens and refresh.code_lens.refresh_support:
            self.workspace_code_lens_refresh(None)


server = MlwServer()


@server.feature(types.INITIALIZE)
def initialize(ls: MlwServer, params: types.InitializeParams) -> None:
    options = params.initialization_options
    ls.plan_lens = bool(isinstance(options, dict) and options.get("planLens"))


def _analysis(ls: MlwServer, uri: str) -> Analysis | None:
    return ls.analyses.get(uri)


def _current(ls: MlwServer, uri: str) -> Analysis | None:
    """The last check of ``uri`` seen with the editor's newest text (marked stale when the
    text changed since: the symbols are the last check's)."""
    a = ls.analyses.get(uri)
    doc = ls.workspace.text_documents.get(uri)
    if a is None or doc is None or doc.source == a.text:
        return a
    return a.with_text(doc.source, doc.version, Lines(doc.source, doc.position_codec.client_num_units))


@server.feature(types.TEXT_DOCUMENT_DID_OPEN)
async def did_open(ls: MlwServer, params: types.DidOpenTextDocumentParams) -> None:
    if ls.handles(params.text_document.uri):
        await ls.check(params.text_document.uri)


@server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
async def did_change(ls: MlwServer, params: types.DidChangeTextDocumentParams) -> None:
    uri = params.text_document.uri
    if ls.handles(uri):
        await ls.check(uri)
        await ls.recheck_importers(uri)


@server.feature(types.TEXT_DOCUMENT_DID_SAVE)
async def did_save(ls: MlwServer, params: types.DidSaveTextDocumentParams) -> None:
    uri = params.text_document.uri
    if ls.handles(uri):
        await ls.recheck_importers(uri)
        if ls.plan_lens and uri_to_path(uri).lower().endswith(".mlw"):
            task = asyncio.ensure_future(ls.replan(uri))  # planning takes a process start: not in line
            ls.background.add(task)
            task.add_done_callback(ls.background.discard)


@server.feature(types.TEXT_DOCUMENT_CODE_LENS)
def code_lens(ls: MlwServer, params: types.CodeLensParams) -> list[types.CodeLens] | None:
    a = _analysis(ls, params.text_document.uri)
    statuses = ls.plans.get(params.text_document.uri)
    return lens.code_lenses(a, statuses) if a is not None and statuses else []


@server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: MlwServer, params: types.DidCloseTextDocumentParams) -> None:
    ls.forget(params.text_document.uri)


@server.feature(types.TEXT_DOCUMENT_HOVER)
def hover(ls: MlwServer, params: types.HoverParams) -> types.Hover | None:
    a = _analysis(ls, params.text_document.uri)
    return assist.hover(a, params.position) if a else None


@server.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(trigger_characters=[".", ":", '"', "="]))
def completion(ls: MlwServer, params: types.CompletionParams) -> types.CompletionList | None:
    a = _current(ls, params.text_document.uri)
    if a is None:
        return None
    return types.CompletionList(is_incomplete=False, items=assist.completion(a, params.position))


@server.feature(types.TEXT_DOCUMENT_DEFINITION)
def definition(ls: MlwServer, params: types.DefinitionParams) -> list[types.Location] | None:
    a = _analysis(ls, params.text_document.uri)
    return navigation.definition(a, params.position) if a else None


@server.feature(types.TEXT_DOCUMENT_REFERENCES)
def references(ls: MlwServer, params: types.ReferenceParams) -> list[types.Location] | None:
    a = _analysis(ls, params.text_document.uri)
    return navigation.references(a, params.position, params.context.include_declaration) if a else None


@server.feature(types.TEXT_DOCUMENT_PREPARE_RENAME)
def prepare_rename(ls: MlwServer, params: types.PrepareRenameParams) -> types.Range | None:
    a = _analysis(ls, params.text_document.uri)
    return navigation.prepare_rename(a, params.position) if a else None


@server.feature(types.TEXT_DOCUMENT_RENAME)
def rename(ls: MlwServer, params: types.RenameParams) -> types.WorkspaceEdit | None:
    a = _analysis(ls, params.text_document.uri)
    return navigation.rename(a, params.position, params.new_name) if a else None


@server.feature(types.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
def document_symbol(ls: MlwServer, params: types.DocumentSymbolParams) -> list[types.DocumentSymbol] | None:
    a = _analysis(ls, params.text_document.uri)
    return navigation.document_symbols(a) if a else None


@server.feature(types.TEXT_DOCUMENT_FORMATTING)
def formatting(ls: MlwServer, params: types.DocumentFormattingParams) -> list[types.TextEdit] | None:
    a = _current(ls, params.text_document.uri)
    return actions.formatting(a) if a else None


@server.feature(types.TEXT_DOCUMENT_CODE_ACTION,
                types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.QuickFix]))
def code_action(ls: MlwServer, params: types.CodeActionParams) -> list[types.CodeAction] | None:
    a = _analysis(ls, params.text_document.uri)
    return actions.code_actions(a, params) if a else None


def main(tcp: int | None = None, host: str = "127.0.0.1") -> None:
    if tcp is not None:
        server.start_tcp(host, tcp)
    else:
        server.start_io()
