"""Where things live in the lake (contract §3). Every key the pipeline writes is built here."""

from __future__ import annotations

import fnmatch
import re
import secrets
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

RAW_PREFIX = "raw/"
RAW_SUFFIX = ".json.gz"
CURATED_PREFIX = "curated/"
QUARANTINE_PREFIX = "quarantine/"
STATE_PREFIX = "state/"
RUNS_PREFIX = "runs/"

# A play more than this past its run's `run_at` is no real play: clocks disagree, not by a day.
FUTURE_SLACK = timedelta(days=1)


@dataclass(frozen=True)
class S3Trigger:
    """An S3 event filter: what `@app.on_s3_event` declares, and what the local lake honours."""

    prefix: str
    suffix: str
    events: tuple[str, ...]

    def matches(self, key: str, event: str = "s3:ObjectCreated:Put") -> bool:
        return (
            key.startswith(self.prefix)
            and key.endswith(self.suffix)
            and any(fnmatch.fnmatchcase(event, pattern) for pattern in self.events)
        )


# The transform's trigger: every raw object, once written. Only raw keys match, so the
# transform's own writes (curated/, runs/) never trigger it again.
RAW_TRIGGER = S3Trigger(RAW_PREFIX, RAW_SUFFIX, ("s3:ObjectCreated:*",))

_RAW_KEY = re.compile(
    r"^raw/(?P<dataset>[a-z_]+)/date=(?P<date>\d{4}-\d{2}-\d{2})/"
    r"user=(?P<user>[^/]+)/(?P<run_id>[^/]+)\.json\.gz$"
)


@dataclass(frozen=True)
class RawKey:
    dataset: str
    date: str
    user_id: str
    run_id: str

    @property
    def key(self) -> str:
        return (
            f"{RAW_PREFIX}{self.dataset}/date={self.date}/user={encode(self.user_id)}/"
            f"{self.run_id}{RAW_SUFFIX}"
        )


def raw_key(dataset: str, run_at: datetime, user_id: str, run_id: str) -> str:
    """`raw/<dataset>/date=<UTC date of run_at>/user=<user_id>/<run_id>.json.gz`."""
    return RawKey(dataset, utc(run_at).date().isoformat(), user_id, run_id).key


def parse_raw_key(key: str) -> RawKey | None:
    """The parts of a raw key, or None when `key` is not one."""
    match = _RAW_KEY.match(key)
    if match is None:
        return None
    return RawKey(match["dataset"], match["date"], decode(match["user"]), match["run_id"])


# What `new_run_id` makes: the only run ids the API accepts.
RUN_ID_PATTERN = re.compile(r"[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}")


def new_run_id(run_at: datetime) -> str:
    """Sortable by time, unique: `20261124T063000Z-1a2b3c`."""
    return utc(run_at).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def curated_key(table: str, partition: str, value: str, name: str) -> str:
    return f"{CURATED_PREFIX}{table}/{partition}={value}/{name}.parquet"


def quarantine_key(raw: str) -> str:
    return f"{QUARANTINE_PREFIX}{raw.removeprefix(RAW_PREFIX)}.reason.json"


def marker_key(raw: str) -> str:
    """The transform marker of a raw object: written once it is done or quarantined."""
    return f"{RUNS_PREFIX}transformed/{raw.removeprefix(RAW_PREFIX)}.json"


def run_record_key(run_id: str) -> str:
    return f"{RUNS_PREFIX}records/{run_id}.json"


def state_key(*parts: str) -> str:
    return STATE_PREFIX + "/".join(encode(p) for p in parts) + ".json"


def encode(value: str) -> str:
    """A user id or name made safe for one path segment (Spotify ids are already safe)."""
    return urllib.parse.quote(value, safe="-_.~@+")


def decode(value: str) -> str:
    return urllib.parse.unquote(value)


def utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def iso(moment: datetime) -> str:
    """`2026-11-24T06:30:00.000Z`: the one timestamp format the pipeline writes."""
    return utc(moment).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    return utc(datetime.fromisoformat(text.replace("Z", "+00:00")))


def try_parse_iso(value: Any) -> datetime | None:
    """`parse_iso`, or None for anything that is not a timestamp — including one that parses
    but has no UTC equivalent (`0001-01-01T00:00:00+01:00` overflows), as Spotify may send."""
    if not isinstance(value, str):
        return None
    try:
        return parse_iso(value)
    except (ValueError, OverflowError):
        return None
