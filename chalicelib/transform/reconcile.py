"""Re-driving raw objects: the ones S3 gave up on (reconcile), or all of them (reprocess)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from chalicelib import layout
from chalicelib.storage import Storage

Transform = Callable[[list[str]], list[dict[str, Any]]]
# Told of headway in words, e.g. "200/686 raw objects transformed" (the CLI prints it).
Progress = Callable[[str], None]

# `runs/transformed/`, derived from layout's one definition of marker keys.
MARKER_PREFIX = layout.marker_key(layout.RAW_PREFIX).removesuffix(".json")


def unmarked_raw_keys(storage: Storage) -> list[str]:
    """Raw objects without a transform marker (two listings, not one lookup per object)."""
    marked = set(storage.list(MARKER_PREFIX))
    return [key for key in storage.list(layout.RAW_PREFIX) if layout.marker_key(key) not in marked]


def redrive(
    keys: list[str], transform: Transform, batch_size: int, progress: Progress | None = None
) -> dict[str, Any]:
    """Transform `keys` in batches, in order; count the outcomes by marker status."""
    outcomes: Counter[str] = Counter()
    for start in range(0, len(keys), batch_size):
        batch = keys[start : start + batch_size]
        outcomes.update(marker.get("status", "unknown") for marker in transform(batch))
        if progress is not None:
            progress(f"{start + len(batch)}/{len(keys)} raw objects transformed")
    return {"objects": len(keys), **outcomes}


def clear_derived(storage: Storage) -> int:
    """Delete everything the transform derives from `raw/` (curated tables, quarantine reports)."""
    keys = [*storage.list(layout.CURATED_PREFIX), *storage.list(layout.QUARANTINE_PREFIX)]
    for key in keys:
        storage.delete(key)
    return len(keys)
