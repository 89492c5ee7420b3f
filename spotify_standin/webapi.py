"""The Web API under `/v1/`, as it answers a Development-Mode app in 2026 (contract §1)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from spotify_standin import render
from spotify_standin.accounts import AccessToken
from spotify_standin.http import Answer, Call, api_error
from spotify_standin.world import TIME_RANGES, Playlist, World

MAX_LIMIT = 50
DEFAULT_LIMIT = 20

# Endpoints Spotify removed for Development-Mode apps (2024-11 and 2026-02 changelogs).
_REMOVED: tuple[tuple[str, str], ...] = (
    (r"^/v1/(tracks|artists|albums)/?$", "The batch endpoint was removed: request /{0}/{{id}}"),
    (r"^/v1/playlists/[^/]+/tracks$", "This endpoint was removed: use /playlists/{{id}}/items"),
    (r"^/v1/artists/[^/]+/(top-tracks|related-artists)$", "This endpoint was removed"),
    (r"^/v1/(browse|recommendations|audio-features|audio-analysis)(/.*)?$", "Endpoint removed"),
    (r"^/v1/users/[^/]+/playlists$", "Other users' playlists can no longer be read"),
)


class BadRequest(Exception):
    """A parameter the API refuses with 400."""


@dataclass(frozen=True)
class Context:
    """What a route handler needs: the call, its token, the clock and the world."""

    call: Call
    token: AccessToken
    now: datetime
    world: World
    api: str  # the stand-in's API base, for hrefs

    @property
    def user_id(self) -> str:
        assert self.token.user_id is not None  # routes that need a user are marked so
        return self.token.user_id


Handler = Callable[[Context, re.Match[str]], Answer]


def handle(call: Call, token: AccessToken, now: datetime, world: World, api: str) -> Answer:
    """Route an authenticated `/v1/` call."""
    for pattern, message in _REMOVED:
        removed = re.match(pattern, call.path)
        if removed:
            return api_error(403, message.format(*removed.groups()))
    for method, pattern, needs_user, handler in _ROUTES:
        match = re.match(pattern, call.path)
        if match is None:
            continue
        if call.method != method:
            return api_error(405, "Method not allowed")
        if needs_user and token.user_id is None:
            return api_error(403, "This endpoint needs a user's access token")
        try:
            return handler(Context(call, token, now, world, api), match)
        except BadRequest as error:
            return api_error(400, str(error))
    return api_error(404, "Service not found")


# --- parameters ---------------------------------------------------------------------------


def _int_param(call: Call, name: str, default: int, low: int, high: int) -> int:
    raw = call.query.get(name)
    if raw is None:
        return default
    if not re.fullmatch(r"\d+", raw) or not low <= int(raw) <= high:
        raise BadRequest(f"Invalid {name}: {raw!r} (allowed {low}..{high})")
    return int(raw)


def _paging(call: Call) -> tuple[int, int]:
    limit = _int_param(call, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    offset = _int_param(call, "offset", 0, 0, 100_000)
    return limit, offset


def _page(ctx: Context, items: list[Any], limit: int, offset: int) -> Answer:
    body = render.page(ctx.call.url, items[offset : offset + limit], offset, limit, len(items))
    return Answer(200, body)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


# --- routes -------------------------------------------------------------------------------


def _me(ctx: Context, _: re.Match[str]) -> Answer:
    return Answer(200, render.private_user(ctx.api, ctx.world.user(ctx.user_id)))


def _recently_played(ctx: Context, _: re.Match[str]) -> Answer:
    """The newest 50 visible plays, narrowed by `after`/`before` (Unix ms, exclusive)."""
    call = ctx.call
    limit = _int_param(call, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    if "after" in call.query and "before" in call.query:
        raise BadRequest("Only one of after and before may be given")
    after = _int_param(call, "after", -1, 0, 2**63)
    before = _int_param(call, "before", 2**63, 0, 2**63)
    history = ctx.world.user(ctx.user_id).history_at(ctx.now)
    matching = [p for p in history if after < _ms(p.played_at) < before]
    shown = matching[:limit]
    cursors = None
    next_url = None
    if shown:
        oldest = _ms(shown[-1].played_at)
        cursors = {"after": str(_ms(shown[0].played_at)), "before": str(oldest)}
        if len(matching) > limit:
            next_url = f"{ctx.api}me/player/recently-played?before={oldest}&limit={limit}"
    items = [
        {
            "track": render.playable(ctx.api, ctx.world, play.item),
            "played_at": render.played_at(play.played_at),
            "context": _context(ctx.api, play.context_uri),
        }
        for play in shown
    ]
    body = {"href": call.url, "items": items, "limit": limit, "next": next_url, "cursors": cursors}
    return Answer(200, body)


def _context(api: str, uri: str | None) -> dict[str, Any] | None:
    if uri is None:
        return None
    _, kind, id_ = uri.split(":", 2)
    return {
        "type": kind,
        "uri": uri,
        "href": f"{api}{kind}s/{id_}",
        "external_urls": {"spotify": f"https://open.spotify.com/{kind}/{id_}"},
    }


def _top(ctx: Context, match: re.Match[str]) -> Answer:
    item_type = match["type"]
    time_range = ctx.call.query.get("time_range", "medium_term")
    if time_range not in TIME_RANGES:
        raise BadRequest(f"Invalid time_range: {time_range!r}")
    limit, offset = _paging(ctx.call)
    ids = ctx.world.user(ctx.user_id).top_at(item_type, time_range, ctx.now)
    world = ctx.world
    if item_type == "artists":
        items = [render.artist_full(ctx.api, world.artists[i]) for i in ids]
    else:
        items = [render.track_full(ctx.api, world, world.tracks[i]) for i in ids]
    return _page(ctx, items, limit, offset)


def _my_playlists(ctx: Context, _: re.Match[str]) -> Answer:
    limit, offset = _paging(ctx.call)
    world = ctx.world
    items = [
        render.playlist_simple(ctx.api, world, world.playlist(pid), ctx.user_id, ctx.now)
        for pid in world.user(ctx.user_id).playlist_ids
    ]
    return _page(ctx, items, limit, offset)


def _saved_tracks(ctx: Context, _: re.Match[str]) -> Answer:
    limit, offset = _paging(ctx.call)
    world = ctx.world
    items = [
        {"added_at": render.timestamp(s.added_at), "track": render.track_full(ctx.api, world, t)}
        for s in world.user(ctx.user_id).saves_at(ctx.now)
        if (t := world.tracks.get(s.track_id)) is not None
    ]
    return _page(ctx, items, limit, offset)


def _find_playlist(ctx: Context, playlist_id: str) -> Playlist | Answer:
    playlist = ctx.world.playlists.get(playlist_id)
    if playlist is None or playlist.is_editorial:
        # Spotify's own editorial/algorithmic playlists are invisible to Development-Mode apps.
        return api_error(404, "Resource not found")
    return playlist


def _with_episodes(call: Call) -> bool:
    return "episode" in call.query.get("additional_types", "").split(",")


def _playlist(ctx: Context, match: re.Match[str]) -> Answer:
    playlist = _find_playlist(ctx, match["id"])
    if isinstance(playlist, Answer):
        return playlist
    viewer = ctx.token.user_id or ""
    body = render.playlist_simple(ctx.api, ctx.world, playlist, viewer, ctx.now)
    body.pop("items")
    body.pop("tracks")
    if playlist.readable_by(viewer):
        entries = playlist.entries_at(ctx.now)
        with_episodes = _with_episodes(ctx.call)
        items = [render.playlist_entry(ctx.api, ctx.world, e, with_episodes) for e in entries]
        href = f"{ctx.api}playlists/{playlist.id}/items"
        if "additional_types" in ctx.call.query:
            href += f"?additional_types={ctx.call.query['additional_types']}"
        first = render.page(href, items[:MAX_LIMIT], 0, MAX_LIMIT, len(items))
        body["items"] = first
        body["tracks"] = first
    return Answer(200, body)


def _playlist_items(ctx: Context, match: re.Match[str]) -> Answer:
    playlist = _find_playlist(ctx, match["id"])
    if isinstance(playlist, Answer):
        return playlist
    limit, offset = _paging(ctx.call)
    if not playlist.readable_by(ctx.user_id):
        return api_error(403, "Forbidden: only the owner or a collaborator can read the items")
    with_episodes = _with_episodes(ctx.call)
    entries = playlist.entries_at(ctx.now)
    items = [render.playlist_entry(ctx.api, ctx.world, e, with_episodes) for e in entries]
    return _page(ctx, items, limit, offset)


def _catalogue(kind: str) -> Handler:
    def handler(ctx: Context, match: re.Match[str]) -> Answer:
        world, api, id_ = ctx.world, ctx.api, match["id"]
        if kind == "artists" and id_ in world.artists:
            return Answer(200, render.artist_full(api, world.artists[id_]))
        if kind == "albums" and id_ in world.albums:
            return Answer(200, render.album_full(api, world, world.albums[id_]))
        if kind == "tracks" and id_ in world.tracks:
            return Answer(200, render.track_full(api, world, world.tracks[id_]))
        if not re.fullmatch(r"[0-9A-Za-z]{22}", id_):
            return api_error(400, "Invalid base62 id")
        return api_error(404, "Resource not found")

    return handler


_ID = r"(?P<id>[^/]+)"
# (method, path pattern, needs a user token, handler)
_ROUTES: tuple[tuple[str, str, bool, Handler], ...] = (
    ("GET", r"^/v1/me/?$", True, _me),
    ("GET", r"^/v1/me/player/recently-played/?$", True, _recently_played),
    ("GET", r"^/v1/me/top/(?P<type>artists|tracks)/?$", True, _top),
    ("GET", r"^/v1/me/playlists/?$", True, _my_playlists),
    ("GET", r"^/v1/me/tracks/?$", True, _saved_tracks),
    ("GET", rf"^/v1/playlists/{_ID}/?$", False, _playlist),
    # Contents need a user: Client Credentials cannot read any playlist's items.
    ("GET", rf"^/v1/playlists/{_ID}/items/?$", True, _playlist_items),
    ("GET", rf"^/v1/artists/{_ID}/?$", False, _catalogue("artists")),
    ("GET", rf"^/v1/albums/{_ID}/?$", False, _catalogue("albums")),
    ("GET", rf"^/v1/tracks/{_ID}/?$", False, _catalogue("tracks")),
)
