"""The SMTP email sink against a real SMTP server (aiosmtpd) on a free loopback port."""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from operators.actions import Action, ActionKind
from sinks.base import DeliveryPolicy, DeliveryStatus, PermanentDeliveryError, ResilientSender
from sinks.email import SmtpEmailSink, SmtpSettings
from tests.support.smtp import Mailbox, SmtpServers
from tests.support.tansu import free_port

pytestmark = pytest.mark.integration

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
PLAYER_ADDRESS = "player@example.com"
FAST = DeliveryPolicy(
    attempt_timeout_seconds=2.0,
    deadline_seconds=5.0,
    max_attempts=3,
    backoff_initial_seconds=0.01,
    backoff_max_seconds=0.05,
)


@pytest.fixture
def smtp() -> Iterator[SmtpServers]:
    servers = SmtpServers()
    yield servers
    for port in list(servers.running):
        servers.stop(port)


def settings(port: int, **overrides: Any) -> SmtpSettings:
    values: dict[str, Any] = {
        "name": "smtp-test",
        "host": "127.0.0.1",
        "port": port,
        "helo_hostname": "pitboss.test",
        "from_address": "bonus@casino.example",
        "from_name": "Казино Пит",
        "message_id_domain": "casino.example",
        "unsubscribe_mailto": "unsubscribe@casino.example",
        "unsubscribe_url": "https://casino.example/unsubscribe?a={action_id}&p={player_id}",
        "delivery": FAST,
    }
    values.update(overrides)
    return SmtpSettings(**values)


def mail(n: int = 1, **payload: Any) -> Action:
    content = {
        "to": PLAYER_ADDRESS,
        "rendered": {
            "subject": "Ваш приветственный бонус 🎁",
            "text": "Здравствуйте! 20 бесплатных вращений уже ждут вас.",
            "html": "<p>Здравствуйте! <b>20 бесплатных вращений</b> уже ждут вас.</p>",
        },
    }
    content.update(payload)
    return Action(
        action_id=f"a-mail-{n:04d}",
        campaign_id="welcome",
        player_id=f"p-{n}",
        kind=ActionKind.MESSAGE,
        channel="email",
        payload=content,
        event_id=f"e-{n}",
        decision="sent",
        event_at=T0,
        decided_at=T0,
    )


def test_an_email_arrives_as_text_and_html_with_unsubscribe_and_action_id_headers(
    smtp: SmtpServers,
) -> None:
    mailbox, port = smtp.start(Mailbox())
    sink = SmtpEmailSink(settings(port))
    delivery = ResilientSender(sink).deliver(mail())
    sink.close()

    assert delivery.status is DeliveryStatus.DELIVERED
    assert delivery.provider_message_id == "<a-mail-0001@casino.example>"
    (envelope,) = mailbox.accepted
    assert envelope.rcpt_tos == [PLAYER_ADDRESS]
    assert envelope.mail_from == "bonus@casino.example"
    (message,) = mailbox.messages()
    assert message.get_content_type() == "multipart/alternative"
    assert message["Subject"] == "Ваш приветственный бонус 🎁"
    assert message["From"] == "Казино Пит <bonus@casino.example>"
    assert message["Message-ID"] == "<a-mail-0001@casino.example>"
    assert message["X-Pitboss-Action-Id"] == "a-mail-0001"
    # Long headers are folded; unfolded, the value is the two targets.
    assert " ".join(message["List-Unsubscribe"].split()) == (
        "<mailto:unsubscribe@casino.example?subject=unsubscribe%20a-mail-0001>, "
        "<https://casino.example/unsubscribe?a=a-mail-0001&p=p-1>"
    )
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text, html = (part for part in message.iter_parts() if isinstance(part, EmailMessage))
    assert text.get_content_type() == "text/plain" and html.get_content_type() == "text/html"
    assert "20 бесплатных вращений уже ждут вас" in text.get_content()
    assert "<b>20 бесплатных вращений</b>" in html.get_content()


def test_one_connection_serves_many_emails_and_a_dropped_one_is_replaced(
    smtp: SmtpServers,
) -> None:
    mailbox, port = smtp.start(Mailbox())
    sink = SmtpEmailSink(settings(port))
    sender = ResilientSender(sink)
    sender.deliver_many(mail(n) for n in range(3))
    assert len(mailbox.accepted) == 3 and mailbox.connections == 1
    smtp.stop(port)

    restarted, _ = smtp.start(Mailbox(), port=port)  # the old connection is gone
    delivery = sender.deliver(mail(3))
    assert delivery.status is DeliveryStatus.DELIVERED and delivery.attempts == 1
    assert len(restarted.accepted) == 1 and restarted.connections == 1
    sink.close()


