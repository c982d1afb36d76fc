"""A small renderer for .xlsx templates whose cells hold Jinja expressions, so the town can restyle outputs in Excel.

- A cell holding exactly one `{{ expression }}` gets the expression's value with its type kept (numbers stay
  numbers, dates stay dates); any other text with `{{ }}` is rendered as a string.
- A row whose first cell starts with `{%row for x in xs %}` is the repeat row: it is written once per item of `xs`,
  with the row's style, and the rows below it move down.
- Text that a spreadsheet would run as a formula never becomes one: values are always written as values.
- A sheet whose title is an expression that gives nothing (`{{'优秀名单' if period.graded}}`) is left out.
- A sheet's autofilter on the header above the repeat row covers every repeated row.

The template is read once per process with openpyxl into a plan (cells, styles, widths, heights, merged cells,
frozen panes, page setup). An output is then written by `xlsx_fast` (the project's own XML around a shell that
XlsxWriter writes once per template; see `_fast_shell` for the check that decides it), or, with charts or `large`,
by XlsxWriter, several times faster than building and saving an openpyxl workbook of the same size; there the
repeated rows go into the sheet's XML through `_Rows` (see there why). Conditional formats are carried over when they are of a kind this renderer can reproduce
(see `_conditional_formats`): one on the repeat row grows with it. What the plan cannot carry over faithfully
(pictures, charts, comments, data validation, any other conditional format) is refused with a message rather than
silently dropped.
"""

from __future__ import annotations

import datetime as dt
import io
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

import jinja2
from xlsxwriter.worksheet import Worksheet

from .. import clock
from ..files import atomic_save
from ..jinja import environment
from ..workbook.values import map_distinct
from . import xlsx_fast
from .xlsx_fast import native_value

REPEAT = re.compile(r"^\{%row\s+for\s+(\w+)\s+in\s+(.+?)\s*%\}")
SINGLE = re.compile(r"^\{\{(.+?)\}\}$", re.S)
ATTRIBUTE = re.compile(r"^(\w+)\.(\w+)$")  # the common `{{ m.name }}`: looked up directly, no Jinja round trip
ITEM = re.compile(r"^(\w+)\[(\d+)\]$")
BORDER_STYLES = ["thin", "medium", "dashed", "dotted", "thick", "double", "hair", "mediumDashed", "dashDot",
                 "mediumDashDot", "dashDotDot", "mediumDashDotDot", "slantDashDot"]  # XlsxWriter's 1..13
FILL_PATTERNS = ["solid", "mediumGray", "darkGray", "lightGray", "darkHorizontal", "darkVertical", "darkDown",
                 "darkUp", "darkGrid", "darkTrellis", "lightHorizontal", "lightVertical", "lightDown", "lightUp",
                 "lightGrid", "lightTrellis", "gray125", "gray0625"]  # XlsxWriter's 1..18
THEME_COLORS = ["#FFFFFF", "#000000", "#E7E6E6", "#44546A", "#4472C4", "#ED7D31", "#A5A5A5", "#FFC000",
                "#5B9BD5", "#70AD47"]  # Office's default theme, for colours a template names by theme index
DATE_FORMAT = "yyyy-mm-dd"

Getter = Callable[[dict[str, Any]], Any]


class TemplateError(Exception):
    """An output template this renderer cannot reproduce; the message says what to change in it."""


@dataclass
class _Sheet:
    name: str  # the title in the template
    title: Any  # the title to write, or a Getter when the template's title is an expression
    cells: list[tuple[int, int, Any, int | None]]  # row, column (1-based), value or Getter, style index
    repeat_row: int | None = None
    repeat_var: str = ""
    repeat_items: Getter | None = None
    repeat_cells: list[tuple[int, Any, int | None]] = field(default_factory=list)
    heights: dict[int, float] = field(default_factory=dict)
    columns: list[tuple[int, int, float | None, bool]] = field(default_factory=list)
    merges: list[tuple[int, int, int, int]] = field(default_factory=list)
    freeze: tuple[int, int] | None = None
    autofilter: tuple[int, int, int, int] | None = None  # first row, column, last row, column (1-based)
    setup: list[tuple[str, tuple]] = field(default_factory=list)  # XlsxWriter worksheet calls
    # conditional formats, by priority: ranges (first row, first column, last row, last column; 1-based),
    # XlsxWriter's options without the format, and the index of the format's properties in _Plan.dxfs
    conditional: list[tuple[list[tuple[int, int, int, int]], dict[str, Any], int]] = field(default_factory=list)


@dataclass
class _Plan:
    sheets: list[_Sheet]
    formats: list[dict[str, Any]]  # XlsxWriter format properties, by style index
    dxfs: list[dict[str, Any]] = field(default_factory=list)  # XlsxWriter properties of conditional formats
    fast: Any = None  # xlsx_fast's Shell for this template, False when XlsxWriter writes it, None: not decided yet
    fast_reason: str = ""  # why XlsxWriter writes it


@dataclass
class Rendered:
    """The workbook being written, for a caller that adds to it (charts) before it is closed."""

    workbook: Any
    sheets: dict[str, Any]  # by the template's sheet title
    rows_used: dict[str, int]  # by the template's sheet title: how many rows the rendered sheet has


