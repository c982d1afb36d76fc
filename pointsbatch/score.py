"""Score a validated branch: a ledger of every point given or taken, and the totals summed from it.

Everything is computed on whole tables (group-bys, clips, masks); the ledger is the single source the totals are
summed from, so any score can be traced to the cells behind it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from .names import EXCELLENT, EXEMPT, FAILED, PASSED
from .numbers import number_text as _n
from .rules import PERIODS, Period, Rules
from .validate import Branch
from .workbook import spec

LEDGER_COLUMNS = ["seq", "name", "part", "item", "sheet", "row", "cell", "raw", "multiplier", "points", "note", "date",
                  "code"]
PART_BASE, PART_INCENTIVE, PART_DEDUCTION, PART_VETO = "基础分", "激励分", "扣分", "一票否决"
PARTS = (PART_BASE, PART_INCENTIVE, PART_DEDUCTION, PART_VETO)

# What each ledger row is, for the code that reads the ledger (never its display text, which may be reworded).
BASE_ATTENDED = "base_attended"  # an item's attended events times its points
BASE_PRORATE = "base_prorate"  # the prorating for not-applicable events; `cell` lists them
INCENTIVE_ACTIVITY = "incentive_activity"  # one logged activity, times the leading multiplier
INCENTIVE_ITEM_CAP = "incentive_item_cap"  # what an item's cap does not count
INCENTIVE_TOTAL_CAP = "incentive_total_cap"  # what the incentive total's cap does not count
DEDUCTION = "deduction"  # one logged occurrence of the negative list
DEDUCTION_FLOOR = "deduction_floor"  # 扣完为止: what the deductions took below 0, given back
VETO = "veto"  # the score taken back to 0


@dataclass
class Scores:
    """One branch's result for one period: a row per member, the ledger, and the flags for a second look."""

    period: Period
    members: pd.DataFrame
    ledger: pd.DataFrame
    flags: pd.DataFrame
    base_max: float = 0.0  # the most base points this branch's grid gives in the period (27 for a default half)


def round_half_up(values: pd.Series | float, decimals: int) -> pd.Series | float:
    """Half-up rounding at the very end (Python's round() is half-even, and floats need a nudge)."""
    factor = 10**decimals
    return np.floor(np.asarray(values, dtype=float) * factor + 0.5 + 1e-9) / factor if isinstance(
        values, pd.Series
    ) else math.floor(values * factor + 0.5 + 1e-9) / factor


def score_branch(branch: Branch, rules: Rules, period: str = "annual") -> Scores:
    return score_branches([branch], rules, period)[0]


def score_branches(branches: list[Branch], rules: Rules, period: str = "annual", detail: bool = True) -> list[Scores]:
    """Score many branches in one pass over their stacked tables; the same result as one branch at a time.

    `detail=False` gives the members' totals only (the half-year scores an annual run shows): no second-look flags,
    and the ledger is left empty.

    Each member gets a key in the stacked tables, in (branch, 序号) order, so that every group-by sees one member
    per key and sorts as it would within one branch; the keys are turned back into 序号 when the result is split.
    """
    per = PERIODS[period]
    # a member's key: its position in the (branch, 序号)-sorted list of all members
    seqs = [np.unique(b.roster["seq"].to_numpy(dtype=np.int64)) for b in branches]
    seq_of = np.concatenate(seqs)
    branch_of = np.repeat(np.arange(len(branches)), [len(s) for s in seqs])
    members = branch_of * _SEQ_SPAN + seq_of  # sorted: branches in order, 序号 ascending within each
    rates = pd.Series(np.repeat([np.nan if b.info.rate is None else float(b.info.rate) for b in branches],
                                [len(s) for s in seqs]), dtype=float)
    tables = {}
    for name in ("roster", "attendance", "incentive", "negative", "veto"):
        frames = [getattr(b, name) for b in branches]
        owner = np.repeat(np.arange(len(branches)), [len(f) for f in frames])
        filled = [f for f in frames if len(f)] or frames[:1]
        table = pd.concat(filled, ignore_index=True) if len(filled) > 1 else filled[0].reset_index(drop=True)
        if len(table):
            table["seq"] = np.searchsorted(members, owner * _SEQ_SPAN + table["seq"].to_numpy(dtype=np.int64))
        if name == "attendance":
            table["branch"] = owner
        tables[name] = table
    whole = _score(tables, rules, per, rates, detail)
    att = tables["attendance"]
    in_period = att[att["month"] <= per.last_month] if len(att) else att
    base_max = _held_points(in_period, _item_points(in_period, rules)) if len(in_period) else pd.Series(dtype=float)
    split = _split(whole, branch_of, seq_of, len(branches), detail)
    for b, part in enumerate(split):
        part.base_max = float(base_max.get(b, 0.0))
    return split


