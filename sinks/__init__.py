"""Channel sinks: deliver decided actions to real providers, safely.

:mod:`sinks.base` is the contract and the resilience around every provider; the other
modules are the providers: SMTP email, HTTP (SMS, push, webhook, wallet), in-app inbox.
"""

from sinks.base import (
    ChannelSink,
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    DeadLetter,
    Delivery,
    DeliveryError,
    DeliveryLedger,
    DeliveryObserver,
    DeliveryPolicy,
    DeliveryStatus,
    MemoryDeliveryLedger,
    PermanentDeliveryError,
    ProviderRateLimiter,
    RedisDeliveryLedger,
    ResilientSender,
    TransientDeliveryError,
)
from sinks.email import SmtpEmailSink, SmtpSettings
from sinks.http import (
    HttpProviderSettings,
    HttpRequest,
    HttpSink,
    PushSink,
    SmsSettings,
    SmsSink,
    WalletSink,
    WebhookSettings,
    WebhookSink,
    sign_webhook,
    verify_webhook,
)
from sinks.inbox import InboxMessage, MemoryInboxSink, RedisInboxSink

__all__ = [
    "ChannelSink",
    "CircuitBreaker",
    "CircuitOpenError",
    "CircuitState",
    "DeadLetter",
    "Delivery",
    "DeliveryError",
    "DeliveryLedger",
    "DeliveryObserver",
    "DeliveryPolicy",
    "DeliveryStatus",
    "HttpProviderSettings",
    "HttpRequest",
    "HttpSink",
    "InboxMessage",
    "MemoryDeliveryLedger",
    "MemoryInboxSink",
    "PermanentDeliveryError",
    "ProviderRateLimiter",
    "PushSink",
    "RedisDeliveryLedger",
    "RedisInboxSink",
    "ResilientSender",
    "SmsSettings",
    "SmsSink",
    "SmtpEmailSink",
    "SmtpSettings",
    "TransientDeliveryError",
    "WalletSink",
    "WebhookSettings",
    "WebhookSink",
    "sign_webhook",
    "verify_webhook",
]
