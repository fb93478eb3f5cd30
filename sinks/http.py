"""HTTP JSON providers: SMS, push, signed webhooks and the operator's wallet.

One base, :class:`HttpSink`, owns the connection pool (urllib3, keep-alive, thread-safe),
credentials, timeouts and the mapping of outcomes: 2xx delivered; 408/425/429/5xx,
timeouts and connection errors transient (with ``Retry-After`` honoured); any other
status permanent. Each provider only says what it posts. Bodies are never logged: they
carry personal data.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time
import warnings
from abc import abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar

import orjson
import urllib3
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from urllib3.exceptions import (
    ConnectTimeoutError,
    EmptyPoolError,
    HTTPError,
    InsecureRequestWarning,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)

from operators.actions import Action
from sinks.base import (
    ChannelSink,
    DeliveryError,
    DeliveryPolicy,
    PermanentDeliveryError,
    TransientDeliveryError,
)

logger = logging.getLogger(__name__)

_MESSAGE_ID_FIELDS = ("id", "message_id", "messageId", "transaction_id")
# Connections to one provider at once (each delivery thread holds one while it sends);
# a send waits for a free one within its attempt timeout (httpx's default cap, kept).
MAX_CONNECTIONS = 100


class HttpProviderSettings(BaseModel):
    """One HTTP provider: where it is, how to authenticate, how long to wait."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    url: str
    bearer_token: SecretStr | None = None
    username: str | None = None  # basic auth, with password
    password: SecretStr | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    connect_timeout_seconds: float = Field(default=2.0, gt=0)  # within the attempt timeout
    verify_tls: bool = True
    delivery: DeliveryPolicy = DeliveryPolicy()

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("the provider url must start with http:// or https://")
        try:
            host = urllib3.util.parse_url(value).host
        except urllib3.exceptions.LocationParseError as exc:
            raise ValueError(f"the provider url cannot be parsed ({exc})") from exc
        if not host:
            raise ValueError("the provider url has no host")
        return value

    @model_validator(mode="after")
    def _one_kind_of_credentials(self) -> HttpProviderSettings:
        if (self.username is None) != (self.password is None):
            raise ValueError("basic auth needs both username and password")
        if self.bearer_token is not None and self.username is not None:
            raise ValueError("give either bearer_token or username/password, not both")
        return self


class SmsSettings(HttpProviderSettings):
    """An SMS gateway; ``sender_id`` is the alphanumeric sender or number, if required."""

    sender_id: str | None = None


class WebhookSettings(HttpProviderSettings):
    """An operator system receiving signed action webhooks."""

    secret: SecretStr


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """What a provider posts for one action: a JSON body and extra headers."""

    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


