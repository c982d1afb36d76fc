"""Time and peak memory of `pointsbatch check` on each hostile input the tests build (the promise: every input
within 1 GB and about a minute, judged before it is loaded). Prints figures; asserts nothing.

    python benchmarks/hostile.py

Each input is checked in its own process, so the peak is that input's alone.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def main() -> None:
    from test_hostile import (
        make_cells_in_a_comment,
        make_entity_bomb,
        make_million_rows,
        make_sheet_list_in_a_comment,
        make_zip_bomb,
    )
    from test_size import far_cell, shared_strings_bomb, ten_million_cells

    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        inputs = {
            "zip bomb (60 MB part)": make_zip_bomb(scratch / "bomb.xlsx", scratch),
            "XML entity bomb": make_entity_bomb(scratch / "entities.xlsx", scratch),
            "a sheet of a million rows": make_million_rows(scratch / "million.xlsx", scratch),
            "one cell at XFD20000": far_cell(scratch / "far.xlsx"),
            "ten million cells": ten_million_cells(scratch / "ten-million.xlsx"),
            "17 million shared strings": shared_strings_bomb(scratch / "strings.xlsx"),
            "<sheet name= ×2500 in comment": make_sheet_list_in_a_comment(scratch / "sheets.xlsx"),
            "<c r= ×6000 in comment": make_cells_in_a_comment(scratch / "cells.xlsx"),
        }
        print(f"{'input':31} {'file':>10} {'seconds':>8} {'peak MB':>8}  result")
        for label, path in inputs.items():
            started = time.perf_counter()
            proc = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True,
                                  timeout=600)
            seconds = time.perf_counter() - started
            peak_mb = int(proc.stderr.rsplit("PEAK ", 1)[-1].split()[0]) / 1024  # KiB
            code = "traceback!" if "Traceback" in proc.stderr + proc.stdout else f"exit {proc.returncode}"
            print(f"{label:31} {path.stat().st_size / 1e6:>8.1f}MB {seconds:>8.1f} {peak_mb:>8.0f}  {code}")


# `pointsbatch check FILE` in a process of its own, which prints its own peak memory last
CHILD = """
import sys
from pointsbatch.cli import main
try:
    main(["check", sys.argv[1]])
except SystemExit as exc:
    code = exc.code
# VmHWM, not ru_maxrss: on Linux a child's ru_maxrss starts at its parent's peak (here, building the inputs)
with open("/proc/self/status") as status:
    print("PEAK", next(line.split()[1] for line in status if line.startswith("VmHWM")), file=sys.stderr)
sys.exit(code)
"""


if __name__ == "__main__":
    main()
