"""The local lake's S3 events: each write is dispatched to the app's own `@app.on_s3_event`
handlers, filtered by the very bucket, prefix, suffix and event names the app declares.

So the local lake runs the same wiring as S3 and nothing keeps a second copy of it. Only raw keys
match the transform's filter, so the transform's own writes (curated/, runs/) never recurse.
"""

from __future__ import annotations

import fnmatch
import logging
import urllib.parse
from typing import Any

from chalice import Chalice
from chalice.app import S3EventConfig

logger = logging.getLogger(__name__)

# A local put is what S3 reports as a PUT that created an object.
EVENT_NAME = "ObjectCreated:Put"


class LocalS3Events:
    """Called with the key of every local put (`LocalStorage.on_put`)."""

    def __init__(self, app: Chalice, bucket: str) -> None:
        self.app = app
        self.bucket = bucket

    def __call__(self, key: str) -> None:
        for source in self.matching(key):
            try:
                self.app.handler_map[source.name](s3_event(self.bucket, key), None)
            except Exception:
                # On S3 the put has succeeded whatever its event handler does; the same here.
                # The object stays without a marker, so reconcile re-drives it.
                logger.exception("local S3 event %s for %s failed", source.name, key)

    def matching(self, key: str) -> list[S3EventConfig]:
        """The app's S3 event sources that S3 would notify for a put of `key`."""
        return [
            source
            for source in self.app.event_sources
            if isinstance(source, S3EventConfig)
            and source.bucket == self.bucket
            and key.startswith(source.prefix or "")
            and key.endswith(source.suffix or "")
            and any(fnmatch.fnmatchcase("s3:" + EVENT_NAME, event) for event in source.events)
        ]


def s3_event(bucket: str, key: str) -> dict[str, Any]:
    """An S3 notification for a put of `key`, in the shape Lambda receives (and
    `chalice.test`'s `generate_s3_event` builds). S3 URL-encodes the key; Chalice decodes it."""
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "eventName": EVENT_NAME,
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": {"key": urllib.parse.quote_plus(key, safe="/")},
                },
            }
        ]
    }
