"""Remote data sources and cheap fingerprints, against real servers: a SeaweedFS S3 server
(``s3_support``) and a local ``http.server``. A data_preprocessing source on ``s3://`` trains;
its fingerprint comes from the object's metadata and changes exactly when the object does;
``https://`` sources read and fingerprint the same way; and a local file's digest is
remembered under the home, so a second ``mlw plan`` does not re-hash it."""

from __future__ import annotations

import functools
import http.server
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mlflowdsl.runtime.datafp import MEMO_FILE, Fingerprinter, remote_fingerprint
from stdlib_tasks._common import read_table
from tests.integration import s3_support
from tests.integration.s3_support import BUCKET

REPO = Path(__file__).resolve().parents[2]
MLW = str(Path(sys.executable).parent / "mlw")
pytestmark = pytest.mark.integration
s3_server = s3_support.s3_server  # the fixture, used by name below
CSV = (REPO / "examples" / "data" / "transactions.csv").read_bytes()

WORKFLOW = """\
workflow remote {{
  defaults {{ cache {{ strategy = disk }} }}
  task prepare: data_preprocessing {{ source = "{source}"  target = "is_fraud"  encode = "onehot" }}
  task train: model_training {{ data = prepare.output  algorithm = "logistic_regression"  seed = 0 }}
{score}}}
"""
SCORE = """  task score: batch_inference {{ model = train.model  source = "{source}"  output = "{output}" }}
"""


def _mlw(tmp_path: Path, *args: str, extra_env: dict | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, MLW_HOME=str(tmp_path / "home"), **(extra_env or {}),
               PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))
    env.pop("MLW_DASK_SCHEDULER", None)
    return subprocess.run([MLW, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240)


def _plan(tmp_path: Path, extra_env: dict | None = None) -> dict[str, dict]:
    done = _mlw(tmp_path, "plan", "wf.mlw", "--format", "json", extra_env=extra_env)
    assert done.returncode == 0, done.stdout + done.stderr
    return {t["task_id"]: t for t in json.loads(done.stdout)["tasks"]}


def test_s3_source_trains_and_its_fingerprint_follows_the_object(s3_server, tmp_path):
    fs = s3_server.fs()
    url = f"s3://{BUCKET}/train/transactions.csv"
    fs.pipe(url, CSV)
    first = remote_fingerprint(url)
    assert first == remote_fingerprint(url)  # metadata only, stable while the object is
    scores = f"s3://{BUCKET}/out/scores.csv"
    (tmp_path / "wf.mlw").write_text(WORKFLOW.format(source=url, score=SCORE.format(source=url, output=scores)))
    done = _mlw(tmp_path, "run", "wf.mlw", extra_env=s3_server.env)
    assert done.returncode == 0, done.stdout + done.stderr
    written = fs.cat(scores).decode().splitlines()  # batch inference scored the S3 rows into S3
    assert written[0].startswith("prediction") and len(written) == CSV.count(b"\n")
    plan = _plan(tmp_path, s3_server.env)  # score writes a file: a side effect, never served from the cache
    assert (plan["prepare"]["status"], plan["train"]["status"]) == ("cached", "cached"), plan

    fs.pipe(url, CSV.replace(b"\n4.39,", b"\n4.40,", 1))  # one value changed, same size
    assert remote_fingerprint(url) != first
    plan = _plan(tmp_path, s3_server.env)
    assert plan["prepare"]["status"] == "will run"
    assert any("input data changed" in r for r in plan["prepare"]["reasons"]), plan["prepare"]


def test_missing_s3_object_fails_the_task_with_its_url(s3_server, tmp_path):
    url = f"s3://{BUCKET}/nope/absent.csv"
    assert remote_fingerprint(url) == f"missing:{url}"
    with pytest.raises(Exception, match="data file not found: s3://mlw-data/nope/absent.csv"):
        read_table(url, None)


@pytest.fixture
def http_dir(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_http_source_is_read_and_fingerprinted_from_its_headers(http_dir):
    root, base = http_dir
    (root / "t.csv").write_bytes(CSV)
    url = f"{base}/t.csv"
    frame = read_table(url, None)
    assert list(frame.columns)[-1] == "is_fraud" and len(frame) == CSV.count(b"\n") - 1
    first = remote_fingerprint(url)
    assert first == remote_fingerprint(url)
    os.utime(root / "t.csv", (time.time() + 5, time.time() + 5))  # Last-Modified moves on
    assert remote_fingerprint(url) != first


def _memo_rows(home: Path) -> dict[str, tuple[str, int]]:
    with sqlite3.connect(home / MEMO_FILE) as conn:
        return {p: (d, h) for p, d, h in conn.execute("SELECT path, digest, hits FROM memo")}


def _settled(path: Path) -> None:
    past = time.time() - 60
    os.utime(path, (past, past))


def test_second_plan_reuses_the_remembered_digest(tmp_path):
    data = tmp_path / "t.csv"
    data.write_bytes(CSV)
    _settled(data)
    (tmp_path / "wf.mlw").write_text(WORKFLOW.format(source="t.csv", score=""))
    (tmp_path / "home").mkdir()
    first = _plan(tmp_path)
    rows = _memo_rows(tmp_path / "home")
    assert rows == {str(data): (rows[str(data)][0], 0)}  # hashed once, remembered
    assert _plan(tmp_path)["prepare"]["key"] == first["prepare"]["key"]
    assert _memo_rows(tmp_path / "home")[str(data)][1] == 1  # the second plan was a memo hit

    data.write_bytes(CSV.replace(b"\n4.39,", b"\n4.40,", 1))  # same size, new mtime: re-hashed
    _settled(data)
    assert _plan(tmp_path)["prepare"]["key"] != first["prepare"]["key"]
    assert _memo_rows(tmp_path / "home")[str(data)][1] == 0


def test_plan_without_a_home_hashes_and_creates_nothing(tmp_path):
    data = tmp_path / "t.csv"
    data.write_bytes(CSV)
    (tmp_path / "wf.mlw").write_text(WORKFLOW.format(source="t.csv", score=""))
    assert _plan(tmp_path)["prepare"]["status"] == "will run"
    assert not (tmp_path / "home").exists()


def test_fresh_files_are_hashed_but_not_remembered(tmp_path):
    data = tmp_path / "t.csv"
    data.write_bytes(CSV)  # modified just now: a same-tick rewrite could keep size and mtime
    fp = Fingerprinter(tmp_path)
    digest = fp(str(data))
    assert fp(str(data)) == digest and fp.hashed == 2
    _settled(data)
    fp(str(data))
    assert fp(str(data)) == digest and fp.hashed == 3 and fp._memo.hits == 1
    assert fp(f"file://{data}") == digest
    fp.close()
