"""A history export's raw object (contract §8) → `plays` rows and its `imports` row. Pure.

The raw object holds one file of Spotify's data download, its rows verbatim but for the
network identifiers. Every row becomes a play candidate with `source = export` and
`played_at = ts` (when the stream ended); the plays merge (`transform.plays`) then pairs it with
the API play it may be, drops exact duplicates and settles rows that share a `ts`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from chalicelib import exports
from chalicelib.transform.fit import ROW_DROPPED, Issue
from chalicelib.transform.objects import Row, integer, text
from chalicelib.transform.objects import flag as boolean
from chalicelib.transform.raw import Envelope, UnreadableRaw

# (track name, artist name) → the track id they name, if exactly one known track has them.
Resolve = Callable[[str | None, str | None], str | None]

# A play's mark (not a column) that it came from account data (`endTime` to the minute, names
# only): the plays merge drops it where an extended-history row holds the same stream.
FROM_ACCOUNT = "from_account"

EXPORT_COLUMNS = (
    "item_type",
    "episode_id",
    "ms_played",
    "reason_start",
    "reason_end",
    "skipped",
    "shuffle",
    "offline",
    "incognito",
    "platform",
    "conn_country",
    "track_name",
    "artist_name",
    "album_name",
    "episode_name",
    "show_name",
)


def file_rows(envelope: Envelope) -> tuple[str, str, list[Any]]:
    """The file's name, format and rows; `UnreadableRaw` when the object is not an export file."""
    meta = envelope.meta
    file_name, format_ = meta.get("file_name"), meta.get("format")
    if not isinstance(file_name, str) or not file_name:
        raise UnreadableRaw("wrong shape: meta.file_name is missing")
    if format_ not in exports.FORMATS:
        raise UnreadableRaw(f"wrong shape: meta.format must be one of {exports.FORMATS}")
    if len(envelope.answers) != 1:
        raise UnreadableRaw("wrong shape: an export object holds exactly one answer (the file)")
    body = envelope.answers[0].body
    try:
        found = exports.detect_format(body)
    except exports.NotAnExport as error:
        raise UnreadableRaw(f"{file_name}: {error}") from error
    if found not in (None, format_):
        raise UnreadableRaw(f"{file_name}: meta.format says {format_}, the rows are {found}")
    return file_name, format_, body


def export_rows(
    envelope: Envelope, resolve: Resolve | None = None
) -> tuple[dict[str, list[Row]], list[Issue]]:
    """`plays` and `imports` rows of one export file, and the rows it had to drop."""
    file_name, format_, body = file_rows(envelope)
    user_id = envelope.run.user_id
    plays: list[Row] = []
    issues: list[Issue] = []
    times: list[datetime] = []
    for row in body:
        ended = exports.row_time(row, format_, envelope.run.run_at)
        if ended is None:
            field = "ts" if format_ == exports.EXTENDED else "endTime"
            shown = ascii(row.get(field)) if isinstance(row, dict) else ascii(row)
            issues.append(Issue("plays", field, "no valid end time", ROW_DROPPED, shown[:200]))
            continue
        times.append(ended)
        extended = format_ == exports.EXTENDED
        play = _extended(row) if extended else _account(row, file_name, resolve)
        play |= {
            "user_id": user_id,
            "played_at": ended,
            "context_type": None,
            "context_uri": None,
            "source": "export",
            "played_date": ended.date().isoformat(),
        }
        plays.append(play)
    imported = {
        "user_id": user_id,
        "import_id": text(envelope.meta.get("import_id")) or envelope.run.run_id,
        "file_name": file_name,
        "format": format_,
        "rows": len(body),
        "first_ts": min(times, default=None),
        "last_ts": max(times, default=None),
        "import_date": envelope.run.snapshot_date,
    }
    return {"plays": plays, "imports": [imported]}, issues


def _extended(row: dict[str, Any]) -> Row:
    track_id = exports.uri_id(row.get("spotify_track_uri"), "track")
    episode_id = exports.uri_id(row.get("spotify_episode_uri"), "episode")
    audiobook = any(
        row.get(name) is not None
        for name in ("audiobook_uri", "audiobook_chapter_uri", "audiobook_title")
    )
    if track_id is not None:
        item_type = "track"
    elif episode_id is not None or row.get("episode_name") is not None:
        item_type = "episode"
    elif audiobook:
        item_type = "audiobook"
    else:
        item_type = "unknown"
    show, episode = row.get("episode_show_name"), row.get("episode_name")
    if item_type == "audiobook":
        # An audiobook's title and chapter take the show's and episode's places: both are what
        # a listener followed, and no other column would hold them.
        show, episode = row.get("audiobook_title"), row.get("audiobook_chapter_title")
    return {
        "track_id": track_id,
        "item_type": item_type,
        "episode_id": episode_id,
        "ms_played": integer(row.get("ms_played")),
        "reason_start": text(row.get("reason_start")),
        "reason_end": text(row.get("reason_end")),
        "skipped": boolean(row.get("skipped")),
        "shuffle": boolean(row.get("shuffle")),
        "offline": boolean(row.get("offline")),
        "incognito": boolean(row.get("incognito_mode")),
        "platform": text(row.get("platform")),
        "conn_country": text(row.get("conn_country")),
        "track_name": text(row.get("master_metadata_track_name")),
        "artist_name": text(row.get("master_metadata_album_artist_name")),
        "album_name": text(row.get("master_metadata_album_album_name")),
        "episode_name": text(episode),
        "show_name": text(show),
    }


def _account(row: dict[str, Any], file_name: str, resolve: Resolve | None) -> Row:
    item_type = exports.account_item_type(file_name, row)
    episode = item_type == "episode"
    track_name = None if episode else text(row.get("trackName"))
    artist_name = None if episode else text(row.get("artistName"))
    track_id = None
    if item_type != "episode" and resolve is not None:
        track_id = resolve(track_name, artist_name)
    return {column: None for column in EXPORT_COLUMNS} | {
        FROM_ACCOUNT: True,
        "track_id": track_id,
        "item_type": item_type,
        "ms_played": integer(row.get("msPlayed")),
        "track_name": track_name,
        "artist_name": artist_name,
        "episode_name": text(row.get("episodeName")) if episode else None,
        "show_name": text(row.get("podcastName")) if episode else None,
    }
