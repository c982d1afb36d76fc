"""Size is judged before it is paid: a sheet's real extent and a workbook's cell count are measured from the XML
before any reader builds a grid, and a workbook refused for size gets a problem list without a marked copy."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from helpers import build, load, run_measured
from openpyxl import load_workbook

from pointsbatch.workbook.extent import column_letters, column_number, measure
from pointsbatch.workbook.read import MAX_SHEET_CELLS, read_workbook, sheet_parts


def sheet_part(path: Path, sheet: str) -> str:
    with zipfile.ZipFile(path) as zf:
        return next(part for part, name in sheet_parts(zf.read).items() if name == sheet)


def replace_part(path: Path, part: str, write) -> None:
    """Rewrite `path` with `part` replaced by what `write(stream)` writes (streamed: the part may be huge)."""
    tmp = path.with_suffix(".tmp")
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if info.filename == part:
                with dst.open(part, "w", force_zip64=True) as stream:
                    write(stream)
            else:
                dst.writestr(info, src.read(info))
    tmp.replace(path)


def far_cell(path: Path, ref: str = "XFD20000") -> Path:
    """A good workbook, plus one value far away in 党员名册 (openpyxl writes it cheaply: cells are sparse)."""
    build(path)
    wb = load_workbook(path)
    wb["党员名册"][ref] = "x"
    wb.save(path)
    return path


HEAD = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<worksheet xmlns="http://schemas.openxmlformats.org'
        '/spreadsheetml/2006/main"><sheetData>')
TAIL = "</sheetData></worksheet>"


def ten_million_cells(path: Path) -> Path:
    """A good workbook whose hidden 下拉列表 sheet (not one the reader reads, but openpyxl would load it for a marked
    copy) holds 50,000 rows of 200 numbers: 10 million cells, written as Excel writes them."""
    build(path)
    cols = [column_letters(n) for n in range(1, 201)]

    def write(stream) -> None:
        stream.write(HEAD.encode())
        for r in range(1, 50_001):
            cells = '<c r="' + f'{r}"><v>1</v></c><c r="'.join(cols) + f'{r}"><v>1</v></c>'
            stream.write(f'<row r="{r}">{cells}</row>'.encode())
        stream.write(TAIL.encode())

    replace_part(path, sheet_part(path, "下拉列表"), write)
    return path


def run_beside_a_good_workbook(inbox: Path, out: Path) -> dict[str, dict]:
    """`run` (in a child process, its memory measured) over INBOX and a good workbook: the good one is accepted, the
    run ends without a traceback within 1 GB, the inputs are untouched; run.json's files by name."""
    build(inbox / "好.xlsx", info_over={"branch": "第二党支部"})
    before = {p.name: p.read_bytes() for p in inbox.iterdir()}
    status, output, peak_mb = run_measured(inbox, out)
    assert status == 1 and "Traceback" not in output
    assert peak_mb < 1024, peak_mb
    assert {p.name: p.read_bytes() for p in inbox.iterdir()} == before
    files = {f["name"]: f for f in json.loads((out / "run.json").read_text("utf-8"))["files"]}
    assert files["好.xlsx"]["status"] == "accepted"
    return files


