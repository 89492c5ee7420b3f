"""The transform on a local lake: schemas, exactly-once, snapshots, quarantine, reconcile,
reprocess, concurrent writers, and dispatch through the app's own S3 event wiring."""

from __future__ import annotations

import gzip
import io
import random
import threading
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest

from chalicelib import layout, services, tables
from chalicelib.config import Config
from chalicelib.services import Services
from chalicelib.storage import get_json
from chalicelib.transform import handler
from tests import transform_fixtures as fx

DAY = "2026-03-02"


@pytest.fixture
def lake(tmp_path: Path) -> Services:
    return Services(Config(lake_uri=str(tmp_path / "lake")))


def every_dataset() -> list[dict[str, Any]]:
    """One day of one user: every dataset, with the odd cases."""
    entries = [
        fx.playlist_item(fx.T1),
        None,
        fx.playlist_item(fx.LOCAL, None, None),
        fx.playlist_item(fx.EP),
        fx.playlist_item(fx.T2, deprecated_key=True),
    ]
    return [
        fx.plays_envelope(
            f"{DAY}T06:00:00Z",
            [
                fx.play(fx.T1, f"{DAY}T05:00:00.250Z", fx.playlist_context("pl1")),
                fx.play(fx.LOCAL, f"{DAY}T05:05:00Z"),
                fx.play(fx.T2, "2026-03-01T23:50:00Z"),
            ],
            watermark="2026-03-01T20:00:00.000Z",
        ),
        fx.playlists_envelope(
            f"{DAY}T06:00:00Z",
            [
                fx.simplified_playlist("pl1", "Mine", "alice", len(entries)),
                fx.simplified_playlist("pl2", "Followed", "bob", 3, collaborative=True),
            ],
            [*fx.items_answers("pl1", entries), fx.error("playlists/pl2/items", 403, "Forbidden")],
        ),
        fx.top_envelope(f"{DAY}T06:00:00Z"),
        fx.saved_envelope(f"{DAY}T06:00:00Z", [fx.saved(fx.T3, f"{DAY}T01:00:00Z")], None),
        fx.artists_envelope(f"{DAY}T06:00:00Z"),
        fx.export_envelope(
            f"{DAY}T07:00:00Z", "Streaming_History_Audio_2026_0.json",
            [fx.extended_row("2026-02-27T10:00:00Z", "t9")],
        ),
    ]


def land(lake: Services, envelopes: list[dict[str, Any]]) -> list[str]:
    return [fx.put_raw(lake.storage, env) for env in envelopes]


def transform_all(lake: Services, keys: list[str]) -> list[dict[str, Any]]:
    return [handler.transform_object(lake.storage, key) for key in keys]


def curated(lake: Services) -> dict[str, bytes]:
    """Every curated file's bytes, by key."""
    return {key: lake.storage.get(key).data for key in lake.storage.list("curated/")}


def query(lake: Services, sql: str) -> list[tuple]:
    """Rows of `sql` on the lake (`LAKE` = its root), through Arrow: DuckDB's own conversion of
    TIMESTAMPTZ to Python needs pytz."""
    with duckdb.connect() as con:
        con.execute("SET TimeZone='UTC'")
        result = con.sql(sql.replace("LAKE", lake.config.lake_uri)).to_arrow_table()
    return [tuple(row.values()) for row in result.to_pylist()]


def table_rows(lake: Services, table: str, order: str) -> list[tuple]:
    return query(
        lake,
        f"SELECT * EXCLUDE ({tables.TABLES[table].partition.name}) FROM read_parquet("
        f"'LAKE/curated/{table}/*/*.parquet', hive_partitioning=true) ORDER BY {order}",
    )


def test_every_table_has_the_declared_schema_and_reads_back_with_duckdb(lake: Services) -> None:
    markers = transform_all(lake, land(lake, every_dataset()))
    assert {m["status"] for m in markers} == {"done"}
    files = curated(lake)
    assert {key.split("/")[1] for key in files} == set(tables.TABLES)
    for key, data in files.items():
        table = tables.TABLES[key.split("/")[1]]
        schema = pq.read_schema(io.BytesIO(data))
        assert schema.remove_metadata() == tables.arrow_schema(table), key
    for table in tables.TABLES.values():
        described = query(
            lake,
            f"DESCRIBE SELECT * FROM read_parquet('LAKE/curated/{table.name}/*/*.parquet', "
            "hive_partitioning=true)",
        )
        # DuckDB spells TIMESTAMPTZ out in DESCRIBE.
        spelled = {"TIMESTAMP WITH TIME ZONE": "TIMESTAMPTZ"}
        assert [(name, spelled.get(type_, type_)) for name, type_, *_ in described] == [
            (c.name, tables.DUCKDB_TYPES[c.type]) for c in table.all_columns
        ]
    plays = query(
        lake,
        "SELECT played_date, played_at, track_id FROM read_parquet("
        "'LAKE/curated/plays/*/*.parquet', hive_partitioning=true) ORDER BY played_at",
    )
    assert [(str(d), p.isoformat(), t) for d, p, t in plays] == [
        ("2026-02-27", "2026-02-27T10:00:00+00:00", "t9"),
        ("2026-03-01", "2026-03-01T23:50:00+00:00", "t2"),
        ("2026-03-02", "2026-03-02T05:00:00.250000+00:00", "t1"),
        ("2026-03-02", "2026-03-02T05:05:00+00:00", None),
    ]


