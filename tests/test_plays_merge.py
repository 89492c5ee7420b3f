"""`plays` across days: one writer at a time per user, and no row lost when a writer stops half
way (contract §3 "exactly once", §8 pairs across midnight)."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from chalicelib import layout, storage
from chalicelib.storage import LocalStorage
from chalicelib.transform import handler, parquet_io, plays, writer
from tests import transform_fixtures as fx

USER = "u"


def api(at: str, track: str) -> dict[str, Any]:
    moment = datetime.fromisoformat(at)
    row = {"user_id": USER, "played_at": moment, "track_id": track, "context_type": None,
           "context_uri": None}  # fmt: skip
    return plays.api_row(row) | {"played_date": moment.date().isoformat()}


def export(at: str, track: str, ms: int = 200_000) -> dict[str, Any]:
    moment = datetime.fromisoformat(at)
    row = {column: None for column in plays.COLUMNS} | {
        "user_id": USER, "played_at": moment, "track_id": track, "source": "export",
        "item_type": "track", "ms_played": ms,
    }  # fmt: skip
    return row | {"played_date": moment.date().isoformat()}


# An export row late on day d and the API's play of the same stream just after midnight.
LATE = export("2024-01-01T23:59:30+00:00", "T")
AFTER_MIDNIGHT = api("2024-01-02T00:00:00+00:00", "T")
OTHER = api("2024-01-02T12:00:00+00:00", "X")


def table(lake: storage.Storage) -> list[tuple[str, str]]:
    found = []
    for key in sorted(lake.list("curated/plays/")):
        rows, _ = parquet_io.decode(lake.get(key).data)
        found += [(layout.iso(row["played_at"]), row["source"]) for row in rows]
    return sorted(found)


SERIAL = [("2024-01-02T00:00:00.000Z", "both"), ("2024-01-02T12:00:00.000Z", "api")]


class Pausing:
    """A storage that, at its first curated write, lets `meanwhile` run, then goes on."""

    def __init__(self, inner: LocalStorage, meanwhile: Any) -> None:
        self.inner, self.meanwhile, self.paused = inner, meanwhile, False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def put(self, key: str, *args: Any, **kwargs: Any) -> str:
        if key.startswith("curated/") and not self.paused:
            self.paused = True
            self.meanwhile()
        return self.inner.put(key, *args, **kwargs)


def test_two_writers_of_one_users_days_take_turns(tmp_path: Path) -> None:
    lake = LocalStorage(tmp_path)
    writer.write_plays(lake, USER, [LATE])
    other: dict[str, Any] = {}

    def meanwhile() -> None:
        # A poll's transform starts while this one is about to write: it must wait its turn.
        def run() -> None:
            started = time.monotonic()
            writer.write_plays(lake, USER, [OTHER])
            other["waited"] = time.monotonic() - started

        other["thread"] = threading.Thread(target=run)
        other["thread"].start()
        time.sleep(0.5)

    writer.write_plays(Pausing(lake, meanwhile), USER, [AFTER_MIDNIGHT])
    other["thread"].join()
    assert other["waited"] >= 0.4
    assert table(lake) == SERIAL


def test_a_writer_that_stops_half_way_loses_no_row(tmp_path: Path) -> None:
    lake = LocalStorage(tmp_path)
    writer.write_plays(lake, USER, [LATE])

    class Crash(Exception):
        pass

    class Stopping:
        """Writes day d+1 (the pair), then dies before cutting day d."""

        def __getattr__(self, name: str) -> Any:
            return getattr(lake, name)

        def put(self, key: str, data: bytes, **kwargs: Any) -> str:
            if "played_date=2024-01-01" in key:
                raise Crash
            return lake.put(key, data, **kwargs)

    with pytest.raises(Crash):
        writer.write_plays(Stopping(), USER, [AFTER_MIDNIGHT])
    # Meanwhile the export row is in both days; taken apart, the lake still holds each play once.
    assert table(lake) == [("2024-01-01T23:59:30.000Z", "export"), SERIAL[0]]
    writer.write_plays(lake, USER, [AFTER_MIDNIGHT, OTHER])  # the re-delivered event, and a poll
    assert table(lake) == SERIAL


def test_a_lease_held_too_long_defers_the_object_to_reconcile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = LocalStorage(tmp_path)
    key = fx.put_raw(
        lake, fx.plays_envelope("2026-03-02T12:00:00Z", [fx.play(fx.T1, "2026-03-02T10:00:00Z")])
    )
    monkeypatch.setattr(writer, "PLAYS_LEASE", 0.3)
    monkeypatch.setattr(storage, "retry_transient", lambda action, **_: action())
    lease_key = layout.state_key("transform", "plays-lease", "alice")
    with storage.lease(lake, lease_key, seconds=60, wait=1):  # another transform holds it
        [outcome] = handler.transform_objects(lake, [key], defer_transient=True)
    assert outcome["status"] == handler.DEFERRED
    assert handler.transform_object(lake, key)["status"] == "done"  # free again: it goes through
    assert table(lake) == [("2026-03-02T10:00:00.000Z", "api")]
