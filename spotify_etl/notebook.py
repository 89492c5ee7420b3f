"""The lake's answers as pandas DataFrames, for notebooks and scripts (contract §11).

`open_lake()` gives a `Lake` over the configured lake (`LAKE_URI` / `QUERY_ENGINE`, as the CLI
reads them) or, with `stage=`, over a deployed stage's Athena with the caller's AWS credentials.
Named queries go through the very engine the API uses (`chalicelib.queries.open_engine`): same
catalogue, same validation, same SQL, same rows; this module only types the columns. Raw table
reads (`Lake.table`) list the partitions of the range themselves, so a month's plays never scan
the whole table.

Local tooling only: pandas is imported here and nowhere in `chalicelib/`.
"""

from __future__ import annotations

import functools
import json
import tempfile
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from chalicelib.config import Config, load_config
from chalicelib.layout import CURATED_PREFIX
from chalicelib.queries import (
    QueryEngine,
    QueryParameterError,
    UnknownQuery,
    get_query,
    is_finished,
    list_queries,
    open_engine,
)
from chalicelib.queries.duckdb_engine import parquet_select_sql
from chalicelib.queries.parameters import Parameter, parse_declaration, validate
from chalicelib.tables import TABLES, Table

# How long a notebook waits for an Athena query; the API gives up at 29 s, a notebook need not.
ATHENA_WAIT_SECONDS = 30 * 60.0
ATHENA_POLL_SECONDS = 1.0

# The column kinds a DataFrame is typed by, and the pandas dtype of each (contract §11: dates as
# datetime64, timestamps UTC-aware, counts as nullable integers; lists stay Python lists).
DTYPES: dict[str, str | None] = {
    "date": "datetime64[ns]",
    "timestamp": "datetime64[ns, UTC]",
    "int": "Int64",
    "float": "float64",
    "boolean": "boolean",
    "string": "string",
    "list": None,  # object column of lists
}

# tables.py's logical types -> column kinds.
_TABLE_KINDS = {
    "string": "string",
    "int": "int",
    "bigint": "int",
    "boolean": "boolean",
    "timestamp": "timestamp",
    "date": "date",
    "array<string>": "list",
}

# `Lake.table`'s parameters, declared like a named query's so that they are validated by the
# same code and refused with the same messages.
TABLE_PARAMETERS: tuple[Parameter, ...] = (
    parse_declaration("@param start date required First partition date, inclusive"),
    parse_declaration("@param end date required Last partition date, inclusive"),
    parse_declaration("@param user string Only this user's rows; all users when absent"),
)


class LakeError(ValueError):
    """A bad name or parameter; the text is the message the API's 400 (or 404) gives."""


class TableReader(Protocol):
    """Reads one table's rows for a validated range: the local lake or Athena."""

    def read(
        self, table: Table, start: str, end: str, user: str | None
    ) -> tuple[list[str], list[dict[str, Any]]]: ...


class Lake:
    """A lake's named queries and tables as DataFrames."""

    def __init__(self, engine: QueryEngine, tables: TableReader, *, where: str) -> None:
        self.engine = engine
        self.tables = tables
        self.where = where

    def __repr__(self) -> str:
        return f"<Lake {self.where}>"

    def queries(self) -> pd.DataFrame:
        """The named queries (contract §6): name, description and parameters, as `GET /queries`
        lists them (each parameter a dict of name, type, required, default, description)."""
        listed = list_queries()
        return pd.DataFrame(
            {
                "name": pd.array([q["name"] for q in listed], dtype="string"),
                "description": pd.array([q["description"] for q in listed], dtype="string"),
                "parameters": [q["parameters"] for q in listed],
            }
        )

    def query(self, name: str, **params: Any) -> pd.DataFrame:
        """Named query `name` as a DataFrame: the API's columns in its order, its rows typed.

        Values may be text (as in a URL), ints, or `datetime.date`s; None means absent. Raises
        `LakeError` (a ValueError) with the API's message for an unknown query or parameter.
        """
        arguments = _as_api_params(params)
        try:
            answer = self.engine.run(name, arguments)
            # Athena answers 202 past the API's wait; a notebook just keeps following it (each
            # call waits the engine's budget; Athena's own timeout ends a query that never does).
            while not is_finished(answer):
                answer = self.engine.get_execution(answer["execution_id"])
        except (UnknownQuery, QueryParameterError) as error:
            raise LakeError(str(error)) from error
        kinds = result_kinds(name)
        return typed_frame(answer["columns"], answer["rows"], kinds)

    def table(
        self,
        name: str,
        start: str | date,
        end: str | date,
        user: str | None = None,
    ) -> pd.DataFrame:
        """Rows of curated table `name` whose partition date (`snapshot_date`, or `played_date`
        for plays) lies in [start, end]; only the partitions of that range are read."""
        spec = TABLES.get(name)
        if spec is None:
            raise LakeError(f"unknown table: {name[:64]!r} (tables: {', '.join(TABLES)})")
        try:
            values = validate(TABLE_PARAMETERS, _as_api_params(
                {"start": start, "end": end, "user": user}
            ))  # fmt: skip
        except QueryParameterError as error:
            raise LakeError(str(error)) from error
        if values["user"] is not None and "user_id" not in spec.column_names:
            raise LakeError(f"user: table {name} has no user_id column")
        columns, rows = self.tables.read(
            spec, str(values["start"]), str(values["end"]), _optional(values["user"])
        )
        if name == "plays":  # files older than the export's columns: plays only the API saw
            for row in rows:
                if row["source"] is None:
                    row["source"], row["item_type"] = "api", "track"
        kinds = {c.name: _TABLE_KINDS[c.type] for c in spec.all_columns}
        return typed_frame(columns, rows, kinds)


