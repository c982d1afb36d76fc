"""The results workbook's own writer (render/xlsx_fast.py): the same cells as XlsxWriter's public API writes, the
shared parts reused, and XlsxWriter taking over whenever the once-per-template check does not pass."""

from __future__ import annotations

import datetime as dt
import io
import shutil
import zipfile
from pathlib import Path

import pytest
from helpers import act, build, member, score
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from openpyxl import Workbook, load_workbook
from openpyxl.formatting.rule import CellIsRule, FormulaRule
from openpyxl.styles import Font, PatternFill
from python_calamine import CalamineWorkbook
from test_render import BOX, PEOPLE, TRICKY, make_template

from pointsbatch.render import xlsx_fast, xlsx_template
from pointsbatch.render.xlsx_template import _load, _write_xlsxwriter, render_xlsx

WHEN = dt.datetime(2026, 11, 1, 8, 30)


def public(template: Path, context: dict) -> bytes:
    """The same output through XlsxWriter's public API, cell by cell."""
    out = io.BytesIO()
    _write_xlsxwriter(_load(template), context, out, WHEN, private_rows=False)
    return out.getvalue()


def cells(data: bytes) -> dict[str, list[list]]:
    """Every sheet's values as python-calamine reads them (the golden test's reader)."""
    book = CalamineWorkbook.from_filelike(io.BytesIO(data))
    return {name: book.get_sheet_by_name(name).to_python() for name in book.sheet_names}


def conditional_template(path: Path) -> Path:
    make_template(path)
    wb = load_workbook(path)
    ws = wb.active
    ws.conditional_formatting.add("C4", CellIsRule(operator="lessThan", formula=["60"], font=Font(bold=True),
                                                   fill=PatternFill("solid", start_color="FFC7CE", end_color="FFC7CE")))
    ws.conditional_formatting.add("B4:B4 D4", FormulaRule(formula=["LEN(B4)>2"], border=BOX))
    ws.conditional_formatting.add("C4", CellIsRule(operator="greaterThan", formula=["90"], font=Font(italic=True)))
    ws.conditional_formatting.add("A3:D3", FormulaRule(formula=['$A$3="序号"'], font=Font(italic=True)))
    wb.save(path)
    return path


@pytest.mark.parametrize(("people", "shape"), [(PEOPLE, make_template), (TRICKY, make_template), ([], make_template),
                                               (PEOPLE, conditional_template)])
def test_the_fast_writer_gives_what_xlsxwriters_public_api_gives(tmp_path, people, shape):
    template = shape(tmp_path / "t.xlsx")
    context = {"title": "第一支部", "people": people, "clerk": "王五", "total": 172.5}
    render_xlsx(template, context, tmp_path / "out.xlsx", created=WHEN)
    assert isinstance(_load(template).fast, xlsx_fast.Shell), _load(template).fast_reason
    mine = (tmp_path / "out.xlsx").read_bytes()
    theirs = public(template, context)
    assert xlsx_fast.content_differences(mine, theirs) == []
    assert cells(mine) == cells(theirs)
    assert zipfile.ZipFile(io.BytesIO(mine)).testzip() is None


def test_a_repeat_row_with_expressions_constants_gaps_and_booleans(tmp_path):
    wb = Workbook()
    ws = wb.active
    ws.title = "表"
    ws["A1"] = "{%row for p in people %}{{ p.name }}"
    ws["B1"] = "{{ p.score * 2 }}"
    ws["C1"] = "分"
    ws["E1"] = "{{ p.flag }}"
    ws["E1"].border = BOX
    ws["F1"] = "{{ p.day }}"
    ws["A2"] = "合计"
    wb.save(tmp_path / "t.xlsx")
    people = [{"name": "张三", "score": 41.5, "day": dt.date(2026, 7, 1), "flag": True},
              {"name": "李四", "score": 0, "day": None, "flag": 1},  # True == 1: each keeps its own type
              {"name": "\x07", "score": float("inf"), "day": dt.datetime(1900, 1, 1, 12), "flag": ""}]
    render_xlsx(tmp_path / "t.xlsx", {"people": people}, tmp_path / "out.xlsx", created=WHEN)
    mine = (tmp_path / "out.xlsx").read_bytes()
    assert xlsx_fast.content_differences(mine, public(tmp_path / "t.xlsx", {"people": people})) == []
    out = load_workbook(tmp_path / "out.xlsx")["表"]
    assert [out.cell(r, 5).value for r in (1, 2, 3)] == [True, 1, None]
    assert out["A3"].value is None and out["B3"].value is None and out["A4"].value == "合计"


