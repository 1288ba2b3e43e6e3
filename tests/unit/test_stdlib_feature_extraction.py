import numpy as np
import pytest

from mlflowdsl.tasks import TaskContext, TaskFailed
from stdlib_tasks.data_preprocessing import DataPreprocessing
from stdlib_tasks.feature_extraction import FeatureExtraction

TASK = FeatureExtraction()


@pytest.fixture(scope="module")
def wine():
    prep = DataPreprocessing()
    return prep.run(prep.Params(source="sklearn:wine"), {}, TaskContext()).outputs["output"]


def extract(data, **params):
    return TASK.run(TASK.Params(**params), {"data": data}, TaskContext())


def test_select_k_best_keeps_k_named_features(wine):
    out = extract(wine, method="select_k_best", k=5)
    data = out.outputs["output"]
    assert data.X_train.shape == (wine.n_train, 5) and data.X_test.shape == (wine.n_test, 5)
    assert set(data.feature_names) <= set(wine.feature_names)
    assert out.metrics == {"features_in": 13.0, "features_out": 5.0}
    assert (data.y_train == wine.y_train).all()
    assert data.fingerprint != wine.fingerprint


def test_k_larger_than_the_feature_count_keeps_all(wine):
    assert len(extract(wine, k=100).outputs["output"].feature_names) == 13


def test_pca_by_variance_fraction_and_by_count(wine):
    by_fraction = extract(wine, method="pca", n_components=0.8).outputs["output"]
    assert 1 < len(by_fraction.feature_names) < 13
    by_count = extract(wine, method="pca", n_components=3).outputs["output"]
    assert by_count.X_train.shape[1] == 3
    # principal components of the training split are uncorrelated
    corr = np.corrcoef(by_count.X_train, rowvar=False)
    assert np.allclose(corr - np.diag(np.diag(corr)), 0, atol=1e-8)


def test_pca_count_must_be_whole(wine):
    with pytest.raises(TaskFailed, match="neither a count nor a fraction"):
        extract(wine, method="pca", n_components=2.5)


def test_polynomial_features(wine):
    data = extract(wine, method="polynomial", degree=2).outputs["output"]
    assert data.X_train.shape[1] == 13 + 13 * 14 // 2
    inter = extract(wine, method="polynomial", degree=2, interaction_only=True).outputs["output"]
    assert inter.X_train.shape[1] == 13 + 13 * 12 // 2


def test_variance_threshold_drops_constant_columns(tmp_path):
    import pandas as pd

    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"const": np.ones(40), "x": rng.normal(size=40), "y": rng.integers(0, 2, 40)})
    frame.to_csv(tmp_path / "d.csv", index=False)
    prep = DataPreprocessing()
    data = prep.run(prep.Params(source=str(tmp_path / "d.csv"), target="y", scale="none"), {}, TaskContext()).outputs["output"]
    out = extract(data, method="variance_threshold", threshold=0.0).outputs["output"]
    assert out.feature_names == ("x",)
    # the chained transform still starts from raw rows
    assert out.transform_rows(frame.drop(columns=["y"])).shape == (40, 1)


def test_variance_threshold_that_removes_everything_fails_clearly(wine):
    with pytest.raises(TaskFailed, match="variance_threshold failed"):
        extract(wine, method="variance_threshold", threshold=1e9)
