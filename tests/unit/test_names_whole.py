"""Name checks match the whole string: Python's ``$`` also matches before a final newline, so
``"model\\n"`` passed them (issue 14, point 10). Each check here refuses a trailing newline and
still accepts the plain name."""

from __future__ import annotations

import pytest

from mlflowdsl.runtime.cache.disk import DiskCache
from mlflowdsl.runtime.registry.models import check_name
from mlflowdsl.tasks.services import RegistryError
from stdlib_tasks.model_deployment import check_safe_name


@pytest.mark.parametrize("bad", ["fraud\n", "fraud\n\n", "\nfraud"])
def test_a_registry_name_with_a_newline_is_refused(bad):
    assert check_name("fraud") == "fraud"
    with pytest.raises(RegistryError):
        check_name(bad)


def test_a_deployment_name_with_a_trailing_newline_is_refused():
    assert check_safe_name("fraud", "name") == "fraud"
    with pytest.raises(ValueError):
        check_safe_name("fraud\n", "name")


def test_a_cache_key_with_a_trailing_newline_has_no_path(tmp_path):
    cache = DiskCache(tmp_path, secret=b"k" * 32)
    assert cache.path_for("abcdef").name.startswith("abcdef")
    with pytest.raises(ValueError):
        cache.path_for("abcdef\n")
