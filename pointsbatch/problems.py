"""Problems are values: what is wrong, where (file, sheet, cell), and what to tell the recorder."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Severity = Literal["error", "warning"]

# A workbook whose every row is wrong yields this many problems and a closing line, not a flood.
PROBLEM_CEILING = 300


@dataclass(frozen=True)
class Problem:
    severity: Severity
    code: str
    sheet: str
    cell: str
    value: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def is_error(self) -> bool:
        return self.severity == "error"


def has_errors(problems: list[Problem]) -> bool:
    return any(p.is_error for p in problems)


def sort_key(p: Problem) -> tuple:
    """Errors first, then by sheet, then in reading order of the cell (row, then column)."""
    row, col = split_cell(p.cell)
    return (p.severity != "error", p.sheet, row, len(col), col, p.code)


def split_cell(cell: str) -> tuple[int, str]:
    letters = "".join(ch for ch in cell if ch.isalpha())
    digits = "".join(ch for ch in cell if ch.isdigit())
    return (int(digits) if digits else 0, letters)
