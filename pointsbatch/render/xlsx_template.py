"""A small renderer for .xlsx templates whose cells hold Jinja expressions, so the town can restyle outputs in Excel.

- A cell holding exactly one `{{ expression }}` gets the expression's value with its type kept (numbers stay
  numbers, dates stay dates); any other text with `{{ }}` is rendered as a string.
- A row whose first cell starts with `{%row for x in xs %}` is the repeat row: it is written once per item of `xs`,
  with the row's style, and the rows below it move down.
- Text that a spreadsheet would run as a formula never becomes one: values are always written as values.
"""

from __future__ import annotations

import copy
import re
from functools import lru_cache
from io import BytesIO
from pathlib import Path
from typing import Any

import jinja2
from openpyxl import load_workbook
from openpyxl.workbook.workbook import Workbook
from openpyxl.worksheet.worksheet import Worksheet

from ..jinja import environment

REPEAT = re.compile(r"^\{%row\s+for\s+(\w+)\s+in\s+(.+?)\s*%\}")
SINGLE = re.compile(r"^\{\{(.+?)\}\}$", re.S)
ATTRIBUTE = re.compile(r"^(\w+)\.(\w+)$")  # the common `{{ m.name }}`: looked up directly, no Jinja round trip
ITEM = re.compile(r"^(\w+)\[(\d+)\]$")
ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


@lru_cache(maxsize=8)
def _template_bytes(path: str, mtime: float) -> bytes:
    return Path(path).read_bytes()


def render_xlsx(template: Path, context: dict[str, Any]) -> Workbook:
    wb = load_workbook(BytesIO(_template_bytes(str(template), Path(template).stat().st_mtime)))
    env = environment(autoescape=False)
    for ws in wb.worksheets:
        if ws.title.startswith("{{"):
            ws.title = _clean_title(str(_evaluate(env, ws.title, context)))
        _render_sheet(ws, env, context)
    return wb


def _clean_title(title: str) -> str:
    return re.sub(r"[\[\]:*?/\\]", "", title)[:31] or "Sheet"


def _render_sheet(ws: Worksheet, env: jinja2.Environment, context: dict[str, Any]) -> None:
    repeat_at = None
    for row in ws.iter_rows(min_col=1, max_col=1):
        value = row[0].value
        if isinstance(value, str) and REPEAT.match(value):
            repeat_at = row[0].row
            break
    rows = list(ws.iter_rows())
    for row in rows:
        if row[0].row == repeat_at:
            continue
        for cell in row:
            if isinstance(cell.value, str) and "{{" in cell.value:
                _set(cell, _evaluate(env, cell.value, context))
    if repeat_at is None:
        return
    template_cells = [(c.column, c.value, copy.copy(c._style)) for c in ws[repeat_at]]
    height = ws.row_dimensions[repeat_at].height
    match = REPEAT.match(template_cells[0][1])
    assert match is not None
    var, expr = match[1], match[2]
    items = list(env.compile_expression(expr)(**context) or [])
    first_value = template_cells[0][1][match.end():]
    template_cells[0] = (template_cells[0][0], first_value, template_cells[0][2])
    if len(items) > 1:
        ws.insert_rows(repeat_at + 1, len(items) - 1)
    compiled = [(col, _compile(env, value), style) for col, value, style in template_cells]
    for i, item in enumerate(items):
        r = repeat_at + i
        scope = {**context, var: item}
        for col, fn, style in compiled:
            cell = ws.cell(r, col)
            _set(cell, fn(scope) if fn else None)
            cell._style = copy.copy(style)
        if height:
            ws.row_dimensions[r].height = height
    if not items:
        for col, _fn, _style in compiled:
            ws.cell(repeat_at, col).value = None


def _compile(env: jinja2.Environment, value: Any):
    if not isinstance(value, str) or "{{" not in value:
        return (lambda _s, v=value: v) if value is not None else None
    single = SINGLE.match(value.strip())
    if single and "{{" not in single[1]:
        text = single[1].strip()
        if m := ATTRIBUTE.match(text):
            return _attribute_getter(m[1], m[2])
        if m := ITEM.match(text):
            var, idx = m[1], int(m[2])
            return lambda s: s[var][idx]
        expr = env.compile_expression(text, undefined_to_none=True)
        return lambda s: expr(**s)
    tmpl = env.from_string(value)
    return lambda s: tmpl.render(**s)


def _attribute_getter(var: str, attr: str):
    """What Jinja's `var.attr` gives: an attribute, else the item of that name, else None."""

    def get(scope: dict[str, Any]) -> Any:
        obj = scope[var]
        if isinstance(obj, dict):
            return obj.get(attr)
        return getattr(obj, attr, None)

    return get


def _evaluate(env: jinja2.Environment, value: str, context: dict[str, Any]) -> Any:
    fn = _compile(env, value)
    return fn(context) if fn else None


def _set(cell: Any, value: Any) -> None:
    if isinstance(value, float) and value != value:
        value = None
    if isinstance(value, str):
        value = ILLEGAL.sub("", value)
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()  # numpy scalars
    cell.value = value
    if isinstance(value, str) and value.startswith("="):
        cell.data_type = "s"  # text that looks like a formula stays text
