"""The Spotify stand-in, driven by spotipy itself and by plain `requests`, checked against
Spotify's OpenAPI document (relaxed for its known lags) and the 2026 rules of contract §1."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import spotipy
from openapi_check import validate_response
from spotipy.cache_handler import MemoryCacheHandler
from spotipy.oauth2 import SpotifyClientCredentials, SpotifyOAuth

from spotify_standin import (
    DEMO_USER,
    EDITORIAL_PLAYLIST,
    FRIEND_USER,
    Album,
    Artist,
    PlaylistEntry,
    StandIn,
    Track,
    User,
    World,
    demo_world,
    spotify_id,
)
from spotify_standin.demo import TOP_ARTISTS

START = datetime(2026, 11, 20, tzinfo=UTC)
REDIRECT = "http://127.0.0.1:8765/callback"
SCOPE = "user-read-recently-played user-top-read playlist-read-private user-library-read"


# --- fixtures and helpers -------------------------------------------------------------------


@pytest.fixture
def standin() -> Iterator[StandIn]:
    with StandIn(demo_world(start=START)) as running:
        yield running


def oauth(standin: StandIn, refresh_token: str | None = None) -> SpotifyOAuth:
    """spotipy's user auth manager pointed at the stand-in, with an in-memory token cache."""
    cache = MemoryCacheHandler(
        {"refresh_token": refresh_token, "scope": SCOPE, "expires_at": 0} if refresh_token else None
    )
    manager = SpotifyOAuth(
        standin.client_id,
        standin.client_secret,
        REDIRECT,
        scope=SCOPE,
        cache_handler=cache,
        open_browser=False,
        requests_session=requests.Session(),
    )
    manager.OAUTH_TOKEN_URL = standin.accounts_url + "api/token"
    manager.OAUTH_AUTHORIZE_URL = standin.accounts_url + "authorize"
    return manager


def client(standin: StandIn, auth_manager: Any) -> spotipy.Spotify:
    """A spotipy client that fails fast (own session) and talks to the stand-in."""
    sp = spotipy.Spotify(auth_manager=auth_manager, requests_session=requests.Session())
    sp.prefix = standin.api_url
    return sp


def user_client(standin: StandIn, user_id: str = DEMO_USER) -> spotipy.Spotify:
    return client(standin, oauth(standin, standin.refresh_token(user_id)))


def app_client(standin: StandIn) -> spotipy.Spotify:
    manager = SpotifyClientCredentials(
        standin.client_id,
        standin.client_secret,
        cache_handler=MemoryCacheHandler(),
        requests_session=requests.Session(),
    )
    manager.OAUTH_TOKEN_URL = standin.accounts_url + "api/token"
    return client(standin, manager)


