"""The .xlsx renderer's own writer: a template's workbook written without XlsxWriter on every call.

Per template and process, XlsxWriter writes one *shell* through its public API: every format of the plan (and its
date variant) on a registry sheet, and each template sheet with its widths, heights, frozen panes, filter, merges,
conditional formats and page setup, but no values. From that file's XML this module keeps what is the same for
every output (styles, theme, each sheet's view, columns and page setup, the workbook's views, the cell style
numbers XlsxWriter gave each format, each row height as XlsxWriter writes it). Each output's own parts (cells,
merges, filter, conditional ranges, which grow with the repeated rows; the workbook's sheet list and defined names;
properties) are this module's XML, and the zip is built here, the shared parts compressed once (`_deflated`).

So nothing here touches XlsxWriter's private names; it relies on the XML XlsxWriter writes, which Excel's schema
fixes. `xlsx_template.render_xlsx` checks that once per template and process: the first output is also written
through XlsxWriter's public API (its repeated rows cut to a few) and `content_differences` must find the same sheets,
cells, values, resolved styles, merges, row heights, conditional formats and defined names in both, or every
output of that template goes through XlsxWriter.
"""

from __future__ import annotations

import datetime as dt
import io
import math
import re
import zlib
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any
from xml.sax.saxutils import escape

from lxml import etree

from ..files import RawZip
from ..workbook.values import map_distinct

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
DECLARATION = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
KEPT = {"sheetPr", "sheetViews", "sheetFormatPr", "cols", "printOptions", "pageMargins", "pageSetup", "headerFooter"}
MADE = {"dimension", "sheetData", "autoFilter", "mergeCells", "conditionalFormatting"}
HIDDEN = ' hidden="1"'
# parts up to SHARED_MAX bytes are compressed well (level 6) and remembered by content (styles, theme, the rules
# sheet, properties: the same for every branch of a run); a larger one (a branch's ledger) is compressed fast: zlib's
# level 2 takes no longer than level 1 on a ledger's XML (1.5 ms for 550 KB) and gives a tenth less
SHARED_MAX, SHARED_KEEP, BIG_LEVEL = 16 * 1024, 64, 2
ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


class Unsupported(Exception):
    """The template has something this writer does not reproduce: its outputs go through XlsxWriter."""


@dataclass
class _SheetShell:
    parts: list[tuple[str, str]]  # the probe sheet's top-level elements (tag, XML), in order
    rows: dict[int, str]  # template row (1-based) -> the row element's attributes after r, as XlsxWriter wrote them
    views: tuple[str, str]  # sheetViews, not selected and selected (the first sheet shown is the selected one)
    conditional: list[str]  # each conditionalFormatting element's range (sqref); rules on one range share one


@dataclass
class Shell:
    """What XlsxWriter wrote once for a template: see the module's docstring."""

    xf: list[int]  # cell style number by the plan's style index
    date_xf: list[int]  # the same with a date format, by style index; [-1] for a cell without a style
    sheets: list[_SheetShell]
    workbook_head: str  # workbook.xml up to <sheets>
    workbook_tail: str  # after </sheets> and the defined names
    kept: dict[str, bytes] = field(default_factory=dict)  # styles, theme, package relationships: as written


# --- the shell: XlsxWriter once -----------------------------------------------------------------------------------


def build_shell(plan: Any, write_probe: Callable[[Any], None]) -> Shell:
    """Read the parts every output shares from a probe workbook that `write_probe(workbook)` fills through
    XlsxWriter's public API (see xlsx_template._write_probe). Unsupported when the XML is not as expected."""
    import xlsxwriter

    buffer = io.BytesIO()
    wb = xlsxwriter.Workbook(buffer, {"in_memory": True})
    write_probe(wb)
    wb.close()
    import zipfile

    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as z:
        files = {name: z.read(name) for name in z.namelist()}
    paths = _sheet_paths(files)
    if len(paths) != len(plan.sheets) + 1:
        raise Unsupported("probe sheets")
    registry = etree.fromstring(files[paths[-1]])
    styles: dict[tuple[int, int], int] = {}
    for c in registry.iter(f"{{{MAIN}}}c"):
        col, row = _cell_position(c.get("r"))
        styles[(row, col)] = int(c.get("s", "0"))
    n = len(plan.formats)
    xf = [styles.get((0, i), 0) for i in range(n)]
    date_xf = [styles.get((1, i), 0) for i in range(n)] + [styles.get((2, 0), 0)]
    sheets = [_sheet_shell(files[path].decode()) for path in paths[:-1]]
    book = files["xl/workbook.xml"].decode()
    head, _, rest = book.partition("<sheets>")
    _, _, tail = rest.partition("</sheets>")
    if not tail or "<definedNames>" in head:
        raise Unsupported("workbook.xml")
    if tail.startswith("<definedNames>"):
        tail = tail[tail.index("</definedNames>") + len("</definedNames>"):]
    kept = {name: files[name] for name in ("xl/styles.xml", "xl/theme/theme1.xml", "_rels/.rels")}
    return Shell(xf, date_xf, sheets, head, tail, kept)


