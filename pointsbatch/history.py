"""What a run keeps for the next: ledger.csv, the previous run read back, the changes since, 历史/, run.json."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from .files import atomic_write_text, safe_component, sha256_file
from .model import FileResult, RunOptions, RunReport
from .names import BRANCHES, HISTORY, SENT_LOG
from .parts import LEDGER, MARKS, MEMBERS, member_dicts, read_part
from .rules import Rules
from .workbook import spec

LEDGER_CSV_COLUMNS = ["branch", "seq", "name", "part", "item", "sheet", "row", "cell", "raw", "multiplier",
                      "points", "note", "date", "code"]  # code: what the row is (score.BASE_ATTENDED, ...), last


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


LEDGER_HEADER = ("\ufeff" + ",".join(LEDGER_CSV_COLUMNS) + "\r\n").encode("utf-8")


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


MARKS_CSV_COLUMNS = ["branch", "seq", *(e.header for e in spec.GRID_EVENTS)]
MARKS_HEADER = ("\ufeff" + ",".join(MARKS_CSV_COLUMNS) + "\r\n").encode("utf-8")
_SYMBOLS = {code: symbol for symbol, code in spec.MARK_CODES.items()}


def marks_rows(branch: str, attendance: Any, last_month: int) -> bytes:
    """One branch's rows of marks.csv (no header): each member's mark at every event of the period, so that the
    next run can say "活动日3月 由「假」改为「√」" rather than name cells."""
    import csv
    import io

    import numpy as np
    import pandas as pd

    from .render.town import inert
    from .workbook.values import map_distinct

    att = attendance[attendance["month"] <= last_month]
    if not len(att):
        return b""
    # a member a row, an event a column, placed by position (a pivot costs ten times as much)
    members, seqs = pd.factorize(att["seq"], sort=True)
    column = {event: i for i, event in enumerate(MARKS_CSV_COLUMNS[2:])}
    grid = np.full((len(seqs), len(column)), "", dtype=object)
    events = np.fromiter(map_distinct(att["event"].tolist(), column.__getitem__), dtype=int, count=len(att))
    grid[members, events] = map_distinct(att["mark"].tolist(), lambda code: _SYMBOLS.get(code, ""))
    buf = io.StringIO()
    name = inert(branch)
    csv.writer(buf, lineterminator="\r\n").writerows([name, seq, *row] for seq, row in zip(seqs.tolist(),
                                                                                             grid.tolist(),
                                                                                             strict=True))
    return buf.getvalue().encode("utf-8")


def load_previous(out: Path, year: int | None = None, period: str | None = None) -> dict[str, Any]:
    """The previous run's manifest, scores, ledger and marks (empty when there was none), and under "first" the
    first run of this year and period kept in 历史/ (the scores first posted).

    A file a clerk edited or deleted costs only what it held: "notes" says, in Chinese, what could not be read."""
    previous = _load_run(out)
    if not previous:
        return {}
    if year is not None and period is not None:
        previous["first"] = _first_run(out, year, period, previous)
    return previous


def _load_run(folder: Path) -> dict[str, Any]:
    """One run's files as `load_previous` describes them; {} when the folder holds no run at all."""
    manifest, scores = folder / "run.json", folder / "scores.csv"
    if not manifest.exists() and not scores.exists():
        return {}
    notes: list[str] = []
    prev: dict[str, Any] = {}
    if not manifest.exists():
        notes.append("上次结果中的 run.json 已被删除：不知道上次计分的时间和期间")
    else:
        try:
            loaded = json.loads(manifest.read_text(encoding="utf-8"))
            if not isinstance(loaded, dict):
                raise ValueError("not an object")
            # what is compared and named (not its list of files and outputs: a county's run.json is megabytes)
            prev = {key: loaded[key] for key in ("tool", "year", "period", "run_at", "first_run") if key in loaded}
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            notes.append(f"上次结果中的 run.json 已损坏（{type(exc).__name__}），无法读取：不知道上次计分的时间和期间")
    prev["scores"] = _read_scores(scores, notes)
    for key, name, what in (("ledger_path", "ledger.csv", "变化原因中的激励分、扣分和一票否决"),
                            ("marks_path", "marks.csv", "变化原因中的考勤")):
        path = folder / name
        prev[key] = path if path.exists() else None
        if prev[key] is None and prev["scores"] is not None:
            notes.append(f"上次结果中没有 {name}：无法列出{what}")
    prev["dir"] = folder
    prev["notes"] = notes
    return prev


class ScoresFile(NamedTuple):
    """An earlier run's scores.csv, found readable: read again, row by row, when it is compared (it lists every
    member of a county)."""
    path: Path
    encoding: str


