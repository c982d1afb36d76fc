"""Mail the replies `run` left in OUT/发件箱, each once.

A message counts as sent when the server accepted it for its recipient; that fact is recorded in
OUT/发送记录.json (message, recipient, time, the server's answer) right away, so a second `send` after an
interruption sends only what is left. A message is the same message again when its file name, recipient and the
digest of the workbook it answers are the same, so re-running `run` on an unchanged workbook does not mail it twice.
"""

from __future__ import annotations

import datetime as dt
import email
import json
import smtplib
import ssl as ssl_lib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.policy import SMTP as SMTP_POLICY
from email.utils import parseaddr
from pathlib import Path
from typing import Any, Protocol

from .files import atomic_write_text

OUTBOX = "发件箱"
SENT_LOG = "发送记录.json"
UNADDRESSED = "X-Pointsbatch-Unaddressed"
SOURCE_DIGEST = "X-Pointsbatch-Source-SHA256"


class MailError(Exception):
    """Nothing can be sent (no outbox, login refused, server unreachable): exit status 2."""


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 25
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool = False
    ssl: bool = False
    verify: bool = True
    cafile: str | None = None
    sender: str | None = None
    timeout: float = 30.0
    retries: int = 3
    backoff: float = 2.0

    def tls_context(self) -> ssl_lib.SSLContext:
        ctx = ssl_lib.create_default_context(cafile=self.cafile)
        if not self.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl_lib.CERT_NONE
        return ctx


class Sender(Protocol):
    """Where messages go: SMTP, a dry run, or a test's recorder."""

    def send(self, sender: str, recipient: str, data: bytes) -> str: ...

    def close(self) -> None: ...


class TransientError(Exception):
    """Worth retrying: the connection dropped, or the server said 4xx."""


class PermanentError(Exception):
    """Not worth retrying: the recipient was refused (5xx)."""