def render_xlsx(template: Path, context: dict[str, Any], target: Path,
                finish: Callable[[Rendered], None] | None = None, large: bool = False,
                created: dt.datetime | None = None) -> None:
    """Write `target` (whole or not at all) from the template and the context.

    `created`: the workbook's creation time in its properties (the run's clock; the zip's entries are dated
    1980-01-01), so the same inputs give the same bytes.

    `finish` (charts) and `large` (each sheet's XML in a temporary file beside `target` before it is zipped, for
    the town summary, which lists every member of a county) need XlsxWriter's workbook; any other output is written
    by `xlsx_fast` once its check has passed for the template (`_fast_shell`).
    """
    plan = _load(template)
    when = _utc(created or clock.now())
    if finish is None and not large and (shell := _fast_shell(plan, context, when)) is not None:
        data = xlsx_fast.workbook_bytes(shell, _fast_sheets(plan, context), when)
        atomic_save(target, lambda tmp: Path(tmp).write_bytes(data))
        return
    atomic_save(target, lambda tmp: _write_xlsxwriter(plan, context, tmp, when, finish, large,
                                                       private_rows=_rows_usable()))


def _write_xlsxwriter(plan: _Plan, context: dict[str, Any], file: Any, when: dt.datetime,
                      finish: Callable[[Rendered], None] | None = None, large: bool = False,
                      private_rows: bool = True, limit: int | None = None) -> None:
    """The workbook through XlsxWriter: its repeated rows by `_Rows` (`private_rows`), or cell by cell through the
    public API; `limit` cuts each repeated list to its first items (the fast path's check)."""
    import xlsxwriter

    memory = {"tmpdir": str(Path(file).parent)} if large else {"in_memory": True}
    wb = xlsxwriter.Workbook(file, {**memory, "strings_to_formulas": False, "strings_to_urls": False,
                                    "strings_to_numbers": False})
    wb.set_properties({"created": when})
    try:
        formats = [wb.add_format(props) for props in plan.formats]
        dates = _DateFormats(wb, plan.formats, formats)
        dxfs = [wb.add_format(props) for props in plan.dxfs]
        rendered = Rendered(wb, {}, {})
        for sheet in plan.sheets:
            title = _title(sheet, context)
            if title is None:
                continue
            ws = wb.add_worksheet(title, worksheet_class=_Rows if private_rows else None)
            rendered.sheets[sheet.name] = ws
            rendered.rows_used[sheet.name] = _write_sheet(ws, sheet, context, formats, dates, dxfs, limit)
        if finish:
            finish(rendered)
    finally:
        wb.close()


def _title(sheet: _Sheet, context: dict[str, Any]) -> str | None:
    """The sheet's title in this output; None leaves it out (a title expression that gives nothing)."""
    if not callable(sheet.title):
        return str(sheet.title)
    shown = sheet.title(context)
    if shown is None or not str(shown).strip():
        return None
    return _clean_title(str(shown))


# --- the fast path: xlsx_fast, checked once per template and process ------------------------------------------------

PROBE_ROWS = 3  # the check writes each repeated list cut to this many items both ways


def _fast_shell(plan: _Plan, context: dict[str, Any], when: dt.datetime) -> xlsx_fast.Shell | None:
    """The template's shell for `xlsx_fast`, or None when its outputs go through XlsxWriter.

    Decided at the template's first output in the process: that output is also written through XlsxWriter's public
    API with its repeated lists cut to `PROBE_ROWS` items, and `xlsx_fast.same_content` must find both the same;
    any error on the fast side (a template feature it does not write, XML from a later XlsxWriter it does not
    expect) also sends the template to XlsxWriter. `plan.fast_reason` says why, for the tests.
    """
    if plan.fast is None:
        public = io.BytesIO()
        _write_xlsxwriter(plan, context, public, when, private_rows=False, limit=PROBE_ROWS)  # a context error raises
        try:
            _fast_supported(plan)
            shell = xlsx_fast.build_shell(plan, partial(_write_probe, plan))
            mine = xlsx_fast.workbook_bytes(shell, _fast_sheets(plan, context, PROBE_ROWS), when)
            differences = xlsx_fast.content_differences(mine, public.getvalue())
            plan.fast, plan.fast_reason = (shell, "") if not differences else (False, "; ".join(differences[:5]))
        except Exception as exc:  # noqa: BLE001 (any failure of the fast side: XlsxWriter writes this template)
            plan.fast, plan.fast_reason = False, f"{type(exc).__name__}: {exc}"
    return plan.fast or None


def _fast_supported(plan: _Plan) -> None:
    """What `xlsx_fast` leaves to XlsxWriter: a hidden sheet (which sheet is selected then is XlsxWriter's rule), a
    pane frozen below the repeat row (it moves), a merge across the repeat row."""
    for sheet in plan.sheets:
        at = sheet.repeat_row
        if any(method == "hide" for method, _a in sheet.setup):
            raise xlsx_fast.Unsupported("hidden sheet")
        if at is not None and sheet.freeze and sheet.freeze[0] > at:
            raise xlsx_fast.Unsupported("pane frozen below the repeat row")
        if at is not None and any(r1 <= at <= r2 for r1, _c1, r2, _c2 in sheet.merges):
            raise xlsx_fast.Unsupported("merge across the repeat row")


def _write_probe(plan: _Plan, wb: Any) -> None:
    """The shell `xlsx_fast` reads: each template sheet without values, then a registry sheet with every format
    (row 1), its date variant (row 2) and the date format of an unstyled cell (row 3). Public API only."""
    formats = [wb.add_format(props) for props in plan.formats]
    dates = _DateFormats(wb, plan.formats, formats)
    dxfs = [wb.add_format(props) for props in plan.dxfs]
    for n, sheet in enumerate(plan.sheets):
        ws = wb.add_worksheet(f"S{n}")
        for first, last, width, hidden in sheet.columns:
            ws.set_column(first - 1, last - 1, width, None, {"hidden": hidden} if hidden else None)
        for row, height in sheet.heights.items():
            ws.set_row(row - 1, height)
        for r1, c1, r2, c2 in sheet.merges:
            ws.merge_range(r1 - 1, c1 - 1, r2 - 1, c2 - 1, "", None)
        if sheet.freeze:
            ws.freeze_panes(sheet.freeze[0] - 1, sheet.freeze[1] - 1)
        if sheet.autofilter:
            r1, c1, r2, c2 = sheet.autofilter
            ws.autofilter(r1 - 1, c1 - 1, r2 - 1, c2 - 1)
        _page_setup(ws, sheet.setup)
        _write_conditional(ws, sheet, 0, dxfs)
    registry = wb.add_worksheet("R")
    for i, fmt in enumerate(formats):
        registry.write_blank(0, i, None, fmt)
        registry.write_blank(1, i, None, dates(i))
    registry.write_blank(2, 0, None, dates(None))


