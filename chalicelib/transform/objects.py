"""Spotify objects → table rows, and the value coercions they need. Pure functions.

Spotify drops fields over time (popularity, followers, label, ...) and may send any non-id field
as null, so every reader here returns None for a field that is missing or of the wrong type rather
than raising: one odd field must never cost the rest of a raw object.
"""

from __future__ import annotations

import functools
import re
from datetime import datetime
from typing import Any

from chalicelib import layout

Row = dict[str, Any]

_YEAR = re.compile(r"^(\d{4})")


class ShapeError(ValueError):
    """A 2xx answer whose structure (not a mere field) is not what Spotify sends."""


def text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def integer(value: Any) -> int | None:
    # bool is an int subclass: a `true` where a count belongs is not a count.
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def flag(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def timestamp(value: Any) -> datetime | None:
    """An ISO timestamp as a UTC datetime cut to milliseconds (the Parquet precision), or None."""
    return _parse_timestamp(value) if isinstance(value, str) else None


@functools.lru_cache(maxsize=16_384)
def _parse_timestamp(value: str) -> datetime | None:
    """Each distinct text parsed once: overlapping polls repeat their `played_at`s, playlist
    items share `added_at`s, and a datetime is immutable, so sharing one is safe."""
    moment = layout.try_parse_iso(value)
    if moment is None:
        return None
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def mapping(value: Any) -> dict[str, Any]:
    """A nested object, or {} when it is missing or null (so `.get` chains stay safe)."""
    return value if isinstance(value, dict) else {}


def object_list(container: dict[str, Any], field: str) -> list[dict[str, Any] | None]:
    """`container[field]` as a list of objects (None kept: a null item keeps its slot).

    A missing list is empty; a list that is something else is a shape error, not a null field.
    """
    value = container.get(field)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ShapeError(f"{field!r} is {type(value).__name__}, not a list")
    for entry in value:
        if entry is not None and not isinstance(entry, dict):
            raise ShapeError(f"{field!r} holds a {type(entry).__name__}, not an object")
    return value


def release_year(release_date: str | None) -> int | None:
    """`"1981"`, `"1981-12"` and `"1981-12-04"` all give 1981, whatever the precision."""
    if release_date is None:
        return None
    match = _YEAR.match(release_date)
    return int(match[1]) if match else None


def is_episode(obj: dict[str, Any]) -> bool:
    return obj.get("type") == "episode"


def spotify_id(obj: dict[str, Any]) -> str | None:
    """The object's id; a local file (`is_local`) has none even if one is sent."""
    if obj.get("is_local") is True:
        return None
    return text(obj.get("id"))


def track_row(track: dict[str, Any]) -> Row:
    album = mapping(track.get("album"))
    return {
        "track_id": spotify_id(track),
        "name": text(track.get("name")),
        "album_id": spotify_id(album),
        "duration_ms": integer(track.get("duration_ms")),
        "explicit": flag(track.get("explicit")),
        "isrc": text(mapping(track.get("external_ids")).get("isrc")),
        "disc_number": integer(track.get("disc_number")),
        "track_number": integer(track.get("track_number")),
    }


def album_row(album: dict[str, Any]) -> Row:
    release_date = text(album.get("release_date"))
    return {
        "album_id": spotify_id(album),
        "name": text(album.get("name")),
        "album_type": text(album.get("album_type")),
        "release_date": release_date,
        "release_date_precision": text(album.get("release_date_precision")),
        "release_year": release_year(release_date),
        "total_tracks": integer(album.get("total_tracks")),
    }


def artist_row(artist: dict[str, Any]) -> Row:
    """Simplified artists carry no `genres`: null (unknown), unlike `[]` (known to have none)."""
    genres = artist.get("genres")
    known = isinstance(genres, list)
    return {
        "artist_id": spotify_id(artist),
        "name": text(artist.get("name")),
        "genres": [g for g in genres if isinstance(g, str)] if known else None,
    }
