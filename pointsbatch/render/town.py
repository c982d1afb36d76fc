"""The town's outputs: scores.csv, 全镇汇总.xlsx with native charts, and index.html with inline SVG charts."""

from __future__ import annotations

import csv
import io
from typing import Any

from openpyxl.chart import BarChart, Reference

from ..jinja import format_number, render_text, template_path
from .xlsx_template import render_xlsx

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


def scores_csv(members: list[dict[str, Any]]) -> bytes:
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


def render_summary(context: dict[str, Any]):
    """全镇汇总.xlsx from its template, plus native bar charts of the grades and of the branch averages."""
    wb = render_xlsx(template_path(SUMMARY_TEMPLATE), context)
    ws = wb["统计图"]
    grades = context["grade_counts"]
    chart = BarChart()
    chart.title, chart.y_axis.title = "各等次人数", "人数"
    chart.add_data(Reference(ws, min_col=2, min_row=3, max_row=3 + len(grades)), titles_from_data=True)
    chart.set_categories(Reference(ws, min_col=1, min_row=4, max_row=3 + len(grades)))
    chart.legend = None
    chart.width, chart.height = 16, 8
    _show_axes(chart)
    ws.add_chart(chart, "D3")
    averages = [b for b in context["branches"] if b["average"] is not None]
    start = 6 + len(grades)
    ws.cell(start, 1, "支部")
    ws.cell(start, 2, "平均分")
    for i, b in enumerate(averages, start=start + 1):
        ws.cell(i, 1, b["name"])
        ws.cell(i, 2, b["average"]).number_format = "0.0"
    if averages:
        bars = BarChart()
        bars.type = "bar"
        bars.title, bars.x_axis.title = "各支部平均分", None
        bars.add_data(Reference(ws, min_col=2, min_row=start, max_row=start + len(averages)), titles_from_data=True)
        bars.set_categories(Reference(ws, min_col=1, min_row=start + 1, max_row=start + len(averages)))
        bars.legend = None
        bars.width, bars.height = 16, max(6, 0.6 * len(averages) + 2)
        bars.y_axis.scaling.min, bars.y_axis.scaling.max = 0, 100
        _show_axes(bars)
        ws.add_chart(bars, "D20")
    ws.column_dimensions["A"].width = 24
    ws.page_setup.orientation = "landscape"
    ws.page_setup.fitToWidth, ws.page_setup.fitToHeight = 1, 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    return wb


def _show_axes(chart: BarChart) -> None:
    """openpyxl marks axes deleted by default, and recent Excel then hides their labels."""
    chart.x_axis.delete = False
    chart.y_axis.delete = False


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


def render_index(context: dict[str, Any]) -> str:
    grades = bar_chart([(g, n) for g, n in context["grade_counts"]], color="#c00000")
    averages = bar_chart([(b["name"], b["average"]) for b in context["branches"] if b["average"] is not None],
                         max_value=100, color="#2f5597")
    return render_text("index.html", grade_chart=grades, average_chart=averages, **context)
