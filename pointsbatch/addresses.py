"""Mail addresses as the clerk types them into the registry: exactly one valid address a cell, or a reason."""

from __future__ import annotations

import re

_SEPARATORS = re.compile(r"[\s;；,，、]+")
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_ADDRESS = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})+")


def address_problem(text: str) -> str | None:
    """Why `text` (a registry cell, already NFKC-normalised and trimmed) is not one mail address, or None.

    Several addresses are refused rather than the first one taken: results carry members' data, and only the
    town knows which address is the branch's."""
    parts = [p for p in _SEPARATORS.split(text) if p]
    if len(parts) > 1:
        return f"填了{len(parts)}个邮箱地址（{'、'.join(parts[:3])}），回复只能发往一个地址，请只保留一个"
    if not parts or _ADDRESS.fullmatch(parts[0]) is None:
        return f"「{text}」不是有效的邮箱地址，应形如 dangjian@example.gov.cn"
    return None