def _fast_sheets(plan: _Plan, context: dict[str, Any], limit: int | None = None) -> list[xlsx_fast.Sheet]:
    """What each shown sheet of this output holds, for `xlsx_fast`: values evaluated, rows moved."""
    out = []
    for index, sheet in enumerate(plan.sheets):
        title = _title(sheet, context)
        if title is None:
            continue
        items = _items(sheet, context, limit)
        at = sheet.repeat_row
        shift = max(len(items), 1) - 1 if at is not None else 0

        def moved(row: int, at: int | None = at, shift: int = shift) -> int:
            return row + shift if at is not None and row > at else row

        merges = [(moved(r1), c1, moved(r2), c2) for r1, c1, r2, c2 in sheet.merges]
        static = [(moved(row), col, _value(value, context), style) for row, col, value, style in sheet.cells]
        written = {(r, c) for r, c, _v, _s in static}
        static += [(r1, c1, None, None) for r1, c1, _r2, _c2 in merges if (r1, c1) not in written]
        static.sort(key=lambda cell: (cell[0], cell[1]))
        heights = [(moved(row), row) for row in sheet.heights if row != at or not items]
        cells = [(col, style) for col, _v, style in sheet.repeat_cells]
        block = blank = None
        if at is not None and items:
            block = (at, _columns(sheet, items, context), cells)
        elif at is not None:
            blank = (at, cells)
        autofilter = None
        if sheet.autofilter:
            r1, c1, r2, c2 = sheet.autofilter
            last = moved(r2)
            if at is not None and r1 < at and r2 <= at:
                last = at + max(len(items), 1) - 1
            autofilter = (moved(r1), c1, last, c2)
        titles: list[str] = []
        for method, args in sheet.setup:
            if method == "repeat_columns":
                first, _, last_col = str(args[0]).partition(":")
                titles.insert(0, f"${first}:${last_col or first}")
            elif method == "repeat_rows":
                titles.append(f"${args[0] + 1}:${args[1] + 1}")
        out.append(xlsx_fast.Sheet(title, index, static, merges, heights, block, blank, autofilter,
                                   dict(zip(_conditional_ranges(sheet, 0), _conditional_ranges(sheet, shift),
                                            strict=True)), ",".join(titles)))
    return out


def _items(sheet: _Sheet, context: dict[str, Any], limit: int | None) -> Any:
    """The repeat row's list in this output (a Records table stays one: its columns are read as they are)."""
    if sheet.repeat_row is None or sheet.repeat_items is None:
        return []
    found = sheet.repeat_items(context)
    items = found if hasattr(found, "columns") else list(found or [])
    return items[:limit] if limit is not None else items


def _columns(sheet: _Sheet, items: Any, context: dict[str, Any]) -> list[Sequence[Any]]:
    """The repeated rows' values column by column (one list per cell of the repeat row)."""
    columns = getattr(items, "columns", None)
    values = [value for _c, value, _s in sheet.repeat_cells]
    if isinstance(columns, dict) and all(isinstance(v, _Attribute) and v.var == sheet.repeat_var or not callable(v)
                                         for v in values):
        n = len(items)
        return [columns.get(v.attr, [None] * n) if callable(v) else [v] * n for v in values]
    rows = _values(sheet, items, context)
    return [list(col) for col in zip(*rows, strict=True)] if rows else [[] for _v in values]


def _conditional_ranges(sheet: _Sheet, shift: int) -> list[str]:
    """Each conditional format's range (sqref) with `shift` more repeated rows, as XlsxWriter writes it."""
    from xlsxwriter.utility import xl_range

    at = sheet.repeat_row
    out = []
    for ranges, _options, _dxf in sheet.conditional:
        grown = [(r1, c1, r2 + shift if at is not None and r2 >= at else r2, c2) for r1, c1, r2, c2 in ranges]
        out.append(" ".join(xl_range(a - 1, b - 1, c - 1, d - 1) for a, b, c, d in grown))
    return out


def _rows_usable() -> bool:
    """Whether `_Rows` finds the XlsxWriter internals it leans on (else the public API writes every cell)."""
    global _ROWS_USABLE
    if _ROWS_USABLE is None:
        from xlsxwriter.format import Format

        ws = Worksheet()
        _ROWS_USABLE = all(hasattr(ws, name) for name in ("_write_rows", "_check_dimensions", "_convert_date_time",
                                                          "dim_rowmin", "dim_rowmax")) \
            and hasattr(Format(), "_get_xf_index") and "fh" in vars(ws) | {"fh": None}
    return _ROWS_USABLE


_ROWS_USABLE: bool | None = None


def _utc(when: dt.datetime) -> dt.datetime:
    """A naive UTC time, as the workbook's properties store it."""
    return when.astimezone(dt.UTC).replace(tzinfo=None) if when.tzinfo else when


def check_template(template: Path) -> None:
    """Read a template now, so that one this renderer cannot use stops the run before any work (TemplateError)."""
    _load(template)


def _load(template: Path) -> _Plan:
    """The template's plan, read again only when the file changes."""
    return _plan(str(template), Path(template).stat().st_mtime)


