"""spotipy fit for Lambda: own sessions, timeouts, base URLs from `Config`, bounded waiting.

spotipy's default session retries 429s by sleeping the whole `Retry-After` (hours, in the
wild) and its default token cache writes `.cache` into the working directory. Here each client
gets a plain `requests.Session()` (fails fast, keeps the headers), an in-memory or lake-backed
token cache, and `SpotifyClient.call()` decides what is worth waiting for.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
import spotipy
from spotipy.cache_handler import MemoryCacheHandler
from spotipy.oauth2 import SpotifyOauthError

from chalicelib import layout
from chalicelib.config import Config
from chalicelib.spotify.errors import SpotifyCallError, TokenRefused
from chalicelib.spotify.recorder import Recorder

T = TypeVar("T")


def _not_http_errors(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("HTTP Error for")


# spotipy logs every 4xx/5xx at ERROR, expected ones (403 on a followed playlist) included.
# The run record and the envelope already say what failed and why; keep the logs for real news.
logging.getLogger("spotipy.client").addFilter(_not_http_errors)

REQUEST_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class AppCredentials:
    """The Spotify app (client id/secret, redirect URI). Never logged."""

    client_id: str
    client_secret: str
    redirect_uri: str = "http://127.0.0.1:8765/callback"  # `spotify-etl connect`'s default

    def __repr__(self) -> str:
        return f"AppCredentials(client_id={self.client_id!r}, client_secret=***)"


@dataclass(frozen=True)
class RetryPolicy:
    """How long a call may wait. Waiting longer than this stops the dataset, not the run."""

    max_retry_after: float = 10.0  # longest 429 Retry-After honoured, seconds
    attempts: int = 4  # tries per call, the first included (a retry after a 401 refresh is free)
    backoff: float = 0.5  # first wait after a 5xx/connection error; doubles each time
    request_timeout: float = REQUEST_TIMEOUT_SECONDS


def oauth_manager(config: Config, credentials: AppCredentials) -> spotipy.SpotifyOAuth:
    """SpotifyOAuth against `Config`'s accounts URL, with a timeout and no `.cache` file."""
    oauth = spotipy.SpotifyOAuth(
        client_id=credentials.client_id,
        client_secret=credentials.client_secret,
        redirect_uri=credentials.redirect_uri,
        cache_handler=MemoryCacheHandler(),
        requests_session=requests.Session(),
        requests_timeout=REQUEST_TIMEOUT_SECONDS,
        open_browser=False,
    )
    # Instance attributes shadow spotipy's class-level production URLs.
    oauth.OAUTH_TOKEN_URL = config.spotify_accounts_url + "api/token"
    oauth.OAUTH_AUTHORIZE_URL = config.spotify_accounts_url + "authorize"
    return oauth


TOKEN_ATTEMPTS = 3  # a refresh that fails for a passing reason (5xx, network) is tried again


def token_refresher(
    oauth: spotipy.SpotifyOAuth, sleep: Callable[[float], None] = time.sleep
) -> Callable[[str], dict[str, Any]]:
    """The HTTP refresh of a user token, with spotipy's errors turned into ours. A refusal
    (`invalid_grant`: revoked or rotated away) is final; anything else is retried, bounded."""

    def refresh(refresh_token: str) -> dict[str, Any]:
        for attempt in range(TOKEN_ATTEMPTS):
            try:
                return dict(oauth.refresh_access_token(refresh_token))
            except SpotifyOauthError as error:
                if error.error in ("invalid_grant", "invalid_client", "unauthorized_client"):
                    raise TokenRefused(f"token refresh refused: {error.error}") from None
                failure = SpotifyCallError("token_error", f"token refresh failed: {error.error}")
            except requests.RequestException as error:
                failure = SpotifyCallError("connection", f"token refresh: {type(error).__name__}")
            if attempt + 1 < TOKEN_ATTEMPTS:
                sleep(0.5 * 2**attempt)
        raise failure

    return refresh


