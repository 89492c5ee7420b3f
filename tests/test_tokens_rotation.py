"""Never lose a refresh token: rotation stored before use, a failing save contained, the lease
longer than the worst refresh, and no token in the lake (issue 8, part 3)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from extract_helpers import connect, local_lake, make_services, standin, token_calls  # noqa: F401

from chalicelib.extract.runner import run_extraction
from chalicelib.secrets import (
    ENV_REFRESH_TOKEN,
    LocalSecretStore,
    SecretStore,
    access_token_name,
    refresh_token_name,
)
from chalicelib.spotify import client as spotify_client
from chalicelib.spotify import tokens
from chalicelib.spotify.errors import SpotifyCallError, TokenRefused
from chalicelib.spotify.tokens import StoredRefreshToken, UserAuth, token_state_key
from chalicelib.storage import LocalStorage, get_json
from spotify_standin import DEMO_USER, StandIn


class FlakyStore:
    """A secret store whose `put` of names ending in `suffix` fails `failures` times (an SSM
    throttle or outage); everything else goes through."""

    def __init__(self, inner: SecretStore, failures: int, suffix: str = "refresh_token") -> None:
        self.inner = inner
        self.failures = failures
        self.suffix = suffix
        self.refused_puts = 0

    def get(self, name: str) -> str | None:
        return self.inner.get(name)

    def put(self, name: str, value: str) -> None:
        if name.endswith(self.suffix) and self.failures > 0:
            self.failures -= 1
            self.refused_puts += 1
            raise ConnectionError("ssm unavailable")
        self.inner.put(name, value)

    def delete(self, name: str) -> None:
        self.inner.delete(name)

    def names(self, prefix: str = "") -> list[str]:
        return self.inner.names(prefix)


def _lake_text(lake: str) -> str:
    """Every byte of the lake, as text: a token found here would be readable by any reader."""
    return "\n".join(
        p.read_bytes().decode("latin-1") for p in Path(lake).rglob("*") if p.is_file()
    )


def _no_sleep(_: float) -> None:
    return None


def test_a_failing_save_fails_the_dataset_keeps_the_token_and_the_next_run_recovers(
    standin: StandIn,  # noqa: F811
    local_lake: str,  # noqa: F811
) -> None:
    """The stand-in revokes the old refresh token when it rotates. Before: the rotated token
    was lost when saving it failed (user disconnected for good) and the lease stayed held."""
    svc = make_services(standin, local_lake)
    connect(svc, standin)
    standin.rotate_refresh_tokens = True
    flaky = FlakyStore(svc.secrets, failures=tokens.SAVE_ATTEMPTS)
    svc.__dict__["secrets"] = flaky  # the run's secret store

    first = run_extraction(svc, datasets=["plays"], sleep=_no_sleep)
    [error] = first["results"][DEMO_USER]["plays"]["errors"]
    assert first["results"][DEMO_USER]["plays"]["status"] == "failed"
    assert error["reason"] == "token_save_failed" and "could not be stored" in error["message"]
    assert flaky.refused_puts == tokens.SAVE_ATTEMPTS  # bounded retries
    lease = get_json(svc.storage, token_state_key(DEMO_USER))
    assert lease["lease"] is None  # released
    assert lease["pending"]["refresh_token"]  # recoverable
    assert flaky.get(access_token_name(DEMO_USER)) is None  # the new access token was not used
    assert lease["pending"]["refresh_token"] not in json.dumps(first)  # nor reported

    # The secret store works again: the next run refreshes with the kept token and stores it.
    second = run_extraction(svc, datasets=["plays"], sleep=_no_sleep)
    assert second["status"] == "succeeded"
    assert "pending" not in get_json(svc.storage, token_state_key(DEMO_USER))
    stored = flaky.get(refresh_token_name(DEMO_USER))
    assert stored and stored not in _lake_text(local_lake)


def test_a_save_that_fails_once_is_retried_and_the_run_succeeds(
    standin: StandIn,  # noqa: F811
    local_lake: str,  # noqa: F811
) -> None:
    svc = make_services(standin, local_lake)
    connect(svc, standin)
    original = svc.secrets.get(refresh_token_name(DEMO_USER))
    standin.rotate_refresh_tokens = True
    flaky = FlakyStore(svc.secrets, failures=1)
    svc.__dict__["secrets"] = flaky
    record = run_extraction(svc, datasets=["plays"], sleep=_no_sleep)
    assert record["status"] == "succeeded"
    assert flaky.get(refresh_token_name(DEMO_USER)) not in (None, original)
    assert token_calls(standin) == ["refresh_token"]


def test_no_token_is_kept_in_the_lake(
    standin: StandIn,  # noqa: F811
    local_lake: str,  # noqa: F811
) -> None:
    """Cached access tokens and a rotated env token live in the secret store, not `state/`."""
    env_token = standin.refresh_token(DEMO_USER)
    svc = make_services(standin, local_lake, spotify_refresh_token=env_token)
    standin.rotate_refresh_tokens = True
    assert run_extraction(svc, datasets=["plays"])["status"] == "succeeded"
    rotated = json.loads(svc.secrets.get(ENV_REFRESH_TOKEN))["refresh_token"]
    access = json.loads(svc.secrets.get(access_token_name(DEMO_USER)))["access_token"]
    lake = _lake_text(local_lake)
    for secret in (env_token, rotated, access):
        assert secret not in lake


def test_a_legacy_token_in_state_is_moved_to_the_secret_store(tmp_path: Path) -> None:
    """A lake written before: the env user's rotated token sat in `state/tokens/`. It is used,
    moved to the secret store and removed from the lake."""
    storage = LocalStorage(str(tmp_path / "lake"))
    store = LocalSecretStore(tmp_path / "secrets.json")
    source = tokens.EnvRefreshToken("R-env", store)
    from chalicelib.storage import update_json

    legacy = {"access_token": "A-old", "expires_at": 0, "refresh_token": "R-legacy",
              "seeded_from": source.seed, "lease": None}  # fmt: skip
    update_json(storage, token_state_key("u1"), lambda _: legacy)
    seen: list[str] = []

    def refresher(token: str) -> dict[str, Any]:
        seen.append(token)
        return {"access_token": "A-new", "expires_in": 3600}

    assert UserAuth(storage, "u1", source, refresher).get_access_token() == "A-new"
    assert seen == ["R-legacy"]
    assert get_json(storage, token_state_key("u1")) == {"lease": None}
    assert source.load({}) == "R-legacy"


def test_a_legacy_token_survives_a_refresh_that_fails(tmp_path: Path) -> None:
    """Until the secret store holds it, the lake's legacy copy may be the only one: a refresh
    that fails (Spotify's 5xx) must not drop it."""
    storage = LocalStorage(str(tmp_path / "lake"))
    store = LocalSecretStore(tmp_path / "secrets.json")
    source = tokens.EnvRefreshToken("R-env", store)
    from chalicelib.storage import update_json

    legacy = {"refresh_token": "R-legacy", "seeded_from": source.seed, "lease": None}
    update_json(storage, token_state_key("u1"), lambda _: legacy)

    def down(token: str) -> dict[str, Any]:
        raise SpotifyCallError("server_error", "accounts service answered 503", status=503)

    with pytest.raises(SpotifyCallError, match="503"):
        UserAuth(storage, "u1", source, down, sleep=_no_sleep).get_access_token()
    kept = get_json(storage, token_state_key("u1"))
    assert kept["refresh_token"] == "R-legacy"

    def up(token: str) -> dict[str, Any]:
        assert token == "R-legacy"
        return {"access_token": "A-new", "expires_in": 3600}

    assert UserAuth(storage, "u1", source, up, sleep=_no_sleep).get_access_token() == "A-new"
    assert source.load({}) == "R-legacy"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _auth(
    tmp_path: Path, refresher: Any, clock: Clock, store: SecretStore | None = None
) -> UserAuth:
    storage = LocalStorage(str(tmp_path / "lake"))
    store = store or LocalSecretStore(tmp_path / "secrets.json")
    if store.get(refresh_token_name("u1")) is None:
        store.put(refresh_token_name("u1"), "R-old")
    return UserAuth(
        storage, "u1", StoredRefreshToken(store, "u1"), refresher, wall=clock, sleep=_no_sleep
    )


def test_the_lease_outlasts_the_worst_refresh(tmp_path: Path) -> None:
    """Before: a 30 s lease, and a refresh could take 31.5 s (3 tries of a 10 s timeout and
    1.5 s of backoff): a second run then refreshed with the same token and broke the first."""
    backoff = sum(0.5 * 2**i for i in range(spotify_client.TOKEN_ATTEMPTS - 1))
    worst = spotify_client.TOKEN_ATTEMPTS * spotify_client.REQUEST_TIMEOUT_SECONDS + backoff
    assert worst == tokens.WORST_REFRESH_SECONDS  # the constant follows the client's
    assert worst < tokens.LEASE_SECONDS
    assert tokens.LEASE_SECONDS > tokens.SAVE_BUDGET_SECONDS

    clock = Clock()
    others: list[bool] = []

    def slow_refresher(token: str) -> dict[str, Any]:
        clock.now += worst  # the slowest refresh
        rival = _auth(tmp_path, slow_refresher, clock)
        others.append(rival._take_lease())  # another run wants to refresh now
        return {"access_token": "A-1", "expires_in": 3600, "refresh_token": "R-new"}

    assert _auth(tmp_path, slow_refresher, clock).get_access_token() == "A-1"
    assert others == [False]


def test_the_stored_token_is_tried_when_the_pending_one_is_refused(tmp_path: Path) -> None:
    """Spotify kept the old token usable after rotating (or refused the pending one): the user
    stays connected on the stored token and the dead pending token is dropped."""
    clock = Clock()
    inner = LocalSecretStore(tmp_path / "secrets.json")
    inner.put(refresh_token_name("u1"), "R-old")
    store = FlakyStore(inner, failures=tokens.SAVE_ATTEMPTS)
    tried: list[str] = []

    def first(token: str) -> dict[str, Any]:
        tried.append(token)
        return {"access_token": "A-1", "expires_in": 3600, "refresh_token": "R-rotated"}

    with pytest.raises(SpotifyCallError) as failed:
        _auth(tmp_path, first, clock, store).get_access_token()
    assert failed.value.reason == "token_save_failed"
    assert "R-rotated" not in str(failed.value)

    def second(token: str) -> dict[str, Any]:
        tried.append(token)
        if token == "R-rotated":
            raise TokenRefused("token refresh refused: invalid_grant")
        return {"access_token": "A-2", "expires_in": 3600}

    assert _auth(tmp_path, second, clock, store).get_access_token() == "A-2"
    assert tried == ["R-old", "R-rotated", "R-old"]
    assert store.get(refresh_token_name("u1")) == "R-old"
    assert "pending" not in get_json(LocalStorage(str(tmp_path / "lake")), token_state_key("u1"))


def test_a_refused_token_releases_the_lease(tmp_path: Path) -> None:
    clock = Clock()

    def refused(token: str) -> dict[str, Any]:
        raise TokenRefused("token refresh refused: invalid_grant")

    auth = _auth(tmp_path, refused, clock)
    with pytest.raises(TokenRefused):
        auth.get_access_token()
    assert get_json(auth.storage, token_state_key("u1"))["lease"] is None

