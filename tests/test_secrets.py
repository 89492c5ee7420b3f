"""The deployed secret store: SSM SecureStrings, the app's secrets read once per container."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from chalicelib.secrets import (
    CLIENT_SECRET,
    LocalSecretStore,
    SsmSecretStore,
    refresh_token_name,
)


@pytest.fixture
def ssm() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("ssm", region_name="us-east-1")


def _count_reads(client: Any) -> list[str]:
    reads: list[str] = []
    client.meta.events.register(
        "provide-client-params.ssm.GetParameter", lambda params, **_: reads.append(params["Name"])
    )
    return reads


def test_app_secrets_are_read_once_and_stored_encrypted(ssm: Any) -> None:
    store = SsmSecretStore(ssm, "/spotify-etl/dev")
    store.put(CLIENT_SECRET, "s3cr3t")
    reads = _count_reads(ssm)
    assert store.get(CLIENT_SECRET) == "s3cr3t"
    assert store.get(CLIENT_SECRET) == "s3cr3t"
    assert len(reads) == 1
    [parameter] = ssm.describe_parameters()["Parameters"]
    assert parameter["Type"] == "SecureString"
    assert parameter["Name"].startswith("/spotify-etl/dev/")


def test_refresh_tokens_are_always_read_fresh(ssm: Any) -> None:
    """Another container may rotate a user's refresh token: a cached copy would go stale."""
    store = SsmSecretStore(ssm, "/spotify-etl/dev")
    other_container = SsmSecretStore(ssm, "/spotify-etl/dev")
    name = refresh_token_name("jo_user+1")
    store.put(name, "first")
    assert store.get(name) == "first"
    other_container.put(name, "rotated")
    assert store.get(name) == "rotated"
    assert store.names("users/") == [name]


def test_the_local_store_writes_nothing_until_a_secret_is_stored(tmp_path: Path) -> None:
    store = LocalSecretStore(tmp_path / ".spotify-etl-secrets.json")
    assert store.get("signing_key") is None and store.names("users/") == []
    assert list(tmp_path.iterdir()) == []  # a run with SPOTIFY_REFRESH_TOKEN leaves no files
    store.put("signing_key", "k")
    assert stat.S_IMODE((tmp_path / ".spotify-etl-secrets.json").stat().st_mode) == 0o600
    assert store.get("signing_key") == "k"