def branch_context(tmp_path: Path, monkeypatch) -> tuple[Path, dict]:
    """A real branch's results workbook through render_results, and the context it was rendered from."""
    from pointsbatch.jinja import template_path
    from pointsbatch.render import branch as render_branch
    from pointsbatch.render.branch import member_rows, records, render_results
    from pointsbatch.rules import load_rules

    path = build(tmp_path / "第一党支部.xlsx", roster=[member(1, "张三"), member(2, "李四"), member(3, "王五")],
                 incentive=[act("张三", "志愿服务", 2), act("李四", "志愿服务", 1)],
                 objections=[[dt.date(2027, 1, 12), "王五", "基础分有误", "已核实", "维持"]])
    rules = load_rules()
    scores = score(path, rules=rules)
    seen = {}
    real = render_branch.render_xlsx

    def keep(template, context, target, **kw):
        seen.update(context)
        real(template, context, target, **kw)

    monkeypatch.setattr(render_branch, "render_xlsx", keep)
    from helpers import load

    branch = load(path).branch
    render_results(tmp_path / "out.xlsx", branch, scores, rules, dt.date(2027, 1, 15), member_rows(scores),
                   records(scores.ledger), run_at=WHEN)
    return template_path("支部积分结果.xlsx", None), seen


def test_the_results_workbook_takes_the_fast_path_with_the_same_content(tmp_path, monkeypatch):
    template, context = branch_context(tmp_path, monkeypatch)
    plan = _load(template)
    assert isinstance(plan.fast, xlsx_fast.Shell), plan.fast_reason
    mine = (tmp_path / "out.xlsx").read_bytes()
    theirs = public(template, context)
    assert xlsx_fast.content_differences(mine, theirs) == []
    assert cells(mine) == cells(theirs)
    ledger = cells(mine)["积分明细"]
    assert ledger[3][1] == "张三" and len(ledger) > 10
    assert cells(mine)["异议处理"][3][1:] == ["王五", "基础分有误", "已核实", "维持"]
    with zipfile.ZipFile(io.BytesIO(mine)) as z:
        assert {i.date_time for i in z.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        assert b"2026-11-01T08:30:00Z" in z.read("docProps/core.xml")
        assert "xl/sharedStrings.xml" in z.namelist()  # the ledger's names and items, once each


def test_the_parts_every_branch_shares_are_compressed_once_and_reused(tmp_path):
    template = make_template(tmp_path / "t.xlsx")
    render_xlsx(template, {"title": "甲", "people": PEOPLE, "clerk": "王五", "total": 1}, tmp_path / "a.xlsx",
                created=WHEN)
    render_xlsx(template, {"title": "乙", "people": PEOPLE[:1], "clerk": "赵六", "total": 2}, tmp_path / "b.xlsx",
                created=WHEN)
    a, b = (zipfile.ZipFile(tmp_path / name) for name in ("a.xlsx", "b.xlsx"))
    for name in ("xl/styles.xml", "xl/theme/theme1.xml", "docProps/core.xml", "[Content_Types].xml"):
        assert a.getinfo(name).CRC == b.getinfo(name).CRC and a.getinfo(name).compress_size == b.getinfo(
            name).compress_size, name
    assert a.read("xl/worksheets/sheet1.xml") != b.read("xl/worksheets/sheet1.xml")


def test_the_same_inputs_give_the_same_bytes_also_from_a_new_shell(tmp_path):
    template = make_template(tmp_path / "t.xlsx")
    context = {"title": "第一支部", "people": PEOPLE, "clerk": "王五", "total": 172.5}
    render_xlsx(template, context, tmp_path / "a.xlsx", created=WHEN)
    render_xlsx(template, context, tmp_path / "b.xlsx", created=WHEN)
    xlsx_template._plan.cache_clear()  # a new process: the shell is written and checked again
    xlsx_fast._SHARED.clear()
    render_xlsx(template, context, tmp_path / "c.xlsx", created=WHEN)
    assert (tmp_path / "a.xlsx").read_bytes() == (tmp_path / "b.xlsx").read_bytes() == (tmp_path / "c.xlsx").read_bytes()


def test_when_xlsxwriters_xml_is_not_as_expected_xlsxwriter_writes_the_same_cells(tmp_path, monkeypatch):
    context = {"title": "第一支部", "people": TRICKY, "clerk": "王五", "total": 1}
    fast_template = conditional_template(tmp_path / "fast.xlsx")
    render_xlsx(fast_template, context, tmp_path / "fast-out.xlsx", created=WHEN)
    assert isinstance(_load(fast_template).fast, xlsx_fast.Shell)

    def moved(plan, write_probe):
        raise xlsx_fast.Unsupported("a part XlsxWriter no longer writes")

    monkeypatch.setattr(xlsx_fast, "build_shell", moved)
    slow_template = conditional_template(tmp_path / "slow.xlsx")
    render_xlsx(slow_template, context, tmp_path / "slow-out.xlsx", created=WHEN)
    plan = _load(slow_template)
    assert plan.fast is False and "no longer writes" in plan.fast_reason
    mine, theirs = (tmp_path / "fast-out.xlsx").read_bytes(), (tmp_path / "slow-out.xlsx").read_bytes()
    sheet = "xl/worksheets/sheet1.xml"
    assert b" spans=" in zipfile.ZipFile(tmp_path / "slow-out.xlsx").read(sheet)  # XlsxWriter wrote this one
    assert b" spans=" not in zipfile.ZipFile(tmp_path / "fast-out.xlsx").read(sheet)
    assert xlsx_fast.content_differences(mine, theirs) == []
    assert cells(mine) == cells(theirs)


def test_the_check_catches_a_fast_output_that_differs_and_xlsxwriter_writes_it(tmp_path, monkeypatch):
    monkeypatch.setattr(xlsx_fast, "excel_serial", lambda value: 1.0)  # every date written as 1900-01-01
    template = make_template(tmp_path / "t.xlsx")
    render_xlsx(template, {"title": "甲", "people": PEOPLE, "clerk": "王五", "total": 1}, tmp_path / "out.xlsx",
                created=WHEN)
    plan = _load(template)
    assert plan.fast is False and "D4" in plan.fast_reason
    assert load_workbook(tmp_path / "out.xlsx")["甲"]["D4"].value == dt.datetime(2026, 3, 1)


@pytest.mark.parametrize("moved", [False, True])
def test_the_xlsxwriter_path_writes_the_same_cells_with_or_without_its_private_names(tmp_path, monkeypatch, moved):
    """The town summary (charts, `large`) stays on XlsxWriter with `_Rows`; when an internal it needs has moved,
    the public API writes every cell."""
    if moved:
        monkeypatch.setattr(xlsx_template, "Worksheet", type("Moved", (), {}))
    monkeypatch.setattr(xlsx_template, "_ROWS_USABLE", None)
    assert xlsx_template._rows_usable() is not moved
    template = make_template(tmp_path / "t.xlsx")
    people = [*TRICKY, {"seq": 4, "name": "甲\r\n乙 _x0041_", "score": 1, "day": None}]
    context = {"title": "第一支部", "people": people, "clerk": "王五", "total": 1}
    render_xlsx(template, context, tmp_path / "large.xlsx", large=True, created=WHEN)
    render_xlsx(template, context, tmp_path / "fast.xlsx", created=WHEN)
    large, fast = (tmp_path / "large.xlsx").read_bytes(), (tmp_path / "fast.xlsx").read_bytes()
    assert xlsx_fast.content_differences(fast, large) == []
    assert cells(fast) == cells(large)


@pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice (libreoffice-calc-nogui) is not installed")
def test_libreoffice_reads_a_results_workbook_as_openpyxl_and_calamine_do(tmp_path, monkeypatch):
    import subprocess

    branch_context(tmp_path, monkeypatch)
    subprocess.run(["soffice", "--headless", f"-env:UserInstallation=file://{tmp_path}/profile", "--convert-to",
                    "xlsx:Calc MS Excel 2007 XML", "--outdir", str(tmp_path / "lo"), str(tmp_path / "out.xlsx")],
                   check=True, timeout=180, capture_output=True)
    ours, resaved = load_workbook(tmp_path / "out.xlsx"), load_workbook(tmp_path / "lo" / "out.xlsx")
    assert ours.sheetnames == resaved.sheetnames
    for name in ours.sheetnames:
        mine = [[c.value for c in row] for row in ours[name].iter_rows()]
        assert mine == [[c.value for c in row] for row in resaved[name].iter_rows()], name
    data = (tmp_path / "out.xlsx").read_bytes()
    assert [[c.value for c in row] for row in ours["积分明细"].iter_rows()] == [
        [None if v == "" else v for v in row] for row in cells(data)["积分明细"]]
    assert ours["积分结果"]["A3"].fill.fgColor.rgb == resaved["积分结果"]["A3"].fill.fgColor.rgb
    assert resaved["积分明细"].auto_filter.ref == ours["积分明细"].auto_filter.ref  # (its re-save drops panes)


VALUE = st.one_of(
    st.none(), st.booleans(), st.integers(-10**17, 10**17), st.floats(width=64),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=8),
    st.sampled_from(["", " ", "张三", "a & b", "<b>", "\u3000全角", "=1+1", "x\x07", "甲\r\n乙", "_x0041_", "\uffff"]),
    st.dates(dt.date(1900, 1, 1), dt.date(2100, 12, 31)),
    st.datetimes(dt.datetime(1900, 1, 1), dt.datetime(2100, 12, 31)))
