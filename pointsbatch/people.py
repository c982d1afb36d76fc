"""The same person on two branches' rosters in one run (same 姓名 and 出生日期): a transfer that both branches
score, or a mistake. Flagged for the clerk, never merged: each branch's scores stand as its workbook gives them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd


def roster_people(roster: pd.DataFrame) -> list[tuple[str, str]]:
    """(姓名, 出生日期 as ISO text) of each roster member with a birth date: the key a person is known by across
    branches (a name alone is shared by too many)."""
    return [(str(name), birth.isoformat()) for name, birth in zip(roster["name"].tolist(), roster["birth"].tolist(),
                                                                   strict=True)
            if name is not None and birth is not None and birth == birth]


def same_person_in_two_branches(branches: Iterable[tuple[str, list[tuple[str, str]]]]) -> list[dict[str, Any]]:
    """Each (姓名, 出生日期) found on the rosters of two or more branches, with those branches (in name order)."""
    found: dict[tuple[str, str], set[str]] = {}
    for branch, people in branches:
        for person in people:
            found.setdefault(person, set()).add(branch)
    return [{"name": name, "birth": birth, "branches": sorted(where)}
            for (name, birth), where in sorted(found.items()) if len(where) > 1]


def branch_notes(same: list[dict[str, Any]]) -> dict[str, str]:
    """For each branch concerned, a note for the town summary naming the people also on another branch's roster."""
    notes: dict[str, list[str]] = {}
    for p in same:
        for branch in p["branches"]:
            others = "、".join(b for b in p["branches"] if b != branch)
            notes.setdefault(branch, []).append(f"{p['name']}（{p['birth']}）也在{others}名册中")
    return {b: "；".join(n) + "，请核实是否转接组织关系" for b, n in notes.items()}
