"""The values a run passes between its stages: the options, one file's result, the report."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypedDict

from . import clock
from .parts import Part
from .problems import Problem

Status = Literal["accepted", "rejected", "ignored"]


class MemberRow(TypedDict):
    """One scored member as the town's outputs read it (render.branch.member_rows, plus the branch): the keys every
    consumer of FileResult.members (scores.csv, the summary, index.html, changes, the terminal) relies on."""

    branch: str
    seq: int
    name: str
    category: str
    exempt: bool
    base: float | None
    incentive: float | None
    deductions: float | None
    veto: str
    total: float | None
    grade: str
    honours: str | None
    reward: float | None
    h1_total: float | None  # a file's fate in a run, as run.json says it


@dataclass(frozen=True)
class MemberCounts:
    """What the town's outputs say of one accepted branch's members (render.town.member_counts): the summary's row,
    the grade counts, the half year's bands; kept instead of the members themselves."""

    members: int
    scored: int  # not exempt
    excellent: int  # of the scored, by grade
    passed: int
    failed: int
    highest: float | None  # of the scored members' totals
    lowest: float | None
    average: float | None  # to one decimal
    grades: dict[str, int]  # every member (the exempt too) by grade
    bands: dict[int, int]  # the scored members' totals by band (total // town.BAND)

    @property
    def exempt(self) -> int:
        return self.members - self.scored


class RunError(Exception):
    """Nothing could be done (unreadable INBOX, bad registry, OUT not writable): exit status 2."""


@dataclass(frozen=True)
class RunOptions:
    inbox: Path
    out: Path | None = None  # None: results/<year><period> (names.RESULTS), the year taken from the workbooks
    period: str = "annual"
    year: int | None = None
    registry: Path | None = None
    rules_path: Path | None = None
    jobs: int = 1
    run_date: dt.date = field(default_factory=clock.today)
    run_at: dt.datetime = field(default_factory=clock.now)  # every timestamp the run writes (SOURCE_DATE_EPOCH)
    notice_start: dt.date | None = None
    contact: str | None = None
    trust_workbook_addresses: bool = False
    sender: str = "pointsbatch@localhost"
    templates: Path | None = None  # the town's own copies of output templates, used before the bundled ones


@dataclass
class FileResult:
    name: str
    sha256: str
    status: Status
    branch: str | None = None
    year: int | None = None
    problems: list[Problem] = field(default_factory=list)
    reason: str = ""
    counts: MemberCounts | None = None  # of an accepted workbook's members
    parts: dict[str, Part] = field(default_factory=dict)  # its rows of ledger.csv, marks.csv, scores.csv and its
    # members, left in staging by the worker (parts.py): the main process never holds them all
    flags: int = 0
    base_max: float | None = None  # the most base points the branch's grid gives in the period
    email: str | None = None
    outputs: list[str] = field(default_factory=list)  # relative to OUT
    source: str = ""  # the file in INBOX, for a marked copy made after the fact
    cells: dict[str, str] = field(default_factory=dict)  # 支部信息 key (spec.INFO_KEYS) -> the cell it was read from
    slot: Path | None = None  # the folder its outputs are built in, before they get their final, unique names
    supervision: dict[str, Any] = field(default_factory=dict)  # supervision.branch_figures, for the town's view
    people: list[tuple[str, str]] = field(default_factory=list)  # (姓名, 出生日期) on the roster: people.py

    @property
    def errors(self) -> int:
        return sum(p.is_error for p in self.problems)


@dataclass
class RunReport:
    out: Path
    year: int | None
    period: str
    files: list[FileResult]
    missing: list[str]
    changes: list[dict[str, Any]]  # since the previous run
    changes_since_first: list[dict[str, Any]] = field(default_factory=list)  # since the scores first posted
    first_run: str | None = None  # when the first run of this year and period was (历史/)
    comparison_notes: list[str] = field(default_factory=list)  # what of the previous run could not be compared
    history_folder: str | None = None  # where under 历史/ this run put the previous one
    seconds: dict[str, float] = field(default_factory=dict)  # wall time of each phase, for the benchmark
    kept: list[str] = field(default_factory=list)  # files of the old OUT pointsbatch did not write, carried over
    mail_held: list[dict[str, Any]] = field(default_factory=list)  # feedback mailed to nobody (recipients.py)
    same_people: list[dict[str, Any]] = field(default_factory=list)  # one person on two branches' rosters

    def count(self, status: Status) -> int:
        return sum(f.status == status for f in self.files)

    @property
    def exit_code(self) -> int:
        return 1 if self.count("rejected") else 0
