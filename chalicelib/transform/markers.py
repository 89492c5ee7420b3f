"""Transform markers (`runs/transformed/...`) and quarantine reports (`quarantine/...`).

A marker says a raw object is done or quarantined; `GET /runs/{id}` reads it, and reconcile
re-drives every raw object that has none. A quarantine report says why a raw object could not be
read; the raw object itself stays where it is.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from chalicelib import layout
from chalicelib.storage import Storage, dump_json

DONE, QUARANTINED = "done", "quarantined"


def write_marker(
    storage: Storage,
    raw_key: str,
    status: str,
    *,
    reason: str | None = None,
    rows: dict[str, int] | None = None,
    values_quarantined: int = 0,
    plays: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Write (or rewrite: a re-drive may finish twice) the marker of `raw_key`; return it.

    `values_quarantined` counts the values (or rows) a `done` object gave up; the report in
    `quarantine/` (`values_report_key`) says which. `plays` says what became of a history export
    file's rows (`new`, `matched`, `duplicate`) when it was transformed alone.
    """
    marker = {
        "raw_key": raw_key,
        "status": status,
        "reason": reason,
        "rows": rows or {},
        "transformed_at": layout.iso(datetime.now(UTC)),
    }
    if values_quarantined:
        marker["values_quarantined"] = values_quarantined
    if plays is not None:
        marker["plays"] = plays
    storage.put(layout.marker_key(raw_key), dump_json(marker), content_type="application/json")
    return marker


def quarantine(storage: Storage, raw_key: str, reason: str) -> dict[str, Any]:
    """Report why `raw_key` cannot be transformed, then mark it quarantined."""
    report = {"raw_key": raw_key, "reason": reason, "at": layout.iso(datetime.now(UTC))}
    storage.put(layout.quarantine_key(raw_key), dump_json(report), content_type="application/json")
    return write_marker(storage, raw_key, QUARANTINED, reason=reason)


def values_report_key(raw_key: str) -> str:
    """Beside the whole-object report: `quarantine/<raw key>.values.json`."""
    return layout.quarantine_key(raw_key).removesuffix(".reason.json") + ".values.json"


def report_values(storage: Storage, raw_key: str, issues: list[dict[str, str]]) -> None:
    """Report the values of `raw_key` that its tables could not hold (the object itself is
    transformed: only these values, or their rows, are missing from `curated/`)."""
    report = {
        "raw_key": raw_key,
        "reason": f"{len(issues)} value(s) did not fit their column",
        "issues": issues,
        "at": layout.iso(datetime.now(UTC)),
    }
    key = values_report_key(raw_key)
    storage.put(key, dump_json(report), content_type="application/json")
