"""A reply per branch as a standard .eml message: Chinese subject and body from templates, attachments named in
Chinese (RFC 2231 filenames)."""

from __future__ import annotations

import mimetypes
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

from ..files import atomic_write_bytes, safe_component, unique
from ..jinja import render_text
from ..model import FileResult, RunOptions
from ..names import ATTACHMENTS, OUTBOX
from ..registry import RegistryEntry
from ..rules import PERIODS, Rules

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


def write_outbox(staging: Path, results: list[FileResult], registry: dict[str, RegistryEntry] | None,
                 options: RunOptions, rules: Rules, year: int | None,
                 pool: ProcessPoolExecutor | None = None) -> Iterator[None]:
    """A message per workbook in 发件箱/; built in the workers when there are some (base64 of the attachments).
    Returns at once with the workers' results to wait for: exhaust it (it raises what a worker raised)."""
    tasks = []
    folder = staging / OUTBOX
    folder.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    for res in results:
        if res.status == "ignored":
            continue
        to = None
        if registry is not None and res.branch in registry and registry[res.branch].email:
            to = registry[res.branch].email
        elif options.trust_workbook_addresses and res.email:
            to = res.email
        attachments = [staging / rel for rel in res.outputs if not rel.endswith(".txt")]
        names = [p.name for p in attachments]
        context = {
            "accepted": res.status == "accepted", "branch": res.branch, "file": res.name, "year": res.year or year,
            "period": PERIODS[options.period].label, "days": rules.notice_days, "flags": res.flags,
            **{key: next((n for n in names if n.endswith(end)), "") for key, end in ATTACHMENTS.items()},
            "errors": res.errors,
            "problems": [f"{p.sheet} {p.cell}：{p.message}".strip() for p in res.problems if p.is_error][:50],
        }
        name = unique(safe_component(res.branch or Path(res.name).stem, "工作簿"), used)
        tasks.append((folder / f"{name}.eml", context, attachments, to, options.sender,
                      {"X-Pointsbatch-Source-SHA256": res.sha256}, options.templates))
    if pool is not None and len(tasks) > 1:
        return pool.map(_write_message, tasks, chunksize=max(1, min(16, len(tasks) // 8)))
    for task in tasks:
        _write_message(task)
    return iter(())


def _write_message(task: tuple) -> None:
    from ..jinja import use_templates

    target, context, attachments, to, sender, headers, templates = task
    use_templates(templates)
    atomic_write_bytes(target, build_message(context, attachments, to, sender=sender, headers=headers))
