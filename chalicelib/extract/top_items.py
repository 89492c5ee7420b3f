"""`top_items`: top artists and tracks for each time range, every page. No state."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalicelib.extract.dataset import Fetch, Fetched

TIME_RANGES = ("short_term", "medium_term", "long_term")
KINDS = {"artists": "current_user_top_artists", "tracks": "current_user_top_tracks"}


def fetch(job: Fetch) -> Fetched:
    counts: dict[str, int] = {}
    for kind, method in KINDS.items():
        for time_range in TIME_RANGES:
            first = _first_page(method, time_range, job.settings.page_limit)
            items = sum(len(page.get("items") or []) for page in job.client.pages(first))
            counts[f"{kind}.{time_range}"] = items
    return Fetched(counts=counts)


def _first_page(method: str, time_range: str, limit: int) -> Callable[[Any], dict[str, Any]]:
    return lambda sp: getattr(sp, method)(limit=limit, time_range=time_range)
