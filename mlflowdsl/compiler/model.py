"""Data handed between compiler passes after ``resolve``.

The resolver turns the AST into *resolved* tasks: templates and ``foreach`` expanded, task
ids final (``rf.train``, ``train[svm]``), parameters and loop variables substituted, ``when``
decided. Values are plain Python/JSON values plus three markers that later passes interpret:

* :class:`OutputRef` — another task's output (``prep.output``);
* :class:`Qty` — a quantity with its kind and canonical number (``4GiB`` -> size, 4294967296);
* :class:`CallValue` — a call such as ``int(1, 10)`` or ``maximize(accuracy)`` (only
  meaningful inside ``tune``).

Every attribute keeps its span so diagnostics can point at the exact value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlflowdsl.grammar.diagnostics import Span


@dataclass(frozen=True, slots=True)
class OutputRef:
    """``task.output`` — ``output`` is the name as written (``output`` may mean the default)."""

    task: str
    output: str
    span: Span  # the whole reference
    task_first: Span | None = None  # first and last part of the task name (`rf`, `train`
    task_last: Span | None = None  # in `rf.train.model`); joined only when reported
    output_span: Span | None = None  # `model`

    @property
    def task_span(self) -> Span | None:
        if self.task_first is None or self.task_last is None:
            return None
        return self.task_first.to(self.task_last)

    def dotted(self) -> str:
        return f"{self.task}.{self.output}"


@dataclass(frozen=True, slots=True)
class Qty:
    """A converted quantity: ``kind`` is ``duration`` (seconds), ``size`` (bytes) or
    ``rate`` (bits per second)."""

    kind: str
    value: float | int
    raw: str
    span: Span


@dataclass(frozen=True, slots=True)
class CallArg:
    name: str | None
    value: Any
    span: Span


@dataclass(frozen=True, slots=True)
class CallValue:
    func: str
    func_span: Span
    args: tuple[CallArg, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class RAttr:
    name: str
    name_span: Span
    value: Any
    span: Span  # the value's span
    # For a map value (``{ n_estimators = 200 }``): key -> the key's span, so an error about
    # one entry points at that entry.
    key_spans: tuple[tuple[str, Span], ...] = ()

    def span_of_key(self, key: str) -> Span | None:
        return next((s for k, s in self.key_spans if k == key), None)


@dataclass(frozen=True, slots=True)
class RBlock:
    name: str
    name_span: Span
    attrs: tuple[RAttr, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class RTask:
    id: str
    id_span: Span
    type: str
    type_span: Span
    span: Span
    after: tuple[tuple[str, Span], ...]
    attrs: tuple[RAttr, ...]
    blocks: tuple[RBlock, ...]
    when: bool = True
    when_span: Span | None = None
    when_constant: bool = False  # `when` has no parameter/loop variable in it


@dataclass(frozen=True, slots=True)
class RTune:
    target: str
    target_span: Span
    attrs: tuple[RAttr, ...]
    blocks: tuple[RBlock, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class RDefaults:
    attrs: tuple[RAttr, ...] = ()
    blocks: tuple[RBlock, ...] = ()
    span: Span | None = None


@dataclass(frozen=True)
class ResolvedWorkflow:
    id: str
    id_span: Span
    file: str
    name: str = ""
    version: str = ""
    description: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    param_spans: dict[str, Span] = field(default_factory=dict)  # declaration spans
    used_params: frozenset[str] = frozenset()
    defaults: RDefaults = RDefaults()
    tasks: tuple[RTask, ...] = ()
    tunes: tuple[RTune, ...] = ()

