"""Read a branch workbook into raw tables, each row keeping its Excel row number.

Reading does not judge values (that is `validate`'s job): it finds the sheets and headers the spec names,
normalises what recorders really type (full-width characters, stray spaces), and reports what it cannot find.
The file is opened read-only and checked for size before any XML is parsed.
"""

from __future__ import annotations

import re
import unicodedata
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd

from ..problems import Problem
from . import spec
from .extent import (
    CELL_TAG,
    SHARED_STRING_TAG,
    Extent,
    column_letters,
    count_shared_strings,
    count_tags,
    measure,
)
from .messages import problem

# Limits that keep one hostile file from exhausting the machine.
MAX_FILE_BYTES = 50 * 1024 * 1024
MAX_UNCOMPRESSED_BYTES = 300 * 1024 * 1024
MAX_COMPRESSION_RATIO = 200
MAX_SHEET_ROWS = 20_000
MAX_SHEET_COLUMNS = 200
# measured from the XML before any grid is built (workbook/extent.py): python-calamine builds a sheet's used range
# densely (about 40 bytes a cell with the rows handed to Python), openpyxl keeps an object for every cell element
MAX_SHEET_CELLS = 8_000_000  # rows × columns of one sheet's used range
MAX_WORKBOOK_CELLS = 1_000_000  # cell elements in all sheets together (the marked copy loads them all)
# calamine holds the whole shared strings table (about 65 bytes a string however short) before it reads a sheet:
# 17 million one-letter strings are 20 MB zipped and 1.1 GB in memory. No cell can use more than one of them.
MAX_SHARED_STRINGS = MAX_WORKBOOK_CELLS
# cell formats (styles.xml's <xf> entries): Excel allows 64,000; openpyxl builds an object for each (160,000 in a
# 68 KB file took 8 s and 507 MB)
MAX_CELL_FORMATS = 100_000
KEEP_PART_BYTES = 16 * 1024 * 1024  # parts read once for the checks are kept for the formula scan up to this size

OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
ENCRYPTION_STREAM = "EncryptionInfo".encode("utf-16-le")


@dataclass
class RawTable:
    """A table sheet: raw cell values by column key, indexed by Excel row."""

    sheet: spec.TableSheet
    frame: pd.DataFrame
    letters: dict[str, str]

    def cell(self, key: str, row: int) -> str:
        return f"{self.letters.get(key, 'A')}{row}"


@dataclass
class RawGrid:
    """The attendance grid: member keys and one column per event (by header), indexed by Excel row."""

    frame: pd.DataFrame
    letters: dict[str, str]
    dates: dict[str, Any]


@dataclass
class RawWorkbook:
    path: Path
    info: dict[str, tuple[Any, str]] = field(default_factory=dict)
    tables: dict[str, RawTable] = field(default_factory=dict)
    grid: RawGrid | None = None
    problems: list[Problem] = field(default_factory=list)
    sheet_names: list[str] = field(default_factory=list)
    data: bytes | None = field(default=None, repr=False)  # the file as read, once: checked, parsed and digested
    sha256: str = ""  # of `data`

    @property
    def readable(self) -> bool:
        """True when the file opened as a standard workbook (cell problems may still exist)."""
        return not any(p.scope == "file" and p.is_error for p in self.problems)


def column_letter(index: int) -> str:
    """0-based column index to Excel letters (0 -> A, 26 -> AA)."""
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


_SPACES = re.compile(r"\s+")


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


@lru_cache(maxsize=65536)
def clean_text(text: str) -> str | None:
    """NFKC, control characters dropped (no output can hold them), trimmed; empty becomes None."""
    text = _CONTROL.sub("", unicodedata.normalize("NFKC", text)).strip()
    return text or None


# invisible characters that are not format characters (category Cf, removed by category): the combining grapheme
# joiner, variation selectors and the Hangul fillers, which render as nothing
_INVISIBLE = re.compile("[\u034f\u115f\u1160\u3164\uffa0\ufe00-\ufe0f]")


