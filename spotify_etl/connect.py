"""`spotify-etl connect`: the OAuth flow of `auth.py` for a local user, through a loopback callback.

A one-shot HTTP server on 127.0.0.1 receives Spotify's redirect (Spotify accepts loopback
redirect URIs only as an IP literal, never `localhost`); the browser is sent to the authorize
page; the callback's query then goes through the very `complete_callback` the API uses.
"""

from __future__ import annotations

import threading
import urllib.parse
import webbrowser
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import TracebackType
from typing import TYPE_CHECKING

from chalicelib import auth

if TYPE_CHECKING:
    from chalicelib.services import Services

DEFAULT_PORT = 8765
CALLBACK_PATH = "/callback"
LOOPBACK = "127.0.0.1"
WAIT_SECONDS = 300.0
PAGE = (
    b"<!doctype html><meta charset=utf-8><title>spotify-etl</title>"
    b"<p>Spotify answered. Finishing in the terminal: you can close this tab.</p>"
)


class ConnectError(Exception):
    """The local connect could not start or finish; the message says why."""


class CallbackServer:
    """Serves one redirect on loopback and hands its query to the waiting caller."""

    def __init__(self, port: int, path: str = CALLBACK_PATH) -> None:
        self.path = path
        self._received = threading.Event()
        self._query: dict[str, str] = {}
        self._server = HTTPServer((LOOPBACK, port), self._handler())
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="connect-callback", daemon=True
        )

    @property
    def redirect_uri(self) -> str:
        return f"http://{LOOPBACK}:{self._server.server_address[1]}{self.path}"

    def wait(self, timeout: float) -> dict[str, str]:
        """The callback's query parameters, once the browser has been redirected here."""
        if not self._received.wait(timeout):
            raise ConnectError(f"no answer from Spotify within {timeout:.0f}s: run connect again")
        return dict(self._query)

    def __enter__(self) -> CallbackServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                if url.path != owner.path or owner._received.is_set():
                    self.send_error(404)
                    return
                owner._query = dict(urllib.parse.parse_qsl(url.query))
                owner._received.set()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(PAGE)))
                self.end_headers()
                self.wfile.write(PAGE)

            def log_message(self, format: str, *args: object) -> None:
                pass  # the query holds the authorization code: keep it out of the terminal

        return Handler


def run_local_connect(
    services: Services,
    *,
    port: int = DEFAULT_PORT,
    open_browser: Callable[[str], object] = webbrowser.open,
    out: Callable[[str], None] = print,
    timeout: float = WAIT_SECONDS,
) -> str:
    """Connect one Spotify account to the local lake; returns its user id.

    `SPOTIPY_REDIRECT_URI`, when set, must be a loopback `http://127.0.0.1:PORT/PATH` (the one
    registered with the Spotify app); otherwise `http://127.0.0.1:<port>/callback` is used.
    """
    port, path = _callback_address(services.config.spotify_redirect_uri, port)
    store = services.secrets
    if auth.ensure_signing_key(store):
        out("Created a signing key for the login state in the local secret store.")
    try:
        server = CallbackServer(port, path)
    except OSError as error:
        raise ConnectError(f"cannot listen on {LOOPBACK}:{port}: {error.strerror}") from None
    with server:
        url = auth.login_redirect(services, redirect_uri=server.redirect_uri, store=store)
        out(f"Opening Spotify's authorize page. If no browser opens, visit:\n  {url}")
        open_browser(url)
        query = server.wait(timeout)
    return auth.complete_callback(services, query, redirect_uri=server.redirect_uri, store=store)


def _callback_address(redirect_uri: str | None, port: int) -> tuple[int, str]:
    if not redirect_uri:
        return port, CALLBACK_PATH
    parts = urllib.parse.urlsplit(redirect_uri)
    if parts.scheme != "http" or parts.hostname != LOOPBACK or parts.port is None:
        raise ConnectError(
            f"SPOTIPY_REDIRECT_URI must look like http://{LOOPBACK}:{DEFAULT_PORT}{CALLBACK_PATH} "
            f"for connect (Spotify accepts loopback only as an IP literal), not {redirect_uri!r}"
        )
    return parts.port, parts.path or "/"
