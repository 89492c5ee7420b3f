"""The dashboard's charts (contract §10): each a Vega-Lite specification built as plain data.

A chart names the named query (or queries, best first) it draws. Its builder takes that query's
rows exactly as the engine answered them and puts them, untouched, into the spec's
`data.values`: anything the picture needs beyond the rows (a rank, a label, a week) is a Vega-Lite
transform, computed in the browser from the same values. So every number on the page is a
query's number, and a test can compare a spec's data with the query's answer directly.

Builders are written for every chart of §10, driven by the columns §6 documents, including
those whose query has not landed yet; `plan()` draws a chart only when its query exists.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

Rows = list[dict[str, Any]]
Spec = dict[str, Any]

SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json"
ACCENT = "#1db954"  # the one colour a bar or a cell is drawn in; text keeps the theme's colour
GAP = "#e5534b"
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
TOP_LIMIT = 10
CAPTION_PX = 150  # room kept at the right of a ranked row for its numbers
ROW_STEP = 26  # px per ranked row: tall enough for a finger, short enough for ten on a phone
# Up to this many weeks the calendar keeps square cells (fits a phone); more stretch to fit.
CALENDAR_FIXED_WEEKS = 14


@dataclass(frozen=True)
class Context:
    """What the page is about: a UTC date range, optionally one user, and a display zone."""

    start: str
    end: str
    user: str | None = None
    tz: str = "UTC"

    @property
    def range_text(self) -> str:
        return self.start if self.start == self.end else f"{self.start} → {self.end}"

    @property
    def who(self) -> str:
        return f"user {self.user}" if self.user else "all users"

    def weeks(self) -> int:
        """Calendar columns the range spans (Monday-based weeks)."""
        first, last = date.fromisoformat(self.start), date.fromisoformat(self.end)
        monday = first.toordinal() - first.weekday()
        return (last.toordinal() - monday) // 7 + 1


Builder = Callable[[Rows, Context], Spec]


@dataclass(frozen=True)
class Source:
    """One way to draw a chart: a named query, its builder, and when its answer is empty."""

    query: str
    build: Builder
    note: str = ""  # said under the title when this source stands in for a better one
    zone_aware: bool = False
    empty: Callable[[Rows], bool] = lambda rows: not rows


@dataclass(frozen=True)
class Chart:
    """A card on the page."""

    key: str  # DOM id; stable for tests
    title: str
    sources: tuple[Source, ...]  # the first whose query exists is drawn
    empty_text: str  # what the card says when the query has nothing in the range
    wide: bool = False  # spans the whole row on a desktop


def _no_plays(rows: Rows) -> bool:
    """Queries that answer every hour, weekday or date (zeros included) are empty when no cell
    has a play."""
    return not any(row.get("plays") for row in rows)


def _no_coverage(rows: Rows) -> bool:
    return not any(row.get("plays") or row.get("open_gap_minutes") for row in rows)


# --- shared pieces ------------------------------------------------------------------------


def _base(rows: Rows, description: str) -> Spec:
    """The part every spec shares: the query's rows as they are, a width that follows the card."""
    return {
        "$schema": SCHEMA,
        "description": description,
        "data": {"values": rows},
        "width": "container",
        "background": "transparent",
    }


