"""Choosing the query engine a configuration asks for (contract §2, `QUERY_ENGINE`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from chalicelib.config import Config


class QueryEngine(Protocol):
    """What the API and the CLI call: both engines answer in the same shapes."""

    def run(self, name: str, params: Mapping[str, Any]) -> dict[str, Any]: ...

    def get_execution(self, execution_id: str) -> dict[str, Any]: ...


def open_engine(config: Config, athena_client: Callable[[], Any]) -> QueryEngine:
    """DuckDB on the local lake directory, or Athena with the client `athena_client()` makes."""
    if config.query_engine == "athena":
        from chalicelib.queries.athena_engine import AthenaEngine

        return AthenaEngine(
            athena_client(),
            workgroup=config.athena_workgroup,
            database=config.glue_database,
        )
    if config.query_engine == "duckdb":
        if config.is_s3_lake:
            # DuckDB would need its httpfs extension, which it downloads from the internet.
            raise ValueError("QUERY_ENGINE=duckdb needs a local LAKE_URI directory")
        from chalicelib.queries.duckdb_engine import DuckDBEngine

        return DuckDBEngine(config.lake_uri)
    raise ValueError(f"unknown QUERY_ENGINE {config.query_engine!r} (athena or duckdb)")


def is_finished(answer: Mapping[str, Any]) -> bool:
    """True for a 200 answer with rows; False for a 202 `{"execution_id", "status"}`."""
    return "rows" in answer
