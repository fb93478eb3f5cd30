"""Email over SMTP: multipart text + HTML, one-click unsubscribe, the action id in headers.

The recipient is ``payload["to"]``; subject, text and HTML are ``payload["rendered"]``
(rendering is the template engine's job). The ``Message-ID`` is derived from the action id
(``<action_id@domain>``) and ``X-Pitboss-Action-Id`` carries it too, so bounces and
feedback loops lead back to the action.

SMTP 4xx replies and connection trouble are transient, 5xx permanent. Server replies are
reduced to their codes in errors: their text often quotes the recipient's address.
"""

from __future__ import annotations

import contextlib
import html
import logging
import re
import smtplib
import ssl
import threading
from email.message import EmailMessage
from email.utils import formataddr, formatdate
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from operators.actions import Action
from sinks.base import ChannelSink, DeliveryPolicy, PermanentDeliveryError, TransientDeliveryError

logger = logging.getLogger(__name__)

_ENHANCED_STATUS = re.compile(rb"^\s*([245]\.\d{1,3}\.\d{1,3})")
_URL_FIELDS = {"action_id": "a", "player_id": "p", "campaign_id": "c"}


class SmtpSettings(BaseModel):
    """One SMTP relay and the sender identity used on it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = "smtp"
    host: str = "127.0.0.1"
    port: int = Field(default=25, ge=1, le=65535)
    security: Literal["none", "starttls", "tls"] = "none"  # tls: implicit TLS (port 465)
    ca_file: Path | None = None  # trust this CA instead of the system store
    username: str | None = None
    password: SecretStr | None = None
    helo_hostname: str | None = None  # None: the local FQDN
    from_address: str = "noreply@example.com"
    from_name: str | None = None
    message_id_domain: str = "pitboss.local"
    # List-Unsubscribe targets; the URL may use {action_id}, {player_id}, {campaign_id}.
    unsubscribe_mailto: str | None = None
    unsubscribe_url: str | None = None
    delivery: DeliveryPolicy = DeliveryPolicy()

    @field_validator("unsubscribe_url")
    @classmethod
    def _url_placeholders_are_known(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                value.format(**_URL_FIELDS)
            except (KeyError, IndexError, ValueError) as exc:
                raise ValueError(
                    f"unknown placeholder {exc}; use {{action_id}}, {{player_id}}, {{campaign_id}}"
                ) from exc
            if not value.startswith("https://"):
                raise ValueError("one-click unsubscribe (RFC 8058) needs an https:// URL")
        return value


class SmtpEmailSink(ChannelSink):
    """Send email actions through one SMTP relay, reusing the connection between sends."""

    def __init__(self, settings: SmtpSettings) -> None:
        super().__init__(settings.name, "email", settings.delivery)
        self.settings = settings
        self._smtp: smtplib.SMTP | None = None
        self._lock = threading.Lock()  # one SMTP conversation at a time

    def build_message(self, action: Action) -> EmailMessage:
        """The email for ``action``; raises PermanentDeliveryError on a bad payload."""
        s = self.settings
        recipient = action.payload.get("to")
        if not isinstance(recipient, str) or "@" not in recipient:
            raise self._permanent(action, "payload has no usable recipient address ('to')")
        subject, text, html_body = _content(action)
        message = EmailMessage()
        try:
            message["From"] = (
                formataddr((s.from_name, s.from_address)) if s.from_name else s.from_address
            )
            message["To"] = recipient
            message["Subject"] = subject
            message["Date"] = formatdate(usegmt=True)
            message["Message-ID"] = f"<{action.action_id}@{s.message_id_domain}>"
            message["X-Pitboss-Action-Id"] = action.action_id
            message["X-Pitboss-Campaign-Id"] = action.campaign_id
            unsubscribe = self._unsubscribe_targets(action)
            if unsubscribe:
                message["List-Unsubscribe"] = ", ".join(f"<{t}>" for t in unsubscribe)
                if any(t.startswith("https://") for t in unsubscribe):
                    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
            message.set_content(text)
            message.add_alternative(html_body, subtype="html")
        except ValueError as exc:  # e.g. a line break in a header: refuse, never inject
            raise self._permanent(
                action, f"cannot build the message ({type(exc).__name__})"
            ) from exc
        return message

    def send(self, action: Action, timeout: float | None = None) -> str | None:
        """Send one email; returns its Message-ID."""
        message = self.build_message(action)
        limit = timeout if timeout is not None else self.policy.attempt_timeout_seconds
        with self._lock:
            reused = self._smtp is not None
            try:
                self._send_on_connection(message, limit)
            except smtplib.SMTPServerDisconnected as exc:
                self._drop_connection()
                if not reused:
                    raise self._transient(action, "server disconnected") from exc
                # An idle connection the server closed: one fresh connection, same attempt.
                try:
                    self._send_on_connection(message, limit)
                except (OSError, smtplib.SMTPException) as retry_exc:
                    raise self._classified(action, retry_exc) from retry_exc
            except (OSError, smtplib.SMTPException) as exc:
                raise self._classified(action, exc) from exc
        return str(message["Message-ID"])

    def close(self) -> None:
        """Say QUIT and close the connection, if one is open."""
        with self._lock:
            if self._smtp is not None:
                with contextlib.suppress(smtplib.SMTPException, OSError):
                    self._smtp.quit()
                self._drop_connection()

    def _send_on_connection(self, message: EmailMessage, timeout: float) -> None:
        smtp = self._connection(timeout)
        if smtp.sock is not None:
            smtp.sock.settimeout(timeout)
        smtp.send_message(message)

    def _connection(self, timeout: float) -> smtplib.SMTP:
        if self._smtp is not None:
            return self._smtp
        s = self.settings
        context = ssl.create_default_context(cafile=s.ca_file) if s.security != "none" else None
        smtp: smtplib.SMTP
        if s.security == "tls":
            smtp = smtplib.SMTP_SSL(
                s.host, s.port, local_hostname=s.helo_hostname, timeout=timeout, context=context
            )
        else:
            smtp = smtplib.SMTP(s.host, s.port, local_hostname=s.helo_hostname, timeout=timeout)
        try:
            smtp.ehlo()
            if s.security == "starttls":
                smtp.starttls(context=context)
                smtp.ehlo()
            if s.username is not None and s.password is not None:
                smtp.login(s.username, s.password.get_secret_value())
        except BaseException:
            smtp.close()
            raise
        self._smtp = smtp
        return smtp

    def _drop_connection(self) -> None:
        if self._smtp is not None:
            self._smtp.close()
            self._smtp = None

    def _classified(
        self, action: Action, exc: OSError | smtplib.SMTPException
    ) -> TransientDeliveryError | PermanentDeliveryError:
        """The delivery error for ``exc``; drops the connection unless it is still sound."""
        if isinstance(exc, smtplib.SMTPNotSupportedError):  # e.g. no SMTPUTF8, no STARTTLS
            return self._permanent(action, f"SMTP server lacks a needed extension ({exc})")
        code, where = _smtp_code(exc)
        if code is None:
            self._drop_connection()
            return self._transient(action, f"SMTP connection failed ({type(exc).__name__})")
        if isinstance(exc, (smtplib.SMTPConnectError, smtplib.SMTPHeloError)) or code == 421:
            self._drop_connection()
        detail = f"SMTP {code}{where}"
        if 400 <= code < 500:
            return self._transient(action, detail)
        return self._permanent(action, detail)

    def _unsubscribe_targets(self, action: Action) -> list[str]:
        s = self.settings
        targets: list[str] = []
        if s.unsubscribe_mailto:
            targets.append(
                f"mailto:{s.unsubscribe_mailto}?subject=unsubscribe%20{action.action_id}"
            )
        url = action.payload.get("unsubscribe_url")
        if isinstance(url, str) and url.startswith("https://"):
            targets.append(url)
        elif s.unsubscribe_url:
            targets.append(
                s.unsubscribe_url.format(
                    action_id=action.action_id,
                    player_id=action.player_id,
                    campaign_id=action.campaign_id,
                )
            )
        return targets

    def _transient(self, action: Action, message: str) -> TransientDeliveryError:
        return TransientDeliveryError(message, provider=self.name, action_id=action.action_id)

    def _permanent(self, action: Action, message: str) -> PermanentDeliveryError:
        return PermanentDeliveryError(message, provider=self.name, action_id=action.action_id)


def _content(action: Action) -> tuple[str, str, str]:
    """Subject, text and HTML: rendered content, or a plain fallback from the template id."""
    rendered: Any = action.payload.get("rendered")
    if isinstance(rendered, dict) and isinstance(rendered.get("subject"), str):
        text = str(rendered.get("text") or "")
        html_body = rendered.get("html")
        if not isinstance(html_body, str) or not html_body:
            html_body = f"<p>{html.escape(text)}</p>"
        return rendered["subject"], text, html_body
    template_id = str(action.payload.get("template_id") or action.campaign_id)
    logger.warning(
        "action %s has no rendered content; sending the plain fallback for template %s",
        action.action_id,
        template_id,
    )
    title = template_id.replace("_", " ").replace("-", " ").strip().capitalize()
    return title, title, f"<p>{html.escape(title)}</p>"


def _smtp_code(exc: BaseException) -> tuple[int | None, str]:
    """The SMTP reply code in ``exc`` and where it came, with its enhanced status if any."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = sorted(code for code, _ in exc.recipients.values())
        if not codes:
            return None, ""
        transient = [c for c in codes if 400 <= c < 500]
        return (transient or codes)[0], " on RCPT"
    if isinstance(exc, smtplib.SMTPResponseException):
        stage = {
            smtplib.SMTPSenderRefused: " on MAIL FROM",
            smtplib.SMTPDataError: " on DATA",
            smtplib.SMTPAuthenticationError: " on AUTH",
            smtplib.SMTPConnectError: " on connect",
            smtplib.SMTPHeloError: " on HELO",
        }.get(type(exc), "")
        raw = exc.smtp_error if isinstance(exc.smtp_error, bytes) else b""
        match = _ENHANCED_STATUS.match(raw)
        status = f" ({match.group(1).decode()})" if match else ""
        return int(exc.smtp_code), f"{stage}{status}"
    return None, ""
