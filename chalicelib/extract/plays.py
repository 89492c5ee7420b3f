"""`plays`: the newest 50 plays, every poll.

No `after` cursor: a late play arrives with an earlier `played_at`, and a cursor past it would
skip it for good. Duplicates across polls are the transform's to drop. The watermark (newest
`played_at` known) only tells when plays were probably lost: the oldest play returned is newer
than it, so something between them fell out of the 50.
"""

from __future__ import annotations

from typing import Any

from chalicelib import layout
from chalicelib.extract.dataset import Fetch, Fetched
from chalicelib.storage import get_json, update_json

LIMIT = 50


def state_key(user_id: str) -> str:
    return layout.state_key("plays", user_id)


def fetch(job: Fetch) -> Fetched:
    key = state_key(job.user_id)
    watermark = (get_json(job.storage, key) or {}).get("newest_played_at")
    page = job.client.call(lambda sp: sp.current_user_recently_played(limit=LIMIT))
    stamps = [item.get("played_at") for item in page.get("items") or [] if item]
    # Ordered as times, not as text: `…:00Z` and `…:00.500Z` are both Spotify's format.
    played = sorted((s for s in stamps if isinstance(s, str)), key=layout.parse_iso)
    warnings = gap_warnings(watermark, played)

    def advance() -> None:
        if played:
            newest = layout.iso(layout.parse_iso(played[-1]))
            update_json(job.storage, key, lambda doc: _raise_watermark(doc, newest))

    return Fetched(
        extras={"watermark": watermark},
        counts={"plays": len(played)},
        warnings=warnings,
        advance=advance,
    )


def gap_warnings(watermark: str | None, played: list[str]) -> list[dict[str, Any]]:
    """`possible_gap` from the watermark to the oldest play returned, when that is newer."""
    if watermark is None or not played:
        return []
    oldest = layout.parse_iso(played[0])
    if oldest <= layout.parse_iso(watermark):
        return []
    return [{"type": "possible_gap", "from": watermark, "to": layout.iso(oldest)}]


def _raise_watermark(doc: dict[str, Any] | None, newest: str) -> dict[str, Any] | None:
    doc = dict(doc or {})
    current = doc.get("newest_played_at")
    if current is not None and layout.parse_iso(current) >= layout.parse_iso(newest):
        return None  # never backwards: a concurrent run may have seen newer plays
    doc["newest_played_at"] = newest
    return doc
