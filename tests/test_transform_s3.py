"""The deployed path on moto S3: the app's `transform` Lambda invoked with S3 events, through
`chalice.test.Client`, with concurrent invocations racing on the same partition files."""

from __future__ import annotations

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