REPEATED = st.one_of(st.none(), st.sampled_from(["甲", "乙", "", "a<b", "_x0041_"]), st.integers(-3, 3),
                     st.sampled_from([0.5, -0.0, float("nan")]))  # columns that repeat


@pytest.fixture(scope="module")
def property_template(tmp_path_factory):
    path = tmp_path_factory.mktemp("property") / "t.xlsx"
    wb = Workbook()
    ws = wb.active
    ws.title = "表"
    ws["A1"] = "{{ title }}"
    for col, key in enumerate("abcde", start=1):
        c = ws.cell(3, col, ("{%row for p in people %}" if col == 1 else "") + "{{ p." + key + " }}")
        if col != 5:  # one unstyled column: its blanks are no cells at all
            c.border = BOX
    ws["C3"].number_format = "0.0"
    ws["A4"] = "{{ people | length }}人"
    wb.save(path)
    return path


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(title=VALUE, rows=st.lists(st.fixed_dictionaries({"a": VALUE, "b": REPEATED, "c": VALUE, "d": REPEATED,
                                                         "e": VALUE}), max_size=8))
def test_any_values_read_back_as_xlsxwriters_public_api_writes_them(property_template, tmp_path_factory, title, rows):
    assume(not any(isinstance(v, str) and v.startswith("<r>") and v.endswith("</r>")  # XlsxWriter's rich text
                   for row in rows for v in row.values()))
    context = {"title": title, "people": rows}
    out = tmp_path_factory.mktemp("out") / "out.xlsx"
    render_xlsx(property_template, context, out, created=WHEN)
    assert isinstance(_load(property_template).fast, xlsx_fast.Shell), _load(property_template).fast_reason
    mine = out.read_bytes()
    assert xlsx_fast.content_differences(mine, public(property_template, context)) == []


