"""督促检查: the town's view of how each branch runs the scheme (OUTPUTS.md, "The town's view of its branches")."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess
from importlib import resources
from pathlib import Path

import helpers
import pytest
from helpers import YEAR, act, build, marks, member, neg, run, veto_row
from openpyxl import load_workbook
from python_calamine import CalamineWorkbook

from pointsbatch.rules import RulesError, load_rules

COLUMNS = ["支部名称", "党员数", "党员活动日", "党课", "党员大会", "组织生活会", "民主评议", "承诺践诺", "出勤率",
           "有激励记录的党员", "扣分次数", "一票否决", "免于积分管理", "提示"]
SHEET = "支部工作情况"
HEADER_ROW = 3  # title, subtitle, then the header




def registry(path: Path, names: list[str]) -> Path:
    return helpers.registry(path, [(name, f"b{i}@example.org") for i, name in enumerate(names, start=1)])


def with_dates(path: Path, dates: dict[str, dt.date]) -> Path:
    """Give events their dates in row 2 of 基础积分, as a recorder would."""
    wb = load_workbook(path)
    ws = wb["基础积分"]
    header = [c.value for c in ws[1]]
    for event, when in dates.items():
        ws.cell(2, header.index(event) + 1, when)
    wb.save(path)
    return path


def sheet_rows(out: Path) -> dict[str, dict[str, object]]:
    """The sheet 支部工作情况 read back with openpyxl, by branch; checked against python-calamine's reading."""
    ws = load_workbook(out / "全镇汇总.xlsx")[SHEET]
    rows = [[c.value for c in row] for row in ws.iter_rows(min_row=HEADER_ROW)]
    assert rows[0] == COLUMNS
    calamine = CalamineWorkbook.from_path(str(out / "全镇汇总.xlsx")).get_sheet_by_name(SHEET).to_python()
    assert [[None if v == "" else v for v in r] for r in calamine[HEADER_ROW - 1:]] == rows
    return {r[0]: dict(zip(COLUMNS, r, strict=True)) for r in rows[1:]}


@pytest.fixture
def town(tmp_path: Path) -> Path:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    two = marks(**{"党课二季度": "×", "党课四季度": "×"})
    build(inbox / "二课.xlsx", info_over={"branch": "二课党支部"}, grid={1: two, 2: two},
          incentive=[act("张三", "志愿服务", 2)])
    build(inbox / "全勤.xlsx", info_over={"branch": "全勤党支部"}, incentive=[act("李四", "志愿服务", 2)])
    absent = marks(**{"党课三季度": "×"})
    with_dates(build(inbox / "日期.xlsx", info_over={"branch": "日期党支部"}, grid={1: absent, 2: absent},
                     incentive=[act("张三", "志愿服务", 2)]), {"党课三季度": dt.date(YEAR, 8, 20)})
    build(inbox / "细数.xlsx", info_over={"branch": "细数党支部"},
          roster=[member(1, "张三"), member(2, "李四"),
                  member(3, "王老", exempt="是", reason="年满75周岁", birth=dt.date(1940, 1, 1))],
          grid={2: marks(**{"活动日3月": "×", "党课一季度": "假"})},
          incentive=[act("张三", "志愿服务", 2), act("张三", "结对帮扶", 1, when=dt.date(YEAR, 9, 1))],
          negative=[neg("李四")], veto=[veto_row("张三", "其他恶劣影响")])
    build(inbox / "退回.xlsx", info_over={"branch": "退回党支部"}, incentive=[act("张三", "志愿服务", 5)])
    return inbox