def _sheet_paths(files: dict[str, bytes]) -> list[str]:
    book = etree.fromstring(files["xl/workbook.xml"])
    rels = etree.fromstring(files["xl/_rels/workbook.xml.rels"])
    targets = {r.get("Id"): r.get("Target") for r in rels}
    return ["xl/" + targets[s.get(f"{{{REL}}}id")].lstrip("/").removeprefix("xl/")
            for s in book.iter(f"{{{MAIN}}}sheet")]


def _cell_position(ref: str) -> tuple[int, int]:
    m = re.fullmatch(r"([A-Z]+)(\d+)", ref)
    if not m:
        raise Unsupported(ref)
    col = 0
    for ch in m[1]:
        col = col * 26 + ord(ch) - 64
    return col - 1, int(m[2]) - 1


def _sheet_shell(xml: str) -> _SheetShell:
    """A probe sheet's top-level elements, cut from its XML as written (their names checked against lxml's parse),
    its row attributes, its view selected and not, its conditional ranges."""
    root = etree.fromstring(xml.encode())
    names = [etree.QName(child).localname for child in root]
    pos = xml.index(">", xml.index("<worksheet")) + 1
    parts = []
    for name in names:
        if name not in KEPT | MADE or not re.match(rf"<{name}[\s/>]", xml[pos:pos + len(name) + 2]):
            raise Unsupported(name)
        start_end = xml.index(">", pos)
        end = start_end + 1 if xml[start_end - 1] == "/" else xml.index(f"</{name}>", pos) + len(name) + 3
        parts.append((name, xml[pos:end]))
        pos = end
    if xml[pos:] != "</worksheet>":
        raise Unsupported("worksheet end")
    rows = {}
    for row in root.iter(f"{{{MAIN}}}row"):
        attrs = "".join(f' {k}="{v}"' for k, v in row.attrib.items() if k not in ("r", "spans"))
        rows[int(row.get("r"))] = attrs
    view = next((x for n, x in parts if n == "sheetViews"), "")
    plain = view.replace(' tabSelected="1"', "")
    selected = plain.replace("<sheetView ", '<sheetView tabSelected="1" ', 1) if plain else ""
    conditional = [etree.fromstring(x).get("sqref") for n, x in parts if n == "conditionalFormatting"]
    return _SheetShell(parts, rows, (plain, selected), conditional)


# --- one output ---------------------------------------------------------------------------------------------------


@dataclass
class Sheet:
    """One sheet of an output, as xlsx_template gives it: what to write where (1-based rows and columns)."""

    title: str
    index: int  # the template sheet's index
    static: list[tuple[int, int, Any, int | None]]  # moved row, column, value (evaluated), style index
    merges: list[tuple[int, int, int, int]]  # moved
    heights: list[tuple[int, int]]  # (row written, template row whose height it takes)
    # the repeated rows: the repeat row (where they start), each column's values, the repeat row's (column, style)
    block: tuple[int, list[Sequence[Any]], list[tuple[int, int | None]]] | None
    blank_row: tuple[int, list[tuple[int, int | None]]] | None  # an empty repeat: its row and (column, style)
    autofilter: tuple[int, int, int, int] | None
    conditional: dict[str, str]  # each conditional format's range (sqref) in the shell -> in this output
    print_titles: str  # the defined name's range after "Sheet!", or ""


def workbook_bytes(shell: Shell, sheets: list[Sheet], created: dt.datetime) -> bytes:
    """The whole .xlsx file."""
    entries: list[tuple[str, bytes]] = []
    strings = _Strings()
    for n, sheet in enumerate(sheets, start=1):
        entries.append((f"xl/worksheets/sheet{n}.xml", _sheet_xml(shell, sheet, n == 1, strings).encode()))
    if strings.found:
        entries.append(("xl/sharedStrings.xml", strings.xml().encode()))
    names = _defined_names(sheets)
    entries += [
        ("[Content_Types].xml", _content_types(len(sheets), bool(strings.found)).encode()),
        ("_rels/.rels", shell.kept["_rels/.rels"]),
        ("xl/_rels/workbook.xml.rels", _workbook_rels(len(sheets), bool(strings.found)).encode()),
        ("xl/workbook.xml", _workbook_xml(shell, sheets, names).encode()),
        ("xl/styles.xml", shell.kept["xl/styles.xml"]),
        ("xl/theme/theme1.xml", shell.kept["xl/theme/theme1.xml"]),
        ("docProps/core.xml", _core(created).encode()),
        ("docProps/app.xml", _app(sheets, names).encode()),
    ]
    order = ["[Content_Types].xml", "_rels/.rels", "xl/_rels/workbook.xml.rels"]  # XlsxWriter's order
    entries.sort(key=lambda e: (order.index(e[0]) if e[0] in order else 3,
                                0 if e[0].startswith("xl/worksheets/") else 1))
    return _zip(entries)