_SEQ_SPAN = 1 << 32  # above any 序号 a workbook can hold


def _score(t: dict[str, pd.DataFrame], rules: Rules, per: Period, rates: pd.Series, detail: bool) -> Scores:
    roster = t["roster"]
    scored = roster[~roster["exempt"]]
    names = dict(zip(roster["seq"], roster["name"], strict=True))
    seqs = scored["seq"]
    att = t["attendance"]
    att = att[(att["month"] <= per.last_month) & att["seq"].isin(seqs)]
    absence = detect_absence_vetoes(att, rules, per)
    parts = [
        base_ledger(att, rules, detail),
        incentive_ledger(_in_period(t["incentive"], per, seqs), rules, detail),
        deduction_ledger(_in_period(t["negative"], per, seqs), rules),
    ]
    ledger = pd.concat([p for p in parts if not p.empty], ignore_index=True) if any(
        not p.empty for p in parts) else _empty_ledger()
    ledger = pd.concat([ledger, floor_ledger(ledger, rules)], ignore_index=True)
    vetoes = collect_vetoes(_in_period(t["veto"], per, seqs), absence, rules)
    ledger = pd.concat([ledger, veto_ledger(ledger, vetoes)], ignore_index=True)
    ledger["name"] = ledger["seq"].map(names) if detail else None
    if "date" not in ledger:  # only logged activities, deductions and vetoes carry a date
        ledger["date"] = None
    if detail:
        ledger = _by_member_then_item(ledger, rules)
    members = member_totals(roster, ledger, vetoes, rates, rules, per)
    flags = second_look_flags(members, ledger, absence, att, t["veto"], rules, names, per) if detail else \
        pd.DataFrame(columns=["seq", "name", "flag", "note"])
    return Scores(per, members, ledger[LEDGER_COLUMNS], flags)


def _split(whole: Scores, branch_of: np.ndarray, seq_of: np.ndarray, count: int, detail: bool = True) -> list[Scores]:
    """One Scores per branch, with the member keys turned back into 序号; rows keep their order."""

    def parts(frame: pd.DataFrame) -> dict[int, pd.DataFrame]:
        if frame.empty:
            return {}
        keys = frame["seq"].to_numpy(dtype=int)
        frame = frame.assign(seq=seq_of[keys])
        return {int(b): part.reset_index(drop=True) for b, part in frame.groupby(branch_of[keys], sort=False)}

    members = parts(whole.members)
    ledger, flags = (parts(whole.ledger), parts(whole.flags)) if detail else ({}, {})
    return [Scores(whole.period, members.get(b, whole.members.iloc[0:0]), ledger.get(b, whole.ledger.iloc[0:0]),
                   flags.get(b, whole.flags.iloc[0:0])) for b in range(count)]


def _by_member_then_item(ledger: pd.DataFrame, rules: Rules) -> pd.DataFrame:
    """The ledger in reading order: member by member; within one, base, incentive, deductions, veto, each item in
    the rules' order, and the rows a cap or floor adds after the item they concern."""
    order = [*rules.base.names().values(), *rules.lists.incentive_items, *rules.lists.negative_cases]
    rank = {item: i for i, item in enumerate(order)}
    keys = pd.DataFrame({"seq": ledger["seq"].to_numpy(),
                         "part": ledger["part"].map({p: i for i, p in enumerate(PARTS)}).to_numpy(),
                         "item": ledger["item"].map(rank).fillna(len(order)).to_numpy()})
    at = keys.sort_values(["seq", "part", "item"], kind="stable").index
    return ledger.iloc[at].reset_index(drop=True)


def _empty_ledger() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=float if c in ("raw", "multiplier", "points") else object)
                         for c in LEDGER_COLUMNS})


