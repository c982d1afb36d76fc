"""A run's memory does not grow with every member it scores, and 历史/ is moved, never copied (OUTPUTS.md: the
previous scores stay under OUT/历史/; a run replaces OUT only once it has finished).

The workers leave each workbook's rows of the town's files in staging (pointsbatch/parts.py) and the main process
joins them; the swap moves the old OUT's 历史/ and its run's files into the new OUT, with a journal that puts them
back if the run fails or is killed on the way."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import build, member
from openpyxl import load_workbook

from pointsbatch import outdir
from pointsbatch.cli import main

EPOCH = 1_800_000_000  # each run an hour later: 历史/ names its folders by run time


class Killed(BaseException):
    """The process dies here: nothing of it runs any more (no handler, no clean-up)."""


def run(inbox: Path, out: Path, monkeypatch, hour: int, *extra: str):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(EPOCH + 3600 * hour))
    return CliRunner().invoke(main, ["run", str(inbox), "-o", str(out), "--run-date", "2027-01-15", *extra],
                              catch_exceptions=False)


def state(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under `folder` with its content and inode (the same inode: the same file, moved, not copied)."""
    return {p.relative_to(folder).as_posix(): (p.read_bytes(), p.stat().st_ino)
            for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def out_with_history(inbox: Path, tmp_path: Path, monkeypatch) -> Path:
    """An OUT after two runs: 历史/ keeps the first."""
    out = tmp_path / "out"
    assert run(inbox, out, monkeypatch, 0).exit_code == 0
    assert run(inbox, out, monkeypatch, 1).exit_code == 0
    assert len(list((out / "历史").iterdir())) == 1
    return out


def test_history_is_moved_into_the_new_out_not_copied(inbox, out_with_history, monkeypatch):
    out = out_with_history
    before = state(out)
    earlier = {rel: kept for rel, kept in before.items() if rel.startswith("历史/")}
    assert earlier
    assert run(inbox, out, monkeypatch, 2).exit_code == 0
    after = state(out)
    # the history it had is the same files, untouched; the previous run's own files are now under 历史/ as they were
    assert {rel: after[rel] for rel in earlier} == earlier
    [added] = sorted({rel.split("/")[1] for rel in after if rel.startswith("历史/")} - {
        rel.split("/")[1] for rel in earlier})
    moved = ["scores.csv", "ledger.csv", "marks.csv", "run.json",
             *(rel for rel in before if rel.startswith("支部/") and rel.endswith(".html"))]
    assert len(moved) == 8  # and the notice and the members' slips of each of the two branches
    assert {rel: after[f"历史/{added}/{rel}"] for rel in moved} == {rel: before[rel] for rel in moved}
    # run.json lists what 历史/ holds, with its digests, as it did when history was copied
    import hashlib

    listed = {o["path"]: o["sha256"] for o in json.loads((out / "run.json").read_text("utf-8"))["outputs"]}
    in_history = {rel: hashlib.sha256(content).hexdigest() for rel, (content, _ino) in after.items()
                  if rel.startswith("历史/") and not rel.endswith("run.json")}
    assert {rel: sha for rel, sha in listed.items() if rel.startswith("历史/")} == in_history
    # and a third run keeps both earlier runs
    assert run(inbox, out, monkeypatch, 3).exit_code == 0
    assert len(list((out / "历史").iterdir())) == 3
    assert {rel: state(out)[rel] for rel in earlier} == earlier


def test_a_history_file_is_never_in_two_places_at_once(inbox, out_with_history, monkeypatch):
    """A large file the clerk keeps in 历史/ costs its size once, however many runs follow (a copy would double it
    on every run)."""
    out = out_with_history
    big = out / "历史" / "镇党委存档.bin"
    with big.open("wb") as fh:  # sparse: 128 MB that cost nothing to make, and that a copy would write in full
        fh.truncate(1 << 27)
    inode = big.stat().st_ino
    assert run(inbox, out, monkeypatch, 2).exit_code == 0
    assert big.stat().st_ino == inode and big.stat().st_size == 1 << 27


@pytest.mark.parametrize("where", ["carrying the clerk's files", "moving a notice", "the last rename"])
def test_a_run_that_fails_while_swapping_leaves_out_and_its_history_whole(inbox, out_with_history, tmp_path,
                                                                         monkeypatch, where):
    out = out_with_history
    (out / "我的笔记.txt").write_text("要问二支部", encoding="utf-8")
    before = state(out)
    real_replace, real_carry = os.replace, outdir._carry_foreign

    def replace(src, dst):
        src, dst = Path(src), Path(dst)
        if where == "moving a notice" and dst.parts[-3] == "支部" and "历史" in dst.parts:
            raise OSError(28, "No space left on device")
        if where == "the last rename" and src.name.startswith(outdir.STAGING_PREFIX) and dst == out:
            raise PermissionError(13, "Permission denied")
        return real_replace(src, dst)

    def carry(*args):
        assert (args[1] / "历史").is_dir()  # 历史/ was moved already: it has to go back
        raise KeyboardInterrupt

    monkeypatch.setattr(outdir.os, "replace", replace)
    monkeypatch.setattr(outdir, "_carry_foreign", carry if where.startswith("carrying") else real_carry)
    result = run(inbox, out, monkeypatch, 2)
    assert result.exit_code == 2 and ("已中断" in result.output or "请先关闭" in result.output), result.output
    assert state(out) == before  # every file back, the same files (inodes) as before
    assert not list(tmp_path.glob(".pointsbatch-*"))
    monkeypatch.undo()
    assert run(inbox, out, monkeypatch, 3).exit_code == 0
    assert len(list((out / "历史").iterdir())) == 2


def test_a_run_killed_during_its_swap_is_put_back_by_the_next(inbox, out_with_history, tmp_path, monkeypatch):
    out = out_with_history
    before = state(out)
    real_replace = os.replace

    def killed(src, dst):
        if Path(src).name.startswith(outdir.STAGING_PREFIX) and Path(dst) == out:
            raise Killed
        return real_replace(src, dst)

    monkeypatch.setattr(outdir.os, "replace", killed)
    monkeypatch.setattr(outdir, "_move_back", lambda *_a: (_ for _ in ()).throw(Killed()))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(EPOCH + 3600 * 2))
    with pytest.raises(Killed):
        CliRunner().invoke(main, ["run", str(inbox), "-o", str(out), "--run-date", "2027-01-15"],
                           catch_exceptions=False)
    # what a kill at that moment leaves: no OUT, the old one renamed, its 历史/ in the staging folder
    assert not out.exists() and outdir.old_name(out).exists()
    [staging] = tmp_path.glob(".pointsbatch-staging-*")
    assert (staging / "历史").is_dir() and not (outdir.old_name(out) / "历史").exists()
    monkeypatch.undo()

    outdir.recover_interrupted(out)
    assert state(out) == before
    assert not list(tmp_path.glob(".pointsbatch-*"))
    assert run(inbox, out, monkeypatch, 3).exit_code == 0
    assert len(list((out / "历史").iterdir())) == 2


