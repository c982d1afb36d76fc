"""The one description of the standard branch workbook (WORKBOOK.md).

The reader, the pandera schemas, the template's drop-downs and the marked copy are all made from the tables
here: changing a header or a drop-down list is a one-line change in this file.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from types import MappingProxyType
from typing import Literal

Kind = Literal["text", "name", "int", "number", "date", "choice", "score"]

# --- closed lists (each is a drop-down in the template, drawn from a named range on a hidden sheet) ---------


@dataclass(frozen=True)
class Choice:
    """A closed list: canonical values, extra spellings accepted on reading, and the template's named range."""

    range_name: str
    values: tuple[str, ...]
    aliases: tuple[tuple[str, str], ...] = ()

    @cached_property
    def spellings(self) -> MappingProxyType:
        """Every accepted spelling mapped to its canonical value."""
        return MappingProxyType({**{v: v for v in self.values}, **dict(self.aliases)})

    def lookup(self) -> MappingProxyType:
        return self.spellings


def _choice(range_name: str, values: tuple[str, ...], aliases: dict[str, str] | None = None) -> Choice:
    return Choice(range_name, values, tuple((aliases or {}).items()))


MARK = _choice(
    "列表_出勤",
    ("√", "×", "假", "/"),
    {
        **{s: "√" for s in ("✓", "✔", "是", "1", "Y", "y")},
        **{s: "×" for s in ("✗", "✘", "否", "0", "N", "n", "X", "x")},
        "请假": "假",
        **{s: "/" for s in ("不适用", "无", "-", "—")},
    },
)
# What the marks mean, in the codes the scorer uses.
MARK_CODES = MappingProxyType({"√": "attended", "×": "absent", "假": "leave", "/": "na"})

YES_NO = _choice("列表_是否", ("是", "否"), {"Y": "是", "y": "是", "N": "否", "n": "否", "√": "是", "×": "否"})
CATEGORY = _choice("列表_党员类别", ("正式党员", "预备党员"), {"正式": "正式党员", "预备": "预备党员"})
GENDER = _choice("列表_性别", ("男", "女"))
# The four lists below are the bundled rules' defaults: the rules file's own lists replace them (Rules.choice).
EXEMPT_REASON = _choice("列表_免积分原因", ("年满75周岁", "身体不便"))
INCENTIVE_ITEM = _choice(
    "列表_激励项目",
    (
        "革命传统教育",
        "理论学习心得",
        "党员议事会",
        "红色家访党群串门",
        "志愿服务",
        "党史知识竞赛",
        "结对帮扶",
        "基层治理项目",
        "年度重点工作",
        "上级表彰",
    ),
    {"红色家访、党群串门": "红色家访党群串门", "红色家访": "红色家访党群串门", "志愿服务队": "志愿服务"},
)
NEGATIVE_CASE = _choice(
    "列表_负面情形", ("参与赌博", "宗教活动", "传播谣言", "违背中央精神言论", "不服从有关规定")
)
VETO_CONDITION = _choice(
    "列表_否决情形",
    (
        "连续6个月不参加组织生活",
        "拒绝交纳党费",
        "信仰宗教未转变",
        "信仰邪教",
        "黄赌毒酒驾受处分",
        "其他恶劣影响",
    ),
)
CHOICES: tuple[Choice, ...] = (
    MARK,
    YES_NO,
    CATEGORY,
    GENDER,
    EXEMPT_REASON,
    INCENTIVE_ITEM,
    NEGATIVE_CASE,
    VETO_CONDITION,
)

# --- columns and sheets ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """One column of a table sheet: its exact header, how its cells are read, and how the template offers it."""

    header: str
    key: str
    kind: Kind = "text"
    required: bool = False
    choice: Choice | None = None
    width: int = 12
    help: str = ""  # may quote the rules' numbers and labels: {age_reason}, {max_reward_rate} (Rules.words)
    added: bool = False  # added to the template later: a workbook made from an older one may lack the column
    years_after: int = 0  # a date may fall this many years after the assessment year (an objection in January)