def _clean_title(title: str) -> str:
    # (Excel refuses a title that begins or ends with an apostrophe)
    return re.sub(r"[\[\]:*?/\\]", "", title)[:31].strip("'") or "Sheet"


# --- writing -----------------------------------------------------------------------------------------------------


class _DateFormats:
    """A date in a cell whose style shows numbers as General gets the same style with a date format."""

    def __init__(self, wb: Any, props: list[dict[str, Any]], formats: list[Any]) -> None:
        self.wb, self.props, self.formats = wb, props, formats
        self.made: dict[int | None, Any] = {}

    def __call__(self, index: int | None) -> Any:
        if index is not None and self.props[index].get("num_format") not in (None, "General"):
            return self.formats[index]
        if index not in self.made:
            base = dict(self.props[index]) if index is not None else {}
            self.made[index] = self.wb.add_format({**base, "num_format": DATE_FORMAT})
        return self.made[index]


def _write_sheet(ws: Any, sheet: _Sheet, context: dict[str, Any], formats: list[Any], dates: _DateFormats,
                 dxfs: Sequence[Any] = (), limit: int | None = None) -> int:
    items = _items(sheet, context, limit)
    at = sheet.repeat_row
    shift = max(len(items), 1) - 1 if at is not None else 0

    def moved(row: int) -> int:
        return row + shift if at is not None and row > at else row

    for first, last, width, hidden in sheet.columns:
        ws.set_column(first - 1, last - 1, width, None, {"hidden": hidden} if hidden else None)
    for row, height in sheet.heights.items():
        if row != at or not items:  # repeated rows carry their height themselves
            ws.set_row(moved(row) - 1, height)
    merged_at = {(moved(r1), c1): (moved(r2), c2) for r1, c1, r2, c2 in sheet.merges}
    static = [(moved(row), col, value, style) for row, col, value, style in sheet.cells]
    written = {(r, c) for r, c, _v, _s in static}
    static += [(r, c, None, None) for r, c in merged_at if (r, c) not in written]  # a merge with an empty first cell
    static.sort(key=lambda cell: (cell[0], cell[1]))  # row order: `large` workbooks cannot go back to a row
    below = at if at is not None else math.inf  # rows below the repeat row come after the repeated rows
    _write_static([c for c in static if c[0] < below], ws, context, formats, dates, merged_at)
    last_row = max((c[0] for c in static), default=0)
    if at is not None:
        if items and isinstance(ws, _Rows):
            ws.add_rows(at - 1, _values(sheet, items, context), sheet.repeat_cells, formats, dates,
                        sheet.heights.get(at))
        elif items:  # XlsxWriter's public API, cell by cell
            repeat_height = sheet.heights.get(at)
            for n, values in enumerate(_values(sheet, items, context), start=at - 1):
                if repeat_height is not None:
                    ws.set_row(n, repeat_height)
                for (col, _v, style), value in zip(sheet.repeat_cells, values, strict=True):
                    value = native_value(value)  # a repeated cell's empty text is blank (as `_Rows` writes it)
                    _write(ws, n, col - 1, None if value == "" else value,
                           formats[style] if style is not None else None, style, dates)
        else:
            for col, _v, style in sheet.repeat_cells:
                if style is not None:
                    ws.write_blank(at - 1, col - 1, None, formats[style])
        last_row = max(last_row, at + max(len(items), 1) - 1)
        _write_static([c for c in static if c[0] >= below], ws, context, formats, dates, merged_at)
    if sheet.freeze:
        ws.freeze_panes(moved(sheet.freeze[0]) - 1, sheet.freeze[1] - 1)
    if sheet.autofilter:
        r1, c1, r2, c2 = sheet.autofilter
        last = moved(r2)
        if at is not None and r1 < at and r2 <= at:  # a filter on the table's header covers every repeated row
            last = at + max(len(items), 1) - 1
        ws.autofilter(moved(r1) - 1, c1 - 1, last - 1, c2 - 1)
    _page_setup(ws, sheet.setup)
    _write_conditional(ws, sheet, shift, dxfs)
    return last_row


def _write_conditional(ws: Any, sheet: _Sheet, shift: int, dxfs: Sequence[Any]) -> None:
    """The template's conditional formats; a range that reaches the repeat row reaches every repeated row (none
    starts below it: `_conditional_formats` refuses those)."""
    from xlsxwriter.utility import xl_range

    at = sheet.repeat_row
    for ranges, options, dxf in sheet.conditional:
        grown = [(r1, c1, r2 + shift if at is not None and r2 >= at else r2, c2) for r1, c1, r2, c2 in ranges]
        r1, c1, r2, c2 = grown[0]
        extra = {"multi_range": " ".join(xl_range(a - 1, b - 1, c - 1, d - 1) for a, b, c, d in grown)} \
            if len(grown) > 1 else {}
        ws.conditional_format(r1 - 1, c1 - 1, r2 - 1, c2 - 1, {**options, **extra, "format": dxfs[dxf]})


def _write_static(cells: list[tuple[int, int, Any, int | None]], ws: Any, context: dict[str, Any],
                  formats: list[Any], dates: _DateFormats, merged_at: dict[tuple[int, int], tuple[int, int]]) -> None:
    for r, col, value, style in cells:
        fmt = formats[style] if style is not None else None
        value = _value(value, context)
        if (r, col) in merged_at:
            r2, c2 = merged_at[(r, col)]
            value = native_value(value)
            if isinstance(value, (dt.date, dt.datetime)):
                fmt = dates(style)
            ws.merge_range(r - 1, col - 1, r2 - 1, c2 - 1, "" if value is None else value, fmt)
        else:
            _write(ws, r - 1, col - 1, value, fmt, style, dates)


