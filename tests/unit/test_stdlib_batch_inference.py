import os

import numpy as np
import pandas as pd
import pytest

import stdlib_tasks.batch_inference as batch_module
from mlflowdsl.tasks import TaskContext, TaskFailed
from stdlib_tasks.batch_inference import BatchInference
from stdlib_tasks.data_preprocessing import DataPreprocessing
from stdlib_tasks.model_training import ModelTraining

TASK = BatchInference()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A model trained on a CSV with an id column, a text column and missing values."""
    root = tmp_path_factory.mktemp("bi")
    rng = np.random.default_rng(5)
    n = 200
    frame = pd.DataFrame({
        "id": [f"row{i}" for i in range(n)],
        "amount": rng.normal(50, 10, n),
        "channel": rng.choice(["web", "shop"], n),
    })
    frame["label"] = np.where(frame["amount"] + (frame["channel"] == "web") * 8 > 55, "high", "low")
    frame.loc[::17, "amount"] = np.nan
    frame.to_csv(root / "train.csv", index=False)
    prep, train = DataPreprocessing(), ModelTraining()
    data = prep.run(prep.Params(source=str(root / "train.csv"), target="label", drop=["id"]), {}, TaskContext()).outputs["output"]
    model = train.run(train.Params(algorithm="logistic_regression"), {"data": data}, TaskContext()).outputs["model"]
    return model, frame


def score(model, tmp_path, **params):
    ctx = TaskContext(task_id="score[a]", base_dir=str(tmp_path), artifact_dir=str(tmp_path / "artifacts"))
    return TASK.run(TASK.Params(**params), {"model": model}, ctx)


def test_csv_output_equals_in_process_predict(trained, tmp_path):
    model, frame = trained
    frame.to_csv(tmp_path / "rows.csv", index=False)  # includes the target: it is ignored
    out = score(model, tmp_path, source="rows.csv", output="out/pred.csv", partitions=3, columns=["id"])
    result = out.outputs["predictions"]
    assert result == {"path": str(tmp_path / "out" / "pred.csv"), "rows": 200, "partitions": 3, "format": "csv"}
    written = pd.read_csv(result["path"])
    assert list(written.columns) == ["id", "prediction"]
    assert (written["id"] == frame["id"]).all()
    assert (written["prediction"].to_numpy() == model.predict(frame.drop(columns=["id", "label"]))).all()
    assert out.metrics["rows"] == 200.0


def test_parquet_output_with_probabilities(trained, tmp_path):
    model, frame = trained
    frame.drop(columns=["label"]).to_parquet(tmp_path / "rows.parquet")
    out = score(model, tmp_path, source="rows.parquet", output="pred.parquet", partitions=7, probabilities=True)
    written = pd.read_parquet(out.outputs["predictions"]["path"])
    assert len(written) == 200
    assert np.allclose(written[["proba_high", "proba_low"]].sum(axis=1), 1.0)
    assert (written["prediction"].to_numpy() == model.predict(frame)).all()


def test_default_output_goes_to_the_artifact_directory(trained, tmp_path):
    model, frame = trained
    frame.to_csv(tmp_path / "rows.csv", index=False)
    out = score(model, tmp_path, source="rows.csv")
    assert out.outputs["predictions"]["path"] == str(tmp_path / "artifacts" / "score_a_" / "predictions.csv")


def test_output_is_replaced_atomically(trained, tmp_path, monkeypatch):
    model, frame = trained
    frame.to_csv(tmp_path / "rows.csv", index=False)
    target = tmp_path / "pred.csv"
    target.write_text("old complete file\n")
    seen = []
    real = batch_module.score_partition

    def observing(model, chunk, params):
        # while partitions are written, readers still see the old, complete file
        seen.append(target.read_text())
        return real(model, chunk, params)

    monkeypatch.setattr(batch_module, "score_partition", observing)
    score(model, tmp_path, source="rows.csv", output="pred.csv", partitions=4)
    assert seen == ["old complete file\n"] * 4
    assert len(pd.read_csv(target)) == 200
    assert sorted(os.listdir(tmp_path)) == ["pred.csv", "rows.csv"]  # no temporary left


def test_failure_midway_leaves_the_old_file_and_no_temporary(trained, tmp_path, monkeypatch):
    model, frame = trained
    frame.to_csv(tmp_path / "rows.csv", index=False)
    target = tmp_path / "pred.csv"
    target.write_text("old\n")
    calls = []
    real = batch_module.score_partition

    def failing_on_third(model, chunk, params):
        calls.append(1)
        if len(calls) == 3:
            raise TaskFailed("boom")
        return real(model, chunk, params)

    monkeypatch.setattr(batch_module, "score_partition", failing_on_third)
    with pytest.raises(TaskFailed, match="boom"):
        score(model, tmp_path, source="rows.csv", output="pred.csv", partitions=4)
    assert target.read_text() == "old\n"
    assert sorted(os.listdir(tmp_path)) == ["pred.csv", "rows.csv"]


def test_rows_without_the_model_columns(trained, tmp_path):
    model, frame = trained
    frame.drop(columns=["channel"]).to_csv(tmp_path / "rows.csv", index=False)
    with pytest.raises(TaskFailed, match="lack the model's input column.*channel"):
        score(model, tmp_path, source="rows.csv", output="p.csv")
    assert not (tmp_path / "p.csv").exists()


def test_unknown_kept_column(trained, tmp_path):
    model, frame = trained
    frame.to_csv(tmp_path / "rows.csv", index=False)
    with pytest.raises(TaskFailed, match="kept column 'ident'"):
        score(model, tmp_path, source="rows.csv", output="p.csv", columns=["ident"])


def test_bundled_dataset_source(tmp_path):
    prep, train = DataPreprocessing(), ModelTraining()
    data = prep.run(prep.Params(source="sklearn:wine"), {}, TaskContext()).outputs["output"]
    model = train.run(train.Params(algorithm="knn"), {"data": data}, TaskContext()).outputs["model"]
    out = score(model, tmp_path, source="sklearn:wine", output="wine.csv", partitions=2)
    assert out.outputs["predictions"]["rows"] == 178


def test_output_file_gets_the_usual_mode_not_mkstemps_0600(tmp_path):
    from mlflowdsl.files import atomic_write_bytes, current_umask

    target = tmp_path / "out.csv"
    atomic_write_bytes(str(target), b"a,b\n")
    assert (target.stat().st_mode & 0o777) == (0o666 & ~current_umask())
