"""The marked copy patched into the workbook's own XML: the fast path of `marked.write_marked_copy`.

openpyxl loads every cell of every sheet and writes them all again (117-210 ms a workbook). Here only what the
copy changes is parsed and written: the sheets holding a problem cell (their style index set to a new style
derived from the cell's own, so its number format, font and borders stay), a comments part and the legacy VML
drawing Excel needs to show it, styles.xml (two fills, the derived styles, the listing's fonts), the new sheet
问题清单, workbook.xml, its relationships, the content types and the document properties (as openpyxl writes them).
Every other zip entry is copied as its compressed bytes. Sheets, data validations, conditional formats and
everything else in the parts left alone stay as the branch saved them.

A sheet's printer settings are dropped (as openpyxl drops them). The patch takes only what it knows to be inert:
a part of any other kind (external links, drawings, pictures, pivot tables, macros, connections, a thumbnail),
another relationship of a sheet (comments, links),
a hyperlink or a formula that reaches beyond the workbook, a strict-OOXML or odd package, an existing 问题清单
sheet: `patched_copy` then returns None and the caller takes openpyxl's path, which removes links (see
`marked._remove_links`). XML is parsed with lxml (no DTD, no entities, no network, lxml's size limits).
"""

from __future__ import annotations

import bisect
import datetime as dt
import html
import io
import posixpath
import re
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterable
from copy import deepcopy
from dataclasses import dataclass
from functools import partial

from lxml import etree

from ..files import RawZip
from .extent import column_letters

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
DOC_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
CONTENT_TYPES = "http://schemas.openxmlformats.org/package/2006/content-types"
XML_SPACE = "{http://www.w3.org/XML/1998/namespace}space"

_CT = "application/vnd.openxmlformats-officedocument."
WORKSHEET_CT = _CT + "spreadsheetml.worksheet+xml"
COMMENTS_CT = _CT + "spreadsheetml.comments+xml"
VML_CT = _CT + "vmlDrawing"
RELS_CT = "application/vnd.openxmlformats-package.relationships+xml"
PRINTER_CT = _CT + "spreadsheetml.printerSettings"
# the parts a copy may carry as the branch saved them: cells, their styles and the document's properties
_INERT_PARTS = {
    _CT + "spreadsheetml.sheet.main+xml", WORKSHEET_CT, _CT + "spreadsheetml.styles+xml", _CT + "theme+xml",
    _CT + "spreadsheetml.sharedStrings+xml", _CT + "spreadsheetml.calcChain+xml",
    "application/vnd.openxmlformats-package.core-properties+xml", _CT + "extended-properties+xml",
    _CT + "custom-properties+xml", RELS_CT,
}
_REL = DOC_REL + "/"
_BOOK_RELS = {_REL + t for t in ("worksheet", "styles", "theme", "sharedStrings", "calcChain")}
_ROOT_RELS = {_REL + "officeDocument", _REL + "extended-properties", _REL + "custom-properties",
              "http://schemas.openxmlformats.org/package/2006/relationships/metadata/core-properties"}
CORE, APP, TYPES, ROOT_RELS = "docProps/core.xml", "docProps/app.xml", "[Content_Types].xml", "_rels/.rels"

ERROR_RGB, WARNING_RGB = "00FF9999", "00FFE699"  # as openpyxl writes marked.ERROR_FILL and WARNING_FILL
_RANGE = re.compile(r"([A-Z]{1,3})([1-9][0-9]{0,6})(?::([A-Z]{1,3})([1-9][0-9]{0,6}))?")
_AFTER_F = re.compile(rb"f[\s>/]")  # (a search for a rare pair of bytes; what came before is looked at apart)
_CELL_REF = re.compile(r"([A-Z]{1,3})([1-9][0-9]{0,6})")
# what a sheet or workbook may hold that acts when the copy is opened or saved: an embedded or linked object (a
# linked one needs no relationship), an ActiveX control, web publishing to a path; openpyxl's path drops them
_LIVE = ("{*}oleObject", "{*}control", "{*}webPublishItem", "{*}webPublishObject", "{*}webPublishing")
_FORMULAS = ("{*}f", "{*}formula", "{*}formula1", "{*}formula2")
_MAY_MATTER = (b"hyperlink", b"tabSelected", b"oleObject", b"control", b"webPublish", b"<!--", b"&#", b"<![CDATA[")
# the text of a conditional format's or a drop-down's formula, any prefix (within one tag: linear)
_FORMULA_TEXT = re.compile(rb"<(?:[\w.-]++:)?formula[12]?+(?:\s[^<>]*+)?>([^<]*+)<")
_ENCODING = re.compile(rb"""^(?:\xef\xbb\xbf)?<\?xml[^>]*?\bencoding\s*=\s*["']([^"']*)["']""")
_MAX_ROW, _MAX_COLUMN, _MAX_STYLES = 1_048_576, 16_384, 64_000
_DECLARATION = b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, remove_comments=False)
# (element order in a worksheet, ECMA-376 CT_Worksheet: the comments' drawing goes where Excel expects it)
_AFTER_LEGACY_DRAWING = ("legacyDrawingHF", "drawingHF", "picture", "oleObjects", "controls", "webPublishItems",
                         "tableParts", "extLst")
