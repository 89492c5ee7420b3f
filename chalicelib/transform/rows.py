"""A raw envelope → rows per curated table (contract §4). Pure: no I/O.

Each 2xx answer is read according to its request path, whatever the dataset, and every embedded
track, album and artist also becomes a dimension row. A snapshot table (`playlists`,
`playlist_items`, `top_items`) appears in the result — possibly with no rows — only when the run
actually read its listing; absent means "this run says nothing", so an older snapshot stands.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from chalicelib import layout
from chalicelib.extract import plays as history
from chalicelib.tables import TABLES
from chalicelib.transform import objects
from chalicelib.transform.fit import NULLED, ROW_DROPPED, Issue
from chalicelib.transform.merge import SNAPSHOT_TABLES, dedupe
from chalicelib.transform.objects import Row, ShapeError, mapping, object_list
from chalicelib.transform.plays import API_DEFAULTS
from chalicelib.transform.raw import Answer, Envelope, Run

# What a dataset that stopped part-way (a 429 past the cap, 5xx retries exhausted) must not
# claim: a fragment of a snapshot would replace the day's complete one, and saves it logged
# would be logged again by the next run (its watermark did not move). Dimensions still count.
_NEEDS_COMPLETE_RUN = (*sorted(SNAPSHOT_TABLES), "saved_tracks")

# The tables partitioned by the run's day (`plays` carries its own `played_date`).
_BY_SNAPSHOT_DATE = frozenset(
    name for name, table in TABLES.items() if table.partition.name == "snapshot_date"
)

# Spotify's default when a request names no `time_range`.
DEFAULT_TIME_RANGE = "medium_term"


def envelope_rows(envelope: Envelope, reused: Mapping[str, Envelope]) -> dict[str, list[Row]]:
    """Rows per table, partition column included, deduplicated on each table's key.

    `reused` maps the raw keys named in `meta.reused_items` to their envelopes: the unchanged
    playlists' item pages are read from there.
    """
    return envelope_rows_reported(envelope, reused)[0]


def envelope_rows_reported(
    envelope: Envelope, reused: Mapping[str, Envelope]
) -> tuple[dict[str, list[Row]], list[Issue]]:
    """`envelope_rows`, and the values it had to give up (timestamps that do not parse): the
    transform reports those in `quarantine/` instead of dropping them silently."""
    reading = _Reading(_Rows(envelope.run), envelope.meta)
    for answer in envelope.answers:
        routed = route(answer.path)
        if routed is None:
            continue  # an answer the tables do not use (e.g. `me`): recorded, not read
        if not isinstance(answer.body, dict):
            raise ShapeError(f"{answer.path}: the body is not a JSON object")
        read, match = routed
        read(reading, answer, match)
    rows = reading.rows
    items_read = reading.items_read | _reused_items(rows, envelope.meta.get("reused_items"), reused)
    for playlist in reading.listed_playlists:
        playlist["items_readable"] = playlist["playlist_id"] in items_read
        rows.add("playlists", playlist)
    if envelope.meta.get("complete") is False:
        for table in _NEEDS_COMPLETE_RUN:
            rows.tables.pop(table, None)
    return rows.result(), rows.issues


def reused_raw_keys(envelope: Envelope) -> set[str]:
    """The raw objects this envelope borrows unchanged playlists' items from."""
    return set(borrowed_playlists(envelope))


def borrowed_playlists(envelope: Envelope) -> dict[str, list[str]]:
    """The playlists whose items this envelope borrows, by the raw object it names for them."""
    reused = envelope.meta.get("reused_items")
    if not isinstance(reused, dict):
        return {}
    borrowed: dict[str, list[str]] = defaultdict(list)
    for playlist_id, ref in reused.items():
        if isinstance(ref, dict) and isinstance(ref.get("raw_key"), str):
            borrowed[ref["raw_key"]].append(playlist_id)
    return dict(borrowed)


