"""New rows → curated partition files, each merged and replaced whole under a conditional write.

Layout (docs/design.md): per-user tables keep one file per user and partition, named by the
encoded user id; dimension tables one file per partition, `part`. `storage.update` re-reads and
re-merges when another transform replaced the file in between, so concurrent writers lose nothing.
"""

from __future__ import annotations

import functools
import json
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from datetime import date, timedelta

from chalicelib import layout
from chalicelib import storage as storage_module
from chalicelib.storage import Storage
from chalicelib.tables import TABLES, Table
from chalicelib.transform import merge, parquet_io, plays
from chalicelib.transform.objects import Row
from chalicelib.transform.raw import Run

DIMENSION_FILE = "part"
# Key-value metadata: which run a snapshot file holds; which run each dimension row came from.
RUN_AT, RUN_ID, ROW_RUNS = "run_at", "run_id", "row_runs"

# One run's rows for one file.
Contribution = tuple[Run, list[Row]]


def write_tables(
    storage: Storage,
    batch: Iterable[tuple[Run, dict[str, list[Row]]]],
    fates: Counter[str] | None = None,
) -> list[str]:
    """Merge the rows of one or more runs into their partition files, each file read and replaced
    once per batch; returns the keys of the files touched. `fates` counts what became of the
    export rows among them (`write_plays`).

    The merge is a function of the set of rows (and their runs), so a batch gives the same files
    as its runs one at a time, in any order — reprocess batches for speed.
    """
    files: dict[str, tuple[Table, list[Contribution]]] = {}
    plays_by_user: dict[str, list[Row]] = defaultdict(list)
    for run, rows_by_table in batch:
        for name, rows in rows_by_table.items():
            if name == "plays":  # pairs API plays with export rows across days: its own merge
                for row in rows:
                    plays_by_user[row["user_id"]].append(row)
                continue
            table = TABLES[name]
            for (value, file_name), file_rows in _files(table, run, rows).items():
                key = layout.curated_key(name, table.partition.name, value, file_name)
                files.setdefault(key, (table, []))[1].append((run, file_rows))
    for key, (table, contributions) in sorted(files.items()):
        storage_module.update(storage, key, _merger(table, contributions))
    touched = [
        key
        for user_id, rows in sorted(plays_by_user.items())
        for key in write_plays(storage, user_id, rows, fates)
    ]
    return sorted([*files, *touched])


def write_plays(
    storage: Storage,
    user_id: str,
    incoming: list[Row],
    fates: Counter[str] | None = None,
    attempts: int = 20,
) -> list[str]:
    """Merge one user's new plays into the `plays` files of their days and of the days around
    them (an export row may pair with an API play across midnight), recombining all of them
    (`transform.plays`); returns the keys of the files rewritten. `fates` counts what became of
    the incoming export rows (`plays.fate`).

    The files of a window change together, so one writer at a time changes a user's plays
    (`PLAYS_LEASE`); each file is still replaced under a conditional write, and a lost race
    (a lease that ran out) reads and combines the whole window again.
    """
    days = {date.fromisoformat(row["played_date"]) for row in incoming}
    window = sorted({day + timedelta(days=shift) for day in days for shift in (-1, 0, 1)})
    name = _user_file(user_id)
    keys = {
        day.isoformat(): layout.curated_key("plays", "played_date", day.isoformat(), name)
        for day in window
    }
    new_api = [plays.api_row(row) for row in incoming if row["source"] != "export"]
    new_export = [plays.export_row(row) for row in incoming if row["source"] == "export"]
    lease_key = layout.state_key("transform", "plays-lease", user_id)
    with storage_module.lease(storage, lease_key, seconds=PLAYS_LEASE, wait=PLAYS_LEASE):
        for attempt in range(attempts):
            current = {day: storage.get(key) for day, key in keys.items()}
            existing = {
                day: _plays_file(blob.data) for day, blob in current.items() if blob is not None
            }
            api, export = [], []
            for rows, metadata in existing.values():
                matched, account = plays.decode_matched(metadata), plays.decode_account(metadata)
                api_half, export_half = plays.halves(rows, matched, account)
                api += api_half
                export += export_half
            combined = plays.combine([*api, *new_api], [*export, *new_export])
            try:
                written = _write_days(storage, keys, current, existing, combined)
            except storage_module.PreconditionFailed:
                time.sleep(min(0.05 * 2**attempt, 1.0) * random.random())
                continue
            if fates is not None:
                fates.update(plays.fates(new_export, export, combined))
            return written
    raise storage_module.PreconditionFailed(f"plays of {user_id}: gave up after {attempts} races")


