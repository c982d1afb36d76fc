"""Each member's own slip (个人积分告知单): the scores fed back to the member in person, one slip a member.

Every number on a slip comes from the branch's ledger (the rows scores.csv is summed from), with the dates and
texts of the rows it points to; a slip carries only its own member's rows. The sentences are in `slip.html`.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd

from ..jinja import render_text
from ..rules import BaseItem, Rules
from ..score import PART_BASE, PART_DEDUCTION, PART_INCENTIVE, PART_VETO, Scores
from ..validate import Branch
from ..workbook import spec
from .branch import notice_period, records

SLIP_TEMPLATE = "slip.html"


def render_slips(branch: Branch, scores: Scores, rules: Rules, start: dt.date, contact: str | None = None,
                 h1: Scores | None = None, templates: Path | None = None) -> str:
    """The branch's slips as one printable page, a slip per roster member in 序号 order."""
    return render_text(SLIP_TEMPLATE, templates, **slip_context(branch, scores, rules, start, contact, h1))


def slip_context(branch: Branch, scores: Scores, rules: Rules, start: dt.date, contact: str | None = None,
                 h1: Scores | None = None) -> dict[str, Any]:
    """What the slips show; `h1` is the half-year scores an annual run also gives (None in a half-year run)."""
    period = scores.period
    annual = period.key == "annual"
    grid = branch.attendance[branch.attendance["month"] <= period.last_month]
    points = rules.base.points()
    held = grid.drop_duplicates("event")["item"].value_counts()
    base_max = float(sum(points[item] * int(count) for item, count in held.items()))
    items = [item for item in rules.base.items if held.get(item.key, 0)]  # a half year has no 民主评议
    approval = branch.info.approval_date(period)
    return {
        "branch": branch.info.name,
        "year": branch.info.year,
        "period": period.label,
        "title": period.of(branch.info.year),
        "annual": annual,
        "rules_name": rules.title,
        "approval_date": approval,
        "base_names": [item.name for item in items],
        "base_max": base_max,
        "incentive_max": rules.incentive.total_cap,
        "total_max": base_max + rules.incentive.total_cap,
        "rate": branch.info.rate,
        **notice_period(branch, rules, start, contact),
        "slips": member_slips(branch, scores, items, grid, h1),
    }


def member_slips(branch: Branch, scores: Scores, items: list[BaseItem], grid: pd.DataFrame,
                 h1: Scores | None = None) -> list[SimpleNamespace]:
    """A slip per roster member: the totals of scores.csv and the ledger rows behind them, with their dates;
    `items` are the base items held in the period, `grid` the attendance marks of the period.

    Slips are attribute objects, not dicts: Jinja looks `m.name` up as an attribute first, and a dict's failed
    attribute lookup would cost the page most of its time (a branch has about a thousand ledger rows)."""
    period = scores.period
    h1_totals = dict(zip(h1.members["seq"], h1.members["total"], strict=True)) if h1 is not None else {}
    reasons = dict(zip(branch.roster["seq"], branch.roster["exempt_reason"], strict=True))
    attended = _counts(grid[grid["mark"] == "attended"])
    applicable = _counts(grid[grid["mark"] != "na"])
    slips: dict[Any, SimpleNamespace] = {}
    base_rows: dict[tuple[Any, str], SimpleNamespace] = {}
    for m in records(scores.members):
        seq = m["seq"]
        slip = SimpleNamespace(**m, exempt_reason=reasons.get(seq), h1_total=h1_totals.get(seq), base_items=[],
                               prorate=None, activities=[], caps=[], deduction_rows=[], floor=None, vetoes=[])
        if not m["exempt"]:
            for item in items:
                row = SimpleNamespace(item=item.name, attended=attended.get((seq, item.key), 0),
                                      applicable=applicable.get((seq, item.key), 0), each=item.points, points=0.0)
                slip.base_items.append(row)
                base_rows[seq, item.name] = row
        slips[seq] = slip
    incentive = _by_row(branch.incentive, period, ["date", "content", "leading"])
    negative = _by_row(branch.negative, period, ["date", "detail"])
    vetoes = {(v["seq"], v["condition"]): v for v in records(_in_period(branch.veto, period)[
        ["seq", "condition", "date", "basis"]])}
    ledger = scores.ledger[["seq", "part", "item", "sheet", "row", "raw", "multiplier", "points", "note"]]
    for e in records(ledger):
        owner = slips.get(e["seq"])
        if owner is None or owner.exempt:
            continue
        slip, part = owner, e["part"]
        if part == PART_BASE:
            base = base_rows.get((e["seq"], e["item"]))
            if base is None:  # the prorating row
                slip.prorate = SimpleNamespace(note=e["note"], points=e["points"])
            else:
                base.points = e["points"]
        elif part == PART_INCENTIVE:
            source = incentive.get(e["row"]) if e["sheet"] == spec.INCENTIVE.name else None
            if source is None:  # what a cap takes back
                slip.caps.append(SimpleNamespace(item=e["item"], note=e["note"], points=e["points"]))
            else:
                slip.activities.append(SimpleNamespace(
                    date=source["date"], item=e["item"], content=source["content"] or "", raw=e["raw"],
                    multiplier=e["multiplier"], led=bool(source["leading"]), points=e["points"]))
        elif part == PART_DEDUCTION:
            source = negative.get(e["row"]) if e["sheet"] == spec.NEGATIVE.name else None
            if source is None:  # 扣完为止: the deduction beyond what the member had is given back
                slip.floor = SimpleNamespace(note=e["note"], points=e["points"])
            else:
                slip.deduction_rows.append(SimpleNamespace(date=source["date"], case=e["item"],
                                                           detail=source["detail"] or "", points=e["points"]))
        elif part == PART_VETO:
            slip.vetoes = _vetoes(e, vetoes)
    for slip in slips.values():
        slip.activities.sort(key=lambda a: a.date)
        slip.deduction_rows.sort(key=lambda d: d.date)
    return list(slips.values())


def _counts(grid: pd.DataFrame) -> dict[tuple[Any, str], int]:
    """Events per (序号, base item key)."""
    return Counter(zip(grid["seq"].tolist(), grid["item"].tolist(), strict=True))


def _in_period(log: pd.DataFrame, period: Any) -> pd.DataFrame:
    if log.empty:
        return log
    return log[[d.month <= period.last_month for d in log["date"]]]


def _by_row(log: pd.DataFrame, period: Any, columns: list[str]) -> dict[Any, dict[str, Any]]:
    """A log's rows in the period by their Excel row, which the ledger names."""
    log = _in_period(log, period)
    return dict(zip(log["row"].tolist(), records(log[columns]), strict=True))


def _vetoes(entry: dict[str, Any], logged: dict[tuple[Any, str], dict[str, Any]]) -> list[SimpleNamespace]:
    """The conditions of a member's veto row, each with its date and grounds when the branch logged it, else with
    what the grid showed (the months)."""
    conditions = str(entry["item"]).split("；")
    note = str(entry["note"] or "")
    notes = note.split("：", 1)[-1].split("；")
    if len(notes) != len(conditions):
        notes = [note] * len(conditions)
    out = []
    for condition, detail in zip(conditions, notes, strict=True):
        row = logged.get((entry["seq"], condition))
        out.append(SimpleNamespace(condition=condition, date=row["date"] if row else None,
                                   basis=(row["basis"] or "") if row else "", detail="" if row else detail))
    return out
