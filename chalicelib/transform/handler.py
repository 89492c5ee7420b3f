"""PLACEHOLDER — owned by the transform work; replaced there."""

from __future__ import annotations

from typing import Any


def transform_object(services: Any, key: str) -> dict[str, Any]:
    raise NotImplementedError


def reconcile(services: Any) -> dict[str, Any]:
    raise NotImplementedError
