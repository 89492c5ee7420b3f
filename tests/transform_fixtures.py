"""Raw envelopes for the transform tests, built by hand from Spotify's response shapes
(spotify/fixed-spotify-open-api.yml: PlayHistoryObject, PagingPlaylistTrackObject,
SimplifiedPlaylistObject, TrackObject, EpisodeObject, SimplifiedAlbumObject, ArtistObject,
SavedTrackObject), with the odd cases the contract lists.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import urllib.parse
from datetime import datetime
from typing import Any

from chalicelib import layout
from chalicelib.storage import Storage

API = "https://api.spotify.com/v1/"
Json = dict[str, Any]


# --- objects ------------------------------------------------------------------------------


def artist(artist_id: str, name: str, genres: list[str] | None = None) -> Json:
    """A SimplifiedArtistObject; with `genres` a full ArtistObject (no popularity/followers:
    Spotify stopped sending them)."""
    obj: Json = {
        "external_urls": {"spotify": f"https://open.spotify.com/artist/{artist_id}"},
        "href": f"{API}artists/{artist_id}",
        "id": artist_id,
        "name": name,
        "type": "artist",
        "uri": f"spotify:artist:{artist_id}",
    }
    if genres is not None:
        obj |= {"genres": genres, "images": []}
    return obj


def album(
    album_id: str,
    name: str,
    release_date: str = "2020-05-01",
    precision: str = "day",
    artists: list[Json] | None = None,
    total_tracks: int = 10,
) -> Json:
    """A SimplifiedAlbumObject as embedded in a track."""
    return {
        "album_type": "album",
        "total_tracks": total_tracks,
        "external_urls": {"spotify": f"https://open.spotify.com/album/{album_id}"},
        "href": f"{API}albums/{album_id}",
        "id": album_id,
        "images": [],
        "name": name,
        "release_date": release_date,
        "release_date_precision": precision,
        "type": "album",
        "uri": f"spotify:album:{album_id}",
        "artists": artists or [],
    }


def track(
    track_id: str,
    name: str,
    album_obj: Json,
    artists: list[Json],
    duration_ms: int = 200_000,
    *,
    explicit: bool = False,
    isrc: str | None = "USRC17607839",
    track_number: int = 1,
) -> Json:
    """A TrackObject as 2026 sends it (no popularity, no available_markets)."""
    obj: Json = {
        "album": album_obj,
        "artists": artists,
        "disc_number": 1,
        "duration_ms": duration_ms,
        "explicit": explicit,
        "external_urls": {"spotify": f"https://open.spotify.com/track/{track_id}"},
        "href": f"{API}tracks/{track_id}",
        "id": track_id,
        "is_playable": True,
        "name": name,
        "preview_url": None,
        "track_number": track_number,
        "type": "track",
        "uri": f"spotify:track:{track_id}",
        "is_local": False,
    }
    if isrc is not None:
        obj["external_ids"] = {"isrc": isrc}
    return obj


def local_track(name: str, duration_ms: int = 180_000) -> Json:
    """A local file: null ids everywhere, `is_local: true`."""
    return {
        "album": {"album_type": None, "id": None, "name": "", "artists": [], "type": "album"},
        "artists": [{"id": None, "name": "Home Recording", "type": "artist", "uri": None}],
        "disc_number": 0,
        "duration_ms": duration_ms,
        "explicit": False,
        "external_ids": {},
        "id": None,
        "is_local": True,
        "name": name,
        "track_number": 0,
        "type": "track",
        "uri": f"spotify:local:Home+Recording::{urllib.parse.quote_plus(name)}:180",
    }


def episode(episode_id: str, name: str) -> Json:
    """An EpisodeObject (podcast episode in a playlist)."""
    return {
        "audio_preview_url": None,
        "description": "An episode.",
        "duration_ms": 1_800_000,
        "explicit": False,
        "external_urls": {"spotify": f"https://open.spotify.com/episode/{episode_id}"},
        "href": f"{API}episodes/{episode_id}",
        "id": episode_id,
        "is_playable": True,
        "name": name,
        "release_date": "2026-01-02",
        "release_date_precision": "day",
        "type": "episode",
        "uri": f"spotify:episode:{episode_id}",
        "show": {"id": "show1", "name": "A Show", "type": "show"},
    }


def play(track_obj: Json | None, played_at: str, context: Json | None = None) -> Json:
    """A PlayHistoryObject."""
    return {"track": track_obj, "played_at": played_at, "context": context}


def playlist_context(playlist_id: str) -> Json:
    return {
        "type": "playlist",
        "uri": f"spotify:playlist:{playlist_id}",
        "href": f"{API}playlists/{playlist_id}",
        "external_urls": {"spotify": f"https://open.spotify.com/playlist/{playlist_id}"},
    }


def playlist_item(
    obj: Json | None,
    added_at: str | None = "2026-01-05T10:00:00Z",
    added_by: str | None = "alice",
    *,
    deprecated_key: bool = False,
) -> Json:
    """A PlaylistTrackObject: the object under `item` (or only the deprecated `track`)."""
    entry: Json = {
        "added_at": added_at,
        "added_by": None if added_by is None else {"id": added_by, "type": "user"},
        "is_local": bool(obj and obj.get("is_local")),
    }
    if deprecated_key:
        entry["track"] = obj
    else:
        entry["item"] = obj
        entry["track"] = obj  # still sent alongside, deprecated
    return entry


def simplified_playlist(
    playlist_id: str,
    name: str,
    owner: str,
    total: int,
    snapshot_id: str = "snap-1",
    *,
    collaborative: bool = False,
    public: bool | None = True,
    deprecated_ref: bool = False,
) -> Json:
    """A SimplifiedPlaylistObject with its `items` ref (or only the deprecated `tracks` ref)."""
    ref = {"href": f"{API}playlists/{playlist_id}/items", "total": total}
    obj: Json = {
        "collaborative": collaborative,
        "description": "",
        "href": f"{API}playlists/{playlist_id}",
        "id": playlist_id,
        "images": [],
        "name": name,
        "owner": {"id": owner, "type": "user", "display_name": owner},
        "public": public,
        "snapshot_id": snapshot_id,
        "type": "playlist",
        "uri": f"spotify:playlist:{playlist_id}",
    }
    if deprecated_ref:
        obj["tracks"] = ref
    else:
        obj["items"] = ref
    return obj


def saved(track_obj: Json, added_at: str) -> Json:
    """A SavedTrackObject."""
    return {"added_at": added_at, "track": track_obj}


# --- answers and envelopes ----------------------------------------------------------------


def page(
    path: str,
    items: list[Any],
    *,
    offset: int = 0,
    limit: int = 50,
    total: int | None = None,
    with_offset: bool = True,
) -> Json:
    """A paging object as Spotify answers `path` at `offset`."""
    total = len(items) + offset if total is None else total
    url = f"{API}{path}"
    sep = "&" if "?" in url else "?"
    body: Json = {
        "href": f"{url}{sep}offset={offset}&limit={limit}",
        "items": items,
        "limit": limit,
        "next": f"{url}{sep}offset={offset + limit}&limit={limit}"
        if offset + limit < total
        else None,
        "previous": None
        if offset == 0
        else f"{url}{sep}offset={max(0, offset - limit)}&limit={limit}",
        "total": total,
    }
    if with_offset:
        body["offset"] = offset
    return body


def answer(path: str, body: Any, status: int = 200, **query: Any) -> Json:
    """One recorded response; `query` becomes the request URL's query string."""
    url = f"{API}{path}"
    if query:
        url += "?" + urllib.parse.urlencode(query)
    return {"request": {"method": "GET", "url": url}, "status": status, "body": body}


