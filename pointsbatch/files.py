"""Files written whole or not at all, and digests."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import unicodedata
from collections.abc import Callable
from pathlib import Path


def atomic_save(path: Path, write: Callable[[str], object]) -> None:
    """Call `write(tmp_name)` on a temporary file beside `path`, then rename it into place."""
    path = Path(path)
    tmp = _temporary_beside(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_create(path: Path, write: Callable[[str], object]) -> None:
    """As `atomic_save`, but `path` must not exist: FileExistsError, and nothing replaced, if it does (also when
    it appears while the file is being written)."""
    path = Path(path)
    tmp = _temporary_beside(path)
    try:
        write(tmp)
        try:
            os.link(tmp, path)  # the name is taken only if it is free: no moment in which another file is replaced
        except FileExistsError:
            raise
        except OSError:  # a file system without hard links (some USB sticks and shares): claim the name, then fill it
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            try:
                os.replace(tmp, path)
            except BaseException:
                path.unlink(missing_ok=True)
                raise
    finally:
        Path(tmp).unlink(missing_ok=True)


def _temporary_beside(path: Path) -> str:
    """A new empty file in `path`'s folder (made if need be), with the permissions a new file gets there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())
    return tmp


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
    # invisible and format characters (zero-width space, BOM, bidi marks) never reach a file name
    text = "".join(ch for ch in text if unicodedata.category(ch) not in ("Cf", "Co", "Cn", "Cs"))
    text = _UNSAFE.sub("_", text).strip().strip(".").strip()
    text = re.sub(r"\s+", " ", text)[:60].strip()
    # a file system allows 255 bytes a name, and the outputs add up to about 60 more ("…2026年上半年个人积分告知单.html",
    # a "（2）"): a name of four-byte characters (emoji, rare CJK) must not make one branch stop the run
    while len(text.encode("utf-8")) > MAX_COMPONENT_BYTES:
        text = text[:-1]
    text = text.strip().strip(".").strip()
    if not text or set(text) <= {"_", "."}:
        return fallback
    if text.upper().split(".")[0] in WINDOWS_RESERVED:
        text = "_" + text
    return text


MAX_COMPONENT_BYTES = 120
WINDOWS_RESERVED = frozenset({"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$", *(f"COM{i}" for i in range(10)),
                              *(f"LPT{i}" for i in range(10))})


def sha256_or_blank(path: Path) -> str:
    try:
        return sha256_file(path) if path.is_file() else ""
    except OSError:
        return ""


def name_key(name: str) -> str:
    """How two output names compare on the clerk's computer (Windows: case-insensitive; after NFKC)."""
    return unicodedata.normalize("NFKC", name).casefold()


def unique(unit: str, taken: set[str], folder: str = "") -> str:
    """`unit`, or `unit（2）`, `unit（3）`… : the first not yet taken in `folder` (compared by name_key); takes it."""
    candidate, n = unit, 2
    while f"{folder}/{name_key(candidate)}" in taken:
        candidate, n = f"{unit}（{n}）", n + 1
    taken.add(f"{folder}/{name_key(candidate)}")
    return candidate


ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


class RawZip:
    """A zip written entry by entry from each entry's compressed bytes as they are (zipfile compresses whatever it
    writes: an entry copied from another zip, or compressed once and reused, would be inflated and deflated again).
    Every entry is dated 1980-01-01 00:00 (ZIP_EPOCH); no zip64 (a workbook is far below 4 GB: ValueError beyond)."""

    _DATE = (0 << 9) | (1 << 5) | 1  # 1980-01-01 in MS-DOS date format; the time is 00:00:00 (0)

    def __init__(self, made_by: int = 20) -> None:
        self.made_by = made_by  # (the "version made by" of the central directory: 20, or (3 << 8) | 20 for Unix)
        self.chunks: list[bytes] = []
        self.central: list[bytes] = []
        self.offset = 0

    def add(self, name: str, raw: bytes, method: int, crc: int, size: int, external_attr: int = 0) -> None:
        """An entry: its compressed bytes `raw` (`method`: 8 deflated, 0 stored), the CRC-32 and size of its
        content."""
        import struct

        encoded = name.encode("utf-8")
        flags = 0 if encoded.isascii() else 0x800
        if len(raw) > 0xFFFFFFFE or size > 0xFFFFFFFE or self.offset > 0xFFFFFFFE or len(self.central) > 0xFFFE:
            raise ValueError("too large for a zip without zip64")
        header = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, flags, method, 0, self._DATE, crc, len(raw), size,
                             len(encoded), 0)
        self.central.append(struct.pack("<4s6H3L5H2L", b"PK\x01\x02", self.made_by, 20, flags, method, 0,
                                        self._DATE, crc, len(raw), size, len(encoded), 0, 0, 0, 0,
                                        external_attr & 0xFFFFFFFF, self.offset) + encoded)
        self.chunks += [header, encoded, raw]
        self.offset += len(header) + len(encoded) + len(raw)

    def finish(self) -> bytes:
        import struct

        directory = b"".join(self.central)
        end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(self.central), len(self.central), len(directory),
                          self.offset, 0)
        return b"".join(self.chunks) + directory + end


def fixed_zip_dates(data: bytes, replace: dict[str, bytes] | None = None) -> bytes:
    """The same zip with every entry dated 1980-01-01 (as XlsxWriter dates its own): its bytes then depend on its
    content alone. `replace`: entries whose content is given anew."""
    import io
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            entry = zipfile.ZipInfo(info.filename, ZIP_EPOCH)
            entry.compress_type = info.compress_type
            entry.external_attr = info.external_attr
            dst.writestr(entry, (replace or {}).get(info.filename) or src.read(info))
    return out.getvalue()