def _ranked(
    rows: Rows,
    *,
    description: str,
    label: str,
    measure: str,
    caption: str,
    tooltip: Sequence[Mapping[str, Any]],
    measure_domain: Sequence[float] | None = None,
) -> Spec:
    """A ranked list read like a Wrapped card: `1. name` on the left, the numbers on the right,
    a bar behind proportional to `measure`. Rows keep the query's order (its ranking rules,
    ties included); `label` and `caption` are Vega expressions over a row.

    Text rather than an axis, so a long name on a phone is shortened, never overlapped."""
    # Bars stop where the numbers start, so text never sits on a bar's ragged end.
    x_scale: dict[str, Any] = {
        "nice": False,
        "range": [0, {"expr": f"max(60, width - {CAPTION_PX})"}],
    }
    if measure_domain is not None:
        x_scale["domain"] = list(measure_domain)
    spec = _base(rows, description)
    spec.update(
        {
            # A fixed height per row; a step height would conflict with the container width.
            "height": ROW_STEP * max(1, len(rows)),
            "transform": [
                {"window": [{"op": "row_number", "as": "rank"}]},
                {"calculate": f"datum.rank + '. ' + ({label})", "as": "label"},
                {"calculate": caption, "as": "caption"},
            ],
            "encoding": {
                "y": {"field": "rank", "type": "ordinal", "axis": None},
                "tooltip": [{"field": "rank", "type": "ordinal", "title": "#"}, *tooltip],
            },
            "layer": [
                {
                    "mark": {
                        "type": "bar",
                        "color": ACCENT,
                        "opacity": 0.28,
                        "cornerRadius": 4,
                        "height": {"band": 0.85},
                    },
                    "encoding": {
                        "x": {
                            "field": measure,
                            "type": "quantitative",
                            "axis": None,
                            "scale": x_scale,
                        }
                    },
                },
                {
                    "mark": {
                        "type": "text",
                        "align": "left",
                        "dx": 6,
                        "limit": {"expr": f"max(60, width - {CAPTION_PX} - 12)"},
                    },
                    "encoding": {"x": {"value": 0}, "text": {"field": "label"}},
                },
                {
                    "mark": {"type": "text", "align": "right", "dx": -6, "opacity": 0.8},
                    "encoding": {"x": {"value": "width"}, "text": {"field": "caption"}},
                },
            ],
            "config": {"view": {"stroke": None}},
        }
    )
    return spec


def _q(field: str, title: str | None = None, fmt: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"field": field, "type": "quantitative", "title": title or field}
    if fmt:
        entry["format"] = fmt
    return entry


def _n(field: str, title: str | None = None) -> dict[str, Any]:
    return {"field": field, "type": "nominal", "title": title or field}


_MIN = "format(datum.minutes, ',') + ' min'"
_PLAYS = "format(datum.plays, ',') + (datum.plays == 1 ? ' play' : ' plays')"
_WEEKDAY_LABEL = "['Mon','Tue','Wed','Thu','Fri','Sat','Sun'][datum.value]"


# --- builders, one per query (columns as contract §6 lists them) ---------------------------


def minutes_calendar(rows: Rows, context: Context) -> Spec:
    """`daily_listening` as a calendar: a column per week (from Monday), a cell per day, coloured
    by minutes. Every day of the range gets a faint cell (a generated sequence, not data), so a
    day without plays reads as a gap rather than as the calendar's edge."""
    first = date.fromisoformat(context.start)
    days = date.fromisoformat(context.end).toordinal() - first.toordinal() + 1
    fixed = context.weeks() <= CALENDAR_FIXED_WEEKS

    def placed(day_expr: str) -> list[dict[str, Any]]:
        return [
            {"calculate": day_expr, "as": "day"},
            {"calculate": "(utcday(datum.day) + 6) % 7", "as": "weekday"},
            {"calculate": "datum.day - datum.weekday * 86400000", "as": "week"},
        ]

    spec = _base(rows, f"Minutes per day, {context.range_text}, {context.who}")
    spec.update(
        {
            "width": {"step": 26} if fixed else "container",
            "height": {"step": 22} if fixed else 7 * 16,
            "encoding": {
                "x": {
                    "field": "week",
                    "type": "ordinal",
                    "title": None,
                    "axis": {
                        "labelExpr": "utcFormat(datum.value, '%b %-d')",
                        "labelAngle": -45 if fixed else 0,
                        "labelOverlap": True,
                        "ticks": False,
                        "domain": False,
                    },
                },
                "y": {
                    "field": "weekday",
                    "type": "ordinal",
                    "title": None,
                    "scale": {"domain": list(range(7))},
                    "axis": {"labelExpr": _WEEKDAY_LABEL, "ticks": False, "domain": False},
                },
            },
            "layer": [
                {
                    "data": {"sequence": {"start": 0, "stop": days, "as": "offset"}},
                    "transform": placed(
                        f"utc({first.year}, {first.month - 1}, {first.day})"
                        " + datum.offset * 86400000"
                    ),
                    "mark": {
                        "type": "rect",
                        "cornerRadius": 3,
                        "color": "#8a8f98",
                        "opacity": 0.15,
                    },
                },
                {
                    "transform": placed(
                        "utc(toNumber(substring(datum.date, 0, 4)),"
                        " toNumber(substring(datum.date, 5, 7)) - 1,"
                        " toNumber(substring(datum.date, 8, 10)))"
                    ),
                    "mark": {"type": "rect", "cornerRadius": 3},
                    "encoding": {
                        "color": {
                            "field": "minutes",
                            "type": "quantitative",
                            "title": "minutes",
                            "scale": {"domainMin": 0},
                            "legend": {"orient": "bottom", "gradientLength": 160},
                        },
                        "tooltip": [
                            _n("date"),
                            _q("plays"),
                            _q("minutes"),
                            _q("distinct_tracks", "tracks"),
                            _q("distinct_artists", "artists"),
                        ],
                    },
                },
            ],
            "config": {"view": {"stroke": None}},
        }
    )
    return spec


