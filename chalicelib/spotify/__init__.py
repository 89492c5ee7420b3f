"""spotipy fit for Lambda: `client` (sessions, timeouts, bounded retries), `tokens` (per-user
access tokens cached in state under a lease), `recorder` (every answer, verbatim), `errors`.

Import the submodules directly: this package imports nothing, so a handler that only needs
`tokens` does not pay for importing spotipy.
"""
