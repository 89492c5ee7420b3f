"""The local query engine: DuckDB over the curated Parquet files of a lake directory."""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chalicelib.layout import CURATED_PREFIX, iso
from chalicelib.queries.errors import UnknownExecution
from chalicelib.queries.prepare import prepare, view_definitions
from chalicelib.tables import DUCKDB_TYPES, TABLES, Table

if TYPE_CHECKING:  # duckdb is imported only when a local query runs
    import duckdb

ENGINE = "duckdb"
# Answers kept for `get_execution`, newest last: enough for a client that follows up at once.
_KEPT_ANSWERS = 32


class DuckDBEngine:
    """Runs the named queries with DuckDB on `<lake_dir>/curated/`, synchronously."""

    def __init__(self, lake_dir: str | Path) -> None:
        self.lake_dir = Path(lake_dir).resolve()
        self._answers: OrderedDict[str, dict[str, Any]] = OrderedDict()
        # One session while the same tables have files: its views read the files anew at every
        # query (globs are expanded when a query binds), so only a table's first file (which
        # turns its empty view into a Parquet one) or its last calls for a new session.
        self._session: tuple[frozenset[str], duckdb.DuckDBPyConnection] | None = None
        self._lock = threading.Lock()

    def run(self, name: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """Run named query `name`: `{"query", "columns", "rows", "execution_id", "engine"}`."""
        prepared = prepare(name, params, ENGINE)
        with self._cursor() as connection:
            cursor = connection.execute(prepared.sql, list(prepared.arguments))
            columns = [column[0] for column in cursor.description]
            rows = [
                {col: json_value(value) for col, value in zip(columns, row, strict=True)}
                for row in cursor.fetchall()
            ]
        answer = {
            "query": name,
            "columns": columns,
            "rows": rows,
            "execution_id": str(uuid.uuid4()),
            "engine": ENGINE,
        }
        self._keep(answer)
        return answer

    def get_execution(self, execution_id: str) -> dict[str, Any]:
        """A recent answer of this engine; local queries finish before `run` returns."""
        answer = self._answers.get(execution_id)
        if answer is None:
            raise UnknownExecution(f"no recent query execution {execution_id[:64]!r}")
        return answer

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor of the current session (cursors of one connection may run in threads)."""
        with self._lock:
            present = frozenset(t.name for t in TABLES.values() if _has_files(t, self.lake_dir))
            if self._session is None or self._session[0] != present:
                if self._session is not None:
                    self._session[1].close()
                self._session = (present, self.connect())
            return self._session[1].cursor()

    def connect(self) -> duckdb.DuckDBPyConnection:
        """An in-memory session with a view per curated table and the `*_latest` views."""
        import duckdb

        connection = duckdb.connect(":memory:")
        # Dates and hours follow the session zone: keep it UTC whatever the laptop's zone is.
        connection.execute("SET TimeZone = 'UTC'")
        # Athena sorts NULLs last in both directions; pin DuckDB's default to the same.
        connection.execute("SET default_null_order = 'nulls_last'")
        for table in TABLES.values():
            connection.execute(table_view_sql(table, self.lake_dir))
        for definition in view_definitions(ENGINE).values():
            connection.execute(definition)
        return connection

    def _keep(self, answer: dict[str, Any]) -> None:
        self._answers[answer["execution_id"]] = answer
        while len(self._answers) > _KEPT_ANSWERS:
            self._answers.popitem(last=False)


def table_view_sql(table: Table, lake_dir: Path) -> str:
    """`CREATE VIEW <table>` over its Parquet files with the declared types, or an empty view of
    the same shape when the lake has none yet (`read_parquet` refuses a glob without files)."""
    folder = lake_dir / CURATED_PREFIX / table.name
    pattern = f"{table.partition.name}=*/*.parquet"
    if not _has_files(table, lake_dir):
        typed_nulls = ", ".join(
            f"CAST(NULL AS {DUCKDB_TYPES[c.type]}) AS {_quoted(c.name)}" for c in table.all_columns
        )
        return f"CREATE VIEW {table.name} AS SELECT {typed_nulls} WHERE false"
    files = parquet_select_sql(table, _sql_string(str(folder / pattern)))
    return f"CREATE VIEW {table.name} AS {files}"


def parquet_select_sql(table: Table, files: str) -> str:
    """`SELECT` every declared column of `table`, typed, from the Parquet files `files` names
    (SQL: a glob literal, or a `?` bound to a list of paths), partition value from the path.

    Files written before a column was declared (a plays file from before the history export's
    columns) lack it: `union_by_name` reads every file's own columns (without it DuckDB takes
    the first file's schema and silently drops the others' extra columns), and the empty typed
    row it is united with by name supplies, as null, a column no file has yet."""
    typed_nulls = ", ".join(
        f"CAST(NULL AS {DUCKDB_TYPES[c.type]}) AS {_quoted(c.name)}" for c in table.all_columns
    )
    typed = ", ".join(
        f"CAST({_quoted(c.name)} AS {DUCKDB_TYPES[c.type]}) AS {_quoted(c.name)}"
        for c in table.all_columns
    )
    partition_type = DUCKDB_TYPES[table.partition.type]
    read = (
        f"SELECT * FROM read_parquet({files}, hive_partitioning = true, union_by_name = true, "
        f"hive_types = {{'{table.partition.name}': {partition_type}}})"
    )
    return f"SELECT {typed} FROM (SELECT {typed_nulls} WHERE false UNION ALL BY NAME {read}) AS f"


def _has_files(table: Table, lake_dir: Path) -> bool:
    folder = lake_dir / CURATED_PREFIX / table.name
    return any(folder.glob(f"{table.partition.name}=*/*.parquet"))


def json_value(value: Any) -> Any:
    """A DuckDB result value as JSON-ready Python: dates as text, decimals as floats."""
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
