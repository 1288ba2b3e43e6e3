"""The compiler's bounds: what a source may hold before it is refused with a diagnostic.

Every input ends in a plan or in diagnostics, in time and memory proportional to its size;
these limits keep the few constructs that could grow faster than their text (numbers that
overflow, template expansion, imports that are not files) inside that promise.

>>> number_problem(2**63), number_problem(1.5), number_problem(float("inf"))
('an integer must lie within -9223372036854775808..9223372036854775807', None, 'not a finite 64-bit float (too large, NaN or infinite)')
"""

from __future__ import annotations

import math

# Integers are 64-bit signed in the plan (JSON readers elsewhere need not handle bignums).
MIN_INT = -(2**63)
MAX_INT = 2**63 - 1
MAX_INT_DIGITS = len(str(MAX_INT)) + 1  # a longer literal is out of range without converting it

# Sources: a `.mlw` file, an imported file, a JSON/YAML document, a params file.
MAX_SOURCE_BYTES = 16 * 2**20

# Template expansion: how deep `use` may nest, and how many tasks uses may expand to in one
# workflow (tasks written in the workflow and `foreach` copies there are not counted: they
# grow with the text).
MAX_TEMPLATE_DEPTH = 16
MAX_TEMPLATE_TASKS = 10_000

# YAML documents: how many values aliases (`*x`) may add to a document beyond the values
# written in it (an alias bomb expands exponentially with the number of aliases).
MAX_YAML_ALIAS_NODES = 50_000

# A diagnostic shows at most this many characters of its source line around the caret, and
# its message and hint are cut to this many characters (they may quote an input).
SOURCE_WINDOW = 120
MAX_MESSAGE = 1000


def number_problem(value: int | float) -> str | None:
    """What is wrong with a number literal's value, or None when it is representable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        if not MIN_INT <= value <= MAX_INT:
            return f"an integer must lie within {MIN_INT}..{MAX_INT}"
        return None
    if not math.isfinite(value):
        return "not a finite 64-bit float (too large, NaN or infinite)"
    return None