def test_a_run_killed_after_its_swap_leaves_the_new_out_and_the_next_clears_the_old(inbox, out_with_history,
                                                                                   tmp_path, monkeypatch):
    out = out_with_history
    old = outdir.old_name(out)
    real_rmtree = outdir.shutil.rmtree

    def killed(path, *args, **kwargs):
        if Path(path) == old:
            raise Killed
        return real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(outdir.shutil, "rmtree", killed)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(EPOCH + 3600 * 2))
    with pytest.raises(Killed):
        CliRunner().invoke(main, ["run", str(inbox), "-o", str(out), "--run-date", "2027-01-15"],
                           catch_exceptions=False)
    monkeypatch.undo()
    new = state(out)
    assert len(list((out / "历史").iterdir())) == 2 and old.exists()
    outdir.recover_interrupted(out)
    assert state(out) == new and not old.exists()


def test_the_town_files_hold_each_accepted_workbooks_rows_in_name_order(tmp_path, monkeypatch):
    """Rows the workers wrote for a workbook rejected afterwards (two workbooks of one branch) are left out."""
    inbox = tmp_path / "收件"
    inbox.mkdir()
    roster = [member(1, "张伟"), member(2, "李娜")]
    build(inbox / "c.xlsx", info_over={"branch": "丙支部"}, roster=roster)
    build(inbox / "a.xlsx", info_over={"branch": "甲支部"}, roster=roster)
    build(inbox / "b1.xlsx", info_over={"branch": "乙支部"}, roster=roster)
    build(inbox / "b2.xlsx", info_over={"branch": "乙支部"}, roster=roster)
    out = tmp_path / "out"
    result = run(inbox, out, monkeypatch, 0, "--jobs", "2")
    assert result.exit_code == 1, result.output

    def branches(name: str) -> list[str]:
        data = (out / name).read_bytes()
        assert data.startswith("\ufeff".encode()) and data.endswith(b"\r\n")
        rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
        return list(dict.fromkeys(row[0] for row in rows[1:]))

    assert branches("scores.csv") == branches("ledger.csv") == branches("marks.csv") == ["甲支部", "丙支部"]
    scores = list(csv.DictReader(io.StringIO((out / "scores.csv").read_text("utf-8-sig"))))
    assert [(r["支部名称"], r["序号"], r["姓名"]) for r in scores] == [
        ("甲支部", "1", "张伟"), ("甲支部", "2", "李娜"), ("丙支部", "1", "张伟"), ("丙支部", "2", "李娜")]
    sheet = load_workbook(out / "全镇汇总.xlsx", read_only=True).worksheets[2]
    listed = [(row[0], row[2]) for row in sheet.iter_rows(values_only=True) if row[2] in ("张伟", "李娜")]
    assert listed == [("甲支部", "张伟"), ("甲支部", "李娜"), ("丙支部", "张伟"), ("丙支部", "李娜")]
    assert not (out / ".parts").exists() and not list(tmp_path.glob(".pointsbatch-*"))
    manifest = json.loads((out / "run.json").read_text("utf-8"))
    assert not any(o["path"].startswith(".") for o in manifest["outputs"])
