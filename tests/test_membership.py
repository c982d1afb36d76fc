""""/" (not applicable) is borne out by the roster's dates (RULES.md, base score; WORKBOOK.md, 党员名册); an empty grid
is one problem. Each case through a real workbook file, asserting the exact (sheet, cell, code) set or the score."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import openpyxl
import pytest
from click.testing import CliRunner
from helpers import EVENTS, YEAR, build, cell_of, codes, load, marks, member, months, score, total_of

from pointsbatch.cli import main
from pointsbatch.workbook.spec import GRID_EVENTS

D = dt.date
FIRST_HALF = {e.header: "/" for e in GRID_EVENTS if e.default_month <= 6}
FROM_OCTOBER = {e.header: "/" for e in GRID_EVENTS if e.default_month >= 10}
GRID = "基础积分"


def _grid_cells(code: str, *headers: str, row: int = 3) -> set[tuple[str, str, str]]:
    return {(GRID, cell_of(h, row), code) for h in headers}


CASES = [
    # (id, roster row of 张三, his marks, expected problems)
    ("member since 2005, '/' in May", member(1, "张三"), marks(活动日5月="/"),
     _grid_cells("na_inside_membership", "活动日5月")),
    ("'/' in April breaks no absence run any more", member(1, "张三"),
     marks(**months("×", 1, 2, 3, 5, 6, 7), **months("/", 4)), _grid_cells("na_inside_membership", "活动日4月")),
    ("joined in July, '/' for January-June", member(1, "张三", joined=D(YEAR, 7, 1)), marks(**FIRST_HALF), set()),
    ("joined 15 July: July is the edge month, either mark", member(1, "张三", joined=D(YEAR, 7, 15)),
     marks(**FIRST_HALF, 活动日7月="/", 党费7月="/"), set()),
    ("joined in July, '/' in August", member(1, "张三", joined=D(YEAR, 7, 1)), marks(**FIRST_HALF, 活动日8月="/"),
     _grid_cells("na_inside_membership", "活动日8月")),
    ("transferred in on 1 April, '/' for January-March",
     member(1, "张三", transfer_in=D(YEAR, 4, 1)),
     marks(**{e: "/" for e in ("党费1月", "党费2月", "党费3月", "活动日1月", "活动日2月", "活动日3月", "党课一季度",
                               "党员大会一季度")}), set()),
    ("transferred out 15 September: '/' from September on",
     member(1, "张三", transfer_out=D(YEAR, 9, 15)),
     marks(**{e.header: "/" for e in GRID_EVENTS if e.default_month >= 9}), set()),
    ("transferred out 15 September: '/' in August", member(1, "张三", transfer_out=D(YEAR, 9, 15)),
     marks(**FROM_OCTOBER, 活动日8月="/", 党费8月="/"), _grid_cells("na_inside_membership", "活动日8月", "党费8月")),
    ("no dates on the roster: any '/' asks for them", member(1, "张三", joined=None), marks(党课三季度="/"),
     _grid_cells("na_without_dates", "党课三季度")),
    ("no dates and no '/': nothing to ask", member(1, "张三", joined=None), marks(), set()),
    ("joined 1 July, √ in January-June: warnings, not scored", member(1, "张三", joined=D(YEAR, 7, 1)),
     marks(活动日1月="√", 活动日6月="×", 党课二季度="假"),
     _grid_cells("mark_outside_membership", *(e for e in EVENTS if e in FIRST_HALF))),
    ("exempt members are not scored, so not checked",
     member(1, "张三", exempt="是", reason="身体不便"), marks("/"), set()),
    ("transfer out before joining", member(1, "张三", joined=D(YEAR, 5, 1), transfer_out=D(YEAR, 3, 1)),
     marks(**{e: "/" for e in EVENTS}), {("党员名册", "H2", "transfer_out_before_start")}),
]


@pytest.mark.parametrize(("roster_row", "row", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_not_applicable_against_the_roster(tmp_path: Path, roster_row, row, expected):
    v = load(build(tmp_path / "b.xlsx", roster=[roster_row, member(2, "李四")], grid={1: row}))
    assert codes(v) == expected


def test_a_mark_outside_the_membership_is_not_scored(tmp_path: Path):
    """Joined 1 July, √ for January-June, × for the six activity days July-December: 27 of 33 applicable points,
    scaled to 60, not the 54 the January-June marks would give."""
    row = marks(**{f"活动日{m}月": "×" for m in range(7, 13)})
    s = score(build(tmp_path / "b.xlsx", roster=[member(1, "张三", joined=D(YEAR, 7, 1))], grid={1: row}))
    assert total_of(s, 1) == 49.1
    prorate = s.ledger[s.ledger["item"] == "不适用折算"].iloc[0]
    assert prorate["cell"] == "C3:H3,O3:T3,AA3:AB3,AE3:AF3,AI3"  # the cells not applicable: the evidence


def test_a_dated_event_is_judged_by_its_date(tmp_path: Path):
    """Joined 20 May: a second-quarter lecture held 10 April may be "/", one held 10 June may not."""
    roster = [member(1, "张三", joined=D(YEAR, 5, 20))]
    before = {e: "/" for e in EVENTS if e in FIRST_HALF and e[-2:] in ("1月", "2月", "3月", "4月", "季度")
              and not e.endswith(("二季度", "上半年"))} | {"党费4月": "/", "活动日4月": "/"}
    ok = build(tmp_path / "a.xlsx", roster=roster, grid={1: marks(**before, 党课二季度="/")},
               grid_dates={"党课二季度": D(YEAR, 4, 10)})
    assert codes(load(ok)) == set()
    bad = build(tmp_path / "b.xlsx", roster=roster, grid={1: marks(**before, 党课二季度="/")},
                grid_dates={"党课二季度": D(YEAR, 6, 10)})
    assert codes(load(bad)) == _grid_cells("na_inside_membership", "党课二季度")


@pytest.mark.parametrize(
    ("grid_rows", "expected"),
    [
        ([], {(GRID, "A3", "grid_without_members")}),
        ([[7, "外人", *marks()], [8, "路人", *marks()]],
         {(GRID, "A3", "grid_without_members"), (GRID, "B3", "name_not_in_roster"), (GRID, "B4", "name_not_in_roster")}),
        ([[1, "张三", *marks()]], {("党员名册", "B3", "member_not_in_grid")}),  # one missing: named at the roster
    ],
    ids=["empty grid", "grid naming nobody on the roster", "one member missing"],
)
def test_a_grid_without_the_members_is_one_problem(tmp_path: Path, grid_rows, expected):
    v = load(build(tmp_path / "b.xlsx", grid_rows=grid_rows))
    assert codes(v) == expected and v.branch is None


def test_an_older_workbook_without_the_transfer_columns_still_reads(tmp_path: Path):
    path = build(tmp_path / "b.xlsx", roster=[member(1, "张三", joined=D(YEAR, 7, 1)), member(2, "李四")],
                 grid={1: marks(**FIRST_HALF)})
    wb = openpyxl.load_workbook(path)
    wb["党员名册"].delete_cols(7, 2)  # 转入日期, 转出日期
    wb.save(path)
    v = load(path)
    assert codes(v) == set()
    assert total_of(score(path), 1) == 60


def test_template_from_last_year_carries_the_transfer_dates(tmp_path: Path):
    last = build(tmp_path / "last.xlsx", roster=[member(1, "张三", transfer_in=D(YEAR, 4, 1)),
                                                 member(2, "李四", transfer_out=D(YEAR, 9, 15))],
                 grid={1: marks(**{e: "/" for e in ("党费1月", "党费2月", "党费3月", "活动日1月", "活动日2月",
                                                    "活动日3月", "党课一季度", "党员大会一季度")}),
                       2: marks(**FROM_OCTOBER)})
    out = tmp_path / "new.xlsx"
    result = CliRunner().invoke(main, ["template", "-o", str(out), "--year", str(YEAR + 1), "--from", str(last)])
    assert result.exit_code == 0, result.output
    ws = openpyxl.load_workbook(out)["党员名册"]
    header = [c.value for c in ws[1]]
    assert header[5:8] == ["入党日期", "转入日期", "转出日期"]
    assert ws["G2"].value.date() == D(YEAR, 4, 1) and ws["H3"].value.date() == D(YEAR, 9, 15)


def test_a_half_year_run_judges_january_to_june_only(tmp_path: Path):
    path = build(tmp_path / "b.xlsx", grid={1: marks(活动日10月="/", 活动日5月="/")})
    assert codes(load(path, period="h1")) == _grid_cells("na_inside_membership", "活动日5月")
    assert codes(load(path)) == _grid_cells("na_inside_membership", "活动日5月", "活动日10月")
