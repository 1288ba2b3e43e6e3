"""The standard task types of mlflowdsl (scikit-learn), registered through the
``mlflowdsl.tasks`` entry-point group like any third-party type.

Importing a task module is cheap (no scikit-learn/pandas/optuna at import time) because the
compiler imports them to check a workflow; the work happens in ``run``.
"""
