"""Generate the bundled sample workbooks in sample_workbooks/ (and the sample registry in examples/).

Five branches of different sizes with realistic names, attendance, activity logs, a few deductions, one veto,
one exempt member, a member who joined in July, and exactly one workbook with the mistakes recorders typically
make. Deterministic: the same seed gives the same files.

    python scripts/make_samples.py            # writes sample_workbooks/ and examples/支部名录.xlsx
    python scripts/make_samples.py --count 300 --out DIR   # many realistic workbooks (used by benchmarks/)
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
from pathlib import Path

from openpyxl import Workbook

from pointsbatch.rules import load_rules
from pointsbatch.workbook import spec
from pointsbatch.workbook.template import Filling, build_template, write_workbook

ROOT = Path(__file__).resolve().parent.parent
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
GIVEN = ("建国", "志强", "秀英", "桂兰", "国华", "建华", "玉梅", "海燕", "卫东", "红梅", "德明", "丽娟", "春生",
         "小平", "永刚", "金凤", "文华", "淑珍", "立新", "振华", "晓东", "雪梅", "明亮", "凤英", "国庆", "海涛",
         "俊杰", "婷婷", "浩然", "思远", "家豪", "欣怡", "子涵", "宇航", "雨萱", "志明", "秀兰", "永红", "军", "伟",
         "芳", "敏", "静", "磊", "洋", "勇", "艳", "杰", "娟", "涛")
BRANCHES = [
    ("城关村党支部", 10), ("青石社区党支部", 35), ("镇机关第一党支部", 60), ("红星村党支部", 85),
    ("镇中心学校党支部", 120),
]
MISTAKES_BRANCH = "青石社区党支部"
CONTENTS = {
    "革命传统教育": "参观县革命纪念馆", "理论学习心得": "撰写学习心得一篇", "党员议事会": "参加村务议事会",
    "红色家访党群串门": "走访困难群众家庭", "志愿服务": "参加环境整治志愿服务", "党史知识竞赛": "参加镇党史知识竞赛",
    "结对帮扶": "结对帮扶困难户", "基层治理项目": "参与道路修缮项目", "年度重点工作": "完成单位年度重点任务",
    "上级表彰": "获县级表彰",
}


def names(rng: random.Random, n: int) -> list[str]:
    seen: set[str] = set()
    out = []
    while len(out) < n:
        name = rng.choice(SURNAMES) + rng.choice(GIVEN)
        if name not in seen:
            seen.add(name)
            out.append(name)
    return out


def branch_filling(rng: random.Random, branch: str, size: int, year: int, with_veto: bool = False,
                   with_exempt: bool = False, activities: tuple[int, int] = (3, 13)) -> Filling:
    """A plausibly filled workbook: `size` members, each with `activities` (least, most) incentive entries."""
    people = names(rng, size)
    roster, grid = [], []
    dates = {}
    for e in spec.GRID_EVENTS:
        day = 10 + rng.randint(0, 15)
        month = e.default_month if e.item in ("dues", "activity_day", "evaluation", "pledge") else \
            e.default_month - rng.randint(0, 2 if e.item != "org_life" else 1)
        dates[e.header] = None if e.dues else dt.date(year, month, day)
    for i, name in enumerate(people, start=1):
        birth = dt.date(rng.randint(1950, 2000), rng.randint(1, 12), rng.randint(1, 28))
        category = "预备党员" if rng.random() < 0.08 else "正式党员"
        joined = dt.date(rng.randint(1975, year - 1), rng.randint(1, 12), 1)
        exempt, reason = None, None
        if with_exempt and i == size:
            birth, exempt, reason = dt.date(year - 78, 3, 2), "是", "年满75周岁"
        elif rng.random() < 0.9:
            exempt = "否"
        roster.append([i, name, rng.choice("男女"), birth, category, joined, None, None, exempt, reason, None])
        diligence = rng.choice((1.0, 0.99, 0.98, 0.96, 0.92, 0.85))
        row = []
        joined_july = i == 3 and size >= 30
        for e in spec.GRID_EVENTS:
            if joined_july and e.default_month <= 6:
                row.append("/")
            elif e.dues:
                row.append("√" if rng.random() < 0.98 else "×")
            else:
                r = rng.random()
                row.append("√" if r < diligence else ("假" if r < diligence + (1 - diligence) / 2 else "×"))
        grid.append([i, name, *row])
    if size >= 30:  # the third member joined in July: January-June are not applicable to them
        roster[2][5] = dt.date(year, 7, 1)
        roster[2][4] = "预备党员"
    incentive, negative, veto = [], [], []
    for name in people:
        for _ in range(rng.randint(*activities)):
            item = rng.choice(spec.INCENTIVE_ITEM.values)
            when = dt.date(year, rng.randint(1, 12), rng.randint(1, 28))
            points = rng.choice((1.5, 2, 2.5, 3, 3, 4, 4))
            leading = "是" if rng.random() < 0.15 else None
            incentive.append([when, None, name, item, CONTENTS[item], points, leading, None])
    incentive.sort(key=lambda r: r[0])
    for name in rng.sample(people, k=max(1, size // 30)):
        case = rng.choice(spec.NEGATIVE_CASE.values)
        negative.append([dt.date(year, rng.randint(1, 12), rng.randint(1, 28)), None, name, case, "经支部核实",
                         "支部书记", None])
    if with_veto:
        veto.append([dt.date(year, 8, 20), None, people[4], "黄赌毒酒驾受处分", "醉驾，受党内警告处分", None])
    info = {"branch": branch, "year": year, "recorder": rng.choice(people[:5]), "secretary": people[0],
            "email": None, "h1_date": dt.date(year, 7, 8), "annual_date": dt.date(year, 12, 28),
            "rate": rng.choice((None, 2, 3, 5))}
    return Filling(info=info, roster=roster, grid=grid, grid_dates=dates,
                   logs={"incentive": incentive, "negative": negative, "veto": veto})


def add_mistakes(f: Filling) -> None:
    """What recorders really get wrong, each at its own cell."""
    f.logs["incentive"][0][5] = 5  # a score above the item maximum
    f.logs["incentive"][1][2] = "王小明"  # a name not on the roster
    f.logs["incentive"][2][0] = "2026年13月5日"  # a date that does not exist
    f.grid[4][7] = None  # a blank attendance cell inside the period
    f.grid[6][2] = "假"  # leave marked for dues
    f.roster[9][0] = 9  # a duplicate 序号 (row 11 repeats row 10's)
    f.grid[9][0] = 9


def write_lean(source: Path, target: Path) -> None:
    """The same workbook as a branch that builds its own, or re-saves it from another tool, writes it: every sheet
    and every value, and nothing else (no styles, drop-downs, print setup or empty template rows)."""
    import xlsxwriter
    from python_calamine import CalamineWorkbook

    book = CalamineWorkbook.from_path(str(source))
    out = xlsxwriter.Workbook(str(target), {"default_date_format": "yyyy-mm-dd", "strings_to_numbers": False,
                                            "strings_to_formulas": False, "strings_to_urls": False})
    for name in book.sheet_names:
        ws = out.add_worksheet(name)
        for r, row in enumerate(book.get_sheet_by_name(name).to_python(skip_empty_area=False)):
            for c, value in enumerate(row):
                if value != "" and value is not None:
                    ws.write(r, c, value)
    book.close()
    out.close()


def write_registry(path: Path, branches: list[str]) -> None:
    wb = Workbook()
    ws = wb.active
    ws.title = "支部名录"
    ws.append(["支部编码", "支部名称", "上级党组织", "联系人", "联系邮箱"])
    for i, name in enumerate(branches, start=1):
        ws.append([f"ZB{i:03d}", name, "中共XX镇委员会", "组织委员", f"branch{i:03d}@example.org"])
    ws.append([f"ZB{len(branches) + 1:03d}", "河湾村党支部", "中共XX镇委员会", "组织委员", "hewan@example.org"])
    wb.save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "sample_workbooks")
    parser.add_argument("--count", type=int, default=0, help="instead of the five samples, N clean branches")
    parser.add_argument("--year", type=int, default=2026)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    rules = load_rules()
    rng = random.Random(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.count:
        for n in range(1, args.count + 1):
            name = f"第{n:04d}党支部"
            size = rng.randint(40, 100)
            filling = branch_filling(rng, name, size, args.year, with_veto=n % 7 == 0, with_exempt=n % 5 == 0)
            write_workbook(build_template(rules, args.year, filling=filling), args.out / f"{name}.xlsx")
        print(f"wrote {args.count} workbooks to {args.out}")
        return
    for i, (branch, size) in enumerate(BRANCHES):
        filling = branch_filling(rng, branch, size, args.year, with_veto=i == 3, with_exempt=i == 2)
        if branch == MISTAKES_BRANCH:
            add_mistakes(filling)
        write_workbook(build_template(rules, args.year, filling=filling), args.out / f"{branch}{args.year}.xlsx")
    examples = ROOT / "examples"
    examples.mkdir(exist_ok=True)
    write_registry(examples / "支部名录.xlsx", [b for b, _ in BRANCHES])
    print(f"wrote {len(BRANCHES)} sample workbooks to {args.out} and the registry to {examples}")


if __name__ == "__main__":
    main()
