"""How rows already in a partition file and new rows combine. Pure: no I/O.

The result must not depend on the order raw objects arrive in, nor on how often: every choice
below is a function of the rows' contents (and their run's order), never of arrival order.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Iterable
from typing import Any

from chalicelib.tables import Table
from chalicelib.transform.objects import Row

# Tables whose file for a user and day holds exactly one run: the latest of that day.
SNAPSHOT_TABLES = frozenset({"playlists", "playlist_items", "top_items"})

# A row and the order of the run it came from (`Run.order`); "" where the run does not matter.
Candidate = tuple[Row, tuple[str, ...]]


def dedupe(table: Table, rows: Iterable[Row]) -> list[Row]:
    """One row per key of `table` (see `winners`), sorted by key.

    `winners` with no run order, written out: it runs once per table of every raw object, and
    most rows meet no other under their key (or only an equal one), so the loop is kept lean.
    """
    key_of = key_function(table.key)
    best: dict[Any, Row] = {}
    for row in rows:
        key = key_of(row)
        current = best.get(key)
        if current is None or (current != row and _beats(table, (row, ()), (current, ()))):
            best[key] = row
    return [best[key] for key in sorted_keys(best)]


def winners(table: Table, candidates: Iterable[Candidate]) -> list[Candidate]:
    """One candidate per key, sorted by key. The winner for a key is, in this order: the one with
    known `genres` (artists), the one from the later run, then the greatest by content."""
    key_of = key_function(table.key)
    best: dict[Any, Candidate] = {}
    for candidate in candidates:
        key = key_of(candidate[0])
        current = best.get(key)
        if current is None or _beats(table, candidate, current):
            best[key] = candidate
    return [best[key] for key in sorted_keys(best)]


def key_function(columns: tuple[str, ...]) -> Callable[[Row], tuple[Any, ...]]:
    """row → its key tuple. `itemgetter` does it in C (this runs once per candidate row), but
    gives a bare value for a single column: that case is wrapped to stay a tuple."""
    if len(columns) == 1:
        [column] = columns
        return lambda row: (row[column],)
    return operator.itemgetter(*columns)


def sorted_keys(keys: Iterable[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """`keys` in `sortable` order. Without nulls that is the keys' own order, which `sorted`
    compares in C; `sortable` wraps every value, so it is kept for the keys that need it."""
    found = list(keys)
    if any(None in key for key in found):
        return sorted(found, key=sortable)
    return sorted(found)


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
