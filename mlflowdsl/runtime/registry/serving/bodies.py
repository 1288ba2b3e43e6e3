"""Request bodies of the serving app: reading them within a size limit while they stream in,
decoding them as strict JSON, and checking the rows before they reach a model.

Strict means: UTF-8 only (no UTF-16/32 guessing), no ``NaN``/``Infinity``, no number that does
not fit a double (``1e400``, a 400-digit integer), at most 1,024 levels of nesting (orjson's
limit: a 100,000-deep body is refused at once, without recursion), and every cell a string or
a finite number (``null`` and booleans are refused: a model would silently read them as
missing or as 0/1). Each refusal is a :class:`BadRequest` with the status and a message
saying what to change.

>>> decode(b'{"rows": [{"x": 1}]}')
{'rows': [{'x': 1}]}
>>> decode(b'[1e400]')  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
mlflowdsl...BadRequest: the body is not valid JSON (...): number is infinity when parsed as double: ...
>>> check_rows([{"x": 1.5, "c": "web"}, {"x": True, "c": "shop"}])  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
mlflowdsl...BadRequest: row 1, column "x": true is not a number or a string; send a number or a string in every cell
"""

from __future__ import annotations

from typing import Any, AsyncIterator

import orjson

MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_ROWS = 100_000
CELL_TYPES = (int, float, str)


class BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def too_large(limit: int) -> BadRequest:
    return BadRequest(413, f"the body is larger than {limit} bytes; send fewer rows per request")


async def read_limited(headers: Any, stream: AsyncIterator[bytes], limit: int = MAX_BODY_BYTES) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed ``limit``: from its
    ``Content-Length`` before reading anything, else once the streamed chunks pass it."""
    length = headers.get("content-length")
    if length is not None:
        try:
            declared = int(length)
        except ValueError:
            raise BadRequest(400, f"Content-Length is not a number: {length[:40]!r}") from None
        if declared > limit:
            raise too_large(limit)
    chunks, size = [], 0
    async for chunk in stream:
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def decode(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(400, "the body is not valid JSON (UTF-8, finite numbers, at most 1024 levels deep): "
                         f"{exc}") from None


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()[:60] if not isinstance(value, (bytes, bytearray)) else repr(value)[:60]


def check_rows(rows: list[Any], columns: list[str] | tuple[str, ...] = ()) -> list[Any]:
    """``rows`` if they are a non-empty list of objects (or of lists) of strings and finite
    numbers within the row limit, else :class:`BadRequest`."""
    if not isinstance(rows, list):
        raise BadRequest(422, f'"rows" must be a list of rows, got {type(rows).__name__}')
    if not rows:
        raise BadRequest(422, '"rows" is empty: send at least one row')
    if len(rows) > MAX_ROWS:
        raise BadRequest(413, f"{len(rows)} rows in one request; the limit is {MAX_ROWS}")
    kinds = {type(row) for row in rows}
    if not (kinds <= {dict} or kinds <= {list}):
        raise BadRequest(422, "every row must be an object {column: value} (or every row a list of values); "
                         f"got {', '.join(sorted(k.__name__ for k in kinds))}")
    as_dicts = dict in kinds
    for i, row in enumerate(rows):
        values = row.values() if as_dicts else row
        if all(type(v) in CELL_TYPES for v in values):  # the fast path: bool is not int here
            continue
        for key, value in (row.items() if as_dicts else enumerate(row)):
            if type(value) not in CELL_TYPES:
                where = f'column "{key}"' if as_dicts else f"value {key}"
                raise BadRequest(422, f"row {i}, {where}: {_json_text(value)} is not a number or a string; "
                                 "send a number or a string in every cell")
    if as_dicts and columns:
        missing = sorted({c for c in columns if any(c not in row for row in rows)})
        if missing:
            raise BadRequest(422, f"missing column(s): {', '.join(missing)}; the model needs: " + ", ".join(columns))
    if not as_dicts and columns:
        wrong = next((i for i, row in enumerate(rows) if len(row) != len(columns)), None)
        if wrong is not None:
            raise BadRequest(422, f"row {wrong} has {len(rows[wrong])} values; the model needs {len(columns)} "
                             f"in this order: " + ", ".join(columns))
    return rows


def rows_of_predict(data: Any) -> tuple[list[Any], bool]:
    """(rows, probabilities wanted) of a ``POST /predict`` body: ``{"rows": [...]}`` (with an
    optional ``"probabilities": true``) or the bare list of rows."""
    probabilities = False
    if isinstance(data, dict):
        if "rows" not in data:
            raise BadRequest(422, 'the body must be {"rows": [...]} or a JSON list of rows; got an object with keys: '
                             + ", ".join(map(str, data)))
        probabilities = data.get("probabilities", False)
        if not isinstance(probabilities, bool):
            raise BadRequest(422, f'"probabilities" must be true or false, got {_json_text(probabilities)}')
        data = data["rows"]
    return data, probabilities
