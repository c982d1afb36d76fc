"""End to end: `pointsbatch run` over generated inboxes, checking every output."""

from __future__ import annotations

import csv
import email
import hashlib
import json
import shutil
import subprocess
import zipfile
from email.policy import default as default_policy
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import act, build, marks, member, neg, registry, run
from openpyxl import load_workbook

from pointsbatch.cli import main
from pointsbatch.render.town import CSV_COLUMNS


def read_csv(path: Path) -> list[dict[str, str]]:
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    folder = tmp_path / "inbox"
    folder.mkdir()
    build(folder / "一支部.xlsx", info_over={"branch": "第一党支部"},
          incentive=[act("张三", "志愿服务", 3, "是")], negative=[neg("李四")])
    build(folder / "二支部.xlsx", info_over={"branch": "第二党支部", "email": "from-workbook@example.org"},
          roster=[member(1, "王五"), member(2, "赵六"), member(3, "孙七")])
    build(folder / "三支部.xlsx", info_over={"branch": "第三党支部"}, incentive=[act("张三", "志愿服务", 5)])
    (folder / "~$一支部.xlsx").write_bytes(b"lock")
    (folder / "说明.txt").write_text("不是工作簿", encoding="utf-8")
    return folder


def test_run_writes_every_output(inbox, tmp_path):
    out = tmp_path / "out"
    before = {p.name: p.read_bytes() for p in inbox.iterdir()}
    result = run(inbox, out, "--registry", str(registry(tmp_path / "r.xlsx", [
        ("第一党支部", "one@example.org"), ("第二党支部", "two@example.org"), ("第三党支部", "three@example.org"),
        ("第四党支部", "four@example.org")])))
    assert result.exit_code == 1, result.output
    assert "通过 2 份，退回 1 份，忽略 2 份，未报送 1 个支部" in result.output
    # inputs untouched
    assert {p.name: p.read_bytes() for p in inbox.iterdir()} == before
    # scores.csv
    rows = read_csv(out / "scores.csv")
    assert list(rows[0].keys()) == CSV_COLUMNS
    zhang = next(r for r in rows if r["支部名称"] == "第一党支部" and r["姓名"] == "张三")
    assert (zhang["基础分"], zhang["激励分"], zhang["总分"], zhang["等次"], zhang["奖励上限（元）"]) == (
        "60.0", "4.0", "64.0", "合格", "128.00")
    li = next(r for r in rows if r["姓名"] == "李四")
    assert li["扣分"] == "5.0" and li["总分"] == "55.0" and li["等次"] == "不合格" and li["奖励上限（元）"] == ""
    assert {r["支部名称"] for r in rows} == {"第一党支部", "第二党支部"}
    # run.json
    manifest = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert manifest["year"] == 2026 and manifest["period"] == "annual"
    assert manifest["rules"]["sha256"] and manifest["missing"] == ["第四党支部"]
    files = {f["name"]: f for f in manifest["files"]}
    assert files["~$一支部.xlsx"]["status"] == "ignored" and files["说明.txt"]["status"] == "ignored"
    assert files["一支部.xlsx"]["sha256"] == hashlib.sha256((inbox / "一支部.xlsx").read_bytes()).hexdigest()
    bad = files["三支部.xlsx"]
    assert bad["status"] == "rejected"
    assert {"severity": "error", "code": "score_above_item_max", "sheet": "激励积分", "cell": "F2"}.items() <= \
        bad["problems"][0].items()
    for item in manifest["outputs"]:
        assert hashlib.sha256((out / item["path"]).read_bytes()).hexdigest() == item["sha256"]
    # branch results and notice
    folder = out / "支部" / "第一党支部"
    results = load_workbook(folder / "第一党支部2026年度积分结果.xlsx")
    assert results.sheetnames == ["积分结果", "积分明细", "复核提示", "异议处理", "计分规则"]
    ws = results["积分结果"]
    assert ws["B4"].value == "张三" and ws["H4"].value == 64 and isinstance(ws["H4"].value, (int, float))
    assert ws["L4"].value == 27 + 4  # half-year score in an annual run
    ledger_cells = [c.value for c in results["积分明细"]["G"]]
    assert "F2" in ledger_cells
    notice = (folder / "第一党支部2026年度积分公示.html").read_text(encoding="utf-8")
    assert "张三" in notice and "李四" in notice and "1980" not in notice and "参与赌博" not in notice
    assert "http" not in notice and "<script" not in notice
    # feedback for the rejected one
    marked = load_workbook(out / "问题反馈" / "三支部_问题标注.xlsx")
    assert marked.sheetnames[0] == "问题清单" and marked["激励积分"]["F2"].comment is not None
    # the town
    summary = load_workbook(out / "全镇汇总.xlsx")
    assert {"各支部汇总", "全部党员", "不合格名单", "优秀名单", "统计图"} <= set(summary.sheetnames)
    assert len(summary["统计图"]._charts) == 2
    assert [summary["不合格名单"].cell(4, 3).value] == ["李四"]
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "<svg" in index and "第四党支部" in index and "未报送" in index
    # outbox: one message per branch that sent a workbook, addressed from the registry only
    msgs = {p.name: email.message_from_bytes(p.read_bytes(), policy=default_policy)
            for p in (out / "发件箱").glob("*.eml")}
    assert set(msgs) == {"第一党支部.eml", "第二党支部.eml", "第三党支部.eml"}
    assert msgs["第二党支部.eml"]["To"] == "two@example.org"
    names = [part.get_filename() for part in msgs["第一党支部.eml"].iter_attachments()]
    assert names == ["第一党支部2026年度积分结果.xlsx", "第一党支部2026年度积分公示.html",
                     "第一党支部2026年度个人积分告知单.html"]
    assert "积分结果" in msgs["第一党支部.eml"]["Subject"]
    rejected = msgs["第三党支部.eml"]
    assert [p.get_filename() for p in rejected.iter_attachments()] == ["三支部_问题标注.xlsx"]
    assert "超过单项满分" in rejected.get_body(("plain",)).get_content()


