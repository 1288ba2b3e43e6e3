// The VS Code client of `mlw lsp`: starts the server over stdio for .mlw files (and JSON/YAML
// workflow specs, which the server recognises by their `workflow_id`).
"use strict";

const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const config = vscode.workspace.getConfiguration("mlw");
  const server = {
    command: config.get("server.command", "mlw"),
    args: config.get("server.args", ["lsp"]),
  };
  const documentSelector = [
    { scheme: "file", language: "mlw" },
    { scheme: "untitled", language: "mlw" },
  ];
  if (config.get("specFiles", true)) {
    documentSelector.push({ scheme: "file", language: "json" }, { scheme: "file", language: "yaml" });
  }
  client = new LanguageClient("mlw", "mlw language server", { run: server, debug: server }, {
    documentSelector,
    initializationOptions: { planLens: config.get("planLens", false) },
    synchronize: { fileEvents: vscode.workspace.createFileSystemWatcher("**/*.mlw") },
  });
  context.subscriptions.push({ dispose: () => client && client.stop() });
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
