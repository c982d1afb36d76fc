"""What a run keeps for the next: ledger.csv, the previous run read back, the changes since, 历史/, run.json."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from .files import atomic_write_text, safe_component, sha256_file
from .model import FileResult, RunOptions, RunReport
from .names import HISTORY, SENT_LOG
from .rules import Rules

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
        target = new_history / history_name(previous)
        target.mkdir(parents=True, exist_ok=True)
        for name in ("scores.csv", "ledger.csv", "run.json"):
            if (out / name).exists():
                shutil.copy2(out / name, target / name)


def history_name(previous: dict[str, Any]) -> str:
    """The folder under 历史/ that keeps a previous run: named by its run time."""
    return safe_component(str(previous.get("run_at", "上次")).replace(":", ""), "上次")


def write_manifest(staging: Path, report: RunReport, rules: Rules, options: RunOptions,
                   previous: dict[str, Any]) -> None:
    outputs = []
    for path in sorted(staging.rglob("*")):
        if path.is_file() and path.name != "run.json" and not path.name.startswith(".pointsbatch"):
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
                "problems": [p.as_dict() for p in f.problems],
                "outputs": f.outputs,
            }
            for f in report.files
        ],
        "missing": report.missing,
        "changes": report.changes,
        "mail_held": report.mail_held,
        "previous_run": previous.get("run_at"),
        "outputs": outputs,
    }
    atomic_write_text(staging / "run.json", json.dumps(manifest, ensure_ascii=False, indent=2, default=str))
