"""A branch's answer: its results workbook (from the .xlsx template) and its public notice (公示, HTML)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, overload

import pandas as pd

from ..jinja import format_number, render_text, template_path
from ..rules import Rules
from ..score import Scores
from ..validate import Branch
from .xlsx_template import render_xlsx

RESULTS_TEMPLATE = "支部积分结果.xlsx"


def _clean(value: Any) -> Any:
    kind = type(value)
    if kind is str or kind is int or kind is bool:  # the common cases first, by exact type
        return value
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return value.item()
    return value


class Records(Sequence[dict[str, Any]]):
    """A table's rows for templates, each a plain dict made when it is asked for; `columns` holds the same values
    column by column, for the code that reads them that way (the .xlsx renderer, ledger.csv)."""

    def __init__(self, columns: dict[str, list[Any]], length: int) -> None:
        self.columns = columns
        self.length = length

    def __len__(self) -> int:
        return self.length

    @overload
    def __getitem__(self, i: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, i: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, i: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self.length))]
        if not -self.length <= i < self.length:
            raise IndexError(i)
        return {key: values[i] for key, values in self.columns.items()}

    def __iter__(self) -> Iterator[dict[str, Any]]:
        keys = list(self.columns)
        for row in zip(*self.columns.values(), strict=True) if keys else ((),) * self.length:
            yield dict(zip(keys, row, strict=True))


def records(frame: pd.DataFrame) -> Records:
    """Plain values for templates: NaN and NA become None, numpy scalars become Python ones."""
    columns = {}
    for c in frame.columns:
        values = frame[c].tolist()  # Python scalars, except inside object columns
        kind = frame[c].dtype.kind
        if kind == "f":
            values = [None if v != v else v for v in values]
        elif kind not in "iub":  # objects and strings: NaN, NA and numpy scalars may hide there
            values = [_clean(v) for v in values]
        columns[str(c)] = values
    return Records(columns, len(frame))


def member_rows(scores: Scores, h1: Scores | None = None) -> Records:
    m = scores.members.copy()
    m["h1_total"] = m["seq"].map(h1.members.set_index("seq")["total"]) if h1 is not None else None
    m["honours"] = m["honours"].replace("", None)
    return records(m[["seq", "name", "category", "exempt", "base", "incentive", "deductions", "veto", "total",
                      "grade", "honours", "reward", "h1_total"]])


def render_results(target: Path, branch: Branch, scores: Scores, rules: Rules, run_date: dt.date,
                   members: Records, ledger: Records, run_at: dt.datetime | None = None,
                   templates: Path | None = None) -> None:
    """Write the branch's results workbook: scores, ledger, flags, objections, and the rules applied.

    `members` and `ledger` are `member_rows(scores, h1)` and `records(scores.ledger)`, made once by the caller;
    `templates`: the town's own templates folder (jinja.template_path).
    """
    approval = branch.info.approval_date(scores.period)
    period = scores.period
    context = {
        "branch": branch.info,
        "period": period,
        "title": period.of(branch.info.year),
        "approval_date": approval.isoformat() if approval else "",
        "run_date": run_date.isoformat(),
        "maximum": period_maximum(scores, rules, templates),
        "members": members,
        "ledger": ledger,
        "flags": records(scores.flags),
        "objections": records(branch.objections[["date", "name", "content", "finding", "outcome"]])
        if not branch.objections.empty else [],
        "rules": rules.summary(graded=period.graded) + [
            ("计分期间", period.label), ("本期基础分满分", format_number(scores.base_max)),
            ("计分日期", run_date.isoformat())],
    }
    render_xlsx(template_path(RESULTS_TEMPLATE, templates), context, target, created=run_at)


def notice_period(branch: Branch, rules: Rules, start: dt.date, contact: str | None) -> dict[str, Any]:
    """When the notice runs and whom to tell of an objection: the notice and the members' slips say the same."""
    return {
        "start": start,
        "end": start + dt.timedelta(days=rules.notice_days - 1),
        "days": rules.notice_days,
        "contact": contact or f"{branch.info.name}积分记录员{branch.info.recorder}",
    }


def period_maximum(scores: Scores, rules: Rules, templates: Path | None = None) -> str:
    """The half's maximum, said once where a half-year score is shown (blank for the year, graded by its marks)."""
    if scores.period.graded:
        return ""
    return render_text("period_maximum.txt", templates, base_max=scores.base_max, incentive_max=rules.incentive.total_cap,
                       period=scores.period.label).strip()


def notice_context(branch: Branch, scores: Scores, rules: Rules, start: dt.date, contact: str | None,
                   templates: Path | None = None) -> dict:
    """What the public notice shows: names, scores and grades only (no birth dates, no reasons). A vetoed member's
    parts are left blank beside the total 0, so the row does not read as a sum that is wrong."""
    m = scores.members
    scored = m[~m["exempt"]].sort_values("seq")
    rows = records(scored[["seq", "name", "base", "incentive", "deductions", "total", "grade", "veto"]])
    rows.columns["vetoed"] = [bool(v) for v in rows.columns.pop("veto")]  # only whether: the reason stays private
    return {
        "branch": branch.info.name,
        "year": branch.info.year,
        "period": scores.period.label,
        "title": scores.period.of(branch.info.year),
        "graded": scores.period.graded,
        "base_max": scores.base_max,
        "incentive_max": rules.incentive.total_cap,
        "maximum": period_maximum(scores, rules, templates),
        "members": rows,
        "any_vetoed": any(rows.columns["vetoed"]),
        "exempt": list(m[m["exempt"]].sort_values("seq")["name"]),
        **notice_period(branch, rules, start, contact),
        "recorder": branch.info.recorder,
        "rules_name": rules.title,
        "town": rules.town,
    }


def render_notice(branch: Branch, scores: Scores, rules: Rules, start: dt.date, contact: str | None = None,
                  templates: Path | None = None) -> str:
    return render_text("notice.html", templates, **notice_context(branch, scores, rules, start, contact, templates))