def minutes_per_day(rows: Rows, context: Context) -> Spec:
    """`daily_listening` as bars: minutes each day, plays and distinct counts on hover."""
    spec = _base(rows, f"Minutes per day, {context.range_text}, {context.who}")
    spec.update(
        {
            "height": 160,
            "mark": {"type": "bar", "color": ACCENT, "cornerRadiusEnd": 3},
            "encoding": {
                "x": {
                    "field": "date",
                    "type": "ordinal",
                    "title": None,
                    "axis": {"labelAngle": 0, "labelOverlap": True},
                },
                "y": {"field": "minutes", "type": "quantitative", "title": "minutes"},
                "tooltip": [
                    _n("date"),
                    _q("plays"),
                    _q("minutes"),
                    _q("distinct_tracks", "tracks"),
                    _q("distinct_artists", "artists"),
                ],
            },
        }
    )
    return spec


def weekday_hour(rows: Rows, context: Context) -> Spec:
    """`weekday_hour`: 7 × 24 cells (weekday 1 = Monday, hours in the page's zone) by minutes."""
    spec = _base(rows, f"Minutes by weekday and hour ({context.tz}), {context.range_text}")
    spec.update(
        {
            "height": 7 * 20,
            "transform": [{"calculate": "datum.weekday - 1", "as": "weekday_index"}],
            "mark": {"type": "rect", "cornerRadius": 2},
            "encoding": {
                "x": {
                    "field": "hour",
                    "type": "ordinal",
                    "title": f"hour ({context.tz})",
                    "axis": {"labelAngle": 0, "values": [0, 3, 6, 9, 12, 15, 18, 21]},
                },
                "y": {
                    "field": "weekday_index",
                    "type": "ordinal",
                    "title": None,
                    "scale": {"domain": list(range(7))},
                    "axis": {"labelExpr": _WEEKDAY_LABEL},
                },
                "color": {
                    "field": "minutes",
                    "type": "quantitative",
                    "title": "minutes",
                    "scale": {"domainMin": 0},
                    "legend": {"orient": "bottom", "gradientLength": 160},
                },
                "tooltip": [_q("weekday"), _q("hour"), _q("plays"), _q("minutes")],
            },
            "config": {"view": {"stroke": None}},
        }
    )
    return spec


def listening_clock(rows: Rows, context: Context) -> Spec:
    """`listening_clock`: minutes in each hour of the day in the page's zone (all 24 hours)."""
    spec = _base(rows, f"Minutes by hour ({context.tz}), {context.range_text}")
    spec.update(
        {
            "height": 160,
            "mark": {"type": "bar", "color": ACCENT, "cornerRadiusEnd": 3},
            "encoding": {
                "x": {
                    "field": "hour",
                    "type": "ordinal",
                    "title": f"hour ({context.tz})",
                    "axis": {"labelAngle": 0, "values": [0, 3, 6, 9, 12, 15, 18, 21]},
                },
                "y": {"field": "minutes", "type": "quantitative", "title": "minutes"},
                "tooltip": [_q("hour"), _q("plays"), _q("minutes")],
            },
        }
    )
    return spec


def top_artists(rows: Rows, context: Context) -> Spec:
    return _ranked(
        rows,
        description=f"Top artists by plays, {context.range_text}, {context.who}",
        label="datum.artist_name || datum.artist_id || 'unknown artist'",
        measure="plays",
        caption=f"{_PLAYS} + ' · ' + {_MIN}",
        tooltip=[_n("artist_name", "artist"), _q("plays"), _q("minutes")],
    )


def top_tracks(rows: Rows, context: Context) -> Spec:
    return _ranked(
        rows,
        description=f"Top tracks by plays, {context.range_text}, {context.who}",
        label="(datum.track_name || datum.track_id || 'unknown track')"
        " + (datum.artist_names ? ' — ' + datum.artist_names : '')",
        measure="plays",
        caption=f"{_PLAYS} + ' · ' + {_MIN}",
        tooltip=[_n("track_name", "track"), _n("artist_names", "artists"), _q("plays"),
                 _q("minutes")],
    )  # fmt: skip


