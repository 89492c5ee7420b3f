"""The request budget and the cooldown (contract §9): one quota for the whole Spotify app.

Spotify counts one quota per developer account over a rolling day and, past it, answers 429
`QUOTA_EXCEEDED` with a Retry-After of hours. A play not polled within ~50 plays is gone, so
calls are budgeted across runs and users, and a lockout stops every call until it ends.

Two documents in `state/`, both on the run's clock (`run_at`, which `--at` sets):
- `state/quota/ledger/<UTC date of run_at>.json`: `{"calls": n}`, the Web API calls made that
  day by every run (each dataset adds what it made when it ends, under a guarded write);
- `state/quota/cooldown.json`: `{"until", "reason", "started_by", "retry_after"}`; a run whose
  `run_at` is before `until` makes no call at all.

The runner holds one `Quota` per run and hands each dataset a `CallGate` (the client asks it
before every call). Priorities come from the dataset registry: `plays` may spend the budget down
to zero; the daily datasets and enrichment only what is left above the calls that the rest of
the day's history polls will need (`plays_reserve`). Concurrent runs may overshoot the budget
by what they make between their ledger reads: the ledger is read when a dataset starts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from chalicelib import datasets as registry
from chalicelib import layout
from chalicelib.spotify.errors import SpotifyCallError
from chalicelib.storage import Storage, get_json, update_json

DEFAULT_DAILY_BUDGET = 800
# A QUOTA_EXCEEDED answer without a Retry-After: assume the longest lockout seen (contract §1).
DEFAULT_LOCKOUT_SECONDS = 24 * 3600
COOLDOWN_KEY = layout.state_key("quota", "cooldown")


def ledger_key(day: str) -> str:
    """`state/quota/ledger/2026-11-20.json`: the calls of one UTC day."""
    return layout.state_key("quota", "ledger", day)


def calls_on(storage: Storage, day: str) -> int:
    """Calls counted in the ledger for one UTC day (`YYYY-MM-DD`)."""
    return int((get_json(storage, ledger_key(day)) or {}).get("calls", 0))


def cooldown_until(storage: Storage, now: datetime) -> datetime | None:
    """The end of the cooldown when `now` is inside one, else None."""
    doc = get_json(storage, COOLDOWN_KEY) or {}
    until = doc.get("until")
    if not until:
        return None
    end = layout.parse_iso(until)
    return end if layout.utc(now) < end else None


def start_cooldown(
    storage: Storage, until: datetime, *, reason: str, run_id: str, retry_after: int
) -> datetime:
    """Record a lockout ending at `until`; a longer one already recorded stands. Returns the
    cooldown's end as recorded."""
    stamp = layout.iso(until)

    def change(doc: dict[str, Any] | None) -> dict[str, Any] | None:
        current = (doc or {}).get("until")
        if current and layout.parse_iso(current) >= until:
            return None
        return {"until": stamp, "reason": reason, "started_by": run_id, "retry_after": retry_after}

    update_json(storage, COOLDOWN_KEY, change)
    doc = get_json(storage, COOLDOWN_KEY) or {}
    return layout.parse_iso(doc.get("until") or stamp)


def add_calls(storage: Storage, day: str, calls: int) -> None:
    """Count `calls` in the day's ledger (a guarded read-modify-write: concurrent runs add up)."""
    if calls <= 0:
        return

    def change(doc: dict[str, Any] | None) -> dict[str, Any]:
        doc = dict(doc or {})
        doc["calls"] = int(doc.get("calls", 0)) + calls
        return doc

    update_json(storage, ledger_key(day), change)


def polls_left_today(run_at: datetime, poll_minutes: int) -> int:
    """History polls still due in `run_at`'s UTC day, this one excluded."""
    at = layout.utc(run_at)
    midnight = datetime(at.year, at.month, at.day, tzinfo=at.tzinfo) + timedelta(days=1)
    minutes = (midnight - at).total_seconds() / 60.0
    return max(0, math.ceil(minutes / max(1, poll_minutes)) - 1)