def error(path: str, status: int, message: str, **query: Any) -> Json:
    return answer(path, {"error": {"status": status, "message": message}}, status, **query)


def envelope(
    dataset: str,
    user_id: str,
    run_at: str,
    responses: list[Json],
    *,
    run_id: str | None = None,
    **extras: Any,
) -> Json:
    """A raw envelope (contract §3) with design.md's dataset extras in `meta`."""
    moment = layout.parse_iso(run_at)
    digest = hashlib.sha256(json.dumps(responses, sort_keys=True).encode()).hexdigest()
    meta = {
        "user_id": user_id,
        "dataset": dataset,
        # Like layout.new_run_id, but reproducible: the suffix comes from the answers.
        "run_id": run_id or layout.utc(moment).strftime("%Y%m%dT%H%M%SZ") + "-" + digest[:6],
        "run_at": layout.iso(moment),
        "fetched_at": layout.iso(moment),
        **extras,
    }
    return {"meta": meta, "responses": responses}


def export_envelope(
    import_at: str,
    file_name: str,
    rows: list[Any],
    *,
    user_id: str = "alice",
    import_id: str = "imp0001",
    format_: str = "extended",
) -> Json:
    """A history export file as `spotify-etl import-history` lands it (contract §8)."""
    stem = file_name.rsplit("/", 1)[-1].removesuffix(".json")
    return envelope(
        "history_export",
        user_id,
        import_at,
        [answer(f"export:{file_name}", rows)],
        run_id=f"{import_id}-{stem}",
        import_id=import_id,
        file_name=file_name,
        format=format_,
    )


def extended_row(ts: str, track_id: str | None, ms_played: int = 200_000, **fields: Any) -> Json:
    """One row of extended streaming history, every field Spotify sends (network ones dropped)."""
    return {
        "ts": ts,
        "platform": "android",
        "ms_played": ms_played,
        "conn_country": "SE",
        "master_metadata_track_name": fields.pop("track_name", f"Track {track_id}"),
        "master_metadata_album_artist_name": fields.pop("artist_name", "Some Artist"),
        "master_metadata_album_album_name": fields.pop("album_name", "Some Album"),
        "spotify_track_uri": f"spotify:track:{track_id}" if track_id else None,
        "episode_name": None,
        "episode_show_name": None,
        "spotify_episode_uri": None,
        "audiobook_title": None,
        "audiobook_uri": None,
        "audiobook_chapter_uri": None,
        "audiobook_chapter_title": None,
        "reason_start": "trackdone",
        "reason_end": "trackdone",
        "shuffle": False,
        "skipped": False,
        "offline": False,
        "offline_timestamp": None,
        "incognito_mode": False,
        **fields,
    }


