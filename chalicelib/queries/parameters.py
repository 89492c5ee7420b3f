"""Parameters of the named queries: their declaration and their validation.

Every value is checked here before anything reaches SQL, and comes out as a plain Python value
(`str` or `int`, None for an absent optional one). Declarations live in each query's `.sql`
header as `-- @param <name> <type>[=<default>] [required] <description>`; see `parse_declaration`.
"""

from __future__ import annotations

import functools
import re
import zoneinfo
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from chalicelib.queries.errors import QueryParameterError

# Spotify ids and user ids: letters, digits, `_`, `.`, `-`, `+`, `@` (older accounts' user ids
# are e-mail-like names). The one pattern for user ids everywhere: the REST API checks ids with
# it too, so a user it accepts is never refused by a query. No quote or backslash can pass:
# values stay inert inside SQL string literals. Bounded so a value stays small.
USER_ID_PATTERN = re.compile(r"[\w.+@-]{1,128}")
ID_PATTERN = USER_ID_PATTERN
ID_DESCRIPTION = "1-128 letters, digits, '_', '.', '-', '+' or '@'"
DATE_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}")
INT_PATTERN = re.compile(r"[+-]?\d{1,9}")

_DECLARATION = re.compile(
    r"@param\s+(?P<name>[a-z_][a-z0-9_]*)\s+(?P<type>[a-z]+)(?:\((?P<spec>[^)]*)\))?"
    r"(?:=(?P<default>\S+))?(?P<required>\s+required)?\s+(?P<description>\S.*)"
)


@dataclass(frozen=True)
class Parameter:
    """One declared parameter of a named query."""

    name: str
    type: str  # date | int | string | tz | enum
    description: str
    required: bool = False
    default: str | None = None
    choices: tuple[str, ...] = ()  # enum only
    minimum: int | None = None  # int only
    maximum: int | None = None

    def describe(self) -> dict[str, Any]:
        """The JSON shape `GET /queries` lists."""
        answer: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "required": self.required,
            "default": self.default,
            "description": self.description,
        }
        if self.choices:
            answer["choices"] = list(self.choices)
        if self.minimum is not None:
            answer["minimum"], answer["maximum"] = self.minimum, self.maximum
        return answer

    def convert(self, raw: str) -> str | int:
        """`raw` checked against the type, as the value the engines bind or inline."""
        checker = _CHECKERS[self.type]
        return checker(self, raw)


def parse_declaration(line: str) -> Parameter:
    """A `Parameter` from a header line like `@param limit int(1..1000)=10 Rows to return`."""
    match = _DECLARATION.fullmatch(line.strip())
    if match is None:
        raise ValueError(f"malformed parameter declaration: {line!r}")
    type_, spec = match["type"], match["spec"]
    if type_ not in _CHECKERS:
        raise ValueError(f"unknown parameter type {type_!r} in {line!r}")
    choices: tuple[str, ...] = ()
    minimum = maximum = None
    if type_ == "enum":
        if not spec:
            raise ValueError(f"an enum needs its choices: {line!r}")
        choices = tuple(spec.split("|"))
    elif type_ == "int" and spec:
        low, _, high = spec.partition("..")
        minimum, maximum = int(low), int(high)
    elif spec:
        raise ValueError(f"type {type_!r} takes no specification: {line!r}")
    parameter = Parameter(
        name=match["name"],
        type=type_,
        description=match["description"].strip(),
        required=match["required"] is not None,
        default=match["default"],
        choices=choices,
        minimum=minimum,
        maximum=maximum,
    )
    if parameter.default is not None:
        parameter.convert(parameter.default)  # a default must pass its own rules
    return parameter


def validate(declared: Sequence[Parameter], raw: Mapping[str, Any]) -> dict[str, str | int | None]:
    """Every declared parameter's value (defaults applied, None when absent and optional).

    Raises `QueryParameterError` for an unknown or missing parameter, a malformed value, or a
    `start` after `end`.
    """
    by_name = {p.name: p for p in declared}
    unknown = sorted(set(raw) - set(by_name))
    if unknown:
        allowed = ", ".join(by_name) or "none"
        raise QueryParameterError(
            f"unknown parameter(s): {', '.join(unknown)} (allowed: {allowed})"
        )
    values: dict[str, str | int | None] = {}
    for parameter in declared:
        given = raw.get(parameter.name)
        if isinstance(given, int) and not isinstance(given, bool):
            given = str(given)
        if given is not None and not isinstance(given, str):
            raise QueryParameterError(
                f"{parameter.name}: expected text, got {type(given).__name__}"
            )
        if given is None:
            if parameter.required:
                raise QueryParameterError(f"{parameter.name}: required")
            given = parameter.default
        values[parameter.name] = None if given is None else parameter.convert(given)
    start, end = values.get("start"), values.get("end")
    if isinstance(start, str) and isinstance(end, str) and start > end:
        raise QueryParameterError(f"start ({start}) is after end ({end})")
    return values


def _check_date(parameter: Parameter, raw: str) -> str:
    try:
        if DATE_PATTERN.fullmatch(raw) is None:
            raise ValueError
        return date.fromisoformat(raw).isoformat()
    except ValueError:
        raise QueryParameterError(f"{parameter.name}: expected a date YYYY-MM-DD") from None


def _check_int(parameter: Parameter, raw: str) -> int:
    if INT_PATTERN.fullmatch(raw.strip()) is None:
        raise QueryParameterError(f"{parameter.name}: expected an integer")
    value = int(raw)
    low, high = parameter.minimum, parameter.maximum
    if (low is not None and value < low) or (high is not None and value > high):
        raise QueryParameterError(f"{parameter.name}: must be between {low} and {high}")
    return value


def _check_id(parameter: Parameter, raw: str) -> str:
    if ID_PATTERN.fullmatch(raw) is None:
        raise QueryParameterError(f"{parameter.name}: expected an id of {ID_DESCRIPTION}")
    return raw


def _check_tz(parameter: Parameter, raw: str) -> str:
    if raw not in _time_zones():
        raise QueryParameterError(
            f"{parameter.name}: expected an IANA time zone name such as Europe/Berlin"
        )
    return raw


def _check_choice(parameter: Parameter, raw: str) -> str:
    if raw not in parameter.choices:
        choices = ", ".join(parameter.choices)
        raise QueryParameterError(f"{parameter.name}: expected one of {choices}")
    return raw


@functools.cache
def _time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


_CHECKERS = {
    "date": _check_date,
    "int": _check_int,
    "string": _check_id,
    "tz": _check_tz,
    "enum": _check_choice,
}
