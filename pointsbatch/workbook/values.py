"""Parsing one cell value of each kind the spec names. `INVALID` marks a value that cannot be read."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from . import spec

T = TypeVar("T")


def map_distinct(values: Iterable[Any], fn: Callable[[Any], T]) -> list[T]:
    """`[fn(v) for v in values]`, calling `fn` once per distinct value: a workbook or a ledger repeats its marks,
    names, items and numbers thousands of times. 1, 1.0 and True stay apart; an unhashable value is not kept."""
    memo: dict[Any, T] = {}
    out = []
    for v in values:
        key = v if v.__class__ is str else (v.__class__, v)  # (text, the most common, equals nothing else)
        try:
            found = memo[key]
        except KeyError:
            found = memo[key] = fn(v)
        except TypeError:
            found = fn(v)
        out.append(found)
    return out


class _Invalid:
    def __repr__(self) -> str:
        return "INVALID"


INVALID: Any = _Invalid()

_DATE = re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?(?:[ T].*)?$")
EXCEL_EPOCH = dt.date(1899, 12, 30)


def is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def parse_date(value: Any) -> Any:
    if is_blank(value):
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        # a date typed into a cell not formatted as a date arrives as its serial number
        if 1 <= value < 2958466:
            return EXCEL_EPOCH + dt.timedelta(days=int(value))
        return INVALID
    if isinstance(value, str):
        m = _DATE.match(value)
        if m:
            try:
                return dt.date(int(m[1]), int(m[2]), int(m[3]))
            except ValueError:
                return INVALID
    return INVALID


NUMBER_UNITS = ("分", "元", "年")


def parse_number(value: Any) -> Any:
    if is_blank(value):
        return None
    if isinstance(value, bool):
        return INVALID
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        text = value.replace(",", "").strip()
        # a recorder often types the unit the header already names: 2分, 3元, 2026年
        text = text[:-1].rstrip() if text[-1:] in NUMBER_UNITS else text
        try:
            number = float(text)
        except ValueError:
            return INVALID
        return number if number == number and abs(number) != float("inf") else INVALID
    return INVALID


def parse_int(value: Any) -> Any:
    number = parse_number(value)
    if number is None or number is INVALID:
        return number
    return int(number) if float(number).is_integer() and abs(number) < 2**53 else INVALID


def parse_choice(value: Any, choice: spec.Choice) -> Any:
    if is_blank(value):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return choice.lookup().get(str(value).replace(" ", ""), INVALID)


def parse_text(value: Any) -> Any:
    if is_blank(value):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()[:10]
    return str(value)


def parser_for(column: spec.Column):
    """The function that reads one cell of this column."""
    if column.kind in ("text", "name"):
        return parse_text
    if column.kind == "int":
        return parse_int
    if column.kind in ("number", "score"):
        return parse_number
    if column.kind == "date":
        return parse_date
    if column.kind == "choice":
        choice = column.choice
        assert choice is not None
        return lambda v: parse_choice(v, choice)
    raise ValueError(f"unknown column kind {column.kind}")