def token_for(standin: StandIn, user_id: str | None = DEMO_USER) -> str:
    """An access token from the token endpoint (client credentials when `user_id` is None)."""
    if user_id is None:
        form = {"grant_type": "client_credentials"}
    else:
        form = {"grant_type": "refresh_token", "refresh_token": standin.refresh_token(user_id)}
    answer = requests.post(
        standin.accounts_url + "api/token",
        data=form,
        auth=(standin.client_id, standin.client_secret),
        timeout=5,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["access_token"]


def get(standin: StandIn, path_or_url: str, token: str | None) -> requests.Response:
    """GET a Web API path (or an absolute URL) and validate the answer against the OpenAPI doc."""
    url = path_or_url if "://" in path_or_url else standin.api_url + path_or_url
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer = requests.get(url, headers=headers, timeout=5)
    validate_response("GET", url, answer.status_code, answer.json(), answer.headers)
    return answer


def all_pages(sp: spotipy.Spotify, page: dict[str, Any]) -> list[dict[str, Any]]:
    items = list(page["items"])
    while page["next"]:
        page = sp.next(page)
        items += page["items"]
    return items


def error_message(answer: requests.Response) -> str:
    return answer.json()["error"]["message"]


def small_world() -> World:
    """Two users, one album of three tracks: the size a single rule needs."""
    world = World(start=START)
    artist = Artist(spotify_id("a"), "Ärtist", ("indie",))
    album = Album(spotify_id("al"), "Album", (artist.id,), "2020")
    world.add(artist, album, User("u1", "User One"), User("u2", "User Two"))
    for n in range(3):
        world.add(Track(spotify_id(f"t{n}"), f"Track {n}", album.id, (artist.id,), 200_000))
    return world


def track_ids(world: World) -> list[str]:
    return list(world.tracks)


# --- accounts -------------------------------------------------------------------------------


def test_authorization_code_flow_with_spotipy(standin: StandIn) -> None:
    manager = oauth(standin)
    redirect = requests.get(
        manager.get_authorize_url(state="xyz"), allow_redirects=False, timeout=5
    )
    assert redirect.status_code == 302
    location = urlsplit(redirect.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    query = parse_qs(location.query)
    assert query["state"] == ["xyz"]

    token = manager.get_access_token(query["code"][0], as_dict=True, check_cache=False)
    assert token["refresh_token"] and token["scope"] == SCOPE
    assert client(standin, manager).me()["id"] == DEMO_USER
    assert standin.requests[1].grant_type == "authorization_code"
    assert standin.requests[1].user_id == DEMO_USER

    # Codes are single-use.
    with pytest.raises(spotipy.SpotifyOauthError, match="invalid_grant"):
        manager.get_access_token(query["code"][0], check_cache=False)


def test_authorize_logs_in_the_chosen_user_and_refuses_bad_clients(standin: StandIn) -> None:
    standin.authorize_as = FRIEND_USER
    manager = oauth(standin)
    location = requests.get(manager.get_authorize_url(), allow_redirects=False, timeout=5)
    code = parse_qs(urlsplit(location.headers["Location"]).query)["code"][0]
    manager.get_access_token(code, check_cache=False)
    assert client(standin, manager).me()["id"] == FRIEND_USER

    base = standin.accounts_url + "authorize"
    good = {"client_id": standin.client_id, "response_type": "code", "redirect_uri": REDIRECT}
    for bad in (
        {"client_id": "someone-else"},
        {"redirect_uri": "https://evil.example/callback"},
        {"response_type": "token"},
    ):
        answer = requests.get(base, params={**good, **bad}, allow_redirects=False, timeout=5)
        assert answer.status_code == 400, bad
    assert standin.redirect_uri_allowed("http://localhost:9/cb")
    assert not standin.redirect_uri_allowed("https://example.com/cb")


def test_codes_expire_and_must_match_the_redirect_uri(standin: StandIn) -> None:
    def fresh_code() -> str:
        params = {"client_id": standin.client_id, "response_type": "code", "redirect_uri": REDIRECT}
        answer = requests.get(
            standin.accounts_url + "authorize", params=params, allow_redirects=False, timeout=5
        )
        return parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]

    def exchange(code: str, redirect_uri: str = REDIRECT) -> requests.Response:
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        return requests.post(
            standin.accounts_url + "api/token",
            data={**form, "client_id": standin.client_id, "client_secret": standin.client_secret},
            timeout=5,
        )

    mismatched = exchange(fresh_code(), "http://127.0.0.1:1/other")
    assert (mismatched.status_code, mismatched.json()["error"]) == (400, "invalid_grant")

    stale = fresh_code()
    standin.advance(timedelta(minutes=11))
    assert exchange(stale).json()["error"] == "invalid_grant"

    fresh = exchange(fresh_code())  # client credentials in the body work as well as Basic
    assert fresh.status_code == 200
    assert set(fresh.json()) == {
        "access_token",
        "token_type",
        "expires_in",
        "scope",
        "refresh_token",
    }


def test_token_endpoint_refuses_bad_clients_and_bad_refresh_tokens(standin: StandIn) -> None:
    url = standin.accounts_url + "api/token"
    refresh = {"grant_type": "refresh_token", "refresh_token": standin.refresh_token(DEMO_USER)}
    wrong_secret = requests.post(url, data=refresh, auth=(standin.client_id, "nope"), timeout=5)
    assert wrong_secret.status_code == 401
    assert wrong_secret.json()["error"] == "invalid_client"

    unknown = {"grant_type": "refresh_token", "refresh_token": "R-made-up"}
    answer = requests.post(url, data=unknown, auth=(standin.client_id, standin.client_secret))
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_grant")

    no_rotation = requests.post(url, data=refresh, auth=(standin.client_id, standin.client_secret))
    assert "refresh_token" not in no_rotation.json()
    assert no_rotation.json()["expires_in"] == 3600
    with pytest.raises(KeyError):
        standin.refresh_token("nobody")


def test_rotating_refresh_tokens_revokes_the_old_one(standin: StandIn) -> None:
    standin.rotate_refresh_tokens = True
    old = standin.refresh_token(DEMO_USER)
    manager = oauth(standin, old)
    assert client(standin, manager).me()["id"] == DEMO_USER
    new = manager.cache_handler.get_cached_token()["refresh_token"]
    assert new != old

    stale = oauth(standin, old)
    with pytest.raises(spotipy.SpotifyOauthError, match="invalid_grant"):
        client(standin, stale).me()
    assert [r.status for r in standin.requests if r.grant_type == "refresh_token"] == [200, 400]


def test_access_tokens_expire_by_the_stand_in_clock(standin: StandIn) -> None:
    token = token_for(standin)
    assert get(standin, "me", token).status_code == 200
    standin.advance(timedelta(hours=1))
    expired = get(standin, "me", token)
    assert expired.status_code == 401
    assert "expired" in error_message(expired)


def test_web_api_needs_a_valid_token(standin: StandIn) -> None:
    assert get(standin, "me", None).status_code == 401
    assert get(standin, "me", "A-not-a-token").status_code == 401
    assert get(standin, "tracks/" + next(iter(standin.world.tracks)), None).status_code == 401
    assert {r.status for r in standin.requests} == {401}


def test_client_credentials_read_catalogue_and_metadata_only(standin: StandIn) -> None:
    world = standin.world
    sp = app_client(standin)
    track_id = next(iter(world.tracks))
    track = sp.track(track_id)
    assert track["id"] == track_id and track["album"]["id"] == world.tracks[track_id].album_id
    assert sp.album(track["album"]["id"])["tracks"]["total"] >= 1
    assert sp.artist(track["artists"][0]["id"])["genres"]

    token = token_for(standin, None)
    assert get(standin, "me", token).status_code == 403
    assert get(standin, "me/player/recently-played", token).status_code == 403
    owned = world.user(DEMO_USER).playlist_ids[0]
    metadata = get(standin, f"playlists/{owned}", token).json()
    assert metadata["id"] == owned and "items" not in metadata and "tracks" not in metadata
    assert get(standin, f"playlists/{owned}/items", token).status_code == 403
    assert get(standin, f"playlists/{EDITORIAL_PLAYLIST}", token).status_code == 404
    assert get(standin, "tracks/" + spotify_id("nothing"), token).status_code == 404
    assert get(standin, "artists/not-an-id", token).status_code == 400


def test_a_track_by_id_answers_by_the_2026_rules(standin: StandIn) -> None:
    """`GET /tracks/{id}`, one id a call, as the `tracks` enrichment asks it (with a user's token)
    and as an app token may: the full track without the fields Spotify dropped; 404 for a
    well-formed id Spotify does not have, 400 for a malformed one (as `/artists/{id}`)."""
    world = standin.world
    track = next(t for t in world.tracks.values() if t.isrc and len(t.artist_ids) > 1)
    for token in (token_for(standin), token_for(standin, None)):
        body = get(standin, f"tracks/{track.id}", token).json()  # checked against the document
        assert (body["type"], body["id"], body["name"]) == ("track", track.id, track.name)
        assert body["album"]["id"] == track.album_id
        assert [a["id"] for a in body["artists"]] == list(track.artist_ids)  # credit order
        assert body["external_ids"] == {"isrc": track.isrc}
        dropped = {"popularity", "available_markets", "followers", "label"}
        assert not dropped & set(body) and not dropped & set(body["album"])
        unknown = get(standin, "tracks/" + spotify_id("removed from Spotify"), token)
        assert unknown.status_code == 404 and unknown.json()["error"]["status"] == 404
        assert get(standin, "tracks/not-an-id", token).status_code == 400
        assert get(standin, "artists/" + spotify_id("no such artist"), token).status_code == 404
    sp = user_client(standin)
    assert sp.track(track.id)["album"]["id"] == track.album_id
    with pytest.raises(spotipy.SpotifyException) as missing:
        sp.track(spotify_id("removed from Spotify"))
    assert missing.value.http_status == 404


# --- refused endpoints and parameters -----------------------------------------------------------


def test_removed_endpoints_are_refused_with_a_reason(standin: StandIn) -> None:
    world = standin.world
    sp = user_client(standin)
    # spotipy 2.26 still calls the batch endpoints: they fail loudly.
    with pytest.raises(spotipy.SpotifyException) as refused:
        sp.tracks(list(world.tracks)[:2])
    assert refused.value.http_status == 403 and "removed" in refused.value.msg

    token = token_for(standin)
    artist, album = next(iter(world.artists)), next(iter(world.albums))
    playlist = world.user(DEMO_USER).playlist_ids[0]
    for path in (
        f"artists?ids={artist}",
        f"albums?ids={album}",
        f"playlists/{playlist}/tracks",
        f"artists/{artist}/top-tracks?market=DE",
        f"artists/{artist}/related-artists",
        "browse/new-releases",
        "browse/categories",
        f"users/{FRIEND_USER}/playlists",
    ):
        answer = get(standin, path, token)
        assert answer.status_code == 403, path
        assert "removed" in error_message(answer) or "no longer" in error_message(answer)
    # Not in the OpenAPI document at all, so checked without it.
    unknown = requests.get(
        standin.api_url + "no/such/thing", headers={"Authorization": f"Bearer {token}"}, timeout=5
    )
    assert unknown.status_code == 404 and unknown.json()["error"]["status"] == 404


@pytest.mark.parametrize(
    "path",
    [
        "me/player/recently-played?limit=51",
        "me/top/artists?limit=51",
        "me/top/tracks?time_range=forever",
        "me/playlists?limit=100",
        "me/tracks?limit=0",
        "me/tracks?offset=-1",
        "playlists/{owned}/items?limit=51",
        "playlists/{owned}/items?limit=ten",
        "me/player/recently-played?after=1&before=2",
    ],
)
def test_bad_parameters_are_400(standin: StandIn, path: str) -> None:
    owned = standin.world.user(DEMO_USER).playlist_ids[0]
    answer = get(standin, path.format(owned=owned), token_for(standin))
    assert answer.status_code == 400
    assert error_message(answer)


def test_injected_429_carries_retry_after_and_is_used_up(standin: StandIn) -> None:
    sp = user_client(standin)
    standin.inject(
        r"^/v1/me/player/recently-played$", 429, times=2, headers={"Retry-After": "3600"}
    )
    for _ in range(2):
        with pytest.raises(spotipy.SpotifyException) as limited:
            sp.current_user_recently_played(limit=5)
        assert limited.value.http_status == 429
        assert limited.value.headers["Retry-After"] == "3600"
    assert len(sp.current_user_recently_played(limit=5)["items"]) == 5
    statuses = [r.status for r in standin.requests if r.path.endswith("recently-played")]
    assert statuses == [429, 429, 200]


@pytest.mark.parametrize("status", [500, 502, 503])
def test_injected_server_errors(standin: StandIn, status: int) -> None:
    token = token_for(standin)
    standin.inject("/v1/me/tracks", status, body={"error": {"status": status, "message": "boom"}})
    answer = get(standin, "me/tracks", token)
    assert answer.status_code == status and error_message(answer) == "boom"
    assert get(standin, "me/tracks", token).status_code == 200


def test_injection_can_target_the_token_endpoint(standin: StandIn) -> None:
    standin.inject(r"^/api/token$", 503)
    with pytest.raises(spotipy.SpotifyOauthError):
        user_client(standin).me()
    assert user_client(standin).me()["id"] == DEMO_USER


# --- user data ------------------------------------------------------------------------------


def test_me(standin: StandIn) -> None:
    me = get(standin, "me", token_for(standin)).json()
    assert (
        me["id"] == DEMO_USER and me["type"] == "user" and me["uri"] == f"spotify:user:{DEMO_USER}"
    )
    assert me["display_name"] == "Zoë Ångström-Müller"
    assert not {"followers", "country", "product"} & set(me)


def test_recently_played_holds_only_the_newest_50() -> None:
    world = small_world()
    tracks = track_ids(world)
    first = START - timedelta(hours=3)
    for n in range(60):
        world.user("u1").add_play(tracks[n % 3], first + timedelta(minutes=3 * n, milliseconds=n))
    with StandIn(world) as small:
        sp = user_client(small, "u1")
        page = sp.current_user_recently_played(limit=50)
        assert len(page["items"]) == 50 and page["next"] is None
        played = [item["played_at"] for item in page["items"]]
        assert played == sorted(played, reverse=True)
        # The 10 oldest plays are gone: nothing before the window's oldest play.
        assert sp.current_user_recently_played(before=int(page["cursors"]["before"]))["items"] == []

        # Paging with absolute next links that point back at the stand-in.
        page = sp.current_user_recently_played(limit=20)
        assert page["next"].startswith(small.api_url)
        pages = all_pages(sp, page)
        assert [i["played_at"] for i in pages] == played
        assert page["cursors"] == {
            "after": str(_ms(page["items"][0]["played_at"])),
            "before": str(_ms(page["items"][-1]["played_at"])),
        }

        # `after` is exclusive.
        newest_ms = _ms(played[1])
        assert [
            i["played_at"] for i in sp.current_user_recently_played(after=newest_ms)["items"]
        ] == [played[0]]
        assert played[0].endswith("Z") and len(played[0]) == len("2026-11-20T08:15:30.123Z")


def _ms(played_at: str) -> int:
    return int(datetime.fromisoformat(played_at.replace("Z", "+00:00")).timestamp() * 1000)


def test_history_follows_the_clock_and_plays_can_arrive_late() -> None:
    world = small_world()
    tracks = track_ids(world)
    user = world.user("u1")
    user.add_play(tracks[0], START - timedelta(minutes=30))
    late = user.add_play(
        tracks[1], START - timedelta(minutes=20), visible_at=START + timedelta(hours=2)
    )
    user.add_play(
        tracks[2], START + timedelta(minutes=10), context_uri=f"spotify:album:{spotify_id('al')}"
    )
    with StandIn(world) as small:
        sp = user_client(small, "u1")
        seen = sp.current_user_recently_played()["items"]
        assert [i["track"]["id"] for i in seen] == [tracks[0]]
        assert seen[0]["context"] is None

        # Access tokens expire by the stand-in's clock; spotipy judges by the wall clock,
        # so each simulated poll uses a fresh client, as each extraction run does.
        small.advance(timedelta(minutes=15))
        sp = user_client(small, "u1")
        newest = sp.current_user_recently_played()["items"]
        assert [i["track"]["id"] for i in newest] == [tracks[2], tracks[0]]
        assert newest[0]["context"]["type"] == "album"
        after_newest = _ms(newest[0]["played_at"])
        assert sp.current_user_recently_played(after=after_newest)["items"] == []

        # Two hours on, the late play shows up, older than a play already seen.
        small.set_now(START + timedelta(hours=2))
        items = user_client(small, "u1").current_user_recently_played()["items"]
        assert [i["track"]["id"] for i in items] == [tracks[2], tracks[1], tracks[0]]
        assert _ms(items[1]["played_at"]) < after_newest
        assert items[1]["played_at"] == late.played_at.isoformat(timespec="milliseconds")[:-6] + "Z"


def test_top_items_rank_by_day_with_paging(standin: StandIn) -> None:
    sp = user_client(standin)
    today = sp.current_user_top_artists(limit=50, time_range="short_term")
    # Some artists only: the others are known from tracks alone (genre enrichment's work).
    assert today["total"] == TOP_ARTISTS < len(standin.world.artists)
    assert all(isinstance(artist["genres"], list) for artist in today["items"])
    first_page = sp.current_user_top_tracks(limit=20, time_range="medium_term")
    tracks_today = all_pages(sp, first_page)
    assert len(tracks_today) == first_page["total"] > 20

    standin.advance(timedelta(days=1))
    sp = user_client(standin)
    tomorrow = sp.current_user_top_artists(limit=50, time_range="short_term")
    assert [a["id"] for a in tomorrow["items"]] != [a["id"] for a in today["items"]]
    default_range = sp.current_user_top_tracks(limit=50)  # medium_term, as Spotify defaults
    assert [t["id"] for t in default_range["items"]] != [t["id"] for t in tracks_today]


def test_saved_tracks_newest_first_and_growing_with_the_clock(standin: StandIn) -> None:
    sp = user_client(standin)
    saved = all_pages(sp, sp.current_user_saved_tracks(limit=50))
    added = [item["added_at"] for item in saved]
    assert added == sorted(added, reverse=True)
    assert added[0] == "2026-11-19T10:00:00Z"  # the demo saves one track a day at 10:00

    standin.advance(timedelta(days=1))
    later = user_client(standin).current_user_saved_tracks(limit=50)
    assert later["total"] == len(saved) + 1
    assert later["items"][0]["added_at"] == "2026-11-20T10:00:00Z"


# --- playlists ----------------------------------------------------------------------------------


def test_my_playlists_mark_followed_ones_collaborative(standin: StandIn) -> None:
    sp = user_client(standin)
    listed = {p["name"]: p for p in all_pages(sp, sp.current_user_playlists(limit=2))}
    assert len(listed) == 6
    own = listed["Everything, Ever — “Long” Mix"]
    assert own["collaborative"] is False and own["owner"]["id"] == DEMO_USER
    assert own["items"] == {"href": f"{standin.api_url}playlists/{own['id']}/items", "total": 120}
    assert own["tracks"]["total"] == 120  # the deprecated ref is still sent
    # Followed, not owned, not a collaborator: still listed as collaborative (2026 quirk).
    private = listed['Łukasz\'s "Private" Picks']
    assert private["collaborative"] is True and private["owner"]["id"] == FRIEND_USER
    assert listed["Today's Top Hits"]["id"].startswith("37i9dQ")

    with pytest.raises(spotipy.SpotifyException) as forbidden:
        sp.playlist_items(private["id"])
    assert forbidden.value.http_status == 403
    metadata = sp.playlist(private["id"])
    assert metadata["name"] == private["name"] and "items" not in metadata


def test_playlist_items_page_by_50_with_absolute_next_links(standin: StandIn) -> None:
    sp = user_client(standin)
    playlist_id = standin.world.user(DEMO_USER).playlist_ids[0]
    first = sp.playlist_items(playlist_id, limit=50, additional_types=("track", "episode"))
    assert first["total"] == 120 and len(first["items"]) == 50
    next_url = urlsplit(first["next"])
    assert first["next"].startswith(standin.api_url + f"playlists/{playlist_id}/items?")
    assert parse_qs(next_url.query) == {
        "additional_types": ["track,episode"],
        "offset": ["50"],
        "limit": ["50"],
    }
    items = all_pages(sp, first)
    assert len(items) == 120
    calls = [r for r in standin.requests if r.path.endswith("/items")]
    assert [r.query.get("offset", "0") for r in calls] == ["0", "50", "100"]
    assert all(r.query["additional_types"] == "track,episode" for r in calls)

    # The embedded first page of GET /playlists/{id} links on to /items as well.
    full = sp.playlist(playlist_id)
    assert len(full["items"]["items"]) == 50 and full["items"]["next"].startswith(standin.api_url)
    assert full["snapshot_id"] == first_snapshot(standin, playlist_id)


def first_snapshot(standin: StandIn, playlist_id: str) -> str:
    return standin.world.playlist(playlist_id).snapshot_id_at(standin.now)


def test_playlist_access_rules(standin: StandIn) -> None:
    token = token_for(standin)
    ids = standin.world.user(DEMO_USER).playlist_ids
    kitchen, private = ids[3], ids[4]
    # A collaborator reads a playlist they do not own.
    shared = get(standin, f"playlists/{kitchen}/items", token).json()
    assert [i["added_by"]["id"] for i in shared["items"]] == [FRIEND_USER, DEMO_USER, FRIEND_USER]
    assert "items" in get(standin, f"playlists/{kitchen}", token).json()
    # Neither owner nor collaborator: metadata without items; items refused.
    assert "items" not in get(standin, f"playlists/{private}", token).json()
    assert get(standin, f"playlists/{private}/items", token).status_code == 403
    # Its owner reads it.
    assert get(standin, f"playlists/{private}/items", token_for(standin, FRIEND_USER)).ok
    # Editorial and unknown playlists do not exist for a Development-Mode app.
    for missing in (EDITORIAL_PLAYLIST, spotify_id("no such playlist")):
        assert get(standin, f"playlists/{missing}", token).status_code == 404
        assert get(standin, f"playlists/{missing}/items", token).status_code == 404


def test_episodes_are_null_unless_asked_for(standin: StandIn) -> None:
    token = token_for(standin)
    podcasts = standin.world.user(DEMO_USER).playlist_ids[2]
    plain = get(standin, f"playlists/{podcasts}/items", token).json()["items"]
    asked = get(
        standin, f"playlists/{podcasts}/items?additional_types=track,episode", token
    ).json()["items"]
    assert [i["item"] and i["item"]["type"] for i in plain] == [None, "track", None, "track", None]
    assert [i["item"]["type"] for i in asked] == ["episode", "track", "episode", "track", "episode"]
    assert all(i["track"] == i["item"] for i in asked)  # the deprecated key mirrors `item`
    assert asked[0]["item"]["show"]["publisher"] == "Ünïcode Media"


def test_tests_can_change_a_playlist_and_add_plays_between_calls(standin: StandIn) -> None:
    sp = user_client(standin)
    world = standin.world
    playlist = world.playlist(world.user(DEMO_USER).playlist_ids[1])
    before = sp.playlist(playlist.id)["snapshot_id"]
    track = next(iter(world.tracks))
    playlist.set_items([PlaylistEntry(track, START, DEMO_USER), PlaylistEntry(None, None, None)])
    changed = sp.playlist_items(playlist.id)
    assert [i["item"] and i["item"]["id"] for i in changed["items"]] == [track, None]
    assert changed["items"][1]["added_at"] is None
    assert sp.playlist(playlist.id)["snapshot_id"] != before

    world.user(DEMO_USER).add_play(track, START - timedelta(seconds=1))
    newest = sp.current_user_recently_played(limit=1)["items"][0]
    assert newest["track"]["id"] == track


def test_start_stop_without_a_context_manager() -> None:
    standin = StandIn(small_world(), client_id="cid", client_secret="secret")
    with pytest.raises(RuntimeError):
        _ = standin.api_url
    assert standin.start() is standin
    assert standin.api_url.startswith("http://127.0.0.1:") and standin.api_url.endswith("/v1/")
    assert standin.now == START
    assert user_client(standin, "u2").me()["display_name"] == "User Two"
    accounts_url = standin.accounts_url
    standin.stop()
    standin.stop()  # idempotent
    with pytest.raises(requests.ConnectionError):
        requests.get(accounts_url, timeout=2)


def test_an_inconsistent_world_answers_500_with_the_reason() -> None:
    world = small_world()
    world.user("u1").add_play(spotify_id("t0"), START - timedelta(minutes=5))
    world.artists.clear()  # the played track now credits an artist the world lacks
    with StandIn(world) as broken:
        answer = requests.get(
            broken.api_url + "me/player/recently-played",
            headers={"Authorization": f"Bearer {token_for(broken, 'u1')}"},
            timeout=5,
        )
        assert answer.status_code == 500
        assert "KeyError" in error_message(answer)
        assert broken.requests[-1].status == 500


def test_concurrent_requests_while_the_world_changes(standin: StandIn) -> None:
    token = token_for(standin)
    user = standin.world.user(DEMO_USER)
    track = next(iter(standin.world.tracks))
    failures: list[int] = []

    def poll() -> None:
        for _ in range(10):
            answer = requests.get(
                standin.api_url + "me/player/recently-played?limit=50",
                headers={"Authorization": f"Bearer {token}"},
                timeout=5,
            )
            if answer.status_code != 200 or len(answer.json()["items"]) != 50:
                failures.append(answer.status_code)

    threads = [threading.Thread(target=poll) for _ in range(4)]
    for thread in threads:
        thread.start()
    for n in range(50):
        user.add_play(track, START - timedelta(days=3, seconds=n))
    for thread in threads:
        thread.join()
    assert failures == []
    assert len([r for r in standin.requests if r.path.endswith("recently-played")]) == 40


# --- every answer against the OpenAPI document ----------------------------------------------


def test_every_demo_answer_matches_the_openapi_document(standin: StandIn) -> None:
    """Walk every endpoint and page the demo user can reach; `get` validates each answer."""
    token = token_for(standin)
    app_token = token_for(standin, None)
    paths = [
        "me",
        "me/player/recently-played?limit=50",
        "me/top/artists?time_range=long_term&limit=50",
        "me/top/tracks?time_range=short_term&limit=50",
    ]
    for playlist_id in standin.world.user(DEMO_USER).playlist_ids:
        paths += [f"playlists/{playlist_id}", f"playlists/{playlist_id}/items"]
        paths.append(f"playlists/{playlist_id}/items?additional_types=track,episode&limit=50")
    seen = 0
    for path in paths:
        answer = get(standin, path, token)
        seen += 1
        while answer.ok and answer.json().get("next"):
            answer = get(standin, answer.json()["next"], token)
            seen += 1
    for path in ("me/playlists?limit=50", "me/tracks?limit=50"):
        assert get(standin, path, token).ok
    for kind in ("tracks", "albums", "artists"):
        for id_ in getattr(standin.world, kind):
            assert get(standin, f"{kind}/{id_}", app_token).ok
    assert seen > len(paths)


def test_the_openapi_check_rejects_what_the_document_forbids() -> None:
    page = {"href": "h", "items": [], "limit": 20, "next": None, "offset": 0, "previous": None}
    validate_response("GET", "/v1/me/tracks", 200, {**page, "total": 0})
    with pytest.raises(AssertionError, match="total"):
        validate_response("GET", "/v1/me/tracks", 200, page)
    wrong_type = {**page, "total": 1, "items": [{"added_at": "x", "track": {"duration_ms": "3m"}}]}
    with pytest.raises(AssertionError):
        validate_response("GET", "/v1/me/tracks", 200, wrong_type)
    with pytest.raises(AssertionError, match="message"):
        validate_response("GET", "/v1/me", 401, {"error": {"status": 401}})


# --- the demo world -------------------------------------------------------------------------


def test_demo_world_is_deterministic() -> None:
    one, two = demo_world(START), demo_world(START)
    assert one.tracks == two.tracks and one.artists == two.artists
    assert one.user(DEMO_USER).plays == two.user(DEMO_USER).plays
    assert one.user(DEMO_USER).rankings == two.user(DEMO_USER).rankings
    assert len(one.tracks) < 100
    with pytest.raises(ValueError):
        demo_world(datetime(2026, 11, 20))


def test_demo_library_holds_every_odd_case(standin: StandIn) -> None:
    sp = user_client(standin)
    everything_id = standin.world.user(DEMO_USER).playlist_ids[0]
    items = all_pages(sp, sp.playlist_items(everything_id, additional_types=("track", "episode")))
    assert len(items) > 100

    # Old items without added_at/added_by; an unavailable (null) item keeping its slot.
    assert items[0]["added_at"] is None and items[0]["added_by"] is None
    assert items[2]["item"] is None and items[2]["track"] is None
    # A local file: is_local, null ids on the track, its album and its artists.
    local = items[3]
    assert local["is_local"] is True
    assert local["item"]["id"] is None and local["item"]["uri"] is None
    assert local["item"]["album"]["id"] is None and local["item"]["artists"][0]["id"] is None
    assert local["item"]["name"] == "Garage Demo (take 3)"
    # The same track more than once in one playlist.
    ids = [i["item"]["id"] for i in items if i["item"] and i["item"]["id"]]
    assert len(ids) > len(set(ids))

    tracks = [i["item"] for i in items if i["item"] and i["item"]["id"]]
    assert {t["album"]["release_date_precision"] for t in tracks} == {"year", "month", "day"}
    assert "1981" in {t["album"]["release_date"] for t in tracks}
    assert "1981-12" in {t["album"]["release_date"] for t in tracks}
    several = [t for t in tracks if len(t["artists"]) > 1]
    assert several and all("genres" not in a for t in several for a in t["artists"])
    frozen = next(t for t in tracks if t["name"] == "Frozen Rivers")
    assert [a["name"] for a in frozen["artists"]] == ["Björk", "Sigur Rós", "坂本龍一"]
    names = {t["name"] for t in tracks} | {a["name"] for t in tracks for a in t["artists"]}
    assert 'Say "Hello", Again' in names and "Earth, Wind & Fire" in names
    assert not {"popularity", "available_markets"} & {k for t in tracks for k in t}

    genres = {a["name"]: a["genres"] for a in (sp.artist(i) for i in standin.world.artists)}
    assert genres['The "Quoted" Band'] == [] and genres["Björk"]
    assert all("followers" not in sp.artist(i) for i in list(standin.world.artists)[:2])


def test_demo_history_has_daytime_evening_and_late_plays(standin: StandIn) -> None:
    plays = standin.world.user(DEMO_USER).plays
    assert min(p.played_at for p in plays) < START - timedelta(days=1)
    assert max(p.played_at for p in plays) > START + timedelta(days=7)
    assert any(p.played_at.hour >= 22 for p in plays)
    assert any(p.visible_at > p.played_at for p in plays)
    one_hour = [
        p for p in plays if START + timedelta(hours=12) <= p.played_at < START + timedelta(hours=13)
    ]
    assert len(one_hour) >= 2 and len({p.item for p in one_hour}) >= 2
    assert len({p.played_at for p in plays}) == len(plays)

    standin.set_now(START + timedelta(days=1, hours=13))
    history = user_client(standin).current_user_recently_played(limit=50)["items"]
    assert len(history) == 50
    assert {i["context"]["type"] for i in history if i["context"]} <= {"playlist", "album"}
    assert any(i["context"] is None for i in history)


def test_demo_weekly_playlist_changes_on_day_two(standin: StandIn) -> None:
    sp = user_client(standin)
    weekly = standin.world.user(DEMO_USER).playlist_ids[1]
    day1 = [i["item"]["id"] for i in sp.playlist_items(weekly)["items"]]
    snapshot1 = sp.playlist(weekly)["snapshot_id"]
    standin.set_now(START + timedelta(days=2))
    sp = user_client(standin)
    day2_items = sp.playlist_items(weekly)["items"]
    day2 = [i["item"]["id"] for i in day2_items]
    assert sp.playlist(weekly)["snapshot_id"] != snapshot1
    assert set(day1) - set(day2)  # removed
    assert set(day2) - set(day1)  # added
    kept = [t for t in day2 if t in day1]
    assert kept != [t for t in day1 if t in day2]  # moved
    added_at = {i["item"]["id"]: i["added_at"] for i in day2_items}
    assert {added_at[t] for t in set(day2) - set(day1)} == {"2026-11-21T12:00:00Z"}
