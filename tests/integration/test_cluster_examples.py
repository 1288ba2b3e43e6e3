"""The cluster example compiles clean and its executions land in the shards its README says."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlflowdsl.compiler.api import compile_file
from mlflowdsl.runtime.cluster_mode.submission import execution_domain

CLUSTER = Path(__file__).resolve().parents[2] / "examples" / "cluster"


@pytest.mark.parametrize("name, shard", [("train_and_score.mlw", "training"), ("score_only.mlw", "inference")])
def test_cluster_examples_compile_clean_into_their_shards(name, shard):
    result = compile_file(CLUSTER / name, strict=True)
    assert result.diagnostics == []
    assert execution_domain(result.plan) == shard


def test_train_and_score_spans_two_domains():
    plan = compile_file(CLUSTER / "train_and_score.mlw").plan
    assert {t.id: t.domain for t in plan.tasks}["score"] == "inference"
    assert {t.domain for t in plan.tasks} == {"training", "inference"}