def _read_scores(path: Path, notes: list[str]) -> ScoresFile | None:
    """scores.csv as written (UTF-8 with BOM), or as Excel re-saves it on a Chinese Windows (GBK)."""
    if not path.exists():
        notes.append("上次结果中的 scores.csv 已被删除：无法与上次的总分比较")
        return None
    try:
        encoding = next((e for e in ("utf-8-sig", "gb18030") if _decodes(path, e)), None)
    except OSError as exc:
        notes.append(f"无法读取上次结果中的 scores.csv（{exc.strerror or exc}）：无法与上次的总分比较")
        return None
    if encoding is None:
        notes.append("上次结果中的 scores.csv 编码无法识别：无法与上次的总分比较")
        return None
    if encoding != "utf-8-sig":
        notes.append("上次结果中的 scores.csv 被另存为GBK编码（可能用Excel保存过），已按GBK读取")
    scores = ScoresFile(path, encoding)
    first = next(_scores_rows(scores), None)
    if first is not None and not {"支部名称", "序号", "姓名", "总分"} <= set(first):
        notes.append("上次结果中的 scores.csv 缺少「支部名称、序号、姓名、总分」列：无法与上次的总分比较")
        return None
    return scores


def _decodes(path: Path, encoding: str) -> bool:
    """Whether the whole file is text in `encoding` (read a block at a time)."""
    try:
        with open(path, encoding=encoding, newline="") as fh:
            while fh.read(1 << 20):
                pass
    except UnicodeDecodeError:
        return False
    return True


def _scores_rows(scores: ScoresFile) -> Iterator[dict[str, str]]:
    import csv

    with open(scores.path, encoding=scores.encoding, newline="") as fh:
        yield from csv.DictReader(fh)


