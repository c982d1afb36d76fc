"""The town's outputs: scores.csv, 全镇汇总.xlsx with native charts, and index.html with inline SVG charts."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from ..jinja import format_number, render_text, template_path
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


def render_summary(target: Path, context: dict[str, Any]) -> None:
    """全镇汇总.xlsx from its template, plus native bar charts of the grades and of the branch averages."""
    render_xlsx(template_path(SUMMARY_TEMPLATE), context, target, finish=lambda book: _add_charts(book, context),
                large=True)


def _add_charts(book: Rendered, context: dict[str, Any]) -> None:
    wb, ws = book.workbook, book.sheets["统计图"]
    sheet = ws.name
    grades = context["grade_counts"]
    chart = wb.add_chart({"type": "column"})
    chart.add_series({"name": [sheet, 2, 1], "categories": [sheet, 3, 0, 2 + len(grades), 0],
                      "values": [sheet, 3, 1, 2 + len(grades), 1], "fill": {"color": "#C00000"}})
    chart.set_title({"name": "各等次人数"})
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
        bars.set_x_axis({"min": 0, "max": 100})  # in a bar chart the value axis is the horizontal one
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


def render_index(context: dict[str, Any]) -> str:
    grades = bar_chart([(g, n) for g, n in context["grade_counts"]], color="#c00000")
    averages = bar_chart([(b["name"], b["average"]) for b in context["branches"] if b["average"] is not None],
                         max_value=100, color="#2f5597")
    return render_text("index.html", grade_chart=grades, average_chart=averages, **context)
