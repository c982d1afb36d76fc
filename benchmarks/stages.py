"""Where one workbook's time goes, stage by stage, in one process (the workers' share of the batch).

    python benchmarks/stages.py               # the first 100 template-made workbooks bench.py generated
    python benchmarks/stages.py --shape lean --count 32

Uses the workbooks bench.py generated (run it first). Stages run as the batch runs them: each workbook read, a
chunk validated and scored together (both periods), then each branch's outputs written.
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    from pointsbatch.files import sha256_file
    from pointsbatch.history import ledger_rows
    from pointsbatch.model import FileResult
    from pointsbatch.render.branch import member_rows, records, render_notice, render_results
    from pointsbatch.render.feedback import write_feedback
    from pointsbatch.render.slip import render_slips
    from pointsbatch.rules import load_rules
    from pointsbatch.score import score_branches
    from pointsbatch.validate import validate_workbook, validate_workbooks
    from pointsbatch.workbook.read import read_workbook
    from pointsbatch.workers import CHUNK, freeze_imports, tune_gc

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--shape", choices=("template", "lean"), default="template")
    args = parser.parse_args()
    paths = sorted((HERE / "out" / f"inbox-{args.shape}-300-r25").glob("*.xlsx"))[: args.count + 1]
    if len(paths) < 2:
        raise SystemExit("no workbooks: run `python benchmarks/bench.py` first")
    rules = load_rules()
    run_date = dt.date(2027, 1, 15)
    seconds: dict[str, float] = defaultdict(float)

    def timed(stage: str, fn, *a):
        started = time.perf_counter()
        value = fn(*a)
        seconds[stage] += time.perf_counter() - started
        return value

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        warm, paths = paths[0], paths[1:]
        score_branches([validate_workbook(read_workbook(warm), rules, "annual").branch], rules)  # imports, caches
        tune_gc()  # as a worker is set up
        freeze_imports()
        for i in range(0, len(paths), CHUNK):
            branches = []
            chunk = paths[i:i + CHUNK]
            books = []
            for path in chunk:
                timed("digest", sha256_file, path)
                books.append(timed("read", read_workbook, path))
            for path, checked in zip(chunk, timed("validate (chunk)", validate_workbooks, books, rules, "annual"),
                                     strict=True):
                if checked.branch is not None:
                    branches.append(checked.branch)
                    continue
                result = FileResult(path.name, "", "rejected", problems=checked.problems)
                timed("marked copy (rejected only)", write_feedback, path, result, out, True)
            annual = timed("score (chunk, both periods)", score_branches, branches, rules, "annual")
            h1 = timed("score (chunk, both periods)", score_branches, branches, rules, "h1", False)
            for n, (branch, s, h) in enumerate(zip(branches, annual, h1, strict=True)):
                members, ledger = timed("rows for the outputs", lambda s=s, h=h: (member_rows(s, h),
                                                                                   records(s.ledger)))
                timed("results workbook", render_results, out / f"{i + n}.xlsx", branch, s, rules, run_date,
                      members, ledger)
                timed("notice", render_notice, branch, s, rules, run_date)
                timed("member slips", render_slips, branch, s, rules, run_date, None, h)
                timed("ledger.csv rows", ledger_rows, branch.info.name, ledger)
    n = len(paths)
    print(f"{n} workbooks, one process, milliseconds per workbook:")
    for stage, secs in seconds.items():
        print(f"  {stage:28s} {secs / n * 1000:7.1f}")
    print(f"  {'total':28s} {sum(seconds.values()) / n * 1000:7.1f}")


if __name__ == "__main__":
    main()
