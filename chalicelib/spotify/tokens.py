"""User access tokens, cached per user in the secret store and refreshed under a lease.

Several runs of one user may run at once (a poll, the daily run, `POST /runs`). Spotify may
rotate the refresh token on every refresh, and then the old one stops working: two runs that
refresh at the same moment with the same refresh token would break each other. So only the run
holding the user's lease (`state/tokens/<user>.json`, taken with a conditional write; it holds
no secret) refreshes; the others wait for its result.

Tokens themselves live in the secret store, never in the lake: the access token under
`users/<user>/access_token`, the refresh token under `users/<user>/refresh_token` (or, for the
`SPOTIFY_REFRESH_TOKEN` user, a rotated one under `env/refresh_token`).

A rotated refresh token is stored (retried, bounded) before the new access token is used. If
storing it fails for good, the dataset fails with `token_save_failed`, the lease is released,
and the new refresh token is kept in the lease document as `pending` (with the fingerprint of
the stored token it replaces): the lake is the one place that does not depend on the secret
store that just failed, and it is the lake the next refresh reads anyway. The next refresh tries
the pending token first, then the stored one (which Spotify may still accept), and clears the
pending token once a refresh token is stored again — the user is never silently disconnected.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets as token_bytes
import time
from collections.abc import Callable
from typing import Any, Protocol

from chalicelib import layout
from chalicelib.secrets import (
    ENV_REFRESH_TOKEN,
    SecretStore,
    access_token_name,
    refresh_token_name,
)
from chalicelib.spotify.errors import SpotifyCallError, TokenRefused
from chalicelib.storage import Storage, get_json, update_json

log = logging.getLogger(__name__)

# A cached token this close to expiry is refreshed rather than used.
EXPIRY_SLACK_SECONDS = 60

# The worst refresh: the token request is tried `client.TOKEN_ATTEMPTS` (3) times with
# `client.REQUEST_TIMEOUT_SECONDS` (10 s) each and 0.5 + 1 s between: 31.5 s. Saving a rotated
# token is retried for at most SAVE_BUDGET_SECONDS. The lease is renewed between the two, so
# each phase must fit in one lease: tests/test_tokens_rotation.py checks the arithmetic.
WORST_REFRESH_SECONDS = 3 * 10.0 + 0.5 + 1.0
SAVE_ATTEMPTS = 3
SAVE_BACKOFF_SECONDS = 0.5
SAVE_BUDGET_SECONDS = 20.0
LEASE_SECONDS = 90.0
LEASE_POLL_MAX_SECONDS = 1.0  # a waiting run reads the lease at most this rarely

# Fields a token state document held before tokens moved to the secret store; dropped on the
# first refresh so no token stays in the lake.
_LEGACY_FIELDS = ("access_token", "expires_at", "refresh_token", "seeded_from")

Refresher = Callable[[str], dict[str, Any]]


def token_state_key(user_id: str) -> str:
    """The user's lease document (owner, until, maybe a pending refresh token)."""
    return layout.state_key("tokens", user_id)


class RefreshTokenSource(Protocol):
    """Where a user's current refresh token is read from, and a rotated one is kept."""

    store: SecretStore

    def load(self, doc: dict[str, Any]) -> str | None: ...

    def save(self, new_token: str) -> None:
        """Persist `new_token` in the secret store; raise when that failed."""
        ...


class StoredRefreshToken:
    """A connected user's refresh token, in the secret store."""

    def __init__(self, store: SecretStore, user_id: str) -> None:
        self.store = store
        self.name = refresh_token_name(user_id)

    def load(self, doc: dict[str, Any]) -> str | None:
        return self.store.get(self.name)

    def save(self, new_token: str) -> None:
        self.store.put(self.name, new_token)


