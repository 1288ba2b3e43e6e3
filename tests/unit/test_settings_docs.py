"""docs/operations.md stays true to mlflowdsl/settings.py: every setting is documented with its
environment variable."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from mlflowdsl.settings import ENV, Settings

DOC = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
DOCUMENTED_IN_GROUPS = {"kafka_ssl_certfile", "kafka_ssl_keyfile", "kafka_sasl_password"}  # "cafile / certfile / keyfile"


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(Settings) if f.name != "extra"])
def test_every_setting_is_documented(name):
    if name in DOCUMENTED_IN_GROUPS:
        assert ENV[name] in DOC or ENV[name].rsplit("_", 1)[0] in DOC
        return
    assert f"`{name}`" in DOC, f"docs/operations.md does not document the setting `{name}`"
    if name in ENV:
        assert ENV[name] in DOC, f"docs/operations.md does not name {ENV[name]}"
