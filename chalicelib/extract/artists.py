"""`artists`: genre enrichment, one `/artists/{id}` call per artist (batch `?ids=` is gone).

Which artists: every artist seen in the lake's raw objects whose genres are unknown or older
than the TTL. The index in state remembers what each scanned raw object held, and a cursor per
dataset (`CURSORS_KEY`: the newest date scanned, with the keys of that date already read) lets a
run list and read only the raw objects that are new — its requests grow with new data, not with
the lake's age. A raw object that cannot be read is skipped and counted, never fatal: the same
object would otherwise fail every later run. Artists that arrived with `genres` (full objects
from `/me/top/artists`) count as fresh. A run makes at most `artist_budget` calls; the rest are
due again at the next run. Artists a run is fetching are claimed for a while, so two runs at
once do not fetch the same artist.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chalicelib import datasets, layout
from chalicelib.extract.dataset import Fetch, Fetched, Settings, Stopped
from chalicelib.extract.envelope import load_envelope, ok_bodies
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

INDEX_KEY = layout.state_key("artists", "index")
CURSORS_KEY = layout.state_key("artists", "cursors")
# Before the cursors, every scanned key was listed here (`{"keys": [...]}`); read once, to
# start the cursors where it ended instead of reading a year of raw objects again.
LEGACY_SCANNED_KEY = layout.state_key("artists", "scanned")


@dataclass(frozen=True)
class Scan:
    """What a scan read: how many new raw objects, and the keys of those it could not read."""

    read: int
    unreadable: list[str]


def fetch(job: Fetch) -> Fetched:
    settings = job.settings
    now = datetime.now(UTC)  # claims are about real time, not the run's `run_at`
    scanned = scan_new_raw(job.storage, settings)
    due, claimed = claim_due(job.storage, job.run_at, now, settings)
    fetched: list[str] = []
    unreadable: list[str] = []

    def result() -> Fetched:
        def advance() -> None:
            mark_fetched(job.storage, fetched + unreadable, claimed, job.run_at, settings)

        counts = {
            "scanned_raw_objects": scanned.read,
            **({"unreadable_raw_objects": len(scanned.unreadable)} if scanned.unreadable else {}),
            "fetched": len(fetched),
            "not_found": len(unreadable),
            "carried_over": due - len(fetched) - len(unreadable),
        }
        return Fetched(counts=counts, advance=advance)

    for artist_id in claimed:
        try:
            job.client.call(lambda sp, a=artist_id: sp.artist(a))
        except SpotifyCallError as error:
            if not error.is_unreadable:
                raise Stopped(error, result()) from None
            unreadable.append(artist_id)  # recorded; asked again only after the TTL
            continue
        fetched.append(artist_id)
    return result()


def artists_in(envelope: dict[str, Any]) -> dict[str, bool]:
    """Artist ids in an envelope's answers, each with whether it came with `genres`."""
    found: dict[str, bool] = {}
    for _, body in ok_bodies(envelope):
        for obj in _objects(body):
            if obj.get("type") == "artist" and obj.get("id"):
                with_genres = isinstance(obj.get("genres"), list)
                found[obj["id"]] = found.get(obj["id"], False) or with_genres
    return found


def scan_new_raw(storage: Storage, settings: Settings) -> Scan:
    """Add the artists of raw objects not scanned before to the index.

    Per dataset, lists `raw/<dataset>/` from its cursor's date on (S3 `StartAfter`) and reads
    the keys not seen yet; the cursor then moves to the newest date listed, remembering that
    date's keys only (a later run of the same day adds more). Dates before the cursor's count as
    scanned. An unreadable object is skipped (and counted); a storage error that outlasts its
    retries is raised and the cursors stay, so the next run scans the same objects again.
    """
    stored = get_json(storage, CURSORS_KEY)
    cursors = (stored or {}).get("datasets", {}) if stored else _legacy_cursors(storage)
    seen: dict[str, str | None] = {}  # id -> run_at of a raw object that carried its genres
    moved: dict[str, dict[str, Any]] = {}
    read, unreadable = 0, []
    for dataset in datasets.crediting():
        prefix = f"{layout.RAW_PREFIX}{dataset}/"
        cursor = cursors.get(dataset) or {}
        start = f"{prefix}date={cursor['date']}" if cursor.get("date") else None
        done = set(cursor.get("seen", []))
        listed = [
            (parsed.date, key)
            for key in list_after(storage, prefix, start)
            if key.endswith(layout.RAW_SUFFIX) and (parsed := layout.parse_raw_key(key))
        ]
        for _, key in listed:
            if key in done:
                continue
            read += 1
            if not _scan_one(storage, key, seen):
                unreadable.append(key)
        if listed:
            newest = max(day for day, _ in listed)
            moved[dataset] = {
                "date": newest,
                "seen": sorted(key for day, key in listed if day == newest),
            }
    if seen:
        update_json(storage, INDEX_KEY, lambda doc: _add_seen(doc, seen, settings))
    if moved:
        update_json(storage, CURSORS_KEY, lambda doc: _move_cursors(doc, moved))
    return Scan(read, unreadable)