class HttpSink(ChannelSink):
    """POST one JSON request per action to a provider; subclasses build the request."""

    TRANSIENT_STATUSES: ClassVar[frozenset[int]] = frozenset({408, 425, 429})

    def __init__(
        self,
        settings: HttpProviderSettings,
        channel: str,
        *,
        now: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(settings.name, channel, settings.delivery)
        self.settings = settings
        self._now = now
        headers = urllib3.HTTPHeaderDict({"Content-Type": "application/json; charset=utf-8"})
        headers.update(settings.headers)
        if settings.bearer_token is not None:
            headers["Authorization"] = f"Bearer {settings.bearer_token.get_secret_value()}"
        elif settings.username is not None and settings.password is not None:
            pair = f"{settings.username}:{settings.password.get_secret_value()}".encode()
            headers["Authorization"] = f"Basic {base64.b64encode(pair).decode('ascii')}"
        for name, value in headers.items():  # http.client sends headers as Latin-1
            try:
                f"{name}: {value}".encode("latin-1")
            except UnicodeEncodeError:
                raise ValueError(
                    f"provider {self.name}: header {name!r} is not Latin-1 text"
                ) from None  # the value may be a secret: not shown
        self._headers = dict(headers)  # a plain dict is cheaper to copy and send
        self._header_names = {name.lower(): name for name in self._headers}
        url = urllib3.util.parse_url(settings.url)
        host = url.host or ""  # never empty: the settings validator checks
        self._path = url.request_uri
        pool: dict[str, Any] = {"maxsize": MAX_CONNECTIONS, "block": True, "retries": False}
        if url.scheme == "https":
            if not settings.verify_tls:
                # The operator turned verification off on purpose: say so once, here,
                # rather than urllib3 warning on every request.
                logger.warning("provider %s: TLS certificate verification is off", self.name)
                warnings.filterwarnings("ignore", category=InsecureRequestWarning)
            self._pool: urllib3.HTTPConnectionPool = urllib3.HTTPSConnectionPool(
                host,
                url.port,
                cert_reqs="CERT_REQUIRED" if settings.verify_tls else "CERT_NONE",
                assert_hostname=None if settings.verify_tls else False,
                **pool,
            )
        else:
            self._pool = urllib3.HTTPConnectionPool(host, url.port, **pool)

    @abstractmethod
    def build_request(self, action: Action) -> HttpRequest:
        """The request for ``action``; raises PermanentDeliveryError on a bad payload."""

    def send(self, action: Action, timeout: float | None = None) -> str | None:
        """POST the action once; returns the provider's message id, if it sends one."""
        request = self.build_request(action)
        limit = timeout if timeout is not None else self.policy.attempt_timeout_seconds
        headers = self._headers
        if request.headers:  # a request's own headers replace defaults of any spelling
            headers = headers.copy()
            for name, value in request.headers.items():
                headers.pop(self._header_names.get(name.lower(), name), None)
                headers[name] = value
        try:
            response = self._pool.urlopen(
                "POST",
                self._path,
                body=request.body,
                headers=headers,
                redirect=False,
                timeout=urllib3.Timeout(
                    total=limit, connect=min(limit, self.settings.connect_timeout_seconds)
                ),
                pool_timeout=limit,  # type: ignore[arg-type]  # annotated int; a queue timeout
            )
        except HTTPError as exc:
            raise self._failure(action, exc, limit) from exc
        status = response.status
        if 200 <= status < 300:
            return _message_id(response)
        if status in self.TRANSIENT_STATUSES or status >= 500:
            raise self._transient(
                action, f"HTTP {status}", retry_after=_retry_after(response, self._now())
            )
        raise self._permanent(action, f"HTTP {status}")

    def close(self) -> None:
        """Close the connection pool."""
        self._pool.close()

    def _failure(self, action: Action, exc: HTTPError, limit: float) -> DeliveryError:
        """The delivery error for what urllib3 raised, named by kind, never by content."""
        # NewConnectionError subclasses ConnectTimeoutError (urllib3 1.x compatibility).
        if isinstance(exc, NewConnectionError):
            return self._transient(action, "connection failed (ConnectError)")
        if isinstance(exc, ConnectTimeoutError):
            return self._transient(action, f"timed out after {limit:.3g}s (ConnectTimeout)")
        if isinstance(exc, ReadTimeoutError):
            return self._transient(action, f"timed out after {limit:.3g}s (ReadTimeout)")
        if isinstance(exc, EmptyPoolError):  # every connection busy for the whole attempt
            return self._transient(action, f"timed out after {limit:.3g}s (PoolTimeout)")
        if isinstance(exc, ProtocolError):  # reset, closed or broken mid-request or response
            cause = exc.args[1] if len(exc.args) > 1 else exc
            return self._transient(action, f"connection failed ({type(cause).__name__})")
        if isinstance(exc, SSLError):
            return self._transient(action, "connection failed (SSLError)")
        return self._permanent(action, f"request failed ({type(exc).__name__})")

    def _transient(
        self, action: Action, message: str, retry_after: float | None = None
    ) -> TransientDeliveryError:
        return TransientDeliveryError(
            message, provider=self.name, action_id=action.action_id, retry_after=retry_after
        )

    def _permanent(self, action: Action, message: str) -> PermanentDeliveryError:
        return PermanentDeliveryError(message, provider=self.name, action_id=action.action_id)

    def _json(self, action: Action, body: Mapping[str, Any]) -> bytes:
        try:
            return orjson.dumps(body, default=_json_default)
        except orjson.JSONEncodeError as exc:
            raise self._permanent(action, f"payload is not JSON-encodable ({exc})") from exc

    def _require(self, action: Action, value: Any, what: str) -> str:
        if not isinstance(value, str) or not value:
            raise self._permanent(action, f"payload has no {what}")
        return value


class SmsSink(HttpSink):
    """SMS over a JSON API: ``{"to", "text", "reference"[, "sender"]}``, full Unicode."""

    settings: SmsSettings

    def __init__(self, settings: SmsSettings) -> None:
        super().__init__(settings, "sms")

    def build_request(self, action: Action) -> HttpRequest:
        """The SMS for ``action``: ``payload["to"]`` and the rendered text."""
        rendered = _rendered(action)
        body: dict[str, Any] = {
            "to": self._require(action, action.payload.get("to"), "recipient number ('to')"),
            "text": self._require(
                action, rendered.get("text") or action.payload.get("text"), "rendered text"
            ),
            "reference": action.action_id,
        }
        if self.settings.sender_id is not None:
            body["sender"] = self.settings.sender_id
        return HttpRequest(self._json(action, body))


class PushSink(HttpSink):
    """Mobile push over a JSON API: device token, title, body and deep link."""

    def __init__(self, settings: HttpProviderSettings) -> None:
        super().__init__(settings, "push")

    def build_request(self, action: Action) -> HttpRequest:
        """The notification for ``action``; the token is ``payload["device_token"]``."""
        payload, rendered = action.payload, _rendered(action)
        token = payload.get("device_token") or payload.get("to")
        body = {
            "device_token": self._require(action, token, "device token"),
            "title": self._require(
                action, rendered.get("title") or rendered.get("subject"), "rendered title"
            ),
            "body": self._require(
                action, rendered.get("body") or rendered.get("text"), "rendered body"
            ),
            "deep_link": payload.get("deep_link") or rendered.get("deep_link"),
            "reference": action.action_id,
        }
        return HttpRequest(self._json(action, body))


class WebhookSink(HttpSink):
    """POST the action JSON, signed: ``X-Pitboss-Signature: sha256=<HMAC of ts.body>``."""

    settings: WebhookSettings

    def __init__(
        self,
        settings: WebhookSettings,
        *,
        now: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(settings, "webhook", now=now)

    def build_request(self, action: Action) -> HttpRequest:
        """The action as JSON with a timestamp and its signature."""
        body = action.to_json()
        timestamp = str(int(self._now()))
        secret = self.settings.secret.get_secret_value()
        return HttpRequest(
            body,
            {
                "X-Pitboss-Timestamp": timestamp,
                "X-Pitboss-Signature": sign_webhook(secret, timestamp, body),
                "X-Pitboss-Action-Id": action.action_id,
            },
        )


class WalletSink(HttpSink):
    """Credit a reward through the operator's wallet/bonus API, idempotent by action id."""

    # 409: a request with this idempotency key is still being processed.
    TRANSIENT_STATUSES: ClassVar[frozenset[int]] = HttpSink.TRANSIENT_STATUSES | {409}
    _NOT_REWARD = frozenset({"rendered", "template_id", "locale", "to"})

    def __init__(self, settings: HttpProviderSettings) -> None:
        super().__init__(settings, "wallet")

    def build_request(self, action: Action) -> HttpRequest:
        """The reward (the payload minus message fields) with ``Idempotency-Key``."""
        reward = {k: v for k, v in action.payload.items() if k not in self._NOT_REWARD}
        self._require(action, reward.get("reward_type"), "reward_type")
        body = {
            "action_id": action.action_id,
            "player_id": action.player_id,
            "campaign_id": action.campaign_id,
            "event_id": action.event_id,
            "reward": reward,
        }
        return HttpRequest(self._json(action, body), {"Idempotency-Key": action.action_id})


def sign_webhook(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 with ``secret`` over ``"{timestamp}.{body}"``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def verify_webhook(
    secret: str,
    timestamp: str,
    body: bytes,
    signature: str,
    *,
    now: float,
    tolerance_seconds: float = 300.0,
) -> bool:
    """What a receiver checks: the signature matches and the timestamp is recent."""
    try:
        fresh = abs(now - int(timestamp)) <= tolerance_seconds
    except ValueError:
        return False
    return fresh and hmac.compare_digest(sign_webhook(secret, timestamp, body), signature)


def _rendered(action: Action) -> dict[str, Any]:
    rendered = action.payload.get("rendered")
    return rendered if isinstance(rendered, dict) else {}


def _json_default(value: Any) -> str:
    if isinstance(value, Decimal):  # money stays exact: a decimal string
        return str(value)
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def _message_id(response: urllib3.BaseHTTPResponse) -> str | None:
    if "json" not in response.headers.get("content-type", ""):
        return None
    try:
        data = orjson.loads(response.data)
    except orjson.JSONDecodeError:
        return None
    if isinstance(data, dict):
        for name in _MESSAGE_ID_FIELDS:
            if isinstance(data.get(name), str | int):
                return str(data[name])
    return None


def _retry_after(response: urllib3.BaseHTTPResponse, now: float) -> float | None:
    """Seconds from ``Retry-After`` (delta seconds or an HTTP date), if present and sane."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max(parsedate_to_datetime(value).timestamp() - now, 0.0)
    except (TypeError, ValueError):
        return None
