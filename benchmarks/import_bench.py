"""History import benchmark (contract §8): a generated 10-year extended streaming history
imported into a temporary local lake, against a floor measured in the same run.

    python -m benchmarks.import_bench [--rows 150000] [--files 12] [--poll-days 30]

The floor is the least any import must do: parse the same JSON, drop the network identifiers
and write the rows as Parquet, one file per `played_date` (the layout the contract asks for).
Measured, each in its own process so its peak memory (max RSS) is its own:

1. `import-history` of the whole export (`spotify_etl.import_history`: checks, raw objects,
   transform) against the floor on the same files;
2. one file alone, as the transform Lambda gets it (its time, peak memory, curated files);
3. `reprocess` of a lake holding a month of 30-minute polls and the import, against the floor
   over the same raw objects (every play in them: API items and export rows).
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.transform_bench import _in_child, _max_rss
from chalicelib import exports
from chalicelib.storage import LocalStorage

USER = "bench-user"
IMPORT_AT = "2026-01-02T12:00:00Z"


def write_export(folder: Path, rows: int, files: int) -> list[Path]:
    from spotify_standin.export import synthetic_extended_history

    paths = []
    for name, data in synthetic_extended_history(rows=rows, files=files):
        path = folder / exports.base_name(name)
        path.write_bytes(data)
        paths.append(path)
    return paths


# --- the contenders -----------------------------------------------------------------------


def run_import(lake: str, paths: list[str]) -> dict[str, Any]:
    """What `spotify-etl import-history PATH… --user U` does on a local lake."""
    from chalicelib import layout
    from spotify_etl import import_history as importer

    storage = LocalStorage(lake)
    started = time.perf_counter()
    collected = importer.collect(paths)
    landed = importer.land(storage, collected.files, USER, layout.parse_iso(IMPORT_AT))
    importer.transform_here(storage, landed, lambda line: None)
    seconds = time.perf_counter() - started
    fates: dict[str, int] = {}
    for item in landed:
        for fate, count in (item.marker or {}).get("plays", {}).items():
            fates[fate] = fates.get(fate, 0) + count
    return {"seconds": seconds, "max_rss": _max_rss(), "fates": fates, **_curated(lake)}


def run_floor(out: str, sources: list[str], raw: bool) -> dict[str, Any]:
    """Parse, drop the network identifiers, write Parquet per `played_date`. `raw`: the sources
    are raw objects (gzip envelopes, as reprocess reads them), else export files."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for source in sources:
        data = Path(source).read_bytes()
        if raw:
            envelope = json.loads(gzip.decompress(data))
            for response in envelope["responses"]:
                body = response["body"]
                found = body if isinstance(body, list) else body.get("items") or []
                rows += ({"ts": row.get("ts") or row.get("played_at"), **row} for row in found)
        else:
            rows += exports.scrub(json.loads(data))
    # Nested objects (an API play's track) are kept as JSON text: the floor does not model them.
    flat = [
        {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in row.items()}
        for row in exports.scrub(rows)
    ]
    table = pa.Table.from_pylist(flat)
    moments = pc.strptime(
        pc.utf8_slice_codeunits(table["ts"], 0, 19), format="%Y-%m-%dT%H:%M:%S", unit="ms"
    )
    table = table.append_column("played_date", pc.cast(moments, pa.date32()))
    table = table.sort_by("played_date")
    dates = table["played_date"].to_pylist()
    start = 0
    written = 0
    while start < len(dates):
        end = start
        while end < len(dates) and dates[end] == dates[start]:
            end += 1
        folder = Path(out, f"played_date={dates[start].isoformat()}")
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(
            table.slice(start, end - start).drop(["played_date"]), folder / "part.parquet"
        )
        written += 1
        start = end
    return {
        "seconds": time.perf_counter() - started,
        "max_rss": _max_rss(),
        "files": written,
        "rows": table.num_rows,
    }


