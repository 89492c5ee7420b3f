"""The bundled offline sample: a demo user whose library holds every odd case of contract §1.

`demo_world(start)` is deterministic: the same `start` gives the same world (randomness comes
from a fixed seed). Its timeline runs from `start - 2 days` to `start + 7 days`.

Before the timeline, the demo listener has months of older streams that only Spotify's data
export knows (`User.streams`, rendered by `spotify_standin.export`): skips, podcasts, an
audiobook, incognito and offline sessions, and tracks the API never showed — some in the
catalogue (a `GET /tracks/{id}` enriches them), one no longer there (404). They are added after
everything the API serves was built, so the API's answers are those of the world without them.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from spotify_standin.world import (
    Album,
    Artist,
    Audiobook,
    Chapter,
    Episode,
    LocalFile,
    Playlist,
    PlaylistEntry,
    Show,
    Stream,
    Track,
    User,
    World,
    spotify_id,
)

DEMO_USER = "demo_listener"
FRIEND_USER = "collab_friend"
EDITORIAL_PLAYLIST = "37i9dQZF1DXcBWIGoYBM5M"
HISTORY_DAYS_BEFORE = 2
HISTORY_DAYS_AFTER = 7

# key: (name, genres) — some artists are unclassified (no genres), as Spotify sends them.
_ARTISTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "bjork": ("Björk", ("art pop", "icelandic experimental")),
    "sigur": ("Sigur Rós", ("post-rock", "icelandic rock")),
    "daft": ("Daft Punk", ("french house", "electro")),
    "kraft": ("Kraftwerk", ("krautrock", "electronic")),
    "nina": ("Nina Simone", ("jazz", "soul")),
    "rosalia": ("ROSALÍA", ("flamenco pop",)),
    "ewf": ("Earth, Wind & Fire", ("funk", "disco", "soul")),
    "sakamoto": ("坂本龍一", ("ambient", "japanese classical")),
    "stromae": ("Stromae", ("belgian pop",)),
    "quoted": ('The "Quoted" Band', ()),
    "manana": ("Mañana Collective", ()),
    "motor": ("Motörhead", ("hard rock", "metal")),
}

# key: (name, artist keys, release_date, album_type, [(track name, extra artist keys, ms)]).
# Release dates of all three precisions; several tracks credit more than one artist.
_TrackSpec = tuple[str, tuple[str, ...], int]
# fmt: off
_ALBUMS: dict[str, tuple[str, tuple[str, ...], str, str, list[_TrackSpec]]] = {
    "homogenic": ("Homogenic", ("bjork",), "1997-09-22", "album", [
        ("Jóga", (), 305_000), ("Bachelorette", (), 312_000), ("Hunter", (), 255_000),
    ]),
    "agaetis": ("Ágætis byrjun", ("sigur",), "1999-06-12", "album", [
        ("Svefn-g-englar", (), 604_000), ("Starálfur", (), 406_000), ("Olsen Olsen", (), 483_000),
    ]),
    "discovery": ("Discovery", ("daft",), "2001-03", "album", [
        ("One More Time", (), 320_000), ("Digital Love", (), 301_000),
        ("Harder, Better, Faster, Stronger", (), 224_000),
    ]),
    "computer": ("Computerwelt", ("kraft",), "1981", "album", [
        ("Computerliebe", (), 436_000), ("Taschenrechner", (), 275_000),
        ("Nummern", (), 199_000),
    ]),
    "pastel": ("Pastel Blues", ("nina",), "1965", "album", [
        ("Sinnerman", (), 622_000), ("Be My Husband", (), 222_000),
    ]),
    "motomami": ("MOTOMAMI", ("rosalia",), "2022-03-18", "album", [
        ("SAOKO", (), 137_000), ("CANDY", (), 193_000), ("LA FAMA", ("stromae",), 188_000),
    ]),
    "raise": ("Raise!", ("ewf",), "1981-12", "album", [
        ("Let's Groove", (), 338_000), ("Lady Sun", (), 218_000),
    ]),
    "bttb": ("BTTB", ("sakamoto",), "1998-11-24", "album", [
        ("energy flow", (), 276_000), ("戦場のメリークリスマス", (), 282_000),
    ]),
    "multitude": ("Multitude", ("stromae",), "2022-03-04", "album", [
        ("Santé", (), 182_000), ("L'enfer", (), 191_000), ("Fils de joie", ("manana",), 199_000),
    ]),
    "quoted": ('Songs, "Quoted" & Commas', ("quoted", "manana"), "2024-05-17", "single", [
        ('Say "Hello", Again', ("manana",), 201_000), ("Comma, Comma, Chameleon", (), 243_000),
    ]),
    "ace": ("Ace of Spades", ("motor",), "1980-11-08", "album", [
        ("Ace of Spades", (), 169_000), ("Love Me Like a Reptile", (), 203_000),
    ]),
    "collab": ("Islands & Rivers", ("bjork", "sakamoto"), "2019", "compilation", [
        ("Frozen Rivers", ("sigur", "sakamoto"), 333_000), ("Glacier Dub", ("daft",), 288_000),
        ("Nordic Light", (), 251_000),
    ]),
}
# fmt: on


def demo_world(start: datetime) -> World:
    """The demo world anchored at `start` (a time-zone-aware datetime)."""
    if start.tzinfo is None:
        raise ValueError("start must be time-zone aware")
    world = World(start=start)
    _catalogue(world)
    me = User(DEMO_USER, "Zoë Ångström-Müller")
    friend = User(FRIEND_USER, "Łukasz Friend")
    world.add(me, friend)
    _playlists(world, start)
    me.playlist_ids = [
        _pid("everything"),
        _pid("weekly"),
        _pid("podcasts"),
        _pid("kitchen"),
        _pid("friend_private"),
        EDITORIAL_PLAYLIST,
    ]
    friend.playlist_ids = [_pid("kitchen"), _pid("friend_private")]
    _history(world, me, start)
    _history(world, friend, start, seed=7, plays_per_hour=1)
    _top_items(world, me, start)
    _top_items(world, friend, start)
    _saves(world, me, start)
    # Last, so that nothing the API serves depends on it (see the module docstring).
    _export_only_catalogue(world, start)
    _older_history(world, me, start)
    return world


def artist_id(key: str) -> str:
    return spotify_id(f"artist:{key}")


def track_id(album_key: str, number: int) -> str:
    """The id of the `number`-th (1-based) track of a demo album."""
    return spotify_id(f"track:{album_key}:{number}")


def _pid(key: str) -> str:
    return spotify_id(f"playlist:{key}")


def _catalogue(world: World) -> None:
    for key, (name, genres) in _ARTISTS.items():
        world.add(Artist(artist_id(key), name, genres))
    for key, spec in _ALBUMS.items():
        _add_album(world, key, *spec)
    world.add(LocalFile("local:garage-demo", "Garage Demo (take 3)", "Home Tapes", ("Me",), 95_000))
    show = Show(spotify_id("show:pod"), "Data, Drinks & Pipelines", "Ünïcode Media")
    world.add(show)
    for number in range(1, 4):
        world.add(
            Episode(
                spotify_id(f"episode:{number}"),
                f"Episode {number}: Lakes, “Warehouses” and You",
                show.id,
                1_800_000 + number * 60_000,
                f"2026-10-{number:02d}",
            )
        )


def _add_album(
    world: World,
    key: str,
    name: str,
    artists: tuple[str, ...],
    released: str,
    album_type: str,
    tracks: list[_TrackSpec],
) -> None:
    album = Album(
        spotify_id(f"album:{key}"),
        name,
        tuple(artist_id(a) for a in artists),
        released,
        album_type,
        total_tracks=len(tracks),
    )
    world.add(album)
    for number, (title, extra, ms) in enumerate(tracks, start=1):
        credits = tuple(dict.fromkeys((artists[0], *extra)))  # lead first, no repeats
        world.add(
            Track(
                track_id(key, number),
                title,
                album.id,
                tuple(artist_id(a) for a in credits),
                ms,
                track_number=number,
                explicit=key == "motomami",
                isrc=f"XX{key[:3].upper()}{number:07d}",
            )
        )


def _entry(item: str | None, at: datetime | None, by: str | None = DEMO_USER) -> PlaylistEntry:
    return PlaylistEntry(item, at, by if at is not None else None)


def _playlists(world: World, start: datetime) -> None:
    tracks = list(world.tracks)
    episodes = list(world.episodes)
    long_ago = start - timedelta(days=400)

    everything = Playlist(_pid("everything"), "Everything, Ever — “Long” Mix", DEMO_USER)
    entries = [
        # Very old items: Spotify sends null added_at and added_by.
        _entry(tracks[0], None),
        _entry(tracks[1], None),
        # A track no longer available: the item is null, the slot stays.
        _entry(None, long_ago),
        _entry("local:garage-demo", long_ago),
    ]
    # 120 items in all: three pages of 50; every catalogue track more than once.
    entries += [_entry(tracks[i % len(tracks)], long_ago + timedelta(hours=i)) for i in range(116)]
    everything.set_items(entries)

    weekly = Playlist(_pid("weekly"), "Weekly Changes", DEMO_USER, public=True)
    before = [tracks[i] for i in (2, 5, 8, 11, 14, 17)]
    # Day 2 (start + 1 day, noon): one removed, two added, one moved to the top.
    after = [before[4], before[0], before[1], before[2], before[3], tracks[20], tracks[21]]
    weekly.set_items([_entry(t, long_ago) for t in before])
    change_at = start + timedelta(days=1, hours=12)
    weekly.set_items(
        [_entry(t, long_ago if t in before else change_at) for t in after], at=change_at
    )

    podcasts = Playlist(_pid("podcasts"), "Podcasts & Pods", DEMO_USER)
    podcasts.set_items(
        [
            _entry(episodes[0], long_ago),
            _entry(tracks[3], long_ago),
            _entry(episodes[1], long_ago),
            # The same track twice in one playlist.
            _entry(tracks[3], long_ago + timedelta(days=1)),
            _entry(episodes[2], long_ago + timedelta(days=2)),
        ]
    )

    kitchen = Playlist(
        _pid("kitchen"), "Kitchen Party, Vol. 2", FRIEND_USER, collaborators={DEMO_USER}
    )
    kitchen.set_items(
        [
            _entry(tracks[6], long_ago, FRIEND_USER),
            _entry(tracks[9], long_ago, DEMO_USER),
            _entry(tracks[12], long_ago, FRIEND_USER),
        ]
    )

    private = Playlist(_pid("friend_private"), 'Łukasz\'s "Private" Picks', FRIEND_USER)
    private.set_items([_entry(t, long_ago, FRIEND_USER) for t in tracks[10:15]])

    editorial = Playlist(
        EDITORIAL_PLAYLIST, "Today's Top Hits", "spotify", owner_name="Spotify", public=True
    )
    editorial.set_items([_entry(t, long_ago, "spotify") for t in tracks[:10]])

    world.add(everything, weekly, podcasts, kitchen, private, editorial)


def _history(
    world: World, user: User, start: datetime, *, seed: int = 2026, plays_per_hour: int = 3
) -> None:
    """Plays every day of the timeline, 07:00–23:59 UTC, a few of them arriving late."""
    rng = random.Random(seed)
    tracks = list(world.tracks.values())
    contexts = [
        None,
        f"spotify:playlist:{_pid('everything')}",
        f"spotify:playlist:{_pid('weekly')}",
    ]
    contexts += [f"spotify:album:{a}" for a in list(world.albums)[:3]]
    day0 = start.replace(hour=0, minute=0, second=0, microsecond=0)
    for day in range(-HISTORY_DAYS_BEFORE, HISTORY_DAYS_AFTER + 1):
        for hour in range(7, 24):
            moment = day0 + timedelta(days=day, hours=hour, milliseconds=rng.randrange(600_000))
            hour_end = day0 + timedelta(days=day, hours=hour + 1)
            for _ in range(plays_per_hour):
                track = rng.choice(tracks)
                if moment + timedelta(milliseconds=track.duration_ms) >= hour_end:
                    break
                # About one play in twenty-five reaches the history two hours late.
                late = rng.randrange(25) == 0
                user.add_play(
                    track.id,
                    moment,
                    visible_at=moment + timedelta(hours=2) if late else None,
                    context_uri=rng.choice(contexts),
                )
                # The next play starts after this one ends, with a short pause.
                moment += timedelta(milliseconds=track.duration_ms + rng.randrange(300_000))
        # A local file, played once a day in the late evening.
        user.add_play("local:garage-demo", day0 + timedelta(days=day, hours=23, minutes=58))


TOP_ARTISTS = 8


def _top_items(world: World, user: User, start: datetime) -> None:
    """Rankings that shift every day at 00:00 UTC: short term most, long term least."""
    artists = sorted(world.artists)
    tracks = sorted(world.tracks)
    day0 = start.replace(hour=0, minute=0, second=0, microsecond=0)
    for day in range(-HISTORY_DAYS_BEFORE, HISTORY_DAYS_AFTER + 1):
        at = day0 + timedelta(days=day)
        n = day + HISTORY_DAYS_BEFORE
        # Top artists name only some artists: the rest get their genres from enrichment.
        for kind, ids in (("artists", artists[:TOP_ARTISTS]), ("tracks", tracks)):
            user.set_top(kind, "short_term", _rotate(ids, n * 3), at)
            user.set_top(kind, "medium_term", _swap_pairs(_rotate(ids, n), n % 2 == 0), at)
            user.set_top(kind, "long_term", _swap_pairs(ids, n % 3 == 0), at)


def _rotate(ids: list[str], by: int) -> list[str]:
    by %= len(ids)
    return ids[by:] + ids[:by]


def _swap_pairs(ids: list[str], swap: bool) -> list[str]:
    if not swap:
        return list(ids)
    swapped = list(ids)
    for i in range(0, len(swapped) - 1, 2):
        swapped[i], swapped[i + 1] = swapped[i + 1], swapped[i]
    return swapped


def _saves(world: World, user: User, start: datetime) -> None:
    """A dozen saves from the past year, then one more every day at 10:00 UTC."""
    tracks = list(world.tracks)
    for i, track in enumerate(tracks[:12]):
        user.save(track, start - timedelta(days=360 - i * 30))
    day0 = start.replace(hour=0, minute=0, second=0, microsecond=0)
    for day in range(-HISTORY_DAYS_BEFORE, HISTORY_DAYS_AFTER + 1):
        user.save(tracks[12 + day + HISTORY_DAYS_BEFORE], day0 + timedelta(days=day, hours=10))


# --- what only the data export knows ------------------------------------------------------

OLDER_HISTORY_DAYS = 180  # older streams start this many days before `start`
# Streams of the last four weeks before the timeline are given in the Account Data format only
# (`StreamingHistory_music_<n>.json`); all others in the extended format. The two never describe
# the same stream: the contract has no rule to merge an account row with an extended one.
ACCOUNT_DATA_DAYS = 28

# Catalogue tracks no API answer of the timeline names: known from the export alone. "No
# Remorse" repeats "Ace of Spades" by Motörhead, so that name and artist match two tracks.
# fmt: off
_EXPORT_ALBUMS: dict[str, tuple[str, tuple[str, ...], str, str, list[_TrackSpec]]] = {
    "remorse": ("No Remorse", ("motor",), "1984-09-15", "compilation", [
        ("Ace of Spades", (), 170_000), ("Killed by Death", (), 275_000),
    ]),
    "debut": ("Debut", ("bjork",), "1993-07-05", "album", [
        ("Human Behaviour", (), 252_000), ("Venus as a Boy", (), 281_000),
    ]),
    "house": ("Homework", ("daft",), "1997-01-20", "album", [
        ("Around the World", (), 429_000), ("Da Funk", (), 328_000),
    ]),
}
# fmt: on
# A track Spotify no longer has (GET /tracks/{id} answers 404), as the export names it.
GONE_TRACK = spotify_id("track:gone:radioaktivitaet")
GONE_NAMES = ("Radioaktivität (Early Mix)", "Kraftwerk", "Lost Tapes")
# A track that was never in this catalogue; it appears in the Account Data format only, so no
# known track has its names.
UNKNOWN_NAMES = ("Autobahn", "Kraftwerk", "Autobahn")
SLOW_SHOW = spotify_id("show:slow")
AUDIOBOOK = spotify_id("audiobook:moby")
_CHAPTERS = (
    ("Chapter 1: Loomings", 1_020_000),
    ("Chapter 2: The Carpet-Bag", 780_000),
    ("Chapter 3: The Spouter-Inn", 1_740_000),
    ("Chapter 4: The Counterpane", 690_000),
)
_PLATFORMS = ("android", "android", "ios", "windows", "osx", "web_player")


def _export_only_catalogue(world: World, start: datetime) -> None:
    for key, spec in _EXPORT_ALBUMS.items():
        _add_album(world, key, *spec)
    world.add(Show(SLOW_SHOW, "Slow Data Radio", "Ünïcode Media"))
    for k in range(6):
        released = (start - timedelta(days=200 - 30 * k)).date().isoformat()
        name = f"#{k + 1} — Partitions, Pruning & Patience"
        episode_ms = 2_400_000 + k * 180_000
        world.add(Episode(spotify_id(f"episode:slow:{k}"), name, SLOW_SHOW, episode_ms, released))
    world.add(Audiobook(AUDIOBOOK, "Moby-Dick; or, The Whale", "Herman Melville"))
    for number, (title, ms) in enumerate(_CHAPTERS, start=1):
        world.add(Chapter(spotify_id(f"chapter:moby:{number}"), title, AUDIOBOOK, ms))


def _older_history(world: World, user: User, start: datetime) -> None:
    """Months of streams before the timeline, then a few at night within it (the API's
    history is 07:00–24:00), each kind of export row at least once."""
    rng = random.Random(1851)
    day0 = start.replace(hour=0, minute=0, second=0, microsecond=0)
    tracks = list(world.tracks.values())
    slow = [e for e in world.episodes.values() if e.show_id == SLOW_SHOW]
    for day in range(-OLDER_HISTORY_DAYS, -HISTORY_DAYS_BEFORE):
        if rng.random() < 0.45:
            continue
        moment = day0 + timedelta(days=day, hours=rng.randrange(6, 20), seconds=rng.randrange(3600))
        session = {
            "platform": rng.choice(_PLATFORMS),
            "conn_country": "DE" if rng.random() < 0.9 else rng.choice(("IS", "FR", "ES")),
            "shuffle": rng.random() < 0.4,
            "offline": rng.random() < 0.08,
            "incognito": rng.random() < 0.05,
        }
        # Exports record skips only from some point on: the oldest month has `skipped` null.
        skips_known = day >= -OLDER_HISTORY_DAYS + 30
        released = [e for e in slow if e.release_date <= moment.date().isoformat()]
        if released and rng.random() < 0.12:
            items = [(e.id, e.duration_ms) for e in rng.sample(released, min(2, len(released)))]
        else:
            items = [(t.id, t.duration_ms) for t in rng.choices(tracks, k=rng.randint(3, 8))]
        reason_start = rng.choice(("clickrow", "playbtn", "appload"))
        for item, duration in items:
            roll = rng.random()
            if roll < 0.12:
                ms, reason_end, skipped = rng.randrange(1_500, 29_000), "fwdbtn", True
            elif roll < 0.18:
                ms, reason_end = rng.randrange(30_000, duration), rng.choice(("endplay", "fwdbtn"))
                skipped = reason_end == "fwdbtn"
            else:
                ms, reason_end, skipped = duration, "trackdone", False
            moment += timedelta(milliseconds=ms)
            user.streams.append(
                Stream(
                    item,
                    moment,
                    ms,
                    reason_start,
                    reason_end,
                    skipped=skipped if skips_known else None,
                    **session,
                )
            )
            reason_start = reason_end if reason_end in ("trackdone", "fwdbtn") else "clickrow"
            # At least a minute apart: Account Data rows, to the minute, stay distinct.
            moment += timedelta(seconds=rng.randrange(60, 240))
    _special_streams(world, user, day0)
    user.streams.sort(key=lambda s: s.ended_at)


def _special_streams(world: World, user: User, day0: datetime) -> None:
    """The rows every export must show once; at 03:00–05:59 UTC, when nothing else plays."""

    def at(day: int, hour: int, minute: int, second: int = 0) -> datetime:
        return day0 + timedelta(days=day, hours=hour, minutes=minute, seconds=second)

    def track(name: str, album_key: str | None = None) -> Track:
        return next(
            t
            for t in world.tracks.values()
            if t.name == name
            and (album_key is None or t.album_id == spotify_id(f"album:{album_key}"))
        )

    joga, hunter, nummern = track("Jóga"), track("Hunter"), track("Nummern")
    ace_1980, ace_1984 = track("Ace of Spades", "ace"), track("Ace of Spades", "remorse")
    episodes = [e for e in world.episodes.values() if e.show_id == SLOW_SHOW]
    chapters = [c for c in world.chapters.values() if c.audiobook_id == AUDIOBOOK]
    full = {"skipped": False}
    streams = [
        # The same track twice in a row (repeat on).
        Stream(joga.id, at(-120, 5, 5), joga.duration_ms, "clickrow", **full),
        Stream(
            joga.id,
            at(-120, 5, 5) + timedelta(milliseconds=joga.duration_ms),
            joga.duration_ms,
            "trackdone",
            **full,
        ),
        # Two different rows with the same `ts`: the longer one is the play (§8).
        Stream(hunter.id, at(-90, 5, 10), hunter.duration_ms, "clickrow", **full),
        Stream(nummern.id, at(-90, 5, 10), 0, "clickrow", "endplay", **full),
        # ms_played 0: one with a track, one Spotify kept no metadata for.
        Stream(nummern.id, at(-75, 5, 0), 0, "clickrow", "trackerror", **full),
        Stream(None, at(-75, 5, 20), 0, "unknown", "unexpected-exit-while-paused", **full),
        # A track the catalogue no longer has.
        *(
            Stream(GONE_TRACK, at(day, 5, 30), 241_000, "clickrow", names=GONE_NAMES, **full)
            for day in (-140, -100, -60)
        ),
        # Both "Ace of Spades" by Motörhead, with their ids.
        Stream(ace_1984.id, at(-110, 5, 40), ace_1984.duration_ms, "clickrow", **full),
        Stream(ace_1980.id, at(-105, 5, 40), ace_1980.duration_ms, "clickrow", **full),
        # An audiobook, a chapter now and then; the third left unfinished.
        *(
            Stream(
                chapter.id,
                at(day, 4, 0),
                chapter.duration_ms if n != 2 else chapter.duration_ms // 3,
                "clickrow" if n == 0 else "trackdone",
                "trackdone" if n != 2 else "endplay",
                platform="ios",
                **full,
            )
            for n, (day, chapter) in enumerate(zip((-158, -130, -96, -64), chapters, strict=True))
        ),
        # Account Data only: names no known track has; names two known tracks have; a podcast.
        Stream(None, at(-20, 5, 0), 199_000, "clickrow", names=UNKNOWN_NAMES, **full),
        Stream(ace_1984.id, at(-15, 5, 0), ace_1984.duration_ms, "clickrow", **full),
        Stream(nummern.id, at(-12, 5, 0), 0, "clickrow", "endplay", **full),
        Stream(episodes[-1].id, at(-10, 5, 0), episodes[-1].duration_ms, "clickrow", **full),
        # Within the API's timeline, at night: what the API never shows.
        Stream(hunter.id, at(-1, 4, 10), hunter.duration_ms, "clickrow", incognito=True, **full),
        Stream(joga.id, at(-1, 4, 16), joga.duration_ms, "trackdone", incognito=True, **full),
        Stream(nummern.id, at(0, 3, 30), 4_000, "clickrow", "fwdbtn", skipped=True),
        Stream(episodes[-1].id, at(0, 3, 50), 900_000, "clickrow", "endplay", **full),
        Stream(ace_1980.id, at(3, 4, 0), ace_1980.duration_ms, "clickrow", offline=True, **full),
    ]
    user.streams.extend(streams)
