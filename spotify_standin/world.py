"""The stand-in's world: a small catalogue, users and their timelines, as plain dataclasses.

Nothing here speaks HTTP or JSON. Everything that changes over time (plays, playlist contents,
top rankings, saves) carries the moment it takes effect, and the `*_at(now)` queries answer
what the API shows at a given moment of the stand-in's clock. Tests build small worlds from
these classes directly, or mutate the demo world between calls.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime

TIME_RANGES = ("short_term", "medium_term", "long_term")
TOP_TYPES = ("artists", "tracks")
EDITORIAL_PREFIX = "37i9dQ"
# Revisions "from the beginning of time": a playlist's contents before any timeline change.
DAWN = datetime(1970, 1, 1, tzinfo=UTC)

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def spotify_id(seed: str) -> str:
    """A deterministic 22-character base62 id, shaped like Spotify's, derived from `seed`."""
    number = int.from_bytes(hashlib.sha256(seed.encode()).digest(), "big")
    chars = []
    for _ in range(22):
        number, digit = divmod(number, 62)
        chars.append(_BASE62[digit])
    return "".join(chars)


@dataclass(frozen=True)
class Artist:
    id: str
    name: str
    # Spotify still sends genres on full artists; an empty tuple means "not classified".
    genres: tuple[str, ...] = ()


@dataclass(frozen=True)
class Album:
    id: str
    name: str
    artist_ids: tuple[str, ...]
    release_date: str  # as Spotify gives it: "1981", "1981-12" or "1981-12-04"
    album_type: str = "album"
    total_tracks: int = 10

    @property
    def release_date_precision(self) -> str:
        return {4: "year", 7: "month"}.get(len(self.release_date), "day")


@dataclass(frozen=True)
class Track:
    id: str
    name: str
    album_id: str
    artist_ids: tuple[str, ...]  # credit order matters
    duration_ms: int
    track_number: int = 1
    disc_number: int = 1
    explicit: bool = False
    isrc: str | None = None


@dataclass(frozen=True)
class LocalFile:
    """A file from the user's own disk added to a playlist: no Spotify ids at all."""

    key: str  # the world's handle, `local:...`; never sent over the API
    name: str
    album_name: str
    artist_names: tuple[str, ...]
    duration_ms: int


@dataclass(frozen=True)
class Show:
    id: str
    name: str
    publisher: str


@dataclass(frozen=True)
class Episode:
    id: str
    name: str
    show_id: str
    duration_ms: int
    release_date: str


@dataclass(frozen=True)
class Audiobook:
    id: str
    name: str
    author: str


@dataclass(frozen=True)
class Chapter:
    id: str
    name: str
    audiobook_id: str
    duration_ms: int


@dataclass(frozen=True)
class Stream:
    """A stream only Spotify's data export knows: older than the API's newest 50, or one the API
    never serves (skips, incognito sessions, podcasts, audiobooks). `ended_at` is when it stopped.

    `item` is a track, episode or chapter id; an id the catalogue no longer has (then `names`,
    track, artist and album as the export spells them, say what it was); or None, a stream
    Spotify kept no metadata for.
    """

    item: str | None
    ended_at: datetime
    ms_played: int
    reason_start: str = "trackdone"
    reason_end: str = "trackdone"
    shuffle: bool = False
    skipped: bool | None = False  # None: exports before ~2018 did not record skips
    offline: bool = False
    incognito: bool = False
    platform: str = "android"
    conn_country: str = "DE"
    names: tuple[str, str, str] | None = None


@dataclass(frozen=True)
class Play:
    """One play in a user's history. `visible_at` later than `played_at` makes it arrive late."""

    item: str  # a track id or a local file's key
    played_at: datetime
    visible_at: datetime
    context_uri: str | None = None  # e.g. "spotify:playlist:<id>", "spotify:album:<id>"


@dataclass(frozen=True)
class PlaylistEntry:
    item: str | None  # track id, episode id or local key; None: no longer available
    added_at: datetime | None
    added_by: str | None


@dataclass(frozen=True)
class Revision:
    effective_from: datetime
    entries: tuple[PlaylistEntry, ...]


@dataclass
class Playlist:
    id: str
    name: str
    owner_id: str
    owner_name: str | None = None
    description: str = ""
    public: bool = False
    collaborators: set[str] = field(default_factory=set)
    revisions: list[Revision] = field(default_factory=list)

    @property
    def is_editorial(self) -> bool:
        return self.id.startswith(EDITORIAL_PREFIX)

    def readable_by(self, user_id: str) -> bool:
        """Contents are served only to the owner and collaborators (2026 rule)."""
        return user_id == self.owner_id or user_id in self.collaborators

    def set_items(self, entries: list[PlaylistEntry], at: datetime | None = None) -> None:
        """From `at` on (None: always), the playlist holds exactly `entries`."""
        if at is None:
            self.revisions = [Revision(DAWN, tuple(entries))]
            return
        self.revisions = [r for r in self.revisions if r.effective_from < at]
        self.revisions.append(Revision(at, tuple(entries)))

    def entries_at(self, now: datetime) -> tuple[PlaylistEntry, ...]:
        current: tuple[PlaylistEntry, ...] = ()
        for revision in sorted(self.revisions, key=lambda r: r.effective_from):
            if revision.effective_from <= now:
                current = revision.entries
        return current

    def snapshot_id_at(self, now: datetime) -> str:
        """Changes whenever the contents (or the metadata) change, like Spotify's."""
        digest = hashlib.sha256(repr((self.name, self.entries_at(now))).encode()).hexdigest()
        return "AAAA" + digest[:28]