class EnvRefreshToken:
    """The `SPOTIFY_REFRESH_TOKEN` user: a rotated token is kept in the secret store.

    The environment value cannot be rewritten, so a rotated token is stored under
    `env/refresh_token` and preferred — as long as it descends from the same environment value
    (a new `SPOTIFY_REFRESH_TOKEN` starts afresh). A lake written before tokens left `state/`
    may still hold one in the lease document: it is read once, then moved.
    """

    def __init__(self, env_token: str, store: SecretStore) -> None:
        self.env_token = env_token
        self.store = store
        self.seed = fingerprint(env_token)

    def load(self, doc: dict[str, Any]) -> str | None:
        try:
            stored = json.loads(self.store.get(ENV_REFRESH_TOKEN) or "{}")
        except json.JSONDecodeError:
            stored = {}
        if stored.get("seeded_from") == self.seed and stored.get("refresh_token"):
            return str(stored["refresh_token"])
        if doc.get("seeded_from") == self.seed and doc.get("refresh_token"):
            return str(doc["refresh_token"])  # legacy: from the lake's state
        return self.env_token

    def save(self, new_token: str) -> None:
        value = json.dumps({"seeded_from": self.seed, "refresh_token": new_token})
        self.store.put(ENV_REFRESH_TOKEN, value)


