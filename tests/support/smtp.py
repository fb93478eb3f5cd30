"""A real SMTP server (aiosmtpd) on loopback for tests: a scripted mailbox and the
servers a test starts (and stops after it)."""

from __future__ import annotations

import email.policy
from collections import deque
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any, cast

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.support.tansu import free_port


class Mailbox:
    """An aiosmtpd handler: answers DATA with scripted replies first, then 250."""

    def __init__(self, *replies: str) -> None:
        self.replies = deque(replies)
        self.accepted: list[Envelope] = []
        self.data_commands = 0
        self.connections = 0

    async def handle_EHLO(  # noqa: N802 - aiosmtpd's hook names
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_DATA(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        self.data_commands += 1
        if self.replies:
            return self.replies.popleft()
        self.accepted.append(envelope)
        return "250 2.0.0 OK queued"

    def messages(self) -> list[EmailMessage]:
        parser = BytesParser(policy=email.policy.default)
        return [
            cast(EmailMessage, parser.parsebytes(e.original_content or b"")) for e in self.accepted
        ]


class SmtpServers:
    """Real SMTP servers on loopback, started by a test and all stopped after it."""

    def __init__(self) -> None:
        self.running: dict[int, Controller] = {}

    def start(
        self, mailbox: Mailbox, port: int | None = None, **smtp_options: Any
    ) -> tuple[Mailbox, int]:
        port = port or free_port()
        controller = Controller(mailbox, hostname="127.0.0.1", port=port, **smtp_options)
        controller.start()
        self.running[port] = controller
        return mailbox, port

    def stop(self, port: int) -> None:
        self.running.pop(port).stop()
