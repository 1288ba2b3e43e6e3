"""Which serializer for cache values: stdlib pickle (protocol 5) or cloudpickle?

Times dumps+loads of a small dict (a task's metrics) and of a fitted RandomForest (a task's
model). Run: ``.venv/bin/python bench/cache_serialization.py``.
"""

from __future__ import annotations

import pickle
import timeit

import cloudpickle
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier


def measure(name: str, value: object, number: int) -> None:
    for label, mod in (("pickle5", pickle), ("cloudpickle", cloudpickle)):
        blob = mod.dumps(value, protocol=5)
        dump_s = min(timeit.repeat(lambda: mod.dumps(value, protocol=5), number=number, repeat=3)) / number
        load_s = min(timeit.repeat(lambda: pickle.loads(blob), number=number, repeat=3)) / number
        print(f"{name:14s} {label:12s} dumps {dump_s * 1e6:10.1f} us  loads {load_s * 1e6:10.1f} us  size {len(blob):>9d} B")


if __name__ == "__main__":
    small = {"accuracy": 0.953, "roc_auc": 0.991, "n_features": 30, "classes": [0, 1], "name": "rf"}
    X, y = load_breast_cancer(return_X_y=True)
    forest = RandomForestClassifier(n_estimators=100, random_state=0).fit(X, y)
    measure("small dict", small, 20000)
    measure("random forest", forest, 20)
