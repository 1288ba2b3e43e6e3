"""Data fingerprints without servers: URLs are told from paths, a URL whose filesystem is not
installed fails the plan naming it and what to install, and a task reading it says the same."""

from __future__ import annotations

import pytest

from mlflowdsl.errors import MlwError
from mlflowdsl.files import is_url
from mlflowdsl.runtime.datafp import Fingerprinter, remote_fingerprint
from mlflowdsl.tasks import TaskFailed
from stdlib_tasks._common import read_table


@pytest.mark.parametrize("value, expected", [
    ("s3://bucket/k.csv", True), ("gs://b/k.parquet", True), ("https://h/x.csv?sig=1", True),
    ("file:///tmp/x.csv", True), ("data/x.csv", False), ("/abs/x.csv", False), ("./s3:/x", False),
    ("sklearn:iris", False), ("models:/m@prod", False), ("", False), (None, False),
])
def test_urls_are_told_from_paths(value, expected):
    assert is_url(value) is expected


def test_a_url_without_an_installed_filesystem_fails_the_plan_with_a_hint():
    with pytest.raises(MlwError, match="data source nosuch://b/x.csv: no filesystem") as info:
        remote_fingerprint("nosuch://b/x.csv")
    assert "pip install" in info.value.hint


def test_a_task_reading_such_a_url_says_what_to_install():
    with pytest.raises(TaskFailed, match="cannot read nosuch://b/x.csv: no filesystem") as info:
        read_table("nosuch://b/x.csv", None)
    assert "pip install" in info.value.hint


def test_missing_local_file_and_file_url(tmp_path):
    fp = Fingerprinter(None)  # no home: no memo
    assert fp(str(tmp_path / "absent.csv")) == f"missing:{tmp_path / 'absent.csv'}"
    (tmp_path / "x.csv").write_text("a\n1\n")
    assert fp(f"file://{tmp_path / 'x.csv'}") == fp(str(tmp_path / "x.csv"))
    assert fp.hashed == 2
