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
from helpers import act, build, registry

from pointsbatch.cli import main
from pointsbatch.mail import SENT_LOG, SmtpSettings, send_outbox

SENDER = "dangjian@example.gov.cn"
BRANCHES = {"第一党支部": "one@example.org", "第二党支部": "two@example.org", "第三党支部": "three@example.org"}


class Recorder:
    def __init__(self, refuse: set[str] | None = None, drop_first: int = 0):
        self.messages: list[tuple[list[str], bytes]] = []
        self.senders: list[str] = []
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
        self.senders.append(envelope.mail_from)
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
        settings = SmtpSettings("127.0.0.1", port_of(ctl), sender=SENDER)
        outcome = send_outbox(out, settings, log=quiet)
        assert len(outcome.sent) == 3 and not outcome.failed
        assert sorted(rcpt[0] for rcpt, _ in handler.messages) == sorted(BRANCHES.values())
        for rcpt, data in handler.messages:
            msg = email.message_from_bytes(data, policy=default_policy)
            branch = next(b for b, a in BRANCHES.items() if a == rcpt[0])
            assert branch in msg["Subject"] and "积分结果" in msg["Subject"]
            parts = {p.get_filename(): p.get_payload(decode=True) for p in msg.iter_attachments()}
            assert set(parts) == {f"{branch}2026年度积分结果.xlsx", f"{branch}2026年度积分公示.html",
                                  f"{branch}2026年度个人积分告知单.html"}
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
        settings = SmtpSettings("127.0.0.1", port_of(ctl), sender=SENDER, user="clerk", password="s3cret", starttls=True,
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
                                       "--smtp-user", "clerk", "--sender", SENDER])
    assert result.exit_code == 2 and "无法连接SMTP服务器" in result.output
    assert "secret-pass" not in result.output
    # nothing went out: the next send tries again
    assert {e["status"] for e in json.loads((out / SENT_LOG).read_text(encoding="utf-8"))} == {"failed"}