def top_albums(rows: Rows, context: Context) -> Spec:
    return _ranked(
        rows,
        description=f"Top albums by plays, {context.range_text}, {context.who}",
        label="(datum.album_name || datum.album_id || 'unknown album')"
        " + (datum.artist_names ? ' — ' + datum.artist_names : '')",
        measure="plays",
        caption=f"{_PLAYS} + ' · ' + {_MIN}",
        tooltip=[_n("album_name", "album"), _n("artist_names", "artists"), _q("plays"),
                 _q("minutes")],
    )  # fmt: skip


def genres(rows: Rows, context: Context) -> Spec:
    return _ranked(
        rows,
        description=f"Genres by share of plays, {context.range_text}, {context.who}",
        label="datum.genre",
        measure="share",
        caption=f"{_PLAYS} + ' · ' + format(datum.share, '.2%')",
        tooltip=[_n("genre"), _q("plays"), _q("share", fmt=".2%")],
    )


def top_shows(rows: Rows, context: Context) -> Spec:
    return _ranked(
        rows,
        description=f"Podcasts by minutes, {context.range_text}, {context.who}",
        label="datum.show_name || 'unknown show'",
        measure="minutes",
        caption="datum.episodes + (datum.episodes == 1 ? ' episode' : ' episodes')"
        f" + ' · ' + {_MIN}",
        tooltip=[_n("show_name", "show"), _q("episodes"), _q("plays"), _q("minutes")],
    )


def skips(rows: Rows, context: Context) -> Spec:
    return _ranked(
        rows,
        description=f"Most skipped tracks, {context.range_text}, {context.who}",
        label="(datum.track_name || datum.track_id || 'unknown track')"
        " + (datum.artist_names ? ' — ' + datum.artist_names : '')",
        measure="skip_rate",
        measure_domain=(0, 1),
        caption="datum.skipped + ' of ' + datum.plays + ' skipped · '"
        " + format(datum.skip_rate, '.2%')",
        tooltip=[_n("track_name", "track"), _n("artist_names", "artists"), _q("plays"),
                 _q("skipped"), _q("skip_rate", "skip rate", ".2%")],
    )  # fmt: skip


def discoveries(rows: Rows, context: Context) -> Spec:
    """`discoveries`: new artists and new tracks per month, side by side."""
    spec = _base(rows, f"Discoveries per month, {context.range_text}, {context.who}")
    spec.update(
        {
            "height": 180,
            "transform": [
                {"fold": ["new_artists", "new_tracks"], "as": ["kind", "count"]},
                {
                    "calculate": "datum.kind == 'new_artists' ? 'new artists' : 'new tracks'",
                    "as": "series",
                },
            ],
            "mark": {"type": "bar", "cornerRadiusEnd": 3},
            "encoding": {
                "x": {
                    "field": "month",
                    "type": "ordinal",
                    "title": None,
                    "axis": {"labelAngle": 0, "labelOverlap": True},
                },
                "xOffset": {"field": "series", "type": "nominal"},
                "y": {"field": "count", "type": "quantitative", "title": None},
                "color": {
                    "field": "series",
                    "type": "nominal",
                    "title": None,
                    "scale": {"range": [ACCENT, "#4c78a8"]},
                    "legend": {"orient": "bottom"},
                },
                "tooltip": [
                    _n("month"),
                    _q("new_artists", "new artists"),
                    _q("new_tracks", "new tracks"),
                    _q("plays_of_new", "plays of new artists"),
                ],
            },
        }
    )
    return spec