def item_pages(source: Envelope, playlist_ids: Collection[str]) -> dict[str, list[Answer]]:
    """The item pages of each of `playlist_ids` in `source`, in order: all that a borrower of
    their items reads from it (see `_reused_items`)."""
    pages: dict[str, list[Answer]] = {playlist_id: [] for playlist_id in playlist_ids}
    for answer in source.answers:
        match = _PLAYLIST_ITEMS.match(answer.path)
        if match and match["id"] in pages:
            pages[match["id"]].append(answer)
    return pages


class _Rows:
    """Collects rows for one run, adding the partition column and the dimensions."""

    def __init__(self, run: Run) -> None:
        self.run = run
        # Once here, not per row: `Run.snapshot_date` formats a date at every call.
        self.snapshot_date = run.snapshot_date
        self.tables: dict[str, list[Row]] = defaultdict(list)
        self.issues: list[Issue] = []

    def timestamp(self, value: Any, table: str, column: str, action: str) -> datetime | None:
        """`objects.timestamp(value)`; a value sent but not parseable is reported as an issue
        (a missing or null one is simply unknown)."""
        moment = objects.timestamp(value)
        if moment is None and value is not None:
            reason = "not an ISO timestamp"
            self.issues.append(Issue(table, column, reason, action, ascii(value)[:200]))
        return moment

    def declare(self, *tables: str) -> None:
        """The run read these snapshot tables' listings: they exist even with no rows."""
        for table in tables:
            self.tables.setdefault(table, [])

    def add(self, table: str, row: Row) -> None:
        if table in _BY_SNAPSHOT_DATE:
            row["snapshot_date"] = self.snapshot_date
        self.tables[table].append(row)

    def track(self, track: dict[str, Any]) -> None:
        """A track object: its row, its album, its credited artists in credit order."""
        row = objects.track_row(track)
        # Local files and unavailable tracks have no identity; episodes are not tracks.
        if row["track_id"] is None or objects.is_episode(track):
            return
        self.add("tracks", row)
        self.album(mapping(track.get("album")))
        for position, artist in enumerate(object_list(track, "artists"), start=1):
            artist_id = objects.spotify_id(artist or {})
            if artist_id is None:
                continue
            self.add(
                "track_artists",
                {"track_id": row["track_id"], "artist_id": artist_id, "artist_position": position},
            )
            self.artist(artist or {})

    def album(self, album: dict[str, Any]) -> None:
        row = objects.album_row(album)
        if row["album_id"] is None:
            return
        self.add("albums", row)
        for artist in object_list(album, "artists"):
            self.artist(artist or {})

    def artist(self, artist: dict[str, Any]) -> None:
        row = objects.artist_row(artist)
        if row["artist_id"] is not None:
            self.add("artists", row)

    def result(self) -> dict[str, list[Row]]:
        return {table: dedupe(TABLES[table], rows) for table, rows in self.tables.items()}


def _offset(answer: Answer) -> int:
    """Where this page starts: the page's own `offset`, else the request's, else 0."""
    offset = objects.integer(answer.body.get("offset"))
    if offset is None:
        try:
            offset = int(answer.query.get("offset", "0"))
        except ValueError:
            offset = 0
    return offset


def _plays(rows: _Rows, body: dict[str, Any]) -> None:
    for play in object_list(body, "items"):
        if play is None:
            continue
        played_at = rows.timestamp(play.get("played_at"), "plays", "played_at", ROW_DROPPED)
        if played_at is None:  # no key: nothing to count it under
            continue
        track = mapping(play.get("track"))
        context = mapping(play.get("context"))
        rows.add(
            "plays",
            {
                "user_id": rows.run.user_id,
                "played_at": played_at,
                "track_id": objects.spotify_id(track),
                "context_type": objects.text(context.get("type")),
                "context_uri": objects.text(context.get("uri")),
                **API_DEFAULTS,
                "played_date": played_at.date().isoformat(),
            },
        )
        rows.track(track)