class SmtpSender:
    """One SMTP connection, opened on demand and reopened after a drop."""

    def __init__(self, settings: SmtpSettings):
        self.settings = settings
        self.conn: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        try:
            if s.ssl:
                conn: smtplib.SMTP = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=s.tls_context())
            else:
                conn = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
                if s.starttls:
                    conn.starttls(context=s.tls_context())
            if s.user:
                conn.login(s.user, s.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            raise MailError(f"SMTP服务器拒绝登录（{exc.smtp_code}），请检查用户名和环境变量 POINTSBATCH_SMTP_PASSWORD") from None
        except ssl_lib.SSLError as exc:
            raise MailError(f"与SMTP服务器建立加密连接失败：{exc.reason or exc}") from None
        except (OSError, smtplib.SMTPException) as exc:
            # nothing was sent; what is left goes on the next `send`
            raise MailError(f"无法连接SMTP服务器 {s.host}:{s.port}（{exc}），已发送的邮件已记录，稍后重新运行即可") from None
        return conn

    def send(self, sender: str, recipient: str, data: bytes) -> str:
        if self.conn is None:
            self.conn = self._connect()
        try:
            refused = self.conn.sendmail(sender, [recipient], data)
        except smtplib.SMTPRecipientsRefused as exc:
            code, answer = next(iter(exc.recipients.values()))
            if 400 <= code < 500:
                raise TransientError(f"服务器暂时拒收（{code} {_text(answer)}）") from None
            raise PermanentError(f"服务器拒绝收件人 {recipient}（{code} {_text(answer)}）") from None
        except smtplib.SMTPResponseException as exc:
            self._drop()
            if 400 <= exc.smtp_code < 500:
                raise TransientError(f"服务器暂时无法接收（{exc.smtp_code} {_text(exc.smtp_error)}）") from None
            raise PermanentError(f"服务器拒收此邮件（{exc.smtp_code} {_text(exc.smtp_error)}）") from None
        except (TimeoutError, smtplib.SMTPServerDisconnected, OSError) as exc:
            self._drop()
            raise TransientError(f"与服务器的连接中断（{exc}）") from None
        if refused:
            code, answer = refused[recipient]
            raise PermanentError(f"服务器拒绝收件人 {recipient}（{code} {_text(answer)}）")
        return "250 已接收"

    def _drop(self) -> None:
        """Forget a connection that failed (no QUIT: the server may already be gone)."""
        self._disconnect(polite=False)

    def close(self) -> None:
        self._disconnect(polite=True)

    def _disconnect(self, polite: bool) -> None:
        if self.conn is not None:
            try:
                self.conn.quit() if polite else self.conn.close()
            except Exception:  # closing a broken connection may fail again; it is gone either way
                pass
        self.conn = None


def _text(answer: Any) -> str:
    return answer.decode("utf-8", "replace") if isinstance(answer, bytes) else str(answer)


@dataclass
class Outcome:
    sent: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def load_sent(out: Path) -> list[dict[str, Any]]:
    path = out / SENT_LOG
    if not path.exists():
        return []
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise MailError(f"发送记录 {path} 已损坏，为避免重复发送，请检查后再试") from None


def _key(entry: dict[str, Any]) -> tuple[str, str, str]:
    return (entry["message"], entry["recipient"], entry.get("source_sha256", ""))


def send_outbox(out: Path, settings: SmtpSettings, dry_run: bool = False,
                log: Callable[[str], None] = print, sender: Sender | None = None,
                sleep: Callable[[float], None] = time.sleep) -> Outcome:
    """Send every message of OUT/发件箱 not yet sent; record each success at once."""
    folder = Path(out) / OUTBOX
    if not folder.is_dir():
        raise MailError(f"找不到 {folder}，请先运行 pointsbatch run")
    record = load_sent(Path(out))
    done = {_key(e) for e in record if e.get("status") == "sent"}
    outcome = Outcome()
    transport = sender or (None if dry_run else SmtpSender(settings))
    try:
        for path in sorted(folder.glob("*.eml")):
            msg = email.message_from_bytes(path.read_bytes(), policy=SMTP_POLICY)
            to = str(msg.get("To") or "").strip()
            if not to or msg.get(UNADDRESSED):
                log(f"跳过 {path.name}：没有收件地址（支部名录中没有该支部的邮箱）")
                outcome.skipped.append(path.name)
                continue
            entry = {"message": path.name, "recipient": to, "source_sha256": str(msg.get(SOURCE_DIGEST) or "")}
            if _key(entry) in done:
                log(f"已发送过 {path.name} → {to}，不再重复发送")
                outcome.skipped.append(path.name)
                continue
            if dry_run:
                log(f"将发送 {path.name} → {to}：{msg.get('Subject')}")
                outcome.sent.append(path.name)
                continue
            from_addr = settings.sender or parseaddr(str(msg.get("From")))[1] or "pointsbatch@localhost"
            answer, error = _send_with_retries(transport, from_addr, to, path.read_bytes(), settings, sleep)
            now = dt.datetime.now().replace(microsecond=0).isoformat()
            if error is None:
                record.append({**entry, "status": "sent", "time": now, "answer": answer})
                done.add(_key(entry))
                atomic_write_text(Path(out) / SENT_LOG, json.dumps(record, ensure_ascii=False, indent=2))
                log(f"已发送 {path.name} → {to}")
                outcome.sent.append(path.name)
            else:
                record.append({**entry, "status": "failed", "time": now, "answer": error})
                atomic_write_text(Path(out) / SENT_LOG, json.dumps(record, ensure_ascii=False, indent=2))
                log(f"发送失败 {path.name} → {to}：{error}")
                outcome.failed.append(path.name)
    finally:
        if transport is not None:
            transport.close()
    verb = "将发送" if dry_run else "已发送"
    log(f"{verb} {len(outcome.sent)} 封，跳过 {len(outcome.skipped)} 封，失败 {len(outcome.failed)} 封。")
    return outcome


def _send_with_retries(transport: Sender | None, from_addr: str, to: str, data: bytes, settings: SmtpSettings,
                       sleep: Callable[[float], None]) -> tuple[str, str | None]:
    assert transport is not None
    last = ""
    for attempt in range(settings.retries + 1):
        try:
            return transport.send(from_addr, to, data), None
        except PermanentError as exc:
            return "", str(exc)
        except TransientError as exc:
            last = str(exc)
            if attempt < settings.retries:
                sleep(settings.backoff * (2**attempt))
    return "", f"重试{settings.retries}次后仍失败：{last}"
