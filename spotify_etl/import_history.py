"""`spotify-etl import-history`: Spotify's data download into the lake (contract §8).

Every file is read and checked before anything is written, so bad input changes nothing. Each
streaming history file then lands as one raw object (`raw/history_export/…`, network identifiers
dropped) and the ordinary transform does the rest: here, on a local lake; through the bucket's S3
event on a deployed one, whose markers this command waits for. No Spotify call is made.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chalicelib import datasets, exports, layout
from chalicelib.extract import plays
from chalicelib.extract.envelope import build_envelope, write_envelope
from chalicelib.storage import PreconditionFailed, Storage, get_json

FATES = ("new", "matched", "duplicate")
# Spotify's files hold about 12 MB each; one far larger is no history file (or a zip bomb).
MAX_FILE_BYTES = 256 * 2**20


class BadExport(ValueError):
    """Input that is not Spotify's data download; the message says which file and why."""


@dataclass(frozen=True)
class ExportFile:
    """One streaming history file, checked: its name in the download, format, rows (scrubbed)."""

    name: str
    format: str
    rows: list[Any]
    digest: str


@dataclass
class Collected:
    files: list[ExportFile] = field(default_factory=list)
    skipped: list[exports.Skip] = field(default_factory=list)


@dataclass
class Landed:
    """A file's raw object, and what its transform reported (None while it is pending)."""

    file: ExportFile
    key: str
    already: bool  # the same file was landed for this user the same day: nothing written
    marker: dict[str, Any] | None = None


def collect(paths: Iterable[str | Path]) -> Collected:
    """The streaming history files in `paths` (zips of the download, or its JSON files)."""
    collected = Collected()
    for path in map(Path, paths):
        if not path.is_file():
            raise BadExport(f"{path}: no such file")
        if zipfile.is_zipfile(path):
            _collect_zip(path, collected)
        else:
            _collect_file(path.name, path.read_bytes(), collected, given=True)
    if not collected.files:
        raise BadExport("no streaming history files found (nothing to import)")
    return collected


def _collect_zip(path: Path, collected: Collected) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            members = [info for info in archive.infolist() if not info.is_dir()]
            if not members:
                raise BadExport(f"{path}: the zip is empty")
            for info in members:
                reason = exports.skip_reason(info.filename)
                if reason is not None:
                    collected.skipped.append(exports.Skip(info.filename, reason))
                    continue
                with archive.open(info) as member:
                    data = member.read(MAX_FILE_BYTES + 1)  # never more, whatever it claims
                if len(data) > MAX_FILE_BYTES:
                    raise BadExport(f"{info.filename}: larger than {MAX_FILE_BYTES // 2**20} MB")
                _collect_file(info.filename, data, collected, given=False)
    # Encrypted members (RuntimeError) and compression methods Python lacks (Deflate64, which
    # Windows uses for large zips: NotImplementedError) are the zip's trouble, not ours.
    except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError) as error:
        raise BadExport(f"{path}: cannot read the zip: {error}") from error


def _collect_file(name: str, data: bytes, collected: Collected, *, given: bool) -> None:
    """Check one file; a JSON file named on the command line is taken by its content whatever
    its name (but video history), one inside a zip only when its name says history."""
    if given and exports.skip_reason(name) == exports.VIDEO:
        collected.skipped.append(exports.Skip(name, exports.VIDEO))
        return
    try:
        rows = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        kind = "neither a zip nor a JSON file" if given else "not JSON"
        raise BadExport(f"{name}: {kind} ({error})") from error
    try:
        format_ = exports.detect_format(rows)
    except exports.NotAnExport as error:
        raise BadExport(f"{name}: {error}") from error
    if format_ is None:  # an empty file: its name says which format it would be
        format_ = exports.format_from_name(name)
    digest = hashlib.sha256(data).hexdigest()
    collected.files.append(ExportFile(name, format_, exports.scrub(rows), digest))


