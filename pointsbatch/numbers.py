"""Numbers as people write them in messages, sheets and pages: 85, 72.5 (no trailing .0)."""

from __future__ import annotations

from typing import Any


def number_text(value: Any, decimals: int = 2) -> str:
    """A number rounded to `decimals` without trailing zeros; blank for missing."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    value = round(float(value), decimals)
    return str(int(value)) if value.is_integer() else f"{value:.{decimals}f}".rstrip("0").rstrip(".")
