"""Hyperparameter studies of tuned tasks (a ``tune`` block).

- ``driver``: :class:`StudyDriver`, the ask-and-tell loop of one study, in a thread of the
  client; what a trial is (:func:`merge_values`) and which objectives are allowed
  (:func:`check_objective`).
- ``host``: :class:`StudyHost`, what the driver needs from the run it belongs to (make a
  trial's spec, submit it, read its result, cancel); ``runtime/studies.py`` implements it.
- ``study``: the Optuna study's records (tell, trial attributes, recovery, the summary).
- ``storage``: where studies are stored (a journal file or Redis) and how a trial's worker
  reports to the pruner.

Spaces, samplers and pruners are in ``mlflowdsl.tasks.search``.
"""

from mlflowdsl.runtime.tuning.driver import StudyDriver, StudyOutcome, check_objective, merge_values
from mlflowdsl.runtime.tuning.host import StudyHost

__all__ = ["StudyDriver", "StudyHost", "StudyOutcome", "check_objective", "merge_values"]
