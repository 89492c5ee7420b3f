"""The deployed query engine: Athena, in the configured workgroup and Glue database."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from chalicelib.queries.catalog import get_query
from chalicelib.queries.errors import QueryFailedError, UnknownExecution, UnknownQuery
from chalicelib.queries.prepare import Prepared, prepare

ENGINE = "athena"
# API Gateway ends a request at 29 s: leave room for the rest of the request.
DEFAULT_WAIT_SECONDS = 24.0
PAGE_SIZE = 1000  # GetQueryResults' maximum
# The SQL sent starts with this line, so `get_execution` knows which named query an id ran.
_TAG = "-- spotify-etl named query: "
_TAG_PATTERN = re.compile(re.escape(_TAG) + r"([a-z0-9_]+)\n")
EXECUTION_ID_PATTERN = re.compile(r"[A-Za-z0-9-]{1,128}")
_INTEGER_TYPES = frozenset({"tinyint", "smallint", "integer", "int", "bigint"})
_FLOAT_TYPES = frozenset({"double", "float", "real", "decimal"})


class AthenaEngine:
    """Starts named queries in Athena and collects their results (contract §5)."""

    def __init__(
        self,
        client: Any,
        *,
        workgroup: str,
        database: str,
        wait_seconds: float = DEFAULT_WAIT_SECONDS,
        poll_seconds: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.workgroup = workgroup
        self.database = database
        self.wait_seconds = wait_seconds
        self.poll_seconds = poll_seconds
        self._sleep = sleep
        self._clock = clock

    def run(self, name: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """Start named query `name`; its rows if it ends within the wait budget, else
        `{"execution_id", "status"}` to follow with `get_execution`."""
        prepared = prepare(name, params, ENGINE)
        request: dict[str, Any] = {
            "QueryString": tagged_sql(prepared),
            "QueryExecutionContext": {"Database": self.database},
            "WorkGroup": self.workgroup,
        }
        if prepared.arguments:
            request["ExecutionParameters"] = [literal(a) for a in prepared.arguments]
        execution_id = self.client.start_query_execution(**request)["QueryExecutionId"]
        return self._answer(name, execution_id)

    def get_execution(self, execution_id: str) -> dict[str, Any]:
        """The answer of a named query this engine started: rows, or still its status."""
        execution = self._execution(execution_id)
        tag = _TAG_PATTERN.match(execution.get("Query", ""))
        if execution.get("WorkGroup") != self.workgroup or tag is None:
            raise UnknownExecution(f"no named query execution {execution_id!r}")
        try:
            name = get_query(tag.group(1)).name
        except UnknownQuery:
            raise UnknownExecution(f"no named query execution {execution_id!r}") from None
        return self._answer(name, execution_id)

    def _answer(self, name: str, execution_id: str) -> dict[str, Any]:
        state = self._wait(execution_id)
        if state != "SUCCEEDED":
            return {"execution_id": execution_id, "status": state.lower()}
        columns, rows = self._results(execution_id)
        return {
            "query": name,
            "columns": columns,
            "rows": rows,
            "execution_id": execution_id,
            "engine": ENGINE,
        }

    def _wait(self, execution_id: str) -> str:
        """The final state, or the current one when the wait budget runs out first."""
        status = wait_for_execution(
            lambda: self._execution(execution_id)["Status"],
            wait_seconds=self.wait_seconds,
            poll_seconds=self.poll_seconds,
            sleep=self._sleep,
            clock=self._clock,
        )
        state = str(status["State"])
        if state in ("FAILED", "CANCELLED"):
            reason = status.get("StateChangeReason") or "no reason given"
            raise QueryFailedError(f"Athena query {execution_id} {state.lower()}: {reason}")
        return state

    def _execution(self, execution_id: str) -> dict[str, Any]:
        if not EXECUTION_ID_PATTERN.fullmatch(execution_id or ""):
            raise UnknownExecution(f"no query execution {execution_id[:64]!r}")
        try:
            return self.client.get_query_execution(QueryExecutionId=execution_id)["QueryExecution"]
        except self.client.exceptions.InvalidRequestException:
            raise UnknownExecution(f"no query execution {execution_id!r}") from None

    def _results(self, execution_id: str) -> tuple[list[str], list[dict[str, Any]]]:
        columns: list[str] = []
        types: list[str] = []
        rows: list[dict[str, Any]] = []
        for page_number, page in enumerate(self._pages(execution_id)):
            result_set = page["ResultSet"]
            if page_number == 0:
                info = result_set["ResultSetMetadata"]["ColumnInfo"]
                columns = [c["Name"] for c in info]
                types = [c["Type"].lower() for c in info]
            data = result_set.get("Rows", [])
            if page_number == 0:
                data = data[1:]  # the first row of the first page repeats the column names
            for row in data:
                cells = [datum.get("VarCharValue") for datum in row["Data"]]
                rows.append(
                    {c: convert(v, t) for c, v, t in zip(columns, cells, types, strict=True)}
                )
        return columns, rows

    def _pages(self, execution_id: str) -> Iterator[dict[str, Any]]:
        request = {"QueryExecutionId": execution_id, "MaxResults": PAGE_SIZE}
        while True:
            page = self.client.get_query_results(**request)
            yield page
            if not page.get("NextToken"):
                return
            request["NextToken"] = page["NextToken"]


def tagged_sql(prepared: Prepared) -> str:
    """The SQL sent to Athena, first line naming the query (for `get_execution`)."""
    return f"{_TAG}{prepared.query.name}\n{prepared.sql}"


def literal(value: str | int | None) -> str:
    """An execution parameter: Athena pastes it into the SQL as literal text."""
    if value is None:
        return "NULL"
    if isinstance(value, int):
        return str(value)
    return "'" + value.replace("'", "''") + "'"


def convert(value: str | None, athena_type: str) -> Any:
    """A result cell (always text) as the JSON-ready value its column type says."""
    if value is None:
        return None
    if athena_type in _INTEGER_TYPES:
        return int(value)
    if athena_type in _FLOAT_TYPES:
        return float(value)
    if athena_type == "boolean":
        return value == "true"
    if athena_type == "timestamp":
        # Athena's UTC wall time "2026-03-01 10:00:00.000" -> the pipeline's ISO form
        return value.replace(" ", "T", 1) + "Z"
    return value  # varchar, date ("YYYY-MM-DD" already), arrays as Athena prints them


def wait_for_execution(
    status_of: Callable[[], dict[str, Any]],
    *,
    wait_seconds: float,
    poll_seconds: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Poll an Athena execution's `Status` until it finishes or `wait_seconds` pass; the last
    one seen (the caller decides what a failure or a still-running query means)."""
    deadline = clock() + wait_seconds
    while True:
        status = status_of()
        if status["State"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
            return status
        remaining = deadline - clock()
        if remaining <= 0:
            return status
        sleep(min(poll_seconds, remaining))
