"""The town's view of its branches (督促检查): the rows of the sheet 支部工作情况 in 全镇汇总.xlsx and of the matching
table in index.html, made from each accepted branch's `supervision.branch_figures`, plus the branches whose
workbook was sent back and those that sent nothing."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..jinja import render_text
from ..supervision import EVENT_COLUMNS

HINTS_TEMPLATE = "supervision_hints.txt"
EVENT_KEYS = tuple(item for item, _name in EVENT_COLUMNS)


def supervision_rows(files: Iterable[Any], missing: Iterable[str], templates: Path | None = None
                     ) -> list[dict[str, Any]]:
    """One row a branch, in the order of 各支部汇总: accepted and sent-back workbooks by file name, then the
    registry's branches that sent nothing. `files` are the run's FileResults; `templates` the town's own folder."""
    rows = []
    for f in files:
        if f.status == "accepted" and f.supervision:
            rows.append(_accepted(f.branch, f.supervision, templates))
        elif f.status == "rejected":
            rows.append(_blank(f.branch or f.name, "退回", [{"code": "rejected", "errors": f.errors, "file": f.name}],
                               templates))
    rows += [_blank(name, "未报送", [{"code": "missing"}], templates) for name in missing]
    return rows


def _accepted(name: str, fig: dict[str, Any], templates: Path | None) -> dict[str, Any]:
    held, required = fig["held"], fig["required"]
    share = fig["incentive_share"]
    row: dict[str, Any] = {
        "name": name, "status": "通过", "members": fig["members"],
        "attendance": fig["attendance"],
        "incentive": f"{fig['incentive_members']}（{_percent(share)}）" if share is not None
        else str(fig["incentive_members"]),
        "incentive_share": share,
        "deductions": fig["deductions"], "vetoes": fig["vetoes"], "exempt": fig["exempt"],
        "hint": render_hints(fig["hints"], templates),
        "short": [item for item in EVENT_KEYS if held[item] < required[item]],
        "sort": {item: held[item] / required[item] if required[item] else held[item] for item in EVENT_KEYS},
    }
    row.update({item: f"{held[item]}/{required[item]}" for item in EVENT_KEYS})
    return row


def _blank(name: str, status: str, hints: list[dict[str, Any]], templates: Path | None) -> dict[str, Any]:
    return {"name": name, "status": status, "members": None, "attendance": None, "incentive": None,
            "incentive_share": None, "deductions": None, "vetoes": None, "exempt": None,
            "hint": render_hints(hints, templates), "short": [], "sort": dict.fromkeys(EVENT_KEYS, -1.0),
            **dict.fromkeys(EVENT_KEYS)}


def render_hints(hints: list[dict[str, Any]], templates: Path | None = None) -> str:
    """The 提示 cell: each hint in the words of templates/supervision_hints.txt, joined by ；."""
    if not hints:
        return ""
    return render_text(HINTS_TEMPLATE, templates, hints=hints).strip()


def _percent(share: float) -> str:
    return f"{share * 100:.0f}%"


def attendance_pairs(rows: list[dict[str, Any]]) -> list[tuple[str, float]]:
    """(branch, attendance in percent) for the chart: the branches with an attendance rate, in the table's order."""
    return [(r["name"], round(r["attendance"] * 100, 1)) for r in rows if r["attendance"] is not None]
