"""Issue 8, part B: one odd value or object costs only itself — never the envelope write, the
other rows of its object, its reconcile batch, a reprocess, or every later `artists` run."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from chalicelib import api, layout
from chalicelib.extract import artists
from chalicelib.extract.dataset import Settings
from chalicelib.extract.envelope import build_envelope, decode_envelope, encode_envelope
from chalicelib.storage import Blob, LocalStorage, TransientStorageError, get_json
from chalicelib.transform import handler, markers, parquet_io
from tests import transform_fixtures as fx

DAY = "2026-03-02"


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("chalicelib.storage.time.sleep", lambda seconds: None)


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "lake")


class Flaky(LocalStorage):
    """A local lake whose GETs of some keys answer S3's SlowDown (503) `fails[key]` times."""

    def __init__(self, root: Path, fails: dict[str, int]) -> None:
        super().__init__(root)
        self.fails = fails

    def get(self, key: str) -> Blob | None:
        if self.fails.get(key, 0) > 0:
            self.fails[key] -= 1
            error = {"Error": {"Code": "SlowDown"}, "ResponseMetadata": {"HTTPStatusCode": 503}}
            raise ClientError(error, "GetObject")  # type: ignore[arg-type]
        return super().get(key)


def poison_plays(run_at: str) -> dict[str, Any]:
    """Good plays, and one track whose values no column can hold, and a play whose
    `played_at` does not parse."""
    big = fx.track("tbig", "bad\ud800name", fx.ALB1, [fx.A1], 2**70, track_number=2**40)
    return fx.plays_envelope(
        run_at,
        [
            fx.play(fx.T1, f"{DAY}T05:00:00Z"),
            fx.play(big, f"{DAY}T05:10:00Z"),
            fx.play(fx.T2, "yesterday-ish"),
        ],
    )


def test_a_half_surrogate_pair_in_an_answer_encodes_and_reads_back() -> None:
    envelope = build_envelope(
        user_id="alice",
        dataset="plays",
        run_id="r",
        run_at=fx.when(f"{DAY}T06:00:00Z"),
        fetched_at=fx.when(f"{DAY}T06:00:00Z"),
        responses=[fx.answer("me", {"display_name": "a\ud800b"})],
    )
    data = encode_envelope(envelope)
    assert decode_envelope(data) == envelope
    assert b"\\ud800" in gzip.decompress(data)


def test_values_that_do_not_fit_cost_only_themselves_and_are_reported(
    storage: LocalStorage,
) -> None:
    key = fx.put_raw(storage, poison_plays(f"{DAY}T06:00:00Z"))
    marker = handler.transform_object(storage, key)
    assert marker["status"] == "done" and marker["values_quarantined"] == 4
    plays, _ = parquet_io.decode(
        storage.get(layout.curated_key("plays", "played_date", DAY, "alice")).data
    )
    assert sorted(p["track_id"] for p in plays) == ["t1", "tbig"]
    tracks, _ = parquet_io.decode(
        storage.get(layout.curated_key("tracks", "snapshot_date", DAY, "part")).data
    )
    bad = next(t for t in tracks if t["track_id"] == "tbig")
    assert (bad["track_number"], bad["duration_ms"], bad["name"]) == (None, None, None)
    report = get_json(storage, markers.values_report_key(key))
    assert report["raw_key"] == key
    found = {(i["table"], i["column"], i["action"]) for i in report["issues"]}
    assert found == {
        ("plays", "played_at", "row dropped"),
        ("tracks", "track_number", "value nulled"),
        ("tracks", "duration_ms", "value nulled"),
        ("tracks", "name", "value nulled"),
    }
    assert all(i["reason"] for i in report["issues"])