def test_without_registry_messages_are_unaddressed_unless_trusted(inbox, tmp_path):
    run(inbox, tmp_path / "a")
    msg = email.message_from_bytes((tmp_path / "a" / "发件箱" / "第二党支部.eml").read_bytes(), policy=default_policy)
    assert msg["To"] is None
    run(inbox, tmp_path / "b", "--trust-workbook-addresses")
    msg = email.message_from_bytes((tmp_path / "b" / "发件箱" / "第二党支部.eml").read_bytes(), policy=default_policy)
    assert msg["To"] == "from-workbook@example.org"


def test_second_run_is_identical_and_a_correction_is_shown(inbox, tmp_path):
    out = tmp_path / "out"
    run(inbox, out)
    first = (out / "scores.csv").read_bytes()
    run(inbox, out)
    assert (out / "scores.csv").read_bytes() == first
    history = list((out / "历史").iterdir())
    assert history and (history[0] / "scores.csv").read_bytes() == first
    # an objection during the notice: 李四's deduction was recorded in error and is removed
    build(inbox / "一支部.xlsx", info_over={"branch": "第一党支部"}, incentive=[act("张三", "志愿服务", 3, "是")],
          objections=[[None, "李四", "扣分有误", "经核实为误记", "已删除扣分记录"]])
    result = run(inbox, out)
    assert "1 名党员的总分有变化" in result.output
    manifest = json.loads((out / "run.json").read_text(encoding="utf-8"))
    change = manifest["changes"][0]
    assert (change["name"], change["old_total"], change["new_total"]) == ("李四", 55.0, 60.0)
    assert any("删除" in r and "参与赌博" in r for r in change["reasons"])
    assert "李四" in (out / "index.html").read_text(encoding="utf-8")
    objections = load_workbook(next((out / "支部" / "第一党支部").glob("*.xlsx")))["异议处理"]
    assert objections["C4"].value == "扣分有误"


