"""Quantity units of the `.mlw` language and their conversion to canonical IR numbers.

Three kinds of quantity exist; each converts to one canonical unit:

- ``duration``: ``ms s m h d`` -> seconds (float)
- ``size``:     ``B KB MB GB TB KiB MiB GiB TiB`` -> bytes (int)
- ``rate``:     ``bps Kbps Mbps Gbps`` -> bits per second (int)

>>> convert(4, "GiB")
('size', 4294967296)
>>> convert(250, "ms")
('duration', 0.25)
>>> convert(1, "Gbps")
('rate', 1000000000)
>>> kind_of("Mbps")
'rate'
"""

from __future__ import annotations

import difflib
import math

from mlflowdsl.grammar.limits import MAX_INT

# unit -> (kind, factor to the canonical unit). Decimal prefixes for KB/MB/... and the
# rates (as networking uses them), binary prefixes for KiB/MiB/...
UNITS: dict[str, tuple[str, int | float]] = {
    "ms": ("duration", 0.001),
    "s": ("duration", 1),
    "m": ("duration", 60),
    "h": ("duration", 3600),
    "d": ("duration", 86400),
    "B": ("size", 1),
    "KB": ("size", 10**3),
    "MB": ("size", 10**6),
    "GB": ("size", 10**9),
    "TB": ("size", 10**12),
    "KiB": ("size", 2**10),
    "MiB": ("size", 2**20),
    "GiB": ("size", 2**30),
    "TiB": ("size", 2**40),
    "bps": ("rate", 1),
    "Kbps": ("rate", 10**3),
    "Mbps": ("rate", 10**6),
    "Gbps": ("rate", 10**9),
}


class UnknownUnit(ValueError):
    """``unit`` is not a known quantity unit; ``kind`` is the kind it most resembles."""

    def __init__(self, unit: str, kind: str | None):
        self.unit = unit
        self.kind = kind
        super().__init__(unit)


class QuantityOutOfRange(ValueError):
    """The quantity does not fit its canonical unit (an infinite duration, more than 2**63-1
    bytes or bit/s)."""

    def __init__(self, raw: str, kind: str):
        self.raw = raw
        self.kind = kind
        super().__init__(f"the {kind} `{raw}` is too large")


def units_of(kind: str) -> tuple[str, ...]:
    """The units of one kind, in table order.

    >>> units_of("rate")
    ('bps', 'Kbps', 'Mbps', 'Gbps')
    """
    return tuple(u for u, (k, _) in UNITS.items() if k == kind)


def kind_of(unit: str) -> str:
    """The kind of ``unit``; raises ``UnknownUnit`` (with the closest kind) for unknown units."""
    entry = UNITS.get(unit)
    if entry is None:
        raise UnknownUnit(unit, guess_kind(unit))
    return entry[0]


def guess_kind(unit: str) -> str | None:
    """The kind an unknown unit was probably meant to be, so an error can list that kind's
    units: ``4Gx`` -> size, ``10sec`` -> duration, ``1Gbit`` -> rate.

    >>> guess_kind("Gx"), guess_kind("sec"), guess_kind("Gbit"), guess_kind("zzz")
    ('size', 'duration', 'rate', None)
    """
    low = unit.lower()
    if "bp" in low or "bit" in low:
        return "rate"
    if low.endswith(("b", "ib")) or low[:1] in ("k", "g", "t"):
        return "size"
    if low[:1] in ("s", "h", "d", "m") or low in ("sec", "min", "hr", "day", "days"):
        return "duration"
    close = difflib.get_close_matches(unit, list(UNITS), n=1, cutoff=0.5)
    return UNITS[close[0]][0] if close else None


def suggest(unit: str) -> str | None:
    """The known unit closest to ``unit`` (for a "did you mean" hint), or None.

    >>> suggest("Gb"), suggest("GiBs"), suggest("sec")
    ('GB', 'GiB', 's')
    """
    folded = [u for u in UNITS if u.lower() == unit.lower()]
    if folded:
        return folded[0]
    kind = guess_kind(unit)
    pool = list(units_of(kind)) if kind else list(UNITS)
    close = difflib.get_close_matches(unit, pool, n=1, cutoff=0.3)
    return close[0] if close else None


def convert(value: int | float, unit: str) -> tuple[str, int | float]:
    """``(kind, number in the canonical unit)``: seconds as float, bytes and bits/s as int.

    Sizes and rates are rounded to whole bytes / bits (``1.5KiB`` is 1536 bytes). A result that
    is not finite, or a size or rate above 2**63-1, raises ``QuantityOutOfRange``.

    >>> convert(1.5, "KiB")
    ('size', 1536)
    >>> convert(2, "h")
    ('duration', 7200.0)
    """
    kind = kind_of(unit)
    factor = UNITS[unit][1]
    scaled = float(value) * factor
    if not math.isfinite(scaled) or (kind != "duration" and abs(scaled) > MAX_INT):
        raise QuantityOutOfRange(f"{value:g}{unit}", kind)
    if kind == "duration":
        return kind, scaled
    return kind, int(round(scaled))
