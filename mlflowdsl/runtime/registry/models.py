"""The model registry's data: versions, alias moves, model references, and the store protocol.

A registered model is a *name* with numbered versions 1, 2, 3... (allocated atomically by the
store). A version may also carry a free-form *label* (``v1.2.0``, the ``version`` given to
``register_ml_model``). *Aliases* (``champion``, ``staging``, any name) point at one version of
a name each and are moved atomically; every move is appended to the alias history.

References (what ``models:/...`` URIs and the CLI accept):

>>> parse_ref("models:/fraud@champion")
ModelRef(name='fraud', version=None, alias='champion', label=None)
>>> parse_ref("fraud/3")
ModelRef(name='fraud', version=3, alias=None, label=None)
>>> parse_ref("models:/fraud/v1.2.0").label
'v1.2.0'
>>> parse_ref("fraud").describe()
'fraud (latest version)'
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Protocol

from mlflowdsl.tasks.services import GateRefused, RegistryError  # noqa: F401 - part of the registry API

MAX_VERSION = 2**63 - 1  # the largest version number a store holds (SQLite integers are 64-bit)
# Names become directory names and Redis key parts: no separators, no "..", nothing hidden.
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z")


def check_name(value: str, what: str = "model name") -> str:
    """``value`` if it is safe as a directory name and key part, else :class:`RegistryError`.

    >>> check_name("fraud_model")
    'fraud_model'
    >>> check_name("../etc")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    mlflowdsl.tasks.services.RegistryError: model name '../etc' is not a safe name: use letters, digits, ...
    """
    if not isinstance(value, str) or not SAFE_NAME.match(value) or ".." in value:
        raise RegistryError(
            f"{what} {value!r} is not a safe name: use letters, digits, '_', '-', '.', starting with a letter or "
            "digit, without '..' (no '/' or '..': names become directory names)"
        )
    return value


@dataclass(frozen=True)
class ModelRef:
    """A parsed reference: exactly one of ``version``/``alias``/``label``, or none (= latest)."""

    name: str
    version: int | None = None
    alias: str | None = None
    label: str | None = None

    def describe(self) -> str:
        if self.alias:
            return f"{self.name}@{self.alias}"
        if self.version is not None:
            return f"{self.name}/{self.version}"
        if self.label:
            return f"{self.name}/{self.label}"
        return f"{self.name} (latest version)"


def parse_ref(ref: str) -> ModelRef:
    """``models:/NAME@ALIAS``, ``models:/NAME/3``, ``models:/NAME/LABEL``, ``NAME`` (latest);
    the ``models:/`` prefix is optional."""
    text = ref.removeprefix("models:/").strip("/") if isinstance(ref, str) else ""
    if not text:
        raise RegistryError(f"empty model reference {ref!r}", hint="use models:/NAME@ALIAS or models:/NAME/VERSION")
    if "@" in text:
        name, _, alias = text.partition("@")
        return ModelRef(check_name(name), alias=check_name(alias, "alias"))
    name, _, version = text.partition("/")
    check_name(name)
    if not version or version == "latest":
        return ModelRef(name)
    if version.isdigit():
        number = int(version)
        if number > MAX_VERSION:
            raise RegistryError(f"no registered model {name}/{version}: version numbers go up to {MAX_VERSION}",
                                hint=f"`mlw models show {name}` lists its versions")
        return ModelRef(name, version=number)
    return ModelRef(name, label=check_name(version, "version label"))


@dataclass(frozen=True)
class ModelVersion:
    """One registered version; ``artifact_path`` is verified against ``sha256`` on load."""

    name: str
    version: int
    artifact_path: str
    sha256: str
    size_bytes: int = 0
    label: str | None = None
    model_type: str = ""
    framework: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    signature: dict[str, Any] = field(default_factory=dict)
    lineage: dict[str, Any] = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)

    @property
    def id(self) -> str:
        """The model id returned by ``register_ml_model`` (``name/version``)."""
        return f"{self.name}/{self.version}"

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelVersion":
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class AliasMove:
    """One entry of an alias history: ``alias`` of ``name`` moved from ``previous`` to ``version``
    (``version`` None: the alias was removed)."""

    name: str
    alias: str
    version: int | None
    previous: int | None
    at: float
    by: str = ""
    gate: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "AliasMove":
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


# Called inside the alias lock with the current holder (or None); raises to refuse the move and
# returns the gate's checks (recorded in the history) to allow it.
AliasCheck = Callable[["ModelVersion | None"], list[dict[str, Any]]]


class RegistryStore(Protocol):
    """Where registry metadata lives: SQLite (embedded) or Redis (cluster mode)."""

    def allocate_version(self, name: str) -> int: ...
    def put_version(self, mv: ModelVersion) -> None: ...
    def get_version(self, name: str, version: int) -> ModelVersion | None: ...
    def versions(self, name: str | None = None) -> list[ModelVersion]: ...
    def delete_version(self, name: str, version: int) -> None: ...
    def aliases(self, name: str) -> dict[str, int]: ...
    def move_alias(self, name: str, alias: str, version: int | None, *, by: str,
                   check: AliasCheck | None = None) -> AliasMove: ...
    def alias_history(self, name: str) -> list[AliasMove]: ...
    def put_deployment(self, record: dict[str, Any]) -> None: ...
    def get_deployment(self, name: str) -> dict[str, Any] | None: ...
    def deployments(self) -> list[dict[str, Any]]: ...
    def delete_deployment(self, name: str) -> None: ...
    def close(self) -> None: ...