def _visible(text: str) -> str:
    """`text` without invisible and format characters (zero-width space and joiner, BOM, bidi marks...)."""
    if not text.isprintable():  # (every Cf character is unprintable: the common text skips the loop)
        text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    return _INVISIBLE.sub("", text)


@lru_cache(maxsize=65536)
def clean_key(text: str) -> str:
    """A header, sheet name or key: NFKC with every space and invisible character removed, required-marks dropped."""
    text = _visible(unicodedata.normalize("NFKC", str(text)))
    return _SPACES.sub("", text).strip("*")


@lru_cache(maxsize=65536)
def keep_text(text: str) -> str | None:
    """Free text as typed (WORKBOOK.md, "Free text"): only control characters dropped (no output can hold them);
    text of nothing but spaces is blank."""
    text = _CONTROL.sub("", text)
    return text if text.strip() else None


def free_text(value: Any) -> Any:
    return keep_text(value) if isinstance(value, str) else value


def clean_value(value: Any) -> Any:
    if isinstance(value, str):
        return clean_text(value)
    return value


def clean_name(value: Any) -> Any:
    """A person's or a branch's name, as it is compared: NFKC, without spaces (names carry none in Chinese;
    recorders pad them to align two-character names), invisible and format characters, or trailing dots, so that
    `城关村党支部.` and `城关村党支部` with a zero-width space are the same name as `城关村党支部`."""
    if isinstance(value, str):
        return _clean_name_text(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value


@lru_cache(maxsize=65536)
def _clean_name_text(value: str) -> str | None:
    text = clean_text(value)
    if not text:
        return None
    return _SPACES.sub("", _visible(text)).rstrip(".。") or None


def read_workbook(path: Path) -> RawWorkbook:
    """Read every sheet the spec names; never raises for a bad file, returns its problems instead.

    The file is read from disk once: the checks, the parsing and the digest (`book.sha256`) all see the same bytes,
    even if someone saves over it meanwhile."""
    import hashlib
    import io

    path = Path(path)
    book = RawWorkbook(path)
    trouble = _size_check(path)
    if trouble is None:
        try:
            book.data = path.read_bytes()
        except OSError as exc:
            trouble = problem("file_unreadable", "", "", detail=_short(exc))
    if trouble is not None or book.data is None:
        book.problems.append(trouble or problem("file_unreadable", "", ""))
        return book
    book.sha256 = hashlib.sha256(book.data).hexdigest()
    parts: dict[str, bytes] = {}
    trouble = _precheck(book.data, parts)
    if trouble:
        book.problems.append(trouble)
        return book
    try:
        from python_calamine import CalamineWorkbook

        wb = CalamineWorkbook.from_filelike(io.BytesIO(book.data))
    except Exception as exc:  # calamine raises several types for damaged files
        book.problems.append(_open_failure(exc))
        return book

    try:
        _read_sheets(wb, book)
    except BaseException as exc:  # a damaged part deep inside the archive (calamine may panic)
        if isinstance(exc, (KeyboardInterrupt, SystemExit, MemoryError)):
            raise
        book.problems.append(_open_failure(exc))
    finally:
        wb.close()
    if book.readable:
        try:
            book.problems += uncalculated_formulas(book.data, parts)
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError) as exc:
            book.problems.append(problem("file_unreadable", "", "", detail=_short(exc)))
    return book


# Every pattern applied to a workbook's XML stays within one tag or one text run (none crosses a `<`, which no
# attribute value or text may hold unescaped) and never backtracks (possessive quantifiers): a scan is linear in the
# part, whatever a hostile file repeats in a comment or an attribute.
_TAG_BODY = rb"""((?:[^<>"'/]|/(?!>)|"[^<"]*+"|'[^<']*+')*+)"""  # a start tag's attributes (quoted values may hold > /)
_FORMULA_NO_VALUE = re.compile(rb"<c\b" + _TAG_BODY + rb">\s*+<f\b" + _TAG_BODY[1:-1]
                               + rb"(?:/>|>[^<]*+</f>)\s*+(?:<v>\s*+</v>\s*+|<v/>\s*+)?</c>")
