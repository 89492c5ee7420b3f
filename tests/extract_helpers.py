"""Shared fixtures for the extraction tests: the stand-in, a lake (local dir or moto S3), and
services wired to both. Import the fixtures by name into a test module."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from chalicelib import layout, users
from chalicelib.config import Config
from chalicelib.extract.envelope import load_envelope
from chalicelib.services import Services
from spotify_standin import DEMO_USER, StandIn, demo_world

START = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
BUCKET = "lake-bucket"


@pytest.fixture
def standin() -> Iterator[StandIn]:
    # Tests move the stand-in's clock by hours and days; access tokens outlive that here, so
    # call counts are not blurred by 401s (test_spotify_client covers expiry on its own).
    with StandIn(demo_world(start=START), token_lifetime=timedelta(days=400)) as running:
        yield running


@pytest.fixture(params=["local", "s3"])
def lake_uri(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The same tests against a local directory lake and an `s3://bucket/prefix` lake (moto)."""
    if request.param == "local":
        yield str(tmp_path / "lake")
        return
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
        yield f"s3://{BUCKET}/lake"


@pytest.fixture
def local_lake(tmp_path: Path) -> str:
    return str(tmp_path / "lake")


def make_services(standin: StandIn, lake_uri: str, **config: Any) -> Services:
    """Services for the stand-in's Spotify app and `lake_uri` (no local S3-event dispatch)."""
    settings = {
        "lake_uri": lake_uri,
        "spotify_client_id": standin.client_id,
        "spotify_client_secret": standin.client_secret,
        "spotify_api_url": standin.api_url,
        "spotify_accounts_url": standin.accounts_url,
        "secrets_path": "/spotify-etl/test" if lake_uri.startswith("s3://") else None,
        **config,
    }
    return Services(Config(**settings), on_put=None)


def connect(services: Services, standin: StandIn, user_id: str = DEMO_USER) -> None:
    users.connect_user(services.secrets, user_id, standin.refresh_token(user_id))


def api_calls(standin: StandIn) -> Counter[str]:
    """Web API calls in the stand-in's log, per endpoint template (ids replaced by `{id}`)."""
    counted: Counter[str] = Counter()
    for request in standin.requests:
        if request.path.startswith("/v1/"):
            path = re.sub(
                r"^/v1/(playlists|artists|albums|tracks)/[^/]+", r"/\1/{id}", request.path
            )
            counted[f"{request.method} {path.removeprefix('/v1').rstrip('/')}"] += 1
    return counted


def token_calls(standin: StandIn) -> list[str | None]:
    return [r.grant_type for r in standin.requests if r.path == "/api/token"]


def envelope_of(
    services: Services, record: dict[str, Any], dataset: str, user_id: str = DEMO_USER
) -> dict[str, Any]:
    """The raw envelope a run wrote for one user and dataset."""
    [key] = record["results"][user_id][dataset]["raw_objects"]
    assert layout.parse_raw_key(key) is not None
    envelope = load_envelope(services.storage, key)
    assert envelope is not None
    return envelope


def bodies(envelope: dict[str, Any], path_part: str) -> list[dict[str, Any]]:
    """The answers (status + body) whose request URL contains `path_part`."""
    return [r for r in envelope["responses"] if path_part in r["request"]["url"]]
