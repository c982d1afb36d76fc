"""The blank standard workbook: every sheet and header of the spec, drop-downs from named ranges, made for people."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.cell.cell import Cell
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.workbook.defined_name import DefinedName
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.pagebreak import Break
from openpyxl.worksheet.worksheet import Worksheet

from ..jinja import render_text
from ..numbers import number_text as _n
from ..rules import Rules
from . import spec
from .read import column_letter

HEADER_FILL = PatternFill("solid", fgColor="C00000")
HEADER_FONT = Font(bold=True, color="FFFFFF")
DATE_FILL = PatternFill("solid", fgColor="FDE9D9")
THIN = Side(style="thin", color="BFBFBF")
BORDER = Border(left=THIN, right=THIN, top=THIN, bottom=THIN)
DATE_FORMAT = "yyyy-mm-dd"
GRID_MEMBER_ROWS = 200
PRINTED_BLANK_ROWS = 30  # rows a printed blank sheet offers for filling by hand (all 200 would be pages of blanks)


@dataclass
class Filling:
    """What to put into a new workbook: branch information, the roster, and optionally every log."""

    info: dict[str, Any] = field(default_factory=dict)
    roster: list[list[Any]] = field(default_factory=list)
    grid: list[list[Any]] = field(default_factory=list)
    grid_dates: dict[str, Any] = field(default_factory=dict)
    logs: dict[str, list[list[Any]]] = field(default_factory=dict)


def build_template(rules: Rules, year: int | None = None, branch: str | None = None,
                   filling: Filling | None = None) -> Workbook:
    """A standard workbook for the year, filled with what `filling` holds (nothing by default)."""
    filling = filling or Filling()
    year = year or filling.info.get("year") or dt.date.today().year
    info = {**filling.info, "year": year}
    if branch:
        info["branch"] = branch
    wb = Workbook()
    guide = wb.active
    guide.title = spec.GUIDE_SHEET
    _write_guide(guide, rules, year)
    _write_lists(wb, rules)
    _write_info(wb.create_sheet(spec.INFO_SHEET), info, rules)
    _write_table(wb, spec.ROSTER, filling.roster, rules, year)
    _write_grid(wb, filling, year)
    for sheet in (*spec.LOG_SHEETS, spec.OBJECTIONS):
        _write_table(wb, sheet, filling.logs.get(sheet.key, []), rules, year)
    wb.move_sheet(spec.LISTS_SHEET, offset=len(wb.sheetnames))
    wb.active = 1
    return wb


def _print_setup(ws: Worksheet, last_row: int, last_col: int, title_cols: str | None = None,
                 pages_wide: int = 1) -> None:
    """Printed for a recorder who fills by hand: A4 landscape, `pages_wide` pages across and as many down as it
    takes, the header row (and `title_cols`) on every page, grid lines, the used rows only."""
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.page_setup.fitToWidth = pages_wide
    ws.page_setup.fitToHeight = 0  # as many pages down as the rows need
    ws.print_options.gridLines = True
    ws.print_options.horizontalCentered = True
    ws.page_margins.left = ws.page_margins.right = 0.4
    ws.page_margins.top = ws.page_margins.bottom = 0.5
    ws.print_title_rows = "1:1" if ws.title != spec.GRID_SHEET else f"1:{spec.GRID_FIRST_ROW - 1}"
    if title_cols:
        ws.print_title_cols = title_cols
    ws.print_area = f"A1:{column_letter(last_col - 1)}{last_row}"
    ws.oddFooter.center.text = "&A 第 &P 页，共 &N 页"


def carry_over(previous: Path) -> Filling:
    """Last year's branch information and roster, for `template --from`."""
    from .read import read_workbook

    book = read_workbook(previous)
    info = {k: v for k, (v, _cell) in book.info.items() if k in ("branch", "recorder", "secretary", "email", "rate")}
    filling = Filling(info=info)
    roster = book.tables.get("roster")
    if roster is not None:
        for _row, rec in roster.frame.iterrows():
            if rec.get("name") is None:
                continue
            filling.roster.append([rec.get(c.key) for c in spec.ROSTER.columns])
        filling.grid = [[r[0], r[1]] for r in filling.roster]
    return filling


_FORMULA_START = ("=", "+", "-", "@")


def _put(ws: Worksheet, row: int, col: int, value: Any) -> Cell:
    """A cell holding `value` as it is: text that looks like a formula (=, +, -, @ first) stays text, also when
    someone edits the cell later in Excel (the quote prefix), instead of becoming a formula."""
    cell = ws.cell(row, col, value)
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        cell.data_type = "s"
        cell.quotePrefix = True
    return cell


