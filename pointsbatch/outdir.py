"""OUT belongs to the batch, and to one year and period (OUTPUTS.md).

`run` writes into OUT only when OUT is missing, empty, or holds an earlier run of the same year and period (its
marker file or run.json says so); anything else is refused before any work. The new run is built in a staging
folder beside OUT and swapped in at the end. Whatever the old OUT holds that pointsbatch did not write, or that was
changed since it wrote it, is carried into the new OUT: nothing pointsbatch did not write is ever deleted.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .files import atomic_write_text, sha256_file, unique
from .model import RunError
from .names import BRANCHES, FEEDBACK, HISTORY, OUTBOX, SENT_LOG, period_title

MARKER = ".pointsbatch.json"  # in OUT: the year and period it holds, written by every run
STAGING_PREFIX = ".pointsbatch-staging-"
STAGING_SENTINEL = ".pointsbatch-staging"  # inside a staging folder: only such folders are ever cleaned up
OLD_PREFIX = ".pointsbatch-old-"
JOURNAL = ".pointsbatch-moving.json"  # in the old OUT during a swap: what was moved into the new one (swap_in)
TOWN_OUTPUTS = ("scores.csv", "ledger.csv", "marks.csv", "index.html", "全镇汇总.xlsx")
SLOTS = ".slots"  # inside staging: one folder a workbook, where its outputs are built before they are named
# files a system or an office program drops into any folder: they do not make OUT someone else's
SYSTEM_FILES = {"desktop.ini", "thumbs.db", ".ds_store"}


@dataclass(frozen=True)
class Claim:
    """What an existing OUT holds: a run of this year and period (year None: not recorded)."""
    year: int | None
    period: str | None


def read_claim(out: Path) -> Claim | None:
    """None when OUT is missing or empty; its Claim when it holds a pointsbatch run. Raises RunError for anything
    else (a file, a folder of other things), saying why and what to do."""
    if not out.exists():
        return None
    if not out.is_dir():
        raise RunError(f"输出位置 {out} 是一个文件，不是文件夹。请用 -o 指定一个文件夹（或不写 -o，使用默认的 results 文件夹）。")
    try:
        names = [p.name for p in out.iterdir()]
    except OSError as exc:
        raise RunError(f"无法读取输出文件夹 {out}（{exc.strerror or exc}），请检查它的权限。") from exc
    if all(n.casefold() in SYSTEM_FILES for n in names):
        return None
    for name in (MARKER, "run.json"):
        doc = _read_json(out / name)
        if isinstance(doc, dict) and doc.get("tool") == "pointsbatch":
            year = doc.get("year")
            period = doc.get("period")
            return Claim(year if isinstance(year, int) else None, period if isinstance(period, str) else None)
    raise RunError(
        f"输出文件夹 {out} 里已经有别的文件，不是 pointsbatch 的计分结果。为了不覆盖、不删除这些文件，本次没有计分。"
        "请用 -o 指定一个新的或空的文件夹，或者不写 -o，使用默认的 results/<年度><期间> 文件夹。")


def check_claim(out: Path, claim: Claim | None, year: int | None, period: str) -> None:
    """Refuse a run into the results of another year or period, naming the folder to use instead."""
    if claim is None:
        return
    other_period = claim.period is not None and claim.period != period
    other_year = claim.year is not None and year is not None and claim.year != year
    if other_period or other_year:
        held = period_title(claim.year, claim.period or period)
        wanted = period_title(year if year is not None else claim.year, period)
        raise RunError(
            f"输出文件夹 {out} 中是{held}的计分结果，本次是{wanted}计分。每个年度和期间的结果放在各自的文件夹里，"
            f"不会互相覆盖：请用 -o {out.parent / wanted}，或者不写 -o（默认 results/{wanted}）。")


def check_apart(out: Path, inputs: dict[str, Path | None]) -> None:
    """INBOX, the registry, the rules, the settings and templates may not lie inside OUT (the run replaces OUT), nor
    OUT inside INBOX (the next run would read the outputs as inputs)."""
    out = out.resolve()
    for label, path in inputs.items():
        if path is None:
            continue
        path = Path(path).resolve()
        if path == out or out in path.parents:
            raise RunError(f"{label} {path} 在输出文件夹 {out} 里面：每次计分都会替换输出文件夹，它会被移走。"
                           "请把它放到输出文件夹外面，或用 -o 换一个输出文件夹。")
    inbox = inputs.get("收件文件夹")
    if inbox is not None and Path(inbox).resolve() in out.parents:
        raise RunError(f"输出文件夹 {out} 在收件文件夹 {Path(inbox).resolve()} 里面：下次计分会把结果当成收到的文件。"
                       "请把输出文件夹放到收件文件夹外面。")


def write_claim(staging: Path, year: int | None, period: str) -> None:
    (staging / MARKER).write_text(json.dumps({"tool": "pointsbatch", "year": year, "period": period},
                                             ensure_ascii=False), encoding="utf-8")


# --- staging and the swap --------------------------------------------------------------------------------------


def prepare_container(container: Path) -> None:
    """The folder OUT lives in, made if need be: where the lock and the staging folder go."""
    try:
        container.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunError(f"无法在 {container} 写入输出（{exc.strerror or exc}），请检查磁盘空间和写入权限，"
                       "或用 -o 换一个输出文件夹。") from exc


def clear_stale(container: Path) -> None:
    """Staging folders a killed run left in `container`. Called with the container's lock held, so no other run can
    be using one; only folders that carry the staging sentinel are removed."""
    try:
        candidates = [p for p in container.iterdir() if p.name.startswith(STAGING_PREFIX)]
    except OSError:
        return
    for folder in candidates:
        if (folder / STAGING_SENTINEL).is_file():
            shutil.rmtree(folder, ignore_errors=True)


def make_staging(container: Path) -> Path:
    """A new staging folder in `container` (the folder OUT lives in), proven writable."""
    try:
        container.mkdir(parents=True, exist_ok=True)
        staging, n = container / f"{STAGING_PREFIX}{os.getpid()}", 2
        while staging.exists() and not (staging / STAGING_SENTINEL).is_file():
            # an interrupted swap's folder, holding what was OUT's until recover_interrupted puts it back
            staging, n = container / f"{STAGING_PREFIX}{os.getpid()}-{n}", n + 1
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir()
        (staging / STAGING_SENTINEL).write_bytes(b"")
    except OSError as exc:
        raise RunError(f"无法在 {container} 写入输出（{exc.strerror or exc}），请检查磁盘空间和写入权限，"
                       "或用 -o 换一个输出文件夹。") from exc
    return staging


def discard_staging(staging: Path) -> None:
    """Remove a staging folder after a failed run, unless it holds what was OUT's (a swap that could not put it back
    leaves that to recover_interrupted: only a folder with the sentinel is ever removed)."""
    if (staging / STAGING_SENTINEL).is_file():
        shutil.rmtree(staging, ignore_errors=True)


def old_name(out: Path) -> Path:
    return out.parent / f"{OLD_PREFIX}{out.name}"


def recover_interrupted(out: Path) -> None:
    """If a run was killed during its swap, put the previous complete OUT back: what the swap had already moved
    into the new one (its 历史/, its run's files) goes back first, by the journal in the old OUT. If it was killed
    after the new OUT took OUT's place, what is left of the old one goes."""
    old = old_name(out)
    if not old.exists():
        return
    journal = _read_json(old / JOURNAL)
    staging = out.parent / journal["staging"] if _is_journal(journal) else None
    if not out.exists():
        if staging is not None:
            _move_back(old, staging, journal)
        os.replace(old, out)
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)  # the interrupted run's outputs, nothing of the old OUT's
    elif staging is not None and staging.exists():
        return  # a new OUT made by hand beside a swap never finished: nothing is removed, the clerk decides
    elif any((old / name).exists() for name in (MARKER, "run.json", JOURNAL)):
        shutil.rmtree(old, ignore_errors=True)


