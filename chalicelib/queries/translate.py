"""One SQL source, two engines: Athena-dialect text -> the text each engine runs.

Every step is mechanical, on sqlglot's syntax tree:

1. parse with `read="athena"`; `check_portable` refuses constructs that parse on both engines
   but mean different things there (engineering notes, "Same text, different answers");
2. a `:name` placeholder inside a WHERE clause stays a bound parameter; anywhere else (a LIMIT, a
   time zone) Athena cannot bind it, so the caller's *validated* value is written as a literal;
3. `hour_in_zone(ts, zone)` — a macro — becomes each engine's spelling of "the hour of
   UTC timestamp ts on the clock of zone": Athena `hour(ts AT TIME ZONE zone)`, which sqlglot
   writes as `hour(at_timezone(ts, zone))` (Athena's timestamps are UTC wall times); DuckDB
   `hour(timezone(zone, ts::TIMESTAMPTZ))` (its `AT TIME ZONE` on a naive timestamp converts
   the other way). `weekday_in_zone(ts, zone)`, the ISO weekday (1 = Monday … 7 = Sunday) on
   the same clock, is the same conversion read with Athena's `day_of_week` / DuckDB's `isodow`;
4. generation in the engine's dialect, comments dropped;
6. named placeholders become positional `?` in the order they appear in the final text, which
   is the order both engines bind positional values in.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Mapping
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.tokens import TokenType

from chalicelib.queries.errors import NonPortableSQLError

SOURCE_DIALECT = "athena"
ENGINE_DIALECTS = ("athena", "duckdb")
MACRO_HOUR_IN_ZONE = "hour_in_zone"
MACRO_WEEKDAY_IN_ZONE = "weekday_in_zone"
# Macro -> the function each engine reads the zone's local time with (hour 0-23; ISO weekday,
# 1 = Monday ... 7 = Sunday, on both: not DuckDB's `dayofweek`, which counts from Sunday = 0).
_ZONE_MACROS = {
    MACRO_HOUR_IN_ZONE: {"athena": "hour", "duckdb": "hour"},
    MACRO_WEEKDAY_IN_ZONE: {"athena": "day_of_week", "duckdb": "isodow"},
}

# Macro -> the predicate it stands for, over its one argument `{0}` (the same on both engines).
# A counted play (contract §6) is `is_music(p.item_type) AND is_stream(p.ms_played)`.
STREAM_MS = 30000  # Spotify's own threshold for a stream
_PREDICATE_MACROS = {
    "is_music": "COALESCE({0}, 'track') IN ('track', 'unknown')",
    "is_stream": f"{{0}} IS NULL OR {{0}} >= {STREAM_MS}",
}

# Functions that exist on one engine only (sqlglot passes them through unchanged).
_ONE_ENGINE_FUNCTIONS = frozenset({"at_timezone", "format_datetime", "with_timezone"})
_DOUBLE_TYPES = (exp.DataType.Type.DOUBLE, exp.DataType.Type.FLOAT)


@dataclass(frozen=True)
class Statement:
    """SQL for one engine, and the parameter name behind each `?`, in order."""

    sql: str
    parameters: tuple[str, ...]


def parse(source: str) -> exp.Expression:
    """The syntax tree of an Athena-dialect query (a fresh copy: callers may change it)."""
    return _parsed(source).copy()


def check_portable(tree: exp.Expression) -> list[str]:
    """Why `tree` would answer differently on Athena and DuckDB (empty when it would not)."""
    problems = []
    for node in tree.walk():
        if isinstance(node, exp.AtTimeZone):
            problems.append(
                "AT TIME ZONE converts the other way on DuckDB: use hour_in_zone() or "
                "weekday_in_zone()"
            )
        elif isinstance(node, exp.DateDiff):
            problems.append("date_diff counts boundaries on DuckDB but whole units on Athena")
        elif isinstance(node, exp.IntDiv):
            problems.append("integer division differs between the engines")
        elif isinstance(node, exp.Div) and not (
            _is_double(node.this) or _is_double(node.expression)
        ):
            problems.append(
                f"division without a DOUBLE operand ({node.sql(SOURCE_DIALECT)}): integer and "
                "decimal division round differently on Athena; CAST one side AS DOUBLE"
            )
        elif isinstance(node, exp.Anonymous) and node.name.lower() in _ONE_ENGINE_FUNCTIONS:
            problems.append(f"{node.name}() exists on Athena only")
        elif isinstance(node, exp.Placeholder) and not node.this:
            problems.append("anonymous ? placeholder: name every parameter (:name)")
    return problems


def placeholder_names(tree: exp.Expression) -> set[str]:
    """The `:name` placeholders a query uses."""
    return {p.name for p in tree.find_all(exp.Placeholder) if p.this}


def render(source: str, dialect: str, inline: Mapping[str, str | int] | None = None) -> Statement:
    """`source` as `dialect` SQL; `inline` holds the validated values that may be written into
    the text where a parameter cannot be bound (only int and name-from-a-list types)."""
    if dialect not in ENGINE_DIALECTS:
        raise ValueError(f"unknown dialect {dialect!r}")
    tree = parse(source)
    problems = check_portable(tree)
    if problems:
        raise NonPortableSQLError("; ".join(problems))
    _inline_unbindable(tree, inline or {})
    tree = tree.transform(functools.partial(_rewrite_macro, dialect=dialect))
    bound = sum(1 for _ in tree.find_all(exp.Placeholder))
    sql, names = _positional(tree.sql(dialect=dialect, comments=False, pretty=True), dialect)
    if len(names) != bound:  # a placeholder the generator spelt in a way we did not recognise
        raise NonPortableSQLError(
            f"found {len(names)} of {bound} placeholders in the {dialect} SQL"
        )
    return Statement(sql, tuple(names))


@functools.cache
def _parsed(source: str) -> exp.Expression:
    return sqlglot.parse_one(source, read=SOURCE_DIALECT)


def _is_double(node: exp.Expression) -> bool:
    return isinstance(node, exp.Cast) and node.to.this in _DOUBLE_TYPES


def _inline_unbindable(tree: exp.Expression, inline: Mapping[str, str | int]) -> None:
    for placeholder in list(tree.find_all(exp.Placeholder)):
        if placeholder.find_ancestor(exp.Where) is not None:
            continue  # bound by the engine
        if placeholder.name not in inline:
            raise NonPortableSQLError(
                f":{placeholder.name} is outside WHERE, where Athena cannot bind it, and its "
                "value is not one that may be written into SQL"
            )
        value = inline[placeholder.name]
        literal = exp.Literal.number(value) if isinstance(value, int) else exp.Literal.string(value)
        placeholder.replace(literal)


def _rewrite_macro(node: exp.Expression, dialect: str) -> exp.Expression:
    if isinstance(node, exp.Anonymous) and node.name.lower() in _PREDICATE_MACROS:
        return _predicate(node)
    if not (isinstance(node, exp.Anonymous) and node.name.lower() in _ZONE_MACROS):
        return node
    macro = node.name.lower()
    timestamp, zone = node.expressions
    if not (isinstance(zone, exp.Literal) and zone.is_string):
        raise NonPortableSQLError(f"{macro}() needs a validated zone name (a tz parameter)")
    if dialect == "athena":
        local = exp.AtTimeZone(this=timestamp, zone=zone)
    else:
        local = exp.Anonymous(
            this="timezone", expressions=[zone, exp.cast(timestamp, "TIMESTAMPTZ")]
        )
    return exp.Anonymous(this=_ZONE_MACROS[macro][dialect], expressions=[local])


def _predicate(node: exp.Anonymous) -> exp.Expression:
    """A predicate macro's expansion, its argument in place of `{0}`, in parentheses so it
    binds as one term wherever it stands."""
    macro = node.name.lower()
    if len(node.expressions) != 1:
        raise NonPortableSQLError(f"{macro}() takes one argument")
    (argument,) = node.expressions
    template = sqlglot.parse_one(
        _PREDICATE_MACROS[macro].format("__macro_argument"), read=SOURCE_DIALECT
    )
    for column in list(template.find_all(exp.Column)):
        if column.name == "__macro_argument":
            column.replace(argument.copy())
    return exp.Paren(this=template)


def _positional(sql: str, dialect: str) -> tuple[str, list[str]]:
    """Replace each `:name` (Athena) / `$name` (DuckDB) placeholder with `?`.

    The tokenizer skips string literals, so a `:x` inside quotes is never taken for one.
    """
    tokens = Dialect.get_or_raise(dialect).tokenize(sql)
    pieces, names, cursor = [], [], 0
    for marker, name in itertools.pairwise(tokens):
        if marker.token_type in (TokenType.COLON, TokenType.PARAMETER) and (
            name.start == marker.end + 1 and name.text.isidentifier()
        ):
            pieces.append(sql[cursor : marker.start])
            pieces.append("?")
            names.append(name.text)
            cursor = name.end + 1
    pieces.append(sql[cursor:])
    return "".join(pieces), names
