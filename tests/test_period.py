"""The half year and the 公示 as the 办法 means them: a half-year run scores without grading, a vetoed member's
notice row, the notice's dates, a workbook filled only to June in an annual run."""

from __future__ import annotations

import csv
import datetime as dt
import email
import re
import zipfile
from email.policy import default as default_policy
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import YEAR, act, build, marks, member, months, neg, veto_row

from pointsbatch.cli import main

GRADE_WORDS = re.compile("合格|优秀|评先评优|奖励")


def run(inbox: Path, out: Path, *extra: str):
    return CliRunner().invoke(main, ["run", str(inbox), "-o", str(out), "--jobs", "1", "--run-date", "2026-07-10",
                                     *extra], catch_exceptions=False)


def xlsx_text(path: Path) -> str:
    """Every string of a workbook (cells, sheet names, chart titles), read from its XML."""
    with zipfile.ZipFile(path) as z:
        return "".join(z.read(n).decode("utf-8") for n in z.namelist() if n.endswith(".xml"))


@pytest.fixture
def full_year(tmp_path: Path) -> Path:
    """Workbooks filled for the whole year (as a branch sends them in July after filling ahead, or in January)."""
    folder = tmp_path / "inbox"
    folder.mkdir()
    build(folder / "一支部.xlsx", roster=[member(1, "张三"), member(2, "李四"), member(3, "王五")],
          grid={2: marks(**months("假", *range(1, 13))), 3: marks(**months("×", 1, 2, 3))},
          incentive=[act("李四", "志愿服务", 2), act("张三", "上级表彰", 4, when=dt.date(YEAR, 9, 1))],
          negative=[neg("王五")])
    return folder


def test_a_half_year_run_gives_points_and_the_maximum_never_a_grade(full_year, tmp_path):
    out = tmp_path / "out"
    result = run(full_year, out, "--period", "h1")
    assert result.exit_code == 0, result.output
    assert not GRADE_WORDS.search(result.output)
    folder = out / "支部" / "第一党支部"
    notice = next(folder.glob("*公示.html")).read_text(encoding="utf-8")
    assert "第一党支部2026年上半年党员积分公示" in notice
    assert not GRADE_WORDS.search(notice) and "参考等次" not in notice
    assert "满分27" in notice and "满分40" in notice
    # 张三 attended everything in January-June: 27 of 27, and his September commendation is not in the half
    row = re.search(r"<td class=\"name\">张三</td>(.*?)</tr>", notice).group(1)
    assert re.findall(r">([^<]*)</td>", row) == ["27", "0", "0", "27"]
    # scores.csv: the three columns blank (OUTPUTS.md); its header is the contract
    with (out / "scores.csv").open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {(r["等次"], r["可评先评优"], r["奖励上限（元）"]) for r in rows} == {("", "", "")}
    assert [r["总分"] for r in rows] == ["27.0", "8.0", "13.0"]  # 李四: dues only, on leave; 王五: -9 -5
    results = next(folder.glob("*.xlsx"))
    assert not GRADE_WORDS.search(xlsx_text(results))
    assert "本期基础分满分27分" in xlsx_text(results)
    summary = xlsx_text(out / "全镇汇总.xlsx")
    assert not GRADE_WORDS.search(summary)
    assert "积分分布" in summary and "不合格名单" not in summary
    index = (out / "index.html").read_text(encoding="utf-8")
    assert not GRADE_WORDS.search(index) and "上半年积分分布" in index
    slips = next(folder.glob("*告知单.html")).read_text(encoding="utf-8")
    assert "第一党支部2026年上半年个人积分告知单" in slips and not GRADE_WORDS.search(slips)
    message = email.message_from_bytes(next((out / "发件箱").glob("*.eml")).read_bytes(), policy=default_policy)
    assert "2026年上半年积分结果" in message["Subject"]
    assert not GRADE_WORDS.search(message.get_body(("plain",)).get_content())


