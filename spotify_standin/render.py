"""World objects → the JSON the 2026 Web API sends (pure functions).

`api` is the stand-in's API base (`http://127.0.0.1:PORT/v1/`): every `href` and `next` points
back at the stand-in, so clients follow them there. Fields Spotify no longer sends to
Development-Mode apps (`popularity`, `followers`, `label`, `available_markets`) are never sent.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

from spotify_standin.world import (
    Album,
    Artist,
    Episode,
    LocalFile,
    Playlist,
    PlaylistEntry,
    Track,
    User,
    World,
)

JSON = dict[str, Any]


def timestamp(moment: datetime) -> str:
    """`added_at` style: whole seconds, `Z`."""
    return played_at(moment)[:-5] + "Z"


def played_at(moment: datetime) -> str:
    """`played_at` style: milliseconds, `Z` (`2026-11-20T08:15:30.123Z`). The stand-in speaks
    Spotify's formats with its own code, never the product's."""
    utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _links(api: str, kind: str, id_: str) -> JSON:
    return {
        "external_urls": {"spotify": f"https://open.spotify.com/{kind}/{id_}"},
        "href": f"{api}{kind}s/{id_}",
        "id": id_,
        "type": kind,
        "uri": f"spotify:{kind}:{id_}",
    }


def _images(id_: str) -> list[JSON]:
    return [{"url": f"https://i.scdn.co/image/{id_}", "height": 640, "width": 640}]


def artist_simple(api: str, artist: Artist) -> JSON:
    return {**_links(api, "artist", artist.id), "name": artist.name}


def artist_full(api: str, artist: Artist) -> JSON:
    genres = list(artist.genres)
    return {**artist_simple(api, artist), "genres": genres, "images": _images(artist.id)}


def album_simple(api: str, world: World, album: Album) -> JSON:
    return {
        **_links(api, "album", album.id),
        "album_type": album.album_type,
        "total_tracks": album.total_tracks,
        "images": _images(album.id),
        "name": album.name,
        "release_date": album.release_date,
        "release_date_precision": album.release_date_precision,
        "artists": [artist_simple(api, world.artists[a]) for a in album.artist_ids],
    }


def album_full(api: str, world: World, album: Album) -> JSON:
    tracks = [t for t in world.tracks.values() if t.album_id == album.id]
    tracks.sort(key=lambda t: (t.disc_number, t.track_number))
    simplified = [_track_fields(api, world, t) for t in tracks]
    return {
        **album_simple(api, world, album),
        "tracks": page(f"{api}albums/{album.id}/tracks", simplified, 0, 50, len(simplified)),
        "copyrights": [],
        "external_ids": {},
        "genres": [],
    }


def _track_fields(api: str, world: World, track: Track) -> JSON:
    """The fields a simplified track and a full track share."""
    return {
        **_links(api, "track", track.id),
        "artists": [artist_simple(api, world.artists[a]) for a in track.artist_ids],
        "disc_number": track.disc_number,
        "duration_ms": track.duration_ms,
        "explicit": track.explicit,
        "is_local": False,
        "is_playable": True,
        "name": track.name,
        "preview_url": None,
        "track_number": track.track_number,
    }


def track_full(api: str, world: World, track: Track) -> JSON:
    return {
        **_track_fields(api, world, track),
        "album": album_simple(api, world, world.albums[track.album_id]),
        "external_ids": {"isrc": track.isrc} if track.isrc else {},
    }


def local_track(local: LocalFile) -> JSON:
    """A local file as Spotify sends it: a track with null ids, album and artists alike."""
    nothing = {"external_urls": {}, "href": None, "id": None, "uri": None}
    return {
        **nothing,
        "type": "track",
        "album": {
            **nothing,
            "type": "album",
            "album_type": None,
            "artists": [],
            "images": [],
            "name": local.album_name,
            "release_date": None,
            "release_date_precision": None,
            "total_tracks": 0,
        },
        "artists": [{**nothing, "type": "artist", "name": n} for n in local.artist_names],
        "disc_number": 0,
        "duration_ms": local.duration_ms,
        "explicit": False,
        "external_ids": {},
        "is_local": True,
        "name": local.name,
        "preview_url": None,
        "track_number": 0,
    }


def episode_full(api: str, world: World, episode: Episode) -> JSON:
    show = world.shows[episode.show_id]
    return {
        **_links(api, "episode", episode.id),
        "audio_preview_url": None,
        "description": episode.name,
        "html_description": f"<p>{episode.name}</p>",
        "duration_ms": episode.duration_ms,
        "explicit": False,
        "images": _images(episode.id),
        "is_externally_hosted": False,
        "is_playable": True,
        "languages": ["en"],
        "name": episode.name,
        "release_date": episode.release_date,
        "release_date_precision": "day",
        "show": {
            **_links(api, "show", show.id),
            "copyrights": [],
            "description": show.name,
            "html_description": f"<p>{show.name}</p>",
            "explicit": False,
            "images": _images(show.id),
            "is_externally_hosted": False,
            "languages": ["en"],
            "media_type": "audio",
            "name": show.name,
            "publisher": show.publisher,
            "total_episodes": sum(1 for e in world.episodes.values() if e.show_id == show.id),
        },
    }


def playable(api: str, world: World, item: str | None) -> JSON | None:
    """A track, episode or local file, or None when the item no longer exists."""
    thing = world.resolve(item)
    if isinstance(thing, Track):
        return track_full(api, world, thing)
    if isinstance(thing, Episode):
        return episode_full(api, world, thing)
    if isinstance(thing, LocalFile):
        return local_track(thing)
    return None


def user_ref(api: str, user_id: str, display_name: str | None = None) -> JSON:
    """A PlaylistUserObject (`added_by`), or the owner when `display_name` is given."""
    ref = _links(api, "user", user_id)
    if display_name is not None:
        ref["display_name"] = display_name
    return ref


def private_user(api: str, user: User) -> JSON:
    return {**user_ref(api, user.id, user.display_name), "images": []}


def playlist_entry(api: str, world: World, entry: PlaylistEntry, with_episodes: bool) -> JSON:
    """A PlaylistTrackObject: the object under `item`, repeated under the deprecated `track`."""
    thing = world.resolve(entry.item)
    # Without additional_types=episode, Spotify sent episodes as null.
    hidden = isinstance(thing, Episode) and not with_episodes
    obj = None if hidden else playable(api, world, entry.item)
    return {
        "added_at": timestamp(entry.added_at) if entry.added_at else None,
        "added_by": user_ref(api, entry.added_by) if entry.added_by else None,
        "is_local": isinstance(thing, LocalFile),
        "item": obj,
        "track": obj,
    }


def playlist_simple(api: str, world: World, playlist: Playlist, viewer: str, now: datetime) -> JSON:
    """A SimplifiedPlaylistObject as `/me/playlists` lists it for `viewer` ("" for an app)."""
    total = len(playlist.entries_at(now))
    owner = world.users.get(playlist.owner_id)
    owner_name = playlist.owner_name or (owner.display_name if owner else playlist.owner_id)
    ref = {"href": f"{api}playlists/{playlist.id}/items", "total": total}
    return {
        **_links(api, "playlist", playlist.id),
        # 2026 quirk: a followed playlist the viewer does not own is listed as collaborative.
        "collaborative": bool(playlist.collaborators)
        or bool(viewer and playlist.owner_id != viewer),
        "description": playlist.description,
        "images": [],
        "name": playlist.name,
        "owner": user_ref(api, playlist.owner_id, owner_name),
        "public": playlist.public,
        "snapshot_id": playlist.snapshot_id_at(now),
        "items": ref,
        "tracks": {**ref, "href": f"{api}playlists/{playlist.id}/tracks"},
    }


def page(href: str, items: list[Any], offset: int, limit: int, total: int) -> JSON:
    """A paging object whose `next`/`previous` are absolute URLs built from `href`."""

    def at(new_offset: int) -> str:
        return _with_query(href, offset=new_offset, limit=limit)

    return {
        "href": at(offset),
        "items": items,
        "limit": limit,
        "next": at(offset + limit) if offset + limit < total else None,
        "offset": offset,
        "previous": at(max(0, offset - limit)) if offset > 0 else None,
        "total": total,
    }


def _with_query(url: str, **params: Any) -> str:
    """`url` with `params` set in its query string (others, like additional_types, kept)."""
    base, _, query = url.partition("?")
    pairs = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k not in params]
    pairs += [(k, str(v)) for k, v in params.items()]
    return f"{base}?{urlencode(pairs)}"