def test_a_50kb_workbook_with_one_cell_at_xfd20000_is_refused_without_building_its_grid(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    far = far_cell(inbox / "远处.xlsx")
    assert far.stat().st_size < 60_000
    files = run_beside_a_good_workbook(inbox, tmp_path / "out")
    assert files["远处.xlsx"]["status"] == "rejected"
    assert {p["code"] for p in files["远处.xlsx"]["problems"]} == {"file_too_large"}
    assert "XFD20000" in files["远处.xlsx"]["problems"][0]["message"]
    # a problem list, and no marked copy: openpyxl never loads a workbook refused for size
    assert sorted(p.name for p in (tmp_path / "out" / "问题反馈").iterdir()) == ["远处_问题清单.txt"]


def test_ten_million_cells_are_refused_within_1gb_and_get_no_marked_copy(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    big = ten_million_cells(inbox / "千万.xlsx")
    assert big.stat().st_size < 50 * 1024 * 1024  # within the file-size limit: the cells are what is refused
    files = run_beside_a_good_workbook(inbox, tmp_path / "out")
    assert [p["code"] for p in files["千万.xlsx"]["problems"]] == ["file_too_large"]
    assert sorted(p.name for p in (tmp_path / "out" / "问题反馈").iterdir()) == ["千万_问题清单.txt"]


def test_a_stray_value_a_little_beyond_the_columns_read_is_still_accepted(tmp_path):
    path = far_cell(tmp_path / "稍远.xlsx", "AAA3")  # column 703, row 3: a small used range
    v = load(path)
    assert v.accepted, [p.message for p in v.problems]


# How a far cell may be spelled: every spelling a reader accepts is measured, not only Excel's own.
SPELLINGS = {
    "excel": '<row r="2000"><c r="XFD2000" t="inlineStr"><is><t>x</t></is></c></row>',
    "prefixed": '<row r="2000"><x:c xmlns:x="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
                'r="XFD2000"><x:v>1</x:v></x:c></row>',
    "r_not_first": '<row r="2000"><c t="n" r="XFD2000"><v>1</v></c></row>',
    "slash_in_attribute": '<row r="2000"><c r="XFD2000" foo="/"><v>1</v></c></row>',
    "gt_in_attribute": '<row r="2000"><c r="XFD2000" foo="/>"><v>1</v></c></row>',
    "no_r_on_cells": "<row r=\"2000\">" + "<c><v>1</v></c>" * 5000 + "</row>",
    "single_quotes": "<row r='2000'><c r='XFD2000'><v>1</v></c></row>",
    "newline_after_c": '<row r="2000"><c\nr="XFD2000"><v>1</v></c></row>',
}


@pytest.mark.parametrize("spelling", sorted(SPELLINGS))
def test_a_far_cell_is_found_however_it_is_spelled(tmp_path, spelling):
    path = build(tmp_path / "w.xlsx")
    part = sheet_part(path, "党员名册")
    with zipfile.ZipFile(path) as zf:
        xml = zf.read(part)
    xml = xml.replace(b"</sheetData>", SPELLINGS[spelling].encode() + b"</sheetData>")
    replace_part(path, part, lambda stream: stream.write(xml))
    book = read_workbook(path)
    assert [p.code for p in book.problems] == ["file_too_large"]
    assert not book.readable
    assert "2000" in book.problems[0].message


def test_measure_agrees_with_the_reader_on_ordinary_sheets(tmp_path):
    """On sheets within the limits the exact measure is never smaller than what python-calamine builds."""
    from python_calamine import CalamineWorkbook

    from pointsbatch.workbook import extent

    path = far_cell(tmp_path / "w.xlsx", "BZ150")
    wb = CalamineWorkbook.from_path(str(path))
    with zipfile.ZipFile(path) as zf:
        for part, name in sheet_parts(zf.read).items():
            xml = zf.read(part)
            exact = extent._measure_cell_by_cell(xml, 10**6)
            assert measure(xml, 10**6, 1).rows == exact.rows  # a tiny area limit forces the exact path
            sheet = wb.get_sheet_by_name(next(n for n in wb.sheet_names if n.replace(" ", "") == name))
            assert exact.rows >= sheet.height and exact.columns >= sheet.width, name
    assert (column_number(b"XFD"), column_letters(16384), column_letters(column_number(b"BZ"))) == (16384, "XFD", "BZ")
    assert MAX_SHEET_CELLS >= 20_000 * 200  # the rows and columns the reader reads always fit


SHARED_STRINGS_HEAD = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<sst xmlns="http://schemas.openxmlformats'
                       b'.org/spreadsheetml/2006/main">')


def shared_strings_bomb(path: Path, strings: int = 17_000_000) -> Path:
    """A good workbook whose shared strings table (xl/sharedStrings.xml) holds `strings` one-letter strings no cell
    uses. Random letters zip at about 14 to 1, under the compression limit: 17 million are 20 MB zipped and 289 MB
    unzipped, within the size limits, and python-calamine holds them all (1.1 GB) before reading a sheet."""
    return add_shared_strings(build(path), strings)


def add_shared_strings(path: Path, strings: int) -> Path:
    """`path` (whose strings are inline, as the test builders write them) plus a table of `strings` unused strings:
    python-calamine reads xl/sharedStrings.xml whether or not the workbook lists it."""
    import random

    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("xl/sharedStrings.xml", b"")
    letters = bytes(b"abcdefghijklmnopqrstuvwxyz0123456789"[i % 36] for i in range(256))
    rnd = random.Random(2)

    def write(stream) -> None:
        stream.write(SHARED_STRINGS_HEAD)
        for start in range(0, strings, 1_000_000):
            n = min(1_000_000, strings - start)
            chunk = bytearray(b"<si><t>a</t></si>" * n)
            chunk[7::17] = rnd.randbytes(n).translate(letters)
            stream.write(chunk)
        stream.write(b"</sst>")

    replace_part(path, "xl/sharedStrings.xml", write)
    return path


def test_a_shared_strings_bomb_is_refused_within_1gb_before_calamine_reads_it(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    bomb = shared_strings_bomb(inbox / "文字.xlsx")
    assert bomb.stat().st_size < 50 * 1024 * 1024  # within the file-size and compression limits: the count refuses
    build(inbox / "好.xlsx", info_over={"branch": "第二党支部"})
    status, output, peak_mb = run_measured(inbox, tmp_path / "out")
    assert status == 1 and "Traceback" not in output
    assert peak_mb < 1024, peak_mb
    files = {f["name"]: f for f in json.loads((tmp_path / "out" / "run.json").read_text("utf-8"))["files"]}
    assert files["好.xlsx"]["status"] == "accepted"
    problems = files["文字.xlsx"]["problems"]
    assert [p["code"] for p in problems] == ["file_too_large"] and "sharedStrings.xml" in problems[0]["message"]


def test_a_table_of_as_many_strings_as_a_workbook_may_have_cells_is_still_read(tmp_path):
    from pointsbatch.workbook.read import MAX_SHARED_STRINGS

    fits = shared_strings_bomb(tmp_path / "fits.xlsx", MAX_SHARED_STRINGS - 200)  # (the workbook's own are fewer)
    assert load(fits).accepted
    over = shared_strings_bomb(tmp_path / "over.xlsx", MAX_SHARED_STRINGS + 1)
    assert [p.code for p in read_workbook(over).problems] == ["file_too_large"]


def test_a_registry_with_a_shared_strings_bomb_stops_the_run_before_calamine_reads_it(tmp_path):
    from openpyxl import Workbook

    from pointsbatch.cli import main

    names = tmp_path / "支部名录.xlsx"
    wb = Workbook()
    wb.active.append(["支部编码", "支部名称", "上级党组织", "联系人", "联系邮箱"])
    wb.active.append(["ZB1", "城关村党支部", "镇党委", "组织委员", "a@example.org"])
    wb.save(names)
    add_shared_strings(names, 1_000_001)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    build(inbox / "好.xlsx")
    from click.testing import CliRunner

    result = CliRunner().invoke(main, ["run", str(inbox), "-o", str(tmp_path / "out"), "--registry", str(names)])
    assert result.exit_code == 2 and "支部名录" in result.output and "sharedStrings.xml" in result.output
    assert not (tmp_path / "out").exists()


def test_shared_strings_are_counted_however_prefixed_and_a_sheet_is_passed_over():
    from pointsbatch.workbook.extent import SHARED_STRING_TAG, count_shared_strings, count_tags

    parts = [b'<sst><si><t>a</t></si><si/><si\n><t>b</t></si></sst>', b'<x:sst><x:si><x:t>a</x:t></x:si></x:sst>',
             b'<worksheet><sheetView position="visible"/><c r="A1"><v>1</v></c></worksheet>', b"",
             b"<sst><sign/><si>x</si></sst>"]
    assert [count_shared_strings(p, 100) for p in parts] == [3, 1, 0, 0, 1]
    assert [count_shared_strings(p, 100) for p in parts] == [count_tags(SHARED_STRING_TAG, p, 100) for p in parts]


@pytest.mark.parametrize("formats", [120_000, 1_500_000])  # (in memory, and streamed: styles.xml beyond 16 MB)
def test_a_workbook_with_more_cell_formats_than_excel_allows_is_refused_before_openpyxl_builds_them(tmp_path,
                                                                                                    formats):
    """160,000 cell formats in a 68 KB file took the marked copy (openpyxl) 8 s and 507 MB; refused by counting."""
    path = build(tmp_path / "样式.xlsx", roster=[["x", "张三"]])  # (a mistake: a marked copy would be made)
    with zipfile.ZipFile(path) as zf:
        styles = zf.read("xl/styles.xml")
    head, rest = styles.split(b"<cellXfs", 1)
    tail = rest.split(b"</cellXfs>", 1)[1]

    def write(stream):
        stream.write(head + f'<cellXfs count="{formats}">'.encode())
        for n in range(formats):
            stream.write(b'<xf numFmtId="%d" fontId="0" fillId="0" borderId="0" xfId="0"/>' % (n % 200))
        stream.write(b"</cellXfs>" + tail)

    replace_part(path, "xl/styles.xml", write)
    problems = read_workbook(path).problems
    assert [p.code for p in problems] == ["file_too_large"] and "单元格格式超过100,000种" in problems[0].message
