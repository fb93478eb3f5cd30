"""After the player operator: the shared-store guards, then delivery to channel sinks.

``GuardStage`` finishes what ``operators.guards`` started, with stores every worker and
process shares (Redis in production, in-process for the embedded default): dedup (an
action id already decided keeps its decision), the authoritative suppression list,
frequency caps and budgets. ``DeliveryStage`` checks the suppression list once more at
send time (a self-exclusion that arrived while a message was in flight stops it) and
hands each sent action to its channel's ``ResilientSender``. Email, SMS and push actions
carry no recipient (no personal data in events, state or the action log): the stage looks
it up in the contact directory at send time and adds it to the copy it sends only.

Redis down: the guards fail *closed and waiting*: nothing is decided or sent without a
dedup and cap decision, the stage retries until the store answers, and the dataflow
backs up behind it (the source stops reading), so nothing is lost.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

from operators.actions import Action, ActionKind, Decision, epoch_to_datetime, suppressed
from operators.guards import DEFERRED, SENT, GuardConfig, is_earned
from operators.player_state import MONEY_SCALE
from pipeline.decode import DecodedBatch
from pipeline.metrics import Metrics
from sinks.base import DeliveryStatus, ResilientSender
from sinks.contacts import CHANNEL_FIELD, ContactDirectory
from sinks.stores import CapRule, StoreError, Stores, StoreUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")

MARKETING = frozenset({"email", "sms", "push", "in_app"})
# Where each channel's sink reads its recipient (push also reads "to").
RECIPIENT_KEYS = {"email": ("to",), "sms": ("to",), "push": ("device_token", "to")}
NO_CONTACT = suppressed("no_contact")


def cap_rules(config: GuardConfig) -> list[CapRule]:
    """The frequency-cap rules of a guards file, for the stores."""
    return [
        CapRule(
            cap.key,
            cap.limit,
            cap.window_hours * 3600,
            channels=cap.channels,
            kinds=cap.kinds,
        )
        for cap in config.caps
    ]


def configure_budgets(stores: Stores, config: GuardConfig) -> None:
    """Set every budget's caps (raising a cap resumes a paused campaign)."""
    for key, budget in config.budgets.items():
        money = None if budget.money is None else round(budget.money * MONEY_SCALE)
        stores.budgets.set_cap(key, money, budget.count)


def until_available(what: str, call: Callable[[], T], *, pause: float = 0.5) -> T:
    """Run ``call``; while the store is unavailable, wait and try again (fail closed)."""
    warned_at = 0.0
    while True:
        try:
            return call()
        except StoreUnavailable as exc:
            now = time.monotonic()
            if now - warned_at > 30:
                log.warning(
                    "%s: store unavailable, holding decisions until it returns: %s", what, exc
                )
                warned_at = now
            time.sleep(pause)