def fingerprint(token: str) -> str:
    """A one-way name for a token: to recognise it again without keeping it."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


class UserAuth:
    """A spotipy auth manager: `get_access_token()` serves the user's cached access token.

    spotipy calls `get_access_token(as_dict=False)` before each request; this answers from
    memory, else from the secret store's cache, else refreshes (holding the lease) and caches
    the result.
    """

    def __init__(
        self,
        storage: Storage,
        user_id: str,
        source: RefreshTokenSource,
        refresher: Refresher,
        *,
        wall: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        lease_seconds: float = LEASE_SECONDS,
    ) -> None:
        self.storage = storage
        self.user_id = user_id
        self.source = source
        self.store = source.store
        self.refresher = refresher
        self.wall = wall
        self.sleep = sleep
        self.lease_seconds = lease_seconds
        self.key = token_state_key(user_id)
        self.cache_name = access_token_name(user_id)
        self.owner = token_bytes.token_hex(8)
        self._token: str | None = None
        self._expires_at = 0.0
        self._rejected: str | None = None

    def get_access_token(self, as_dict: bool = False) -> str:
        if self._token is not None and self._expires_at > self.wall() + EXPIRY_SLACK_SECONDS:
            return self._token
        give_up = self.wall() + 2 * self.lease_seconds
        pause = 0.05
        while True:
            cached = self._cached()
            if cached is not None:
                return self._keep(cached)
            if self._take_lease():
                cached = self._cached()  # refreshed by someone between our read and the lease
                if cached is not None:
                    self._release({})
                    return self._keep(cached)
                return self._refresh()
            if self.wall() > give_up:
                raise SpotifyCallError("token_busy", f"token of {self.user_id} stayed leased")
            # Another run is refreshing: its result lands in the secret store shortly.
            self.sleep(pause)
            pause = min(pause * 2, LEASE_POLL_MAX_SECONDS)

    def invalidate(self) -> None:
        """Spotify answered 401 to the current token: never use that one again."""
        self._rejected = self._token
        self._token = None
        self._expires_at = 0.0

    def _cached(self) -> dict[str, Any] | None:
        """The cached access token if still good for a while (and not the one refused)."""
        try:
            doc = json.loads(self.store.get(self.cache_name) or "{}")
        except json.JSONDecodeError:
            return None
        token = doc.get("access_token")
        fresh = float(doc.get("expires_at") or 0) > self.wall() + EXPIRY_SLACK_SECONDS
        return doc if token and token != self._rejected and fresh else None

    def _keep(self, doc: dict[str, Any]) -> str:
        self._token = str(doc["access_token"])
        self._expires_at = float(doc["expires_at"])
        return self._token

    def _take_lease(self) -> bool:
        def claim(doc: dict[str, Any] | None) -> dict[str, Any] | None:
            doc = dict(doc or {})
            lease = doc.get("lease") or {}
            if lease.get("owner") not in (None, self.owner) and lease["until"] > self.wall():
                return None
            doc["lease"] = {"owner": self.owner, "until": self.wall() + self.lease_seconds}
            return doc

        written = update_json(self.storage, self.key, claim) or {}
        return (written.get("lease") or {}).get("owner") == self.owner

    def _renew_lease(self) -> None:
        """A fresh lease for the next phase (saving): each phase fits in one lease."""

        def renew(doc: dict[str, Any] | None) -> dict[str, Any] | None:
            doc = dict(doc or {})
            if (doc.get("lease") or {}).get("owner") not in (None, self.owner):
                return None  # ours ran out and someone else holds it: keep theirs
            doc["lease"] = {"owner": self.owner, "until": self.wall() + self.lease_seconds}
            return doc

        update_json(self.storage, self.key, renew)

    def _refresh(self) -> str:
        doc = get_json(self.storage, self.key) or {}
        pending = doc.get("pending") or {}
        try:
            current = self.source.load(doc)
            candidates = []
            descends = current and pending.get("rotated_from") == fingerprint(current)
            if descends and pending.get("refresh_token"):
                candidates.append(str(pending["refresh_token"]))
            if current:
                candidates.append(current)
            if not candidates:
                raise TokenRefused(f"no refresh token for user {self.user_id}")
            info, used = self._exchange(candidates)
        except TokenRefused:
            self._release({"pending": None})  # every token we had was refused: none to keep
            raise
        except BaseException:
            self._release({})
            raise
        assert current is not None
        newest = str(info.get("refresh_token") or used)
        if newest != current or doc.get("refresh_token"):  # rotated, or still in the lake
            self._renew_lease()
            try:
                self._save(newest)
            except Exception as error:  # reported as the dataset's reason
                # Kept where the next refresh looks first; the access token is not used, so no
                # data lands on a token whose successor may be lost.
                kept = {"refresh_token": newest, "rotated_from": fingerprint(current)}
                self._release({"pending": {**kept, "since": self.wall()}})
                raise SpotifyCallError(
                    "token_save_failed",
                    f"the refresh token of {self.user_id} was rotated but could not be stored "
                    f"in the secret store ({type(error).__name__}); kept for the next run",
                ) from None
        cached = {
            "access_token": str(info["access_token"]),
            "expires_at": self.wall() + int(info.get("expires_in", 3600)),
        }
        try:
            self.store.put(self.cache_name, json.dumps(cached))
        except Exception as error:  # only a cache: this run still has it
            log.warning("access token of %s not cached: %s", self.user_id, type(error).__name__)
        self._release({"pending": None}, settled=True)
        return self._keep(cached)

    def _exchange(self, candidates: list[str]) -> tuple[dict[str, Any], str]:
        """Refresh with the first token Spotify accepts (the pending one, then the stored)."""
        for position, token in enumerate(candidates):
            try:
                return self.refresher(token), token
            except TokenRefused:
                if position + 1 == len(candidates):
                    raise
        raise TokenRefused(f"no refresh token for user {self.user_id}")  # pragma: no cover

    def _save(self, token: str) -> None:
        """Store the rotated refresh token: SAVE_ATTEMPTS tries within SAVE_BUDGET_SECONDS."""
        stop = self.wall() + SAVE_BUDGET_SECONDS
        for attempt in range(SAVE_ATTEMPTS):
            try:
                self.source.save(token)
                return
            except Exception:
                pause = SAVE_BACKOFF_SECONDS * 2**attempt
                if attempt + 1 == SAVE_ATTEMPTS or self.wall() + pause > stop:
                    raise
                log.warning("refresh token of %s not stored yet, retrying", self.user_id)
                self.sleep(pause)

    def _release(self, fields: dict[str, Any], *, settled: bool = False) -> None:
        """Give the lease up, setting `fields`. `settled`: the refresh token is safe in the
        secret store, so what a legacy document held goes (until then it may be the only copy)."""

        def finish(doc: dict[str, Any] | None) -> dict[str, Any] | None:
            doc = dict(doc or {})
            if settled:
                doc = {k: v for k, v in doc.items() if k not in _LEGACY_FIELDS}
            if (doc.get("lease") or {}).get("owner") == self.owner:
                doc["lease"] = None
            doc.update(fields)
            if doc.get("pending") is None:
                doc.pop("pending", None)
            return doc

        update_json(self.storage, self.key, finish)
