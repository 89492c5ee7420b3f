"""`saved_tracks`: the library's saves, newest first, down to the first save already known.

The watermark is the newest `added_at` known (state). It moves only when paging completed, and
the envelope says what it was (`known_until`) so the transform keeps only newer saves.

One odd answer must not stop the log: an `added_at` that does not parse is left to the
transform (the raw answer keeps it verbatim), warned about, and kept out of the watermark.
"""

from __future__ import annotations

from typing import Any

from chalicelib import layout
from chalicelib.extract.dataset import Fetch, Fetched
from chalicelib.storage import get_json, update_json


def state_key(user_id: str) -> str:
    return layout.state_key("saved_tracks", user_id)


def fetch(job: Fetch) -> Fetched:
    key = state_key(job.user_id)
    known_until = (get_json(job.storage, key) or {}).get("newest_added_at")
    limit = job.settings.page_limit
    newest: str | None = None
    new_saves = 0
    odd: list[Any] = []
    for page in job.client.pages(lambda sp: sp.current_user_saved_tracks(limit=limit)):
        sent = [i.get("added_at") for i in page.get("items") or [] if isinstance(i, dict)]
        stamps = [s for s in sent if layout.try_parse_iso(s)]
        odd += [s for s in sent if s is not None and not layout.try_parse_iso(s)]
        fresh = [s for s in stamps if _newer(s, known_until)]
        new_saves += len(fresh)
        newest = max([newest, *fresh], key=_order) if fresh else newest
        if len(fresh) < len(stamps):
            break  # this page reached a save already known: everything older is known too

    def advance() -> None:
        if newest is not None:
            update_json(job.storage, key, lambda doc: _raise(doc, newest))

    warnings: list[dict[str, Any]] = []
    if odd:
        warnings.append(
            {"type": "unparseable_added_at", "count": len(odd), "examples": [repr(odd[0])[:80]]}
        )
    return Fetched(
        extras={"known_until": known_until},
        counts={"new_saves": new_saves},
        warnings=warnings,
        advance=advance,
    )


def _newer(stamp: str, known_until: str | None) -> bool:
    return known_until is None or layout.parse_iso(stamp) > layout.parse_iso(known_until)


def _order(stamp: str | None) -> Any:
    return layout.parse_iso(stamp) if stamp else layout.parse_iso("0001-01-01T00:00:00Z")


def _raise(doc: dict[str, Any] | None, newest: str) -> dict[str, Any] | None:
    doc = dict(doc or {})
    if not _newer(newest, doc.get("newest_added_at")):
        return None
    doc["newest_added_at"] = newest
    return doc
