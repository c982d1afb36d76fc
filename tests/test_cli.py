"""The terminal speaks Chinese: click's own help and errors, dates as workbooks write them, unbroken numbers."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner
from helpers import build

from pointsbatch.cli import main

# what click says in English when left alone
CLICK_ENGLISH = re.compile(r"Usage|Options|Commands|Show this|Error|Missing|Try '|Invalid|default|required|"
                           r"No such|does not|not one of|requires an|is not a valid|extra argument", re.I)


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.mark.parametrize("command", [[], ["template"], ["check"], ["run"], ["send"]])
def test_help_pages_have_no_english_of_clicks_own(command):
    result = invoke(*command, "--help")
    assert result.exit_code == 0
    assert "用法：" in result.output and "选项：" in result.output and "显示本帮助并退出" in result.output
    assert not CLICK_ENGLISH.search(result.output), result.output


@pytest.mark.parametrize("args, said", [
    (["template"], "错误：缺少选项 -o / --output"),
    (["send", "out", "--reply-timeout", "soon"], "「soon」不是数"),
    (["send", "out", "--reply-timeout", "0.5"], "「0.5」超出范围，应不小于1"),
    (["run"], "错误：缺少参数 INBOX"),
    (["run", "x", "--period", "q2"], "「q2」不是可选的值，应为 annual 或 h1"),
    (["run", "x", "--jobs", "many"], "「many」不是整数"),
    (["run", "x", "--notice-start", "七月一日"], "「七月一日」不是日期"),
    (["run", "x", "--bogus"], "没有这个选项：--bogus"),
    (["run", "x", "--year"], "选项 --year"),
    (["bogus"], "没有这个命令：bogus"),
    (["template", "-o", "a.xlsx", "--from", "不存在.xlsx"], "找不到文件「不存在.xlsx」"),
    (["run", "x", "y"], "多余的参数"),
])
def test_click_errors_are_chinese_and_exit_2(args, said, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke(*args)
    assert result.exit_code == 2
    assert said in result.output, result.output
    assert not CLICK_ENGLISH.search(result.output), result.output


def test_check_of_a_file_that_is_not_there_says_so(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    build(tmp_path / "a.xlsx")
    result = invoke("check", "a.xlsx", "不存在.xlsx")
    assert result.exit_code == 2
    assert "找不到文件「不存在.xlsx」" in result.output and "没有发现问题" in result.output


@pytest.mark.parametrize("written", ["2026-07-06", "2026/7/6", "2026.7.6", "2026年7月6日"])
def test_notice_start_takes_the_date_forms_of_workbooks(written, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    build(inbox / "a.xlsx")
    out = tmp_path / "out"
    result = invoke("run", str(inbox), "-o", str(out), "--jobs", "1", "--period", "h1", "--notice-start", written)
    assert result.exit_code == 0, result.output
    notice = next((out / "支部").rglob("*公示.html")).read_text(encoding="utf-8")
    assert "公示时间为2026年7月6日至2026年7月10日" in notice


def test_output_to_a_file_never_breaks_a_line_and_a_missing_registry_is_said_once(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    long_name = "某某县某某镇某某村某某自然村某某组第一党支部"
    build(inbox / f"{long_name}2026年度党员积分工作簿最终版（已核对）.xlsx", info_over={"branch": long_name})
    result = invoke("run", str(inbox), "-o", str(tmp_path / "out"), "--jobs", "1")
    assert result.exit_code == 0
    assert f"{long_name}2026年度党员积分工作簿最终版（已核对）.xlsx" in result.output  # on one line
    assert result.output.count("没有指定支部名录：不检查未报送支部，邮件不写收件人") == 1


def test_a_settings_file_date_takes_the_same_forms(tmp_path, monkeypatch):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    build(inbox / "a.xlsx")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pointsbatch.toml").write_text('[run]\nnotice_start = "2026年7月6日"\n', encoding="utf-8")
    result = invoke("run", str(inbox), "-o", str(tmp_path / "out"), "--jobs", "1", "--period", "h1")
    assert result.exit_code == 0, result.output
    notice = next((tmp_path / "out" / "支部").rglob("*公示.html")).read_text(encoding="utf-8")
    assert "公示时间为2026年7月6日" in notice
    (tmp_path / "pointsbatch.toml").write_text('[run]\nnotice_start = "七月六日"\n', encoding="utf-8")
    result = invoke("run", str(inbox), "-o", str(tmp_path / "out"), "--jobs", "1", "--period", "h1")
    assert result.exit_code == 2 and "「七月六日」不是日期" in result.output


def test_ctrl_c_before_the_work_begins_exits_2_saying_nothing_was_written(tmp_path, monkeypatch):
    """Ctrl-C while the command line is still being read (click turns it into Abort): exit 2, as for any run that did
    not happen, not 1 (which says workbooks were sent back)."""
    import pointsbatch.cli as cli

    def interrupted(*_args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.DATE, "convert", interrupted)
    (tmp_path / "收件").mkdir()
    result = CliRunner().invoke(main, ["run", str(tmp_path / "收件"), "--run-date", "2027-01-15"])
    assert result.exit_code == 2 and "已中止，没有写入任何文件" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["收件"]


def test_check_marked_of_a_workbook_no_writer_can_copy_says_so_without_a_traceback(tmp_path):
    """A cell with a duplicated attribute: calamine reads the workbook, lxml and openpyxl refuse to (no copy)."""
    import zipfile

    from helpers import member

    source = build(tmp_path / "源.xlsx", roster=[member(1, "张三", birth="abc"), member(2, "李四")])
    odd = tmp_path / "坏.xlsx"
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(odd, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "xl/worksheets/sheet3.xml":
                data = data.replace(b'<c r="D2" s="9" t="inlineStr">', b'<c r="D2" s="9" t="inlineStr" t="inlineStr">')
                assert b't="inlineStr" t="inlineStr"' in data
            dst.writestr(info, data)
    (tmp_path / "标注").mkdir()
    result = CliRunner().invoke(main, ["check", "--marked", str(tmp_path / "标注"), str(odd)])
    assert result.exit_code == 2 and "无法为这个工作簿生成标注副本" in result.output
    assert "Traceback" not in result.output and list((tmp_path / "标注").iterdir()) == []