def _sheet_xml(shell: Shell, sheet: Sheet, selected: bool, strings: _Strings) -> str:
    probe = shell.sheets[sheet.index]
    cells: dict[int, dict[int, str]] = {}
    xf, date_xf = shell.xf, shell.date_xf

    def put(r: int, c: int, xml: str | None) -> None:
        if xml is not None:
            cells.setdefault(r, {})[c] = xml

    merged_at = {(r1, c1): (r2, c2) for r1, c1, r2, c2 in sheet.merges}
    for r, c, value, style in sheet.static:
        s = xf[style] if style is not None else 0
        d = date_xf[style] if style is not None else date_xf[-1]
        ref = f"{_col(c)}{r}"
        if (r, c) in merged_at:  # as XlsxWriter's merge_range: the value (blank if empty), the rest blank
            r2, c2 = merged_at[(r, c)]
            put(r, c, _cell(ref, value, s, d, strings, blank_if_empty=True, styled=style is not None))
            for rr in range(r, r2 + 1):
                for cc in range(c, c2 + 1):
                    if (rr, cc) != (r, c):
                        put(rr, cc, _cell(f"{_col(cc)}{rr}", None, s, d, strings, styled=style is not None))
        else:
            put(r, c, _cell(ref, value, s, d, strings, styled=style is not None))
    if sheet.blank_row is not None:
        r, blank_cells = sheet.blank_row
        for c, style in blank_cells:
            if style is not None:
                put(r, c, _cell(f"{_col(c)}{r}", None, xf[style], 0, strings, styled=True))
    heights = {r: probe.rows.get(t, "") for r, t in sheet.heights}
    out: list[str] = []
    used_rows = sorted(set(cells) | set(heights))
    used_cols = {c for row in cells.values() for c in row}
    block_first, block_last = 0, -1
    if sheet.block is not None and sheet.block[1] and len(sheet.block[1][0]):
        block_first, columns, block_cells = sheet.block
        block_last = block_first + len(columns[0]) - 1
        used_rows += [block_first, block_last]
        used_cols |= {block_cells[0][0], block_cells[-1][0]}
    for r in sorted(set(cells) | set(heights) | ({block_first} if block_last >= block_first else set())):
        if r == block_first and block_last >= block_first:
            out.append(_block(shell, sheet, strings))
            continue
        row_cells = cells.get(r)
        attrs = heights.get(r, "")
        if row_cells:
            out.append(f'<row r="{r}"{attrs}>' + "".join(row_cells[c] for c in sorted(row_cells)) + "</row>")
        else:
            out.append(f'<row r="{r}"{attrs}/>')
    dimension = "A1"
    if used_rows:  # as XlsxWriter: the rows and columns written (a row height counts column A)
        if heights:
            used_cols.add(1)
        first = f"{_col(min(used_cols, default=1))}{min(used_rows)}"
        last = f"{_col(max(used_cols, default=1))}{max(used_rows)}"
        dimension = first if first == last else f"{first}:{last}"
    made = {
        "dimension": f'<dimension ref="{dimension}"/>',
        "sheetData": f"<sheetData>{''.join(out)}</sheetData>" if out else "<sheetData/>",
        "autoFilter": (f'<autoFilter ref="{_range(*sheet.autofilter)}"/>' if sheet.autofilter else ""),
        "mergeCells": (f'<mergeCells count="{len(sheet.merges)}">'
                       + "".join(f'<mergeCell ref="{_range(*m)}"/>' for m in sheet.merges) + "</mergeCells>"),
    }
    parts = [DECLARATION, f'<worksheet xmlns="{MAIN}" xmlns:r="{REL}">']
    cf = 0
    for name, xml in probe.parts:
        if name == "sheetViews":
            parts.append(probe.views[1] if selected else probe.views[0])
        elif name == "conditionalFormatting":
            was = probe.conditional[cf]
            parts.append(xml.replace(f'sqref="{was}"', f'sqref="{sheet.conditional[was]}"', 1))
            cf += 1
        else:
            parts.append(made.get(name, xml) if name in MADE else xml)
    parts.append("</worksheet>")
    return "".join(parts)


