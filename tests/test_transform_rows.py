"""Raw envelope → rows (pure): every odd case of contract §1 and §4."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.transform.objects import ShapeError
from chalicelib.transform.plays import API_DEFAULTS
from chalicelib.transform.raw import read_envelope
from chalicelib.transform.rows import envelope_rows
from tests import transform_fixtures as fx


def rows_of(env: dict[str, Any], reused: list[dict[str, Any]] = ()) -> dict[str, list[dict]]:
    parsed = read_envelope(fx.raw_key_of(env), fx.gz(env))
    sources = {fx.raw_key_of(r): read_envelope(fx.raw_key_of(r), fx.gz(r)) for r in reused}
    return envelope_rows(parsed, sources)


def by(rows: list[dict], column: str) -> dict[Any, dict]:
    return {row[column]: row for row in rows}


def test_plays_keyed_by_played_at_with_utc_date_and_local_files() -> None:
    env = fx.plays_envelope(
        "2026-03-02T00:10:00Z",
        [
            fx.play(fx.T1, "2026-03-01T23:59:59.123Z", fx.playlist_context("pl1")),
            fx.play(fx.LOCAL, "2026-03-02T00:01:00+00:00"),
            fx.play(None, "2026-03-02T00:05:00Z"),  # track no longer available
            fx.play(fx.T2, "not a time"),  # no key: dropped, not an error
        ],
    )
    plays = [
        {k: v for k, v in row.items() if k not in API_DEFAULTS} | {"source": row["source"]}
        for row in rows_of(env)["plays"]
    ]
    assert all(row["source"] == "api" for row in plays)
    assert plays == [
        {
            "user_id": "alice",
            "played_at": fx.when("2026-03-01T23:59:59.123Z"),
            "track_id": "t1",
            "context_type": "playlist",
            "context_uri": "spotify:playlist:pl1",
            "source": "api",
            "played_date": "2026-03-01",
        },
        {
            "user_id": "alice",
            "played_at": fx.when("2026-03-02T00:01:00Z"),
            "track_id": None,
            "context_type": None,
            "context_uri": None,
            "source": "api",
            "played_date": "2026-03-02",
        },
        {
            "user_id": "alice",
            "played_at": fx.when("2026-03-02T00:05:00Z"),
            "track_id": None,
            "context_type": None,
            "context_uri": None,
            "source": "api",
            "played_date": "2026-03-02",
        },
    ]


def test_dimensions_from_plays_credit_order_release_precision_and_missing_fields() -> None:
    env = fx.plays_envelope(
        "2026-03-02T06:00:00Z",
        [
            fx.play(fx.T2, "2026-03-02T05:00:00Z"),
            fx.play(fx.T3, "2026-03-02T05:10:00Z"),
            fx.play(fx.LOCAL, "2026-03-02T05:20:00Z"),
        ],
    )
    tables = rows_of(env)
    tracks = by(tables["tracks"], "track_id")
    assert set(tracks) == {"t2", "t3"}  # the local file has no identity
    assert tracks["t2"] == {
        "track_id": "t2",
        "name": "Two",
        "album_id": "al2",
        "duration_ms": 240_000,
        "explicit": True,
        "isrc": "USRC17607839",
        "disc_number": 1,
        "track_number": 2,
        "snapshot_date": "2026-03-02",
    }
    assert tracks["t3"]["isrc"] is None
    credits = [
        (r["artist_id"], r["artist_position"])
        for r in tables["track_artists"]
        if r["track_id"] == "t2"
    ]
    assert credits == [("ar2", 1), ("ar1", 2), ("ar3", 3)]
    albums = by(tables["albums"], "album_id")
    assert albums["al2"]["release_date"] == "1999-12"
    assert albums["al2"]["release_date_precision"] == "month"
    assert albums["al2"]["release_year"] == 1999
    assert albums["al3"]["release_year"] == 2024
    artists = by(tables["artists"], "artist_id")
    assert set(artists) == {"ar1", "ar2", "ar3"}
    assert all(a["genres"] is None for a in artists.values())  # simplified: genres unknown


def test_year_precision_and_fields_spotify_no_longer_sends() -> None:
    bare = {
        "id": "t9",
        "type": "track",
        "album": {"id": "al9", "release_date": "1981", "release_date_precision": "year"},
    }
    odd = {
        "id": "t8",
        "name": 42,
        "duration_ms": "long",
        "explicit": "yes",
        "album": None,
        "artists": [None, {"id": "ar8"}],
    }
    env = fx.plays_envelope(
        "2026-03-02T06:00:00Z",
        [fx.play(bare, "2026-03-02T05:00:00Z"), fx.play(odd, "2026-03-02T05:01:00Z")],
    )
    tables = rows_of(env)
    tracks = by(tables["tracks"], "track_id")
    assert tracks["t9"] == {
        "track_id": "t9",
        "name": None,
        "album_id": "al9",
        "duration_ms": None,
        "explicit": None,
        "isrc": None,
        "disc_number": None,
        "track_number": None,
        "snapshot_date": "2026-03-02",
    }
    assert tracks["t8"]["name"] is None and tracks["t8"]["duration_ms"] is None
    assert tracks["t8"]["album_id"] is None and tracks["t8"]["explicit"] is None
    assert by(tables["albums"], "album_id")["al9"]["release_year"] == 1981
    # A null credit keeps its place in the credit order.
    assert [
        (r["artist_id"], r["artist_position"])
        for r in tables["track_artists"]
        if r["track_id"] == "t8"
    ] == [("ar8", 2)]


def test_playlist_items_positions_null_local_episode_and_deprecated_keys() -> None:
    entries = [
        fx.playlist_item(fx.T1),
        None,  # a null entry keeps its slot
        fx.playlist_item(None),  # unavailable track: slot kept, no row
        fx.playlist_item(fx.LOCAL, added_at=None, added_by=None),
        fx.playlist_item(fx.EP),
        fx.playlist_item(fx.T2, deprecated_key=True),  # only the deprecated `track` key
    ]
    playlists = [
        fx.simplified_playlist("pl1", "Mine", "alice", len(entries)),
        fx.simplified_playlist(
            "pl2", "Followed", "bob", 7, collaborative=True, public=None, deprecated_ref=True
        ),
    ]
    env = fx.playlists_envelope(
        "2026-03-02T06:00:00Z",
        playlists,
        [*fx.items_answers("pl1", entries), fx.error("playlists/pl2/items", 403, "Forbidden")],
    )
    tables = rows_of(env)
    items = tables["playlist_items"]
    assert [(r["position"], r["item_type"], r["item_id"], r["item_name"]) for r in items] == [
        (1, "track", "t1", "One"),
        (4, "local", None, "demo take.mp3"),
        (5, "episode", "ep1", "Episode One"),
        (6, "track", "t2", "Two"),
    ]
    local = items[1]
    assert local["added_at"] is None and local["added_by"] is None
    assert items[0]["added_at"] == fx.when("2026-01-05T10:00:00Z")
    assert items[0]["added_by"] == "alice" and items[0]["snapshot_date"] == "2026-03-02"
    assert "ep1" not in by(tables["tracks"], "track_id")  # episodes are not tracks
    assert set(by(tables["tracks"], "track_id")) == {"t1", "t2"}
    rows = by(tables["playlists"], "playlist_id")
    assert rows["pl1"] == {
        "user_id": "alice",
        "playlist_id": "pl1",
        "name": "Mine",
        "owner_id": "alice",
        "collaborative": False,
        "public": True,
        "snapshot_id": "snap-1",
        "item_count": 6,
        "items_readable": True,
        "snapshot_date": "2026-03-02",
    }
    assert rows["pl2"]["item_count"] == 7  # from the deprecated `tracks` ref
    assert rows["pl2"]["items_readable"] is False  # 403 on its items
    assert rows["pl2"]["public"] is None


def test_reused_items_are_read_from_the_named_raw_object() -> None:
    earlier = fx.playlists_envelope(
        "2026-03-01T06:00:00Z",
        [fx.simplified_playlist("pl1", "Mine", "alice", 2)],
        fx.items_answers("pl1", [fx.playlist_item(fx.T1), fx.playlist_item(fx.T3)]),
    )
    today = fx.playlists_envelope(
        "2026-03-02T06:00:00Z",
        [fx.simplified_playlist("pl1", "Mine", "alice", 2)],
        [],
        reused_items={"pl1": {"snapshot_id": "snap-1", "raw_key": fx.raw_key_of(earlier)}},
    )
    tables = rows_of(today, reused=[earlier])
    assert [
        (r["position"], r["item_id"], r["snapshot_date"]) for r in tables["playlist_items"]
    ] == [(1, "t1", "2026-03-02"), (2, "t3", "2026-03-02")]
    assert tables["playlists"][0]["items_readable"] is True
    # A playlist not reused and not read: listed, but its items are not readable.
    alone = fx.playlists_envelope(
        "2026-03-02T06:00:00Z", [fx.simplified_playlist("pl1", "Mine", "alice", 2)], []
    )
    assert rows_of(alone)["playlists"][0]["items_readable"] is False
    assert rows_of(alone)["playlist_items"] == []


def test_top_items_rank_across_pages_and_errors_yield_nothing() -> None:
    tables = rows_of(fx.top_envelope("2026-03-02T06:00:00Z"))
    top = [(r["item_type"], r["time_range"], r["rank"], r["item_id"]) for r in tables["top_items"]]
    assert sorted(top) == [
        ("artist", "long_term", 1, "ar3"),
        ("artist", "long_term", 2, "ar1"),
        ("track", "short_term", 1, "t2"),
        ("track", "short_term", 2, "t1"),
        ("track", "short_term", 3, "t3"),  # page 2 has no body offset: taken from the URL
    ]
    artists = by(tables["artists"], "artist_id")
    assert artists["ar3"]["genres"] == ["indie", "folk"]
    assert artists["ar1"]["genres"] == []  # known to have none: kept, not null
    assert artists["ar2"]["genres"] is None  # only seen as a simplified credit


def test_failed_listing_says_nothing_about_snapshots() -> None:
    env = fx.envelope(
        "playlists",
        "alice",
        "2026-03-02T06:00:00Z",
        [fx.error("me/playlists", 429, "rate limited")],
    )
    assert rows_of(env) == {}


def test_saved_tracks_only_newer_than_known_until() -> None:
    saves = [
        fx.saved(fx.T1, "2026-03-01T12:00:00Z"),
        fx.saved(fx.T2, "2026-02-01T12:00:00Z"),
        fx.saved(fx.T3, "2026-02-28T23:00:00Z"),
    ]
    tables = rows_of(fx.saved_envelope("2026-03-02T06:00:00Z", saves, "2026-02-28T23:00:00.000Z"))
    assert [(r["track_id"], r["added_at"]) for r in tables["saved_tracks"]] == [
        ("t1", fx.when("2026-03-01T12:00:00Z"))
    ]
    assert set(by(tables["tracks"], "track_id")) == {"t1", "t2", "t3"}  # all seen that day
    first = rows_of(fx.saved_envelope("2026-03-02T06:00:00Z", saves, None))
    assert len(first["saved_tracks"]) == 3


def test_artist_answers_carry_genres_and_404s_yield_nothing() -> None:
    artists = rows_of(fx.artists_envelope("2026-03-02T06:00:00Z"))["artists"]
    assert artists == [
        {"artist_id": "ar1", "name": "Ada", "genres": [], "snapshot_date": "2026-03-02"},
        {"artist_id": "ar2", "name": "Bo", "genres": ["jazz"], "snapshot_date": "2026-03-02"},
    ]


def test_an_episode_played_is_not_a_track() -> None:
    env = fx.plays_envelope("2026-03-02T06:00:00Z", [fx.play(fx.EP, "2026-03-02T05:00:00Z")])
    tables = rows_of(env)
    assert [p["track_id"] for p in tables["plays"]] == ["ep1"]
    assert "tracks" not in tables


def test_the_same_object_twice_in_one_envelope_gives_one_row() -> None:
    env = fx.plays_envelope(
        "2026-03-02T06:00:00Z",
        [fx.play(fx.T1, "2026-03-02T05:00:00Z"), fx.play(fx.T1, "2026-03-02T05:03:00Z")],
    )
    tables = rows_of(env)
    assert len(tables["plays"]) == 2
    assert len(tables["tracks"]) == 1 and len(tables["albums"]) == 1


def test_answers_the_tables_do_not_use_are_ignored() -> None:
    env = fx.plays_envelope("2026-03-02T06:00:00Z", [fx.play(fx.T1, "2026-03-02T05:00:00Z")])
    env["responses"] += [fx.answer("me", {"id": "alice"}), fx.answer("me/player", None, 204)]
    assert [p["track_id"] for p in rows_of(env)["plays"]] == ["t1"]


def test_items_that_are_not_a_list_are_a_shape_error() -> None:
    env = fx.plays_envelope("2026-03-02T06:00:00Z", [])
    env["responses"][0]["body"]["items"] = "oops"
    with pytest.raises(ShapeError, match="not a list"):
        rows_of(env)
