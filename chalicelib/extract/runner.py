"""PLACEHOLDER — owned by the extraction work; replaced there."""

from __future__ import annotations

from typing import Any

HISTORY_DATASETS = ("plays",)
DAILY_DATASETS = ("playlists", "top_items", "saved_tracks", "artists")


def run_scheduled(services: Any, datasets: tuple[str, ...], context: Any) -> dict[str, Any]:
    raise NotImplementedError


def run_requested(services: Any, event: dict[str, Any], context: Any) -> dict[str, Any]:
    raise NotImplementedError
