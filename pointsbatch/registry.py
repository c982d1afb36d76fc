"""The town's registry of branches (支部名录.xlsx): who is expected, and the only addresses mail goes to."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .model import RunError


@dataclass(frozen=True)
class RegistryEntry:
    code: str
    name: str
    parent: str
    contact: str
    email: str


def read_registry(path: Path) -> dict[str, RegistryEntry]:
    """支部名录.xlsx: branch name -> entry. A registry that cannot be used stops the run (exit 2)."""
    from .addresses import address_problem
    from .workbook.read import clean_key, clean_name, clean_text, column_letter, size_problem

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise RunError(f"无法读取支部名录 {path}：{exc.strerror or exc}") from exc
    trouble = size_problem(data)  # measured before it is read, as a workbook is
    if trouble is not None:
        raise RunError(f"无法读取支部名录 {path}：{trouble.message}")
    try:
        from python_calamine import CalamineWorkbook

        wb = CalamineWorkbook.from_filelike(io.BytesIO(data))
        rows = wb.get_sheet_by_index(0).to_python(skip_empty_area=False, nrows=100_000)
    except Exception as exc:
        raise RunError(f"无法读取支部名录 {path}：{exc}") from exc
    if not rows:
        raise RunError(f"支部名录 {path} 是空的")
    header = [clean_key(h) if isinstance(h, str) else "" for h in rows[0]]
    wanted = {"支部编码": "code", "支部名称": "name", "上级党组织": "parent", "联系人": "contact", "联系邮箱": "email"}
    if "支部名称" not in header:
        raise RunError(f"支部名录 {path} 的第1行缺少「支部名称」列")
    idx = {key: header.index(h) for h, key in wanted.items() if h in header}
    out: dict[str, RegistryEntry] = {}
    rows_of: dict[str, int] = {}
    for number, r in enumerate(rows[1:], start=2):
        def get(key: str, r: list[Any] = r) -> str:
            i = idx.get(key)
            v = r[i] if i is not None and i < len(r) else None
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            return (clean_text(str(v)) or "") if v not in (None, "") else ""
        name = get("name")
        if name:
            name = clean_name(name)
            email = get("email")
            why = address_problem(email) if email else None
            if why:
                raise RunError(f"支部名录 {path} 的 {column_letter(idx['email'])}{number} 单元格（{name}）{why}")
            if name in out:  # which row's address is right, only the town knows: never pick one silently
                cell = f"{column_letter(idx['name'])}"
                raise RunError(f"支部名录 {path} 中「{name}」出现了两次（{cell}{rows_of[name]} 和 {cell}{number}），"
                               "请删除多余的一行后再运行")
            rows_of[name] = number
            out[name] = RegistryEntry(get("code"), name, get("parent"), get("contact"), email)
    return out