_CELL_REF = re.compile(rb'\br="([A-Z]+[0-9]+)"')
_ANY_FORMULA = re.compile(rb"<f[\s/>]")
_SHEET_TAG = re.compile(rb"<sheet\b" + _TAG_BODY + rb"/?>")
_RELATIONSHIP_TAG = re.compile(rb"<Relationship\b" + _TAG_BODY + rb"/?>")
_SHEET_NAME = re.compile(rb'\bname="([^"]*)"')
_SHEET_RID = re.compile(rb'\br:id="([^"]*)"')
_REL_ID = re.compile(rb'\bId="([^"]*)"')
_REL_TARGET = re.compile(rb'\bTarget="([^"]*)"')
MAX_FORMULA_REPORTS = 50


def uncalculated_formulas(source: Path | bytes, parts: dict[str, bytes] | None = None) -> list[Problem]:
    """Cells holding a formula that was never calculated (no cached value): a reader would see them as blank.

    Workbooks saved by Excel, WPS or LibreOffice always carry the results; ones written by scripts often do not.
    `source`: the file, or its bytes; `parts`: the workbook's parts already read (by name).
    """
    import io

    problems: list[Problem] = []
    known = parts or {}
    with zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source) as zf:

        def read(name: str) -> bytes:
            return known[name] if name in known else zf.read(name)

        wanted = set(spec.REQUIRED_SHEETS) | {spec.OBJECTIONS.name}
        present = set(zf.namelist())
        for part, name in sheet_parts(read).items():
            if name not in wanted or part not in present:
                continue
            data = read(part)
            if not _ANY_FORMULA.search(data):  # (not "<f" alone: <formula1> of every drop-down matches that)
                continue
            cells = (_CELL_REF.search(attrs) for attrs in _FORMULA_NO_VALUE.findall(data))
            for cell in [c for c in cells if c is not None][:MAX_FORMULA_REPORTS]:
                ref = cell[1].decode()
                row = "".join(ch for ch in ref if ch.isdigit())
                problems.append(problem("formula_uncalculated", name, ref, row=row, header=ref))
    return problems


def sheet_parts(read: Callable[[str], bytes]) -> dict[str, str]:
    """Each worksheet's part in the archive -> its sheet name (cleaned as a key); `read(name)` gives a part."""
    import html

    try:
        workbook = read("xl/workbook.xml")
        rels = read("xl/_rels/workbook.xml.rels")
    except KeyError:
        return {}
    targets: dict[bytes, bytes] = {}
    for attrs in _RELATIONSHIP_TAG.findall(rels):
        ident, path = _REL_ID.search(attrs), _REL_TARGET.search(attrs)
        if ident and path:
            targets[ident[1]] = path[1]
    out = {}
    for attrs in _SHEET_TAG.findall(workbook):
        named, rid = _SHEET_NAME.search(attrs), _SHEET_RID.search(attrs)
        if not (named and rid):
            continue
        name = clean_key(html.unescape(named[1].decode("utf-8", "replace")))
        target = targets.get(rid[1], b"").decode("utf-8", "replace").lstrip("/")
        out[target if target.startswith("xl/") else f"xl/{target}"] = name
    return out


def _open_failure(exc: BaseException) -> Problem:
    name = type(exc).__name__
    if "Password" in name:
        return problem("file_encrypted", "", "")
    return problem("file_unreadable", "", "", detail=_short(exc))


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:80]