def run_one_file(lake: str, path: str) -> dict[str, Any]:
    """One export file as the transform Lambda gets it: landed, then its one S3 event."""
    from chalicelib import layout
    from chalicelib.transform import handler
    from spotify_etl import import_history as importer

    storage = LocalStorage(lake)
    collected = importer.collect([path])
    [landed] = importer.land(storage, collected.files, USER, layout.parse_iso(IMPORT_AT))
    started = time.perf_counter()
    marker = handler.transform_object(storage, landed.key)
    return {
        "seconds": time.perf_counter() - started,
        "max_rss": _max_rss(),
        "status": marker["status"],
        "curated_files": sum(1 for _ in Path(lake, "curated").rglob("*.parquet")),
        "megabytes": Path(path).stat().st_size / 1e6,
    }


def run_reprocess(lake: str) -> dict[str, Any]:
    from chalicelib.transform import handler

    started = time.perf_counter()
    summary = handler.reprocess(LocalStorage(lake))
    return {"seconds": time.perf_counter() - started, "max_rss": _max_rss(), **summary}


def _curated(lake: str) -> dict[str, Any]:
    import pyarrow.parquet as pq

    files = list(Path(lake, "curated", "plays").rglob("*.parquet"))
    return {"files": len(files), "rows": sum(pq.ParquetFile(f).metadata.num_rows for f in files)}


def add_polls(lake: str, days: int) -> int:
    """A month of 30-minute polls (the transform benchmark's generator) in the same lake."""
    from benchmarks.transform_bench import Size, history

    storage = LocalStorage(lake)
    objects = [(k, d) for k, d in history(Size(days, 2, 3000), 1) if k.startswith("raw/plays/")]
    for key, data in objects:
        storage.put(key, data)
    return len(objects)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=150_000)
    parser.add_argument("--files", type=int, default=12)
    parser.add_argument("--poll-days", type=int, default=30)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="import-bench-") as tmp:
        folder = Path(tmp, "export")
        folder.mkdir()
        paths = [str(p) for p in write_export(folder, args.rows, args.files)]
        size = sum(Path(p).stat().st_size for p in paths) / 1e6
        print(f"export: {len(paths)} files, {args.rows:,} rows, {size:.0f} MB", flush=True)
        lake = str(Path(tmp, "lake"))
        floor = _in_child(run_floor, str(Path(tmp, "floor")), paths, False)
        ours = _in_child(run_import, lake, paths)
        one = _in_child(run_one_file, str(Path(tmp, "one")), paths[-1])
        polls = add_polls(lake, args.poll_days)
        raw = sorted(str(p) for p in Path(lake, "raw").rglob("*.json.gz"))
        raw_floor = _in_child(run_floor, str(Path(tmp, "raw-floor")), raw, True)
        again = _in_child(run_reprocess, lake)
    print(report(floor, ours, one, raw_floor, again, polls))
    return 0


def report(
    floor: dict[str, Any],
    ours: dict[str, Any],
    one: dict[str, Any],
    raw_floor: dict[str, Any],
    again: dict[str, Any],
    polls: int,
) -> str:
    def line(name: str, result: dict[str, Any]) -> str:
        return f"{name:34}{result['seconds']:>9.1f}{result['max_rss'] / 1e6:>9.0f}"

    return "\n".join(
        [
            f"{'':34}{'seconds':>9}{'peak MB':>9}",
            line("floor (parse, scrub, Parquet/day)", floor),
            line("import-history", ours),
            f"import: x{ours['seconds'] / floor['seconds']:.2f} the floor's time, "
            f"{ours['rows']:,} plays in {ours['files']:,} files, fates {ours['fates']}",
            line("one file, its transform alone", one),
            f"one file: {one['megabytes']:.1f} MB, {one['curated_files']} curated files "
            f"touched, status {one['status']}",
            line(f"floor over raw/ (+{polls} polls)", raw_floor),
            line("reprocess", again),
            f"reprocess: x{again['seconds'] / raw_floor['seconds']:.2f} the floor's time "
            f"({again.get('objects')} raw objects)",
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