def test_reconcile_and_reprocess_go_past_a_poison_object(
    storage: LocalStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = [
        fx.put_raw(
            storage, fx.plays_envelope(f"{DAY}T0{h}:00:00Z", [fx.play(fx.T3, f"{DAY}T0{h}:00:00Z")])
        )
        for h in (1, 2)
    ]
    poison = fx.put_raw(storage, poison_plays(f"{DAY}T06:00:00Z"))
    assert handler.reconcile(storage) == {"objects": 3, "done": 3}
    before = {k: storage.get(k).data for k in storage.list("curated/")}
    summary = handler.reprocess(storage)
    assert summary["done"] == 3
    assert {k: storage.get(k).data for k in storage.list("curated/")} == before
    # A value nothing foresaw fails at write time: it costs its object only, not the batch.
    monkeypatch.setattr(handler.fit, "fit_tables", lambda tables: (tables, []))
    summary = handler.reprocess(storage)
    assert (summary["done"], summary["quarantined"]) == (2, 1)
    assert "cannot write" in get_json(storage, layout.marker_key(poison))["reason"]
    assert all(get_json(storage, layout.marker_key(k))["status"] == "done" for k in good)


def test_transient_errors_are_retried_then_raised_never_quarantined(tmp_path: Path) -> None:
    lake = Flaky(tmp_path / "lake", {})
    source = fx.put_raw(
        lake,
        fx.playlists_envelope(
            "2026-03-01T06:00:00Z",
            [fx.simplified_playlist("pl1", "Mine", "alice", 1)],
            fx.items_answers("pl1", [fx.playlist_item(fx.T1)]),
        ),
    )
    borrower = fx.put_raw(
        lake,
        fx.playlists_envelope(
            f"{DAY}T06:00:00Z",
            [fx.simplified_playlist("pl1", "Mine", "alice", 1)],
            [],
            reused_items={"pl1": {"snapshot_id": "s", "raw_key": source}},
        ),
    )
    lake.fails[source] = 2  # a short storm: retried through
    assert handler.transform_object(lake, borrower)["status"] == "done"
    lake.delete(layout.marker_key(borrower))
    lake.fails[source] = 100  # a long one: raised, so S3 re-delivers; nothing quarantined
    with pytest.raises(TransientStorageError):
        handler.transform_object(lake, borrower)
    assert lake.get(layout.marker_key(borrower)) is None
    assert list(lake.list("quarantine/")) == []
    # In a reconcile it costs only that object, which the next reconcile takes again.
    # (the source itself was never transformed: both wait for the storm to pass).
    assert handler.reconcile(lake) == {"objects": 2, "deferred": 2}
    lake.fails.clear()
    assert handler.reconcile(lake) == {"objects": 2, "done": 2}


def test_a_malformed_raw_object_does_not_fail_later_artist_scans(storage: LocalStorage) -> None:
    bad = f"raw/plays/date={DAY}/user=alice/20260302T050000Z-badbad.json.gz"
    storage.put(bad, b"not gzip")
    storage.put(
        f"raw/plays/date={DAY}/user=alice/20260302T051000Z-shape0.json.gz",
        gzip.compress(b'{"meta": {}, "responses": [{"status": "x"}]}'),
    )
    fx.put_raw(storage, fx.plays_envelope(f"{DAY}T06:00:00Z", [fx.play(fx.T1, f"{DAY}T05:00:00Z")]))
    first = artists.scan_new_raw(storage, Settings())
    assert (first.read, len(first.unreadable)) == (3, 2)
    assert "ar1" in get_json(storage, artists.INDEX_KEY)["artists"]
    assert artists.scan_new_raw(storage, Settings()).read == 0  # nothing new: nothing read
    fx.put_raw(storage, fx.plays_envelope(f"{DAY}T07:00:00Z", [fx.play(fx.T2, f"{DAY}T06:30:00Z")]))
    later = fx.plays_envelope("2026-03-03T06:00:00Z", [fx.play(fx.T3, "2026-03-03T05:00:00Z")])
    fx.put_raw(storage, later)
    assert artists.scan_new_raw(storage, Settings()).read == 2
    cursor = get_json(storage, artists.CURSORS_KEY)["datasets"]["plays"]
    assert cursor["date"] == "2026-03-03" and len(cursor["seen"]) == 1


def test_a_lake_scanned_before_the_cursors_is_not_read_again(storage: LocalStorage) -> None:
    """Upgrading: `scanned.json` listed every key the scan had read; the cursors start where it
    ended instead of reading the whole lake again."""
    old = [
        fx.put_raw(
            storage,
            fx.plays_envelope(
                f"2026-03-0{d}T06:00:00Z", [fx.play(fx.T1, f"2026-03-0{d}T05:00:00Z")]
            ),
        )
        for d in (1, 2)
    ]
    storage.put(artists.LEGACY_SCANNED_KEY, b'{"keys": %s}' % str(old).replace("'", '"').encode())
    new = fx.put_raw(
        storage, fx.plays_envelope(f"{DAY}T09:00:00Z", [fx.play(fx.T3, f"{DAY}T08:00:00Z")])
    )
    scan = artists.scan_new_raw(storage, Settings())
    assert (scan.read, scan.unreadable) == (1, [])  # only `new`
    assert get_json(storage, artists.CURSORS_KEY)["datasets"]["plays"] == {
        "date": DAY,
        "seen": sorted(k for k in (*old, new) if f"date={DAY}/" in k),
    }


@pytest.mark.parametrize("text", ["²", "٣", "1²", "-1", " 5"])
def test_runs_limit_accepts_ascii_digits_only(text: str) -> None:
    with pytest.raises(api.BadRequestError):
        api._int_param({"limit": text}, "limit", default=20, low=1, high=200)
