"""The batch: a folder of branch workbooks in, every output of OUTPUTS.md out.

Each workbook goes read → validate → score → render on its own (in worker processes with --jobs); the whole run
is built in a staging folder beside OUT and swapped in only once complete, so OUT is always either the previous
complete run or the new one.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from .display import printable
from .files import safe_component, sha256_or_blank
from .history import (
    HistoryMoves,
    carry_sent_log,
    compare_with_previous,
    load_previous,
    note_changes_since_first,
    plan_history,
    write_manifest,
)
from .model import FileResult, RunError, RunOptions, RunReport
from .names import RESULTS, SETTINGS_FILE, period_title
from .outdir import (
    SLOTS,
    check_apart,
    check_claim,
    clear_stale,
    digest_for_manifest,
    discard_staging,
    make_staging,
    place,
    prepare_container,
    read_claim,
    recover_interrupted,
    swap_in,
    write_claim,
)
from .parts import PARTS
from .people import same_person_in_two_branches
from .problems import Problem, sort_key
from .recipients import held_feedback, other_branch_named
from .registry import RegistryEntry, read_registry
from .render.feedback import write_feedback
from .render.message import write_outbox
from .render.town import town_context, write_summary, write_town_outputs
from .rules import Rules
from .workbook.messages import NOTICE_CODES, problem
from .workers import Job, map_chunks, start_workers, submit, template_problem

__all__ = ["FileResult", "RunError", "RunOptions", "RunReport", "run_batch", "safe_component"]


WORKBOOK_SUFFIXES = {".xlsx", ".xlsm"}
OLD_SUFFIXES = {".xls", ".et"}


def _inside(link: Path, folder: Path) -> bool:
    """Whether a link in INBOX leads to a file inside it (a loop of links leads nowhere)."""
    try:
        target, folder = link.resolve(), folder.resolve()
    except (OSError, RuntimeError):
        return False
    return folder == target or folder in target.parents


def classify(path: Path) -> tuple[str, str]:
    """('process' | 'ignored' | 'old', reason) for a file found in INBOX."""
    name = path.name
    if name.startswith("~$") or name.startswith(".~"):
        return "ignored", "Excel/WPS 打开工作簿时产生的临时锁定文件"
    if name.startswith("."):
        return "ignored", "隐藏文件"
    if path.is_symlink() and not _inside(path, path.parent):
        return "ignored", "链接指向收件文件夹以外的文件，未读取；请把文件本身放进收件文件夹"
    if not path.is_file():
        return "ignored", "不是普通文件"
    suffix = path.suffix.lower()
    if suffix in OLD_SUFFIXES:
        return "old", ""
    if suffix not in WORKBOOK_SUFFIXES:
        return "ignored", "不是Excel工作簿（.xlsx）"
    return "process", ""


def run_batch(options: RunOptions, progress: Callable[[str], None] | None = None) -> RunReport:
    """Process every file in INBOX and swap the complete outputs into OUT."""
    from .rules import load_rules

    inbox = Path(options.inbox)
    if not inbox.is_dir():
        raise RunError(f"找不到收件文件夹 {inbox}，或它不是文件夹")
    try:
        entries = sorted(inbox.iterdir(), key=lambda p: p.name)
    except OSError as exc:
        raise RunError(f"无法读取收件文件夹 {inbox}：{exc.strerror or exc}") from exc
    kinds = [classify(path)[0] for path in entries]
    explicit = Path(options.out).resolve() if options.out is not None else None
    container = explicit.parent if explicit is not None else Path(RESULTS).resolve()
    inputs = _inputs(options)
    if explicit is not None:
        check_apart(explicit, inputs)
    from .lock import Busy, hold_folder

    # the workers start now, so that their imports overlap the checks below
    with start_workers(options.jobs if kinds.count("process") > 1 else 1, options.templates) as pool:
        rules = load_rules(options.rules_path)
        registry = read_registry(options.registry) if options.registry else None
        if options.templates is not None and not Path(options.templates).is_dir():
            raise RunError(f"找不到模板文件夹 {options.templates}")
        problem_text = submit(pool, template_problem, options.templates).result()  # (a worker has them read)
        if problem_text:
            raise RunError(problem_text)
        if not any(kind in ("process", "old") for kind in kinds):
            raise RunError(f"收件文件夹 {inbox} 中没有工作簿（.xlsx）：没有计分，上次的结果保持不变。"
                           "请把各支部的工作簿放进去后再运行。")
        prepare_container(container)
        try:
            with hold_folder(container, shown=explicit or container):
                report = _run_locked(entries, explicit, container, inputs, options, rules, registry, progress, pool)
        except Busy as exc:
            raise RunError(str(exc)) from None
    return report


def _run_locked(entries: list[Path], explicit: Path | None, container: Path, inputs: dict[str, Path | None],
                options: RunOptions, rules: Rules, registry: dict[str, RegistryEntry] | None,
                progress: Callable[[str], None] | None, pool: ProcessPoolExecutor | None) -> RunReport:
    """The run proper, with the lock on OUT's folder held: no other run or send can touch OUT meanwhile."""
    if explicit is not None:  # refused before any work: a folder that is not the batch's, or another period's
        recover_interrupted(explicit)
        check_claim(explicit, read_claim(explicit), options.year, options.period)
    clear_stale(container)
    staging = make_staging(container)
    try:
        started = time.perf_counter()
        processed, year = _process(staging, entries, options, rules, registry, progress, pool)
        workbooks_done = time.perf_counter()
        out = explicit or container / period_title(_fallback_year(year, options), options.period)
        if explicit is None:
            check_apart(out, inputs)
            recover_interrupted(out)
        check_claim(out, read_claim(out), year, options.period)
        report, history = _finish(staging, out, processed, year, options, rules, registry, pool)
        report.seconds["workbooks"] = workbooks_done - started
        report.kept = swap_in(staging, out, _previous_outputs(out), history.spare, history.moves)
    except BaseException:
        discard_staging(staging)  # (unless a swap that failed could not give back what it had moved there)
        raise
    return report


