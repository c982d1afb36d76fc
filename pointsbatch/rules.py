"""The scoring rules as data: the bundled rules.toml (RULES.md) loaded into frozen, validated objects."""

from __future__ import annotations

import hashlib
import math
import tomllib
from dataclasses import dataclass, replace
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

from .numbers import number_text as _num
from .workbook import spec


class RulesError(Exception):
    """A rules file that cannot be used; the message names the setting, in Chinese."""


@dataclass(frozen=True)
class BaseItem:
    key: str
    name: str
    points: float


@dataclass(frozen=True)
class BaseRules:
    prorate: bool
    items: tuple[BaseItem, ...]

    def points(self) -> dict[str, float]:
        return {i.key: i.points for i in self.items}

    def names(self) -> dict[str, str]:
        return {i.key: i.name for i in self.items}


@dataclass(frozen=True)
class IncentiveRules:
    leading_multiplier: float
    item_cap: float
    cap_grows_with_multiplier: bool
    total_cap: float
    activity_max: float
    step: float

    def effective_item_cap(self) -> float:
        return self.item_cap * (self.leading_multiplier if self.cap_grows_with_multiplier else 1)


@dataclass(frozen=True)
class NegativeRules:
    deduction_per_occurrence: float


@dataclass(frozen=True)
class VetoRules:
    absence_months: int
    absence_items: tuple[str, ...]
    grid_condition: str
    dues_warning_months: int


@dataclass(frozen=True)
class GradeRules:
    pass_mark: float
    honours_mark: float
    excellent_mark: float
    max_reward_rate: float
    decimals: int
    boundary_margin: float


@dataclass(frozen=True)
class SupervisionRules:
    """When the town's view of its branches (督促检查) adds a hint; nothing here changes a score."""

    unlikely_attendance: float = 1.0  # an attendance rate at or above this looks unlikely
    exempt_share: float = 0.2  # an exempt share of the members above this is named
    min_incentive_activities: int = 1  # fewer incentive activities logged in the period than this are named


@dataclass(frozen=True)
class Lists:
    """The closed lists the 办法 names (RULES.md, "Names and lists are rules too"), numbers filled in."""

    incentive_items: tuple[str, ...]
    negative_cases: tuple[str, ...]
    veto_conditions: tuple[str, ...]
    exempt_reasons: tuple[str, ...]
    age_reason: str  # the exemption reason that needs a birth date and the age
    dues_condition: str  # the veto condition that six unpaid months remind of

    def choices(self) -> dict[str, spec.Choice]:
        """The drop-downs these lists replace, by the spec's range name; the spec's extra spellings are kept where
        they still name a value of the list."""
        out = {}
        for default, values in ((spec.INCENTIVE_ITEM, self.incentive_items), (spec.NEGATIVE_CASE, self.negative_cases),
                                (spec.VETO_CONDITION, self.veto_conditions), (spec.EXEMPT_REASON, self.exempt_reasons)):
            aliases = tuple((a, v) for a, v in default.aliases if v in values and a not in values)
            out[default.range_name] = spec.Choice(default.range_name, values, aliases)
        return out