def _in_period(log: pd.DataFrame, per: Period, seqs: pd.Series) -> pd.DataFrame:
    if log.empty:
        return log
    months = np.fromiter((d.month for d in log["date"].tolist()), dtype=int, count=len(log))
    return log[(months <= per.last_month) & log["seq"].isin(seqs)]


def base_ledger(att: pd.DataFrame, rules: Rules, detail: bool = True) -> pd.DataFrame:
    """One row per member and base item: the attended events times the item's points; then the prorating."""
    if att.empty:
        return _empty_ledger()
    names = rules.base.names()
    codes, items = pd.factorize(att["item"].to_numpy(dtype=object))
    att = att.assign(value=_item_points(att, rules, codes, items))
    is_attended = (att["mark"] == "attended").to_numpy()
    attended = att[is_attended]
    # a group per (member, item), numbered in order of first appearance (what groupby(sort=False) lists)
    group, _keys = pd.factorize(attended["seq"].to_numpy(dtype=np.int64) * max(len(items), 1) + codes[is_attended])
    first = np.unique(group, return_index=True)[1]
    value = attended["value"]
    count = np.bincount(group, minlength=len(first))
    each = value.to_numpy()[first]
    item_names = pd.Series(items).map(names).to_numpy()
    ledger = pd.DataFrame({
        "seq": attended["seq"].to_numpy()[first], "part": PART_BASE, "item": item_names[codes[is_attended][first]],
        "sheet": spec.GRID_SHEET, "row": attended["row"].to_numpy()[first],
        "cell": _cell_runs(group, attended["col"].to_numpy(), attended["cell"].to_numpy()) if detail else "",
        "raw": count.astype(float), "multiplier": each.astype(float),
        "points": value.groupby(group).sum().to_numpy().astype(float),
        "note": [_attended_note(c, e) for c, e in zip(count.tolist(), each.tolist(), strict=True)] if detail else "",
        "code": BASE_ATTENDED,
    })
    if not rules.base.prorate:
        return ledger
    # members with not-applicable events: earned * period_max / applicable_max (period_max: the branch's grid)
    period_max = _held_points(att, att["value"].to_numpy())
    is_na = att["mark"] == "na"
    per_member = att.assign(applicable=att["value"].where(~is_na, 0.0), na_count=is_na.astype(int)).groupby(
        "seq").agg(applicable=("applicable", "sum"), na_count=("na_count", "sum"), row=("row", "first"),
                   branch=("branch", "first"))
    earned = attended.groupby("seq")["value"].sum().reindex(per_member.index, fill_value=0.0)
    adjust = per_member[(per_member["na_count"] > 0)].copy()
    if adjust.empty:
        return ledger
    adjust["earned"] = earned
    adjust["period_max"] = adjust["branch"].map(period_max)
    factor = np.where(adjust["applicable"] > 0,
                      adjust["period_max"] / adjust["applicable"].where(adjust["applicable"] > 0, 1), 0)
    adjust["delta"] = adjust["earned"] * factor - adjust["earned"]
    if detail:  # the evidence: which cells were not applicable
        na = att[is_na]
        na_cells = dict(zip(na["seq"].drop_duplicates().tolist(), cell_ranges(na, ["seq"]).tolist(), strict=True))
    prorate = pd.DataFrame({
        "seq": adjust.index, "part": PART_BASE, "item": "不适用折算", "sheet": spec.GRID_SHEET,
        "row": adjust["row"].values, "cell": [na_cells[s] for s in adjust.index.tolist()] if detail else "",
        "raw": adjust["earned"].values, "multiplier": factor, "points": adjust["delta"].values,
        "note": [f"{int(n)}次活动不适用（尚未入党、转入或已转出），按 实得{_n(e)}分 × 满分{_n(m)}分 ÷ "
                 f"可参加活动的满分{_n(a)}分 折算"
                 for n, e, m, a in zip(adjust["na_count"], adjust["earned"], adjust["period_max"],
                                       adjust["applicable"], strict=True)] if detail else "",
        "code": BASE_PRORATE,
    })
    return pd.concat([ledger, prorate], ignore_index=True)


