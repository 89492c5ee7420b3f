"""The named queries and views, loaded from their `.sql` files.

A query file starts with a comment header: free text (the description), then one
`-- @param ...` line per parameter (see `parameters.parse_declaration`). The rest is the SQL, in
Athena's dialect with `:name` placeholders; `translate` turns it into each engine's text.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

from chalicelib.queries.errors import UnknownQuery
from chalicelib.queries.parameters import Parameter, parse_declaration

_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")


@dataclass(frozen=True)
class Query:
    """A named query: its declared parameters and its Athena-dialect SQL source."""

    name: str
    description: str
    parameters: tuple[Parameter, ...]
    sql: str

    def describe(self) -> dict[str, Any]:
        """The JSON shape `GET /queries` lists."""
        return {
            "name": self.name,
            "description": self.description,
            "parameters": [p.describe() for p in self.parameters],
        }


def list_queries() -> list[dict[str, Any]]:
    """Every named query: name, description, parameters (name, type, required, default, ...)."""
    return [query.describe() for query in _queries().values()]


def get_query(name: str) -> Query:
    """The named query `name`; `UnknownQuery` when there is none."""
    query = _queries().get(name) if _NAME.fullmatch(name or "") else None
    if query is None:
        raise UnknownQuery(f"unknown query: {name[:64]!r}")
    return query


@functools.cache
def view_sources() -> dict[str, str]:
    """View name -> its Athena-dialect SELECT (the `*_latest` views of contract §4)."""
    return _sql_files("chalicelib.queries.views")


def parse_query(name: str, text: str) -> Query:
    """A `Query` from a `.sql` file's text: header comments, then SQL."""
    description: list[str] = []
    parameters: list[Parameter] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped.startswith("--"):
            break  # the header ends at the first line of SQL
        comment = stripped.removeprefix("--").strip()
        if comment.startswith("@param"):
            parameters.append(parse_declaration(comment))
        elif comment and not parameters:
            description.append(comment)
    names = [p.name for p in parameters]
    if len(set(names)) != len(names):
        raise ValueError(f"{name}: a parameter is declared twice")
    return Query(name, " ".join(description), tuple(parameters), text)


@functools.cache
def _queries() -> dict[str, Query]:
    files = _sql_files("chalicelib.queries.named")
    return {name: parse_query(name, text) for name, text in sorted(files.items())}


def _sql_files(package: str) -> dict[str, str]:
    return {
        entry.name.removesuffix(".sql"): entry.read_text(encoding="utf-8")
        for entry in resources.files(package).iterdir()
        if entry.name.endswith(".sql")
    }
