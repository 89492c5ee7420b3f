"""One user's plays from the API and from history exports → the `plays` table. Pure: no I/O.

Contract §8. The API says when a track was played (`played_at`, sometimes the start of the
stream, sometimes its end); an export row says when the stream ended (`ts`) and for how long.
The table holds each play once:

1. API plays: one per `played_at` (overlapping polls return the same ones).
2. Export rows: one per `ts` — an exact duplicate (within or across files and imports) is the
   same play; of two different rows, the one with the larger `ms_played` wins, then the one whose
   URI sorts first.
3. Pairs: an export row and an API play of the same track are the same play when
   `|played_at − ts| ≤ 90 s` or `|played_at − (ts − ms_played)| ≤ 90 s`. One-to-one: pairs are
   taken by the smaller distance first, ties to the earlier `ts`. A pair is one row with the
   API's `played_at` (and context) and the export's columns, `source = both`.

The result is a function of the set of rows given, whatever order they came in, so the merge
can take a table's rows back apart (`halves`) and combine them with new ones again. A `both` row
does not show its export's `ts`, so the files keep it in their metadata (`MATCHED`).
"""

from __future__ import annotations

import bisect
import json
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from chalicelib import layout
from chalicelib.tables import TABLES
from chalicelib.transform.export_rows import EXPORT_COLUMNS, FROM_ACCOUNT
from chalicelib.transform.merge import canonical
from chalicelib.transform.objects import Row

TOLERANCE = timedelta(seconds=90)
API_COLUMNS = ("user_id", "played_at", "track_id", "context_type", "context_uri")
COLUMNS = tuple(TABLES["plays"].column_names)
# File metadata: the export `ts` of each `both` row, by its `played_at`; the `ts` of the export
# rows that came from account data.
MATCHED, ACCOUNT_TS = "matched_ts", "account_ts"
ACCOUNT_SLACK = timedelta(seconds=60)
# Before the export columns existed, an API play's row had none of them.
API_DEFAULTS: Row = {column: None for column in EXPORT_COLUMNS} | {
    "source": "api",
    "item_type": "track",
}


def api_row(row: Row) -> Row:
    """An API play as a table row (the export's columns null)."""
    return {column: row.get(column) for column in API_COLUMNS} | API_DEFAULTS


def halves(
    rows: Iterable[Row], matched: dict[str, str], account: Collection[str] = ()
) -> tuple[list[Row], list[Row]]:
    """A table's rows taken back apart: API plays, and export rows (`played_at` = their `ts`;
    `account`: the ISO `ts` of those from account data)."""
    api, export = [], []
    for row in rows:
        source = row.get("source") or "api"  # files written before the export columns
        if source in ("api", "both"):
            api.append(api_row(row))
        if source in ("export", "both"):
            ts = row["played_at"]
            if source == "both":
                found = matched.get(layout.iso(row["played_at"]))
                ts = layout.parse_iso(found) if found else ts
            half = export_row(row, ts)
            if layout.iso(ts) in account:
                half[FROM_ACCOUNT] = True
            export.append(half)
    return api, export


def export_row(row: Row, ts: datetime | None = None) -> Row:
    """An export row in the one shape the merge compares: `played_at` is its `ts`."""
    shaped = {column: row.get(column) for column in COLUMNS} | {
        "played_at": row["played_at"] if ts is None else ts,
        "context_type": None,
        "context_uri": None,
        "source": "export",
    }
    if row.get(FROM_ACCOUNT):
        shaped[FROM_ACCOUNT] = True
    return shaped


@dataclass(frozen=True)
class Combined:
    """The table's rows (sorted by `played_at`), the `MATCHED` metadata of its `both` rows, and
    what became of the export rows: the one kept per `ts`, and which of those were paired."""

    rows: list[Row]
    matched: dict[str, str]
    exports: dict[datetime, Row]
    paired: set[datetime]


def combine(api_rows: Iterable[Row], export_rows: Iterable[Row]) -> Combined:
    """The table from API plays (shaped by `api_row`) and export rows (by `export_row`)."""
    api = _one_per_moment(api_rows, _api_rank)
    export = _without_covered_account_rows(_one_per_moment(export_rows, _export_rank))
    pairs = match(api, export)
    rows: dict[datetime, Row] = {}
    matched: dict[str, str] = {}
    for moment, play in api.items():
        partner = pairs.get(moment)
        if partner is None:
            rows[moment] = play
            continue
        rows[moment] = export[partner] | {
            "played_at": moment,
            "context_type": play["context_type"],
            "context_uri": play["context_uri"],
            "source": "both",
        }
        matched[layout.iso(moment)] = layout.iso(partner)
    paired = set(pairs.values())
    for ts, row in export.items():
        # An unpaired export row whose `ts` is an API play's `played_at` (another track, to the
        # millisecond) cannot share the key: the API's play stands.
        if ts not in paired and ts not in rows:
            rows[ts] = row
    return Combined([rows[moment] for moment in sorted(rows)], matched, export, paired)


def fates(new: Iterable[Row], before: Iterable[Row], combined: Combined) -> Counter[str]:
    """What importing the export rows `new` did, given the export rows the lake held `before`:
    each is `matched` (paired with an API play), `new` (a play of its own), or `duplicate` —
    its `ts` was known already (the same row, or one a longer row now replaces), another row
    with its `ts` won, or an API play holds that moment."""
    known = {row["played_at"] for row in before}
    standing = {row["played_at"] for row in combined.rows if row["source"] == "export"}
    counted: Counter[str] = Counter()
    for row in new:
        ts = row["played_at"]
        if ts in known or combined.exports.get(ts) != row:
            counted["duplicate"] += 1
            continue
        fate = "matched" if ts in combined.paired else "new" if ts in standing else "duplicate"
        counted[fate] += 1
        known.add(ts)  # the same row again in this import is one play
    return counted


