"""The answer to a rejected workbook: a marked copy and a plain problem list, in 问题反馈/."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from ..display import printable
from ..files import safe_component
from ..model import FileResult
from ..names import FEEDBACK


def write_feedback(source: Path, result: FileResult, staging: Path, readable: bool, data: bytes | None = None,
                   run_at: dt.datetime | None = None) -> None:
    """The marked copy (when the file could be opened) and a plain problem list, in 问题反馈/; `data`: the file's
    bytes as they were checked, when the caller has them; `run_at`: the run's clock, for the copy's properties."""
    from ..workbook.marked import problem_table_rows, write_marked_copy

    stem = safe_component(source.stem, "工作簿")
    folder = staging / FEEDBACK
    folder.mkdir(parents=True, exist_ok=True)
    outputs = []
    if readable:
        target = folder / f"{stem}_问题标注.xlsx"
        try:
            result.problems += write_marked_copy(source, result.problems, target, data, created=run_at)  # (links)
            outputs.append(str(Path(FEEDBACK) / target.name))
        except Exception:  # openpyxl could not rewrite it; the problem list still goes back
            pass
    lines = [f"文件：{printable(source.name)}", f"支部：{result.branch or '（未能识别）'}", ""]
    lines += [f"{i}. [{sev}] {sheet} {cell}：{msg}" for i, (sev, sheet, cell, msg) in
              enumerate(problem_table_rows(result.problems), start=1)]
    listing = folder / f"{stem}_问题清单.txt"
    listing.write_text("\ufeff" + "\r\n".join(lines) + "\r\n", encoding="utf-8")
    outputs.append(str(Path(FEEDBACK) / listing.name))
    result.outputs = outputs