def _item_points(att: pd.DataFrame, rules: Rules, codes: np.ndarray | None = None,
                 items: np.ndarray | None = None) -> np.ndarray:
    """`att["item"].map(rules.base.points())` as an array: each mark's item numbered (one hash a mark), its points
    looked up once an item. `codes, items` is the item column factorized, when the caller has it."""
    if codes is None or items is None:
        codes, items = pd.factorize(att["item"].to_numpy(dtype=object))
    return pd.Series(items, dtype=object).map(rules.base.points()).to_numpy()[codes]


def _held_points(att: pd.DataFrame, value: np.ndarray) -> pd.Series:
    """Per branch, the sum of `value` over its events, each event once (at its first mark): what
    `att.drop_duplicates(["branch", "event"]).groupby("branch")["value"].sum()` gives."""
    events, held = pd.factorize(att["event"].to_numpy(dtype=object))
    branch = att["branch"].to_numpy()
    first = np.sort(np.unique(branch * max(len(held), 1) + events, return_index=True)[1])
    return pd.Series(value[first]).groupby(branch[first]).sum()


def cap_note(rules: Rules) -> str:
    """The note on the ledger row taking back what an item's cap does not count."""
    inc = rules.incentive
    if inc.cap_grows_with_multiplier:
        return (f"不带头的活动合计不超过{_n(inc.item_cap)}分，连同带头的活动（已加倍）合计不超过"
                f"{_n(inc.effective_item_cap())}分，超出部分不计")
    return f"单项封顶{_n(inc.item_cap)}分，超出部分不计"


@lru_cache(maxsize=1024)
def _attended_note(count: int, each: float) -> str:
    return f"参加{count}次，每次{_n(each)}分"


@lru_cache(maxsize=4096, typed=True)  # (typed: 1 and 1.0 read differently; a branch repeats its activities)
def _activity_note(content: object, leading: bool, multiplier: str) -> str:
    text = "" if content is None or content != content else str(content)
    if not leading:
        return text
    return f"{text}（带头作用，按{multiplier}倍计分）" if text else f"带头作用，按{multiplier}倍计分"


def counted_per_item(plain: pd.Series, led: pd.Series, rules: Rules) -> pd.Series:
    """What an item's activities count after its cap: `plain` and `led` are the item's sums of activities without
    and with a leading role (the latter already multiplied). The cap grows with the multiplier only for the led
    activities: the plain ones count up to item_cap, all of them together up to item_cap × multiplier."""
    inc = rules.incentive
    if not inc.cap_grows_with_multiplier:
        return (plain + led).clip(upper=inc.item_cap)
    return (plain.clip(upper=inc.item_cap) + led).clip(upper=inc.effective_item_cap())


def incentive_ledger(log: pd.DataFrame, rules: Rules, detail: bool = True) -> pd.DataFrame:
    """Each activity times the leading-role multiplier, then what the item cap and the total cap take back."""
    if log.empty:
        return _empty_ledger()
    inc = rules.incentive
    leading = log["leading"].to_numpy(dtype=bool)
    mult = np.where(leading, inc.leading_multiplier, 1.0)
    times = _n(inc.leading_multiplier)
    rows = pd.DataFrame({
        "seq": log["seq"].values, "part": PART_INCENTIVE, "item": log["item"].values,
        "sheet": spec.INCENTIVE.name, "row": log["row"].values,
        "cell": log["cell"].values, "raw": log["points"].values.astype(float),
        "multiplier": mult, "points": log["points"].values.astype(float) * mult,
        "note": [_activity_note(c, lead, times) for c, lead in zip(log["content"].tolist(), leading.tolist(),
                                                                     strict=True)] if detail else "",
        "code": INCENTIVE_ACTIVITY,
        "date": log["date"].values,
    })
    split = rows.assign(plain=np.where(leading, 0.0, rows["points"]), led=np.where(leading, rows["points"], 0.0))
    sums = split.groupby(["seq", "item"], sort=False)[["points", "plain", "led"]].sum().reset_index()
    sums["counted"] = counted_per_item(sums["plain"], sums["led"], rules)
    over = sums[sums["points"] > sums["counted"]]
    capped = pd.DataFrame({
        "seq": over["seq"], "part": PART_INCENTIVE, "item": over["item"], "sheet": spec.INCENTIVE.name,
        "row": pd.NA, "cell": "", "raw": over["points"], "multiplier": 1.0, "points": over["counted"] - over["points"],
        "note": cap_note(rules), "code": INCENTIVE_ITEM_CAP,
    })
    item_totals = sums.groupby("seq")["counted"].sum()
    over_total = item_totals[item_totals > inc.total_cap]
    total_capped = pd.DataFrame({
        "seq": over_total.index, "part": PART_INCENTIVE, "item": "激励分上限", "sheet": "",
        "row": pd.NA, "cell": "", "raw": over_total.values, "multiplier": 1.0,
        "points": inc.total_cap - over_total.values, "note": f"激励分合计不超过{_n(inc.total_cap)}分",
        "code": INCENTIVE_TOTAL_CAP,
    })
    return pd.concat([f for f in (rows, capped, total_capped) if not f.empty], ignore_index=True)


