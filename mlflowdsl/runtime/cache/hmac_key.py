"""The key that signs cache entries on disk and in Redis.

``settings.cache_hmac_key`` (``MLW_CACHE_HMAC_KEY``) when set. Otherwise a random key is made
once and kept in ``<home>/cache_hmac.key`` (mode 0600; a key file owned by another user is
refused, since whoever wrote it could sign entries). That file only works where every
process shares the home directory (one machine, e.g. the embedded cluster): all
orchestrators and workers of a cluster must be given the same key through
``MLW_CACHE_HMAC_KEY``, or each will reject (and delete) the others' entries as tampered.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
import tempfile
from pathlib import Path

from mlflowdsl.errors import ConfigError
from mlflowdsl.settings import Settings

log = logging.getLogger(__name__)

KEY_FILE = "cache_hmac.key"


def cache_hmac_key(settings: Settings) -> bytes:
    if settings.cache_hmac_key:
        return settings.cache_hmac_key.encode()
    return read_or_create_key_file(settings.home_path / KEY_FILE)


def existing_cache_hmac_key(settings: Settings) -> bytes | None:
    """The key if there is one already (``None`` when no key file exists yet): for read-only
    checks, which must not create the file (no entry can be valid without it)."""
    if settings.cache_hmac_key or (settings.home_path / KEY_FILE).exists():
        return cache_hmac_key(settings)
    return None


def read_or_create_key_file(path: Path) -> bytes:
    """Read the key in ``path``, creating it (0600, atomically) if it does not exist yet.

    Several processes may race to create it: each writes a private temp file and hard-links
    it into place; ``link`` fails for all but one, and the losers read the winner's key.
    """
    if not path.exists():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".cache_hmac.")  # created 0600
            try:
                with os.fdopen(fd, "w") as f:
                    f.write(secrets.token_hex(32) + "\n")
                    f.flush()
                    os.fsync(f.fileno())
                os.link(tmp, path)
            except FileExistsError:  # another process linked its key first: that one is read below
                pass
            finally:
                os.unlink(tmp)
        except OSError as exc:
            raise ConfigError(f"cannot create the cache signing key {path}: {exc}", subject="MLW_CACHE_HMAC_KEY",
                              hint="set MLW_CACHE_HMAC_KEY to a long random string, or make MLW_HOME writable") from None
    try:
        st = path.stat()
        mode, owner = st.st_mode, st.st_uid
        key = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read the cache signing key {path}: {exc}", subject="MLW_CACHE_HMAC_KEY",
                          hint="set MLW_CACHE_HMAC_KEY, or fix the file's permissions") from None
    if not key:
        raise ConfigError(f"the cache signing key file {path} is empty", subject="MLW_CACHE_HMAC_KEY",
                          hint="delete the file to have a new key generated, or set MLW_CACHE_HMAC_KEY")
    if hasattr(os, "getuid") and owner != os.getuid():
        # whoever could put it there could sign (forge) cache entries with it
        raise ConfigError(f"the cache signing key {path} belongs to another user (uid {owner})", subject="MLW_CACHE_HMAC_KEY",
                          hint="on a home shared by several users set MLW_CACHE_HMAC_KEY (kept outside the home); "
                               "otherwise remove the file to have a new key made")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("cache signing key %s is readable by other users (mode %o); chmod 600 it", path, mode & 0o777)
    return key.encode()
