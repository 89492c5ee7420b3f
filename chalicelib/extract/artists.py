"""`artists`: genre enrichment, one `/artists/{id}` call per artist (batch `?ids=` is gone).

Which artists: every artist seen in the lake's raw objects whose genres are unknown or older
than the TTL. The index in state remembers what each scanned raw object held; the scan reads
only raw objects that are new (cursors per dataset, `enrichment.scan_new_raw`), so a run's
requests grow with new data, not with the lake's age. A raw object that cannot be read is
skipped and counted. Artists that arrived with `genres` (full objects from `/me/top/artists`)
count as fresh. A run makes at most `artist_budget` calls; the rest are due again at the next
run. Artists a run is fetching are claimed for a while, so two runs at once do not fetch the
same artist.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from chalicelib import datasets, layout
from chalicelib.extract import enrichment
from chalicelib.extract.dataset import Fetch, Fetched, Settings
from chalicelib.extract.enrichment import Entry, Scan, objects_in
from chalicelib.extract.envelope import ok_bodies
from chalicelib.storage import Storage, get_json

INDEX_KEY = layout.state_key("artists", "index")
INDEX = enrichment.Index(INDEX_KEY, "artists")
CURSORS_KEY = layout.state_key("artists", "cursors")
# Before the cursors, every scanned key was listed here (`{"keys": [...]}`); read once, to
# start the cursors where it ended instead of reading a year of raw objects again.
LEGACY_SCANNED_KEY = layout.state_key("artists", "scanned")


def fetch(job: Fetch) -> Fetched:
    settings = job.settings
    now = datetime.now(UTC)  # claims are about real time, not the run's `run_at`
    scanned = scan_new_raw(job.storage, settings)
    due, claimed = claim_due(job.storage, job.run_at, now, settings)

    def result(fetched: list[str], not_found: list[str]) -> Fetched:
        def advance() -> None:
            # A 404 is recorded like a fetch: asked again only after the TTL.
            mark_fetched(job.storage, fetched + not_found, claimed, job.run_at, settings)

        counts = enrichment.run_counts(scanned, due, fetched, not_found)
        return Fetched(counts=counts, advance=advance)

    return enrichment.fetch_claimed(job, claimed, lambda sp, a: sp.artist(a), result)


def artists_in(envelope: dict[str, Any]) -> dict[str, bool]:
    """Artist ids in an envelope's answers, each with whether it came with `genres`."""
    found: dict[str, bool] = {}
    for _, body in ok_bodies(envelope):
        for obj in objects_in(body):
            if obj.get("type") == "artist" and obj.get("id"):
                with_genres = isinstance(obj.get("genres"), list)
                found[obj["id"]] = found.get(obj["id"], False) or with_genres
    return found


def scan_new_raw(storage: Storage, settings: Settings) -> Scan:
    """Add the artists of raw objects not scanned before to the index (see
    `enrichment.scan_new_raw`): those of every dataset whose answers credit artists."""

    def read(_: layout.RawKey, envelope: dict[str, Any]) -> dict[str, str | None]:
        """id -> run_at of this raw object when it carried the artist's genres."""
        run_at = envelope["meta"].get("run_at")
        return {
            artist_id: run_at if isinstance(run_at, str) and with_genres else None
            for artist_id, with_genres in artists_in(envelope).items()
        }

    def keep(found: list[dict[str, str | None]]) -> None:
        seen: dict[str, str | None] = {}
        for one in found:
            for artist_id, fresh_at in one.items():
                seen[artist_id] = max(filter(None, (seen.get(artist_id), fresh_at)), default=None)
        if seen:
            INDEX.update(storage, lambda entries: _add_seen(entries, seen, settings))

    return enrichment.scan_new_raw(
        storage,
        CURSORS_KEY,
        datasets.crediting(),
        read,
        keep,
        first_cursors=_legacy_cursors,
    )


def _legacy_cursors(storage: Storage) -> dict[str, dict[str, Any]]:
    """Cursors from a lake scanned before they existed: per dataset, the newest date it had
    scanned and that date's keys (what the cursors would have kept)."""
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


def claim_due(
    storage: Storage, run_at: datetime, now: datetime, settings: Settings
) -> tuple[int, list[str]]:
    """Claim up to the budget of due artists (never fetched first, then oldest expiry).

    Returns how many were due in all and the claimed ids.
    """
    return enrichment.claim_due(
        storage,
        INDEX,
        due=lambda entry: is_due(entry, run_at, now),
        order=lambda _, entry: entry.get("expires_at") or "",
        budget=settings.artist_budget,
        now=now,
        hold=settings.artist_claim,
    )


def is_due(entry: Entry, run_at: datetime, now: datetime) -> bool:
    if enrichment.is_claimed(entry, now):
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

    def outcome(artist_id: str, entry: Entry) -> Entry:
        if artist_id in fetched:
            entry["fetched_at"] = layout.iso(run_at)
            entry["expires_at"] = layout.iso(expiry(artist_id, run_at, settings))
        return entry

    enrichment.settle(storage, INDEX, claimed, outcome)


def _add_seen(entries: dict[str, Entry], seen: dict[str, str | None], settings: Settings) -> bool:
    for artist_id, fresh_at in seen.items():
        entry = dict(entries.get(artist_id) or {"fetched_at": None, "expires_at": None})
        if fresh_at and (entry.get("fetched_at") or "") < fresh_at:
            entry["fetched_at"] = fresh_at
            entry["expires_at"] = layout.iso(
                expiry(artist_id, layout.parse_iso(fresh_at), settings)
            )
        entries[artist_id] = entry
    return True
