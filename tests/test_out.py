"""OUT belongs to the batch, and to one year and period: every case a clerk or a branch could bring about."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import helpers
import pytest
from helpers import RUN_DATE, build, member
from openpyxl import load_workbook


class Ran:
    """A finished command: its exit code and what it printed, with the console's line breaks taken out."""

    def __init__(self, result) -> None:
        self.exit_code = result.exit_code
        self.output = result.output.replace("\n", "")


def run(inbox: Path, *extra: str) -> Ran:
    return Ran(helpers.run(inbox, None, *extra))


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_folder_of_documents_is_refused_and_left_as_it_was(inbox, tmp_path):
    docs = tmp_path / "我的文档"
    docs.mkdir()
    (docs / "报告.docx").write_bytes(b"PK important")
    (docs / "子目录").mkdir()
    (docs / "子目录" / "照片.jpg").write_bytes(b"\xff\xd8")
    before = snapshot(docs)
    result = run(inbox, "-o", str(docs))
    assert result.exit_code == 2 and "不是 pointsbatch 的计分结果" in result.output
    assert "Traceback" not in result.output
    assert snapshot(docs) == before and sorted(p.name for p in docs.iterdir()) == ["子目录", "报告.docx"]


def test_out_holding_the_inbox_or_the_working_folder_is_refused(inbox, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "支部名录.xlsx").write_bytes(b"x")
    before = snapshot(tmp_path)
    result = run(Path("收件"), "-o", ".")
    assert result.exit_code == 2 and "收件文件夹" in result.output and "在输出文件夹" in result.output
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("what", ["registry", "rules", "settings", "templates"])
def test_an_input_inside_out_is_refused(inbox, tmp_path, monkeypatch, what):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    extra: list[str] = []
    if what == "registry":
        (out / "名录.xlsx").write_bytes(b"x")
        extra = ["--registry", str(out / "名录.xlsx")]
    elif what == "rules":
        (out / "规则.toml").write_text("", encoding="utf-8")
        extra = ["--rules", str(out / "规则.toml")]
    elif what == "templates":
        (out / "模板").mkdir()
        extra = ["--templates", str(out / "模板")]
    else:
        (tmp_path / "pointsbatch.toml").write_text("[run]\n", encoding="utf-8")
        monkeypatch.chdir(out)
        (out / "pointsbatch.toml").write_text("[run]\n", encoding="utf-8")
        extra = []
        before = snapshot(out)
        result = run(inbox, "-o", ".")
        assert result.exit_code == 2 and "设置文件" in result.output, result.output
        assert snapshot(out) == before
        return
    before = snapshot(out)
    result = run(inbox, "-o", str(out), *extra)
    assert result.exit_code == 2 and "在输出文件夹" in result.output, result.output
    assert snapshot(out) == before


def test_out_inside_the_inbox_is_refused(inbox):
    before = snapshot(inbox)
    result = run(inbox, "-o", str(inbox / "结果"))
    assert result.exit_code == 2 and "在收件文件夹" in result.output
    assert snapshot(inbox) == before


