"""The blank workbook prints for a recorder who fills it by hand (landscape, the grid's names on every page)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from openpyxl import load_workbook

from pointsbatch.rules import load_rules
from pointsbatch.workbook import spec
from pointsbatch.workbook.template import build_template, write_workbook


@pytest.fixture
def blank(tmp_path: Path) -> Path:
    path = tmp_path / "blank.xlsx"
    write_workbook(build_template(load_rules(), 2026, "第一党支部"), path)
    return path


def test_every_sheet_prints_landscape_on_a4_with_its_header_on_each_page(blank):
    wb = load_workbook(blank)
    for ws in wb.worksheets:
        if ws.sheet_state == "hidden":
            continue
        assert ws.page_setup.orientation == "landscape", ws.title
        assert str(ws.page_setup.paperSize) == str(ws.PAPERSIZE_A4), ws.title
        assert ws.print_area, ws.title
    for name in (spec.INFO_SHEET, spec.ROSTER.name, spec.INCENTIVE.name, spec.GUIDE_SHEET):
        ws = wb[name]
        assert ws.sheet_properties.pageSetUpPr.fitToPage and ws.page_setup.fitToWidth == 1, name
        assert ws.page_setup.fitToHeight == 0, name
    grid = wb[spec.GRID_SHEET]
    assert grid.print_title_cols == "$A:$B" and grid.print_title_rows == "$1:$2"
    assert [b.id for b in grid.col_breaks.brk] == [14, 26]  # dues | activity days | meetings
    guide = wb[spec.GUIDE_SHEET]
    assert all(c.alignment.wrap_text for c in guide["A"] if c.value)


@pytest.mark.skipif(shutil.which("soffice") is None or shutil.which("pdftotext") is None,
                    reason="LibreOffice and poppler-utils are not installed")
def test_the_printed_grid_names_its_members_on_every_page(blank, tmp_path):
    subprocess.run(["soffice", "--headless", f"-env:UserInstallation=file://{tmp_path}/profile", "--convert-to",
                    "pdf", "--outdir", str(tmp_path), str(blank)], check=True, capture_output=True, timeout=180)
    text = subprocess.run(["pdftotext", "-layout", str(tmp_path / "blank.pdf"), "-"], check=True,
                          capture_output=True, text=True).stdout
    pages = text.split("\f")
    grid = [p for p in pages if "基础积分 第" in p]  # by the footer: sheet name and page number
    assert len(grid) == 3
    assert all("序号" in p and "姓名" in p and "活动日期" in p for p in grid)
    assert "党费1月" in grid[0] and "活动日1" in grid[1] and "承诺践诺" in grid[2]
    guide = pages[0]
    assert "填表说明" in guide and "逐条改正后重新提交" in guide  # the last line, wrapped on the first page
