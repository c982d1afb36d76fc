"""A reply per branch as a standard .eml message: Chinese subject and body from templates, attachments named in
Chinese (RFC 2231 filenames)."""

from __future__ import annotations

import mimetypes
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

from ..jinja import render_text

SENDER = "pointsbatch@localhost"
HEADER_TO_UNADDRESSED = "X-Pointsbatch-Unaddressed"


def build_message(context: dict[str, Any], attachments: list[Path], to: str | None, sender: str = SENDER,
                  when: float | None = None, headers: dict[str, str] | None = None) -> bytes:
    """The message as bytes; `to` None leaves it unaddressed (the clerk decides, `send` will not mail it)."""
    msg = EmailMessage(policy=SMTP)
    msg["Subject"] = _one_line(render_text("mail_subject.txt", **context))
    msg["From"] = sender
    if to:
        msg["To"] = to
    else:
        msg[HEADER_TO_UNADDRESSED] = "yes"
    msg["Date"] = formatdate(when, localtime=False)
    msg["Message-ID"] = make_msgid(domain="pointsbatch.local")
    msg["X-Pointsbatch-Branch"] = _one_line(str(context.get("branch") or context.get("file") or ""))
    for name, value in (headers or {}).items():
        msg[name] = _one_line(value)
    msg.set_content(render_text("mail_body.txt", **context))
    for path in attachments:
        ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        maintype, subtype = ctype.split("/", 1)
        msg.add_attachment(path.read_bytes(), maintype=maintype, subtype=subtype, filename=path.name)
    return msg.as_bytes()


def _one_line(text: str) -> str:
    """Header text on one line, control characters removed (no header injection from a workbook's text)."""
    return " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())[:200]
