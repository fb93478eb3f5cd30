"""Rewards and their lifecycle, replayed: free spins, bonus credit, deposit match,
cashback, coupons, wagering (progress, completion, forfeit, expiry)."""

from __future__ import annotations

from pathlib import Path

from operators.campaigns import campaign_rows
from operators.campaigns.rewards import personal_code
from operators.engine import PlayerShard
from tests.support.campaign_config import of, replay, rules_for, statuses, summary
from tests.support.scenario import T0, Script, day, epoch

HOUR = 3_600


def test_bonus_credit_is_paid_in_the_players_currency(tmp_path: Path) -> None:
    rules = rules_for(
        tmp_path,
        """
        campaigns:
          - id: hello_bonus
            trigger: {on: event, events: registration}
            reward: {type: bonus_credit, amount: {SEK: 100, default: 10}}
        """,
    )
    s = Script().register("p1", currency="SEK", country="SE").register("p2")
    paid = {a.player_id: a for a in of(replay(s, rules), "hello_bonus", "wallet")}
    assert (paid["p1"].payload["amount"], paid["p1"].cost, paid["p1"].currency) == (
        "100.00",
        1_000_000,
        "SEK",
    )
    assert (paid["p2"].payload["amount"], paid["p2"].cost, paid["p2"].currency) == (
        "10.00",
        100_000,
        "EUR",
    )


MATCH = """
campaigns:
  - id: match
    trigger: {on: event, events: login}
    limits: {once: true}
    message: {template: note, channels: [email]}
    reward:
      type: deposit_match
      percent: 100
      max_amount: 50
      min_deposit: 20
      valid_for: 7d
"""


def test_a_deposit_match_pays_on_the_next_qualifying_deposit_only(tmp_path: Path) -> None:
    rules = rules_for(tmp_path, MATCH)
    s = Script().register("p1").login("p1").at(days=1).deposit("p1", "19.99")
    s.at(days=2).deposit("p1", "30").at(days=3).deposit("p1", "80")
    actions = replay(s, rules)
    assert summary(actions, "match") == [
        ("email", "note", day(0)),
        ("lifecycle", "notified", day(0)),
        ("wallet", "deposit_match", day(2)),
        ("lifecycle", "completed", day(2)),
    ]
    paid = of(actions, "match", "wallet")[0]
    assert (paid.payload["amount"], paid.payload["deposit"], paid.cost) == (
        "30.00",
        "30.00",
        300_000,
    )
    assert paid.event_id == "e4"
    assert of(actions, "match", "lifecycle")[1].payload["transitions"] == [
        "condition_checked",
        "rewarded",
        "completed",
    ]


def test_a_deposit_match_is_capped_at_its_maximum(tmp_path: Path) -> None:
    rules = rules_for(tmp_path, MATCH)
    s = Script().register("p1").login("p1").at(days=1).deposit("p1", "80")
    (paid,) = of(replay(s, rules), "match", "wallet")
    assert (paid.payload["amount"], paid.cost) == ("50.00", 500_000)


def test_a_deposit_match_expires_at_the_end_of_its_window(tmp_path: Path) -> None:
    rules = rules_for(tmp_path, MATCH)
    s = Script().register("p1").login("p1").at(days=7).deposit("p1", "30")  # exactly at expiry
    actions = replay(s, rules)
    assert summary(actions, "match")[1:] == [
        ("lifecycle", "notified", day(0)),
        ("lifecycle", "expired", day(7)),
    ]
    assert of(actions, "match", "lifecycle")[-1].payload["reason"] == "offer_expired"


CASHBACK = """
campaigns:
  - id: streak_cashback
    trigger: {on: event, events: win, when: state.loss_streak == 3}
    reward: {type: cashback, percent: 10, window: 24h, min_amount: 2, max_amount: 5}
"""


def test_cashback_is_a_percentage_of_the_net_loss_in_its_window(tmp_path: Path) -> None:
    rules = rules_for(tmp_path, CASHBACK)
    s = Script().register("p1").deposit("p1", "100")
    s.after(minutes=1).round("p1", "10.00", "15.00")  # won 5 first
    for _ in range(3):
        s.after(minutes=1).round("p1", "10.00", "0")  # net loss: 30 - 5 = 25
    (paid,) = of(replay(s, rules), "streak_cashback", "wallet")
    assert (paid.payload["amount"], paid.payload["net_loss"], paid.cost) == (
        "2.50",
        "25.00",
        25_000,
    )