def _block(shell: Shell, sheet: Sheet, strings: _Strings) -> str:
    """The repeated rows, laid out by slice assignment and joined once: per row `<row r="N"...>`, per cell
    `<c r="B` N + what comes before its value + the value + what comes after it, then `</row>`. What surrounds a
    column's values is the same on every row; the values themselves are mostly made at C speed (`_column`)."""
    assert sheet.block is not None
    first, columns, cells = sheet.block
    n = len(columns[0])
    attrs = shell.sheets[sheet.index].rows.get(first, "")  # the repeat row's height, on every repeated row
    nums = list(map(str, range(first, first + n)))
    width = 4 + 5 * len(cells)
    parts: list[str] = [""] * (width * n)
    parts[0::width] = ['<row r="'] * n
    parts[1::width] = nums
    parts[2::width] = [f'"{attrs}>'] * n
    parts[width - 1::width] = ["</row>"] * n
    for j, ((col, style), values) in enumerate(zip(cells, columns, strict=True)):
        before, made, after = _column(values, shell, style, strings)
        head = f'<c r="{_col(col)}'
        k = 3 + 5 * j
        if style is not None or before:
            parts[k::width] = [head] * n
            parts[k + 1::width] = nums
        else:  # an unstyled blank is no cell at all
            parts[k::width] = [head if t else "" for t in made]
            parts[k + 1::width] = [num if t else "" for num, t in zip(nums, made, strict=True)]
        if before:
            parts[k + 2::width] = before if isinstance(before, list) else [before] * n
            parts[k + 4::width] = after if isinstance(after, list) else [after] * n
        parts[k + 3::width] = made
    return "".join(parts)


_SPECIAL = re.compile(r"[&<>\x00-\x08\x0b-\x1f\ufffe\uffff]")  # text to escape or clean
_SPACE_AFTER, _SPACE_BEFORE = re.compile(r"\n\s"), re.compile(r"\s\n")  # (separate: each is a fast search)


def _plain_texts(values: Sequence[str]) -> bool:
    """Whether every text can go into the XML as it is: nothing to escape or clean (no `_xHHHH_` either), no space
    at either end (which would need xml:space), none empty, none too long for a cell. Checked on the texts joined
    by newlines."""
    joined = "\n".join(values)
    return not (_SPECIAL.search(joined) or "_x" in joined or _SPACE_AFTER.search(joined)
                or _SPACE_BEFORE.search(joined) or joined[:1].isspace() or joined[-1:].isspace()
                or max(map(len, values)) > 32767)


def _column(values: Sequence[Any], shell: Shell, style: int | None,
            strings: _Strings) -> tuple[str | list[str], list[str], str | list[str]]:
    """One repeated column's cells after their row number, as (before, values, after), each a list by row or one
    string for every row. A column of finite numbers, or of text that needs no escaping, keeps its values (text
    the column repeats: their shared string numbers) and puts the same XML around each, blanks apart; these are
    made by dict lookups at C speed. Any other column is one string per cell, made once per distinct value."""
    s = shell.xf[style] if style is not None else 0
    sa = f' s="{s}"' if s else ""
    kinds = set(map(type, values)) - {type(None)}
    made_for: dict[Any, str] | None = None
    before = after = ""
    if kinds and (kinds <= {int, float} or kinds == {str}):
        distinct = dict.fromkeys(values)
        blanks = [k for k in (None, "") if k in distinct]
        for k in blanks:
            del distinct[k]
        if not distinct or (blanks and style is None):  # an unstyled blank is no cell at all: `_Tail` says so
            pass
        elif kinds == {int} and -10**15 < min(distinct) and max(distinct) < 10**15:  # str() as %.16G writes them
            before, after = f'"{sa}><v>', "</v></c>"
            made_for = {v: str(v) for v in distinct}
        elif kinds != {str} and all(map(math.isfinite, distinct)):  # (1 == 1.0: both are written "1")
            before, after = f'"{sa}><v>', "</v></c>"
            made_for = {v: f"{v:.16G}" for v in distinct}
        elif kinds == {str} and _plain_texts(list(distinct)):
            if len(distinct) * 2 > len(values):
                before, after = f'"{sa} t="inlineStr"><is><t>', "</t></is></c>"
                made_for = {v: v for v in distinct}
            else:
                before, after = f'"{sa} t="s"><v>', "</v></c>"
                made_for = {v: str(strings.index(v)) for v in distinct}
                strings.count += len(values) - sum(values.count(k) for k in blanks)
        if made_for is not None:
            if not blanks:
                return before, list(map(made_for.__getitem__, values)), after
            made_for.update(dict.fromkeys(blanks, f'"{sa}/>'))  # a styled blank
            around = dict.fromkeys(blanks, "")
            n = len(values)
            return (list(map(around.get, values, repeat(before, n))), list(map(made_for.__getitem__, values)),
                    list(map(around.get, values, repeat(after, n))))
    d = shell.date_xf[style] if style is not None else shell.date_xf[-1]
    return "", _map(values, _Tail(s, d, style is not None, strings)), ""


