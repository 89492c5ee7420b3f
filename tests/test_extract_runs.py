"""Extraction runs through the app's handlers: datasets landed, records, limits, failures."""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from datetime import timedelta
from typing import Any

import extract_helpers as helpers
import pytest
from chalice.test import Client
from extract_helpers import api_calls, connect, envelope_of, make_services, token_calls

from chalicelib import datasets, layout, runs, services
from chalicelib.extract import runner, top_items
from chalicelib.extract.envelope import load_envelope
from chalicelib.storage import dump_json
from spotify_standin import DEMO_USER, StandIn

# Shared fixtures, made visible to pytest in this module.
standin, lake_uri, local_lake = helpers.standin, helpers.lake_uri, helpers.local_lake


@pytest.fixture
def app_client(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("LAKE_URI", "./lake-not-used")  # app.py reads it at import
    import app

    with Client(app.app) as client:
        yield client


def schedule_event(client: Any) -> dict[str, Any]:
    return client.events.generate_cw_event(
        source="aws.events", detail_type="Scheduled Event", detail={}, resources=[]
    )


def expected_item_calls(standin: StandIn, user_id: str = DEMO_USER) -> Counter[str]:
    """Minimum playlist-item calls: every page of each playlist the user may try to read
    (owned, or listed as collaborative), one refused call for the others."""
    world, now = standin.world, standin.now
    calls: Counter[str] = Counter()
    for pid in world.user(user_id).playlist_ids:
        playlist = world.playlist(pid)
        readable = playlist.readable_by(user_id) and not playlist.is_editorial
        pages = max(1, math.ceil(len(playlist.entries_at(now)) / 50)) if readable else 1
        calls["GET /playlists/{id}/items"] += pages
    return calls


def expected_artist_calls(standin: StandIn) -> Counter[str]:
    """One `/artists/{id}` per credited artist that no top-artists answer brought genres for
    (the demo's top tracks list every track, so every credited artist is seen)."""
    world, me = standin.world, standin.world.user(DEMO_USER)
    in_top = {i for r in me.rankings if r.item_type == "artists" for i in r.ids}
    credited = {
        artist
        for track in world.tracks.values()
        for artist in (*track.artist_ids, *world.albums[track.album_id].artist_ids)
    }
    return Counter({"GET /artists/{id}": len(credited - in_top)})


def test_schedules_land_every_dataset_with_the_minimum_calls(
    app_client: Any, standin: StandIn, lake_uri: str
) -> None:
    svc = make_services(standin, lake_uri)
    services.use(svc)
    connect(svc, standin)

    poll = app_client.lambda_.invoke("poll_history", schedule_event(app_client)).payload
    daily = app_client.lambda_.invoke("daily_snapshot", schedule_event(app_client)).payload

    assert poll["status"] == "succeeded" and daily["status"] == "succeeded"
    assert set(poll["results"][DEMO_USER]) == {"plays"}
    assert set(daily["results"][DEMO_USER]) == set(datasets.scheduled(datasets.DAILY))
    first = (
        Counter(
            {
                "GET /me/player/recently-played": 1,
                "GET /me/playlists": 1,
                "GET /me/top/artists": 3,
                "GET /me/top/tracks": 3,
                "GET /me/tracks": 1,
            }
        )
        + expected_item_calls(standin)
        + expected_artist_calls(standin)
    )
    assert api_calls(standin) == first
    # the run records count exactly what the stand-in saw
    recorded: Counter[str] = Counter()
    for record in (poll, daily):
        for outcome in record["results"][DEMO_USER].values():
            recorded.update(outcome["calls"])
    assert recorded == first
    assert token_calls(standin) == ["refresh_token"]  # one refresh, then the cached token
    for dataset in ("plays", "playlists", "top_items", "saved_tracks"):
        record = poll if dataset == "plays" else daily
        [key] = record["results"][DEMO_USER][dataset]["raw_objects"]
        run_date = layout.parse_iso(record["run_at"]).date().isoformat()
        assert layout.parse_raw_key(key) == layout.RawKey(
            dataset, run_date, DEMO_USER, record["run_id"]
        )

    # Unchanged data: only the calls needed to see that nothing changed.
    standin.clear_log()
    again = app_client.lambda_.invoke("daily_snapshot", schedule_event(app_client)).payload
    assert again["status"] == "succeeded"
    assert api_calls(standin) == Counter(
        {
            "GET /me/playlists": 1,
            "GET /me/top/artists": 3,
            "GET /me/top/tracks": 3,
            "GET /me/tracks": 1,
        }
    )
    assert token_calls(standin) == []


def test_a_retried_request_does_not_run_twice(
    app_client: Any, standin: StandIn, local_lake: str
) -> None:
    svc = make_services(standin, local_lake)
    services.use(svc)
    connect(svc, standin)
    event = {
        "run_id": "20261120T120000Z-abcdef",
        "datasets": ["plays"],
        "run_at": "2026-11-20T12:00:00.000Z",
    }

    first = app_client.lambda_.invoke("extract", event).payload
    standin.clear_log()
    second = app_client.lambda_.invoke("extract", event).payload

    assert first["status"] == "succeeded" and first["run_at"] == event["run_at"]
    assert second == first
    assert standin.requests == []


def test_huge_retry_after_stops_the_run_and_starts_a_cooldown(
    standin: StandIn, lake_uri: str
) -> None:
    svc = make_services(standin, lake_uri)
    connect(svc, standin)
    standin.inject(r"/me/player/recently-played", 429, times=5, headers={"Retry-After": "3600"})
    slept: list[float] = []

    record = runner.run_extraction(
        svc, datasets=["plays", "saved_tracks"], run_at=standin.now, sleep=slept.append
    )

    assert record["status"] == "partial"
    plays = record["results"][DEMO_USER]["plays"]
    assert plays["status"] == "partial"  # contract §9: a lockout, not a fault
    [error] = plays["errors"]
    assert error["reason"] == "cooldown" and error["status"] == 429
    assert error["retry_after"] == 3600
    # on the run's clock, like the cooldown it started (contract §9)
    assert error["retry_at"] == error["cooldown_until"] == layout.iso(
        layout.utc(standin.now) + timedelta(hours=1)
    )
    assert slept == []  # never waited for it
    assert plays["calls"] == {"GET /me/player/recently-played": 1}
    # the 429 answer itself is in the raw object, verbatim
    [answer] = envelope_of(svc, record, "plays")["responses"]
    assert answer["status"] == 429 and answer["body"]["error"]["status"] == 429
    # the watermark did not move: the next poll starts where this one should have
    assert svc.storage.get(layout.state_key("plays", DEMO_USER)) is None
    # the cooldown (run_at + Retry-After) stops the rest of the run without a call
    saves = record["results"][DEMO_USER]["saved_tracks"]
    assert saves["status"] == "partial" and saves["calls"] == {}
    assert [e["reason"] for e in saves["errors"]] == ["cooldown"]


def test_short_retry_after_is_honoured(standin: StandIn, local_lake: str) -> None:
    svc = make_services(standin, local_lake)
    connect(svc, standin)
    standin.inject(r"/me/tracks", 429, times=1, headers={"Retry-After": "2"})
    slept: list[float] = []

    record = runner.run_extraction(svc, datasets=["saved_tracks"], sleep=slept.append)

    assert record["status"] == "succeeded"
    assert slept == [2]
    statuses = [r["status"] for r in envelope_of(svc, record, "saved_tracks")["responses"]]
    assert statuses == [429, 200]


def test_server_errors_are_retried_with_backoff(standin: StandIn, lake_uri: str) -> None:
    svc = make_services(standin, lake_uri)
    connect(svc, standin)
    standin.inject(r"/me/tracks", 503, times=2)
    slept: list[float] = []

    record = runner.run_extraction(svc, datasets=["saved_tracks"], sleep=slept.append)

    outcome = record["results"][DEMO_USER]["saved_tracks"]
    assert record["status"] == "succeeded" and outcome["errors"] == []
    assert slept == [0.5, 1.0]
    assert outcome["calls"] == {"GET /me/tracks": 3}
    statuses = [r["status"] for r in envelope_of(svc, record, "saved_tracks")["responses"]]
    assert statuses == [503, 503, 200]


def test_server_errors_exhausted_stop_the_dataset(standin: StandIn, local_lake: str) -> None:
    svc = make_services(standin, local_lake)
    connect(svc, standin)
    standin.inject(r"/me/top/tracks", 500, times=10)
    slept: list[float] = []

    record = runner.run_extraction(svc, datasets=["plays", "top_items"], sleep=slept.append)

    top = record["results"][DEMO_USER]["top_items"]
    assert record["status"] == "partial"
    assert top["status"] == "partial"  # the artists rankings were fetched and are kept
    assert top["errors"][0]["reason"] == "server_error" and top["errors"][0]["status"] == 500
    assert top["calls"]["GET /me/top/tracks"] == 4 and len(slept) == 3


def test_a_run_stops_at_its_deadline(standin: StandIn, local_lake: str) -> None:
    svc = make_services(standin, local_lake)
    connect(svc, standin)

    record = runner.run_extraction(
        svc, datasets=["plays", "top_items"], deadline=time.monotonic() - 1
    )

    assert record["status"] == "failed"
    for outcome in record["results"][DEMO_USER].values():
        assert outcome["errors"][0]["reason"] == "deadline"
    assert api_calls(standin) == Counter()


def test_no_connected_user_fails_the_run(standin: StandIn, local_lake: str) -> None:
    record = runner.run_extraction(make_services(standin, local_lake))
    assert record["status"] == "failed"
    assert record["errors"] == [{"reason": "no_users", "message": "no connected user to run for"}]


def test_unknown_datasets_are_refused(standin: StandIn, local_lake: str) -> None:
    with pytest.raises(ValueError, match=r"unknown dataset\(s\) charts"):
        runner.run_extraction(make_services(standin, local_lake), datasets=["charts"])


def test_describe_run_reports_transform_state_and_list_is_newest_first(
    standin: StandIn, lake_uri: str
) -> None:
    svc = make_services(standin, lake_uri)
    connect(svc, standin)
    older = runner.run_extraction(svc, datasets=["plays"], run_at=standin.now)
    newer = runner.run_extraction(
        svc, datasets=["saved_tracks", "plays"], run_at=standin.now.replace(hour=13)
    )
    [plays_raw] = newer["results"][DEMO_USER]["plays"]["raw_objects"]
    marker = {"raw_key": plays_raw, "status": "quarantined", "reason": "bad json", "rows": {}}
    svc.storage.put(layout.marker_key(plays_raw), dump_json(marker))

    described = runs.describe_run(svc.storage, newer["run_id"])

    assert described is not None and described["status"] == "succeeded"
    assert described["results"][DEMO_USER]["plays"]["transforms"] == {
        plays_raw: {"state": "quarantined", "reason": "bad json"}
    }
    [saved_raw] = described["results"][DEMO_USER]["saved_tracks"]["transforms"]
    assert described["results"][DEMO_USER]["saved_tracks"]["transforms"][saved_raw] == {
        "state": "pending"
    }
    assert [r["run_id"] for r in runs.list_runs(svc.storage)] == [newer["run_id"], older["run_id"]]
    assert runs.describe_run(svc.storage, "nope") is None
    # the raw objects are readable envelopes with the contract's meta
    envelope = load_envelope(svc.storage, plays_raw)
    assert envelope is not None
    assert {"user_id", "dataset", "run_id", "run_at", "fetched_at"} <= set(envelope["meta"])


def test_a_running_record_past_its_deadline_reads_failed(local_lake: str, standin: StandIn) -> None:
    svc = make_services(standin, local_lake)
    record = {
        "run_id": "20261120T000000Z-000000",
        "status": "running",
        "deadline": "2026-11-20T00:15:00.000Z",
        "results": {},
    }
    assert runs.create_run(svc.storage, record)
    assert not runs.create_run(svc.storage, record)

    assert runs.describe_run(svc.storage, record["run_id"])["status"] == "failed"
    assert runs.effective_status(record, layout.parse_iso("2026-11-20T00:10:00Z")) == "running"
    assert (
        json.loads(svc.storage.get(layout.run_record_key(record["run_id"])).data)["status"]
        == "running"
    )


def test_a_queued_request_runs_once(standin: StandIn, local_lake: str) -> None:
    svc = make_services(standin, local_lake)
    connect(svc, standin)
    run_id = "20261120T120000Z-a0a0a0"
    deadline = standin.now + timedelta(minutes=15)
    assert runs.queue_run(svc.storage, run_id, standin.now, deadline)
    assert not runs.queue_run(svc.storage, run_id, standin.now, deadline)
    assert runs.describe_run(svc.storage, run_id, now=standin.now)["status"] == "running"
    assert runs.describe_run(svc.storage, run_id, now=deadline + timedelta(1))["status"] == (
        "failed"
    )
    event = {"run_id": run_id, "datasets": ["plays"], "run_at": layout.iso(standin.now)}

    first = runner.run_requested(svc, event, None)
    second = runner.run_requested(svc, event, None)  # the async invoke delivered twice

    assert first["status"] == "succeeded" and second == first
    assert api_calls(standin)["GET /me/player/recently-played"] == 1


def test_a_crash_inside_a_dataset_fails_that_dataset_only(
    standin: StandIn, local_lake: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 8: a bug in one dataset ends it `failed` with the reason; the rest goes on."""
    svc = make_services(standin, local_lake)
    connect(svc, standin)

    def broken(job: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(top_items, "fetch", broken)
    record = runner.run_extraction(svc, datasets=["plays", "top_items"], run_at=standin.now)
    assert record["status"] == "partial"
    assert record["results"][DEMO_USER]["plays"]["status"] == "succeeded"
    broken_outcome = record["results"][DEMO_USER]["top_items"]
    assert broken_outcome["status"] == "failed"
    assert [e["reason"] for e in broken_outcome["errors"]] == ["dataset_error"]
    assert "RuntimeError: a bug" in broken_outcome["errors"][0]["message"]


@pytest.mark.parametrize("progress_seconds, shown", [(0.0, True), (3600.0, False)])
def test_a_long_run_shows_progress_a_short_one_writes_its_record_twice(
    local_lake: str, standin: StandIn, monkeypatch: pytest.MonkeyPatch,
    progress_seconds: float, shown: bool,
) -> None:
    """Each record write is a billed PUT: a run writes progress only once it has lasted."""
    monkeypatch.setattr(runner, "PROGRESS_SECONDS", progress_seconds)
    svc = make_services(standin, local_lake)
    connect(svc, standin)
    puts: list[str] = []
    svc.on_put = puts.append
    seen_mid_run: list[dict[str, Any]] = []

    def progress(_line: str) -> None:
        record = runs.get_run(svc.storage, run_id)
        seen_mid_run.append((record or {}).get("results", {}))

    run_id = layout.new_run_id(standin.now)
    record = runner.run_extraction(
        svc, datasets=["plays", "saved_tracks"], run_at=standin.now, run_id=run_id,
        progress=progress,
    )
    assert record["status"] == "succeeded"
    assert len(seen_mid_run) == 2
    assert (DEMO_USER in seen_mid_run[0]) is shown
    record_writes = puts.count(layout.run_record_key(run_id))
    assert record_writes == (4 if shown else 2)  # created, [two datasets,] finished
