"""A reply per branch as a standard .eml message: Chinese subject and body from templates, attachments named in
Chinese (RFC 2231 filenames).

The same inputs give the same bytes: the Date is the run's clock (with its UTC offset), and the Message-ID and the
MIME boundary are derived from the message's content, so two runs with SOURCE_DATE_EPOCH set write identical files.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import mimetypes
import zipfile
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from email.generator import BytesGenerator
from email.message import EmailMessage, Message
from email.policy import SMTP
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from ..files import atomic_write_bytes, safe_component, unique
from ..jinja import render_text
from ..model import FileResult, RunOptions
from ..names import ATTACHMENTS, OUTBOX
from ..recipients import address_of, message_headers
from ..registry import RegistryEntry
from ..rules import PERIODS, Rules

SENDER = "pointsbatch@localhost"  # a placeholder: `send` refuses to mail from it (the clerk sets `sender`)
HEADER_TO_UNADDRESSED = "X-Pointsbatch-Unaddressed"
HEADER_BRANCH = "X-Pointsbatch-Branch"
HEADER_SERIES = "X-Pointsbatch-Series"  # what a later message of the same series replaces (a correction)
MSGID_DOMAIN = "pointsbatch.local"


def build_message(context: dict[str, Any], attachments: list[Path], to: str | None, sender: str = SENDER,
                  when: dt.datetime | None = None, headers: dict[str, str] | None = None,
                  templates: Path | None = None) -> bytes:
    """The message as bytes; `to` None leaves it unaddressed (the clerk decides, `send` will not mail it).
    `when`: the run's time (aware, so the Date carries its offset)."""
    msg = EmailMessage(policy=SMTP)
    subject = _one_line(render_text("mail_subject.txt", templates, **context))
    msg["Subject"] = subject
    msg["From"] = sender
    if to:
        msg["To"] = to
    else:
        msg[HEADER_TO_UNADDRESSED] = "yes"
    msg["Date"] = format_datetime(_aware(when))
    msg[HEADER_BRANCH] = _one_line(str(context.get("branch") or context.get("file") or ""))
    for name, value in (headers or {}).items():
        msg[name] = _one_line(value)
    msg.set_content(render_text("mail_body.txt", templates, **context))
    contents: list[bytes | None] = [None]  # (the body is read back from the message: its line ends as encoded)
    for path in attachments:
        ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        maintype, subtype = ctype.split("/", 1)
        data = path.read_bytes()
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=path.name)
        contents.append(data)
    digest = content_digest(msg, contents)
    msg["Message-ID"] = message_id(digest, to or "", subject)
    if msg.is_multipart():
        # "=_" occurs in neither base64 nor quoted-printable text, so the boundary cannot collide with a part
        msg.set_boundary(f"=_pointsbatch_{digest[:32]}")
    out = io.BytesIO()
    _Generator(out, mangle_from_=False, policy=msg.policy).flatten(msg)  # as msg.as_bytes() does
    return out.getvalue()


class _Generator(BytesGenerator):
    """The standard library's generator, with its line ends written in one go where a payload has no CR (base64
    attachments, the body): the same bytes as its line-by-line loop (a write call per line), a third of the time
    of a message."""

    def _write_lines(self, lines: str) -> None:
        if "\r" in lines:
            super()._write_lines(lines)  # type: ignore[misc]
        elif lines:
            self.write(lines.replace("\n", self._NL))  # type: ignore[attr-defined]


def message_id(digest: str, recipient: str, subject: str, variant: str = "") -> str:
    """A Message-ID that depends only on what the message says and to whom (and `variant`, for a resend)."""
    h = hashlib.sha256("\0".join((digest, recipient, subject, variant)).encode("utf-8")).hexdigest()
    return f"<{h[:40]}@{MSGID_DOMAIN}>"