class CallGate:
    """What one dataset may still call (`limit`: what is left of the day's budget, less, for
    all but plays, what the day's remaining polls need); the client asks before every request.
    A run passes one to learning the env user's id too, which counts its calls with `spent`.
    """

    def __init__(self, quota: Quota, limit: int) -> None:
        self.quota = quota
        self.limit = limit
        self.allowed = 0

    def before_call(self) -> None:
        """Raise `SpotifyCallError` (`cooldown` / `budget`) instead of making a call."""
        if self.quota.locked_until is not None:
            raise self.quota.cooldown_error()
        if self.allowed >= self.limit:
            raise SpotifyCallError("budget", "the day's request budget is spent")
        self.allowed += 1

    def lock_out(self, retry_after: int | None, reason: str) -> datetime:
        """Spotify locked the app out: no call from this run or any other before the end."""
        return self.quota.lock_out(retry_after, reason)

    def spent(self, calls: int) -> None:
        """Calls made outside a dataset (learning the env user's id): into the ledger."""
        self.quota.spent(calls)


@dataclass
class Quota:
    """The budget and cooldown as one run sees them (the run's clock is `run_at`)."""

    storage: Storage
    run_id: str
    run_at: datetime
    daily_budget: int
    poll_minutes: int
    users: int = 1  # connected users: each needs a history poll every `poll_minutes`
    locked_until: datetime | None = None
    calls: int = 0  # Web API calls this run made

    @property
    def day(self) -> str:
        return layout.utc(self.run_at).date().isoformat()

    def check_cooldown(self) -> datetime | None:
        """The cooldown in force at `run_at`, remembered for the rest of the run."""
        if self.locked_until is None:
            self.locked_until = cooldown_until(self.storage, self.run_at)
        return self.locked_until

    def plays_reserve(self) -> int:
        """Calls kept for the rest of the day's history polls (one call per user and poll)."""
        return self.users * polls_left_today(self.run_at, self.poll_minutes)

    def gate(self, priority: int) -> CallGate | SpotifyCallError:
        """A gate for one dataset of `priority`, or the error that skips it (no call made)."""
        if self.check_cooldown() is not None:
            return self.cooldown_error()
        left = self.daily_budget - calls_on(self.storage, self.day)
        if priority > registry.PLAYS_FIRST:
            left -= self.plays_reserve()
        if left <= 0:
            return SpotifyCallError(
                "budget",
                f"the day's request budget ({self.daily_budget}) is spent"
                + ("" if priority == registry.PLAYS_FIRST else " or kept for history polls"),
            )
        return CallGate(self, left)

    def spent(self, calls: int) -> None:
        """A dataset ended having made `calls` calls: count them in the day's ledger."""
        self.calls += calls
        add_calls(self.storage, self.day, calls)

    def lock_out(self, retry_after: int | None, reason: str) -> datetime:
        seconds = DEFAULT_LOCKOUT_SECONDS if retry_after is None else retry_after
        until = layout.utc(self.run_at) + timedelta(seconds=seconds)
        self.locked_until = start_cooldown(
            self.storage, until, reason=reason, run_id=self.run_id, retry_after=seconds
        )
        return self.locked_until

    def cooldown_error(self) -> SpotifyCallError:
        assert self.locked_until is not None
        until = layout.iso(self.locked_until)
        return SpotifyCallError(
            "cooldown", f"Spotify locked the app out until {until}", cooldown_until=until
        )

    def summary(self) -> dict[str, Any]:
        """What the run record shows of the quota when the run ends."""
        return {
            "day": self.day,
            "calls_today": calls_on(self.storage, self.day),
            "daily_budget": self.daily_budget,
            "cooldown_until": None if self.locked_until is None else layout.iso(self.locked_until),
        }
