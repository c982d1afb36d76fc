"""Worker processes: each takes a chunk of workbooks through read -> validate -> score -> render.

A worker knows only what its task carries (the rules, the options, the templates folder); a workbook that trips a
bug is reported on its own file and the others go on.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from .display import printable
from .files import safe_component, sha256_or_blank
from .history import ledger_rows, marks_rows
from .model import FileResult
from .names import BRANCHES, period_title
from .parts import LEDGER, MARKS, MEMBERS, SCORES, PartWriter, members_part
from .people import roster_people
from .render.feedback import write_feedback
from .render.town import member_counts, scores_rows
from .rules import PERIODS, Rules
from .workbook.messages import problem

if TYPE_CHECKING:
    from .model import MemberRow

CHUNK = 64  # the most workbooks a worker takes at a time: validated and scored together (pandera, pandas cost per call)


@dataclass(frozen=True)
class Job:
    path: Path
    staging: Path
    rules: Rules
    period: str
    year: int | None
    run_date: dt.date
    run_at: dt.datetime
    notice_start: dt.date
    contact: str | None
    parts: Path  # staging's private folder where the worker leaves the rows of the town's files (parts.py)
    templates: Path | None = None


def process_chunk(jobs: list[Job]) -> list[FileResult]:
    """Several workbooks of one run: read one by one, validated and scored together (one pass of pandera or
    pandas over all of them costs little more than over one), then each rendered. Never raises for a bad
    workbook; a workbook that trips a bug is reported on its own file and the others go on."""
    results: list[FileResult | None] = [None] * len(jobs)
    read: list[tuple[int, FileResult, Any]] = []
    for i, job in enumerate(jobs):
        try:
            read.append((i, *_read(job)))
        except OSError:
            raise  # the environment (disk full, permissions): the whole run stops with exit 2
        except Exception as exc:  # a bug must not stop the other workbooks; it is reported on this file
            results[i] = _crashed(job, exc)
    accepted: list[tuple[int, Job, FileResult, Any]] = []
    for (i, result, book), validation in zip(read, _validations([book for *_, book in read], jobs), strict=True):
        job = jobs[i]
        if isinstance(validation, Exception):
            results[i] = _crashed(job, validation)
            continue
        result.branch, result.year, result.problems = validation.branch_name, validation.year, validation.problems
        result.cells = {key: cell for key, (_value, cell) in book.info.items()}
        results[i] = result
        try:
            if validation.branch is None:
                write_feedback(job.path, result, job.staging, readable=book.readable, data=book.data,
                               run_at=job.run_at)
            else:
                accepted.append((i, job, result, validation.branch))
                result.problems = [*result.problems, *_notice_warnings(job, book, validation.branch)]
        except OSError:
            raise
        except Exception as exc:
            results[i] = _crashed(job, exc)
    if accepted:
        try:
            scores: list[tuple[Any, Any]] | None = _scores([branch for *_, branch in accepted], jobs[0])
        except Exception:  # one of them trips a bug: each is scored alone below, so the others go on
            scores = None
        with PartWriter(jobs[0].parts, jobs[0].staging.name) as parts:  # named after the chunk's first slot
            for n, (i, job, result, branch) in enumerate(accepted):
                try:
                    annual, h1 = scores[n] if scores else _scores([branch], job)[0]
                    _render_branch(job, branch, result, annual, h1, parts)
                except OSError:
                    raise
                except Exception as exc:
                    results[i] = _crashed(job, exc)
    assert all(r is not None for r in results)
    return results  # type: ignore[return-value]


def _crashed(job: Job, exc: Exception) -> FileResult:
    detail = f"{type(exc).__name__}: {exc}"[:160]
    res = FileResult(printable(job.path.name), sha256_or_blank(job.path), "rejected", source=str(job.path),
                     problems=[problem("internal_error", "", "", detail=detail)])
    write_feedback(job.path, res, job.staging, readable=False, run_at=job.run_at)
    return res


def _notice_warnings(job: Job, book: Any, branch: Any) -> list[Any]:
    """A warning when the notice would start before the committee fixed the scores (结果公示 follows 支部核定)."""
    period = PERIODS[job.period]
    approval = branch.info.approval_date(period)
    if approval is None or job.notice_start >= approval:
        return []
    from .workbook import spec

    cell = book.info.get(period.info_date_key, (None, ""))[1]
    label = next(k.label for k in spec.INFO_KEYS if k.key == period.info_date_key)
    return [problem("notice_before_approval", spec.INFO_SHEET, cell, approval,
                    detail=job.notice_start.isoformat(), header=label)]


def _read(job: Job) -> tuple[FileResult, Any]:
    from .workbook.read import read_workbook

    book = read_workbook(job.path)  # (a file it could not read is a problem of that file, not of the run)
    return FileResult(printable(job.path.name), book.sha256 or sha256_or_blank(job.path), "rejected",
                      source=str(job.path)), book


def _validations(books: list[Any], jobs: list[Job]) -> list[Any]:
    """Each book's Validation, all validated together; if that trips a bug, each alone (an Exception in its place
    for a book that trips it alone)."""
    from .validate import validate_workbooks

    job = jobs[0]
    try:
        return validate_workbooks(books, job.rules, job.period, job.year)
    except OSError:
        raise
    except Exception as exc:
        if len(books) == 1:
            return [exc]
    out: list[Any] = []
    for book in books:
        try:
            out.append(validate_workbooks([book], job.rules, job.period, job.year)[0])
        except OSError:
            raise
        except Exception as exc:
            out.append(exc)
    return out


def _scores(branches: list[Any], job: Job) -> list[tuple[Any, Any]]:
    """(period scores, half-year scores or None) per branch, all scored in one pass."""
    from .score import score_branches

    annual = score_branches(branches, job.rules, job.period)
    if job.period != "annual":
        return [(s, None) for s in annual]
    h1 = score_branches(branches, job.rules, "h1", detail=False)  # the annual results show the half-year totals
    return list(zip(annual, h1, strict=True))


def _render_branch(job: Job, branch: Any, result: FileResult, scores: Any, h1: Any, parts: PartWriter) -> None:
    from .render.branch import member_rows, records, render_notice, render_results
    from .render.slip import render_slips

    folder = Path(BRANCHES) / safe_component(branch.info.name)
    title = period_title(branch.info.year, job.period)  # 2026年度, 2026年上半年
    results_rel = folder / f"{safe_component(branch.info.name)}{title}积分结果.xlsx"
    notice_rel = folder / f"{safe_component(branch.info.name)}{title}积分公示.html"
    (job.staging / folder).mkdir(parents=True, exist_ok=True)
    members, ledger = member_rows(scores, h1), records(scores.ledger)
    render_results(job.staging / results_rel, branch, scores, job.rules, job.run_date, members, ledger, job.run_at,
                   job.templates)
    html = render_notice(branch, scores, job.rules, job.notice_start, job.contact, job.templates)
    (job.staging / notice_rel).write_text(html, encoding="utf-8")
    slips_rel = folder / f"{safe_component(branch.info.name)}{title}个人积分告知单.html"
    slips = render_slips(branch, scores, job.rules, job.notice_start, job.contact, h1, job.templates)
    (job.staging / slips_rel).write_text(slips, encoding="utf-8")
    rows = [cast("MemberRow", {**m, "branch": branch.info.name}) for m in members]
    data = {LEDGER: ledger_rows(branch.info.name, ledger),
            MARKS: marks_rows(branch.info.name, branch.attendance, PERIODS[job.period].last_month),
            SCORES: scores_rows(rows), MEMBERS: members_part(branch.info.name, members.columns)}
    result.counts = member_counts(rows)
    result.parts = {kind: parts.add(kind, rows_of_kind) for kind, rows_of_kind in data.items()}  # (once all are made)
    result.status = "accepted"
    result.people = roster_people(branch.roster)
    result.flags = len(scores.flags)
    result.base_max = scores.base_max
    result.email = branch.info.email
    result.outputs = [str(results_rel), str(notice_rel), str(slips_rel)]
    from .supervision import branch_figures
    result.supervision = branch_figures(branch, scores, job.rules)


def template_problem(templates: Path | None) -> str | None:
    """Why an output template cannot be used (a Chinese message), or None: read before any work is done."""
    from .jinja import template_path
    from .render.branch import RESULTS_TEMPLATE
    from .render.town import SUMMARY_TEMPLATE
    from .render.xlsx_template import TemplateError, check_template

    for name in (RESULTS_TEMPLATE, SUMMARY_TEMPLATE):
        try:
            check_template(template_path(name, templates))
        except TemplateError as exc:
            return str(exc)
    return None


@contextmanager
def start_workers(count: int, templates: Path | None = None) -> Iterator[ProcessPoolExecutor | None]:
    """The worker processes of a run (None: everything in this process)."""
    if count <= 1:
        yield None
        return
    import multiprocessing

    # "spawn" everywhere: workers start as they do on the clerk's Windows PC, knowing only what they are given
    # (a forked worker would quietly inherit this process's state, and tests on Linux would not notice if a
    # worker needed something it was not sent)
    with ProcessPoolExecutor(max_workers=count, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_warm_up, initargs=(templates,)) as pool:
        for _ in range(count):  # a pool starts its processes on demand: start them all now
            pool.submit(_ready)
        yield pool


def _warm_up(templates: Path | None) -> None:
    """A new worker imports what the work needs and reads the output templates before the first chunk arrives."""
    import os
    import signal

    # Ctrl-C reaches every process of the console: a worker leaves at once and quietly (its work is thrown away
    # with the staging folder), and the main process says what became of OUT
    signal.signal(signal.SIGINT, lambda *_: os._exit(130))

    tune_gc()
    try:
        from .render.branch import render_results  # noqa: F401  (pandas, XlsxWriter, Jinja)
        from .score import score_branches  # noqa: F401
        from .validate import validate_workbooks  # noqa: F401  (pandera)

        template_problem(templates)  # (a problem is reported by the main process, which asks for it)
    except Exception:  # whatever it is, the work that needs it reports it
        pass
    freeze_imports()


def tune_gc() -> None:
    """A worker allocates millions of short-lived objects (cells, rows, frames) and keeps little: the cycle
    collector's first generation runs every 10,000 allocations instead of every 700 (a fifth of a worker's time
    went to it: 58 ms a workbook in one process with the default, 43 with this)."""
    import gc

    gc.set_threshold(10_000, *gc.get_threshold()[1:])


def freeze_imports() -> None:
    """What the imports made (about 100,000 objects of pandas, pandera, openpyxl) lives as long as the worker: moved
    out of the collector's sight, so that its full collections walk only the work's own objects."""
    import gc

    gc.collect()
    gc.freeze()


def _ready() -> None:
    """Nothing: a task that makes the pool start a worker."""


def submit(pool: ProcessPoolExecutor | None, fn: Callable[..., Any], *args: Any) -> Future:
    """`fn(*args)` in a worker, or here and now when there are none."""
    if pool is not None:
        return pool.submit(fn, *args)
    done: Future = Future()
    done.set_result(fn(*args))
    return done


def map_chunks(jobs: list[Job], pool: ProcessPoolExecutor | None, workers: int,
         progress: Callable[[str], None] | None):
    """Results in input order; chunks of workbooks go to the workers (one chunk at a time without workers)."""
    chunks = chunked(jobs, workers if pool is not None else 1)
    done = pool.map(process_chunk, chunks) if pool is not None and len(chunks) > 1 else map(process_chunk, chunks)
    for chunk in done:
        yield from _report(chunk, progress)


def chunked(jobs: list[Any], workers: int) -> list[list[Any]]:
    """Chunks of at most CHUNK workbooks; with workers, large ones first and then smaller ones (half of what is left
    per worker, never under 4), so that the workers finish together."""
    chunks, i = [], 0
    while i < len(jobs):
        size = CHUNK if workers <= 1 else max(4, min(CHUNK, (len(jobs) - i) // (workers * 2)))
        chunks.append(jobs[i:i + size])
        i += size
    return chunks


def _report(results: list[FileResult], progress: Callable[[str], None] | None):
    for res in results:
        if progress:
            progress(res.name)
        yield res
