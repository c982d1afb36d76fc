"""Problem codes and the Chinese sentences a recorder reads for each.

Tests assert on the code; the sentence may be reworded here freely. Placeholders: {row} the Excel row,
{header} the column header, {value} the value found in the cell (the problem's `value`, which the marked copy's
问题清单 shows as the cell's content: blank for a blank cell), {name} the member a row is about, plus the named
extras each check passes.
"""

from __future__ import annotations

from types import MappingProxyType

from ..problems import Problem, Scope, Severity

MESSAGES = MappingProxyType(
    {
        # the file itself
        "file_not_found": "找不到文件「{value}」，请检查文件名和所在的文件夹",
        "file_unreadable": "文件无法作为Excel工作簿打开（{detail}），请用Excel或WPS打开后另存为.xlsx再提交",
        "file_encrypted": "工作簿设置了打开密码，无法读取，请取消密码后重新提交",
        "file_old_xls": "这是旧版.xls格式的文件，请另存为.xlsx后重新提交",
        "internal_error": "处理时出错（{detail}）：这是程序的问题，不是工作簿填写的问题；请把本文件和这条说明转给镇组织干事",
        "file_too_large": "工作簿内容异常庞大（{detail}），不像是支部积分工作簿，已拒收",
        "links_removed": "原工作簿中的{count}处超链接或外部链接（可能指向本机或内网的文件）已从退回的标注副本中删除；原工作簿未改动",
        "file_not_standard": "不是标准的支部积分工作簿：缺少「{detail}」等工作表",
        "file_duplicate_branch": "另有文件「{detail}」也是「{value}」的工作簿，无法判断以哪份为准，两份均不予处理，请只保留一份",
        "file_names_other_branch": "文件名「{file}」是支部「{other}」的，而这里填写的支部名称是「{value}」：无法确定是哪个支部的工作簿，已退回；请改正支部名称或文件名后重新报送",
        "branch_not_in_registry": "支部名称「{value}」不在镇支部名录中，请按名录的写法填写",
        # sheets and headers
        "sheet_unreadable": "工作表「{value}」中有无法识别的内容（{detail}），常见原因是日期格式的单元格里填了过大的数字，请检查后重新保存",
        "sheet_missing": "缺少工作表「{value}」，请使用标准模板",
        "column_missing": "缺少列「{value}」，请使用标准模板的表头",
        "column_unknown": "列「{value}」不是标准模板中的列，已忽略",
        "column_duplicate": "列「{value}」出现了不止一次，请删除多余的一列",
        "info_missing": "「支部信息」缺少「{header}」，请在B列填写",
        "grid_date_label": "A2单元格应为「活动日期」，第2行用于填写每次活动的日期",
        "formula_uncalculated": "单元格{header}是公式，但没有计算结果（读出来会是空白），请在Excel或WPS中打开、保存后再提交，或直接填写内容",
        # single cells
        "value_required": "第{row}行「{header}」不能为空",
        "not_an_integer": "第{row}行「{header}」为「{value}」，应填写整数",
        "not_a_number": "第{row}行「{header}」为「{value}」，应填写数字",
        "not_a_date": "第{row}行「{header}」为「{value}」，不是有效日期，请填写如 2026-03-05 的日期",
        "value_not_allowed": "第{row}行「{header}」为「{value}」，应为下拉列表中的一项：{allowed}",
        "score_above_item_max": "第{row}行「{header}」为{value}，超过单项满分{hi}分",
        "score_below_zero": "第{row}行「{header}」为{value}，不能小于{lo}分",
        "score_not_half_step": "第{row}行「{header}」为{value}，应以{step}分为单位",
        "date_outside_year": "第{row}行「{header}」为{value}，不在{year}年度内",
        "name_too_long": "第{row}行「{header}」长达{length}个字，不像是姓名，请检查是否填错",
        "text_too_long": "「{header}」长达{length}个字，请改短",
        # across sheets
        "seq_duplicate": "第{row}行序号{value}与第{other}行重复，序号不能重复",
        "name_not_in_roster": "第{row}行「{value}」不在党员名册中，请核对姓名",
        "seq_not_in_roster": "第{row}行序号{value}在党员名册中不存在",
        "seq_name_mismatch": "第{row}行序号{value}在名册中是「{other}」，与姓名「{name}」不一致",
        "name_ambiguous": "第{row}行「{name}」在名册中有同名党员，请填写序号",
        "member_not_in_grid": "名册第{row}行「{value}」在「基础积分」中没有记录，请补一行",
        "member_twice_in_grid": "第{row}行「{value}」在「基础积分」中与第{other}行重复",
        "attendance_blank": "第{row}行「{name}」的「{header}」为空，本计分期内的每一格都要填写",
        "na_inside_membership": "第{row}行「{name}」的「{header}」为“/”（不适用），但按党员名册的{basis}，这次活动时已是本支部党员，"
        "请按实际填写 √、× 或 假；活动在入党（转入）前或转出后举行的，请在第2行填写活动日期",
        "na_without_dates": "第{row}行「{name}」的「{header}」为“/”（不适用），但党员名册中没有该党员的入党日期、转入日期或转出日期，"
        "请在名册中补填，说明何时起或何时止不适用",
        "mark_outside_membership": "第{row}行「{name}」的「{header}」为「{value}」，但按党员名册的{basis}，这次活动时不是本支部党员，此格不计分",
        "transfer_out_before_start": "第{row}行「{name}」的转出日期{value}早于入党或转入日期{start}，请核对",
        "grid_without_members": "「基础积分」中没有党员名册中任何一名党员的记录，请按名册每名党员填一行（序号、姓名与名册一致）",
        "attendance_leave_for_dues": "第{row}行「{header}」为“假”，党费只能填 √、× 或 /",
        "attendance_not_mark": "第{row}行「{header}」为「{value}」，应为 √、×、假 或 /",
        "event_date_outside_year": "「{header}」的活动日期{value}不在{year}年度内",
        "event_date_outside_slot": "「{header}」的活动日期{value}不在该活动所属的时段内，请核对",
        "exempt_reason_missing": "第{row}行「{name}」免于积分管理，但没有填写免积分原因",
        "exempt_reason_without_exempt": "第{row}行填写了免积分原因，但「免于积分管理」不是“是”",
        "exempt_birth_missing": "第{row}行「{name}」以{reason}免积分，但没有填写出生日期",
        "exempt_age_not_reached": "第{row}行「{name}」出生于{birth}，到{year}年12月31日未满{age}周岁，不能以年满{age}周岁免积分",
        "exempt_has_records": "第{row}行「{value}」免于积分管理，其记录予以保留，但不计分",
        "rate_too_high": "奖励标准为每分{value}元，超过了每分{max}元的上限",
        "rate_negative": "奖励标准为每分{value}元，不能为负数",
        "year_mismatch": "工作簿年度为{value}，本次计分的年度为{year}",
        "notice_before_approval": "公示开始日期{detail}早于支委会核定日期{value}：积分应经支委会核定后再公示，请核对公示开始日期（--notice-start）或「{header}」",
        "second_half_blank": "下半年（7-12月）的考勤全部为空，像是只填到了上半年。如果要计算上半年积分，请用 --period h1 运行；年度计分需要填写全年的考勤",
        "approval_date_missing": "「支部信息」缺少「{header}」，{period}计分需要支委会核定日期",
        "roster_empty": "党员名册中没有党员",
        "too_many_problems": "问题太多，只列出前{shown}条，另有{more}条未列出；请先改正以上问题",
    }
)

