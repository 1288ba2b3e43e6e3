"""What ``mlw lint``/``compile`` can tell about a data file without loading it: its columns
(a CSV's first line through the csv module, a Parquet file's schema from its footer) and a
bounded sample of rows (the first ``SAMPLE_ROWS``) for columns with one value per row.

Only local files are read; a URL or any ``scheme:`` source is left to the task at run time.

>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "t.csv")
>>> _ = open(path, "w").write("id,name,y\\n1,a,0\\n2,b,1\\n")
>>> table_columns(path)
['id', 'name', 'y']
"""

from __future__ import annotations

import csv
import io
import os
import re
from difflib import get_close_matches
from typing import Any

from mlflowdsl.tasks import DataProblem

SAMPLE_ROWS = 1000
MIN_ROWS_FOR_DISTINCT = 50  # fewer sampled rows say nothing about "one value per row"
_MAX_HEADER_BYTES = 1 << 20
_ID_NAME = re.compile(r"(?i)(?:^|_)(?:id|uuid|guid|key)$|^(?:id|uuid|guid)")
CSV_SUFFIXES = (".csv", ".csv.gz", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")


def local_path(source: str, base_dir: str) -> str | None:
    """The local file ``source`` names (relative to ``base_dir``), or None for ``sklearn:``,
    URLs and other ``scheme:`` sources."""
    if not source or (":" in source.split("/")[0] and not os.path.isabs(source) and not source.startswith(".")):
        return None
    if "://" in source:
        return None
    return source if os.path.isabs(source) else os.path.normpath(os.path.join(base_dir, source))


def table_columns(path: str) -> list[str] | None:
    """The column names of a CSV or Parquet file, or None when they cannot be read cheaply
    (another format, pyarrow missing, a malformed file: the task reports it when it runs)."""
    lowered = path.lower()
    try:
        if lowered.endswith(CSV_SUFFIXES):
            with _open_text(path) as fh:
                return next(csv.reader(io.StringIO(fh.readline(_MAX_HEADER_BYTES))), [])
        if lowered.endswith(PARQUET_SUFFIXES):
            import pyarrow.parquet as pq  # noqa: PLC0415 - heavy: pyarrow only for a Parquet source

            return list(pq.read_schema(path).names)
    except (OSError, ValueError, ImportError, csv.Error, UnicodeDecodeError):
        return None
    return None


def sample_columns(path: str, columns: list[str]) -> dict[str, list[Any]]:
    """The values of ``columns`` in the first ``SAMPLE_ROWS`` rows ({} when unreadable)."""
    lowered = path.lower()
    try:
        if lowered.endswith(CSV_SUFFIXES):
            out: dict[str, list[Any]] = {c: [] for c in columns}
            with _open_text(path) as fh:
                reader = csv.DictReader(fh)
                for i, row in enumerate(reader):
                    if i >= SAMPLE_ROWS:
                        break
                    for c in columns:
                        out[c].append(_number(row.get(c)))
            return out
        if lowered.endswith(PARQUET_SUFFIXES):
            import pyarrow.parquet as pq  # noqa: PLC0415 - heavy: pyarrow only for a Parquet source

            batch = next(pq.ParquetFile(path).iter_batches(batch_size=SAMPLE_ROWS, columns=columns), None)
            return {} if batch is None else {c: batch.column(c).to_pylist() for c in columns}
    except (OSError, ValueError, ImportError, KeyError, csv.Error, UnicodeDecodeError):
        return {}
    return {}


def one_value_per_row(values: list[Any]) -> bool:
    present = [v for v in values if v not in (None, "")]
    return len(present) >= MIN_ROWS_FOR_DISTINCT and len(set(present)) == len(present)


def looks_like_text(values: list[Any]) -> bool:
    return any(isinstance(v, str) for v in values if v not in (None, ""))


def check_table(source: str, base_dir: str, *, target: str | None, target_required: bool,
                drop: list[str], columns: dict[str, list[str]] | None = None) -> list[DataProblem]:
    """The lint checks of one table source: the file exists; the target (when required), the
    ``drop`` columns and any other named ``columns`` (attribute -> names) are in its header;
    a text target or feature with one value per sampled row is a warning."""
    path = local_path(source, base_dir)
    if path is None:
        return []
    if not os.path.exists(path):
        return [DataProblem("source", f"data file not found: {path}", kind="file", warning=True,
                            hint="check the path (relative paths are relative to the workflow file); "
                                 "the task will fail unless the file exists where it runs")]
    if not os.path.isfile(path):  # a FIFO or device named data.csv would block or never end
        return []
    header = table_columns(path)
    if header is None:
        return []
    problems: list[DataProblem] = []
    if target is None and target_required:
        problems.append(DataProblem("source", f"no target column given for {source}",
                                    hint=f'set target = "<column>" (columns: {_listed(header)})'))
    wanted = [("target", [target] if target is not None else []), ("drop", drop), *(columns or {}).items()]
    for attribute, names in wanted:
        for name in names:
            if name not in header:
                close = _close(name, header)
                problems.append(DataProblem(attribute, f"{attribute} column `{name}` is not in {source}",
                                            hint=(f"did you mean `{close}`? " if close else "") + f"columns: {_listed(header)}"))
    if problems:
        return problems
    features = [c for c in header if c != target and c not in drop]
    sample = sample_columns(path, ([target] if target else []) + features)
    if target and target in sample and looks_like_text(sample[target]) and one_value_per_row(sample[target]):
        problems.append(DataProblem("target", f"target `{target}` has a different text value in each of the first "
                                    f"{len(sample[target])} rows: free text or an id, not a label", warning=True,
                                    hint="choose a column with repeated classes (or a numeric target for regression)"))
    for c in features:
        values = sample.get(c, [])
        if one_value_per_row(values) and (looks_like_text(values) or _ID_NAME.search(c)):
            problems.append(DataProblem("source", f"column `{c}` of {source} looks like an id (a different value in "
                                        f"each of the first {len(values)} rows): it would be encoded as "
                                        f"{'one feature per row' if looks_like_text(values) else 'a meaningless number'}",
                                        warning=True, hint=f'add it to drop = ["{c}"]'))
    return problems


def _open_text(path: str):
    if path.lower().endswith(".gz"):
        import gzip  # noqa: PLC0415 - gzip only for a compressed CSV

        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def _number(value: Any) -> Any:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return value


def _close(name: str, options: list[str]) -> str | None:
    found = get_close_matches(name, options, n=1, cutoff=0.6)
    return found[0] if found else None


def _listed(header: list[str], limit: int = 12) -> str:
    shown = ", ".join(header[:limit])
    return shown + (f", … ({len(header)} in all)" if len(header) > limit else "")
