"""Every output's content is what it was before the speed work: kept outputs, compared after each optimisation.

The inputs (tests/golden/inbox, correction/, the registry) are committed; three runs are made with
SOURCE_DATE_EPOCH set: an annual run, the same OUT again after a correction, and a half-year run. Each run's OUT is
reduced to its content (tests/golden/expected/*.json): workbooks as the cells python-calamine reads back plus the
comments and comment-cell fills openpyxl reads, pages and CSVs as text, mail as headers, text and attachments (each
reduced the same way). What may change with the bytes of a workbook is left out: its digest in run.json, the
Message-ID and MIME boundaries. A failure prints the first differing paths.

After a deliberate change to an output (not a speed change), write the expected files again and review the diff:

    POINTSBATCH_GOLDEN=write python -m pytest -q tests/test_golden.py
"""

from __future__ import annotations

import datetime as dt
import email
import io
import json
import os
import shutil
from email import policy
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from python_calamine import CalamineWorkbook

from pointsbatch.cli import main

GOLDEN = Path(__file__).resolve().parent / "golden"
EXPECTED = GOLDEN / "expected"
EPOCH = "1768000000"
TEXT = {".html", ".csv", ".txt", ".md", ".toml"}
# run.json lists each output with its digest; a workbook's or a mail's bytes may change while its content does not
BYTES_MAY_CHANGE = (".xlsx", ".eml")


def _value(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time | dt.timedelta):
        return f"{type(value).__name__}:{value.isoformat() if hasattr(value, 'isoformat') else value}"
    if isinstance(value, float) and value.is_integer():
        return int(value)  # a number is a number, whichever way the writer spelled it
    return value


def workbook_content(data: bytes) -> dict[str, Any]:
    """Each sheet's cells as calamine reads them (trailing blanks trimmed), and the comments with their cell's fill."""
    from openpyxl import load_workbook

    book = CalamineWorkbook.from_filelike(io.BytesIO(data))
    sheets: dict[str, Any] = {}
    for name in book.sheet_names:
        rows = [[_value(v) for v in row] for row in book.get_sheet_by_name(name).to_python(skip_empty_area=False)]
        rows = [row[: max((i + 1 for i, v in enumerate(row) if v != ""), default=0)] for row in rows]
        while rows and not rows[-1]:
            rows.pop()
        sheets[name] = rows
    book.close()
    wb = load_workbook(io.BytesIO(data))
    comments = {}
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                if cell.comment is not None:
                    fill = cell.fill.fgColor.rgb if cell.fill is not None and cell.fill.fill_type else None
                    comments[f"{ws.title}!{cell.coordinate}"] = [cell.comment.text, str(fill)]
    return {"sheets": list(book.sheet_names), "cells": sheets, "comments": comments}


def mail_content(data: bytes) -> dict[str, Any]:
    message = email.message_from_bytes(data, policy=policy.default)
    headers = [[k, str(v)] for k, v in message.items()
               if k.lower() not in ("message-id", "content-type", "in-reply-to", "references")]
    parts = []
    for part in message.walk():
        if part.is_multipart():
            continue
        name = part.get_filename()
        payload = part.get_payload(decode=True)
        parts.append({"type": part.get_content_type(), "name": name, "content": _content(name or ".txt", payload)})
    return {"headers": headers, "parts": parts}


def _content(name: str, data: bytes) -> Any:
    suffix = Path(name).suffix.lower()
    if suffix == ".xlsx":
        return workbook_content(data)
    if suffix == ".eml":
        return mail_content(data)
    if suffix == ".json":
        doc = json.loads(data)
        for entry in doc.get("outputs", []) if isinstance(doc, dict) else []:
            if isinstance(entry, dict) and str(entry.get("path", "")).endswith(BYTES_MAY_CHANGE):
                entry.pop("sha256", None)
        return doc
    if suffix in TEXT:
        return data.decode("utf-8")
    import hashlib

    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def folder_content(folder: Path) -> dict[str, Any]:
    """Each file's content by its path in `folder`; a mail's attachment that is a file of the folder is named,
    not repeated."""
    content = {p.relative_to(folder).as_posix(): _content(p.name, p.read_bytes())
               for p in sorted(folder.rglob("*")) if p.is_file()}
    by_value = {json.dumps(v, sort_keys=True, ensure_ascii=False): k for k, v in content.items() if k.count("/") > 1}
    for path, value in content.items():
        if path.endswith(".eml"):
            for part in value["parts"]:
                if part["name"]:
                    same = by_value.get(json.dumps(part["content"], sort_keys=True, ensure_ascii=False))
                    part["content"] = {"same_as": same} if same else part["content"]
    return content


def _run(inbox: Path, out: Path, *extra: str) -> None:
    result = CliRunner().invoke(main, ["run", str(inbox), "-o", str(out), "--jobs", "1", "--registry",
                                       str(GOLDEN / "支部名录.xlsx"), *extra], catch_exceptions=False)
    assert result.exit_code == 1, result.output  # one workbook of each shape is sent back: exit 1


def _check(name: str, content: dict[str, Any]) -> None:
    path = EXPECTED / f"{name}.json"
    # a line a file, so that a diff of the expected file shows which outputs changed
    text = "{\n" + ",\n".join(f"{json.dumps(k, ensure_ascii=False)}: "
                                f"{json.dumps(v, ensure_ascii=False, sort_keys=True)}"
                                for k, v in sorted(content.items())) + "\n}\n"
    if os.environ.get("POINTSBATCH_GOLDEN") == "write":
        EXPECTED.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    expected = json.loads(path.read_text(encoding="utf-8"))
    actual = json.loads(text)
    differing = sorted(k for k in expected.keys() | actual.keys() if expected.get(k) != actual.get(k))
    assert not differing, f"{name}: content changed in {differing[:8]}"


@pytest.fixture
def inbox(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    folder = tmp_path / "收件"
    shutil.copytree(GOLDEN / "inbox", folder)
    return folder


def test_annual_run_then_a_correction_keep_their_content(inbox, tmp_path, monkeypatch):
    out = tmp_path / "2026年度"
    _run(inbox, out, "--run-date", "2027-01-15", "--notice-start", "2027-01-16")
    _check("annual", folder_content(out))
    shutil.copy2(GOLDEN / "correction" / "城关村党支部2026.xlsx", inbox / "城关村党支部2026.xlsx")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(int(EPOCH) + 86400 * 3))
    _run(inbox, out, "--run-date", "2027-01-18", "--notice-start", "2027-01-16")
    content = folder_content(out)
    assert [c["branch"] for c in content["run.json"]["changes"]] == ["城关村党支部"], "the correction shows"
    assert any(path.startswith("历史/") for path in content), "the first run is kept under 历史/"
    _check("correction", content)


def test_half_year_run_keeps_its_content(inbox, tmp_path):
    out = tmp_path / "2026年上半年"
    _run(inbox, out, "--period", "h1", "--run-date", "2026-07-20", "--notice-start", "2026-07-21")
    _check("h1", folder_content(out))
