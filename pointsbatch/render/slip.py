"""Each member's own slip (个人积分告知单): the scores fed back to the member in person, one slip a member.

Every number on a slip comes from the branch's ledger (the rows scores.csv is summed from), with the dates and
texts of the rows it points to; a slip carries only its own member's rows. The sentences are in `slip.html`.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

from ..jinja import render_text
from ..rules import BaseItem, Rules
from ..score import PART_BASE, PART_DEDUCTION, PART_INCENTIVE, PART_VETO, Scores
from ..validate import Branch
from ..workbook import spec
from .branch import notice_period, records

SLIP_TEMPLATE = "slip.html"


# A slip's rows, one small object each with fixed fields (a branch's page holds a couple of thousand: a slotted
# object is one for the garbage collector to count and walk, where a SimpleNamespace is two).
@dataclass(slots=True)
class BaseRow:
    item: str
    attended: int
    applicable: int
    each: float
    points: float = 0.0


@dataclass(slots=True)
class Activity:
    date: dt.date
    item: str
    content: str
    raw: float
    multiplier: float
    led: bool
    points: float


@dataclass(slots=True)
class Cap:
    item: str
    note: str
    points: float


@dataclass(slots=True)
class Adjustment:
    """The prorating of not-applicable events, or 扣完为止."""

    note: str
    points: float


@dataclass(slots=True)
class Deduction:
    date: dt.date
    case: str
    detail: str
    points: float


@dataclass(slots=True)
class Veto:
    condition: str
    date: dt.date | None
    basis: str
    detail: str


def render_slips(branch: Branch, scores: Scores, rules: Rules, start: dt.date, contact: str | None = None,
                 h1: Scores | None = None, templates: Path | None = None) -> str:
    """The branch's slips as one printable page, a slip per roster member in 序号 order."""
    return render_text(SLIP_TEMPLATE, templates, **slip_context(branch, scores, rules, start, contact, h1))


def slip_context(branch: Branch, scores: Scores, rules: Rules, start: dt.date, contact: str | None = None,
                 h1: Scores | None = None) -> dict[str, Any]:
    """What the slips show; `h1` is the half-year scores an annual run also gives (None in a half-year run)."""
    period = scores.period
    annual = period.key == "annual"
    grid = _GridCounts(branch.attendance, period.last_month)
    points = rules.base.points()
    held = grid.held.most_common()  # events held per base item, as value_counts lists them
    base_max = float(sum(points[item] * count for item, count in held))
    items = [item for item in rules.base.items if grid.held.get(item.key, 0)]  # a half year has no 民主评议
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


class _GridCounts:
    """The grid's marks in a period, counted at once: events held per base item (each event once), and per
    (序号, base item key) the events attended and the events that apply (every mark but 不适用)."""

    def __init__(self, attendance: pd.DataFrame, last_month: int) -> None:
        keep = attendance["month"].to_numpy() <= last_month
        seqs = attendance["seq"].to_numpy(dtype=np.int64)[keep]
        codes, items = pd.factorize(attendance["item"].to_numpy(dtype=object)[keep])
        marks = attendance["mark"].to_numpy(dtype=object)[keep]
        events = pd.factorize(attendance["event"].to_numpy(dtype=object)[keep])[0]
        first = np.unique(events, return_index=True)[1]  # each event's first mark, events in order of appearance
        self.held: Counter[str] = Counter(items[codes[np.sort(first)]].tolist())
        applicable = marks != "na"
        self.applicable = self._per_member(seqs[applicable], codes[applicable], items)
        attended = marks == "attended"
        self.attended = self._per_member(seqs[attended], codes[attended], items)

    @staticmethod
    def _per_member(seqs: np.ndarray, codes: np.ndarray, items: np.ndarray) -> dict[tuple[int, str], int]:
        keys, counts = np.unique(seqs * max(len(items), 1) + codes, return_counts=True)
        seq, code = np.divmod(keys, max(len(items), 1))
        return dict(zip(zip(seq.tolist(), items[code].tolist(), strict=True), counts.tolist(), strict=True))


