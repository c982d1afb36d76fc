"""Each member's own slip (个人积分告知单): one per roster member, its numbers those of scores.csv and the ledger."""

from __future__ import annotations

import csv
import datetime as dt
import email
import json
import re
import shutil
import subprocess
from email.policy import default as default_policy
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import YEAR, act, build, marks, member, neg, veto_row

from pointsbatch.cli import main
from pointsbatch.workbook import spec

RUN_DATE = "2027-01-15"
BRANCH = "第一党支部"
NAMES = {1: "张三", 2: "李四", 3: "王老", 4: "赵六", 5: "钱七", 6: "孙八", 7: "周九"}
GRADE_WORDS = ("不合格", "合格", "优秀", "评先评优", "奖励", "元")


def run(inbox: Path, out: Path, *extra: str):
    return CliRunner().invoke(main, ["run", str(inbox), "-o", str(out), "--jobs", "1", "--run-date", RUN_DATE,
                                     *extra], catch_exceptions=False)


def leave_but_dues_unpaid() -> list[str]:
    return [("×" if e.dues else "假") for e in spec.GRID_EVENTS]


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    """One branch with a member for each case a slip must show."""
    folder = tmp_path / "inbox"
    folder.mkdir()
    roster = [member(s, n) for s, n in NAMES.items()]
    roster[2] = member(3, "王老", exempt="是", reason="年满75周岁", birth=dt.date(1940, 1, 1))
    roster[0] = member(1, NAMES[1], transfer_in=dt.date(YEAR, 1, 15))  # came mid-January: its dues may be "/"
    build(folder / "一支部.xlsx", roster=roster,
          grid={1: marks(党费1月="/"), 5: marks("×"), 6: leave_but_dues_unpaid()},
          incentive=[act("张三", "志愿服务", 3, "是", content="带领志愿服务队清理河道"),
                     act("张三", "志愿服务", 2, when=dt.date(YEAR, 2, 3), content="敬老院服务"),
                     act("李四", "上级表彰", 4, when=dt.date(YEAR, 5, 4), content="县级表彰"),
                     act("周九", "理论学习心得", 2.5, when=dt.date(YEAR, 9, 1), content="学习心得一篇")],
          negative=[neg("李四"), neg("孙八", when=dt.date(YEAR, 3, 9))],
          veto=[veto_row("赵六", "信仰邪教")])
    return folder


def slips_of(path: Path) -> dict[int, str]:
    """Each slip's HTML by 序号, from the branch's slip file."""
    html = path.read_text(encoding="utf-8")
    parts = html.split('<section class="slip"')[1:]
    slips = {}
    for part in parts:
        seq = int(re.search(r'<span class="seq">(\d+)</span>', part).group(1))
        assert seq not in slips
        slips[seq] = part.split("</section>")[0]
    return slips


def values(slip: str, cls: str) -> list[float]:
    return [float(v) for v in re.findall(rf'class="num {cls}">([-+]?[\d.]+)', slip)]


def one(slip: str, cls: str) -> str:
    found = re.findall(rf'class="[^"]*\b{cls}">([^<]*)<', slip)
    assert len(found) == 1, (cls, found)
    return found[0]


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def slip_file(out: Path, period: str = "年度") -> Path:
    return out / "支部" / BRANCH / f"{BRANCH}{YEAR}{'' if period == '年度' else '年'}{period}个人积分告知单.html"


def test_every_roster_member_gets_one_slip_with_the_numbers_of_scores_and_ledger(inbox, tmp_path):
    out = tmp_path / "out"
    assert run(inbox, out).exit_code == 0
    slips = slips_of(slip_file(out))
    assert sorted(slips) == sorted(NAMES)
    scores = {int(r["序号"]): r for r in read_csv(out / "scores.csv")}
    ledger: dict[tuple[int, str], float] = {}
    for e in read_csv(out / "ledger.csv"):
        key = (int(e["seq"]), e["part"])
        ledger[key] = ledger.get(key, 0.0) + float(e["points"])
    for seq, slip in slips.items():
        row = scores[seq]
        assert one(slip, "name") == NAMES[seq] == row["姓名"]
        for other in set(NAMES.values()) - {NAMES[seq]}:
            assert other not in slip, (seq, other)
        if row["等次"] == "免于积分管理":
            continue
        base, incentive, deductions, total = (float(one(slip, f"num {c}")) for c in
                                              ("base", "incentive", "deductions", "total"))
        assert (base, incentive, deductions, total) == (float(row["基础分"]), float(row["激励分"]),
                                                         float(row["扣分"]), float(row["总分"]))
        prorate = [float(p) for p in re.findall(r'class="foot prorate">.*?<span class="num">([-+]?[\d.]+)<', slip)]
        assert sum(values(slip, "base-points")) + sum(prorate) == pytest.approx(ledger.get((seq, "基础分"), 0), abs=.05)
        assert sum(values(slip, "base-points")) + sum(prorate) == pytest.approx(base, abs=.05)
        assert sum(values(slip, "incentive-points")) == pytest.approx(ledger.get((seq, "激励分"), 0), abs=.05)
        assert sum(values(slip, "incentive-points")) == pytest.approx(incentive, abs=.05)
        assert -sum(values(slip, "deduction-points")) == pytest.approx(deductions)
        assert one(slip, "grade") == row["等次"] and one(slip, "honours") == row["可评先评优"]
        assert re.findall(r'class="num reward">([\d.]+)<', slip) == ([row["奖励上限（元）"]] if row["奖励上限（元）"] else [])
    zhang = slips[1]
    assert "带领志愿服务队清理河道" in zhang and "是，×2" in zhang and "单项封顶4分，超出部分不计" in zhang
    assert values(zhang, "incentive-points") == [2, 6, -4]  # by date: 2月3日 before 3月1日, then the cap
    assert "参加11/11次" in zhang and "1次活动不适用" in zhang
    assert "参与赌博" in slips[2] and "4月1日" in slips[2] and "经核实" in slips[2]
    assert "上半年积分" in slips[7] and "学习心得一篇" in slips[7]


