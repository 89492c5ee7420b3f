"""The staleness metric (issue 8, part 5): every scheduled history poll publishes
`MinutesSincePoll`, computed from `GET /health`'s own report, and a metric that cannot be
published never fails the poll.

The polls run through the app's scheduled handler (Chalice's test client), spotipy and the
Spotify stand-in; CloudWatch is moto's."""

from __future__ import annotations

import functools
import logging
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import extract_helpers as helpers
import pytest
from chalice.test import Client
from extract_helpers import connect, make_services
from moto import mock_aws

from chalicelib import health, layout, metrics, services, users
from chalicelib.config import Config
from chalicelib.services import Services
from spotify_etl import bootstrap
from spotify_standin import DEMO_USER, FRIEND_USER, StandIn

standin, local_lake = helpers.standin, helpers.local_lake
PROJECT = Path(__file__).resolve().parent.parent


@pytest.fixture
def app_client(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("LAKE_URI", "./lake-not-used")  # app.py reads it at import
    import app

    with Client(app.app) as client:
        yield client
    services.use(None)


def invoke(client: Any, handler: str) -> dict[str, Any]:
    event = client.events.generate_cw_event(
        source="aws.events", detail_type="Scheduled Event", detail={}, resources=[]
    )
    return dict(client.lambda_.invoke(handler, event).payload)


def started(standin: StandIn, lake: str, *connected: str) -> Services:
    """Services on a local lake with the stand-in's clock at the real now (scheduled runs
    take the real clock as `run_at`)."""
    svc = make_services(standin, lake)
    services.use(svc)
    for user in connected:
        connect(svc, standin, user)
    standin.set_now(layout.utc(datetime.now(UTC)))
    return svc


class Unreachable:
    """A metrics backend that always fails, as CloudWatch does without the permission."""

    def put(self, name: str, value: float, unit: str = "None") -> None:
        raise RuntimeError("AccessDenied: cloudwatch:PutMetricData")


# --- the value ------------------------------------------------------------------------------


def user(minutes: float | None) -> dict[str, Any]:
    return {"user_id": "u", "minutes_since_poll": minutes, "stale": minutes is None}


def test_the_value_is_the_largest_minutes_since_a_poll() -> None:
    report = {"stale_after_minutes": 90, "users": [user(12.5), user(95.0), user(3.0)]}
    assert metrics.minutes_since_poll(report) == 95.0


def test_a_user_never_polled_counts_as_just_stale_and_nobody_as_zero() -> None:
    never = {"stale_after_minutes": 90, "users": [user(4.0), user(None)]}
    assert metrics.minutes_since_poll(never) == 91.0  # past the alarm's threshold, as /health
    assert metrics.minutes_since_poll({"stale_after_minutes": 90, "users": []}) == 0.0


# --- published by the poll ------------------------------------------------------------------


def test_each_history_poll_publishes_what_health_reports(
    app_client: Any, standin: StandIn, local_lake: str
) -> None:
    svc = started(standin, local_lake, DEMO_USER)
    recorded = svc.metrics
    assert isinstance(recorded, metrics.RecordedMetrics)  # a laptop: nothing sent anywhere

    assert invoke(app_client, "poll_history")["status"] == "succeeded"
    [point] = recorded.points
    assert (point.name, point.unit) == ("MinutesSincePoll", "None")
    assert 0 <= point.value < 1  # just polled
    assert point.value == pytest.approx(metrics.minutes_since_poll(health.report(svc)), abs=0.2)

    assert invoke(app_client, "daily_snapshot")["status"] in {"succeeded", "partial"}
    assert len(recorded.points) == 1  # only the history poll publishes


def test_a_user_whose_polls_fail_drives_the_metric_past_the_threshold(
    app_client: Any, standin: StandIn, local_lake: str
) -> None:
    svc = started(standin, local_lake, DEMO_USER)
    users.connect_user(svc.secrets, FRIEND_USER, "a-token-spotify-refuses")
    record = invoke(app_client, "poll_history")
    assert record["status"] == "partial"  # the friend's token is refused, the demo user polled

    [point] = svc.metrics.points  # type: ignore[attr-defined]
    report = health.report(svc)
    assert [u["stale"] for u in report["users"] if u["user_id"] == FRIEND_USER] == [True]
    assert point.value == report["stale_after_minutes"] + 1 == 91.0


def test_a_metric_that_cannot_be_published_never_fails_the_poll(
    app_client: Any, standin: StandIn, local_lake: str, caplog: pytest.LogCaptureFixture
) -> None:
    svc = started(standin, local_lake, DEMO_USER)
    svc.metrics = Unreachable()  # type: ignore[misc]
    with caplog.at_level(logging.WARNING, logger="chalicelib.metrics"):
        record = invoke(app_client, "poll_history")
    assert record["status"] == "succeeded"
    assert users.list_users(svc)[0]["last_successful_poll"] == record["run_at"]
    [warning] = [r for r in caplog.records if r.name == "chalicelib.metrics"]
    assert warning.levelno == logging.WARNING
    assert "could not publish MinutesSincePoll" in warning.getMessage()
    assert "AccessDenied" in warning.exc_text  # type: ignore[operator]


# --- CloudWatch -----------------------------------------------------------------------------


@pytest.fixture
def aws() -> Iterator[Any]:
    with mock_aws():
        yield functools.cache(lambda service: boto3.client(service, region_name="us-east-1"))


def test_a_deployed_stage_puts_the_metric_the_staleness_alarm_watches(aws: Any) -> None:
    config = bootstrap.stage_config("dev", Config(aws_region="us-east-1"))
    config = config.replace(freshness_metric=True)
    aws("s3").create_bucket(Bucket=bootstrap.Lake.from_uri(config.lake_uri).bucket)
    svc = Services(config, boto_client=aws)
    assert isinstance(svc.metrics, metrics.CloudWatchMetrics)
    users.connect_user(svc.secrets, "u1", "refresh")
    now = datetime.now(UTC)
    users.record_poll(svc.storage, "u1", now - timedelta(minutes=10))

    assert metrics.publish_freshness(svc, now) == 10.0

    cloudwatch = aws("cloudwatch")
    [published] = cloudwatch.list_metrics(Namespace="spotify-etl")["Metrics"]
    alarm = bootstrap.staleness_alarm(config, "dev", "arn:aws:sns:us-east-1:1:t")
    watched = {k: alarm[k] for k in ("Namespace", "MetricName", "Dimensions")}
    assert published == watched
    stats = cloudwatch.get_metric_statistics(
        Namespace="spotify-etl",
        MetricName="MinutesSincePoll",
        Dimensions=[{"Name": "Stage", "Value": "dev"}],
        StartTime=now - timedelta(hours=1),
        EndTime=now + timedelta(hours=1),
        Period=3600,
        Statistics=["Maximum"],
    )["Datapoints"]
    assert [point["Maximum"] for point in stats] == [10.0]


def test_an_unreadable_lake_costs_the_data_point_with_a_warning(
    aws: Any, caplog: pytest.LogCaptureFixture
) -> None:
    config = bootstrap.stage_config("dev", Config(aws_region="us-east-1"))  # no bucket made
    config = config.replace(freshness_metric=True)
    svc = Services(config, boto_client=aws)
    with caplog.at_level(logging.WARNING, logger="chalicelib.metrics"):
        assert metrics.publish_freshness(svc) is None
    assert "NoSuchBucket" in caplog.text
    assert aws("cloudwatch").list_metrics(Namespace="spotify-etl")["Metrics"] == []


def test_importing_the_app_imports_no_boto3() -> None:
    """The CloudWatch client is made on the first put: a deployed stage's cold start (every
    function imports app.py) pays nothing for it."""
    code = (
        "import sys, app\n"
        "from chalicelib import services\n"
        "backend = services.current().metrics\n"
        "print(type(backend).__name__, 'boto3' in sys.modules)\n"
    )
    env = {
        "LAKE_URI": "s3://spotify-etl-lake-dev",
        "STAGE": "dev",
        "FRESHNESS_METRIC": "on",
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["CloudWatchMetrics", "False"]


def test_a_stage_that_did_not_ask_for_the_metric_pays_nothing_for_it(aws: Any) -> None:
    """A custom metric costs $0.30 a month outside the free tier: only `FRESHNESS_METRIC` on
    (`configure --alerts`) publishes it."""
    config = bootstrap.stage_config("dev", Config(aws_region="us-east-1"))
    assert not config.freshness_metric
    aws("s3").create_bucket(Bucket=bootstrap.Lake.from_uri(config.lake_uri).bucket)
    svc = Services(config, boto_client=aws)
    assert isinstance(svc.metrics, metrics.RecordedMetrics)
    users.connect_user(svc.secrets, "u1", "refresh")
    metrics.publish_freshness(svc)
    assert aws("cloudwatch").list_metrics(Namespace="spotify-etl")["Metrics"] == []


def test_the_recorded_backend_keeps_only_the_newest_points() -> None:
    recorded = metrics.RecordedMetrics()
    for n in range(metrics.RECORDED_POINTS + 5):
        recorded.put("MinutesSincePoll", float(n))
    assert len(recorded.points) == metrics.RECORDED_POINTS
    assert recorded.points[-1].value == metrics.RECORDED_POINTS + 4
    assert recorded.points[0].value == 5.0
