"""Broken, foreign and hostile files in the inbox: each is rejected or ignored with a Chinese reason, the others
are still processed, inputs stay byte-identical and nothing is written outside OUT."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from helpers import YEAR, act, build, load, member, run, run_measured
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook

from pointsbatch import batch
from pointsbatch.workbook.read import read_workbook


def codes_of(path: Path) -> set[str]:
    return {p.code for p in load(path).problems}


# --- files that are not (good) workbooks ----------------------------------------------------------------------

def test_not_a_workbook_and_truncated(tmp_path):
    junk = tmp_path / "junk.xlsx"
    junk.write_bytes(b"hello, this is not a spreadsheet")
    assert codes_of(junk) == {"file_unreadable"}
    good = build(tmp_path / "good.xlsx")
    cut = tmp_path / "cut.xlsx"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    assert codes_of(cut) == {"file_unreadable"}
    empty = tmp_path / "empty.xlsx"
    empty.write_bytes(b"")
    assert codes_of(empty) == {"file_unreadable"}


def test_encrypted_workbook(tmp_path):
    # An encrypted .xlsx is an OLE2 container holding an EncryptionInfo stream (MS-OFFCRYPTO); this is its shape.
    fake = tmp_path / "locked.xlsx"
    fake.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504 + "EncryptionInfo".encode("utf-16-le"))
    problems = load(fake).problems
    assert [p.code for p in problems] == ["file_encrypted"]
    assert "密码" in problems[0].message


@pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice (libreoffice-calc-nogui) is not installed")
def test_old_xls_is_sent_back_with_save_as_advice(tmp_path):
    src = build(tmp_path / "src" / "旧格式.xlsx")
    subprocess.run(["soffice", "--headless", f"-env:UserInstallation=file://{tmp_path}/profile", "--convert-to",
                    "xls", "--outdir", str(tmp_path / "inbox"), str(src)], check=True, timeout=180,
                   capture_output=True)
    xls = tmp_path / "inbox" / "旧格式.xls"
    renamed = tmp_path / "inbox" / "改了扩展名.xlsx"
    shutil.copy(xls, renamed)
    result = run(tmp_path / "inbox", tmp_path / "out")
    assert result.exit_code == 1
    files = {f["name"]: f for f in json.loads((tmp_path / "out" / "run.json").read_text("utf-8"))["files"]}
    for name in ("旧格式.xls", "改了扩展名.xlsx"):
        assert files[name]["status"] == "rejected"
        assert "另存为.xlsx" in files[name]["problems"][0]["message"]


def _zip_with(path: Path, parts: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in parts.items():
            zf.writestr(name, data)
    return path


def make_zip_bomb(path: Path, scratch: Path) -> Path:
    """A real workbook plus one part that inflates from well under 1 MB to 60 MB."""
    good = build(scratch / "bomb-base.xlsx")
    with zipfile.ZipFile(good) as zf:
        parts = {n: zf.read(n) for n in zf.namelist()}
    parts["xl/media/bomb.bin"] = b"\0" * (60 * 1024 * 1024)
    return _zip_with(path, parts)


def test_zip_bomb_is_refused_before_reading(tmp_path):
    bomb = make_zip_bomb(tmp_path / "bomb.xlsx", tmp_path)
    assert bomb.stat().st_size < 1024 * 1024
    problems = load(bomb).problems
    assert [p.code for p in problems] == ["file_too_large"]


def make_entity_bomb(path: Path, scratch: Path) -> Path:
    good = build(scratch / "entity-base.xlsx")
    with zipfile.ZipFile(good) as zf:
        parts = {n: zf.read(n) for n in zf.namelist()}
        sheets = [n for n in zf.namelist() if n.startswith("xl/worksheets/sheet")]
    lol = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lolololololololololol">'
           + "".join(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10))
           + ']>')
    for sheet in sheets:
        body = parts[sheet].split(b"?>", 1)[-1]
        parts[sheet] = lol.encode() + body.replace(b"<sheetData>", b"<sheetData>&lol9;", 1)
    return _zip_with(path, parts)


def test_xml_entity_bomb_is_not_expanded(tmp_path):
    bomb = make_entity_bomb(tmp_path / "entities.xlsx", tmp_path)
    validation = load(bomb)
    assert [p.code for p in validation.problems] == ["file_unreadable"]
    assert "实体" in validation.problems[0].message


def make_million_rows(path: Path, scratch: Path) -> Path:
    good = build(scratch / "million-base.xlsx")
    with zipfile.ZipFile(good) as zf:
        parts = {n: zf.read(n) for n in zf.namelist()}
    workbook = parts["xl/workbook.xml"].decode()
    rels = parts["xl/_rels/workbook.xml.rels"].decode()
    target = next(t for t in rels.split('Target="')[1:] if "sheet" in t).split('"')[0]
    sheet_id = [s for s in workbook.split("<sheet ") if 'name="激励积分"' in s][0].split('r:id="')[1].split('"')[0]
    part = [r for r in rels.split("<Relationship ") if f'Id="{sheet_id}"' in r][0].split('Target="')[1].split('"')[0]
    part = part.lstrip("/")
    part = part if part.startswith("xl/") else "xl/" + part
    rows = "".join(f'<row r="{r}"><c r="A{r}" t="inlineStr"><is><t>x</t></is></c></row>' for r in range(1, 1_000_001))
    parts[part] = (f'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/'
                   f'spreadsheetml/2006/main"><sheetData>{rows}</sheetData></worksheet>').encode()
    del target
    return _zip_with(path, parts)


def test_a_sheet_with_a_million_rows_is_refused_before_it_is_read(tmp_path):
    big = make_million_rows(tmp_path / "million.xlsx", tmp_path)
    problems = load(big).problems
    assert [(p.code, p.scope) for p in problems] == [("file_too_large", "file")]


# --- foreign and odd workbooks -----------------------------------------------------------------------------------

def test_some_other_spreadsheet_is_not_standard(tmp_path):
    from openpyxl import Workbook

    wb = Workbook()
    wb.active.append(["日期", "摘要", "金额"])
    wb.save(tmp_path / "财务报表.xlsx")
    problems = load(tmp_path / "财务报表.xlsx").problems
    assert [p.code for p in problems] == ["file_not_standard"]


def test_formulas_never_calculated_are_reported_not_read_as_blank(tmp_path):
    path = build(tmp_path / "f.xlsx", incentive=[act("张三", "志愿服务", 2)])
    wb = load_workbook(path)
    wb["激励积分"]["F2"] = "=1+1"
    wb.save(path)
    v = load(path)
    assert ("激励积分", "F2", "formula_uncalculated") in {(p.sheet, p.cell, p.code) for p in v.problems}
    assert not v.accepted


def _with_comment(path: Path, part_of, before: bytes, fragment: bytes, times: int) -> Path:
    """`path` with a comment repeating `fragment` inserted before `before` in the part `part_of(path)` names."""
    with zipfile.ZipFile(path) as zf:
        parts = {n: zf.read(n) for n in zf.namelist()}
    part = part_of(path)
    parts[part] = parts[part].replace(before, b"<!-- " + fragment * times + b" -->" + before, 1)
    return _zip_with(path, parts)


def _part_of_sheet(name: str):
    from pointsbatch.workbook.read import sheet_parts

    def part_of(path: Path) -> str:
        with zipfile.ZipFile(path) as zf:
            return next(part for part, sheet in sheet_parts(zf.read).items() if sheet == name)

    return part_of


def make_sheet_list_in_a_comment(path: Path, times: int = 2500) -> Path:
    """A good workbook whose list of sheets follows a comment of `<sheet name="x" ` × `times` (40 KB): a pattern
    that backtracks over it took 332 seconds."""
    build(path)
    return _with_comment(path, lambda _: "xl/workbook.xml", b"<sheets>", b'<sheet name="x" ', times)


def make_cells_in_a_comment(path: Path, times: int = 6000) -> Path:
    """A good workbook with a formula never calculated (激励积分 F2) after a comment of `<f> ` then `<c r="A1" ` ×
    `times` (60 KB) in the same sheet: a pattern that backtracks over it took 210 seconds."""
    build(path, incentive=[act("张三", "志愿服务", 2)])
    wb = load_workbook(path)
    wb["激励积分"]["F2"] = "=1+1"
    wb.save(path)
    return _with_comment(path, _part_of_sheet("激励积分"), b"<sheetData>", b'<f> ' + b'<c r="A1" ' * times, 1)


def test_tags_repeated_in_a_comment_are_scanned_once_and_change_nothing(tmp_path):
    """Every pattern applied to a part's XML is linear: repeated half-tags in a comment (which a backtracking
    pattern took minutes over) are ignored, and what follows them is read as before."""
    listed = make_sheet_list_in_a_comment(tmp_path / "sheets.xlsx")
    assert load(listed).problems == [] and load(listed).accepted
    cells = make_cells_in_a_comment(tmp_path / "cells.xlsx")
    problems = load(cells).problems
    assert [(p.sheet, p.cell) for p in problems if p.code == "formula_uncalculated"] == [("激励积分", "F2")]
    quoted = _with_comment(build(tmp_path / "quoted.xlsx"), _part_of_sheet("党员名册"), b"<sheetData>",
                           b'<c r="A1" a="<c r="A1" ', 6000)  # (quoted values that never close, for extent.py)
    assert load(quoted).accepted


def test_hidden_merged_renamed_and_reordered_sheets_are_read(tmp_path):
    path = build(tmp_path / "odd.xlsx", incentive=[act("张三", "志愿服务", 2)])
    wb = load_workbook(path)
    wb["党员名册"].title = "党员名册 "  # a stray space
    wb["激励积分"].title = "激励积分\u3000"  # an ideographic space normalises away too
    wb.move_sheet("一票否决", offset=-5)
    wb["负面清单"].sheet_state = "hidden"
    wb["基础积分"].row_dimensions[3].hidden = True
    wb["填表说明"].merge_cells("A1:C1")
    wb["党员名册 "]["L1"] = "联系电话"
    wb.save(path)
    v = load(path)
    assert v.accepted, [p.message for p in v.problems]
    assert list(v.branch.roster["name"]) == ["张三", "李四"]


def test_control_characters_and_long_text_stay_inert(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    # a worksheet stores control characters escaped as _xHHHH_; readers turn them back into the characters
    build(inbox / "a.xlsx", info_over={"branch": "甲支部_x0007__x001B_[31m"},
          roster=[member(1, "张三"), member(2, "李_x0001_四")])
    build(inbox / "b.xlsx", info_over={"branch": "乙支部"}, roster=[member(1, "张" * 500), member(2, "李四")])
    result = run(inbox, tmp_path / "out")
    assert "Traceback" not in result.output
    files = {f["name"]: f for f in json.loads((tmp_path / "out" / "run.json").read_text("utf-8"))["files"]}
    assert files["b.xlsx"]["status"] == "rejected"
    assert files["b.xlsx"]["problems"][0]["code"] == "name_too_long"
    for eml in (tmp_path / "out" / "发件箱").glob("*.eml"):
        head = eml.read_bytes().split(b"\r\n\r\n", 1)[0]
        assert b"\x07" not in head and b"\x1b" not in head
    marked = load_workbook(tmp_path / "out" / "问题反馈" / "b_问题标注.xlsx")
    assert marked["问题清单"]["F3"].value


# --- the run as a whole --------------------------------------------------------------------------------------

def test_everything_at_once_next_to_good_workbooks(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    build(inbox / "好1.xlsx", info_over={"branch": "甲"})
    build(inbox / "好2.xlsx", info_over={"branch": "乙"})
    (inbox / "~$好1.xlsx").write_bytes(b"\0" * 165)
    (inbox / ".~lock.好2.xlsx#").write_text("lock", encoding="utf-8")
    (inbox / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (inbox / "照片.jpg").write_bytes(b"\xff\xd8\xff")
    (inbox / "半截.xlsx").write_bytes((inbox / "好1.xlsx").read_bytes()[:3000])
    (inbox / "随便.xlsx").write_bytes(b"PK\x03\x04garbage")
    other = build(inbox / "去年.xlsx", info_over={"branch": "丙"})
    wb = load_workbook(other)
    wb["支部信息"]["B3"] = YEAR - 1
    wb.save(other)
    (inbox / "子文件夹").mkdir()
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    make_zip_bomb(inbox / "炸弹.xlsx", scratch)
    make_entity_bomb(inbox / "实体.xlsx", scratch)
    make_million_rows(inbox / "百万行.xlsx", scratch)
    before = {p.name: p.read_bytes() for p in inbox.iterdir() if p.is_file()}
    status, output, peak_mb = run_measured(inbox, tmp_path / "out")  # (the run's own memory, not pytest's)
    assert status == 1 and "Traceback" not in output
    assert peak_mb < 1024, peak_mb
    assert {p.name: p.read_bytes() for p in inbox.iterdir() if p.is_file()} == before
    manifest = json.loads((tmp_path / "out" / "run.json").read_text("utf-8"))
    status_of = {f["name"]: f["status"] for f in manifest["files"]}
    assert status_of["好1.xlsx"] == status_of["好2.xlsx"] == "accepted"
    for name in ("~$好1.xlsx", ".~lock.好2.xlsx#", ".DS_Store", "照片.jpg", "子文件夹"):
        assert status_of[name] == "ignored"
    for name in ("半截.xlsx", "随便.xlsx", "去年.xlsx", "炸弹.xlsx", "实体.xlsx", "百万行.xlsx"):
        assert status_of[name] == "rejected"
    reasons = {f["name"]: (f.get("reason") or f["problems"][0]["message"]) for f in manifest["files"]
               if f["status"] != "accepted"}
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in r) for r in reasons.values())


def test_interrupted_run_leaves_the_previous_complete_output(tmp_path, monkeypatch):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    build(inbox / "a.xlsx", info_over={"branch": "甲"})
    build(inbox / "b.xlsx", info_over={"branch": "乙"})
    out = tmp_path / "out"
    run(inbox, out)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def interrupted(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(batch, "write_town_outputs", interrupted)
    result = run(inbox, out)
    assert result.exit_code == 2 and "已中断" in result.output
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert not list(tmp_path.glob(".pointsbatch-staging-*"))


def test_a_run_killed_between_its_two_renames_is_recovered(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    build(inbox / "a.xlsx")
    out = tmp_path / "out"
    run(inbox, out)
    previous = (out / "scores.csv").read_bytes()
    from pointsbatch.outdir import old_name

    out.rename(old_name(out))  # the state a kill between the two renames leaves
    batch.recover_interrupted(out)
    assert (out / "scores.csv").read_bytes() == previous


def test_unwritable_out_is_a_clear_message_and_status_2(tmp_path, monkeypatch):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    build(inbox / "a.xlsx")
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    result = run(inbox, blocker / "out")
    assert result.exit_code == 2 and "无法在" in result.output
    import errno

    def full(*_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(batch, "write_manifest", full)
    result = run(inbox, tmp_path / "out2")
    assert result.exit_code == 2 and "No space left" in result.output
    assert not (tmp_path / "out2").exists()


# --- fuzz -------------------------------------------------------------------------------------------------------

TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), max_size=12)
CELL = st.one_of(st.none(), TEXT, st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                 st.dates(dt.date(1900, 1, 1), dt.date(2100, 1, 1)), st.sampled_from(["√", "×", "假", "/", "是", "=1"]))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.lists(CELL, min_size=8, max_size=8), max_size=6),
       grid=st.lists(CELL, min_size=4, max_size=4), info_rate=CELL)
def test_random_cell_values_only_ever_give_problems(tmp_path, rows, grid, info_rate):
    from helpers import marks

    row = marks()
    row[:4] = [str(v) if isinstance(v, str) and v.startswith("=") else v for v in grid]
    rows = [[("'" + v) if isinstance(v, str) and v.startswith("=") else v for v in r] for r in rows]
    path = build(tmp_path / "fuzz.xlsx", incentive=rows, grid={1: row},
                 info_over={"rate": info_rate if not (isinstance(info_rate, str) and info_rate.startswith("="))
                            else None})
    v = load(path)
    assert v.accepted or any(p.is_error for p in v.problems)


@settings(max_examples=40, deadline=None)
@given(data=st.binary(max_size=4096), prefix=st.sampled_from([b"", b"PK\x03\x04", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"]))
def test_random_bytes_only_ever_give_problems(data, prefix):
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.xlsx"
        path.write_bytes(prefix + data)
        book = read_workbook(path)
        assert book.problems and all(p.message for p in book.problems)


def test_random_zip_members_only_ever_give_problems(tmp_path):
    import random

    rng = random.Random(7)
    good = build(tmp_path / "good.xlsx").read_bytes()
    for i in range(20):
        damaged = bytearray(good)
        for _ in range(20):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        path = tmp_path / f"d{i}.xlsx"
        path.write_bytes(bytes(damaged))
        v = load(path)
        assert v.accepted or v.problems


def test_a_branch_that_trips_a_bug_in_scoring_does_not_sink_the_others_scored_with_it(tmp_path, monkeypatch):
    """Workers score a chunk of branches together; one that makes scoring fail is reported alone."""
    from pointsbatch import score

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for n in range(8):  # eight workbooks: chunks of two
        build(inbox / f"{n}.xlsx", info_over={"branch": f"第{n}支部"},
              roster=[member(1, "炸弹" if n == 3 else "张三"), member(2, "李四")])
    real = score._score

    def fragile(tables, *args, **kwargs):
        if (tables["roster"]["name"] == "炸弹").any():
            raise ZeroDivisionError("a bug")
        return real(tables, *args, **kwargs)

    monkeypatch.setattr(score, "_score", fragile)
    result = run(inbox, tmp_path / "out")
    assert result.exit_code == 1
    manifest = json.loads((tmp_path / "out" / "run.json").read_text(encoding="utf-8"))
    status = {f["name"]: f["status"] for f in manifest["files"]}
    assert status == {f"{n}.xlsx": "rejected" if n == 3 else "accepted" for n in range(8)}
    assert [p["code"] for f in manifest["files"] if f["name"] == "3.xlsx" for p in f["problems"]] == ["internal_error"]
    assert "Traceback" not in result.output
    assert sorted(p.name for p in (tmp_path / "out" / "问题反馈").iterdir()) == ["3_问题清单.txt"]  # no copy
    listing = (tmp_path / "out" / "问题反馈" / "3_问题清单.txt").read_text(encoding="utf-8-sig")
    assert "处理时出错" in listing and "ZeroDivisionError" in listing


def test_a_workbook_that_trips_a_bug_in_validation_does_not_sink_the_others_validated_with_it(tmp_path,
                                                                                               monkeypatch):
    """Workbooks are validated together too; one that makes validation fail is reported alone."""
    from pointsbatch import validate

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for n in range(6):
        build(inbox / f"{n}.xlsx", info_over={"branch": f"第{n}支部"},
              roster=[member(1, "炸弹" if n == 4 else "张三"), member(2, "李四")])
    real = validate._Context.check_across

    def fragile(self):
        if (self.typed["roster"]["name"] == "炸弹").any():
            raise KeyError("a bug")
        return real(self)

    monkeypatch.setattr(validate._Context, "check_across", fragile)
    result = run(inbox, tmp_path / "out")
    assert result.exit_code == 1
    manifest = json.loads((tmp_path / "out" / "run.json").read_text(encoding="utf-8"))
    assert {f["name"]: f["status"] for f in manifest["files"]} == {
        f"{n}.xlsx": "rejected" if n == 4 else "accepted" for n in range(6)}
    assert [p["code"] for f in manifest["files"] if f["name"] == "4.xlsx" for p in f["problems"]] == ["internal_error"]
    listing = (tmp_path / "out" / "问题反馈" / "4_问题清单.txt").read_text(encoding="utf-8-sig")
    assert "处理时出错" in listing and "KeyError" in listing


def test_an_input_that_cannot_be_read_is_rejected_and_the_run_goes_on(tmp_path, monkeypatch):
    """A workbook the system refuses to read (permissions, another program's lock) is that file's problem."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    build(inbox / "好.xlsx", roster=[member(1, "张三")])
    build(inbox / "锁住.xlsx", roster=[member(1, "李四")], info_over={"branch": "第二党支部"})
    real = Path.read_bytes

    def locked(self):
        if self.name == "锁住.xlsx":
            raise PermissionError(13, "另一个程序正在使用此文件")
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", locked)
    result = run(inbox, tmp_path / "out")
    assert result.exit_code == 1, result.output
    files = {f["name"]: f for f in json.loads((tmp_path / "out" / "run.json").read_text(encoding="utf-8"))["files"]}
    assert files["好.xlsx"]["status"] == "accepted" and len(files["好.xlsx"]["sha256"]) == 64
    assert files["锁住.xlsx"]["status"] == "rejected"
    assert [p["code"] for p in files["锁住.xlsx"]["problems"]] == ["file_unreadable"]
    assert "另一个程序正在使用此文件" in files["锁住.xlsx"]["problems"][0]["message"]