class _Tail:
    """A cell's XML after its row number: `"` + style, type and value; "" for a blank without a style. Text goes to
    the shared strings when `share` (a column that repeats its text), else inline (see `_typed`)."""

    def __init__(self, s: int, d: int, styled: bool, strings: _Strings) -> None:
        self.s = f' s="{s}"' if s else ""
        self.d = f' s="{d}"' if d else ""
        self.blank = f'"{self.s}/>' if styled else ""
        self.strings = strings
        self.share = True

    def __call__(self, value: Any) -> str:
        kind = value.__class__
        if kind is str:
            if ILLEGAL.search(value):
                value = ILLEGAL.sub("", value)
            if not value:
                return self.blank
            if self.share:
                return f'"{self.s} t="s"><v>{self.strings.index(value[:32767])}</v></c>'
        elif kind is int or (kind is float and math.isfinite(value)):
            return f'"{self.s}><v>{value:.16G}</v></c>'
        else:
            value = native_value(value)
            if value is None or value == "":
                return self.blank
        return '"' + _typed(value, self.s, self.d, self.strings)


class _Strings:
    """The shared strings table of one output."""

    def __init__(self) -> None:
        self.found: dict[str, int] = {}
        self.count = 0  # cells that refer to it

    def index(self, text: str) -> int:
        found = self.found.get(text)
        if found is None:
            found = self.found[text] = len(self.found)
        return found

    def xml(self) -> str:
        items = []
        for text in self.found:
            items.append(f"<si>{text_element(text)}</si>")
        return (DECLARATION + f'<sst xmlns="{MAIN}" count="{self.count}" uniqueCount="{len(self.found)}">'
                + "".join(items) + "</sst>")


def text_element(text: str) -> str:
    """A `<t>` element holding `text` as Excel stores it (and XlsxWriter writes it): a carriage return or a
    non-character as `_xHHHH_`, a literal `_xHHHH_` escaped in turn, `&<>` as entities, spaces kept at either end."""
    if "_x" in text:
        text = _EXCEL_ESCAPE.sub(r"_x005F\1", text)
    if _CONTROL.search(text):
        text = _CONTROL.sub(lambda m: f"_x{ord(m[1]):04X}_", text)
    if "\ufffe" in text or "\uffff" in text:
        text = text.replace("\ufffe", "_xFFFE_").replace("\uffff", "_xFFFF_")
    space = ' xml:space="preserve"' if text[:1].isspace() or text[-1:].isspace() else ""
    return f"<t{space}>{_escape(text)}</t>"


_EXCEL_ESCAPE = re.compile("(_x[0-9a-fA-F]{4}_)")
_CONTROL = re.compile(r"([\x00-\x08\x0b-\x1f])")


def _escape(text: str) -> str:
    if "&" in text or "<" in text or ">" in text:
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text


def _typed(value: Any, s: str, d: str, strings: _Strings) -> str:
    """After `<c r="A1"`: the style, type and value of a cell that is not blank. Text is inline, except text that
    Excel stores with `_xHHHH_` escapes (a carriage return, say): that goes to the shared strings, where every
    reader undoes them as XlsxWriter's public API expects (openpyxl does not in inline text)."""
    if isinstance(value, str):
        text = value[:32767]
        if "_x" in text or "\r" in text or _CONTROL.search(text) or "\ufffe" in text or "\uffff" in text:
            return f'{s} t="s"><v>{strings.index(text)}</v></c>'
        return f'{s} t="inlineStr"><is>{text_element(text)}</is></c>'
    if isinstance(value, bool):
        return f'{s} t="b"><v>{int(value)}</v></c>'
    if isinstance(value, (int, float)):
        return f"{s}><v>{value:.16G}</v></c>"
    return f"{d}><v>{excel_serial(value):.16G}</v></c>"


def _cell(ref: str, value: Any, s: int, d: int, strings: _Strings, blank_if_empty: bool = False,
          styled: bool = False) -> str | None:
    """A static cell as XlsxWriter's `write_*` calls in xlsx_template write it (an empty text stays text there,
    except as a merged range's value)."""
    value = native_value(value)
    sa = f' s="{s}"' if s else ""
    if value is None or (blank_if_empty and value == ""):
        return f'<c r="{ref}"{sa}/>' if styled else None
    tail = _typed(value, sa, f' s="{d}"' if d else "", strings)
    if ' t="s">' in tail:
        strings.count += 1
    return f'<c r="{ref}"' + tail


