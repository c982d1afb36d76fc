"""Every point has its evidence: the ledger's codes, caps, vetoes and order, through real workbook files and the
real command."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import YEAR, act, build, marks, member, months, score, veto_row
from openpyxl import load_workbook

from pointsbatch import score as scoring
from pointsbatch.cli import main
from pointsbatch.rules import load_rules


def _rules(tmp_path: Path, grows: bool):
    text = load_rules.__globals__["resources"].files("pointsbatch").joinpath("rules.toml").read_text("utf-8")
    path = tmp_path / "rules.toml"
    path.write_text(text.replace("cap_grows_with_multiplier = false",
                                 f"cap_grows_with_multiplier = {'true' if grows else 'false'}"), encoding="utf-8")
    return load_rules(path)


LED, PLAIN = "是", None


@pytest.mark.parametrize(
    ("grows", "activities", "incentive"),
    [
        (True, [(4, PLAIN), (4, PLAIN)], 4),  # the grown cap is for leaders only
        (True, [(4, LED)], 8),
        (True, [(4, PLAIN), (2, LED)], 8),  # plain up to 4, with the led ones up to 8
        (True, [(2, PLAIN), (1, LED)], 4),
        (True, [(4, PLAIN), (4, LED)], 8),
        (True, [(3, PLAIN), (3, PLAIN), (1, LED)], 6),
        (False, [(4, LED)], 4),
        (False, [(2, PLAIN), (1, LED)], 4),
        (False, [(1, PLAIN), (1, LED)], 3),
    ],
)
def test_the_grown_cap_applies_only_to_led_activities(tmp_path, grows, activities, incentive):
    rules = _rules(tmp_path, grows)
    path = build(tmp_path / "b.xlsx", incentive=[act("张三", "志愿服务", p, lead) for p, lead in activities])
    s = score(path, rules=rules)
    assert s.members.set_index("seq").loc[1, "incentive"] == incentive
    ledger = s.ledger[s.ledger["seq"] == 1]
    assert ledger[ledger["part"] == "激励分"]["points"].sum() == incentive
    over = sum(p * (2 if lead else 1) for p, lead in activities) - incentive
    assert list(ledger[ledger["code"] == scoring.INCENTIVE_ITEM_CAP]["points"]) == ([-over] if over else [])


def test_the_rules_sheet_says_how_the_cap_grows(tmp_path):
    said = dict(_rules(tmp_path, True).summary())["单项封顶随倍数增长"]
    assert said == "是，仅限带头的活动：不带头的活动合计不超过4分，连同带头的活动（已加倍）合计不超过8分"
    assert dict(_rules(tmp_path, False).summary())["单项封顶随倍数增长"] == "否"
    from pointsbatch.workbook.template import build_template

    guide = "".join(str(c.value) for c in build_template(_rules(tmp_path, True), YEAR)["填表说明"]["A"] if c.value)
    assert "每项全年合计不超过4分；带头的活动加倍后，连同其他活动合计不超过8分。" in guide


def test_a_logged_veto_also_found_in_the_grid_keeps_both(tmp_path):
    path = build(tmp_path / "b.xlsx", grid={1: marks(**months("×", 2, 3, 4, 5, 6, 7))},
                 veto=[veto_row("张三", "连续6个月不参加组织生活")])
    s = score(path)
    veto = s.ledger[(s.ledger["seq"] == 1) & (s.ledger["code"] == scoring.VETO)]
    assert len(veto) == 1 and veto["item"].iloc[0] == "连续6个月不参加组织生活"
    note = veto["note"].iloc[0]
    assert "支部登记（一票否决第2行），2月至7月连续6个月无故未参加组织生活" in note
    assert s.members.set_index("seq").loc[1, "total"] == 0


def test_codes_not_display_text_decide(tmp_path):
    """A deduction row is found by its code: an incentive item named like the floor row changes nothing."""
    path = build(tmp_path / "b.xlsx", incentive=[act("张三", "志愿服务", 4), act("张三", "志愿服务", 4, content="扣完为止")])
    s = score(path)
    assert set(s.ledger["code"]) == {scoring.BASE_ATTENDED, scoring.INCENTIVE_ACTIVITY, scoring.INCENTIVE_ITEM_CAP}
    row = s.members.set_index("seq").loc[1]
    assert (row["incentive"], row["deductions"]) == (4, 0)


def test_a_run_gives_sorted_filtered_coded_evidence(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    build(inbox / "b.xlsx", roster=[member(1, "张三"), member(2, "李四", joined=dt.date(YEAR, 7, 1))],
          grid={2: marks(**{e: "/" for e in ("党费1月", "党费2月", "党费3月", "党费4月", "党费5月", "党费6月")},
                         **months("/", 1, 2, 3, 4, 5, 6))},
          incentive=[act("李四", "志愿服务", 2), act("张三", "上级表彰", 2, LED, content="带头组织，表彰"),
                     act("张三", "革命传统教育", 1)])
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", str(inbox), "-o", str(out), "--jobs", "1", "--run-date", "2027-01-15"])
    assert result.exit_code == 0, result.output
    with (out / "ledger.csv").open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["branch", "seq", "name", "part", "item", "sheet", "row", "cell", "raw", "multiplier", "points",
                       "note", "date", "code"]
    assert [(r[1], r[4], r[13]) for r in rows[1:]] == [
        ("1", "足额缴纳党费", "base_attended"), ("1", "党员活动日", "base_attended"), ("1", "党课", "base_attended"),
        ("1", "党员大会", "base_attended"), ("1", "组织生活会", "base_attended"), ("1", "民主评议党员", "base_attended"),
        ("1", "党员承诺践诺", "base_attended"), ("1", "革命传统教育", "incentive_activity"),
        ("1", "上级表彰", "incentive_activity"),
        ("2", "足额缴纳党费", "base_attended"), ("2", "党员活动日", "base_attended"), ("2", "党课", "base_attended"),
        ("2", "党员大会", "base_attended"), ("2", "组织生活会", "base_attended"), ("2", "民主评议党员", "base_attended"),
        ("2", "党员承诺践诺", "base_attended"), ("2", "不适用折算", "base_prorate"),
        ("2", "志愿服务", "incentive_activity"),
    ]
    led = next(r for r in rows if r[4] == "上级表彰")
    assert led[11] == "带头组织，表彰（带头作用，按2倍计分）"  # as typed, full-width comma included
    prorate = next(r for r in rows if r[13] == "base_prorate")
    assert prorate[7] == "C4:H4,O4:T4,AA4:AB4,AE4:AF4,AI4"
    wb = load_workbook(next((out / "支部").glob("*/*.xlsx")))
    ws = wb["积分明细"]
    assert ws.auto_filter.ref == f"A3:K{3 + len(rows) - 1}" and ws.freeze_panes == "A4"
    assert [ws.cell(r, 1).value for r in range(4, 4 + len(rows) - 1)] == [int(r[1]) for r in rows[1:]]


def test_free_text_is_kept_as_typed_and_the_problem_list_shows_the_cells_own_content(tmp_path):
    typed = "3月活动日实际参加，误记为请假（已更正）"
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    build(inbox / "good.xlsx", objections=[[dt.date(YEAR, 7, 8), "张三", "活动日3月记为请假", typed, "已改为√"]],
          incentive=[act("张三", "志愿服务", 2, content="　全角空格开头，ＡＢＣ全角字母")])
    build(inbox / "bad.xlsx", info_over={"branch": "第二党支部"}, grid={1: marks(党课二季度=None)},
          roster=[member(1, "张三"), member(2, "李四", exempt="是")])
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", str(inbox), "-o", str(out), "--jobs", "1", "--run-date", "2027-01-15"])
    assert result.exit_code == 1, result.output
    wb = load_workbook(next((out / "支部").glob("*/*.xlsx")))
    assert [c.value for c in wb["异议处理"][4]][3] == typed
    notes = [r[10].value for r in wb["积分明细"].iter_rows(min_row=4)]
    assert "　全角空格开头，ＡＢＣ全角字母" in notes
    problems = load_workbook(out / "问题反馈" / "bad_问题标注.xlsx")["问题清单"]
    listed = {r[3].value: (r[4].value, r[5].value) for r in problems.iter_rows(min_row=3)}
    blank_cell, missing_reason = listed["AB3"], listed["J3"]
    assert blank_cell[0] in (None, "") and "张三" in blank_cell[1]  # the name is in the message, not the cell
    assert missing_reason[0] in (None, "") and "李四" in missing_reason[1]


def test_the_same_person_on_two_branches_rosters_is_flagged_not_merged(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    build(inbox / "一.xlsx", info_over={"branch": "第一党支部"},
          roster=[member(1, "张三"), member(2, "李四", birth=dt.date(1970, 1, 1))])
    build(inbox / "二.xlsx", info_over={"branch": "第二党支部"},
          roster=[member(1, "王五"), member(2, "张三"), member(3, "李四", birth=dt.date(1971, 1, 1))],
          grid={2: marks(活动日3月="×")})
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", str(inbox), "-o", str(out), "--jobs", "1", "--run-date", "2027-01-15"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "run.json").read_text("utf-8"))
    assert manifest["same_person_in_two_branches"] == [
        {"name": "张三", "birth": "1980-05-01", "branches": ["第一党支部", "第二党支部"]}]  # 李四: other birth dates
    ws = load_workbook(out / "全镇汇总.xlsx")["各支部汇总"]
    notes = {row[0].value: row[9].value for row in ws.iter_rows(min_row=4) if row[0].value}
    assert "张三（1980-05-01）也在第二党支部名册中" in notes["第一党支部"]
    assert "张三（1980-05-01）也在第一党支部名册中" in notes["第二党支部"]
    assert "张三（1980-05-01）也在第二党支部名册中" in (out / "index.html").read_text("utf-8")
    with (out / "scores.csv").open(encoding="utf-8-sig", newline="") as fh:
        totals = sorted(r["总分"] for r in csv.DictReader(fh) if r["姓名"] == "张三")
    assert totals == ["59.0", "60.0"]  # each branch's score stands as its workbook gives it
