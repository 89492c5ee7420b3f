"""A loopback stand-in of the Spotify Web API as it behaves in 2026, and its demo world.

    world = demo_world(start=datetime(2026, 11, 20, tzinfo=UTC))
    with StandIn(world) as standin:
        standin.api_url, standin.accounts_url, standin.refresh_token("demo_listener")

Only the standard library is imported here, so starting the sample stays cheap.
"""

from spotify_standin.demo import DEMO_USER, EDITORIAL_PLAYLIST, FRIEND_USER, demo_world
from spotify_standin.http import Request
from spotify_standin.server import StandIn
from spotify_standin.world import (
    Album,
    Artist,
    Episode,
    LocalFile,
    Play,
    Playlist,
    PlaylistEntry,
    Show,
    Track,
    User,
    World,
    spotify_id,
)

__all__ = [
    "DEMO_USER",
    "EDITORIAL_PLAYLIST",
    "FRIEND_USER",
    "Album",
    "Artist",
    "Episode",
    "LocalFile",
    "Play",
    "Playlist",
    "PlaylistEntry",
    "Request",
    "Show",
    "StandIn",
    "Track",
    "User",
    "World",
    "demo_world",
    "spotify_id",
]