def _size_check(path: Path) -> Problem | None:
    """A file too large to be a branch's workbook is refused before it is read."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        return problem("file_unreadable", "", "", detail=_short(exc))
    if size > MAX_FILE_BYTES:
        return problem("file_too_large", "", "", detail=f"文件大小{size // 1024 // 1024}MB")
    return None


def size_problem(data: bytes) -> Problem | None:
    """Why an .xlsx file (its bytes) may not be opened by any reader: too large, damaged, an entity bomb; or None.
    For files other than branch workbooks (the registry): a workbook gets the same checks in `read_workbook`."""
    return _precheck(data) if data.startswith(b"PK") else None


def _precheck(data: bytes, parts: dict[str, bytes] | None = None) -> Problem | None:
    """Refuse files that are not .xlsx, are encrypted or .xls, or would inflate beyond reason.

    `parts` receives the XML parts under xl/ (up to KEEP_PART_BYTES each) as read, for `uncalculated_formulas`."""
    import io

    head = data[:8]
    if head.startswith(OLE2_MAGIC):
        if ENCRYPTION_STREAM in data:
            return problem("file_encrypted", "", "")
        return problem("file_old_xls", "", "")
    if not head.startswith(b"PK"):
        return problem("file_unreadable", "", "", detail="不是.xlsx文件")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            total = 0
            for info in zf.infolist():
                total += info.file_size
                ratio = info.file_size / max(info.compress_size, 1)
                if info.file_size > 10 * 1024 * 1024 and ratio > MAX_COMPRESSION_RATIO:
                    return problem("file_too_large", "", "", detail=f"压缩比{ratio:.0f}倍")
            if total > MAX_UNCOMPRESSED_BYTES:
                return problem("file_too_large", "", "", detail=f"解压后{total // 1024 // 1024}MB")
            names = set(zf.namelist())
            if "xl/workbook.xml" not in names:
                return problem("file_unreadable", "", "", detail="不是Excel工作簿")
            sheets = sheet_parts(zf.read)
            cells = strings = 0
            for info in zf.infolist():
                part: bytes | None = None
                try:
                    if info.file_size <= KEEP_PART_BYTES:
                        part = zf.read(info)  # every part read once: zipfile checks its CRC
                        prolog, counted, has_sheet = part[:4096], 0, b"sheetData" in part
                        shared = count_shared_strings(part, MAX_SHARED_STRINGS - strings)
                        formats = part.count(b"<xf") if info.file_size > 512 * 1024 and b"cellXfs" in part else 0
                    else:  # streamed first: a part of hundreds of MB is held whole only if it must be measured
                        prolog, counted, has_sheet, shared, formats = _stream_part(
                            zf, info, MAX_WORKBOOK_CELLS - cells, MAX_SHARED_STRINGS - strings)
                except zipfile.BadZipFile:
                    return problem("file_unreadable", "", "", detail="文件已损坏")
                if formats > MAX_CELL_FORMATS:  # (openpyxl would build every one of them for the marked copy)
                    return problem("file_too_large", "", "",
                                   detail=f"单元格格式超过{MAX_CELL_FORMATS:,}种，远多于Excel允许的64,000种")
                strings += shared  # (counted in every part: a reader may take any part for the table)
                if strings > MAX_SHARED_STRINGS:
                    return problem("file_too_large", "", "",
                                   detail=f"文字表「sharedStrings.xml」超过{MAX_SHARED_STRINGS:,}条，多于一个工作簿允许的单元格数")
                # Office never writes a DOCTYPE; one in a part is an entity bomb or worse
                if info.filename.endswith((".xml", ".rels")):
                    if b"<!DOCTYPE" in prolog or b"<!ENTITY" in prolog:
                        return problem("file_unreadable", "", "", detail="含有不允许的XML实体声明")
                    if parts is not None and part is not None and info.filename.startswith("xl/"):
                        parts[info.filename] = part
                if info.filename in sheets or has_sheet:  # (also a sheet the workbook does not list)
                    sheet = sheets.get(info.filename) or info.filename.rsplit("/", 1)[-1]
                    if cells + counted > MAX_WORKBOOK_CELLS:
                        return _size_problem(sheet, Extent(0, 0, counted), cells + counted)
                    extent = measure(part if part is not None else zf.read(info), MAX_WORKBOOK_CELLS - cells,
                                     MAX_SHEET_CELLS)
                    cells += extent.cells
                    trouble = _size_problem(sheet, extent, cells)
                    if trouble is not None:
                        return trouble
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError,
            NotImplementedError) as exc:  # zipfile raises NotImplementedError for a compression method it lacks
        return problem("file_unreadable", "", "", detail=_short(exc) or "文件不完整")
    return None


def _stream_part(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int,
                 string_limit: int) -> tuple[bytes, int, bool, int, int]:
    """(its first 4 KB, its cell elements, whether it has sheet data, its shared strings, its `<xf` cell formats)
    of a large part, read in pieces (its CRC is checked at the end); reading stops once there are more than
    `string_limit` shared strings, more than `limit` cells in sheet data, or more than MAX_CELL_FORMATS formats
    (any of them refuses the file)."""
    prolog, cells, has_sheet, strings, formats, tail = b"", 0, False, 0, 0, b""
    with zf.open(info) as fh:
        while chunk := fh.read(1 << 22):
            prolog = prolog or chunk[:4096]
            buffer = tail + chunk
            has_sheet = has_sheet or b"sheetData" in buffer
            cells += count_tags(CELL_TAG, buffer, limit - cells, len(tail))  # (the tail's were counted)
            strings += count_tags(SHARED_STRING_TAG, buffer, string_limit - strings, len(tail))
            formats += buffer.count(b"<xf") - tail.count(b"<xf")
            if strings > string_limit or (cells > limit and has_sheet) or formats > MAX_CELL_FORMATS:
                break
            tail = buffer[-256:]
    return prolog, cells, has_sheet, strings, formats


def _size_problem(sheet: str, extent: Extent, cells: int) -> Problem | None:
    """A sheet or a workbook too large to be a branch's: refused for the whole file (so no marked copy either)."""
    far = f"{column_letters(extent.columns)}{extent.rows}"
    if cells > MAX_WORKBOOK_CELLS:
        detail = f"单元格超过{MAX_WORKBOOK_CELLS:,}个"
    elif extent.rows > MAX_SHEET_ROWS:
        detail = f"「{sheet}」用到第{extent.rows}行，超过{MAX_SHEET_ROWS}行"
    elif extent.area > MAX_SHEET_CELLS:
        detail = f"「{sheet}」的内容一直延伸到{far}单元格；如是误填，请删除该处内容"
    else:
        return None
    return problem("file_too_large", "", "", detail=detail)