def deduction_ledger(log: pd.DataFrame, rules: Rules) -> pd.DataFrame:
    if log.empty:
        return _empty_ledger()
    each = rules.negative.deduction_per_occurrence
    return pd.DataFrame({
        "seq": log["seq"].values, "part": PART_DEDUCTION, "item": log["case"].values,
        "sheet": spec.NEGATIVE.name, "row": log["row"].values, "cell": log["cell"].values,
        "raw": 1.0, "multiplier": 1.0, "points": -each, "note": f"发现一次扣{_n(each)}分", "code": DEDUCTION,
        "date": log["date"].values,
    })


def floor_ledger(ledger: pd.DataFrame, rules: Rules) -> pd.DataFrame:
    """扣完为止: the score never goes below 0; the excess deduction is given back."""
    if ledger.empty:
        return _empty_ledger()
    totals = ledger.groupby("seq")["points"].sum()
    below = totals[totals < 0]
    return pd.DataFrame({
        "seq": below.index, "part": PART_DEDUCTION, "item": "扣完为止", "sheet": "", "row": pd.NA,
        "cell": "", "raw": below.values, "multiplier": 1.0, "points": -below.values,
        "note": "扣分超过所得分数，扣完为止", "code": DEDUCTION_FLOOR,
    }) if not below.empty else _empty_ledger()


def detect_absence_vetoes(att: pd.DataFrame, rules: Rules, per: Period) -> pd.DataFrame:
    """Veto 1 from the grid: `absence_months` consecutive months each with an unexcused absence and no attendance.

    A month with leave, attendance, or only not-applicable events breaks the run. Returns seq, start, end months.
    """
    org = att[att["item"].isin(rules.veto.absence_items)]
    if org.empty:
        return pd.DataFrame(columns=["seq", "start", "end"])
    flags = pd.DataFrame({"seq": org["seq"].values, "month": org["month"].values,
                          "attended": (org["mark"] == "attended").values, "absent": (org["mark"] == "absent").values})
    by_month = flags.groupby(["seq", "month"])[["attended", "absent"]].any()
    missed = (by_month["absent"] & ~by_month["attended"]).unstack(fill_value=False)
    missed = missed.reindex(columns=range(1, per.last_month + 1), fill_value=False).astype(bool)
    best, found_end = longest_runs(missed)
    hit = best >= rules.veto.absence_months
    return pd.DataFrame({"seq": missed.index[hit], "start": (found_end - best + 1)[hit], "end": found_end[hit]})


