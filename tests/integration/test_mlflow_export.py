"""`mlw models export REF --format mlflow DIR`: a registered version as an MLflow model directory
that mlflow.pyfunc loads and that scores raw rows as the registered model does."""

from __future__ import annotations

import pandas as pd
from click.testing import CliRunner
from registry_support import fitted

from mlflowdsl.cli import cli
from mlflowdsl.runtime.registry import open_registry
from mlflowdsl.settings import Settings


def test_export_writes_an_mlflow_model_that_pyfunc_loads_and_that_scores_like_the_registered_one(tmp_path):
    import mlflow.pyfunc

    home = str(tmp_path / "home")
    registry = open_registry(Settings(home=home))
    model = fitted(0.9, name="clf")
    registry.register("clf", model)
    registry.register("clf", fitted(0.8, name="clf", flip=True))
    registry.close()
    out = tmp_path / "exported"
    result = CliRunner().invoke(cli, ["models", "export", "clf/1", str(out), "--format", "mlflow", "--home", home])
    assert result.exit_code == 0, result.output
    assert "clf/1" in result.output
    assert (out / "MLmodel").exists()
    loaded = mlflow.pyfunc.load_model(str(out))
    rows = pd.DataFrame({"x": [0.0, 0.5, 2.5, 3.0]})
    assert list(loaded.predict(rows)) == list(model.predict(rows)) == [0, 0, 1, 1]
    # the directory is never overwritten
    again = CliRunner().invoke(cli, ["models", "export", "clf/2", str(out), "--home", home])
    assert again.exit_code == 1 and "already exists" in again.output
    missing = CliRunner().invoke(cli, ["models", "export", "clf@champion", str(tmp_path / "x"), "--home", home])
    assert missing.exit_code == 1 and "no alias 'champion'" in missing.output
