"""Mail the replies `run` left in OUT/发件箱, each once.

The sent record is OUT/发送记录.json (`run` carries it into each new OUT). A message counts as sent to a recipient
when a message with the same content (body and attachments, `render.message.content_digest`) went to that
recipient as the latest of its series (the branch's results, or its feedback, for one year and period). A changed
message of a series already served is sent as a correction (subject and body say so); `--resend BRANCH` sends a
branch's message again on purpose.

Never two copies: the record says "sending" before a message's data goes out, and once the data is transmitted
the message is never sent again by itself. A server that does not answer after the data (RFC 5321 allows it ten
minutes) leaves the message "uncertain": the clerk is told to ask, and `--resend` is the way to send it again.
One `send` per OUT at a time (lock.py), and the whole send ends by its time limit.
"""

from __future__ import annotations

import email
import json
import re
import smtplib
import ssl as ssl_lib
import stat
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser
from email.policy import SMTP as SMTP_POLICY
from email.utils import getaddresses, parseaddr
from pathlib import Path
from typing import Any, Protocol

from . import clock
from .addresses import address_problem
from .files import atomic_write_text
from .jinja import render_text
from .lock import Busy, hold
from .names import OUTBOX, SENT_LOG
from .render.message import (
    HEADER_BRANCH,
    HEADER_SERIES,
    HEADER_TO_UNADDRESSED,
    SENDER,
    content_digest,
    message_id,
)

UNADDRESSED = HEADER_TO_UNADDRESSED
SOURCE_DIGEST = "X-Pointsbatch-Source-SHA256"
DELIVERED = ("sent", "uncertain", "sending")  # "sending": a send stopped while the data was out; maybe delivered

MAX_MESSAGE_BYTES = 50 * 1024 * 1024  # `run`'s messages weigh a few hundred KB; a bigger one is not its own
HEAD_BYTES = 256 * 1024  # the headers must end within this: `run` writes about 1 KB of them
ONE_OF = ("From", "To", "Subject", "Date", "Message-ID")  # `run` writes each at most once
NEVER = ("Cc", "Bcc")  # `run` never writes these (nor any Resent-*): a message carrying one was edited by hand

# RFC 5321 4.5.3.2: how long a client waits for each reply
DATA_START_TIMEOUT = 120.0
DATA_BLOCK_TIMEOUT = 180.0


class MailError(Exception):
    """Nothing can be sent (no outbox, no sender, login refused, server unreachable): exit status 2."""


@dataclass(frozen=True)
class SmtpSettings:
    host: str = ""
    port: int = 25
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool = False
    ssl: bool = False
    verify: bool = True
    cafile: str | None = None
    sender: str | None = None  # From and envelope; None: the From `run` wrote, unless it is the placeholder
    timeout: float = 300.0  # each command (RFC 5321: 5 minutes for MAIL and RCPT)
    reply_timeout: float = 600.0  # the final reply after the data (RFC 5321: 10 minutes)
    time_limit: float = 3600.0  # the whole send
    lock_wait: float = 60.0  # for another `run` or `send` on the same OUT to finish
    retries: int = 3
    backoff: float = 2.0

    def tls_context(self) -> ssl_lib.SSLContext:
        ctx = ssl_lib.create_default_context(cafile=self.cafile)
        if not self.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl_lib.CERT_NONE
        return ctx


class Sender(Protocol):
    """Where messages go: SMTP, or a test's recorder."""

    def send(self, sender: str, recipient: str, data: bytes) -> str: ...

    def close(self) -> None: ...


class TransientError(Exception):
    """Nothing was delivered and it is worth retrying: the connection dropped before the data, or a 4xx reply."""


class PermanentError(Exception):
    """Not worth retrying: the server refused the recipient or the message (5xx)."""


class Uncertain(Exception):
    """The data was transmitted and no reply came: the message may have been delivered; never send it again."""

    def __init__(self, message: str, stalled: bool):
        super().__init__(message)
        self.stalled = stalled


class OutOfTime(Exception):
    """The send's time limit was reached before this message's data went out."""


class Unsendable(Exception):
    """An outbox entry `run` did not write as it is (a folder, too big, headers edited): never sent; the message
    says why, in Chinese."""