@dataclass(frozen=True)
class Rules:
    name: str
    digest: str
    exempt_age: int
    base: BaseRules
    incentive: IncentiveRules
    negative: NegativeRules
    veto: VetoRules
    grades: GradeRules
    notice_days: int
    lists: Lists
    supervision: SupervisionRules = SupervisionRules()
    town: str = ""  # the town's name, for headings; blank: the headings name no town

    @property
    def title(self) -> str:
        """The 办法's full name as headings cite it: the town's name, then the 办法's."""
        return self.town + self.name

    def choice(self, choice: spec.Choice) -> spec.Choice:
        """The closed list a column offers under these rules (the rules file's own lists replace the spec's)."""
        return self.choices.get(choice.range_name, choice)

    @cached_property
    def choices(self) -> dict[str, spec.Choice]:
        return {c.range_name: c for c in spec.CHOICES} | self.lists.choices()

    def words(self) -> dict[str, str]:
        """The numbers and labels that sentences for people quote ({exempt_age}, {age_reason}, ...)."""
        return {**_numbers(self), "age_reason": self.lists.age_reason,
                "grid_condition": self.veto.grid_condition, "dues_condition": self.lists.dues_condition}

    def base_max(self) -> float:
        """The most base points the grid's events can give in a year."""
        points = self.base.points()
        return float(sum(points[e.item] for e in spec.GRID_EVENTS))

    def summary(self, graded: bool = True) -> list[tuple[str, str]]:
        """The settings as (说明, 值) pairs, for the sheet that states the rules applied; without the grades' marks
        and the reward for a period that is not graded (the half year)."""
        b, i, g = self.base, self.incentive, self.grades
        rows = [("积分办法", self.title), ("规则文件摘要", self.digest[:16])]
        rows += [(f"基础分：{item.name}（每次）", _num(item.points)) for item in b.items]
        rows += [
            ("基础分满分", _num(self.base_max())),
            ("不适用活动按比例折算", "是" if b.prorate else "否"),
            ("带头作用倍数", _num(i.leading_multiplier)),
            ("激励分单项封顶", _num(i.item_cap)),
            ("单项封顶随倍数增长", (f"是，仅限带头的活动：不带头的活动合计不超过{_num(i.item_cap)}分，连同带头的活动"
                                f"（已加倍）合计不超过{_num(i.effective_item_cap())}分")
             if i.cap_grows_with_multiplier else "否"),
            ("激励分合计上限", _num(i.total_cap)),
            ("每次活动得分范围", f"0～{_num(i.activity_max)}，以{_num(i.step)}分为单位"),
            ("负面清单每次扣分", _num(self.negative.deduction_per_occurrence)),
            ("连续不参加组织生活否决月数", str(self.veto.absence_months)),
            ("免于积分管理年龄", f"{self.exempt_age}周岁"),
        ]
        if graded:
            rows += [
                ("合格分数线", _num(g.pass_mark)),
                ("评先评优分数线", _num(g.honours_mark)),
                ("优秀分数线", _num(g.excellent_mark)),
                ("奖励标准上限（元/分）", _num(g.max_reward_rate)),
            ]
        rows.append(("公示天数不少于", str(self.notice_days)))
        return rows


BUNDLED = "rules.toml"


def load_rules(path: Path | None = None) -> Rules:
    """Load and validate a rules file; the bundled one (RULES.md's defaults) when no path is given."""
    if path is None:
        data = resources.files("pointsbatch").joinpath(BUNDLED).read_bytes()
        source = BUNDLED
    else:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise RulesError(f"无法读取规则文件 {path}：{exc.strerror or exc}") from exc
        source = str(path)
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise RulesError(f"规则文件 {source} 格式有误：{exc}") from exc
    return _build(doc, hashlib.sha256(data).hexdigest())


class _Reader:
    """Reads settings by dotted name, so every error names the setting it is about."""

    def __init__(self, doc: dict[str, Any]):
        self.doc = doc

    def get(self, name: str, kind: type, *, lo: float | None = None, hi: float | None = None,
            above: float | None = None) -> Any:
        """The setting `name`, of `kind`, within [lo, hi] and greater than `above` (where zero means nothing)."""
        node: Any = self.doc
        for part in name.split("."):
            if not isinstance(node, dict) or part not in node:
                raise RulesError(f"规则文件缺少设置项 {name}")
            node = node[part]
        if kind is float and isinstance(node, int) and not isinstance(node, bool):
            node = float(node)
        if kind is float and isinstance(node, float) and not math.isfinite(node):
            raise RulesError(f"规则文件设置项 {name} 的值 {node} 不是有限的数字")
        if not isinstance(node, kind) or (kind is not bool and isinstance(node, bool)):
            raise RulesError(f"规则文件设置项 {name} 的值 {node!r} 类型不对，应为{_KIND_NAMES[kind]}")
        if isinstance(node, float) and not math.isfinite(node):
            raise RulesError(f"规则文件设置项 {name} 的值 {node} 不是一个确定的数字，应为{_KIND_NAMES[kind]}")
        if lo is not None and node < lo:  # type: ignore[operator]
            raise RulesError(f"规则文件设置项 {name} 的值 {node} 不能小于 {lo}")
        if hi is None and isinstance(node, (int, float)) and not isinstance(node, bool):
            hi = SANE_CEILING  # points, marks, caps and yuan on a 100-point scale: 1e308 would overflow the sums
        if hi is not None and node > hi:  # type: ignore[operator]
            raise RulesError(f"规则文件设置项 {name} 的值 {node} 不能大于 {hi}")
        if above is not None and node <= above:  # type: ignore[operator]
            raise RulesError(f"规则文件设置项 {name} 的值 {node} 应大于 {above}")
        if isinstance(node, str) and not node.strip():
            raise RulesError(f"规则文件设置项 {name} 不能为空")
        if isinstance(node, list) and not node:
            raise RulesError(f"规则文件设置项 {name} 是空列表，至少要有一项")
        return node

    def optional(self, name: str, kind: type, default: Any, *, blank: bool = False) -> Any:
        """A setting that older rules files lack: `default` when absent, checked like `get` when present;
        `blank`: an empty text is a value (it means "none"), not a mistake."""
        node: Any = self.doc
        for part in name.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        if blank and node == "":
            return ""
        return self.get(name, kind)


