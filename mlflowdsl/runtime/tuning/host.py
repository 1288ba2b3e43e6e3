"""What a :class:`~mlflowdsl.runtime.tuning.driver.StudyDriver` needs from the run it belongs
to: the run implements it (``runtime/studies.py``), the driver calls it from its own thread."""

from __future__ import annotations

from typing import Any, Protocol

from mlflowdsl.ir import Task


class StudyHost(Protocol):
    def make_spec(self, task: Task, key: str, trial: dict[str, Any] | None) -> Any:
        """The worker's ``TaskSpec`` for one trial: ``task`` is the tuned task with the trial's
        values merged in, ``key`` its cache key, ``trial`` where the study lives for pruning
        (``None``: the worker need not open the study)."""

    def submit(self, spec: Any, label: str) -> Any:
        """Submit ``spec`` with the tuned task's upstream outputs; a future. ``label`` names
        the submission within the study (``train-t3``, ``train-best``)."""

    def fetch_meta(self, future: Any) -> dict[str, Any]:
        """The result message of a finished trial's future; raises when Dask lost the task."""

    def spread_inputs(self) -> None:
        """Make the trials' inputs available on every worker, so parallel trials spread out."""

    def cancel(self, futures: list[Any]) -> None:
        """Cancel trials whose outputs are no longer needed."""

    def on_trial(self, record: dict[str, Any]) -> None:
        """A trial finished (its row of the trial table, without metrics)."""