def _read_sheets(wb: Any, book: RawWorkbook) -> None:
    names = {clean_key(n): n for n in wb.sheet_names}
    book.sheet_names = list(wb.sheet_names)
    missing = [s for s in spec.REQUIRED_SHEETS if s not in names]
    if len(missing) >= 4:  # not our workbook at all: one line, not six
        book.problems.append(problem("file_not_standard", "", "", detail="」「".join(missing[:3])))
        return
    for name in missing:
        book.problems.append(problem("sheet_missing", name, "A1", name))

    def rows_of(sheet_name: str) -> list[list[Any]] | None:
        real = names.get(sheet_name)
        if real is None:
            return None
        sheet = wb.get_sheet_by_name(real)
        try:
            rows = sheet.to_python(skip_empty_area=False, nrows=MAX_SHEET_ROWS + 1)
        except BaseException as exc:  # calamine panics (a BaseException) on e.g. a date far out of range
            if isinstance(exc, (KeyboardInterrupt, SystemExit, MemoryError)):
                raise
            book.problems.append(problem("sheet_unreadable", sheet_name, "A1", sheet_name, detail=_short(exc)))
            return None
        if len(rows) > MAX_SHEET_ROWS:
            book.problems.append(  # (a file-level problem: no marked copy is made of it)
                problem("file_too_large", "", "", detail=f"「{sheet_name}」超过{MAX_SHEET_ROWS}行")
            )
            return None
        return [r[:MAX_SHEET_COLUMNS] for r in rows]

    info_rows = rows_of(spec.INFO_SHEET)
    if info_rows is not None:
        _read_info(info_rows, book)
    for sheet in spec.TABLE_SHEETS:
        rows = rows_of(sheet.name)
        if rows is not None:
            table = _read_table(sheet, rows, book.problems)
            if table is not None:
                book.tables[sheet.key] = table
    grid_rows = rows_of(spec.GRID_SHEET)
    if grid_rows is not None:
        book.grid = _read_grid(grid_rows, book.problems)


