"""The dashboard end to end: parameters in, queries run, one HTML page out.

`GET /dashboard` (`respond`) and `spotify-etl report --html` (`write_report`) share this, so the
page is the same wherever it is made. Parameters are checked by the named queries' own
validation (`queries.parameters`), so a bad date, zone or user gets the very 400 message
`/queries` gives.
"""

from __future__ import annotations

import re
import time
import urllib.parse
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chalicelib import queries
from chalicelib.dashboard.charts import Context, plan
from chalicelib.dashboard.collect import REQUEST_BUDGET_SECONDS, Collected, collect
from chalicelib.dashboard.page import Card, render_page, render_preparing
from chalicelib.queries.athena_engine import EXECUTION_ID_PATTERN
from chalicelib.queries.parameters import parse_declaration, validate

if TYPE_CHECKING:
    from chalice import Response

    from chalicelib.queries import QueryEngine

# The page's own parameters, declared as the named queries declare theirs (same checks, same
# messages). `pending` is not among them: only the page's own refresh link sets it.
PARAMETERS = tuple(
    parse_declaration(line)
    for line in (
        "@param start date required First played_date (UTC), inclusive",
        "@param end date required Last played_date (UTC), inclusive",
        "@param user string Only this user's plays; all users when absent",
        "@param tz tz=UTC IANA time zone for times of day (e.g. Europe/Berlin)",
    )
)
PENDING = "pending"
_PENDING_PAIR = re.compile(r"([a-z][a-z0-9_]{0,63}):(.+)")
_MAX_PENDING = 32
# A terminal is not held to API Gateway's 29 s; it still gives up eventually.
REPORT_BUDGET_SECONDS = 15 * 60.0


class DashboardNotReady(Exception):
    """The queries did not all finish within the budget (only `write_report` raises it)."""


@dataclass(frozen=True)
class Dashboard:
    """A built page: complete (`ready`), or the self-refreshing one saying it is in progress."""

    html: str
    ready: bool
    collected: Collected


def parse_request(params: Mapping[str, Any]) -> tuple[Context, dict[str, str]]:
    """The page's context and the executions an earlier request started (from `pending`).
    Raises `QueryParameterError` with the message `/queries` would give."""
    raw = dict(params)
    pending = raw.pop(PENDING, None)
    values = validate(PARAMETERS, raw)
    context = Context(
        start=str(values["start"]),
        end=str(values["end"]),
        user=None if values["user"] is None else str(values["user"]),
        tz=str(values["tz"]),
    )
    return context, _parse_pending(pending)


def build_dashboard(
    engine: QueryEngine,
    context: Context,
    *,
    started: Mapping[str, str] | None = None,
    budget_seconds: float = REQUEST_BUDGET_SECONDS,
    notice: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    progress: Callable[[str], None] | None = None,
    catalogue: Mapping[str, Collection[str]] | None = None,
) -> Dashboard:
    """Run the charts' queries together and render the page, or, if some are still running
    when the budget ends, the page that refreshes itself to collect them.

    `catalogue` (query name -> its parameter names) defaults to the named queries that exist;
    a chart whose query is not in it is listed as not available yet."""
    if catalogue is None:
        catalogue = {
            q["name"]: [p["name"] for p in q["parameters"]] for q in queries.list_queries()
        }
    drawn, waiting = plan(context, catalogue.keys(), catalogue)
    requests = {p.source.query: p.params for p in drawn}
    collected = collect(
        engine,
        requests,
        started=started,
        budget_seconds=budget_seconds,
        sleep=sleep,
        clock=clock,
        progress=progress,
    )
    if collected.pending:
        page = render_preparing(
            context,
            refresh_url=refresh_url(context, collected.execution_ids()),
            finished=collected.finished,
            total=len(requests),
            notice=notice,
        )
        return Dashboard(page, False, collected)
    cards = []
    engines = set()
    for planned in drawn:
        outcome = collected.outcomes[planned.source.query]
        if outcome.answer is None:
            message = f"The {planned.source.query} query failed: {outcome.error}"
            cards.append(Card(planned.chart, planned.source, message=message))
            continue
        engines.add(outcome.answer.get("engine"))
        rows = outcome.answer["rows"]
        if planned.source.empty(rows):
            cards.append(Card(planned.chart, planned.source))
        else:
            spec = planned.source.build(rows, context)
            cards.append(Card(planned.chart, planned.source, spec=spec))
    engine_name = engines.pop() if len(engines) == 1 else None
    page = render_page(context, cards, waiting=waiting, engine=engine_name, notice=notice)
    return Dashboard(page, True, collected)


def refresh_url(context: Context, execution_ids: Mapping[str, str]) -> str:
    """A relative link to this page with the same parameters and the started executions, so it
    resolves against whatever path the page was served under (a stage prefix included)."""
    params = {"start": context.start, "end": context.end}
    if context.user:
        params["user"] = context.user
    params["tz"] = context.tz
    params[PENDING] = ",".join(f"{name}:{eid}" for name, eid in sorted(execution_ids.items()))
    return "?" + urllib.parse.urlencode(params)


def respond(engine: QueryEngine, params: Mapping[str, Any] | None) -> Response:
    """`GET /dashboard`: always 200 `text/html` for valid parameters (a failed chart says so
    on the page; queries still running give the self-refreshing page); 400 otherwise."""
    from chalice import BadRequestError, Response

    try:
        context, started = parse_request(params or {})
    except queries.QueryParameterError as error:
        raise BadRequestError(str(error)) from error
    # Read at call time (not as a default argument), so a test can shorten it.
    dashboard = build_dashboard(
        engine, context, started=started, budget_seconds=REQUEST_BUDGET_SECONDS
    )
    return Response(
        body=dashboard.html,
        status_code=200,
        headers={"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"},
    )


def write_report(
    engine: QueryEngine,
    params: Mapping[str, Any],
    path: str | Path,
    *,
    notice: str | None = None,
    budget_seconds: float = REPORT_BUDGET_SECONDS,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """`spotify-etl report --html`: the complete page written to `path`. Raises
    `QueryParameterError` for bad parameters, `DashboardNotReady` if Athena outlasts the budget.
    """
    context, _ = parse_request({k: v for k, v in params.items() if v is not None})
    dashboard = build_dashboard(
        engine, context, budget_seconds=budget_seconds, notice=notice, progress=progress
    )
    if not dashboard.ready:
        waiting = ", ".join(sorted(dashboard.collected.pending))
        raise DashboardNotReady(f"queries still running after {budget_seconds:.0f} s: {waiting}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(dashboard.html, encoding="utf-8")
    return target


def _parse_pending(text: Any) -> dict[str, str]:
    if text is None or text == "":
        return {}
    pairs = [_PENDING_PAIR.fullmatch(part) for part in str(text).split(",")]
    if len(pairs) > _MAX_PENDING or any(
        m is None or not EXECUTION_ID_PATTERN.fullmatch(m.group(2)) for m in pairs
    ):
        raise queries.QueryParameterError(
            "pending: expected query:execution_id pairs separated by commas"
        )
    return {m.group(1): m.group(2) for m in pairs if m is not None}
