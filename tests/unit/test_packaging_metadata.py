"""pyproject's metadata: an SPDX license string (a TOML table makes setuptools print a
deprecation warning on every install, e.g. `make demo`), and what the docs promise installs
with the package (Parquet needs pyarrow at run time, not only in tests)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

PYPROJECT = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\[<>=!~; ]", r, maxsplit=1)[0].lower() for r in requirements}


def test_license_is_an_spdx_expression_with_a_backend_that_reads_it():
    assert PYPROJECT["project"]["license"] == "Apache-2.0"
    setuptools = next(r for r in PYPROJECT["build-system"]["requires"] if r.startswith("setuptools"))
    assert int(re.search(r">=(\d+)", setuptools).group(1)) >= 77  # PEP 639 license strings


def test_parquet_support_is_a_runtime_dependency():
    assert "pyarrow" in _names(PYPROJECT["project"]["dependencies"])
