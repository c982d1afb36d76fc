"""Invariants of the scoring that hold for random branches (hypothesis), through real workbook files."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

from helpers import EVENTS, YEAR, act, build, cell_of, member, neg, score, veto_row
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pointsbatch.rules import load_rules
from pointsbatch.score import round_half_up
from pointsbatch.validate import validate_workbook
from pointsbatch.workbook.read import read_workbook
from pointsbatch.workbook.spec import GRID_EVENTS, INCENTIVE_ITEM, NEGATIVE_CASE

NAMES = ["张三", "李四", "王五"]
MARKS = st.sampled_from(["√", "√", "√", "×", "假"])  # "/" needs roster dates: its own property below
DUES = st.sampled_from(["√", "√", "×"])
ROW = st.tuples(*[DUES if e.dues else MARKS for e in GRID_EVENTS]).map(list)
ACTIVITY = st.tuples(st.sampled_from(NAMES), st.sampled_from(INCENTIVE_ITEM.values),
                     st.sampled_from([0, 0.5, 1, 2, 2.5, 3, 4]), st.booleans(), st.integers(1, 12))
NEGATIVE = st.tuples(st.sampled_from(NAMES), st.sampled_from(NEGATIVE_CASE.values), st.integers(1, 12))

SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _score(grid, acts, negs, vetoes=()):
    with tempfile.TemporaryDirectory() as tmp:
        path = build(
            Path(tmp) / "b.xlsx",
            roster=[member(i + 1, n) for i, n in enumerate(NAMES)],
            grid={i + 1: row for i, row in enumerate(grid)},
            incentive=[act(n, item, p, "是" if lead else None, when=dt.date(YEAR, m, 1)) for n, item, p, lead, m in acts],
            negative=[neg(n, case, when=dt.date(YEAR, m, 2)) for n, case, m in negs],
            veto=[veto_row(n, "信仰邪教") for n in vetoes],
        )
        return score(path)


def _totals(s):
    return s.members.set_index("seq")["total"].to_dict()


@SETTINGS
@given(grid=st.lists(ROW, min_size=3, max_size=3), acts=st.lists(ACTIVITY, max_size=12),
       negs=st.lists(NEGATIVE, max_size=4), vetoed=st.lists(st.sampled_from(NAMES), max_size=1))
def test_totals_are_bounded_and_the_ledger_sums_to_them(grid, acts, negs, vetoed):
    s = _score(grid, acts, negs, vetoed)
    for seq, total in _totals(s).items():
        assert 0 <= total <= 100
        points = s.ledger[s.ledger["seq"] == seq]["points"].sum()
        assert round_half_up(points, 1) == total
    for name in vetoed:
        assert _totals(s)[NAMES.index(name) + 1] == 0


@SETTINGS
@given(grid=st.lists(ROW, min_size=3, max_size=3), acts=st.lists(ACTIVITY, max_size=8),
       negs=st.lists(NEGATIVE, max_size=2), extra=ACTIVITY, cell=st.integers(0, len(EVENTS) - 1))
def test_more_attendance_or_activity_never_lowers_a_total(grid, acts, negs, extra, cell):
    before = _totals(_score(grid, acts, negs))
    better = [row[:] for row in grid]
    if better[0][cell] in ("×", "假"):
        better[0][cell] = "√"
    after_attendance = _totals(_score(better, acts, negs))
    after_activity = _totals(_score(grid, acts + [extra], negs))
    for seq in before:
        assert after_attendance[seq] >= before[seq]
        assert after_activity[seq] >= before[seq]


@SETTINGS
@given(grid=st.lists(ROW, min_size=3, max_size=3), acts=st.lists(ACTIVITY, max_size=8),
       negs=st.lists(NEGATIVE, max_size=3), extra=NEGATIVE)
def test_a_deduction_never_raises_a_total(grid, acts, negs, extra):
    before = _totals(_score(grid, acts, negs))
    after = _totals(_score(grid, acts, negs + [extra]))
    for seq in before:
        assert after[seq] <= before[seq]


def _month_inside(event, joined: dt.date | None, left: dt.date | None) -> bool:
    """The event's whole month (its default month: the grid here gives no dates) lies in the membership span."""
    first = dt.date(YEAR, event.default_month, 1)
    last = dt.date(YEAR + (event.default_month == 12), event.default_month % 12 + 1, 1) - dt.timedelta(days=1)
    return (joined is None or joined <= first) and (left is None or left >= last)


SPAN_DATES = st.one_of(st.none(), st.dates(dt.date(YEAR, 1, 1), dt.date(YEAR, 12, 31)))


@SETTINGS
@given(row=ROW, joined=st.one_of(st.just(dt.date(2005, 7, 1)), SPAN_DATES), left=SPAN_DATES,
       cell=st.integers(0, len(EVENTS) - 1))
def test_not_applicable_never_raises_a_score_unless_the_roster_allows_it(row, joined, left, cell):
    """Turning one cell into "/" is refused at that cell when the roster puts the event's whole month inside the
    member's span (so "/" can never erase an absence there, nor raise the score by prorating); it is accepted only
    where the roster puts the month (partly) outside the span."""
    if joined is not None and left is not None and left < joined:
        left, joined = joined, left
    event = GRID_EVENTS[cell]
    # the member's cells outside the span are "/" already (what a correct workbook holds)
    base_row = ["/" if not _month_inside(e, joined, left) and _month_outside(e, joined, left) else m
                for e, m in zip(GRID_EVENTS, row, strict=True)]
    changed = base_row[:]
    changed[cell] = "/"
    with tempfile.TemporaryDirectory() as tmp:
        roster = [member(1, "张三", joined=joined, transfer_out=left), member(2, "李四")]
        before_path = build(Path(tmp) / "a.xlsx", roster=roster, grid={1: base_row})
        after_path = build(Path(tmp) / "b.xlsx", roster=roster, grid={1: changed})
        before = validate_workbook(read_workbook(before_path), _RULES)
        after = validate_workbook(read_workbook(after_path), _RULES)
        if _month_inside(event, joined, left) and base_row[cell] != "/":
            assert after.branch is None
            assert {(p.cell, p.code) for p in after.problems if p.is_error} <= {
                (EVENT_CELLS[cell], "na_inside_membership"), (EVENT_CELLS[cell], "na_without_dates")}
            return
        # the roster allows it (the month is outside the span, or the edge month): no complaint at that cell
        assert not any(p.cell == EVENT_CELLS[cell] and p.code.startswith("na_") for p in after.problems)
        if before.branch is not None and not _month_outside(event, joined, left):
            assert after.branch is not None  # (an edge month takes either mark)


def _month_outside(event, joined: dt.date | None, left: dt.date | None) -> bool:
    first = dt.date(YEAR, event.default_month, 1)
    last = dt.date(YEAR + (event.default_month == 12), event.default_month % 12 + 1, 1) - dt.timedelta(days=1)
    return (joined is not None and joined > last) or (left is not None and left < first)


_RULES = load_rules()
EVENT_CELLS = [cell_of(e.header) for e in GRID_EVENTS]