def test_the_annual_run_still_grades_and_names_the_year(full_year, tmp_path):
    out = tmp_path / "out"
    run(full_year, out)
    notice = next((out / "支部" / "第一党支部").glob("*公示.html")).read_text(encoding="utf-8")
    assert "第一党支部2026年度党员积分公示" in notice and "年年度" not in notice
    slips = next((out / "支部" / "第一党支部").glob("*告知单.html")).read_text(encoding="utf-8")
    assert "第一党支部2026年度个人积分告知单" in slips and "年年度个人" not in slips
    assert "参考等次" in notice and "合格" in notice
    assert "年年度" not in (out / "index.html").read_text(encoding="utf-8")


def test_a_vetoed_members_row_does_not_read_as_a_wrong_sum(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    build(inbox / "a.xlsx", incentive=[act("李四", "志愿服务", 4)], veto=[veto_row("李四", "信仰邪教")])
    out = tmp_path / "out"
    assert run(inbox, out).exit_code == 0
    notice = next((out / "支部").rglob("*公示.html")).read_text(encoding="utf-8")
    row = re.search(r"<td class=\"name\">李四</td>(.*?)</tr>", notice).group(1)
    assert re.findall(r">([^<]*)</td>", row) == ["—", "—", "—", "0", "不合格"]
    assert "信仰邪教" not in notice and "一票否决" not in notice  # no reason on a public wall
    assert "“—”" in notice


def test_a_notice_starting_before_the_committee_fixed_the_scores_is_warned(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    build(inbox / "a.xlsx", info_over={"h1_date": dt.date(YEAR, 7, 5)})
    out = tmp_path / "out"
    result = run(inbox, out, "--period", "h1", "--notice-start", "2026年7月1日")
    assert result.exit_code == 0, result.output
    assert "公示开始日期早于支委会核定日期2026-07-05" in result.output
    import json

    problems = json.loads((out / "run.json").read_text(encoding="utf-8"))["files"][0]["problems"]
    assert [(p["severity"], p["code"], p["sheet"]) for p in problems] == [
        ("warning", "notice_before_approval", "支部信息")]
    # on or after the 核定日期: nothing to say
    result = run(inbox, out, "--period", "h1", "--notice-start", "2026/7/5")
    assert "notice_before_approval" not in (out / "run.json").read_text(encoding="utf-8")


def _first_half_only(path: Path, name: str) -> Path:
    second_half = {e: "" for e in _events_after_june()}
    return build(path, info_over={"branch": name}, grid={1: marks(**second_half), 2: marks(**second_half)})


def _events_after_june() -> list[str]:
    from pointsbatch.workbook import spec

    return [e.header for e in spec.GRID_EVENTS if e.default_month > 6]


def test_an_annual_run_over_a_workbook_filled_to_june_says_so_once(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    _first_half_only(inbox / "a.xlsx", "甲支部")
    _first_half_only(inbox / "b.xlsx", "乙支部")
    build(inbox / "c.xlsx", info_over={"branch": "丙支部"})
    out = tmp_path / "out"
    result = run(inbox, out)
    assert result.exit_code == 1
    import json

    files = {f["name"]: f for f in json.loads((out / "run.json").read_text(encoding="utf-8"))["files"]}
    problems = files["a.xlsx"]["problems"]
    assert [p["code"] for p in problems] == ["second_half_blank"]
    assert "--period h1" in problems[0]["message"]
    assert files["c.xlsx"]["status"] == "accepted"
    assert result.output.count("--period h1") == 1


def test_one_workbook_filled_to_june_among_many_is_not_a_hint_for_the_run(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    _first_half_only(inbox / "a.xlsx", "甲支部")
    build(inbox / "b.xlsx", info_over={"branch": "乙支部"})
    build(inbox / "c.xlsx", info_over={"branch": "丙支部"})
    result = run(inbox, tmp_path / "out")
    assert "大多数" not in result.output


def test_a_second_half_partly_filled_is_still_reported_cell_by_cell(tmp_path):
    from helpers import load

    path = build(tmp_path / "a.xlsx", grid={1: marks(**{h: "" for h in _events_after_june()[1:]})})
    codes = [p.code for p in load(path).problems]
    assert "second_half_blank" not in codes and codes.count("attendance_blank") == len(_events_after_june()) - 1
