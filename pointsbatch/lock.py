"""One job at a time per OUT: `run` while it builds and replaces OUT and `send` while it mails from it.

The lock is an operating-system lock (filelock: fcntl on Linux, msvcrt on Windows) on a hidden file in the folder
OUT lives in (`results/` by default), so a killed process never leaves a lock behind that blocks the next run; the
file itself may stay, harmlessly. It is the folder's lock, not OUT's, because a run with the default OUT learns
its name (results/<year><period>) only from the workbooks.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path


class Busy(Exception):
    """Another pointsbatch job holds OUT: its Chinese message says which folder and what to do."""


LOCK_FILE = ".pointsbatch.lock"


def lock_path(out: Path) -> Path:
    return Path(out).resolve().parent / LOCK_FILE


def hold(out: Path, wait: float = 0.0) -> AbstractContextManager[None]:
    """Hold OUT's lock for the block; wait up to `wait` seconds for another job to finish, then raise Busy."""
    return hold_folder(Path(out).resolve().parent, wait, shown=Path(out))


@contextmanager
def hold_folder(folder: Path, wait: float = 0.0, shown: Path | None = None) -> Iterator[None]:
    """Hold the lock of the folder OUT lives in (`shown`: the OUT to name in the message)."""
    from filelock import FileLock, Timeout

    out = shown or folder
    path = Path(folder).resolve() / LOCK_FILE
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