def test_default_out_is_one_folder_per_year_and_period_and_an_inbox_inside_results_is_safe(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    inbox = tmp_path / "results" / "收件"  # the clerk keeps the inbox inside results/
    inbox.mkdir(parents=True)
    build(inbox / "一支部.xlsx", info_over={"branch": "第一党支部"})
    before = snapshot(inbox)
    assert run(inbox).exit_code == 0
    assert run(inbox, "--period", "h1").exit_code == 0
    assert run(inbox).exit_code == 0
    annual, h1 = tmp_path / "results" / "2026年度", tmp_path / "results" / "2026年上半年"
    assert json.loads((annual / "run.json").read_text("utf-8"))["period"] == "annual"
    assert json.loads((h1 / "run.json").read_text("utf-8"))["period"] == "h1"
    assert len(list((annual / "历史").iterdir())) == 1 and not (h1 / "历史").exists()
    assert snapshot(inbox) == before


def test_a_run_into_another_periods_or_years_results_is_refused_with_the_folder_to_use(inbox, tmp_path):
    out = tmp_path / "out"
    assert run(inbox, "-o", str(out)).exit_code == 0
    before = snapshot(out)
    result = run(inbox, "-o", str(out), "--period", "h1")
    assert result.exit_code == 2 and "2026年上半年" in result.output and "2026年度" in result.output
    result = run(inbox, "-o", str(out), "--year", "2027")
    assert result.exit_code == 2 and "2027年度" in result.output
    assert snapshot(out) == before


def test_files_the_clerk_put_in_out_or_changed_there_are_kept(inbox, tmp_path):
    out = tmp_path / "out"
    run(inbox, "-o", str(out))
    (out / "我的笔记.txt").write_text("要问二支部", encoding="utf-8")
    notice = next((out / "支部" / "第一党支部").glob("*.html"))
    notice.write_text(notice.read_text("utf-8") + "<!-- 手工改过 -->", encoding="utf-8")
    edited = notice.read_bytes()
    result = run(inbox, "-o", str(out))
    assert result.exit_code == 0 and "已原样保留" in result.output
    assert (out / "我的笔记.txt").read_text("utf-8") == "要问二支部"
    kept = [p for p in (out / "历史").rglob(notice.name)]
    assert [p.read_bytes() for p in kept] == [edited]
    assert notice.read_bytes() != edited  # the run's own notice is back in its place


def test_without_run_json_a_marked_out_is_still_the_batchs_and_its_files_are_kept(inbox, tmp_path):
    out = tmp_path / "out"
    run(inbox, "-o", str(out))
    (out / "run.json").unlink()
    old_scores = (out / "scores.csv").read_bytes()
    result = run(inbox, "-o", str(out))
    assert result.exit_code == 0, result.output
    assert [p.read_bytes() for p in (out / "历史").rglob("scores.csv")] == [old_scores]


def test_look_alike_file_names_get_their_own_marked_copies_and_mail(tmp_path):
    inbox = tmp_path / "收件"
    inbox.mkdir()
    # two branches' rejected workbooks whose names differ only in full-width brackets (NFKC makes them equal)
    build(inbox / "积分工作簿（1）.xlsx", info_over={"branch": "甲支部", "rate": 9},
          roster=[member(1, "甲一", birth=None)])
    build(inbox / "积分工作簿(1).xlsx", info_over={"branch": "乙支部", "rate": 9},
          roster=[member(1, "乙一", birth=None)])
    out = tmp_path / "out"
    assert run(inbox, "-o", str(out)).exit_code == 1
    copies = sorted((out / "问题反馈").glob("*_问题标注.xlsx"))
    assert len(copies) == 2
    owners = {load_workbook(c)["党员名册"]["B2"].value for c in copies}
    assert owners == {"甲一", "乙一"}
    manifest = json.loads((out / "run.json").read_text("utf-8"))
    outputs = [o for f in manifest["files"] for o in f["outputs"]]
    assert len(outputs) == len(set(outputs)) == 4
    import email
    from email.policy import default

    for eml in (out / "发件箱").glob("*.eml"):
        msg = email.message_from_bytes(eml.read_bytes(), policy=default)
        branch = str(msg["X-Pointsbatch-Branch"])
        for part in msg.iter_attachments():
            if part.get_filename().endswith(".xlsx"):
                wb = load_workbook(__import__("io").BytesIO(part.get_content()))
                assert wb["支部信息"]["B2"].value == branch


def test_branch_names_that_make_the_same_folder_name_get_distinct_folders(tmp_path):
    inbox = tmp_path / "收件"
    inbox.mkdir()
    build(inbox / "a.xlsx", info_over={"branch": "城关/一支部"}, roster=[member(1, "甲")])
    build(inbox / "b.xlsx", info_over={"branch": "城关:一支部"}, roster=[member(1, "乙")])
    out = tmp_path / "out"
    assert run(inbox, "-o", str(out)).exit_code == 0
    folders = sorted(p.name for p in (out / "支部").iterdir())
    assert folders == ["城关_一支部", "城关_一支部（2）"]
    names = {folder: {load_workbook(x)["积分结果"]["B4"].value for x in (out / "支部" / folder).glob("*.xlsx")}
             for folder in folders}
    assert names == {"城关_一支部": {"甲"}, "城关_一支部（2）": {"乙"}}
    assert all(p.name.startswith(p.parent.name) for p in (out / "支部").rglob("*.*"))


def test_a_second_run_while_one_holds_the_folder_stops_with_a_message(inbox, tmp_path):
    from pointsbatch.lock import hold

    out = tmp_path / "out"
    run(inbox, "-o", str(out))
    before = snapshot(out)
    with hold(out):
        result = run(inbox, "-o", str(out))
    assert result.exit_code == 2 and "正在使用输出文件夹" in result.output
    assert snapshot(out) == before
    assert run(inbox, "-o", str(out)).exit_code == 0  # nothing left behind that blocks the next run


def test_two_runs_at_once_leave_one_complete_out(inbox, tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "pointsbatch.cli", "run", str(inbox), "-o", str(out), "--jobs", "1",
           "--run-date", RUN_DATE]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp_path) for _ in range(2)]
    outputs = [(p.wait(timeout=300), p.stdout.read().decode("utf-8")) for p in procs]  # type: ignore[union-attr]
    assert all(code in (0, 2) for code, _ in outputs) and any(code == 0 for code, _ in outputs), outputs
    for code, text in outputs:
        assert "Traceback" not in text
        if code == 2:
            assert "正在使用输出文件夹" in text
    manifest = json.loads((out / "run.json").read_text("utf-8"))
    assert {f["status"] for f in manifest["files"]} == {"accepted"}
    assert not list(tmp_path.glob(".pointsbatch-staging-*"))


