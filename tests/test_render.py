"""The .xlsx template renderer: what a town styles in Excel comes out in every output, with the data filled in."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import build, member
from openpyxl import Workbook, load_workbook
from openpyxl.comments import Comment
from openpyxl.formatting.rule import CellIsRule, ColorScaleRule, FormulaRule
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side

from pointsbatch.cli import main
from pointsbatch.render.xlsx_template import TemplateError, render_xlsx

THIN = Side(style="thin", color="999999")
BOX = Border(left=THIN, right=THIN, top=THIN, bottom=THIN)


def make_template(path: Path) -> Path:
    wb = Workbook()
    ws = wb.active
    ws.title = "{{ title }}"
    ws.merge_cells("A1:D1")
    ws["A1"] = "{{ title }}名单"
    ws["A1"].font = Font(bold=True, size=14, name="黑体")
    ws["A1"].alignment = Alignment(horizontal="center")
    ws.row_dimensions[1].height = 26
    for col, text in enumerate(["序号", "姓名", "分数", "日期"], start=1):
        c = ws.cell(3, col, text)
        c.fill, c.font, c.border = PatternFill("solid", fgColor="C00000"), Font(bold=True, color="FFFFFF"), BOX
        c.alignment = Alignment(wrap_text=True, vertical="center")
    ws.column_dimensions["B"].width = 18
    for col, expr in enumerate(["{%row for p in people %}{{ p.seq }}", "{{ p.name }}", "{{ p.score }}",
                                "{{ p.day }}"], start=1):
        c = ws.cell(4, col, expr)
        c.border = BOX
    ws["C4"].number_format = "0.0"
    ws.row_dimensions[4].height = 20
    ws.merge_cells("A5:C5")
    ws["A5"] = "共{{ people | length }}人，填表人：{{ clerk }}"
    ws["D5"] = "{{ total }}"
    ws.freeze_panes = "A4"
    ws.print_title_rows = "3:3"
    ws.page_setup.orientation = "landscape"
    ws.page_setup.fitToWidth, ws.page_setup.fitToHeight = 1, 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    wb.save(path)
    return path


PEOPLE = [
    {"seq": 1, "name": "张三", "score": 82.5, "day": dt.date(2026, 3, 1)},
    {"seq": np.int64(2), "name": "=HYPERLINK(\"http://x\")", "score": float("nan"), "day": None},
    {"seq": 3, "name": "李\x07四", "score": np.float64(90.0), "day": dt.datetime(2026, 5, 2, 9, 30)},
]


@pytest.mark.parametrize("large", [False, True])
def test_values_keep_their_types_and_rows_below_the_repeat_move_down(tmp_path, large):
    out = tmp_path / "out.xlsx"
    render_xlsx(make_template(tmp_path / "t.xlsx"), {"title": "第一支部", "people": PEOPLE, "clerk": "王五",
                                                     "total": 172.5}, out, large=large)
    ws = load_workbook(out)["第一支部"]
    assert ws["A1"].value == "第一支部名单"
    rows = [[c.value for c in row] for row in ws.iter_rows(min_row=4, max_row=6)]
    assert rows[0] == [1, "张三", 82.5, dt.datetime(2026, 3, 1)]
    assert rows[1][:3] == [2, "=HYPERLINK(\"http://x\")", None]  # formula-like text stays text; NaN is empty
    assert ws["B5"].data_type == "s"
    assert rows[2][1] == "李四" and rows[2][2] == 90 and rows[2][3] == dt.datetime(2026, 5, 2, 9, 30)
    assert ws["D4"].is_date and ws["D4"].number_format == "yyyy-mm-dd"
    assert ws["A7"].value == "共3人，填表人：王五" and ws["D7"].value == 172.5
    assert {str(r) for r in ws.merged_cells.ranges} == {"A1:D1", "A7:C7"}
    assert ws.max_row == 7


def test_the_templates_styles_and_page_setup_carry_over(tmp_path):
    out = tmp_path / "out.xlsx"
    render_xlsx(make_template(tmp_path / "t.xlsx"), {"title": "第一支部", "people": PEOPLE, "clerk": "",
                                                     "total": 0}, out)
    ws = load_workbook(out)["第一支部"]
    head = ws["B3"]
    assert head.fill.fgColor.rgb.endswith("C00000") and head.font.b and head.font.color.rgb.endswith("FFFFFF")
    assert head.alignment.wrap_text and head.border.left.style == "thin"
    assert ws["A1"].font.name == "黑体" and ws["A1"].font.sz == 14 and ws["A1"].alignment.horizontal == "center"
    for row in (4, 5, 6):  # every repeated row has the repeat row's borders, formats and height
        assert ws.cell(row, 2).border.bottom.style == "thin"
        assert ws.cell(row, 3).number_format == "0.0"
        assert abs(ws.row_dimensions[row].height - 20) < 0.5  # heights snap to whole pixels
    assert abs(ws.row_dimensions[1].height - 26) < 0.5
    assert abs(ws.column_dimensions["B"].width - 18) < 0.2
    assert ws.freeze_panes == "A4"
    assert ws.print_title_rows.replace("$", "") == "3:3"
    assert ws.page_setup.orientation == "landscape" and ws.sheet_properties.pageSetUpPr.fitToPage
    assert ws.page_setup.fitToWidth in (None, 1) and ws.page_setup.fitToHeight == 0  # 1 is the default, left out


@pytest.mark.parametrize("large", [False, True])
def test_an_empty_list_leaves_one_blank_styled_row(tmp_path, large):
    out = tmp_path / "out.xlsx"
    render_xlsx(make_template(tmp_path / "t.xlsx"), {"title": "空", "people": [], "clerk": "王五", "total": 0}, out,
                large=large)
    ws = load_workbook(out)["空"]
    assert [c.value for c in ws[4]] == [None] * 4 and ws["B4"].border.left.style == "thin"
    assert ws["A5"].value == "共0人，填表人：王五" and "A5:C5" in {str(r) for r in ws.merged_cells.ranges}


def test_a_template_with_what_cannot_be_carried_over_is_refused(tmp_path):
    path = make_template(tmp_path / "t.xlsx")
    wb = load_workbook(path)
    wb.active["A2"].comment = Comment("说明", "镇里")
    wb.save(path)
    with pytest.raises(TemplateError, match="批注"):
        render_xlsx(path, {"title": "x", "people": [], "clerk": "", "total": 0}, tmp_path / "out.xlsx")
    assert not (tmp_path / "out.xlsx").exists()


def test_conditional_formats_on_the_repeat_row_grow_with_the_rows(tmp_path):
    path = make_template(tmp_path / "t.xlsx")
    wb = load_workbook(path)
    ws = wb.active
    ws.conditional_formatting.add("C4", CellIsRule(operator="lessThan", formula=["60"],
                                                   fill=PatternFill("solid", start_color="FFC7CE", end_color="FFC7CE"),
                                                   font=Font(bold=True, color="9C0006")))
    ws.conditional_formatting.add("A3:D3", FormulaRule(formula=['$A$3="序号"'], font=Font(italic=True)))
    ws.conditional_formatting.add("B4:B4 D4", FormulaRule(formula=['LEN(B4)>2'], border=BOX))
    wb.save(path)
    people = [{"seq": i, "name": f"党员{i}", "score": 50 + 10 * i, "day": None} for i in range(1, 4)]
    out = tmp_path / "out.xlsx"
    render_xlsx(path, {"title": "三人", "people": people, "clerk": "王五", "total": 3}, out)
    ws = load_workbook(out)["三人"]
    found = {str(cf.sqref): cf.rules[0] for cf in ws.conditional_formatting}
    assert set(found) == {"C4:C6", "A3:D3", "B4:B6 D4:D6"}
    less = found["C4:C6"]
    assert (less.type, less.operator, less.formula) == ("cellIs", "lessThan", ["60"])
    assert less.dxf.fill.bgColor.rgb.endswith("FFC7CE") and less.dxf.font.b and less.dxf.font.color.rgb.endswith("9C0006")
    assert found["A3:D3"].formula == ['$A$3="序号"'] and found["A3:D3"].dxf.font.i
    assert found["B4:B6 D4:D6"].dxf.border.left.style == "thin"
    assert [ws.cell(r, 3).value for r in (4, 5, 6)] == [60, 70, 80] and ws["A7"].value == "共3人，填表人：王五"


@pytest.mark.parametrize(("where", "rule", "why"), [
    ("A5", FormulaRule(formula=["A5>0"], font=Font(bold=True)), "在重复行（第4行）下方"),
    ("C4", FormulaRule(formula=["C4>$D$5"], font=Font(bold=True)), "引用了重复行（第4行）下方"),
    ("C4", FormulaRule(formula=["C4>Sheet2!A1"], font=Font(bold=True)), "其他工作表"),
    ("C4", ColorScaleRule(start_type="min", start_color="FFFFFF", end_type="max", end_color="C00000"), "colorScale"),
])
def test_a_conditional_format_that_would_look_at_the_wrong_cells_is_refused(tmp_path, where, rule, why):
    path = make_template(tmp_path / "t.xlsx")
    wb = load_workbook(path)
    wb.active.conditional_formatting.add(where, rule)
    wb.save(path)
    with pytest.raises(TemplateError, match=rf"「\{{\{{ title \}}\}}」{where}的条件格式.*{why}"):
        render_xlsx(path, {"title": "x", "people": [], "clerk": "", "total": 0}, tmp_path / "out.xlsx")
    assert not (tmp_path / "out.xlsx").exists()


def test_a_template_expression_with_a_typo_is_named_at_its_cell(tmp_path):
    path = make_template(tmp_path / "t.xlsx")
    wb = load_workbook(path)
    wb.active["B4"] = "{{ p.name | }}"
    wb.save(path)
    with pytest.raises(TemplateError, match=r"「\{\{ title \}\}」B4中的表达式写错了"):
        render_xlsx(path, {"title": "x", "people": [], "clerk": "", "total": 0}, tmp_path / "out.xlsx")


@pytest.mark.parametrize("jobs", ["1", "2"])  # checked here, or by a worker that has read it anyway
def test_a_bad_results_template_stops_the_run_before_any_work(tmp_path, jobs):
    from importlib import resources

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    build(inbox / "第一党支部.xlsx", roster=[member(1, "张三")])
    build(inbox / "第二党支部.xlsx", roster=[member(1, "李四")], info_over={"branch": "第二党支部"})
    mine = tmp_path / "模板"
    mine.mkdir()
    wb = load_workbook(resources.files("pointsbatch").joinpath("templates", "支部积分结果.xlsx"))
    wb["积分结果"]["A3"].comment = Comment("说明", "镇干事")
    wb.save(mine / "支部积分结果.xlsx")
    result = CliRunner().invoke(main, ["run", str(inbox), "-o", str(tmp_path / "out"), "--jobs", jobs,
                                       "--templates", str(mine)])
    assert result.exit_code == 2
    assert "支部积分结果.xlsx" in result.output and "批注" in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice (libreoffice-calc-nogui) is not installed")
def test_a_results_template_resaved_by_libreoffice_still_renders(tmp_path):
    """A town restyles the template in an office program and saves it: that file must still drive the output."""
    from importlib import resources

    src = tmp_path / "src"
    src.mkdir()
    bundled = resources.files("pointsbatch").joinpath("templates", "支部积分结果.xlsx")
    (src / "支部积分结果.xlsx").write_bytes(bundled.read_bytes())
    mine = tmp_path / "模板"
    subprocess.run(["soffice", "--headless", f"-env:UserInstallation=file://{tmp_path}/profile", "--convert-to",
                    "xlsx:Calc MS Excel 2007 XML", "--outdir", str(mine), str(src / "支部积分结果.xlsx")],
                   check=True, timeout=180, capture_output=True)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    build(inbox / "第一党支部.xlsx", roster=[member(1, "张三"), member(2, "李四")])
    result = CliRunner().invoke(main, ["run", str(inbox), "-o", str(tmp_path / "out"), "--jobs", "1",
                                       "--templates", str(mine)])
    assert result.exit_code == 0, result.output
    wb = load_workbook(next((tmp_path / "out" / "支部" / "第一党支部").glob("*.xlsx")))
    ws = wb["积分结果"]
    assert ws["A1"].value == "第一党支部2026年度党员积分结果"
    assert [ws.cell(r, 2).value for r in (4, 5)] == ["张三", "李四"] and ws["H4"].value == 60  # all √: base 60
    assert ws["A3"].fill.fgColor.rgb.endswith("C00000") and ws["B5"].border.left.style == "thin"
    assert "A1:L1" in {str(r) for r in ws.merged_cells.ranges}
    assert wb["积分明细"].max_row > 4


TRICKY = [
    {"seq": 1, "name": "<b>A & B</b>", "score": True, "day": dt.date(1999, 12, 31)},
    {"seq": 2, "name": "  两头有空格 ", "score": 123456789.125, "day": dt.datetime(2026, 2, 28, 23, 59, 59)},
    {"seq": 3, "name": "\u3000全角空格开头", "score": -0.5, "day": ""},
]


@pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice (libreoffice-calc-nogui) is not installed")
def test_repeated_rows_read_back_the_same_in_three_readers(tmp_path):
    """The repeated rows are written straight into the sheet's XML: openpyxl, python-calamine and LibreOffice
    (which re-saves the file as an office program would) must all see exactly the values and styles given."""
    from python_calamine import CalamineWorkbook

    out = tmp_path / "out.xlsx"
    render_xlsx(make_template(tmp_path / "t.xlsx"), {"title": "甲", "people": TRICKY, "clerk": "王五", "total": 1},
                out)
    subprocess.run(["soffice", "--headless", f"-env:UserInstallation=file://{tmp_path}/profile", "--convert-to",
                    "xlsx:Calc MS Excel 2007 XML", "--outdir", str(tmp_path / "lo"), str(out)],
                   check=True, timeout=180, capture_output=True)
    expected = [[1, "<b>A & B</b>", True, dt.datetime(1999, 12, 31)],
                [2, "  两头有空格 ", 123456789.125, dt.datetime(2026, 2, 28, 23, 59, 59)],
                [3, "\u3000全角空格开头", -0.5, None]]
    resaved = [row[:] for row in expected]
    resaved[0][2] = "=TRUE()"  # how LibreOffice saves any boolean
    for path, values in ((out, expected), (tmp_path / "lo" / "out.xlsx", resaved)):
        ws = load_workbook(path)["甲"]
        assert [[c.value for c in row] for row in ws.iter_rows(min_row=4, max_row=6)] == values, path
        assert ws["C5"].number_format == "0.0" and ws["B6"].border.bottom.style == "thin", path
        assert ws["D4"].is_date and ws["A7"].value == "共3人，填表人：王五", path
    rows = CalamineWorkbook.from_path(str(out)).get_sheet_by_name("甲").to_python()[3:6]
    assert [r[1] for r in rows] == [e[1] for e in expected] and [r[2] for r in rows] == [True, 123456789.125, -0.5]


def test_records_give_templates_plain_python_values():
    import pandas as pd

    from pointsbatch.render.branch import records

    frame = pd.DataFrame({"seq": [1, 2], "points": [1.5, float("nan")], "name": pd.Series(["张三", None], dtype="str"),
                          "row": pd.Series([np.int64(3), pd.NA], dtype=object), "ok": [True, False]})
    table = records(frame)
    assert len(table) == 2 and table[1]["name"] is None and table[-1] == table[1] and table[0:1] == [table[0]]
    assert table.columns["points"] == [1.5, None]
    rows = list(table)
    assert rows == [{"seq": 1, "points": 1.5, "name": "张三", "row": 3, "ok": True},
                    {"seq": 2, "points": None, "name": None, "row": None, "ok": False}]
    assert all(type(v) in (int, float, str, bool, type(None)) for r in rows for v in r.values())


def test_a_repeat_row_with_expressions_constants_and_gaps(tmp_path):
    """Repeated cells may compute (any Jinja expression), hold a constant, or be left empty between others."""
    wb = Workbook()
    ws = wb.active
    ws.title = "表"
    ws["A1"] = "{%row for p in people %}{{ p.name }}"
    ws["B1"] = "{{ p.score * 2 }}"
    ws["C1"] = "分"
    ws["E1"] = "{{ p.name }}（{{ p.score }}分）"  # text around expressions: a string
    ws["E1"].border = BOX
    ws["F1"] = "{{ p.day }}"
    ws["A2"] = "合计"
    wb.save(tmp_path / "t.xlsx")
    people = [{"name": "张三", "score": 41.5, "day": dt.date(2026, 7, 1)}, {"name": "李四", "score": 0, "day": None}]
    render_xlsx(tmp_path / "t.xlsx", {"people": people}, tmp_path / "out.xlsx")
    out = load_workbook(tmp_path / "out.xlsx")["表"]
    assert [[c.value for c in row] for row in out.iter_rows(min_row=1, max_row=3, max_col=6)] == [
        ["张三", 83, "分", None, "张三（41.5分）", dt.datetime(2026, 7, 1)],
        ["李四", 0, "分", None, "李四（0分）", None],
        ["合计", None, None, None, None, None]]
    assert out["E2"].border.left.style == "thin" and out["F1"].is_date


def test_a_sheet_title_made_from_a_branch_name_is_one_excel_accepts():
    """A town's template may title a sheet {{ branch.name }}: Excel refuses [ ] : * ? / \\ and a title that begins or
    ends with an apostrophe (a branch named '第一支部' stopped that branch's outputs)."""
    from pointsbatch.render.xlsx_template import _clean_title

    assert [_clean_title(t) for t in ("'第一支部'", "a[1]:*?/\\b", "'''", "甲" * 40)] == ["第一支部", "a1b", "Sheet",
                                                                                       "甲" * 31]
