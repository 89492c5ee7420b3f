"""The transform's entry points: one raw object, a batch of them, reconcile, full reprocess.

Flow for a raw object: read and check the envelope → rows per table (pure) → merge into the
curated partition files → marker. An object that cannot be read is quarantined, never retried
forever: the handler returns normally and the raw object stays where it is.
"""

from __future__ import annotations

import logging
from typing import Any

from chalicelib import layout
from chalicelib.storage import Storage
from chalicelib.transform import markers, rows, writer
from chalicelib.transform import reconcile as redrive
from chalicelib.transform.objects import Row
from chalicelib.transform.raw import Envelope, Run, UnreadableRaw, read_envelope

logger = logging.getLogger(__name__)

# Raw objects per batch when re-driving many (a day of 30-minute polls is 48), and the rows
# read before their files are written (a daily playlists snapshot can hold tens of thousands).
BATCH_SIZE = 200
MAX_PENDING_ROWS = 100_000


def transform_object(storage: Storage, key: str) -> dict[str, Any]:
    """Transform the raw object `key`; returns its marker (or `status: missing`)."""
    return transform_objects(storage, [key])[0]


def transform_objects(storage: Storage, keys: list[str]) -> list[dict[str, Any]]:
    """Transform raw objects together: each curated file they touch is rewritten once per
    `MAX_PENDING_ROWS` rows read (which bounds the memory a large batch takes).

    Returns one marker per key, in order (`status: missing` for a key that does not exist).
    """
    outcomes: dict[str, dict[str, Any]] = {}
    pending: dict[str, tuple[Run, dict[str, list[Row]]]] = {}
    pending_rows = 0
    for key in dict.fromkeys(keys):
        read = _read(storage, key)
        if isinstance(read, dict):
            outcomes[key] = read
            continue
        pending[key] = read
        pending_rows += sum(len(table_rows) for table_rows in read[1].values())
        if pending_rows > MAX_PENDING_ROWS:
            outcomes |= _write(storage, pending)
            pending, pending_rows = {}, 0
    outcomes |= _write(storage, pending)
    return [outcomes[key] for key in keys]


def _write(
    storage: Storage, pending: dict[str, tuple[Run, dict[str, list[Row]]]]
) -> dict[str, dict[str, Any]]:
    """Merge the pending objects' rows into the curated files, then mark each one done."""
    writer.write_tables(storage, pending.values())
    written = {}
    for key, (_, tables) in pending.items():
        counts = {table: len(table_rows) for table, table_rows in sorted(tables.items())}
        written[key] = markers.write_marker(storage, key, markers.DONE, rows=counts)
    return written


def reconcile(storage: Storage) -> dict[str, Any]:
    """Re-drive every raw object that has no transform marker (S3 drops events after 2 retries)."""
    keys = redrive.unmarked_raw_keys(storage)
    logger.info("reconcile: %d raw objects without a marker", len(keys))
    return redrive.redrive(keys, lambda batch: transform_objects(storage, batch), BATCH_SIZE)


def reprocess(storage: Storage, progress: redrive.Progress | None = None) -> dict[str, Any]:
    """Rebuild `curated/` from `raw/`: delete what the transform derived, transform everything.

    `progress(message)` is told of the headway after each batch of raw objects.
    """
    deleted = redrive.clear_derived(storage)
    keys = list(storage.list(layout.RAW_PREFIX))
    summary = redrive.redrive(
        keys, lambda batch: transform_objects(storage, batch), BATCH_SIZE, progress
    )
    return {"deleted": deleted, **summary}


def _read(storage: Storage, key: str) -> tuple[Run, dict[str, list[Row]]] | dict[str, Any]:
    """The run and rows of raw object `key`, or the marker saying why there are none."""
    blob = storage.get(key)
    if blob is None:
        # An event for an object that is not (or no longer) there: nothing to do or to mark.
        logger.warning("transform: %s does not exist", key)
        return {"raw_key": key, "status": "missing"}
    try:
        envelope = read_envelope(key, blob.data)
        return envelope.run, rows.envelope_rows(envelope, _reused_envelopes(storage, envelope))
    except UnreadableRaw as error:
        return _quarantine(storage, key, str(error))
    except Exception as error:  # the rows are a pure function of the input: the input is odd
        logger.exception("transform: cannot read the answers in %s", key)
        return _quarantine(storage, key, f"wrong shape: {type(error).__name__}: {error}")


def _reused_envelopes(storage: Storage, envelope: Envelope) -> dict[str, Envelope]:
    """The raw objects named in `reused_items`, read and checked like the object itself."""
    found = {}
    for key in sorted(rows.reused_raw_keys(envelope)):
        blob = storage.get(key)
        if blob is None:
            raise UnreadableRaw(f"reused_items names {key}, which does not exist")
        try:
            found[key] = read_envelope(key, blob.data)
        except UnreadableRaw as error:
            reason = f"reused_items names {key}, which is unreadable: {error}"
            raise UnreadableRaw(reason) from error
    return found


def _quarantine(storage: Storage, key: str, reason: str) -> dict[str, Any]:
    logger.warning("transform: quarantined %s: %s", key, reason)
    return markers.quarantine(storage, key, reason)
