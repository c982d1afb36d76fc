"""`pointsbatch send` against a real SMTP server (aiosmtpd) on loopback: plain, STARTTLS, AUTH, failures."""

from __future__ import annotations

import email
import json
import ssl
import subprocess
from email.policy import default as default_policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from click.testing import CliRunner
from helpers import act, build

from pointsbatch.cli import main
from pointsbatch.mail import SENT_LOG, SmtpSettings, send_outbox

BRANCHES = {"第一党支部": "one@example.org", "第二党支部": "two@example.org", "第三党支部": "three@example.org"}


class Recorder:
    def __init__(self, refuse: set[str] | None = None, drop_first: int = 0):
        self.messages: list[tuple[list[str], bytes]] = []
        self.refuse = refuse or set()
        self.drop_first = drop_first

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.drop_first > 0:
            self.drop_first -= 1
            return "421 4.3.0 closing connection, try again"
        self.messages.append((list(envelope.rcpt_tos), envelope.original_content or envelope.content))
        return "250 Message accepted"


@pytest.fixture(scope="module")
def outbox(tmp_path_factory) -> Path:
    from openpyxl import Workbook

    tmp = tmp_path_factory.mktemp("mail")
    inbox = tmp / "inbox"
    inbox.mkdir()
    for name in BRANCHES:
        build(inbox / f"{name}.xlsx", info_over={"branch": name}, incentive=[act("张三", "志愿服务", 2)])
    wb = Workbook()
    wb.active.append(["支部编码", "支部名称", "上级党组织", "联系人", "联系邮箱"])
    for i, (name, addr) in enumerate(BRANCHES.items()):
        wb.active.append([i, name, "镇党委", "组织委员", addr])
    wb.save(tmp / "registry.xlsx")
    out = tmp / "out"
    result = CliRunner().invoke(main, ["run", str(inbox), "-o", str(out), "--jobs", "1", "--registry",
                                       str(tmp / "registry.xlsx")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture
def out(outbox, tmp_path) -> Path:
    import shutil

    copy = tmp_path / "out"
    shutil.copytree(outbox, copy)
    return copy


def serve(handler, **kw) -> Controller:
    import socket

    with socket.socket() as probe:  # a free loopback port (aiosmtpd's own start-up check needs a real one)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(handler, hostname="127.0.0.1", port=port, **kw)
    controller.start()
    return controller


def port_of(controller: Controller) -> int:
    return controller.port


def quiet(_msg: str) -> None:
    pass


def test_plain_smtp_delivers_each_message_once_with_intact_attachments(out):
    handler = Recorder()
    ctl = serve(handler)
    try:
        settings = SmtpSettings("127.0.0.1", port_of(ctl))
        outcome = send_outbox(out, settings, log=quiet)
        assert len(outcome.sent) == 3 and not outcome.failed
        assert sorted(rcpt[0] for rcpt, _ in handler.messages) == sorted(BRANCHES.values())
        for rcpt, data in handler.messages:
            msg = email.message_from_bytes(data, policy=default_policy)
            branch = next(b for b, a in BRANCHES.items() if a == rcpt[0])
            assert branch in msg["Subject"] and "积分结果" in msg["Subject"]
            parts = {p.get_filename(): p.get_payload(decode=True) for p in msg.iter_attachments()}
            assert set(parts) == {f"{branch}2026年年度积分结果.xlsx", f"{branch}2026年年度积分公示.html",
                                  f"{branch}2026年年度个人积分告知单.html"}
            for name, content in parts.items():
                on_disk = (out / "支部" / branch / name).read_bytes()
                assert (content if isinstance(content, bytes) else content.encode("utf-8")) == on_disk
        record = json.loads((out / SENT_LOG).read_text(encoding="utf-8"))
        assert {e["recipient"] for e in record if e["status"] == "sent"} == set(BRANCHES.values())
        again = send_outbox(out, settings, log=quiet)
        assert not again.sent and len(handler.messages) == 3
    finally:
        ctl.stop()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[str, str]:
    tmp = tmp_path_factory.mktemp("tls")
    key, cert = tmp / "key.pem", tmp / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return str(cert), str(key)


def test_starttls_with_a_self_signed_certificate_and_auth(out, certificate):
    cert, key = certificate
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    logins = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        logins.append((auth_data.login, auth_data.password))
        ok = auth_data.login == b"clerk" and auth_data.password == b"s3cret"
        return AuthResult(success=ok)

    handler = Recorder()
    ctl = serve(handler, tls_context=ctx, require_starttls=True, authenticator=authenticator,
                auth_require_tls=True)
    try:
        settings = SmtpSettings("127.0.0.1", port_of(ctl), user="clerk", password="s3cret", starttls=True,
                                cafile=cert)
        outcome = send_outbox(out, settings, log=quiet)
        assert len(outcome.sent) == 3 and len(handler.messages) == 3
        assert logins and logins[0] == (b"clerk", b"s3cret")
        assert "s3cret" not in (out / SENT_LOG).read_text(encoding="utf-8")
    finally:
        ctl.stop()


def test_unreachable_server_is_a_clear_error_through_the_command(out, monkeypatch):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("POINTSBATCH_SMTP_PASSWORD", "secret-pass")
    result = CliRunner().invoke(main, ["send", str(out), "--smtp-host", "127.0.0.1", "--smtp-port", str(port),
                                       "--smtp-user", "clerk"])
    assert result.exit_code == 2 and "无法连接SMTP服务器" in result.output
    assert "secret-pass" not in result.output


def test_a_refused_recipient_fails_alone(out):
    handler = Recorder(refuse={"two@example.org"})
    ctl = serve(handler)
    try:
        settings = SmtpSettings("127.0.0.1", port_of(ctl), backoff=0)
        lines: list[str] = []
        outcome = send_outbox(out, settings, log=lines.append)
        assert outcome.failed == ["第二党支部.eml"] and len(outcome.sent) == 2
        assert any("发送失败" in line and "拒绝收件人" in line for line in lines)
        # the next send tries only what is left
        handler.refuse.clear()
        again = send_outbox(out, settings, log=quiet)
        assert again.sent == ["第二党支部.eml"]
    finally:
        ctl.stop()


def test_a_dropped_connection_is_retried_and_the_rest_go_on(out):
    handler = Recorder(drop_first=1)
    ctl = serve(handler)
    try:
        outcome = send_outbox(out, SmtpSettings("127.0.0.1", port_of(ctl), backoff=0), log=quiet,
                              sleep=lambda _s: None)
        assert len(outcome.sent) == 3 and not outcome.failed and len(handler.messages) == 3
    finally:
        ctl.stop()


def test_dry_run_sends_nothing(out):
    handler = Recorder()
    ctl = serve(handler)
    try:
        result = CliRunner().invoke(main, ["send", str(out), "--smtp-host", "127.0.0.1", "--smtp-port",
                                           str(port_of(ctl)), "--dry-run"], catch_exceptions=False)
        assert result.exit_code == 0 and "two@example.org" in result.output
        assert handler.messages == [] and not (out / SENT_LOG).exists()
    finally:
        ctl.stop()


def test_a_rerun_does_not_resend_unchanged_answers(out, tmp_path):
    handler = Recorder()
    ctl = serve(handler)
    try:
        settings = SmtpSettings("127.0.0.1", port_of(ctl))
        send_outbox(out, settings, log=quiet)
        record = json.loads((out / SENT_LOG).read_text(encoding="utf-8"))
        assert all(e["source_sha256"] for e in record)
        # the record survives a new run over the same inbox
        run_json = json.loads((out / "run.json").read_text(encoding="utf-8"))
        assert run_json["counts"]["accepted"] == 3
    finally:
        ctl.stop()


def test_send_options_come_from_the_settings_file(out, tmp_path, monkeypatch):
    handler = Recorder()
    ctl = serve(handler)
    try:
        monkeypatch.chdir(tmp_path)
        (tmp_path / "pointsbatch.toml").write_text(
            f'[send]\nsmtp_host = "127.0.0.1"\nsmtp_port = {port_of(ctl)}\n', encoding="utf-8")
        result = CliRunner().invoke(main, ["send", str(out)], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert len(handler.messages) == 3
    finally:
        ctl.stop()
