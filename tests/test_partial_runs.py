"""A dataset that stops part-way (a 429 past the cap) must neither lose nor double anything:
the day's complete snapshot stands, and saves are logged once, by the run that completes.

End to end: extraction against the stand-in, the transform on a local lake, DuckDB reading it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import transform_fixtures as fx

from chalicelib import users
from chalicelib.config import Config
from chalicelib.extract import runner
from chalicelib.queries.duckdb_engine import DuckDBEngine
from chalicelib.services import Services
from chalicelib.transform import handler as transform
from chalicelib.transform import rows
from chalicelib.transform.raw import read_envelope
from spotify_standin import Album, Artist, Playlist, PlaylistEntry, StandIn, Track, User, World

START = datetime(2026, 3, 1, 6, 0, tzinfo=UTC)
USER = "u1"
RATE_LIMITED = {"Retry-After": "7200"}  # two hours: far past the cap, the dataset stops


def small_world() -> World:
    world = World(start=START)
    world.add(Artist("ar1", "Ada", ("pop",)), Album("al1", "Alb", ("ar1",), "2020"))
    for i in range(60):
        world.add(Track(f"t{i:02d}", f"T{i}", "al1", ("ar1",), 100_000))
    user = User(USER, "U1", playlist_ids=["plA", "plB"])
    world.add(user)
    for i in range(60):  # more than one page of saves
        user.save(f"t{i:02d}", START - timedelta(days=10, minutes=i))
    for time_range in ("short_term", "medium_term", "long_term"):
        user.set_top("artists", time_range, ["ar1"])
        user.set_top("tracks", time_range, ["t00", "t01", "t02"])
    plA = Playlist("plA", "A", USER)
    plA.set_items([PlaylistEntry("t00", START, USER), PlaylistEntry("t01", START, USER)])
    plB = Playlist("plB", "B", USER)
    plB.set_items([PlaylistEntry("t02", START, USER)])
    world.add(plA, plB)
    return world


@pytest.fixture
def lake(tmp_path: Path) -> Iterator[tuple[StandIn, Services, str]]:
    with StandIn(small_world(), token_lifetime=timedelta(days=400)) as standin:
        config = Config(
            lake_uri=str(tmp_path / "lake"),
            spotify_client_id=standin.client_id,
            spotify_client_secret=standin.client_secret,
            spotify_api_url=standin.api_url,
            spotify_accounts_url=standin.accounts_url,
        )
        services = Services(config)
        users.connect_user(services.secrets, USER, standin.refresh_token(USER))
        yield standin, services, config.lake_uri


def run(standin: StandIn, services: Services, at: datetime, dataset: str) -> str:
    standin.set_now(at)
    record = runner.run_extraction(services, datasets=[dataset], run_at=at)
    transform.reconcile(services.storage)
    return str(record["status"])


def table(lake_dir: str, sql: str) -> list[tuple[Any, ...]]:
    with DuckDBEngine(lake_dir).connect() as connection:
        return connection.execute(sql).fetchall()


def test_saves_from_an_interrupted_run_are_logged_once(lake: Any) -> None:
    standin, services, lake_dir = lake
    # The first page of saves answers; the second (offset 50) is refused for two hours.
    standin.inject(r"^/v1/me/tracks$", 429, headers=RATE_LIMITED, query={"offset": "50"})
    assert run(standin, services, START, "saved_tracks") == "partial"
    assert run(standin, services, START + timedelta(days=1), "saved_tracks") == "succeeded"
    logged = table(
        lake_dir,
        "SELECT count(*), count(DISTINCT (track_id, added_at)), min(snapshot_date)"
        " FROM saved_tracks",
    )
    # Every save once, in the partition of the run that read the library completely.
    assert logged == [(60, 60, START.date() + timedelta(days=1))]


def test_an_interrupted_later_run_leaves_the_days_top_items_whole(lake: Any) -> None:
    standin, services, lake_dir = lake
    assert run(standin, services, START, "top_items") == "succeeded"
    standin.inject(r"^/v1/me/top/tracks$", 429, times=1, headers=RATE_LIMITED)
    assert run(standin, services, START + timedelta(hours=3), "top_items") == "partial"
    counts = table(
        lake_dir,
        "SELECT item_type, time_range, count(*) FROM top_items GROUP BY ALL ORDER BY ALL",
    )
    assert counts == [
        ("artist", "long_term", 1), ("artist", "medium_term", 1), ("artist", "short_term", 1),
        ("track", "long_term", 3), ("track", "medium_term", 3), ("track", "short_term", 3),
    ]  # fmt: skip


def test_an_interrupted_playlists_run_writes_no_half_snapshot(lake: Any) -> None:
    standin, services, lake_dir = lake
    assert run(standin, services, START, "playlists") == "succeeded"
    standin.world.playlist("plB").set_items(
        [PlaylistEntry("t02", START, USER), PlaylistEntry("t03", START, USER)],
        at=START + timedelta(hours=12),
    )
    standin.inject(r"^/v1/playlists/plB/items", 429, times=1, headers=RATE_LIMITED)
    assert run(standin, services, START + timedelta(days=1), "playlists") == "partial"
    # Day 2 has no snapshot (the run could not read it all); day 1's stands untouched.
    assert table(
        lake_dir,
        "SELECT snapshot_date, playlist_id, items_readable FROM playlists ORDER BY ALL",
    ) == [(START.date(), "plA", True), (START.date(), "plB", True)]
    # The next complete run snapshots both, reusing plA's unchanged items.
    assert run(standin, services, START + timedelta(days=2), "playlists") == "succeeded"
    day3 = START.date() + timedelta(days=2)
    assert table(
        lake_dir,
        f"SELECT playlist_id, count(*) FROM playlist_items WHERE snapshot_date = '{day3}'"
        " GROUP BY ALL ORDER BY ALL",
    ) == [("plA", 2), ("plB", 2)]


def test_playlist_listing_pages_linked_as_users_playlists_are_read() -> None:
    """`/me/playlists` may page on through `/users/{id}/playlists` links: the same listing."""
    one = fx.simplified_playlist("pl1", "One", "alice", 1)
    two = fx.simplified_playlist("pl2", "Two", "alice", 1)
    env = fx.envelope(
        "playlists",
        "alice",
        "2026-03-01T06:00:00Z",
        [
            fx.answer("me/playlists", fx.page("me/playlists", [one], limit=1, total=2), limit=1),
            fx.answer(
                "users/alice/playlists",
                fx.page("users/alice/playlists", [two], offset=1, limit=1, total=2),
                offset=1,
                limit=1,
            ),
        ],
    )
    envelope = read_envelope(fx.raw_key_of(env), fx.gz(env))
    assert [r["playlist_id"] for r in rows.envelope_rows(envelope, {})["playlists"]] == [
        "pl1",
        "pl2",
    ]


def test_answers_are_read_below_the_runs_own_api_base() -> None:
    """SPOTIFY_API_URL need not end in /v1/: the envelope names its base (`meta.api_url`)."""
    base = "http://127.0.0.1:9000/spotify/"
    env = fx.plays_envelope(
        "2026-03-01T06:00:00Z", [fx.play(fx.T1, "2026-03-01T05:00:00.000Z")], api_url=base
    )
    for response in env["responses"]:
        response["request"]["url"] = response["request"]["url"].replace(
            "https://api.spotify.com/v1/", base
        )
    envelope = read_envelope(fx.raw_key_of(env), fx.gz(env))
    [play] = rows.envelope_rows(envelope, {})["plays"]
    assert play["track_id"] == fx.T1["id"]
