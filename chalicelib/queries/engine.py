"""Choosing the query engine a configuration asks for (contract §2, `QUERY_ENGINE`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from chalicelib.services import Services


class QueryEngine(Protocol):
    """What the API and the CLI call: both engines answer in the same shapes."""

    def run(self, name: str, params: Mapping[str, Any]) -> dict[str, Any]: ...

    def get_execution(self, execution_id: str) -> dict[str, Any]: ...


def open_engine(services: Services) -> QueryEngine:
    """DuckDB on the local lake directory, or Athena with the services' boto3 client."""
    config = services.config
    if config.query_engine == "athena":
        from chalicelib.queries.athena_engine import AthenaEngine

        return AthenaEngine(
            services.client("athena"),
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