def content_digest(msg: Message, contents: list[bytes | None] | None = None) -> str:
    """SHA-256 of what a message says: its body and attachments (names and contents), not its headers.

    An .xlsx attachment counts by the files inside it, less its document properties (docProps/: the time it was
    written), so the same results written again by a later run count as the same content. `contents`: each leaf
    part's decoded bytes where the caller has them (None where not), so they are not decoded again."""
    h = hashlib.sha256()
    leaves = [part for part in msg.walk() if not part.is_multipart()]
    known = contents if contents is not None and len(contents) == len(leaves) else [None] * len(leaves)
    for part, content in zip(leaves, known, strict=True):
        payload = part.get_payload(decode=True) if content is None else content
        data = payload if isinstance(payload, bytes) else b""
        for field in (part.get_content_type(), part.get_filename() or ""):
            raw = field.encode("utf-8")
            h.update(len(raw).to_bytes(8, "big") + raw)
        h.update(_zip_digest(data) if data[:4] == b"PK\x03\x04" else hashlib.sha256(data).digest())
    return h.hexdigest()


def _zip_digest(data: bytes) -> bytes:
    h = hashlib.sha256()
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for info in sorted(zf.infolist(), key=lambda i: i.filename):
                if info.filename.startswith("docProps/"):
                    continue
                name = info.filename.encode("utf-8")
                h.update(len(name).to_bytes(8, "big") + name + hashlib.sha256(zf.read(info)).digest())
    except (zipfile.BadZipFile, OSError, ValueError):  # not a zip after all: its bytes are its content
        return hashlib.sha256(data).digest()
    return h.digest()


def _aware(when: dt.datetime | None) -> dt.datetime:
    from ..clock import now

    if when is None:
        return now()
    return when if when.tzinfo is not None else when.astimezone()


def _one_line(text: str) -> str:
    """Header text on one line, control characters removed (no header injection from a workbook's text)."""
    return " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())[:200]


def write_outbox(staging: Path, results: list[FileResult], registry: dict[str, RegistryEntry] | None,
                 options: RunOptions, rules: Rules, year: int | None,
                 pool: ProcessPoolExecutor | None = None, changes: list[dict[str, Any]] | None = None
                 ) -> Iterator[None]:
    """A message per workbook in 发件箱/; built in the workers when there are some (base64 of the attachments).
    `changes`: whose totals moved since the scores were first posted (history.compare_with_previous), told to
    their branch in its message. Returns at once with the workers' results to wait for: exhaust it (it raises
    what a worker raised)."""
    tasks = []
    folder = staging / OUTBOX
    folder.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    for res in results:
        if res.status == "ignored":
            continue
        to = address_of(res, registry, options.trust_workbook_addresses)
        attachments = [staging / rel for rel in res.outputs if not rel.endswith(".txt")]
        names = [p.name for p in attachments]
        context = {
            "accepted": res.status == "accepted", "branch": res.branch, "file": res.name, "year": res.year or year,
            "period": PERIODS[options.period].label, "title": PERIODS[options.period].of(res.year or year),
            "days": rules.notice_days, "flags": res.flags,
            **{key: next((n for n in names if n.endswith(end)), "") for key, end in ATTACHMENTS.items()},
            "errors": res.errors,
            "problems": [f"{p.sheet} {p.cell}：{p.message}".strip() for p in res.problems if p.is_error][:50],
            "changes": [c for c in changes or [] if c["branch"] == res.branch] if res.status == "accepted" else [],
        }
        name = unique(safe_component(res.branch or Path(res.name).stem, "工作簿"), used)
        tasks.append((folder / f"{name}.eml", context, attachments, to, options.sender, options.run_at,
                      message_headers(res, res.year or year, options.period), options.templates))
    if pool is not None and len(tasks) > 1:
        return pool.map(_write_message, tasks, chunksize=max(1, min(16, len(tasks) // 8)))
    for task in tasks:
        _write_message(task)
    return iter(())


def _write_message(task: tuple) -> None:
    target, context, attachments, to, sender, when, headers, templates = task
    atomic_write_bytes(target, build_message(context, attachments, to, sender=sender, when=when, headers=headers,
                                             templates=templates))
