"""The tracks the lake knows by name: how account-data rows (names, no ids) find their track.

Contract §8: a row takes the `track_id` of the one known track with exactly that track name and
a credited artist of that name, if there is exactly one; otherwise none. "Known" is what the
curated dimensions hold when the row is transformed (their latest name per id), so `reprocess`
transforms export objects after every API object (`handler.reprocess`).
"""

from __future__ import annotations

from collections import defaultdict

from chalicelib import layout
from chalicelib.storage import Storage, retry_transient
from chalicelib.transform import parquet_io
from chalicelib.transform.objects import Row


class KnownTracks:
    """(track name, artist name) → track ids, read from `curated/` once, on first use."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._index: dict[tuple[str, str], set[str]] | None = None

    def resolve(self, track_name: str | None, artist_name: str | None) -> str | None:
        if track_name is None or artist_name is None:
            return None
        if self._index is None:
            self._index = self._build()
        found = self._index.get((track_name, artist_name), set())
        return next(iter(found)) if len(found) == 1 else None

    def forget(self) -> None:
        """Read `curated/` again at the next use (new dimension rows were written since)."""
        self._index = None

    def _build(self) -> dict[tuple[str, str], set[str]]:
        track_names = _latest(self._rows("tracks"), "track_id", "name")
        artist_names = _latest(self._rows("artists"), "artist_id", "name")
        # A track's credits are those of its latest partition (as `track_artists_latest`).
        credits: dict[str, tuple[str, set[str]]] = {}
        for date, row in self._rows("track_artists"):
            current = credits.get(row["track_id"])
            if current is None or date > current[0]:
                credits[row["track_id"]] = current = (date, set())
            if date == current[0]:
                current[1].add(row["artist_id"])
        index: dict[tuple[str, str], set[str]] = defaultdict(set)
        for track_id, name in track_names.items():
            for artist_id in credits.get(track_id, ("", set()))[1]:
                artist = artist_names.get(artist_id)
                if artist is not None:
                    index[(name, artist)].add(track_id)
        return index

    def _rows(self, table: str) -> list[tuple[str, Row]]:
        found = []
        for key in sorted(self.storage.list(f"{layout.CURATED_PREFIX}{table}/")):
            blob = retry_transient(lambda k=key: self.storage.get(k), what=f"reading {key}")
            if blob is None or not key.endswith(".parquet"):
                continue
            date = key.split("snapshot_date=", 1)[-1].split("/", 1)[0]
            rows, _ = parquet_io.decode(blob.data)
            found += [(date, row) for row in rows]
        return found


def _latest(rows: list[tuple[str, Row]], id_column: str, value: str) -> dict[str, str]:
    """Each id's `value` from its latest partition."""
    latest: dict[str, tuple[str, str | None]] = {}
    for date, row in rows:
        current = latest.get(row[id_column])
        if current is None or date >= current[0]:
            latest[row[id_column]] = (date, row[value])
    return {key: name for key, (_, name) in latest.items() if name is not None}