def test_each_branch_reads_held_over_required_and_what_its_grid_says(town, tmp_path):
    out = tmp_path / "out"
    names = ["二课党支部", "全勤党支部", "日期党支部", "细数党支部", "退回党支部", "未报送党支部"]
    assert run(town, out, "--registry", str(registry(tmp_path / "r.xlsx", names))).exit_code == 1
    rows = sheet_rows(out)
    assert list(rows) == ["二课党支部", "全勤党支部", "日期党支部", "细数党支部", "退回党支部", "未报送党支部"]
    events = ["党员活动日", "党课", "党员大会", "组织生活会", "民主评议", "承诺践诺"]
    assert [rows["二课党支部"][c] for c in events] == ["12/12", "2/4", "4/4", "2/2", "1/1", "1/1"]
    assert [rows["全勤党支部"][c] for c in events] == ["12/12", "4/4", "4/4", "2/2", "1/1", "1/1"]
    assert rows["日期党支部"]["党课"] == "4/4"  # everyone absent, but row 2 gives the date: it was held
    assert rows["二课党支部"]["提示"] == "党课只开展2次，应4次"
    assert rows["二课党支部"]["出勤率"] == pytest.approx(44 / 48)  # 2 members x 24 events, 4 absences
    assert rows["全勤党支部"]["出勤率"] == 1 and rows["全勤党支部"]["提示"] == "每名党员每次活动都参加，请核实记录"
    # the numbers are the grid's and the logs': exempt 王老 is left out of the rates, the September activity counts
    detail = rows["细数党支部"]
    assert [detail[c] for c in ["党员数", *events]] == [3, "12/12", "4/4", "4/4", "2/2", "1/1", "1/1"]
    assert detail["出勤率"] == pytest.approx(46 / 48)  # 李四: one ×, one 假
    assert (detail["有激励记录的党员"], detail["扣分次数"], detail["一票否决"], detail["免于积分管理"]) == (
        "1（50%）", 1, 1, 1)
    assert detail["提示"] == "免于积分管理1人，占33%，超过20%"
    # a branch sent back, and one that sent nothing, are there and marked so
    assert rows["退回党支部"]["提示"] == "工作簿有1处错误，已退回修改（文件 退回.xlsx），未计入"
    assert rows["未报送党支部"]["提示"] == "未报送工作簿"
    assert all(rows[n][c] is None for n in ("退回党支部", "未报送党支部") for c in COLUMNS[1:-1])


def test_the_sheet_is_frozen_printable_and_highlights_shortfalls(town, tmp_path):
    out = tmp_path / "out"
    run(town, out)
    ws = load_workbook(out / "全镇汇总.xlsx")[SHEET]
    assert ws.freeze_panes == "B4" and ws.print_title_rows.replace("$", "") == "3:3"
    assert ws.page_setup.orientation == "landscape" and int(ws.page_setup.paperSize) == 9  # A4
    assert ws.sheet_properties.pageSetUpPr.fitToPage and ws.page_setup.fitToHeight == 0
    last = ws.max_row
    assert last == HEADER_ROW + 5  # five workbooks, no registry
    found = {str(cf.sqref): cf.rules[0] for cf in ws.conditional_formatting}
    assert set(found) == {f"C4:H{last}", f"N4:N{last}"}
    assert found[f"C4:H{last}"].dxf.fill.bgColor.rgb.endswith("FFC7CE")
    assert ws["I4"].number_format == "0.0%"


def _short(text: str) -> bool:
    """What the sheet's conditional format computes for an event cell: held fewer times than required."""
    held, required = map(int, text.split("/"))
    return held < required


@pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice (libreoffice-calc-nogui) is not installed")
def test_the_highlight_formula_marks_exactly_the_shortfalls(town, tmp_path):
    """The rule's formula, evaluated by LibreOffice on the real sheet: a cell 2/4 is highlighted, 4/4 is not."""
    out = tmp_path / "out"
    run(town, out)
    ws = load_workbook(out / "全镇汇总.xlsx")[SHEET]
    formula = next(iter(ws.conditional_formatting)).rules[0].formula[0]
    # the same formula in helper cells, for LibreOffice to compute and save as values
    wb = load_workbook(out / "全镇汇总.xlsx")
    sheet = wb[SHEET]
    for row in range(4, sheet.max_row + 1):
        for col in range(3, 9):
            cell = sheet.cell(row, col)
            relative = re.sub(r"\bC4\b", cell.coordinate, formula)
            sheet.cell(row, col + 20, f"={relative}")
    wb.save(tmp_path / "check.xlsx")
    subprocess.run(["soffice", "--headless", f"-env:UserInstallation=file://{tmp_path}/profile", "--convert-to",
                    "xlsx:Calc MS Excel 2007 XML", "--outdir", str(tmp_path / "lo"), str(tmp_path / "check.xlsx")],
                   check=True, capture_output=True, timeout=180)
    computed = load_workbook(tmp_path / "lo" / "check.xlsx", data_only=True)[SHEET]
    for row in range(4, sheet.max_row + 1):
        for col in range(3, 9):
            text = sheet.cell(row, col).value
            assert bool(computed.cell(row, col + 20).value) == (bool(text) and _short(text)), (row, col, text)