def _header(ws: Worksheet, headers: list[str], widths: list[int]) -> None:
    for idx, (text, width) in enumerate(zip(headers, widths, strict=True), start=1):
        cell = ws.cell(1, idx, text)
        cell.fill, cell.font, cell.border = HEADER_FILL, HEADER_FONT, BORDER
        cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
        ws.column_dimensions[column_letter(idx - 1)].width = width
    ws.row_dimensions[1].height = 30


def _write_guide(ws: Worksheet, rules: Rules, year: int) -> None:
    inc = rules.incentive
    text = render_text(
        "guide.txt.j2",
        year=year,
        max_rate=_n(rules.grades.max_reward_rate),
        exempt_age=rules.exempt_age,
        age_reason=rules.lists.age_reason,
        title=rules.title,
        activity_max=_n(inc.activity_max),
        step=_n(inc.step),
        multiplier=_n(inc.leading_multiplier),
        item_cap=_n(inc.item_cap),
        grown_cap=_n(inc.effective_item_cap()) if inc.cap_grows_with_multiplier else "",
        deduction=_n(rules.negative.deduction_per_occurrence),
        absence_months=rules.veto.absence_months,
    )
    ws.column_dimensions["A"].width = 110
    lines = text.strip().splitlines()
    for i, line in enumerate(lines, start=1):
        heading = line.startswith("#") or i == 1
        cell = ws.cell(i, 1, line.lstrip("#"))
        cell.alignment = Alignment(wrap_text=True, vertical="top")
        if heading:
            cell.font = Font(bold=True, size=14 if i == 1 else 12, color="C00000")
        else:  # a wrapped line needs its rows' height: Excel and LibreOffice do not grow a row when printing
            ws.row_dimensions[i].height = 15 * max(1, -(-_display_width(line) // 104))
    _print_setup(ws, len(lines), 1)
    ws.print_options.gridLines = False
    ws.print_title_rows = None


def _display_width(text: str) -> int:
    """Columns of a Calibri-width cell the text takes: a Chinese character takes two."""
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _write_lists(wb: Workbook, rules: Rules) -> None:
    ws = wb.create_sheet(spec.LISTS_SHEET)
    for idx, choice in enumerate(rules.choice(c) for c in spec.CHOICES):
        letter = column_letter(idx)
        ws.cell(1, idx + 1, choice.range_name)
        for row, value in enumerate(choice.values, start=2):
            ws.cell(row, idx + 1, value)
        ref = f"'{spec.LISTS_SHEET}'!${letter}$2:${letter}${len(choice.values) + 1}"
        wb.defined_names[choice.range_name] = DefinedName(choice.range_name, attr_text=ref)
    ws.sheet_state = "hidden"


def _list_validation(choice: spec.Choice, help_text: str = "") -> DataValidation:
    dv = DataValidation(type="list", formula1=f"={choice.range_name}", allow_blank=True)
    dv.error = "请从下拉列表中选择：" + "、".join(choice.values)
    dv.errorTitle = "填写有误"
    dv.showErrorMessage = True
    if help_text:
        dv.prompt, dv.showInputMessage = help_text[:250], True
    return dv


def _write_info(ws: Worksheet, info: dict[str, Any], rules: Rules) -> None:
    _header(ws, ["项目", "内容"], [22, 40])
    ws.cell(1, 1).value, ws.cell(1, 2).value = "项目", "内容"
    for i, key in enumerate(spec.INFO_KEYS, start=2):
        label = ws.cell(i, 1, key.label + ("*" if key.required else ""))
        label.font, label.border = Font(bold=True), BORDER
        value = _put(ws, i, 2, info.get(key.key))
        value.border = BORDER
        if key.kind == "date":
            value.number_format = DATE_FORMAT
        if key.help:
            ws.cell(i, 3, key.help.format_map(rules.words())).font = Font(color="808080")
    ws.column_dimensions["C"].width = 50
    ws.freeze_panes = "A2"
    _print_setup(ws, len(spec.INFO_KEYS) + 1, 3)


def _validations_for(sheet: spec.TableSheet, rules: Rules, year: int, last_row: int) -> list[DataValidation]:
    out = []
    for idx, col in enumerate(sheet.columns):
        letter = column_letter(idx)
        rng = f"{letter}{sheet.first_row}:{letter}{last_row}"
        dv = None
        if col.choice is not None:
            dv = _list_validation(rules.choice(col.choice), col.help.format_map(rules.words()))
        elif col.kind == "score":
            inc = rules.incentive
            dv = DataValidation(type="decimal", operator="between", formula1="0", formula2=_n(inc.activity_max),
                                allow_blank=True)
            dv.error = f"得分为0至{_n(inc.activity_max)}分，以{_n(inc.step)}分为单位"
        elif col.kind == "date" and col.key == "date":
            dv = DataValidation(type="date", operator="between", formula1=f"DATE({year},1,1)",
                                formula2=f"DATE({year},12,31)", allow_blank=True)
            dv.error = f"请填写{year}年内的日期，如 {year}-03-05"
        elif col.kind == "int":
            dv = DataValidation(type="whole", operator="greaterThan", formula1="0", allow_blank=True)
            dv.error = "序号应为正整数"
        if dv is not None:
            dv.showErrorMessage = True
            dv.errorTitle = dv.errorTitle or "填写有误"
            dv.add(rng)
            out.append(dv)
    return out


def _write_table(wb: Workbook, sheet: spec.TableSheet, rows: list[list[Any]], rules: Rules, year: int) -> None:
    ws = wb.create_sheet(sheet.name)
    _header(ws, [c.header for c in sheet.columns], [c.width for c in sheet.columns])
    for r, values in enumerate(rows, start=sheet.first_row):
        for c, value in enumerate(values, start=1):
            _put(ws, r, c, value)
    last_row = sheet.first_row + max(sheet.template_rows, len(rows)) - 1
    for idx, col in enumerate(sheet.columns, start=1):
        if col.kind == "date":
            for r in range(sheet.first_row, last_row + 1):
                ws.cell(r, idx).number_format = DATE_FORMAT
    for dv in _validations_for(sheet, rules, year, last_row):
        ws.add_data_validation(dv)
    ws.freeze_panes = "A2"
    printed = sheet.first_row + max(len(rows) + 5, PRINTED_BLANK_ROWS) - 1
    _print_setup(ws, printed, len(sheet.columns))


def _write_grid(wb: Workbook, filling: Filling, year: int) -> None:
    ws = wb.create_sheet(spec.GRID_SHEET)
    headers = [c.header for c in spec.GRID_KEYS] + [e.header for e in spec.GRID_EVENTS]
    widths = [c.width for c in spec.GRID_KEYS] + [7 if len(e.header) <= 5 else 9 for e in spec.GRID_EVENTS]
    _header(ws, headers, widths)
    ws.row_dimensions[1].height = 45
    label = ws.cell(2, 1, spec.GRID_DATE_LABEL)
    label.font, label.fill = Font(bold=True), DATE_FILL
    ws.cell(2, 2).fill = DATE_FILL
    for idx, event in enumerate(spec.GRID_EVENTS, start=len(spec.GRID_KEYS) + 1):
        cell = _put(ws, 2, idx, filling.grid_dates.get(event.header))
        cell.number_format, cell.fill = "m/d", DATE_FILL
    for r, values in enumerate(filling.grid, start=spec.GRID_FIRST_ROW):
        for c, value in enumerate(values, start=1):
            _put(ws, r, c, value)
    last_row = spec.GRID_FIRST_ROW + max(GRID_MEMBER_ROWS, len(filling.grid)) - 1
    first_event = column_letter(len(spec.GRID_KEYS))
    last_event = column_letter(len(headers) - 1)
    dv = _list_validation(spec.MARK, "√参加 ×缺席 假请假 /不适用")
    dv.add(f"{first_event}{spec.GRID_FIRST_ROW}:{last_event}{last_row}")
    ws.add_data_validation(dv)
    dates = DataValidation(type="date", operator="between", formula1=f"DATE({year},1,1)",
                           formula2=f"DATE({year},12,31)", allow_blank=True)
    dates.error, dates.showErrorMessage = f"请填写{year}年内的日期", True
    dates.add(f"{first_event}2:{last_event}2")
    ws.add_data_validation(dates)
    ws.freeze_panes = f"{first_event}{spec.GRID_FIRST_ROW}"
    # a page across for each kind of event (dues, activity days, the meetings), 序号 and 姓名 on every one: all
    # 42 events on one page would leave no room to write a mark
    names = f"A:{column_letter(len(spec.GRID_KEYS) - 1)}"
    printed = spec.GRID_FIRST_ROW + max(len(filling.grid) + 5, PRINTED_BLANK_ROWS) - 1
    _print_setup(ws, printed, len(headers), title_cols=names)
    ws.sheet_properties.pageSetUpPr.fitToPage = False  # (manual page breaks count only without fit-to-page)
    ws.page_setup.scale = 90  # (the meetings page: 18 events, some wide)
    column = len(spec.GRID_KEYS)
    for item in ("dues", "activity_day"):
        column += sum(e.item == item for e in spec.GRID_EVENTS)
        ws.col_breaks.append(Break(id=column))


def write_workbook(wb: Workbook, path: Path, overwrite: bool = True) -> None:
    """Save whole or not at all: write beside the target, then rename. With `overwrite=False` an existing file is
    never replaced, even one that appears while this one is written: FileExistsError instead."""
    from ..files import atomic_create, atomic_save

    (atomic_save if overwrite else atomic_create)(path, wb.save)