def _without_covered_account_rows(export: dict[datetime, Row]) -> dict[datetime, Row]:
    """The export rows but the account-data rows that an extended-history row already holds.

    Both downloads list the same streams of the last year: account data to the minute and by
    name, extended history to the second with ids. An account row is the stream of an extended
    row with its names (track and artist, or episode and show) ending in the same minute (within
    `ACCOUNT_SLACK`); one to one, nearest first.
    """
    account = [(ts, row) for ts, row in export.items() if row.get(FROM_ACCOUNT)]
    if not account:
        return export
    by_names: dict[tuple[Any, ...], list[datetime]] = defaultdict(list)
    for ts, row in export.items():
        if not row.get(FROM_ACCOUNT):
            by_names[_names(row)].append(ts)
    candidates = []
    for ts, row in account:
        for other in by_names.get(_names(row), ()):
            if abs(other - ts) < ACCOUNT_SLACK:
                candidates.append((abs(other - ts), ts, other))
    covered, taken = set(), set()
    for _, ts, other in sorted(candidates):
        if ts not in covered and other not in taken:
            covered.add(ts)
            taken.add(other)
    return {ts: row for ts, row in export.items() if ts not in covered}


def _names(row: Row) -> tuple[Any, ...]:
    return (row["track_name"], row["artist_name"], row["episode_name"], row["show_name"])


def match(api: dict[datetime, Row], export: dict[datetime, Row]) -> dict[datetime, datetime]:
    """API `played_at` → the export `ts` it pairs with (contract §8)."""
    by_track: dict[str, list[tuple[datetime, int]]] = defaultdict(list)
    for ts, row in export.items():
        if row["track_id"] is not None:
            by_track[row["track_id"]].append((ts, row["ms_played"] or 0))
    for rows in by_track.values():
        rows.sort()
    candidates = []
    for played_at, play in api.items():
        rows = by_track.get(play["track_id"]) if play["track_id"] is not None else None
        if not rows:
            continue
        longest = timedelta(milliseconds=max(ms for _, ms in rows))
        start = bisect.bisect_left(rows, (played_at - TOLERANCE, -1))
        for ts, ms in rows[start:]:
            if ts > played_at + TOLERANCE + longest:
                break
            distance = min(abs(played_at - ts), abs(played_at - (ts - timedelta(milliseconds=ms))))
            if distance <= TOLERANCE:
                candidates.append((distance, ts, played_at))
    pairs: dict[datetime, datetime] = {}
    taken: set[datetime] = set()
    for _, ts, played_at in sorted(candidates):
        if played_at not in pairs and ts not in taken:
            pairs[played_at] = ts
            taken.add(ts)
    return pairs


def _one_per_moment(rows: Iterable[Row], rank: Any) -> dict[datetime, Row]:
    best: dict[datetime, Row] = {}
    for row in rows:
        moment = row["played_at"]
        current = best.get(moment)
        if current is None or (current != row and rank(row) > rank(current)):
            best[moment] = row
    return best


def _api_rank(row: Row) -> tuple[Any, ...]:
    return (canonical(row),)


def _export_rank(row: Row) -> tuple[Any, ...]:
    """Larger `ms_played` first, then the URI that sorts first, then content (total order)."""
    uri = _uri(row)
    ms_played = -1 if row["ms_played"] is None else row["ms_played"]
    # The same stream in both downloads, to the same second: the extended row (ids, details).
    extended = not row.get(FROM_ACCOUNT)
    return (ms_played, uri is not None, _Inverted(uri or ""), extended, canonical(row))


def _uri(row: Row) -> str | None:
    if row["track_id"] is not None:
        return f"spotify:track:{row['track_id']}"
    if row["episode_id"] is not None:
        return f"spotify:episode:{row['episode_id']}"
    return None


class _Inverted:
    """Orders text backwards, so the greatest rank holds the URI that sorts first."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __lt__(self, other: _Inverted) -> bool:
        return self.text > other.text

    def __gt__(self, other: _Inverted) -> bool:
        return self.text < other.text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Inverted) and self.text == other.text

    def __hash__(self) -> int:
        return hash(self.text)


def file_metadata(rows: list[Row], matched: dict[str, str]) -> dict[str, str]:
    """What a day file keeps beside its rows so they can be taken apart again (`halves`): the
    export `ts` of its `both` rows, and which export rows came from account data."""
    mine = {at: ts for row in rows if (ts := matched.get(at := layout.iso(row["played_at"])))}
    account = sorted(
        mine.get(layout.iso(row["played_at"]), layout.iso(row["played_at"]))
        for row in rows
        if row.get(FROM_ACCOUNT)
    )
    metadata = {}
    if mine:
        metadata[MATCHED] = json.dumps(dict(sorted(mine.items())), separators=(",", ":"))
    if account:
        metadata[ACCOUNT_TS] = json.dumps(account, separators=(",", ":"))
    return metadata


def decode_matched(metadata: dict[str, str]) -> dict[str, str]:
    found = metadata.get(MATCHED)
    return json.loads(found) if found else {}


def decode_account(metadata: dict[str, str]) -> set[str]:
    found = metadata.get(ACCOUNT_TS)
    return set(json.loads(found)) if found else set()
