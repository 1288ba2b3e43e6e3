"""Data mistakes are found at lint/compile time (issue 13, point 6): a missing file, a target,
drop or column name not in the file's header, a seed document's `dataset_path` without a
target, a text target or feature with one value per row, each at the attribute's place. Only
headers and the first rows are read, never a URL; the task refuses a free-text target at once."""

from __future__ import annotations

import csv
import json

import pytest

from mlflowdsl.compiler.api import compile_file, compile_text, lint_file
from stdlib_tasks import data_checks


def write_csv(path, rows: int = 200, extra_cols: bool = True):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["customer_id", "name", "age", "churn"] + (["comment"] if extra_cols else []))
        for i in range(rows):
            w.writerow([1000 + i, f"user{i}", 20 + i % 50, "yes" if i % 3 else "no"]
                       + ([f"free text number {i}"] if extra_cols else []))
    return path


def workflow(tmp_path, prep_body: str, name: str = "w.mlw"):
    path = tmp_path / name
    path.write_text("workflow w {\n  task prep: data_preprocessing {\n    " + prep_body + "\n  }\n"
                    "  task train: model_training after prep { algorithm = \"knn\" }\n}\n")
    return path


def found(result, *codes):
    return [(d.code, d.span.line, d.span.column) for d in result.diagnostics if d.code in codes]


def test_a_clean_file_lints_clean(tmp_path):
    write_csv(tmp_path / "c.csv", extra_cols=False)
    r = lint_file(workflow(tmp_path, 'source = "c.csv"  target = "churn"  drop = ["customer_id", "name"]'))
    assert r.ok and [d.code for d in r.diagnostics] == ["MLW402"]  # `train` feeds nothing: not a data warning


def test_a_missing_target_column_is_an_error_with_did_you_mean(tmp_path):
    write_csv(tmp_path / "c.csv")
    r = lint_file(workflow(tmp_path, 'source = "c.csv"\n    target = "chrun"'))
    assert found(r, "MLW220") == [("MLW220", 4, 14)]
    assert not r.ok and "did you mean `churn`?" in r.diagnostics[0].hint


def test_a_missing_drop_column_is_an_error(tmp_path):
    write_csv(tmp_path / "c.csv")
    r = compile_file(workflow(tmp_path, 'source = "c.csv"  target = "churn"  drop = ["nmae"]'))
    assert found(r, "MLW220") == [("MLW220", 3, 48)] and r.plan is None


def test_a_missing_file_is_a_warning_at_the_source(tmp_path):
    r = lint_file(workflow(tmp_path, 'source = "nope.csv"  target = "y"'))
    assert found(r, "MLW405") == [("MLW405", 3, 14)] and r.ok
    assert str(tmp_path / "nope.csv") in r.diagnostics[0].message


def test_the_seed_documents_dataset_path_without_a_target_is_an_error(tmp_path):
    write_csv(tmp_path / "c.csv")
    doc = {"workflow_id": "w", "tasks": [
        {"task_id": "prep", "task_type": "data_preprocessing", "parameters": {"dataset_path": "c.csv"}},
        {"task_id": "train", "task_type": "model_training", "dependencies": ["prep"],
         "parameters": {"algorithm": "knn"}}]}
    path = tmp_path / "w.json"
    path.write_text(json.dumps(doc, indent=1))
    r = lint_file(path)
    assert [(d.code, d.span.line) for d in r.errors] == [("MLW220", 8)]  # the "dataset_path" key
    assert "no target column" in r.errors[0].message


def test_id_like_and_free_text_columns_are_warnings(tmp_path):
    write_csv(tmp_path / "c.csv")
    r = lint_file(workflow(tmp_path, 'source = "c.csv"  target = "churn"'))
    flagged = sorted(d.message.split("`")[3] for d in r.diagnostics if d.code == "MLW406")
    assert flagged == ["comment", "customer_id", "name"] and r.ok  # not `age`: it repeats


def test_a_free_text_target_is_a_warning_at_the_target(tmp_path):
    write_csv(tmp_path / "c.csv")
    r = lint_file(workflow(tmp_path, 'source = "c.csv"\n    target = "comment"\n    drop = ["customer_id", "name"]'))
    assert found(r, "MLW406") == [("MLW406", 4, 14)]


def test_a_few_rows_say_nothing_about_ids(tmp_path):
    write_csv(tmp_path / "c.csv", rows=10)
    assert found(lint_file(workflow(tmp_path, 'source = "c.csv"  target = "churn"')), "MLW406") == []


def test_parquet_headers_are_read_from_the_schema(tmp_path):
    pd = pytest.importorskip("pandas")
    pd.DataFrame({"a": [1, 2, 3, 4], "y": [0, 1, 0, 1]}).to_parquet(tmp_path / "t.parquet")
    r = lint_file(workflow(tmp_path, 'source = "t.parquet"  target = "z"'))
    assert found(r, "MLW220") == [("MLW220", 3, 36)] and "columns: a, y" in r.errors[0].hint


def test_urls_and_bundled_sets_are_not_read():
    assert data_checks.local_path("https://example.com/a.csv", "/tmp") is None
    assert data_checks.local_path("s3://bucket/a.csv", "/tmp") is None
    assert data_checks.local_path("sklearn:iris", "/tmp") is None
    r = compile_text('workflow w {\n  task prep: data_preprocessing { source = "https://example.com/a.csv"  target = "y" }\n}\n')
    assert [d.code for d in r.diagnostics] == ["MLW402"]


def test_only_the_header_and_a_bounded_sample_are_read(tmp_path):
    path = tmp_path / "big.csv"
    with open(path, "w") as fh:
        fh.write("a,y\n")
        fh.write("1,0\n" * (data_checks.SAMPLE_ROWS * 3))
        fh.write('"unterminated\n')  # past the sample: never parsed
    assert data_checks.table_columns(str(path)) == ["a", "y"]
    assert len(data_checks.sample_columns(str(path), ["a"])["a"]) == data_checks.SAMPLE_ROWS


def test_the_task_refuses_a_free_text_target_at_once(tmp_path):
    from mlflowdsl.tasks import TaskContext, TaskFailed
    from stdlib_tasks.data_preprocessing import DataPreprocessing

    write_csv(tmp_path / "c.csv")
    ctx = TaskContext(task_id="prep", base_dir=str(tmp_path), artifact_dir=str(tmp_path / "a"))
    params = DataPreprocessing.Params(source="c.csv", target="comment", drop=["customer_id", "name"])
    with pytest.raises(TaskFailed, match="different value in each"):
        DataPreprocessing().run(params, {}, ctx)


def test_a_fifo_named_like_a_csv_is_not_opened(tmp_path):
    import os

    os.mkfifo(tmp_path / "pipe.csv")  # opening it for reading would block until a writer came
    assert data_checks.check_table("pipe.csv", str(tmp_path), target="y", target_required=True, drop=[]) == []
