"""Each accepted workbook's rows of the town's files, left by a worker in staging for the main process to join.

A worker appends a workbook's rows of ledger.csv, marks.csv and scores.csv, and its members (for the town summary
and the changes since earlier runs), to its chunk's files in staging's private folder `.parts`; the workbook's
FileResult carries only where they are (a Part: file, offset, length). The main process joins them in the report's
order by streaming and reads the members one workbook at a time, so that it never holds every member: a county
sends 3,000 workbooks, 200,000 members and a 400 MB ledger. The folder is removed before OUT is swapped.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NamedTuple, cast

if TYPE_CHECKING:
    from .model import MemberRow
    from .render.branch import Records

PARTS = ".parts"  # inside staging
LEDGER, MARKS, SCORES, MEMBERS = "ledger", "marks", "scores", "members"


class Part(NamedTuple):
    """Where one workbook's rows of one kind are: a byte range of a chunk's file."""
    path: str
    offset: int
    length: int


class PartWriter:
    """One chunk's part files, a file per kind, opened as the first workbook of that kind arrives."""

    def __init__(self, folder: Path, name: str) -> None:
        self.folder, self.name = folder, name
        self.files: dict[str, IO[bytes]] = {}

    def add(self, kind: str, data: bytes) -> Part:
        fh = self.files.get(kind)
        if fh is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            fh = self.files[kind] = open(self.folder / f"{self.name}.{kind}", "wb")  # noqa: SIM115 (closed by close)
        offset = fh.tell()
        fh.write(data)
        return Part(fh.name, offset, len(data))

    def close(self) -> None:
        for fh in self.files.values():
            fh.close()
        self.files = {}

    def __enter__(self) -> PartWriter:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def members_part(branch: str, columns: dict[str, list[Any]]) -> bytes:
    """A workbook's members as its part holds them: the branch and the member table column by column (render.branch
    .member_rows), pickled (this program's own file, read back only by this run)."""
    return pickle.dumps((branch, columns), protocol=pickle.HIGHEST_PROTOCOL)


def read_part(part: Part) -> bytes:
    with open(part.path, "rb") as fh:
        fh.seek(part.offset)
        data = fh.read(part.length)
    if len(data) != part.length:
        raise OSError(f"{part.path}: 临时文件不完整")
    return data


def copy_parts(parts: Iterable[Part], target: IO[bytes], block: int = 1 << 20) -> None:
    """Append each part's bytes to `target`, in the order given, a block at a time."""
    for part in parts:
        with open(part.path, "rb") as fh:
            fh.seek(part.offset)
            left = part.length
            while left:
                data = fh.read(min(block, left))
                if not data:
                    raise OSError(f"{part.path}: 临时文件不完整")
                target.write(data)
                left -= len(data)


def read_members(part: Part) -> tuple[str, dict[str, list[Any]]]:
    """(branch, the member table column by column) of one workbook."""
    branch, columns = pickle.loads(read_part(part))
    return branch, columns


def member_dicts(part: Part) -> list[MemberRow]:
    """One workbook's members as the town's outputs read them (model.MemberRow: each row with its branch)."""
    branch, columns = read_members(part)
    keys = list(columns)
    return [cast("MemberRow", {**dict(zip(keys, row, strict=True)), "branch": branch})
            for row in zip(*columns.values(), strict=True)]


class Members:
    """The members of several workbooks, read from their parts whenever they are gone through (one workbook at a
    time), so that a template can list them all without the main process holding them; picklable, so that a worker
    can write the town summary from it. With `grade`: only the scored (not exempt) members of that grade."""

    def __init__(self, parts: list[Part], length: int, grade: str | None = None) -> None:
        self.parts, self.length, self.grade = parts, length, grade

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[MemberRow]:
        for part in self.parts:
            for m in member_dicts(part):
                if self.grade is None or (not m["exempt"] and m["grade"] == self.grade):
                    yield m

    def records(self) -> Records:
        """The same members, held column by column (render.branch.Records, as the .xlsx renderer takes them)."""
        from .render.branch import Records

        merged: dict[str, list[Any]] = {}
        n = 0
        for part in self.parts:
            branch, columns = read_members(part)
            count = len(next(iter(columns.values()), []))
            columns = {**columns, "branch": [branch] * count}
            if self.grade is not None:
                keep = [i for i in range(count) if not columns["exempt"][i] and columns["grade"][i] == self.grade]
                columns = {key: [values[i] for i in keep] for key, values in columns.items()}
                count = len(keep)
            for key, values in columns.items():
                merged.setdefault(key, []).extend(values)
            n += count
        return Records(merged, n)
