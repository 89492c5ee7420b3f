"""The `tracks` dataset (contract §7, §8): album and credits of tracks known only from a history
export, one `GET /tracks/{id}` each, against the loopback stand-in through spotipy, with raw
`history_export` objects landed in the test's lake as the import lands them."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any

import extract_helpers as helpers
from extract_helpers import api_calls, connect, envelope_of, make_services

from chalicelib import datasets, layout
from chalicelib.config import load_config
from chalicelib.extract import tracks
from chalicelib.extract.dataset import Settings
from chalicelib.extract.envelope import build_envelope, write_envelope
from chalicelib.extract.runner import run_extraction
from chalicelib.quota import calls_on
from chalicelib.services import Services
from chalicelib.storage import get_json
from chalicelib.transform import handler, parquet_io
from spotify_standin import DEMO_USER, Album, Artist, StandIn, Track, spotify_id

standin, lake_uri, local_lake = helpers.standin, helpers.lake_uri, helpers.local_lake

API_DATASETS = ["plays", "playlists", "top_items", "saved_tracks"]
GONE = spotify_id("a track Spotify removed")  # a valid id the stand-in does not know


def run(svc: Services, datasets_: list[str], run_at: datetime, **kwargs: Any) -> dict[str, Any]:
    return run_extraction(svc, datasets=datasets_, run_at=run_at, sleep=_no_sleep, **kwargs)


def _no_sleep(seconds: float) -> None:
    raise AssertionError(f"unexpected wait of {seconds}s")


def export_only_tracks(standin: StandIn, count: int) -> list[str]:
    """`count` tracks Spotify has but that none of the demo user's API answers shows (on an
    album of their own, with two credited artists, the second a feature)."""
    artist = Artist(spotify_id("export artist"), "Export Artist", ("krautrock",))
    feature = Artist(spotify_id("export feature"), "Feature")
    album = Album(spotify_id("export album"), "Deep Cuts", (artist.id,), "1974-11", "album", count)
    found = [
        Track(
            spotify_id(f"export track {n}"),
            f"Deep Cut {n}",
            album.id,
            (artist.id, feature.id),
            240_000 + n,
            track_number=n + 1,
            isrc=f"DEX0074{n:05d}",
        )
        for n in range(count)
    ]
    standin.world.add(artist, feature, album, *found)
    return [track.id for track in found]


def played_track_ids(standin: StandIn) -> list[str]:
    """Tracks the demo user's recently-played answer shows (described by the `plays` dataset)."""
    me = standin.world.user(DEMO_USER)
    return sorted({p.item for p in me.history_at(standin.now) if p.item in standin.world.tracks})


def stream(uri: str | None, ts: str, **extra: Any) -> dict[str, Any]:
    """One extended-streaming-history row, network identifiers already dropped."""
    return {
        "ts": ts,
        "ms_played": 200_000,
        "spotify_track_uri": uri,
        "master_metadata_track_name": "as the export names it",
        "master_metadata_album_artist_name": "someone",
        "master_metadata_album_album_name": "something",
        "spotify_episode_uri": None,
        "reason_start": "trackdone",
        "reason_end": "trackdone",
        "shuffle": False,
        "skipped": False,
        "offline": False,
        "incognito_mode": False,
        "platform": "linux",
        "conn_country": "DE",
        **extra,
    }


def land_export(
    svc: Services,
    rows: list[dict[str, Any]],
    at: datetime,
    *,
    import_id: str = "imp0001",
    stem: str = "Streaming_History_Audio_2019-2025_0",
) -> str:
    """A raw `history_export` object as `spotify-etl import-history` lands one file (§8)."""
    file_name = f"{stem}.json"
    run_id = f"{import_id}-{stem}"
    envelope = build_envelope(
        user_id=DEMO_USER,
        dataset=datasets.HISTORY_EXPORT,
        run_id=run_id,
        run_at=at,
        fetched_at=at,
        responses=[
            {
                "request": {"method": "GET", "url": f"export:{file_name}"},
                "status": 200,
                "body": rows,
            }
        ],
        extras={"import_id": import_id, "file_name": file_name, "format": "extended"},
    )
    key = layout.raw_key(datasets.HISTORY_EXPORT, at, DEMO_USER, run_id)
    write_envelope(svc.storage, key, envelope)
    return key


def uris(*track_ids: str) -> list[dict[str, Any]]:
    return [
        stream(f"spotify:track:{track_id}", f"2024-05-0{n % 9 + 1}T10:{n % 60:02d}:00Z")
        for n, track_id in enumerate(track_ids)
    ]


def track_calls(standin: StandIn) -> list[str]:
    return [r.path.rsplit("/", 1)[1] for r in standin.requests if r.path.startswith("/v1/tracks/")]


def outcome(record: dict[str, Any]) -> dict[str, Any]:
    return record["results"][DEMO_USER]["tracks"]


# --- which tracks -------------------------------------------------------------------------