def _first_run(out: Path, year: int, period: str, previous: dict[str, Any]) -> dict[str, Any] | None:
    """The earliest run of `year` and `period`: in 历史/, or the previous run itself (None: neither is)."""
    history = out / HISTORY
    if previous.get("year") == year and previous.get("period") == period and previous.get("first_run"):
        # the previous run named it: its folder in 历史/, without reading every earlier manifest
        folder = history / _stamp(previous["first_run"])
        named = _load_run(folder) if folder.is_dir() else {}
        if named.get("year") == year and named.get("period") == period:
            return named
    found = []
    entries = sorted(p for p in history.iterdir() if p.is_dir()) if history.is_dir() else []
    for folder in entries:
        try:
            manifest = json.loads((folder / "run.json").read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            continue
        if isinstance(manifest, dict) and manifest.get("year") == year and manifest.get("period") == period:
            found.append((str(manifest.get("run_at", "")), folder))
    if found:
        return _load_run(min(found)[1])
    if previous.get("year") == year and previous.get("period") == period:
        return previous
    return None


def compare_with_previous(previous: dict[str, Any] | None, results: list[FileResult]) -> list[dict[str, Any]]:
    """Each member whose total changed since `previous` (a run as `load_previous` gives it): old and new total and
    the reasons in words. The members are read from the parts the workers left, one workbook at a time."""
    if not previous or previous.get("scores") is None:
        return []
    old = {}
    for r in _scores_rows(previous["scores"]):
        key = ((r.get("支部名称") or "").lstrip("'"), str(r.get("序号") or "").strip(), (r.get("姓名") or "").lstrip("'"))
        old[key] = _as_float(r.get("总分"))
    changed = []
    for f in results:
        if f.status != "accepted" or MEMBERS not in f.parts:
            continue
        for m in member_dicts(f.parts[MEMBERS]):
            key = (m["branch"], str(m["seq"]), m["name"])
            new_total = None if m["total"] is None else round(float(m["total"]), 1)
            if key in old and old[key] != new_total:
                changed.append((f, m, old[key]))
    del old
    if not changed:
        return []
    # only now read the ledgers and marks, and only the rows of the members whose totals changed
    wanted = {(m["branch"], str(m["seq"])) for _f, m, _old in changed}
    files = list({id(f): f for f, _m, _o in changed}.values())
    old_ledger = _ledger_facts(_csv_rows(previous.get("ledger_path")), wanted)
    new_ledger = _ledger_facts((e for f in files for e in _parse_ledger(read_part(f.parts[LEDGER]))), wanted)
    old_marks = _marks(_csv_rows(previous.get("marks_path")), wanted)
    new_marks = _marks((e for f in files for e in _parse_marks(read_part(f.parts[MARKS]))), wanted)
    changes = []
    for _f, m, old_total in changed:
        ref = (m["branch"], str(m["seq"]))
        reasons = _mark_reasons(old_marks.get(ref), new_marks.get(ref))
        if previous.get("ledger_path") is not None:  # without it, what was logged before is unknown: not guessed
            reasons += _fact_reasons(old_ledger.get(ref, {}), new_ledger.get(ref, {}))
        complete = previous.get("ledger_path") is not None and previous.get("marks_path") is not None
        changes.append({
            "branch": m["branch"], "seq": m["seq"], "name": m["name"],
            "old_total": old_total, "new_total": m["total"],
            "reasons": reasons or ["积分规则或计分期间不同" if complete else "上次的积分明细缺失，无法列出原因"],
        })
    return changes


def note_changes_since_first(report: RunReport, previous: dict[str, Any]) -> None:
    """The report's changes since the first run of this year and period (kept however many runs come between)
    and what of the previous run could not be compared."""
    report.comparison_notes = list(previous.get("notes", []))
    first = previous.get("first")
    if first:
        report.first_run = first.get("run_at") or "时间不明"
        report.changes_since_first = compare_with_previous(first, report.files)
        if first is not previous:
            report.comparison_notes += [f"本期第一次计分：{n}" for n in first.get("notes", [])]


def _as_float(text: Any) -> float | None:
    try:
        return round(float(str(text).strip()), 1) if str(text or "").strip() else None
    except ValueError:
        return None


def _csv_rows(path: Path | None) -> Any:
    """A CSV's rows by its own header, read row by row (a county's ledger is large); none when it is unreadable."""
    import csv

    if path is None:
        return
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            yield from csv.DictReader(fh)
    except (OSError, UnicodeDecodeError, csv.Error):
        return


def _parse_marks(data: bytes) -> list[dict[str, str]]:
    import csv
    import io

    return list(csv.DictReader(io.StringIO(data.decode("utf-8")), fieldnames=MARKS_CSV_COLUMNS))


def _marks(rows: Any, wanted: set) -> dict[tuple, dict[str, str]]:
    out = {}
    for r in rows:
        ref = ((r.get("branch") or "").lstrip("'"), str(r.get("seq") or ""))
        if ref in wanted:
            out[ref] = {k: v for k, v in r.items() if k not in ("branch", "seq")}
    return out


def _mark_reasons(before: dict[str, str] | None, after: dict[str, str] | None) -> list[str]:
    if before is None or after is None:
        return []
    return [f"{event} 由「{before.get(event) or '空'}」改为「{after.get(event) or '空'}」"
            for event in MARKS_CSV_COLUMNS[2:] if (before.get(event) or "") != (after.get(event) or "")]


_LOGGED = {"激励分": "激励积分", "扣分": "扣分"}


def _ledger_facts(rows: Any, wanted: set) -> dict[tuple, dict[tuple, int]]:
    """Per member, what a person recorded that the ledger counted: each logged activity and deduction (by item,
    date, points and role) and each veto, with how many times it occurs."""
    out: dict[tuple, dict[tuple, int]] = {}
    for e in rows:
        ref = ((e.get("branch") or "").lstrip("'"), str(e.get("seq") or ""))
        if ref not in wanted:
            continue
        part = e.get("part") or ""
        if part == "一票否决":
            fact: tuple = (part, e.get("item") or "", "", "", "")
        elif part in _LOGGED and e.get("row") and e.get("sheet") and (e.get("item") or "") != "扣完为止":
            fact = (part, (e.get("item") or "").lstrip("'"), e.get("date") or "", e.get("raw") or "",
                    e.get("multiplier") or "")
        else:
            continue  # base points come from the marks; caps, floors and prorating follow from the rest
        facts = out.setdefault(ref, {})
        facts[fact] = facts.get(fact, 0) + 1
    return out


def _fact_reasons(before: dict[tuple, int], after: dict[tuple, int]) -> list[str]:
    reasons = []
    for fact in sorted(set(before) | set(after)):
        gone, added = before.get(fact, 0) - after.get(fact, 0), after.get(fact, 0) - before.get(fact, 0)
        reasons += [_in_words("删除", fact)] * max(gone, 0) + [_in_words("新增", fact)] * max(added, 0)
    return reasons


def _in_words(verb: str, fact: tuple) -> str:
    part, item, date, raw, multiplier = fact
    if part == "一票否决":
        return f"{'取消' if verb == '删除' else '新增'}一票否决：{item}"
    if part == "扣分":
        return f"{verb}扣分：{item} {date}".rstrip()
    leading = f"（带头作用×{multiplier}）" if multiplier not in ("", "1") else ""
    return f"{verb}激励积分：{item} {raw}分{leading} {date}".rstrip()


def carry_sent_log(out: Path, staging: Path) -> None:
    """What `send` already mailed stays known, so nothing goes twice."""
    if (out / SENT_LOG).exists():
        shutil.copy2(out / SENT_LOG, staging / SENT_LOG)


@dataclass(frozen=True)
class HistoryMoves:
    """What of the previous OUT goes under 历史/ when this run is swapped in (outdir.swap_in moves it there then,
    never copies it): the history it already had, and its own scores, ledger, marks, run.json and notices under
    历史/<its run time>/."""

    folder: str | None  # that folder's name (None: there was no previous run)
    spare: str  # the folder of 历史/ for what the clerk left where this run writes (the same, if there is one)
    moves: tuple[tuple[str, str], ...]  # (path in the previous OUT, path in the new one), '/'-separated

    def files(self, out: Path) -> Iterator[tuple[str, Path]]:
        """Every file the moves bring into the new OUT: (its path there, where it is now)."""
        for source, target in self.moves:
            path = out / source
            if path.is_dir() and not path.is_symlink():
                for inner in sorted(path.rglob("*")):
                    if inner.is_file():
                        yield f"{target}/{inner.relative_to(path).as_posix()}", inner
            elif path.is_file():
                yield target, path


def plan_history(out: Path, previous: dict[str, Any]) -> HistoryMoves:
    """Where the previous OUT's history and its run go in the new OUT; nothing is moved yet (an interrupted or
    failed run leaves the previous OUT whole)."""
    history = out / HISTORY
    # the whole folder, in one move (a link the clerk made there is theirs: swap_in keeps it as a link)
    moves = [(HISTORY, HISTORY)] if history.is_dir() and not history.is_symlink() else []
    if not previous:
        return HistoryMoves(None, _unused(history, "上次"), tuple(moves))
    known = previous.get("run_at")
    stamp = history_name(previous) if known else _stamp(_modified(out / "scores.csv") or "上次")
    folder = _unused(history, stamp)
    moves += [(name, f"{HISTORY}/{folder}/{name}") for name in ("scores.csv", "ledger.csv", "marks.csv", "run.json")
              if (out / name).exists()]
    branches = out / BRANCHES
    for notice in sorted(branches.glob("*/*.html")) if branches.is_dir() else []:
        rel = notice.relative_to(out).as_posix()
        moves.append((rel, f"{HISTORY}/{folder}/{rel}"))
    return HistoryMoves(folder, folder, tuple(moves))


def _unused(history: Path, stamp: str) -> str:
    """`stamp`, or `stamp_2`, `stamp_3`...: a name 历史/ does not have (runs of unknown time never overwrite each
    other)."""
    folder, n = stamp, 2
    while (history / folder).exists() or (history / folder).is_symlink():
        folder, n = f"{stamp}_{n}", n + 1
    return folder


def _stamp(run_at: str) -> str:
    """The folder of 历史/ that keeps the run of that time."""
    return safe_component(str(run_at).replace(":", ""), "上次")


def _modified(path: Path) -> str | None:
    import datetime as dt

    try:
        return "时间不明-" + dt.datetime.fromtimestamp(path.stat().st_mtime).strftime("%Y-%m-%dT%H%M%S")
    except OSError:
        return None


def history_name(previous: dict[str, Any]) -> str:
    """The folder under 历史/ that keeps a previous run: named by its run time."""
    return _stamp(previous.get("run_at") or "上次")


def write_manifest(staging: Path, report: RunReport, rules: Rules, options: RunOptions, previous: dict[str, Any],
                   carried: Iterable[tuple[str, Path]] = ()) -> None:
    """run.json; `carried`: the files the swap will bring into OUT (HistoryMoves.files), listed as its outputs
    too, at the paths they will have."""
    from pathlib import PurePosixPath

    found = [(PurePosixPath(path.relative_to(staging).as_posix()), path) for path in staging.rglob("*")
             if path.is_file()]
    found += [(PurePosixPath(rel), path) for rel, path in carried]
    outputs = [{"path": rel.as_posix(), "sha256": sha256_file(path)} for rel, path in sorted(found, key=lambda x: x[0])
               if rel.name != "run.json" and not rel.name.startswith(".pointsbatch")]
    manifest = {
        "tool": "pointsbatch",
        "run_at": options.run_at.isoformat(),
        "run_date": options.run_date.isoformat(),
        "year": report.year,
        "period": report.period,
        "rules": {"name": rules.title, "sha256": rules.digest, "file": str(options.rules_path or "内置规则")},
        "counts": {s: report.count(s) for s in ("accepted", "rejected", "ignored")} | {"missing": len(report.missing)},
        "files": [
            {
                "name": f.name, "sha256": f.sha256, "branch": f.branch, "status": f.status,
                **({"reason": f.reason} if f.reason else {}),
                "problems": [p.as_dict() for p in f.problems],
                "outputs": f.outputs,
            }
            for f in report.files
        ],
        "missing": report.missing,
        "changes": report.changes,
        "mail_held": report.mail_held,
        "same_person_in_two_branches": report.same_people,
        "previous_run": previous.get("run_at"),
        "first_run": report.first_run,
        "changes_since_first": report.changes_since_first,
        "comparison_notes": report.comparison_notes,
        "outputs": outputs,
    }
    atomic_write_text(staging / "run.json", json.dumps(manifest, ensure_ascii=False, indent=2, default=str))