def open_lake(stage: str | None = None, *, session: Any | None = None) -> Lake:
    """The configured lake (no `stage`), or deployed stage `stage` through Athena.

    A stage's settings come from `.chalice/config.json`, as `bootstrap` reads them; Athena is
    called with `session` (default: boto3's default session, i.e. the caller's credentials).
    """
    config = load_config()
    if stage is not None:
        from spotify_etl.bootstrap import BootstrapError, stage_config

        try:
            config = stage_config(stage, config)
        except BootstrapError as error:
            raise LakeError(str(error)) from error
        config = config.replace(query_engine="athena")
    return lake_for(config, session=session)


def lake_for(config: Config, *, session: Any | None = None) -> Lake:
    """A `Lake` for `config`: DuckDB on a local directory, or Athena (with `session`)."""
    athena = _athena_client_factory(config, session)
    engine = open_engine(config, athena)
    if config.query_engine == "athena":
        tables: TableReader = AthenaTables(
            athena(), workgroup=config.athena_workgroup, database=config.glue_database
        )
        where = f"athena {config.athena_workgroup}/{config.glue_database} ({config.lake_uri})"
    else:
        tables = LocalTables(config.lake_uri)
        where = f"duckdb {Path(config.lake_uri).resolve()}"
    return Lake(engine, tables, where=where)


def _athena_client_factory(config: Config, session: Any | None) -> Callable[[], Any]:
    @functools.cache
    def client() -> Any:
        if session is not None:
            return session.client("athena")
        import boto3

        return boto3.session.Session(region_name=config.aws_region).client("athena")

    return client


# --- reading tables -----------------------------------------------------------------------


class LocalTables:
    """A local lake's tables, read with DuckDB from the partition folders of the range only."""

    def __init__(self, lake_dir: str | Path) -> None:
        self.lake_dir = Path(lake_dir).resolve()

    def partition_files(self, table: Table, start: str, end: str) -> list[Path]:
        """The Parquet files of `table` whose partition date lies in [start, end]: the folders
        are chosen by name, so files of other dates are never opened."""
        folder = self.lake_dir / CURATED_PREFIX / table.name
        prefix = f"{table.partition.name}="
        if not folder.is_dir():
            return []
        chosen = [
            part
            for part in folder.iterdir()
            if part.is_dir()
            and part.name.startswith(prefix)
            and start <= part.name.removeprefix(prefix) <= end
        ]
        return sorted(f for part in chosen for f in part.glob("*.parquet"))

    def read(
        self, table: Table, start: str, end: str, user: str | None
    ) -> tuple[list[str], list[dict[str, Any]]]:
        import duckdb

        columns = [c.name for c in table.all_columns]
        files = self.partition_files(table, start, end)
        if not files:
            return columns, []
        partition = table.partition
        # As the query engine reads them: files older than a column have it as null.
        sql = (
            parquet_select_sql(table, "?")
            + (" WHERE user_id = ?" if user is not None else "")
            + " ORDER BY "
            + ", ".join(_quoted(c) for c in (partition.name, *table.key))
        )
        arguments: list[Any] = [[str(f) for f in files]]
        if user is not None:
            arguments.append(user)
        with duckdb.connect(":memory:") as connection:
            # As in the query engine: UTC session (dates of TIMESTAMPTZ), NULLs last.
            connection.execute("SET TimeZone = 'UTC'")
            connection.execute("SET default_null_order = 'nulls_last'")
            cursor = connection.execute(sql, arguments)
            names = [d[0] for d in cursor.description]
            rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        return columns, rows


