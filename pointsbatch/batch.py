"""The batch: a folder of branch workbooks in, every output of OUTPUTS.md out.

Each workbook goes read → validate → score → render on its own (in worker processes with --jobs); the whole run
is built in a staging folder beside OUT and swapped in only once complete, so OUT is always either the previous
complete run or the new one.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import clock
from .files import atomic_save, atomic_write_bytes, atomic_write_text, sha256_file
from .problems import Problem, sort_key
from .rules import PERIODS, Rules
from .workbook.messages import problem

HISTORY = "历史"
BRANCHES = "支部"
FEEDBACK = "问题反馈"
OUTBOX = "发件箱"
SENT_LOG = "发送记录.json"
WORKBOOK_SUFFIXES = {".xlsx", ".xlsm"}
STALE_STAGING_SECONDS = 6 * 3600
OLD_SUFFIXES = {".xls", ".et"}
CHUNK = 64  # the most workbooks a worker takes at a time: validated and scored together (pandera, pandas cost per call)


class RunError(Exception):
    """Nothing could be done (unreadable INBOX, bad registry, OUT not writable): exit status 2."""


@dataclass(frozen=True)
class RunOptions:
    inbox: Path
    out: Path = Path("results")
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
    status: str  # accepted | rejected | ignored
    branch: str | None = None
    year: int | None = None
    problems: list[Problem] = field(default_factory=list)
    reason: str = ""
    members: list[dict[str, Any]] = field(default_factory=list)
    ledger_rows: bytes = b""  # this branch's rows of ledger.csv, formatted in the worker: small to carry back
    flags: int = 0
    email: str | None = None
    outputs: list[str] = field(default_factory=list)  # relative to OUT
    source: str = ""  # the file in INBOX, for a marked copy made after the fact

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
    changes: list[dict[str, Any]]
    seconds: dict[str, float] = field(default_factory=dict)  # wall time of each phase, for the benchmark

    def count(self, status: str) -> int:
        return sum(f.status == status for f in self.files)

    @property
    def exit_code(self) -> int:
        return 1 if self.count("rejected") else 0


# --- file names ------------------------------------------------------------------------------------------------

_UNSAFE = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]')


def safe_component(name: str, fallback: str = "未命名") -> str:
    """A single path component that cannot leave its folder, whatever the workbook's text says."""
    text = unicodedata.normalize("NFKC", str(name))
    text = _UNSAFE.sub("_", text).strip().strip(".")
    text = re.sub(r"\s+", " ", text)[:60].strip()
    if not text or set(text) <= {"_", "."}:
        return fallback
    if text.upper().split(".")[0] in {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)),
                                      *(f"LPT{i}" for i in range(10))}:
        text = "_" + text
    return text


def classify(path: Path) -> tuple[str, str]:
    """('process' | 'ignored' | 'old', reason) for a file found in INBOX."""
    name = path.name
    if name.startswith("~$") or name.startswith(".~"):
        return "ignored", "Excel/WPS 打开工作簿时产生的临时锁定文件"
    if name.startswith("."):
        return "ignored", "隐藏文件"
    if not path.is_file():
        return "ignored", "不是普通文件"
    suffix = path.suffix.lower()
    if suffix in OLD_SUFFIXES:
        return "old", ""
    if suffix not in WORKBOOK_SUFFIXES:
        return "ignored", "不是Excel工作簿（.xlsx）"
    return "process", ""


# --- one workbook ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    path: Path
    staging: Path
    rules: Rules
    period: str
    year: int | None
    run_date: dt.date
    notice_start: dt.date
    contact: str | None
    templates: Path | None = None


