"""Regenerate the .xlsx output templates in pointsbatch/templates/.

The committed templates are the source of truth once a town restyles them in Excel; run this only to start over.
Each cell holds a Jinja expression; a row starting with `{%row for x in xs %}` repeats once per item.
"""

from __future__ import annotations

from pathlib import Path

from openpyxl import Workbook
from openpyxl.formatting.rule import FormulaRule
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side

OUT = Path(__file__).resolve().parent.parent / "pointsbatch" / "templates"
RED = PatternFill("solid", fgColor="C00000")
WHITE_BOLD = Font(bold=True, color="FFFFFF")
THIN = Side(style="thin", color="999999")
BOX = Border(left=THIN, right=THIN, top=THIN, bottom=THIN)


def table(ws, title: str, headers: list[tuple[str, int]], cells: list[str], loop: str, number_formats=None,
          subtitle: str | None = None) -> None:
    ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=len(headers))
    ws.cell(1, 1, title).font = Font(bold=True, size=14)
    ws.cell(1, 1).alignment = Alignment(horizontal="center")
    ws.row_dimensions[1].height = 26
    if subtitle:
        ws.merge_cells(start_row=2, start_column=1, end_row=2, end_column=len(headers))
        ws.cell(2, 1, subtitle).alignment = Alignment(horizontal="center")
    for col, (text, width) in enumerate(headers, start=1):
        c = ws.cell(3, col, text)
        c.fill, c.font, c.border = RED, WHITE_BOLD, BOX
        c.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
        ws.column_dimensions[c.column_letter].width = width
    for col, expr in enumerate(cells, start=1):
        value = (loop + expr) if col == 1 else expr
        c = ws.cell(4, col, value)
        c.border = BOX
        if number_formats and col in number_formats:
            c.number_format = number_formats[col]
    ws.freeze_panes = "A4"
    ws.print_title_rows = "3:3"
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True


def graded(label: str, otherwise: str = "") -> str:
    """A header shown only in a graded (annual) run: a half year has no grades, 评先评优 or rewards."""
    return "{{ '" + label + "' if period.graded else '" + otherwise + "' }}"


def results_template() -> Workbook:
    wb = Workbook()
    ws = wb.active
    ws.title = "积分结果"
    table(
        ws,
        "{{ branch.name }}{{ title }}党员积分结果",
        [("序号", 6), ("姓名", 10), ("党员类别", 10), ("基础分", 8), ("激励分", 8), ("扣分", 7),
         ("一票否决", 20), ("总分", 8), (graded("等次", "备注"), 12), (graded("可评先评优"), 10),
         (graded("奖励上限（元）"), 12), (graded("上半年总分"), 10)],
        ["{{ m.seq }}", "{{ m.name }}", "{{ m.category }}", "{{ m.base }}", "{{ m.incentive }}",
         "{{ m.deductions }}", "{{ m.veto }}", "{{ m.total }}", "{{ m.grade }}", "{{ m.honours }}",
         "{{ m.reward }}", "{{ m.h1_total }}"],
        "{%row for m in members %}",
        {4: "0.0", 5: "0.0", 6: "0.0", 8: "0.0", 11: "0.00", 12: "0.0"},
        subtitle="积分记录员：{{ branch.recorder }}　支委会核定日期：{{ approval_date }}　计分日期：{{ run_date }}"
                 "　{{ maximum }}",
    )
    ws = wb.create_sheet("积分明细")
    table(
        ws,
        "{{ branch.name }}积分明细（每一分的来源）",
        [("序号", 6), ("姓名", 10), ("类别", 9), ("项目", 18), ("来源工作表", 11), ("行", 6), ("单元格", 24),
         ("登记值", 8), ("倍数/折算", 9), ("计分", 8), ("说明", 50)],
        ["{{ e.seq }}", "{{ e.name }}", "{{ e.part }}", "{{ e.item }}", "{{ e.sheet }}", "{{ e.row }}",
         "{{ e.cell }}", "{{ e.raw }}", "{{ e.multiplier }}", "{{ e.points }}", "{{ e.note }}"],
        "{%row for e in ledger %}",
        {8: "0.##", 9: "0.####", 10: "0.##"},
    )
    ws.auto_filter.ref = "A3:K3"  # sorted by member, then item: a filter picks one member or one item
    ws = wb.create_sheet("复核提示")
    table(ws, "需要复核的情况", [("序号", 6), ("姓名", 10), ("提示", 14), ("说明", 80)],
          ["{{ f.seq }}", "{{ f.name }}", "{{ f.flag }}", "{{ f.note }}"], "{%row for f in flags %}")
    ws = wb.create_sheet("异议处理")
    table(ws, "公示期间的异议及处理", [("日期", 12), ("姓名", 10), ("异议内容", 30), ("核实情况", 30), ("处理结果", 30)],
          ["{{ o.date }}", "{{ o.name }}", "{{ o.content }}", "{{ o.finding }}", "{{ o.outcome }}"],
          "{%row for o in objections %}", {1: "yyyy-mm-dd"})
    ws = wb.create_sheet("计分规则")
    table(ws, "本次计分适用的规则", [("项目", 34), ("设置", 50)], ["{{ r[0] }}", "{{ r[1] }}"],
          "{%row for r in rules %}")
    return wb