def test_an_all_null_column_keeps_its_type(lake: Services) -> None:
    # No play has a context, a track id or a known album: whole columns of nulls.
    env = fx.plays_envelope(f"{DAY}T06:00:00Z", [fx.play(fx.LOCAL, f"{DAY}T05:00:00Z")])
    transform_all(lake, land(lake, [env]))
    data = lake.storage.get(layout.curated_key("plays", "played_date", DAY, "alice")).data
    parquet = pq.read_table(io.BytesIO(data))
    assert parquet.schema.remove_metadata() == tables.arrow_schema(tables.TABLES["plays"])
    assert parquet.column("context_uri").null_count == 1
    assert (
        str(
            query(
                lake,
                "SELECT typeof(context_uri) FROM read_parquet('LAKE/curated/plays/*/*.parquet')",
            )[0][0]
        )
        == "VARCHAR"
    )


def test_a_raw_object_delivered_twice_changes_nothing(lake: Services) -> None:
    keys = land(lake, every_dataset())
    transform_all(lake, keys)
    before = curated(lake)
    transform_all(lake, keys[::-1])
    assert curated(lake) == before


def test_overlapping_polls_keep_each_play_once(lake: Services) -> None:
    minutes = [f"{DAY}T{h:02d}:{m:02d}:00Z" for h in range(3) for m in range(0, 60, 2)]  # 90
    first = fx.plays_envelope(f"{DAY}T02:00:00Z", [fx.play(fx.T1, t) for t in minutes[:50]])
    second = fx.plays_envelope(f"{DAY}T03:00:00Z", [fx.play(fx.T1, t) for t in minutes[40:]])
    # A play that shows up late, with an earlier played_at than the newest already seen.
    late = fx.plays_envelope(f"{DAY}T03:30:00Z", [fx.play(fx.T2, f"{DAY}T00:01:00Z")])
    transform_all(lake, land(lake, [second, first, late]))
    rows = table_rows(lake, "plays", "played_at")
    assert len(rows) == 91
    assert query(
        lake,
        "SELECT count(*), count(DISTINCT (user_id, played_at)) FROM read_parquet("
        "'LAKE/curated/plays/*/*.parquet')",
    ) == [(91, 91)]


def snapshot_runs() -> tuple[dict[str, Any], dict[str, Any]]:
    morning = fx.playlists_envelope(
        f"{DAY}T06:00:00Z",
        [fx.simplified_playlist("pl1", "Old name", "alice", 2, "s1")],
        fx.items_answers("pl1", [fx.playlist_item(fx.T1), fx.playlist_item(fx.T2)]),
    )
    evening = fx.playlists_envelope(
        f"{DAY}T18:00:00Z",
        [fx.simplified_playlist("pl1", "New name", "alice", 1, "s2")],
        fx.items_answers("pl1", [fx.playlist_item(fx.T3)]),
    )
    return morning, evening


def test_snapshot_tables_hold_the_later_run_in_both_event_orders(tmp_path: Path) -> None:
    morning, evening = snapshot_runs()
    results = []
    for name, sequence in {"in order": [morning, evening], "reversed": [evening, morning]}.items():
        lake = Services(Config(lake_uri=str(tmp_path / name)))
        transform_all(lake, land(lake, sequence))
        results.append(curated(lake))
        assert table_rows(lake, "playlists", "playlist_id")[0][2] == "New name"
        assert [r[2:5] for r in table_rows(lake, "playlist_items", "position")] == [
            (1, "track", "t3")
        ]
        key = layout.curated_key("playlists", "snapshot_date", DAY, "alice")
        metadata = pq.read_schema(io.BytesIO(lake.storage.get(key).data)).metadata
        assert metadata[b"spotify_etl.run_id"] == evening["meta"]["run_id"].encode()
    assert results[0] == results[1]


