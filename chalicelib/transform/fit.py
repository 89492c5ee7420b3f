"""Rows → rows every value of which the table's Parquet schema can hold. Pure: no I/O.

Spotify's answers are JSON: a number may exceed an `int` column (int32) or a `bigint` one
(int64), and a string may hold half a surrogate pair, which UTF-8 (and so Arrow) cannot encode.
Written as they are, one such value would fail the whole file — and the whole batch, again at
every reconcile and every poll while the item is among the newest 50. Here such a value costs
only itself (null), or its row when it is part of the row's key (a row without its identity
would merge with others); every change is returned as an `Issue` for the quarantine report.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from chalicelib.tables import TABLES, Table
from chalicelib.transform.objects import Row

INT_RANGE = {"int": (-(2**31), 2**31 - 1), "bigint": (-(2**63), 2**63 - 1)}
NULLED, ROW_DROPPED = "value nulled", "row dropped"


@dataclass(frozen=True)
class Issue:
    """One value the table could not hold: where, why, and what it cost."""

    table: str
    column: str
    reason: str
    action: str
    value: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def fit_tables(tables: dict[str, list[Row]]) -> tuple[dict[str, list[Row]], list[Issue]]:
    """Each table's rows made to fit its schema, and the issues found (in a stable order)."""
    fitted: dict[str, list[Row]] = {}
    issues: list[Issue] = []
    for name, rows in tables.items():
        fitted[name], found = fit_rows(TABLES[name], rows)
        issues.extend(found)
    return fitted, issues


def fit_rows(table: Table, rows: list[Row]) -> tuple[list[Row], list[Issue]]:
    """`rows` with unfit values nulled, and rows whose key column does not fit dropped."""
    kept: list[Row] = []
    issues: list[Issue] = []
    for row in rows:
        fixed, dropped = row, False
        for column in table.columns:
            value = row.get(column.name)
            reason = unfit(column.type, value)
            if reason is None:
                continue
            dropped = dropped or column.name in table.key
            action = ROW_DROPPED if column.name in table.key else NULLED
            issues.append(Issue(table.name, column.name, reason, action, _show(value)))
            if fixed is row:
                fixed = dict(row)
            fixed[column.name] = None
        if not dropped:
            kept.append(fixed)
    return kept, issues


def unfit(logical_type: str, value: Any) -> str | None:
    """Why `value` cannot be written as `logical_type` (None: it can; null always can)."""
    if value is None:
        return None
    if logical_type in INT_RANGE:
        low, high = INT_RANGE[logical_type]
        if not isinstance(value, int) or isinstance(value, bool):
            return f"not an integer: {type(value).__name__}"
        if not low <= value <= high:
            return f"out of range for {logical_type} ({low}..{high})"
        return None
    if logical_type == "string":
        return _unfit_text(value)
    if logical_type == "array<string>":
        if not isinstance(value, list):
            return f"not a list: {type(value).__name__}"
        return next(filter(None, (_unfit_text(item) for item in value if item is not None)), None)
    if logical_type == "timestamp" and not isinstance(value, datetime):
        return f"not a timestamp: {type(value).__name__}"
    if logical_type == "boolean" and not isinstance(value, bool):
        return f"not a boolean: {type(value).__name__}"
    return None


def _unfit_text(value: Any) -> str | None:
    if not isinstance(value, str):
        return f"not a string: {type(value).__name__}"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        return f"not valid Unicode (UTF-8 cannot encode it): {error.reason}"
    return None


def _show(value: Any) -> str:
    """The value as the report shows it: ASCII-safe, cut to a readable length."""
    text = ascii(value)
    return text if len(text) <= 200 else text[:197] + "..."