def _history_gap(rows: _Rows, body: dict[str, Any], meta: dict[str, Any]) -> None:
    """A `history_gaps` row when the oldest play returned is newer than what the previous poll
    saw (`meta.watermark`): plays in between may be missing (the API keeps only 50)."""
    stamps = [play.get("played_at") for play in object_list(body, "items") if play is not None]
    played, _ = history.returned(stamps, rows.run.run_at)
    watermark = meta.get("watermark") if layout.try_parse_iso(meta.get("watermark")) else None
    for gap in history.gap_warnings(watermark, played):
        rows.add(
            "history_gaps",
            {
                "user_id": rows.run.user_id,
                "gap_from": objects.timestamp(gap["from"]),
                "gap_to": objects.timestamp(gap["to"]),
                "run_id": rows.run.run_id,
                "detected_date": rows.snapshot_date,
            },
        )


def _playlist_rows(run: Run, body: dict[str, Any]) -> list[Row]:
    found = []
    for playlist in object_list(body, "items"):
        playlist_id = objects.spotify_id(playlist or {})
        if playlist is None or playlist_id is None:
            continue
        # `items` is the new name of the reference, `tracks` the deprecated one.
        ref = mapping(playlist.get("items")) or mapping(playlist.get("tracks"))
        found.append(
            {
                "user_id": run.user_id,
                "playlist_id": playlist_id,
                "name": objects.text(playlist.get("name")),
                "owner_id": objects.text(mapping(playlist.get("owner")).get("id")),
                "collaborative": objects.flag(playlist.get("collaborative")),
                "public": objects.flag(playlist.get("public")),
                "snapshot_id": objects.text(playlist.get("snapshot_id")),
                "item_count": objects.integer(ref.get("total")),
            }
        )
    return found


def _playlist_items(rows: _Rows, playlist_id: str, answer: Answer) -> None:
    offset = _offset(answer)
    for index, entry in enumerate(object_list(answer.body, "items")):
        if entry is None:
            continue
        # `item` is the current key; `track` the deprecated one older answers still use.
        obj = entry.get("item") if entry.get("item") is not None else entry.get("track")
        if not isinstance(obj, dict):  # unavailable: keeps its slot, yields no row
            continue
        local = entry.get("is_local") is True or obj.get("is_local") is True
        item_type = "local" if local else "episode" if objects.is_episode(obj) else "track"
        rows.add(
            "playlist_items",
            {
                "user_id": rows.run.user_id,
                "playlist_id": playlist_id,
                "position": offset + index + 1,
                "item_type": item_type,
                "item_id": None if local else objects.text(obj.get("id")),
                "item_name": objects.text(obj.get("name")),
                "added_at": rows.timestamp(
                    entry.get("added_at"), "playlist_items", "added_at", NULLED
                ),
                "added_by": objects.text(mapping(entry.get("added_by")).get("id")),
            },
        )
        if item_type == "track":
            rows.track(obj)


def _top_items(rows: _Rows, item_type: str, answer: Answer) -> None:
    rows.declare("top_items")
    offset = _offset(answer)
    time_range = answer.query.get("time_range", DEFAULT_TIME_RANGE)
    for index, item in enumerate(object_list(answer.body, "items")):
        item_id = objects.spotify_id(item or {})
        if item is None or item_id is None:
            continue
        rows.add(
            "top_items",
            {
                "user_id": rows.run.user_id,
                "item_type": item_type,
                "time_range": time_range,
                "rank": offset + index + 1,
                "item_id": item_id,
            },
        )
        if item_type == "track":
            rows.track(item)
        else:
            rows.artist(item)


def _saved_tracks(rows: _Rows, body: dict[str, Any], known_until: datetime | None) -> None:
    for saved in object_list(body, "items"):
        if saved is None:
            continue
        track = mapping(saved.get("track"))
        rows.track(track)
        track_id = objects.spotify_id(track)
        if track_id is None:
            continue
        # Past the first run an unknown `added_at` cannot be told new from known: the row goes.
        action = NULLED if known_until is None else ROW_DROPPED
        added_at = rows.timestamp(saved.get("added_at"), "saved_tracks", "added_at", action)
        # Only saves newer than what earlier runs knew: the log holds each save once.
        if known_until is not None and (added_at is None or added_at <= known_until):
            continue
        row = {"user_id": rows.run.user_id, "track_id": track_id, "added_at": added_at}
        rows.add("saved_tracks", row)