def _values(sheet: _Sheet, items: Sequence[Any], context: dict[str, Any]) -> list[Sequence[Any]]:
    """The repeated rows' values as the template gives them: one list per item, one per cell of the repeat row."""
    var = sheet.repeat_var
    values = [value for _c, value, _s in sheet.repeat_cells]
    if (hasattr(items, "columns") or all(isinstance(item, dict) for item in items)) and all(
            not callable(v) or (isinstance(v, _Attribute) and v.var == var) for v in values):
        # the usual repeat row, `{{ x.key }}` in every cell: no scope to build per item
        keys = [v.attr if callable(v) else None for v in values]
        columns = getattr(items, "columns", None)
        if isinstance(columns, dict):  # render.branch.Records: the same values, column by column
            n = len(items)
            return list(zip(*(columns.get(k, [None] * n) if k is not None else [v] * n
                              for k, v in zip(keys, values, strict=True)), strict=True))
        return [[item.get(k) if k is not None else v for k, v in zip(keys, values, strict=True)] for item in items]
    scope = dict(context)
    getters = [value if callable(value) else (lambda _s, v=value: v) for value in values]
    rows: list[Sequence[Any]] = []
    for item in items:
        scope[var] = item
        rows.append([get(scope) for get in getters])
    return rows


class _Rows(Worksheet):
    """XlsxWriter's worksheet, plus `add_rows`: a block of rows, all styled like the template's repeat row, whose
    cells go straight into the sheet's XML when the workbook is saved.

    Why: through XlsxWriter's public API a cell costs about 6 µs (its per-cell bookkeeping and XML writing in
    Python), and the town summary lists every member of the county; the repeated rows are plain values with one
    style per column, which this writes at under 1 µs a cell. Everything else in the workbook (styles, merges,
    widths, page setup, charts) is still XlsxWriter's. This leans on XlsxWriter internals: `_write_rows`
    (overridden), `fh`, `dim_rowmin`/`dim_rowmax`, `_check_dimensions`, `_convert_date_time` and
    `Format._get_xf_index`; `_rows_usable` looks for them once per process and, when one has moved, the public
    API writes every cell instead. pyproject.toml keeps XlsxWriter below 4, and tests read the outputs back with
    openpyxl and python-calamine, and through LibreOffice.
    """

    def __init__(self) -> None:
        super().__init__()
        self.blocks: list[tuple[int, list[Sequence[Any]], list[tuple[str, Any, Any]], float | None]] = []

    def add_rows(self, first: int, rows: list[Sequence[Any]], cells: list[tuple[int, Any, int | None]],
                 formats: list[Any], dates: _DateFormats, height: float | None) -> None:
        """Rows `first`, `first` + 1, ... (0-based) hold `rows`; `cells` are the repeat row's (column, _, style)."""
        from xlsxwriter.utility import xl_col_to_name

        columns = [(xl_col_to_name(col - 1), formats[style] if style is not None else None, dates(style))
                   for col, _v, style in cells]
        self.blocks.append((first, rows, columns, height))
        self._check_dimensions(first, cells[0][0] - 1)
        self._check_dimensions(first + len(rows) - 1, cells[-1][0] - 1)

    def _write_rows(self) -> None:
        if not self.blocks:
            super()._write_rows()
            return
        low: int = self.dim_rowmin  # type: ignore[has-type]  # set by _check_dimensions: there are rows
        high: int = self.dim_rowmax  # type: ignore[has-type]
        try:
            start = low
            for first, rows, columns, height in sorted(self.blocks, key=lambda b: b[0]):
                if start < first:
                    self.dim_rowmin, self.dim_rowmax = start, first - 1
                    super()._write_rows()
                self._write_block(first, rows, columns, height)
                start = first + len(rows)
            if start <= high:
                self.dim_rowmin, self.dim_rowmax = start, high
                super()._write_rows()
        finally:
            self.dim_rowmin, self.dim_rowmax = low, high

    def _cell_tail(self, value: Any, s: str, date_s: str) -> str:
        """A cell's XML after its row number: `"` + style, type and value (nothing for an unstyled blank)."""
        value = native_value(value)
        if value is None or value == "":
            return f'"{s}/>' if s else ""
        if isinstance(value, str):
            return f'"{s} t="inlineStr"><is>{xlsx_fast.text_element(value[:32767])}</is></c>'
        if isinstance(value, bool):
            return f'"{s} t="b"><v>{int(value)}</v></c>'
        if isinstance(value, (int, float)):
            return f'"{s}><v>{value:.16G}</v></c>'
        return f'"{date_s}><v>{self._convert_date_time(value):.16G}</v></c>'  # a date or datetime

    def _write_block(self, first: int, rows: list[Sequence[Any]], columns: list[tuple[str, Any, Any]],
                     height: float | None) -> None:
        def style(fmt: Any) -> str:
            return f' s="{fmt._get_xf_index()}"' if fmt is not None and fmt._get_xf_index() else ""

        cols = [(f'<c r="{letter}', style(fmt), style(date)) for letter, fmt, date in columns]
        # a column repeats its values (names, items, notes): each cell's XML after its row number is made once
        tails = [map_distinct(values, partial(self._cell_tail, s=s, date_s=d))
                 for (_h, s, d), values in zip(cols, zip(*rows, strict=True), strict=True)]
        row_attrs = ""
        if height is not None:  # as XlsxWriter's set_row: snapped to whole pixels
            row_attrs = f' ht="{int(height * 4.0 / 3.0 + 0.5) * 0.75:.16g}" customHeight="1"'
        out: list[str] = []
        for n, row in enumerate(zip(*tails, strict=True), start=first + 1):
            out.append(f'<row r="{n}"{row_attrs}>')
            for (head, _s, _d), tail in zip(cols, row, strict=True):
                if tail:
                    out.append(f"{head}{n}{tail}")
            out.append("</row>")
            if len(out) > 4096:
                self.fh.write("".join(out))
                out.clear()
        self.fh.write("".join(out))