def process_chunk(jobs: list[_Job]) -> list[FileResult]:
    """Several workbooks of one run: read one by one, validated and scored together (one pass of pandera or
    pandas over all of them costs little more than over one), then each rendered. Never raises for a bad
    workbook; a workbook that trips a bug is reported on its own file and the others go on."""
    from .jinja import use_templates

    use_templates(jobs[0].templates)  # a worker process starts without the main process's state
    results: list[FileResult | None] = [None] * len(jobs)
    read: list[tuple[int, FileResult, Any]] = []
    for i, job in enumerate(jobs):
        try:
            read.append((i, *_read(job)))
        except OSError:
            raise  # the environment (disk full, permissions): the whole run stops with exit 2
        except Exception as exc:  # a bug must not stop the other workbooks; it is reported on this file
            results[i] = _crashed(job, exc)
    accepted: list[tuple[int, _Job, FileResult, Any]] = []
    for (i, result, book), validation in zip(read, _validations([book for *_, book in read], jobs), strict=True):
        job = jobs[i]
        if isinstance(validation, Exception):
            results[i] = _crashed(job, validation)
            continue
        result.branch, result.year, result.problems = validation.branch_name, validation.year, validation.problems
        results[i] = result
        try:
            if validation.branch is None:
                write_feedback(job.path, result, job.staging, readable=book.readable, data=book.data)
            else:
                accepted.append((i, job, result, validation.branch))
        except OSError:
            raise
        except Exception as exc:
            results[i] = _crashed(job, exc)
    if accepted:
        try:
            scores: list[tuple[Any, Any]] | None = _scores([branch for *_, branch in accepted], jobs[0])
        except Exception:  # one of them trips a bug: each is scored alone below, so the others go on
            scores = None
        for n, (i, job, result, branch) in enumerate(accepted):
            try:
                annual, h1 = scores[n] if scores else _scores([branch], job)[0]
                _render_branch(job, branch, result, annual, h1)
            except OSError:
                raise
            except Exception as exc:
                results[i] = _crashed(job, exc)
    assert all(r is not None for r in results)
    return results  # type: ignore[return-value]


def _crashed(job: _Job, exc: Exception) -> FileResult:
    detail = f"处理时出错：{type(exc).__name__}: {exc}"[:160]
    res = FileResult(job.path.name, _sha_or_blank(job.path), "rejected", source=str(job.path),
                     problems=[problem("file_unreadable", "", "", detail=detail)])
    write_feedback(job.path, res, job.staging, readable=False)
    return res


def _read(job: _Job) -> tuple[FileResult, Any]:
    from .workbook.read import read_workbook

    book = read_workbook(job.path)  # (a file it could not read is a problem of that file, not of the run)
    return FileResult(job.path.name, book.sha256 or _sha_or_blank(job.path), "rejected", source=str(job.path)), book


def _validations(books: list[Any], jobs: list[_Job]) -> list[Any]:
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


def _scores(branches: list[Any], job: _Job) -> list[tuple[Any, Any]]:
    """(period scores, half-year scores or None) per branch, all scored in one pass."""
    from .score import score_branches

    annual = score_branches(branches, job.rules, job.period)
    if job.period != "annual":
        return [(s, None) for s in annual]
    h1 = score_branches(branches, job.rules, "h1", detail=False)  # the annual results show the half-year totals
    return list(zip(annual, h1, strict=True))


def _render_branch(job: _Job, branch: Any, result: FileResult, scores: Any, h1: Any) -> None:
    from .render.branch import member_rows, records, render_notice, render_results

    folder = Path(BRANCHES) / safe_component(branch.info.name)
    label = PERIODS[job.period].label
    results_rel = folder / f"{safe_component(branch.info.name)}{branch.info.year}年{label}积分结果.xlsx"
    notice_rel = folder / f"{safe_component(branch.info.name)}{branch.info.year}年{label}积分公示.html"
    (job.staging / folder).mkdir(parents=True, exist_ok=True)
    members, ledger = member_rows(scores, h1), records(scores.ledger)
    render_results(job.staging / results_rel, branch, scores, job.rules, job.run_date, members, ledger)
    html = render_notice(branch, scores, job.rules, job.notice_start, job.contact)
    (job.staging / notice_rel).write_text(html, encoding="utf-8")
    result.status = "accepted"
    result.members = [{**m, "branch": branch.info.name} for m in members]
    result.ledger_rows = ledger_rows(branch.info.name, ledger)
    result.flags = len(scores.flags)
    result.email = branch.info.email
    result.outputs = [str(results_rel), str(notice_rel)]