_AFTER_DEFINED_NAMES = ("calcPr", "oleSize", "customWorkbookViews", "pivotCaches", "smartTagPr", "smartTagTypes",
                        "webPublishing", "fileRecoveryPr", "webPublishObjects", "extLst")


# a formula that can reach beyond the workbook when the copy is opened: another workbook ([x.xlsx], [1]), a UNC
# path (\\server\share), DDE (cmd|' /C calc'!A0), or a function that fetches or runs something
_REACHING_CALL = re.compile(r"\\\\|\||\b(?:HYPERLINK|WEBSERVICE|RTD|CALL|REGISTER|REGISTER\.ID|EXEC|IMAGE)\s*+\(",
                            re.IGNORECASE)


def reaches_out(formula: str) -> bool:
    """Whether a formula can reach beyond the workbook (see above). A bracket pair is found by position: the pattern
    \\[[^\\]]*\\] took time growing with the square of a formula's length (1 MB of '[' for minutes)."""
    opening = formula.find("[")
    return (opening >= 0 and formula.rfind("]") > opening) or _REACHING_CALL.search(formula) is not None


class Unpatchable(Exception):
    """The workbook holds something the patch does not handle: the caller takes openpyxl's path."""


@dataclass(frozen=True)
class Listing:
    """What the copy says, decided by marked.py for both paths: the problem sheet's title, headers, column widths
    and rows (values, the `#'sheet'!cell` jump of its 单元格, whether an error), and each marked cell's comment."""

    sheet_name: str
    title: str
    headers: tuple[str, ...]
    widths: tuple[float, ...]
    rows: list[tuple[int, str, str, str, str, str, str | None, bool]]
    comments: dict[tuple[str, str], tuple[bool, str, int]]  # (sheet, cell) -> (error, text, how many problems)


def patched_copy(data: bytes, listing_for: Callable[[list[str]], Listing], when: dt.datetime) -> bytes | None:
    """The marked copy as .xlsx bytes, or None when the workbook holds anything the patch does not take (see the
    module docstring). `listing_for`: the listing, given the workbook's sheet names in order."""
    try:
        patch = _Patch(data)
        return patch.run(listing_for([name for name, _ in patch.sheets]), when)
    except (Unpatchable, etree.XMLSyntaxError, zipfile.BadZipFile, zlib.error, struct.error, ValueError,
            KeyError, IndexError, EOFError, NotImplementedError):
        return None
    except Exception:  # a case this module did not foresee: openpyxl's path still gives the branch its copy
        return None


def _parse(xml: bytes) -> etree._Element:
    root = etree.fromstring(xml, _PARSER)
    if root.getroottree().docinfo.doctype:
        raise Unpatchable("a DOCTYPE")
    return root


def _q(name: str, ns: str = MAIN) -> str:
    return f"{{{ns}}}{name}"


def _xml(root: etree._Element) -> bytes:
    return _DECLARATION + etree.tostring(root, xml_declaration=False, encoding="UTF-8")


def _target(source_part: str, target: str) -> str:
    """A relationship's target as a zip entry name."""
    base = posixpath.dirname(posixpath.dirname(source_part))  # a/_rels/b.xml.rels -> a
    path = target[1:] if target.startswith("/") else posixpath.join(base, target)
    path = posixpath.normpath(path)
    if path.startswith("..") or path.startswith("/"):
        raise Unpatchable(f"a target outside the package: {target}")
    return path


def _rels_of(part: str) -> str:
    return posixpath.join(posixpath.dirname(part), "_rels", posixpath.basename(part) + ".rels")


