"""The batch: a folder of branch workbooks in, every output of OUTPUTS.md out.

Each workbook goes read → validate → score → render on its own (in worker processes with --jobs); the whole run
is built in a staging folder beside OUT and swapped in only once complete, so OUT is always either the previous
complete run or the new one.
"""

from __future__ import annotations

import os
import shutil
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from .files import recover_interrupted, safe_component, sha256_or_blank, swap_in
from .history import carry_history, compare_with_previous, load_previous, write_manifest
from .model import FileResult, RunError, RunOptions, RunReport
from .problems import Problem, sort_key
from .registry import RegistryEntry, read_registry
from .render.feedback import write_feedback
from .render.message import write_outbox
from .render.town import town_context, write_summary, write_town_outputs
from .rules import Rules
from .workbook.messages import problem
from .workers import Job, map_chunks, start_workers, submit, template_problem

__all__ = ["FileResult", "RunError", "RunOptions", "RunReport", "run_batch", "safe_component"]


WORKBOOK_SUFFIXES = {".xlsx", ".xlsm"}
OLD_SUFFIXES = {".xls", ".et"}


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
    with start_workers(options.jobs if workbooks > 1 else 1, options.templates) as pool:
        rules = load_rules(options.rules_path)
        registry = read_registry(options.registry) if options.registry else None
        if options.templates is not None and not Path(options.templates).is_dir():
            raise RunError(f"找不到模板文件夹 {options.templates}")
        use_templates(options.templates)
        problem_text = submit(pool, template_problem, options.templates).result()  # (a worker has them read)
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
    jobs: list[Job] = []
    notice_start = options.notice_start or options.run_date
    for path in entries:
        kind, reason = classify(path)
        if kind == "ignored":
            results.append(FileResult(path.name, sha256_or_blank(path), "ignored", reason=reason))
        elif kind == "old":
            res = FileResult(path.name, sha256_or_blank(path), "rejected", problems=[problem("file_old_xls", "", "")])
            write_feedback(path, res, staging, readable=False)
            results.append(res)
        else:
            jobs.append(Job(path, staging, rules, options.period, options.year, options.run_date, notice_start,
                             options.contact, options.templates))
    return _finish(staging, results, jobs, options, rules, registry, progress, pool)


def _finish(staging: Path, results: list[FileResult], jobs: list[Job], options: RunOptions, rules: Rules,
            registry: dict[str, RegistryEntry] | None, progress: Callable[[str], None] | None,
            pool: ProcessPoolExecutor | None) -> RunReport:
    started = time.perf_counter()
    processed = list(map_chunks(jobs, pool, options.jobs, progress))
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
    summary = submit(pool, write_summary, staging / "全镇汇总.xlsx", context, options.templates)
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
