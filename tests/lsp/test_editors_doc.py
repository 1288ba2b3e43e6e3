"""docs/editors.md's LSP session is what `mlw lsp` says: its editor messages are sent to a real
server over stdio (Content-Length framing) and each documented answer must be contained in the
server's (the doc may leave fields out, e.g. most of the `initialize` capabilities); the
documented code action is asked with the diagnostic the server published."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time

from lsp_support import MLW, REPO_ROOT, server_env

DOC = REPO_ROOT / "docs" / "editors.md"


def transcript() -> list[tuple[str, dict]]:
    text = DOC.read_text()
    block = re.search(r"<!-- transcript -->\n```text\n(.*?)```\n<!-- /transcript -->", text, re.DOTALL).group(1)
    return [(line[:3], json.loads(line[4:])) for line in block.splitlines() if line.strip()]


def contained(doc, actual) -> bool:
    """Whether every key and item the doc shows is in the server's message with that value."""
    if isinstance(doc, dict):
        return isinstance(actual, dict) and all(k in actual and contained(v, actual[k]) for k, v in doc.items())
    if isinstance(doc, list):
        return isinstance(actual, list) and len(doc) == len(actual) and all(map(contained, doc, actual))
    return doc == actual


class Server:
    def __init__(self) -> None:
        self.proc = subprocess.Popen([MLW, "lsp"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=server_env())

    def send(self, message: dict) -> None:
        body = json.dumps(message).encode()
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def receive(self) -> dict:
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            byte = self.proc.stdout.read(1)
            assert byte, "the server closed its output"
            head += byte
        length = next(int(h.split(b":")[1]) for h in head.split(b"\r\n") if h.lower().startswith(b"content-length"))
        return json.loads(self.proc.stdout.read(length))


def test_the_documented_session_is_what_the_server_says():
    steps = transcript()
    assert [d for d, _ in steps].count("<--") >= 5
    server = Server()
    try:
        published = None
        for direction, message in steps:
            if direction == "-->":
                if message.get("method") == "textDocument/codeAction":
                    assert message["params"]["context"]["diagnostics"] == published
                server.send(message)
                continue
            got = server.receive()
            assert contained(message, got), (message, got)
            if got.get("method") == "textDocument/publishDiagnostics":
                published = got["params"]["diagnostics"]
        server.proc.wait(timeout=30)
        assert server.proc.returncode == 0
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait()


def test_tcp_serves_the_same_protocol():
    """`mlw lsp --tcp PORT`: a client connecting to 127.0.0.1:PORT gets the same answers."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([MLW, "lsp", "--tcp", str(port)], env=server_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                conn = socket.create_connection(("127.0.0.1", port), timeout=30)
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode()
                assert time.monotonic() < deadline, "the server did not listen"
                time.sleep(0.1)
        with conn:
            _, initialize = transcript()[0]
            body = json.dumps(initialize).encode()
            conn.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)
            reader = conn.makefile("rb")
            head = b""
            while not head.endswith(b"\r\n\r\n"):
                head += reader.read(1)
            length = next(int(h.split(b":")[1]) for h in head.split(b"\r\n") if h.lower().startswith(b"content-length"))
            got = json.loads(reader.read(length))
        assert got["id"] == 1 and got["result"]["serverInfo"]["name"] == "mlw"
        assert got["result"]["capabilities"]["hoverProvider"] is True
    finally:
        proc.kill()
        proc.wait()