class SmtpSender:
    """One SMTP connection, opened on demand and reopened after a drop; every wait bounded by `deadline`
    (time.monotonic())."""

    def __init__(self, settings: SmtpSettings, deadline: float | None = None):
        self.settings = settings
        self.deadline = deadline
        self.conn: smtplib.SMTP | None = None

    def _limit(self, seconds: float) -> float:
        if self.deadline is None:
            return seconds
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise OutOfTime
        return min(seconds, left)

    def _wait(self, seconds: float) -> None:
        assert self.conn is not None and self.conn.sock is not None
        self.conn.sock.settimeout(self._limit(seconds))

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        timeout = self._limit(s.timeout)
        try:
            if s.ssl:
                conn: smtplib.SMTP = smtplib.SMTP_SSL(s.host, s.port, timeout=timeout, context=s.tls_context())
            else:
                conn = smtplib.SMTP(s.host, s.port, timeout=timeout)
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
        """One SMTP transaction, step by step, so that it is known whether the data went out."""
        if self.conn is None:
            self.conn = self._connect()
        conn = self.conn
        try:
            self._wait(self.settings.timeout)
            conn.ehlo_or_helo_if_needed()
            self._expect(conn.mail(sender), (250,), "发件人")
            self._expect(conn.rcpt(recipient), (250, 251), f"收件人 {recipient}")
            self._wait(DATA_START_TIMEOUT)
            self._expect(conn.docmd("data"), (354,), "此邮件")
            self._wait(DATA_BLOCK_TIMEOUT)
            conn.send(_dot_stuffed(data))  # ends with CRLF.CRLF: a server that misses part of it delivers nothing
        except (OSError, smtplib.SMTPServerDisconnected) as exc:
            self._drop()
            raise TransientError(f"与服务器的连接中断（{exc}）") from None
        waited = time.monotonic()
        try:
            self._wait(self.settings.reply_timeout)
            code, answer = conn.getreply()
        except (OutOfTime, OSError, smtplib.SMTPServerDisconnected) as exc:
            self._drop()
            stalled = isinstance(exc, OutOfTime) or isinstance(exc.__context__, TimeoutError)
            why = (f"服务器收下邮件内容后 {time.monotonic() - waited:.0f} 秒没有答复" if stalled
                   else f"服务器收下邮件内容后断开了连接（{exc}）")
            raise Uncertain(why, stalled) from None
        self._expect((code, answer), (250,), "此邮件")
        return f"{code} {_text(answer)}"[:200]

    def _expect(self, reply: tuple[int, Any], ok: tuple[int, ...], what: str) -> None:
        code, answer = reply
        if code in ok:
            return
        if code == 421 or code < 0:
            self._drop()
        else:
            try:
                self.conn.rset()  # type: ignore[union-attr]  # ready for the next message
            except (OSError, smtplib.SMTPException):
                self._drop()
        if 400 <= code < 500 or code < 0:
            raise TransientError(f"服务器暂时不接受{what}（{code} {_text(answer)}）")
        raise PermanentError(f"服务器拒绝{what}（{code} {_text(answer)}）")

    def _drop(self) -> None:
        """Forget a connection that failed (no QUIT: the server may already be gone)."""
        self._disconnect(polite=False)

    def close(self) -> None:
        self._disconnect(polite=True)

    def _disconnect(self, polite: bool) -> None:
        if self.conn is not None:
            try:
                if polite and self.conn.sock is not None:
                    self.conn.sock.settimeout(10)
                self.conn.quit() if polite else self.conn.close()
            except Exception:  # closing a broken connection may fail again; it is gone either way
                pass
        self.conn = None


def _dot_stuffed(data: bytes) -> bytes:
    """The DATA payload: CRLF line ends, leading dots doubled, the closing dot line (RFC 5321 4.5.2)."""
    data = re.sub(rb"\r\n|\n|\r", b"\r\n", data)
    data = re.sub(rb"(?m)^\.", b"..", data)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


def _text(answer: Any) -> str:
    return answer.decode("utf-8", "replace") if isinstance(answer, bytes) else str(answer)


@dataclass
class Outcome:
    sent: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    uncertain: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # outbox entries not sent as they are (Unsendable)
    stopped: str = ""  # why the send stopped before the end (a stalled server, the time limit)

    @property
    def exit_code(self) -> int:
        return 2 if self.stopped else 1 if self.failed or self.uncertain or self.refused else 0