def test_the_shared_strings_count_the_cells_that_refer_to_them(tmp_path, monkeypatch):
    branch_context(tmp_path, monkeypatch)
    with zipfile.ZipFile(tmp_path / "out.xlsx") as z:
        sst = z.read("xl/sharedStrings.xml").decode()
        refs = sum(z.read(name).count(b' t="s">') for name in z.namelist() if name.startswith("xl/worksheets/"))
    assert f'count="{refs}"' in sst and refs > 10


def test_text_with_a_carriage_return_or_an_escape_lookalike_reads_back_as_written(tmp_path):
    wb = Workbook()
    ws = wb.active
    ws.title = "表"
    ws["A1"] = "{%row for p in people %}{{ p.text }}"
    ws["A3"] = "{{ note }}"
    wb.save(tmp_path / "t.xlsx")
    texts = ["甲\r\n乙", "x_x0041_y", "甲\r\n乙"]
    context = {"people": [{"text": t} for t in texts], "note": "备注\r\n_x0000_"}
    render_xlsx(tmp_path / "t.xlsx", context, tmp_path / "out.xlsx", created=WHEN)
    mine = (tmp_path / "out.xlsx").read_bytes()
    theirs = public(tmp_path / "t.xlsx", context)
    assert [row[0] for row in cells(mine)["表"]] == [*texts, "", "备注\r\n_x0000_"] == [
        row[0] for row in cells(theirs)["表"]]  # python-calamine undoes Excel's _xHHHH_ escapes
    (tmp_path / "theirs.xlsx").write_bytes(theirs)
    assert [c.value for c in load_workbook(tmp_path / "out.xlsx")["表"]["A"]] == [
        c.value for c in load_workbook(tmp_path / "theirs.xlsx")["表"]["A"]]  # openpyxl only in shared strings
