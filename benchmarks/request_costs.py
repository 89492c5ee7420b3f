"""What a deployed stage costs a month: the default schedules simulated on moto, every S3
request and Spotify call counted and every function's CPU time measured, priced at us-east-1
list prices.

    python -m benchmarks.request_costs [--days 3]

One connected user (the demo listener, about 50 plays a day), history polls every
`HISTORY_POLL_MINUTES`, the daily snapshot at 06:00 UTC, reconcile on its schedule, and one
transform per raw object (as the S3 event would run it). The first day fills caches (artists,
playlists); the figures are the mean of the days after it. The README's cost table quotes them.

Lambda time is modelled, not measured on Lambda: below 1,769 MB a function gets that fraction of
one vCPU, so CPU-bound work costs about 1.77 GB-s per CPU-second whatever its memory. Each
invocation is billed its CPU time here (an upper bound: moto's and the stand-in's work run in this
process too), a cold start (the handler's imports, measured in a fresh interpreter; Lambda bills
the init phase since August 2025, and a function called every 30 minutes is usually cold), and
its waits at the configured memory: 30 ms per S3 request, 150 ms per Spotify call.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
from moto import mock_aws

from chalicelib import datasets, schedules, users
from chalicelib.config import Config
from chalicelib.extract.runner import run_extraction
from chalicelib.services import Services
from chalicelib.transform import handler as transform
from spotify_standin import DEMO_USER, StandIn, demo_world

START = datetime(2026, 11, 20, tzinfo=UTC)
BUCKET = "cost-lake"
CHALICE_CONFIG = Path(__file__).resolve().parent.parent / ".chalice" / "config.json"
# us-east-1 list prices. S3: PUT, COPY, POST and LIST alike; GET and HEAD alike.
PUT_CLASS = {"PutObject", "CopyObject", "ListObjectsV2", "ListObjects", "CreateMultipartUpload"}
GET_CLASS = {"GetObject", "HeadObject"}
PUT_PRICE, GET_PRICE = 0.005 / 1000, 0.0004 / 1000
GB_SECOND, LAMBDA_REQUEST = 0.0000166667, 0.20 / 1_000_000
FULL_VCPU_MB = 1769
S3_WAIT, SPOTIFY_WAIT = 0.030, 0.150  # seconds per request, modelled
# What each function imports at a cold start (app.py imports none of them itself).
IMPORTS = {
    "poll_history": "chalicelib.extract.runner, spotipy, boto3",
    "daily_snapshot": "chalicelib.extract.runner, spotipy, boto3",
    "transform": "chalicelib.transform.handler, pyarrow.parquet, boto3",
    "reconcile": "chalicelib.transform.handler, pyarrow.parquet, boto3",
}


@dataclass
class Usage:
    """One function's work in one day."""

    invocations: int = 0
    cpu_seconds: float = 0.0
    spotify_calls: int = 0
    s3: Counter[str] = field(default_factory=Counter)  # requests by operation
    bytes_put: int = 0

    def add(self, other: Usage) -> None:
        self.invocations += other.invocations
        self.cpu_seconds += other.cpu_seconds
        self.spotify_calls += other.spotify_calls
        self.s3.update(other.s3)
        self.bytes_put += other.bytes_put


@contextmanager
def world() -> Iterator[tuple[Services, StandIn, Usage]]:
    """Moto S3 and SSM, the stand-in, one connected user, and a meter of S3 requests."""
    with mock_aws(), StandIn(demo_world(start=START), token_lifetime=timedelta(days=400)) as si:
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        meter = Usage()

        def put(params: dict[str, Any], **_: Any) -> None:
            meter.bytes_put += len(params["Body"])

        s3.meta.events.register(
            "before-call.s3.*", lambda model, **_: meter.s3.update([model.name])
        )
        s3.meta.events.register("provide-client-params.s3.PutObject", put)
        clients = {"s3": s3, "ssm": boto3.client("ssm", region_name="us-east-1")}
        config = Config(
            lake_uri=f"s3://{BUCKET}",
            spotify_client_id=si.client_id,
            spotify_client_secret=si.client_secret,
            spotify_api_url=si.api_url,
            spotify_accounts_url=si.accounts_url,
            secrets_path="/spotify-etl/cost",
        )
        services = Services(config, boto_client=clients.__getitem__)
        users.connect_user(services.secrets, DEMO_USER, si.refresh_token(DEMO_USER))
        yield services, si, meter


def events_of_day(day: datetime, config: Config) -> list[tuple[datetime, str]]:
    """The day's scheduled invocations, in time order."""
    every = period_minutes(schedules.schedules(config)["reconcile"])
    polls = [
        (day + timedelta(minutes=m), "poll_history") for m in range(0, 1440, every_poll(config))
    ]
    daily = [(day + timedelta(hours=6, minutes=1), "daily_snapshot")]
    reconciles = [
        (day + timedelta(minutes=m, seconds=30), "reconcile") for m in range(0, 1440, every)
    ]
    return sorted(polls + daily + reconciles)


def every_poll(config: Config) -> int:
    return period_minutes(schedules.schedules(config)["poll_history"])


def period_minutes(rate: Any) -> int:
    return rate.value * {rate.MINUTES: 1, rate.HOURS: 60, rate.DAYS: 1440}[rate.unit]