def excel_serial(value: dt.date) -> float:
    """A date or naive datetime as Excel's serial number (1900 system), as XlsxWriter computes it."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            raise TypeError("Excel doesn't support timezones in datetimes")
        delta = value - dt.datetime(1899, 12, 31)
    else:
        delta = dt.datetime.fromordinal(value.toordinal()) - dt.datetime(1899, 12, 31)
    serial = delta.days + (delta.seconds + delta.microseconds / 1e6) / 86400
    if isinstance(value, dt.datetime) and value.date() == dt.date(1900, 1, 1):
        serial -= 1
    return serial + 1 if serial > 59 else serial


def _map(values: Sequence[Any], fn: _Tail) -> list[str]:
    """`[fn(v) for v in values]` with one call per distinct value, by a plain dict when no two kinds of value in
    the column can be equal and differ in the cell (True == 1: booleans never share a dict with numbers). A column
    that repeats its text (each text twice on average, or more) puts it in the shared strings."""
    kinds = set(map(type, values))
    if kinds <= _PLAIN and not (bool in kinds and kinds & {int, float}):
        try:
            memo: dict[Any, Any] = Counter(values) if str in kinds else dict.fromkeys(values)
        except TypeError:
            return map_distinct(values, fn)
        fn.share = len(memo) * 2 <= len(values)
        for v in memo:
            times = memo[v]
            memo[v] = tail = fn(v)
            if ' t="s">' in tail:
                fn.strings.count += times  # the cells that refer to the shared strings
        return list(map(memo.__getitem__, values))
    fn.share = False
    tails = map_distinct(values, fn)
    fn.strings.count += sum(' t="s">' in tail for tail in tails)
    return tails


_PLAIN = {str, int, float, bool, type(None), dt.date, dt.datetime}


def _col(c: int) -> str:
    name = ""
    while c:
        c, rest = divmod(c - 1, 26)
        name = chr(65 + rest) + name
    return name


def _range(r1: int, c1: int, r2: int, c2: int) -> str:
    a, b = f"{_col(c1)}{r1}", f"{_col(c2)}{r2}"
    return a if a == b else f"{a}:{b}"


def native_value(value: Any) -> Any:
    """A value XlsxWriter's `write` takes as it is: no NaN or infinity, no numpy scalar, no control character."""
    kind = type(value)
    if kind is int or kind is bool or value is None:  # the common cases first, by exact type
        return value
    if kind is float:
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return ILLEGAL.sub("", value) if ILLEGAL.search(value) else value
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float, dt.date, dt.datetime)):
        return value
    if hasattr(value, "item"):
        return native_value(value.item())
    return str(value)


# --- the workbook's own small parts ------------------------------------------------------------------------------


def _defined_names(sheets: list[Sheet]) -> list[tuple[str, int, str, bool]]:
    """Filter and print-title names, sorted as XlsxWriter (and Excel) sort them."""
    from xlsxwriter.utility import quote_sheetname, xl_range_abs

    names = []
    for i, sheet in enumerate(sheets):
        quoted = quote_sheetname(sheet.title)
        if sheet.autofilter:
            r1, c1, r2, c2 = sheet.autofilter
            names.append(("_xlnm._FilterDatabase", i, f"{quoted}!{xl_range_abs(r1 - 1, c1 - 1, r2 - 1, c2 - 1)}", True))
        if sheet.print_titles:
            ranges = ",".join(f"{quoted}!{part}" for part in sheet.print_titles.split(","))
            names.append(("_xlnm.Print_Titles", i, ranges, False))
    return sorted(names, key=lambda n: n[0].replace("_xlnm.", "").lower() + "::" + n[2].lstrip("'").lower())


def _workbook_xml(shell: Shell, sheets: list[Sheet], names: list[tuple[str, int, str, bool]]) -> str:
    listed = "".join(f'<sheet name="{escape(s.title, {chr(34): "&quot;"})}" sheetId="{i}" r:id="rId{i}"/>'
                     for i, s in enumerate(sheets, start=1))
    defined = "".join(f'<definedName name="{name}" localSheetId="{i}"{HIDDEN if hidden else ""}>'
                      f"{escape(text)}</definedName>" for name, i, text, hidden in names)
    return (shell.workbook_head + f"<sheets>{listed}</sheets>"
            + (f"<definedNames>{defined}</definedNames>" if defined else "") + shell.workbook_tail)