def test_a_killed_runs_staging_folder_is_removed_and_a_look_alike_folder_is_not(inbox, tmp_path):
    stale = tmp_path / ".pointsbatch-staging-99999"
    stale.mkdir()
    (stale / ".pointsbatch-staging").write_bytes(b"")
    (stale / "scores.csv").write_text("half", encoding="utf-8")
    mine = tmp_path / ".pointsbatch-staging-mine"
    mine.mkdir()
    (mine / "留着.txt").write_text("x", encoding="utf-8")
    assert run(inbox, "-o", str(tmp_path / "out")).exit_code == 0
    assert not stale.exists() and (mine / "留着.txt").exists()


def test_a_locked_or_read_only_out_is_a_clear_message_and_the_next_run_works(inbox, tmp_path, monkeypatch):
    from pointsbatch import outdir

    out = tmp_path / "out"
    run(inbox, "-o", str(out))
    before = snapshot(out)
    real = os.replace

    def refused(src, dst):
        if Path(src) == out:
            raise PermissionError(13, "Permission denied")
        return real(src, dst)

    monkeypatch.setattr(outdir.os, "replace", refused)
    result = run(inbox, "-o", str(out))
    assert result.exit_code == 2 and "Permission denied" in result.output and "请先关闭" in result.output
    assert snapshot(out) == before
    assert not list(tmp_path.glob(".pointsbatch-*"))
    monkeypatch.undo()
    assert run(inbox, "-o", str(out)).exit_code == 0


def test_a_huge_non_workbook_file_is_not_hashed_in_full(inbox, tmp_path):
    video = inbox / "会议录像.mp4"
    with video.open("wb") as fh:  # sparse: 200 MB that cost nothing to make
        fh.truncate(200 << 20)
    result = run(inbox, "-o", str(tmp_path / "out"))
    assert result.exit_code == 0
    manifest = json.loads((tmp_path / "out" / "run.json").read_text("utf-8"))
    entry = next(f for f in manifest["files"] if f["name"] == video.name)
    assert entry["status"] == "ignored" and entry["sha256"] == "" and "前 1 MiB" in entry["reason"]


def test_a_year_or_name_rejected_after_reading_is_reported_at_the_cell_the_reader_found(tmp_path):
    inbox = tmp_path / "收件"
    inbox.mkdir()
    path = build(inbox / "a.xlsx", info_over={"branch": "第一党支部"})
    wb = load_workbook(path)
    wb["支部信息"].insert_rows(1, 2)  # the recorder left two blank rows above the keys
    wb.save(path)
    build(inbox / "b.xlsx", info_over={"branch": "第一党支部"})
    assert helpers.run(inbox, tmp_path / "out", "--year", "2027").exit_code == 1
    manifest = json.loads((tmp_path / "out" / "run.json").read_text("utf-8"))
    found = {f["name"]: {(p["sheet"], p["cell"], p["code"], p["scope"], p["row"]) for p in f["problems"]}
             for f in manifest["files"]}
    assert found == {
        "a.xlsx": {("支部信息", "B5", "year_mismatch", "cell", 5), ("支部信息", "B4", "file_duplicate_branch", "cell", 4)},
        "b.xlsx": {("支部信息", "B3", "year_mismatch", "cell", 3), ("支部信息", "B2", "file_duplicate_branch", "cell", 2)},
    }


def test_a_file_level_problem_says_so_and_gets_no_marked_copy(tmp_path):
    inbox = tmp_path / "收件"
    inbox.mkdir()
    (inbox / "坏.xlsx").write_bytes(b"PK\x03\x04 not really a zip")
    assert helpers.run(inbox, tmp_path / "out").exit_code == 1
    manifest = json.loads((tmp_path / "out" / "run.json").read_text("utf-8"))
    [entry] = manifest["files"]
    assert [(p["code"], p["scope"], p["row"], p["column"]) for p in entry["problems"]] == [
        ("file_unreadable", "file", None, None)]
    assert entry["outputs"] == ["问题反馈/坏_问题清单.txt"]


