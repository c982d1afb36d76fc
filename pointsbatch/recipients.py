"""Whom a reply goes to: a registry address, and for a rejected workbook only the branch it belongs to beyond doubt.

A rejected workbook's feedback (its marked copy shows the whole workbook, birth dates included) goes to the branch
whose registry entry its 支部名称 matches exactly, and only when nothing else points elsewhere: a second file
claiming the same branch, or a file name that names another registry branch, leaves it for the clerk to forward,
listed in the terminal, index.html and run.json ("mail_held").
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .model import FileResult
    from .registry import RegistryEntry

HELD_REASONS = {
    "branch_unknown": "未能从工作簿中识别支部名称",
    "duplicate_branch": "另有文件也填写了支部「{branch}」，无法确定这份文件是哪个支部报送的",
    "not_in_registry": "支部名称「{branch}」不在支部名录中",
    "file_names_other": "文件名中是支部「{other}」，而工作簿中填写的是「{branch}」，无法确定是哪个支部报送的",
    "no_address": "支部名录中没有支部「{branch}」的邮箱",
}


def address_of(res: FileResult, registry: Mapping[str, RegistryEntry] | None, trust_workbook_addresses: bool) -> str | None:
    """The address a workbook's reply goes to, or None (the message is written unaddressed, `send` skips it)."""
    if res.status == "accepted":
        if registry is not None:
            entry = registry.get(res.branch or "")
            return entry.email if entry is not None and entry.email else None
        return res.email if trust_workbook_addresses and res.email else None
    if registry is None or held_reason(res, registry) is not None:
        return None
    return registry[res.branch or ""].email


def held_reason(res: FileResult, registry: Mapping[str, RegistryEntry] | None) -> str | None:
    """Why a rejected workbook's feedback goes to nobody (a code of HELD_REASONS), or None when it has its branch."""
    if res.status != "rejected":
        return None
    if not res.branch:
        return "branch_unknown"
    if any(p.code == "file_duplicate_branch" for p in res.problems):
        return "duplicate_branch"
    if registry is None:
        return None  # without a registry nothing is addressed anyway
    if res.branch not in registry:
        return "not_in_registry"
    if other_branch_named(res.name, res.branch, registry) is not None:
        return "file_names_other"
    if not registry[res.branch].email:
        return "no_address"
    return None


def held_feedback(results: Iterable[FileResult], registry: Mapping[str, RegistryEntry] | None) -> list[dict[str, Any]]:
    """The rejected workbooks whose feedback is mailed to nobody: file, branch, reason code and the reason in words."""
    held = []
    for res in results:
        code = held_reason(res, registry)
        if code is None:
            continue
        other = other_branch_named(res.name, res.branch or "", registry or {}) or ""
        held.append({"file": res.name, "branch": res.branch, "code": code,
                     "reason": HELD_REASONS[code].format(branch=res.branch or "", other=other)})
    return held


def other_branch_named(file_name: str, branch: str, registry: Mapping[str, RegistryEntry]) -> str | None:
    """A registry branch other than `branch` that the file's name names, or None.

    A name counts only where it is not part of a longer registry name found at the same place (镇机关第一党支部
    names itself, not also 第一党支部)."""
    stem = _plain(re.sub(r"\.[A-Za-z]{3,4}$", "", file_name))
    spans = []
    for name in registry:
        plain = _plain(name)
        if not plain:
            continue
        start = stem.find(plain)
        while start >= 0:
            spans.append((start, start + len(plain), name))
            start = stem.find(plain, start + 1)
    for s, e, name in spans:
        covered = any(s2 <= s and e <= e2 and (e2 - s2) > (e - s) for s2, e2, _n in spans)
        if not covered and name != branch:
            return name
    return None


def _plain(text: str) -> str:
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text))


def message_headers(res: FileResult, year: int | None, period: str) -> dict[str, str]:
    """Headers `send` reads: the workbook answered, and the series a later message replaces (a correction)."""
    kind = "results" if res.status == "accepted" else "feedback"
    return {"X-Pointsbatch-Source-SHA256": res.sha256,
            "X-Pointsbatch-Series": f"{kind} {year or ''} {period}"}
