"""The town's outputs: scores.csv, 全镇汇总.xlsx with native charts, and index.html with inline SVG charts."""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import Any

from ..files import atomic_save, atomic_write_text
from ..jinja import format_number, render_text, template_path
from ..model import MemberCounts, MemberRow, RunOptions, RunReport
from ..names import EXCELLENT, EXEMPT, FAILED, GRADES, PASSED
from ..parts import LEDGER, MARKS, MEMBERS, SCORES, Members, copy_parts
from ..people import branch_notes
from ..rules import PERIODS, Rules
from .xlsx_template import Rendered, render_xlsx

SUMMARY_TEMPLATE = "全镇汇总.xlsx"
CSV_COLUMNS = ["支部名称", "序号", "姓名", "党员类别", "基础分", "激励分", "扣分", "一票否决", "总分", "等次",
               "可评先评优", "奖励上限（元）"]
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def inert(text: Any) -> Any:
    """Text a spreadsheet would run as a formula is prefixed with an apostrophe so it stays text."""
    if isinstance(text, str) and text.startswith(FORMULA_START):
        return "'" + text
    return text


def _score(value: Any) -> str:
    return "" if value is None else f"{float(value):.1f}"


SCORES_HEADER = ("\ufeff" + ",".join(CSV_COLUMNS) + "\r\n").encode("utf-8")  # UTF-8 with BOM: Excel opens it


