"""`StandIn`: the loopback HTTP server that plays Spotify (accounts service and Web API).

One `ThreadingHTTPServer` on 127.0.0.1 and an ephemeral port serves both: `/authorize` and
`/api/token` at the root (the accounts URL), the Web API under `/v1/`. A single lock guards the
world, the tokens, the clock and the log, so tests may mutate the world between calls.

Faults, for tests and the demo: `inject` (any answer, N times), `storm` (consecutive 5xx on one
endpoint), `quota_after` / `lock_out` (429 `QUOTA_EXCEEDED` for hours), `revoke_user` (refused
tokens until the user connects again), `rewrite` (poison answers). `requests` is the log of
every request received, `web_api_calls()` their count as Spotify's quota sees it.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from spotify_standin import webapi
from spotify_standin.accounts import Accounts
from spotify_standin.http import Answer, Call, Request, api_error, oauth_error
from spotify_standin.world import World

DEFAULT_CLIENT_ID = "standin-client-id"
DEFAULT_CLIENT_SECRET = "standin-client-secret"  # the fake's own, not a real secret
_INJECTED_MESSAGES = {429: "API rate limit exceeded", 503: "Service unavailable"}
# A quota lockout lasts 13-24 hours in the wild (contract §1); 20 h unless a test says otherwise.
DEFAULT_LOCKOUT = timedelta(hours=20)


@dataclass
class _Quota:
    """The developer account's quota: `calls_left` Web API calls, then a lockout of `lasting`
    from the moment it is spent (on the stand-in's clock)."""

    calls_left: int
    lasting: timedelta
    locked_at: datetime | None = None


# `edit(body, user_id)` changes a 2xx answer's JSON body in place before it is sent.
AnswerEdit = Callable[[Any, str | None], None]


@dataclass(frozen=True)
class _Rewrite:
    pattern: re.Pattern[str]
    edit: AnswerEdit


@dataclass
class _Injection:
    pattern: re.Pattern[str]
    status: int
    times: int
    headers: dict[str, str]
    body: Any
    query: dict[str, str]


class StandIn:
    """A fake Spotify on loopback. Use as a context manager, or `start()` / `stop()`."""

    def __init__(
        self,
        world: World,
        *,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        token_lifetime: timedelta = timedelta(hours=1),
        redirect_uris: tuple[str, ...] = (),
    ) -> None:
        self.world = world
        self.client_id = client_id
        self.client_secret = client_secret
        self.authorize_as: str | None = None  # None: the world's first user
        self._accounts = Accounts(client_id, client_secret, token_lifetime, redirect_uris)
        self._now = world.start
        self._lock = threading.RLock()
        self._log: list[Request] = []
        self._injections: list[_Injection] = []
        self._quota: _Quota | None = None
        self._rewrites: list[_Rewrite] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> StandIn:
        """Serve on 127.0.0.1 from a daemon thread; returns self."""
        if self._server is not None:
            return self
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        # A short poll interval makes stop() quick (serve_forever checks for shutdown per poll).
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="spotify-standin",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = self._thread = None

    def __enter__(self) -> StandIn:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # --- addresses and credentials --------------------------------------------------------

    @property
    def accounts_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the stand-in is not running: call start() first")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/"

    @property
    def api_url(self) -> str:
        return self.accounts_url + "v1/"

    def redirect_uri_allowed(self, uri: str) -> bool:
        return self._accounts.redirect_uri_allowed(uri)

    def refresh_token(self, user_id: str) -> str:
        """A valid refresh token for `user_id`, issued now (as after a completed connect)."""
        with self._lock:
            if user_id not in self.world.users:
                raise KeyError(f"no user {user_id!r} in the world")
            return self._accounts.refresh_token(user_id)

    @property
    def rotate_refresh_tokens(self) -> bool:
        return self._accounts.rotate_refresh_tokens

    @rotate_refresh_tokens.setter
    def rotate_refresh_tokens(self, value: bool) -> None:
        with self._lock:
            self._accounts.rotate_refresh_tokens = value

    @property
    def world_lock(self) -> threading.RLock:
        """Hold it to make several changes to `world` at once, unseen by concurrent requests."""
        return self._lock

    # --- clock ----------------------------------------------------------------------------

    @property
    def now(self) -> datetime:
        return self._now

    def set_now(self, moment: datetime) -> None:
        if moment.tzinfo is None:
            raise ValueError("the stand-in's clock needs a time-zone-aware datetime")
        with self._lock:
            self._now = moment

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._now += delta

    # --- log and fault injection ----------------------------------------------------------

    @property
    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._log)

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

    def inject(
        self,
        path_regex: str,
        status: int,
        times: int = 1,
        headers: dict[str, str] | None = None,
        body: Any = None,
        query: dict[str, str] | None = None,
    ) -> None:
        """The next `times` requests whose path matches `path_regex` (and whose query holds
        every item of `query`) get this answer instead."""
        with self._lock:
            self._injections.append(
                _Injection(
                    re.compile(path_regex),
                    status,
                    times,
                    dict(headers or {}),
                    body,
                    dict(query or {}),
                )
            )

    def quota_after(self, calls: int, retry_after: timedelta = DEFAULT_LOCKOUT) -> None:
        """Spotify's quota (contract §1, §9): `calls` more Web API calls are answered, then
        every one gets 429 with `error.reason` `QUOTA_EXCEEDED` and a `Retry-After` of what is
        left of `retry_after` (hours), until the stand-in's clock passes the lockout's end."""
        with self._lock:
            self._quota = _Quota(max(0, calls), retry_after)

    def lock_out(self, retry_after: timedelta = DEFAULT_LOCKOUT) -> None:
        """Lock the app out now, as a spent quota does (`quota_after(0, retry_after)`)."""
        self.quota_after(0, retry_after)

    def lift_quota(self) -> None:
        """No quota and no lockout any more."""
        with self._lock:
            self._quota = None

    def storm(
        self,
        path_regex: str,
        statuses: Sequence[int] = (500, 502, 503),
        query: dict[str, str] | None = None,
    ) -> None:
        """A 5xx storm on one endpoint: the next requests matching `path_regex` get these
        server errors, one each, in this order (whoever asks); then the endpoint answers again."""
        for status in statuses:
            self.inject(path_regex, status, times=1, query=query)

    def revoke_user(self, user_id: str) -> None:
        """The user removed the app's access: every refresh token issued to them so far
        answers `invalid_grant`, every access token 401. A token issued later (`refresh_token`,
        as after the user connects again) works."""
        with self._lock:
            accounts = self._accounts
            # The accounts service keeps its tokens to itself; revoking by owner is the one
            # operation it lacks, and it is the stand-in's own state.
            for token, (owner, _) in list(accounts._refresh.items()):
                if owner == user_id:
                    accounts.revoke_refresh_token(token)
            for token, access in list(accounts._access.items()):
                if access.user_id == user_id:
                    del accounts._access[token]

    def rewrite(self, path_regex: str, edit: AnswerEdit) -> None:
        """Poison answers: from now on every 2xx Web API answer whose path matches goes
        through `edit(body, user_id)` (changing the JSON body in place) before it is sent —
        a value Spotify may send that the pipeline must survive. `clear_rewrites()` ends it."""
        with self._lock:
            self._rewrites.append(_Rewrite(re.compile(path_regex), edit))

    def clear_rewrites(self) -> None:
        with self._lock:
            self._rewrites.clear()

    def web_api_calls(self, user_id: str | None = None) -> int:
        """Requests the Web API (`/v1/`) received, errors and refusals included: what
        Spotify's quota counts. `user_id`: only those answered for that user's token (an
        injected or quota answer comes before the token is read: it counts for no user)."""
        with self._lock:
            return sum(
                1
                for r in self._log
                if r.path.startswith("/v1/") and (user_id is None or r.user_id == user_id)
            )

    @property
    def locked_until(self) -> datetime | None:
        """The end of the current lockout on the stand-in's clock, or None."""
        with self._lock:
            quota = self._quota
            if quota is None or quota.locked_at is None:
                return None
            end = quota.locked_at + quota.lasting
            return end if self._now < end else None

    def _quota_answer(self, call: Call) -> Answer | None:
        """429 QUOTA_EXCEEDED while locked out; counts the quota down otherwise."""
        quota = self._quota
        if quota is None or not call.path.startswith("/v1/"):
            return None
        if quota.locked_at is not None:
            end = quota.locked_at + quota.lasting
            if self._now >= end:  # the window rolled on: the app may call again
                self._quota = None
                return None
            seconds = max(1, int((end - self._now).total_seconds()))
            body = {
                "error": {
                    "status": 429,
                    "message": "API rate limit exceeded",
                    "reason": "QUOTA_EXCEEDED",
                }
            }
            return Answer(429, body, {"Retry-After": str(seconds)})
        if quota.calls_left <= 0:
            quota.locked_at = self._now
            return self._quota_answer(call)
        quota.calls_left -= 1
        return None

    # --- dispatch -------------------------------------------------------------------------

    def answer(self, call: Call) -> Answer:
        """Answer one call and log it (the HTTP handler's only entry point)."""
        with self._lock:
            try:
                answer = self._quota_answer(call) or self._injected(call) or self._dispatch(call)
                self._rewritten(call, answer)
            except Exception as error:  # a world the test left inconsistent: say so, as a 500
                answer = api_error(500, f"stand-in failed: {type(error).__name__}: {error}")
            self._log.append(
                Request(
                    call.method,
                    call.path,
                    dict(call.query),
                    answer.status,
                    answer.user_id,
                    answer.grant_type,
                )
            )
            return answer

    def _rewritten(self, call: Call, answer: Answer) -> None:
        if not (200 <= answer.status < 300 and call.path.startswith("/v1/")):
            return
        for rewrite in self._rewrites:
            if rewrite.pattern.search(call.path):
                rewrite.edit(answer.body, answer.user_id)

    def _injected(self, call: Call) -> Answer | None:
        for injection in self._injections:
            asked = injection.query.items() <= dict(call.query).items()
            if injection.times > 0 and injection.pattern.search(call.path) and asked:
                injection.times -= 1
                if injection.body is not None:
                    return Answer(injection.status, injection.body, dict(injection.headers))
                message = _INJECTED_MESSAGES.get(injection.status, "Injected failure")
                return api_error(injection.status, message, dict(injection.headers))
        return None

    def _dispatch(self, call: Call) -> Answer:
        if call.path == "/authorize" and call.method == "GET":
            user_id = self.authorize_as or next(iter(self.world.users))
            return self._accounts.authorize(call, user_id, self._now)
        if call.path == "/api/token":
            if call.method != "POST":
                return oauth_error(405, "invalid_request", "POST only")
            return self._accounts.token(call, self._now)
        if call.path.startswith("/v1/"):
            token = self._accounts.bearer(call, self._now)
            if isinstance(token, Answer):
                return token
            answer = webapi.handle(call, token, self._now, self.world, self.api_url)
            answer.user_id = token.user_id
            return answer
        return api_error(404, "Service not found")


def _handler_for(standin: StandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "spotify-standin"

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def do_PUT(self) -> None:
            self._serve()

        def do_DELETE(self) -> None:
            self._serve()

        def log_message(self, format: str, *args: Any) -> None:
            """Silent: the request log is `StandIn.requests`."""

        def _serve(self) -> None:
            answer = standin.answer(self._call())
            payload = b"" if answer.body is None else json.dumps(answer.body).encode()
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            if answer.body is not None:
                self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _call(self) -> Call:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            host = self.headers.get("Host", "127.0.0.1")
            return Call(
                method=self.command,
                path=parts.path,
                query=dict(parse_qsl(parts.query, keep_blank_values=True)),
                headers={k.lower(): v for k, v in self.headers.items()},
                form=dict(parse_qsl(body, keep_blank_values=True)),
                url=f"http://{host}{self.path}",
            )

    return Handler