def test_a_half_year_run_asks_for_the_half_s_share(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    absent = marks(**{"党课二季度": "×"})
    build(inbox / "一.xlsx", info_over={"branch": "一支部"}, grid={1: absent, 2: absent},
          incentive=[act("张三", "志愿服务", 2, when=dt.date(YEAR, 9, 1))])
    build(inbox / "二.xlsx", info_over={"branch": "二支部"}, incentive=[act("张三", "志愿服务", 2)])
    out = tmp_path / "out"
    assert run(inbox, out, "--period", "h1").exit_code == 0
    rows = sheet_rows(out)
    events = ["党员活动日", "党课", "党员大会", "组织生活会", "民主评议", "承诺践诺"]
    assert [rows["二支部"][c] for c in events] == ["6/6", "2/2", "2/2", "1/1", "0/0", "0/0"]
    assert [rows["一支部"][c] for c in events] == ["6/6", "1/2", "2/2", "1/1", "0/0", "0/0"]
    # January-June only: 11 events a member; the September activity is not the half's
    assert rows["二支部"]["出勤率"] == 1 and rows["二支部"]["提示"] == "每名党员每次活动都参加，请核实记录"
    assert rows["一支部"]["有激励记录的党员"] == "0（0%）"
    assert rows["一支部"]["提示"] == "党课只开展1次，应2次；本期没有登记任何激励活动"
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "（上半年）" in index and '<td class="short" data-sort="0.5">1/2</td>' in index


def test_index_has_the_table_sortable_inline_and_an_attendance_chart(town, tmp_path):
    out = tmp_path / "out"
    run(town, out)
    index = (out / "index.html").read_text(encoding="utf-8")
    section = index[index.index('<h2 id="supervision">'):index.index("<h2>积分不合格党员")]
    for header in COLUMNS:
        assert f"<th>{header}</th>" in section
    assert '<table class="sortable compact">' in section and "<script>" in index
    assert not re.search(r"<script[^>]+src|<link|https?://(?!www\.w3\.org/2000/svg)", index)  # nothing external
    assert '<td class="short" data-sort="0.5">2/4</td>' in section
    assert '<td data-sort="1.0">4/4</td>' in section and '<td data-sort="1.0">100.0%</td>' in section
    chart = section[section.index("各支部出勤率"):]
    assert chart.count("<rect") == 4 and "全勤党支部" in chart and ">100<" in chart
    assert "退回党支部" in section and "工作簿有1处错误" in section


def test_the_hints_thresholds_are_settings_of_the_rules_file(town, tmp_path):
    bundled = resources.files("pointsbatch").joinpath("rules.toml").read_text(encoding="utf-8")
    strict = tmp_path / "strict.toml"
    strict.write_text(bundled.replace("unlikely_attendance = 1.0", "unlikely_attendance = 0.95")
                      .replace("exempt_share = 0.2", "exempt_share = 0.5"), encoding="utf-8")
    out = tmp_path / "out"
    run(town, out, "--rules", str(strict))
    assert sheet_rows(out)["细数党支部"]["提示"] == "出勤率95.8%，请核实记录"
    # a rules file written before these settings existed gets the bundled ones
    old = tmp_path / "old.toml"
    old.write_text(bundled[:bundled.index("[supervision]")], encoding="utf-8")
    assert load_rules(old).supervision == load_rules().supervision
    for bad, setting in (("exempt_share = 1.5", "supervision.exempt_share"),
                         ("exempt_share = nan", "supervision.exempt_share"),
                         ("min_incentive_activities = -1", "supervision.min_incentive_activities")):
        path = tmp_path / "bad.toml"
        key = bad.split(" = ")[0]
        path.write_text(re.sub(rf"^{key} = .*$", bad, bundled, flags=re.M), encoding="utf-8")
        with pytest.raises(RulesError, match=setting):
            load_rules(path)
        result = run(town, tmp_path / "never", "--rules", str(path))
        assert result.exit_code == 2 and setting in result.output


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
def test_clicking_a_header_sorts_the_table_in_chromium(town, tmp_path):
    """The inline script, run by a real browser: 出勤率 clicked twice sorts the branches from the highest rate down,
    the branches without one last."""
    out = tmp_path / "out"
    run(town, out)
    page = (out / "index.html").read_text(encoding="utf-8")
    click = "<script>var h = document.querySelectorAll('table.sortable th')[8]; h.click(); h.click();</script>"
    clicked = tmp_path / "clicked.html"
    clicked.write_text(page.replace("</body>", click + "</body>"), encoding="utf-8")
    dump = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", clicked.as_uri()],
        capture_output=True, text=True, timeout=120,
    ).stdout
    table = dump[dump.index('<table class="sortable compact">'):]
    table = table[:table.index("</table>")]
    order = re.findall(r'<tr><td class="l" data-sort="([^"]+)"', table)
    assert order[:2] == ["全勤党支部", "日期党支部"] and order[3] == "二课党支部"  # 100%, 95.8% (twice), 91.7%
    assert sorted(order[4:]) == ["退回党支部"] and 'aria-sort="descending">出勤率' in table
