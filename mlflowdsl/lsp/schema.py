"""What the editor shows about the language's names, read from the same sources the compiler
checks against: the task types' pydantic ``Params`` and inputs/outputs (through the plug-in
registry), the directive blocks, the units and the tune fields.

>>> "model_training" in task_types()
True
>>> f = attribute("model_training", "algorithm")
>>> f.name, "random_forest" in f.choices
('algorithm', True)
>>> "n_estimators" in hyperparameters("model_training", "random_forest")
True
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, fields

from pydantic_core import PydanticUndefined

from mlflowdsl import tasks as task_api
from mlflowdsl.compiler.directives import BACKOFFS, BLOCKS, DIRECTIVE_ATTRS
from mlflowdsl.compiler.resolve import WORKFLOW_ATTRS
from mlflowdsl.compiler.tunecheck import PRUNERS, SAMPLERS
from mlflowdsl.grammar import units
from mlflowdsl.ir import CACHE_STRATEGIES

# Values a bare name may take after `NAME =` (outside a task type's own fields).
NAME_VALUES: dict[str, tuple[str, ...]] = {
    "strategy": CACHE_STRATEGIES, "cache": CACHE_STRATEGIES, "sampler": SAMPLERS, "pruner": PRUNERS,
    "backoff": BACKOFFS,
}
TUNE_FIELDS = ("search", "objective", "trials", "parallel", "seed", "timeout", "sampler", "pruner")
KEYWORDS = ("workflow", "task", "params", "defaults", "tune", "use", "template", "import", "output", "after",
            "foreach", "in")
BLOCK_NAMES = tuple(BLOCKS) + ("search",)
UNIT_DOC = {"duration": "seconds", "size": "bytes", "rate": "bits per second"}


@dataclass(frozen=True)
class Attribute:
    name: str
    type: str
    description: str
    default: str | None  # as text; None when required
    required: bool
    choices: tuple[str, ...] = ()
    input_kind: str | None = None  # for an input: the output kind(s) it accepts

    def markdown(self) -> str:
        head = f"**{self.name}**: `{self.type}`"
        if self.input_kind is not None:
            head += f" (input: a `{self.input_kind}` output)"
        lines = [head]
        if self.description:
            lines.append(self.description)
        if self.required:
            lines.append("required")
        elif self.default is not None:
            lines.append(f"default: `{self.default}`")
        if self.choices:
            lines.append("one of: " + ", ".join(f"`{c}`" for c in self.choices))
        return "\n\n".join(lines)


def task_types() -> dict[str, type[task_api.TaskType]]:
    return task_api.registry()


def type_doc(name: str) -> str | None:
    """Markdown describing task type ``name`` (None for an unknown type)."""
    cls = task_types().get(name)
    if cls is None:
        return None
    doc = (cls.doc or cls.__doc__ or "").strip()
    outs = ", ".join(f"`{o}` ({k})" for o, k in cls.outputs.items())
    attrs = ", ".join(f"`{a.name}`" for a in attributes(name))
    parts = [f"**task type `{name}`** (version {cls.version})"]
    if doc:
        parts.append(doc)
    parts.append(f"outputs: {outs} (`.output` is `{cls.default_output}`)")
    parts.append(f"attributes: {attrs}")
    return "\n\n".join(parts)


def _type_text(annotation) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(annotation))
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _choices(annotation) -> tuple[str, ...]:
    if typing.get_origin(annotation) is typing.Literal:
        return tuple(str(a) for a in typing.get_args(annotation))
    out: list[str] = []
    for arg in typing.get_args(annotation):
        out.extend(_choices(arg))
    return tuple(out)


def attributes(type_name: str) -> list[Attribute]:
    """The attributes a task of this type takes: its inputs, then its ``Params`` fields."""
    cls = task_types().get(type_name)
    if cls is None:
        return []
    out = [Attribute(name, "reference", spec.doc, None if spec.required else "none", spec.required,
                     input_kind=spec.kind if isinstance(spec.kind, str) else " or ".join(spec.kind))
           for name, spec in cls.inputs.items()]
    for name, f in cls.Params.model_fields.items():
        if f.default is not PydanticUndefined:
            default = repr(f.default) if not isinstance(f.default, str) else f'"{f.default}"'
        elif f.default_factory is not None:
            default = repr(f.default_factory())
        else:
            default = None
        out.append(Attribute(name, _type_text(f.annotation), f.description or "", default, f.is_required(),
                             _choices(f.annotation)))
    return out


def attribute(type_name: str, name: str) -> Attribute | None:
    cls = task_types().get(type_name)
    if cls is not None:
        name = cls.aliases.get(name, name)
    return next((a for a in attributes(type_name) if a.name == name), None)


def hyperparameters(type_name: str, algorithm: str) -> list[str]:
    """Hyperparameter names the type tunes for this algorithm (empty when unknown)."""
    cls = task_types().get(type_name)
    if cls is None:
        return []
    try:
        names = cls().tunable_hyperparameters({"algorithm": algorithm})
    except Exception:  # noqa: BLE001 - a plug-in's answer is a hint only: no names then
        return []
    return sorted(names or ())


def directive_fields(block: str) -> list[str]:
    cls = BLOCKS.get(block)
    return [f.name for f in fields(cls)] if cls is not None else []


def task_level_names() -> tuple[str, ...]:
    """Names any task takes besides its type's: directives and ``when``."""
    return DIRECTIVE_ATTRS + ("when",)


def workflow_attrs() -> tuple[str, ...]:
    return WORKFLOW_ATTRS


def unit_doc(unit: str) -> str | None:
    kind = units.kind_of(unit)
    if kind is None:
        return None
    factor = units.UNITS[unit][1]
    return f"**{unit}**: a {kind} unit; 1 {unit} = {factor:g} {UNIT_DOC.get(kind, '')}".rstrip()


def all_units() -> list[str]:
    return list(units.UNITS)