def _write(ws: Any, row: int, col: int, value: Any, fmt: Any, style: int | None, dates: _DateFormats) -> None:
    value = native_value(value)
    if value is None:
        if fmt is not None:
            ws.write_blank(row, col, None, fmt)
    elif isinstance(value, str):
        ws.write_string(row, col, value, fmt)  # never a formula, never a link
    elif isinstance(value, bool):
        ws.write_boolean(row, col, value, fmt)
    elif isinstance(value, (int, float)):
        ws.write_number(row, col, value, fmt)
    else:
        ws.write_datetime(row, col, value, dates(style))


def _value(value: Any, scope: dict[str, Any]) -> Any:
    return value(scope) if callable(value) else value


def _page_setup(ws: Any, setup: list[tuple[str, tuple]]) -> None:
    for method, args in setup:
        getattr(ws, method)(*args)


# --- reading the template once -------------------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _plan(path: str, mtime: float) -> _Plan:
    """Read a template with openpyxl into what XlsxWriter needs to write it again.

    Private openpyxl names used here (openpyxl has no public equivalent; pyproject.toml keeps openpyxl below 3.2,
    and the render tests read every output back): `Cell._style`, the cell's tuple of style indices, as a cheap key
    for "the same style"; `Worksheet._images` and `Worksheet._charts`, the pictures and charts a loaded sheet holds,
    to refuse a template whose pictures or charts would otherwise vanish. Without them (a future openpyxl) the key
    falls back to the public style objects and the refusal to nothing found.
    """
    from openpyxl import load_workbook

    try:
        wb = load_workbook(path)
    except Exception as exc:
        raise TemplateError(f"无法读取输出模板 {path}：{exc}") from exc
    env = environment(None, autoescape=False)  # (cell expressions are compiled from the plan, not loaded)
    styles: dict[tuple, int] = {}
    formats: list[dict[str, Any]] = []

    def style_of(cell: Any) -> int | None:
        if not cell.has_style:
            return None
        raw = getattr(cell, "_style", None)
        key = tuple(raw) if raw is not None else (cell.font, cell.fill, cell.border, cell.alignment,
                                                  cell.number_format, cell.protection)
        if key not in styles:
            styles[key] = len(formats)
            formats.append(_format(cell))
        return styles[key]

    sheets = []
    dxfs: list[dict[str, Any]] = []
    for ws in wb.worksheets:
        _refuse_unsupported(path, ws)
        where = "工作表名称"
        try:
            title: Any = _compile(env, ws.title) if ws.title.startswith("{{") else ws.title
            sheet = _Sheet(ws.title, title, [])
            for row in ws.iter_rows():
                first = row[0].value if row else None
                where = row[0].coordinate if row else where
                if sheet.repeat_row is None and isinstance(first, str) and (m := REPEAT.match(first)):
                    sheet.repeat_row, sheet.repeat_var = row[0].row, m[1]
                    sheet.repeat_items = _compile_expression(env, m[2])
                    for cell in row:
                        where = cell.coordinate
                        value = first[m.end():] if cell.column == 1 else cell.value
                        sheet.repeat_cells.append((cell.column, _compile(env, value), style_of(cell)))
                    continue
                for cell in row:
                    if cell.value is None and not cell.has_style:
                        continue
                    where = cell.coordinate
                    sheet.cells.append((cell.row, cell.column, _compile(env, cell.value), style_of(cell)))
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"输出模板 {Path(path).name} 的工作表「{ws.title}」{where}中的表达式写错了"
                                f"（{exc.message}），请改正后再运行") from exc
        sheet.heights = {r: d.height for r, d in ws.row_dimensions.items() if d.height is not None}
        for dim in ws.column_dimensions.values():
            if dim.min is None:
                continue
            width = max(dim.width - 5 / 7, 0) if dim.width else None  # XlsxWriter adds the cell padding back
            if width is not None or dim.hidden:
                sheet.columns.append((dim.min, dim.max or dim.min, width, bool(dim.hidden)))
        sheet.merges = [(r.min_row, r.min_col, r.max_row, r.max_col) for r in ws.merged_cells.ranges]
        if ws.freeze_panes:
            from openpyxl.utils.cell import coordinate_to_tuple

            sheet.freeze = coordinate_to_tuple(ws.freeze_panes)
        if ws.auto_filter.ref:
            from openpyxl.utils.cell import range_boundaries

            c1, r1, c2, r2 = range_boundaries(ws.auto_filter.ref)
            sheet.autofilter = (r1, c1, r2, c2)
        sheet.setup = _setup(ws)
        sheet.conditional = _conditional_formats(path, ws, sheet.repeat_row, dxfs)
        sheets.append(sheet)
    return _Plan(sheets, formats, dxfs)


def _refuse_unsupported(path: str, ws: Any) -> None:
    found = []
    if getattr(ws, "_images", None):
        found.append("图片")
    if getattr(ws, "_charts", None):
        found.append("图表")
    if ws.data_validations.dataValidation:
        found.append("数据验证（下拉列表）")
    if any(c.comment for row in ws.iter_rows() for c in row):
        found.append("批注")
    if found:
        raise TemplateError(f"输出模板 {Path(path).name} 的工作表「{ws.title}」含有{'、'.join(found)}，"
                            "本程序不能照原样生成；请从模板中删除后再运行")


CF_OPERATORS = {"lessThan": "<", "lessThanOrEqual": "<=", "greaterThan": ">", "greaterThanOrEqual": ">=",
                "equal": "==", "notEqual": "!=", "between": "between", "notBetween": "not between"}
