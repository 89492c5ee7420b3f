"""Transform benchmark: a generated raw history → the curated tables on a temporary local lake,
against a naive pandas baseline in the same run.

    python -m benchmarks.transform_bench [--scale 1.0] [--seed 1] [--expect-digest HEX]

Scale 1 is 14 days of 30-minute polls (50 plays each, overlapping as real polls do) and a daily
playlists snapshot of 40 playlists (most unchanged: their items are reused); `--scale 26` is
about a year (~17.5k plays envelopes) with hundreds of playlists. Each side runs in its own
process so its peak memory (max RSS) is its own.

The generated history is a function of scale and seed (run ids included), so the digest printed
of the curated files is too: a change meant only to make the transform faster must leave it as
it was (with the same pyarrow, whose version Parquet files record). `--expect-digest` exits 1
when it differs.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import multiprocessing
import random
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from chalicelib import layout
from chalicelib.config import Config
from chalicelib.services import Services
from chalicelib.storage import LocalStorage

API = "https://api.spotify.com/v1/"
START = datetime(2026, 1, 1, tzinfo=UTC)
USER = "bench-user"


@dataclass(frozen=True)
class Size:
    days: int
    playlists: int
    catalogue: int

    @classmethod
    def at(cls, scale: float) -> Size:
        return cls(
            days=max(1, round(14 * scale)),
            playlists=max(2, round(40 * scale**0.6)),
            catalogue=max(100, round(3000 * scale**0.5)),
        )


# --- the generated history ----------------------------------------------------------------


class Catalogue:
    """Tracks with albums and 1–3 credited artists, as Spotify's TrackObject."""

    def __init__(self, size: int, rng: random.Random) -> None:
        artists = [
            {
                "id": f"ar{i}",
                "name": f"Artist {i}",
                "type": "artist",
                "uri": f"spotify:artist:ar{i}",
            }
            for i in range(max(10, size // 4))
        ]
        self.tracks = []
        for i in range(size):
            credits = rng.sample(artists, rng.choice((1, 1, 1, 2, 3)))
            year = rng.randint(1960, 2026)
            album = {
                "id": f"al{i // 8}",
                "name": f"Album {i // 8}",
                "album_type": "album",
                "release_date": f"{year}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}",
                "release_date_precision": "day",
                "total_tracks": 8,
                "artists": credits[:1],
                "type": "album",
            }
            self.tracks.append(
                {
                    "id": f"tr{i}",
                    "name": f"Track {i}",
                    "album": album,
                    "artists": credits,
                    "duration_ms": rng.randint(90_000, 420_000),
                    "explicit": rng.random() < 0.1,
                    "external_ids": {"isrc": f"XX{i:010d}"},
                    "disc_number": 1,
                    "track_number": i % 8 + 1,
                    "is_local": False,
                    "type": "track",
                    "uri": f"spotify:track:tr{i}",
                }
            )


def envelope(dataset: str, run_at: datetime, run_id: str, responses: list, **extras: Any) -> dict:
    meta = {
        "user_id": USER,
        "dataset": dataset,
        "run_id": run_id,
        "run_at": layout.iso(run_at),
        "fetched_at": layout.iso(run_at),
        **extras,
    }
    return {"meta": meta, "responses": responses}


def answer(url: str, body: Any) -> dict:
    return {"request": {"method": "GET", "url": API + url}, "status": 200, "body": body}


def history(size: Size, seed: int) -> list[tuple[str, bytes]]:
    """(raw key, gzip bytes) of every raw object, in the order extraction would land them."""
    rng = random.Random(seed)
    run_ids = random.Random(f"{seed}-run-ids")  # apart, so `rng` draws what it always drew
    catalogue = Catalogue(size.catalogue, rng)
    objects: list[tuple[str, bytes]] = []
    plays: list[dict] = []
    playlists = {
        f"pl{i}": rng.sample(catalogue.tracks, rng.randint(10, 80)) for i in range(size.playlists)
    }
    holder: dict[str, str] = {}
    for step in range(size.days * 48):
        run_at = START + timedelta(minutes=30 * step)
        # About 10 new plays per half hour: each poll of the newest 50 overlaps the last four.
        for k in range(10):
            played_at = run_at - timedelta(minutes=30) + timedelta(seconds=180 * k + 7)
            context = {"type": "playlist", "uri": "spotify:playlist:pl0"}
            plays.append(
                {
                    "track": rng.choice(catalogue.tracks),
                    "played_at": layout.iso(played_at),
                    "context": context,
                }
            )
        plays = plays[-50:]
        # As `layout.new_run_id` makes them, but reproducible.
        run_id = f"{run_at:%Y%m%dT%H%M%SZ}-{run_ids.getrandbits(24):06x}"
        body = {"items": plays[::-1], "limit": 50, "next": None, "cursors": None}
        objects.append(
            _raw("plays", run_at, run_id, [answer("me/player/recently-played?limit=50", body)])
        )
        if step % 48 == 12:  # the daily snapshot at 06:00
            objects.append(_playlists(run_at, run_id, playlists, holder, rng, catalogue))
    return objects


def _playlists(
    run_at: datetime,
    run_id: str,
    playlists: dict[str, list],
    holder: dict[str, str],
    rng: random.Random,
    catalogue: Catalogue,
) -> tuple[str, bytes]:
    key = layout.raw_key("playlists", run_at, USER, run_id)
    listing, pages, reused = [], [], {}
    for playlist_id, items in playlists.items():
        if rng.random() < 0.1:  # a tenth of the playlists change each day
            items.append(rng.choice(catalogue.tracks))
            holder.pop(playlist_id, None)
        snapshot = f"{playlist_id}-{len(items)}"
        listing.append(
            {
                "id": playlist_id,
                "name": playlist_id,
                "owner": {"id": USER},
                "collaborative": False,
                "public": True,
                "snapshot_id": snapshot,
                "items": {"total": len(items)},
                "type": "playlist",
            }
        )
        if playlist_id in holder:
            reused[playlist_id] = {"snapshot_id": snapshot, "raw_key": holder[playlist_id]}
            continue
        holder[playlist_id] = key
        for offset in range(0, len(items), 50):
            entries = [
                {
                    "added_at": "2025-12-01T00:00:00Z",
                    "added_by": {"id": USER},
                    "is_local": False,
                    "item": t,
                }
                for t in items[offset : offset + 50]
            ]
            pages.append(
                answer(
                    f"playlists/{playlist_id}/items?offset={offset}&limit=50",
                    {"items": entries, "offset": offset, "total": len(items)},
                )
            )
    listing_answer = answer("me/playlists?limit=50", {"items": listing, "offset": 0})
    return _raw("playlists", run_at, run_id, [listing_answer, *pages], reused_items=reused)


def _raw(
    dataset: str, run_at: datetime, run_id: str, responses: list, **extras: Any
) -> tuple[str, bytes]:
    document = envelope(dataset, run_at, run_id, responses, **extras)
    return layout.raw_key(dataset, run_at, USER, run_id), gzip.compress(
        json.dumps(document).encode(), mtime=0
    )


# --- the two contenders -------------------------------------------------------------------


def run_transform(lake: str, keys: list[str]) -> dict[str, Any]:
    """As deployed: one S3 event per raw object, then a full `reprocess` of the same lake."""
    from chalicelib.transform import handler

    services = Services(Config(lake_uri=lake))
    started = time.perf_counter()
    for key in keys:
        handler.transform_object(services.storage, key)
    incremental = time.perf_counter() - started
    files = sorted(Path(lake, "curated").rglob("*.parquet"))
    before = {path: path.read_bytes() for path in files}
    started = time.perf_counter()
    handler.reprocess(services.storage)
    reprocess = time.perf_counter() - started
    after = {path: path.read_bytes() for path in sorted(Path(lake, "curated").rglob("*.parquet"))}
    return {
        "seconds": incremental,
        "reprocess_seconds": reprocess,
        "reprocess_identical": before == after,
        "digest": curated_digest(lake, after),
        "rows": _parquet_rows(files),
        "bytes": sum(len(data) for data in after.values()),
        "max_rss": _max_rss(),
    }


def curated_digest(lake: str, files: dict[Path, bytes]) -> str:
    """SHA-256 over every curated file's lake-relative path and bytes, in path order."""
    digest = hashlib.sha256()
    for path, data in sorted(files.items()):
        digest.update(f"{path.relative_to(lake).as_posix()}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def _parquet_rows(files: list[Path]) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(path).metadata.num_rows for path in files)


def run_baseline(lake: str, keys: list[str], out: str) -> dict[str, Any]:
    """The naive way: every answer's items into one DataFrame (json_normalize), one Parquet."""
    import pandas as pd

    started = time.perf_counter()
    records = []
    for key in keys:
        document = json.loads(gzip.decompress(Path(lake, key).read_bytes()))
        for response in document["responses"]:
            for item in response["body"].get("items") or []:
                records.append({"user_id": document["meta"]["user_id"], **item})
    frame = pd.json_normalize(records)
    # Nested lists (artists) and mixed objects stay Python objects: store them as JSON text.
    for column in frame.select_dtypes(include="object").columns:
        frame[column] = frame[column].map(lambda v: v if isinstance(v, str) else json.dumps(v))
    frame.to_parquet(out, engine="pyarrow")
    elapsed = time.perf_counter() - started
    return {
        "seconds": elapsed,
        "rows": len(frame),
        "bytes": Path(out).stat().st_size,
        "max_rss": _max_rss(),
    }


def _max_rss() -> int:
    """Peak resident memory of this process, in bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _in_child(target: Any, *args: Any) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(target, args)


def input_items(objects: list[tuple[str, bytes]]) -> int:
    """Records both contenders read: the items of every answer (the common unit of work)."""
    return sum(
        len(response["body"].get("items") or [])
        for _, data in objects
        for response in json.loads(gzip.decompress(data))["responses"]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="1 = 14 days; 26 ≈ a year")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--expect-digest", metavar="HEX", help="exit 1 unless the curated files' digest is this"
    )
    args = parser.parse_args(argv)
    size = Size.at(args.scale)
    with tempfile.TemporaryDirectory(prefix="transform-bench-") as tmp:
        lake = str(Path(tmp, "lake"))
        storage = LocalStorage(lake)
        print(f"generating {size.days} days of polls, {size.playlists} playlists ...", flush=True)
        objects = history(size, args.seed)
        for key, data in objects:
            storage.put(key, data)
        keys = [key for key, _ in objects]
        raw_bytes, items = sum(len(data) for _, data in objects), input_items(objects)
        print(
            f"{len(keys)} raw objects, {items} items, {raw_bytes / 1e6:.1f} MB gzip JSON",
            flush=True,
        )
        ours = _in_child(run_transform, lake, keys)
        naive = _in_child(run_baseline, lake, keys, str(Path(tmp, "naive.parquet")))
    print(report(ours, naive, raw_bytes, items))
    if not ours["reprocess_identical"]:
        return 1
    if args.expect_digest and args.expect_digest != ours["digest"]:
        print(f"curated files differ from the expected digest {args.expect_digest}")
        return 1
    return 0


def report(ours: dict[str, Any], naive: dict[str, Any], raw_bytes: int, items: int) -> str:
    header = f"{'':22}{'items/s':>9}{'seconds':>9}{'rows out':>10}{'peak MB':>9}{'out/raw':>9}"
    lines = [header]
    for name, result, seconds in (
        ("transform (per event)", ours, ours["seconds"]),
        ("reprocess (batched)", ours, ours["reprocess_seconds"]),
        ("naive pandas", naive, naive["seconds"]),
    ):
        lines.append(
            f"{name:22}{items / seconds:>9.0f}{seconds:>9.1f}{result['rows']:>10}"
            f"{result['max_rss'] / 1e6:>9.0f}{result['bytes'] / raw_bytes:>9.3f}"
        )
    lines.append(
        "ratios to naive: per-event speed "
        f"x{naive['seconds'] / ours['seconds']:.2f}, reprocess speed "
        f"x{naive['seconds'] / ours['reprocess_seconds']:.2f}, peak memory "
        f"x{ours['max_rss'] / naive['max_rss']:.2f}, "
        f"Parquet bytes x{ours['bytes'] / naive['bytes']:.2f}"
    )
    lines.append(f"reprocess gave byte-identical tables: {ours['reprocess_identical']}")
    lines.append(f"curated files digest (sha256): {ours['digest']}")
    lines.append(
        "(naive: no dedup of overlapping polls, no reused items, no dimensions, no schema)"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
