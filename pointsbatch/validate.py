"""Validate a read workbook: pandera schemas made from the spec, then the checks across sheets.

Every problem is collected as a value (sheet, cell, value, Chinese message); a workbook with any error yields no
branch, so the scorer only ever sees clean, typed tables.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .numbers import number_text as _n
from .problems import PROBLEM_CEILING, Problem, has_errors, sort_key
from .rules import PERIODS, Period, Rules
from .workbook import spec
from .workbook.messages import problem
from .workbook.read import RawTable, RawWorkbook
from .workbook.values import INVALID, is_blank, map_distinct, parse_choice, parse_date, parse_int, parser_for


@dataclass(frozen=True)
class BranchInfo:
    name: str
    year: int
    recorder: str
    secretary: str | None = None
    email: str | None = None
    h1_date: dt.date | None = None
    annual_date: dt.date | None = None
    rate: float | None = None

    def approval_date(self, period: Period) -> dt.date | None:
        return getattr(self, period.info_date_key)


@dataclass
class Branch:
    """One branch's clean, typed tables, ready to score. Every row keeps its Excel row in `row`."""

    path: Path
    info: BranchInfo
    roster: pd.DataFrame
    attendance: pd.DataFrame
    incentive: pd.DataFrame
    negative: pd.DataFrame
    veto: pd.DataFrame
    objections: pd.DataFrame
    event_dates: dict[str, dt.date] = field(default_factory=dict)  # grid event header -> its date in row 2


@dataclass
class Validation:
    path: Path
    branch: Branch | None
    problems: list[Problem] = field(default_factory=list)
    branch_name: str | None = None
    year: int | None = None

    @property
    def accepted(self) -> bool:
        return self.branch is not None


def workbook_year(book: RawWorkbook) -> int | None:
    value = book.info.get("year", (None, ""))[0]
    year = parse_int(value)
    return year if isinstance(year, int) else None


def validate_workbook(book: RawWorkbook, rules: Rules, period: str = "annual", year: int | None = None) -> Validation:
    """All problems of one workbook, and its typed tables when there is no error."""
    return validate_workbooks([book], rules, period, year)[0]


def validate_workbooks(books: list[RawWorkbook], rules: Rules, period: str = "annual",
                       year: int | None = None) -> list[Validation]:
    """`validate_workbook` for each book; the value checks of a sheet run once over all the books' rows (pandera
    costs mostly per call, and a batch holds dozens of workbooks)."""
    contexts = [_Context(book, rules, PERIODS[period], year) for book in books]
    readable = [ctx for ctx in contexts if ctx.book.readable]
    for ctx in readable:
        ctx.check_info()
    _check_tables(readable)
    for ctx in readable:
        ctx.check_across()
    out = []
    for ctx in contexts:
        problems = _with_ceiling(sorted(ctx.book.problems + ctx.problems, key=sort_key))
        branch = None if has_errors(problems) or not ctx.book.readable else ctx.branch()
        out.append(Validation(ctx.book.path, branch, problems, ctx.branch_name(), ctx.year))
    return out


_ROW_SPAN = 1_000_000  # above any sheet's row count (read.MAX_SHEET_ROWS): stacked row keys are book * span + row


