"""Each member's own slip (个人积分告知单): the scores fed back to the member in person, one slip a member.

Every number on a slip comes from the branch's ledger (the rows scores.csv is summed from), with the dates and
texts of the rows it points to; a slip carries only its own member's rows. The sentences are in `slip.html`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd

from ..jinja import render_text
from ..rules import Rules
from ..score import PART_BASE, PART_DEDUCTION, PART_INCENTIVE, PART_VETO, Scores
from ..validate import Branch
from ..workbook import spec
from .branch import notice_context, records

SLIP_TEMPLATE = "slip.html"


def render_slips(branch: Branch, scores: Scores, rules: Rules, start: dt.date, contact: str | None = None,
                 h1: Scores | None = None) -> str:
    """The branch's slips as one printable page, a slip per roster member in 序号 order."""
    return render_text(SLIP_TEMPLATE, **slip_context(branch, scores, rules, start, contact, h1))


def slip_context(branch: Branch, scores: Scores, rules: Rules, start: dt.date, contact: str | None = None,
                 h1: Scores | None = None) -> dict[str, Any]:
    """What the slips show; `h1` is the half-year scores an annual run also gives (None in a half-year run)."""
    notice = notice_context(branch, scores, rules, start, contact)  # the same notice period and contact
    period = scores.period
    annual = period.key == "annual"
    grid = branch.attendance[branch.attendance["month"] <= period.last_month]
    points = rules.base.points()
    held = grid.drop_duplicates("event")["item"].value_counts()
    base_max = float(sum(points[item] * int(count) for item, count in held.items()))
    approval = branch.info.approval_date(period)
    return {
        "branch": branch.info.name,
        "year": branch.info.year,
        "period": period.label,
        "annual": annual,
        "rules_name": rules.name,
        "approval_date": approval,
        "base_max": base_max,
        "incentive_max": rules.incentive.total_cap,
        "total_max": base_max + rules.incentive.total_cap,
        "rate": branch.info.rate,
        "start": notice["start"],
        "end": notice["end"],
        "days": notice["days"],
        "contact": notice["contact"],
        "slips": member_slips(branch, scores, rules, grid, h1),
    }


def member_slips(branch: Branch, scores: Scores, rules: Rules, grid: pd.DataFrame,
                 h1: Scores | None = None) -> list[dict[str, Any]]:
    """A dict per roster member: the totals of scores.csv and the ledger rows behind them, with their dates."""
    period = scores.period
    slips: dict[Any, dict[str, Any]] = {}
    h1_totals = dict(zip(h1.members["seq"], h1.members["total"], strict=True)) if h1 is not None else {}
    reasons = dict(zip(branch.roster["seq"], branch.roster["exempt_reason"], strict=True))
    attended = _counts(grid[grid["mark"] == "attended"])
    applicable = _counts(grid[grid["mark"] != "na"])
    for m in records(scores.members):
        seq = m["seq"]
        slip = {**m, "exempt_reason": reasons.get(seq), "h1_total": h1_totals.get(seq), "prorate": None,
                "activities": [], "caps": [], "deduction_rows": [], "floor": None, "vetoes": []}
        if not m["exempt"]:
            slip["base_items"] = [
                {"item": item.name, "attended": attended.get((seq, item.key), 0),
                 "applicable": applicable.get((seq, item.key), 0), "each": item.points, "points": 0.0}
                for item in rules.base.items]
        slips[seq] = slip
    incentive = _by_row(branch.incentive, period)
    negative = _by_row(branch.negative, period)
    vetoes = {(v["seq"], v["condition"]): v for v in records(_in_period(branch.veto, period))}
    for e in records(scores.ledger):
        mine = slips.get(e["seq"])
        if mine is None or mine["exempt"]:
            continue
        slip, part = mine, e["part"]
        if part == PART_BASE:
            row = next((b for b in slip["base_items"] if b["item"] == e["item"]), None)
            if row is None:  # the prorating row
                slip["prorate"] = {"note": e["note"], "points": e["points"]}
            else:
                row["points"] = e["points"]
        elif part == PART_INCENTIVE:
            source = incentive.get(e["row"]) if e["sheet"] == spec.INCENTIVE.name else None
            if source is None:  # what a cap takes back
                slip["caps"].append({"item": e["item"], "note": e["note"], "points": e["points"]})
            else:
                slip["activities"].append({
                    "date": source["date"], "item": e["item"], "content": source["content"] or "",
                    "raw": e["raw"], "multiplier": e["multiplier"], "led": bool(source["leading"]),
                    "points": e["points"]})
        elif part == PART_DEDUCTION:
            source = negative.get(e["row"]) if e["sheet"] == spec.NEGATIVE.name else None
            if source is None:  # 扣完为止: the deduction beyond what the member had is given back
                slip["floor"] = {"note": e["note"], "points": e["points"]}
            else:
                slip["deduction_rows"].append({"date": source["date"], "case": e["item"],
                                               "detail": source["detail"] or "", "points": e["points"]})
        elif part == PART_VETO:
            slip["vetoes"] = _vetoes(e, vetoes)
    for slip in slips.values():
        slip["activities"].sort(key=lambda a: a["date"])
        slip["deduction_rows"].sort(key=lambda d: d["date"])
    return list(slips.values())


def _counts(grid: pd.DataFrame) -> dict[tuple[Any, str], int]:
    """Events per (序号, base item key)."""
    return {key: int(n) for key, n in grid.groupby(["seq", "item"]).size().items()}


def _in_period(log: pd.DataFrame, period: Any) -> pd.DataFrame:
    if log.empty:
        return log
    return log[[d.month <= period.last_month for d in log["date"]]]


def _by_row(log: pd.DataFrame, period: Any) -> dict[Any, dict[str, Any]]:
    """A log's rows in the period by their Excel row, which the ledger names."""
    return {r["row"]: r for r in records(_in_period(log, period))}


def _vetoes(entry: dict[str, Any], logged: dict[tuple[Any, str], dict[str, Any]]) -> list[dict[str, Any]]:
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
        out.append({"condition": condition, "date": row["date"] if row else None,
                    "basis": (row["basis"] or "") if row else "", "detail": "" if row else detail})
    return out
