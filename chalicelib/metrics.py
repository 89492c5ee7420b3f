"""Metrics the deployed app publishes, and the staleness metric its alarm watches.

After each scheduled history poll the poll publishes `MinutesSincePoll` (namespace
`spotify-etl`, dimension `Stage`): the largest minutes since a connected user's last successful
poll, as `GET /health` computes it. `spotify-etl bootstrap --alert-email` alarms on it, with
missing data counted as breaching, so a poll that stops running reads as stale too.

`Metrics` is the interface; `CloudWatchMetrics` serves deployed stages (an `s3://` lake) that
set `FRESHNESS_METRIC` (a custom metric costs $0.30 a month outside the free tier) and
creates its client only on the first put, so importing the app imports no boto3;
`RecordedMetrics` keeps the last points in memory and sends nothing (a laptop, tests).
Publishing never fails the poll: a metric lost is a warning, a poll lost is a play lost.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from chalicelib import health
from chalicelib.config import Config

if TYPE_CHECKING:
    from chalicelib.services import Services

log = logging.getLogger(__name__)

NAMESPACE = "spotify-etl"
STAGE_DIMENSION = "Stage"
MINUTES_SINCE_POLL = "MinutesSincePoll"
RECORDED_POINTS = 1000  # `chalice local` can run for weeks: keep the newest only


@dataclass(frozen=True)
class Point:
    name: str
    value: float
    unit: str


class Metrics(Protocol):
    def put(self, name: str, value: float, unit: str = "None") -> None:
        """Publish one value of metric `name` (CloudWatch units: `None`, `Count`, `Seconds`…)."""


class CloudWatchMetrics:
    """Metrics in CloudWatch under `NAMESPACE`, with the stage as their one dimension."""

    def __init__(self, client: Callable[[], Any], stage: str) -> None:
        self._client = client  # a factory: the client is made on the first put, not at import
        self.stage = stage

    def put(self, name: str, value: float, unit: str = "None") -> None:
        self._client().put_metric_data(
            Namespace=NAMESPACE,
            MetricData=[
                {
                    "MetricName": name,
                    "Dimensions": [{"Name": STAGE_DIMENSION, "Value": self.stage}],
                    "Value": value,
                    "Unit": unit,
                }
            ],
        )


class RecordedMetrics:
    """Sends nothing; remembers the newest points (what a test or a curious developer reads)."""

    def __init__(self) -> None:
        self.points: deque[Point] = deque(maxlen=RECORDED_POINTS)

    def put(self, name: str, value: float, unit: str = "None") -> None:
        self.points.append(Point(name, value, unit))


def build_metrics(config: Config, client: Callable[[], Any]) -> Metrics:
    """CloudWatch for a deployed stage (its lake is always `s3://`) that asked for the metric
    (`FRESHNESS_METRIC`), else in memory only."""
    if config.is_s3_lake and config.freshness_metric:
        return CloudWatchMetrics(client, config.stage)
    return RecordedMetrics()


def minutes_since_poll(report: dict[str, Any]) -> float:
    """The staleness metric from a `health.report()`: its users' largest `minutes_since_poll`.

    A user never polled successfully is `stale` in the report without a number; they count as
    just past `stale_after_minutes`, so the alarm fires exactly when `/health` shows a stale user.
    With nobody connected nothing can go stale: 0 (the poll ran, which is what missing data
    would deny).
    """
    just_stale = float(report["stale_after_minutes"]) + 1
    return max(
        (
            just_stale if user["minutes_since_poll"] is None else float(user["minutes_since_poll"])
            for user in report["users"]
        ),
        default=0.0,
    )


def publish_freshness(services: Services, now: datetime | None = None) -> float | None:
    """Put `MinutesSincePoll` after a history poll; the value put, or None when it failed.

    Never raises: the poll's plays are already landed, and failing the function now would
    only add a Lambda error (and a retry of the whole poll) for a missing data point, which
    the staleness alarm already treats as stale.
    """
    try:
        value = minutes_since_poll(health.report(services, now))
        services.metrics.put(MINUTES_SINCE_POLL, value)
    except Exception:
        log.warning("could not publish %s", MINUTES_SINCE_POLL, exc_info=True)
        return None
    return value
