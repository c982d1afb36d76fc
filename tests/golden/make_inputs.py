"""Make the inputs of tests/test_golden.py once (they are committed; run this only to change them).

    python tests/golden/make_inputs.py

Both shapes a branch sends: template-made workbooks (styles, drop-downs, empty template rows) and lean ones (only
the filled cells, as a workbook built by hand or re-saved from another tool), one of each with mistakes, a veto and
an exempt member among them; the registry names a branch that sends nothing; `correction/` holds one workbook
corrected after the notice (a leave mark turned into attendance).
"""

from __future__ import annotations

import random
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from make_samples import add_mistakes, branch_filling, write_lean, write_registry  # noqa: E402

from pointsbatch.rules import load_rules  # noqa: E402
from pointsbatch.workbook.template import build_template, write_workbook  # noqa: E402

YEAR = 2026
# (branch, members, veto, exempt, mistakes, lean)
BRANCHES = [
    ("城关村党支部", 12, False, False, False, False),
    ("青石社区党支部", 30, False, True, True, False),
    ("红星村党支部", 45, True, False, False, True),
    ("镇机关第一党支部", 25, False, False, True, True),
    ("镇中心学校党支部", 60, True, True, False, False),
]


def main() -> None:
    rules = load_rules()
    rng = random.Random(20261127)
    inbox, correction = HERE / "inbox", HERE / "correction"
    for folder in (inbox, correction):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
    with tempfile.TemporaryDirectory() as tmp:
        for branch, size, veto, exempt, mistakes, lean in BRANCHES:
            filling = branch_filling(rng, branch, size, YEAR, with_veto=veto, with_exempt=exempt, activities=(2, 8))
            if mistakes:
                add_mistakes(filling)
            target = inbox / f"{branch}{YEAR}.xlsx"
            made = Path(tmp) / target.name if lean else target
            write_workbook(build_template(rules, YEAR, filling=filling), made)
            if lean:
                write_lean(made, target)
            if branch == "城关村党支部":
                row = next(r for r in filling.grid if "假" in r[2:])
                row[row.index("假", 2)] = "√"  # the correction: a member who was there had been marked on leave
                write_workbook(build_template(rules, YEAR, filling=filling), correction / target.name)
    write_registry(HERE / "支部名录.xlsx", [b for b, *_ in BRANCHES])
    print(f"wrote {inbox}, {correction} and the registry")


if __name__ == "__main__":
    main()
