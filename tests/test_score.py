"""Each clause of RULES.md with a small worked example, through real workbook files."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from helpers import YEAR, act, build, load, marks, member, months, neg, score, total_of, veto_row

from pointsbatch.rules import RulesError, load_rules
from pointsbatch.score import round_half_up


@pytest.fixture
def wb(tmp_path: Path):
    counter = iter(range(1000))

    def make(**kw) -> Path:
        return build(tmp_path / f"b{next(counter)}.xlsx", **kw)

    return make


def member_row(scores, seq: int = 1) -> dict:
    return scores.members.set_index("seq").loc[seq].to_dict()


# --- base score: one example per row of the table ---------------------------------------------------------------

@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, 60),
        ({"党费3月": "×"}, 59),
        ({"活动日5月": "×"}, 59),
        ({"党课二季度": "×"}, 57),
        ({"党员大会四季度": "×"}, 57),
        ({"组织生活会上半年": "×"}, 57),
        ({"民主评议": "×"}, 57),
        ({"承诺践诺": "×"}, 57),
        ({"党课一季度": "假", "活动日2月": "假"}, 56),  # leave earns nothing, but is no absence
        ({"党费1月": "×", "党费2月": "×", "党课三季度": "×"}, 55),
    ],
)
def test_base_score_per_item(wb, changes, expected):
    s = score(wb(grid={1: marks(**changes)}))
    assert member_row(s)["base"] == expected
    assert total_of(s, 1) == expected


def test_member_who_joined_in_july_is_prorated(wb):
    first_half = {e: "/" for e in months("/", 1, 2, 3, 4, 5, 6)} | {f"党费{m}月": "/" for m in range(1, 7)}
    roster = [member(1, "张三", joined=dt.date(YEAR, 7, 1)), member(2, "李四")]
    s = score(wb(roster=roster, grid={1: marks(**first_half)}))
    assert member_row(s)["base"] == 60  # 33 of 33 applicable points, scaled to 60
    s = score(wb(roster=roster, grid={1: marks(**first_half, 活动日8月="×")}))
    assert member_row(s)["base"] == pytest.approx(32 * 60 / 33)
    assert total_of(s, 1) == 58.2
    note = s.ledger[s.ledger["item"] == "不适用折算"]["note"].iloc[0]
    assert "不适用" in note


def test_prorating_off_counts_points_as_earned(wb, tmp_path):
    rules = _rules_with(tmp_path, ("prorate = true", "prorate = false"))
    first_half = {e: "/" for e in months("/", 1, 2, 3, 4, 5, 6)} | {f"党费{m}月": "/" for m in range(1, 7)}
    roster = [member(1, "张三", joined=dt.date(YEAR, 7, 1)), member(2, "李四")]
    s = score(wb(roster=roster, grid={1: marks(**first_half)}), rules=rules)
    assert total_of(s, 1) == 33


def test_half_year_run_counts_january_to_june_only(wb):
    path = wb(incentive=[act("张三", "志愿服务", 3), act("张三", "结对帮扶", 2, when=dt.date(YEAR, 9, 1))])
    h1 = score(path, period="h1")
    assert member_row(h1)["base"] == 27  # 6 + 6 + 2×3 + 2×3 + 3
    assert member_row(h1)["incentive"] == 3
    annual = score(path)
    assert member_row(annual)["incentive"] == 5


# --- incentive score ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("activities", "expected"),
    [
        ([("志愿服务", 3, None)], 3),
        ([("志愿服务", 1.5, "是")], 3),  # doubled for a leading role
        ([("志愿服务", 3, "是")], 4),  # doubled, then capped at the item's 4
        ([("志愿服务", 3, None), ("志愿服务", 2.5, None)], 4),  # the item's sum is capped
        ([("志愿服务", 4, None), ("志愿服务", 1, "是")], 4),  # a leading role on an item already at its cap
        ([("志愿服务", 2, None), ("党史知识竞赛", 2, "是")], 6),
    ],
)
def test_incentive_items(wb, activities, expected):
    s = score(wb(incentive=[act("张三", item, pts, lead) for item, pts, lead in activities]))
    assert member_row(s)["incentive"] == expected


def test_all_ten_items_at_their_cap_make_forty(wb):
    from pointsbatch.workbook.spec import INCENTIVE_ITEM

    s = score(wb(incentive=[act("张三", item, 4) for item in INCENTIVE_ITEM.values] * 2))
    assert member_row(s)["incentive"] == 40
    assert total_of(s, 1) == 100


def test_cap_that_grows_with_the_multiplier(wb, tmp_path):
    rules = _rules_with(tmp_path, ("cap_grows_with_multiplier = false", "cap_grows_with_multiplier = true"))
    s = score(wb(incentive=[act("张三", "志愿服务", 3, "是")]), rules=rules)
    assert member_row(s)["incentive"] == 6


# --- negative list, veto ------------------------------------------------------------------------------------------

def test_each_occurrence_deducts_five(wb):
    s = score(wb(negative=[neg("张三"), neg("张三", "传播谣言")]))
    assert member_row(s)["deductions"] == 10
    assert total_of(s, 1) == 50


def test_deductions_larger_than_the_score_stop_at_zero(wb):
    s = score(wb(grid={1: marks("×", **{f"党费{m}月": "√" for m in range(1, 13)})},
                 negative=[neg("张三")] * 4, veto=[]))
    row = member_row(s)
    assert row["total"] == 0
    assert s.ledger[s.ledger["seq"] == 1]["points"].sum() == 0


@pytest.mark.parametrize("condition", ["拒绝交纳党费", "信仰宗教未转变", "信仰邪教", "黄赌毒酒驾受处分", "其他恶劣影响",
                                       "连续6个月不参加组织生活"])
def test_a_logged_veto_zeroes_the_year(wb, condition):
    s = score(wb(incentive=[act("张三", "志愿服务", 4)], veto=[veto_row("张三", condition)]))
    row = member_row(s)
    assert row["total"] == 0 and row["grade"] == "不合格" and row["veto"] == condition
    assert row["honours"] == "否"
    assert total_of(s, 2) == 60


def test_six_months_absent_is_detected_from_the_grid(wb):
    s = score(wb(grid={1: marks(**months("×", 2, 3, 4, 5, 6, 7))}))
    row = member_row(s)
    assert row["total"] == 0
    assert row["veto"] == "连续6个月不参加组织生活"
    flag = s.flags[s.flags["flag"] == "自动识别否决"]["note"].iloc[0]
    assert "2月至7月" in flag


def test_five_months_absent_is_no_veto(wb):
    s = score(wb(grid={1: marks(**months("×", 2, 3, 4, 5, 6))}))
    assert member_row(s)["veto"] == ""
    assert member_row(s)["total"] > 0


def test_a_month_excused_by_leave_breaks_the_run(wb):
    s = score(wb(grid={1: marks(**months("×", 1, 2, 3, 5, 6, 7), **months("假", 4))}))
    assert member_row(s)["veto"] == ""


def test_an_absence_spanning_the_half_year_boundary(wb):
    path = wb(grid={1: marks(**months("×", 4, 5, 6, 7, 8, 9))})
    assert member_row(score(path))["veto"] == "连续6个月不参加组织生活"
    assert member_row(score(path, period="h1"))["veto"] == ""


def test_six_unpaid_months_of_dues_is_a_warning_not_a_veto(wb):
    s = score(wb(grid={1: marks(**{f"党费{m}月": "×" for m in range(3, 9)})}))
    assert member_row(s)["veto"] == ""
    assert "党费提示" in set(s.flags["flag"])


# --- grades, honours, rewards ----------------------------------------------------------------------------------

def _total(wb, extra: float, **grid):
    """A member with full base (60, or less per `grid`) and `extra` incentive points."""
    items = ["革命传统教育", "理论学习心得", "党员议事会", "红色家访党群串门", "志愿服务", "党史知识竞赛", "结对帮扶",
             "基层治理项目", "年度重点工作", "上级表彰"]
    acts, left = [], extra
    for item in items:
        if left <= 0:
            break
        pts = min(4, left)
        acts.append(act("张三", item, pts))
        left -= pts
    return score(wb(grid={1: marks(**grid)}, incentive=acts))


@pytest.mark.parametrize(
    ("extra", "grid", "total", "grade", "honours", "reward"),
    [
        (0, {"党费1月": "×"}, 59, "不合格", "否", None),
        (0, {}, 60, "合格", "否", 120),
        (19.5, {}, 79.5, "合格", "否", 159),
        (20, {}, 80, "合格", "是", 160),
        (29.5, {}, 89.5, "合格", "是", 179),
        (30, {}, 90, "优秀", "是", 180),
    ],
)
def test_grade_boundaries(wb, extra, grid, total, grade, honours, reward):
    row = member_row(_total(wb, extra, **grid))
    assert (row["total"], row["grade"], row["honours"]) == (total, grade, honours)
    assert (row["reward"] if row["reward"] == row["reward"] else None) == reward


def test_no_rate_means_no_reward(wb):
    s = score(wb(info_over={"rate": None}))
    assert member_row(s)["reward"] != member_row(s)["reward"]  # NaN


def test_total_just_below_a_mark_is_flagged_and_says_so_truly(wb):
    s = _total(wb, 19.5)
    near = s.flags[s.flags["flag"] == "临界分数"]
    assert list(near["seq"]) == [1]
    assert near["note"].iloc[0].startswith("总分79.5，比80分线低0.5分")


@pytest.mark.parametrize("extra", [20, 21, 0.5])
def test_total_at_or_above_a_mark_is_not_flagged(wb, extra):
    # 81 is not "within 1 point" of anything a person must decide: the margin applies below a mark only
    s = _total(wb, extra)
    assert "临界分数" not in set(s.flags["flag"])


def test_exempt_member_is_listed_but_not_scored(wb):
    roster = [member(1, "张三"), member(2, "李老", exempt="是", reason="年满75周岁", birth=dt.date(1948, 1, 1))]
    s = score(wb(roster=roster, incentive=[act("李老", "志愿服务", 2)]))
    row = member_row(s, 2)
    assert row["grade"] == "免于积分管理"
    assert row["total"] != row["total"]
    assert not (s.ledger["seq"] == 2).any()


def test_ledger_explains_every_point(wb):
    s = score(wb(incentive=[act("张三", "志愿服务", 3, "是"), act("张三", "志愿服务", 2)],
                 negative=[neg("张三")], grid={1: marks(党费2月="×")}))
    mine = s.ledger[s.ledger["seq"] == 1]
    assert round_half_up(mine["points"].sum(), 1) == total_of(s, 1) == 59 + 4 - 5
    rows = mine[mine["sheet"] == "激励积分"]
    assert set(rows["cell"]) >= {"F2", "F3"}
    assert rows[rows["cell"] == "F2"]["multiplier"].iloc[0] == 2
    dues = mine[mine["item"] == "足额缴纳党费"].iloc[0]
    assert dues["points"] == 11 and dues["cell"] == "C3,E3:N3"  # 党费2月 (D3) was not paid


# --- rules as data -----------------------------------------------------------------------------------------------

def _rules_with(tmp_path: Path, *replacements: tuple[str, str]):
    from importlib import resources

    text = resources.files("pointsbatch").joinpath("rules.toml").read_text(encoding="utf-8")
    for old, new in replacements:
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "rules.toml"
    path.write_text(text, encoding="utf-8")
    return load_rules(path)


def test_other_numbers_change_results_without_code(wb, tmp_path):
    rules = _rules_with(tmp_path, ("deduction_per_occurrence = 5", "deduction_per_occurrence = 3"),
                        ("item_cap = 4", "item_cap = 5"))
    s = score(wb(incentive=[act("张三", "志愿服务", 4), act("张三", "志愿服务", 4)], negative=[neg("张三")]),
              rules=rules)
    row = member_row(s)
    assert row["incentive"] == 5 and row["deductions"] == 3 and row["total"] == 62


@pytest.mark.parametrize(
    ("old", "new", "setting"),
    [
        ("item_cap = 4", "item_cap = -1", "incentive.item_cap"),
        ("pass_mark = 60", 'pass_mark = "六十"', "grades.pass_mark"),
        ("days = 5\n", "", "notice.days"),
        ('grid_condition = "连续{absence_months}个月不参加组织生活"', 'grid_condition = "迟到"', "veto.grid_condition"),
    ],
)
def test_bad_rules_file_names_the_setting(tmp_path, old, new, setting):
    with pytest.raises(RulesError, match=setting.replace(".", r"\.")):
        _rules_with(tmp_path, (old, new))


def test_round_half_up():
    assert round_half_up(59.95, 1) == 60.0
    assert round_half_up(58.25, 1) == 58.3
    assert round_half_up(0.05, 1) == 0.1


def test_activity_beyond_caps_is_explained_in_the_ledger_not_flagged(wb):
    s = score(wb(incentive=[act("张三", "志愿服务", 4), act("张三", "志愿服务", 1), act("张三", "结对帮扶", 3, "是"),
                            act("李四", "志愿服务", 3)]))
    assert s.flags.empty  # nothing for a person to decide
    capped = s.ledger[s.ledger["note"].str.startswith("单项封顶")]
    assert sorted(zip(capped["seq"], capped["item"], capped["points"], strict=True)) == [
        (1, "志愿服务", -1.0), (1, "结对帮扶", -2.0)]


def test_a_half_year_has_no_grade_no_reward_and_no_mark_to_flag(wb):
    s = score(wb(incentive=[act("张三", "志愿服务", 3)]), period="h1")
    row = member_row(s)
    assert (row["base"], row["total"], row["grade"], row["honours"]) == (27.0, 30.0, "", "")
    assert row["reward"] != row["reward"]  # NaN: a reward is for the year
    assert s.base_max == 27.0
    assert "临界分数" not in set(s.flags["flag"])


def test_cell_ranges_join_neighbouring_cells_per_group():
    import pandas as pd

    from pointsbatch.score import cell_ranges

    cells = pd.DataFrame({"seq": [2, 2, 1, 2, 2, 1, 2], "item": ["a", "a", "a", "a", "b", "a", "a"],
                          "cell": ["D4", "C4", "C3", "E4", "F4", "E3", "G4"]})
    assert list(cell_ranges(cells, ["seq", "item"])) == ["C4:E4,G4", "C3,E3", "F4"]


def test_branches_scored_together_score_as_they_do_alone(wb):
    """A worker scores its chunk of branches in one pass; nothing may leak between them."""
    import pandas as pd

    from pointsbatch.score import score_branches

    rules = load_rules()
    first_half = {e: "/" for e in months("/", 1, 2, 3, 4, 5, 6)} | {f"党费{m}月": "/" for m in range(1, 7)}
    paths = sorted((Path(__file__).parent.parent / "sample_workbooks").glob("*.xlsx")) + [
        wb(roster=[member(9, "王五", joined=dt.date(YEAR, 7, 1)), member(2, "李四"), member(5, "张三")],  # 序号 unordered
           grid={9: marks(**first_half), 2: marks(**months("×", 3, 4, 5, 6, 7, 8))},
           incentive=[act("王五", "志愿服务", 4, "是"), act("张三", "志愿服务", 3), act("张三", "志愿服务", 3)],
           negative=[neg("李四"), neg("李四", when=dt.date(YEAR, 9, 1))], info_over={"rate": 1.5}),
        wb(roster=[member(1, "张三", transfer_in=dt.date(YEAR, 7, 1)), member(2, "李四")], grid={1: marks(**first_half)},
           veto=[veto_row("李四", "信仰邪教")], info_over={"rate": None}),
    ]
    validations = [load(p) for p in paths]
    branches = [v.branch for v in validations if v.branch is not None]
    # every built branch is scored (the samples include one the recorder got wrong, sent back by design)
    assert len(branches) == len(paths) - 1 and all(v.branch is not None for v in validations[-2:])
    for period in ("annual", "h1"):
        together = score_branches(branches, rules, period)
        for branch, both in zip(branches, together, strict=True):
            alone = score_branches([branch], rules, period)[0]
            for part in ("members", "ledger", "flags"):
                pd.testing.assert_frame_equal(getattr(both, part), getattr(alone, part), check_dtype=False)
            assert not both.members.empty and set(both.ledger["seq"]) <= set(branch.roster["seq"])
        totals_only = score_branches(branches, rules, period, detail=False)
        for full, bare in zip(together, totals_only, strict=True):  # what an annual run shows as the half-year total
            pd.testing.assert_frame_equal(bare.members, full.members, check_dtype=False)
            assert bare.ledger.empty and bare.flags.empty