@dataclass
class Outgoing:
    """A message of the outbox as `send` sees it: its headers, read alone; the whole message only when it is to be
    sent or compared with the record."""

    path: Path
    head: Message
    to: str  # the envelope recipient; "" when unaddressed
    branch: str
    series: str
    _raw: bytes | None = field(default=None, repr=False)
    _msg: EmailMessage | None = field(default=None, repr=False)
    _digest: str | None = None

    @classmethod
    def read(cls, path: Path) -> Outgoing:
        """The message's headers, checked; Unsendable when the entry is not a message `run` wrote."""
        try:
            info = path.lstat()
            if not stat.S_ISREG(info.st_mode):
                raise Unsendable("不是邮件文件（是文件夹、链接或其他特殊文件）")
            if info.st_size > MAX_MESSAGE_BYTES:
                raise Unsendable(f"文件过大（{info.st_size / 1024 / 1024:.0f} MB，"
                                 f"回复邮件不会超过 {MAX_MESSAGE_BYTES // 1024 // 1024} MB）")
            with path.open("rb") as fh:
                head = fh.read(HEAD_BYTES)
        except OSError as exc:
            raise Unsendable(f"无法读取（{exc.strerror or exc}）") from None
        if len(head) == HEAD_BYTES and b"\n\n" not in head and b"\r\n\r\n" not in head:
            raise Unsendable("邮件头过长或不完整")
        headers = BytesHeaderParser(policy=SMTP_POLICY).parsebytes(head)
        to = "" if _header(headers, UNADDRESSED) else _edited(headers)
        return cls(path, headers, to, _header(headers, HEADER_BRANCH) or path.stem, _header(headers, HEADER_SERIES))

    def message(self) -> EmailMessage:
        """The whole message (read once, until `release`), its headers checked again: the file may have changed."""
        if self._msg is None:
            try:
                with self.path.open("rb") as fh:
                    raw = fh.read(MAX_MESSAGE_BYTES + 1)
            except OSError as exc:
                raise Unsendable(f"无法读取（{exc.strerror or exc}）") from None
            if len(raw) > MAX_MESSAGE_BYTES:
                raise Unsendable(f"文件过大（回复邮件不会超过 {MAX_MESSAGE_BYTES // 1024 // 1024} MB）")
            msg = email.message_from_bytes(raw, policy=SMTP_POLICY)
            assert isinstance(msg, EmailMessage)
            if ("" if _header(msg, UNADDRESSED) else _edited(msg)) != self.to:
                raise Unsendable("读取时文件发生了变化，请重新运行 send")
            self._raw, self._msg = raw, msg
        return self._msg

    def raw(self) -> bytes:
        """The message's bytes as `run` wrote them."""
        self.message()
        assert self._raw is not None
        return self._raw

    def release(self) -> None:
        self._raw = self._msg = None

    @property
    def digest(self) -> str:
        if self._digest is None:
            self._digest = content_digest(self.message())
        return self._digest

    def names(self) -> set[str]:
        return {self.branch, self.path.stem}

    def entry(self) -> dict[str, Any]:
        return {"message": self.path.name, "branch": self.branch, "series": self.series, "recipient": self.to,
                "content_sha256": self.digest, "source_sha256": _header(self.head, SOURCE_DIGEST)}


def _header(msg: Message, name: str) -> str:
    return str(msg.get(name) or "").strip()


def _edited(msg: Message) -> str:
    """The one recipient of a message as `run` writes it; Unsendable when its headers say someone edited it (a Cc,
    a Bcc, Resent-*, more than one address, a header twice, no sender): such a message could disclose or go where
    the registry does not say."""
    names = [name.lower() for name in msg.keys()]
    extra = sorted({name for name in msg.keys() if name.lower() in {n.lower() for n in NEVER}
                    or name.lower().startswith("resent-")})
    if extra:
        raise Unsendable(f"邮件头中有 {'、'.join(extra)}（pointsbatch 从不写这些），邮件已被改动，不予发送；"
                         "请重新运行 pointsbatch run 生成回复邮件")
    twice = [name for name in ONE_OF if names.count(name.lower()) > 1]
    if twice:
        raise Unsendable(f"邮件头 {'、'.join(twice)} 出现了不止一次，邮件已被改动，不予发送")
    for name in ("From", "Subject", "Message-ID"):
        if not _header(msg, name):
            raise Unsendable(f"缺少邮件头 {name}，邮件不完整或已被改动，不予发送")
    try:
        to = [addr for _name, addr in getaddresses([str(v) for v in msg.get_all("To") or []]) if addr.strip()]
    except (ValueError, IndexError, TypeError):  # the header parser's complaint about an address it cannot read
        raise Unsendable("收件人（To）无法识别，不予发送") from None
    if len(to) > 1:
        raise Unsendable(f"收件人（To）有 {len(to)} 个地址（pointsbatch 每封只写一个），邮件已被改动，不予发送")
    return to[0].strip() if to else ""