@dataclass(frozen=True)
class TableSheet:
    """A sheet holding one table: header in row 1, one record a row from `first_row` on."""

    name: str
    key: str
    columns: tuple[Column, ...]
    required: bool = True
    first_row: int = 2
    template_rows: int = 2000
    main_key: str = "name"  # the column a ledger row points at

    def column(self, key: str) -> Column:
        return next(c for c in self.columns if c.key == key)


@dataclass(frozen=True)
class InfoKey:
    """One key of the 支部信息 sheet (key in column A, value in column B)."""

    label: str
    key: str
    kind: Kind = "text"
    required: bool = False
    help: str = ""


SEQ = Column("序号", "seq", "int", required=True, width=7, help="名册中的序号，整数，不重复")
NAME = Column("姓名", "name", "name", required=True, width=10, help="与党员名册一致")
LOG_SEQ = Column("序号", "seq", "int", width=7, help="可不填；名册中有同名党员时必填")
LOG_NAME = Column("姓名", "name", "name", required=True, width=10, help="与党员名册一致")
LOG_DATE = Column("日期", "date", "date", required=True, width=12, help="本年度内的日期，如 2026-03-05")

INFO_SHEET = "支部信息"
INFO_KEYS: tuple[InfoKey, ...] = (
    InfoKey("支部名称", "branch", "text", required=True, help="按镇党委支部名录的写法填写"),
    InfoKey("年度", "year", "int", required=True, help="考核年度，如 2026"),
    InfoKey("积分记录员", "recorder", "name", required=True, help="一般为支部组织委员"),
    InfoKey("支部书记", "secretary", "name"),
    InfoKey("联系邮箱", "email", "text", help="镇支部名录中有邮箱的，以名录为准"),
    InfoKey("上半年核定日期", "h1_date", "date", help="支委会核定上半年积分的日期；上半年计分时必填"),
    InfoKey("年度核定日期", "annual_date", "date", help="支委会核定年度积分的日期；年度计分时必填"),
    InfoKey("奖励标准（元/分）", "rate", "number", help="每分奖励的元数，不高于{max_reward_rate}元；不发放可不填"),
)

ROSTER = TableSheet(
    "党员名册",
    "roster",
    (
        SEQ,
        NAME,
        Column("性别", "gender", "choice", choice=GENDER, width=6),
        Column("出生日期", "birth", "date", width=12, help="以“{age_reason}”免积分时必填"),
        Column("党员类别", "category", "choice", required=True, choice=CATEGORY, width=10),
        Column("入党日期", "joined", "date", width=12, help="本年度入党的，入党前的活动填“/”"),
        Column("转入日期", "transfer_in", "date", width=12, added=True,
               help="本年度组织关系转入本支部的日期；转入前的活动填“/”"),
        Column("转出日期", "transfer_out", "date", width=12, added=True,
               help="本年度组织关系转出本支部的日期；转出后的活动填“/”"),
        Column("免于积分管理", "exempt", "choice", choice=YES_NO, width=12, help="是 / 否，空白视为否"),
        Column("免积分原因", "exempt_reason", "choice", choice=EXEMPT_REASON, width=12, help="免于积分管理为“是”时必填"),
        Column("备注", "note", "text", width=20),
    ),
    template_rows=200,
)

INCENTIVE = TableSheet(
    "激励积分",
    "incentive",
    (
        LOG_DATE,
        LOG_SEQ,
        LOG_NAME,
        Column("项目", "item", "choice", required=True, choice=INCENTIVE_ITEM, width=16),
        Column("活动内容", "content", "text", width=28),
        Column("得分", "points", "score", required=True, width=7, help="填写加倍前的分数"),
        Column("带头作用", "leading", "choice", choice=YES_NO, width=9, help="起带头、组织、主导作用的填“是”，双倍计分"),
        Column("备注", "note", "text", width=20),
    ),
    required=True,
    main_key="points",
)

