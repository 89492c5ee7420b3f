"""Re-driving raw objects: the ones S3 gave up on (reconcile), or all of them (reprocess).

Reconcile runs every 6 hours for as long as the lake lives, so its listing must not grow with
the lake's age. Raw keys and their markers are both date-partitioned (`raw/<dataset>/date=<d>/…`,
`runs/transformed/<dataset>/date=<d>/…`), so it lists each dataset from a low-water date on
(S3 `StartAfter`): the newest raw date seen, back `LOOKBACK_DAYS`, or further back while an
object there is still unmarked. The mark lives in `state/` (`CURSOR_KEY`). A raw object written
later under an older date than the window (a run simulated with `--at` far back) is not
re-driven by reconcile — its S3 event still transforms it, and `reprocess` reads everything.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from datetime import date, timedelta
from typing import Any

from chalicelib import datasets, layout
from chalicelib.storage import Storage, get_json, list_after, update_json

Transform = Callable[[list[str]], list[dict[str, Any]]]
# Told of headway in words, e.g. "200/686 raw objects transformed" (the CLI prints it).
Progress = Callable[[str], None]

# `runs/transformed/`, derived from layout's one definition of marker keys.
MARKER_PREFIX = layout.marker_key(layout.RAW_PREFIX).removesuffix(".json")
CURSOR_KEY = layout.state_key("transform", "reconcile")
# How far back from the newest raw date reconcile looks: S3 gives up on an event within hours,
# so three days cover a late delivery, a failed reconcile or two, and a day boundary.
LOOKBACK_DAYS = 3


def unmarked_raw_keys(storage: Storage) -> list[str]:
    """Every raw object without a transform marker (two whole listings: the lake's size)."""
    return _unmarked(storage, storage.list(layout.RAW_PREFIX), storage.list(MARKER_PREFIX))[0]


def pending_raw_keys(storage: Storage) -> tuple[list[str], str | None]:
    """Raw objects without a marker, from the low-water date on (all of them on a first run),
    and the newest raw date seen.

    Two listings per dataset, each starting at the low-water date: requests grow with the
    objects of the window, not with the lake's age.
    """
    low_water = (get_json(storage, CURSOR_KEY) or {}).get("low_water")
    if not isinstance(low_water, str):
        return _unmarked(storage, storage.list(layout.RAW_PREFIX), storage.list(MARKER_PREFIX))
    pending: list[str] = []
    newest: str | None = None
    for dataset in datasets.RAW_DATASETS:
        raw_prefix = f"{layout.RAW_PREFIX}{dataset}/"
        marker_prefix = f"{MARKER_PREFIX}{dataset}/"
        # `…/date=<low>` sorts just before every key of that date: the listing starts there.
        start = f"date={low_water}"
        keys, last = _unmarked(
            storage,
            list_after(storage, raw_prefix, raw_prefix + start),
            list_after(storage, marker_prefix, marker_prefix + start),
        )
        pending += keys
        newest = max(filter(None, (newest, last)), default=None)
    return pending, newest


def _unmarked(
    storage: Storage, raw_keys: Iterable[str], marker_keys: Iterable[str]
) -> tuple[list[str], str | None]:
    marked = set(marker_keys)
    pending, newest = [], None
    for key in raw_keys:
        parsed = layout.parse_raw_key(key)
        if parsed is not None and (newest is None or parsed.date > newest):
            newest = parsed.date
        if layout.marker_key(key) not in marked:
            pending.append(key)
    return pending, newest


def advance_low_water(storage: Storage, newest: str | None, outcomes: list[dict[str, Any]]) -> None:
    """After a reconcile: the mark moves to the newest raw date seen, back `LOOKBACK_DAYS`,
    but never past an object still unmarked (deferred)."""
    left = [
        parsed.date
        for outcome in outcomes
        if outcome.get("status") not in ("done", "quarantined", "missing")
        and (parsed := layout.parse_raw_key(str(outcome.get("raw_key")))) is not None
    ]
    if newest is None:
        return  # an empty lake: nothing to remember yet
    current = (get_json(storage, CURSOR_KEY) or {}).get("low_water")
    candidate = (date.fromisoformat(newest) - timedelta(days=LOOKBACK_DAYS)).isoformat()
    if current is not None:
        candidate = max(candidate, current)  # the window only moves forward here...
    new = min([candidate, *left])  # ...except for what is left to do
    if new != current:
        update_json(storage, CURSOR_KEY, lambda doc: {**(doc or {}), "low_water": new})


def lower_low_water(storage: Storage, raw_key: str) -> None:
    """Make the next reconcile reach back to `raw_key`'s date (it was left unmarked)."""
    parsed = layout.parse_raw_key(raw_key)
    if parsed is None:
        return

    def change(doc: dict[str, Any] | None) -> dict[str, Any] | None:
        current = (doc or {}).get("low_water")
        if current is None or current <= parsed.date:
            return None  # no mark: the next reconcile lists everything anyway
        return {**(doc or {}), "low_water": parsed.date}

    update_json(storage, CURSOR_KEY, change)


def redrive(
    keys: list[str],
    transform: Transform,
    batch_size: int,
    progress: Progress | None = None,
    done: Callable[[list[dict[str, Any]]], None] | None = None,
) -> dict[str, Any]:
    """Transform `keys` in batches, in order; count the outcomes by marker status.

    `done(outcomes)` is told every outcome once all batches ran (reconcile moves its mark).
    """
    outcomes: Counter[str] = Counter()
    every: list[dict[str, Any]] = []
    for start in range(0, len(keys), batch_size):
        batch = keys[start : start + batch_size]
        markers = transform(batch)
        every.extend(markers)
        outcomes.update(marker.get("status", "unknown") for marker in markers)
        if progress is not None:
            progress(f"{start + len(batch)}/{len(keys)} raw objects transformed")
    if done is not None:
        done(every)
    return {"objects": len(keys), **outcomes}


def clear_derived(storage: Storage) -> int:
    """Delete everything the transform derives from `raw/` (curated tables, quarantine reports)."""
    keys = [*storage.list(layout.CURATED_PREFIX), *storage.list(layout.QUARANTINE_PREFIX)]
    for key in keys:
        storage.delete(key)
    return len(keys)
