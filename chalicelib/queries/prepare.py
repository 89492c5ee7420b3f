"""A named query made ready for one engine: validated values, SQL text, bound arguments."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib.queries.catalog import Query, get_query, view_sources
from chalicelib.queries.parameters import validate

# Types whose validated value is nothing but digits or a name from a fixed list: the only ones
# that may be written into SQL text where a parameter cannot be bound.
INLINE_TYPES = frozenset({"int", "tz", "enum"})


@dataclass(frozen=True)
class Prepared:
    """What an engine runs: `sql` with positional `?`, and one argument per `?`."""

    query: Query
    sql: str
    arguments: tuple[str | int | None, ...]


def prepare(name: str, params: Mapping[str, Any], dialect: str) -> Prepared:
    """Validate `params` for query `name` and render it for `dialect` ("athena" or "duckdb").

    Raises `UnknownQuery` or `QueryParameterError` before any SQL is produced.
    """
    from chalicelib.queries import translate  # sqlglot: imported only where SQL is rendered

    query = get_query(name)
    values = validate(query.parameters, params)
    inline = {
        p.name: value
        for p in query.parameters
        if p.type in INLINE_TYPES and (value := values[p.name]) is not None
    }
    statement = translate.render(query.sql, dialect, inline)
    return Prepared(query, statement.sql, tuple(values[n] for n in statement.parameters))


def view_definitions(dialect: str) -> dict[str, str]:
    """View name -> `CREATE OR REPLACE VIEW name AS ...` for "athena" or "duckdb", from the
    same source (bootstrap creates them in Athena; the DuckDB engine in each session)."""
    from chalicelib.queries import translate

    definitions = {}
    for name, source in sorted(view_sources().items()):
        statement = translate.render(source, dialect)
        definitions[name] = f"CREATE OR REPLACE VIEW {name} AS\n{statement.sql}"
    return definitions
