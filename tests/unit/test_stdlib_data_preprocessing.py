import numpy as np
import pandas as pd
import pytest

from mlflowdsl.tasks import TaskContext, TaskFailed
from stdlib_tasks.data_preprocessing import DataPreprocessing, infer_problem
from stdlib_tasks.values import Dataset

TASK = DataPreprocessing()


def run(tmp_path, **params):
    ctx = TaskContext(task_id="prep", base_dir=str(tmp_path), artifact_dir=str(tmp_path / "artifacts"))
    return TASK.run(TASK.Params(**params), {}, ctx)


@pytest.fixture
def mixed_csv(tmp_path):
    rng = np.random.default_rng(0)
    n = 60
    frame = pd.DataFrame({
        "id": range(n),
        "amount": rng.normal(100, 20, n),
        "country": rng.choice(["de", "fr", "it"], n),
        "age": rng.integers(18, 80, n).astype(float),
        "label": rng.choice(["fraud", "ok"], n),
    })
    frame.loc[3, "amount"] = np.nan
    frame.loc[5, "country"] = np.nan
    path = tmp_path / "tx.csv"
    frame.to_csv(path, index=False)
    return path, frame


def test_bundled_dataset_is_split_and_scaled(tmp_path):
    out = run(tmp_path, source="sklearn:breast_cancer")
    data = out.outputs["output"]
    assert isinstance(data, Dataset)
    assert data.problem == "classification" and data.target == "target"
    assert data.n_train + data.n_test == 569
    assert data.n_test == pytest.approx(569 * 0.2, abs=1)
    assert data.X_train.shape[1] == len(data.feature_names) == 30
    # standard scaling was fitted on the training split
    assert np.allclose(data.X_train.mean(axis=0), 0, atol=1e-6)
    # stratified: class proportions agree between the splits
    assert abs(data.y_train.mean() - data.y_test.mean()) < 0.02
    assert out.metrics["rows"] == 569.0


def test_regression_bundled_dataset(tmp_path):
    data = run(tmp_path, source="sklearn:diabetes", test_size=0.25).outputs["output"]
    assert data.problem == "regression"
    assert data.y_train.dtype.kind == "f"


def test_csv_with_text_columns_and_missing_values(tmp_path, mixed_csv):
    path, frame = mixed_csv
    data = run(tmp_path, source=path.name, target="label", drop=["id"]).outputs["output"]
    assert data.problem == "classification"
    assert not np.isnan(data.X_train).any() and not np.isnan(data.X_test).any()
    assert {"country_de", "country_fr", "country_it"} <= set(data.feature_names)
    assert data.raw_columns == ("amount", "country", "age")
    # the transform maps raw rows to the same features
    rows = frame.drop(columns=["id", "label"]).head(3)
    assert data.transform_rows(rows).shape == (3, len(data.feature_names))


def test_ordinal_encoding_and_minmax_scaling(tmp_path, mixed_csv):
    path, _ = mixed_csv
    data = run(tmp_path, source=str(path), target="label", drop=["id"], encode="ordinal", scale="minmax").outputs["output"]
    assert data.feature_names == ("amount", "age", "country")
    assert data.X_train[:, :2].min() >= 0 and data.X_train[:, :2].max() <= 1


def test_parquet_source(tmp_path, mixed_csv):
    _, frame = mixed_csv
    frame.to_parquet(tmp_path / "tx.parquet")
    data = run(tmp_path, source="tx.parquet", target="amount", drop=["id", "label"]).outputs["output"]
    assert data.problem == "regression"
    assert data.n_train + data.n_test == 59  # the row without a target is dropped


def test_seed_controls_the_split(tmp_path):
    a = run(tmp_path, source="sklearn:iris", seed=1).outputs["output"]
    b = run(tmp_path, source="sklearn:iris", seed=1).outputs["output"]
    c = run(tmp_path, source="sklearn:iris", seed=2).outputs["output"]
    assert a.fingerprint == b.fingerprint != c.fingerprint


def test_problem_inference():
    assert infer_problem(pd.Series(["a", "b"])) == "classification"
    assert infer_problem(pd.Series([True, False])) == "classification"
    assert infer_problem(pd.Series([1, 2, 3, 2])) == "classification"
    assert infer_problem(pd.Series(np.arange(100))) == "regression"
    assert infer_problem(pd.Series([0.1, 0.5])) == "regression"


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(TaskFailed, match="data file not found: .*nope.csv") as info:
        run(tmp_path, source="nope.csv", target="y")
    assert "relative to the workflow" in info.value.hint


def test_unknown_target_column_suggests_the_closest(tmp_path, mixed_csv):
    path, _ = mixed_csv
    with pytest.raises(TaskFailed, match="target column 'lable' not found.*did you mean 'label'"):
        run(tmp_path, source=str(path), target="lable")


def test_unknown_drop_column(tmp_path, mixed_csv):
    path, _ = mixed_csv
    with pytest.raises(TaskFailed, match="drop column 'ids'"):
        run(tmp_path, source=str(path), target="label", drop=["ids"])


def test_file_source_needs_a_target(tmp_path, mixed_csv):
    path, _ = mixed_csv
    with pytest.raises(TaskFailed, match="no target column"):
        run(tmp_path, source=str(path))


def test_text_target_cannot_be_regression(tmp_path, mixed_csv):
    path, _ = mixed_csv
    with pytest.raises(TaskFailed, match="not numeric"):
        run(tmp_path, source=str(path), target="label", problem="regression")


def test_text_columns_need_an_encoding(tmp_path, mixed_csv):
    path, _ = mixed_csv
    with pytest.raises(TaskFailed, match="country.*encode"):
        run(tmp_path, source=str(path), target="label", encode="none")


def test_unknown_bundled_dataset(tmp_path):
    with pytest.raises(TaskFailed, match="did you mean 'iris'"):
        run(tmp_path, source="sklearn:iriss")


def test_malformed_file_is_a_task_failure(tmp_path):
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(TaskFailed, match="cannot read"):
        run(tmp_path, source="bad.parquet", target="y")


def test_date_columns_are_named(tmp_path):
    frame = pd.DataFrame({"when": pd.date_range("2024-01-01", periods=20), "x": range(20), "y": [0, 1] * 10})
    frame.to_parquet(tmp_path / "d.parquet")
    with pytest.raises(TaskFailed, match="when hold dates"):
        run(tmp_path, source="d.parquet", target="y")
    data = run(tmp_path, source="d.parquet", target="y", drop=["when"]).outputs["output"]
    assert data.feature_names == ("x",)


def test_boolean_columns_and_target(tmp_path):
    frame = pd.DataFrame({"flag": [True, False] * 15, "x": np.linspace(0, 1, 30), "y": [True, True, False] * 10})
    frame.to_csv(tmp_path / "b.csv", index=False)
    data = run(tmp_path, source="b.csv", target="y").outputs["output"]
    assert data.problem == "classification" and set(data.y_train.tolist()) == {True, False}
    assert data.feature_names == ("flag", "x")