_FORMULA_STRING = re.compile(r'"[^"]*"')
_FORMULA_ROW = re.compile(r"(?<![A-Za-z0-9_.$])\$?[A-Za-z]{1,3}\$?(\d+)(?![\d(A-Za-z_])")


def _conditional_formats(path: str, ws: Any, at: int | None,
                         dxfs: list[dict[str, Any]]) -> list[tuple[list[tuple[int, int, int, int]], dict[str, Any], int]]:
    """The sheet's conditional formats as XlsxWriter options, in priority order; `dxfs` gets their formats.

    Carried: 单元格值 comparisons (cellIs), formulas (expression), blanks and non-blanks, with a font, fill, border
    or number format. A range may reach the repeat row (it then grows with the rows) but not start below it, and a
    formula may not point below the repeat row or at another sheet: those cells move, and the format would quietly
    look at the wrong ones. Anything else is refused with a message naming the sheet and range."""
    found = sorted(((rule.priority or 0, n, rule, cf.sqref) for n, cf in enumerate(ws.conditional_formatting)
                    for rule in cf.rules), key=lambda t: (t[0], t[1]))
    out = []
    for _priority, _n, rule, sqref in found:
        ranges = [(r.min_row, r.min_col, r.max_row, r.max_col) for r in sqref.ranges]
        formulas = [str(f) for f in (rule.formula or [])]

        def refuse(why: str, sqref: Any = sqref) -> TemplateError:
            return TemplateError(f"输出模板 {Path(path).name} 的工作表「{ws.title}」{sqref}的条件格式{why}，"
                                 "本程序不能照原样生成；请在模板中修改或删除这条条件格式后再运行")

        if at is not None and any(r1 > at for r1, _c1, _r2, _c2 in ranges):
            raise refuse(f"在重复行（第{at}行）下方")
        for formula in formulas:
            text = _FORMULA_STRING.sub('""', formula)
            if "!" in text or (at is not None and any(int(m[1]) > at for m in _FORMULA_ROW.finditer(text))):
                raise refuse(f"的公式 {formula} 引用了重复行（第{at}行）下方或其他工作表的单元格")
        options: dict[str, Any]
        if rule.type == "cellIs" and rule.operator in CF_OPERATORS and formulas:
            options = {"type": "cell", "criteria": CF_OPERATORS[rule.operator]}
            if rule.operator in ("between", "notBetween"):
                if len(formulas) < 2:
                    raise refuse("缺少上下限")
                options |= {"minimum": formulas[0], "maximum": formulas[1]}
            else:
                options["value"] = formulas[0]
        elif rule.type == "expression" and formulas:
            options = {"type": "formula", "criteria": "=" + formulas[0]}
        elif rule.type in ("containsBlanks", "notContainsBlanks"):
            options = {"type": "blanks" if rule.type == "containsBlanks" else "no_blanks"}
        else:
            raise refuse(f"（{rule.type}{'：' + rule.operator if rule.operator else ''}）")
        if rule.stopIfTrue:
            options["stop_if_true"] = True
        dxfs.append(_dxf_format(rule.dxf))
        out.append((ranges, options, len(dxfs) - 1))
    return out


def _dxf_format(dxf: Any) -> dict[str, Any]:
    """XlsxWriter properties for a conditional format's style (font, fill, border, number format)."""
    props: dict[str, Any] = {}
    if dxf is None:
        return props
    f = dxf.font
    if f is not None:
        if f.b:
            props["bold"] = True
        if f.i:
            props["italic"] = True
        if f.strike:
            props["font_strikeout"] = True
        if f.u:
            props["underline"] = 1
        if (color := _color(f.color)) is not None:
            props["font_color"] = color
    fill = dxf.fill
    if fill is not None and getattr(fill, "patternType", None) in (None, "solid"):
        # a conditional format's solid fill keeps its colour in bgColor (Excel), or in fgColor (some writers)
        colors = [c for c in (fill.bgColor, fill.fgColor) if c is not None and getattr(c, "rgb", None) != "00000000"]
        if colors and (color := _color(colors[0])) is not None:
            props["bg_color"] = color
    elif fill is not None and fill.patternType in FILL_PATTERNS:
        props["pattern"] = FILL_PATTERNS.index(fill.patternType) + 1
        for key, c in (("fg_color", fill.fgColor), ("bg_color", fill.bgColor)):
            if (color := _color(c)) is not None:
                props[key] = color
    b = dxf.border
    if b is not None:
        for side in ("left", "right", "top", "bottom"):
            s = getattr(b, side)
            if s is not None and s.style in BORDER_STYLES:
                props[side] = BORDER_STYLES.index(s.style) + 1
                if (color := _color(s.color)) is not None:
                    props[f"{side}_color"] = color
    if dxf.numFmt is not None and dxf.numFmt.formatCode:
        props["num_format"] = dxf.numFmt.formatCode
    return props