def _inputs(options: RunOptions) -> dict[str, Path | None]:
    """What the run reads, by the name a clerk knows it by: none of it may lie inside OUT."""
    settings = Path(SETTINGS_FILE)
    return {"收件文件夹": options.inbox, "支部名录": options.registry, "规则文件": options.rules_path,
            "模板文件夹": options.templates, "设置文件": settings if settings.exists() else None}


def _fallback_year(year: int | None, options: RunOptions) -> int:
    """The year for OUT's name when no workbook told it (every one unreadable): the year being assessed on the run
    date (an annual run in January-June is for the year before)."""
    if year is not None:
        return year
    if options.period == "annual" and options.run_date.month <= 6:
        return options.run_date.year - 1
    return options.run_date.year


def _process(staging: Path, entries: list[Path], options: RunOptions, rules: Rules,
             registry: dict[str, RegistryEntry] | None, progress: Callable[[str], None] | None,
             pool: ProcessPoolExecutor | None) -> tuple[list[FileResult], int | None]:
    """Every file's result, each workbook's outputs in its own slot of staging; and the run's year."""
    results: list[FileResult] = []
    jobs: list[Job] = []
    notice_start = options.notice_start or options.run_date
    slots = staging / SLOTS
    for n, path in enumerate(entries):
        kind, reason = classify(path)
        slot = slots / str(n)
        if kind == "ignored":
            results.append(FileResult(printable(path.name), "", "ignored", reason=reason, source=str(path)))
        elif kind == "old":
            res = FileResult(printable(path.name), sha256_or_blank(path), "rejected", problems=[problem("file_old_xls", "", "")],
                             slot=slot)
            write_feedback(path, res, slot, readable=False, run_at=options.run_at)
            results.append(res)
        else:
            jobs.append(Job(path, slot, rules, options.period, options.year, options.run_date, options.run_at,
                            notice_start, options.contact, parts=staging / PARTS, templates=options.templates))
    processed = list(map_chunks(jobs, pool, options.jobs, progress))
    for res, job in zip(processed, jobs, strict=True):
        res.slot = job.staging
    year = options.year or _common_year(processed)
    for res in processed:
        if res.status == "accepted" and year is not None and res.year != year:
            _reject(res, problem("year_mismatch", "支部信息", res.cells.get("year", ""), res.year, year=year),
                    options.run_at)
    _reject_duplicates(processed, options.run_at)
    if registry is not None:
        for res in processed:
            other = other_branch_named(res.name, res.branch or "", registry) if res.status == "accepted" else None
            if other is not None:  # a branch filled in on another's workbook: whose members are these?
                _reject(res, problem("file_names_other_branch", "支部信息", res.cells.get("branch", ""), res.branch,
                                     file=res.name, other=other), options.run_at)
            if res.status == "accepted" and res.branch not in registry:
                _reject(res, problem("branch_not_in_registry", "支部信息", res.cells.get("branch", ""), res.branch),
                        options.run_at)
    results += processed
    results.sort(key=lambda r: r.name)
    taken: set[str] = set()
    for res in results:  # in name order, so the same inbox always gives the same names
        if res.outputs and res.slot is not None:
            res.outputs = place(res.slot, staging, res.outputs, taken)
    shutil.rmtree(slots, ignore_errors=True)
    return results, year