def test_cashback_below_its_minimum_is_not_paid_and_above_its_maximum_is_capped(
    tmp_path: Path,
) -> None:
    rules = rules_for(tmp_path, CASHBACK)
    s = Script().register("small").register("big").deposit("small").deposit("big", "500")
    for _ in range(3):
        s.after(minutes=1).round("small", "5.00", "0")  # 10% of 15 = 1.50 < 2
        s.after(minutes=1).round("big", "100.00", "0")  # 10% of 300 = 30 > 5
    actions = of(replay(s, rules), "streak_cashback")
    assert [(a.player_id, a.channel) for a in actions] == [("big", "wallet"), ("big", "lifecycle")]
    assert actions[0].payload["amount"] == "5.00"


WAGERING = """
campaigns:
  - id: bonus
    trigger: {on: event, events: registration}
    reward:
      type: bonus_credit
      amount: 10
      wagering:
        multiplier: 5
        contributions: {live: 0.5, sports: 0}
        max_bet: 10
        expires_in: 7d
"""


def test_wagering_counts_each_bet_by_its_category_weight_until_complete(tmp_path: Path) -> None:
    rules = rules_for(tmp_path, WAGERING)
    s = Script().register("p1").deposit("p1", "100")
    s.after(minutes=1).round("p1", "10.00", "0")  # 10
    s.after(minutes=1).round("p1", "10.00", "0", category="live")  # +5
    s.after(minutes=1).round("p1", "10.00", "0", category="sports")  # +0
    s.after(minutes=1).round("p1", "10.00", "0")  # 25
    shard = PlayerShard(rules=[rules])
    shard.process(s.events())
    row = campaign_rows(shard.players["p1"])
    assert (str(row["wagering_required"]), str(row["wagering_progress"])) == ("50.0000", "25.0000")
    assert row["campaigns_live"] == "bonus=wagering" and row["last_category"] == "slots"
    for _ in range(3):
        s.after(minutes=1).round("p1", "10.00", "0")  # 55: done on the third
    actions = replay(s, rules)
    last_bet = [r for r in s.records if r["type"] == "bet"][-1]
    assert statuses(actions, "bonus") == [("bonus", "wagering"), ("bonus", "completed")]
    done = of(actions, "bonus", "lifecycle")[-1]
    assert done.event_id == last_bet["event_id"]
    assert (done.payload["required"], done.payload["progress"]) == ("50.00", "55.00")


def test_a_bet_above_the_maximum_forfeits_the_bonus(tmp_path: Path) -> None:
    rules = rules_for(tmp_path, WAGERING)
    s = Script().register("p1").deposit("p1", "100").after(minutes=1).round("p1", "10.01", "0")
    actions = replay(s, rules)
    assert statuses(actions, "bonus")[-1] == ("bonus", "cancelled")
    payload = of(actions, "bonus", "lifecycle")[-1].payload
    assert (payload["reason"], payload["stake"], payload["max_bet"]) == (
        "max_bet_exceeded",
        "10.01",
        "10.00",
    )


def test_a_withdrawal_forfeits_a_bonus_still_being_wagered(tmp_path: Path) -> None:
    rules = rules_for(tmp_path, WAGERING)
    s = Script().register("p1").deposit("p1", "100").after(hours=1)
    s.add("withdrawal", "p1", amount="50", currency="EUR")
    actions = replay(s, rules)
    assert of(actions, "bonus", "lifecycle")[-1].payload["reason"] == "withdrawal"


def test_wagering_not_met_in_time_expires_exactly_at_the_deadline(tmp_path: Path) -> None:
    rules = rules_for(tmp_path, WAGERING)
    s = Script().register("p1").deposit("p1", "100").after(minutes=1).round("p1", "5.00", "0")
    actions = replay(s, rules, final=day(7))
    expired = of(actions, "bonus", "lifecycle")[-1]
    assert (expired.payload["status"], expired.payload["reason"]) == ("expired", "wagering_expired")
    assert epoch(expired.decided_at) == day(7) and expired.payload["progress"] == "5.00"


def test_self_exclusion_cancels_open_bonuses_and_leaves_journeys(tmp_path: Path) -> None:
    rules = rules_for(tmp_path, WAGERING)
    s = Script().register("p1").after(hours=1).add("self_exclusion", "p1", until=None)
    actions = replay(s, rules)
    cancelled = of(actions, "bonus", "lifecycle")[-1]
    assert (cancelled.payload["status"], cancelled.payload["reason"]) == (
        "cancelled",
        "self_exclusion",
    )
    assert cancelled.decision == "suppressed:self_excluded"  # recorded, not delivered