def test_only_tracks_known_only_from_an_export_are_fetched_and_a_404_is_remembered(
    standin: StandIn, lake_uri: str
) -> None:
    svc = make_services(standin, lake_uri)
    connect(svc, standin)
    assert run(svc, API_DATASETS, standin.now)["status"] == "succeeded"
    only_exported = export_only_tracks(standin, 3)
    played = played_track_ids(standin)[:2]
    rows = [
        *uris(*only_exported, *played, GONE, only_exported[0]),  # a track twice: one call
        stream(None, "2024-05-01T11:00:00Z", spotify_episode_uri="spotify:episode:abc"),
        stream("spotify:track:not-an-id", "2024-05-01T12:00:00Z"),  # never asked: only a 400
        stream("spotify:local:Artist:Album:Song:200", "2024-05-01T13:00:00Z"),
    ]
    land_export(svc, rows, standin.now)
    standin.clear_log()

    record = run(svc, ["tracks"], standin.now)

    assert record["status"] == "succeeded", record
    assert sorted(track_calls(standin)) == sorted([*only_exported, GONE])
    assert set(api_calls(standin)) == {"GET /tracks/{id}"}
    assert outcome(record)["counts"] == {
        "scanned_raw_objects": 5,  # four API datasets and the export file
        "fetched": 3,
        "not_found": 1,
        "carried_over": 0,
    }
    envelope = envelope_of(svc, record, "tracks")
    assert envelope["meta"]["complete"] is True
    statuses = {r["request"]["url"].rsplit("/", 1)[1]: r["status"] for r in envelope["responses"]}
    assert statuses == {**dict.fromkeys(only_exported, 200), GONE: 404}
    index = get_json(svc.storage, tracks.INDEX_KEY)["tracks"]
    assert index[GONE]["not_found_at"] == layout.iso(standin.now)
    assert all(index[t]["described_at"] for t in (*only_exported, *played))
    assert all(entry.get("claimed_until") is None for entry in index.values())

    # Nothing new: no call at all, that day or any later one (the 404 is not asked again).
    for later in (standin.now + timedelta(minutes=5), standin.now + timedelta(days=40)):
        standin.clear_log()
        again = run(svc, ["tracks"], later)
        assert again["status"] == "succeeded" and again["calls"] == 0
        assert [r for r in standin.requests if r.path.startswith("/v1/")] == []
        assert outcome(again)["counts"]["fetched"] == 0
        assert outcome(again)["raw_objects"] == []


def test_a_track_an_api_answer_describes_after_the_import_is_not_fetched(
    standin: StandIn, local_lake: str
) -> None:
    svc = make_services(standin, local_lake)
    connect(svc, standin)
    first, second = export_only_tracks(standin, 2)
    land_export(svc, uris(first, second), standin.now)
    # The user saves `first`: the saved-tracks answer describes it before enrichment runs.
    me = standin.world.user(DEMO_USER)
    me.save(first, standin.now - timedelta(minutes=1))
    assert run(svc, ["saved_tracks"], standin.now)["status"] == "succeeded"
    standin.clear_log()

    record = run(svc, ["tracks"], standin.now)

    assert track_calls(standin) == [second]
    assert outcome(record)["counts"]["fetched"] == 1


def test_an_unreadable_raw_object_is_skipped_and_counted(standin: StandIn, local_lake: str) -> None:
    svc = make_services(standin, local_lake)
    connect(svc, standin)
    [only] = export_only_tracks(standin, 1)
    land_export(svc, uris(only), standin.now)
    broken = layout.raw_key(datasets.HISTORY_EXPORT, standin.now, DEMO_USER, "imp0002-broken")
    svc.storage.put(broken, b"not gzip at all")

    record = run(svc, ["tracks"], standin.now)

    assert record["status"] == "succeeded"
    counts = outcome(record)["counts"]
    assert counts["unreadable_raw_objects"] == 1 and counts["fetched"] == 1
    assert (
        run(svc, ["tracks"], standin.now)["results"][DEMO_USER]["tracks"]["counts"][
            "scanned_raw_objects"
        ]
        == 1
    )  # only the first run's own `tracks` object: the broken one is not read again


# --- the budget ------------------------------------------------------------------------------


def test_a_budget_cut_ends_partial_and_the_rest_is_fetched_by_the_next_run(
    standin: StandIn, lake_uri: str
) -> None:
    svc = make_services(standin, lake_uri)
    connect(svc, standin)
    exported = export_only_tracks(standin, 5)
    # 23:45 UTC: no history poll is left that day, so nothing is held back for plays.
    late = standin.now.replace(hour=23, minute=45)
    land_export(svc, uris(*exported), late)
    spent = calls_on(svc.storage, late.date().isoformat())
    short = make_services(standin, lake_uri, spotify_daily_budget=spent + 2)

    cut = run(short, ["tracks"], late)

    assert cut["status"] == "partial"
    assert [e["reason"] for e in outcome(cut)["errors"]] == ["budget"]
    first = track_calls(standin)
    assert len(first) == 2 and outcome(cut)["counts"]["carried_over"] == 3
    # The same day again: the budget is spent, so the dataset is skipped without a call.
    standin.clear_log()
    skipped = run(short, ["tracks"], late + timedelta(minutes=5))
    assert skipped["status"] == "partial" and outcome(skipped)["errors"][0]["reason"] == "budget"
    assert track_calls(standin) == [] and skipped["calls"] == 0

    # The next day has a budget again; the per-run `track_budget` still holds (2 a run).
    fetched = list(first)
    for day in (1, 2):
        standin.clear_log()
        record = run(svc, ["tracks"], late + timedelta(days=day), settings=Settings(track_budget=2))
        assert record["status"] == "succeeded"
        fetched += track_calls(standin)
    assert sorted(fetched) == sorted(exported)  # each one exactly once


