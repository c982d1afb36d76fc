"""The marked copy sent back to a branch: its own workbook, each problem cell red with a comment explaining it,
and a first sheet 问题清单 listing every problem with a link to its cell."""

from __future__ import annotations

import datetime as dt
import io
from functools import partial
from pathlib import Path
from typing import Any

from openpyxl import load_workbook
from openpyxl.comments import Comment
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.workbook.workbook import Workbook

from ..problems import Problem
from . import spec
from .marked_xml import Listing, patched_copy, reaches_out
from .messages import problem
from .read import clean_key

PROBLEM_SHEET = "问题清单"
ERROR_FILL = PatternFill("solid", fgColor="FF9999")
WARNING_FILL = PatternFill("solid", fgColor="FFE699")
HEADERS = ("序号", "类别", "工作表", "单元格", "填写的内容", "问题说明")
SEVERITY_LABEL = {"error": "错误", "warning": "提醒"}
WIDTHS = (6, 6, 12, 9, 18, 70)


def marked_copy(source: Path, problems: list[Problem], data: bytes | None = None) -> Workbook:
    """The branch's workbook with its problems marked; the source file is only read (`data`: its bytes, when the
    caller has them: the copy then marks exactly what was checked). Links are removed (see `_marked`)."""
    return _marked(source, problems, data)[0]


def _marked(source: Path, problems: list[Problem], data: bytes | None) -> tuple[Workbook, list[Problem]]:
    """The marked copy, and the problems it adds: a warning when links were removed from it. The copy is mailed
    back, so nothing in it may point at a file on the town's machines or network (file://, \\\\server\\share)
    or anywhere else: hyperlinks, HYPERLINK formulas and links to other workbooks all go."""
    if data is not None:
        wb = load_workbook(io.BytesIO(data), rich_text=False)
    else:
        with Path(source).open("rb") as fh:
            wb = load_workbook(fh, rich_text=False)
    removed = _remove_links(wb)
    added = [problem("links_removed", "", "", count=removed)] if removed else []
    problems = [p for p in problems if p.code != "links_removed"] + added
    sheets = {clean_key(name): name for name in wb.sheetnames}
    if PROBLEM_SHEET in wb.sheetnames:
        del wb[PROBLEM_SHEET]
    listing = wb.create_sheet(PROBLEM_SHEET, 0)
    _write_listing(listing, problems, sheets)
    by_cell: dict[tuple[str, str], list[Problem]] = {}
    for p in problems:
        real = sheets.get(p.sheet)
        if real and p.cell:
            by_cell.setdefault((real, p.cell), []).append(p)
    for (sheet, cell), found in by_cell.items():
        target = wb[sheet][cell]
        error = any(p.is_error for p in found)
        target.fill = ERROR_FILL if error else WARNING_FILL
        comment = Comment(_comment_text(found), "积分系统")
        comment.width, comment.height = 300, 40 + 40 * len(found)
        target.comment = comment
    wb.active = 0
    for ws in wb.worksheets:
        ws.sheet_view.tabSelected = ws.title == PROBLEM_SHEET
    return wb, added


def _remove_links(wb: Workbook) -> int:
    """Remove every hyperlink, link to another workbook, and formula that reaches beyond the workbook (HYPERLINK,
    WEBSERVICE, a UNC path, DDE: a cell's kept as its text; a defined name, conditional format or drop-down holding
    one removed); how many.

    Cells are visited through openpyxl's cell store `Worksheet._cells` (private: openpyxl < 3.2 in pyproject, and
    `iter_rows` without it): `iter_rows` visits every empty cell of the used range too."""
    removed = 0
    for ws in wb.worksheets:
        cells = getattr(ws, "_cells", None)
        for cell in list(cells.values()) if isinstance(cells, dict) else [c for r in ws.iter_rows() for c in r]:
            if cell.hyperlink is not None:
                cell.hyperlink = None
                removed += 1
            value = cell.value
            if cell.data_type == "f" and isinstance(value, str) and reaches_out(value):
                cell.value = value
                cell.data_type = "s"  # the formula's text, inert
                removed += 1
        removed += _remove_reaching_rules(ws)
        sheet_names = getattr(ws, "defined_names", {})
        for name in [n for n, d in sheet_names.items() if reaches_out(str(d.attr_text or ""))]:
            del sheet_names[name]
            removed += 1
    removed += len(wb._external_links)
    wb._external_links = []
    for name in [n for n, d in wb.defined_names.items() if reaches_out(str(d.attr_text or ""))]:
        del wb.defined_names[name]
        removed += 1
    return removed


def _remove_reaching_rules(ws: Any) -> int:
    """Conditional formats and drop-downs whose formulas reach beyond the workbook (a name or a cell's formula
    is not the only place a WEBSERVICE can hide); how many went."""
    removed = 0
    rules = getattr(ws.conditional_formatting, "_cf_rules", None)  # (openpyxl < 3.2, as `_cells` above)
    if not isinstance(rules, dict):
        rules = {}
    for cf, cf_rules in list(rules.items()):
        kept = [r for r in cf_rules if not any(reaches_out(str(f)) for f in (r.formula or []))]
        removed += len(cf_rules) - len(kept)
        if kept:
            cf_rules[:] = kept
        else:
            del rules[cf]
    validations = ws.data_validations.dataValidation
    kept_dv = [dv for dv in validations if not any(reaches_out(str(f or "")) for f in (dv.formula1, dv.formula2))]
    removed += len(validations) - len(kept_dv)
    validations[:] = kept_dv
    return removed