def write_feedback(source: Path, result: FileResult, staging: Path, readable: bool, data: bytes | None = None) -> None:
    """The marked copy (when the file could be opened) and a plain problem list, in 问题反馈/; `data`: the file's
    bytes as they were checked, when the caller has them."""
    from .workbook.marked import problem_table_rows, write_marked_copy

    stem = safe_component(source.stem, "工作簿")
    folder = staging / FEEDBACK
    folder.mkdir(parents=True, exist_ok=True)
    outputs = []
    if readable:
        target = folder / f"{stem}_问题标注.xlsx"
        try:
            write_marked_copy(source, result.problems, target, data)
            outputs.append(str(Path(FEEDBACK) / target.name))
        except Exception:  # openpyxl could not rewrite it; the problem list still goes back
            pass
    lines = [f"文件：{source.name}", f"支部：{result.branch or '（未能识别）'}", ""]
    lines += [f"{i}. [{sev}] {sheet} {cell}：{msg}" for i, (sev, sheet, cell, msg) in
              enumerate(problem_table_rows(result.problems), start=1)]
    listing = folder / f"{stem}_问题清单.txt"
    listing.write_text("\ufeff" + "\r\n".join(lines) + "\r\n", encoding="utf-8")
    outputs.append(str(Path(FEEDBACK) / listing.name))
    result.outputs = outputs


# --- the registry ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegistryEntry:
    code: str
    name: str
    parent: str
    contact: str
    email: str


def read_registry(path: Path) -> dict[str, RegistryEntry]:
    """支部名录.xlsx: branch name -> entry. A registry that cannot be used stops the run (exit 2)."""
    from .workbook.read import clean_key, clean_name, clean_text

    try:
        from python_calamine import CalamineWorkbook

        wb = CalamineWorkbook.from_path(str(path))
        rows = wb.get_sheet_by_index(0).to_python(skip_empty_area=False, nrows=100_000)
    except Exception as exc:
        raise RunError(f"无法读取支部名录 {path}：{exc}") from exc
    if not rows:
        raise RunError(f"支部名录 {path} 是空的")
    header = [clean_key(h) if isinstance(h, str) else "" for h in rows[0]]
    wanted = {"支部编码": "code", "支部名称": "name", "上级党组织": "parent", "联系人": "contact", "联系邮箱": "email"}
    if "支部名称" not in header:
        raise RunError(f"支部名录 {path} 的第1行缺少「支部名称」列")
    idx = {key: header.index(h) for h, key in wanted.items() if h in header}
    out = {}
    for r in rows[1:]:
        def get(key: str, r: list[Any] = r) -> str:
            i = idx.get(key)
            v = r[i] if i is not None and i < len(r) else None
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            return (clean_text(str(v)) or "") if v not in (None, "") else ""
        name = get("name")
        if name:
            name = clean_name(name)
            out[name] = RegistryEntry(get("code"), name, get("parent"), get("contact"), get("email"))
    return out


# --- the run -----------------------------------------------------------------------------------------------------


def run_batch(options: RunOptions, progress: Callable[[str], None] | None = None) -> RunReport:
    """Process every file in INBOX and swap the complete outputs into OUT."""
    from .rules import load_rules

    inbox, out = Path(options.inbox), Path(options.out)
    if not inbox.is_dir():
        raise RunError(f"找不到收件文件夹 {inbox}，或它不是文件夹")
    try:
        entries = sorted(inbox.iterdir(), key=lambda p: p.name)
    except OSError as exc:
        raise RunError(f"无法读取收件文件夹 {inbox}：{exc.strerror or exc}") from exc
    from .jinja import use_templates

    workbooks = sum(classify(path)[0] == "process" for path in entries)
    # the workers start now, so that their imports overlap the checks below
    with _workers(options.jobs if workbooks > 1 else 1, options.templates) as pool:
        rules = load_rules(options.rules_path)
        registry = read_registry(options.registry) if options.registry else None
        if options.templates is not None and not Path(options.templates).is_dir():
            raise RunError(f"找不到模板文件夹 {options.templates}")
        use_templates(options.templates)
        problem_text = _submit(pool, _template_problem, options.templates).result()  # (a worker has them read)
        if problem_text:
            raise RunError(problem_text)
        out = out.resolve()
        if out == inbox.resolve() or inbox.resolve() in out.parents:
            raise RunError("输出文件夹不能在收件文件夹里面")
        recover_interrupted(out)
        staging = _make_staging(out)
        try:
            report = _run_into(staging, entries, options, rules, registry, progress, pool)
            report.out = out
            swap_in(staging, out)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return report


