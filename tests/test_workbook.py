"""The standard workbook: template, reader, validator and the marked copy, through real .xlsx files."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess

import pytest
from click.testing import CliRunner
from helpers import YEAR, act, build, codes, load, marks, member, neg, veto_row
from openpyxl import load_workbook

from pointsbatch.cli import main
from pointsbatch.workbook import spec
from pointsbatch.workbook.marked import PROBLEM_SHEET, marked_copy


def run_cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


# --- the template ------------------------------------------------------------------------------------------------

def test_template_command_makes_every_sheet_and_header(tmp_path):
    out = tmp_path / "空白.xlsx"
    result = run_cli("template", "-o", str(out), "--year", "2027", "--branch", "河湾村党支部")
    assert result.exit_code == 0, result.output
    wb = load_workbook(out)
    for name in (spec.GUIDE_SHEET, *spec.REQUIRED_SHEETS, spec.OBJECTIONS.name):
        assert name in wb.sheetnames
    assert wb[spec.LISTS_SHEET].sheet_state == "hidden"
    assert [c.value for c in wb["党员名册"][1]] == [c.header for c in spec.ROSTER.columns]
    grid_headers = [c.value for c in wb["基础积分"][1]]
    assert grid_headers == ["序号", "姓名", *[e.header for e in spec.GRID_EVENTS]]
    assert wb["基础积分"]["A2"].value == "活动日期"
    info = {r[0].value.rstrip("*"): r[1].value for r in wb["支部信息"].iter_rows(min_row=2)}
    assert info["支部名称"] == "河湾村党支部" and info["年度"] == 2027
    # drop-downs come from named ranges on the hidden sheet
    assert "列表_出勤" in wb.defined_names
    grid_lists = [dv for dv in wb["基础积分"].data_validations.dataValidation if dv.type == "list"]
    assert grid_lists and grid_lists[0].formula1 == "=列表_出勤"
    score_dv = [dv for dv in wb["激励积分"].data_validations.dataValidation if dv.type == "decimal"]
    assert score_dv and score_dv[0].formula2 == "4"
    assert wb["激励积分"].freeze_panes == "A2"
    guide = "\n".join(str(c.value) for c in wb[spec.GUIDE_SHEET]["A"] if c.value)
    assert "下拉框" in guide and "2027" in guide


def test_filled_template_is_accepted_without_error(tmp_path):
    v = load(build(tmp_path / "ok.xlsx", incentive=[act("张三", "志愿服务", 2)], negative=[neg("李四")]))
    assert v.accepted, [p.message for p in v.problems]
    assert not [p for p in v.problems if p.is_error]


def test_template_from_last_year_carries_branch_and_roster(tmp_path):
    last = build(tmp_path / "2026.xlsx", roster=[member(1, "张三"), member(2, "李四"), member(3, "王五")])
    new = tmp_path / "2027.xlsx"
    assert run_cli("template", "-o", str(new), "--year", "2027", "--from", str(last)).exit_code == 0
    wb = load_workbook(new)
    names = [r[1].value for r in wb["党员名册"].iter_rows(min_row=2) if r[1].value]
    assert names == ["张三", "李四", "王五"]
    assert [wb["基础积分"].cell(r, 2).value for r in (3, 4, 5)] == ["张三", "李四", "王五"]
    info = {r[0].value.rstrip("*"): r[1].value for r in wb["支部信息"].iter_rows(min_row=2)}
    assert info["支部名称"] == "第一党支部" and info["年度"] == 2027 and info["积分记录员"] == "李组织"


@pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice (libreoffice-calc-nogui) is not installed")
def test_workbook_resaved_by_libreoffice_still_validates(tmp_path):
    src = build(tmp_path / "src" / "branch.xlsx", incentive=[act("张三", "志愿服务", 2.5, "是")])
    out = tmp_path / "lo"
    subprocess.run(["soffice", "--headless", f"-env:UserInstallation=file://{tmp_path}/profile", "--convert-to",
                    "xlsx:Calc MS Excel 2007 XML", "--outdir", str(out), str(src)], check=True, timeout=180,
                   capture_output=True)
    v = load(out / "branch.xlsx")
    assert v.accepted, [p.message for p in v.problems]
    wb = load_workbook(out / "branch.xlsx")
    assert any(dv.type == "list" for dv in wb["基础积分"].data_validations.dataValidation)


# --- the reader: what recorders really type --------------------------------------------------------------------

def test_reader_normalises_spellings_spaces_and_text(tmp_path):
    grid = marks(党费1月="✓", 党费2月="是", 活动日1月="请假", 活动日2月="1", 党课一季度="Ｙ")
    path = build(
        tmp_path / "typed.xlsx",
        roster=[member(1, "张 三"), member(2, "李四")],
        grid_rows=[["1", " 张三 ", *grid], [2.0, "李四", *marks()]],
        incentive=[["2026年3月5日", None, "张三", "志愿服务 ", "活动", "2.5", "是", None],
                   ["2026/4/1", None, "李四", "红色家访、党群串门", "活动", 1, None, None],
                   [dt.datetime(YEAR, 5, 6, 14, 30), None, "李四", "上级表彰", "活动", "３", None, None]],
    )
    v = load(path)
    assert v.accepted, [p.message for p in v.problems]
    inc = v.branch.incentive
    assert list(inc["date"]) == [dt.date(YEAR, 3, 5), dt.date(YEAR, 4, 1), dt.date(YEAR, 5, 6)]
    assert list(inc["item"]) == ["志愿服务", "红色家访党群串门", "上级表彰"]
    assert list(inc["points"]) == [2.5, 1.0, 3.0]
    att = v.branch.attendance.set_index(["seq", "event"])["mark"]
    assert att[(1, "党费1月")] == "attended" and att[(1, "活动日1月")] == "leave"


def test_columns_may_move_and_extra_columns_are_a_warning(tmp_path):
    from openpyxl import load_workbook as lw

    path = build(tmp_path / "moved.xlsx", incentive=[act("张三", "志愿服务", 3)])
    wb = lw(path)
    ws = wb["激励积分"]
    ws.move_range("F1:F3", cols=5)  # 得分 to column K
    ws["F1"] = "联系电话"
    wb.save(path)
    v = load(path)
    assert v.accepted
    assert codes(v) == {("激励积分", "F1", "column_unknown")}
    assert v.branch.incentive["points"].tolist() == [3.0]
    assert v.branch.incentive["cell"].tolist() == ["K2"]


# --- each kind of mistake, at its exact cell -------------------------------------------------------------------

def test_score_above_item_max(tmp_path):
    v = load(build(tmp_path / "x.xlsx", incentive=[act("张三", "志愿服务", 2), act("张三", "志愿服务", 5)]))
    assert codes(v) == {("激励积分", "F3", "score_above_item_max")}
    p = next(p for p in v.problems if p.code == "score_above_item_max")
    assert p.message == "第3行「得分」为5，超过单项满分4分"
    assert not v.accepted


def test_score_not_in_half_steps(tmp_path):
    v = load(build(tmp_path / "x.xlsx", incentive=[act("张三", "志愿服务", 2.3)]))
    assert codes(v) == {("激励积分", "F2", "score_not_half_step")}


def test_name_not_in_roster(tmp_path):
    v = load(build(tmp_path / "x.xlsx", incentive=[act("王小明", "志愿服务", 2)]))
    assert codes(v) == {("激励积分", "C2", "name_not_in_roster")}


def test_shared_name_needs_a_seq(tmp_path):
    roster = [member(1, "张三"), member(2, "张三"), member(3, "李四")]
    v = load(build(tmp_path / "x.xlsx", roster=roster, incentive=[act("张三", "志愿服务", 2),
                                                                 act("张三", "志愿服务", 2, seq=2)]))
    assert codes(v) == {("激励积分", "B2", "name_ambiguous")}  # (B3 names its 序号: no problem there)


def test_seq_and_name_must_agree(tmp_path):
    v = load(build(tmp_path / "x.xlsx", negative=[neg("张三", seq=2)]))
    p = next(p for p in v.problems if p.code == "seq_name_mismatch")
    assert (p.sheet, p.cell) == ("负面清单", "B2") and "李四" in p.message


def test_duplicate_seq_in_roster(tmp_path):
    v = load(build(tmp_path / "x.xlsx", roster=[member(1, "张三"), member(1, "李四")],
                   grid_rows=[[1, "张三", *marks()], [1, "李四", *marks()]]))
    assert codes(v) == {("党员名册", "A3", "seq_duplicate")}  # no flood of consequences


def test_bad_date_and_date_outside_year(tmp_path):
    v = load(build(tmp_path / "x.xlsx", incentive=[["2026年13月5日", None, "张三", "志愿服务", "", 2, None, None],
                                                   [dt.date(2025, 12, 30), None, "张三", "志愿服务", "", 2, None, None]]))
    assert codes(v) == {("激励积分", "A2", "not_a_date"), ("激励积分", "A3", "date_outside_year")}


def test_value_not_in_drop_down(tmp_path):
    v = load(build(tmp_path / "x.xlsx", veto=[veto_row("张三", "迟到早退")]))
    p = next(p for p in v.problems if p.code == "value_not_allowed")
    assert (p.sheet, p.cell) == ("一票否决", "D2") and "信仰邪教" in p.message


def test_blank_attendance_inside_the_period_only(tmp_path):
    row = marks(党课二季度=None, 党课四季度=None)
    path = build(tmp_path / "x.xlsx", grid={1: row})
    annual = load(path)
    assert codes(annual) == {("基础积分", "AB3", "attendance_blank"), ("基础积分", "AD3", "attendance_blank")}
    h1 = load(path, period="h1")
    assert codes(h1) == {("基础积分", "AB3", "attendance_blank")}


def test_leave_is_not_a_dues_mark(tmp_path):
    v = load(build(tmp_path / "x.xlsx", grid={2: marks(党费4月="假")}))
    assert codes(v) == {("基础积分", "F4", "attendance_leave_for_dues")}


def test_exemption_needs_a_reason_and_age_needs_a_birth_date(tmp_path):
    roster = [member(1, "张三", exempt="是"), member(2, "李四", exempt="是", reason="年满75周岁"),
              member(3, "王五", exempt="是", reason="年满75周岁", birth=None), member(4, "赵六")]
    v = load(build(tmp_path / "x.xlsx", roster=roster))
    assert codes(v) == {("党员名册", "J2", "exempt_reason_missing"), ("党员名册", "D3", "exempt_age_not_reached"),
                        ("党员名册", "D4", "exempt_birth_missing")}


def test_exempt_member_with_records_is_only_a_warning(tmp_path):
    roster = [member(1, "张三"), member(2, "李老", exempt="是", reason="身体不便")]
    v = load(build(tmp_path / "x.xlsx", roster=roster, incentive=[act("李老", "志愿服务", 1)]))
    assert v.accepted
    assert codes(v) == {("激励积分", "C2", "exempt_has_records")}


def test_reward_rate_at_most_five(tmp_path):
    v = load(build(tmp_path / "x.xlsx", info_over={"rate": 6}))
    p = next(p for p in v.problems if p.code == "rate_too_high")
    assert (p.sheet, p.cell) == ("支部信息", "B9")


def test_workbook_year_must_equal_the_runs(tmp_path):
    from pointsbatch.rules import load_rules
    from pointsbatch.validate import validate_workbook
    from pointsbatch.workbook.read import read_workbook

    v = validate_workbook(read_workbook(build(tmp_path / "x.xlsx")), load_rules(), "annual", 2027)
    assert codes(v) == {("支部信息", "B3", "year_mismatch")}


def test_missing_sheet_and_missing_header(tmp_path):
    path = build(tmp_path / "x.xlsx")
    wb = load_workbook(path)
    del wb["负面清单"]
    wb["激励积分"]["F1"] = None
    wb.save(path)
    v = load(path)
    assert codes(v) == {("负面清单", "A1", "sheet_missing"), ("激励积分", "A1", "column_missing")}
    assert [p.value for p in v.problems if p.code == "column_missing"] == ["得分"]


def test_several_mistakes_are_all_reported_each_at_its_cell_without_a_flood(tmp_path):
    v = load(build(
        tmp_path / "x.xlsx",
        roster=[member(1, "张三"), member(2, "李四"), member(3, "王五", category="群众")],
        grid={1: marks(党费1月="假"), 2: marks(活动日3月="?")},
        incentive=[act("张三", "志愿服务", 5), act("赵六", "志愿服务", 1)],
        negative=[neg("李四", case="打牌")],
        info_over={"rate": 8},
    ))
    found = codes(v)
    expected = {("基础积分", "C3", "attendance_leave_for_dues"), ("基础积分", "Q4", "attendance_not_mark"),
                ("激励积分", "F2", "score_above_item_max"), ("激励积分", "C3", "name_not_in_roster"),
                ("负面清单", "D2", "value_not_allowed"), ("支部信息", "B9", "rate_too_high"),
                ("党员名册", "E4", "value_not_allowed")}
    assert expected <= found
    assert len([p for p in v.problems if p.is_error]) == len(expected)


def test_a_report_has_a_ceiling(tmp_path):
    v = load(build(tmp_path / "x.xlsx", incentive=[act("无名氏", "志愿服务", 9)] * 400))
    assert len(v.problems) == 301
    assert v.problems[-1].code == "too_many_problems"


# --- the marked copy and `check` -------------------------------------------------------------------------------

def test_marked_copy_marks_and_comments_each_problem_cell(tmp_path):
    path = build(tmp_path / "x.xlsx", incentive=[act("张三", "志愿服务", 5)], grid={2: marks(党费4月="假")})
    v = load(path)
    wb = marked_copy(path, v.problems)
    assert wb.sheetnames[0] == PROBLEM_SHEET
    cell = wb["激励积分"]["F2"]
    assert cell.fill.fgColor.rgb.endswith("FF9999")
    assert "超过单项满分" in cell.comment.text
    assert "党费只能填" in wb["基础积分"]["F4"].comment.text
    listing = wb[PROBLEM_SHEET]
    links = [c.hyperlink.location if c.hyperlink.location else c.hyperlink.target
             for c in listing["D"] if c.hyperlink]
    assert any("激励积分" in str(link) and "F2" in str(link) for link in links)


def test_check_command_prints_problems_and_writes_marked_copies(tmp_path):
    bad = build(tmp_path / "bad.xlsx", incentive=[act("张三", "志愿服务", 5)])
    good = build(tmp_path / "good.xlsx")
    before = bad.read_bytes()
    ok = run_cli("check", str(good))
    assert ok.exit_code == 0 and "没有发现问题" in ok.output
    result = run_cli("check", str(bad), str(good), "--marked", str(tmp_path / "marked"))
    assert result.exit_code == 1
    assert "超过单项满分4分" in result.output and "F2" in result.output
    marked = tmp_path / "marked" / "bad_问题标注.xlsx"
    assert load_workbook(marked)["激励积分"]["F2"].comment is not None
    assert bad.read_bytes() == before
    as_json = run_cli("check", str(bad), "--json")
    assert '"code": "score_above_item_max"' in as_json.output
    assert not (tmp_path / "marked" / "good_问题标注.xlsx").exists()


def test_check_never_overwrites_a_file_with_its_marked_copy_least_of_all_another_input(tmp_path):
    folder = tmp_path / "mk2"
    first = build(folder / "青石.xlsx", incentive=[act("张三", "志愿服务", 5)])
    second = build(folder / "青石_问题标注.xlsx", incentive=[act("李四", "志愿服务", 6)])
    before = {p: p.read_bytes() for p in (first, second)}
    result = run_cli("check", str(first), str(second), "--marked", str(folder))
    assert result.exit_code == 1, result.output
    assert {p: p.read_bytes() for p in (first, second)} == before
    assert "已写出标注副本：" in result.output and "青石_问题标注（2）.xlsx" in result.output
    assert load_workbook(folder / "青石_问题标注（2）.xlsx")["激励积分"]["F2"].comment is not None
    assert load_workbook(folder / "青石_问题标注_问题标注.xlsx")["激励积分"]["F2"].comment is not None
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["青石.xlsx", "青石_问题标注.xlsx", "青石_问题标注（2）.xlsx", "青石_问题标注_问题标注.xlsx"])


def test_check_writes_its_marked_copy_beside_a_file_of_the_same_name_rather_than_over_it(tmp_path):
    bad = build(tmp_path / "青石.xlsx", incentive=[act("张三", "志愿服务", 5)])
    marked = tmp_path / "标注"
    marked.mkdir()
    (marked / "青石_问题标注.xlsx").write_bytes(b"the clerk's own notes")
    for n in (2, 3):  # a second check leaves the first one's copy as well
        result = run_cli("check", str(bad), "--marked", str(marked))
        assert result.exit_code == 1 and f"青石_问题标注（{n}）.xlsx" in result.output, result.output
        assert load_workbook(marked / f"青石_问题标注（{n}）.xlsx")["激励积分"]["F2"].comment is not None
    assert (marked / "青石_问题标注.xlsx").read_bytes() == b"the clerk's own notes"
    assert len(list(marked.iterdir())) == 3


def test_every_command_and_option_has_help():
    for name, command in main.commands.items():
        assert command.help, name
        for param in command.params:
            if param.param_type_name == "option" and param.name != "help":
                assert param.help, f"{name} {param.name}"


def test_workbooks_validated_together_get_what_each_gets_alone(tmp_path):
    """The batch validates a chunk of workbooks in one pass: problems, typed tables and refusals are the same."""
    from pathlib import Path

    import pandas as pd

    from pointsbatch.rules import load_rules
    from pointsbatch.validate import validate_workbook, validate_workbooks
    from pointsbatch.workbook.read import read_workbook

    samples = sorted((Path(__file__).parent.parent / "sample_workbooks").glob("*.xlsx"))
    extra = [build(tmp_path / "late.xlsx", roster=[member(1, "张三"), member(2, "李四")],
                   incentive=[act("张三", "志愿服务", 5), act("李四", "志愿服务", 2, when=dt.date(YEAR + 1, 1, 2))]),
             tmp_path / "garbage.xlsx"]
    extra[1].write_bytes(b"not a workbook")
    books = [read_workbook(p) for p in [*samples, *extra]]
    rules = load_rules()
    together = validate_workbooks(books, rules, "annual")
    assert sum(v.branch is None for v in together) == 3  # 青石社区, the late entries, the garbage
    for book, joint in zip(books, together, strict=True):
        alone = validate_workbook(book, rules, "annual")
        assert [(p.sheet, p.cell, p.code, p.message) for p in joint.problems] == \
               [(p.sheet, p.cell, p.code, p.message) for p in alone.problems]
        assert (joint.branch is None) == (alone.branch is None)
        if alone.branch is not None:
            for name in ("roster", "attendance", "incentive", "negative", "veto", "objections"):
                pd.testing.assert_frame_equal(getattr(joint.branch, name), getattr(alone.branch, name))


def test_an_objection_during_the_annual_notice_may_be_dated_the_next_january(tmp_path):
    # the annual 公示 is posted after the year ends: an objection raised then is dated the next year
    january = build(tmp_path / "a.xlsx", objections=[[dt.date(YEAR + 1, 1, 13), "李四", "扣分有误", "误记", "已删除"]])
    assert codes(load(january)) == set()
    later = build(tmp_path / "b.xlsx", objections=[[dt.date(YEAR + 2, 1, 13), "李四", "扣分有误", "误记", "已删除"]])
    assert codes(load(later)) == {("异议处理", "A2", "date_outside_year")}
    early = build(tmp_path / "c.xlsx", objections=[[dt.date(YEAR - 1, 12, 31), "李四", "扣分有误", "误记", "已删除"]])
    assert codes(load(early)) == {("异议处理", "A2", "date_outside_year")}


def test_an_exempt_members_attendance_may_be_left_blank(tmp_path):
    roster = [member(1, "张三"), member(2, "老党员", exempt="是", reason="年满75周岁", birth=dt.date(1940, 1, 1))]
    blank = [None] * len(marks())
    path = build(tmp_path / "a.xlsx", roster=roster, grid_rows=[[1, "张三", *marks()], [2, "老党员", *blank]])
    assert codes(load(path)) == set()
    scored = [[1, "张三", *blank], [2, "老党员", *marks()]]
    path = build(tmp_path / "b.xlsx", roster=roster, grid_rows=scored)
    assert {code for _sheet, _cell, code in codes(load(path))} == {"attendance_blank"}


def test_a_number_typed_with_its_unit_is_read(tmp_path):
    from pointsbatch.workbook.values import INVALID, parse_int, parse_number

    assert parse_number("2分") == 2.0 and parse_number("3.5 元") == 3.5 and parse_int("2026年") == 2026
    assert parse_number("２分") == 2.0  # full-width digits, as a Chinese input method types them
    assert parse_number("分") is INVALID and parse_number("2个") is INVALID and parse_int("2026年度") is INVALID
    path = build(tmp_path / "a.xlsx", incentive=[act("张三", "志愿服务", "2分")], info_over={"year": "2026年"})
    assert codes(load(path)) == set()


def test_grid_key_mistakes_each_at_its_cell_in_reading_order(tmp_path):
    """A member twice in the grid, a grid row without 序号 or name or with a 序号 that is not a number, a 序号 the
    roster does not have, and a reason given to a member who is not exempt: each one problem at its own cell,
    listed sheet by sheet in reading order."""
    roster = [member(1, "张三"), member(2, "李四", reason="年满75周岁"), member(3, "王五"), member(4, "赵六")]
    grid_rows = [[1, "张三", *marks()], [2, "李四", *marks()], [1, "张三", *marks()], [None, "王五", *marks()],
                 ["七", None, *marks()], [9, "赵六", *marks()]]
    v = load(build(tmp_path / "x.xlsx", roster=roster, grid_rows=grid_rows))
    assert [(p.sheet, p.cell, p.code) for p in v.problems] == [
        ("党员名册", "I3", "exempt_reason_without_exempt"),
        ("党员名册", "B4", "member_not_in_grid"),  # 王五's grid row has no 序号, 赵六's a 序号 the roster lacks
        ("党员名册", "B5", "member_not_in_grid"),
        ("基础积分", "B5", "member_twice_in_grid"),
        ("基础积分", "A6", "value_required"),
        ("基础积分", "A7", "not_an_integer"),
        ("基础积分", "B7", "value_required"),
        ("基础积分", "A8", "seq_not_in_roster"),
    ]
    twice = next(p for p in v.problems if p.code == "member_twice_in_grid")
    assert "张三" in twice.message and "第3行" in twice.message  # the row it was first given in
