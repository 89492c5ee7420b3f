"""What the enrichment datasets (`artists`, `tracks`) share: one call per id, paid from the budget
left over, for ids learnt by reading the lake's own raw objects.

- `scan_new_raw`: reads only the raw objects that are new since the last scan. A cursor per
  dataset (the newest date scanned, with the keys of that date already read) lets S3 start its
  listing there (`StartAfter`), so a scan's requests grow with new data, not with the lake's age.
  A raw object that cannot be read is skipped and counted, never fatal: the same object would
  otherwise fail every later run.
- `Index`: a state document `{<field>: {<id>: entry}}` holding what is known of each id. Ids a
  run is about to fetch are claimed in it for a while (`claim_due`), so two runs at once do not
  fetch the same id; `settle` records the outcomes and releases the claims.
- `fetch_claimed`: one call per claimed id; an id Spotify refuses for good (404) is recorded,
  anything else (budget, cooldown, 429, 5xx) stops the dataset with what was fetched so far.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from chalicelib import layout
from chalicelib.extract.dataset import Fetch, Fetched, Stopped
from chalicelib.extract.envelope import load_envelope
from chalicelib.spotify.errors import SpotifyCallError
from chalicelib.storage import (
    Storage,
    get_json,
    is_transient,
    list_after,
    retry_transient,
    update_json,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")
Entry = dict[str, Any]


@dataclass(frozen=True)
class Scan:
    """What a scan read: how many new raw objects, and the keys of those it could not read."""

    read: int
    unreadable: list[str]


def scan_new_raw(
    storage: Storage,
    cursors_key: str,
    datasets: Iterable[str],
    read: Callable[[layout.RawKey, dict[str, Any]], T],
    keep: Callable[[list[T]], None],
    *,
    first_cursors: Callable[[Storage], dict[str, dict[str, Any]]] | None = None,
) -> Scan:
    """Read the raw objects of `datasets` not scanned before.

    `read(key, envelope)` takes what the caller needs from one raw object (raising on a
    malformed one); `keep(found)` saves everything read, before the cursors move past it. Per
    dataset, lists `raw/<dataset>/` from its cursor's date on and reads the keys not seen yet;
    the cursor then moves to the newest date listed, remembering that date's keys only (a later
    run of the same day adds more). Dates before the cursor's count as scanned. A storage error
    that outlasts its retries is raised and the cursors stay, so the next run scans the same
    objects again. `first_cursors` gives the cursors of a lake that has none stored yet.
    """
    stored = get_json(storage, cursors_key)
    if stored:
        cursors = stored.get("datasets", {})
    else:
        cursors = first_cursors(storage) if first_cursors is not None else {}
    found: list[T] = []
    moved: dict[str, dict[str, Any]] = {}
    read_count, unreadable = 0, []
    for dataset in datasets:
        prefix = f"{layout.RAW_PREFIX}{dataset}/"
        cursor = cursors.get(dataset) or {}
        start = f"{prefix}date={cursor['date']}" if cursor.get("date") else None
        done = set(cursor.get("seen", []))
        listed = [
            (parsed, key)
            for key in list_after(storage, prefix, start)
            if key.endswith(layout.RAW_SUFFIX) and (parsed := layout.parse_raw_key(key))
        ]
        for parsed, key in listed:
            if key in done:
                continue
            read_count += 1
            try:
                found.extend(_read_one(storage, parsed, key, read))
            except _Unreadable:
                unreadable.append(key)
        if listed:
            newest = max(parsed.date for parsed, _ in listed)
            moved[dataset] = {
                "date": newest,
                "seen": sorted(key for parsed, key in listed if parsed.date == newest),
            }
    if found:
        keep(found)
    if moved:
        update_json(storage, cursors_key, lambda doc: _move_cursors(doc, moved))
    return Scan(read_count, unreadable)


class _Unreadable(Exception):
    pass


def _read_one(
    storage: Storage,
    parsed: layout.RawKey,
    key: str,
    read: Callable[[layout.RawKey, dict[str, Any]], T],
) -> list[T]:
    """`[read(...)]` for raw object `key`, `[]` when it is gone; `_Unreadable` when it cannot
    be read (a transient storage error is raised as it is)."""
    try:
        envelope = retry_transient(lambda: load_envelope(storage, key), what=f"reading {key}")
        return [] if envelope is None else [read(parsed, envelope)]
    except Exception as error:
        if is_transient(error):
            raise
        logger.warning("enrichment scan: skipped unreadable raw object %s: %s", key, error)
        raise _Unreadable(key) from error


def _move_cursors(doc: dict[str, Any] | None, moved: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Merge this scan's cursors into the stored ones: a newer date wins, the same date unites
    the keys seen (two runs scanning at once lose nothing)."""
    cursors = dict((doc or {}).get("datasets", {}))
    for dataset, cursor in moved.items():
        current = cursors.get(dataset) or {}
        if (current.get("date") or "") > cursor["date"]:
            continue
        if current.get("date") == cursor["date"]:
            cursor = {**cursor, "seen": sorted({*current.get("seen", []), *cursor["seen"]})}
        cursors[dataset] = cursor
    return {"datasets": cursors}