def test_a_lockout_leaves_the_tracks_not_reached_due(standin: StandIn, local_lake: str) -> None:
    svc = make_services(standin, local_lake)
    connect(svc, standin)
    exported = export_only_tracks(standin, 4)
    land_export(svc, uris(*exported), standin.now)
    standin.quota_after(1)  # Spotify answers one call, then 429 QUOTA_EXCEEDED

    locked = run(svc, ["tracks"], standin.now)

    assert locked["status"] == "partial"
    assert [e["reason"] for e in outcome(locked)["errors"]] == ["cooldown"]
    assert outcome(locked)["counts"]["fetched"] == 1
    asked = [r for r in standin.requests if r.path.startswith("/v1/tracks/")]
    assert [r.status for r in asked] == [200, 429]
    first = asked[0].path.rsplit("/", 1)[1]

    standin.lift_quota()
    standin.clear_log()
    after = standin.now + timedelta(days=2)  # past the cooldown, on the run's clock
    assert run(svc, ["tracks"], after)["status"] == "succeeded"
    assert sorted(track_calls(standin)) == sorted(set(exported) - {first})


def test_concurrent_runs_never_fetch_a_track_twice(standin: StandIn, local_lake: str) -> None:
    svc = make_services(standin, local_lake)
    connect(svc, standin)
    exported = export_only_tracks(standin, 12)
    land_export(svc, uris(*exported), standin.now)
    records: list[dict[str, Any]] = []

    def enrich() -> None:
        records.append(run_extraction(svc, datasets=["tracks"], run_at=standin.now))

    threads = [threading.Thread(target=enrich) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [r["status"] for r in records] == ["succeeded"] * 3
    calls = track_calls(standin)
    assert len(calls) == len(set(calls)) and set(calls) == set(exported)


# --- what lands, and what reads it ---------------------------------------------------------


def test_the_transform_turns_the_answers_into_dimension_rows(
    standin: StandIn, local_lake: str
) -> None:
    svc = make_services(standin, local_lake)
    connect(svc, standin)
    exported = export_only_tracks(standin, 2)
    land_export(svc, uris(*exported, GONE), standin.now)
    record = run(svc, ["tracks"], standin.now)
    [key] = outcome(record)["raw_objects"]

    assert handler.transform_object(svc.storage, key)["status"] == "done"

    day = standin.now.date().isoformat()
    world = standin.world
    track = world.tracks[exported[0]]
    album = world.albums[track.album_id]
    rows = {table: _curated(svc, table, day) for table in ("tracks", "albums", "track_artists")}
    assert {r["track_id"] for r in rows["tracks"]} == set(exported)  # the 404 gives no row
    row = next(r for r in rows["tracks"] if r["track_id"] == track.id)
    assert row["name"] == track.name and row["album_id"] == album.id
    assert row["duration_ms"] == track.duration_ms and row["isrc"] == track.isrc
    assert [r["album_id"] for r in rows["albums"]] == [album.id]
    assert rows["albums"][0]["release_date"] == "1974-11"
    credits = sorted(
        (r["artist_position"], r["artist_id"])
        for r in rows["track_artists"]
        if r["track_id"] == track.id
    )
    assert credits == list(enumerate(track.artist_ids, start=1))
    artists = {r["artist_id"]: r["name"] for r in _curated(svc, "artists", day)}
    assert artists == {a: world.artists[a].name for a in track.artist_ids}


def test_genre_enrichment_then_looks_up_the_credited_artists(
    standin: StandIn, local_lake: str
) -> None:
    svc = make_services(standin, local_lake)
    connect(svc, standin)
    exported = export_only_tracks(standin, 2)
    land_export(svc, uris(*exported), standin.now)
    run(svc, ["tracks"], standin.now)
    standin.clear_log()

    run(svc, ["artists"], standin.now + timedelta(minutes=1))

    looked_up = {r.path.rsplit("/", 1)[1] for r in standin.requests if "/artists/" in r.path}
    assert looked_up == set(standin.world.tracks[exported[0]].artist_ids)


def _curated(svc: Services, table: str, day: str) -> list[dict[str, Any]]:
    found = []
    for key in svc.storage.list(f"curated/{table}/snapshot_date={day}/"):
        blob = svc.storage.get(key)
        assert blob is not None
        found += parquet_io.decode(blob.data)[0]
    return found


def test_the_per_run_budget_comes_from_track_budget() -> None:
    assert Settings.from_config(load_config({"TRACK_BUDGET": "7"})).track_budget == 7
    assert Settings.from_config(load_config({})).track_budget == 200