def test_two_workbooks_for_one_branch_are_both_rejected(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    build(inbox / "a.xlsx")
    build(inbox / "b.xlsx", incentive=[act("张三", "志愿服务", 1)])
    out = tmp_path / "out"
    assert run(inbox, out).exit_code == 1
    manifest = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert [f["status"] for f in manifest["files"]] == ["rejected", "rejected"]
    assert all(f["problems"][0]["code"] == "file_duplicate_branch" for f in manifest["files"])
    assert not (out / "支部").exists() or not any((out / "支部").iterdir())
    assert read_csv(out / "scores.csv") == []


def test_hostile_branch_and_member_names_stay_inert(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    build(inbox / "x.xlsx", info_over={"branch": "../../x<script>"},
          roster=[member(1, "+1+cmd|'/C calc'!A0"), member(2, "<b>李四</b>"), member(3, "@SUM(A1)")])
    out = tmp_path / "work" / "out"
    result = run(inbox, out)
    assert result.exit_code == 0, result.output
    written = {p.resolve() for p in (tmp_path / "work").rglob("*")}
    lock = (tmp_path / "work" / ".pointsbatch.lock").resolve()  # the run's own (empty) lock file beside OUT
    assert all(out.resolve() in p.parents or p in (out.resolve(), lock) for p in written)
    rows = read_csv(out / "scores.csv")
    assert rows[0]["姓名"].startswith("'+") and rows[2]["姓名"].startswith("'@")
    assert rows[0]["支部名称"] == "../../x<script>"
    notice = next((out / "支部").rglob("*积分公示.html")).read_text(encoding="utf-8")
    assert "<script>" not in notice and "&lt;script&gt;" in notice and "&lt;b&gt;" in notice
    slips = next((out / "支部").rglob("*个人积分告知单.html")).read_text(encoding="utf-8")
    assert "<script>" not in slips and "<b>李四" not in slips and "&lt;b&gt;李四" in slips
    wb = load_workbook(next((out / "支部").rglob("*.xlsx")))
    cell = wb["积分结果"]["B4"]
    assert cell.data_type == "s" and cell.value.startswith("+")


def test_year_from_workbooks_and_other_years_rejected(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    build(inbox / "a.xlsx", info_over={"branch": "甲"})
    build(inbox / "b.xlsx", info_over={"branch": "乙"})
    old = build(inbox / "c.xlsx", info_over={"branch": "丙"})
    wb = load_workbook(old)
    wb["支部信息"]["B3"] = 2025
    wb.save(old)
    out = tmp_path / "out"
    run(inbox, out)
    files = {f["name"]: f for f in json.loads((out / "run.json").read_text(encoding="utf-8"))["files"]}
    assert files["c.xlsx"]["status"] == "rejected"
    assert files["c.xlsx"]["problems"][0]["code"] == "year_mismatch"


def test_half_year_run(inbox, tmp_path):
    out = tmp_path / "out"
    run(inbox, out, "--period", "h1")
    rows = read_csv(out / "scores.csv")
    assert {r["基础分"] for r in rows} == {"27.0"}
    assert (out / "支部" / "第一党支部" / "第一党支部2026年上半年积分公示.html").exists()


def test_settings_file_supplies_options(inbox, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pointsbatch.toml").write_text('[run]\nout = "from-settings"\nperiod = "h1"\n'
                                               'contact = "镇党委组织办 张干事"\n', encoding="utf-8")
    CliRunner().invoke(main, ["run", str(inbox), "--jobs", "1"], catch_exceptions=False)
    notice = next((tmp_path / "from-settings" / "支部").rglob("*积分公示.html")).read_text(encoding="utf-8")
    assert "上半年" in notice and "镇党委组织办 张干事" in notice


def test_unusable_inbox_or_registry_exits_2(tmp_path):
    assert run(tmp_path / "nope", tmp_path / "out").exit_code == 2
    (tmp_path / "in").mkdir()
    (tmp_path / "bad.xlsx").write_bytes(b"not a workbook")
    result = run(tmp_path / "in", tmp_path / "out", "--registry", str(tmp_path / "bad.xlsx"))
    assert result.exit_code == 2 and "支部名录" in result.output


def test_with_source_date_epoch_two_runs_write_identical_bytes_with_one_worker_or_two(tmp_path, monkeypatch):
    """SOURCE_DATE_EPOCH (reproducible builds) pins every timestamp: then "nothing changed" is a diff -r."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1768000000")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for i in range(4):
        build(inbox / f"{i}.xlsx", info_over={"branch": f"第{i}党支部"},
              incentive=[act("张三", "志愿服务", i)], grid={2: marks(党费1月="×")})
    build(inbox / "错.xlsx", info_over={"branch": "第九党支部", "rate": 9})  # a marked copy too
    outputs = {}
    for name, jobs in (("one", 1), ("two", 2)):
        run(inbox, tmp_path / name, jobs=jobs)
        folder = tmp_path / name
        outputs[name] = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert any(name.endswith("_问题标注.xlsx") for name in outputs["one"]) and len(outputs["one"]) > 12
    assert outputs["one"] == outputs["two"]


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
def test_notice_renders_in_headless_chromium(inbox, tmp_path):
    out = tmp_path / "out"
    run(inbox, out)
    notice = next((out / "支部" / "第一党支部").glob("*积分公示.html"))
    pdf = tmp_path / "notice.pdf"
    proc = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
         f"--print-to-pdf={pdf}", "--no-pdf-header-footer", notice.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert pdf.exists() and pdf.read_bytes().startswith(b"%PDF")
    assert "ERR_" not in proc.stderr and "Failed to load resource" not in proc.stderr
    dump = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile2'}", "--dump-dom", notice.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert "张三" in dump.stdout and "李四" in dump.stdout


def test_outputs_are_real_zip_workbooks(inbox, tmp_path):
    out = tmp_path / "out"
    run(inbox, out)
    for path in out.rglob("*.xlsx"):
        with zipfile.ZipFile(path) as zf:
            assert zf.testzip() is None


def test_an_inbox_without_workbooks_leaves_the_previous_results(inbox, tmp_path):
    out = tmp_path / "out"
    run(inbox, out)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "说明.txt").write_text("不是工作簿", encoding="utf-8")
    result = run(empty, out)
    assert result.exit_code == 2 and "没有工作簿" in result.output and "上次的结果保持不变" in result.output
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_a_town_can_restyle_outputs_with_its_own_templates(inbox, tmp_path):
    from importlib import resources

    mine = tmp_path / "我的模板"
    mine.mkdir()
    notice = resources.files("pointsbatch").joinpath("templates", "notice.html").read_text(encoding="utf-8")
    (mine / "notice.html").write_text(notice.replace("党员积分公示</h1>", "党员积分公示（本镇样式）</h1>"),
                                      encoding="utf-8")
    results = load_workbook(resources.files("pointsbatch").joinpath("templates", "支部积分结果.xlsx"))
    results["积分结果"]["A1"] = "本镇格式：{{ branch.name }}积分"
    results.save(mine / "支部积分结果.xlsx")
    summary = load_workbook(resources.files("pointsbatch").joinpath("templates", "全镇汇总.xlsx"))
    summary["各支部汇总"]["A1"] = "本镇汇总：{{ counts.accepted }}个支部"
    summary.save(mine / "全镇汇总.xlsx")
    (mine / "mail_subject.txt").write_text("【本镇】{{ branch or file }}", encoding="utf-8")
    # with worker processes: they must look in the town's folder too
    assert run(inbox, tmp_path / "out", "--templates", str(mine), "--jobs", "2").exit_code == 1
    folder = tmp_path / "out" / "支部" / "第一党支部"
    assert "（本镇样式）" in next(folder.glob("*积分公示.html")).read_text(encoding="utf-8")
    assert load_workbook(next(folder.glob("*.xlsx")))["积分结果"]["A1"].value == "本镇格式：第一党支部积分"
    assert load_workbook(tmp_path / "out" / "全镇汇总.xlsx")["各支部汇总"]["A1"].value.startswith("本镇汇总：")
    subjects = {email.message_from_bytes(p.read_bytes(), policy=default_policy)["Subject"]
                for p in (tmp_path / "out" / "发件箱").glob("*.eml")}
    assert len(subjects) >= 2 and all(s.startswith("【本镇】") for s in subjects)
    # the bundled templates are untouched and used again without the option
    run(inbox, tmp_path / "plain")
    assert "本镇样式" not in next((tmp_path / "plain" / "支部" / "第一党支部").glob("*积分公示.html")).read_text("utf-8")


def test_a_branch_twice_in_the_registry_stops_the_run_naming_both_rows(inbox, tmp_path):
    names = registry(tmp_path / "名录.xlsx", [("第一党支部", "one@example.org"), ("第二党支部", "two@example.org"),
                                            ("第一 党支部", "evil@example.org")])  # (spaces are not a new name)
    result = run(inbox, tmp_path / "out", "--registry", str(names))
    text = result.output.replace("\n", "")
    assert result.exit_code == 2 and "「第一党支部」出现了两次（B2 和 B4）" in text, text
    assert not (tmp_path / "out").exists()


def test_a_towns_templates_stay_with_the_run_that_named_them(inbox, tmp_path):
    """The templates folder is an argument of the run, not a setting of the process: the next run in the same
    process (as a library caller would make it) renders with the bundled templates again."""
    from importlib import resources

    mine = tmp_path / "我的模板"
    mine.mkdir()
    notice = resources.files("pointsbatch").joinpath("templates", "notice.html").read_text(encoding="utf-8")
    (mine / "notice.html").write_text(notice.replace("党员积分公示</h1>", "党员积分公示（本镇样式）</h1>"),
                                      encoding="utf-8")
    run(inbox, tmp_path / "mine", "--templates", str(mine))
    run(inbox, tmp_path / "bundled")
    styled = next((tmp_path / "mine" / "支部" / "第一党支部").glob("*积分公示.html")).read_text(encoding="utf-8")
    plain = next((tmp_path / "bundled" / "支部" / "第一党支部").glob("*积分公示.html")).read_text(encoding="utf-8")
    assert "（本镇样式）" in styled and "（本镇样式）" not in plain
