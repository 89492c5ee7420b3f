"""What every dataset module shares: its inputs (`Fetch`) and its result (`Fetched`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from chalicelib.config import Config
from chalicelib.spotify.errors import SpotifyCallError
from chalicelib.storage import Storage

if TYPE_CHECKING:  # spotipy is imported only by the functions that call Spotify
    from chalicelib.spotify.client import SpotifyClient


@dataclass(frozen=True)
class Settings:
    """Extraction knobs; the enrichment ones come from the `Config` (`from_config`)."""

    artist_budget: int = 100  # /artists/{id} calls per run; the rest wait for the next run
    artist_ttl: timedelta = timedelta(days=30)
    artist_jitter: float = 0.2  # an artist's TTL is lengthened by up to this fraction
    artist_claim: timedelta = timedelta(minutes=15)  # how long a run may hold artists it fetches
    track_budget: int = 200  # /tracks/{id} calls per run, for tracks known only from an export
    track_claim: timedelta = timedelta(minutes=15)  # how long a run may hold tracks it fetches
    page_limit: int = 50

    @classmethod
    def from_config(cls, config: Config) -> Settings:
        return cls(
            artist_budget=config.artist_budget,
            artist_ttl=timedelta(days=config.artist_ttl_days),
            track_budget=config.track_budget,
        )


@dataclass(frozen=True)
class Fetch:
    """One dataset for one user in one run."""

    client: SpotifyClient
    storage: Storage
    user_id: str
    run_id: str
    run_at: datetime
    raw_key: str  # where this dataset's envelope will be written
    settings: Settings = field(default_factory=Settings)


@dataclass
class Fetched:
    """A dataset's outcome before its envelope is written.

    `advance` moves state forward; the runner calls it only after the raw object is written.
    """

    extras: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    advance: Callable[[], None] | None = None


class Stopped(Exception):
    """A dataset stopped part-way; `partial` is what may still be kept (written, advanced)."""

    def __init__(self, error: SpotifyCallError, partial: Fetched | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.partial = partial or Fetched()