SANE_CEILING = 10_000  # no number of a points system on a 100-point scale comes near it

_KIND_NAMES = {float: "数字", int: "整数", bool: "true 或 false", str: "文字", list: "列表"}


def _build(doc: dict[str, Any], digest: str) -> Rules:
    r = _Reader(doc)
    raw_items = r.get("base.items", list)
    items = []
    for n, raw in enumerate(raw_items):
        ir = _Reader(raw if isinstance(raw, dict) else {})
        try:
            items.append(BaseItem(ir.get("key", str), ir.get("name", str), ir.get("points", float, above=0)))
        except RulesError as exc:
            raise RulesError(str(exc).replace("设置项 ", f"设置项 base.items[{n}].")) from None
    keys = {i.key for i in items}
    needed = {e.item for e in spec.GRID_EVENTS}
    if keys != needed or len(items) != len(keys):
        raise RulesError(f"规则文件设置项 base.items 应恰好包含 {', '.join(sorted(needed))}")
    absence_items = tuple(r.get("veto.absence_items", list))
    if len(set(map(repr, absence_items))) != len(absence_items):
        raise RulesError("规则文件设置项 veto.absence_items 中有重复的项目")
    unknown = [k for k in absence_items if k not in keys]
    if unknown:
        raise RulesError(f"规则文件设置项 veto.absence_items 含有未知项目 {', '.join(map(str, unknown))}")
    incentive = IncentiveRules(
        leading_multiplier=r.get("incentive.leading_multiplier", float, lo=1),
        item_cap=r.get("incentive.item_cap", float, above=0),
        cap_grows_with_multiplier=r.get("incentive.cap_grows_with_multiplier", bool),
        total_cap=r.get("incentive.total_cap", float, above=0),
        activity_max=r.get("incentive.activity_max", float, above=0),
        step=r.get("incentive.step", float, lo=0.01),
    )
    if incentive.step > incentive.activity_max:
        raise RulesError("规则文件设置项 incentive.step 不能大于 incentive.activity_max")
    grades = GradeRules(
        pass_mark=r.get("grades.pass_mark", float, above=0),
        honours_mark=r.get("grades.honours_mark", float, lo=0),
        excellent_mark=r.get("grades.excellent_mark", float, lo=0),
        max_reward_rate=r.get("grades.max_reward_rate", float, lo=0),
        decimals=r.get("grades.decimals", int, lo=0, hi=2),
        boundary_margin=r.get("grades.boundary_margin", float, lo=0),
    )
    if not grades.pass_mark <= grades.honours_mark <= grades.excellent_mark:
        raise RulesError("规则文件设置项 grades.pass_mark ≤ honours_mark ≤ excellent_mark 的顺序不对")
    rules = Rules(
        town=r.optional("town", str, "", blank=True),
        lists=Lists((), (), (), (), "", ""),  # (filled below: the lists quote the numbers above)
        name=r.get("name", str),
        digest=digest,
        exempt_age=r.get("scope.exempt_age", int, lo=1, hi=150),
        base=BaseRules(prorate=r.get("base.prorate", bool), items=tuple(items)),
        incentive=incentive,
        negative=NegativeRules(r.get("negative.deduction_per_occurrence", float, lo=0)),
        veto=VetoRules(
            absence_months=r.get("veto.absence_months", int, lo=1, hi=12),
            absence_items=absence_items,
            grid_condition="",
            dues_warning_months=r.get("veto.dues_warning_months", int, lo=1, hi=12),
        ),
        grades=grades,
        notice_days=r.get("notice.days", int, lo=1, hi=365),
        supervision=_supervision(r),
    )
    numbers = _numbers(rules)
    lists = _lists(r, numbers)
    grid_condition = _label(r.get("veto.grid_condition", str), "veto.grid_condition", numbers)
    if grid_condition not in lists.veto_conditions:
        raise RulesError(f"规则文件设置项 veto.grid_condition 应为 veto.conditions 中的一项，而不是 {grid_condition}")
    return replace(rules, lists=lists, veto=replace(rules.veto, grid_condition=grid_condition))


