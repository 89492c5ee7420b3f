"""The lake on a laptop: S3-style events on each local write, and the bundled sample.

On S3, every raw object written triggers the transform (`layout.RAW_TRIGGER`, the filter
`app.py` declares). A local directory has no events, so `LocalEvents` dispatches each write to
the same transform handler under the same filter. With no Spotify app configured, the loopback
stand-in with its demo world answers instead of Spotify (contract §2). Nothing here runs on
Lambda, whose lake is always S3.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from chalicelib import layout
from chalicelib import services as services_module
from chalicelib.config import Config, load_config
from chalicelib.services import Services

logger = logging.getLogger(__name__)

# A local lake's stand-in for a bucket name in the app's S3 event declaration.
LOCAL_BUCKET = "local-lake"


class LocalEvents:
    """Called with the key of every local put (`LocalStorage.on_put`)."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def __call__(self, key: str) -> None:
        if not layout.RAW_TRIGGER.matches(key):
            return
        from chalicelib.transform import handler as transform

        try:
            transform.transform_object(self.services.storage, key)
        except Exception:
            # On S3 the put has succeeded whatever its event handler does; the same here.
            # The object stays without a marker, so reconcile re-drives it.
            logger.exception("local S3 event for %s failed", key)


def dispatching(config: Config) -> Services:
    """Services whose local writes trigger the transform, as S3's events would."""
    services = Services(config)
    if not config.is_s3_lake:
        services.on_put = LocalEvents(services)
    return services


def open_local(
    config: Config, *, at: datetime | None = None, dispatch: bool = True
) -> tuple[Services, Any]:
    """Services for a local lake (and the sample stand-in, started, when no Spotify app is
    configured; None otherwise). `at` sets the stand-in's clock; `dispatch=False` leaves
    writes without events (reprocess transforms in batches itself)."""
    standin = None
    if config.uses_sample:
        from spotify_etl.sample import start_sample

        config, standin = start_sample(config)
        if at is not None:
            standin.set_now(at)
    return (dispatching(config) if dispatch else Services(config)), standin


@contextlib.contextmanager
def local_session(
    config: Config, *, at: datetime | None = None, dispatch: bool = True
) -> Iterator[Services]:
    """`open_local` installed as the process-wide services for a command; stops the stand-in."""
    services, standin = open_local(config, at=at, dispatch=dispatch)
    if standin is not None:
        from spotify_etl.sample import SAMPLE_NOTICE

        print(SAMPLE_NOTICE, file=sys.stderr)
    services_module.use(services)
    try:
        yield services
    finally:
        services_module.use(None)
        if standin is not None:
            standin.stop()


def serve_app_locally() -> None:
    """`chalice local` and the test client on a local lake: build the app's services here."""
    services_module.build_with(lambda: open_local(load_config())[0])
