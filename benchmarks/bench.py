"""Benchmark: the whole batch over N realistic branch workbooks, against the floor of reading them.

    python benchmarks/bench.py                 # 300 workbooks, all cores
    python benchmarks/bench.py --count 1000    # the memory figure for a county
    python benchmarks/bench.py --count 300 --jobs 1

Prints seconds, milliseconds per workbook, peak memory, and the floor measured in the same run
(python-calamine reading every sheet of the same inputs, one process) with the ratio between the two.
Workbooks are generated once per (count, seed) under benchmarks/out/ and reused.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import resource
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "scripts"))


GENERATION = 3  # bump when generate() changes what it writes, so that stale inboxes are made again


def generate(folder: Path, count: int, seed: int) -> tuple[list[Path], str]:
    """N workbooks in `folder` (made once per count, seed and GENERATION), and a line describing them."""
    from make_samples import add_mistakes, branch_filling

    from pointsbatch.rules import load_rules
    from pointsbatch.workbook.template import build_template, write_workbook

    marker = folder / f".complete-{count}-{seed}-v{GENERATION}"
    if marker.exists():
        return sorted(folder.glob("*.xlsx")), marker.read_text(encoding="utf-8")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rules = load_rules()
    rng = random.Random(seed)
    members = logs = faulty = 0
    for n in range(1, count + 1):
        name = f"第{n:04d}党支部"
        # the typical branch: about 70 members and 400 log rows; one workbook in 25 has mistakes
        filling = branch_filling(rng, name, rng.randint(40, 100), 2026, with_veto=n % 7 == 0,
                                 with_exempt=n % 5 == 0, activities=(2, 10))
        if n % 25 == 0:
            add_mistakes(filling)
            faulty += 1
        members += len(filling.roster)
        logs += sum(len(rows) for rows in filling.logs.values())
        write_workbook(build_template(rules, 2026, filling=filling), folder / f"{name}.xlsx")
    about = (f"on average {members / count:.0f} members and {logs / count:.0f} log rows a workbook; "
             f"{faulty} with mistakes")
    marker.write_text(about, encoding="utf-8")
    return sorted(folder.glob("*.xlsx")), about


def floor_seconds(paths: list[Path]) -> float:
    from python_calamine import CalamineWorkbook

    started = time.perf_counter()
    for path in paths:
        wb = CalamineWorkbook.from_path(str(path))
        for name in wb.sheet_names:
            wb.get_sheet_by_name(name).to_python()
        wb.close()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()

    inbox = HERE / "out" / f"inbox-{args.count}"
    t0 = time.perf_counter()
    paths, about = generate(inbox, args.count, args.seed)
    generated = time.perf_counter() - t0

    floor = floor_seconds(paths)

    from pointsbatch.batch import RunOptions, run_batch

    out = HERE / "out" / f"results-{args.count}"
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    report = run_batch(RunOptions(inbox=inbox, out=out, jobs=args.jobs, run_date=dt.date(2027, 1, 15)))
    seconds = time.perf_counter() - started

    self_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    workers = min(args.jobs, len(paths)) if args.jobs > 1 else 0
    n = len(paths)
    print(f"machine            : {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    print(f"workbooks          : {n} (accepted {report.count('accepted')}, rejected {report.count('rejected')})"
          f"{'' if generated < 1 else f', generated in {generated:.1f} s'}")
    print(f"                     {about}")
    print(f"jobs               : {args.jobs}")
    print(f"whole batch        : {seconds:.2f} s, {seconds / n * 1000:.1f} ms per workbook")
    phases = ", ".join(f"{name} {secs:.1f} s" for name, secs in report.seconds.items())
    print(f"  of which         : {phases}")
    print(f"floor (calamine)   : {floor:.2f} s, {floor / n * 1000:.1f} ms per workbook (one process)")
    print(f"ratio batch/floor  : {seconds / floor:.1f}x")
    print(f"peak memory        : main process {self_peak:.0f} MB, largest worker {child_peak:.0f} MB, "
          f"all processes at most {self_peak + workers * child_peak:.0f} MB")


if __name__ == "__main__":
    main()
