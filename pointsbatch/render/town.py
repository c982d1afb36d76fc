"""The town's outputs: scores.csv, 全镇汇总.xlsx with native charts, and index.html with inline SVG charts."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from ..files import atomic_save, atomic_write_bytes, atomic_write_text
from ..jinja import format_number, render_text, template_path
from ..model import MemberRow, RunOptions, RunReport
from ..names import EXCELLENT, EXEMPT, FAILED, GRADES, PASSED
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


def scores_csv(members: list[MemberRow]) -> bytes:
    """scores.csv exactly as OUTPUTS.md names it: UTF-8 with BOM, scores to one decimal."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for m in members:
        exempt = m["exempt"]
        writer.writerow([
            inert(m["branch"]), m["seq"], inert(m["name"]), m["category"],
            "" if exempt else _score(m["base"]), "" if exempt else _score(m["incentive"]),
            "" if exempt else _score(m["deductions"]), inert(m["veto"] or ""),
            "" if exempt else _score(m["total"]), m["grade"], "" if exempt else m["honours"],
            "" if m["reward"] is None else f"{float(m['reward']):.2f}",
        ])
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


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


def all_members(report: RunReport) -> list[MemberRow]:
    return [m for f in report.files if f.status == "accepted" for m in f.members]


_NO_FIGURES = dict.fromkeys(("members", "scored", "exempt", "excellent", "passed", "failed", "average", "highest",
                             "lowest", "base_max"))

BAND = 10  # points per band of the half year's distribution


def point_bands(totals: list[float], top: float) -> list[tuple[str, int]]:
    """How many members scored in each band of `BAND` points, from 0 up to the period's maximum `top`: the
    half year's picture, which has no grades."""
    import math

    edges = list(range(0, max(BAND, math.ceil(max([top, *totals]) / BAND) * BAND), BAND))
    counts = [0] * len(edges)
    for t in totals:
        counts[min(int(t // BAND), len(edges) - 1)] += 1
    labels = [f"{lo}–{format_number(lo + BAND - 0.1)}分" for lo in edges[:-1]]
    last = max([top, *totals])
    labels.append(f"{edges[-1]}–{format_number(last)}分" if last > edges[-1] else f"{edges[-1]}分")
    return list(zip(labels, counts, strict=True))


def branch_rows(report: RunReport) -> list[dict[str, Any]]:
    rows = []
    same = branch_notes(report.same_people)
    for f in report.files:
        if f.status == "ignored":
            continue
        if f.status == "accepted":
            ms = f.members
            scored = [m for m in ms if not m["exempt"]]
            totals = [m["total"] for m in scored if m["total"] is not None]
            rows.append({
                "name": f.branch, "status": "通过", "members": len(ms), "scored": len(scored),
                "exempt": len(ms) - len(scored),
                "highest": max(totals) if totals else None, "lowest": min(totals) if totals else None,
                "base_max": f.base_max,
                "excellent": sum(m["grade"] == EXCELLENT for m in scored),
                "passed": sum(m["grade"] == PASSED for m in scored),
                "failed": sum(m["grade"] == FAILED for m in scored),
                "average": round(sum(totals) / len(totals), 1) if totals else None,
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

    members = all_members(report)
    scored = [m for m in members if not m["exempt"]]
    period = PERIODS[report.period]
    base_max = max((f.base_max or 0.0 for f in report.files if f.status == "accepted"), default=rules.base_max())
    top = base_max + rules.incentive.total_cap  # the most a member could have in the period
    if period.graded:
        grade_counts = [(g, sum(m["grade"] == g for m in members)) for g in (*GRADES, EXEMPT)]
    else:  # a half year has no grades: how its points are spread
        grade_counts = point_bands([m["total"] for m in scored if m["total"] is not None], top)
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
        "members": members,
        "failed": [m for m in scored if m["grade"] == FAILED] if period.graded else [],
        "excellent": [m for m in scored if m["grade"] == EXCELLENT] if period.graded else [],
        "grade_counts": grade_counts,
        "counts": {
            "files": len(report.files), "accepted": report.count("accepted"), "rejected": report.count("rejected"),
            "ignored": report.count("ignored"), "missing": len(report.missing), "scored": len(scored),
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
    """scores.csv, ledger.csv, marks.csv and index.html (全镇汇总.xlsx is written by `write_summary`, in a worker)."""
    from ..history import write_ledger_csv, write_marks_csv

    atomic_write_bytes(staging / "scores.csv", scores_csv(all_members(report)))
    atomic_save(staging / "ledger.csv", lambda tmp: write_ledger_csv(Path(tmp), report))
    atomic_save(staging / "marks.csv", lambda tmp: write_marks_csv(Path(tmp), report))
    atomic_write_text(staging / "index.html", render_index(context, templates))


def write_summary(target: Path, context: dict[str, Any], templates: Path | None) -> None:
    render_summary(target, context, templates)
