"""Problems are values: what is wrong, where (file, sheet, cell), and what to tell the recorder."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Severity = Literal["error", "warning"]
Scope = Literal["file", "sheet", "cell"]  # what a problem is about: the whole file, a sheet (or its header), a cell

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
    scope: Scope = "cell"  # from the code (workbook/messages.py SCOPES), never guessed from the other fields

    def as_dict(self) -> dict[str, Any]:
        row, column = split_cell(self.cell)
        return {**asdict(self), "row": row or None, "column": column or None}

    @property
    def row(self) -> int | None:
        """The Excel row of the cell, or None for a problem of a sheet or of the file."""
        return split_cell(self.cell)[0] or None

    @property
    def column(self) -> str | None:
        """The column letters of the cell (e.g. "F"), or None."""
        return split_cell(self.cell)[1] or None

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