class AthenaTables:
    """A deployed stage's tables through Athena: the WHERE on the partition column is what
    partition projection prunes by, so only the range's partitions are scanned."""

    def __init__(
        self,
        client: Any,
        *,
        workgroup: str,
        database: str,
        wait_seconds: float = ATHENA_WAIT_SECONDS,
        poll_seconds: float = ATHENA_POLL_SECONDS,
    ) -> None:
        self.client = client
        self.workgroup = workgroup
        self.database = database
        self.wait_seconds = wait_seconds
        self.poll_seconds = poll_seconds

    def read(
        self, table: Table, start: str, end: str, user: str | None
    ) -> tuple[list[str], list[dict[str, Any]]]:
        from chalicelib.queries.athena_engine import literal

        sql, arguments = table_sql(table, start, end, user)
        execution_id = self.client.start_query_execution(
            QueryString=sql,
            QueryExecutionContext={"Database": self.database},
            WorkGroup=self.workgroup,
            ExecutionParameters=[literal(a) for a in arguments],
        )["QueryExecutionId"]
        self._wait(execution_id)
        return self._results(execution_id)

    def _wait(self, execution_id: str) -> None:
        from chalicelib.queries.athena_engine import wait_for_execution

        status = wait_for_execution(
            lambda: self.client.get_query_execution(QueryExecutionId=execution_id)[
                "QueryExecution"
            ]["Status"],
            wait_seconds=self.wait_seconds,
            poll_seconds=self.poll_seconds,
        )
        if status["State"] != "SUCCEEDED":
            reason = status.get("StateChangeReason") or "no reason given"
            raise RuntimeError(f"Athena query {execution_id} {status['State'].lower()}: {reason}")

    def _results(self, execution_id: str) -> tuple[list[str], list[dict[str, Any]]]:
        from chalicelib.queries.athena_engine import PAGE_SIZE, convert

        columns: list[str] = []
        types: list[str] = []
        rows: list[dict[str, Any]] = []
        paginator = self.client.get_paginator("get_query_results")
        pages = paginator.paginate(
            QueryExecutionId=execution_id, PaginationConfig={"PageSize": PAGE_SIZE}
        )
        for number, page in enumerate(pages):
            result_set = page["ResultSet"]
            data = result_set.get("Rows", [])
            if number == 0:
                info = result_set["ResultSetMetadata"]["ColumnInfo"]
                columns = [c["Name"] for c in info]
                types = [c["Type"].lower() for c in info]
                data = data[1:]  # the first row of the first page repeats the column names
            for row in data:
                cells = [datum.get("VarCharValue") for datum in row["Data"]]
                rows.append(
                    {c: convert(v, t) for c, v, t in zip(columns, cells, types, strict=True)}
                )
        return columns, rows


def table_sql(table: Table, start: str, end: str, user: str | None) -> tuple[str, list[str | None]]:
    """Athena SQL for a table's rows in a partition range, and its execution parameters.

    Names come from `tables.py` only; values are bound (`?` in WHERE). Arrays are cast to JSON
    so that a list arrives as JSON text rather than Athena's ambiguous `[a, b]` print form.
    """
    selected = ", ".join(
        f"CAST({_quoted(c.name)} AS JSON) AS {_quoted(c.name)}"
        if c.type.startswith("array")
        else _quoted(c.name)
        for c in table.all_columns
    )
    partition = _quoted(table.partition.name)
    where = f"{partition} BETWEEN CAST(? AS DATE) AND CAST(? AS DATE)"
    arguments: list[str | None] = [start, end]
    if user is not None:
        where += " AND user_id = ?"
        arguments.append(user)
    order = ", ".join(_quoted(c) for c in (table.partition.name, *table.key))
    sql = f"SELECT {selected}\nFROM {_quoted(table.name)}\nWHERE {where}\nORDER BY {order}"
    return sql, arguments


