"""The value classes tasks pass to each other, under their first import path.

They live in :mod:`mlflowdsl.tasks.values` (the plug-in API); this module keeps
``from stdlib_tasks.values import Dataset`` and models pickled under this path working.
"""

from mlflowdsl.tasks.values import Dataset, MissingColumns, TrainedModel, fingerprint_arrays, frame_to_features

__all__ = ["Dataset", "MissingColumns", "TrainedModel", "fingerprint_arrays", "frame_to_features"]
