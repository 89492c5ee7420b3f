"""Each dataset against the stand-in: what lands in raw/, what state remembers, which calls."""

from __future__ import annotations

import dataclasses
import json
import math
import threading
from collections import Counter
from datetime import timedelta
from typing import Any

import extract_helpers as helpers
import requests
from extract_helpers import api_calls, bodies, connect, envelope_of, make_services

from chalicelib import layout
from chalicelib.extract.dataset import Settings
from chalicelib.extract.runner import run_extraction
from chalicelib.secrets import access_token_name
from chalicelib.services import Services
from chalicelib.storage import get_json
from spotify_standin import DEMO_USER, EDITORIAL_PLAYLIST, StandIn

# Shared fixtures, made visible to pytest in this module.
standin, lake_uri, local_lake = helpers.standin, helpers.lake_uri, helpers.local_lake


def run(svc: Services, standin: StandIn, datasets: list[str], **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("run_at", standin.now)
    record = run_extraction(svc, datasets=datasets, sleep=_no_sleep, **kwargs)
    assert record["status"] == "succeeded", record
    return record


def _no_sleep(seconds: float) -> None:
    raise AssertionError(f"unexpected wait of {seconds}s")


def played_ats(envelope: dict[str, Any]) -> list[Any]:
    # (a 401 may precede it: the stand-in's clock moves on, the cached token expires)
    [answer] = [r for r in envelope["responses"] if r["status"] == 200]
    return [layout.parse_iso(item["played_at"]) for item in answer["body"]["items"]]


# --- plays ---------------------------------------------------------------------------------


def test_plays_fetch_the_newest_50_late_plays_included_and_warn_of_gaps(
    standin: StandIn, lake_uri: str
) -> None:
    svc = make_services(standin, lake_uri)
    connect(svc, standin)
    me = standin.world.user(DEMO_USER)

    first = envelope_of(svc, run(svc, standin, ["plays"]), "plays")
    assert first["meta"]["watermark"] is None and len(played_ats(first)) == 50
    watermark = max(played_ats(first))

    # A play from before the watermark that reaches the history only now.
    late = me.add_play(
        me.plays[0].item,
        watermark - timedelta(minutes=1),
        visible_at=standin.now + timedelta(minutes=1),
    )
    standin.advance(timedelta(minutes=2))
    second_record = run(svc, standin, ["plays"])
    second = envelope_of(svc, second_record, "plays")
    assert late.played_at.replace(microsecond=0) in [
        p.replace(microsecond=0) for p in played_ats(second)
    ]
    assert layout.parse_iso(second["meta"]["watermark"]) == watermark
    assert second_record["results"][DEMO_USER]["plays"]["warnings"] == []

    # 60 plays within the hour: the 50 returned no longer reach back to the watermark.
    newest_known = max(played_ats(second))
    for minute in range(60):
        me.add_play(me.plays[1].item, standin.now + timedelta(seconds=30 * minute + 1))
    standin.advance(timedelta(hours=1))
    third_record = run(svc, standin, ["plays"])
    oldest = min(played_ats(envelope_of(svc, third_record, "plays")))
    assert third_record["results"][DEMO_USER]["plays"]["warnings"] == [
        {"type": "possible_gap", "from": layout.iso(newest_known), "to": layout.iso(oldest)}
    ]
    history_calls = [r for r in standin.requests if r.path.endswith("/recently-played")]
    assert len(history_calls) == 3
    assert all("after" not in r.query and r.query.get("limit") == "50" for r in history_calls)


# --- playlists -----------------------------------------------------------------------------


def test_playlists_reuse_unchanged_items_and_record_refusals(
    standin: StandIn, lake_uri: str
) -> None:
    svc = make_services(standin, lake_uri)
    connect(svc, standin)
    world = standin.world
    owned = [
        p
        for p in world.user(DEMO_USER).playlist_ids
        if world.playlist(p).readable_by(DEMO_USER) and not world.playlist(p).is_editorial
    ]
    refused = {
        p: 404 if world.playlist(p).is_editorial else 403
        for p in world.user(DEMO_USER).playlist_ids
        if p not in owned
    }
    assert EDITORIAL_PLAYLIST in refused and 403 in refused.values()

    first_record = run(svc, standin, ["playlists"])
    first = envelope_of(svc, first_record, "playlists")
    [first_key] = first_record["results"][DEMO_USER]["playlists"]["raw_objects"]
    for pid, status in refused.items():
        [answer] = bodies(first, f"/playlists/{pid}/items")
        assert answer["status"] == status and answer["body"]["error"]["status"] == status
    assert first["meta"]["reused_items"] == {}
    assert first_record["results"][DEMO_USER]["playlists"]["errors"] == []

    # One owned playlist changes; the others do not.
    changed = world.playlist(owned[0])
    changed.set_items(list(changed.entries_at(standin.now))[:-1], at=standin.now)
    standin.advance(timedelta(hours=1))
    standin.clear_log()
    second_record = run(svc, standin, ["playlists"])
    second = envelope_of(svc, second_record, "playlists")
    [second_key] = second_record["results"][DEMO_USER]["playlists"]["raw_objects"]
    pages = max(1, math.ceil(len(changed.entries_at(standin.now)) / 50))
    assert api_calls(standin) == Counter(
        {"GET /me/playlists": 1, "GET /playlists/{id}/items": pages}
    )
    snapshots = {p: world.playlist(p).snapshot_id_at(standin.now) for p in owned}
    assert second["meta"]["reused_items"] == {
        p: {"snapshot_id": snapshots[p], "raw_key": first_key} for p in owned[1:]
    }
    assert set(second["meta"]["unreadable_items"]) == set(refused)

    # Third run: the changed playlist's items come from the second object, the rest still from
    # the first (never a chain through the second).
    standin.clear_log()
    third = envelope_of(svc, run(svc, standin, ["playlists"]), "playlists")
    assert third["meta"]["reused_items"] == {
        p: {"snapshot_id": snapshots[p], "raw_key": second_key if p == owned[0] else first_key}
        for p in owned
    }
    assert api_calls(standin) == Counter({"GET /me/playlists": 1})


# --- every answer verbatim, with the odd cases ---------------------------------------------


def test_envelopes_hold_every_answer_verbatim_with_every_odd_case(
    standin: StandIn, local_lake: str
) -> None:
    svc = make_services(standin, local_lake)
    connect(svc, standin)
    datasets = ["plays", "playlists", "top_items", "saved_tracks"]
    record = run(svc, standin, datasets)
    token = json.loads(svc.secrets.get(access_token_name(DEMO_USER)))["access_token"]

    answers = []
    for dataset in datasets:
        envelope = envelope_of(svc, record, dataset)
        assert envelope["meta"]["dataset"] == dataset and envelope["meta"]["user_id"] == DEMO_USER
        answers += envelope["responses"]
    for answer in answers:  # the same request again gives the very same answer
        again = requests.get(
            answer["request"]["url"], headers={"Authorization": f"Bearer {token}"}, timeout=5
        )
        assert (again.status_code, again.json()) == (answer["status"], answer["body"])

    entries = [
        e
        for a in answers
        if "/items" in a["request"]["url"] and a["status"] == 200
        for e in a["body"]["items"]
    ]
    objects = [e["item"] for e in entries if e["item"] is not None]
    assert any(e["item"] is None for e in entries)  # no longer available
    assert any(e["is_local"] and e["item"]["id"] is None for e in entries)
    assert any(o["type"] == "episode" for o in objects)
    assert any(e["added_at"] is None for e in entries)
    per_playlist = Counter(
        (a["request"]["url"].split("/items")[0], o["id"])
        for a in answers
        if "/items" in a["request"]["url"] and a["status"] == 200
        for o in (e["item"] for e in a["body"]["items"])
        if o and o["id"]
    )
    assert max(per_playlist.values()) > 1  # a track twice in one playlist
    tracks = [o for o in objects if o["type"] == "track" and o["id"]]
    assert any(len(t["artists"]) > 1 for t in tracks)
    assert {t["album"]["release_date_precision"] for t in tracks} == {"year", "month", "day"}
    names = {a["name"] for t in tracks for a in t["artists"]}
    assert any(not n.isascii() for n in names) and any('"' in n or "," in n for n in names)
    text = str([a["body"] for a in answers])
    for gone in ("popularity", "followers", "available_markets", "'label'"):
        assert gone not in text


# --- top items -----------------------------------------------------------------------------


def test_top_items_fetch_every_page_of_every_range(standin: StandIn, local_lake: str) -> None:
    svc = make_services(standin, local_lake)
    connect(svc, standin)
    me = standin.world.user(DEMO_USER)

    record = run(svc, standin, ["top_items"], settings=Settings(page_limit=10))

    expected_calls: Counter[str] = Counter()
    counts = record["results"][DEMO_USER]["top_items"]["counts"]
    for kind in ("artists", "tracks"):
        for time_range in ("short_term", "medium_term", "long_term"):
            total = len(me.top_at(kind, time_range, standin.now))
            assert counts[f"{kind}.{time_range}"] == total
            expected_calls[f"GET /me/top/{kind}"] += max(1, math.ceil(total / 10))
    assert api_calls(standin) == expected_calls
    assert record["results"][DEMO_USER]["top_items"]["calls"] == dict(expected_calls)


# --- saved tracks --------------------------------------------------------------------------


def test_saved_tracks_page_down_to_the_first_known_save(standin: StandIn, lake_uri: str) -> None:
    svc = make_services(standin, lake_uri)
    connect(svc, standin)
    me = standin.world.user(DEMO_USER)
    settings = Settings(page_limit=5)
    saves = me.saves_at(standin.now)

    first = run(svc, standin, ["saved_tracks"], settings=settings)
    assert api_calls(standin)["GET /me/tracks"] == math.ceil(len(saves) / 5)
    assert envelope_of(svc, first, "saved_tracks")["meta"]["known_until"] is None
    assert first["results"][DEMO_USER]["saved_tracks"]["counts"] == {"new_saves": len(saves)}

    standin.clear_log()
    second = run(svc, standin, ["saved_tracks"], settings=settings)
    assert api_calls(standin) == Counter({"GET /me/tracks": 1})
    known = envelope_of(svc, second, "saved_tracks")["meta"]["known_until"]
    assert layout.parse_iso(known) == saves[0].added_at

    # Seven new saves: two pages, the second reaching a known save.
    for n in range(7):
        me.save(saves[n].track_id, standin.now + timedelta(minutes=n + 1))
    standin.advance(timedelta(minutes=10))
    standin.clear_log()
    third = run(svc, standin, ["saved_tracks"], settings=settings)
    assert api_calls(standin) == Counter({"GET /me/tracks": 2})
    assert third["results"][DEMO_USER]["saved_tracks"]["counts"] == {"new_saves": 7}
    assert layout.parse_iso(
        get_json(svc.storage, layout.state_key("saved_tracks", DEMO_USER))["newest_added_at"]
    ) == standin.now - timedelta(minutes=3)


# --- artists (genre enrichment) ------------------------------------------------------------


def _seen_artists(standin: StandIn) -> set[str]:
    """Artists credited in what the demo user's plays, playlists and saves show (the world)."""
    world, me, now = standin.world, standin.world.user(DEMO_USER), standin.now
    items = [p.item for p in me.history_at(now)] + [s.track_id for s in me.saves_at(now)]
    for pid in me.playlist_ids:
        playlist = world.playlist(pid)
        if playlist.readable_by(DEMO_USER) and not playlist.is_editorial:
            items += [e.item for e in playlist.entries_at(now)]
    seen: set[str] = set()
    for item in items:
        track = world.tracks.get(item or "")
        if track is not None:
            seen.update(track.artist_ids, world.albums[track.album_id].artist_ids)
    return seen


def artist_calls(standin: StandIn) -> list[str]:
    return [r.path.rsplit("/", 1)[1] for r in standin.requests if r.path.startswith("/v1/artists")]


def test_artists_are_fetched_once_within_the_ttl_under_a_budget(
    standin: StandIn, lake_uri: str
) -> None:
    svc = make_services(standin, lake_uri)
    connect(svc, standin)
    me = standin.world.user(DEMO_USER)
    me.rankings = [r for r in me.rankings if r.item_type != "artists"]  # no genres arrive free
    seen = _seen_artists(standin)
    settings = Settings(artist_budget=5)
    run(svc, standin, ["plays", "playlists", "saved_tracks"])

    fetched: list[str] = []
    for _ in range(math.ceil(len(seen) / 5)):
        standin.clear_log()
        record = run(svc, standin, ["artists"], settings=settings)
        calls = artist_calls(standin)
        counts = record["results"][DEMO_USER]["artists"]["counts"]
        assert len(calls) == min(5, len(seen) - len(fetched))
        assert counts["carried_over"] == len(seen) - len(fetched) - len(calls)
        fetched += calls
    assert sorted(fetched) == sorted(seen)  # each one exactly once

    standin.clear_log()
    later = standin.now + timedelta(days=30)  # the TTL itself: jitter only lengthens it
    run(svc, standin, ["artists"], settings=settings, run_at=later)
    assert artist_calls(standin) == []

    standin.clear_log()
    past_jitter = standin.now + timedelta(days=37)  # beyond TTL + 20 %
    run(svc, standin, ["artists"], settings=settings, run_at=past_jitter)
    assert len(artist_calls(standin)) == 5  # all expired again; the budget still holds


def test_artists_with_genres_from_top_artists_need_no_call(
    standin: StandIn, local_lake: str
) -> None:
    svc = make_services(standin, local_lake)
    connect(svc, standin)
    me = standin.world.user(DEMO_USER)
    # Two more credited artists drop out of every top list: they need a call too.
    in_top = sorted({i for r in me.rankings if r.item_type == "artists" for i in r.ids})
    dropped = in_top[:2]
    me.rankings = [
        dataclasses.replace(r, ids=tuple(i for i in r.ids if i not in dropped))
        if r.item_type == "artists"
        else r
        for r in me.rankings
    ]

    run(svc, standin, ["plays", "playlists", "top_items", "saved_tracks", "artists"])

    without_genres = _seen_artists(standin) - (set(in_top) - set(dropped))
    assert set(dropped) <= without_genres
    assert sorted(artist_calls(standin)) == sorted(without_genres)


def test_concurrent_enrichment_runs_never_fetch_an_artist_twice(
    standin: StandIn, local_lake: str
) -> None:
    svc = make_services(standin, local_lake)
    connect(svc, standin)
    me = standin.world.user(DEMO_USER)
    me.rankings = [r for r in me.rankings if r.item_type != "artists"]
    run(svc, standin, ["plays", "playlists"])
    standin.clear_log()
    records: list[dict[str, Any]] = []

    def enrich() -> None:
        records.append(
            run_extraction(
                svc, datasets=["artists"], run_at=standin.now, settings=Settings(artist_budget=100)
            )
        )

    threads = [threading.Thread(target=enrich) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [r["status"] for r in records] == ["succeeded"] * 3
    calls = artist_calls(standin)
    assert len(calls) == len(set(calls)) and set(calls) == _seen_artists(standin)
