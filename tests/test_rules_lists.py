"""Names and lists are rules too (RULES.md): a town whose 办法 says 70 years, 3 months and 3 yuan changes one file,
and every drop-down, message, label and notice follows."""

from __future__ import annotations

import datetime as dt
import email
import html
import io
import zipfile
from email.policy import default as default_policy
from importlib import resources
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import YEAR, build, codes, load, marks, member, months, veto_row

from pointsbatch.cli import main
from pointsbatch.rules import RulesError, load_rules

OLD = ("75周岁", "6个月", "5元", "XX镇")
NEW = ("70周岁", "3个月", "3元")


def town_rules(folder: Path, *more: tuple[str, str]) -> Path:
    text = resources.files("pointsbatch").joinpath("rules.toml").read_text("utf-8")
    for old, new in (("exempt_age = 75", "exempt_age = 70"), ("absence_months = 6", "absence_months = 3"),
                     ("max_reward_rate = 5", "max_reward_rate = 3"), ('town = ""', 'town = "城关镇"'), *more):
        assert old in text
        text = text.replace(old, new)
    path = folder / "城关镇规则.toml"
    path.write_text(text, encoding="utf-8")
    return path


def all_text(path: Path) -> str:
    """Every piece of text a person could see in a file: each part of an .xlsx, each part of a message."""
    data = path.read_bytes()
    if path.suffix == ".xlsx":
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            return "\n".join(html.unescape(zf.read(n).decode("utf-8", "replace")) for n in zf.namelist())
    if path.suffix == ".eml":
        message = email.message_from_bytes(data, policy=default_policy)
        texts = [str(message["Subject"])]
        for part in message.walk():
            if part.is_multipart():
                continue
            content = part.get_content()
            if isinstance(content, bytes) and content[:2] == b"PK":
                sub = path.parent / ".part.xlsx"
                sub.write_bytes(content)
                texts.append(all_text(sub))
                sub.unlink()
            else:
                texts.append(content if isinstance(content, str) else content.decode("utf-8", "replace"))
        return "\n".join(texts)
    return data.decode("utf-8", "replace")


def test_the_template_follows_the_rules_file(tmp_path):
    out = tmp_path / "模板.xlsx"
    result = CliRunner().invoke(main, ["template", "-o", str(out), "--year", str(YEAR), "--rules",
                                       str(town_rules(tmp_path))])
    assert result.exit_code == 0, result.output
    text = all_text(out)
    assert [old for old in OLD if old in text] == []
    assert [new for new in NEW if new not in text] == []
    assert "城关镇党员教育管理积分制考核办法" in text


def test_a_run_follows_the_rules_file_named_in_the_settings(tmp_path, monkeypatch):
    rules_path = town_rules(tmp_path)
    rules = load_rules(rules_path)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    build(inbox / "一支部.xlsx", rules=rules, info_over={"rate": 3},
          roster=[member(1, "张三"), member(2, "李四"),
                  member(3, "王老", exempt="是", reason="年满70周岁", birth=dt.date(YEAR - 71, 1, 1))],
          grid={1: marks(**months("×", 2, 3, 4))}, veto=[veto_row("李四", "连续3个月不参加组织生活")])
    (tmp_path / "pointsbatch.toml").write_text(f'rules = "{rules_path.name}"\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["run", "inbox", "-o", "out", "--jobs", "1", "--run-date", "2027-01-15"])
    assert result.exit_code == 0, result.output
    seen = {}
    for path in sorted((tmp_path / "out").rglob("*")):
        if path.is_file():
            text = all_text(path)
            seen[path.name] = [old for old in OLD if old in text]
            assert seen[path.name] == [], path
    everything = "\n".join(all_text(p) for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert "连续3个月不参加组织生活" in everything and "70周岁" in everything
    notice = next((tmp_path / "out" / "支部").glob("*/*公示*.html")).read_text("utf-8")
    assert "根据《城关镇党员教育管理积分制考核办法（试行）》" in notice


@pytest.mark.parametrize(
    ("roster", "expected"),
    [
        ([member(1, "张三"), member(2, "王老", exempt="是", reason="年满70周岁", birth=dt.date(YEAR - 69, 1, 1))],
         {("党员名册", "D3", "exempt_age_not_reached")}),
        ([member(1, "张三"), member(2, "王老", exempt="是", reason="年满75周岁", birth=dt.date(YEAR - 80, 1, 1))],
         {("党员名册", "J3", "value_not_allowed")}),
        ([member(1, "张三"), member(2, "王老", exempt="是", reason="年满70周岁", birth=dt.date(YEAR - 70, 1, 1))],
         set()),
    ],
    ids=["younger than the town's age", "the bundled label is not the town's", "seventy by 31 December"],
)
def test_the_checks_use_the_rules_labels(tmp_path, roster, expected):
    rules = load_rules(town_rules(tmp_path))
    v = load(build(tmp_path / "b.xlsx", roster=roster, rules=rules), rules=rules)
    assert codes(v) == expected
    for p in v.problems:  # the labels the messages quote are the town's (the cell's own value aside)
        assert not any(old in p.message.replace(p.value, "") for old in OLD)
        assert "年满70周岁" in p.message


@pytest.mark.parametrize(
    ("old", "new", "setting"),
    [
        ('dues_condition = "拒绝交纳党费"', 'dues_condition = "不交党费"', "veto.dues_condition"),
        ('age_reason = "年满{exempt_age}周岁"', 'age_reason = "年满{age}周岁"', "scope.age_reason"),
        ('cases = ["参与赌博", ', 'cases = ["参与赌博", "参与赌博", ', "negative.cases"),
        ('exempt_reasons = ["年满{exempt_age}周岁", "身体不便"]', "exempt_reasons = []", "scope.exempt_reasons"),
    ],
)
def test_a_bad_list_is_refused_naming_the_setting(tmp_path, old, new, setting):
    with pytest.raises(RulesError, match=setting.replace(".", r"\.")):
        load_rules(town_rules(tmp_path, (old, new)))
