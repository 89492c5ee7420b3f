"""`GET /health` (contract §5): is every user polled in time, and is Spotify locking us out?

A play not polled within about 50 plays is lost, so a user is `stale` once the last successful
history poll is older than two poll intervals and a half hour. Everything here is read from
`state/` (no Spotify call, no listing): each user's last poll and recorded possible gaps, the
quota ledger of today's UTC date and the cooldown.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from chalicelib import layout, quota
from chalicelib import users as users_module
from chalicelib.extract import plays
from chalicelib.services import Services
from chalicelib.storage import get_json

STALE_GRACE_MINUTES = 30


def stale_after_minutes(poll_minutes: int) -> int:
    """Minutes without a successful poll after which a user reads as stale."""
    return 2 * poll_minutes + STALE_GRACE_MINUTES


def latest_gap(gaps: list[dict[str, Any]]) -> dict[str, str] | None:
    """The most recent possible gap (`{"from", "to"}`), which says where to look first."""
    if not gaps:
        return None
    newest = max(gaps, key=lambda gap: layout.parse_iso(gap["to"]))
    return {"from": newest["from"], "to": newest["to"]}


def report(services: Services, now: datetime | None = None) -> dict[str, Any]:
    """The health document: per connected user, then the app's quota."""
    now = layout.utc(now or datetime.now(UTC))
    storage, config = services.storage, services.config
    limit = stale_after_minutes(config.history_poll_minutes)
    users = []
    for user in users_module.list_users(services):
        last = user.get("last_successful_poll")
        minutes = None if last is None else (now - layout.parse_iso(last)).total_seconds() / 60
        gaps = plays.open_gaps(get_json(storage, plays.state_key(user["user_id"])), now)
        users.append(
            {
                "user_id": user["user_id"],
                "last_successful_poll": last,
                "minutes_since_poll": None if minutes is None else round(minutes, 1),
                "stale": minutes is None or minutes > limit,
                "open_gaps": len(gaps),
                "latest_gap": latest_gap(gaps),
            }
        )
    until = quota.cooldown_until(storage, now)
    return {
        "users": users,
        "stale_after_minutes": limit,
        "cooldown_until": None if until is None else layout.iso(until),
        "calls_today": quota.calls_on(storage, now.date().isoformat()),
        "daily_budget": config.spotify_daily_budget,
    }