class GuardStage:
    """Dedup, authoritative suppression, frequency caps and budgets, in that order."""

    def __init__(self, stores: Stores, config: GuardConfig, metrics: Metrics) -> None:
        self._stores = stores
        self._config = config
        self._metrics = metrics
        self._budget_keys = frozenset(config.budgets)

    def process(self, actions: Iterable[Action]) -> list[Action]:
        """Final decisions for a batch of actions from the player operator.

        Gamification records (leaderboard scores, tournament results) pass as they are:
        they are logged, not delivered, so there is nothing to dedup, cap or budget, and
        with Redis stores each would otherwise cost two round trips to the ledger.
        """
        return [
            action
            if action.kind is ActionKind.GAMIFICATION
            else until_available("guards", partial(self._one, action))
            for action in actions
        ]

    def decide(self, action: Action) -> Action:
        """The decision for one action (raises StoreUnavailable while Redis is away)."""
        return self._one(action)

    def _one(self, action: Action) -> Action:
        if action.decision == DEFERRED:
            return action  # not final: it comes back when the quiet hours end
        ledger = self._stores.ledger
        if action.decision != SENT:
            prior = ledger.claim(action.action_id, action.decision)
            return action if prior is None else action.model_copy(update={"decision": prior})
        prior = ledger.decision_of(action.action_id)
        if prior is None:
            # Caps and budgets take the action id as a token: deciding again after a
            # crash, before the claim below, does not charge them twice.
            decision = self._decide(action)
            if decision == Decision.CAPPED.value and action.defer_when_capped:
                # The campaign asked to wait: not final, so not claimed (see DeferredCaps).
                return action.model_copy(update={"decision": DEFERRED})
            prior = ledger.claim(action.action_id, decision) or decision
        return action if prior == action.decision else action.model_copy(update={"decision": prior})

    def _decide(self, action: Action) -> str:
        # Suppression is decided in the player operator from events, in event-time order
        # (deterministic), and checked against the authoritative list at send time
        # (DeliveryStage); reading the list here would make a replay's decisions depend
        # on how its events were batched.
        stores = self._stores
        pid = action.player_id
        now = action.decided_at.timestamp()
        if not is_earned(action.campaign_id) and stores.caps.applicable(
            action.channel, action.kind.value
        ):
            reserve = 1 if action.priority < self._config.reserve_last_unit_below_priority else 0
            full = stores.caps.try_acquire(
                pid, action.channel, action.kind.value, now, token=action.action_id, reserve=reserve
            )
            if full is not None:
                return Decision.CAPPED.value
        if action.kind is ActionKind.REWARD:
            keys = [
                key
                for key in (
                    f"campaign:{action.campaign_id}",
                    f"reward:{action.payload.get('reward_type', '')}",
                )
                if key in self._budget_keys
            ]
            if keys:
                exhausted = stores.budgets.try_spend_all(
                    keys, action.cost, 1, token=action.action_id
                )
                self._report_budgets(keys)
                if exhausted is not None:
                    log.warning(
                        "campaign %s paused: budget %s exhausted", action.campaign_id, exhausted
                    )
                    return Decision.BUDGET_EXHAUSTED.value
        return SENT

    def _report_budgets(self, keys: Iterable[str]) -> None:
        for key in keys:
            money, count = self._stores.budgets.remaining(key)
            if money is not None:
                self._metrics.budget_remaining.labels(key, "money").set(money / MONEY_SCALE)
            if count is not None:
                self._metrics.budget_remaining.labels(key, "count").set(count)
            exhausted = (money is not None and money <= 0) or (count is not None and count <= 0)
            self._metrics.campaign_paused.labels(key).set(1 if exhausted else 0)


class DeferredCaps:
    """Actions a frequency cap held back whose campaign asked them to wait.

    Each waits ``defer_when_capped`` seconds of event time, then goes through the guards
    again, up to ``MAX_CAP_RETRIES`` times, after which it is recorded as ``capped``. The
    waiting actions are the state of the per-shard guard step (snapshotted with it), so
    a restart does not lose them.
    """

    MAX_CAP_RETRIES = 3

    def __init__(self, stage: GuardStage, waiting: list[tuple[int, int, Action]] | None) -> None:
        self._stage = stage
        self.waiting: list[tuple[int, int, Action]] = waiting or []  # (due, tries, action)

    def decide(self, action: Action) -> list[Action]:
        """The guards' decision; a deferred one is also kept to be tried again."""
        decided = until_available("guards", partial(self._stage.decide, action))
        if decided.decision == DEFERRED and action.defer_when_capped and action.decision == SENT:
            self._wait(decided, 1)
        return [decided]

    def _wait(self, action: Action, tries: int) -> None:
        due = int(action.decided_at.timestamp()) + action.defer_when_capped
        heapq.heappush(self.waiting, (due, tries, action))

    def release(self, watermark: int) -> list[Action]:
        """Try again every action whose wait ended by ``watermark``."""
        out: list[Action] = []
        while self.waiting and self.waiting[0][0] <= watermark:
            due, tries, action = heapq.heappop(self.waiting)
            retry = action.model_copy(
                update={"decision": SENT, "decided_at": epoch_to_datetime(due)}
            )
            decided = until_available("guards", partial(self._stage.decide, retry))
            if decided.decision == DEFERRED:
                if tries < self.MAX_CAP_RETRIES:
                    self._wait(decided, tries + 1)
                else:
                    final = retry.model_copy(update={"defer_when_capped": 0})
                    decided = until_available("guards", partial(self._stage.decide, final))
            out.append(decided)
        return out


