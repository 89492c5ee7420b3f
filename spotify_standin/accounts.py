"""The accounts service: `GET /authorize`, `POST /api/token`, and the tokens they hand out.

Codes, refresh tokens and access tokens live here; expiry follows the stand-in's clock.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode, urlsplit

from spotify_standin.http import Answer, Call, api_error, oauth_error

CODE_LIFETIME = timedelta(minutes=10)
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]", "::1")


@dataclass(frozen=True)
class AccessToken:
    user_id: str | None  # None: a client-credentials token
    expires_at: datetime
    scope: str


@dataclass
class _Code:
    user_id: str
    redirect_uri: str
    scope: str
    expires_at: datetime
    used: bool = False


class Accounts:
    """Issues and checks credentials for one registered app."""

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        token_lifetime: timedelta,
        extra_redirect_uris: tuple[str, ...] = (),
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.token_lifetime = token_lifetime
        self.extra_redirect_uris = extra_redirect_uris
        self.rotate_refresh_tokens = False
        self._codes: dict[str, _Code] = {}
        self._refresh: dict[str, tuple[str, str]] = {}  # token -> (user_id, scope)
        self._access: dict[str, AccessToken] = {}

    def redirect_uri_allowed(self, uri: str) -> bool:
        """Any http(s) loopback redirect URI, plus the ones registered with the stand-in."""
        parts = urlsplit(uri)
        loopback = parts.scheme in ("http", "https") and parts.hostname in LOOPBACK_HOSTS
        return loopback or uri in self.extra_redirect_uris

    def refresh_token(self, user_id: str, scope: str = "") -> str:
        token = "R-" + secrets.token_urlsafe(24)
        self._refresh[token] = (user_id, scope)
        return token

    def revoke_refresh_token(self, token: str) -> None:
        self._refresh.pop(token, None)

    def authorize(self, call: Call, user_id: str, now: datetime) -> Answer:
        """`GET /authorize`: the user (already "logged in") consents at once; 302 back."""
        query = call.query
        if query.get("client_id") != self.client_id:
            return oauth_error(400, "invalid_client", "INVALID_CLIENT: Invalid client")
        redirect_uri = query.get("redirect_uri", "")
        if not self.redirect_uri_allowed(redirect_uri):
            return oauth_error(400, "invalid_request", "INVALID_CLIENT: Invalid redirect URI")
        if query.get("response_type") != "code":
            return oauth_error(400, "unsupported_response_type", "response_type must be code")
        code = "C-" + secrets.token_urlsafe(24)
        scope = query.get("scope", "")
        self._codes[code] = _Code(user_id, redirect_uri, scope, now + CODE_LIFETIME)
        params = {"code": code}
        if "state" in query:
            params["state"] = query["state"]
        separator = "&" if "?" in redirect_uri else "?"
        return Answer(302, None, {"Location": redirect_uri + separator + urlencode(params)})

    def token(self, call: Call, now: datetime) -> Answer:
        """`POST /api/token` for the three grants a server-side client uses."""
        grant = call.form.get("grant_type")
        if not self._client_authenticated(call):
            answer = oauth_error(401, "invalid_client", "Invalid client")
        elif grant == "authorization_code":
            answer = self._from_code(call.form, now)
        elif grant == "refresh_token":
            answer = self._from_refresh_token(call.form, now)
        elif grant == "client_credentials":
            answer = Answer(200, self._issue(None, "", now))
        else:
            answer = oauth_error(400, "unsupported_grant_type", f"grant_type {grant!r}")
        answer.grant_type = grant
        return answer

    def bearer(self, call: Call, now: datetime) -> AccessToken | Answer:
        """The access token a Web API call carries, or the 401 answer for it."""
        header = call.headers.get("authorization", "")
        if not header.startswith("Bearer "):
            return api_error(401, "No token provided")
        token = self._access.get(header[len("Bearer ") :])
        if token is None:
            return api_error(401, "Invalid access token")
        if token.expires_at <= now:
            return api_error(401, "The access token expired")
        return token

    def _client_authenticated(self, call: Call) -> bool:
        """HTTP Basic (what spotipy sends), or client_id/client_secret in the form body."""
        header = call.headers.get("authorization", "")
        if header.startswith("Basic "):
            try:
                decoded = base64.b64decode(header[len("Basic ") :]).decode()
            except ValueError:
                return False
            client_id, _, secret = decoded.partition(":")
        else:
            client_id = call.form.get("client_id", "")
            secret = call.form.get("client_secret", "")
        return secrets.compare_digest(client_id, self.client_id) and secrets.compare_digest(
            secret, self.client_secret
        )

    def _from_code(self, form: dict[str, str], now: datetime) -> Answer:
        code = self._codes.get(form.get("code", ""))
        if code is None or code.used or code.expires_at <= now:
            return oauth_error(400, "invalid_grant", "Invalid authorization code")
        if form.get("redirect_uri") != code.redirect_uri:
            return oauth_error(400, "invalid_grant", "Invalid redirect URI")
        code.used = True
        body = self._issue(code.user_id, code.scope, now)
        body["refresh_token"] = self.refresh_token(code.user_id, code.scope)
        return Answer(200, body, user_id=code.user_id)

    def _from_refresh_token(self, form: dict[str, str], now: datetime) -> Answer:
        old = form.get("refresh_token", "")
        if old not in self._refresh:
            return oauth_error(400, "invalid_grant", "Invalid refresh token")
        user_id, scope = self._refresh[old]
        body = self._issue(user_id, scope, now)
        if self.rotate_refresh_tokens:
            self.revoke_refresh_token(old)
            body["refresh_token"] = self.refresh_token(user_id, scope)
        return Answer(200, body, user_id=user_id)

    def _issue(self, user_id: str | None, scope: str, now: datetime) -> dict[str, object]:
        token = "A-" + secrets.token_urlsafe(24)
        self._access[token] = AccessToken(user_id, now + self.token_lifetime, scope)
        return {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": int(self.token_lifetime.total_seconds()),
            "scope": scope,
        }
