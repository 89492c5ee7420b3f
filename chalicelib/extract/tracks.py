"""`tracks`: album and credits of tracks known only from a history export (contract §8), one
`/tracks/{id}` call per track (batch `?ids=` is gone).

An export names a track by its URI and gives names only; an API answer carries the whole track
object (album, credited artists). Which tracks: those an export row names that no answer of an
API dataset has described (plays, playlists, top items, saved tracks, or an earlier
`/tracks/{id}` of this dataset). The index in state remembers, per track, when an export first
named it (`exported_at`), when an answer last described it (`described_at`) and when Spotify
answered that it has no such track (`not_found_at`, never asked again). The scan, the claims and
the calls are those of `enrichment`, shared with `artists`: a run reads only new raw objects,
makes at most `track_budget` calls, and the runner gives it only what the day's budget has left.
The answers land as `raw/tracks/…`, which the transform reads like any track object and the
`artists` enrichment scans for the credited artists' genres.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from chalicelib import datasets, exports, layout
from chalicelib.extract import enrichment
from chalicelib.extract.dataset import Fetch, Fetched, Settings
from chalicelib.extract.enrichment import Entry, Scan, objects_in
from chalicelib.extract.envelope import ok_bodies
from chalicelib.spotify.errors import SpotifyCallError
from chalicelib.storage import Storage

INDEX_KEY = layout.state_key("tracks", "index")
INDEX = enrichment.Index(INDEX_KEY, "tracks")
CURSORS_KEY = layout.state_key("tracks", "cursors")

# A track id as Spotify issues them; anything else in an export is not asked about (it could
# only answer 400).
_TRACK_ID = re.compile(r"^[0-9A-Za-z]{22}$")
# Answers that say Spotify has no such track for this app, for good: remembered, not asked again.
_GONE = (400, 403, 404)


def fetch(job: Fetch) -> Fetched:
    settings = job.settings
    now = datetime.now(UTC)  # claims are about real time, not the run's `run_at`
    scanned = scan_new_raw(job.storage)
    due, claimed = claim_due(job.storage, now, settings)

    def result(fetched: list[str], not_found: list[str]) -> Fetched:
        def advance() -> None:
            mark_fetched(job.storage, fetched, not_found, claimed, job.run_at)

        counts = enrichment.run_counts(scanned, due, fetched, not_found)
        return Fetched(counts=counts, advance=advance)

    return enrichment.fetch_claimed(job, claimed, lambda sp, t: sp.track(t), result, gone=_is_gone)


def _is_gone(error: SpotifyCallError) -> bool:
    return error.reason == "http_error" and error.status in _GONE


def described_in(envelope: dict[str, Any]) -> set[str]:
    """Ids of the tracks an API envelope's answers describe: full track objects, album
    included (a `linked_from` stub or a local file describes nothing)."""
    return {
        obj["id"]
        for _, body in ok_bodies(envelope)
        for obj in objects_in(body)
        if obj.get("type") == "track"
        and isinstance(obj.get("id"), str)
        and isinstance(obj.get("album"), dict)
    }


def exported_in(envelope: dict[str, Any]) -> set[str]:
    """Ids of the tracks a history export's rows name (`spotify_track_uri`; an episode's or an
    audiobook's row has none, nor has an account-data row)."""
    found: set[str] = set()
    for response in envelope["responses"]:
        body = response.get("body")
        if not (200 <= int(response["status"]) < 300 and isinstance(body, list)):
            continue
        for row in body:
            if isinstance(row, dict):
                track_id = exports.uri_id(row.get("spotify_track_uri"), "track")
                if track_id is not None and _TRACK_ID.match(track_id):
                    found.add(track_id)
    return found


def scan_new_raw(storage: Storage) -> Scan:
    """Add the tracks of raw objects not scanned before to the index: exported ones from
    `history_export`, described ones from every dataset whose answers carry track objects (see
    `enrichment.scan_new_raw`)."""
    scanned = (*datasets.crediting(), datasets.HISTORY_EXPORT)

    def read(key: layout.RawKey, envelope: dict[str, Any]) -> tuple[str, str, set[str]]:
        """(`exported_at` or `described_at`, the raw object's moment, the track ids)."""
        run_at = envelope["meta"].get("run_at")
        at = run_at if isinstance(run_at, str) else f"{key.date}T00:00:00Z"
        if key.dataset == datasets.HISTORY_EXPORT:
            return "exported_at", at, exported_in(envelope)
        return "described_at", at, described_in(envelope)

    def keep(found: list[tuple[str, str, set[str]]]) -> None:
        if any(ids for _, _, ids in found):
            INDEX.update(storage, lambda entries: _add_seen(entries, found))

    return enrichment.scan_new_raw(storage, CURSORS_KEY, scanned, read, keep)


def _add_seen(entries: dict[str, Entry], found: list[tuple[str, str, set[str]]]) -> bool:
    """Per track: the first export that named it, the latest answer that described it."""
    for field, at, ids in found:
        for track_id in ids:
            entry = dict(entries.get(track_id) or {})
            current = entry.get(field)
            if current is None or (at < current if field == "exported_at" else at > current):
                entry[field] = at
            entries[track_id] = entry
    return True


def is_due(entry: Entry) -> bool:
    """Named by an export, never described by an answer, not known to be gone."""
    return bool(entry.get("exported_at")) and not (
        entry.get("described_at") or entry.get("not_found_at")
    )


def claim_due(storage: Storage, now: datetime, settings: Settings) -> tuple[int, list[str]]:
    """Claim up to the budget of due tracks, the longest-waiting export first.

    Returns how many were due in all and the claimed ids.
    """
    return enrichment.claim_due(
        storage,
        INDEX,
        due=is_due,
        order=lambda _, entry: entry["exported_at"],
        budget=settings.track_budget,
        now=now,
        hold=settings.track_claim,
    )


def mark_fetched(
    storage: Storage,
    fetched: list[str],
    not_found: list[str],
    claimed: list[str],
    run_at: datetime,
) -> None:
    """Record what the calls taught and release this run's claims; a track not reached (the
    budget ran out, Spotify stopped answering) stays due."""
    at = layout.iso(run_at)

    def outcome(track_id: str, entry: Entry) -> Entry:
        if track_id in fetched:
            entry["described_at"] = max(entry.get("described_at") or "", at)
        elif track_id in not_found:
            entry["not_found_at"] = at
        return entry

    enrichment.settle(storage, INDEX, claimed, outcome)
