"""Recipients come from the contact directory at send time and never reach the action log."""

from __future__ import annotations

import pytest

from operators.actions import Action
from pipeline.delivery import DeliveryStage
from pipeline.metrics import Metrics
from sinks.base import ChannelSink, DeliveryPolicy, PermanentDeliveryError, ResilientSender
from sinks.contacts import ContactDirectory, Contacts, MemoryContactDirectory
from sinks.stores import StoreError
from sinks.stores.memory import memory_stores
from tests.support.actions import message

ADDRESS = "ada@example.com"
PHONE = "+4915112345678"
TOKEN = "device-token-ada"
ADA = Contacts(email=ADDRESS, phone=PHONE, push_token=TOKEN)
RECIPIENT = {"email": "to", "sms": "to", "push": "device_token"}


class RecordingSink(ChannelSink):
    """A provider that accepts what names a recipient, and remembers what it was given."""

    def __init__(self, channel: str) -> None:
        super().__init__(f"fake-{channel}", channel, DeliveryPolicy(max_attempts=1))
        self.sent: list[Action] = []

    def send(self, action: Action, timeout: float | None = None) -> str | None:
        payload = action.payload
        if not (payload.get("to") or payload.get("device_token")):
            raise PermanentDeliveryError("no recipient", provider=self.name, action_id="x")
        self.sent.append(action)
        return f"m-{len(self.sent)}"


class BrokenDirectory:
    """A directory whose record for the player is not what it should be."""

    def lookup(self, player_id: str) -> Contacts | None:
        raise StoreError("Redis contact directory: contact lookup failed: WRONGTYPE")


def deliver(
    actions: list[Action], directory: ContactDirectory | None
) -> tuple[list[Action], dict[str, RecordingSink]]:
    sinks = {channel: RecordingSink(channel) for channel in RECIPIENT}
    senders = {channel: ResilientSender(sink) for channel, sink in sinks.items()}
    stage = DeliveryStage(
        senders,
        memory_stores([]),
        Metrics(),
        concurrency=1,
        contacts=directory,
    )
    return stage.process(actions), sinks


@pytest.mark.parametrize(
    ("channel", "contact"), [("email", ADDRESS), ("sms", PHONE), ("push", TOKEN)]
)
def test_a_message_without_a_recipient_is_sent_to_the_players_contact(
    channel: str, contact: str
) -> None:
    out, sinks = deliver([message(channel)], MemoryContactDirectory({"ada": ADA}))
    [sent] = sinks[channel].sent
    assert sent.payload[RECIPIENT[channel]] == contact
    assert out[0].decision == "sent" and out[0].delivered_at is not None


def test_the_logged_action_carries_no_contact() -> None:
    batch = [message("email"), message("sms"), message("push")]
    out, _ = deliver(batch, MemoryContactDirectory({"ada": ADA}))
    for action in out:
        assert "to" not in action.payload and "device_token" not in action.payload
        logged = action.to_json().decode()
        assert ADDRESS not in logged and PHONE not in logged and TOKEN not in logged
    assert [a.payload for a in out] == [a.payload for a in batch]


def test_a_player_without_the_channels_contact_is_suppressed_no_contact() -> None:
    directory = MemoryContactDirectory({"ada": Contacts(email=ADDRESS)})
    batch = [message("sms"), message("push"), message("email", player="bob")]
    out, sinks = deliver(batch, directory)
    assert [a.decision for a in out] == ["suppressed:no_contact"] * 3
    assert all(a.delivered_at is None for a in out)
    assert sinks["sms"].sent == [] and sinks["push"].sent == [] and sinks["email"].sent == []


def test_an_explicit_recipient_in_the_payload_wins_over_the_directory() -> None:
    batch = [
        message("email", to="promo@example.com"),
        message("push", to="explicit-token"),
        message("push", player="bob", device_token="bobs-token"),
    ]
    out, sinks = deliver(batch, MemoryContactDirectory({"ada": ADA}))
    assert [a.decision for a in out] == ["sent"] * 3
    assert sinks["email"].sent[0].payload["to"] == "promo@example.com"
    assert [a.payload.get("device_token") for a in sinks["push"].sent] == [None, "bobs-token"]
    assert sinks["push"].sent[0].payload["to"] == "explicit-token"


def test_without_a_directory_the_payload_is_sent_as_it_is() -> None:
    out, sinks = deliver([message("email")], None)
    assert out[0].decision == "failed" and "no recipient" in out[0].detail
    assert sinks["email"].sent == []


def test_a_broken_contact_record_fails_the_action_and_names_no_contact() -> None:
    out, sinks = deliver([message("email")], BrokenDirectory())
    assert out[0].decision == "failed" and out[0].detail.startswith("contact lookup: ")
    assert sinks["email"].sent == []


def test_contacts_show_which_exist_but_not_what_they_are() -> None:
    shown = repr(Contacts(email=ADDRESS, push_token=TOKEN))
    assert shown == "Contacts(<email, push_token>)"
    assert ADA.for_channel("sms") == PHONE and ADA.for_channel("in_app") is None