def _content_types(n: int, strings: bool) -> str:
    kind = "application/vnd.openxmlformats-officedocument"
    sheets = "".join(f'<Override PartName="/xl/worksheets/sheet{i}.xml" ContentType="{kind}.spreadsheetml.'
                     'worksheet+xml"/>' for i in range(1, n + 1))
    return (DECLARATION + '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            f'<Override PartName="/docProps/app.xml" ContentType="{kind}.extended-properties+xml"/>'
            '<Override PartName="/docProps/core.xml" '
            'ContentType="application/vnd.openxmlformats-package.core-properties+xml"/>'
            f'<Override PartName="/xl/styles.xml" ContentType="{kind}.spreadsheetml.styles+xml"/>'
            f'<Override PartName="/xl/theme/theme1.xml" ContentType="{kind}.theme+xml"/>'
            f'<Override PartName="/xl/workbook.xml" ContentType="{kind}.spreadsheetml.sheet.main+xml"/>'
            f"{sheets}" + (f'<Override PartName="/xl/sharedStrings.xml" ContentType="{kind}.spreadsheetml.'
                           'sharedStrings+xml"/>' if strings else "") + "</Types>")


def _workbook_rels(n: int, strings: bool) -> str:
    kind = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    rels = [(f"{kind}/worksheet", f"worksheets/sheet{i}.xml") for i in range(1, n + 1)]
    rels += [(f"{kind}/theme", "theme/theme1.xml"), (f"{kind}/styles", "styles.xml")]
    if strings:
        rels.append((f"{kind}/sharedStrings", "sharedStrings.xml"))
    return (DECLARATION + f'<Relationships xmlns="{PKG_REL}">'
            + "".join(f'<Relationship Id="rId{i}" Type="{t}" Target="{target}"/>'
                      for i, (t, target) in enumerate(rels, start=1)) + "</Relationships>")


def _core(created: dt.datetime) -> str:
    when = created.strftime("%Y-%m-%dT%H:%M:%SZ")
    return (DECLARATION + '<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/'
            'core-properties" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:dcterms="http://purl.org/dc/terms/" '
            'xmlns:dcmitype="http://purl.org/dc/dcmitype/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
            "<dc:creator></dc:creator><cp:lastModifiedBy></cp:lastModifiedBy>"
            f'<dcterms:created xsi:type="dcterms:W3CDTF">{when}</dcterms:created>'
            f'<dcterms:modified xsi:type="dcterms:W3CDTF">{when}</dcterms:modified></cp:coreProperties>')


def _app(sheets: list[Sheet], names: list[tuple[str, int, str, bool]]) -> str:
    ranges = []
    for name, _i, text, _hidden in names:
        if name != "_xlnm._FilterDatabase" and "!" in text:
            ranges.append(text.split("!", 1)[0] + "!" + name.replace("_xlnm.", ""))
    pairs = [("Worksheets", len(sheets))] + ([("Named Ranges", len(ranges))] if ranges else [])
    heading = "".join(f"<vt:variant><vt:lpstr>{k}</vt:lpstr></vt:variant><vt:variant><vt:i4>{v}</vt:i4></vt:variant>"
                      for k, v in pairs)
    titles = [s.title for s in sheets] + ranges
    parts = "".join(f"<vt:lpstr>{escape(t)}</vt:lpstr>" for t in titles)
    return (DECLARATION + '<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/extended-'
            'properties" xmlns:vt="http://schemas.openxmlformats.org/officeDocument/2006/docPropsVTypes">'
            "<Application>Microsoft Excel</Application><DocSecurity>0</DocSecurity><ScaleCrop>false</ScaleCrop>"
            f'<HeadingPairs><vt:vector size="{2 * len(pairs)}" baseType="variant">{heading}</vt:vector>'
            f'</HeadingPairs><TitlesOfParts><vt:vector size="{len(titles)}" baseType="lpstr">{parts}</vt:vector>'
            "</TitlesOfParts><Company></Company><LinksUpToDate>false</LinksUpToDate><SharedDoc>false</SharedDoc>"
            "<HyperlinksChanged>false</HyperlinksChanged><AppVersion>12.0000</AppVersion></Properties>")


# --- the check: the same content as XlsxWriter's ---------------------------------------------------------------


def content_differences(mine: bytes, theirs: bytes) -> list[str]:
    """What differs between two .xlsx files as a reader sees them: sheet names, defined names, each cell's value,
    type and resolved style (font, fill, border, number format, alignment, protection), row heights, merges,
    columns, views, filters, conditional formats (with their formats resolved) and page setup. Not compared: how
    strings are stored (shared or inline), the dimension, the spans hint, the order of merges, properties."""
    a, b = _content(mine), _content(theirs)
    return [f"{key}: {str(a.get(key))[:120]} != {str(b.get(key))[:120]}" for key in sorted(set(a) | set(b), key=str)
            if a.get(key) != b.get(key)]


