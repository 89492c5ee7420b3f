"""Run records (`runs/records/<run_id>.json`): created first, updated as datasets finish.

`GET /runs/{id}` reads them through `describe_run`, which adds each raw object's transform
state from its marker, and reports a run still `running` past its deadline as `failed`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from chalicelib import layout
from chalicelib.storage import (
    PreconditionFailed,
    Storage,
    create_json,
    dump_json,
    get_json,
    list_after,
    update_json,
)

RECORDS_PREFIX = layout.RUNS_PREFIX + "records/"
QUEUED = "queued"  # written by POST /runs; the extraction takes it over when it starts


def create_run(storage: Storage, record: dict[str, Any]) -> bool:
    """Start a run: write its record, or take over a `queued` one (written by `POST /runs`).

    False when the run exists in any other state: a retried request, not to be run twice.
    """
    key = layout.run_record_key(record["run_id"])
    if create_json(storage, key, record):
        return True
    current = storage.get(key)
    if current is None or json.loads(current.data).get("status") != QUEUED:
        return False
    try:  # only one of several deliveries of the same request wins the queued record
        storage.put(key, dump_json(record), if_match=current.etag, content_type="application/json")
    except PreconditionFailed:
        return False
    return True


def queue_run(storage: Storage, run_id: str, run_at: datetime, deadline: datetime) -> bool:
    """`POST /runs`: a `queued` record, so `GET /runs/{id}` answers before the run starts.

    `deadline` bounds the wait for the asynchronous start: a run still queued past it reads
    as `failed`. False when the run id exists already.
    """
    record = {
        "run_id": run_id,
        "status": QUEUED,
        "run_at": layout.iso(run_at),
        "deadline": layout.iso(deadline),
        "results": {},
        "errors": [],
    }
    return create_json(storage, layout.run_record_key(run_id), record)


def get_run(storage: Storage, run_id: str) -> dict[str, Any] | None:
    return get_json(storage, layout.run_record_key(run_id))


def update_run(
    storage: Storage, run_id: str, change: Callable[[dict[str, Any]], None]
) -> dict[str, Any]:
    """Apply `change` (mutating a copy) to the record under a conditional write."""

    def apply(doc: dict[str, Any] | None) -> dict[str, Any]:
        if doc is None:
            raise KeyError(f"no run record {run_id}")
        doc = dict(doc)
        change(doc)
        return doc

    return update_json(storage, layout.run_record_key(run_id), apply) or {}


# Reasons that mean "not now" rather than "broken" (contract §9).
WAITING_REASONS = frozenset({"cooldown", "budget"})


def overall_status(results: dict[str, dict[str, dict[str, Any]]], errors: list[Any]) -> str:
    """succeeded: every dataset did; failed: none did anything; partial: in between."""
    statuses = [d["status"] for datasets in results.values() for d in datasets.values()]
    # A crash is our bug, not Spotify's refusal: fail loudly so schedulers and exit codes see it.
    if any(e.get("reason") == "internal_error" for e in errors):
        return "failed"
    if not statuses:
        # Held back by the budget or a lockout before any dataset began: nothing broke.
        waited = errors and all(e.get("reason") in WAITING_REASONS for e in errors)
        return "partial" if waited else "failed"
    if all(s == "succeeded" for s in statuses) and not errors:
        return "succeeded"
    if all(s == "failed" for s in statuses):
        return "failed"
    return "partial"


def effective_status(record: dict[str, Any], now: datetime | None = None) -> str:
    """The record's status, except that `running` (or `queued`) past its deadline reads as
    `failed`."""
    now = now or datetime.now(UTC)
    deadline = record.get("deadline")
    status = str(record.get("status"))
    if status in ("running", QUEUED) and deadline and layout.parse_iso(deadline) < now:
        return "failed"
    # A queued run is, for whoever asks, a run that has started (contract §5 knows 4 states).
    return "running" if status == QUEUED else status


def list_runs(
    storage: Storage, limit: int = 20, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Recent runs, newest first (run ids sort by time)."""
    runs = []
    keys = recent_record_keys(storage, limit, now)
    for key in keys:
        record = get_json(storage, key)
        if record is not None:
            runs.append(_summary(record))
    return runs


def recent_record_keys(storage: Storage, limit: int, now: datetime | None = None) -> list[str]:
    """The keys of the `limit` newest run records, newest first, listing only what that needs.

    Run ids begin with their run's UTC time (`20261124T063000Z-…`), so a month's records share
    a prefix (`runs/records/202611`). S3 lists in ascending order only: one listing finds the
    oldest record (where to stop), one the records of months after `now`'s (runs simulated with
    a later `--at`), then months are listed newest first until `limit` records are found.
    Requests grow with the months holding those records, not with the number of runs ever made.
    """
    oldest = next(iter(storage.list(RECORDS_PREFIX)), None)
    if oldest is None:
        return []
    first_month = _month_of(oldest)
    if first_month is None:  # not a run id: fall back to the whole listing
        return sorted(storage.list(RECORDS_PREFIX), reverse=True)[:limit]
    this_month = (now or datetime.now(UTC)).strftime("%Y%m")
    # '~' sorts after every digit: start after all of this month's records.
    later = list(list_after(storage, RECORDS_PREFIX, f"{RECORDS_PREFIX}{this_month}~"))
    found = sorted(later, reverse=True)[:limit]
    month = this_month
    while len(found) < limit and month >= first_month:
        found += sorted(storage.list(f"{RECORDS_PREFIX}{month}"), reverse=True)[
            : limit - len(found)
        ]
        month = _previous_month(month)
    return found


def _month_of(key: str) -> str | None:
    """`runs/records/20261124T…` → `202611`; None for a key that is not a run record's."""
    month = key[len(RECORDS_PREFIX) :][:6]
    return month if len(month) == 6 and month.isascii() and month.isdigit() else None


def _previous_month(month: str) -> str:
    year, number = int(month[:4]), int(month[4:])
    return f"{year - 1}12" if number == 1 else f"{year}{number - 1:02d}"


def describe_run(
    storage: Storage, run_id: str, now: datetime | None = None
) -> dict[str, Any] | None:
    """The record with its effective status and, per raw object, its transform state."""
    record = get_run(storage, run_id)
    if record is None:
        return None
    record["status"] = effective_status(record, now)
    for datasets in record.get("results", {}).values():
        for outcome in datasets.values():
            outcome["transforms"] = {
                raw: transform_state(storage, raw) for raw in outcome.get("raw_objects", [])
            }
    return record


def transform_state(storage: Storage, raw_key: str) -> dict[str, Any]:
    """`pending` until the transform marker exists, then its `done`/`quarantined` + reason."""
    marker = get_json(storage, layout.marker_key(raw_key))
    if marker is None:
        return {"state": "pending"}
    return {"state": marker.get("status", "done"), "reason": marker.get("reason")}


def _summary(record: dict[str, Any]) -> dict[str, Any]:
    fields = ("run_id", "run_at", "started_at", "finished_at", "datasets", "users")
    return {**{f: record.get(f) for f in fields}, "status": effective_status(record)}
