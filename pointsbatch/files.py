"""Files written whole or not at all, and digests."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path


def atomic_save(path: Path, write: Callable[[str], object]) -> None:
    """Call `write(tmp_name)` on a temporary file beside `path`, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_save(path, lambda tmp: Path(tmp).write_bytes(data))


def atomic_write_text(path: Path, text: str, encoding: str = "utf-8") -> None:
    atomic_write_bytes(path, text.encode(encoding))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


_UNSAFE = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]')


def safe_component(name: str, fallback: str = "未命名") -> str:
    """A single path component that cannot leave its folder, whatever the workbook's text says."""
    text = unicodedata.normalize("NFKC", str(name))
    text = _UNSAFE.sub("_", text).strip().strip(".")
    text = re.sub(r"\s+", " ", text)[:60].strip()
    if not text or set(text) <= {"_", "."}:
        return fallback
    if text.upper().split(".")[0] in {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)),
                                      *(f"LPT{i}" for i in range(10))}:
        text = "_" + text
    return text


def sha256_or_blank(path: Path) -> str:
    try:
        return sha256_file(path) if path.is_file() else ""
    except OSError:
        return ""


STALE_STAGING_SECONDS = 6 * 3600


def _old_name(out: Path) -> Path:
    return out.parent / f".{out.name}.old"


def recover_interrupted(out: Path) -> None:
    """If a run was killed between its two renames, put the previous complete OUT back."""
    old = _old_name(out)
    if old.exists() and not out.exists():
        os.replace(old, out)
    elif old.exists():
        shutil.rmtree(old, ignore_errors=True)
    # a staging folder left by a killed run; by age, since probing a process id is not portable (on Windows
    # os.kill would end the process)
    for stale in out.parent.glob(f".{out.name}.tmp-*"):
        try:
            old_enough = time.time() - stale.stat().st_mtime > STALE_STAGING_SECONDS
        except OSError:
            continue
        if old_enough:
            shutil.rmtree(stale, ignore_errors=True)


def swap_in(staging: Path, out: Path) -> None:
    """Replace OUT by the complete staging folder: OUT is the old run or the new one, never a mixture."""
    old = _old_name(out)
    if out.exists():
        os.replace(out, old)
    os.replace(staging, out)
    shutil.rmtree(old, ignore_errors=True)
