"""The transform's entry points: one raw object, a batch of them, reconcile, full reprocess.

Flow for a raw object: read and check the envelope → rows per table (pure) → values fitted to
the schema (`fit`) → merge into the curated partition files → marker. An object that cannot be
read is quarantined, never retried forever: the handler returns normally and the raw object stays
where it is. A value that does not fit its column costs that value (or its row), reported in
`quarantine/`; the object is still `done`. Transient storage errors are retried, then raised
(S3 re-delivers the event, reconcile re-drives it): they are never the object's fault.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any

from chalicelib import datasets, layout
from chalicelib.storage import Storage, TransientStorageError, is_transient, retry_transient
from chalicelib.transform import export_rows, fit, markers, rows, writer
from chalicelib.transform import reconcile as redrive
from chalicelib.transform.known_tracks import KnownTracks
from chalicelib.transform.objects import Row
from chalicelib.transform.raw import Answer, Envelope, Run, UnreadableRaw, read_envelope

logger = logging.getLogger(__name__)

# Raw objects per batch when re-driving many (a day of 30-minute polls is 48), and the rows
# read before their files are written (a daily playlists snapshot can hold tens of thousands).
BATCH_SIZE = 200
MAX_PENDING_ROWS = 100_000
# Outcome of an object whose storage kept failing transiently in a re-drive: left unmarked, so
# the next reconcile takes it again (the S3 event path raises instead).
DEFERRED = "deferred"


@dataclass(frozen=True)
class _Read:
    """One readable raw object: its run, its rows per table, and the values they gave up."""

    run: Run
    tables: dict[str, list[Row]]
    issues: list[fit.Issue]


def transform_object(storage: Storage, key: str) -> dict[str, Any]:
    """Transform the raw object `key`; returns its marker (or `status: missing`).

    Raises `TransientStorageError` when storage keeps failing: the event is then re-delivered.
    """
    return transform_objects(storage, [key])[0]


def transform_objects(
    storage: Storage, keys: list[str], *, defer_transient: bool = False
) -> list[dict[str, Any]]:
    """Transform raw objects together: each curated file they touch is rewritten once per
    `MAX_PENDING_ROWS` rows read (which bounds the memory a large batch takes).

    Returns one marker per key, in order (`status: missing` for a key that does not exist).
    A transient storage error that outlasts its retries is raised, or — `defer_transient`, for
    re-drives of many objects — costs only that object: `status: deferred`, no marker.
    """
    outcomes: dict[str, dict[str, Any]] = {}
    pending: dict[str, _Read] = {}
    pending_rows = 0
    borrowed = _BorrowedPages(storage)
    known = KnownTracks(storage)
    for key in dict.fromkeys(keys):
        if _is_export(key) and pending:
            # An export file may be account data, whose rows find their tracks by name in
            # `curated/`: what the batch read so far is written (and names read again) first.
            outcomes |= _write(storage, pending, defer_transient)
            pending, pending_rows = {}, 0
            known.forget()
        try:
            read = _read(storage, key, borrowed, known)
        except TransientStorageError as error:
            if not defer_transient:
                raise
            outcomes[key] = _defer(storage, key, error)
            continue
        if isinstance(read, dict):
            outcomes[key] = read
            continue
        pending[key] = read
        pending_rows += sum(len(table_rows) for table_rows in read.tables.values())
        if pending_rows > MAX_PENDING_ROWS:
            outcomes |= _write(storage, pending, defer_transient)
            pending, pending_rows = {}, 0
    outcomes |= _write(storage, pending, defer_transient)
    return [outcomes[key] for key in keys]


def _write(
    storage: Storage, pending: dict[str, _Read], defer_transient: bool
) -> dict[str, dict[str, Any]]:
    """Merge the pending objects' rows into the curated files, then mark each one done.

    Should the batch's write fail for a reason that is not transient (a value `fit` did not
    foresee), each object is written alone, so the failure costs only the object that causes
    it (quarantined with the reason) — never its batch, at every reconcile.
    """
    if not pending:
        return {}
    # An export file transformed alone (its S3 event, the import command) reports what became
    # of its rows; in a batch the counts could not be told apart by file.
    fates = Counter[str]() if len(pending) == 1 and _is_export(next(iter(pending))) else None
    try:
        _write_tables(storage, pending.values(), fates)
    except TransientStorageError as error:
        if not defer_transient:
            raise
        return {key: _defer(storage, key, error) for key in pending}
    except Exception as error:
        if len(pending) == 1:
            [key] = pending
            logger.exception("transform: cannot write the rows of %s", key)
            reason = f"cannot write its rows: {type(error).__name__}: {error}"
            return {key: _quarantine(storage, key, reason)}
        outcomes: dict[str, dict[str, Any]] = {}
        for key, read in pending.items():
            outcomes |= _write(storage, {key: read}, defer_transient)
        return outcomes
    written = {}
    for key, read in pending.items():
        counts = {table: len(table_rows) for table, table_rows in sorted(read.tables.items())}
        plays = None if fates is None else {f: fates[f] for f in ("new", "matched", "duplicate")}
        written[key] = retry_transient(
            lambda k=key, r=read, c=counts, p=plays: _finish(storage, k, r, c, p),
            what=f"marker of {key}",
        )
    return written


def _finish(
    storage: Storage, key: str, read: _Read, counts: dict[str, int], plays: dict[str, int] | None
) -> dict[str, Any]:
    """Report the values `key` gave up (if any), then mark it done."""
    if read.issues:
        markers.report_values(storage, key, [issue.as_dict() for issue in read.issues])
    return markers.write_marker(
        storage, key, markers.DONE, rows=counts, values_quarantined=len(read.issues), plays=plays
    )


def _write_tables(storage: Storage, batch: Any, fates: Counter[str] | None = None) -> None:
    """`writer.write_tables`, retried as a whole on transient errors (the merge is idempotent;
    `fates` counts the last, successful attempt only)."""
    batch = [(read.run, read.tables) for read in batch]

    def attempt() -> None:
        counted = Counter[str]()
        writer.write_tables(storage, batch, counted)
        if fates is not None:
            fates.update(counted)

    retry_transient(attempt, what="writing curated files")


def _defer(storage: Storage, key: str, error: Exception) -> dict[str, Any]:
    """Leave `key` for the next reconcile: no marker (a stale one is removed), the cursor
    lowered to its date."""
    logger.warning("transform: deferred %s: %s", key, error)
    storage.delete(layout.marker_key(key))
    redrive.lower_low_water(storage, key)
    return {"raw_key": key, "status": DEFERRED, "reason": str(error)}


def reconcile(storage: Storage) -> dict[str, Any]:
    """Re-drive the raw objects that have no transform marker (S3 drops events after 2 retries).

    Lists only the recent date partitions (`reconcile.pending_raw_keys`): its requests grow
    with new data, not with the lake's age. A poison object costs only itself.
    """
    keys, newest = redrive.pending_raw_keys(storage)
    logger.info("reconcile: %d raw objects without a marker", len(keys))
    return redrive.redrive(
        keys,
        lambda batch: transform_objects(storage, batch, defer_transient=True),
        BATCH_SIZE,
        done=lambda outcomes: redrive.advance_low_water(storage, newest, outcomes),
    )


def reprocess(storage: Storage, progress: redrive.Progress | None = None) -> dict[str, Any]:
    """Rebuild `curated/` from `raw/`: delete what the transform derived, transform everything.

    `progress(message)` is told of the headway after each batch of raw objects. A poison
    object costs only itself; one storage keeps failing on is left to the next reconcile.
    """
    deleted = redrive.clear_derived(storage)
    # Exports last: their account-data rows find tracks by the names the API objects bring.
    keys = sorted(storage.list(layout.RAW_PREFIX), key=lambda key: (_is_export(key), key))
    summary = redrive.redrive(
        keys,
        lambda batch: transform_objects(storage, batch, defer_transient=True),
        BATCH_SIZE,
        progress,
    )
    return {"deleted": deleted, **summary}


def _is_export(key: str) -> bool:
    return key.startswith(f"{layout.RAW_PREFIX}{datasets.HISTORY_EXPORT}/")


def _read(
    storage: Storage, key: str, borrowed: _BorrowedPages, known: KnownTracks
) -> _Read | dict[str, Any]:
    """The run and rows of raw object `key`, or the marker saying why there are none.

    Storage errors that say "try again" are retried, then raised: never quarantined.
    """
    blob = retry_transient(lambda: storage.get(key), what=f"reading {key}")
    if blob is None:
        # An event for an object that is not (or no longer) there: nothing to do or to mark.
        logger.warning("transform: %s does not exist", key)
        return {"raw_key": key, "status": "missing"}
    try:
        envelope = read_envelope(key, blob.data)
        if envelope.run.dataset == datasets.HISTORY_EXPORT:
            resolve = known.before(layout.iso(envelope.run.run_at))
            tables, issues = export_rows.export_rows(envelope, resolve)
        else:
            reused = borrowed.envelopes(envelope)
            tables, issues = rows.envelope_rows_reported(envelope, reused)
        fitted, unfit = fit.fit_tables(tables)
        return _Read(envelope.run, fitted, [*issues, *unfit])
    except UnreadableRaw as error:
        return _quarantine(storage, key, str(error))
    except TransientStorageError:
        raise
    except Exception as error:  # the rows are a pure function of the input: the input is odd
        if is_transient(error):
            raise
        logger.exception("transform: cannot read the answers in %s", key)
        return _quarantine(storage, key, f"wrong shape: {type(error).__name__}: {error}")


class _BorrowedPages:
    """The item pages that unchanged playlists borrow from earlier raw objects (`reused_items`),
    kept for one batch: every later day of a batch borrows the same pages again, and parsing the
    raw object that holds them is the costliest step of reading a daily snapshot.

    One entry per playlist (the pages it borrows now), so what is kept is at most one snapshot's
    items, however many raw objects hold them.
    """

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.pages: dict[str, tuple[str, list[Answer]]] = {}  # playlist id → (raw key, pages)
        self.runs: dict[str, Envelope] = {}  # raw key → its run and meta, without answers

    def envelopes(self, envelope: Envelope) -> dict[str, Envelope]:
        """The raw objects named in `reused_items`, each cut to the pages borrowed from it, read
        and checked like the object itself (a transient error reading one is retried, then
        raised: the borrower is not at fault)."""
        found = {}
        for key, playlist_ids in sorted(rows.borrowed_playlists(envelope).items()):
            missing = [p for p in playlist_ids if p not in self.pages or self.pages[p][0] != key]
            if missing:
                source = _read_reused(self.storage, key)
                self.runs[key] = Envelope(source.run, source.meta)
                for playlist_id, pages in rows.item_pages(source, missing).items():
                    self.pages[playlist_id] = (key, pages)
            answers = [answer for p in playlist_ids for answer in self.pages[p][1]]
            found[key] = Envelope(self.runs[key].run, self.runs[key].meta, answers)
        return found


def _read_reused(storage: Storage, key: str) -> Envelope:
    blob = retry_transient(lambda: storage.get(key), what=f"reading {key}")
    if blob is None:
        raise UnreadableRaw(f"reused_items names {key}, which does not exist")
    try:
        return read_envelope(key, blob.data)
    except UnreadableRaw as error:
        reason = f"reused_items names {key}, which is unreadable: {error}"
        raise UnreadableRaw(reason) from error


def _quarantine(storage: Storage, key: str, reason: str) -> dict[str, Any]:
    logger.warning("transform: quarantined %s: %s", key, reason)
    return retry_transient(
        lambda: markers.quarantine(storage, key, reason), what=f"quarantining {key}"
    )
