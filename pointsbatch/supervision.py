"""督促检查: how a branch runs the scheme, read from its validated grid and logs (OUTPUTS.md, "The town's view of
its branches").

`branch_figures` runs in the worker beside the branch's own outputs and returns a plain dict (it travels back to
the main process with the FileResult); `render/supervision.py` turns those dicts into the town's table.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .rules import Period, Rules
from .validate import Branch
from .workbook import spec

# The table's event columns, in order: the base item and its column's name (OUTPUTS.md; dues are not an event).
EVENT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("activity_day", "党员活动日"),
    ("lecture", "党课"),
    ("congress", "党员大会"),
    ("org_life", "组织生活会"),
    ("evaluation", "民主评议"),
    ("pledge", "承诺践诺"),
)


def required_events(period: Period) -> dict[str, int]:
    """How many events of each item the period asks for: the grid's events whose default month falls in it
    (the year: 12 activity days, 4 党课, 4 党员大会, 2 组织生活会, 1 民主评议, 1 承诺践诺; January-June: 6, 2, 2, 1, 0, 0)."""
    return {item: sum(e.item == item and e.default_month <= period.last_month for e in spec.GRID_EVENTS)
            for item, _name in EVENT_COLUMNS}


def held_events(branch: Branch, period: Period) -> dict[str, int]:
    """How many events of each item the branch held in the period: an event is held when row 2 gives its date or
    at least one member is marked √ or 假 for it; it belongs to its date's month, else to its default month."""
    grid = _Grid(branch.attendance, period)
    held = set(grid.event[grid.marked("attended", "leave")].tolist())
    held |= {event for event, date in branch.event_dates.items() if date.month <= period.last_month}
    item_of = {e.header: e.item for e in spec.GRID_EVENTS}
    return {item: sum(item_of.get(event) == item for event in held) for item, _name in EVENT_COLUMNS}


class _Grid:
    """The attendance grid's events in the period (dues are not events), as arrays: a grid is a few thousand
    cells, and a handful of whole-array comparisons cost less than pandas' masks and isin."""

    def __init__(self, att: pd.DataFrame, period: Period, members: set[int] | None = None) -> None:
        keep = (att["month"].to_numpy() <= period.last_month) & (att["item"].to_numpy(dtype=object) != "dues")
        if members is not None:
            keep &= np.isin(att["seq"].to_numpy(dtype=np.int64), np.fromiter(members, dtype=np.int64))
        self.event = att["event"].to_numpy(dtype=object)[keep]
        self.mark = att["mark"].to_numpy(dtype=object)[keep]

    def marked(self, *codes: str) -> np.ndarray:
        found = np.zeros(len(self.mark), dtype=bool)
        for code in codes:
            found |= self.mark == code
        return found


def branch_figures(branch: Branch, scores: Any, rules: Rules) -> dict[str, Any]:
    """The branch's row of the town's table, as plain numbers, and its hints as codes with their numbers.

    Attendance, incentive records and deductions are counted over the scored members (an exempt member's records
    are kept but not scored); `held` counts every member's marks."""
    period: Period = scores.period
    roster = branch.roster
    scored = set(roster.loc[~roster["exempt"], "seq"].tolist())
    grid = _Grid(branch.attendance, period, scored)
    applicable = int(grid.marked("attended", "absent", "leave").sum())
    attended = int(grid.marked("attended").sum())
    incentive = _in_period(branch.incentive, period)
    negative = _in_period(branch.negative, period)
    incentive_members = len(set(incentive["seq"].dropna().tolist()) & scored)
    members = scores.members
    figures: dict[str, Any] = {
        "members": len(roster),
        "scored": len(scored),
        "exempt": len(roster) - len(scored),
        "held": held_events(branch, period),
        "required": required_events(period),
        "attended": attended,
        "applicable": applicable,
        "attendance": attended / applicable if applicable else None,
        "incentive_activities": len(incentive),
        "incentive_members": incentive_members,
        "incentive_share": incentive_members / len(scored) if scored else None,
        "deductions": int(negative["seq"].isin(scored).sum()),
        "vetoes": int((members["veto"].fillna("") != "").sum()),
    }
    figures["hints"] = hints(figures, rules)
    return figures


def hints(figures: dict[str, Any], rules: Rules) -> list[dict[str, Any]]:
    """What falls short and what looks unlikely, as codes with their numbers (the words are in templates/)."""
    s = rules.supervision
    out: list[dict[str, Any]] = []
    for item, name in EVENT_COLUMNS:
        held, required = figures["held"][item], figures["required"][item]
        if held < required:
            out.append({"code": "short", "event": name, "held": held, "required": required})
    rate = figures["attendance"]
    if rate is not None and rate >= s.unlikely_attendance:
        out.append({"code": "unlikely_attendance", "rate": rate})
    if figures["members"] and figures["exempt"] / figures["members"] > s.exempt_share:
        out.append({"code": "exempt_share", "exempt": figures["exempt"],
                    "share": figures["exempt"] / figures["members"], "limit": s.exempt_share})
    if figures["scored"] and figures["incentive_activities"] < s.min_incentive_activities:
        out.append({"code": "few_incentive", "activities": figures["incentive_activities"],
                    "minimum": s.min_incentive_activities})
    return out


def _in_period(log: pd.DataFrame, period: Period) -> pd.DataFrame:
    if log.empty:
        return log
    months = [d.month for d in log["date"].tolist()]
    return log[[m <= period.last_month for m in months]]
