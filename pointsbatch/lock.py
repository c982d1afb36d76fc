"""One job at a time per OUT: `run` while it replaces OUT and `send` while it mails from it.

The lock is an operating-system lock (filelock: fcntl on Linux, msvcrt on Windows) on a hidden file beside OUT,
so a killed process never leaves a lock behind that blocks the next run; the file itself may stay, harmlessly.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class Busy(Exception):
    """Another pointsbatch job holds OUT: its Chinese message says which folder and what to do."""


def lock_path(out: Path) -> Path:
    out = Path(out).resolve()
    return out.parent / f".{out.name}.pointsbatch-lock"


@contextmanager
def hold(out: Path, wait: float = 0.0) -> Iterator[None]:
    """Hold OUT's lock for the block; wait up to `wait` seconds for another job to finish, then raise Busy."""
    from filelock import FileLock, Timeout

    path = lock_path(out)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(path), timeout=wait)
        lock.acquire()
    except Timeout:
        raise Busy(f"另一个 pointsbatch 命令（run 或 send）正在使用输出文件夹 {Path(out)}，"
                   "请等它结束后再运行") from None
    try:
        yield
    finally:
        lock.release()