def _content(data: bytes) -> dict[Any, Any]:
    import zipfile

    with zipfile.ZipFile(io.BytesIO(data)) as z:
        files = {name: z.read(name) for name in z.namelist()}
    ns = {"m": MAIN}
    strings = []
    if "xl/sharedStrings.xml" in files:
        strings = ["".join(si.itertext()) for si in etree.fromstring(files["xl/sharedStrings.xml"])]
    styles = etree.fromstring(files["xl/styles.xml"])

    def canon(el: Any) -> str:
        return "" if el is None else etree.tostring(el, method="c14n").decode()

    formats = {int(n.get("numFmtId")): n.get("formatCode") for n in styles.iterfind("m:numFmts/m:numFmt", ns)}
    parts = {kind: styles.findall(f"m:{kind}s/m:{kind}", ns) for kind in ("font", "fill", "border")}
    xfs = []
    for xf in styles.iterfind("m:cellXfs/m:xf", ns):
        number = int(xf.get("numFmtId", "0"))
        xfs.append((canon(parts["font"][int(xf.get("fontId", "0"))]), canon(parts["fill"][int(xf.get("fillId", "0"))]),
                    canon(parts["border"][int(xf.get("borderId", "0"))]), formats.get(number, number),
                    canon(xf.find("m:alignment", ns)), canon(xf.find("m:protection", ns))))
    dxfs = [canon(d) for d in styles.iterfind("m:dxfs/m:dxf", ns)]
    book = etree.fromstring(files["xl/workbook.xml"])
    out: dict[Any, Any] = {"sheets": [s.get("name") for s in book.iterfind("m:sheets/m:sheet", ns)]}
    out["defined names"] = sorted((d.get("name"), d.get("localSheetId"), d.get("hidden"), d.text)
                                  for d in book.iterfind("m:definedNames/m:definedName", ns))
    for title, path in zip(out["sheets"], _sheet_paths(files), strict=True):
        root = etree.fromstring(files[path])
        seen: dict[str, int] = {}
        for child in root:
            name = etree.QName(child).localname
            if name in ("dimension", "sheetData"):
                continue
            n = seen[name] = seen.get(name, -1) + 1
            if name == "mergeCells":
                out[(title, name)] = sorted(m.get("ref") for m in child)
                continue
            for rule in child.iter(f"{{{MAIN}}}cfRule"):
                if rule.get("dxfId") is not None:
                    rule.set("dxfId", dxfs[int(rule.get("dxfId"))])
            out[(title, name, n)] = canon(child)
        for row in root.iterfind("m:sheetData/m:row", ns):
            attrs = {k: v for k, v in row.attrib.items() if k not in ("r", "spans")}
            if attrs:
                out[(title, "row", int(row.get("r")))] = attrs
            for c in row:
                kind, v = c.get("t", "n"), c.find("m:v", ns)
                value: Any
                if kind == "s":
                    value = strings[int(v.text)]
                elif kind == "inlineStr":
                    value, kind = "".join(c.find("m:is", ns).itertext()), "s"
                elif v is None:
                    value, kind = None, "blank"
                elif kind == "b":
                    value = v.text == "1"
                else:
                    value = float(v.text) if kind == "n" else v.text
                out[(title, c.get("r"))] = (kind, value, xfs[int(c.get("s", "0"))])
    return out


# --- the zip --------------------------------------------------------------------------------------------------


_SHARED: OrderedDict[bytes, tuple[int, bytes]] = OrderedDict()


def _deflated(data: bytes) -> tuple[int, bytes]:
    """CRC-32 and raw deflate of a part. A small part is compressed well once and remembered by its content (the
    styles, the theme, the rules sheet, the properties are the same for every branch of a run); a large one (a
    ledger) is compressed fast."""
    if len(data) <= SHARED_MAX:
        found = _SHARED.get(data)
        if found is not None:
            _SHARED.move_to_end(data)
            return found
    level = 6 if len(data) <= SHARED_MAX else BIG_LEVEL
    c = zlib.compressobj(level, zlib.DEFLATED, -15)
    entry = (zlib.crc32(data), c.compress(data) + c.flush())
    if len(data) <= SHARED_MAX:
        _SHARED[data] = entry
        if len(_SHARED) > SHARED_KEEP:
            _SHARED.popitem(last=False)
    return entry


def _zip(entries: list[tuple[str, bytes]]) -> bytes:
    """A zip of deflated entries dated 1980-01-01 (as XlsxWriter dates them): the same parts give the same bytes."""
    out = RawZip()
    for name, data in entries:
        crc, packed = _deflated(data)
        out.add(name, packed, 8, crc, len(data))
    return out.finish()
