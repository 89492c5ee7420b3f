"""Reading one raw object: gzip JSON envelope (contract §3) → `Envelope`, or `UnreadableRaw`."""

from __future__ import annotations

import gzip
import json
import urllib.parse
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from chalicelib import datasets, layout


class UnreadableRaw(Exception):
    """The raw object cannot be transformed; the message says why (it goes to quarantine)."""


@dataclass(frozen=True)
class Run:
    """The run a raw object belongs to: whose data, which run, and the moment it took as now."""

    user_id: str
    dataset: str
    run_id: str
    run_at: datetime

    @property
    def snapshot_date(self) -> str:
        return self.run_at.date().isoformat()

    @property
    def order(self) -> tuple[str, str]:
        """Later runs sort higher: by `run_at`, ties broken by `run_id`."""
        return (layout.iso(self.run_at), self.run_id)


@dataclass(frozen=True)
class Answer:
    """One 2xx answer: the API path below the version root (`me/top/tracks`), query and body."""

    path: str
    query: dict[str, str]
    body: Any


@dataclass(frozen=True)
class Envelope:
    run: Run
    meta: dict[str, Any]
    answers: list[Answer] = field(default_factory=list)


def read_envelope(key: str, data: bytes) -> Envelope:
    """Decode, parse and check the raw object `key`; raise `UnreadableRaw` saying why not."""
    parsed_key = layout.parse_raw_key(key)
    if parsed_key is None:
        raise UnreadableRaw("key is not raw/<dataset>/date=<date>/user=<user>/<run>.json.gz")
    if parsed_key.dataset not in datasets.RAW_DATASETS:
        raise UnreadableRaw(f"unknown dataset {parsed_key.dataset!r}")
    try:
        document = json.loads(gzip.decompress(data))
    except (OSError, EOFError, zlib.error) as error:
        raise UnreadableRaw(f"not gzip: {error}") from error
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UnreadableRaw(f"not JSON: {error}") from error
    envelope = _envelope(document)
    _check_matches_key(envelope.run, parsed_key)
    return envelope


def _envelope(document: Any) -> Envelope:
    if not isinstance(document, dict):
        raise UnreadableRaw("wrong shape: the envelope is not a JSON object")
    meta, responses = document.get("meta"), document.get("responses")
    if not isinstance(meta, dict) or not isinstance(responses, list):
        raise UnreadableRaw("wrong shape: needs an object 'meta' and a list 'responses'")
    for name in ("user_id", "dataset", "run_id", "run_at"):
        if not isinstance(meta.get(name), str) or not meta[name]:
            raise UnreadableRaw(f"wrong shape: meta.{name} is missing")
    if meta["dataset"] not in datasets.RAW_DATASETS:
        raise UnreadableRaw(f"unknown dataset {meta['dataset']!r}")
    run_at = layout.try_parse_iso(meta["run_at"])
    if run_at is None:
        raise UnreadableRaw(f"wrong shape: meta.run_at is not a timestamp: {meta['run_at']!r}")
    run = Run(meta["user_id"], meta["dataset"], meta["run_id"], run_at)
    base = urllib.parse.urlsplit(str(meta.get("api_url") or "")).path
    answers = [_answer(response, base) for response in responses]
    return Envelope(run, meta, [a for a in answers if a is not None])


def _answer(response: Any, base_path: str) -> Answer | None:
    """The response as an `Answer` when it is a 2xx one; errors (403/404/429) are only recorded."""
    request = response.get("request") if isinstance(response, dict) else None
    if not isinstance(request, dict) or not isinstance(request.get("url"), str):
        raise UnreadableRaw("wrong shape: a response without request.url")
    status = response.get("status")
    if not isinstance(status, int) or isinstance(status, bool):
        raise UnreadableRaw(f"wrong shape: status {status!r} of {request['url']}")
    if not 200 <= status < 300:
        return None
    url = urllib.parse.urlsplit(request["url"])
    query = dict(urllib.parse.parse_qsl(url.query))
    return Answer(_api_path(url.path, base_path), query, response.get("body"))


def _api_path(path: str, base_path: str) -> str:
    """`/v1/me/top/tracks` → `me/top/tracks`: below the run's API base (`meta.api_url`, which
    need not end in `/v1/`), else below `/v1/` (envelopes that do not name their base)."""
    base = "/" + base_path.strip("/") + "/" if base_path.strip("/") else ""
    if base and path.startswith(base):
        return path[len(base) :].strip("/")
    _, found, rest = path.partition("/v1/")
    return (rest if found else path).strip("/")


def _check_matches_key(run: Run, key: layout.RawKey) -> None:
    expected = (key.dataset, key.user_id, key.run_id, key.date)
    actual = (run.dataset, run.user_id, run.run_id, run.snapshot_date)
    if expected != actual:
        raise UnreadableRaw(
            f"key does not match the envelope: key says (dataset, user, run, date) = {expected}, "
            f"meta says {actual}"
        )