def _legacy_cursors(storage: Storage) -> dict[str, dict[str, Any]]:
    """Cursors from a lake scanned before they existed: per dataset, the newest date it had
    scanned and that date's keys (what `_move_cursors` would have kept)."""
    cursors: dict[str, dict[str, Any]] = {}
    for key in (get_json(storage, LEGACY_SCANNED_KEY) or {}).get("keys", []):
        parsed = layout.parse_raw_key(key) if isinstance(key, str) else None
        if parsed is None:
            continue
        cursor = cursors.setdefault(parsed.dataset, {"date": parsed.date, "seen": []})
        if parsed.date > cursor["date"]:
            cursor.update(date=parsed.date, seen=[])
        if parsed.date == cursor["date"]:
            cursor["seen"].append(key)
    return cursors


def _scan_one(storage: Storage, key: str, seen: dict[str, str | None]) -> bool:
    """Add the artists of raw object `key` to `seen`; False when it cannot be read."""
    try:
        envelope = retry_transient(lambda: load_envelope(storage, key), what=f"reading {key}")
        if envelope is None:
            return True
        run_at = envelope["meta"].get("run_at")
        found = artists_in(envelope)
    except Exception as error:
        if is_transient(error):
            raise
        logger.warning("artists: skipped unreadable raw object %s: %s", key, error)
        return False
    for artist_id, with_genres in found.items():
        fresh_at = run_at if isinstance(run_at, str) and with_genres else None
        seen[artist_id] = max(filter(None, (seen.get(artist_id), fresh_at)), default=None)
    return True


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


def claim_due(
    storage: Storage, run_at: datetime, now: datetime, settings: Settings
) -> tuple[int, list[str]]:
    """Claim up to the budget of due artists (never fetched first, then oldest expiry).

    Returns how many were due in all and the claimed ids.
    """
    outcome: dict[str, Any] = {"due": 0, "claimed": []}

    def change(doc: dict[str, Any] | None) -> dict[str, Any] | None:
        doc = {"artists": dict((doc or {}).get("artists", {}))}
        due = sorted(
            (
                (entry.get("expires_at") or "", artist_id)
                for artist_id, entry in doc["artists"].items()
                if is_due(entry, run_at, now)
            )
        )
        chosen = [artist_id for _, artist_id in due[: settings.artist_budget]]
        outcome["due"], outcome["claimed"] = len(due), chosen
        if not chosen:
            return None
        until = layout.iso(now + settings.artist_claim)
        for artist_id in chosen:
            doc["artists"][artist_id] = {**doc["artists"][artist_id], "claimed_until": until}
        return doc

    update_json(storage, INDEX_KEY, change)
    return outcome["due"], outcome["claimed"]


def is_due(entry: dict[str, Any], run_at: datetime, now: datetime) -> bool:
    claimed = entry.get("claimed_until")
    if claimed and layout.parse_iso(claimed) > now:
        return False
    expires = entry.get("expires_at")
    return expires is None or layout.parse_iso(expires) <= run_at


def expiry(artist_id: str, fetched_at: datetime, settings: Settings) -> datetime:
    """`fetched_at + TTL`, lengthened by a per-artist fraction so expiries spread out (never
    shortened: an artist is not fetched twice within the TTL)."""
    digest = hashlib.sha256(artist_id.encode()).digest()
    fraction = int.from_bytes(digest[:4], "big") / 2**32
    return fetched_at + settings.artist_ttl * (1 + settings.artist_jitter * fraction)


def mark_fetched(
    storage: Storage,
    fetched: list[str],
    claimed: list[str],
    run_at: datetime,
    settings: Settings,
) -> None:
    """Record fetches (fresh until their expiry) and release this run's claims."""
    if not claimed:
        return

    def change(doc: dict[str, Any] | None) -> dict[str, Any]:
        artists = dict((doc or {}).get("artists", {}))
        for artist_id in claimed:
            entry = {**artists.get(artist_id, {}), "claimed_until": None}
            if artist_id in fetched:
                entry["fetched_at"] = layout.iso(run_at)
                entry["expires_at"] = layout.iso(expiry(artist_id, run_at, settings))
            artists[artist_id] = entry
        return {"artists": artists}

    update_json(storage, INDEX_KEY, change)


def _add_seen(
    doc: dict[str, Any] | None, seen: dict[str, str | None], settings: Settings
) -> dict[str, Any]:
    artists = dict((doc or {}).get("artists", {}))
    for artist_id, fresh_at in seen.items():
        entry = dict(artists.get(artist_id) or {"fetched_at": None, "expires_at": None})
        if fresh_at and (entry.get("fetched_at") or "") < fresh_at:
            entry["fetched_at"] = fresh_at
            entry["expires_at"] = layout.iso(
                expiry(artist_id, layout.parse_iso(fresh_at), settings)
            )
        artists[artist_id] = entry
    return {"artists": artists}


def _objects(value: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object nested in `value` (tracks inside items inside pages ...)."""
    if isinstance(value, dict):
        yield value
        for child in value.values():
            yield from _objects(child)
    elif isinstance(value, list):
        for child in value:
            yield from _objects(child)