def _setup(ws: Any) -> list[tuple[str, tuple]]:
    """The sheet's page setup and view as XlsxWriter worksheet calls (method name, arguments)."""
    ps, options, view = ws.page_setup, ws.print_options, ws.sheet_view
    m = ws.page_margins
    calls: list[tuple[str, tuple]] = [("set_margins", (m.left, m.right, m.top, m.bottom))]
    if ps.orientation == "landscape":
        calls.append(("set_landscape", ()))
    if ps.paperSize:
        calls.append(("set_paper", (int(ps.paperSize),)))
    if ws.sheet_properties.pageSetUpPr is not None and ws.sheet_properties.pageSetUpPr.fitToPage:
        calls.append(("fit_to_pages", (_int(ps.fitToWidth, 1), _int(ps.fitToHeight, 1))))
    elif ps.scale:
        calls.append(("set_print_scale", (int(ps.scale),)))
    if ws.print_title_rows:
        first, _, last = ws.print_title_rows.replace("$", "").partition(":")
        calls.append(("repeat_rows", (int(first) - 1, int(last or first) - 1)))
    if ws.print_title_cols:
        first, _, last = ws.print_title_cols.replace("$", "").partition(":")
        calls.append(("repeat_columns", (f"{first}:{last or first}",)))
    for method, part in (("set_header", ws.oddHeader), ("set_footer", ws.oddFooter)):
        if part:
            calls.append((method, (str(part),)))
    for method, on in (("center_horizontally", options.horizontalCentered),
                       ("center_vertically", options.verticalCentered), ("hide", ws.sheet_state != "visible")):
        if on:
            calls.append((method, ()))
    screen, printed = view.showGridLines is not False, bool(options.gridLines)
    calls.append(("hide_gridlines", (0 if printed else (1 if screen else 2),)))
    if ws.sheet_properties.tabColor is not None and (tab := _color(ws.sheet_properties.tabColor)):
        calls.append(("set_tab_color", (tab,)))
    if view.zoomScale:
        calls.append(("set_zoom", (view.zoomScale,)))
    return calls


def _int(value: Any, default: int) -> int:
    return int(value) if value is not None else default


def _format(cell: Any) -> dict[str, Any]:
    """XlsxWriter properties for an openpyxl cell's style."""
    props: dict[str, Any] = {}
    f = cell.font
    if f is not None:
        if f.name:
            props["font_name"] = f.name
        if f.sz:
            props["font_size"] = float(f.sz)
        if f.b:
            props["bold"] = True
        if f.i:
            props["italic"] = True
        if f.strike:
            props["font_strikeout"] = True
        if f.u:
            props["underline"] = {"single": 1, "double": 2, "singleAccounting": 33,
                                  "doubleAccounting": 34}.get(f.u, 1)
        if f.vertAlign in ("superscript", "subscript"):
            props["font_script"] = 1 if f.vertAlign == "superscript" else 2
        if (color := _color(f.color)) is not None and color != "#000000":
            props["font_color"] = color
    fill = cell.fill
    if fill is not None and getattr(fill, "patternType", None) in FILL_PATTERNS:
        props["pattern"] = FILL_PATTERNS.index(fill.patternType) + 1
        if (color := _color(fill.fgColor)) is not None:
            props["bg_color" if fill.patternType == "solid" else "fg_color"] = color
        if fill.patternType != "solid" and (color := _color(fill.bgColor)) is not None:
            props["bg_color"] = color
    b = cell.border
    for side in ("left", "right", "top", "bottom"):
        s = getattr(b, side)
        if s is not None and s.style in BORDER_STYLES:
            props[side] = BORDER_STYLES.index(s.style) + 1
            if (color := _color(s.color)) is not None:
                props[f"{side}_color"] = color
    a = cell.alignment
    if a is not None:
        if a.horizontal and a.horizontal != "general":
            props["align"] = {"centerContinuous": "center_across", "distributed": "distributed"}.get(
                a.horizontal, a.horizontal)
        if a.vertical:
            props["valign"] = {"center": "vcenter", "top": "top", "bottom": "bottom", "justify": "vjustify",
                               "distributed": "vdistributed"}.get(a.vertical, "bottom")
        if a.wrap_text:
            props["text_wrap"] = True
        if a.shrink_to_fit:
            props["shrink"] = True
        if a.indent:
            props["indent"] = int(a.indent)
        if a.text_rotation:
            props["rotation"] = int(a.text_rotation) if a.text_rotation <= 90 else 90 - int(a.text_rotation)
    if cell.number_format and cell.number_format != "General":
        props["num_format"] = cell.number_format
    p = cell.protection
    if p is not None:
        if p.locked is False:
            props["locked"] = False
        if p.hidden:
            props["hidden"] = True
    return props


def _color(color: Any) -> str | None:
    if color is None:
        return None
    kind = getattr(color, "type", None)
    if kind == "rgb" and isinstance(color.rgb, str) and len(color.rgb) >= 6:
        return "#" + color.rgb[-6:].upper()
    if kind == "theme" and isinstance(color.theme, int) and 0 <= color.theme < len(THEME_COLORS):
        return THEME_COLORS[color.theme]
    if kind == "indexed" and isinstance(color.indexed, int):
        from openpyxl.styles.colors import COLOR_INDEX

        if color.indexed < len(COLOR_INDEX) and color.indexed not in (64, 65):
            return "#" + COLOR_INDEX[color.indexed][-6:]
    return None


# --- expressions ---------------------------------------------------------------------------------------------------


def _compile(env: jinja2.Environment, value: Any) -> Any:
    """A cell's value as written (anything without `{{`), or a Getter of the scope."""
    if not isinstance(value, str) or "{{" not in value:
        return value
    single = SINGLE.match(value.strip())
    if single and "{{" not in single[1]:
        text = single[1].strip()
        if m := ATTRIBUTE.match(text):
            return _Attribute(m[1], m[2])
        if m := ITEM.match(text):
            var, idx = m[1], int(m[2])
            return lambda s: s[var][idx]
        return _compile_expression(env, text)
    tmpl = env.from_string(value)
    return lambda s: tmpl.render(**s)


def _compile_expression(env: jinja2.Environment, text: str) -> Getter:
    expr = env.compile_expression(text, undefined_to_none=True)
    return lambda s: expr(**s)


@dataclass(frozen=True)
class _Attribute:
    """What Jinja's `var.attr` gives: an attribute, else the item of that name, else None."""

    var: str
    attr: str

    def __call__(self, scope: dict[str, Any]) -> Any:
        obj = scope[self.var]
        if isinstance(obj, dict):
            return obj.get(self.attr)
        return getattr(obj, self.attr, None)