def _template_problem(templates: Path | None) -> str | None:
    """Why an output template cannot be used (a Chinese message), or None: read before any work is done."""
    from .jinja import template_path, use_templates
    from .render.branch import RESULTS_TEMPLATE
    from .render.town import SUMMARY_TEMPLATE
    from .render.xlsx_template import TemplateError, check_template

    use_templates(templates)
    for name in (RESULTS_TEMPLATE, SUMMARY_TEMPLATE):
        try:
            check_template(template_path(name))
        except TemplateError as exc:
            return str(exc)
    return None


def _make_staging(out: Path) -> Path:
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = out.parent / f".{out.name}.tmp-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        probe = staging / ".probe"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        raise RunError(f"无法在 {out.parent} 写入输出（{exc.strerror or exc}），请检查磁盘空间和写入权限") from exc
    return staging


def _run_into(staging: Path, entries: list[Path], options: RunOptions, rules: Rules,
              registry: dict[str, RegistryEntry] | None, progress: Callable[[str], None] | None,
              pool: ProcessPoolExecutor | None) -> RunReport:
    results: list[FileResult] = []
    jobs: list[_Job] = []
    notice_start = options.notice_start or options.run_date
    for path in entries:
        kind, reason = classify(path)
        if kind == "ignored":
            results.append(FileResult(path.name, _sha_or_blank(path), "ignored", reason=reason))
        elif kind == "old":
            res = FileResult(path.name, _sha_or_blank(path), "rejected", problems=[problem("file_old_xls", "", "")])
            write_feedback(path, res, staging, readable=False)
            results.append(res)
        else:
            jobs.append(_Job(path, staging, rules, options.period, options.year, options.run_date, notice_start,
                             options.contact, options.templates))
    return _finish(staging, results, jobs, options, rules, registry, progress, pool)


def _finish(staging: Path, results: list[FileResult], jobs: list[_Job], options: RunOptions, rules: Rules,
            registry: dict[str, RegistryEntry] | None, progress: Callable[[str], None] | None,
            pool: ProcessPoolExecutor | None) -> RunReport:
    started = time.perf_counter()
    processed = list(_map(jobs, pool, options.jobs, progress))
    workbooks_done = time.perf_counter()
    year = options.year or _common_year(processed)
    for res in processed:
        if res.status == "accepted" and year is not None and res.year != year:
            _reject(res, staging, problem("year_mismatch", "支部信息", "B3", res.year, year=year))
    _reject_duplicates(processed, staging)
    if registry is not None:
        for res in processed:
            if res.status == "accepted" and res.branch not in registry:
                _reject(res, staging, problem("branch_not_in_registry", "支部信息", "B2", res.branch))
    results += processed
    results.sort(key=lambda r: r.name)
    sent = {r.branch for r in results if r.branch and r.status != "ignored"}
    missing = sorted(n for n in registry if n not in sent) if registry else []
    previous = load_previous(Path(options.out).resolve())
    changes = compare_with_previous(previous, results)
    report = RunReport(Path(options.out), year, options.period, results, missing, changes)
    context = town_context(report, rules, options, previous)
    summary = _submit(pool, _write_summary, staging / "全镇汇总.xlsx", context, options.templates)
    messages = write_outbox(staging, results, registry, options, rules, year, pool)
    write_town_outputs(staging, report, context)  # while the workers write the summary and the messages
    list(messages)
    summary.result()
    outputs_done = time.perf_counter()
    carry_history(Path(options.out).resolve(), staging, previous)
    write_manifest(staging, report, rules, options, previous)
    report.seconds = {"workbooks": workbooks_done - started, "town outputs and mail": outputs_done - workbooks_done,
                      "history and manifest": time.perf_counter() - outputs_done}
    return report


def _sha_or_blank(path: Path) -> str:
    try:
        return sha256_file(path) if path.is_file() else ""
    except OSError:
        return ""


@contextmanager
def _workers(count: int, templates: Path | None = None) -> Iterator[ProcessPoolExecutor | None]:
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
    import gc

    # a worker allocates millions of short-lived objects (cells, rows, frames) and keeps little: the cycle
    # collector's first generation runs every 10,000 allocations instead of every 700 (about 5% of a worker's time)
    gc.set_threshold(10_000, *gc.get_threshold()[1:])
    try:
        from .render.branch import render_results  # noqa: F401  (pandas, XlsxWriter, Jinja)
        from .score import score_branches  # noqa: F401
        from .validate import validate_workbooks  # noqa: F401  (pandera)

        _template_problem(templates)  # (a problem is reported by the main process, which asks for it)
    except Exception:  # whatever it is, the work that needs it reports it
        pass