def _finish(staging: Path, out: Path, results: list[FileResult], year: int | None, options: RunOptions,
            rules: Rules, registry: dict[str, RegistryEntry] | None,
            pool: ProcessPoolExecutor | None) -> tuple[RunReport, HistoryMoves]:
    """The town's outputs, the mail and run.json in staging; and what of OUT the swap moves under 历史/."""
    started = time.perf_counter()
    for res in results:
        if res.status == "ignored":
            res.sha256 = _ignored_digest(res)
    sent = {r.branch for r in results if r.branch and r.status != "ignored"}
    missing = sorted(n for n in registry if n not in sent) if registry else []
    previous = load_previous(out, year, options.period)
    report = RunReport(out, year, options.period, results, missing, compare_with_previous(previous, results),
                       mail_held=held_feedback(results, registry),
                       same_people=same_person_in_two_branches(
                           (r.branch or r.name, r.people) for r in results if r.status == "accepted"))
    note_changes_since_first(report, previous)
    context = town_context(report, rules, options, previous)
    summary = submit(pool, write_summary, staging / "全镇汇总.xlsx", context, options.templates)
    messages = write_outbox(staging, results, registry, options, rules, year, pool, report.changes_since_first)
    write_town_outputs(staging, report, context, options.templates)  # while the workers write the summary and mail
    list(messages)
    summary.result()
    shutil.rmtree(staging / PARTS, ignore_errors=True)  # every row is in the town's files now
    outputs_done = time.perf_counter()
    history = plan_history(out, previous)
    report.history_folder = history.folder
    carry_sent_log(out, staging)
    write_claim(staging, year, options.period)
    write_manifest(staging, report, rules, options, previous, history.files(out))
    report.seconds = {"town outputs and mail": outputs_done - started,
                      "history and manifest": time.perf_counter() - outputs_done}
    return report, history


def _ignored_digest(res: FileResult) -> str:
    """An ignored file is hashed for run.json only when it is a plain file of INBOX's own: never through a link
    (it may point anywhere), a pipe or a device (reading those may never end); a huge one over its first MiB only
    (run.json says so)."""
    import stat

    try:
        if not stat.S_ISREG(os.lstat(res.source).st_mode):
            return ""
        digest = digest_for_manifest(Path(res.source))
    except OSError:
        return ""
    if digest["sha256"]:
        return digest["sha256"]
    res.reason += f"（文件有 {digest['size']} 字节，只计算了前 1 MiB 的 SHA-256：{digest['sha256_first_mib']}）"
    return ""


def _previous_outputs(out: Path) -> dict[str, str]:
    """The files the previous run in OUT wrote, with their digests (from its run.json; empty if unreadable)."""
    listed = _last_run(out).get("outputs")
    if not isinstance(listed, list):
        return {}
    return {o["path"]: o["sha256"] for o in listed
            if isinstance(o, dict) and isinstance(o.get("path"), str) and isinstance(o.get("sha256"), str)}


def _last_run(out: Path) -> dict:
    import json

    try:
        doc = json.loads((out / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _common_year(results: list[FileResult]) -> int | None:
    years = Counter(r.year for r in results if r.status == "accepted" and r.year is not None)
    if not years:
        years = Counter(r.year for r in results if r.year is not None)
    if not years:
        return None
    top = max(years.values())
    return max(y for y, n in years.items() if n == top)  # on a tie, the later year


def _reject(res: FileResult, why: Problem, run_at: dt.datetime) -> None:
    """Reject a workbook the workers accepted: its results go, a marked copy takes their place (in its slot)."""
    assert res.slot is not None
    shutil.rmtree(res.slot, ignore_errors=True)
    res.status = "rejected"
    kept = [p for p in res.problems if p.code not in NOTICE_CODES]  # no notice now: nothing to say about its dates
    res.problems = sorted([why, *kept], key=sort_key)
    res.counts, res.parts, res.outputs = None, {}, []
    write_feedback(Path(res.source), res, res.slot, readable=True, run_at=run_at)


def _reject_duplicates(results: list[FileResult], run_at: dt.datetime) -> None:
    by_branch: dict[str, list[FileResult]] = {}
    for res in results:
        if res.branch and res.status != "ignored" and not any(p.scope == "file" for p in res.problems):
            by_branch.setdefault(res.branch, []).append(res)
    for branch, group in by_branch.items():
        if len(group) < 2:
            continue
        for res in group:
            others = "、".join(o.name for o in group if o is not res)
            _reject(res, problem("file_duplicate_branch", "支部信息", res.cells.get("branch", ""), branch,
                                 detail=others), run_at)