def _check_tables(contexts: list[_Context]) -> None:
    """Every table of every book parsed, checked by its sheet's pandera schema and typed: the tables of one shape
    (sheet, columns present, year) stacked, so that each step is one pass over all of them."""
    groups: dict[tuple, list[tuple[_Context, RawTable]]] = {}
    for ctx in contexts:
        for sheet in spec.TABLE_SHEETS:
            table = ctx.book.tables.get(sheet.key)
            if table is not None:
                groups.setdefault((sheet, tuple(table.frame.columns), ctx.year), []).append((ctx, table))
    for (sheet, present, year), members in groups.items():
        frames = [table.frame.set_axis(table.frame.index + i * _ROW_SPAN, axis=0)
                  for i, (_ctx, table) in enumerate(members)]
        raw = pd.concat(frames) if len(frames) > 1 else frames[0]
        rules = members[0][0].rules
        parsed = pd.DataFrame({key: map_distinct(raw[key].tolist(), column_parser(sheet.column(key), rules))
                               for key in present},
                              index=raw.index, dtype=object)
        found: dict[int, list[tuple[int, str | None, str]]] = {}
        for index, column, check in schema_failures(table_schema(sheet, present, members[0][0].rules, year), parsed):
            book, row = divmod(int(index), _ROW_SPAN)
            found.setdefault(book, []).append((row, column, check))
        rows = [table.frame.index.tolist() for _ctx, table in members]
        cells = [f"{table.letters.get(sheet.main_key, 'A')}{r}" for (_ctx, table), numbers in zip(members, rows,
                                                                                                 strict=True)
                 for r in numbers]
        typed = pd.DataFrame({
            **{col.key: [None if v is INVALID else v for v in parsed[col.key].tolist()] if col.key in present
               else None for col in sheet.columns},
            "row": [r for numbers in rows for r in numbers], "cell": cells}, index=raw.index, dtype=object)
        typed["row"] = typed["row"].astype(int)
        start = 0
        for i, (ctx, table) in enumerate(members):
            end = start + len(table.frame)
            ctx.report_failures(table, found.get(i, []))
            # (a copy: the stacked frame's slice becomes this book's own table)
            ctx.typed[sheet.key] = typed.iloc[start:end].set_axis(table.frame.index, axis=0).copy()
            start = end


def _with_ceiling(problems: list[Problem]) -> list[Problem]:
    if len(problems) <= PROBLEM_CEILING:
        return problems
    shown = problems[:PROBLEM_CEILING]
    more = len(problems) - PROBLEM_CEILING
    return shown + [problem("too_many_problems", "", "", shown=PROBLEM_CEILING, more=more)]


# --- pandera schemas, made from the spec -------------------------------------------------------------------------

MAX_NAME_LENGTH = 30  # no person's name is longer; longer text is a mistake (or worse)
MAX_BRANCH_NAME_LENGTH = 60
HALF_YEAR_LAST_MONTH = PERIODS["h1"].last_month  # an annual run over a workbook blank after it: filled to June

_KIND_CODES = {
    "int": "not_an_integer",
    "number": "not_a_number",
    "score": "not_a_number",
    "date": "not_a_date",
    "choice": "value_not_allowed",
}


def column_parser(col: spec.Column, rules: Rules) -> Any:
    """The function reading one cell of the column; a closed list is the one the rules give."""
    if col.choice is not None:
        choice = rules.choice(col.choice)
        return lambda v: parse_choice(v, choice)
    return parser_for(col)


def _each(test) -> Any:
    """A pandera check applying `test` to every cell (a parsed value)."""
    return lambda s: pd.Series([bool(test(v)) for v in s.tolist()], index=s.index, dtype=bool)


def _number_test(test) -> Any:
    """A test of the cells that parsed as numbers; the others are not_a_number's business."""
    return _each(lambda v: v is None or v is INVALID or test(v))


def column_checks(col: spec.Column, rules: Rules, year: int | None) -> list:
    """The pandera checks of one column, each named by the problem code it reports.

    They run on the parsed cells (each raw value read once by the column's parser, INVALID where it could not be),
    so the value tests and the typed table share one parse.
    """
    import pandera.pandas as pa

    checks = []
    if col.required:
        checks.append(pa.Check(lambda s: s.notna(), name="value_required", ignore_na=False))
    code = _KIND_CODES.get(col.kind)
    if code:
        checks.append(pa.Check(_each(lambda v: v is not INVALID), name=code))
    if col.kind == "score":
        inc = rules.incentive
        checks += [
            pa.Check(_number_test(lambda v: v <= inc.activity_max), name="score_above_item_max"),
            pa.Check(_number_test(lambda v: v >= 0), name="score_below_zero"),
            pa.Check(_number_test(lambda v: abs(v / inc.step - round(v / inc.step)) < 1e-9),
                     name="score_not_half_step"),
        ]
    if col.kind == "date" and col.key == "date" and year is not None:
        last = year + col.years_after
        checks.append(pa.Check(_each(lambda d: not isinstance(d, dt.date) or year <= d.year <= last),
                               name="date_outside_year"))
    if col.kind == "name":
        checks.append(pa.Check(_each(lambda v: len(str(v)) <= MAX_NAME_LENGTH), name="name_too_long"))
    return checks


