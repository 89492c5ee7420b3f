"""Text output for people: run summaries and query results as table, JSON or CSV."""

from __future__ import annotations

import csv
import io
import json
import unicodedata
from typing import Any


def format_run(record: dict[str, Any]) -> str:
    """A short human summary of a run record."""
    sample = " (SAMPLE data)" if record.get("sample") else ""
    lines = [f"run {record['run_id']}: {record['status']}{sample}"]
    for error in record.get("errors", []):
        detail = error.get("message") or error.get("user_id") or ""
        lines.append(f"  error: {error.get('reason')} {detail}".rstrip())
    for user, datasets in sorted(record.get("results", {}).items()):
        for dataset, result in sorted(datasets.items()):
            counts = ", ".join(f"{k}={v}" for k, v in sorted(result.get("counts", {}).items()))
            lines.append(f"  {user} {dataset}: {result.get('status')} {counts}".rstrip())
            for error in result.get("errors", []):
                lines.append(f"    error: {error.get('reason')}")
            for warning in result.get("warnings", []):
                lines.append(f"    warning: {json.dumps(warning, default=str)}")
    return "\n".join(lines)


def render(columns: list[str], rows: list[dict[str, Any]], fmt: str) -> str:
    """Rows as an aligned table, a JSON list of objects, or CSV."""
    if fmt == "json":
        return json.dumps(rows, ensure_ascii=False, default=str) + "\n"
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue()
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([_width(c)] + [_width(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(_pad(c, w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(_pad(v, w) for v, w in zip(r, widths, strict=True)) for r in cells]
    if not rows:
        lines.append("(no rows)")
    return "\n".join(line.rstrip() for line in lines) + "\n"


def _width(text: str) -> int:
    """Terminal columns: wide (CJK) characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
