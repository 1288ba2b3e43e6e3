"""Model artifacts on disk: ``<home>/models/<name>/<version>/model.joblib`` with a sha256.

Paths are built only from checked names and version numbers, and the result is verified to lie
inside the artifact root (defence in depth against a name that slipped past the check). A load
recomputes the checksum: a file changed or truncated after registration is refused.

A version's record (in ``registry.db`` or, in cluster mode, in Redis) names its artifact's
path; whoever can write that store could point it at any pickle. :func:`confined` refuses a
version whose artifact is not under ``<home>/models`` before anything is read or unpickled.
"""

from __future__ import annotations

import hashlib
import io
import os
from typing import Any

from mlflowdsl.files import atomic_write_bytes
from mlflowdsl.runtime.registry.models import RegistryError, check_name

ARTIFACT_FILE = "model.joblib"


def artifact_dir(root: str, name: str, version: int) -> str:
    """The directory of one version, refusing anything that would leave ``root``.

    >>> artifact_dir("/tmp/models", "fraud", 3)
    '/tmp/models/fraud/3'
    """
    check_name(name)
    base = os.path.realpath(root)
    path = os.path.realpath(os.path.join(base, name, str(int(version))))
    if os.path.commonpath([base, path]) != base:
        raise RegistryError(f"model artifact path for {name!r} leaves the artifact directory {base}")
    return path


def confined(root: str, mv: Any) -> Any:
    """``mv`` (a ModelVersion) if its artifact lies under the artifact root ``root``; a
    RegistryError otherwise (nothing is read).

    >>> from types import SimpleNamespace as V
    >>> confined("/srv/models", V(id="m/1", artifact_path="/srv/models/m/1/model.joblib")).id
    'm/1'
    >>> try:
    ...     confined("/srv/models", V(id="m/1", artifact_path="/tmp/evil.joblib"))
    ... except RegistryError as exc:
    ...     print(exc.message)
    the artifact of m/1 is outside the registry's artifact directory /srv/models; refused without reading it
    """
    base = os.path.realpath(root)
    path = os.path.realpath(str(mv.artifact_path))
    if os.path.commonpath([base, path]) != base or path == base:
        raise RegistryError(
            f"the artifact of {mv.id} is outside the registry's artifact directory {base}; refused without reading it",
            subject=str(mv.artifact_path),
            hint="its record was changed by someone who can write the registry store (registry.db or Redis), or the "
                 "home moved: delete the version (mlw models delete) and register the model again")
    return mv


def dump_model(model: Any) -> bytes:
    import joblib  # noqa: PLC0415 - heavy: joblib only when a model is registered

    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    return buffer.getvalue()


def read_source(source: Any) -> bytes:
    """The bytes to store for ``source``: a model object (joblib-dumped) or a path to a
    ``.joblib`` file (copied as is, after checking it loads)."""
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise RegistryError(f"model artifact not found: {path}", hint="pass a path to a .joblib model file")
        with open(path, "rb") as fh:
            return fh.read()
    return dump_model(source)


def store_artifact(root: str, name: str, version: int, payload: bytes) -> tuple[str, str]:
    """Write ``payload`` atomically; returns (absolute path, sha256)."""
    path = os.path.join(artifact_dir(root, name, version), ARTIFACT_FILE)
    atomic_write_bytes(path, payload)
    return path, hashlib.sha256(payload).hexdigest()


def checked_bytes(path: str, sha256: str, shown: str) -> bytes:
    """A stored model's bytes, after checking its checksum."""
    try:
        with open(path, "rb") as fh:
            payload = fh.read()
    except OSError as exc:
        raise RegistryError(f"cannot read the artifact of {shown}: {exc}", subject=path,
                            hint="the artifact directory must be reachable from this machine") from None
    actual = hashlib.sha256(payload).hexdigest()
    if actual != sha256:
        raise RegistryError(f"artifact of {shown} does not match its checksum (expected {sha256[:12]}..., "
                            f"found {actual[:12]}...)", subject=path,
                            hint="the file was changed after registration; register the model again")
    return payload


def load_artifact(path: str, sha256: str, shown: str) -> Any:
    """Load a stored model after checking its checksum."""
    import joblib  # noqa: PLC0415 - heavy: joblib only when a model is loaded

    payload = checked_bytes(path, sha256, shown)
    return joblib.load(io.BytesIO(payload))