GROUPS = {"poll_history": datasets.HISTORY, "daily_snapshot": datasets.DAILY}


def simulate(days: int) -> tuple[list[dict[str, Usage]], int]:
    """Per day: the work of each function; and the lake's size in bytes at the end."""
    per_day = []
    with world() as (services, standin, meter):

        def measured(name: str, usage: dict[str, Usage], work: Any) -> Any:
            meter.s3.clear()
            meter.bytes_put = 0
            spotify_before, cpu_before = len(standin.requests), time.process_time()
            result = work()
            one = Usage(1, time.process_time() - cpu_before, len(standin.requests) - spotify_before)
            one.add(meter)  # its requests and bytes; the meter counts no invocations or CPU
            usage.setdefault(name, Usage()).add(one)
            return result

        for number in range(days):
            usage: dict[str, Usage] = {}
            for at, name in events_of_day(START + timedelta(days=number), services.config):
                standin.set_now(at)
                if name == "reconcile":
                    measured(name, usage, lambda: transform.reconcile(services.storage))
                    continue
                group = datasets.scheduled(GROUPS[name])
                record = measured(
                    name,
                    usage,
                    lambda g=group, a=at: run_extraction(
                        services, datasets=g, run_at=a, sleep=lambda _: None
                    ),
                )
                for key in raw_objects(record):  # the S3 event's transform
                    measured(
                        "transform",
                        usage,
                        lambda k=key: transform.transform_object(services.storage, k),
                    )
            per_day.append(usage)
        size = sum(
            item["Size"]
            for page in services.client("s3")
            .get_paginator("list_objects_v2")
            .paginate(Bucket=BUCKET)
            for item in page.get("Contents", [])
        )
    return per_day, size


def raw_objects(record: dict[str, Any]) -> list[str]:
    return [
        key
        for per_user in record["results"].values()
        for outcome in per_user.values()
        for key in outcome.get("raw_objects", [])
    ]


def cold_start_seconds(modules: str) -> float:
    """CPU seconds a fresh interpreter spends importing app.py and `modules`."""
    code = f"import time, app, {modules}; print(time.process_time())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def memory_mb(function: str) -> int:
    stage = json.loads(CHALICE_CONFIG.read_text())["stages"]["dev"]
    return stage["lambda_functions"][function]["lambda_memory_size"]


def monthly(per_day: list[dict[str, Usage]]) -> dict[str, Usage]:
    """A month (30 days) from the mean of the days after the first."""
    steady = per_day[1:] or per_day
    month: dict[str, Usage] = {}
    for day in steady:
        for name, usage in day.items():
            month.setdefault(name, Usage()).add(usage)
    scale = 30 / len(steady)
    for usage in month.values():
        usage.invocations = round(usage.invocations * scale)
        usage.cpu_seconds *= scale
        usage.spotify_calls = round(usage.spotify_calls * scale)
        usage.s3 = Counter({op: round(n * scale) for op, n in usage.s3.items()})
        usage.bytes_put = round(usage.bytes_put * scale)
    return month


def report(month: dict[str, Usage], lake_bytes_a_day: float) -> None:
    print("a month, 1 user, the default schedules (us-east-1 list prices, no free tier)")
    columns = ("calls", 7), ("CPU s", 8), ("GB-s", 8), ("Lambda $", 10), ("PUT/LIST", 10)
    header = "".join(f"{name:>{width}}" for name, width in (*columns, ("GET", 8), ("S3 $", 8)))
    print(f"{'function':<15}{header}")
    total = 0.0
    for name, usage in sorted(month.items()):
        memory_gb = memory_mb(name) / 1024
        cold = cold_start_seconds(IMPORTS[name]) * usage.invocations
        cpu = usage.cpu_seconds + cold
        waits = sum(usage.s3.values()) * S3_WAIT + usage.spotify_calls * SPOTIFY_WAIT
        gb_seconds = cpu * FULL_VCPU_MB / 1024 + waits * memory_gb
        put = sum(n for op, n in usage.s3.items() if op in PUT_CLASS)
        get = sum(n for op, n in usage.s3.items() if op in GET_CLASS)
        lambda_cost = gb_seconds * GB_SECOND + usage.invocations * LAMBDA_REQUEST
        s3_cost = put * PUT_PRICE + get * GET_PRICE
        total += lambda_cost + s3_cost
        print(
            f"{name:<15}{usage.invocations:>7}{cpu:>8.0f}{gb_seconds:>8.0f}{lambda_cost:>10.3f}"
            f"{put:>10}{get:>8}{s3_cost:>8.3f}"
        )
    print(f"Lambda and S3 requests of the schedules: ${total:.3f} a month")
    year_gb = lake_bytes_a_day * 365 / 1e9
    print(f"the lake grows {lake_bytes_a_day / 1e6:.2f} MB a day: {year_gb:.2f} GB after a year")
    written = sum(usage.bytes_put for usage in month.values()) / 30
    print(f"written a day, overwrites included: {written / 1e6:.2f} MB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=3, help="simulated days (the first warms up)")
    args = parser.parse_args(argv)
    per_day, size = simulate(args.days)
    report(monthly(per_day), size / args.days)
    return 0


if __name__ == "__main__":
    sys.exit(main())
