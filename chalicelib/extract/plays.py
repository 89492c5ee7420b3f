"""`plays`: the newest 50 plays, every poll.

No `after` cursor: a late play arrives with an earlier `played_at`, and a cursor past it would
skip it for good. Duplicates across polls are the transform's to drop. The watermark (newest
`played_at` known) only tells when plays were probably lost: the oldest play returned is newer
than it, so something between them fell out of the 50. Each such window is also kept in the
user's state (`gaps`, the last `GAP_DAYS` days) for `GET /health`'s `open_gaps`.

One odd answer must not stop the polls: a `played_at` that does not parse is left to the
transform (the raw answer keeps it verbatim), warned about, and kept out of the watermark; so is
one in the future (past `run_at` + `FUTURE_SLACK`), which would otherwise hold the watermark — and
so every later gap warning — for good.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from chalicelib import layout
from chalicelib.extract.dataset import Fetch, Fetched
from chalicelib.storage import Storage, get_json, update_json

LIMIT = 50
GAP_DAYS = 30  # how long a possible gap is remembered for `GET /health`
MAX_GAPS = 100


def state_key(user_id: str) -> str:
    return layout.state_key("plays", user_id)


def fetch(job: Fetch) -> Fetched:
    key = state_key(job.user_id)
    watermark = (get_json(job.storage, key) or {}).get("newest_played_at")
    page = job.client.call(lambda sp: sp.current_user_recently_played(limit=LIMIT))
    items = page.get("items") if isinstance(page, dict) else None
    stamps = [item.get("played_at") for item in items or [] if isinstance(item, dict)]
    played, future = returned(stamps, job.run_at)
    warnings = gap_warnings(watermark, played)
    odd = [s for s in stamps if not layout.try_parse_iso(s)]
    for kind, found in (("unparseable_played_at", odd), ("future_played_at", future)):
        if found:
            warnings.append({"type": kind, "count": len(found), "examples": [repr(found[0])[:80]]})
    gaps = [w for w in warnings if w["type"] == "possible_gap"]

    def advance() -> None:
        if played:
            newest = layout.iso(layout.parse_iso(played[-1]))
            update_json(
                job.storage, key, lambda doc: _raise_watermark(doc, newest, gaps, job.run_at)
            )

    return Fetched(
        extras={"watermark": watermark},
        counts={"plays": sum(isinstance(s, str) for s in stamps)},
        warnings=warnings,
        advance=advance,
    )


def returned(stamps: list[Any], run_at: datetime) -> tuple[list[str], list[str]]:
    """The `played_at` values a poll returned that are times, oldest first, and apart those
    past `run_at` + `FUTURE_SLACK` (no real play). The transform reads raw objects with it too,
    so `history_gaps` holds exactly the gaps the runs warned of."""
    # Ordered as times, not as text: `…:00Z` and `…:00.500Z` are both Spotify's format.
    played = sorted((s for s in stamps if layout.try_parse_iso(s)), key=layout.parse_iso)
    horizon = layout.utc(run_at) + layout.FUTURE_SLACK
    future = [s for s in played if layout.parse_iso(s) > horizon]
    return played[: len(played) - len(future)], future


def gap_warnings(watermark: str | None, played: list[str]) -> list[dict[str, Any]]:
    """`possible_gap` from the watermark to the oldest play returned, when that is newer."""
    if watermark is None or not played:
        return []
    oldest = layout.parse_iso(played[0])
    if oldest <= layout.parse_iso(watermark):
        return []
    return [{"type": "possible_gap", "from": watermark, "to": layout.iso(oldest)}]


def open_gaps(doc: dict[str, Any] | None, now: datetime) -> list[dict[str, Any]]:
    """The possible gaps recorded in a plays state document within `GAP_DAYS` of `now`, but
    those an imported export file covers (`remember_import`, contract §8)."""
    since = layout.utc(now) - timedelta(days=GAP_DAYS)
    imported = [
        (layout.parse_iso(window["first_ts"]), layout.parse_iso(window["last_ts"]))
        for window in (doc or {}).get("imported") or []
    ]
    return [
        gap
        for gap in (doc or {}).get("gaps") or []
        if layout.parse_iso(gap.get("seen_at") or gap["to"]) >= since
        and not any(
            first <= layout.parse_iso(gap["from"]) and last >= layout.parse_iso(gap["to"])
            for first, last in imported
        )
    ]


def remember_import(storage: Storage, user_id: str, windows: list[tuple[str, str]]) -> None:
    """Record the spans imported export files cover (`first_ts`, `last_ts` of each): a possible
    gap inside one is closed. Only the newest `MAX_GAPS` spans are kept, like the gaps."""

    def add(doc: dict[str, Any] | None) -> dict[str, Any] | None:
        doc = dict(doc or {})
        known = doc.get("imported") or []
        spans = {(w["first_ts"], w["last_ts"]) for w in known}
        fresh = [{"first_ts": a, "last_ts": b} for a, b in windows if (a, b) not in spans]
        if not fresh:
            return None
        doc["imported"] = sorted(known + fresh, key=lambda w: w["last_ts"])[-MAX_GAPS:]
        return doc

    update_json(storage, state_key(user_id), add)


def _raise_watermark(
    doc: dict[str, Any] | None,
    newest: str,
    gaps: list[dict[str, Any]] | None = None,
    run_at: datetime | None = None,
) -> dict[str, Any] | None:
    doc = dict(doc or {})
    current = doc.get("newest_played_at")
    known = doc.get("gaps") or []
    seen = {(g["from"], g["to"]) for g in known}
    fresh = [
        {"from": g["from"], "to": g["to"], "seen_at": layout.iso(run_at) if run_at else g["to"]}
        for g in gaps or []
        if (g["from"], g["to"]) not in seen
    ]
    if fresh:
        doc["gaps"] = (known + fresh)[-MAX_GAPS:]
    if current is not None and layout.parse_iso(current) >= layout.parse_iso(newest):
        return doc if fresh else None  # never backwards: a concurrent run saw newer plays
    doc["newest_played_at"] = newest
    return doc