def load_sent(out: Path) -> list[dict[str, Any]]:
    path = out / SENT_LOG
    if not path.exists():
        return []
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(record, list) or not all(isinstance(e, dict) for e in record):
            raise ValueError("not a list of entries")
        return record
    except (OSError, ValueError):
        raise MailError(f"发送记录 {path} 已损坏，为避免重复发送，请检查后再试") from None


def _save(out: Path, record: list[dict[str, Any]]) -> None:
    atomic_write_text(out / SENT_LOG, json.dumps(record, ensure_ascii=False, indent=2))


def send_outbox(out: Path, settings: SmtpSettings, dry_run: bool = False,
                log: Callable[[str], None] = print, sender: Sender | None = None,
                sleep: Callable[[float], None] = time.sleep, resend: Iterable[str] = ()) -> Outcome:
    """Send every message of OUT/发件箱 not yet sent (and those of the branches in `resend` again); record each
    as it goes. A dry run only says what would be sent, and takes no lock."""
    out = Path(out)
    if not (out / OUTBOX).is_dir():
        raise MailError(f"找不到 {out / OUTBOX}，请先运行 pointsbatch run")
    if dry_run:
        return _send_all(out, settings, True, log, sender, sleep, set(resend))
    try:
        with hold(out, wait=settings.lock_wait):
            return _send_all(out, settings, False, log, sender, sleep, set(resend))
    except Busy as exc:
        raise MailError(str(exc)) from None


def _send_all(out: Path, settings: SmtpSettings, dry_run: bool, log: Callable[[str], None], sender: Sender | None,
              sleep: Callable[[float], None], resend: set[str]) -> Outcome:
    messages: list[Outgoing] = []
    refused: list[tuple[str, str]] = []
    for path in sorted((out / OUTBOX).glob("*.eml")):
        try:
            messages.append(Outgoing.read(path))
        except Unsendable as exc:
            refused.append((path.name, str(exc)))
    unknown = sorted(name for name in resend if not any(name in m.names() for m in messages)
                     and not any(name == Path(entry).stem for entry, _why in refused))
    if unknown:
        raise MailError(f"发件箱中没有支部「{'、'.join(unknown)}」的邮件（--resend 后写支部名称，如 --resend 第一党支部）")
    from_header = _configured_sender(settings)
    if not dry_run:
        _check_senders(messages, from_header)
    elif any(m.to and parseaddr(_sender_of(m, from_header))[1] in ("", SENDER) for m in messages):
        log("注意：还没有设置发件人地址，正式发送前请用 --sender 指定（或写在 pointsbatch.toml 中）")
    record = load_sent(out)
    deadline = time.monotonic() + settings.time_limit
    outcome = Outcome()
    for name, why in refused:
        log(f"未发送 {name}：{why}")
        outcome.refused.append(name)
    transport = sender or (None if dry_run else SmtpSender(settings, deadline))
    try:
        for m in messages:
            if not m.to:
                log(f"跳过 {m.path.name}：没有收件地址（支部名录中没有该支部的邮箱，或无法确定是哪个支部的）")
                outcome.skipped.append(m.path.name)
                continue
            again = bool(resend & m.names())
            try:
                done = _already(record, m)
                if done is None or again:
                    earlier = _replaced(record, m)
                    count = _count(record, m) if again else 0
                    data, entry = (b"", _preview(m, from_header, earlier)) if dry_run else \
                        _prepare(m, from_header, earlier, resend_count=count)
            except Unsendable as exc:
                log(f"未发送 {m.path.name}：{exc}")
                outcome.refused.append(m.path.name)
                continue
            finally:
                m.release()  # one message in memory at a time
            if done is not None and not again:
                if done["status"] == "sent":
                    log(f"已发送过 {m.path.name} → {m.to}，内容没有变化，不再重复发送")
                else:
                    log(f"未确认：{m.path.name} → {m.to}：上次发送时服务器收下了邮件内容但没有确认，"
                        f"可能已经送达，不会自动重发；请向对方核实，没有收到的用 --resend {m.branch} 重发")
                outcome.skipped.append(m.path.name)
                continue
            what = f"{m.path.name} → {m.to}（发件人 {entry['from']}）" + ("，更正" if earlier else "") + (
                "，按要求重发" if again else "")
            if dry_run:
                log(f"将发送 {what}：{entry['subject']}")
                outcome.sent.append(m.path.name)
                continue
            if time.monotonic() >= deadline:
                outcome.stopped = f"已到发送时限（{settings.time_limit:.0f}秒）"
                break
            entry.update(status="sending", time=clock.now().isoformat())
            record.append(entry)
            _save(out, record)
            assert transport is not None
            try:
                entry["answer"] = _send_with_retries(transport, parseaddr(entry["from"])[1], m.to, data, settings,
                                                     sleep, deadline)
                entry["status"] = "sent"
                log(f"已发送 {what}")
                outcome.sent.append(m.path.name)
            except Uncertain as exc:
                entry.update(status="uncertain", answer=str(exc))
                log(f"未确认：{what}：{exc}。邮件可能已经送达，不会自动重发；请向对方核实，"
                    f"没有收到的用 --resend {m.branch} 重发")
                outcome.uncertain.append(m.path.name)
                if exc.stalled:
                    outcome.stopped = "服务器没有答复"
            except OutOfTime:
                entry.update(status="failed", answer="已到发送时限，未发送")
                outcome.stopped = f"已到发送时限（{settings.time_limit:.0f}秒）"
            except MailError:  # could not connect or log in: nothing went out
                entry.update(status="failed", answer="未能连接服务器，未发送")
                raise
            except PermanentError as exc:
                entry.update(status="failed", answer=str(exc))
                log(f"发送失败 {what}：{exc}")
                outcome.failed.append(m.path.name)
            finally:
                entry["time"] = clock.now().isoformat()
                _save(out, record)
            if outcome.stopped:
                break
    finally:
        if transport is not None:
            transport.close()
    return _summary(outcome, messages, dry_run, log)


