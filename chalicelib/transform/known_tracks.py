"""The tracks the lake knows by name: how account-data rows (names, no ids) find their track.

Contract §8: a row takes the `track_id` of the one known track with exactly that track name and
a credited artist of that name, if there is exactly one; otherwise none. "Known" is what the
curated dimensions hold from runs before the import (their latest name per id there), so the
answer depends on `raw/` alone; `reprocess` transforms export objects after every API object
(`handler.reprocess`) for the same reason.
"""

from __future__ import annotations

from collections import defaultdict

from chalicelib import layout
from chalicelib.storage import Storage, retry_transient
from chalicelib.transform import parquet_io, writer
from chalicelib.transform.export_rows import Resolve
from chalicelib.transform.objects import Row


class KnownTracks:
    """(track name, artist name) → track ids, read from `curated/` once (on first use), as known
    before a given moment."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._rows: dict[str, list[tuple[str, Row]]] | None = None
        self._indexes: dict[str, dict[tuple[str, str], set[str]]] = {}

    def before(self, moment: str) -> Resolve:
        """The resolver of an export imported at `moment` (ISO): the tracks the dimensions knew
        from runs before it (each dimension row keeps its run's `run_at`). Only earlier runs:
        a poll that runs after the import may land before it, and the answer must not depend
        on which came first."""

        def resolve(track_name: str | None, artist_name: str | None) -> str | None:
            if track_name is None or artist_name is None:
                return None
            if moment not in self._indexes:
                self._indexes[moment] = self._index(moment)
            found = self._indexes[moment].get((track_name, artist_name), set())
            return next(iter(found)) if len(found) == 1 else None

        return resolve

    def forget(self) -> None:
        """Read `curated/` again at the next use (new dimension rows were written since)."""
        self._rows, self._indexes = None, {}

    def _index(self, moment: str) -> dict[tuple[str, str], set[str]]:
        if self._rows is None:
            self._rows = {t: self._read(t) for t in ("tracks", "track_artists", "artists")}
        earlier = {
            t: [(at, row) for at, row in rows if at < moment] for t, rows in self._rows.items()
        }
        track_names = _latest(earlier["tracks"], "track_id", "name")
        artist_names = _latest(earlier["artists"], "artist_id", "name")
        # A track's credits are those of its latest run (as `track_artists_latest`).
        credits: dict[str, tuple[str, set[str]]] = {}
        for at, row in earlier["track_artists"]:
            current = credits.get(row["track_id"])
            if current is None or at > current[0]:
                credits[row["track_id"]] = current = (at, set())
            if at == current[0]:
                current[1].add(row["artist_id"])
        index: dict[tuple[str, str], set[str]] = defaultdict(set)
        for track_id, name in track_names.items():
            for artist_id in credits.get(track_id, ("", set()))[1]:
                artist = artist_names.get(artist_id)
                if artist is not None:
                    index[(name, artist)].add(track_id)
        return index

    def _read(self, table: str) -> list[tuple[str, Row]]:
        """Every row of a dimension table with its run's `run_at` (a file written before rows
        kept their runs gives its day, which sorts before every moment of that day)."""
        found = []
        for key in sorted(self.storage.list(f"{layout.CURATED_PREFIX}{table}/")):
            blob = retry_transient(lambda k=key: self.storage.get(k), what=f"reading {key}")
            if blob is None or not key.endswith(".parquet"):
                continue
            day = key.split("snapshot_date=", 1)[-1].split("/", 1)[0]
            rows, metadata = parquet_io.decode(blob.data)
            runs = writer.row_runs(metadata, len(rows))
            found += [(run_at or day, row) for (run_at,), row in zip(runs, rows, strict=True)]
        return found


def _latest(rows: list[tuple[str, Row]], id_column: str, value: str) -> dict[str, str]:
    """Each id's `value` from its latest run."""
    latest: dict[str, tuple[str, str | None]] = {}
    for at, row in rows:
        current = latest.get(row[id_column])
        if current is None or at >= current[0]:
            latest[row[id_column]] = (at, row[value])
    return {key: name for key, (_, name) in latest.items() if name is not None}
