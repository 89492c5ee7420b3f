"""New rows → curated partition files, each merged and replaced whole under a conditional write.

Layout (docs/design.md): per-user tables keep one file per user and partition, named by the
encoded user id; dimension tables one file per partition, `part`. `storage.update` re-reads and
re-merges when another transform replaced the file in between, so concurrent writers lose nothing.
"""

from __future__ import annotations

import functools
import json
from collections import defaultdict
from collections.abc import Callable, Iterable

from chalicelib import layout
from chalicelib import storage as storage_module
from chalicelib.storage import Storage
from chalicelib.tables import TABLES, Table
from chalicelib.transform import merge, parquet_io
from chalicelib.transform.objects import Row
from chalicelib.transform.raw import Run

DIMENSION_FILE = "part"
# Key-value metadata: which run a snapshot file holds; which run each dimension row came from.
RUN_AT, RUN_ID, ROW_RUNS = "run_at", "run_id", "row_runs"

# One run's rows for one file.
Contribution = tuple[Run, list[Row]]


def write_tables(storage: Storage, batch: Iterable[tuple[Run, dict[str, list[Row]]]]) -> list[str]:
    """Merge the rows of one or more runs into their partition files, each file read and replaced
    once per batch; returns the keys of the files touched.

    The merge is a function of the set of rows (and their runs), so a batch gives the same files
    as its runs one at a time, in any order — reprocess batches for speed.
    """
    files: dict[str, tuple[Table, list[Contribution]]] = {}
    for run, rows_by_table in batch:
        for name, rows in rows_by_table.items():
            table = TABLES[name]
            for (value, file_name), file_rows in _files(table, run, rows).items():
                key = layout.curated_key(name, table.partition.name, value, file_name)
                files.setdefault(key, (table, []))[1].append((run, file_rows))
    for key, (table, contributions) in sorted(files.items()):
        storage_module.update(storage, key, _merger(table, contributions))
    return sorted(files)


def _files(table: Table, run: Run, rows: list[Row]) -> dict[tuple[str, str], list[Row]]:
    """Rows grouped by the file they belong in, the partition column moved into the key."""
    files: dict[tuple[str, str], list[Row]] = defaultdict(list)
    if table.name in merge.SNAPSHOT_TABLES:
        # Even a snapshot with no rows replaces an earlier one of the day (the list is empty now).
        files[(run.snapshot_date, layout.encode(run.user_id))] = []
    columns, partition = table.column_names, table.partition.name
    for row in rows:
        name = _user_file(row["user_id"]) if table.per_user else DIMENSION_FILE
        files[(row[partition], name)].append({column: row[column] for column in columns})
    return files


@functools.lru_cache(maxsize=1024)
def _user_file(user_id: str) -> str:
    """A per-user file's name; cached because quoting costs more than the rest of a row's trip."""
    return layout.encode(user_id)


def _merger(
    table: Table, contributions: list[Contribution]
) -> Callable[[bytes | None], bytes | None]:
    """The read-modify-write step for one file: current bytes (or None) → new bytes (or None)."""

    def change(current: bytes | None) -> bytes | None:
        existing, metadata = parquet_io.decode(current) if current is not None else ([], {})
        if table.name in merge.SNAPSHOT_TABLES:
            return _snapshot(table, max(contributions, key=lambda c: c[0].order), metadata)
        if table.per_user:
            rows = [row for _, rows in contributions for row in rows]
            merged = merge.dedupe(table, [*existing, *rows])
            # Nothing new (a re-delivery, an overlapping poll): skip encoding and writing.
            return None if merged == existing else parquet_io.encode(table, merged, {})
        return _dimension(table, existing, metadata, contributions)

    return change


def _snapshot(table: Table, latest: Contribution, metadata: dict[str, str]) -> bytes | None:
    (run, rows) = latest
    current = (metadata[RUN_AT], metadata[RUN_ID]) if RUN_AT in metadata else None
    if not merge.newer_snapshot(current, run.order):
        return None  # an older run arriving late changes nothing
    run_at, run_id = run.order
    return parquet_io.encode(table, merge.dedupe(table, rows), {RUN_AT: run_at, RUN_ID: run_id})


def _dimension(
    table: Table, existing: list[Row], metadata: dict[str, str], contributions: list[Contribution]
) -> bytes | None:
    """Union by id; each row remembers its run (`run_at`) so a later run's row can win."""
    current = [*zip(existing, _row_runs(metadata, len(existing)), strict=True)]
    incoming = [(row, origin) for origin, rows in _origins(contributions) for row in rows]
    kept = merge.winners(table, [*current, *incoming])
    if kept == current:
        return None  # every incoming row was known already: skip encoding and writing
    return parquet_io.encode(
        table, [row for row, _ in kept], {ROW_RUNS: _encode_row_runs(o for _, o in kept)}
    )


def _origins(contributions: list[Contribution]) -> list[tuple[tuple[str, ...], list[Row]]]:
    """Each contribution's rows under their run's `run_at` text, formatted once per run (not
    once per row: a batch holds hundreds of thousands of dimension rows)."""
    return [((run.order[0],), rows) for run, rows in contributions]


def _encode_row_runs(origins: Iterable[tuple[str, ...]]) -> str:
    """Compactly: the distinct run_at values, then one index into them per row."""
    run_ats = [origin[0] for origin in origins]
    runs = {run_at: i for i, run_at in enumerate(dict.fromkeys(run_ats))}  # in first-seen order
    index = list(map(runs.__getitem__, run_ats))
    return json.dumps({"runs": list(runs), "index": index}, separators=(",", ":"))


def _row_runs(metadata: dict[str, str], count: int) -> list[tuple[str, ...]]:
    if ROW_RUNS not in metadata:
        return [("",)] * count  # a file written without provenance: its rows rank oldest
    decoded = json.loads(metadata[ROW_RUNS])
    runs = [(run_at,) for run_at in decoded["runs"]]  # one tuple per run, shared by its rows
    return [runs[i] for i in decoded["index"]]
