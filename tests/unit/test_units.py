"""Quantity units: conversion to canonical IR numbers, kinds, and suggestions for typos."""

from __future__ import annotations

import pytest

from mlflowdsl.grammar.units import UNITS, UnknownUnit, convert, guess_kind, kind_of, suggest, units_of


@pytest.mark.parametrize(
    "value, unit, expected",
    [
        (250, "ms", ("duration", 0.25)),
        (30, "s", ("duration", 30.0)),
        (10, "m", ("duration", 600.0)),
        (2, "h", ("duration", 7200.0)),
        (7, "d", ("duration", 604800.0)),
        (512, "B", ("size", 512)),
        (2, "KB", ("size", 2000)),
        (500, "MB", ("size", 500_000_000)),
        (2, "GB", ("size", 2_000_000_000)),
        (1, "TB", ("size", 10**12)),
        (1, "KiB", ("size", 1024)),
        (512, "MiB", ("size", 512 * 2**20)),
        (4, "GiB", ("size", 4 * 2**30)),
        (1, "TiB", ("size", 2**40)),
        (1.5, "KiB", ("size", 1536)),
        (9600, "bps", ("rate", 9600)),
        (56, "Kbps", ("rate", 56_000)),
        (100, "Mbps", ("rate", 100_000_000)),
        (1, "Gbps", ("rate", 10**9)),
    ],
)
def test_convert(value, unit, expected):
    kind, number = convert(value, unit)
    assert (kind, number) == expected
    assert type(number) is type(expected[1])  # seconds are float, bytes and bits/s int


def test_every_unit_has_a_kind_listed_once():
    assert set(UNITS) == {u for k in ("duration", "size", "rate") for u in units_of(k)}
    assert units_of("duration") == ("ms", "s", "m", "h", "d")


def test_unknown_unit_raises_with_the_kind_it_resembles():
    with pytest.raises(UnknownUnit) as info:
        kind_of("Gx")
    assert info.value.kind == "size"
    with pytest.raises(UnknownUnit):
        convert(1, "parsec")


@pytest.mark.parametrize(
    "unit, kind", [("Gx", "size"), ("gib", "size"), ("sec", "duration"), ("min", "duration"),
                   ("Gbit", "rate"), ("mbps", "rate"), ("zzz", None)],
)
def test_guess_kind(unit, kind):
    assert guess_kind(unit) == kind


@pytest.mark.parametrize("unit, close", [("Gb", "GB"), ("gib", "GiB"), ("MBPS", "Mbps"), ("hr", "h"), ("zzz", None)])
def test_suggest(unit, close):
    assert suggest(unit) == close
