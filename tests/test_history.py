"""Changes during the 公示 (OUTPUTS.md): reasons in words, since the previous run and since the scores first posted,
and a previous OUT a clerk edited by hand costing only the change report."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import YEAR, act, build, marks, member, neg

from pointsbatch.cli import main


def run(inbox: Path, out: Path, *extra: str):
    return CliRunner().invoke(main, ["run", str(inbox), "-o", str(out), "--jobs", "1", "--run-date", "2026-07-10",
                                     *extra], catch_exceptions=False)


def manifest(out: Path) -> dict:
    return json.loads((out / "run.json").read_text(encoding="utf-8"))


ROSTER = [member(1, "张伟"), member(2, "李娜")]


def posted(path: Path) -> Path:
    """The workbook as first posted: 张伟 on leave at March's activity day, 李娜 with a gambling deduction."""
    return build(path, roster=ROSTER, grid={1: marks(活动日3月="假")},
                 negative=[neg("李娜", when=dt.date(YEAR, 5, 1))])


def corrected(path: Path) -> Path:
    """After the objections: 张伟 did attend in March and was commended; 李娜's deduction was a mistake."""
    return build(path, roster=ROSTER, incentive=[act("张伟", "上级表彰", 4, when=dt.date(YEAR, 4, 2))])


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    folder = tmp_path / "inbox"
    folder.mkdir()
    posted(folder / "a.xlsx")
    return folder


def test_a_correction_is_listed_in_words_and_still_listed_after_an_unchanged_rerun(inbox, tmp_path):
    out = tmp_path / "out"
    run(inbox, out, "--period", "h1")
    corrected(inbox / "a.xlsx")
    result = run(inbox, out, "--period", "h1")
    changes = {c["name"]: c for c in manifest(out)["changes"]}
    assert (changes["张伟"]["old_total"], changes["张伟"]["new_total"]) == (26.0, 31.0)
    assert changes["张伟"]["reasons"] == ["活动日3月 由「假」改为「√」", "新增激励积分：上级表彰 4分 2026-04-02"]
    assert changes["李娜"]["reasons"] == ["删除扣分：参与赌博 2026-05-01"]
    assert "2 名党员的总分有变化" in result.output
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "活动日3月 由「假」改为「√」" in index and "O3" not in index

    result = run(inbox, out, "--period", "h1")  # nothing changed since: the correction is still on record
    m = manifest(out)
    assert m["changes"] == []
    assert {c["name"]: c["reasons"] for c in m["changes_since_first"]} == {
        "张伟": ["活动日3月 由「假」改为「√」", "新增激励积分：上级表彰 4分 2026-04-02"],
        "李娜": ["删除扣分：参与赌博 2026-05-01"]}
    earlier = [json.loads(p.read_text(encoding="utf-8"))["run_at"] for p in (out / "历史").glob("*/run.json")]
    assert len(earlier) == 2 and m["first_run"] == min(earlier)
    assert "与本期第一次计分" in result.output
    assert "删除扣分：参与赌博 2026-05-01" in (out / "index.html").read_text(encoding="utf-8")
    # 历史/ keeps each earlier run's notices: what was posted can always be shown
    notices = sorted((out / "历史").glob("*/支部/第一党支部/*公示.html"))
    assert len(notices) == 2
    first_notice = notices[0].read_text(encoding="utf-8")
    assert ">26<" in first_notice  # 张伟 as first posted


def test_history_never_overwrites_a_run_of_unknown_time(inbox, tmp_path):
    out = tmp_path / "out"
    run(inbox, out)
    (out / "run.json").unlink()
    run(inbox, out)
    (out / "run.json").unlink()
    run(inbox, out)
    assert len([p for p in (out / "历史").iterdir() if (p / "scores.csv").exists()]) == 2


@pytest.mark.parametrize("damage, said", [
    ("gbk", "GBK"),
    ("no_manifest", "run.json 已被删除"),
    ("bad_manifest", "run.json 已损坏"),
    ("no_ledger", "没有 ledger.csv"),
])
def test_a_previous_out_edited_by_hand_costs_at_most_the_change_report(inbox, tmp_path, damage, said):
    out = tmp_path / "out"
    run(inbox, out)
    if damage == "gbk":  # Excel on a Chinese Windows re-saves the CSV in GBK, and drops the trailing .0
        text = (out / "scores.csv").read_text(encoding="utf-8-sig").replace(".0,", ",")
        (out / "scores.csv").write_bytes(text.encode("gbk"))
    elif damage == "no_manifest":
        (out / "run.json").unlink()
    elif damage == "bad_manifest":
        (out / "run.json").write_text('{"year": 2026, "peri', encoding="utf-8")
    else:
        (out / "ledger.csv").unlink()
    kept = (out / "scores.csv").read_bytes()
    corrected(inbox / "a.xlsx")
    result = run(inbox, out)
    assert result.exit_code == 0, result.output
    assert said in result.output and "Traceback" not in result.output
    m = manifest(out)
    assert any(said in n for n in m["comparison_notes"])
    assert said in (out / "index.html").read_text(encoding="utf-8")
    # what could be compared still is: the totals, read whatever the encoding
    changes = {c["name"]: c for c in m["changes"]}
    assert (changes["张伟"]["old_total"], changes["张伟"]["new_total"]) == (59.0, 64.0)
    assert set(changes) == {"张伟", "李娜"}  # nobody listed for a 64 written as "64"
    if damage == "no_ledger":  # the marks still say why for the grid, the ledger's part is not guessed
        assert changes["张伟"]["reasons"] == ["活动日3月 由「假」改为「√」"]
    # and what it could keep is in 历史/
    assert any(p.read_bytes() == kept for p in (out / "历史").glob("*/scores.csv"))


def test_reasons_survive_a_branch_name_with_a_comma_and_a_formula_start(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    name = '-第一,"党支部"'  # (a leading = would be a formula in the test's own workbook)
    build(inbox / "a.xlsx", info_over={"branch": name}, roster=ROSTER, grid={1: marks(活动日3月="假")})
    out = tmp_path / "out"
    run(inbox, out)
    build(inbox / "a.xlsx", info_over={"branch": name}, roster=ROSTER)
    run(inbox, out)
    assert [(c["branch"], c["reasons"]) for c in manifest(out)["changes"]] == [
        (name, ["活动日3月 由「假」改为「√」"])]
