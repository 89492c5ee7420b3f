"""How rows already in a partition file and new rows combine. Pure: no I/O.

The result must not depend on the order raw objects arrive in, nor on how often: every choice
below is a function of the rows' contents (and their run's order), never of arrival order.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from chalicelib.tables import Table
from chalicelib.transform.objects import Row

# Tables whose file for a user and day holds exactly one run: the latest of that day.
SNAPSHOT_TABLES = frozenset({"playlists", "playlist_items", "top_items"})

# A row and the order of the run it came from (`Run.order`); "" where the run does not matter.
Candidate = tuple[Row, tuple[str, ...]]


def dedupe(table: Table, rows: Iterable[Row]) -> list[Row]:
    """One row per key of `table` (see `winners`), sorted by key."""
    return [row for row, _ in winners(table, ((row, ()) for row in rows))]


def winners(table: Table, candidates: Iterable[Candidate]) -> list[Candidate]:
    """One candidate per key, sorted by key. The winner for a key is, in this order: the one with
    known `genres` (artists), the one from the later run, then the greatest by content."""
    best: dict[tuple[Any, ...], Candidate] = {}
    for candidate in candidates:
        key = tuple(candidate[0][column] for column in table.key)
        current = best.get(key)
        if current is None or _beats(table, candidate, current):
            best[key] = candidate
    return [best[key] for key in sorted(best, key=sortable)]


def _beats(table: Table, new: Candidate, old: Candidate) -> bool:
    """`new` ranks above `old` (see `winners`). Only called on a key collision, so the costly
    tie-break (`canonical`) is computed for few rows."""
    (row, origin), (old_row, old_origin) = new, old
    if row == old_row:
        return origin > old_origin
    genres = table.name == "artists"
    first = (genres and row.get("genres") is not None, origin)
    second = (genres and old_row.get("genres") is not None, old_origin)
    if first != second:
        return first > second
    return canonical(row) > canonical(old_row)


def newer_snapshot(current: tuple[str, ...] | None, incoming: tuple[str, ...]) -> bool:
    """True when a snapshot from run `incoming` must replace the file's run `current`.

    The same run replaces itself (its rows are the same), so a re-delivery changes nothing.
    """
    return current is None or incoming >= current


def sortable(key: tuple[Any, ...]) -> tuple[tuple[bool, Any], ...]:
    """A key made comparable when some of its values are null (nulls sort first)."""
    return tuple((value is not None, value if value is not None else 0) for value in key)


def canonical(row: Row) -> str:
    """A total, stable text form of a row, used only to break ties deterministically."""
    return json.dumps(row, sort_keys=True, default=str)
