"""Performance helpers shared by the compiler's stages."""

from __future__ import annotations

import contextlib
import gc
from typing import Iterator


@contextlib.contextmanager
def no_gc_pauses() -> Iterator[None]:
    """Compiling and rendering allocate many small, long-lived objects (AST, resolved tasks,
    IR, JSON dicts) and create no garbage cycles; the cyclic collector would rescan them over
    and over as they accumulate. Reference counting
    still frees everything; the collector's previous state is restored afterwards.

    >>> with no_gc_pauses():
    ...     gc.isenabled()
    False
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
