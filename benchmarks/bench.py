"""Benchmark: the whole batch over N branch workbooks of each shape, against the floor of reading them.

    python benchmarks/bench.py                     # the issue's set: template-made, lean, 25% rejected (300 each)
    python benchmarks/bench.py --memory            # ... and 3,000 lean workbooks, for the memory slope
    python benchmarks/bench.py --only lean --count 1000 --jobs 1

Each case runs the batch in a child process (`pointsbatch`'s own run_batch) while this process samples the
resident memory of the child and its workers every 20 ms, so it prints the peak of the main process and of the
whole process tree. The floor is measured in the same run: python-calamine reading every sheet of the same inputs,
in one process; the ratio is the batch's wall time (with --jobs workers) over it.

Shapes: template-made workbooks are what `pointsbatch template` gives and a recorder fills (styles, drop-downs,
empty template rows); lean ones carry only the filled cells, as a workbook built by hand or re-saved from another
tool does. One workbook in 25 has a recorder's mistakes (25% in the rejected case). Inputs are generated once per
case under benchmarks/out/ and reused.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "scripts"))

GENERATION = 4  # bump when generate() changes what it writes, so that stale inboxes are made again


def generate(shape: str, count: int, every: int, seed: int) -> tuple[Path, str]:
    """The inbox of a case (made once): `count` workbooks, every `every`-th with mistakes, in `shape`."""
    from make_samples import add_mistakes, branch_filling, write_lean

    from pointsbatch.rules import load_rules
    from pointsbatch.workbook.template import build_template, write_workbook

    folder = HERE / "out" / f"inbox-{shape}-{count}-r{every}"
    marker = folder / f".complete-{seed}-v{GENERATION}"
    if marker.exists():
        return folder, marker.read_text(encoding="utf-8")
    if shape == "lean":  # the same branches as the template-made case, re-saved lean
        made, about = generate("template", count, every, seed)
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for path in sorted(made.glob("*.xlsx")):
            write_lean(path, folder / path.name)
        marker.write_text(about, encoding="utf-8")
        return folder, about
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rules = load_rules()
    rng = random.Random(seed)
    members = logs = faulty = 0
    for n in range(1, count + 1):
        name = f"第{n:04d}党支部"
        # a typical branch: about 70 members and 400 log rows
        filling = branch_filling(rng, name, rng.randint(40, 100), 2026, with_veto=n % 7 == 0,
                                 with_exempt=n % 5 == 0, activities=(2, 10))
        if n % every == 0:
            add_mistakes(filling)
            faulty += 1
        members += len(filling.roster)
        logs += sum(len(rows) for rows in filling.logs.values())
        write_workbook(build_template(rules, 2026, filling=filling), folder / f"{name}.xlsx")
    about = (f"on average {members / count:.0f} members and {logs / count:.0f} log rows a workbook; "
             f"{faulty} with mistakes")
    marker.write_text(about, encoding="utf-8")
    return folder, about


def floor_seconds(paths: list[Path]) -> float:
    from python_calamine import CalamineWorkbook

    started = time.perf_counter()
    for path in paths:
        wb = CalamineWorkbook.from_path(str(path))
        for name in wb.sheet_names:
            wb.get_sheet_by_name(name).to_python()
        wb.close()
    return time.perf_counter() - started


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            return next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), 0)
    except OSError:
        return 0


def _tree(pid: int) -> list[int]:
    """The process and all its descendants (Linux /proc)."""
    pids, i = [pid], 0
    while i < len(pids):
        try:
            for task in os.listdir(f"/proc/{pids[i]}/task"):
                with open(f"/proc/{pids[i]}/task/{task}/children", encoding="ascii") as f:
                    pids.extend(int(p) for p in f.read().split())
        except OSError:
            pass
        i += 1
    return pids


def run_case(inbox: Path, jobs: int) -> dict[str, float]:
    """The batch in a child process; its own figures and the whole tree's sampled peak."""
    out = HERE / "out" / f"results-{inbox.name}"
    shutil.rmtree(out, ignore_errors=True)
    child = subprocess.Popen([sys.executable, __file__, "--child", str(inbox), str(out), str(jobs)],
                             stdout=subprocess.PIPE, text=True)
    tree_peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal tree_peak
        while not done.is_set():
            tree_peak = max(tree_peak, sum(_rss_kb(p) for p in _tree(child.pid)))
            done.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, _ = child.communicate()
    done.set()
    sampler.join()
    if child.returncode != 0:
        raise SystemExit(f"the batch failed on {inbox}")
    figures = json.loads(stdout.strip().splitlines()[-1])
    figures["tree_peak_mb"] = tree_peak / 1024
    return figures


def child(inbox: str, out: str, jobs: str) -> None:
    from pointsbatch.batch import RunOptions, run_batch

    started = time.perf_counter()
    report = run_batch(RunOptions(inbox=Path(inbox), out=Path(out), jobs=int(jobs), run_date=dt.date(2027, 1, 15),
                                  notice_start=dt.date(2027, 1, 16)))
    seconds = time.perf_counter() - started
    print(json.dumps({
        "seconds": seconds, "phases": report.seconds,
        "accepted": report.count("accepted"), "rejected": report.count("rejected"),
        "main_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "worker_peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }))


CASES = {  # name: (shape, every n-th workbook with mistakes, target ratio to the floor)
    "template": ("template", 25, 3.5),
    "lean": ("lean", 25, 5.0),
    "rejected": ("template", 4, None),
}


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        child(*sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--only", choices=sorted(CASES), action="append", help="run only these cases")
    parser.add_argument("--memory", action="store_true", help="also 3,000 lean workbooks (the memory slope)")
    args = parser.parse_args()

    print(f"machine : {os.cpu_count()} cores, Python {sys.version.split()[0]}; --jobs {args.jobs}")
    cases = [(name, args.count) for name in (args.only or CASES)]
    if args.memory:
        cases.append(("lean", 3000))
    for name, count in cases:
        shape, every, target = CASES[name]
        t0 = time.perf_counter()
        inbox, about = generate(shape, count, every, args.seed)
        generated = time.perf_counter() - t0
        paths = sorted(inbox.glob("*.xlsx"))
        floor = min(floor_seconds(paths) for _ in range(2 if count <= 300 else 1))
        f = run_case(inbox, args.jobs)
        n = len(paths)
        ratio = f["seconds"] / floor
        print(f"\n== {name}, {n} workbooks (accepted {f['accepted']}, rejected {f['rejected']})"
              f"{'' if generated < 1 else f'; generated in {generated:.0f} s'}")
        print(f"   {about}")
        print(f"   whole batch : {f['seconds']:.2f} s, {f['seconds'] / n * 1000:.1f} ms per workbook "
              f"({', '.join(f'{k} {v:.1f} s' for k, v in f['phases'].items())})")
        print(f"   floor       : {floor:.2f} s, {floor / n * 1000:.1f} ms per workbook (calamine, one process)")
        print(f"   ratio       : {ratio:.1f}x the floor" + (f" (target <= {target}x)" if target else ""))
        print(f"   memory      : main process {f['main_peak_mb']:.0f} MB, largest worker {f['worker_peak_mb']:.0f} MB,"
              f" whole tree {f['tree_peak_mb']:.0f} MB (sampled)"
              + (" (targets: main <= 300 MB, tree <= 1 GB)" if count >= 3000 else ""))


if __name__ == "__main__":
    main()