class DeliveryStage:
    """Send each ``sent`` action through its channel's resilient sender.

    A provider call takes milliseconds to seconds. With ``concurrency`` above 1 the sends
    of one batch go out in parallel, that many at a time, one lane per player: a
    player's messages and rewards keep the order they were decided in, and the batch
    comes out in its input order once every send has an outcome. Senders are
    thread-safe (the SMTP sink holds one conversation at a time). The price: a crash
    can catch up to ``concurrency`` sends in flight instead of one, and each is sent
    again on restart (the wallet and webhooks get the same idempotency key; an e-mail
    or SMS provider may deliver it twice). Hence the default of 1.

    With a ``contacts`` directory, an email, SMS or push action whose payload names no
    recipient is sent to the player's contact from the directory; the action that comes
    out never carries it, and a player without that contact gets ``suppressed:no_contact``.
    An explicit recipient in the payload wins.
    """

    def __init__(
        self,
        senders: Mapping[str, ResilientSender],
        stores: Stores,
        metrics: Metrics,
        *,
        concurrency: int = 1,
        contacts: ContactDirectory | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"delivery concurrency must be at least 1, not {concurrency}")
        self._senders = senders
        self._stores = stores
        self._metrics = metrics
        self._contacts = contacts
        self._pool = (
            ThreadPoolExecutor(concurrency, thread_name_prefix="pitboss-deliver")
            if concurrency > 1 and senders
            else None
        )

    def process(self, actions: Iterable[Action]) -> list[Action]:
        """Deliver what is to be sent; every action comes out with its outcome."""
        batch = list(actions)
        lanes: dict[str, list[int]] = {}
        senders = self._senders
        for index, action in enumerate(batch):
            if action.decision == SENT and action.channel in senders:
                lanes.setdefault(action.player_id, []).append(index)
        if self._pool is None or len(lanes) < 2:
            return [self._one(action) for action in batch]

        def lane(indexes: list[int]) -> list[tuple[int, Action]]:
            return [(i, self._one(batch[i])) for i in indexes]

        out = list(batch)
        for future in [self._pool.submit(lane, indexes) for indexes in lanes.values()]:
            for index, outcome in future.result():
                out[index] = outcome
        return out

    def close(self) -> None:
        """Stop the sending threads (they hold nothing between batches)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def _suppressed(self, action: Action) -> str | None:
        """The authoritative list, now: self-exclusion and other suppressions, opt-outs."""
        suppression = self._stores.suppression
        reason = suppression.is_player_suppressed(
            action.player_id, int(action.decided_at.timestamp())
        )
        if (
            reason is None
            and action.channel in MARKETING
            and suppression.has_opted_out(action.player_id, action.channel)
        ):
            reason = "opted_out"
        return reason

    def _one(self, action: Action) -> Action:
        sender = self._senders.get(action.channel)
        if action.decision != SENT or sender is None:
            return action
        reason = until_available("delivery", partial(self._suppressed, action))
        if reason is not None:
            # Stopped in flight: recorded as such (the ledger already said "sent").
            return action.model_copy(update={"decision": suppressed(reason)})
        try:
            outgoing = self._addressed(action)
        except StoreError as exc:  # not an outage (that holds above): a bad contact record
            log.error("contact lookup for action %s failed: %s", action.action_id, exc)
            return action.model_copy(
                update={"decision": Decision.FAILED.value, "detail": f"contact lookup: {exc}"}
            )
        if outgoing is None:
            return action.model_copy(update={"decision": NO_CONTACT})
        started = time.time()
        delivery = sender.deliver(outgoing)
        while delivery.status is DeliveryStatus.FAILED and "unavailable" in (delivery.reason or ""):
            # The shared store (delivery ledger, Redis inbox) is down: hold, then retry;
            # failing the action would lose it.
            log.warning("delivery of %s held: store unavailable", action.action_id)
            until_available("delivery", partial(self._suppressed, action))
            time.sleep(0.2)
            delivery = sender.deliver(outgoing)
        provider = delivery.provider
        self._metrics.deliveries.labels(provider, delivery.status.value).inc()
        self._metrics.delivery_latency.observe(max(0.0, time.time() - started))
        if delivery.status is DeliveryStatus.DELIVERED:
            return action.model_copy(update={"delivered_at": delivery.delivered_at})
        if delivery.status is DeliveryStatus.FAILED:
            return action.model_copy(
                update={"decision": Decision.FAILED.value, "detail": delivery.reason or ""}
            )
        return action  # a duplicate: delivered before, nothing sent now

    def _addressed(self, action: Action) -> Action | None:
        """What to send: ``action``, or a copy addressed from the contact directory.

        None when the directory has no contact for the channel. Holds while the
        directory is unavailable; raises StoreError for any other directory error.
        """
        keys = RECIPIENT_KEYS.get(action.channel)
        if self._contacts is None or keys is None or any(action.payload.get(k) for k in keys):
            return action
        contacts = until_available("contacts", partial(self._contacts.lookup, action.player_id))
        recipient = None if contacts is None else contacts.for_channel(action.channel)
        if not recipient:
            log.debug(
                "action %s: no %s contact for the player",
                action.action_id,
                CHANNEL_FIELD[action.channel],
            )
            return None
        return action.model_copy(update={"payload": {**action.payload, keys[0]: recipient}})


def suppression_updates(decoded: DecodedBatch) -> list[tuple[str, dict[str, Any]]]:
    """What the authoritative suppression list must learn from a batch of events."""
    updates: list[tuple[str, dict[str, Any]]] = []
    for _, event in decoded.events:
        etype = event.type
        if etype == "self_exclusion":
            until = event.until  # type: ignore[union-attr]
            updates.append(
                (
                    "suppress",
                    {
                        "player_id": event.player_id,
                        "reason": "self_excluded",
                        "until": None if until is None else int(until.timestamp()),
                    },
                )
            )
        elif etype == "unsubscribed":
            updates.append(
                ("opt_out", {"player_id": event.player_id, "channel": event.channel.value})  # type: ignore[union-attr]
            )
        elif etype == "consent_change":
            change = "opt_in" if event.granted else "opt_out"  # type: ignore[union-attr]
            updates.append(
                (
                    change,
                    {
                        "player_id": event.player_id,
                        "channel": event.channel.value,  # type: ignore[union-attr]
                        "product": event.product,  # type: ignore[union-attr]
                    },
                )
            )
    return updates


def apply_suppression_updates(
    stores: Stores, updates: Iterable[tuple[str, dict[str, Any]]]
) -> None:
    """Write suppression-list updates (waiting while the store is unavailable)."""
    suppression = stores.suppression
    for kind, args in updates:
        call: Callable[[], None]
        if kind == "suppress":
            call = partial(
                suppression.suppress_player, args["player_id"], args["reason"], args["until"]
            )
        elif kind == "opt_out":
            call = partial(
                suppression.opt_out, args["player_id"], args["channel"], args.get("product")
            )
        else:
            call = partial(
                suppression.opt_in, args["player_id"], args["channel"], args.get("product")
            )
        until_available("suppression", call)


__all__ = [
    "DeferredCaps",
    "DeliveryStage",
    "GuardStage",
    "apply_suppression_updates",
    "cap_rules",
    "configure_budgets",
    "suppression_updates",
]