def _ready() -> None:
    """Nothing: a task that makes the pool start a worker."""


def _submit(pool: ProcessPoolExecutor | None, fn: Callable[..., Any], *args: Any) -> Future:
    """`fn(*args)` in a worker, or here and now when there are none."""
    if pool is not None:
        return pool.submit(fn, *args)
    done: Future = Future()
    done.set_result(fn(*args))
    return done


def _map(jobs: list[_Job], pool: ProcessPoolExecutor | None, workers: int,
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


def _common_year(results: list[FileResult]) -> int | None:
    years = Counter(r.year for r in results if r.status == "accepted" and r.year is not None)
    if not years:
        years = Counter(r.year for r in results if r.year is not None)
    if not years:
        return None
    top = max(years.values())
    return max(y for y, n in years.items() if n == top)  # on a tie, the later year


def _reject(res: FileResult, staging: Path, why: Problem) -> None:
    for rel in res.outputs:
        (staging / rel).unlink(missing_ok=True)
    if res.outputs:
        folder = (staging / res.outputs[0]).parent
        if folder.exists() and not any(folder.iterdir()):
            folder.rmdir()
    res.status = "rejected"
    res.problems = sorted([why, *res.problems], key=sort_key)
    res.members, res.ledger_rows, res.outputs = [], b"", []
    write_feedback(Path(res.source), res, staging, readable=True)


def _reject_duplicates(results: list[FileResult], staging: Path) -> None:
    by_branch: dict[str, list[FileResult]] = {}
    for res in results:
        if res.branch and res.status != "ignored" and not any(p.code.startswith("file_") for p in res.problems):
            by_branch.setdefault(res.branch, []).append(res)
    for branch, group in by_branch.items():
        if len(group) < 2:
            continue
        for res in group:
            others = "、".join(o.name for o in group if o is not res)
            _reject(res, staging, problem("file_duplicate_branch", "支部信息", "B2", branch, detail=others))


# --- outputs for the town --------------------------------------------------------------------------------------


def all_members(report: RunReport) -> list[dict[str, Any]]:
    return [m for f in report.files if f.status == "accepted" for m in f.members]


def branch_rows(report: RunReport) -> list[dict[str, Any]]:
    rows = []
    for f in report.files:
        if f.status == "ignored":
            continue
        if f.status == "accepted":
            ms = f.members
            scored = [m for m in ms if not m["exempt"]]
            totals = [m["total"] for m in scored]
            rows.append({
                "name": f.branch, "status": "通过", "members": len(ms), "scored": len(scored),
                "exempt": len(ms) - len(scored),
                "excellent": sum(m["grade"] == "优秀" for m in scored),
                "passed": sum(m["grade"] == "合格" for m in scored),
                "failed": sum(m["grade"] == "不合格" for m in scored),
                "average": round(sum(totals) / len(totals), 1) if totals else None,
                "note": f"{f.flags}处需复核" if f.flags else "",
            })
        else:
            rows.append({"name": f.branch or f.name, "status": "退回", "members": None, "scored": None,
                         "exempt": None, "excellent": None, "passed": None, "failed": None, "average": None,
                         "note": f"{f.errors}处错误，已退回修改（文件 {f.name}）"})
    rows += [{"name": n, "status": "未报送", "members": None, "scored": None, "exempt": None, "excellent": None,
              "passed": None, "failed": None, "average": None, "note": "未收到工作簿"} for n in report.missing]
    return rows


def town_context(report: RunReport, rules: Rules, options: RunOptions, previous: dict[str, Any]) -> dict[str, Any]:
    members = all_members(report)
    scored = [m for m in members if not m["exempt"]]
    grade_counts = [(g, sum(m["grade"] == g for m in members)) for g in ("优秀", "合格", "不合格", "免于积分管理")]
    return {
        "year": report.year,
        "period": PERIODS[report.period],
        "run_date": options.run_date.isoformat(),
        "rules_name": rules.name,
        "branches": branch_rows(report),
        "members": members,
        "failed": [m for m in scored if m["grade"] == "不合格"],
        "excellent": [m for m in scored if m["grade"] == "优秀"],
        "grade_counts": grade_counts,
        "counts": {
            "files": len(report.files), "accepted": report.count("accepted"), "rejected": report.count("rejected"),
            "ignored": report.count("ignored"), "missing": len(report.missing), "scored": len(scored),
        },
        "changes": report.changes,
        "previous_run": previous.get("run_at", ""),
        "problem_files": [
            {"name": f.name, "branch": f.branch, "errors": f.errors,
             "first": next((p.message for p in f.problems if p.is_error), "")}
            for f in report.files if f.status == "rejected"
        ],
        "ignored_files": [{"name": f.name, "reason": f.reason} for f in report.files if f.status == "ignored"],
    }


def write_town_outputs(staging: Path, report: RunReport, context: dict[str, Any]) -> None:
    """scores.csv, ledger.csv and index.html (全镇汇总.xlsx is written by `_write_summary`, in a worker)."""
    from .render.town import render_index, scores_csv

    atomic_write_bytes(staging / "scores.csv", scores_csv(all_members(report)))
    atomic_save(staging / "ledger.csv", lambda tmp: write_ledger_csv(Path(tmp), report))
    atomic_write_text(staging / "index.html", render_index(context))


def _write_summary(target: Path, context: dict[str, Any], templates: Path | None) -> None:
    from .jinja import use_templates
    from .render.town import render_summary

    use_templates(templates)
    render_summary(target, context)


LEDGER_CSV_COLUMNS = ["branch", "seq", "name", "part", "item", "sheet", "row", "cell", "raw", "multiplier",
                      "points", "note"]


def ledger_rows(branch: str, entries: Any) -> bytes:
    """One branch's rows of ledger.csv (no header), as the CSV bytes they will be written as; `entries` are the
    ledger's records (render.branch.Records, or dicts)."""
    import csv
    import io

    from .render.town import inert
    from .workbook.values import map_distinct

    def text(v: Any) -> str:
        if v is None:
            return ""
        if isinstance(v, str):
            return inert(v)
        return _fmt(v)

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    n = len(entries)
    by_column = getattr(entries, "columns", None)  # render.branch.Records
    if by_column is None:
        by_column = {c: [e.get(c) for e in entries] for c in LEDGER_CSV_COLUMNS[1:]}
    # each distinct value formatted once: a ledger repeats its names, items and numbers
    columns = [map_distinct(by_column[c], text) if c in by_column else [""] * n for c in LEDGER_CSV_COLUMNS[1:]]
    w.writerows(zip([text(branch)] * n, *columns, strict=True))
    return buf.getvalue().encode("utf-8")


def write_ledger_csv(path: Path, report: RunReport) -> None:
    """Every branch's ledger in one file: what the next run compares against to say why a total changed.

    Written branch by branch: a county's ledger is a million rows, and it is never held whole in memory."""
    with path.open("wb") as fh:
        fh.write(("\ufeff" + ",".join(LEDGER_CSV_COLUMNS) + "\r\n").encode("utf-8"))
        for f in report.files:
            if f.status == "accepted":
                fh.write(f.ledger_rows)


def _parse_ledger(data: bytes | str) -> list[dict[str, str]]:
    import csv
    import io

    text = data.decode("utf-8") if isinstance(data, bytes) else data
    return list(csv.DictReader(io.StringIO(text), fieldnames=LEDGER_CSV_COLUMNS))


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4f}".rstrip("0").rstrip(".")
    return str(v)


