"""Issue 8, part B: reconcile, the artist scan and `GET /runs` cost about as many S3 requests on
a lake holding a year as on one holding a day (moto, every request counted)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from chalicelib import layout, runs
from chalicelib.extract import artists
from chalicelib.extract.dataset import Settings
from chalicelib.storage import S3Storage, dump_json
from chalicelib.transform import handler
from tests import transform_fixtures as fx

LAST = datetime(2026, 11, 30, tzinfo=UTC)
POLLS_A_DAY = 6  # few, so a year stays quick to generate; still > 1000 keys a listing page


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("s3", region_name="us-east-1")


def counted(client: Any) -> Counter[str]:
    """Every S3 request `client` makes from now on, by operation."""
    calls: Counter[str] = Counter()
    client.meta.events.register("before-call.s3.*", lambda model, **_: calls.update([model.name]))
    return calls


def fill(client: Any, bucket: str, days: int) -> S3Storage:
    """`days` days of plays polls, all transformed (markers) and run records; the last day's
    objects are real envelopes (their artists get scanned)."""
    client.create_bucket(Bucket=bucket)
    storage = S3Storage(client, bucket)
    for back in range(days - 1, -1, -1):
        day = LAST - timedelta(days=back)
        for poll in range(POLLS_A_DAY):
            at = day + timedelta(hours=poll * 4)
            run_id = layout.new_run_id(at)
            key = layout.raw_key("plays", at, "alice", run_id)
            if back == 0:
                env = fx.plays_envelope(layout.iso(at), [fx.play(fx.T1, layout.iso(at))])
                env["meta"]["run_id"] = run_id
                storage.put(key, fx.gz(env))
            else:
                storage.put(key, b"")
                storage.put(layout.marker_key(key), b"{}")
            record = {"run_id": run_id, "status": "succeeded", "run_at": layout.iso(at)}
            storage.put(layout.run_record_key(run_id), dump_json(record))
    return storage


def measure(client: Any, days: int) -> dict[str, int]:
    storage = fill(client, f"lake-{days}", days)
    # The steady state: each job has run once before (cursors set), then a new poll lands.
    handler.reconcile(storage)
    artists.scan_new_raw(storage, Settings())
    at = LAST + timedelta(hours=23)
    env = fx.plays_envelope(layout.iso(at), [fx.play(fx.T2, layout.iso(at))])
    fx.put_raw(storage, env)
    calls = counted(client)
    measured = {}
    handler.reconcile(storage)
    measured["reconcile"] = sum(calls.values())
    calls.clear()
    artists.scan_new_raw(storage, Settings())
    measured["artist_scan"] = sum(calls.values())
    calls.clear()
    assert len(runs.list_runs(storage, limit=5, now=LAST)) == 5  # fewer than a day holds
    measured["list_runs"] = sum(calls.values())
    calls.clear()
    return measured


def test_requests_do_not_grow_with_the_lakes_age(s3: Any) -> None:
    day = measure(s3, 1)
    year = measure(s3, 365)
    print(f"requests, one day vs one year: {day} vs {year}")
    for job in ("reconcile", "artist_scan", "list_runs"):
        assert year[job] <= day[job] + 3, (job, day, year)
