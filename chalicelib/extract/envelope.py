"""The raw envelope (contract §3): every answer of one user/dataset/run, gzip JSON, write-once."""

from __future__ import annotations

import gzip
import json
from datetime import datetime
from typing import Any

from chalicelib import layout
from chalicelib.storage import Storage


def build_envelope(
    *,
    user_id: str,
    dataset: str,
    run_id: str,
    run_at: datetime,
    fetched_at: datetime,
    responses: list[dict[str, Any]],
    extras: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """`{"meta": {...}, "responses": [...]}`; `extras` are the dataset's meta fields."""
    meta = {
        "user_id": user_id,
        "dataset": dataset,
        "run_id": run_id,
        "run_at": layout.iso(run_at),
        "fetched_at": layout.iso(fetched_at),
        **(extras or {}),
    }
    return {"meta": meta, "responses": responses}


def encode_envelope(envelope: dict[str, Any]) -> bytes:
    """gzip JSON; mtime=0, so the same envelope always gives the same bytes.

    ASCII escapes (`ensure_ascii=True`) because Spotify's answers may hold a string that is not
    valid Unicode (half a surrogate pair, `"\\ud800"`): UTF-8 cannot encode it, but the escape
    keeps it verbatim and `json.loads` reads it back as the same string.
    """
    text = json.dumps(envelope, ensure_ascii=True, separators=(",", ":"))
    return gzip.compress(text.encode("ascii"), mtime=0)


def decode_envelope(data: bytes) -> dict[str, Any]:
    envelope = json.loads(gzip.decompress(data))
    if not isinstance(envelope, dict) or "meta" not in envelope or "responses" not in envelope:
        raise ValueError("not a raw envelope: expected {meta, responses}")
    return envelope


def write_envelope(storage: Storage, key: str, envelope: dict[str, Any]) -> None:
    """Write once: a second write of the same key fails (`PreconditionFailed`)."""
    storage.put(key, encode_envelope(envelope), if_none_match=True, content_type="application/gzip")


def load_envelope(storage: Storage, key: str) -> dict[str, Any] | None:
    """A raw object as a plain dict, for extraction's own reading (the artists scan); None when
    absent. The transform reads raw objects with `transform.raw.read_envelope`, which checks
    them against the contract and quarantines what fails."""
    blob = storage.get(key)
    return None if blob is None else decode_envelope(blob.data)


def ok_bodies(envelope: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """`(url, body)` of each 2xx answer: what a reader of the envelope uses."""
    return [
        (r["request"]["url"], r["body"])
        for r in envelope["responses"]
        if 200 <= int(r["status"]) < 300 and isinstance(r.get("body"), dict)
    ]
