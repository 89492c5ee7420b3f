"""Configuration: read once from the environment, then passed around as a `Config`.

This is the only module that looks at `os.environ`. Everything else receives a `Config`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_API_URL = "https://api.spotify.com/v1/"
DEFAULT_ACCOUNTS_URL = "https://accounts.spotify.com/"
DEFAULT_LOCAL_LAKE = "./lake"


@dataclass(frozen=True)
class Config:
    """Everything the app needs to know about where it runs (contract §2)."""

    stage: str = "local"
    lake_uri: str = DEFAULT_LOCAL_LAKE
    query_engine: str = "duckdb"
    spotify_client_id: str | None = None
    # Secrets stay out of repr(): a logged or printed Config must not leak them.
    spotify_client_secret: str | None = field(default=None, repr=False)
    spotify_redirect_uri: str | None = None
    spotify_refresh_token: str | None = field(default=None, repr=False)
    spotify_api_url: str = DEFAULT_API_URL
    spotify_accounts_url: str = DEFAULT_ACCOUNTS_URL
    glue_database: str = "spotify_etl"
    athena_workgroup: str = "spotify-etl"
    # SSM Parameter Store path that holds the Spotify app secrets and users' refresh tokens
    # when deployed; None means the local, file-backed secret store next to the lake.
    secrets_path: str | None = None
    # Name of the deployed extraction function, for the asynchronous `POST /runs`.
    extract_function: str | None = None
    aws_region: str | None = None
    # How often the history poll runs; only the newest 50 plays exist, so poll often enough.
    history_poll_minutes: int = 30
    # Genre enrichment: `/artists/{id}` calls per run (the rest wait for the next run), and how
    # long an artist's genres count as fresh.
    artist_budget: int = 100
    artist_ttl_days: int = 30
    # Track enrichment (contract §8): `/tracks/{id}` calls per run for tracks known only from a
    # history export (their album and credits); the rest wait for the next run. Lowest priority:
    # it spends only what the day's budget has left after everything else.
    track_budget: int = 200
    # Web API calls a UTC day, all users and datasets together (contract §9): the Spotify app's
    # quota is shared by everything that uses it, and past it Spotify locks the app out for hours.
    spotify_daily_budget: int = 800
    # The staleness metric the alarms of `bootstrap --alert-email` watch: a CloudWatch custom
    # metric costs $0.30 a month outside the free tier, more than a month of everything else.
    freshness_metric: bool = False
    # True when the Spotify settings point at the bundled offline sample (chalicelib/sample.py).
    sample: bool = False

    @property
    def is_s3_lake(self) -> bool:
        return self.lake_uri.startswith("s3://")

    @property
    def is_local(self) -> bool:
        """A laptop: a local lake *and* the local stage. Only this runs with the API open (no
        authorizer, logins without an invite). Anything else counts as deployed, so a stage
        whose `STAGE` variable went missing fails closed instead of open."""
        return self.stage == "local" and not self.is_s3_lake

    @property
    def lake_bucket(self) -> str | None:
        """The bucket of an `s3://bucket[/prefix]` lake; None for a local one."""
        return split_s3_uri(self.lake_uri)[0] if self.is_s3_lake else None

    @property
    def has_spotify_app(self) -> bool:
        """True when a real (or user-supplied) Spotify app is configured."""
        return bool(self.spotify_client_id and self.spotify_client_secret)

    @property
    def uses_sample(self) -> bool:
        """No Spotify credentials at all: local runs use the bundled offline sample."""
        return not self.has_spotify_app and not self.is_s3_lake

    def replace(self, **changes: object) -> Config:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


def load_config(environ: Mapping[str, str] | None = None) -> Config:
    """Build the `Config` from environment variables (contract §2)."""
    env = os.environ if environ is None else environ
    stage = env.get("STAGE", "local")
    lake_uri = env.get("LAKE_URI") or DEFAULT_LOCAL_LAKE
    default_engine = "athena" if lake_uri.startswith("s3://") else "duckdb"
    return Config(
        stage=stage,
        lake_uri=lake_uri,
        query_engine=env.get("QUERY_ENGINE") or default_engine,
        spotify_client_id=env.get("SPOTIPY_CLIENT_ID") or None,
        spotify_client_secret=env.get("SPOTIPY_CLIENT_SECRET") or None,
        spotify_redirect_uri=env.get("SPOTIPY_REDIRECT_URI") or None,
        spotify_refresh_token=env.get("SPOTIFY_REFRESH_TOKEN") or None,
        spotify_api_url=_with_slash(env.get("SPOTIFY_API_URL") or DEFAULT_API_URL),
        spotify_accounts_url=_with_slash(env.get("SPOTIFY_ACCOUNTS_URL") or DEFAULT_ACCOUNTS_URL),
        glue_database=env.get("GLUE_DATABASE") or Config.glue_database,
        athena_workgroup=env.get("ATHENA_WORKGROUP") or Config.athena_workgroup,
        secrets_path=env.get("SECRETS_PATH") or None,
        extract_function=env.get("EXTRACT_FUNCTION") or None,
        aws_region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
        history_poll_minutes=int(env.get("HISTORY_POLL_MINUTES") or Config.history_poll_minutes),
        artist_budget=int(env.get("ARTIST_BUDGET") or Config.artist_budget),
        artist_ttl_days=int(env.get("ARTIST_TTL_DAYS") or Config.artist_ttl_days),
        track_budget=int(env.get("TRACK_BUDGET") or Config.track_budget),
        spotify_daily_budget=int(env.get("SPOTIFY_DAILY_BUDGET") or Config.spotify_daily_budget),
        freshness_metric=(env.get("FRESHNESS_METRIC") or "").lower() in {"1", "on", "true"},
    )


def split_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix` → `("bucket", "some/prefix")`."""
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    return bucket, prefix


def _with_slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"