# --- typing -------------------------------------------------------------------------------


@functools.cache
def result_kinds(name: str) -> dict[str, str]:
    """Column -> kind of named query `name`'s result, as DuckDB types it.

    Found by running the query's own SQL on empty views typed by `tables.py` (no lake needed),
    so the types come from the one SQL source, for Athena answers as much as for DuckDB ones.
    """
    from chalicelib.queries.prepare import prepare

    prepared = prepare(name, _probe_params(get_query(name).parameters), "duckdb")
    cursor = _probe_connection().execute(prepared.sql, list(prepared.arguments))
    kinds = {column: duckdb_kind(str(type_)) for column, type_, *_ in cursor.description}
    cursor.fetchall()  # DuckDB 2.0: an unread result blocks the connection
    return kinds


def duckdb_kind(duckdb_type: str) -> str:
    """The column kind of a DuckDB type name (`BIGINT`, `DECIMAL(18,2)`, `VARCHAR[]`, ...)."""
    upper = duckdb_type.upper()
    if upper.endswith("]"):
        return "list"
    if upper.startswith("TIMESTAMP"):
        return "timestamp"
    if upper == "DATE":
        return "date"
    if upper == "BOOLEAN":
        return "boolean"
    if upper in {"DOUBLE", "FLOAT", "REAL"} or upper.startswith("DECIMAL"):
        return "float"
    if upper.endswith("INT") or upper in {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT"}:
        return "int"
    return "string"


@functools.cache
def _probe_connection() -> Any:
    """A DuckDB session whose table views are empty and typed (`DuckDBEngine` on a lake with no
    files yet): enough to learn a query's result types without reading any data."""
    from chalicelib.queries.duckdb_engine import DuckDBEngine

    with tempfile.TemporaryDirectory() as empty:
        return DuckDBEngine(empty).connect()


def _probe_params(parameters: Sequence[Parameter]) -> dict[str, str]:
    """Valid values for every parameter (only types matter, an empty lake has no rows)."""
    samples = {"date": "2026-01-01", "int": "1", "string": "x", "tz": "UTC"}
    return {
        p.name: p.default or (p.choices[0] if p.choices else samples[p.type]) for p in parameters
    }


def typed_frame(
    columns: Sequence[str], rows: Sequence[Mapping[str, Any]], kinds: Mapping[str, str]
) -> pd.DataFrame:
    """`rows` (JSON-ready values, or Python dates and datetimes) as a DataFrame with `columns`
    in order, each column typed by its kind (`DTYPES`)."""
    data = {c: typed_column([row.get(c) for row in rows], kinds.get(c, "string")) for c in columns}
    return pd.DataFrame(data, columns=list(columns), index=pd.RangeIndex(len(rows)))


def typed_column(values: list[Any], kind: str) -> pd.Series:
    """One column's values as a Series of its kind's dtype."""
    if kind == "date":
        return pd.Series(pd.to_datetime(pd.Series(values, dtype=object)), dtype=DTYPES[kind])
    if kind == "timestamp":
        stamps = pd.to_datetime(pd.Series(values, dtype=object), utc=True, format="ISO8601")
        return stamps.astype(DTYPES[kind])
    if kind == "list":
        return pd.Series([_as_list(v) for v in values], dtype=object)
    return pd.Series(values, dtype=object).astype(DTYPES[kind])


def _as_list(value: Any) -> list[Any] | None:
    """A list cell: DuckDB gives a list; Athena (CAST AS JSON) gives JSON text."""
    if value is None:
        return None
    if isinstance(value, str):
        parsed = json.loads(value)
        return None if parsed is None else list(parsed)
    return list(value)


# --- helpers ------------------------------------------------------------------------------


def _as_api_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Notebook values as the API receives them: dates as `YYYY-MM-DD`, None left out (absent).
    Anything else goes to validation as it is, which refuses it with the API's message."""
    converted: dict[str, Any] = {}
    for name, value in params.items():
        if value is None:
            continue
        if isinstance(value, datetime):
            value = value.date()
        if isinstance(value, date):
            value = value.isoformat()
        converted[name] = value
    return converted


def _optional(value: str | int | None) -> str | None:
    return None if value is None else str(value)


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
