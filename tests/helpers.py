"""Build the smallest workbook that shows one rule or one mistake, from a few rows written as Python lists."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path
from typing import Any

from pointsbatch.rules import load_rules
from pointsbatch.workbook import spec
from pointsbatch.workbook.template import Filling, build_template, write_workbook

YEAR = 2026
RUN_DATE = "2027-01-15"  # an annual run in January, as the clerk's usually is
EVENTS = [e.header for e in spec.GRID_EVENTS]


def info(**over: Any) -> dict[str, Any]:
    base = {"branch": "第一党支部", "year": YEAR, "recorder": "李组织", "secretary": "王书记",
            "h1_date": dt.date(YEAR, 7, 5), "annual_date": dt.date(YEAR + 1, 1, 10), "rate": 2}
    base.update(over)
    return base


def member(seq: int, name: str, category: str = "正式党员", exempt: str | None = None,
           reason: str | None = None, birth: Any = dt.date(1980, 5, 1), joined: Any = dt.date(2005, 7, 1),
           transfer_in: Any = None, transfer_out: Any = None) -> list[Any]:
    """A roster row, in the template's column order."""
    return [seq, name, "男", birth, category, joined, transfer_in, transfer_out, exempt, reason, None]


def marks(default: str = "√", **by_event: str) -> list[str]:
    """A grid row's marks: every event `default`, except those named (event header -> mark)."""
    return [by_event.get(e, default) for e in EVENTS]


def months(mark: str, *month_numbers: int, base: str = "√") -> dict[str, str]:
    """Every organisational-life event (and dues) of the given months set to `mark`."""
    out = {}
    for e in spec.GRID_EVENTS:
        if e.default_month in month_numbers and e.item != "dues":
            out[e.header] = mark
    return out


def build(path: Path, *, roster: list[list[Any]] | None = None, grid: dict[int, list[str]] | None = None,
          incentive: list[list[Any]] | None = None, negative: list[list[Any]] | None = None,
          veto: list[list[Any]] | None = None, objections: list[list[Any]] | None = None,
          info_over: dict[str, Any] | None = None, grid_rows: list[list[Any]] | None = None,
          grid_dates: dict[str, Any] | None = None, rules=None) -> Path:
    """Write a standard workbook; members default to all √ unless `grid` gives their marks by 序号."""
    roster = roster if roster is not None else [member(1, "张三"), member(2, "李四")]
    grid = grid or {}
    if grid_rows is None:
        grid_rows = [[m[0], m[1], *grid.get(m[0], marks())] for m in roster]
    filling = Filling(info=info(**(info_over or {})), roster=roster, grid=grid_rows, grid_dates=grid_dates or {},
                      logs={"incentive": incentive or [], "negative": negative or [], "veto": veto or [],
                            "objections": objections or []})
    wb = build_template(rules or load_rules(), YEAR, filling=filling)
    write_workbook(wb, path)
    return path


def act(name: str, item: str, points: float, leading: str | None = None, when: dt.date = dt.date(YEAR, 3, 1),
        seq: int | None = None, content: str = "活动") -> list[Any]:
    return [when, seq, name, item, content, points, leading, None]


def neg(name: str, case: str = "参与赌博", when: dt.date = dt.date(YEAR, 4, 1), seq: int | None = None) -> list[Any]:
    return [when, seq, name, case, "经核实", "王书记", None]


def veto_row(name: str, condition: str, when: dt.date = dt.date(YEAR, 5, 1), seq: int | None = None) -> list[Any]:
    return [when, seq, name, condition, "支委会决定", None]


def load(path: Path, period: str = "annual", rules=None):
    """Read and validate a workbook file: (validation, problems)."""
    from pointsbatch.validate import validate_workbook
    from pointsbatch.workbook.read import read_workbook

    return validate_workbook(read_workbook(path), rules or load_rules(), period)


def score(path: Path, period: str = "annual", rules=None):
    """Read, validate (asserting no error) and score a workbook file."""
    from pointsbatch.score import score_branch

    rules = rules or load_rules()
    v = load(path, period, rules)
    assert v.branch is not None, [p.message for p in v.problems if p.is_error]
    return score_branch(v.branch, rules, period)


def total_of(scores, seq: int):
    return scores.members.set_index("seq").loc[seq, "total"]


def cell_of(header: str, row: int = 3) -> str:
    """The grid cell of an event (by its header) on a row: 活动日5月 of the first member is S3."""
    from pointsbatch.workbook.read import column_letter

    return f"{column_letter(len(spec.GRID_KEYS) + EVENTS.index(header))}{row}"


def codes(validation) -> set[tuple[str, str, str]]:
    return {(p.sheet, p.cell, p.code) for p in validation.problems}


def run(inbox: Path, out: Path | None = None, *extra: str, jobs: int = 1):
    """`pointsbatch run INBOX [-o OUT] --jobs 1 --run-date RUN_DATE ...` through click's test runner."""
    from click.testing import CliRunner

    from pointsbatch.cli import main

    args = ["run", str(inbox), *(["-o", str(out)] if out is not None else []), "--jobs", str(jobs),
            "--run-date", RUN_DATE, *extra]
    return CliRunner().invoke(main, args, catch_exceptions=False)


# runs a command and prints the peak resident memory (KB on Linux) of it and everything it waited for; the
# command's address space is capped at 4 GiB, so that a regression fails the test instead of exhausting the machine
_PEAK = ("import resource, subprocess, sys; "
         "cap = lambda: resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30)); "
         "p = subprocess.run(sys.argv[1:], preexec_fn=cap); "
         "print('PEAK_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
         "sys.exit(p.returncode)")


def run_measured(inbox: Path, out: Path, *extra: str) -> tuple[int, str, int]:
    """`pointsbatch run` in a child process: (exit status, its output, peak memory in MB of the child and its
    workers). Measured apart from the test process, whose own peak says nothing about the run."""
    proc = subprocess.run([sys.executable, "-c", _PEAK, sys.executable, "-m", "pointsbatch.cli", "run", str(inbox),
                           "-o", str(out), "--jobs", "1", *extra], capture_output=True, text=True, timeout=600)
    peak = next(int(line.split()[1]) for line in proc.stderr.splitlines() if line.startswith("PEAK_KB"))
    return proc.returncode, proc.stdout + proc.stderr, peak // 1024


def registry(path: Path, rows: list[tuple[str, object]]) -> Path:
    """The town's 支部名录.xlsx with (支部名称, 联系邮箱) rows."""
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.append(["支部编码", "支部名称", "上级党组织", "联系人", "联系邮箱"])
    for i, (name, addr) in enumerate(rows, start=1):
        ws.append([f"ZB{i}", name, "镇党委", "组织委员", addr])
    wb.save(path)
    return path