# Seconds one transform may hold a user's plays (the transform Lambda runs at most 300 s; a
# window of a year of days takes a few seconds locally, some tens on S3).
PLAYS_LEASE = 120.0


def _plays_file(data: bytes) -> tuple[list[Row], dict[str, str]]:
    """A plays file's rows with every column (files older than the export's columns lack them)
    and its metadata."""
    columns = TABLES["plays"].column_names
    rows, metadata = parquet_io.decode(data)
    return [{column: row.get(column) for column in columns} for row in rows], metadata


def _write_days(
    storage: Storage,
    keys: dict[str, str],
    current: dict[str, storage_module.Blob | None],
    existing: dict[str, tuple[list[Row], dict[str, str]]],
    combined: plays.Combined,
) -> list[str]:
    """Each day's file of the window whose rows changed, written under a conditional write.

    A row may move to another day (an export row paired with an API play across midnight): the
    days that lose a row are first written with their old rows kept beside the new ones, and
    cut only once every day has its new rows. Should a writer stop in between, no row is lost —
    taken apart again (`plays.halves`), a kept row is the duplicate of one already there.
    """
    table = TABLES["plays"]
    by_day: dict[str, list[Row]] = defaultdict(list)
    for row in combined.rows:
        by_day[row["played_at"].date().isoformat()].append(row)
    if set(by_day) - set(keys):  # cannot happen: every row comes from the window's days
        raise AssertionError(f"plays outside the window {sorted(keys)}: {sorted(by_day)}")
    final: dict[str, tuple[list[Row], dict[str, str]]] = {}
    for day in keys:
        rows = [{column: row[column] for column in table.column_names} for row in by_day[day]]
        final[day] = (rows, plays.file_metadata(by_day[day], combined.matched))
    etags = {day: blob.etag for day, blob in current.items() if blob is not None}
    written = []
    first, then = {}, {}
    for day, (rows, metadata) in final.items():
        before = existing.get(day, ([], {}))
        if (rows, metadata) == before:
            continue  # nothing new for this day: no write
        kept = {row["played_at"] for row in rows}
        lost = [row for row in before[0] if row["played_at"] not in kept]
        if lost:
            union = sorted([*rows, *lost], key=lambda row: row["played_at"])
            if (union, metadata) != before:
                first[day] = (union, metadata)
            then[day] = (rows, metadata)
        else:
            first[day] = (rows, metadata)
    for phase in (first, then):
        for day, (rows, metadata) in phase.items():
            etag = etags.get(day)
            data = parquet_io.encode(table, rows, metadata)
            if etag is None:
                etags[day] = storage.put(keys[day], data, if_none_match=True)
            else:
                etags[day] = storage.put(keys[day], data, if_match=etag)
            written.append(keys[day])
    return sorted(set(written))


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
    current = [*zip(existing, row_runs(metadata, len(existing)), strict=True)]
    incoming = [(row, origin) for origin, rows in _origins(contributions) for row in rows]
    kept = merge.winners(table, [*current, *incoming])
    if kept == current:
        return None  # every incoming row was known already: skip encoding and writing
    return parquet_io.encode(
        table, [row for row, _ in kept], {ROW_RUNS: _encoderow_runs(o for _, o in kept)}
    )


def _origins(contributions: list[Contribution]) -> list[tuple[tuple[str, ...], list[Row]]]:
    """Each contribution's rows under their run's `run_at` text, formatted once per run (not
    once per row: a batch holds hundreds of thousands of dimension rows)."""
    return [((run.order[0],), rows) for run, rows in contributions]


def _encoderow_runs(origins: Iterable[tuple[str, ...]]) -> str:
    """Compactly: the distinct run_at values, then one index into them per row."""
    run_ats = [origin[0] for origin in origins]
    runs = {run_at: i for i, run_at in enumerate(dict.fromkeys(run_ats))}  # in first-seen order
    index = list(map(runs.__getitem__, run_ats))
    return json.dumps({"runs": list(runs), "index": index}, separators=(",", ":"))


def row_runs(metadata: dict[str, str], count: int) -> list[tuple[str, ...]]:
    """Each dimension row's run (`(run_at,)`, ISO), as the file's metadata records them."""
    if ROW_RUNS not in metadata:
        return [("",)] * count  # a file written without provenance: its rows rank oldest
    decoded = json.loads(metadata[ROW_RUNS])
    runs = [(run_at,) for run_at in decoded["runs"]]  # one tuple per run, shared by its rows
    return [runs[i] for i in decoded["index"]]