def test_an_account_cooling_off_ends_open_bonuses_like_a_self_exclusion(tmp_path: Path) -> None:
    rules = rules_for(tmp_path, WAGERING)
    s = Script().register("p1").after(hours=1)
    s.add("profile_update", "p1", attributes={"rg_status": "cooling_off"})
    cancelled = of(replay(s, rules), "bonus", "lifecycle")[-1]
    assert (cancelled.payload["status"], cancelled.payload["reason"]) == (
        "cancelled",
        "cooling_off",
    )


SHARED_CODE = """
campaigns:
  - id: weekend
    segment: depositors
    limits: {once_per: 6d}
    reward:
      type: coupon
      code: WEEKEND25
      max_uses: 2
      grant: {type: bonus_credit, amount: 25}
"""


def _redeem(s: Script, pid: str, code: str) -> Script:
    return s.add("bonus_redeemed", pid, code=code)


def test_a_shared_code_pays_a_depositor_and_is_limited_per_player(tmp_path: Path) -> None:
    rules = rules_for(tmp_path, SHARED_CODE)
    s = Script().register("p1").register("p2").deposit("p1")
    _redeem(s.at(hours=1), "p1", "WEEKEND25")
    _redeem(s.at(days=2), "p1", "WEEKEND25")  # within 6 days
    _redeem(s.at(days=3), "p2", "WEEKEND25")  # not a depositor
    _redeem(s.at(days=3), "p2", "SOMEONE_ELSES")  # not ours: ignored
    _redeem(s.at(days=7), "p1", "WEEKEND25")
    _redeem(s.at(days=14), "p1", "WEEKEND25")  # third use: max_uses is 2
    actions = of(replay(s, rules), "weekend", "lifecycle")
    assert [(a.player_id, a.payload["status"], a.payload.get("reason")) for a in actions] == [
        ("p1", "completed", None),
        ("p1", "rejected", "too_soon"),
        ("p2", "rejected", "not_in_segment"),
        ("p1", "completed", None),
        ("p1", "rejected", "used_up"),
    ]
    paid = of(replay(s, rules), "weekend", "wallet")
    assert [(a.payload["code"], a.payload["amount"], a.cost) for a in paid] == [
        ("WEEKEND25", "25.00", 250_000)
    ] * 2


PERSONAL_CODE = """
campaigns:
  - id: reload
    trigger: {on: event, events: registration}
    message: {template: code, channels: [in_app]}
    reward:
      type: coupon
      code: RELOAD
      personal: true
      valid_for: 3d
      grant: {type: free_spins, game: starburst, count: 10, value_per_spin: 0.2}
"""


def test_a_personal_code_is_issued_then_redeemed_by_its_owner_only(tmp_path: Path) -> None:
    rules = rules_for(tmp_path, PERSONAL_CODE)
    mine = personal_code("RELOAD", "reload", "p1")
    s = Script().register("p1").register("p2")
    _redeem(s.at(hours=1), "p2", mine)
    _redeem(s.at(hours=2), "p1", mine)
    _redeem(s.at(hours=3), "p1", mine)  # used once already
    actions = replay(s, rules)
    issued = [a for a in of(actions, "reload", "lifecycle") if a.payload["status"] == "notified"]
    assert [(a.player_id, a.payload["code"]) for a in issued] == [
        ("p1", mine),
        ("p2", personal_code("RELOAD", "reload", "p2")),
    ]
    later = [a for a in of(actions, "reload", "lifecycle") if a.payload["status"] != "notified"]
    assert [(a.player_id, a.payload["status"], a.payload.get("reason")) for a in later] == [
        ("p2", "rejected", "not_issued_to_player"),
        ("p1", "completed", None),
        ("p1", "rejected", "no_open_offer"),
    ]
    (paid,) = of(actions, "reload", "wallet")
    assert (paid.player_id, paid.payload["count"], paid.cost) == ("p1", 10, 20_000)
    message = of(actions, "reload", "in_app")[0]
    assert message.payload["rendered"] == {"title": "Your code", "body": f"{mine} until 2026-03-05"}


def test_a_personal_code_expires_after_its_validity(tmp_path: Path) -> None:
    rules = rules_for(tmp_path, PERSONAL_CODE)
    s = Script().register("p1")
    _redeem(s.at(days=3), "p1", personal_code("RELOAD", "reload", "p1"))
    actions = of(replay(s, rules), "reload", "lifecycle")
    assert [(a.payload["status"], epoch(a.decided_at)) for a in actions] == [
        ("notified", epoch(T0)),
        ("expired", day(3)),
        ("rejected", day(3)),
    ]
