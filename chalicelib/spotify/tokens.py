"""User access tokens, cached per user in the lake's state and refreshed under a lease.

Several runs of one user may run at once (a poll, the daily run, `POST /runs`). Spotify may
rotate the refresh token on every refresh, and then the old one stops working: two runs that
refresh at the same moment with the same refresh token would break each other. So the access
token lives in `state/tokens/<user>.json`, and only the run holding that object's lease (taken
with a conditional write) refreshes; the others wait for its result.
"""

from __future__ import annotations

import hashlib
import secrets as token_bytes
import time
from collections.abc import Callable
from typing import Any, Protocol

from chalicelib import layout
from chalicelib.secrets import SecretStore, refresh_token_name
from chalicelib.spotify.errors import SpotifyCallError, TokenRefused
from chalicelib.storage import Storage, get_json, update_json

# A cached token this close to expiry is refreshed rather than used.
EXPIRY_SLACK_SECONDS = 60
LEASE_SECONDS = 30.0

Refresher = Callable[[str], dict[str, Any]]


def token_state_key(user_id: str) -> str:
    return layout.state_key("tokens", user_id)


class RefreshTokenSource(Protocol):
    """Where a user's current refresh token is read from, and a rotated one is kept."""

    def load(self, doc: dict[str, Any]) -> str | None: ...

    def save(self, new_token: str) -> dict[str, Any]:
        """Persist `new_token`; return fields to keep in the token state document."""
        ...


class StoredRefreshToken:
    """A connected user's refresh token, in the secret store."""

    def __init__(self, store: SecretStore, user_id: str) -> None:
        self.store = store
        self.name = refresh_token_name(user_id)

    def load(self, doc: dict[str, Any]) -> str | None:
        return self.store.get(self.name)

    def save(self, new_token: str) -> dict[str, Any]:
        self.store.put(self.name, new_token)
        return {}


class EnvRefreshToken:
    """The `SPOTIFY_REFRESH_TOKEN` user: a rotated token is kept in the token state document.

    The environment value cannot be rewritten, so a rotated token is stored next to the cached
    access token and preferred — as long as it descends from the same environment value (a new
    `SPOTIFY_REFRESH_TOKEN` starts afresh).
    """

    def __init__(self, env_token: str) -> None:
        self.env_token = env_token
        self.seed = fingerprint(env_token)

    def load(self, doc: dict[str, Any]) -> str | None:
        if doc.get("seeded_from") == self.seed and doc.get("refresh_token"):
            return str(doc["refresh_token"])
        return self.env_token

    def save(self, new_token: str) -> dict[str, Any]:
        return {"refresh_token": new_token, "seeded_from": self.seed}


def fingerprint(token: str) -> str:
    """A one-way name for a token: to recognise it again without keeping it."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


class UserAuth:
    """A spotipy auth manager: `get_access_token()` serves the user's cached access token.

    spotipy calls `get_access_token(as_dict=False)` before each request; this answers from
    memory, else from the state cache, else refreshes (holding the lease) and caches the result.
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
        self.refresher = refresher
        self.wall = wall
        self.sleep = sleep
        self.lease_seconds = lease_seconds
        self.key = token_state_key(user_id)
        self.owner = token_bytes.token_hex(8)
        self._token: str | None = None
        self._expires_at = 0.0
        self._rejected: str | None = None

    def get_access_token(self, as_dict: bool = False) -> str:
        if self._token is not None and self._expires_at > self.wall() + EXPIRY_SLACK_SECONDS:
            return self._token
        give_up = self.wall() + 2 * self.lease_seconds
        while True:
            doc = get_json(self.storage, self.key) or {}
            if self._usable(doc):
                return self._keep(doc)
            if self._take_lease():
                return self._refresh()
            if self.wall() > give_up:
                raise SpotifyCallError("token_busy", f"token of {self.user_id} stayed leased")
            # Another run is refreshing: its result lands in the same document shortly.
            self.sleep(0.05)

    def invalidate(self) -> None:
        """Spotify answered 401 to the current token: never use that one again."""
        self._rejected = self._token
        self._token = None
        self._expires_at = 0.0

    def _usable(self, doc: dict[str, Any]) -> bool:
        token = doc.get("access_token")
        return (
            bool(token)
            and token != self._rejected
            and float(doc.get("expires_at") or 0) > self.wall() + EXPIRY_SLACK_SECONDS
        )

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
            if self._usable(doc):  # refreshed by someone else meanwhile
                return None
            doc["lease"] = {"owner": self.owner, "until": self.wall() + self.lease_seconds}
            return doc

        written = update_json(self.storage, self.key, claim) or {}
        return (written.get("lease") or {}).get("owner") == self.owner

    def _refresh(self) -> str:
        doc = get_json(self.storage, self.key) or {}
        refresh_token = self.source.load(doc)
        try:
            if not refresh_token:
                raise TokenRefused(f"no refresh token for user {self.user_id}")
            info = self.refresher(refresh_token)
        except BaseException:
            self._release({})
            raise
        extra: dict[str, Any] = {}
        rotated = info.get("refresh_token")
        if rotated and rotated != refresh_token:
            # Persisted before the lease is released: whoever refreshes next reads the new one.
            extra = self.source.save(rotated)
        fields = {
            "access_token": info["access_token"],
            "expires_at": self.wall() + int(info.get("expires_in", 3600)),
            **extra,
        }
        self._release(fields)
        return self._keep(fields)

    def _release(self, fields: dict[str, Any]) -> None:
        def finish(doc: dict[str, Any] | None) -> dict[str, Any] | None:
            doc = dict(doc or {})
            if (doc.get("lease") or {}).get("owner") == self.owner:
                doc["lease"] = None
            doc.update(fields)
            return doc

        update_json(self.storage, self.key, finish)