def summary_template() -> Workbook:
    wb = Workbook()
    ws = wb.active
    ws.title = "各支部汇总"
    table(
        ws,
        "{{ period.of(year) }}全镇党员积分汇总",
        [("支部名称", 24), ("状态", 10), ("党员数", 8), ("参加积分", 9), ("免于积分管理", 12),
         (graded("优秀", "最高分"), 7), (graded("合格", "最低分"), 7), (graded("不合格", "基础分满分"), 7),
         ("平均分", 8), ("说明", 40)],
        ["{{ b.name }}", "{{ b.status }}", "{{ b.members }}", "{{ b.scored }}", "{{ b.exempt }}",
         "{{ b.excellent if period.graded else b.highest }}", "{{ b.passed if period.graded else b.lowest }}",
         "{{ b.failed if period.graded else b.base_max }}", "{{ b.average }}", "{{ b.note }}"],
        "{%row for b in branches %}",
        {9: "0.0"},
        subtitle="计分日期：{{ run_date }}　收到工作簿{{ counts.files }}份，通过{{ counts.accepted }}份，退回{{ counts.rejected }}份，未报送{{ counts.missing }}个支部",
    )
    supervision_sheet(wb.create_sheet("支部工作情况"))
    member_cols = [("支部名称", 24), ("序号", 6), ("姓名", 10), ("党员类别", 10), ("基础分", 8), ("激励分", 8),
                   ("扣分", 7), ("一票否决", 20), ("总分", 8), (graded("等次", "备注"), 12), (graded("可评先评优"), 10),
                   (graded("奖励上限（元）"), 12)]
    member_cells = ["{{ m.branch }}", "{{ m.seq }}", "{{ m.name }}", "{{ m.category }}", "{{ m.base }}",
                    "{{ m.incentive }}", "{{ m.deductions }}", "{{ m.veto }}", "{{ m.total }}", "{{ m.grade }}",
                    "{{ m.honours }}", "{{ m.reward }}"]
    formats = {5: "0.0", 6: "0.0", 7: "0.0", 9: "0.0", 12: "0.00"}
    table(wb.create_sheet("全部党员"), "全镇党员积分", member_cols, member_cells, "{%row for m in members %}", formats)
    # sheet titles that are expressions: left out of a half-year summary, which has no grades
    table(wb.create_sheet("{{'不合格名单' if period.graded}}"), "年度积分不合格党员名单", member_cols, member_cells,
          "{%row for m in failed %}", formats)
    table(wb.create_sheet("{{'优秀名单' if period.graded}}"), "年度积分优秀党员名单", member_cols, member_cells,
          "{%row for m in excellent %}", formats)
    ws = wb.create_sheet("统计图")
    ws.cell(1, 1, "{{ period.of(year) }}积分统计图").font = Font(bold=True, size=14)
    ws.cell(3, 1, graded("等次", "积分段"))
    ws.cell(3, 2, "人数")
    ws.cell(4, 1, "{%row for g in grade_counts %}{{ g[0] }}")
    ws.cell(4, 2, "{{ g[1] }}")
    ws.column_dimensions["A"].width = 24
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.fitToWidth, ws.page_setup.fitToHeight = 1, 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    return wb


def supervision_sheet(ws) -> None:
    """督促检查: one row a branch; an event held fewer times than required, and every 提示, are highlighted by
    conditional formats on the repeat row (the renderer grows them with the rows)."""
    events = ["activity_day", "lecture", "congress", "org_life", "evaluation", "pledge"]
    table(
        ws,
        "{{ year ~ '年' if year else '' }}{{ period.label }}各支部党员积分制工作情况（督促检查）",
        [("支部名称", 24), ("党员数", 7), ("党员活动日", 9), ("党课", 7), ("党员大会", 9), ("组织生活会", 9),
         ("民主评议", 8), ("承诺践诺", 8), ("出勤率", 8), ("有激励记录的党员", 11), ("扣分次数", 8), ("一票否决", 8),
         ("免于积分管理", 12), ("提示", 46)],
        ["{{ s.name }}", "{{ s.members }}", *[f"{{{{ s.{e} }}}}" for e in events], "{{ s.attendance }}",
         "{{ s.incentive }}", "{{ s.deductions }}", "{{ s.vetoes }}", "{{ s.exempt }}", "{{ s.hint }}"],
        "{%row for s in supervision %}",
        {9: "0.0%"},
        subtitle="活动栏为“已开展次数/应开展次数”；出勤率为 √ 占 √、×、假 的比例（不含免于积分管理的党员）；"
                 "少于应开展次数的标为红色，有提示的标为黄色",
    )
    for col in range(2, 14):
        ws.cell(4, col).alignment = Alignment(horizontal="center", vertical="center")
    ws.cell(4, 1).alignment = Alignment(vertical="center")
    ws.cell(4, 14).alignment = Alignment(vertical="center", wrap_text=True)
    ws.row_dimensions[3].height = 30  # the longer headers wrap onto two lines
    ws.freeze_panes = "B4"
    short = 'IFERROR(VALUE(LEFT(C4,FIND("/",C4)-1))<VALUE(MID(C4,FIND("/",C4)+1,9)),FALSE)'
    ws.conditional_formatting.add("C4:H4", FormulaRule(
        formula=[short], font=Font(bold=True, color="9C0006"),
        fill=PatternFill("solid", start_color="FFC7CE", end_color="FFC7CE")))
    ws.conditional_formatting.add("N4", FormulaRule(
        formula=["LEN(N4)>0"], font=Font(color="9C0006"),
        fill=PatternFill("solid", start_color="FFEB9C", end_color="FFEB9C")))


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    results_template().save(OUT / "支部积分结果.xlsx")
    summary_template().save(OUT / "全镇汇总.xlsx")
    print("written to", OUT)