def test_a_snapshot_tie_on_run_at_is_broken_by_run_id(lake: Services) -> None:
    morning, evening = snapshot_runs()
    evening["meta"]["run_at"] = morning["meta"]["run_at"]
    morning["meta"]["run_id"], evening["meta"]["run_id"] = (
        "20260302T060000Z-aaaaaa",
        ("20260302T060000Z-bbbbbb"),
    )
    transform_all(lake, land(lake, [evening, morning]))
    assert table_rows(lake, "playlists", "playlist_id")[0][2] == "New name"


def test_dimensions_prefer_known_genres_then_the_later_run(tmp_path: Path) -> None:
    renamed = fx.track("t1", "One (Remastered)", fx.ALB1, [fx.A1], 181_000)
    envelopes = [
        fx.artists_envelope(f"{DAY}T06:00:00Z"),  # ar1 genres [] and ar2 ["jazz"]
        fx.plays_envelope(f"{DAY}T07:00:00Z", [fx.play(fx.T1, f"{DAY}T06:30:00Z")]),
        fx.plays_envelope(f"{DAY}T09:00:00Z", [fx.play(renamed, f"{DAY}T08:30:00Z")]),
    ]
    results = []
    for name, sequence in {"in order": envelopes, "reversed": envelopes[::-1]}.items():
        lake = Services(Config(lake_uri=str(tmp_path / name)))
        transform_all(lake, land(lake, sequence))
        artists = dict(
            query(
                lake,
                "SELECT artist_id, genres FROM read_parquet('LAKE/curated/artists/*/*.parquet')",
            )
        )
        assert artists == {"ar1": [], "ar2": ["jazz"]}  # later plays saw ar1 without genres
        assert [t[:4] for t in table_rows(lake, "tracks", "track_id")] == [
            ("t1", "One (Remastered)", "al1", 181_000)
        ]
        results.append(curated(lake))
    assert results[0] == results[1]


def test_reprocess_equals_the_incremental_result_in_any_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    morning, evening = snapshot_runs()
    envelopes = [
        *every_dataset(),
        morning,
        evening,
        fx.plays_envelope(
            "2026-03-03T06:00:00Z",
            [fx.play(fx.T3, "2026-03-03T05:00:00Z"), fx.play(fx.T1, f"{DAY}T05:00:00.250Z")],
        ),
    ]
    incremental = Services(Config(lake_uri=str(tmp_path / "a")))
    transform_all(incremental, land(incremental, envelopes))
    shuffled = Services(Config(lake_uri=str(tmp_path / "b")))
    keys = land(shuffled, envelopes)
    random.Random(7).shuffle(keys)
    transform_all(shuffled, keys)
    assert curated(shuffled) == curated(incremental)
    seen: list[str] = []
    summary = handler.reprocess(incremental.storage, progress=seen.append)
    assert summary["done"] == len(envelopes)
    assert seen[-1] == f"{len(envelopes)}/{len(envelopes)} raw objects transformed"
    assert curated(incremental) == curated(shuffled)
    # Flushing every few rows (how a large reprocess bounds its memory) changes nothing either.
    monkeypatch.setattr(handler, "MAX_PENDING_ROWS", 5)
    handler.reprocess(incremental.storage)
    assert curated(incremental) == curated(shuffled)