def coverage(rows: Rows, context: Context) -> Spec:
    """`coverage`: counted plays per day by source, days with an open gap in history marked."""
    spec = _base(rows, f"History coverage per day, {context.range_text}, {context.who}")
    tooltip = [
        _n("date"),
        _q("plays"),
        _q("api_plays", "API only"),
        _q("export_plays", "export only"),
        _q("both_plays", "both"),
        _q("open_gap_minutes", "open gap (min)"),
    ]
    x = {
        "field": "date",
        "type": "ordinal",
        "title": None,
        "axis": {"labelAngle": 0, "labelOverlap": True},
    }
    spec.update(
        {
            "height": 180,
            "encoding": {"x": x, "tooltip": tooltip},
            "layer": [
                {
                    "transform": [{"filter": "datum.open_gap_minutes > 0"}],
                    "mark": {"type": "rect", "color": GAP, "opacity": 0.22},
                    "encoding": {"y": {"value": 0}, "y2": {"value": "height"}},
                },
                {
                    "transform": [
                        {
                            "fold": ["api_plays", "export_plays", "both_plays"],
                            "as": ["source_column", "source_plays"],
                        },
                        {
                            "calculate": "{'api_plays': 'API only', 'export_plays': 'export only',"
                            " 'both_plays': 'both'}[datum.source_column]",
                            "as": "source",
                        },
                    ],
                    "mark": {"type": "bar"},
                    "encoding": {
                        "y": {
                            "field": "source_plays",
                            "type": "quantitative",
                            "stack": "zero",
                            "title": "plays",
                        },
                        "color": {
                            "field": "source",
                            "type": "nominal",
                            "title": None,
                            "scale": {
                                "domain": ["both", "API only", "export only"],
                                "range": [ACCENT, "#4c78a8", "#9e9ac8"],
                            },
                            "legend": {"orient": "bottom"},
                        },
                    },
                },
            ],
        }
    )
    return spec


# --- the page's charts, in reading order ----------------------------------------------------

CHARTS: tuple[Chart, ...] = (
    Chart(
        "calendar",
        "Minutes per day",
        (Source("daily_listening", minutes_calendar),),
        "No plays in this range.",
    ),
    Chart(
        "daily",
        "Listening per day",
        (Source("daily_listening", minutes_per_day),),
        "No plays in this range.",
    ),
    Chart(
        "time_of_day",
        "When you listen",
        (
            Source("weekday_hour", weekday_hour, zone_aware=True, empty=_no_plays),
            Source(
                "listening_clock",
                listening_clock,
                note="Minutes by hour of the day; the weekday × hour grid appears once the "
                "`weekday_hour` query exists.",
                zone_aware=True,
                empty=_no_plays,
            ),
        ),
        "No plays in this range.",
        wide=True,
    ),
    Chart("top_artists", "Top artists", (Source("top_artists", top_artists),),
          "No artists played in this range."),
    Chart("top_tracks", "Top tracks", (Source("top_tracks", top_tracks),),
          "No tracks played in this range."),
    Chart("top_albums", "Top albums", (Source("top_albums", top_albums),),
          "No albums played in this range."),
    Chart("genres", "Genres", (Source("genres", genres),),
          "No genres known for the plays in this range."),
    Chart("discoveries", "Discoveries per month", (Source("discoveries", discoveries),),
          "Nothing new in this range."),
    Chart("skips", "Most skipped", (Source("skips", skips),),
          "No track has three or more plays with a known play time in this range."),
    Chart("podcasts", "Podcasts", (Source("top_shows", top_shows),),
          "No podcast episodes in this range."),
    Chart("coverage", "History coverage",
          (Source("coverage", coverage, empty=_no_coverage,
                  note="Shaded red: days with minutes inside an open gap in the history "
                  "that no imported export covers."),),
          "No plays and no open gaps in this range.", wide=True),
)  # fmt: skip


@dataclass(frozen=True)
class Planned:
    """A chart whose query exists, with the source chosen and the parameters to send."""

    chart: Chart
    source: Source
    params: dict[str, str]


def plan(
    context: Context, available: Collection[str], declared: Mapping[str, Collection[str]]
) -> tuple[list[Planned], list[Chart]]:
    """The charts that can be drawn (each with the first source whose query is `available`)
    and those still waiting for their query. `declared[name]` lists a query's parameter names:
    a query is sent only the page parameters it declares (limits are the page's own)."""
    drawn: list[Planned] = []
    waiting: list[Chart] = []
    for chart in CHARTS:
        source = next((s for s in chart.sources if s.query in available), None)
        if source is None:
            waiting.append(chart)
            continue
        names = declared[source.query]
        values = {"start": context.start, "end": context.end, "user": context.user,
                  "tz": context.tz, "limit": str(TOP_LIMIT)}  # fmt: skip
        params = {k: v for k, v in values.items() if k in names and v is not None}
        drawn.append(Planned(chart, source, params))
    return drawn, waiting
