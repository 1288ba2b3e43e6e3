"""Every example compiles and lints clean with ``--strict``, and uses only shipped data.

(Running the examples end to end is the runtime's integration test.)
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from mlflowdsl.cli import cli
from mlflowdsl.compiler.api import compile_file, lint_file

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
# Workflow files (a template library under lib/ is compiled through the files importing it).
WORKFLOWS = sorted(p for p in EXAMPLES.iterdir() if p.suffix in (".mlw", ".json", ".yaml", ".yml"))
LIBRARIES = sorted((EXAMPLES / "lib").glob("*.mlw"))
NAMES = {p.name for p in WORKFLOWS}


def _shown(result) -> str:
    return "\n".join(
        f"{d.severity}[{d.code}] {d.span.file if d.span else d.subject}:{d.span.line if d.span else '-'}: {d.message}"
        for d in result.diagnostics
    )


def test_the_required_examples_exist():
    required = {
        "training_pipeline.mlw",
        "training_pipeline.json",
        "fraud_detection.mlw",
        "model_comparison.mlw",
        "batch_scoring.mlw",
        "templated.mlw",
    }
    assert required <= NAMES
    assert (EXAMPLES / "lib" / "train_and_check.mlw") in LIBRARIES


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_example_compiles_without_any_diagnostic(path: Path):
    result = compile_file(path, strict=True)
    assert result.diagnostics == [], _shown(result)
    assert result.plan is not None and result.plan.tasks


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_example_lints_clean_with_strict(path: Path):
    result = lint_file(path, strict=True)
    assert result.diagnostics == [], _shown(result)


def test_mlw_lint_strict_accepts_every_example_on_the_command_line():
    runner = CliRunner()
    for path in WORKFLOWS:
        out = runner.invoke(cli, ["lint", "--strict", str(path)])
        assert out.exit_code == 0, f"{path.name}: {out.output}"


@pytest.mark.parametrize("library", LIBRARIES, ids=lambda p: p.name)
def test_template_library_is_imported_by_an_example_and_cannot_run_alone(library: Path):
    importers = [p for p in WORKFLOWS if p.suffix == ".mlw" and f'import "lib/{library.name}"' in p.read_text()]
    assert importers, f"no example imports lib/{library.name}"
    alone = compile_file(library)
    assert {d.code for d in alone.diagnostics} == {"MLW107"}, _shown(alone)


def _plan(name: str):
    result = compile_file(EXAMPLES / name)
    assert result.plan is not None, _shown(result)
    return result.plan


def test_seed_json_form_compiles_to_the_same_plan_as_the_mlw_form():
    """The JSON document spells out the same pipeline (parameters as `{"$ref": "params.x"}`,
    the seed's names such as `dataset_path`, `"cache": "disk"`, `max_attempts`), so the plans
    are equal apart from source spans: same tasks, and the same fingerprint."""
    mlw, seed = _plan("training_pipeline.mlw"), _plan("training_pipeline.json")
    assert seed.canonical_dict(spans=False) == mlw.canonical_dict(spans=False)
    assert seed.fingerprint == mlw.fingerprint
    assert seed.task("preprocess_data").params["source"] == "sklearn:breast_cancer"
    assert seed.task("train_model").retry.attempts == 3


def test_main_example_is_the_seed_pipeline_with_a_gate():
    plan = _plan("training_pipeline.mlw")
    types = [t.type for t in plan.tasks]
    assert types == [
        "data_preprocessing",
        "feature_extraction",
        "model_training",
        "model_validation",
        "model_evaluation",
        "model_deployment",
    ]
    assert plan.task("preprocess_data").params["source"] == "sklearn:breast_cancer"
    assert plan.task("deploy_model").dependencies == ["evaluate_model", "validate_model"]


def test_fraud_example_tunes_gates_and_deploys_only_when_asked():
    plan = _plan("fraud_detection.mlw")
    assert [t.task for t in plan.tunings] == ["train"]
    assert plan.tunings[0].objective.metric == "roc_auc"
    assert plan.task("deploy").skip is True
    deployed = compile_file(EXAMPLES / "fraud_detection.mlw", params={"deploy": "true"}).plan
    assert deployed is not None and deployed.task("deploy").skip is False


def test_comparison_example_expands_foreach_and_collects_all_models():
    plan = _plan("model_comparison.mlw")
    algos = plan.workflow.params["algos"]
    assert {f"train[{a}]" for a in algos} <= set(plan.tasks_by_id())
    models = plan.task("compare").params["models"]
    assert models == [{"$ref": f"train[{a}].model"} for a in algos]


def test_templated_example_expands_the_template_twice():
    ids = set(_plan("templated.mlw").tasks_by_id())
    assert {"rf.train", "rf.check", "gb.train", "gb.check"} <= ids


CUSTOM = EXAMPLES / "custom" / "custom_step.mlw"


def test_custom_step_example_compiles_and_lints_clean():
    # No PYTHONPATH: the compiler finds custom_steps.py next to the workflow file.
    result = compile_file(CUSTOM, strict=True)
    assert result.diagnostics == [], _shown(result)
    balance = result.plan.task("balance")
    assert balance.uses == "custom_steps:oversample_minority"
    assert balance.params["data"] == {"$ref": "prepare.output"}
    assert lint_file(CUSTOM, strict=True).diagnostics == []


def test_custom_step_attributes_are_checked_against_the_function(tmp_path):
    broken = tmp_path / "custom" / "broken.mlw"
    broken.parent.mkdir()
    shutil.copy(CUSTOM.parent / "custom_steps.py", broken.parent / "custom_steps.py")
    broken.write_text(CUSTOM.read_text().replace("ratio = params.ratio", "ratio = params.ratio\n    ratios = 2"))
    assert {d.code for d in compile_file(broken).diagnostics} == {"MLW203"}


def test_custom_step_function_oversamples_only_the_training_split():
    import numpy as np

    from mlflowdsl.tasks import Dataset

    sys.path.insert(0, str(CUSTOM.parent))
    try:
        from custom_steps import oversample_minority
    finally:
        sys.path.remove(str(CUSTOM.parent))
    data = Dataset(X_train=np.arange(10.0).reshape(10, 1), X_test=np.zeros((2, 1)), y_train=np.array([0] * 8 + [1] * 2),
                   y_test=np.array([0, 1]), feature_names=("x",), target="y", problem="classification")
    out = oversample_minority(data, ratio=0.5, seed=0)
    assert list(out.y_train).count(1) == 4 and list(out.y_train).count(0) == 8
    assert set(out.X_train[out.y_train == 1].ravel()) <= {8.0, 9.0}
    assert out.X_test is data.X_test and out.y_test is data.y_test


def _relative_sources(plan) -> list[str]:
    return [
        t.params["source"]
        for t in plan.tasks
        if t.type in ("data_preprocessing", "batch_inference") and ":" not in t.params.get("source", ":")
    ]


@pytest.mark.parametrize("path", WORKFLOWS + [CUSTOM], ids=lambda p: p.name)
def test_example_reads_only_shipped_data(path: Path, monkeypatch):
    monkeypatch.syspath_prepend(str(CUSTOM.parent))
    plan = compile_file(path).plan
    assert plan is not None
    for source in _relative_sources(plan):
        assert not Path(source).is_absolute(), source
        data = (path.parent / source).resolve()
        assert data.is_file(), f"{path.name} reads {source}, which is not shipped"
        assert data.stat().st_size < 200_000


def test_batch_scoring_writes_under_examples_out():
    plan = _plan("batch_scoring.mlw")
    output = (EXAMPLES / plan.task("score").params["output"]).resolve()
    assert output.parent == EXAMPLES / "out"


def test_shipped_transactions_are_reproduced_by_their_script(tmp_path: Path):
    subprocess.run([sys.executable, str(EXAMPLES / "data" / "make_transactions.py"), str(tmp_path)], check=True,
                   capture_output=True)
    for name in ("transactions.csv", "to_score.csv"):
        assert (tmp_path / name).read_bytes() == (EXAMPLES / "data" / name).read_bytes(), name
