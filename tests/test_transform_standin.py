"""End to end on the loopback stand-in: real extraction runs land raw objects, the local lake
dispatches them to the app's transform, and the lake that results is complete, typed and equal to
a full reprocess. The core transform tests do not depend on this one."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq

from chalicelib import layout, services, tables
from chalicelib.config import Config
from chalicelib.storage import get_json
from chalicelib.transform import handler, parquet_io

START = datetime(2026, 11, 16, tzinfo=UTC)


def test_two_simulated_days_on_the_standin(tmp_path: Path) -> None:
    from chalicelib import datasets
    from chalicelib.extract import runner
    from spotify_etl.local import dispatching
    from spotify_etl.sample import start_sample

    config, standin = start_sample(Config(lake_uri=str(tmp_path / "lake")), start=START)
    lake = dispatching(config)
    services.use(lake)
    try:
        for moment in (START + timedelta(hours=h) for h in (6, 12, 30, 36)):
            standin.set_now(moment)
            chosen = [*datasets.scheduled(datasets.HISTORY)]
            if moment.hour == 6:
                chosen += datasets.scheduled(datasets.DAILY)
            record = runner.run_extraction(lake, datasets=chosen, run_at=moment)
            assert record["status"] in {"succeeded", "partial"}
    finally:
        standin.stop()

    raw = list(lake.storage.list("raw/"))
    assert {layout.parse_raw_key(k).dataset for k in raw} >= {"plays", "playlists", "top_items"}
    assert {get_json(lake.storage, layout.marker_key(k))["status"] for k in raw} == {"done"}
    files = {key: lake.storage.get(key).data for key in lake.storage.list("curated/")}
    # No gap, no import in two polled days: those tables stay empty.
    expected = set(tables.TABLES) - {"saved_tracks", "history_gaps", "imports"}
    assert {key.split("/")[1] for key in files} >= expected
    for key, data in files.items():
        declared = tables.arrow_schema(tables.TABLES[key.split("/")[1]])
        assert pq.read_schema(io.BytesIO(data)).remove_metadata() == declared, key
    plays = [
        row
        for key, data in files.items()
        if key.startswith("curated/plays/")
        for row in parquet_io.decode(data)[0]
    ]
    assert plays and len({(p["user_id"], p["played_at"]) for p in plays}) == len(plays)
    playlists = [
        row
        for key, data in files.items()
        if key.startswith("curated/playlists/")
        for row in parquet_io.decode(data)[0]
    ]
    # The demo user follows playlists it cannot read, and owns some it can.
    assert {p["items_readable"] for p in playlists} == {True, False}

    handler.reprocess(lake.storage)
    assert {key: lake.storage.get(key).data for key in lake.storage.list("curated/")} == files