class SpotifyClient:
    """One user's spotipy client whose calls wait only as long as the policy and deadline allow.

    Every answer (errors included) lands in `recorder`; `call()` raises `SpotifyCallError` when
    a call cannot succeed in time, and the caller stops that dataset with its reason.
    """

    def __init__(
        self,
        config: Config,
        auth_manager: Any,
        *,
        policy: RetryPolicy | None = None,
        deadline: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.policy = policy or RetryPolicy()
        self.deadline = deadline  # a time.monotonic() value
        self.sleep = sleep
        self.recorder = Recorder(config.spotify_api_url)
        session = requests.Session()  # no urllib3 Retry: 429s come back at once, headers kept
        session.hooks["response"].append(self.recorder.hook)
        self.auth = auth_manager
        self.sp = spotipy.Spotify(
            auth_manager=auth_manager,
            requests_session=session,
            requests_timeout=self.policy.request_timeout,
        )
        self.sp.prefix = config.spotify_api_url
        # The request budget (chalicelib.quota.CallGate), set by the runner per dataset: asked
        # before every request, told when Spotify locks the app out. None: no budget (tools).
        self.gate: Any = None

    def call(self, fn: Callable[[spotipy.Spotify], T]) -> T:
        """`fn(sp)`, retried on 5xx/connection errors and short 429s, within the deadline."""
        refreshed = False
        backoff = self.policy.backoff
        # Answers worth a retry (429, 5xx, connection errors) count against `attempts`; the one
        # 401 that makes us refresh an expired token does not (hourly, it would otherwise cost
        # every other poll one of its retries).
        failures = 0
        while True:
            self._before_call()
            last = failures + 1 >= self.policy.attempts
            try:
                return fn(self.sp)
            except spotipy.SpotifyException as error:
                status = error.http_status
                if status == 401 and not refreshed and hasattr(self.auth, "invalidate"):
                    # The cached access token was refused: refresh once and try again.
                    self.auth.invalidate()
                    refreshed = True
                    continue
                if status == 429:
                    asked = _retry_after(error.headers)
                    locked = _lockout(error, asked, self.policy.max_retry_after)
                    if locked is not None:
                        raise self._locked_out(error, asked, locked) from None
                    wait = backoff if asked is None else asked
                    if last or not self._can_wait(wait, self.policy.max_retry_after):
                        raise SpotifyCallError(
                            "rate_limited", _message(error), status=429, retry_after=asked
                        ) from None
                    self.sleep(wait)
                    failures += 1
                    continue
                if status >= 500:
                    if last or not self._can_wait(backoff, backoff):
                        raise SpotifyCallError(
                            "server_error", _message(error), status=status
                        ) from None
                    self.sleep(backoff)
                    backoff *= 2
                    failures += 1
                    continue
                # A 401 after a refresh lands here too: the new token was refused as well.
                raise SpotifyCallError("http_error", _message(error), status=status) from None
            except (requests.ConnectionError, requests.Timeout) as error:
                if last or not self._can_wait(backoff, backoff):
                    raise SpotifyCallError("connection", type(error).__name__) from None
                self.sleep(backoff)
                backoff *= 2
                failures += 1

    def _locked_out(
        self, error: spotipy.SpotifyException, asked: int | None, reason: str
    ) -> SpotifyCallError:
        """A lockout (QUOTA_EXCEEDED, or a Retry-After past the cap): tell the gate, so that no
        later call of this run or of any run before its end reaches Spotify."""
        message = f"{reason}: {_message(error)}"
        if self.gate is None:  # no budget here (a tool's one call): just this call stops
            return SpotifyCallError("rate_limited", message, status=429, retry_after=asked)
        until = layout.iso(self.gate.lock_out(asked, reason))
        return SpotifyCallError(
            "cooldown", message, status=429, retry_after=asked, cooldown_until=until
        )

    def pages(self, first: Callable[[spotipy.Spotify], dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """The first page, then every page its absolute `next` links lead to."""
        page: dict[str, Any] | None = self.call(first)
        while page is not None:
            yield page
            page = self.call(lambda sp, p=page: sp.next(p)) if page.get("next") else None

    def take_record(self) -> tuple[list[dict[str, Any]], dict[str, int]]:
        """The answers and call counts since the last take (one dataset's worth)."""
        return self.recorder.take()

    def _remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def _can_wait(self, seconds: float, cap: float) -> bool:
        remaining = self._remaining()
        return seconds <= cap and (remaining is None or seconds < remaining - 1.0)

    def _before_call(self) -> None:
        """Stop at the deadline; never let one request outlast it."""
        remaining = self._remaining()
        if remaining is not None and remaining <= 0:
            raise SpotifyCallError("deadline", "the run reached its deadline")
        if self.gate is not None:
            self.gate.before_call()  # raises `cooldown` / `budget` instead of calling
        timeout = self.policy.request_timeout
        if remaining is not None:
            timeout = max(0.5, min(timeout, remaining))
        self.sp.requests_timeout = timeout


def _retry_after(headers: Any) -> int | None:
    value = (headers or {}).get("Retry-After")
    try:
        return max(0, int(value)) if value is not None else None
    except ValueError:
        return None


def _lockout(error: spotipy.SpotifyException, asked: int | None, cap: float) -> str | None:
    """Why a 429 is a lockout rather than a pause (contract §9), or None for a pause."""
    if getattr(error, "reason", None) == "QUOTA_EXCEEDED":
        return "QUOTA_EXCEEDED"
    if asked is not None and asked > cap:
        return "retry_after_past_cap"
    return None


def _message(error: spotipy.SpotifyException) -> str:
    # spotipy's msg is "<url>:\n <message>": keep it on one line.
    return " ".join(str(error.msg).split())
