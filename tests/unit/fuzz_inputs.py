"""Inputs for fuzzing the whole compiler: a committed seed corpus (``fuzz_corpus/``) and
mutations of it, shared by the suite's fuzz test (``test_compiler_fuzz.py``) and the longer
run in ``bench/fuzz_compiler.py``.

A mutation works on the text of a seed: it deletes, duplicates, swaps or inserts characters,
or splices in a *hostile token*, a piece of input known to have broken compilers (numbers
that overflow, NUL bytes, lone surrogates, `${`, YAML anchors, deep brackets, quantities with
spaces). ``check(text, file)`` compiles one input and returns a problem (a string) when it
ended in anything but a plan or diagnostics.
"""

from __future__ import annotations

import random
import re
import time
from pathlib import Path

from mlflowdsl.compiler.api import compile_text
from mlflowdsl.errors import MlwError

CORPUS = Path(__file__).parent / "fuzz_corpus"

HOSTILE = [
    "9" * 4400, "-" + "9" * 25, "9223372036854775808", "1e400", "-1e400", "1e308d", "1e309GiB", "1e300GiB",
    "NaN", "Infinity", "-Infinity", "1e-400", "0.0000", "00", "5 GiB", "10 m", "4Gx", "1e3ms",
    "\x00", "\\u0000", "\\ud800", "\\udfff", "\ud800", "\\uD83D\\uDE00", "\u2028", "\ufeff", "\r", "\t", "\\",
    "${", "${}", "${params.", "${params.x}", "${a[*].b}" * 3, "\\${", '"""', '"', "'", "#", "\n",
    "[" * 60, "]", "{" * 60, "}", "(", ")", ",", ":", "=", "==", "..", "*", "-", ".",
    "&a ", "*a", "<<: *a", "!!python/object:os.system", "---", "? ", "- ", "|",
    "params.seed", "train[*].model", "prep.output", "train[x].y", "after prep", "foreach x in [1, 2]",
    "use u = t()", "template t() { }", "tune prep { }", "when = false", "cache { strategy = none }",
    'import "x.mlw"', 'import "/dev/zero"', 'import "a\\u0000b.mlw"',
    "true", "false", "null", "none", "task", "workflow", "mlw 2", "mlw 99999999999999999999",
    "int(1, 1e400)", "float(0, NaN)", "maximize(x)", "choice([])", '{"$ref": "x"}', '{"$ref": 1}',
    "\"task_id\": \"a\\n\"", "\"dependencies\": [\"a\", 1]", "\"foreach\": {\"var\": 1, \"in\": 2}",
]


_VALUE_START = re.compile(r"(?:=|:|\(|,)[ \t]*")
_VALUE_END = re.compile(r"[\s,}\])]")


def seeds() -> list[tuple[str, str]]:
    """(file name, text) of every seed; the name's suffix selects the .mlw or the document form."""
    return [(p.name, p.read_text(encoding="utf-8")) for p in sorted(CORPUS.iterdir()) if p.is_file()]


def mutate(text: str, rng: random.Random, steps: int | None = None) -> str:
    """``text`` after 1-4 random edits (or ``steps``)."""
    for _ in range(steps or rng.randint(1, 4)):
        n = len(text)
        i = rng.randrange(n + 1)
        op = rng.random()
        values = [m.end() for m in _VALUE_START.finditer(text)]
        if op < 0.3 and values:  # a value (after `=` or `:`) replaced by a hostile token
            start = rng.choice(values)
            end = _VALUE_END.search(text, start)
            stop = end.start() if end else len(text)
            text = text[:start] + rng.choice(HOSTILE) + text[stop:]
        elif op < 0.45:
            text = text[:i] + rng.choice(HOSTILE) + text[i:]
        elif op < 0.5 and n:
            j = min(n, i + rng.randint(1, 12))
            text = text[:i] + text[j:]
        elif op < 0.6 and n:
            j = min(n, i + rng.randint(1, 40))
            text = text[:i] + text[i:j] * rng.randint(2, 5) + text[i:]
        elif op < 0.7 and n > 1:
            a, b = sorted(rng.sample(range(n), 2))
            text = text[:a] + text[b] + text[a + 1:b] + text[a] + text[b + 1:]
        elif op < 0.85:
            text = text[:i] + chr(rng.choice([rng.randrange(32, 127), rng.randrange(0, 0x3000)])) + text[i:]
        else:  # replace a token-like run by a hostile token
            j = i
            while j < n and (text[j].isalnum() or text[j] in "_."):
                j += 1
            text = text[:i] + rng.choice(HOSTILE) + text[j:]
    return text


def check(text: str, file: str) -> tuple[str | None, float]:
    """Compile one input; (problem or None, seconds). A problem is any exception that is not
    an ``MlwError``, or a result with an error but no diagnostics or neither plan nor errors."""
    started = time.perf_counter()
    try:
        result = compile_text(text, file)
    except MlwError:
        return None, time.perf_counter() - started
    except Exception as exc:  # noqa: BLE001 - this is what the fuzzer looks for
        return f"{type(exc).__name__}: {str(exc)[:200]}", time.perf_counter() - started
    took = time.perf_counter() - started
    if result.plan is None and not result.errors:
        return "neither a plan nor an error", took
    for d in result.diagnostics:
        if d.span is None and not d.subject:
            return f"diagnostic {d.code} without a place", took
    return None, took
