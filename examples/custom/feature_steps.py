"""A feature step that travels with the model: examples/custom/feature_step.mlw.

``@row_transform`` declares the function row-wise: it receives the dataset's features as a
pandas DataFrame (one column per feature, after data_preprocessing's imputation, encoding and
scaling) and returns a DataFrame with one row per input row. The tool applies it to the
training and test splits, and appends it to the dataset's transform, so the trained model
applies it to raw rows too: batch inference and a deployment's /predict score the raw columns
of the source file.
"""

from __future__ import annotations

from mlflowdsl.tasks import row_transform


@row_transform
def add_ratios(features, night_until: int = 6):
    """Spend per recent transaction and a night-time flag, next to the existing features.

    >>> import pandas as pd
    >>> add_ratios(pd.DataFrame({"amount": [10.0], "num_tx_last_24h": [4.0], "hour": [2.0]}))[
    ...     ["amount_per_tx", "night"]].iloc[0].tolist()
    [2.0, 1.0]
    """
    out = features.copy()
    out["amount_per_tx"] = out["amount"] / (out["num_tx_last_24h"] + 1.0)
    out["night"] = (out["hour"] < night_until).astype(float)
    return out
