"""Spotify's data download (contract §8): which files are history, their format, their rows.

Pure: no I/O. The import command uses it to check files before anything is uploaded, the
transform to read the raw objects the import landed. Two formats, told apart by content:

- `extended`: extended streaming history (`Streaming_History_Audio_*.json`, `endsong_*.json`),
  rows with `ts` (when the stream ended, ISO UTC) and `ms_played`;
- `account`: account data (`StreamingHistory_music_*.json`, `StreamingHistory_podcast_*.json`,
  older `StreamingHistory<n>.json`), rows with `endTime` (`YYYY-MM-DD HH:MM`, UTC) and
  `msPlayed`, names but no ids.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chalicelib import layout

EXTENDED, ACCOUNT = "extended", "account"
FORMATS = (EXTENDED, ACCOUNT)

# Never written anywhere: they identify the listener's network and devices (contract §8).
NETWORK_FIELDS = frozenset({"ip_addr", "ip_addr_decrypted", "user_agent_decrypted", "username"})

# What a file's name says about it (its folder in the zip does not matter).
_VIDEO = re.compile(r"^Streaming_History_Video_.*\.json$", re.IGNORECASE)
_HISTORY_NAMES = (
    re.compile(r"^Streaming_History_Audio_.*\.json$", re.IGNORECASE),
    re.compile(r"^endsong(_\d+)?\.json$", re.IGNORECASE),
    re.compile(r"^StreamingHistory(_music|_podcast)?_?\d*\.json$", re.IGNORECASE),
)
_ACCOUNT_TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}$")
# Streams end after Spotify began (2006) and before the import: a `ts` outside is no stream.
_NO_EARLIER = datetime(2006, 1, 1, tzinfo=UTC)
_NO_LATER = datetime(2100, 1, 1, tzinfo=UTC)


VIDEO = "video history (not imported)"


def format_from_name(name: str) -> str:
    """What a file's name says its format is (for an empty file, whose rows cannot say)."""
    return ACCOUNT if base_name(name).lower().startswith("streaminghistory") else EXTENDED


class NotAnExport(ValueError):
    """A file that is not a streaming history file of either format; the message says why."""


@dataclass(frozen=True)
class Skip:
    """A file in the download that is not imported, and why."""

    name: str
    reason: str


def base_name(name: str) -> str:
    return name.replace("\\", "/").rsplit("/", 1)[-1]


def skip_reason(name: str) -> str | None:
    """Why a file of the download is not imported (video history, not a history file), or None
    for a streaming history file."""
    base = base_name(name)
    if _VIDEO.match(base):
        return VIDEO
    if not any(pattern.match(base) for pattern in _HISTORY_NAMES):
        return "not a streaming history file"
    return None


def detect_format(rows: Any) -> str | None:
    """`extended` or `account` from the rows' shape; None for an empty list (either);
    `NotAnExport` for JSON of another shape."""
    if not isinstance(rows, list):
        raise NotAnExport(f"expected a JSON array of plays, got a JSON {_kind(rows)}")
    if not rows:
        return None
    first = rows[0]
    if not isinstance(first, dict):
        raise NotAnExport(f"expected a JSON array of objects, got an array of {_kind(first)}")
    if "ts" in first and "ms_played" in first:
        return EXTENDED
    if "endTime" in first and "msPlayed" in first:
        return ACCOUNT
    keys = ", ".join(sorted(first)[:6]) or "none"
    raise NotAnExport(
        "not a streaming history: rows need ts and ms_played (extended) or endTime and "
        f"msPlayed (account data); the first row has keys {keys}"
    )


def scrub(rows: list[Any]) -> list[Any]:
    """The rows without their network identifiers; everything else verbatim."""
    return [
        {k: v for k, v in row.items() if k not in NETWORK_FIELDS} if isinstance(row, dict) else row
        for row in rows
    ]


def account_item_type(file_name: str, row: dict[str, Any]) -> str:
    """Account data says what a row is only through its file: podcast files name shows, music
    files tracks; the oldest files (`StreamingHistory<n>.json`) mix both."""
    if "podcastName" in row or "episodeName" in row:
        return "episode"
    return "track" if "_music" in base_name(file_name).lower() else "unknown"


def row_time(row: Any, format_: str, latest: datetime | None = None) -> datetime | None:
    """When the stream ended (`ts` / `endTime`, to the millisecond as Parquet keeps it), or None
    when the row has no valid one: none, not a time, before Spotify existed, or after `latest`
    (the import's moment and a day of clock skew)."""
    if not isinstance(row, dict):
        return None
    if format_ == EXTENDED:
        moment = layout.try_parse_iso(row.get("ts"))
    else:
        moment = _account_time(row.get("endTime"))
    if moment is None:
        return None
    moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    limit = (latest or _NO_LATER) + layout.FUTURE_SLACK
    return moment if _NO_EARLIER <= moment <= limit else None


def _account_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not _ACCOUNT_TIME.match(value):
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
    except ValueError:
        return None


def uri_id(value: Any, kind: str) -> str | None:
    """`spotify:<kind>:<id>` → id; None for anything else."""
    if isinstance(value, str) and value.startswith(f"spotify:{kind}:"):
        found = value[len(kind) + 9 :]
        return found or None
    return None


def _kind(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(
        type(value), "number" if isinstance(value, int | float) else "null"
    )
