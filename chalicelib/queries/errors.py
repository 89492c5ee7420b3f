"""What the query layer raises; the API maps each to a status (see each class)."""

from __future__ import annotations


class QueryError(Exception):
    """Base of every error of the query layer."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class QueryParameterError(QueryError, ValueError):
    """A parameter is unknown, missing or malformed: the caller's fault (400)."""


class UnknownQuery(QueryError, LookupError):
    """No named query has that name (404)."""


class UnknownExecution(QueryError, LookupError):
    """No query execution of ours has that id (404)."""


class QueryFailedError(QueryError):
    """The engine failed or cancelled a validated query: not the caller's fault (502)."""


class NonPortableSQLError(QueryError):
    """A query's SQL uses a construct whose meaning differs between Athena and DuckDB."""