@lru_cache(maxsize=64)
def table_schema(sheet: spec.TableSheet, present: tuple[str, ...], rules: Rules, year: int | None):
    """The sheet's schema for the columns present; made once per shape and reused across workbooks."""
    import pandera.pandas as pa

    columns = {
        col.key: pa.Column(None, checks=column_checks(col, rules, year), nullable=True, required=False)
        for col in sheet.columns
        if col.key in present
    }
    return pa.DataFrameSchema(columns)


def schema_failures(schema, frame: pd.DataFrame) -> list[tuple[Any, str | None, str]]:
    """(index, column, check name) of every failing cell; pandera collects them all (lazy)."""
    import pandera.errors as pe

    if frame.empty:  # every check is on cells: a sheet with no rows has none to fail (and pandera costs ~2 ms)
        return []
    try:
        schema.validate(frame, lazy=True, inplace=True)  # no copy: the frame is ours and checks only read it
    except pe.SchemaErrors as err:
        fc = err.failure_cases
        out = []
        for idx, column, check in zip(fc["index"], fc["column"], fc["check"], strict=True):
            if idx is None or (isinstance(idx, float) and idx != idx):
                continue
            out.append((idx, column, str(check)))
        return out
    return []


# --- the checks ------------------------------------------------------------------------------------------------