BAD = {
    "bad gzip": lambda env: b"\x1f\x8b definitely not gzip",
    "bad JSON": lambda env: gzip.compress(b'{"meta": {'),
    "wrong shape": lambda env: fx.gz({"meta": env["meta"], "responses": {"not": "a list"}}),
    "meta not matching key": lambda env: fx.gz({**env, "meta": {**env["meta"], "user_id": "eve"}}),
    "items not a list": lambda env: fx.gz(
        {**env, "responses": [{**env["responses"][0], "body": {"items": {"a": 1}}}]}
    ),
    "a response without a request": lambda env: fx.gz({**env, "responses": [{"status": 200}]}),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_unreadable_raw_is_quarantined_and_left_in_place(lake: Services, case: str) -> None:
    env = fx.plays_envelope(f"{DAY}T06:00:00Z", [fx.play(fx.T1, f"{DAY}T05:00:00Z")])
    key = fx.raw_key_of(env)
    data = BAD[case](env)
    lake.storage.put(key, data)
    marker = handler.transform_object(lake.storage, key)
    assert marker["status"] == "quarantined" and marker["reason"]
    assert get_json(lake.storage, layout.marker_key(key)) == marker
    report = get_json(lake.storage, layout.quarantine_key(key))
    assert report["raw_key"] == key and report["reason"] == marker["reason"]
    assert lake.storage.get(key).data == data
    assert list(lake.storage.list("curated/")) == []


def test_unknown_dataset_and_a_reused_object_that_is_missing_are_quarantined(
    lake: Services,
) -> None:
    podcasts = fx.envelope("plays", "alice", f"{DAY}T06:00:00Z", [])
    key = f"raw/podcasts/date={DAY}/user=alice/{podcasts['meta']['run_id']}.json.gz"
    lake.storage.put(key, fx.gz(podcasts))
    assert "unknown dataset" in handler.transform_object(lake.storage, key)["reason"]
    astray = f"raw/plays/{DAY}/alice/run.json.gz"  # not the raw layout
    lake.storage.put(astray, fx.gz(podcasts))
    assert "key is not raw/" in handler.transform_object(lake.storage, astray)["reason"]
    podcasts["meta"]["dataset"] = "podcasts"
    key = fx.raw_key_of(podcasts)
    lake.storage.put(key, fx.gz(podcasts))
    assert "unknown dataset" in handler.transform_object(lake.storage, key)["reason"]
    orphan = fx.playlists_envelope(
        f"{DAY}T06:00:00Z",
        [fx.simplified_playlist("pl1", "Mine", "alice", 1)],
        [],
        reused_items={
            "pl1": {
                "snapshot_id": "s",
                "raw_key": "raw/playlists/date=2026-03-01/"
                "user=alice/20260301T060000Z-000000.json.gz",
            }
        },
    )
    marker = handler.transform_object(lake.storage, fx.put_raw(lake.storage, orphan))
    assert marker["status"] == "quarantined" and "does not exist" in marker["reason"]


def test_reconcile_redrives_only_unmarked_objects(lake: Services) -> None:
    keys = land(lake, every_dataset())
    handler.transform_object(lake.storage, keys[0])
    assert handler.reconcile(lake.storage) == {"objects": len(keys) - 1, "done": len(keys) - 1}
    assert all(get_json(lake.storage, layout.marker_key(k))["status"] == "done" for k in keys)
    assert handler.reconcile(lake.storage) == {"objects": 0}


def test_concurrent_transforms_of_one_partition_lose_nothing_on_a_local_lake(
    lake: Services,
) -> None:
    envelopes = [
        fx.plays_envelope(
            f"{DAY}T{h:02d}:00:00Z",
            [
                fx.play(fx.track(f"t{h}-{i}", "x", fx.ALB1, [fx.A1]), f"{DAY}T{h:02d}:{i:02d}:00Z")
                for i in range(5)
            ],
        )
        for h in range(8)
    ]
    keys = land(lake, envelopes)
    barrier = threading.Barrier(len(keys))

    def run(key: str) -> None:
        barrier.wait()
        handler.transform_object(lake.storage, key)

    threads = [threading.Thread(target=run, args=(key,)) for key in keys]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(table_rows(lake, "plays", "played_at")) == 40
    assert len(table_rows(lake, "tracks", "track_id")) == 40


def test_the_apps_s3_event_is_the_raw_trigger_the_local_lake_honours(lake: Services) -> None:
    from chalice.app import S3EventConfig

    import app as chalice_app
    from spotify_etl.local import LocalEvents

    (declared,) = [s for s in chalice_app.app.event_sources if isinstance(s, S3EventConfig)]
    assert declared.name == "transform"
    assert (declared.prefix, declared.suffix) == (layout.RAW_PREFIX, layout.RAW_SUFFIX)
    assert tuple(declared.events) == layout.RAW_TRIGGER.events
    assert layout.RAW_TRIGGER.matches("raw/plays/date=x/user=u/r.json.gz")
    assert not layout.RAW_TRIGGER.matches("curated/plays/played_date=x/u.parquet")
    assert not layout.RAW_TRIGGER.matches("raw/plays/date=x/user=u/r.json")
    assert not layout.RAW_TRIGGER.matches("raw/plays/date=x/user=u/r.json.gz", "s3:ObjectRemoved:*")

    wired = Services(lake.config)
    wired.on_put = LocalEvents(wired)
    services.use(wired)
    env = fx.plays_envelope(
        f"{DAY}T06:00:00Z", [fx.play(fx.T1, f"{DAY}T05:00:00Z")], user_id="anna lee+1"
    )
    key = fx.put_raw(wired.storage, env)
    assert "user=anna%20lee+1" in key
    marker = get_json(wired.storage, layout.marker_key(key))
    assert marker["status"] == "done" and marker["rows"]["plays"] == 1
    assert table_rows(lake, "plays", "played_at")[0][0] == "anna lee+1"