NEGATIVE = TableSheet(
    "负面清单",
    "negative",
    (
        LOG_DATE,
        LOG_SEQ,
        LOG_NAME,
        Column("情形", "case", "choice", required=True, choice=NEGATIVE_CASE, width=16),
        Column("具体情况", "detail", "text", width=28),
        Column("核实人", "verifier", "name", width=10),
        Column("备注", "note", "text", width=20),
    ),
    main_key="case",
)

VETO = TableSheet(
    "一票否决",
    "veto",
    (
        LOG_DATE,
        LOG_SEQ,
        LOG_NAME,
        Column("情形", "condition", "choice", required=True, choice=VETO_CONDITION, width=22),
        Column("处理依据", "basis", "text", width=28),
        Column("备注", "note", "text", width=20),
    ),
    main_key="condition",
)

OBJECTIONS = TableSheet(
    "异议处理",
    "objections",
    (
        # the annual 公示 is held after the year ends, so an objection is often dated the next January
        Column("日期", "date", "date", width=12, years_after=1, help="异议提出的日期；年度公示在次年，可填次年的日期"),
        Column("姓名", "name", "name", width=10),
        Column("异议内容", "content", "text", width=30),
        Column("核实情况", "finding", "text", width=30),
        Column("处理结果", "outcome", "text", width=30),
    ),
    required=False,
    template_rows=200,
)

LOG_SHEETS: tuple[TableSheet, ...] = (INCENTIVE, NEGATIVE, VETO)
TABLE_SHEETS: tuple[TableSheet, ...] = (ROSTER, INCENTIVE, NEGATIVE, VETO, OBJECTIONS)

# --- the attendance grid (基础积分) ----------------------------------------------------------------------------

GRID_SHEET = "基础积分"
GRID_DATE_LABEL = "活动日期"
GRID_FIRST_ROW = 3
QUARTERS = ("一", "二", "三", "四")


@dataclass(frozen=True)
class GridEvent:
    """One column of the attendance grid: an event of a base item, and the month it belongs to by default."""

    header: str
    item: str  # key of a base item in the rules file
    default_month: int
    dues: bool = False


def _grid_events() -> tuple[GridEvent, ...]:
    events = [GridEvent(f"党费{m}月", "dues", m, dues=True) for m in range(1, 13)]
    events += [GridEvent(f"活动日{m}月", "activity_day", m) for m in range(1, 13)]
    events += [GridEvent(f"党课{q}季度", "lecture", 3 * (i + 1)) for i, q in enumerate(QUARTERS)]
    events += [GridEvent(f"党员大会{q}季度", "congress", 3 * (i + 1)) for i, q in enumerate(QUARTERS)]
    events += [GridEvent("组织生活会上半年", "org_life", 6), GridEvent("组织生活会下半年", "org_life", 12)]
    events += [GridEvent("民主评议", "evaluation", 12), GridEvent("承诺践诺", "pledge", 12)]
    return tuple(events)


GRID_EVENTS: tuple[GridEvent, ...] = _grid_events()
GRID_KEYS: tuple[Column, ...] = (SEQ, NAME)

SHEET_HELP = MappingProxyType(
    {
        INFO_SHEET: "A列为项目，B列填写内容。带*的为必填项。",
        GRID_SHEET: "第1行为表头，第2行填写每次活动的日期（可不填），第3行起每名党员一行，序号、姓名与名册一致。"
        "每格从下拉框选择：√ 参加（党费为足额缴纳）、× 无故缺席（党费为未足额缴纳）、假 请假（党费不可用）、"
        "/ 不适用（尚未入党或已转出）。本计分期内的格子不能空白。",
    }
)

REQUIRED_SHEETS: tuple[str, ...] = (INFO_SHEET, ROSTER.name, GRID_SHEET, INCENTIVE.name, NEGATIVE.name, VETO.name)
GUIDE_SHEET = "填表说明"
LISTS_SHEET = "下拉列表"
