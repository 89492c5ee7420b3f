"""The datasets, once. Adding a dataset starts here.

Everything else derives from this table: the schedules in `app.py` (`scheduled`), the runner's
order and its per-user / once-per-run split, the validation of `POST /runs` and of the CLI's
`--datasets`, the transform's check of raw keys, and which raw objects the enrichments scan
(`crediting`: the answers that carry track objects and credit artists).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # fetch modules are imported only by the runs that call Spotify
    from chalicelib.extract.dataset import Fetch, Fetched

# Schedule groups: which `@app.schedule` fetches a dataset.
HISTORY = "history"  # every HISTORY_POLL_MINUTES: only the newest 50 plays exist
DAILY = "daily"  # once a day, 06:00 UTC

# Priorities, lowest first: what is lost if not fetched in time goes before what can wait.
PLAYS_FIRST, DAILY_SNAPSHOTS, ENRICHMENT = 0, 1, 2


@dataclass(frozen=True)
class Dataset:
    name: str
    module: str  # the module under chalicelib.extract whose `fetch(job)` lands it
    schedule: str  # HISTORY or DAILY
    priority: int
    credits_artists: bool  # its answers credit artists that genre enrichment looks up
    per_user: bool = True  # False: once per run, with the first user whose token works

    @property
    def fetch(self) -> Callable[[Fetch], Fetched]:
        module = importlib.import_module(f"chalicelib.extract.{self.module}")
        return module.fetch  # type: ignore[no-any-return]


REGISTRY: dict[str, Dataset] = {
    dataset.name: dataset
    for dataset in (
        Dataset("plays", "plays", HISTORY, PLAYS_FIRST, credits_artists=True),
        Dataset("playlists", "playlists", DAILY, DAILY_SNAPSHOTS, credits_artists=True),
        Dataset("top_items", "top_items", DAILY, DAILY_SNAPSHOTS, credits_artists=True),
        Dataset("saved_tracks", "saved_tracks", DAILY, DAILY_SNAPSHOTS, credits_artists=True),
        Dataset("artists", "artists", DAILY, ENRICHMENT, credits_artists=False, per_user=False),
        # Last: tracks known only from a history export. Its answers credit artists too.
        Dataset("tracks", "tracks", DAILY, ENRICHMENT, credits_artists=True, per_user=False),
    )
}

NAMES: tuple[str, ...] = tuple(REGISTRY)

# Raw objects that no extraction run writes: each file of a history export (contract §8),
# landed by `spotify-etl import-history` and transformed like any other raw object.
HISTORY_EXPORT = "history_export"
# Every dataset a raw key may name.
RAW_DATASETS: tuple[str, ...] = (*NAMES, HISTORY_EXPORT)


def scheduled(group: str) -> tuple[str, ...]:
    """The datasets one schedule fetches, in fetch order."""
    return tuple(name for name, dataset in REGISTRY.items() if dataset.schedule == group)


def crediting() -> tuple[str, ...]:
    """Datasets whose raw objects carry tracks and credit artists: what the genre enrichment
    scans for artists, and the track enrichment for tracks already described."""
    return tuple(name for name, dataset in REGISTRY.items() if dataset.credits_artists)


def validate(asked: list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """The datasets asked for, in fetch order (all when None); ValueError naming unknown ones."""
    if asked is None:
        return NAMES
    unknown = sorted(set(asked) - set(NAMES))
    if unknown:
        raise ValueError(f"unknown dataset(s) {', '.join(unknown)}; known: {', '.join(NAMES)}")
    return tuple(name for name in NAMES if name in asked)