def member_slips(branch: Branch, scores: Scores, items: list[BaseItem], grid: _GridCounts,
                 h1: Scores | None = None) -> list[SimpleNamespace]:
    """A slip per roster member: the totals of scores.csv and the ledger rows behind them, with their dates;
    `items` are the base items held in the period, `grid` the period's marks counted.

    Slips are attribute objects, not dicts: Jinja looks `m.name` up as an attribute first, and a dict's failed
    attribute lookup would cost the page most of its time (a branch has about a thousand ledger rows). The ledger
    is read column by column in one pass (its rows come member by member), never filtered per member."""
    period = scores.period
    h1_totals = dict(zip(h1.members["seq"].tolist(), h1.members["total"].tolist(), strict=True)) \
        if h1 is not None else {}
    reasons = dict(zip(branch.roster["seq"].tolist(), branch.roster["exempt_reason"].tolist(), strict=True))
    attended, applicable = grid.attended, grid.applicable
    slips: dict[Any, SimpleNamespace] = {}
    base_rows: dict[tuple[Any, str], BaseRow] = {}
    for m in records(scores.members):
        seq = m["seq"]
        slip = SimpleNamespace(**m, exempt_reason=reasons.get(seq), h1_total=h1_totals.get(seq), base_items=[],
                               prorate=None, activities=[], caps=[], deduction_rows=[], floor=None, vetoes=[])
        if not m["exempt"]:
            for item in items:
                base_row = BaseRow(item.name, attended.get((seq, item.key), 0),
                                   applicable.get((seq, item.key), 0), item.points)
                slip.base_items.append(base_row)
                base_rows[seq, item.name] = base_row
        slips[seq] = slip
    incentive = _by_row(branch.incentive, period, ["date", "content", "leading"])
    negative = _by_row(branch.negative, period, ["date", "detail"])
    vetoes = {(seq, condition): (date, basis)
              for seq, condition, date, basis in _in_period(branch.veto, period, ["seq", "condition", "date", "basis"])}
    ledger = _columns(scores.ledger, ["seq", "part", "item", "sheet", "row", "raw", "multiplier", "points", "note"])
    incentive_sheet, negative_sheet = spec.INCENTIVE.name, spec.NEGATIVE.name
    for seq, part, item, sheet, row, raw, multiplier, points, note in zip(*ledger, strict=True):
        owner = slips.get(seq)
        if owner is None or owner.exempt:
            continue
        slip = owner
        if part == PART_BASE:
            base = base_rows.get((seq, item))
            if base is None:  # the prorating row
                slip.prorate = Adjustment(note, points)
            else:
                base.points = points
        elif part == PART_INCENTIVE:
            source = incentive.get(row) if sheet == incentive_sheet else None
            if source is None:  # what a cap takes back
                slip.caps.append(Cap(item, note, points))
            else:
                date, content, leading = source
                slip.activities.append(Activity(date, item, content or "", raw, multiplier, bool(leading), points))
        elif part == PART_DEDUCTION:
            source = negative.get(row) if sheet == negative_sheet else None
            if source is None:  # 扣完为止: the deduction beyond what the member had is given back
                slip.floor = Adjustment(note, points)
            else:
                date, detail = source
                slip.deduction_rows.append(Deduction(date, item, detail or "", points))
        elif part == PART_VETO:
            slip.vetoes = _vetoes(seq, item, note, vetoes)
    for slip in slips.values():
        slip.activities.sort(key=lambda a: a.date)
        slip.deduction_rows.sort(key=lambda d: d.date)
    return list(slips.values())


def _columns(frame: pd.DataFrame, names: list[str]) -> list[list[Any]]:
    """The frame's columns as lists, a missing value (NaN, NA, None) as None: what `records` gives, without a dict
    a row or a check of every cell where a column has nothing missing."""
    out = []
    for name in names:
        column = frame[name]
        values = column.tolist()
        if column.dtype.kind not in "iub":
            missing = column.isna().to_numpy()
            if missing.any():
                values = [None if gone else v for v, gone in zip(values, missing.tolist(), strict=True)]
        out.append(values)
    return out


def _in_period(log: pd.DataFrame, period: Any, columns: list[str]) -> list[tuple[Any, ...]]:
    """The log's rows dated in the period, as tuples of plain values (`columns`, which name its date)."""
    if log.empty:
        return []
    last, at = period.last_month, columns.index("date")
    return [row for row in zip(*_columns(log, columns), strict=True) if row[at].month <= last]


def _by_row(log: pd.DataFrame, period: Any, columns: list[str]) -> dict[Any, tuple[Any, ...]]:
    """A log's rows in the period (`columns`) by their Excel row, which the ledger names."""
    return {row[0]: row[1:] for row in _in_period(log, period, ["row", *columns])}


def _vetoes(seq: Any, item: Any, note: Any, logged: dict[tuple[Any, str], tuple[Any, Any]]) -> list[Veto]:
    """The conditions of a member's veto row, each with its date and grounds when the branch logged it, else with
    what the grid showed (the months)."""
    conditions = str(item).split("；")
    note = str(note or "")
    notes = note.split("：", 1)[-1].split("；")
    if len(notes) != len(conditions):
        notes = [note] * len(conditions)
    out = []
    for condition, detail in zip(conditions, notes, strict=True):
        row = logged.get((seq, condition))
        out.append(Veto(condition, row[0] if row else None, (row[1] or "") if row else "", "" if row else detail))
    return out