WARNINGS = frozenset({"links_removed", "column_unknown", "exempt_has_records", "event_date_outside_slot", "too_many_problems",
                      "notice_before_approval", "mark_outside_membership"})


# Problems about the notice a run writes, not about the workbook's content: dropped when the workbook is rejected
NOTICE_CODES = frozenset({"notice_before_approval"})

# What each code is about, when it is not one cell: the file as a whole (no marked copy can show it at a cell; a
# file with such an error is not a standard workbook) or a sheet. Every other code is about a cell.
SCOPES: MappingProxyType[str, Scope] = MappingProxyType({
    **dict.fromkeys(("file_unreadable", "file_encrypted", "file_old_xls", "internal_error", "file_too_large",
                     "links_removed", "file_not_standard", "too_many_problems", "file_not_found"), "file"),
    **dict.fromkeys(("sheet_unreadable", "sheet_missing", "column_missing", "column_unknown", "column_duplicate",
                     "info_missing", "roster_empty", "approval_date_missing", "grid_without_members"), "sheet"),
})


def problem(code: str, sheet: str, cell: str, value: object = "", **extra: object) -> Problem:
    """Make a Problem with its message filled in; the severity and the scope follow the code."""
    shown = "" if value is None else _show(value)
    message = MESSAGES[code].format(value=shown, **extra)
    severity: Severity = "warning" if code in WARNINGS else "error"
    return Problem(severity, code, sheet, cell, shown, message, SCOPES.get(code, "cell"))


def _show(value: object) -> str:
    if isinstance(value, float) and value != value:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if hasattr(value, "isoformat"):
        return value.isoformat()[:10]  # type: ignore[union-attr]
    return str(value)
