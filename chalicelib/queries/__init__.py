"""Named analytics queries (contract §6) and the `*_latest` views (§4), on Athena or DuckDB.

One Athena-dialect `.sql` file per query (`named/`) and per view (`views/`), translated
mechanically for DuckDB (`translate`). Callers need only what is exported here.
"""

from chalicelib.queries.catalog import get_query, list_queries
from chalicelib.queries.engine import QueryEngine, is_finished, open_engine
from chalicelib.queries.errors import (
    QueryError,
    QueryFailedError,
    QueryParameterError,
    UnknownExecution,
    UnknownQuery,
)
from chalicelib.queries.prepare import view_definitions

__all__ = [
    "QueryEngine",
    "QueryError",
    "QueryFailedError",
    "QueryParameterError",
    "UnknownExecution",
    "UnknownQuery",
    "get_query",
    "is_finished",
    "list_queries",
    "open_engine",
    "view_definitions",
]