def raw_key_of(env: Json) -> str:
    meta = env["meta"]
    return layout.raw_key(
        meta["dataset"], layout.parse_iso(meta["run_at"]), meta["user_id"], meta["run_id"]
    )


def gz(env: Any) -> bytes:
    return gzip.compress(json.dumps(env).encode(), mtime=0)


def put_raw(storage: Storage, env: Json) -> str:
    """Land `env` in the lake as extraction would (write-once); returns its key."""
    key = raw_key_of(env)
    storage.put(key, gz(env), if_none_match=True, content_type="application/gzip")
    return key


# --- a small world with every odd case --------------------------------------------------

ALICE = "alice"
A1 = artist("ar1", "Ada")
A2 = artist("ar2", "Bo")
A3 = artist("ar3", "Cy")
ALB1 = album("al1", "First", "1981", "year", [A1])
ALB2 = album("al2", "Second", "1999-12", "month", [A2])
ALB3 = album("al3", "Third", "2024-03-15", "day", [A3])
T1 = track("t1", "One", ALB1, [A1], 180_000, track_number=1)
T2 = track("t2", "Two", ALB2, [A2, A1, A3], 240_000, explicit=True, track_number=2)  # 3 credits
T3 = track("t3", "Three", ALB3, [A3], 60_000, isrc=None)  # no external_ids at all
LOCAL = local_track("demo take.mp3")
EP = episode("ep1", "Episode One")


def plays_envelope(run_at: str, plays: list[Json], user_id: str = ALICE, **extras: Any) -> Json:
    body = {
        "items": plays,
        "next": None,
        "cursors": {"after": "1", "before": "0"},
        "limit": 50,
        "href": f"{API}me/player/recently-played?limit=50",
    }
    return envelope(
        "plays", user_id, run_at, [answer("me/player/recently-played", body, limit=50)], **extras
    )


def playlists_envelope(
    run_at: str,
    playlists: list[Json],
    item_answers: list[Json],
    user_id: str = ALICE,
    **extras: Any,
) -> Json:
    listing = answer("me/playlists", page("me/playlists", playlists), limit=50)
    return envelope("playlists", user_id, run_at, [listing, *item_answers], **extras)


def items_answers(playlist_id: str, entries: list[Json | None], page_size: int = 2) -> list[Json]:
    """The `/playlists/{id}/items` pages of `entries`; later pages omit `offset` in the body so
    the position comes from the request URL."""
    path = f"playlists/{playlist_id}/items"
    answers = []
    for offset in range(0, max(len(entries), 1), page_size):
        body = page(
            path,
            entries[offset : offset + page_size],
            offset=offset,
            limit=page_size,
            total=len(entries),
            with_offset=offset == 0,
        )
        answers.append(
            answer(path, body, offset=offset, limit=page_size, additional_types="track,episode")
        )
    return answers


def top_envelope(
    run_at: str, user_id: str = ALICE, tracks_short: list[Json] | None = None, **extras: Any
) -> Json:
    tracks_short = [T2, T1, T3] if tracks_short is None else tracks_short
    art = [artist("ar3", "Cy", ["indie", "folk"]), artist("ar1", "Ada", [])]
    responses = [
        answer(
            "me/top/tracks",
            page("me/top/tracks", tracks_short[:2], limit=2, total=len(tracks_short)),
            time_range="short_term",
            limit=2,
        ),
        answer(
            "me/top/tracks",
            page(
                "me/top/tracks",
                tracks_short[2:],
                offset=2,
                limit=2,
                total=len(tracks_short),
                with_offset=False,
            ),
            time_range="short_term",
            offset=2,
            limit=2,
        ),
        answer("me/top/artists", page("me/top/artists", art), time_range="long_term", limit=50),
        error("me/top/artists", 429, "rate limited", time_range="medium_term"),
    ]
    return envelope("top_items", user_id, run_at, responses, **extras)


def saved_envelope(
    run_at: str, saves: list[Json], known_until: str | None, user_id: str = ALICE
) -> Json:
    listing = answer("me/tracks", page("me/tracks", saves), limit=50)
    return envelope("saved_tracks", user_id, run_at, [listing], known_until=known_until)


def artists_envelope(run_at: str, user_id: str = ALICE) -> Json:
    return envelope(
        "artists",
        user_id,
        run_at,
        [
            answer("artists/ar2", artist("ar2", "Bo", ["jazz"])),
            answer("artists/ar1", artist("ar1", "Ada", [])),
            error("artists/gone", 404, "Resource not found"),
        ],
    )


def when(text: str) -> datetime:
    return layout.parse_iso(text)