# --- the outbox ------------------------------------------------------------------------------------------------


def write_outbox(staging: Path, results: list[FileResult], registry: dict[str, RegistryEntry] | None,
                 options: RunOptions, rules: Rules, year: int | None,
                 pool: ProcessPoolExecutor | None = None) -> Iterator[None]:
    """A message per workbook in 发件箱/; built in the workers when there are some (base64 of the attachments).
    Returns at once with the workers' results to wait for: exhaust it (it raises what a worker raised)."""
    tasks = []
    folder = staging / OUTBOX
    folder.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    for res in results:
        if res.status == "ignored":
            continue
        to = None
        if registry is not None and res.branch in registry and registry[res.branch].email:
            to = registry[res.branch].email
        elif options.trust_workbook_addresses and res.email:
            to = res.email
        attachments = [staging / rel for rel in res.outputs if not rel.endswith(".txt")]
        names = [p.name for p in attachments]
        context = {
            "accepted": res.status == "accepted", "branch": res.branch, "file": res.name, "year": res.year or year,
            "period": PERIODS[options.period].label, "days": rules.notice_days, "flags": res.flags,
            "results_name": names[0] if res.status == "accepted" and names else "",
            "notice_name": names[1] if res.status == "accepted" and len(names) > 1 else "",
            "marked_name": names[0] if res.status != "accepted" and names else "",
            "errors": res.errors,
            "problems": [f"{p.sheet} {p.cell}：{p.message}".strip() for p in res.problems if p.is_error][:50],
        }
        base = safe_component(res.branch or Path(res.name).stem, "工作簿")
        name = base
        n = 2
        while name in used:
            name, n = f"{base}_{n}", n + 1
        used.add(name)
        tasks.append((folder / f"{name}.eml", context, attachments, to, options.sender,
                      {"X-Pointsbatch-Source-SHA256": res.sha256}, options.templates))
    if pool is not None and len(tasks) > 1:
        return pool.map(_write_message, tasks, chunksize=max(1, min(16, len(tasks) // 8)))
    for task in tasks:
        _write_message(task)
    return iter(())


def _write_message(task: tuple) -> None:
    from .jinja import use_templates
    from .render.message import build_message

    target, context, attachments, to, sender, headers, templates = task
    use_templates(templates)
    atomic_write_bytes(target, build_message(context, attachments, to, sender=sender, headers=headers))


# --- history, changes and the manifest ---------------------------------------------------------------------------


def load_previous(out: Path) -> dict[str, Any]:
    """The previous run's manifest, scores and ledger (empty when there was none)."""
    import csv

    manifest = out / "run.json"
    if not manifest.exists():
        return {}
    try:
        prev = json.loads(manifest.read_text(encoding="utf-8"))
        with (out / "scores.csv").open(encoding="utf-8-sig", newline="") as fh:
            prev["scores"] = list(csv.DictReader(fh))
        ledger = out / "ledger.csv"
        prev["ledger_path"] = ledger if ledger.exists() else None
    except (OSError, ValueError):
        return {}
    prev["dir"] = out
    return prev


def compare_with_previous(previous: dict[str, Any], results: list[FileResult]) -> list[dict[str, Any]]:
    """Each member whose total changed since the previous run: old and new total and the ledger rows that differ."""
    if not previous:
        return []
    old = {(r["支部名称"].lstrip("'"), r["序号"], r["姓名"].lstrip("'")): r["总分"] for r in previous.get("scores", [])}
    changed = []
    for f in results:
        if f.status != "accepted":
            continue
        for m in f.members:
            key = (m["branch"], str(m["seq"]), m["name"])
            new_total = "" if m["total"] is None else f"{float(m['total']):.1f}"
            if key in old and old[key] != new_total:
                changed.append((f, m, old[key]))
    if not changed:
        return []
    # only now read the ledgers, and only the rows of the members whose totals changed
    wanted = {(m["branch"], str(m["seq"])) for _f, m, _old in changed}
    old_ledger: dict[tuple, set] = {}
    path = previous.get("ledger_path")
    if path is not None:
        import csv

        with open(path, encoding="utf-8-sig", newline="") as fh:
            next(fh, None)  # the header
            for e in csv.DictReader(fh, fieldnames=LEDGER_CSV_COLUMNS):  # row by row: a county's is large
                ref = (e["branch"].lstrip("'"), e["seq"])
                if ref in wanted:
                    old_ledger.setdefault(ref, set()).add(_ledger_key(e))
    new_ledger: dict[tuple, set] = {}
    for f in {id(f): f for f, _m, _o in changed}.values():
        for e in _parse_ledger(f.ledger_rows):
            ref = (e["branch"].lstrip("'"), e["seq"])
            if ref in wanted:
                new_ledger.setdefault(ref, set()).add(_ledger_key(e))
    changes = []
    for _f, m, old_total in changed:
        lk = (m["branch"], str(m["seq"]))
        before, after = old_ledger.get(lk, set()), new_ledger.get(lk, set())
        reasons = [f"删除：{_describe(e)}" for e in sorted(before - after)]
        reasons += [f"新增：{_describe(e)}" for e in sorted(after - before)]
        changes.append({
            "branch": m["branch"], "seq": m["seq"], "name": m["name"],
            "old_total": float(old_total) if old_total else None, "new_total": m["total"],
            "reasons": reasons or ["积分规则或计分期间不同"],
        })
    return changes


def _ledger_key(e: dict[str, Any]) -> tuple:
    return tuple(str(e.get(c, "")).lstrip("'") for c in ("part", "item", "sheet", "cell", "raw", "multiplier", "points", "note"))


def _describe(key: tuple) -> str:
    part, item, sheet, cell, _raw, _mult, points, note = key
    where = f"（{sheet}{cell}）" if sheet else ""
    return f"{part}·{item} {points}分{where}{('，' + note) if note else ''}"


def carry_history(out: Path, staging: Path, previous: dict[str, Any]) -> None:
    """The previous scores move under 历史/<its run time>/, after the history it already had."""
    old_history = out / HISTORY
    new_history = staging / HISTORY
    if (out / SENT_LOG).exists():  # what `send` already mailed stays known, so nothing goes twice
        shutil.copy2(out / SENT_LOG, staging / SENT_LOG)
    if old_history.is_dir():
        shutil.copytree(old_history, new_history, dirs_exist_ok=True)
    if previous:
        stamp = safe_component(str(previous.get("run_at", "上次")).replace(":", ""), "上次")
        target = new_history / stamp
        target.mkdir(parents=True, exist_ok=True)
        for name in ("scores.csv", "ledger.csv", "run.json"):
            if (out / name).exists():
                shutil.copy2(out / name, target / name)


def write_manifest(staging: Path, report: RunReport, rules: Rules, options: RunOptions,
                   previous: dict[str, Any]) -> None:
    outputs = []
    for path in sorted(staging.rglob("*")):
        if path.is_file() and path.name != "run.json":
            outputs.append({"path": path.relative_to(staging).as_posix(), "sha256": sha256_file(path)})
    manifest = {
        "tool": "pointsbatch",
        "run_at": options.run_at.isoformat(),
        "run_date": options.run_date.isoformat(),
        "year": report.year,
        "period": report.period,
        "rules": {"name": rules.name, "sha256": rules.digest, "file": str(options.rules_path or "内置规则")},
        "counts": {s: report.count(s) for s in ("accepted", "rejected", "ignored")} | {"missing": len(report.missing)},
        "files": [
            {
                "name": f.name, "sha256": f.sha256, "branch": f.branch, "status": f.status,
                **({"reason": f.reason} if f.reason else {}),
                "problems": [
                    {"severity": p.severity, "code": p.code, "sheet": p.sheet, "cell": p.cell, "value": p.value,
                     "message": p.message} for p in f.problems
                ],
                "outputs": f.outputs,
            }
            for f in report.files
        ],
        "missing": report.missing,
        "changes": report.changes,
        "previous_run": previous.get("run_at"),
        "outputs": outputs,
    }
    atomic_write_text(staging / "run.json", json.dumps(manifest, ensure_ascii=False, indent=2, default=str))


# --- swapping OUT ----------------------------------------------------------------------------------------------


def _old_name(out: Path) -> Path:
    return out.parent / f".{out.name}.old"


def recover_interrupted(out: Path) -> None:
    """If a run was killed between its two renames, put the previous complete OUT back."""
    old = _old_name(out)
    if old.exists() and not out.exists():
        os.replace(old, out)
    elif old.exists():
        shutil.rmtree(old, ignore_errors=True)
    # a staging folder left by a killed run; by age, since probing a process id is not portable (on Windows
    # os.kill would end the process)
    for stale in out.parent.glob(f".{out.name}.tmp-*"):
        try:
            old_enough = time.time() - stale.stat().st_mtime > STALE_STAGING_SECONDS
        except OSError:
            continue
        if old_enough:
            shutil.rmtree(stale, ignore_errors=True)


def swap_in(staging: Path, out: Path) -> None:
    """Replace OUT by the complete staging folder: OUT is the old run or the new one, never a mixture."""
    old = _old_name(out)
    if out.exists():
        os.replace(out, old)
    os.replace(staging, out)
    shutil.rmtree(old, ignore_errors=True)