def _reused_items(rows: _Rows, reused_items: Any, reused: Mapping[str, Envelope]) -> set[str]:
    """Item pages of unchanged playlists, read from the raw object that holds them."""
    if not isinstance(reused_items, dict):
        return set()
    read = set()
    for playlist_id, ref in reused_items.items():
        source = reused.get(mapping(ref).get("raw_key"))
        if source is None:
            continue
        for answer in source.answers:
            match = _PLAYLIST_ITEMS.match(answer.path)
            if match and match["id"] == playlist_id and isinstance(answer.body, dict):
                _playlist_items(rows, playlist_id, answer)
                read.add(playlist_id)
    return read


# --- which answers the tables read: one route per request path below the API base ----------


@dataclass
class _Reading:
    """One envelope being read: its rows, and what the playlist answers told so far."""

    rows: _Rows
    meta: dict[str, Any]
    listed_playlists: list[Row] = field(default_factory=list)
    items_read: set[str] = field(default_factory=set)


def _read_plays(reading: _Reading, answer: Answer, match: re.Match[str]) -> None:
    _plays(reading.rows, answer.body)
    _history_gap(reading.rows, answer.body, reading.meta)


def _read_playlists(reading: _Reading, answer: Answer, match: re.Match[str]) -> None:
    reading.rows.declare("playlists", "playlist_items")
    reading.listed_playlists.extend(_playlist_rows(reading.rows.run, answer.body))


def _read_playlist_items(reading: _Reading, answer: Answer, match: re.Match[str]) -> None:
    _playlist_items(reading.rows, match["id"], answer)
    reading.items_read.add(match["id"])


def _read_top_items(reading: _Reading, answer: Answer, match: re.Match[str]) -> None:
    _top_items(reading.rows, match["type"].removesuffix("s"), answer)


def _read_saved_tracks(reading: _Reading, answer: Answer, match: re.Match[str]) -> None:
    known_until = objects.timestamp(reading.meta.get("known_until"))
    _saved_tracks(reading.rows, answer.body, known_until)


def _read_artist(reading: _Reading, answer: Answer, match: re.Match[str]) -> None:
    reading.rows.artist(answer.body)


def _read_track(reading: _Reading, answer: Answer, match: re.Match[str]) -> None:
    """A full track object (the `tracks` enrichment): the track, its album, its credits."""
    reading.rows.track(answer.body)


_PLAYLIST_ITEMS = re.compile(r"^playlists/(?P<id>[^/]+)/(?:items|tracks)$")

ROUTES: tuple[tuple[re.Pattern[str], Callable[[_Reading, Answer, re.Match[str]], None]], ...] = (
    (re.compile(r"^me/player/recently-played$"), _read_plays),
    # `/me/playlists` pages may link on as `/users/{id}/playlists` (the same listing).
    (re.compile(r"^(?:me|users/[^/]+)/playlists$"), _read_playlists),
    (_PLAYLIST_ITEMS, _read_playlist_items),
    (re.compile(r"^me/top/(?P<type>artists|tracks)$"), _read_top_items),
    (re.compile(r"^me/tracks$"), _read_saved_tracks),
    (re.compile(r"^artists/(?P<id>[^/]+)$"), _read_artist),
    (re.compile(r"^tracks/(?P<id>[^/]+)$"), _read_track),
)


def route(
    path: str,
) -> tuple[Callable[[_Reading, Answer, re.Match[str]], None], re.Match[str]] | None:
    """The reader of an answer to `path`, with the path's match; None when no table reads it."""
    for pattern, read in ROUTES:
        if match := pattern.match(path):
            return read, match
    return None