def _comment_text(found: list[Problem]) -> str:
    return "\n".join(f"【{SEVERITY_LABEL[p.severity]}】{_printable(p.message)}" for p in found)


def _title(problems: list[Problem]) -> str:
    errors = sum(p.is_error for p in problems)
    return (f"本工作簿有{errors}处错误、{len(problems) - errors}处提醒。请逐条改正标红的单元格后重新提交；"
            "点击“单元格”一列可跳到问题所在位置。")


def _write_listing(ws, problems: list[Problem], sheets: dict[str, str]) -> None:
    ws.cell(1, 1, _title(problems)).font = Font(bold=True, color="C00000")
    for col, text in enumerate(HEADERS, start=1):
        cell = ws.cell(2, col, text)
        cell.font = Font(bold=True)
    for i, p in enumerate(problems, start=1):
        row = i + 2
        real = sheets.get(p.sheet)
        values = (i, SEVERITY_LABEL[p.severity], p.sheet or "（整个文件）", p.cell, _printable(p.value),
                  _printable(p.message))
        for col, value in enumerate(values, start=1):
            cell = ws.cell(row, col, value)
            cell.alignment = Alignment(wrap_text=col == 6, vertical="top")
            if col == 5:
                cell.data_type = "s"
        if real and p.cell:
            link = ws.cell(row, 4)
            link.hyperlink = f"#'{real}'!{p.cell}"
            link.font = Font(color="0563C1", underline="single")
        if p.is_error:
            ws.cell(row, 2).font = Font(color="C00000", bold=True)
    for letter, width in zip("ABCDEF", WIDTHS, strict=True):
        ws.column_dimensions[letter].width = width
    ws.merge_cells("A1:F1")
    ws["A1"].alignment = Alignment(wrap_text=True, vertical="center")
    ws.row_dimensions[1].height = 36
    ws.freeze_panes = "A3"
    ws.print_title_rows = "2:2"
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.fitToWidth, ws.page_setup.fitToHeight = 1, 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True


def _printable(text: str) -> str:
    """Cell text without the control characters a workbook cannot hold, and not too long to read."""
    cleaned = "".join(ch if ch.isprintable() or ch == "\n" else "?" for ch in str(text))
    return cleaned if len(cleaned) <= 300 else cleaned[:300] + "…"


def write_marked_copy(source: Path, problems: list[Problem], target: Path, data: bytes | None = None,
                      created: dt.datetime | None = None) -> list[Problem]:
    """The marked copy, written whole; dated by `created` (the run's clock) inside and in its zip, so the same
    workbook and problems give the same bytes. Returns the problems the copy added (links removed), for the
    problem list.

    The copy is patched into the workbook's own XML (marked_xml) when the workbook holds nothing that patch does
    not take (links, drawings, ...; none of them removed there); otherwise openpyxl loads and saves it."""
    from .. import clock
    from ..files import atomic_write_bytes

    when = (created or clock.now()).astimezone(dt.UTC).replace(tzinfo=None)
    if data is None:
        data = Path(source).read_bytes()
    patched = patched_copy(data, partial(_listing, problems), when)
    if patched is not None:
        atomic_write_bytes(target, patched)
        return []
    return _write_through_openpyxl(source, problems, target, data, when)


def _listing(problems: list[Problem], sheetnames: list[str]) -> Listing:
    """What the patched copy says: the same problem sheet and comments `_marked` gives through openpyxl, for a
    workbook from which no link was removed."""
    problems = [p for p in problems if p.code != "links_removed"]
    sheets = {clean_key(name): name for name in sheetnames}
    rows = []
    by_cell: dict[tuple[str, str], list[Problem]] = {}
    for i, p in enumerate(problems, start=1):
        real = sheets.get(p.sheet)
        link = f"#'{real}'!{p.cell}" if real and p.cell else None
        rows.append((i, SEVERITY_LABEL[p.severity], p.sheet or "（整个文件）", p.cell, _printable(p.value),
                     _printable(p.message), link, p.is_error))
        if real and p.cell:
            by_cell.setdefault((real, p.cell), []).append(p)
    comments = {key: (any(p.is_error for p in found), _comment_text(found), len(found))
                for key, found in by_cell.items()}
    return Listing(PROBLEM_SHEET, _title(problems), HEADERS, WIDTHS, rows, comments)


def _write_through_openpyxl(source: Path, problems: list[Problem], target: Path, data: bytes,
                            when: dt.datetime) -> list[Problem]:
    from openpyxl.xml.functions import tostring

    from ..files import atomic_write_bytes, fixed_zip_dates

    wb, added = _marked(source, problems, data)
    buf = io.BytesIO()
    wb.save(buf)  # (openpyxl sets the modified time to now while saving: the properties are written again below)
    wb.properties.created = wb.properties.modified = when
    core = tostring(wb.properties.to_tree())
    atomic_write_bytes(target, fixed_zip_dates(buf.getvalue(), {"docProps/core.xml": core}))
    return added


def problem_table_rows(problems: list[Problem]) -> list[tuple[str, str, str, str]]:
    """Rows for a plain listing of problems (terminal, mail, HTML)."""
    return [(SEVERITY_LABEL[p.severity], p.sheet or "（整个文件）", p.cell, p.message) for p in problems]


__all__ = ["marked_copy", "write_marked_copy", "problem_table_rows", "PROBLEM_SHEET", "spec"]
