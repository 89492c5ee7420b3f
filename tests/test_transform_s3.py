"""The deployed path on moto S3: the app's `transform` Lambda invoked with S3 events, through
`chalice.test.Client`, with concurrent invocations racing on the same partition files."""

from __future__ import annotations

import gzip
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from chalice.test import Client
from moto import mock_aws

from chalicelib import layout, services
from chalicelib.config import Config
from chalicelib.services import Services
from chalicelib.storage import get_json
from chalicelib.transform import handler, parquet_io
from tests import transform_fixtures as fx

PROJECT = Path(__file__).resolve().parents[1]
DAY = "2026-03-02"


@pytest.fixture
def s3_lake(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, str, Services]]:
    # app.py reads its bucket at import; the test client sets stage variables only per call.
    monkeypatch.setenv("LAKE_URI", "s3://spotify-etl-test-lake")
    environ = dict(os.environ)
    with mock_aws():
        import app as chalice_app

        bucket = chalice_app.LAKE_BUCKET
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=bucket)
        lake = Services(Config(lake_uri=f"s3://{bucket}", aws_region="us-east-1"))
        services.use(lake)
        yield chalice_app.app, bucket, lake
    # Concurrent test-client calls each set and restore the stage's variables: put them back.
    os.environ.clear()
    os.environ.update(environ)


def test_concurrent_s3_events_on_one_partition_lose_nothing(
    s3_lake: tuple[Any, str, Services],
) -> None:
    app, bucket, lake = s3_lake
    artist = fx.artist("ar-shared", "Shared")
    envelopes = [
        fx.plays_envelope(
            f"{DAY}T{h:02d}:00:00Z",
            [
                fx.play(fx.track(f"t{h}-{i}", "x", fx.ALB1, [artist]), f"{DAY}T{h:02d}:{i:02d}:00Z")
                for i in range(5)
            ],
        )
        for h in range(6)
    ]
    keys = [fx.put_raw(lake.storage, env) for env in envelopes]
    answers: dict[str, Any] = {}
    barrier = threading.Barrier(len(keys))

    with Client(app, stage_name="dev", project_dir=str(PROJECT)) as client:

        def invoke(key: str) -> None:
            event = client.events.generate_s3_event(bucket=bucket, key=key)
            barrier.wait()
            answers[key] = client.lambda_.invoke("transform", event).payload

        threads = [threading.Thread(target=invoke, args=(key,)) for key in keys]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert {answers[key]["status"] for key in keys} == {"done"}
    plays, _ = parquet_io.decode(
        lake.storage.get(layout.curated_key("plays", "played_date", DAY, "alice")).data
    )
    assert len(plays) == 30 and len({p["played_at"] for p in plays}) == 30
    tracks, metadata = parquet_io.decode(
        lake.storage.get(layout.curated_key("tracks", "snapshot_date", DAY, "part")).data
    )
    assert sorted(t["track_id"] for t in tracks) == sorted(
        f"t{h}-{i}" for h in range(6) for i in range(5)
    )
    assert "row_runs" in metadata
    for key in keys:
        assert get_json(lake.storage, layout.marker_key(key))["status"] == "done"


def test_s3_quarantine_and_reconcile(s3_lake: tuple[Any, str, Services]) -> None:
    _, _, lake = s3_lake
    good = fx.put_raw(lake.storage, fx.top_envelope(f"{DAY}T06:00:00Z"))
    bad = "raw/plays/date=2026-03-02/user=alice/20260302T060000Z-badbad.json.gz"
    lake.storage.put(bad, b"not gzip at all")
    assert handler.reconcile(lake.storage) == {"objects": 2, "done": 1, "quarantined": 1}
    assert lake.storage.get(bad).data == b"not gzip at all"
    assert "not gzip" in get_json(lake.storage, layout.quarantine_key(bad))["reason"]
    assert get_json(lake.storage, layout.marker_key(good))["rows"]["top_items"] == 5
    assert handler.reconcile(lake.storage) == {"objects": 0}


def test_an_import_into_a_deployed_lake_is_transformed_by_the_s3_events(
    s3_lake: tuple[Any, str, Services],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`import-history` with LAKE_URI=s3://… lands the files; the transform Lambda, invoked by
    their S3 events (here concurrently, with a poll of the same day), does the rest."""
    from spotify_etl import import_history
    from spotify_etl.cli import main

    app, bucket, lake = s3_lake
    monkeypatch.setenv("LAKE_URI", f"s3://{bucket}")  # the user's shell, naming the stage's lake
    first = tmp_path / "Streaming_History_Audio_2026_0.json"
    row = fx.extended_row(f"{DAY}T10:03:20Z", "t1", ip_addr="198.51.100.7")
    first.write_text(json.dumps([row]))
    second = tmp_path / "Streaming_History_Audio_2026_1.json"
    second.write_text(json.dumps([fx.extended_row(f"{DAY}T11:00:00Z", "t2")]))
    argv = ["import-history", str(first), str(second), "--user", "alice", "--wait", "0"]
    assert main(argv) == 0
    assert "landed, transform pending" in capsys.readouterr().out
    keys = sorted(lake.storage.list("raw/history_export/"))
    assert len(keys) == 2 and b"198.51.100.7" not in b"".join(
        gzip.decompress(lake.storage.get(key).data) for key in keys
    )
    played = [fx.play(fx.T1, f"{DAY}T10:00:00.250Z")]
    poll = fx.put_raw(lake.storage, fx.plays_envelope(f"{DAY}T12:00:00Z", played))
    with Client(app, stage_name="dev", project_dir=str(PROJECT)) as client:
        threads = [
            threading.Thread(
                target=client.lambda_.invoke,
                args=("transform", client.events.generate_s3_event(bucket=bucket, key=key)),
            )
            for key in [*keys, poll]
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    landed = [
        import_history.Landed(import_history.ExportFile(k, "extended", [], ""), k, already=False)
        for k in keys
    ]
    import_history.await_markers(lake.storage, landed, print, wait_seconds=0)
    assert all(item.marker["status"] == "done" for item in landed)
    plays, metadata = parquet_io.decode(
        lake.storage.get(layout.curated_key("plays", "played_date", DAY, "alice")).data
    )
    assert [(layout.iso(p["played_at"]), p["source"]) for p in plays] == [
        (f"{DAY}T10:00:00.250Z", "both"),
        (f"{DAY}T11:00:00.000Z", "export"),
    ]
    assert json.loads(metadata["matched_ts"]) == {f"{DAY}T10:00:00.250Z": f"{DAY}T10:03:20.000Z"}
    # Concurrent test-client calls leave the stage's variables behind: the user's shell again.
    monkeypatch.setenv("LAKE_URI", f"s3://{bucket}")
    assert main(argv) == 0  # the same files again, the same day: nothing written
    assert capsys.readouterr().out.count("already imported today") == 2