def test_a_refused_recipient_fails_alone(out):
    handler = Recorder(refuse={"two@example.org"})
    ctl = serve(handler)
    try:
        settings = SmtpSettings("127.0.0.1", port_of(ctl), sender=SENDER, backoff=0)
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
        outcome = send_outbox(out, SmtpSettings("127.0.0.1", port_of(ctl), sender=SENDER, backoff=0), log=quiet,
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
        settings = SmtpSettings("127.0.0.1", port_of(ctl), sender=SENDER)
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
            f'sender = "{SENDER}"\n[send]\nsmtp_host = "127.0.0.1"\nsmtp_port = {port_of(ctl)}\n', encoding="utf-8")
        result = CliRunner().invoke(main, ["send", str(out)], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert len(handler.messages) == 3
    finally:
        ctl.stop()


# --- the sender, corrections, resends, one send at a time, a stalled server (issue 16) -----------------------------

def parsed(data: bytes):
    return email.message_from_bytes(data, policy=default_policy)


def registry_file(path: Path, branches: dict[str, str]) -> Path:
    return registry(path, list(branches.items()))


def run_into(inbox: Path, out: Path, registry: Path, *extra: str) -> None:
    result = CliRunner().invoke(main, ["run", str(inbox), "-o", str(out), "--jobs", "1", "--registry", str(registry),
                                       "--run-date", "2027-01-10", "--notice-start", "2027-01-12", *extra],
                                catch_exceptions=False)
    assert result.exit_code in (0, 1), result.output


def send_cli(out: Path, ctl: Controller, *extra: str):
    return CliRunner().invoke(main, ["send", str(out), "--smtp-host", "127.0.0.1", "--smtp-port",
                                     str(port_of(ctl)), *extra], catch_exceptions=False)


def test_from_and_envelope_are_the_sender_given_to_send(out):
    handler = Recorder()
    ctl = serve(handler)
    try:
        # `run` was given no sender: its placeholder is never mailed
        refused = send_cli(out, ctl)
        assert refused.exit_code == 2 and "没有设置发件人地址" in refused.output and handler.messages == []
        assert send_cli(out, ctl, "--sender", "bad address").exit_code == 2
        result = send_cli(out, ctl, "--sender", "镇党委组织办 <dangjian@example.gov.cn>")
        assert result.exit_code == 0, result.output
        assert handler.senders == ["dangjian@example.gov.cn"] * 3
        for _rcpt, data in handler.messages:
            assert parsed(data)["From"].addresses[0].addr_spec == "dangjian@example.gov.cn"
            assert parsed(data)["From"].addresses[0].display_name == "镇党委组织办"
        record = json.loads((out / SENT_LOG).read_text(encoding="utf-8"))
        assert {e["from"] for e in record} == {"镇党委组织办 <dangjian@example.gov.cn>"}
        # the outbox itself is as `run` wrote it
        on_disk = parsed((out / "发件箱" / "第一党支部.eml").read_bytes())
        assert on_disk["From"] == "pointsbatch@localhost"
    finally:
        ctl.stop()


def test_run_sender_from_the_settings_file_is_the_from_of_every_message(tmp_path, monkeypatch):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    build(inbox / "第一党支部.xlsx", info_over={"branch": "第一党支部"})
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pointsbatch.toml").write_text('sender = "dangjian@example.gov.cn"\n', encoding="utf-8")
    run_into(inbox, tmp_path / "out", registry_file(tmp_path / "名录.xlsx", {"第一党支部": "one@example.org"}))
    msg = parsed((tmp_path / "out" / "发件箱" / "第一党支部.eml").read_bytes())
    assert msg["From"] == "dangjian@example.gov.cn"
    handler = Recorder()
    ctl = serve(handler)
    try:  # `send` with no sender of its own keeps it, for the envelope too
        assert send_cli(tmp_path / "out", ctl).exit_code == 0
        assert handler.senders == ["dangjian@example.gov.cn"]
    finally:
        ctl.stop()


def test_date_has_the_local_offset_and_reruns_write_the_same_bytes(tmp_path, monkeypatch):
    import time

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    build(inbox / "第一党支部.xlsx", info_over={"branch": "第一党支部"}, incentive=[act("张三", "志愿服务", 2)])
    build(inbox / "二支部.xlsx", info_over={"branch": "第二党支部"}, incentive=[act("张三", "志愿服务", 30)])
    registry = registry_file(tmp_path / "名录.xlsx", {"第一党支部": "one@example.org", "第二党支部": "two@example.org"})
    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    try:
        monkeypatch.setenv("SOURCE_DATE_EPOCH", "1800000000")
        run_into(inbox, tmp_path / "a", registry)
        time.sleep(1.1)  # a second later: nothing may depend on the wall clock
        run_into(inbox, tmp_path / "b", registry)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    names = sorted(p.name for p in (tmp_path / "a" / "发件箱").glob("*.eml"))
    assert names == ["第一党支部.eml", "第二党支部.eml"]  # results, and a rejection with its marked copy
    for name in names:
        first = (tmp_path / "a" / "发件箱" / name).read_bytes()
        assert first == (tmp_path / "b" / "发件箱" / name).read_bytes()
        msg = parsed(first)
        assert msg["Date"].endswith("+0800") and msg["Date"].datetime.utcoffset().total_seconds() == 8 * 3600
        assert msg["Date"].datetime.timestamp() == 1800000000
        assert msg["Message-ID"].endswith("@pointsbatch.local>")
    ids = {parsed((tmp_path / "a" / "发件箱" / n).read_bytes())["Message-ID"] for n in names}
    assert len(ids) == 2


@pytest.fixture
def town(tmp_path) -> tuple[Path, Path]:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for name in BRANCHES:
        build(inbox / f"{name}.xlsx", info_over={"branch": name}, incentive=[act("张三", "志愿服务", 2)])
    return inbox, registry_file(tmp_path / "名录.xlsx", BRANCHES)


def test_a_corrected_run_sends_only_the_changed_branch_again_marked_as_a_correction(town, tmp_path, monkeypatch):
    inbox, registry = town
    out = tmp_path / "out"
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1800000000")
    run_into(inbox, out, registry)
    handler = Recorder()
    ctl = serve(handler)
    try:
        assert send_cli(out, ctl, "--sender", SENDER).exit_code == 0 and len(handler.messages) == 3
        first_subject = next(parsed(d)["Subject"] for r, d in handler.messages if r == ["two@example.org"])
        # the branch corrects an activity; the town runs again over the same inbox (results rebuilt for everyone)
        build(inbox / "第二党支部.xlsx", info_over={"branch": "第二党支部"}, incentive=[act("张三", "志愿服务", 3)])
        monkeypatch.setenv("SOURCE_DATE_EPOCH", "1800090000")  # the next day: every workbook is written anew
        run_into(inbox, out, registry)
        result = send_cli(out, ctl, "--sender", SENDER)
        assert result.exit_code == 0, result.output
        assert [r for r, _d in handler.messages[3:]] == [["two@example.org"]]
        msg = parsed(handler.messages[3][1])
        assert msg["Subject"] == f"【更正】{first_subject}"
        body = msg.get_body(("plain",)).get_content()
        assert body.startswith("【更正】") and f"《{first_subject}》" in body and "作废" in body
        assert "积分结果" in body  # the message itself follows the note
        # and it says whose total moved, and why, since the scores were first posted
        assert "与本期第一次计分（公示）相比" in body and "张三：" in body and "新增激励积分" in body, body
        earlier = next(parsed(d) for r, d in handler.messages[:3] if r == ["two@example.org"])
        assert msg["From"] == SENDER and msg["Message-ID"] != earlier["Message-ID"]
        assert msg["References"] == earlier["Message-ID"]
        results = {p.get_filename(): p.get_payload(decode=True) for p in msg.iter_attachments()}
        assert results["第二党支部2026年度积分结果.xlsx"] == \
            (out / "支部" / "第二党支部" / "第二党支部2026年度积分结果.xlsx").read_bytes()
        record = json.loads((out / SENT_LOG).read_text(encoding="utf-8"))
        assert [e["correction"] for e in record] == [False, False, False, True]
        # nothing new: nothing sent
        assert send_cli(out, ctl, "--sender", SENDER).exit_code == 0 and len(handler.messages) == 4
        # another run with other rules changes every branch's results: each gets a correction
        rules = (Path(__file__).parent.parent / "pointsbatch" / "rules.toml").read_text(encoding="utf-8")
        (tmp_path / "rules.toml").write_text(rules.replace("days = 5", "days = 7"), encoding="utf-8")
        run_into(inbox, out, registry, "--rules", str(tmp_path / "rules.toml"))
        assert send_cli(out, ctl, "--sender", SENDER).exit_code == 0
        assert sorted(r[0] for r, _d in handler.messages[4:]) == sorted(BRANCHES.values())
    finally:
        ctl.stop()


def test_resend_sends_that_branch_once_more(out):
    handler = Recorder()
    ctl = serve(handler)
    try:
        assert send_cli(out, ctl, "--sender", SENDER).exit_code == 0 and len(handler.messages) == 3
        result = send_cli(out, ctl, "--sender", SENDER, "--resend", "第二党支部")
        assert result.exit_code == 0, result.output
        assert [r for r, _d in handler.messages[3:]] == [["two@example.org"]]
        again = parsed(handler.messages[3][1])
        before = next(parsed(d) for r, d in handler.messages[:3] if r == ["two@example.org"])
        assert "更正" not in again["Subject"] and again["Message-ID"] != before["Message-ID"]
        unknown = send_cli(out, ctl, "--sender", SENDER, "--resend", "第九党支部")
        assert unknown.exit_code == 2 and "第九党支部" in unknown.output and len(handler.messages) == 4
    finally:
        ctl.stop()


class SlowRecorder(Recorder):
    async def handle_DATA(self, server, session, envelope):
        import asyncio

        await asyncio.sleep(0.3)  # long enough for two sends to overlap
        return await super().handle_DATA(server, session, envelope)


def test_two_sends_at_once_deliver_each_message_once(out):
    import sys

    handler = SlowRecorder()
    ctl = serve(handler)
    try:
        command = [sys.executable, "-m", "pointsbatch.cli", "send", str(out), "--smtp-host", "127.0.0.1",
                   "--smtp-port", str(port_of(ctl)), "--sender", SENDER]
        procs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(2)]
        outputs = [p.communicate(timeout=120)[0].decode("utf-8") for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outputs
        assert sorted(r[0] for r, _d in handler.messages) == sorted(BRANCHES.values())
        assert sum("已发送过" in text for text in outputs) == 1  # the second waited, then found all sent
        record = json.loads((out / SENT_LOG).read_text(encoding="utf-8"))
        assert sorted(e["recipient"] for e in record) == sorted(BRANCHES.values())
    finally:
        ctl.stop()


class StallAfterData(Recorder):
    """Takes the message's data, then does not answer until released."""

    def __init__(self):
        super().__init__()
        self.received: list[list[str]] = []
        self.stalling = True
        self.release = None

    async def handle_DATA(self, server, session, envelope):
        import asyncio

        if not self.stalling:
            return await super().handle_DATA(server, session, envelope)
        self.received.append(list(envelope.rcpt_tos))
        self.release = self.release or asyncio.Event()
        try:
            await asyncio.wait_for(self.release.wait(), timeout=60)
        except TimeoutError:
            pass
        return "250 accepted after all"


def test_a_server_that_stalls_after_the_data_gets_no_second_copy_and_the_send_ends_in_time(out):
    import time

    handler = StallAfterData()
    ctl = serve(handler)
    try:
        started = time.monotonic()
        # the final reply may take 30 s, but the whole send has 3
        result = send_cli(out, ctl, "--sender", SENDER, "--reply-timeout", "30", "--time-limit", "3")
        elapsed = time.monotonic() - started
        assert result.exit_code == 2, result.output
        assert elapsed < 20  # ended by its time limit, not by the 30 s wait (nor by four 30 s retries)
        assert handler.received == [["one@example.org"]]  # the data went out once, and was not sent again
        said = result.output.replace("\n", "")
        assert "未确认" in said and "--resend 第一党支部" in said and "发送已停止" in said
        record = json.loads((out / SENT_LOG).read_text(encoding="utf-8"))
        assert [(e["recipient"], e["status"]) for e in record] == [("one@example.org", "uncertain")]
        # the server recovers: the next send delivers the rest, never the uncertain one
        handler.stalling = False
        again = send_cli(out, ctl, "--sender", SENDER)
        assert again.exit_code == 0, again.output
        assert sorted(r[0] for r, _d in handler.messages) == ["three@example.org", "two@example.org"]
        assert handler.received == [["one@example.org"]]
    finally:
        if handler.release is not None:
            ctl.loop.call_soon_threadsafe(handler.release.set)
        ctl.stop()


def test_a_reply_timeout_stops_the_send_with_the_message_uncertain(out):
    handler = StallAfterData()
    ctl = serve(handler)
    try:
        settings = SmtpSettings("127.0.0.1", port_of(ctl), sender=SENDER, reply_timeout=1, time_limit=120)
        outcome = send_outbox(out, settings, log=quiet)
        assert outcome.uncertain == ["第一党支部.eml"] and outcome.stopped and outcome.exit_code == 2
        assert handler.received == [["one@example.org"]] and not outcome.sent
    finally:
        if handler.release is not None:
            ctl.loop.call_soon_threadsafe(handler.release.set)
        ctl.stop()


def test_dry_run_needs_no_server(out):
    result = CliRunner().invoke(main, ["send", str(out), "--dry-run"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "one@example.org" in result.output and "发件人" in result.output
    assert not (out / SENT_LOG).exists()
    missing = CliRunner().invoke(main, ["send", str(out), "--sender", SENDER], catch_exceptions=False)
    assert missing.exit_code == 2 and "--smtp-host" in missing.output


def test_rejection_feedback_goes_only_to_a_branch_tied_to_the_file_beyond_doubt(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    wrong = [act("张三", "志愿服务", 30)]  # above the item's maximum: rejected
    build(inbox / "第一党支部.xlsx", info_over={"branch": "第一党支部"})
    build(inbox / "第二党支部.xlsx", info_over={"branch": "第一党支部"})  # 第二 copied 第一's workbook
    build(inbox / "第三党支部.xlsx", info_over={"branch": "第四党支部"}, incentive=wrong)
    build(inbox / "镇机关第五党支部2026.xlsx", info_over={"branch": "镇机关第五党支部"}, incentive=wrong)
    build(inbox / "六支部.xlsx", info_over={"branch": "第六党支部"}, incentive=wrong)
    build(inbox / "无名.xlsx", info_over={"branch": None})
    names = ["第一党支部", "第二党支部", "第三党支部", "第四党支部", "第五党支部", "镇机关第五党支部", "第六党支部"]
    addresses = {name: f"b{i}@example.org" for i, name in enumerate(names, start=1)}
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", str(inbox), "-o", str(out), "--jobs", "1", "--registry",
                                       str(registry_file(tmp_path / "名录.xlsx", addresses))], catch_exceptions=False)
    assert result.exit_code == 1
    manifest = json.loads((out / "run.json").read_text(encoding="utf-8"))
    held = {h["file"]: h["code"] for h in manifest["mail_held"]}
    assert held == {"第一党支部.xlsx": "duplicate_branch", "第二党支部.xlsx": "duplicate_branch",
                    "第三党支部.xlsx": "file_names_other", "无名.xlsx": "branch_unknown"}
    addressed = {}
    for path in (out / "发件箱").glob("*.eml"):
        msg = parsed(path.read_bytes())
        if msg["To"]:
            addressed[msg["X-Pointsbatch-Branch"]] = msg["To"]
    assert addressed == {"镇机关第五党支部": "b6@example.org", "第六党支部": "b7@example.org"}
    said = result.output.replace("\n", "")
    assert "退回意见不会自动发送" in said and all(name in said for name in held)
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "不自动发送的退回意见（4份）" in index and "文件名中是支部「第三党支部」" in index
    dry = CliRunner().invoke(main, ["send", str(out), "--dry-run"], catch_exceptions=False)
    assert "将发送 2 封" in dry.output and "b1@example.org" not in dry.output


def test_which_registry_branch_a_file_name_names():
    from pointsbatch.recipients import other_branch_named

    registry = dict.fromkeys(["第一党支部", "镇机关第一党支部", "河湾村党支部"])
    assert other_branch_named("镇机关第一党支部2026.xlsx", "镇机关第一党支部", registry) is None
    assert other_branch_named("镇机关第一党支部2026.xlsx", "第一党支部", registry) == "镇机关第一党支部"
    assert other_branch_named("第一党支部（改）.xlsx", "镇机关第一党支部", registry) == "第一党支部"
    assert other_branch_named("积分表.xlsx", "河湾村党支部", registry) is None
    assert other_branch_named("河湾村 党支部.xlsx", "第一党支部", registry) == "河湾村党支部"


def test_a_send_while_another_job_holds_out_stops_with_a_clear_message(out):
    from pointsbatch.lock import hold
    from pointsbatch.mail import MailError

    handler = Recorder()
    ctl = serve(handler)
    try:
        with hold(out):  # a `run` replacing OUT, or another `send`
            with pytest.raises(MailError, match="正在使用输出文件夹"):
                send_outbox(out, SmtpSettings("127.0.0.1", port_of(ctl), sender=SENDER, lock_wait=0), log=quiet)
        assert handler.messages == [] and not (out / SENT_LOG).exists()
    finally:
        ctl.stop()


def test_run_refuses_a_sender_that_is_not_an_address(town, tmp_path):
    inbox, registry = town
    result = CliRunner().invoke(main, ["run", str(inbox), "-o", str(tmp_path / "out"), "--registry", str(registry),
                                       "--sender", "dangjian"], catch_exceptions=False)
    assert result.exit_code == 2 and "不是有效的邮箱地址" in result.output and not (tmp_path / "out").exists()


# --- an outbox edited by hand (issue 16b) -------------------------------------------------------------------------

def edit_headers(path: Path, add: str = "", drop: str = "") -> None:
    """The message with a header added at the top and/or one removed, as someone editing it by hand would."""
    data = path.read_bytes()
    nl = b"\r\n" if b"\r\n" in data else b"\n"
    head, sep, body = data.partition(nl + nl)
    lines = [line for line in head.split(nl) if not (drop and line.lower().startswith(drop.lower().encode() + b":"))]
    if add:
        lines.insert(0, add.encode())
    path.write_bytes(nl.join(lines) + sep + body)


def test_an_edited_or_odd_outbox_entry_is_listed_unsent_with_a_reason_and_never_transmitted(out):
    box = out / "发件箱"
    first, second, third = (box / f"{b}.eml" for b in BRANCHES)
    assert first.is_file() and second.is_file() and third.is_file()
    edit_headers(first, add="Bcc: spy@evil.example")
    edit_headers(second, add="Cc: spy@evil.example")
    for name, change in {"甲.eml": {"drop": "From"}, "乙.eml": {"add": "Resent-To: spy@evil.example"},
                         "丙.eml": {"drop": "To", "add": "To: three@example.org, spy@evil.example"}}.items():
        (box / name).write_bytes(third.read_bytes())
        edit_headers(box / name, **change)
    (box / "文件夹.eml").mkdir()
    with (box / "巨大.eml").open("wb") as fh:  # sparse: 60 MB on paper, nothing on disk
        fh.write(third.read_bytes())
        fh.truncate(60 * 1024 * 1024)
    handler = Recorder()
    ctl = serve(handler)
    try:
        dry = send_cli(out, ctl, "--sender", SENDER, "--dry-run")
        result = send_cli(out, ctl, "--sender", SENDER)
    finally:
        ctl.stop()
    for run in (dry, result):
        assert run.exit_code == 1, run.output
        assert "Traceback" not in run.output and isinstance(run.exception, SystemExit)
        lines = run.output.splitlines()
        why = {name: next((line for line in lines if line.startswith(f"未发送 {name}：")), "")
               for name in (first.name, second.name, "甲.eml", "乙.eml", "丙.eml", "文件夹.eml", "巨大.eml")}
        assert "Bcc" in why[first.name] and "Cc" in why[second.name] and "From" in why["甲.eml"]
        assert "Resent-To" in why["乙.eml"] and "2 个地址" in why["丙.eml"]
        assert "文件夹" in why["文件夹.eml"] and "过大" in why["巨大.eml"]
    # only the untouched message went out, and nothing of the edits with it
    assert [rcpt for rcpt, _data in handler.messages] == [["three@example.org"]]
    assert b"spy@" not in handler.messages[0][1] and b"Bcc" not in handler.messages[0][1]
    record = json.loads((out / SENT_LOG).read_text(encoding="utf-8"))
    assert [e["message"] for e in record] == [third.name]


def test_dry_run_reads_only_the_headers_of_a_message(out, monkeypatch):
    import pointsbatch.mail as mail

    def no_body(*_args, **_kw):
        raise AssertionError("the dry run parsed a whole message")

    monkeypatch.setattr(mail.email, "message_from_bytes", no_body)
    outcome = send_outbox(out, SmtpSettings(sender=SENDER), dry_run=True, log=quiet)
    assert len(outcome.sent) == 3 and outcome.exit_code == 0


def test_a_message_is_written_as_the_standard_library_writes_it(tmp_path):
    """build_message writes line ends in one go and takes the attachments' digests from their bytes: the message is
    byte for byte what EmailMessage.as_bytes() gives, with the digest content_digest reads back from it."""
    from email.policy import SMTP

    from pointsbatch.names import ATTACHMENTS
    from pointsbatch.render.message import build_message, content_digest, message_id

    files = [tmp_path / "结果.xlsx", tmp_path / "公示.html"]
    build(files[0])
    files[1].write_text("<p>公示\r\n第二行\n第三行\r</p>" + "很长的一行" * 400, encoding="utf-8")
    context = {"accepted": True, "branch": "第一党支部", "file": "a.xlsx", "year": 2026, "period": "年度",
               "title": "2026年度", "days": 5, "flags": [], "errors": 0, "problems": [], "changes": [],
               **{key: "" for key in ATTACHMENTS}}
    data = build_message(context, files, "a@example.org")
    msg = email.message_from_bytes(data, policy=SMTP)
    assert msg.as_bytes() == data
    digest = content_digest(msg)
    assert msg["Message-ID"] == message_id(digest, "a@example.org", msg["Subject"])
    assert msg.get_boundary() == f"=_pointsbatch_{digest[:32]}"
    assert [p.get_payload(decode=True) for p in msg.iter_attachments()] == [f.read_bytes() for f in files]