class _Context:
    def __init__(self, book: RawWorkbook, rules: Rules, period: Period, year: int | None):
        self.book = book
        self.rules = rules
        self.period = period
        self.own_year = workbook_year(book)
        self.year = year if year is not None else self.own_year
        self.problems: list[Problem] = []
        self.info: dict[str, Any] = {}
        self.typed: dict[str, pd.DataFrame] = {}
        self.attendance = pd.DataFrame()
        self.event_dates: dict[str, dt.date] = {}  # the grid's row 2, where it gives a valid date
        self.letters: dict[str, dict[str, str]] = {}  # by sheet key: column key -> the column's letter
        self._index: tuple[dict, dict, dict, set] | None = None

    def add(self, code: str, sheet: str, cell: str, value: Any = "", **extra: Any) -> None:
        self.problems.append(problem(code, sheet, cell, value, year=self.year, **extra))

    def check_across(self) -> None:
        """The checks across rows and sheets, once every table is typed."""
        roster = self.typed.get("roster")
        if roster is not None:
            self.check_roster(roster)
        if self.book.grid is not None and roster is not None:
            self.check_grid(roster)
        if roster is not None:
            for sheet in spec.LOG_SHEETS:
                if sheet.key in self.typed:
                    self.typed[sheet.key] = self.match_members(sheet, self.typed[sheet.key], roster)
            self.check_exempt_records(roster)

    # 支部信息
    def check_info(self) -> None:
        sheet = spec.INFO_SHEET
        if sheet in self._missing_sheets():
            return
        for key in spec.INFO_KEYS:
            value, cell = self.book.info.get(key.key, (None, ""))
            required = key.required or key.key == self.period.info_date_key
            if value is None:
                if required:
                    if key.key == self.period.info_date_key:
                        self.add("approval_date_missing", sheet, cell or "B1", header=key.label, period=self.period.label)
                    else:
                        self.add("info_missing", sheet, cell or "A1", None, header=key.label)
                continue
            parsed = parser_for(spec.Column(key.label, key.key, key.kind))(value)
            if parsed is INVALID:
                self.add(_KIND_CODES[key.kind], sheet, cell, value, row=cell[1:], header=key.label)
                continue
            limit = MAX_BRANCH_NAME_LENGTH if key.key in ("branch", "email") else MAX_NAME_LENGTH
            if isinstance(parsed, str) and len(parsed) > limit:
                self.add("text_too_long", sheet, cell, parsed[:20] + "…", header=key.label, length=len(parsed))
                continue
            self.info[key.key] = parsed
        year = self.info.get("year")
        if year is not None and self.year is not None and year != self.year:
            self.add("year_mismatch", sheet, self.book.info["year"][1], year)
        rate = self.info.get("rate")
        if rate is not None:
            cell = self.book.info["rate"][1]
            if rate > self.rules.grades.max_reward_rate:
                self.add("rate_too_high", sheet, cell, rate, max=_n(self.rules.grades.max_reward_rate))
            elif rate < 0:
                self.add("rate_negative", sheet, cell, rate)

    def _missing_sheets(self) -> set[str]:
        return {p.sheet for p in self.book.problems if p.code == "sheet_missing"}

    # one table: the problems pandera found in its cells
    def report_failures(self, table: RawTable, failures: list[tuple[int, str | None, str]]) -> None:
        sheet = table.sheet
        frame = table.frame
        for row, column, code in failures:
            if column is None:  # a check on the whole table; every check here is on one column
                continue
            col = sheet.column(column)
            value = frame.at[row, column]
            extra = {"allowed": "、".join(self.rules.choice(col.choice).values) if col.choice else ""}
            inc = self.rules.incentive
            self.add(code, sheet.name, table.cell(column, row), value, row=row, header=col.header,
                     hi=_n(inc.activity_max), lo=0, step=_n(inc.step), length=len(str(value)), **extra)
        self.letters[sheet.key] = table.letters  # (not in typed.attrs: pandas deep-copies those on every access)

    # 党员名册
    def check_roster(self, roster: pd.DataFrame) -> None:
        sheet = spec.ROSTER.name
        letters = self.letters["roster"]
        if roster.empty:
            self.add("roster_empty", sheet, "A2")
            return
        rows = roster.index.tolist()
        first_row: dict[Any, int] = {}
        for row, seq in zip(rows, roster["seq"].tolist(), strict=True):
            if is_blank(seq):
                continue
            if seq in first_row:
                self.add("seq_duplicate", sheet, f"{letters['seq']}{row}", seq, row=row, other=first_row[seq])
            else:
                first_row[seq] = row
        exempt_values = roster["exempt"].tolist()
        exempt = [v == "是" for v in exempt_values]
        reasons = roster["exempt_reason"].tolist()
        names = dict(zip(rows, roster["name"].tolist(), strict=True))
        raw = self.book.tables["roster"].frame
        typed_in = ({row for row, v in zip(raw.index.tolist(), raw["exempt_reason"].tolist(), strict=True)
                     if not is_blank(v)} if "exempt_reason" in raw else set())
        for row, is_exempt, reason in zip(rows, exempt, reasons, strict=True):
            if is_exempt and is_blank(reason) and row not in typed_in:
                self.add("exempt_reason_missing", sheet, f"{letters.get('exempt_reason', 'H')}{row}", None,
                         row=row, name=names[row])
        for row, is_exempt, reason, value in zip(rows, exempt, reasons, exempt_values, strict=True):
            if not is_exempt and not is_blank(reason):
                self.add("exempt_reason_without_exempt", sheet, f"{letters.get('exempt', 'G')}{row}", value or "",
                         row=row)
        age_reason = self.rules.lists.age_reason
        age = self.rules.exempt_age
        for row, is_exempt, reason, birth in zip(rows, exempt, reasons, roster["birth"].tolist(), strict=True):
            if not (is_exempt and reason == age_reason):
                continue
            cell = f"{letters.get('birth', 'D')}{row}"
            if birth is None:
                self.add("exempt_birth_missing", sheet, cell, None, row=row, name=names[row], reason=age_reason)
            elif self.year is not None and self.year - birth.year < age:
                self.add("exempt_age_not_reached", sheet, cell, birth, row=row, name=names[row],
                         birth=birth.isoformat(), age=age)
        for row, joined, t_in, t_out in zip(rows, roster["joined"].tolist(),
                                            roster["transfer_in"].tolist(), roster["transfer_out"].tolist(),
                                            strict=True):
            start, end = membership_span(joined, t_in, t_out)
            if start is not None and end is not None and end < start:
                self.add("transfer_out_before_start", sheet, f"{letters.get('transfer_out', 'H')}{row}", end,
                         row=row, name=names[row], start=start.isoformat())

    # 基础积分
    def check_grid(self, roster: pd.DataFrame) -> None:
        grid = self.book.grid
        assert grid is not None
        sheet = spec.GRID_SHEET
        months = self.event_months(grid.dates, grid.letters)
        events = [e for e in spec.GRID_EVENTS if e.header in grid.frame.columns]
        frame = grid.frame
        if "seq" not in frame.columns or "name" not in frame.columns:
            return
        grid_rows = frame.index.tolist()
        raw_seqs = frame["seq"].tolist()
        seqs = [parse_int(v) for v in raw_seqs]
        names_of = [_text(v) for v in frame["name"].tolist()]
        for row, seq, raw_seq in zip(grid_rows, seqs, raw_seqs, strict=True):
            if seq is INVALID or is_blank(seq):
                code = "value_required" if raw_seq is None else "not_an_integer"
                self.add(code, sheet, f"{grid.letters['seq']}{row}", raw_seq, row=row, header="序号")
        for row, name in zip(grid_rows, names_of, strict=True):
            if name is None:
                self.add("value_required", sheet, f"{grid.letters['name']}{row}", "", row=row, header="姓名")
        seqs = [None if v is INVALID else v for v in seqs]
        matched = self._match(sheet, grid_rows, seqs, names_of, roster, grid.letters, seq_required=True)
        # each roster member exactly once
        first_row: dict[Any, int] = {}
        for row, seq, name in zip(grid_rows, matched, names_of, strict=True):
            if seq is None:
                continue
            if seq in first_row:
                self.add("member_twice_in_grid", sheet, f"{grid.letters['name']}{row}", name, row=row,
                         other=first_row[seq])
            else:
                first_row[seq] = row
        roster_seqs = roster["seq"].tolist()
        seq_counts = Counter(seq for seq in roster_seqs if not is_blank(seq))
        roster_valid = [(row, seq, name) for row, seq, name in zip(roster.index.tolist(), roster_seqs,
                                                                   roster["name"].tolist(), strict=True)
                        if not is_blank(seq) and seq_counts[seq] == 1]
        missing = [(row, name) for row, seq, name in roster_valid if seq not in first_row]
        if roster_valid and len(missing) == len(roster_valid):
            # an empty grid, or one naming nobody on the roster: one problem, not one per member
            self.add("grid_without_members", sheet, f"A{spec.GRID_FIRST_ROW}")
        else:
            for row, name in missing:
                self.add("member_not_in_grid", spec.ROSTER.name,
                         f"{self.letters['roster'].get('name', 'B')}{row}", name, row=row)
        if not events:
            return
        # one row per member and event, event by event (what DataFrame.melt gives), as plain arrays: a grid is a
        # thousand cells holding a handful of distinct marks, each parsed once
        headers = [e.header for e in events]
        n = len(frame)
        rows = np.tile(frame.index.to_numpy(), len(events))
        raw = frame[headers].to_numpy(dtype=object).ravel(order="F").tolist()
        event_of = np.repeat(np.arange(len(events)), n)
        months_of = np.repeat([months[h] for h in headers], n)

        def mark_of(value: Any) -> tuple[bool, bool, bool, str]:
            """(not a mark, blank, leave, the mark's code) of a grid cell."""
            mark = parse_choice(value, spec.MARK)
            return (mark is INVALID, is_blank(mark), mark is not INVALID and mark == "假",
                    "blank" if is_blank(mark) or mark is INVALID else spec.MARK_CODES[mark])

        distinct: list[tuple[bool, bool, bool, str]] = []

        def mark_index(value: Any) -> int:
            distinct.append(mark_of(value))
            return len(distinct) - 1

        at = np.array(map_distinct(raw, mark_index), dtype=np.intp)
        columns = list(zip(*distinct, strict=True)) if distinct else [(), (), (), ()]  # (an empty grid: no rows)
        invalid, blank, leave, codes = (np.array(part, dtype=bool if k < 3 else object)[at]
                                        for k, part in enumerate(columns))
        names = dict(zip(grid_rows, names_of, strict=True))

        def report(code: str, at: np.ndarray, **extra: Any) -> None:
            for i in np.flatnonzero(at).tolist():
                event, row = events[event_of[i]], int(rows[i])
                self.add(code, sheet, f"{grid.letters[event.header]}{row}", raw[i], row=row, header=event.header,
                         name=names.get(row) or "", **{k: v[i % n] for k, v in extra.items()})

        report("attendance_not_mark", invalid)
        in_period = months_of <= self.period.last_month
        later = months_of > HALF_YEAR_LAST_MONTH
        if self.period.last_month > HALF_YEAR_LAST_MONTH and n and later.any() and blank[later].all():
            # a workbook filled only to June, run for the year: one problem saying so, not one per blank cell
            first = int(np.flatnonzero(later)[0])
            self.add("second_half_blank", sheet, f"{grid.letters[events[event_of[first]].header]}{int(rows[first])}")
            in_period = in_period & ~later
        # an exempt member's attendance may be recorded, not must: kept, not scored (WORKBOOK.md)
        exempt_seqs = {int(s) for s, e in zip(roster["seq"].tolist(), roster["exempt"].tolist(), strict=True)
                       if e == "是" and not is_blank(s)}
        exempt_rows = np.tile(np.array([s in exempt_seqs for s in matched], dtype=bool), len(events))
        report("attendance_blank", blank & in_period & ~exempt_rows)
        report("attendance_leave_for_dues", leave & np.repeat([e.dues for e in events], n))
        if self.year is not None:
            where = self.membership(roster, matched, [self.event_dates.get(h) for h in headers], months_of, n)
            where[months_of > self.period.last_month] = _EXEMPT  # a half-year run judges January-June only
            is_na = codes == "na"
            marked = (codes == "attended") | (codes == "absent") | (codes == "leave")
            report("na_without_dates", is_na & (where == _NO_DATES))
            basis = self.basis_of(roster, matched)
            report("na_inside_membership", is_na & (where == _INSIDE), basis=basis)
            outside = marked & (where == _OUTSIDE)
            report("mark_outside_membership", outside, basis=basis)
            codes = np.where(outside, "na", codes)  # the month is not applicable, whatever it says
        letters = [grid.letters[h] for h in headers]
        row_texts = [str(r) for r in grid_rows]
        self.attendance = pd.DataFrame({
            "seq": np.tile(np.array(matched, dtype=object), len(events)),
            "event": np.repeat(np.asarray(headers, dtype=object), n),
            "item": np.repeat(np.asarray([e.item for e in events], dtype=object), n),
            "month": months_of,
            "mark": codes,
            "row": rows,
            "cell": [letter + r for letter in letters for r in row_texts],  # event by event, as `rows`
            "col": np.repeat([_column_index(letter) for letter in letters], n),
        })

    def membership(self, roster: pd.DataFrame, matched: list[Any], dates: list[dt.date | None],
                   months_of: np.ndarray, n: int) -> np.ndarray:
        """Where each grid cell (event by event, as `months_of`) stands against its member's span in the branch:
        _INSIDE, _OUTSIDE, _EDGE (an undated event in the month the span starts or ends: either is accepted),
        _NO_DATES (the roster gives no date at all), or _EXEMPT (not scored, not checked). Days are compared as
        ordinals, every cell at once."""
        assert self.year is not None
        spans = self._spans(roster)
        never, always = dt.date.min.toordinal(), dt.date.max.toordinal()
        row_span = [spans.get(s) if s is not None else None for s in matched]
        start = np.array([never if sp is None or sp[0] is None else sp[0].toordinal() for sp in row_span])
        end = np.array([always if sp is None or sp[1] is None else sp[1].toordinal() for sp in row_span])
        exempt = np.array([sp is None for sp in row_span], dtype=bool)
        undated = np.array([sp is not None and sp == (None, None) for sp in row_span], dtype=bool)
        events = len(dates)
        bounds = [(d, d) if d is not None else _month_bounds(self.year, int(months_of[e * n]) if n else 1)
                  for e, d in enumerate(dates)]
        first = np.repeat([f.toordinal() for f, _l in bounds], n)
        last = np.repeat([la.toordinal() for _f, la in bounds], n)
        start, end = np.tile(start, events), np.tile(end, events)
        out = np.where((start > last) | (end < first), _OUTSIDE,
                       np.where((start <= first) & (end >= last), _INSIDE, _EDGE)).astype(np.int8)
        out[np.tile(undated, events)] = _NO_DATES
        out[np.tile(exempt, events)] = _EXEMPT
        return out

    def _spans(self, roster: pd.DataFrame) -> dict[int, tuple[dt.date | None, dt.date | None]]:
        """Each scored member's span in the branch, by 序号 (exempt members are not scored, so not checked)."""
        spans = {}
        for seq, exempt, joined, t_in, t_out in zip(
                roster["seq"].tolist(), roster["exempt"].tolist(), roster["joined"].tolist(),
                roster["transfer_in"].tolist(), roster["transfer_out"].tolist(), strict=True):
            if not is_blank(seq) and exempt != "是":
                spans[int(seq)] = membership_span(joined, t_in, t_out)
        return spans

    def basis_of(self, roster: pd.DataFrame, matched: list[Any]) -> list[str]:
        """Per grid row, the roster dates that decide its member's span, in words (for the messages)."""
        words = {}
        for seq, joined, t_in, t_out in zip(roster["seq"].tolist(), roster["joined"].tolist(),
                                            roster["transfer_in"].tolist(), roster["transfer_out"].tolist(),
                                            strict=True):
            parts = [f"{label}{d.isoformat()}" for label, d in (("入党日期", joined), ("转入日期", t_in),
                                                                  ("转出日期", t_out)) if d is not None]
            if not is_blank(seq):
                words[int(seq)] = "、".join(parts)
        return [words.get(s, "") if s is not None else "" for s in matched]

    def event_months(self, dates: dict[str, Any], letters: dict[str, str]) -> dict[str, int]:
        """The month each event belongs to: its date in row 2 if given, else its slot's last month."""
        months = {}
        for event in spec.GRID_EVENTS:
            raw = dates.get(event.header)
            months[event.header] = event.default_month
            if raw is None:
                continue
            cell = f"{letters.get(event.header, 'A')}2"
            parsed = parse_date(raw)
            if parsed is INVALID:
                self.add("not_a_date", spec.GRID_SHEET, cell, raw, row=2, header=event.header)
            elif self.year is not None and parsed.year != self.year:
                self.add("event_date_outside_year", spec.GRID_SHEET, cell, parsed, header=event.header)
            else:
                months[event.header] = parsed.month
                self.event_dates[event.header] = parsed
                if not _in_slot(event, parsed.month):
                    self.add("event_date_outside_slot", spec.GRID_SHEET, cell, parsed, header=event.header)
        return months

    # members named in the grid and the logs
    def _roster_index(self, roster: pd.DataFrame) -> tuple[dict, dict, dict, set]:
        """(name by 序号, 序号 by unique name, count by name, every name) of the roster; made once."""
        if self._index is None:
            seqs, names = roster["seq"].tolist(), roster["name"].tolist()
            counts: dict[Any, int] = {}
            for name in names:
                if name is not None:
                    counts[name] = counts.get(name, 0) + 1
            named = [(seq, name) for seq, name in zip(seqs, names, strict=True)
                     if not is_blank(seq) and name is not None]
            seq_counts: dict[Any, int] = {}
            for seq, _name in named:
                seq_counts[seq] = seq_counts.get(seq, 0) + 1
            valid = [(seq, name) for seq, name in named if seq_counts[seq] == 1]
            name_by_seq = dict(valid)
            seq_by_name = {name: seq for seq, name in valid if counts[name] == 1}
            self._index = (name_by_seq, seq_by_name, counts, set(counts))
        return self._index

    def _match(self, sheet: str, rows: list[int], seqs: list[Any], names: list[Any], roster: pd.DataFrame,
               letters: dict[str, str], seq_required: bool) -> list[Any]:
        """The roster 序号 each row (Excel row, 序号 and name given) refers to (None where it refers to nobody),
        reporting why not."""
        name_by_seq, seq_by_name, counts, roster_names = self._roster_index(roster)
        found_seqs: dict[Any, int] = {}
        seq_letter, name_letter = letters.get("seq", "A"), letters.get("name", "B")
        for row, seq, name in zip(rows, seqs, names, strict=True):
            if is_blank(name):
                continue
            if not is_blank(seq):
                seq = int(seq)
                found = name_by_seq.get(seq)
                if found == name:
                    found_seqs[row] = seq
                elif found is not None:
                    self.add("seq_name_mismatch", sheet, f"{seq_letter}{row}", seq, row=row, other=found, name=name)
                elif name not in roster_names:
                    self.add("name_not_in_roster", sheet, f"{name_letter}{row}", name, row=row)
                elif name in seq_by_name:
                    self.add("seq_not_in_roster", sheet, f"{seq_letter}{row}", seq, row=row)
                # else: the roster's own row for this name is faulty and already reported
            elif not seq_required:
                if name in seq_by_name:
                    found_seqs[row] = seq_by_name[name]
                elif name not in roster_names:
                    self.add("name_not_in_roster", sheet, f"{name_letter}{row}", name, row=row)
                elif counts.get(name, 0) > 1:
                    self.add("name_ambiguous", sheet, f"{seq_letter}{row}", None, row=row, name=name)
        return [found_seqs.get(row) for row in rows]

    def match_members(self, sheet: spec.TableSheet, log: pd.DataFrame, roster: pd.DataFrame) -> pd.DataFrame:
        seqs = [None if v is None or v != v else int(v) for v in log["seq"].tolist()]
        matched = self._match(sheet.name, log.index.tolist(), seqs, log["name"].tolist(), roster,
                              self.letters[sheet.key], seq_required=False)
        log["seq"] = np.array(matched, dtype=object)  # (the typed table is this book's own: no copy)
        return log

    def check_exempt_records(self, roster: pd.DataFrame) -> None:
        names = {seq: name for seq, exempt, name in zip(roster["seq"].tolist(), roster["exempt"].tolist(),
                                                        roster["name"].tolist(), strict=True)
                 if exempt == "是" and not is_blank(seq)}
        if not names:
            return
        for sheet in spec.LOG_SHEETS:
            log = self.typed.get(sheet.key)
            if log is None or log.empty:
                continue
            letters = self.letters[sheet.key]
            reported = set()
            for row, seq in zip(log.index.tolist(), log["seq"].tolist(), strict=True):
                if seq in names and seq not in reported:  # each member once, at its first row
                    reported.add(seq)
                    self.add("exempt_has_records", sheet.name, f"{letters.get('name', 'C')}{row}", names[seq],
                             row=row)

    # the result
    def branch_name(self) -> str | None:
        value = self.book.info.get("branch", (None, ""))[0]
        return None if value is None else str(value)

    def branch(self) -> Branch:
        i = self.info
        info = BranchInfo(
            name=str(i["branch"]), year=int(i["year"]), recorder=str(i["recorder"]),
            secretary=i.get("secretary"), email=i.get("email"), h1_date=i.get("h1_date"),
            annual_date=i.get("annual_date"), rate=i.get("rate"),
        )
        roster = self.typed["roster"].copy()
        roster["seq"] = roster["seq"].astype(int)
        roster["exempt"] = roster["exempt"] == "是"
        tables = {}
        for sheet in (*spec.LOG_SHEETS, spec.OBJECTIONS):
            frame = self.typed.get(sheet.key)
            if frame is None:
                frame = pd.DataFrame(columns=[c.key for c in sheet.columns] + ["row", "cell"])
            frame = frame.reset_index(drop=True)
            if sheet.key == "incentive":
                frame["points"] = frame["points"].astype(float)
                frame["leading"] = frame["leading"] == "是"
            tables[sheet.key] = frame
        attendance = self.attendance  # made by check_grid for this branch alone
        attendance["seq"] = attendance["seq"].astype(int)
        return Branch(self.book.path, info, roster.reset_index(drop=True), attendance,
                      tables["incentive"], tables["negative"], tables["veto"], tables["objections"],
                      dict(self.event_dates))


_INSIDE, _OUTSIDE, _EDGE, _NO_DATES, _EXEMPT = range(5)


def membership_span(joined: dt.date | None, transfer_in: dt.date | None,
                    transfer_out: dt.date | None) -> tuple[dt.date | None, dt.date | None]:
    """(first day, last day) a member belongs to the branch: from 入党日期 or 转入日期, whichever is later and
    given, to 转出日期; None where the roster leaves that end open."""
    starts = [d for d in (joined, transfer_in) if d is not None]
    return (max(starts) if starts else None), transfer_out


def _month_bounds(year: int, month: int) -> tuple[dt.date, dt.date]:
    import calendar

    return dt.date(year, month, 1), dt.date(year, month, calendar.monthrange(year, month)[1])


def _column_index(letter: str) -> int:
    from openpyxl.utils.cell import column_index_from_string

    return column_index_from_string(letter)


def _in_slot(event: spec.GridEvent, month: int) -> bool:
    m = event.default_month
    if event.item in ("dues", "activity_day"):
        return month == m
    if event.item in ("lecture", "congress"):
        return m - 2 <= month <= m
    if event.item == "org_life":
        return m - 5 <= month <= m
    return True


def _text(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
