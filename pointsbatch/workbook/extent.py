"""A worksheet's real size, measured from its XML before any reader builds a grid for it.

The `<dimension>` a sheet claims is not trusted, and neither is a reader's idea of the used range: python-calamine
builds a dense grid from A1 to the farthest cell holding a value (about 32 bytes a cell), so one value at XFD20000
in a 50 KB file costs 10 GB; openpyxl keeps an object for every `<c>` element, valued or only styled. This module
counts both from the bytes, with regular expressions (no XML parser, no grid).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_CELL_COUNT = b'<c r="'
CELL_TAG = re.compile(rb"<(?:[\w.-]+:)?c[\s>/]")  # any cell element, however spelled
SHARED_STRING_TAG = re.compile(rb"<(?:[\w.-]++:)?si[\s>/]")  # an entry of the shared strings table (sharedStrings.xml)
# any cell tag not written as `<c r="...` (a namespace prefix, another attribute first, no r at all): these make
# the fast path below unsafe, so the part is measured cell by cell instead
_ODD_CELL = re.compile(rb'<(?:[\w.-]+:c[\s>/]|c(?:[\t\n\r>/]| (?!r=")))')
# quoted values may hold > and /, never < (XML escapes it): no pattern crosses into the next tag, and none backtracks
# (possessive quantifiers), so each scan is linear whatever a hostile part repeats in a comment or an attribute
_ATTRS = rb"""(?:\s++[^\s=<>/"']++\s*+=\s*+(?:"[^<"]*+"|'[^<']*+'))*+\s*+"""
# a cell that is not self-closing: it may hold a value (a styled empty cell is `<c r="B2" s="1"/>`)
_VALUED_REF = re.compile(rb'<c r="([^<"]*+)"' + _ATTRS + rb">")
_CLOSED = re.compile(rb'<c r="[^<"]*+"' + _ATTRS + rb"/>")
_REFS = re.compile(rb"(?:[A-Z]{1,3}[1-9][0-9]{0,6} )*[A-Z]{1,3}[1-9][0-9]{0,6}")
_DIGITS = re.compile(rb"[0-9]+")
_LETTERS = re.compile(rb"[A-Z]+")
_DEEP = re.compile(rb'<c r="[A-Z]*[0-9]{5}')
_WIDE = re.compile(rb'<c r="[A-Z]{3}')
# the slow path: every row and cell tag, whatever its spelling
_TAG = re.compile(rb"<(?:[\w.-]++:)?(row|c)(" + _ATTRS + rb")(/?)>")
_R_ATTR = re.compile(rb'(?:^|\s)r\s*+=\s*+["\']\$?([A-Za-z]*+)\$?([0-9]*+)["\']')


@dataclass(frozen=True)
class Extent:
    """rows × columns: the used range from A1 to the farthest cell that may hold a value (or a bound of it, see
    `measure`); cells: every `<c>` element, valued or only styled."""

    rows: int
    columns: int
    cells: int

    @property
    def area(self) -> int:
        return self.rows * self.columns


def column_number(letters: bytes) -> int:
    """b"A" -> 1, b"XFD" -> 16384."""
    n = 0
    for ch in letters.upper():
        n = n * 26 + ch - 64
    return n


def column_letters(number: int) -> str:
    """1 -> "A", 16384 -> "XFD"."""
    letters = ""
    while number > 0:
        number, rem = divmod(number - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def count_tags(tag: re.Pattern[bytes], xml: bytes, limit: int, after: int = 0) -> int:
    """The elements `tag` finds in `xml` that end past offset `after`; counting stops a little past `limit`."""
    count = 0
    for match in tag.finditer(xml):
        if match.end() > after:
            count += 1
            if count > limit:
                break
    return count


def count_shared_strings(xml: bytes, limit: int) -> int:
    """The shared-string entries (`<si>`, however prefixed) in a part, as `count_tags` counts them; a part holding
    neither `<si` nor `:si` (every sheet) is passed over at the speed of a substring search."""
    if b"<si" not in xml and b":si" not in xml:
        return 0
    return count_tags(SHARED_STRING_TAG, xml, limit)


def measure(xml: bytes, max_cells: int, max_area: int) -> Extent:
    """The extent of one worksheet part. Counting stops a little past `max_cells`. A sheet whose every cell lies
    within 9,999 rows and column ZZ (the usual case) is reported at that bound, without reading each cell, when
    the bound is within `max_area` (the caller's own limit): only a larger sheet is measured exactly."""
    if b"<c" not in xml and b":c" not in xml:
        return Extent(0, 0, 0)
    if _ODD_CELL.search(xml) is None:
        cells = xml.count(_CELL_COUNT)
        if cells > max_cells:
            return Extent(0, 0, cells)
        rows = 10 ** 4 - 1 if _DEEP.search(xml) is None else 0
        columns = 26 * 27 if _WIDE.search(xml) is None else 0
        if rows and columns and rows * columns <= max_area:
            return Extent(rows, columns, cells)
        refs = _VALUED_REF.findall(xml)
        if len(refs) + len(_CLOSED.findall(xml)) != cells:  # a tag these patterns do not read: cell by cell
            return _measure_cell_by_cell(xml, max_cells)
        if not refs:
            return Extent(0, 0, cells)
        joined = b" ".join(refs)
        if _REFS.fullmatch(joined):
            rows = max(map(int, _DIGITS.findall(joined)))
            columns = max(map(column_number, set(_LETTERS.findall(joined))))
            return Extent(rows, columns, cells)
    return _measure_cell_by_cell(xml, max_cells)


def _measure_cell_by_cell(xml: bytes, max_cells: int) -> Extent:
    """As a reader walks the sheet: a row or cell without `r` follows the one before it."""
    row = col = rows = columns = cells = 0
    for match in _TAG.finditer(xml):
        name, attrs, closed = match.groups()
        ref = _R_ATTR.search(attrs)
        if name == b"row":
            row = int(ref[2]) if ref and ref[2] else row + 1
            col = 0
            continue
        cells += 1
        if cells > max_cells:
            break
        if ref and (ref[1] or ref[2]):
            col = column_number(ref[1]) if ref[1] else col + 1
            row = int(ref[2]) if ref[2] else row
        else:
            col += 1
        if not closed:
            rows, columns = max(rows, row), max(columns, col)
    return Extent(rows, columns, cells)