def swap_in(staging: Path, out: Path, previous_outputs: dict[str, str], history: str,
            moves: Sequence[tuple[str, str]] = ()) -> list[str]:
    """Replace OUT by the complete staging folder: OUT is the old run or the new one, never a mixture.

    Every file of the old OUT that pointsbatch did not write (or that changed since it wrote it) is copied into the
    new one first: at its own path when that is free, else under 历史/<history>/ (a folder the old OUT's 历史/ does
    not have). `moves` (history.HistoryMoves: the old OUT's 历史/, and its run's files going under 历史/<history>/)
    are moved, never copied, into the new one. A journal in the old OUT says what was moved: if anything fails,
    all of it goes back and the old OUT is put back whole; if the process dies, recover_interrupted does that.
    Returns the paths kept."""
    old = old_name(out)
    if not out.exists():
        (staging / STAGING_SENTINEL).unlink(missing_ok=True)
        os.replace(staging, out)
        return []
    if moves and _present(out / HISTORY / history):
        raise RunError(f"输出文件夹的{HISTORY}中刚刚出现了 {history}，本次没有替换输出文件夹。请再运行一次。")
    os.replace(out, old)  # nobody can add a file to the old OUT from here on
    journal = {"staging": staging.name, "history": history, "moves": [list(m) for m in moves]}
    try:
        atomic_write_text(old / JOURNAL, json.dumps(journal, ensure_ascii=False))
        (staging / STAGING_SENTINEL).unlink(missing_ok=True)  # it will hold what was OUT's: never removed as stale
        for source, target in moves:
            if target == HISTORY:  # the whole folder in one move, before anything is written under it
                _move(old / source, staging / target)
        if moves or (old / HISTORY).is_symlink():  # a real folder: nothing is written through a clerk's link
            (staging / HISTORY).mkdir(exist_ok=True)
        kept = _carry_foreign(old, staging, previous_outputs, history)
        for source, target in moves:
            if target != HISTORY:
                _move(old / source, staging / target)
        os.replace(staging, out)
    except BaseException:
        _move_back(old, staging, journal)
        if staging.exists():
            (staging / STAGING_SENTINEL).write_bytes(b"")  # nothing of the old OUT's in it now: the caller removes it
        os.replace(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return kept


def _move(source: Path, target: Path) -> None:
    if not _present(source):
        return  # gone since the run began (a clerk's doing): nothing to keep
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(source, target)


def _move_back(old: Path, staging: Path, journal: dict[str, Any]) -> None:
    """Undo a swap's moves (those it got to), newest first, then drop the journal. What the swap wrote under
    历史/<history>/ goes: that folder was new (swap_in checks)."""
    for source, target in reversed(journal["moves"]):
        here, back = staging / target, old / source
        if target == HISTORY and journal.get("history"):
            shutil.rmtree(here / journal["history"], ignore_errors=True)
        if _present(here) and not _present(back):
            back.parent.mkdir(parents=True, exist_ok=True)
            os.replace(here, back)
    (old / JOURNAL).unlink(missing_ok=True)


def _present(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def _is_journal(doc: Any) -> bool:
    """A journal swap_in wrote: its paths inside OUT and its staging folder (nothing else is ever moved or removed)."""
    return (isinstance(doc, dict) and isinstance(doc.get("staging"), str) and doc["staging"].startswith(STAGING_PREFIX)
            and _inside_out(doc["staging"]) and "/" not in doc["staging"]
            and (doc.get("history") is None or (_inside_out(doc["history"]) and "/" not in doc["history"]))
            and isinstance(doc.get("moves"), list)
            and all(isinstance(m, list) and len(m) == 2 and all(_inside_out(p) for p in m) for m in doc["moves"]))


def _inside_out(rel: Any) -> bool:
    return (isinstance(rel, str) and "\\" not in rel and not rel.startswith("/")
            and all(part not in ("", ".", "..") for part in rel.split("/")))


def _carry_foreign(old: Path, staging: Path, previous_outputs: dict[str, str], history: str) -> list[str]:
    """Copy what the clerk put in (or changed in) the old OUT into the new one; links are copied as links, empty
    folders kept; nothing is followed out of OUT."""
    kept = []
    for top, dirs, files in os.walk(old, followlinks=False):
        here = Path(top)
        dirs.sort()
        for name in sorted(files) + [d for d in dirs if (here / d).is_symlink()]:
            path = here / name
            rel = path.relative_to(old).as_posix()
            if rel in (MARKER, "run.json", SENT_LOG, JOURNAL) or rel.startswith(f"{HISTORY}/"):
                continue  # pointsbatch's own: the new run has its own, and carries the log and history
            link = path.is_symlink()
            if not link and rel in previous_outputs and previous_outputs[rel] == sha256_file(path):
                continue  # written by the previous run and unchanged: replaced by this run's
            target = staging / rel
            if target.exists() or target.is_symlink() or rel in previous_outputs or _batchs_own(rel):
                target = staging / HISTORY / history / rel  # where it cannot pass for this run's output
            target.parent.mkdir(parents=True, exist_ok=True)
            if link:
                os.symlink(os.readlink(path), target, target_is_directory=path.is_dir())
            else:
                shutil.copy2(path, target)
            kept.append(target.relative_to(staging).as_posix())
        dirs[:] = [d for d in dirs if not (here / d).is_symlink()]
        if not files and not dirs and here != old:
            rel = here.relative_to(old).as_posix()
            if not rel.startswith(f"{HISTORY}/") and not (staging / rel).exists():
                (staging / rel).mkdir(parents=True)
                kept.append(rel + "/")
    return kept


def _batchs_own(rel: str) -> bool:
    """A path the batch writes its outputs at: a file of the clerk's found there goes to 历史/, never passes for
    this run's (a stale notice in 支部/ would look current)."""
    top = rel.split("/", 1)[0]
    return top in (BRANCHES, FEEDBACK, OUTBOX) or rel in TOWN_OUTPUTS


# --- unique output names ---------------------------------------------------------------------------------------


def place(slot: Path, staging: Path, outputs: list[str], taken: set[str]) -> list[str]:
    """Move one workbook's outputs from its slot to their final names in staging; a name another workbook already
    has gets a distinct suffix, in its folder and in every file name that starts with it."""
    placed = []
    renamed: dict[str, str] = {}
    for rel in outputs:
        parts = Path(rel).parts
        unit = _unit(parts)
        if unit not in renamed:
            renamed[unit] = unique(unit, taken, parts[0])
        final = [parts[0], *(renamed[unit] + p[len(unit):] if p.startswith(unit) else p for p in parts[1:])]
        target = staging.joinpath(*final)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(slot / rel, target)
        placed.append(Path(*final).as_posix())
    return placed


def _unit(parts: tuple[str, ...]) -> str:
    """The name a workbook's outputs are built on: its folder under 支部/, or the stem of its files elsewhere."""
    if len(parts) > 2:
        return parts[1]
    return parts[-1].rsplit("_", 1)[0] if "_" in parts[-1] else Path(parts[-1]).stem


def digest_for_manifest(path: Path, limit: int = 64 << 20) -> dict[str, Any]:
    """A file's SHA-256 for run.json; a file over `limit` bytes (not a workbook the run reads) is hashed over its
    first MiB only, and run.json says so."""
    size = path.stat().st_size
    if size <= limit:
        return {"sha256": sha256_file(path)}
    with path.open("rb") as fh:
        head = hashlib.sha256(fh.read(1 << 20)).hexdigest()
    return {"sha256": "", "size": size, "sha256_first_mib": head}


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