def longest_runs(months: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """For a table of booleans (a row a member, a column a month, in order): each row's longest run of True in
    consecutive columns, and the month that run ends in (the first such run on a tie)."""
    grid = months.to_numpy(dtype=bool)
    run = np.zeros(len(months), dtype=int)
    best = np.zeros(len(months), dtype=int)
    end = np.zeros(len(months), dtype=int)
    for i, month in enumerate(months.columns):  # twelve steps over all members at once
        run = np.where(grid[:, i], run + 1, 0)
        longer = run > best
        best = np.where(longer, run, best)
        end = np.where(longer, month, end)
    return best, end


def collect_vetoes(log: pd.DataFrame, absence: pd.DataFrame, rules: Rules) -> pd.DataFrame:
    """Every veto a member has: logged ones, and condition 1 detected from the grid (seq, condition, source, note).

    A condition both logged and found in the grid is one veto that keeps both pieces of evidence, months included."""
    frames = []
    if not log.empty:
        frames.append(pd.DataFrame({
            "seq": log["seq"].values, "condition": log["condition"].values, "sheet": spec.VETO.name,
            "row": log["row"].values, "note": [f"支部登记（{spec.VETO.name}第{r}行）" for r in log["row"].tolist()],
        }))
    if not absence.empty:
        frames.append(pd.DataFrame({
            "seq": absence["seq"].values, "condition": rules.veto.grid_condition, "sheet": spec.GRID_SHEET,
            "row": pd.NA,
            "note": [f"{s}月至{e}月连续{e - s + 1}个月无故未参加组织生活" for s, e in
                     zip(absence["start"], absence["end"], strict=True)],
        }))
    if not frames:
        return pd.DataFrame(columns=["seq", "condition", "sheet", "row", "note"])
    vetoes = pd.concat(frames, ignore_index=True)
    # (within one condition the evidence is joined by "，": "；" separates conditions, as the slips read them)
    return vetoes.groupby(["seq", "condition"], sort=False).agg(
        sheet=("sheet", "first"), row=("row", "first"), note=("note", "，".join)).reset_index()


def veto_ledger(ledger: pd.DataFrame, vetoes: pd.DataFrame) -> pd.DataFrame:
    """The year's score becomes 0: one row taking back whatever the member had."""
    if vetoes.empty:
        return _empty_ledger()
    totals = ledger.groupby("seq")["points"].sum() if not ledger.empty else pd.Series(dtype=float)
    first = vetoes.groupby("seq", sort=False).agg(
        condition=("condition", "；".join), note=("note", "；".join), sheet=("sheet", "first"), row=("row", "first"))
    current = totals.reindex(first.index, fill_value=0.0)
    return pd.DataFrame({
        "seq": first.index, "part": PART_VETO, "item": first["condition"].values, "sheet": first["sheet"].values,
        "row": first["row"].values, "cell": "", "raw": current.values, "multiplier": 1.0,
        "points": -current.values, "note": ("一票否决，年度积分为0分：" + first["note"]).values, "code": VETO,
    })


def member_totals(roster: pd.DataFrame, ledger: pd.DataFrame, vetoes: pd.DataFrame, rates: pd.Series,
                  rules: Rules, per: Period = PERIODS["annual"]) -> pd.DataFrame:
    """A row per member; `rates` is each member's branch's reward per point (NaN: none), by member key.

    Grades, 评先评优 and rewards are defined on the year's score only: a half-year row leaves them blank."""
    g = rules.grades
    by_part = ledger.groupby(["seq", "part"])["points"].sum().unstack(fill_value=0.0)
    by_part = by_part.reindex(columns=[PART_BASE, PART_INCENTIVE, PART_DEDUCTION, PART_VETO], fill_value=0.0)
    deductions = ledger[ledger["code"] == DEDUCTION].groupby("seq")["points"].sum()
    out = roster[["seq", "name", "category", "exempt", "row"]].copy().set_index("seq")
    exempt = out["exempt"]
    out["base"] = by_part[PART_BASE].reindex(out.index, fill_value=0.0)
    out["incentive"] = by_part[PART_INCENTIVE].reindex(out.index, fill_value=0.0)
    out["deductions"] = (-deductions).reindex(out.index, fill_value=0.0)
    exact = ledger.groupby("seq")["points"].sum().reindex(out.index, fill_value=0.0)
    out["total_exact"] = exact
    out["veto"] = vetoes.groupby("seq")["condition"].agg("；".join).reindex(out.index).fillna("")
    total = round_half_up(exact.clip(lower=0), g.decimals)
    out["total"] = total
    out["grade"] = np.select([total >= g.excellent_mark, total >= g.pass_mark], [EXCELLENT, PASSED], FAILED)
    out["honours"] = np.where(total >= g.honours_mark, "是", "否")
    rate = rates.reindex(out.index).to_numpy(dtype=float)
    out["reward"] = np.where((total >= g.pass_mark) & ~np.isnan(rate), np.round(total * rate, 2), np.nan)
    for col in ("base", "incentive", "deductions", "total", "total_exact", "reward"):
        out.loc[exempt, col] = np.nan
    if not per.graded:
        out["grade"], out["honours"], out["reward"] = "", "", np.nan
    out.loc[exempt, "grade"] = EXEMPT
    out.loc[exempt, "honours"] = ""
    out.loc[exempt, "veto"] = ""
    return out.reset_index()


def second_look_flags(members: pd.DataFrame, ledger: pd.DataFrame, absence: pd.DataFrame, att: pd.DataFrame,
                      veto_log: pd.DataFrame, rules: Rules, names: dict,
                      per: Period = PERIODS["annual"]) -> pd.DataFrame:
    """What a person must decide: totals just below a grade's mark (in a graded period), vetoes detected rather
    than logged, dues unpaid for months. An item's cap is explained in the ledger, not flagged."""
    g = rules.grades
    flags = []
    scored = members[~members["exempt"] & (members["veto"] == "")]
    for mark in (g.pass_mark, g.honours_mark, g.excellent_mark) if per.graded else ():
        near = scored[(scored["total"] < mark) & (scored["total"] >= mark - g.boundary_margin)]
        flags += [(s, "临界分数", f"总分{_n(t)}，比{_n(mark)}分线低{_n(round(mark - t, g.decimals))}分，"
                                  "请核对有无漏记或误记")
                  for s, t in zip(near["seq"], near["total"], strict=True)]
    logged = set(zip(veto_log["seq"], veto_log["condition"], strict=True)) if not veto_log.empty else set()
    for s, start, end in zip(absence["seq"], absence["start"], absence["end"], strict=True):
        if (s, rules.veto.grid_condition) not in logged:
            flags.append((s, "自动识别否决", f"根据基础积分表，{start}月至{end}月连续无故未参加组织生活，支部未登记，请核实"))
    dues = att[att["item"] == "dues"]
    if not dues.empty:
        unpaid = (dues["mark"] == "absent").groupby([dues["seq"], dues["month"]]).any().unstack(fill_value=False)
        unpaid = unpaid.reindex(columns=range(1, 13), fill_value=False)  # a month without a dues cell breaks a run
        best = pd.Series(longest_runs(unpaid)[0], index=unpaid.index)
        refused = {s for s, c in logged if c == rules.lists.dues_condition}
        for s in best.index[best >= rules.veto.dues_warning_months]:
            if s not in refused:
                flags.append((s, "党费提示", f"连续{int(best[s])}个月未足额缴纳党费，如经教育仍拒绝交纳，应登记一票否决"))
    frame = pd.DataFrame(flags, columns=["seq", "flag", "note"])
    frame.insert(1, "name", frame["seq"].map(names))
    return frame


def cell_ranges(cells: pd.DataFrame, by: list[str]) -> pd.Series:
    """Each group's cells (all on one grid row) as Excel ranges, C3,D3,E3,G3 -> C3:E3,G3.

    Groups are numbered in order of first appearance, as `groupby(by, sort=False)` lists them.
    """
    from openpyxl.utils.cell import column_index_from_string

    if "col" in cells:  # the grid's attendance carries its column numbers
        columns = cells["col"]
    else:
        letters = cells["cell"].str.rstrip("0123456789")
        columns = letters.map({text: column_index_from_string(text) for text in letters.unique()})
    return pd.Series(_cell_runs(cells.groupby(by, sort=False).ngroup().to_numpy(), columns.to_numpy(),
                                cells["cell"].to_numpy()), dtype=object)


def _cell_runs(group: np.ndarray, col: np.ndarray, cell: np.ndarray) -> list[str]:
    """`cell_ranges` of cells numbered by group (0, 1, … in order of first appearance)."""
    if not len(group):
        return []
    order = np.lexsort((col, group))  # by group, then column; a stable sort, as cells come
    group, col, cell = group[order], col[order], cell[order]
    starts = np.ones(len(group), dtype=bool)
    starts[1:] = (group[1:] != group[:-1]) | (col[1:] != col[:-1] + 1)
    first = np.flatnonzero(starts)
    last = np.append(first[1:] - 1, len(group) - 1)
    joined: list[str] = []
    previous = -1
    for g, a, b in zip(group[first].tolist(), cell[first].tolist(), cell[last].tolist(), strict=True):
        run = a if a == b else f"{a}:{b}"
        if g == previous:  # groups come sorted, each with at least one run
            joined[-1] += "," + run
        else:
            joined.append(run)
            previous = g
    return joined