def scores_rows(members: Iterable[MemberRow]) -> bytes:
    """Members' rows of scores.csv (no header), exactly as OUTPUTS.md names them: scores to one decimal."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    for m in members:
        exempt = m["exempt"]
        writer.writerow([
            inert(m["branch"]), m["seq"], inert(m["name"]), m["category"],
            "" if exempt else _score(m["base"]), "" if exempt else _score(m["incentive"]),
            "" if exempt else _score(m["deductions"]), inert(m["veto"] or ""),
            "" if exempt else _score(m["total"]), m["grade"], "" if exempt else m["honours"],
            "" if m["reward"] is None else f"{float(m['reward']):.2f}",
        ])
    return buf.getvalue().encode("utf-8")


def render_summary(target: Path, context: dict[str, Any], templates: Path | None = None) -> None:
    """全镇汇总.xlsx from its template, plus native bar charts of the grades and of the branch averages."""
    render_xlsx(template_path(SUMMARY_TEMPLATE, templates), context, target, finish=lambda book: _add_charts(book, context),
                large=True, created=context.get("run_at"))


def _add_charts(book: Rendered, context: dict[str, Any]) -> None:
    wb, ws = book.workbook, book.sheets["统计图"]
    sheet = ws.name
    grades = context["grade_counts"]
    chart = wb.add_chart({"type": "column"})
    chart.add_series({"name": [sheet, 2, 1], "categories": [sheet, 3, 0, 2 + len(grades), 0],
                      "values": [sheet, 3, 1, 2 + len(grades), 1], "fill": {"color": "#C00000"}})
    chart.set_title({"name": "各等次人数" if context["period"].graded else f"{context['period'].label}积分分布"})
    chart.set_y_axis({"name": "人数", "min": 0})
    chart.set_legend({"none": True})
    chart.set_size({"width": 600, "height": 300})
    ws.insert_chart("D3", chart)
    averages = [b for b in context["branches"] if b["average"] is not None]
    start = max(book.rows_used["统计图"], 3 + len(grades)) + 2  # 0-based: one empty row below the grade table
    number = wb.add_format({"num_format": "0.0"})
    ws.write_string(start, 0, "支部")
    ws.write_string(start, 1, "平均分")
    for i, b in enumerate(averages, start=start + 1):
        ws.write_string(i, 0, str(b["name"]))
        ws.write_number(i, 1, float(b["average"]), number)
    if averages:
        bars = wb.add_chart({"type": "bar"})
        bars.add_series({"name": [sheet, start, 1], "categories": [sheet, start + 1, 0, start + len(averages), 0],
                         "values": [sheet, start + 1, 1, start + len(averages), 1], "fill": {"color": "#2F5597"}})
        bars.set_title({"name": "各支部平均分"})
        bars.set_x_axis({"min": 0, "max": context.get("average_max", 100)})  # in a bar chart the value axis is the horizontal one
        bars.set_y_axis({"reverse": True})  # branches top to bottom in the table's order
        bars.set_legend({"none": True})
        bars.set_size({"width": 600, "height": max(230, 23 * len(averages) + 75)})
        ws.insert_chart("D20", bars)


def bar_chart(pairs: list[tuple[str, float]], width: int = 640, bar: int = 22, max_value: float | None = None,
              color: str = "#c00000") -> dict[str, Any]:
    """Geometry for a horizontal inline-SVG bar chart; the template draws it."""
    top = max_value if max_value else max([v for _, v in pairs] + [1])
    label_w, gap = 180, 6
    plot = width - label_w - 60
    bars = [
        {"label": label, "value": format_number(value), "y": i * (bar + gap), "w": round(plot * value / top, 1),
         "x": label_w}
        for i, (label, value) in enumerate(pairs)
    ]
    return {"bars": bars, "width": width, "height": max(len(pairs) * (bar + gap), bar), "bar": bar,
            "color": color, "label_w": label_w}


def render_index(context: dict[str, Any], templates: Path | None = None) -> str:
    grades = bar_chart([(g, n) for g, n in context["grade_counts"]], color="#c00000")
    averages = bar_chart([(b["name"], b["average"]) for b in context["branches"] if b["average"] is not None],
                         max_value=context["average_max"], color="#2f5597")
    from .supervision import attendance_pairs

    attendance = bar_chart(attendance_pairs(context["supervision"]), max_value=100, color="#548235")
    return render_text("index.html", templates, grade_chart=grades, average_chart=averages, attendance_chart=attendance,
                       **context)


def member_counts(members: Iterable[MemberRow]) -> MemberCounts:
    """One branch's figures for the town's outputs (made in the worker, from the members it has at hand)."""
    members = list(members)
    scored = [m for m in members if not m["exempt"]]
    totals = [m["total"] for m in scored if m["total"] is not None]
    return MemberCounts(
        members=len(members), scored=len(scored),
        excellent=sum(m["grade"] == EXCELLENT for m in scored),
        passed=sum(m["grade"] == PASSED for m in scored),
        failed=sum(m["grade"] == FAILED for m in scored),
        highest=max(totals) if totals else None, lowest=min(totals) if totals else None,
        average=round(sum(totals) / len(totals), 1) if totals else None,
        grades=dict(Counter(m["grade"] for m in members)),
        bands=dict(Counter(int(t // BAND) for t in totals)),
    )


def all_members(report: RunReport, grade: str | None = None) -> Members:
    """Every member of the accepted branches (with `grade`: the scored ones of that grade), read from the parts the
    workers left whenever they are gone through."""
    accepted = [f for f in report.files if f.status == "accepted" and f.counts is not None]
    if grade is None:
        length = sum(f.counts.members for f in accepted if f.counts)
    else:
        length = sum(getattr(f.counts, _GRADE_FIELD[grade]) for f in accepted)
    return Members([f.parts[MEMBERS] for f in accepted], length, grade)


_GRADE_FIELD = {EXCELLENT: "excellent", PASSED: "passed", FAILED: "failed"}
_NO_FIGURES = dict.fromkeys(("members", "scored", "exempt", "excellent", "passed", "failed", "average", "highest",
                             "lowest", "base_max"))

BAND = 10  # points per band of the half year's distribution


def point_bands(bands: dict[int, int], highest: float | None, top: float) -> list[tuple[str, int]]:
    """How many members scored in each band of `BAND` points (`bands`: band index -> members, `highest`: the
    highest total), from 0 up to the period's maximum `top`: the half year's picture, which has no grades."""
    import math

    last = top if highest is None else max(top, highest)
    edges = list(range(0, max(BAND, math.ceil(last / BAND) * BAND), BAND))
    counts = [0] * len(edges)
    for band, n in bands.items():
        counts[min(band, len(edges) - 1)] += n
    labels = [f"{lo}–{format_number(lo + BAND - 0.1)}分" for lo in edges[:-1]]
    labels.append(f"{edges[-1]}–{format_number(last)}分" if last > edges[-1] else f"{edges[-1]}分")
    return list(zip(labels, counts, strict=True))


def branch_rows(report: RunReport) -> list[dict[str, Any]]:
    rows = []
    same = branch_notes(report.same_people)
    for f in report.files:
        if f.status == "ignored":
            continue
        if f.status == "accepted" and f.counts is not None:
            c = f.counts
            rows.append({
                "name": f.branch, "status": "通过", "members": c.members, "scored": c.scored, "exempt": c.exempt,
                "highest": c.highest, "lowest": c.lowest, "base_max": f.base_max,
                "excellent": c.excellent, "passed": c.passed, "failed": c.failed, "average": c.average,
                "note": "；".join(n for n in (f"{f.flags}处需复核" if f.flags else "", same.get(f.branch or "", ""))
                                 if n),
            })
        else:
            rows.append({**_NO_FIGURES, "name": f.branch or f.name, "status": "退回",
                         "note": f"{f.errors}处错误，已退回修改（文件 {f.name}）"})
    rows += [{**_NO_FIGURES, "name": n, "status": "未报送", "note": "未收到工作簿"} for n in report.missing]
    return rows


def town_context(report: RunReport, rules: Rules, options: RunOptions, previous: dict[str, Any]) -> dict[str, Any]:
    from .supervision import supervision_rows

    counts = [f.counts for f in report.files if f.status == "accepted" and f.counts is not None]
    period = PERIODS[report.period]
    base_max = max((f.base_max or 0.0 for f in report.files if f.status == "accepted"), default=rules.base_max())
    top = base_max + rules.incentive.total_cap  # the most a member could have in the period
    if period.graded:
        grade_counts = [(g, sum(c.grades.get(g, 0) for c in counts)) for g in (*GRADES, EXEMPT)]
    else:  # a half year has no grades: how its points are spread
        bands: Counter[int] = Counter()
        for c in counts:
            bands.update(c.bands)
        highest = max((c.highest for c in counts if c.highest is not None), default=None)
        grade_counts = point_bands(bands, highest, top)
    return {
        "year": report.year,
        "period": period,
        "average_max": top,
        "maximum": "" if period.graded else render_text(
            "period_maximum.txt", options.templates, period=period.label, incentive_max=rules.incentive.total_cap,
            base_max=base_max).strip(),
        "run_date": options.run_date.isoformat(),
        "run_at": options.run_at,
        "rules_name": rules.title,
        "town": rules.town,
        "branches": branch_rows(report),
        "supervision": supervision_rows(report.files, report.missing, options.templates),
        "members": all_members(report),
        "failed": all_members(report, FAILED) if period.graded else [],
        "excellent": all_members(report, EXCELLENT) if period.graded else [],
        "grade_counts": grade_counts,
        "counts": {
            "files": len(report.files), "accepted": report.count("accepted"), "rejected": report.count("rejected"),
            "ignored": report.count("ignored"), "missing": len(report.missing), "scored": sum(c.scored for c in counts),
        },
        "changes": report.changes,
        "previous_run": previous.get("run_at", "") or ("时间不明" if previous else ""),
        "changes_since_first": report.changes_since_first,
        "first_run": report.first_run,
        "first_is_previous": bool(previous) and previous.get("first") is previous,
        "comparison_notes": report.comparison_notes,
        "problem_files": [
            {"name": f.name, "branch": f.branch, "errors": f.errors,
             "first": next((p.message for p in f.problems if p.is_error), "")}
            for f in report.files if f.status == "rejected"
        ],
        "ignored_files": [{"name": f.name, "reason": f.reason} for f in report.files if f.status == "ignored"],
        "mail_held": report.mail_held,
    }


def write_town_outputs(staging: Path, report: RunReport, context: dict[str, Any],
                       templates: Path | None = None) -> None:
    """scores.csv, ledger.csv, marks.csv and index.html (全镇汇总.xlsx is written by `write_summary`, in a worker).

    The CSVs are the accepted workbooks' rows the workers left in the parts, joined in the report's order."""
    from ..history import LEDGER_HEADER, MARKS_HEADER

    for name, header, kind in (("scores.csv", SCORES_HEADER, SCORES), ("ledger.csv", LEDGER_HEADER, LEDGER),
                               ("marks.csv", MARKS_HEADER, MARKS)):
        atomic_save(staging / name, partial(_join, header=header, report=report, kind=kind))
    atomic_write_text(staging / "index.html", render_index(context, templates))


def _join(path: str, header: bytes, report: RunReport, kind: str) -> None:
    """One of the town's CSVs: its header, then each accepted workbook's rows, as the worker left them."""
    with open(path, "wb") as fh:
        fh.write(header)
        copy_parts((f.parts[kind] for f in report.files if f.status == "accepted" and kind in f.parts), fh)


def write_summary(target: Path, context: dict[str, Any], templates: Path | None) -> None:
    """全镇汇总.xlsx; the members come out of the parts here (in a worker), column by column."""
    context = {**context, **{key: context[key].records() for key in ("members", "failed", "excellent")
                             if isinstance(context[key], Members)}}
    render_summary(target, context, templates)