def _read_info(rows: list[list[Any]], book: RawWorkbook) -> None:
    labels = {clean_key(k.label): k for k in spec.INFO_KEYS}
    for i, row in enumerate(rows, start=1):
        if not row or row[0] in (None, ""):
            continue
        key = labels.get(clean_key(row[0]))
        if key is None:
            continue
        value = row[1] if len(row) > 1 else None
        value = clean_name(value) if key.kind == "name" or key.key == "branch" else clean_value(value)
        if value == "":
            value = None
        book.info[key.key] = (value, f"B{i}")


def _header_map(
    sheet_name: str, header: list[Any], wanted: tuple[str, ...], problems: list[Problem]
) -> dict[str, int]:
    """Column index of each wanted header; unknown headers are a warning, duplicates an error."""
    found: dict[str, int] = {}
    for idx, raw in enumerate(header):
        if raw in (None, ""):
            continue
        key = clean_key(raw)
        cell = f"{column_letter(idx)}1"
        if key in found:
            problems.append(problem("column_duplicate", sheet_name, cell, key))
        elif key in wanted:
            found[key] = idx
        else:
            problems.append(problem("column_unknown", sheet_name, cell, key))
    return found


def _read_table(sheet: spec.TableSheet, rows: list[list[Any]], problems: list[Problem]) -> RawTable | None:
    header = rows[0] if rows else []
    found = _header_map(sheet.name, header, tuple(c.header for c in sheet.columns), problems)
    present = []
    for col in sheet.columns:
        if col.header in found:
            present.append(col)
        elif col.required or (sheet.required and not col.added):
            problems.append(problem("column_missing", sheet.name, "A1", col.header))
    body = rows[sheet.first_row - 1 :]
    data = {}
    for col in present:
        idx = found[col.header]
        clean = clean_name if col.kind == "name" else free_text if col.kind == "text" else clean_value
        data[col.key] = [clean(r[idx]) if idx < len(r) and r[idx] != "" else None for r in body]
    index = pd.RangeIndex(sheet.first_row, sheet.first_row + len(body), name="row")
    frame = pd.DataFrame(data, index=index, dtype=object)
    if not frame.empty:
        frame = frame[frame.notna().any(axis=1)]
    letters = {col.key: column_letter(found[col.header]) for col in present}
    return RawTable(sheet, frame, letters)


def _read_grid(rows: list[list[Any]], problems: list[Problem]) -> RawGrid:
    header = rows[0] if rows else []
    wanted = tuple(c.header for c in spec.GRID_KEYS) + tuple(e.header for e in spec.GRID_EVENTS)
    found = _header_map(spec.GRID_SHEET, header, wanted, problems)
    for name in wanted:
        if name not in found:
            problems.append(problem("column_missing", spec.GRID_SHEET, "A1", name))
    date_row = rows[1] if len(rows) > 1 else []
    label = clean_key(date_row[0]) if date_row and isinstance(date_row[0], str) else ""
    first = spec.GRID_FIRST_ROW
    if label != spec.GRID_DATE_LABEL:
        problems.append(problem("grid_date_label", spec.GRID_SHEET, "A2", date_row[0] if date_row else ""))
    dates = {}
    for event in spec.GRID_EVENTS:
        idx = found.get(event.header)
        if idx is not None and idx < len(date_row):
            dates[event.header] = clean_value(date_row[idx]) if date_row[idx] != "" else None
    body = rows[first - 1 :]
    data = {}
    for col in spec.GRID_KEYS:
        if col.header in found:
            idx = found[col.header]
            clean = clean_name if col.kind == "name" else clean_value
            data[col.key] = [clean(r[idx]) if idx < len(r) and r[idx] != "" else None for r in body]
    for event in spec.GRID_EVENTS:
        if event.header in found:
            idx = found[event.header]
            data[event.header] = [clean_value(r[idx]) if idx < len(r) and r[idx] != "" else None for r in body]
    frame = pd.DataFrame(data, index=pd.RangeIndex(first, first + len(body), name="row"), dtype=object)
    if not frame.empty:
        frame = frame[frame.notna().any(axis=1)]
    letters = {}
    for name, idx in found.items():
        key = next((c.key for c in spec.GRID_KEYS if c.header == name), name)
        letters[key] = column_letter(idx)
    return RawGrid(frame, letters, dates)