def test_exempt_and_vetoed_members_slips(inbox, tmp_path):
    out = tmp_path / "out"
    run(inbox, out)
    slips = slips_of(slip_file(out))
    exempt = slips[3]
    assert "免于积分管理" in exempt and "年满75周岁" in exempt
    for word in ("基础分", "激励分", "扣分", "总分", "等次", "评先评优", "核定"):
        assert word not in exempt
    logged = slips[4]
    assert "一票否决：信仰邪教（5月1日登记，依据：支委会决定）" in logged and one(logged, "num total") == "0"
    detected = slips[5]
    assert "一票否决：连续6个月不参加组织生活（1月至" in detected and one(detected, "num total") == "0"
    assert one(detected, "grade") == "不合格"
    floored = slips[6]  # base 0 (leave), one deduction: 扣完为止
    assert "扣分超过所得分数，扣完为止" in floored and one(floored, "num total") == "0"
    assert one(floored, "num deductions") == "5"


def test_slips_are_listed_in_run_json_and_mailed_with_the_results(inbox, tmp_path):
    out = tmp_path / "out"
    run(inbox, out)
    name = slip_file(out).name
    manifest = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert f"支部/{BRANCH}/{name}" in [o["path"] for o in manifest["outputs"]]
    assert str(Path("支部") / BRANCH / name) in manifest["files"][0]["outputs"]
    msg = email.message_from_bytes((out / "发件箱" / f"{BRANCH}.eml").read_bytes(), policy=default_policy)
    attached = {p.get_filename(): p.get_payload(decode=True) for p in msg.iter_attachments()}
    assert attached[name] == slip_file(out).read_bytes()
    body = msg.get_body(("plain",)).get_content()
    assert f"1. {BRANCH}{YEAR}年度积分结果.xlsx" in body and f"2. {BRANCH}{YEAR}年度积分公示.html" in body
    assert f"3. {name}：每名党员的个人积分告知单" in body


def test_a_half_year_slip_shows_points_and_the_halfs_maximum_and_no_grade(inbox, tmp_path):
    out = tmp_path / "out"
    run(inbox, out, "--period", "h1", "--notice-start", "2026-07-06")
    path = slip_file(out, "上半年")
    slips = slips_of(path)
    assert sorted(slips) == sorted(NAMES)
    text = path.read_text(encoding="utf-8")
    for word in GRADE_WORDS:
        assert word not in text, word
    scores = {int(r["序号"]): r for r in read_csv(out / "scores.csv")}
    assert one(slips[2], "num total") == "26" and scores[2]["总分"] == "26.0"  # 27 + 4 - 5
    assert "（满分27）" in slips[2] and "上半年满分67" in slips[2]
    assert "民主评议党员" not in text and "参加1/1次" in slips[2]  # only the events of January-June
    assert "学习心得一篇" not in slips[7]  # dated September
    assert "2026年7月6日至2026年7月10日（公示期5天）" in slips[2]


def test_a_town_can_restyle_the_slip(inbox, tmp_path):
    from importlib import resources

    mine = tmp_path / "模板"
    mine.mkdir()
    own = resources.files("pointsbatch").joinpath("templates", "slip.html").read_text(encoding="utf-8")
    (mine / "slip.html").write_text(own.replace("个人积分告知单</h2>", "个人积分告知单（本镇样式）</h2>"),
                                    encoding="utf-8")
    run(inbox, tmp_path / "out", "--templates", str(mine))
    assert slip_file(tmp_path / "out").read_text(encoding="utf-8").count("（本镇样式）") == len(NAMES)


CHROMIUM = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.mark.skipif(shutil.which("chromium") is None or shutil.which("pdftotext") is None,
                    reason="Debian's chromium and poppler-utils are not installed")
def test_printed_slips_fit_several_a_page_and_none_is_split(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    names = ["张一", "王二", "李三", "赵四", "钱五", "孙六", "周七", "吴八", "郑九", "冯十", "陈十一", "褚十二",
             "卫十三"]
    roster = [member(i, n) for i, n in enumerate(names, start=1)]
    items = list(spec.INCENTIVE_ITEM.values)
    activities = [act(n, items[(i + k) % len(items)], 2, "是" if k == 0 else None, when=dt.date(YEAR, 1 + k, 10),
                      content=f"第{k + 1}次活动") for i, n in enumerate(names) for k in range(i % 4)]
    build(inbox / "b.xlsx", roster=roster, incentive=activities, negative=[neg("王二"), neg("周七")])
    out = tmp_path / "out"
    assert run(inbox, out).exit_code == 0
    pdf = tmp_path / "slips.pdf"
    subprocess.run([*CHROMIUM, f"--user-data-dir={tmp_path / 'profile'}", f"--print-to-pdf={pdf}",
                    slip_file(out).as_uri()], capture_output=True, timeout=120, check=True)
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    pages = ["".join(page.split()) for page in text.split("\f") if page.strip()]
    assert len(pages) <= len(names) / 2 + 1
    for page in pages:
        # a slip begins with its heading and ends with the sentence on objections: both on the same page
        assert page.count("个人积分告知单") == page.count("（公示期5天）内向") > 0
        assert "file://" not in page and "/tmp" not in page  # no browser header or footer, though not turned off
    for name in names:
        assert sum(f"姓名：{name}" in page for page in pages) == 1