@dataclass(frozen=True)
class Index:
    """The state document `{field: {id: entry}}` of one enrichment, changed under the storage's
    guard against concurrent writers."""

    key: str
    field: str

    def entries(self, storage: Storage) -> dict[str, Entry]:
        return dict((get_json(storage, self.key) or {}).get(self.field, {}))

    def update(self, storage: Storage, change: Callable[[dict[str, Entry]], bool]) -> None:
        """`change(entries)` edits the entries in place and says whether it changed any."""

        def changed(doc: dict[str, Any] | None) -> dict[str, Any] | None:
            entries = dict((doc or {}).get(self.field, {}))
            return {self.field: entries} if change(entries) else None

        update_json(storage, self.key, changed)


def is_claimed(entry: Entry, now: datetime) -> bool:
    """Another run holds this id until its claim ends (claims are on the real clock)."""
    claimed = entry.get("claimed_until")
    return bool(claimed) and layout.parse_iso(claimed) > now


def claim_due(
    storage: Storage,
    index: Index,
    *,
    due: Callable[[Entry], bool],
    order: Callable[[str, Entry], Any],
    budget: int,
    now: datetime,
    hold: timedelta,
) -> tuple[int, list[str]]:
    """Claim up to `budget` of the ids that are `due` and not claimed, first by `order`.

    Returns how many were due in all and the claimed ids.
    """
    outcome: dict[str, Any] = {"due": 0, "claimed": []}

    def change(entries: dict[str, Entry]) -> bool:
        ready = sorted(
            (order(item_id, entry), item_id)
            for item_id, entry in entries.items()
            if not is_claimed(entry, now) and due(entry)
        )
        chosen = [item_id for _, item_id in ready[: max(0, budget)]]
        outcome["due"], outcome["claimed"] = len(ready), chosen
        until = layout.iso(now + hold)
        for item_id in chosen:
            entries[item_id] = {**entries[item_id], "claimed_until": until}
        return bool(chosen)

    index.update(storage, change)
    return outcome["due"], outcome["claimed"]


def settle(
    storage: Storage,
    index: Index,
    claimed: list[str],
    outcome: Callable[[str, Entry], Entry],
) -> None:
    """Release this run's claims, each entry changed by `outcome(id, entry)` (what its call
    taught; an id not reached is left as it was, due again)."""
    if not claimed:
        return

    def change(entries: dict[str, Entry]) -> bool:
        for item_id in claimed:
            entry = {**entries.get(item_id, {}), "claimed_until": None}
            entries[item_id] = outcome(item_id, entry)
        return True

    index.update(storage, change)


def fetch_claimed(
    job: Fetch,
    claimed: list[str],
    request: Callable[[Any, str], Any],
    result: Callable[[list[str], list[str]], Fetched],
    *,
    gone: Callable[[SpotifyCallError], bool] = lambda error: error.is_unreadable,
) -> Fetched:
    """`request(sp, id)` for each claimed id, in order; `result(fetched, gone_ids)` is what the
    dataset returns, also when a call stops it (budget, cooldown, 429, 5xx: `Stopped`)."""
    fetched: list[str] = []
    refused: list[str] = []
    for item_id in claimed:
        try:
            job.client.call(lambda sp, i=item_id: request(sp, i))
        except SpotifyCallError as error:
            if not gone(error):
                raise Stopped(error, result(fetched, refused)) from None
            refused.append(item_id)
            continue
        fetched.append(item_id)
    return result(fetched, refused)


def objects_in(value: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object nested in `value` (tracks inside items inside pages ...)."""
    if isinstance(value, dict):
        yield value
        for child in value.values():
            yield from objects_in(child)
    elif isinstance(value, list):
        for child in value:
            yield from objects_in(child)


def run_counts(scanned: Scan, due: int, fetched: list[str], not_found: list[str]) -> dict[str, int]:
    """What an enrichment run did, for its run record."""
    return {
        "scanned_raw_objects": scanned.read,
        **({"unreadable_raw_objects": len(scanned.unreadable)} if scanned.unreadable else {}),
        "fetched": len(fetched),
        "not_found": len(not_found),
        "carried_over": due - len(fetched) - len(not_found),
    }