def _summary(outcome: Outcome, messages: list[Outgoing], dry_run: bool, log: Callable[[str], None]) -> Outcome:
    handled = {*outcome.sent, *outcome.skipped, *outcome.failed, *outcome.uncertain, *outcome.refused}
    left = [m.path.name for m in messages if m.path.name not in handled]
    if outcome.stopped:
        log(f"发送已停止：{outcome.stopped}。还有 {len(left)} 封未发送，已发送的都记在 {SENT_LOG}；"
            "稍后再运行 send 会接着发送剩下的邮件。")
    verb = "将发送" if dry_run else "已发送"
    log(f"{verb} {len(outcome.sent)} 封，跳过 {len(outcome.skipped)} 封，失败 {len(outcome.failed)} 封"
        + (f"，未确认 {len(outcome.uncertain)} 封" if outcome.uncertain else "")
        + (f"，发件箱中有 {len(outcome.refused)} 个文件有问题未发送" if outcome.refused else "") + "。")
    return outcome


def _configured_sender(settings: SmtpSettings) -> str | None:
    """The sender the clerk configured (checked), or None to use each message's own From."""
    return None if settings.sender is None else check_sender(settings.sender)


def check_sender(text: str) -> str:
    """A sender as the clerk wrote it ("dangjian@example.gov.cn", or with a name: "镇党委 <dangjian@…>"), checked;
    MailError when it is not an address."""
    text = text.strip()
    if address_problem(parseaddr(text)[1]) is not None or any(not ch.isprintable() for ch in text):
        raise MailError(f"发件人地址「{text}」不是有效的邮箱地址（如 dangjian@example.gov.cn）")
    return text


def _already(record: list[dict[str, Any]], m: Outgoing) -> dict[str, Any] | None:
    """The record entry saying this message reached its recipient already, or None: the latest message of its
    series sent to that recipient, when it said the same (so a correction reverted is sent again)."""
    mine = [e for e in record if e.get("recipient") == m.to and e.get("status") in DELIVERED]
    if not mine:
        return None  # (without reading the whole message)
    for e in mine:
        if "content_sha256" not in e and e.get("status") == "sent" and e.get("message") == m.path.name \
                and e.get("source_sha256", "") == m.entry()["source_sha256"]:
            return e  # a record written before contents were compared
    if m.series:
        same = [e for e in mine if (e.get("branch"), e.get("series")) == (m.branch, m.series)]
        return same[-1] if same and same[-1].get("content_sha256") == m.digest else None
    return next((e for e in mine if e.get("content_sha256") == m.digest), None)