def import_id_of(files: list[ExportFile]) -> str:
    """The same files give the same id: importing them again the same day writes nothing."""
    text = "\n".join(sorted(f"{f.name}\t{f.digest}" for f in files))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def land(storage: Storage, files: list[ExportFile], user_id: str, now: datetime) -> list[Landed]:
    """One raw object per file, write-once."""
    import_id = import_id_of(files)
    landed, stems = [], Counter[str]()
    for file in files:
        stem = re.sub(r"[^A-Za-z0-9._-]", "_", exports.base_name(file.name).removesuffix(".json"))
        stems[stem] += 1
        run_id = f"{import_id}-{stem}" + (f"~{stems[stem]}" if stems[stem] > 1 else "")
        envelope = build_envelope(
            user_id=user_id,
            dataset=datasets.HISTORY_EXPORT,
            run_id=run_id,
            run_at=now,
            fetched_at=now,
            responses=[
                {
                    "request": {"method": "GET", "url": f"export:{file.name}"},
                    "status": 200,
                    "body": file.rows,
                }
            ],
            extras={"import_id": import_id, "file_name": file.name, "format": file.format},
        )
        key = layout.raw_key(datasets.HISTORY_EXPORT, now, user_id, run_id)
        try:
            write_envelope(storage, key, envelope)
        except PreconditionFailed:
            landed.append(Landed(file, key, already=True))
            continue
        landed.append(Landed(file, key, already=False))
    spans = [window for f in files if (window := span(f, now))]
    plays.remember_import(storage, user_id, spans)
    return landed


def span(file: ExportFile, now: datetime) -> tuple[str, str] | None:
    """The first and last `ts` of a file's rows (ISO), or None when it has none."""
    times = [t for row in file.rows if (t := exports.row_time(row, file.format, now)) is not None]
    return (layout.iso(min(times)), layout.iso(max(times))) if times else None


def transform_here(storage: Storage, landed: list[Landed], progress: Callable[[str], None]) -> None:
    """A local lake has no S3 events: transform each file now, one at a time (so each reports
    what became of its rows)."""
    from chalicelib.transform import handler

    for item in landed:
        if item.already:
            if get_json(storage, layout.marker_key(item.key)) is not None:
                continue
            item.already = False  # landed by an import that stopped before its transform
        item.marker = handler.transform_object(storage, item.key)
        progress(line(item))


def await_markers(
    storage: Storage,
    landed: list[Landed],
    progress: Callable[[str], None],
    *,
    wait_seconds: float,
    poll_seconds: float = 3.0,
) -> None:
    """A deployed lake transforms on the S3 event: wait (at most `wait_seconds`) for the
    markers of the files written."""
    deadline = time.monotonic() + wait_seconds
    waiting = [item for item in landed if not item.already]
    while waiting:
        for item in waiting:
            item.marker = get_json(storage, layout.marker_key(item.key))
            if item.marker is not None:
                progress(line(item))
        waiting = [item for item in waiting if item.marker is None]
        if not waiting or time.monotonic() >= deadline:
            return
        time.sleep(poll_seconds)


def line(item: Landed) -> str:
    """One file's progress line."""
    head = f"{item.file.name}  {item.file.format}  {len(item.file.rows):,} rows"
    if item.already:
        return f"{head}  already imported today (same file): nothing written"
    marker = item.marker
    if marker is None:
        return f"{head}  landed, transform pending"
    if marker.get("status") != "done":
        return f"{head}  {marker.get('status')}: {marker.get('reason')}"
    fates = marker.get("plays") or {}
    return f"{head}  plays: " + ", ".join(f"{fates.get(fate, 0):,} {fate}" for fate in FATES)


def summary(user_id: str, landed: list[Landed], skipped: list[exports.Skip]) -> str:
    """What the import did, in a few lines."""
    fates = Counter[str]()
    for item in landed:
        fates.update((item.marker or {}).get("plays") or {})
    written = [item for item in landed if not item.already]
    pending = [item for item in written if item.marker is None]
    failed = [item for item in written if item.marker and item.marker.get("status") != "done"]
    rows = sum(len(item.file.rows) for item in landed)
    out = [
        f"Imported {len(landed)} file(s), {rows:,} rows, for user {user_id}: "
        f"{fates['new']:,} new plays, {fates['matched']:,} matched to API plays, "
        f"{fates['duplicate']:,} duplicates.",
    ]
    if pending:
        out.append(
            f"{len(pending)} file(s) landed but not transformed yet: the lake's transform will "
            "(counts above leave them out)."
        )
    if failed:
        out.append(f"{len(failed)} file(s) could not be transformed (see above).")
    for skip in skipped:
        out.append(f"skipped {skip.name}: {skip.reason}")
    return "\n".join(out)


def now_utc() -> datetime:
    return datetime.now(UTC)
