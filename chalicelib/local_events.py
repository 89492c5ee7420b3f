"""PLACEHOLDER — owned by the transform work; replaced there."""

from __future__ import annotations

from typing import Any


class LocalS3Events:
    def __init__(self, app: Any, bucket: str) -> None:
        self.app = app
        self.bucket = bucket

    def __call__(self, key: str) -> None:
        raise NotImplementedError