def _replaced(record: list[dict[str, Any]], m: Outgoing) -> dict[str, Any] | None:
    """The latest message of the same series this one corrects (results only), or None."""
    if not m.series.startswith("results"):
        return None
    earlier = [e for e in record if e.get("status") in DELIVERED and e.get("series") == m.series
               and e.get("branch") == m.branch]
    if not earlier or earlier[-1].get("content_sha256") == m.digest:
        return None
    return earlier[-1]


def _count(record: list[dict[str, Any]], m: Outgoing) -> int:
    return sum(e.get("recipient") == m.to and e.get("content_sha256") == m.digest for e in record)


def _sender_of(m: Outgoing, from_header: str | None) -> str:
    return from_header or str(m.head.get("From") or "")


def _check_senders(messages: list[Outgoing], from_header: str | None) -> None:
    """Refuse before sending anything when a message would go out from the placeholder address."""
    if any(m.to and parseaddr(_sender_of(m, from_header))[1] in ("", SENDER) for m in messages):
        raise MailError("没有设置发件人地址：请用 send --sender 地址 指定（或在 pointsbatch.toml 中写 "
                        "sender = \"dangjian@example.gov.cn\"）；多数邮件服务器只接受本单位的发件地址")


def _preview(m: Outgoing, from_header: str | None, earlier: dict[str, Any] | None) -> dict[str, Any]:
    """What a dry run says of a message, from its headers alone."""
    subject = _header(m.head, "Subject")
    if earlier is not None:
        subject = render_text("mail_correction_subject.txt", subject=subject).strip()
    return {"from": _sender_of(m, from_header), "subject": subject}


def _prepare(m: Outgoing, from_header: str | None, earlier: dict[str, Any] | None,
             resend_count: int) -> tuple[bytes, dict[str, Any]]:
    """The bytes to send (From set, a correction marked) and the record entry that will say so."""
    msg = m.message()
    original_from = str(msg.get("From") or "")
    sender = _sender_of(m, from_header)
    subject = str(msg.get("Subject") or "")
    if earlier is not None:
        subject = render_text("mail_correction_subject.txt", subject=subject).strip()
        msg.replace_header("Subject", subject)
        body = msg.get_body(("plain",))
        if body is not None:
            stamp = str(earlier.get("time", ""))[:16].replace("T", " ")
            note = render_text("mail_correction.txt", earlier_time=stamp, earlier_subject=earlier.get("subject", ""))
            body.set_content(note + body.get_content(), charset="utf-8")
    if earlier is not None or resend_count:
        variant = f"resend-{resend_count}" if resend_count else ""
        msg.replace_header("Message-ID", message_id(m.digest, m.to, subject, variant))
    if earlier is not None and earlier.get("message_id") not in (None, "", msg.get("Message-ID")):
        msg["References"] = earlier["message_id"]  # mail programs show the correction with what it corrects
    if sender != original_from or earlier is not None or resend_count:
        msg.replace_header("From", sender)
        data = msg.as_bytes()
    else:
        data = m.raw()  # as `run` wrote it
    entry = {**m.entry(), "from": sender, "subject": subject, "message_id": str(msg.get("Message-ID") or ""),
             "correction": earlier is not None, "resend": resend_count > 0}
    return data, entry


def _send_with_retries(transport: Sender, from_addr: str, to: str, data: bytes, settings: SmtpSettings,
                       sleep: Callable[[float], None], deadline: float) -> str:
    """The server's answer; PermanentError when refused, Uncertain when the data went out unanswered."""
    last = ""
    for attempt in range(settings.retries + 1):
        try:
            return transport.send(from_addr, to, data)
        except TransientError as exc:
            last = str(exc)
            pause = settings.backoff * (2**attempt)
            if attempt < settings.retries:
                if time.monotonic() + pause >= deadline:
                    raise OutOfTime from None
                sleep(pause)
    raise PermanentError(f"重试{settings.retries}次后仍失败：{last}")