def test_a_year_found_to_differ_from_the_others_is_reported_at_its_own_cell(tmp_path):
    inbox = tmp_path / "收件"
    inbox.mkdir()
    build(inbox / "b.xlsx", info_over={"branch": "第二党支部"})
    build(inbox / "c.xlsx", info_over={"branch": "第三党支部"})
    path = build(inbox / "a.xlsx", info_over={"branch": "第一党支部"})
    wb = load_workbook(path)
    wb["支部信息"]["B3"] = 2025
    wb["支部信息"].insert_rows(1)
    wb.save(path)
    assert helpers.run(inbox, tmp_path / "out").exit_code == 1
    manifest = json.loads((tmp_path / "out" / "run.json").read_text("utf-8"))
    [entry] = [f for f in manifest["files"] if f["name"] == "a.xlsx"]
    assert [(p["sheet"], p["cell"], p["code"]) for p in entry["problems"]] == [("支部信息", "B4", "year_mismatch")]


def test_a_name_of_four_byte_characters_gets_short_enough_file_names(tmp_path):
    inbox = tmp_path / "收件"
    inbox.mkdir()
    long_name = "𠀀" * 60  # CJK Extension B: four bytes each in UTF-8
    build(inbox / "a.xlsx", info_over={"branch": long_name})
    build(inbox / f"{'😀' * 60}.xlsx", info_over={"branch": "第二党支部", "rate": 9})  # rejected: its marked copy
    build(inbox / "c.xlsx", info_over={"branch": "第三党支部"})
    result = helpers.run(inbox, tmp_path / "out")
    assert result.exit_code == 1, result.output
    manifest = json.loads((tmp_path / "out" / "run.json").read_text("utf-8"))
    assert [f["status"] for f in manifest["files"]] == ["accepted", "accepted", "rejected"]
    for path in (tmp_path / "out").rglob("*"):
        assert len(path.name.encode("utf-8")) <= 255
    assert {f["branch"] for f in manifest["files"] if f["status"] == "accepted"} == {long_name, "第三党支部"}


def test_a_pipe_or_a_link_to_a_device_in_the_inbox_is_ignored_without_being_read(inbox, tmp_path):
    os.mkfifo(inbox / "管道.xlsx")
    (inbox / "零.xlsx").symlink_to("/dev/zero")
    (inbox / "口令.txt").symlink_to("/etc/hostname")
    result = helpers.run(inbox, tmp_path / "out")  # (reading the pipe would wait for ever)
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "out" / "run.json").read_text("utf-8"))
    odd = {f["name"]: (f["status"], f["sha256"]) for f in manifest["files"] if f["name"] in ("管道.xlsx", "零.xlsx", "口令.txt")}
    assert odd == {"管道.xlsx": ("ignored", ""), "零.xlsx": ("ignored", ""), "口令.txt": ("ignored", "")}


def test_a_workbook_filled_in_under_another_registry_branchs_name_is_held_not_mailed(tmp_path):
    samples = Path(__file__).parent.parent / "sample_workbooks"
    inbox = tmp_path / "收件"
    inbox.mkdir()
    path = inbox / "城关村党支部2026.xlsx"
    wb = load_workbook(samples / path.name)
    wb["支部信息"]["B2"] = "红星村党支部"  # 城关村's members, in a workbook that now claims to be 红星村's
    wb.save(path)
    registry = Path(__file__).parent.parent / "examples" / "支部名录.xlsx"
    result = helpers.run(inbox, tmp_path / "out", "--registry", str(registry))
    assert result.exit_code == 1
    manifest = json.loads((tmp_path / "out" / "run.json").read_text("utf-8"))
    [entry] = manifest["files"]
    assert entry["status"] == "rejected" and {p["code"] for p in entry["problems"] if p["severity"] == "error"} == {
        "file_names_other_branch"}
    assert not (tmp_path / "out" / "支部").exists()
    [message] = (tmp_path / "out" / "发件箱").glob("*.eml")
    assert b"\nTo:" not in message.read_bytes()  # mailed to nobody: the clerk forwards it
    assert [h["file"] for h in manifest["mail_held"]] == [path.name]


def test_empty_folders_and_links_the_clerk_made_in_out_survive_the_next_run(inbox, tmp_path):
    out = tmp_path / "out"
    run(inbox, "-o", str(out))
    docs = tmp_path / "文档"
    docs.mkdir()
    (docs / "通知.docx").write_bytes(b"PK doc")
    (out / "我的空文件夹").mkdir()
    (out / "支部" / "第一党支部" / "批注").mkdir()
    (out / "文档链接").symlink_to(docs)
    (out / "通知链接.docx").symlink_to(docs / "通知.docx")
    assert run(inbox, "-o", str(out)).exit_code == 0
    assert (out / "我的空文件夹").is_dir() and (out / "支部" / "第一党支部" / "批注").is_dir()
    assert (out / "文档链接").is_symlink() and os.readlink(out / "文档链接") == str(docs)
    assert (out / "通知链接.docx").is_symlink() and (out / "通知链接.docx").read_bytes() == b"PK doc"
    assert (docs / "通知.docx").read_bytes() == b"PK doc" and sorted(p.name for p in docs.iterdir()) == ["通知.docx"]