def test_a_451_is_retried_and_the_email_is_delivered_once(smtp: SmtpServers) -> None:
    mailbox, port = smtp.start(Mailbox("451 4.3.0 Try again later"))
    dead: list[str] = []
    sink = SmtpEmailSink(settings(port))
    delivery = ResilientSender(sink, dead_letter=lambda _, r: dead.append(r)).deliver(mail())
    sink.close()
    assert delivery.status is DeliveryStatus.DELIVERED and delivery.attempts == 2
    assert mailbox.data_commands == 2 and len(mailbox.accepted) == 1 and dead == []


def test_a_550_is_permanent_dead_lettered_and_not_retried(smtp: SmtpServers) -> None:
    mailbox, port = smtp.start(Mailbox(f"550 5.1.1 <{PLAYER_ADDRESS}>: mailbox unavailable"))
    dead: list[tuple[str, str]] = []
    sink = SmtpEmailSink(settings(port))
    sender = ResilientSender(sink, dead_letter=lambda a, r: dead.append((a.action_id, r)))
    delivery = sender.deliver(mail())
    assert delivery.status is DeliveryStatus.FAILED and delivery.attempts == 1
    assert mailbox.data_commands == 1 and mailbox.accepted == []
    assert dead == [("a-mail-0001", "smtp-test: action a-mail-0001: SMTP 550 on DATA (5.1.1)")]
    # The connection survives a refused message.
    assert sender.deliver(mail(2)).status is DeliveryStatus.DELIVERED
    assert mailbox.connections == 1
    sink.close()


def test_a_server_that_is_down_is_a_transient_failure_then_a_dead_letter() -> None:
    dead: list[str] = []
    sink = SmtpEmailSink(settings(free_port()))
    delivery = ResilientSender(sink, dead_letter=lambda _, r: dead.append(r)).deliver(mail())
    assert delivery.status is DeliveryStatus.FAILED and delivery.attempts == FAST.max_attempts
    assert dead[0].startswith("smtp-test: action a-mail-0001: SMTP connection failed")


def test_without_rendered_content_a_plain_fallback_names_the_template(
    smtp: SmtpServers,
) -> None:
    mailbox, port = smtp.start(Mailbox())
    sink = SmtpEmailSink(settings(port, unsubscribe_url=None))
    plain = mail(rendered=None, template_id="we_miss_you")
    assert sink.send(plain) == "<a-mail-0001@casino.example>"
    sink.close()
    (message,) = mailbox.messages()
    assert message["Subject"] == "We miss you"
    assert "List-Unsubscribe-Post" not in message  # mailto only: no one-click
    assert message["List-Unsubscribe"].strip().startswith("<mailto:")


def test_a_payload_without_an_address_is_refused_without_connecting() -> None:
    sink = SmtpEmailSink(settings(free_port()))
    with pytest.raises(PermanentDeliveryError, match="no usable recipient address"):
        sink.send(mail(to=None))


def test_a_header_injection_attempt_is_refused(smtp: SmtpServers) -> None:
    mailbox, port = smtp.start(Mailbox())
    sink = SmtpEmailSink(settings(port))
    evil = mail(rendered={"subject": "Hi\r\nBcc: victim@example.com", "text": "x", "html": "x"})
    with pytest.raises(PermanentDeliveryError, match="cannot build the message"):
        sink.send(evil)
    assert mailbox.data_commands == 0


def _only_pitboss(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data == (b"pitboss", b"hunter2")
    return AuthResult(success=ok, handled=False)


def test_starttls_and_login_are_used_when_configured(
    smtp: SmtpServers, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    tls_options = {
        "tls_context": server_tls,
        "require_starttls": True,
        "authenticator": _only_pitboss,
        "auth_required": True,
    }
    mailbox, port = smtp.start(Mailbox(), **tls_options)
    secure = {"security": "starttls", "ca_file": cert, "username": "pitboss"}
    sink = SmtpEmailSink(settings(port, password="hunter2", **secure))
    assert ResilientSender(sink).deliver(mail()).status is DeliveryStatus.DELIVERED
    sink.close()
    assert len(mailbox.accepted) == 1

    wrong = SmtpEmailSink(settings(port, password="wrong", **secure))
    with pytest.raises(PermanentDeliveryError, match="SMTP 535 on AUTH"):
        wrong.send(mail(2))
    wrong.close()