class _Patch:
    """One workbook: its zip read once, the parts it changes parsed, the rest copied."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.zip = zipfile.ZipFile(io.BytesIO(data))
        self.entries = {info.filename: info for info in self.zip.infolist()}
        if len(self.entries) != len(self.zip.infolist()):
            raise Unpatchable("two entries of one name")
        self.lower = {name.lower() for name in self.entries}
        self.checked: set[str] = set()
        self.types = _parse(self.read(TYPES))
        if self.types.tag != _q("Types", CONTENT_TYPES):
            raise Unpatchable("content types")
        defaults = {d.get("Extension", "").lower(): d.get("ContentType") for d in self.types
                    if d.tag == _q("Default", CONTENT_TYPES)}
        overrides = {o.get("PartName", "").lstrip("/").lower(): o.get("ContentType") for o in self.types
                     if o.tag == _q("Override", CONTENT_TYPES)}
        self.content_type = {}
        for name, info in self.entries.items():
            if name == TYPES:
                continue
            kind = overrides.get(name.lower()) or defaults.get(name.rsplit(".", 1)[-1].lower())
            if kind not in _INERT_PARTS | {PRINTER_CT} or info.flag_bits & 1 or info.compress_type not in (0, 8):
                raise Unpatchable(f"{name}: {kind}")
            self.content_type[name] = kind
        root_rels = self.relationships(ROOT_RELS, _ROOT_RELS)
        books = [t for t, kind in root_rels.values() if kind == _REL + "officeDocument"]
        if len(books) != 1 or CORE not in self.entries or APP not in self.entries:
            raise Unpatchable("package")
        self.book_part = books[0]
        self.book_rels_part = _rels_of(self.book_part)
        self.book = _parse(self.read(self.book_part))
        if self.book.tag != _q("workbook"):
            raise Unpatchable("not a transitional workbook")  # strict OOXML among others
        self.book_rels = self.relationships(self.book_rels_part, _BOOK_RELS)
        sheets_el = self.book.find(_q("sheets"))
        if sheets_el is None:
            raise Unpatchable("no sheets")
        self.sheets: list[tuple[str, str]] = []
        for sheet in sheets_el:
            rel = self.book_rels.get(sheet.get(_q("id", DOC_REL)) or "")
            if sheet.tag != _q("sheet") or rel is None or rel[1] != _REL + "worksheet" or rel[0] not in self.entries:
                raise Unpatchable("a sheet that is not a worksheet part")
            self.sheets.append((sheet.get("name") or "", rel[0]))
        if len({name.lower() for name, _ in self.sheets}) != len(self.sheets):
            raise Unpatchable("two sheets of one name")
        if {part for _, part in self.sheets} != {n for n, k in self.content_type.items() if k == WORKSHEET_CT}:
            raise Unpatchable("a worksheet part that is no sheet")
        sheet_rels = {_rels_of(part): part for _, part in self.sheets}
        # a sheet's printer settings (Excel keeps them once a sheet was printed) are dropped, as openpyxl drops them;
        # any other relationship of a sheet (links, comments, drawings) or of another part is openpyxl's to handle
        self.printer: dict[str, set[str]] = {}  # sheet part -> the ids of its printer settings
        self.dropped: set[str] = set()
        for name, kind in self.content_type.items():
            if (kind == RELS_CT or name.lower().endswith(".rels")) and name not in (ROOT_RELS, self.book_rels_part):
                if name not in sheet_rels:
                    raise Unpatchable(f"relationships of another part: {name}")
                rels = self.relationships(name, {_REL + "printerSettings"})
                self.printer[sheet_rels[name]] = set(rels)
                self.dropped |= {name, *(target for target, _ in rels.values())}
        if {n for n, k in self.content_type.items() if k == PRINTER_CT} - self.dropped:
            raise Unpatchable("printer settings of no sheet")

    def read(self, name: str) -> bytes:
        """An entry's content (zipfile checks its CRC)."""
        self.checked.add(name)
        return self.zip.read(self.entries[name])

    def relationships(self, part: str, allowed: set[str]) -> dict[str, tuple[str, str]]:
        """Id -> (target entry, type) of a relationships part, every one internal and of an `allowed` type."""
        root = _parse(self.read(part))
        if root.tag != _q("Relationships", PKG_REL):
            raise Unpatchable(part)
        out = {}
        for rel in root:
            kind, target = rel.get("Type") or "", rel.get("Target") or ""
            if rel.tag != _q("Relationship", PKG_REL) or kind not in allowed or rel.get("TargetMode") == "External":
                raise Unpatchable(f"{part}: {kind}")
            out[rel.get("Id") or ""] = (_target(part, target), kind)
        return out

    def free_name(self, pattern: str) -> str:
        n = 1
        while pattern.format(n).lower() in self.lower:
            n += 1
        self.lower.add(pattern.format(n).lower())
        return pattern.format(n)

    # --- the copy ---------------------------------------------------------------------------------------------

    def run(self, listing: Listing, when: dt.datetime) -> bytes:
        if listing.sheet_name.lower() in {name.lower() for name, _ in self.sheets}:
            raise Unpatchable("a problem sheet already")  # a marked copy sent back: openpyxl replaces its sheet
        for element in self.book.iter(_q("definedName")):
            if len(element) or reaches_out(element.text or ""):
                raise Unpatchable("a name that reaches beyond the workbook")
        _refuse_live(self.book)
        styles_part = next((t for t, kind in self.book_rels.values() if kind == _REL + "styles"), None)
        if styles_part is None or styles_part not in self.entries:
            raise Unpatchable("no styles")
        styles = _Styles(_parse(self.read(styles_part)))
        by_sheet: dict[str, dict[str, tuple[bool, str, int]]] = {}
        for (sheet, cell), mark in listing.comments.items():
            by_sheet.setdefault(sheet, {})[cell] = mark
        changed: dict[str, bytes] = {}
        added: list[tuple[str, bytes, str | None]] = []  # (entry, content, content type to declare)
        for n, (name, part) in enumerate(self.sheets, start=1):
            xml = self.read(part)
            marks = by_sheet.get(name, {})
            printer = self.printer.get(part, set())
            if not _utf8(xml):
                raise Unpatchable(f"{part}: not UTF-8")  # (the byte searches below read UTF-8 only)
            if not marks and not printer and not _may_matter(xml):
                continue
            root = _parse(xml)
            if root.tag != _q("worksheet"):
                raise Unpatchable(part)
            self.check_inert(root)
            unselected = _unselect(root)
            uncached = _drop_cached_results(root)
            if _drop_references(root, printer) and marks:
                raise Unpatchable("a reference to a relationship the sheet does not have")  # rId1 would be ours
            if not marks:
                if unselected or uncached or printer:
                    changed[part] = _xml(root)
                continue
            if len(marks) > 1000:
                raise Unpatchable("more comments than one drawing's block of shape ids")
            cells = _Cells(root)
            for cell, (error, _, _) in marks.items():
                styles.mark(cells.get(cell), error)
            comments_part = self.free_name("xl/comments{}.xml")
            vml_part = self.free_name("xl/drawings/vmlDrawing{}.vml")
            _add_legacy_drawing(root, "rId1")
            changed[part] = _xml(root)
            added.append((comments_part, _comments_xml(marks), COMMENTS_CT))
            added.append((vml_part, _vml(marks, n), None))
            added.append((_rels_of(part), _rels([
                ("rId1", _REL + "vmlDrawing", posixpath.relpath(vml_part, posixpath.dirname(part)), False),
                ("rId2", _REL + "comments", posixpath.relpath(comments_part, posixpath.dirname(part)), False)]),
                None))
        listing_part = self.free_name("xl/worksheets/sheet{}.xml")
        added.append((listing_part, _listing_xml(listing, styles), WORKSHEET_CT))
        targets = [row[6] for row in listing.rows if row[6]]
        links = [(f"rId{i}", _REL + "hyperlink", target, True) for i, target in enumerate(targets, start=1)]
        if links:
            added.append((_rels_of(listing_part), _rels(links), None))
        if len(styles.xfs) > _MAX_STYLES:
            raise Unpatchable("too many styles")
        changed[styles_part] = _xml(styles.root)
        changed[self.book_part], changed[self.book_rels_part] = self.patched_book(listing, listing_part)
        changed[TYPES] = self.patched_types([(entry, kind) for entry, _, kind in added if kind], vml=any(
            entry.endswith(".vml") for entry, _, _ in added))
        changed[CORE] = _core(self.read(CORE), when)
        changed[APP] = _app()
        return self.zipped(changed, [(entry, content) for entry, content, _ in added])

    def check_inert(self, root: etree._Element) -> None:
        """Nothing openpyxl's path would remove or lose: hyperlinks, formulas that reach beyond the workbook (in a
        cell, a conditional format or a drop-down), embedded or linked objects, controls, web publishing."""
        if root.find(_q("hyperlinks")) is not None:
            raise Unpatchable("hyperlinks")
        _refuse_live(root)
        for f in root.iter(*_FORMULAS):  # (x14 extensions' xm:f too: openpyxl's copy drops extensions)
            if len(f) or reaches_out("=" + (f.text or "")):  # (a comment inside would hide what it spells)
                raise Unpatchable("a formula that reaches out")

    def patched_book(self, listing: Listing, listing_part: str) -> tuple[bytes, bytes]:
        """workbook.xml and its relationships with 问题清单 first, shown and selected."""
        rels = _parse(self.read(self.book_rels_part))
        ids = {rel.get("Id") for rel in rels}
        new_id = next(f"rId{n}" for n in range(len(ids) + 1, 0, -1) if f"rId{n}" not in ids)  # (one is free)
        etree.SubElement(rels, _q("Relationship", PKG_REL), Id=new_id, Type=_REL + "worksheet",
                         Target="/" + listing_part)
        book = self.book
        for child in list(book):
            if not isinstance(child.tag, str) or not child.tag.startswith(f"{{{MAIN}}}"):
                book.remove(child)  # what openpyxl drops too: the saving machine's path (x15ac:absPath), extensions
        sheets = book.find(_q("sheets"))
        ids_used = [int(s.get("sheetId") or 0) for s in sheets]
        sheet = etree.Element(_q("sheet"), name=listing.sheet_name, sheetId=str(max(ids_used, default=0) + 1))
        sheet.set(_q("id", DOC_REL), new_id)
        sheets.insert(0, sheet)
        views = book.find(_q("bookViews"))
        if views is None:
            views = etree.Element(_q("bookViews"))
            sheets.addprevious(views)
        if not len(views):
            etree.SubElement(views, _q("workbookView"))
        for view in views:
            view.set("activeTab", "0")
            view.set("firstSheet", "0")
        names = book.find(_q("definedNames"))
        if names is None:
            names = etree.Element(_q("definedNames"))
            after = next((book.find(_q(t)) for t in _AFTER_DEFINED_NAMES if book.find(_q(t)) is not None), None)
            if after is None:
                book.append(names)
            else:
                after.addprevious(names)
        for name in names:
            local = name.get("localSheetId")
            if local is not None:
                name.set("localSheetId", str(int(local) + 1))
        titles = etree.Element(_q("definedName"), name="_xlnm.Print_Titles", localSheetId="0")
        titles.text = f"'{listing.sheet_name}'!$2:$2"
        names.insert(0, titles)
        return _xml(book), _xml(rels)

    def patched_types(self, parts: list[tuple[str, str]], vml: bool) -> bytes:
        gone = {name.lower() for name in self.dropped}
        for item in list(self.types):
            if (item.tag == _q("Override", CONTENT_TYPES) and item.get("PartName", "").lstrip("/").lower() in gone
                    or item.tag == _q("Default", CONTENT_TYPES) and item.get("ContentType") == PRINTER_CT):
                self.types.remove(item)  # (printer settings are the only parts dropped)
        for entry, kind in parts:
            etree.SubElement(self.types, _q("Override", CONTENT_TYPES), PartName="/" + entry, ContentType=kind)
        extensions = {d.get("Extension", "").lower(): d for d in self.types if d.tag == _q("Default", CONTENT_TYPES)}
        for extension, kind in (("rels", RELS_CT), ("vml", VML_CT)) if vml else (("rels", RELS_CT),):
            if extension not in extensions:
                self.types.insert(0, etree.Element(_q("Default", CONTENT_TYPES), Extension=extension, ContentType=kind))
            elif extensions[extension].get("ContentType") != kind:
                raise Unpatchable(f"another content type for .{extension}")
        return _xml(self.types)

    def zipped(self, changed: dict[str, bytes], added: list[tuple[str, bytes]]) -> bytes:
        """The copy's zip: entries left alone as their compressed bytes, the rest deflated; all dated 1980-01-01
        as `files.fixed_zip_dates` dates them."""
        out = RawZip(made_by=(3 << 8) | 20)

        def deflated(name: str, content: bytes, external_attr: int) -> None:
            compressor = zlib.compressobj(1, zlib.DEFLATED, -15)
            raw = compressor.compress(content) + compressor.flush()
            out.add(name, raw, zipfile.ZIP_DEFLATED, zlib.crc32(content), len(content), external_attr)

        for name, info in self.entries.items():
            if name in self.dropped:
                continue
            if name in changed:
                deflated(name, changed[name], info.external_attr)
            else:
                out.add(name, self.raw(info), info.compress_type, info.CRC, info.file_size, info.external_attr)
        for name, content in added:
            deflated(name, content, 0)
        return out.finish()  # (too large for a plain zip: ValueError, and patched_copy leaves it to openpyxl)

    def raw(self, info: zipfile.ZipInfo) -> bytes:
        """An entry's compressed bytes, as its local header places them (zipfile has no public call for this)."""
        start = info.header_offset
        header = self.data[start:start + 30]
        if len(header) != 30 or header[:4] != b"PK\x03\x04":
            raise Unpatchable("a local header")
        name_length, extra_length = struct.unpack("<HH", header[26:30])
        begin = start + 30 + name_length + extra_length
        raw = self.data[begin:begin + info.compress_size]
        if len(raw) != info.compress_size:
            raise Unpatchable("a short entry")
        content = raw
        if info.filename in self.checked:
            return raw
        if info.compress_type == zipfile.ZIP_DEFLATED:
            inflater = zlib.decompressobj(-15)
            content = inflater.decompress(raw, info.file_size + 1)
            if not inflater.eof:
                raise Unpatchable("a deflated entry that does not end")
        if len(content) != info.file_size or zlib.crc32(content) != info.CRC:
            raise Unpatchable(f"a damaged entry: {info.filename}")  # copied as it is, the copy would be damaged
        return raw