@dataclass(frozen=True)
class Save:
    track_id: str
    added_at: datetime


@dataclass(frozen=True)
class TopRanking:
    item_type: str  # "artists" | "tracks"
    time_range: str
    effective_from: datetime
    ids: tuple[str, ...]


@dataclass
class User:
    id: str
    display_name: str
    # /me/playlists in this order: owned and followed playlists alike.
    playlist_ids: list[str] = field(default_factory=list)
    plays: list[Play] = field(default_factory=list)
    saves: list[Save] = field(default_factory=list)
    rankings: list[TopRanking] = field(default_factory=list)
    # What only the data export knows (`spotify_standin.export`); the API never serves these.
    streams: list[Stream] = field(default_factory=list)

    def add_play(
        self,
        item: str,
        played_at: datetime,
        *,
        visible_at: datetime | None = None,
        context_uri: str | None = None,
    ) -> Play:
        """This user plays `item` at `played_at`; it shows up at `visible_at` (default: then)."""
        play = Play(item, played_at, visible_at or played_at, context_uri)
        self.plays.append(play)
        return play

    def save(self, track_id: str, added_at: datetime) -> None:
        self.saves.append(Save(track_id, added_at))

    def set_top(
        self, item_type: str, time_range: str, ids: list[str], at: datetime | None = None
    ) -> None:
        """From `at` on (None: always), the user's top `item_type` for `time_range` are `ids`."""
        if item_type not in TOP_TYPES or time_range not in TIME_RANGES:
            raise ValueError(f"unknown top ranking {item_type}/{time_range}")
        self.rankings.append(TopRanking(item_type, time_range, at or DAWN, tuple(ids)))

    def history_at(self, now: datetime, window: int = 50) -> list[Play]:
        """The newest `window` plays visible at `now`, newest first: all the API still has."""
        visible = [p for p in self.plays if p.visible_at <= now and p.played_at <= now]
        return sorted(visible, key=lambda p: p.played_at, reverse=True)[:window]

    def saves_at(self, now: datetime) -> list[Save]:
        """Saved tracks at `now`, newest first."""
        return sorted(
            (s for s in self.saves if s.added_at <= now), key=lambda s: s.added_at, reverse=True
        )

    def top_at(self, item_type: str, time_range: str, now: datetime) -> tuple[str, ...]:
        current: tuple[str, ...] = ()
        for ranking in sorted(self.rankings, key=lambda r: r.effective_from):
            matches = ranking.item_type == item_type and ranking.time_range == time_range
            if matches and ranking.effective_from <= now:
                current = ranking.ids
        return current


@dataclass
class World:
    """The catalogue and the users. `start` anchors the timeline; it is the clock's default."""

    start: datetime
    users: dict[str, User] = field(default_factory=dict)
    artists: dict[str, Artist] = field(default_factory=dict)
    albums: dict[str, Album] = field(default_factory=dict)
    tracks: dict[str, Track] = field(default_factory=dict)
    local_files: dict[str, LocalFile] = field(default_factory=dict)
    shows: dict[str, Show] = field(default_factory=dict)
    episodes: dict[str, Episode] = field(default_factory=dict)
    audiobooks: dict[str, Audiobook] = field(default_factory=dict)
    chapters: dict[str, Chapter] = field(default_factory=dict)
    playlists: dict[str, Playlist] = field(default_factory=dict)

    def add(
        self,
        *things: Artist
        | Album
        | Track
        | LocalFile
        | Show
        | Episode
        | Audiobook
        | Chapter
        | Playlist
        | User,
    ) -> None:
        """Register catalogue items, playlists and users under their ids."""
        registry: dict[type, dict] = {
            Artist: self.artists,
            Album: self.albums,
            Track: self.tracks,
            Show: self.shows,
            Episode: self.episodes,
            Audiobook: self.audiobooks,
            Chapter: self.chapters,
            Playlist: self.playlists,
            User: self.users,
        }
        for thing in things:
            if isinstance(thing, LocalFile):
                self.local_files[thing.key] = thing
            else:
                registry[type(thing)][thing.id] = thing

    def user(self, user_id: str) -> User:
        return self.users[user_id]

    def playlist(self, playlist_id: str) -> Playlist:
        return self.playlists[playlist_id]

    def resolve(self, item: str | None) -> Track | Episode | LocalFile | None:
        """What a playlist entry or a play points at; None when it no longer exists."""
        if item is None:
            return None
        return self.tracks.get(item) or self.episodes.get(item) or self.local_files.get(item)