def _supervision(r: _Reader) -> SupervisionRules:
    """The [supervision] settings; a rules file written before they existed gets the bundled defaults."""
    if "supervision" not in r.doc:
        return SupervisionRules()
    return SupervisionRules(
        unlikely_attendance=r.get("supervision.unlikely_attendance", float, lo=0, hi=1),
        exempt_share=r.get("supervision.exempt_share", float, lo=0, hi=1),
        min_incentive_activities=r.get("supervision.min_incentive_activities", int, lo=0),
    )


def _numbers(rules: Rules) -> dict[str, str]:
    """What a label's {placeholder} may quote: the settings' numbers, as the outputs write them."""
    i, g = rules.incentive, rules.grades
    return {"exempt_age": str(rules.exempt_age), "absence_months": str(rules.veto.absence_months),
            "dues_warning_months": str(rules.veto.dues_warning_months), "max_reward_rate": _num(g.max_reward_rate),
            "item_cap": _num(i.item_cap), "deduction_per_occurrence": _num(rules.negative.deduction_per_occurrence),
            "leading_multiplier": _num(i.leading_multiplier), "notice_days": str(rules.notice_days)}


def _label(text: str, setting: str, numbers: dict[str, Any]) -> str:
    """A label with the settings' numbers filled in ("年满{exempt_age}周岁" -> "年满75周岁")."""
    try:
        filled = text.format_map(numbers)
    except (KeyError, ValueError, IndexError, AttributeError) as exc:
        raise RulesError(f"规则文件设置项 {setting} 的「{text}」中有无法识别的占位符（{exc}），"
                         f"可用的有：{'、'.join('{' + k + '}' for k in numbers)}") from None
    filled = filled.strip()
    if not filled:
        raise RulesError(f"规则文件设置项 {setting} 不能为空")
    return filled


# the lists a rules file may leave out (older files do): the 办法's own, as the spec spells them
_DEFAULT_LISTS = {
    "scope.exempt_reasons": ("年满{exempt_age}周岁", "身体不便"),
    "scope.age_reason": "年满{exempt_age}周岁",
    "incentive.items": spec.INCENTIVE_ITEM.values,
    "negative.cases": spec.NEGATIVE_CASE.values,
    "veto.conditions": ("连续{absence_months}个月不参加组织生活",) + spec.VETO_CONDITION.values[1:],
    "veto.dues_condition": "拒绝交纳党费",
}


def _lists(r: _Reader, numbers: dict[str, Any]) -> Lists:
    def one_list(name: str, size: int | None = None) -> tuple[str, ...]:
        raw = r.optional(name, list, _DEFAULT_LISTS[name])
        if not raw or not all(isinstance(v, str) for v in raw):
            raise RulesError(f"规则文件设置项 {name} 应为不空的文字列表")
        values = tuple(_label(v, name, numbers) for v in raw)
        if len(set(values)) != len(values):
            raise RulesError(f"规则文件设置项 {name} 中有重复的项")
        if size is not None and len(values) != size:
            raise RulesError(f"规则文件设置项 {name} 应有{size}项，现有{len(values)}项")
        return values

    def member_of(name: str, values: tuple[str, ...], of: str) -> str:
        value = _label(r.optional(name, str, _DEFAULT_LISTS[name]), name, numbers)
        if value not in values:
            raise RulesError(f"规则文件设置项 {name} 应为 {of} 中的一项，而不是 {value}")
        return value

    reasons = one_list("scope.exempt_reasons")
    conditions = one_list("veto.conditions")
    return Lists(
        incentive_items=one_list("incentive.items"), negative_cases=one_list("negative.cases"),
        veto_conditions=conditions, exempt_reasons=reasons,
        age_reason=member_of("scope.age_reason", reasons, "scope.exempt_reasons"),
        dues_condition=member_of("veto.dues_condition", conditions, "veto.conditions"),
    )


@dataclass(frozen=True)
class Period:
    """A scoring period of the year: the annual run or the half-year run (January-June)."""

    key: str
    label: str
    last_month: int
    info_date_key: str  # the 支部信息 key holding the committee's approval date

    @property
    def graded(self) -> bool:
        """Grades, 评先评优 and rewards are defined on the year's score only (RULES.md, the cycle)."""
        return self.last_month == 12

    def of(self, year: int | None) -> str:
        """The period as a heading names it: 2026年度, 2026年上半年 (names.period_title, for templates)."""
        from .names import period_title

        return period_title(year or None, self.key)


PERIODS = {
    "annual": Period("annual", "年度", 12, "annual_date"),
    "h1": Period("h1", "上半年", 6, "h1_date"),
}