def _refuse_live(root: etree._Element) -> None:
    for element in root.iter(*_LIVE):
        raise Unpatchable(f"a live object: {etree.QName(element).localname}")


def _may_matter(xml: bytes) -> bool:
    """Whether a sheet without problems could hold what the copy must look at: a formula in a cell, one that
    reaches out in a conditional format or a drop-down, a hyperlink, a live object, or its tab selected; and
    anything that could spell one so that these byte searches miss it (a comment, a processing instruction, a
    character reference, CDATA). A false yes only costs a parse."""
    if any(word in xml for word in _MAY_MATTER) or xml.find(b"<?", 1) >= 0:
        return True
    if any(xml[m.start() - 1:m.start()] in (b"<", b":") for m in _AFTER_F.finditer(xml)):  # <f>, <x:f ...>
        return True
    return any(reaches_out(html.unescape(text.decode("utf-8", "replace"))) for text in _FORMULA_TEXT.findall(xml))


def _utf8(xml: bytes) -> bool:
    """Whether a part is UTF-8 (as Excel, WPS and LibreOffice write every part): no UTF-16 or UTF-32 byte order
    mark or NUL, and a declaration, if any, that names no other encoding."""
    head = xml[:200]
    if head[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in head:
        return False
    declared = _ENCODING.search(head)
    return declared is None or declared[1].lower() in (b"utf-8", b"utf8")


def _drop_cached_results(root: etree._Element) -> bool:
    """Formulas without the results last saved with them, as openpyxl's path writes them (a reader that does not
    calculate shows them empty, the same in both paths); whether the sheet had any."""
    dropped = False
    for f in root.iter(_q("f")):
        cell = f.getparent()
        for v in cell.findall(_q("v")) if cell is not None else ():
            cell.remove(v)
            dropped = True
    return dropped


def _drop_references(root: etree._Element, ids: set[str]) -> bool:
    """The sheet without its references to the relationships dropped (its printer settings on pageSetup);
    whether it refers to any other relationship. (References sit outside sheetData: links, drawings, page setup,
    tables, controls.)"""
    attribute, others = _q("id", DOC_REL), False
    for child in root:
        if child.tag == _q("sheetData"):
            continue
        for element in child.iter():
            if element.get(attribute) in ids:
                del element.attrib[attribute]
            elif element.get(attribute) is not None:
                others = True
    return others


def _unselect(root: etree._Element) -> bool:
    """The sheet's tab no longer selected (问题清单 is); whether it was."""
    was = False
    views = root.find(_q("sheetViews"))
    for view in views if views is not None else ():
        if view.get("tabSelected") is not None:
            was = was or view.get("tabSelected") in ("1", "true")
            del view.attrib["tabSelected"]
    return was


class _Cells:
    """A sheet's `<c>` elements by reference; rows and cells must be in ascending order with their references
    written out (otherwise a reader numbers them by position, and an inserted one could land twice)."""

    def __init__(self, root: etree._Element) -> None:
        data = root.find(_q("sheetData"))
        if data is None:
            raise Unpatchable("no sheetData")
        self.root, self.data = root, data
        self.rows = _ordered(data, "row", _row_numbers)
        self.cells: dict[int, list[tuple[int, etree._Element]]] = {}

    def get(self, ref: str) -> etree._Element:
        """The `<c>` element of `ref`, inserted in row and column order when the sheet has none."""
        match = _CELL_REF.fullmatch(ref)
        if match is None:
            raise Unpatchable(f"not a cell: {ref}")
        column, row = _column_number(match[1]), int(match[2])
        if column > _MAX_COLUMN or row > _MAX_ROW:
            raise Unpatchable(f"beyond the sheet: {ref}")
        row_el = _insert(self.data, self.rows, row, {"r": str(row)}, "row")
        if row not in self.cells:
            self.cells[row] = _ordered(row_el, "c", partial(_cell_columns, row))
        known = len(self.cells[row])
        cell = _insert(row_el, self.cells[row], column, {"r": ref}, "c")
        if len(self.cells[row]) > known:  # a new cell: the row's column hint and the sheet's extent may grow
            row_el.attrib.pop("spans", None)
            self.extend(row, column)
        return cell

    def extend(self, row: int, column: int) -> None:
        dimension = self.root.find(_q("dimension"))
        match = _RANGE.fullmatch(dimension.get("ref") or "") if dimension is not None else None
        if dimension is None or match is None:
            return
        first_column, first_row = _column_number(match[1]), int(match[2])
        last_column = _column_number(match[3] or match[1])
        last_row = int(match[4] or match[2])
        first_column, first_row = min(first_column, column), min(first_row, row)
        last_column, last_row = max(last_column, column), max(last_row, row)
        dimension.set("ref", f"{column_letters(first_column)}{first_row}:{column_letters(last_column)}{last_row}")


def _ordered(parent: etree._Element, tag: str, key_of) -> list[tuple[int, etree._Element]]:
    wanted, ext = _q(tag), _q("extLst")
    children = [child for child in parent if child.tag != ext and isinstance(child.tag, str)]
    if any(child.tag != wanted for child in children):
        raise Unpatchable(f"an unknown element in {parent.tag}")
    keys = key_of(children)
    if any(a >= b for a, b in zip(keys, keys[1:], strict=False)) or (keys and keys[0] < 1):
        raise Unpatchable(f"{tag} out of order")
    return list(zip(keys, children, strict=True))


def _insert(parent: etree._Element, children: list[tuple[int, etree._Element]], key: int, attrs: dict[str, str],
            tag: str) -> etree._Element:
    """The child of `key`, or a new one placed before the first with a greater key (`children` kept in step)."""
    at = bisect.bisect_left(children, key, key=lambda pair: pair[0])
    if at < len(children) and children[at][0] == key:
        return children[at][1]
    new = etree.Element(_q(tag), attrs)
    if at < len(children):
        children[at][1].addprevious(new)
    else:
        last = parent[-1] if len(parent) else None
        if last is not None and last.tag == _q("extLst"):
            last.addprevious(new)
        else:
            parent.append(new)
    children.insert(at, (key, new))
    return new


def _row_numbers(rows: list[etree._Element]) -> list[int]:
    numbers = [row.get("r") for row in rows]
    if None in numbers:
        raise Unpatchable("a row without its number")
    return list(map(int, numbers))  # (a number int() does not read raises ValueError: not patched)


def _cell_columns(row: int, cells: list[etree._Element]) -> list[int]:
    columns = []
    for cell in cells:
        match = _CELL_REF.fullmatch(cell.get("r") or "")
        if match is None or int(match[2]) != row:
            raise Unpatchable("a cell without its reference, or in another row")
        columns.append(_column_number(match[1]))
    return columns


def _column_number(letters: str) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + ord(ch) - 64
    return n


def _add_legacy_drawing(root: etree._Element, rel_id: str) -> None:
    if root.find(_q("legacyDrawing")) is not None:
        raise Unpatchable("a legacy drawing already")
    element = etree.Element(_q("legacyDrawing"))
    element.set(_q("id", DOC_REL), rel_id)
    after = next((c for c in root if isinstance(c.tag, str) and etree.QName(c).localname in _AFTER_LEGACY_DRAWING),
                 None)
    if after is None:
        root.append(element)
    else:
        after.addprevious(element)


class _Styles:
    """styles.xml with the fills and fonts the copy adds, and a style per (problem cell style, error or warning)."""

    def __init__(self, root: etree._Element) -> None:
        if root.tag != _q("styleSheet"):
            raise Unpatchable("styles")
        self.root = root
        self.fonts, self.fills, self.xfs = (root.find(_q(t)) for t in ("fonts", "fills", "cellXfs"))
        if self.fonts is None or self.fills is None or self.xfs is None or not len(self.xfs):
            raise Unpatchable("styles without fonts, fills or cell styles")
        if any(c.tag != _q("xf") for c in self.xfs):
            raise Unpatchable("cellXfs")
        self.error_fill = self._add(self.fills, _fill(ERROR_RGB))
        self.warning_fill = self._add(self.fills, _fill(WARNING_RGB))
        self.derived: dict[tuple[int, bool], int] = {}
        title = self._add(self.fonts, _font(bold=True, rgb="00C00000"))
        bold = self._add(self.fonts, _font(bold=True))
        link = self._add(self.fonts, _font(rgb="000563C1", underline=True))
        self.title = self._xf(title, vertical="center", wrap=True)
        self.header = self._xf(bold)
        self.body = self._xf(0, vertical="top")
        self.wrapped = self._xf(0, vertical="top", wrap=True)
        self.error = self._xf(title, vertical="top")
        self.link = self._xf(link, vertical="top")

    def _add(self, parent: etree._Element, child: etree._Element) -> int:
        parent.append(child)
        parent.set("count", str(len(parent)))
        return len(parent) - 1

    def _xf(self, font: int, vertical: str | None = None, wrap: bool = False) -> int:
        xf = etree.Element(_q("xf"), numFmtId="0", fontId=str(font), fillId="0", borderId="0", xfId="0")
        if font:
            xf.set("applyFont", "1")
        if vertical:
            xf.set("applyAlignment", "1")
            align = etree.SubElement(xf, _q("alignment"), vertical=vertical)
            if wrap:
                align.set("wrapText", "1")
        return self._add(self.xfs, xf)

    def mark(self, cell: etree._Element, error: bool) -> None:
        """The cell's own style with the problem's fill."""
        old = int(cell.get("s") or 0)
        if old >= len(self.xfs) or old < 0:
            raise Unpatchable("a style the workbook does not have")
        key = (old, error)
        if key not in self.derived:
            xf = deepcopy(self.xfs[old])
            xf.set("fillId", str(self.error_fill if error else self.warning_fill))
            xf.set("applyFill", "1")
            self.derived[key] = self._add(self.xfs, xf)
        cell.set("s", str(self.derived[key]))


def _fill(rgb: str) -> etree._Element:
    fill = etree.Element(_q("fill"))
    pattern = etree.SubElement(fill, _q("patternFill"), patternType="solid")
    etree.SubElement(pattern, _q("fgColor"), rgb=rgb)
    return fill


def _font(bold: bool = False, rgb: str | None = None, underline: bool = False) -> etree._Element:
    font = etree.Element(_q("font"))
    if bold:
        etree.SubElement(font, _q("b"), val="1")
    if rgb:
        etree.SubElement(font, _q("color"), rgb=rgb)
    if underline:
        etree.SubElement(font, _q("u"), val="single")
    return font


def _text(parent: etree._Element, tag: str, text: str) -> etree._Element:
    t = etree.SubElement(parent, _q(tag))
    t.text = text
    if text != text.strip():
        t.set(XML_SPACE, "preserve")
    return t


def _comments_xml(marks: dict[str, tuple[bool, str, int]]) -> bytes:
    root = etree.Element(_q("comments"), nsmap={None: MAIN})
    _text(etree.SubElement(root, _q("authors")), "author", "积分系统")
    listing = etree.SubElement(root, _q("commentList"))
    for ref, (_, text, _) in marks.items():
        comment = etree.SubElement(listing, _q("comment"), ref=ref, authorId="0")
        _text(etree.SubElement(comment, _q("text")), "t", text)
    return _xml(root)


_VML_HEAD = (
    '<xml xmlns:v="urn:schemas-microsoft-com:vml" xmlns:o="urn:schemas-microsoft-com:office:office" '
    'xmlns:x="urn:schemas-microsoft-com:office:excel">'
    '<o:shapelayout v:ext="edit"><o:idmap v:ext="edit" data="{n}"/></o:shapelayout>'
    '<v:shapetype id="_x0000_t202" coordsize="21600,21600" o:spt="202" path="m,l,21600r21600,l21600,xe">'
    '<v:stroke joinstyle="miter"/><v:path gradientshapeok="t" o:connecttype="rect"/></v:shapetype>')
_VML_SHAPE = (
    '<v:shape id="_x0000_s{id}" type="#_x0000_t202" style="position:absolute;margin-left:59.25pt;'
    'margin-top:1.5pt;width:300px;height:{height}px;z-index:{z};visibility:hidden" fillcolor="#ffffe1" '
    'o:insetmode="auto"><v:fill color2="#ffffe1"/><v:shadow on="t" color="black" obscured="t"/>'
    '<v:path o:connecttype="none"/><v:textbox style="mso-direction-alt:auto"><div style="text-align:left"></div>'
    '</v:textbox><x:ClientData ObjectType="Note"><x:MoveWithCells/><x:SizeWithCells/><x:AutoFill>False'
    '</x:AutoFill><x:Row>{row}</x:Row><x:Column>{column}</x:Column></x:ClientData></v:shape>')


def _vml(marks: dict[str, tuple[bool, str, int]], n: int) -> bytes:
    """The drawing that shows the comments (sized as marked._marked sizes them: 300 × 40 + 40 a problem), its
    shape ids in the block of drawing `n`."""
    shapes = []
    for z, (ref, (_, _, count)) in enumerate(marks.items(), start=1):
        match = _CELL_REF.fullmatch(ref)
        assert match is not None  # (checked when the cell was marked)
        shapes.append(_VML_SHAPE.format(id=1024 * n + z, height=40 + 40 * count, z=z, row=int(match[2]) - 1,
                                        column=_column_number(match[1]) - 1))
    return (_VML_HEAD.format(n=n) + "".join(shapes) + "</xml>").encode()


def _rels(rels: Iterable[tuple[str, str, str, bool]]) -> bytes:
    root = etree.Element(_q("Relationships", PKG_REL), nsmap={None: PKG_REL})
    for rel_id, kind, target, external in rels:
        rel = etree.SubElement(root, _q("Relationship", PKG_REL), Id=rel_id, Type=kind, Target=target)
        if external:
            rel.set("TargetMode", "External")  # (a '#' target: a jump within the workbook, as openpyxl writes it)
    return _xml(root)


def _listing_xml(listing: Listing, styles: _Styles) -> bytes:
    """The problem sheet, as marked._write_listing lays it out."""
    root = etree.Element(_q("worksheet"), nsmap={None: MAIN, "r": DOC_REL})
    pr = etree.SubElement(root, _q("sheetPr"))
    etree.SubElement(pr, _q("pageSetUpPr"), fitToPage="1")
    etree.SubElement(root, _q("dimension"), ref=f"A1:F{len(listing.rows) + 2}")
    view = etree.SubElement(etree.SubElement(root, _q("sheetViews")), _q("sheetView"), tabSelected="1",
                            workbookViewId="0")
    etree.SubElement(view, _q("pane"), ySplit="2", topLeftCell="A3", activePane="bottomLeft", state="frozen")
    etree.SubElement(view, _q("selection"), pane="bottomLeft", activeCell="A1", sqref="A1")
    etree.SubElement(root, _q("sheetFormatPr"), baseColWidth="8", defaultRowHeight="15")
    cols = etree.SubElement(root, _q("cols"))
    for n, width in enumerate(listing.widths, start=1):
        etree.SubElement(cols, _q("col"), min=str(n), max=str(n), width=f"{width:g}", customWidth="1")
    data = etree.SubElement(root, _q("sheetData"))

    def cell(row: etree._Element, ref: str, value: str | int, style: int) -> None:
        c = etree.SubElement(row, _q("c"), r=ref, s=str(style))
        if isinstance(value, int):
            c.set("t", "n")
            etree.SubElement(c, _q("v")).text = str(value)
        else:
            c.set("t", "inlineStr")
            if value != "":
                _text(etree.SubElement(c, _q("is")), "t", value)

    first = etree.SubElement(data, _q("row"), r="1", ht="36", customHeight="1")
    cell(first, "A1", listing.title, styles.title)
    second = etree.SubElement(data, _q("row"), r="2")
    for n, text in enumerate(listing.headers, start=1):
        cell(second, f"{column_letters(n)}2", text, styles.header)
    hyperlinks = []
    for i, (seq, severity, sheet, ref, value, message, link, error) in enumerate(listing.rows, start=3):
        row = etree.SubElement(data, _q("row"), r=str(i))
        cell(row, f"A{i}", seq, styles.body)
        cell(row, f"B{i}", severity, styles.error if error else styles.body)
        cell(row, f"C{i}", sheet, styles.body)
        cell(row, f"D{i}", ref, styles.link if link else styles.body)
        cell(row, f"E{i}", value, styles.body)
        cell(row, f"F{i}", message, styles.wrapped)
        if link:
            hyperlinks.append(f"D{i}")
    etree.SubElement(etree.SubElement(root, _q("mergeCells"), count="1"), _q("mergeCell"), ref="A1:F1")
    if hyperlinks:
        links = etree.SubElement(root, _q("hyperlinks"))
        for n, ref in enumerate(hyperlinks, start=1):
            link_el = etree.SubElement(links, _q("hyperlink"), ref=ref)
            link_el.set(_q("id", DOC_REL), f"rId{n}")
    etree.SubElement(root, _q("pageMargins"), left="0.75", right="0.75", top="1", bottom="1", header="0.5",
                     footer="0.5")
    etree.SubElement(root, _q("pageSetup"), orientation="landscape", paperSize="9", fitToHeight="0",
                     fitToWidth="1")
    return _xml(root)


def _core(xml: bytes, when: dt.datetime) -> bytes:
    """docProps/core.xml as openpyxl's path writes it: the branch's properties, created and modified `when`."""
    from openpyxl.packaging.core import DocumentProperties
    from openpyxl.xml.functions import fromstring, tostring

    try:
        properties = DocumentProperties.from_tree(fromstring(xml))
    except Exception as exc:  # (openpyxl's own reading of them: whatever it raises, its path decides)
        raise Unpatchable("document properties") from exc
    properties.created = properties.modified = when
    return tostring(properties.to_tree())


def _app() -> bytes:
    """docProps/app.xml as openpyxl writes it (the saving application's, not the branch's company or names)."""
    from openpyxl.packaging.extended import ExtendedProperties
    from openpyxl.xml.functions import tostring

    return tostring(ExtendedProperties().to_tree())
