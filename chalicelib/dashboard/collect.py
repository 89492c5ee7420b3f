"""Running the dashboard's queries: all started first, then polled together.

Athena runs each query for seconds; one after the other, ten of them would outlast API Gateway's
29 s. So every query is started before any is waited for, and the page is built from whatever
finished within the budget. What did not finish keeps its execution id, which the next request
passes back so it fetches those results instead of starting the queries again. DuckDB answers in
`run` itself, so locally everything is finished after the first pass.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from chalicelib.queries import QueryEngine, QueryError, UnknownExecution, is_finished

log = logging.getLogger(__name__)

# API Gateway ends a request at 29 s: leave room to build and send the page.
REQUEST_BUDGET_SECONDS = 24.0
POLL_SECONDS = 0.5


@dataclass
class Outcome:
    """One query's state: its answer, or the execution still running, or why it failed."""

    answer: dict[str, Any] | None = None
    execution_id: str | None = None
    error: str | None = None

    @property
    def pending(self) -> bool:
        return self.answer is None and self.error is None


@dataclass
class Collected:
    """Every query's outcome, by query name."""

    outcomes: dict[str, Outcome] = field(default_factory=dict)

    @property
    def pending(self) -> dict[str, str]:
        """Query name -> execution id of those still running."""
        return {name: str(o.execution_id) for name, o in self.outcomes.items() if o.pending}

    @property
    def finished(self) -> int:
        return sum(1 for o in self.outcomes.values() if not o.pending)

    def execution_ids(self) -> dict[str, str]:
        """Query name -> execution id of every started query (finished ones too, so a page
        that refreshes fetches them all without starting any again)."""
        return {n: str(o.execution_id) for n, o in self.outcomes.items() if o.execution_id}


def collect(
    engine: QueryEngine,
    requests: Mapping[str, Mapping[str, str]],
    *,
    started: Mapping[str, str] | None = None,
    budget_seconds: float = REQUEST_BUDGET_SECONDS,
    poll_seconds: float = POLL_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    progress: Callable[[str], None] | None = None,
) -> Collected:
    """Run each named query of `requests` (name -> parameters) and wait up to `budget_seconds`
    for all of them together. `started` maps names to executions an earlier request began:
    those are looked up, not started again (an id the engine does not know is started anew).

    A query that fails becomes an `Outcome` with its error, never an exception: one chart's
    failure must not take the page down. Bad parameters are the caller's to check beforehand.
    """
    quick = _without_waiting(engine)
    deadline = clock() + budget_seconds
    collected = Collected()
    for name, params in requests.items():
        outcome = _look_up(quick, (started or {}).get(name), name)
        if outcome is None:
            outcome = Outcome()
            _attempt(outcome, lambda n=name, p=params: quick.run(n, dict(p)), name)
        collected.outcomes[name] = outcome
    said = 0
    while collected.pending and clock() < deadline:
        if progress is not None and len(collected.pending) != said:
            said = len(collected.pending)
            progress(f"waiting for {said} of {len(requests)} queries…")
        sleep(max(0.0, min(poll_seconds, deadline - clock())))
        for name, execution_id in collected.pending.items():
            outcome = collected.outcomes[name]
            _attempt(outcome, lambda e=execution_id: quick.get_execution(e), name)
    return collected


def _look_up(quick: QueryEngine, execution_id: str | None, name: str) -> Outcome | None:
    """The outcome of an execution an earlier request started; None when there is none to
    follow (no id, one the engine does not know, or one that ran another query): start anew."""
    if not execution_id:
        return None
    outcome = Outcome(execution_id=execution_id)
    try:
        answer = quick.get_execution(execution_id)
    except UnknownExecution:
        return None
    except Exception as error:  # see _attempt
        _fail(outcome, error, name)
        return outcome
    if is_finished(answer) and answer.get("query") != name:
        return None
    _settle(outcome, answer, name)
    return outcome


def _attempt(outcome: Outcome, call: Callable[[], dict[str, Any]], name: str) -> None:
    try:
        answer = call()
    except Exception as error:  # an engine/AWS failure draws a note, not a 5xx
        _fail(outcome, error, name)
        return
    _settle(outcome, answer, name)


def _fail(outcome: Outcome, error: Exception, name: str) -> None:
    if isinstance(error, QueryError):
        outcome.error = error.message
        return
    log.exception("dashboard query %s failed", name)
    outcome.error = f"{type(error).__name__}: {error}"


def _settle(outcome: Outcome, answer: dict[str, Any], name: str) -> None:
    outcome.execution_id = answer.get("execution_id") or outcome.execution_id
    if not is_finished(answer):
        return
    if answer.get("query") != name:
        # An id passed back for one query must not put another query's rows on its chart.
        outcome.error = f"execution {outcome.execution_id} is not a {name} query"
        return
    outcome.answer = answer


def _without_waiting(engine: QueryEngine) -> QueryEngine:
    """Athena's engine waits up to its `wait_seconds` inside each `run`; a copy that waits 0 s
    starts a query and returns at once, so all of them run in parallel. Engines that answer
    synchronously (DuckDB) have no such wait and are used as they are."""
    if getattr(engine, "wait_seconds", None) is None:
        return engine
    quick = copy.copy(engine)
    quick.wait_seconds = 0.0  # type: ignore[attr-defined]
    return quick
