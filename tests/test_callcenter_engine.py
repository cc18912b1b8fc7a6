"""The call engine, case by case: offers, misses, wrap-up, tiers, overflow, announcements,
join/leave rules, the ring strategies' timing, priorities and refused inputs."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

import pytest

from trio_voip.callcenter import (
    AUTO_PAUSE_NO_ANSWER,
    Action,
    Agent,
    AgentPauseChanged,
    AgentState,
    AgentStateChanged,
    AnnounceAndHangup,
    BridgeCallerToAgent,
    CallCenter,
    Caller,
    CallerState,
    CallerStateChanged,
    CancelOffer,
    CancelReason,
    EmptyRule,
    LeaveReason,
    OfferCall,
    OfferFailure,
    Overflow,
    PlayAnnouncement,
    Queue,
    QueueMetricsChanged,
    Reject,
    Strategy,
    ToQueue,
    ToRecording,
    WrapUpEnded,
)
from trio_voip.callcenter.model import check_agent_transition, check_caller_transition
from trio_voip.errors import CallCenterError

T = TypeVar("T")


def only(kind: type[T], actions: Iterable[Action]) -> list[T]:
    return [a for a in actions if isinstance(a, kind)]


def offers(actions: Iterable[Action]) -> list[tuple[str, str]]:
    return [(o.caller_id, o.agent_id) for o in only(OfferCall, actions)]


def agent(agent_id: str, queues: Iterable[str] = ("q",), **kwargs: object) -> Agent:
    name, user = agent_id.upper(), f"sip-{agent_id}"
    return Agent(agent_id, name, user, queues=queues, **kwargs)  # type: ignore[arg-type]


def center(
    queue: Queue, *agents: Agent, login: bool = True, extra: Iterable[Queue] = ()
) -> CallCenter:
    engine = CallCenter(seed=0)
    engine.add_queue(queue)
    for other in extra:
        engine.add_queue(other)
    for a in agents:
        engine.add_agent(a)
        if login:
            engine.agent_login(a.agent_id, now=0.0)
    return engine


def run_until(engine: CallCenter, target: float) -> list[Action]:
    """What a driver does: fire every deadline up to ``target``, in order."""
    out: list[Action] = []
    deadline = engine.next_deadline()
    while deadline is not None and deadline <= target:
        out += engine.on_timer(deadline)
        deadline = engine.next_deadline()
    return out


def test_call_flow_with_wrap_up_and_every_report() -> None:
    engine = center(Queue("q", wrap_up_time=5.0, ring_timeout=20.0), agent("a1"))
    out = engine.caller_arrives(Caller("c1", "s1"), "q", now=1.0)
    assert out[:2] == [
        CallerStateChanged("c1", "q", None, CallerState.WAITING, 1.0, 1.0),
        CallerStateChanged("c1", "q", CallerState.WAITING, CallerState.RINGING, 1.0, 1.0),
    ]
    assert out[2] == OfferCall("offer-1", "c1", "s1", "q", "a1", "sip-a1", 20.0, 1.0)
    assert out[3] == AgentStateChanged("a1", AgentState.AVAILABLE, AgentState.RINGING, 1.0)
    assert isinstance(out[4], QueueMetricsChanged) and out[4].stats.waiting == 1
    assert engine.next_deadline() == 21.0  # the ring timeout

    out = engine.offer_answered("offer-1", now=4.0)
    assert only(BridgeCallerToAgent, out) == [BridgeCallerToAgent("offer-1", "c1", "s1", "q", "a1")]
    assert engine.agent_state("a1") is AgentState.ON_CALL
    assert engine.caller_state("c1") is CallerState.BRIDGED
    assert engine.next_deadline() is None

    out = engine.call_ended("c1", now=64.0)
    (done,) = only(CallerStateChanged, out)
    assert (done.new, done.answered_at, done.wrap_up, done.agent_id) == (
        CallerState.COMPLETED, 4.0, 5.0, "a1",
    )
    assert engine.agent_state("a1") is AgentState.WRAP_UP
    assert engine.caller_state("c1") is None
    # a caller arriving during wrap-up waits for its end
    assert offers(engine.caller_arrives(Caller("c2", "s2"), "q", now=66.0)) == []
    assert engine.next_deadline() == 69.0
    assert run_until(engine, 68.9) == []
    out = run_until(engine, 69.0)
    assert only(AgentStateChanged, out)[0] == AgentStateChanged(
        "a1", AgentState.WRAP_UP, AgentState.AVAILABLE, 69.0
    )
    assert offers(out) == [("c2", "a1")]

    stats = engine.queue_stats("q", 69.0)
    assert (stats.offered, stats.answered, stats.waiting) == (2, 1, 1)
    assert stats.average_speed_of_answer == 3.0
    assert stats.average_handle_time == 65.0  # 60 s talk + 5 s wrap-up
    assert stats.longest_current_wait == 3.0
    agent_stats = engine.agent_stats("a1", 69.0)
    assert agent_stats.busy_time == 65.0 and agent_stats.logged_in_time == 69.0


def test_ring_timeout_counts_a_miss_then_auto_pause() -> None:
    queue = Queue("q", ring_timeout=10.0, retry_delay=4.0, max_no_answer=2)
    engine = center(queue, agent("a1"))
    engine.caller_arrives(Caller("c1", "s1"), "q", now=0.0)
    out = run_until(engine, 10.0)
    assert only(CancelOffer, out) == [CancelOffer("offer-1", "c1", "a1", CancelReason.RING_TIMEOUT)]
    assert engine.caller_state("c1") is CallerState.WAITING
    assert engine.agent_status("a1").no_answer_count == 1
    # the retry delay: a1 is not offered again before 14
    assert offers(out) == []
    assert engine.next_deadline() == 14.0
    out = run_until(engine, 14.0)
    assert offers(out) == [("c1", "a1")]
    out = engine.offer_failed("offer-2", OfferFailure.BUSY, now=15.0)
    changes = only(AgentStateChanged, out)
    assert changes == [
        AgentStateChanged("a1", AgentState.RINGING, AgentState.PAUSED, 15.0, AUTO_PAUSE_NO_ANSWER)
    ]
    assert only(AgentPauseChanged, out) == [
        AgentPauseChanged("a1", True, AUTO_PAUSE_NO_ANSWER, 15.0)
    ]
    status = engine.agent_status("a1")
    assert status.paused and status.pause_reason == AUTO_PAUSE_NO_ANSWER
    assert run_until(engine, 100.0) == []  # nobody to offer to
    # resuming clears the count; an answer does too
    out = engine.agent_resume("a1", now=100.0)
    assert offers(out) == [("c1", "a1")]
    assert engine.agent_status("a1").no_answer_count == 0


def test_a_missed_caller_keeps_its_position() -> None:
    queue = Queue("q", ring_timeout=5.0, retry_delay=30.0, strategy=Strategy.LINEAR)
    engine = center(queue, agent("a1", order=0), agent("a2", order=1), login=False)
    for n in (1, 2, 3):
        engine.caller_arrives(Caller(f"c{n}", f"s{n}"), "q", now=float(n))
    engine.agent_login("a1", now=4.0)
    assert [w.caller.caller_id for w in engine.waiting("q")] == ["c1", "c2", "c3"]
    out = engine.offer_failed("offer-1", OfferFailure.REJECTED, now=5.0)
    assert [(w.caller.caller_id, w.state, w.position) for w in engine.waiting("q")] == [
        ("c1", CallerState.WAITING, 1),
        ("c2", CallerState.WAITING, 2),
        ("c3", CallerState.WAITING, 3),
    ]
    # a2 logs in: the head of the queue (c1) gets it, not a later caller
    out = engine.agent_login("a2", now=6.0)
    assert offers(out) == [("c1", "a2")]


def test_without_a_retry_delay_a_missed_caller_moves_on_to_the_next_agent() -> None:
    """Linear, no retry delay: a1 misses c1, so c1 rings a2 (not a1 again); when a2 misses
    too, everyone has missed it and the strategy's order starts over (a1)."""
    queue = Queue("q", ring_timeout=5.0, retry_delay=0.0, strategy=Strategy.LINEAR)
    engine = center(queue, agent("a1", order=0), agent("a2", order=1))
    assert offers(engine.caller_arrives(Caller("c1", "s1"), "q", now=0.0)) == [("c1", "a1")]
    assert offers(run_until(engine, 5.0)) == [("c1", "a2")]
    assert offers(engine.offer_failed("offer-2", OfferFailure.BUSY, now=6.0)) == [("c1", "a1")]
    # a new caller has missed nobody: the strategy's order as usual
    engine.offer_answered("offer-3", now=7.0)
    assert offers(engine.caller_arrives(Caller("c2", "s2"), "q", now=8.0)) == [("c2", "a2")]


def test_tier_escalation_timing() -> None:
    queue = Queue("q", tier_wait=10.0)
    engine = center(queue, agent("t0", tier=0), agent("t1", tier=1), agent("t2", tier=2))
    engine.agent_pause("t0", "lunch", now=0.0)
    assert offers(engine.caller_arrives(Caller("c1", "s1"), "q", now=1.0)) == []
    assert engine.next_deadline() == 11.0
    assert offers(run_until(engine, 10.99)) == []
    assert offers(run_until(engine, 11.0)) == [("c1", "t1")]
    engine.offer_failed("offer-1", OfferFailure.NO_ANSWER, now=12.0)
    # t1 now in its retry delay (5 s): tier 2 at 21 comes first
    out = run_until(engine, 17.0)
    assert offers(out) == [("c1", "t1")]
    # once both tiers are reached, the lower tier is preferred
    engine.offer_failed("offer-2", OfferFailure.NO_ANSWER, now=18.0)
    assert offers(run_until(engine, 21.0)) == [("c1", "t2")]


def test_lower_tier_preferred_over_higher_when_both_reached() -> None:
    # nobody qualifies until the skill requirement is dropped, when both tiers are reached
    queue = Queue("q", tier_wait=5.0, required_skills={"x": 1})
    engine = center(queue, agent("t1", tier=1, order=0), agent("t0", tier=0, order=1))
    engine.caller_arrives(Caller("c1", "s1"), "q", now=0.0)
    assert offers(run_until(engine, 6.0)) == []
    assert offers(engine.update_queue(Queue("q", tier_wait=5.0), now=6.0)) == [("c1", "t0")]


def test_overflow_at_max_wait_to_another_queue_cancels_the_ring() -> None:
    main = Queue("q", max_wait=30.0, overflow=ToQueue("backup"), ring_timeout=60.0)
    backup = Queue("backup", max_wait=20.0, overflow=ToRecording("sales-vm"))
    engine = center(main, agent("a1"), extra=[backup])
    engine.caller_arrives(Caller("c1", "s1"), "q", now=5.0)
    assert engine.caller_state("c1") is CallerState.RINGING
    assert engine.next_deadline() == 35.0
    out = run_until(engine, 35.0)
    assert only(CancelOffer, out) == [CancelOffer("offer-1", "c1", "a1", CancelReason.CALLER_GONE)]
    assert only(Overflow, out) == [
        Overflow("c1", "s1", "q", ToQueue("backup"), LeaveReason.MAX_WAIT)
    ]
    assert [w.caller.caller_id for w in engine.waiting("backup")] == ["c1"]
    assert engine.agent_status("a1").no_answer_count == 0  # not the agent's fault
    out = run_until(engine, 55.0)
    assert only(Overflow, out) == [
        Overflow("c1", "s1", "backup", ToRecording("sales-vm"), LeaveReason.MAX_WAIT)
    ]
    assert engine.caller_state("c1") is None
    assert engine.queue_stats("q", 55.0).overflowed == 1
    assert engine.queue_stats("backup", 55.0).overflowed == 1


def test_announcements_give_position_and_estimate() -> None:
    queue = Queue("q", announce_every=30.0, estimate_window=2)
    engine = center(queue, agent("a1"), login=False)
    # history: answered waits of 40 s and 80 s -> average 60
    for n, wait in ((1, 40.0), (2, 80.0)):
        engine.caller_arrives(Caller(f"h{n}", f"hs{n}"), "q", now=1000.0 * n)
        engine.agent_login("a1", now=1000.0 * n + wait)
        (offer,) = [o for o in engine.waiting("q")[0].offers]
        engine.offer_answered(offer, now=1000.0 * n + wait)
        engine.call_ended(f"h{n}", now=1000.0 * n + wait + 1)
        engine.agent_logout("a1", now=1000.0 * n + wait + 1)
    run_until(engine, 5000.0)
    engine.caller_arrives(Caller("c1", "s1"), "q", now=5000.0)
    engine.caller_arrives(Caller("vip", "s2", priority=5), "q", now=5010.0)
    out = run_until(engine, 5030.0)
    assert only(PlayAnnouncement, out) == [PlayAnnouncement("c1", "s1", "q", 2, 30.0)]
    out = run_until(engine, 5040.0)
    assert only(PlayAnnouncement, out) == [PlayAnnouncement("vip", "s2", "q", 1, 30.0)]
    out = run_until(engine, 5060.0)
    # c1 has waited the average already: the estimate bottoms out at 0
    assert only(PlayAnnouncement, out) == [PlayAnnouncement("c1", "s1", "q", 2, 0.0)]
    engine.caller_abandons("vip", now=5065.0)
    out = run_until(engine, 5090.0)
    assert only(PlayAnnouncement, out) == [PlayAnnouncement("c1", "s1", "q", 1, 0.0)]


def test_no_estimate_without_history() -> None:
    engine = center(Queue("q", announce_every=10.0), agent("a1"), login=False)
    engine.caller_arrives(Caller("c1", "s1"), "q", now=0.0)
    assert only(PlayAnnouncement, run_until(engine, 10.0)) == [
        PlayAnnouncement("c1", "s1", "q", 1, None)
    ]


def test_max_length_rejects_with_486() -> None:
    engine = center(Queue("q", max_length=1), agent("a1"), login=False)
    engine.caller_arrives(Caller("c1", "s1"), "q", now=0.0)
    out = engine.caller_arrives(Caller("c2", "s2"), "q", now=1.0)
    assert only(Reject, out) == [Reject("c2", "s2", "q", 486, LeaveReason.FULL)]
    assert engine.caller_state("c2") is None
    stats = engine.queue_stats("q", 1.0)
    assert (stats.offered, stats.rejected, stats.waiting) == (1, 1, 1)


@pytest.mark.parametrize(
    ("rule", "paused_refused", "nobody_refused"),
    [
        (EmptyRule.IGNORE, False, False),
        (EmptyRule.RELAXED, False, True),
        (EmptyRule.STRICT, True, True),
    ],
)
def test_join_empty_rules(rule: EmptyRule, paused_refused: bool, nobody_refused: bool) -> None:
    engine = center(Queue("q", join_empty=rule), agent("a1"), login=False)
    out = engine.caller_arrives(Caller("c1", "s1"), "q", now=0.0)
    assert bool(only(Reject, out)) == nobody_refused
    engine.agent_login("a1", now=1.0)
    engine.agent_pause("a1", "break", now=1.0)
    out = engine.caller_arrives(Caller("c2", "s2"), "q", now=2.0)
    assert bool(only(Reject, out)) == paused_refused
    if paused_refused:
        assert only(Reject, out)[0].status == 480


def test_leave_empty_sends_waiting_callers_to_overflow() -> None:
    queue = Queue("q", leave_empty=EmptyRule.STRICT, overflow=AnnounceAndHangup("closed"))
    engine = center(queue, agent("a1"), agent("a2"))
    engine.agent_pause("a2", "lunch", now=0.0)
    engine.caller_arrives(Caller("c1", "s1"), "q", now=1.0)  # rings a1
    engine.caller_arrives(Caller("c2", "s2"), "q", now=2.0)
    out = engine.agent_logout("a1", now=3.0)
    assert [(o.caller_id, o.reason) for o in only(Overflow, out)] == [
        ("c1", LeaveReason.EMPTY),
        ("c2", LeaveReason.EMPTY),
    ]
    assert only(CancelOffer, out)[0].reason is CancelReason.AGENT_LOGGED_OUT
    assert engine.waiting("q") == []


def test_ring_all_rings_everyone_and_cancels_the_rest() -> None:
    queue = Queue("q", strategy=Strategy.RING_ALL)
    engine = center(queue, agent("a1"), agent("a2"), agent("a3"), agent("other", queues=["x"]))
    out = engine.caller_arrives(Caller("c1", "s1"), "q", now=0.0)
    assert offers(out) == [("c1", "a1"), ("c1", "a2"), ("c1", "a3")]
    out = engine.offer_answered("offer-2", now=3.0)
    assert only(CancelOffer, out) == [
        CancelOffer("offer-1", "c1", "a1", CancelReason.ANSWERED_ELSEWHERE),
        CancelOffer("offer-3", "c1", "a3", CancelReason.ANSWERED_ELSEWHERE),
    ]
    assert engine.agent_state("a1") is AgentState.AVAILABLE
    assert engine.agent_status("a1").no_answer_count == 0
    with pytest.raises(CallCenterError):
        engine.offer_answered("offer-1", now=3.5)  # the driver must hang this leg up
    assert not engine.offer_open("offer-1") and not engine.offer_open("offer-2")


def test_ring_progressively_adds_one_agent_per_step() -> None:
    queue = Queue(
        "q", strategy=Strategy.RING_PROGRESSIVELY, progressive_step=4.0, ring_timeout=30.0
    )
    engine = center(queue, agent("a", order=2), agent("b", order=0), agent("c", order=1))
    assert offers(engine.caller_arrives(Caller("c1", "s1"), "q", now=0.0)) == [("c1", "b")]
    assert offers(run_until(engine, 3.9)) == []
    assert offers(run_until(engine, 4.0)) == [("c1", "c")]
    assert offers(run_until(engine, 8.0)) == [("c1", "a")]
    assert offers(run_until(engine, 12.0)) == []  # nobody left to add
    out = engine.offer_answered("offer-3", now=13.0)
    assert {c.agent_id for c in only(CancelOffer, out)} == {"b", "c"}
    assert engine.next_deadline() is None


def test_round_robin_remembers_across_calls() -> None:
    queue = Queue("q", strategy=Strategy.ROUND_ROBIN)
    engine = center(queue, agent("a", order=0), agent("b", order=1), agent("c", order=2))
    served = []
    for n in range(5):
        out = engine.caller_arrives(Caller(f"c{n}", f"s{n}"), "q", now=float(n))
        ((caller, who),) = offers(out)
        served.append(who)
        engine.offer_answered(only(OfferCall, out)[0].offer_id, now=float(n))
        engine.call_ended(caller, now=float(n) + 0.5)
    assert served == ["a", "b", "c", "a", "b"]


def test_priority_first_then_fifo() -> None:
    engine = center(Queue("q"), agent("a1"), login=False)
    engine.caller_arrives(Caller("low1", "s1", 0), "q", now=0.0)
    engine.caller_arrives(Caller("high", "s2", 2), "q", now=1.0)
    engine.caller_arrives(Caller("low2", "s3", 0), "q", now=2.0)
    engine.caller_arrives(Caller("mid", "s4", 1), "q", now=3.0)
    assert [w.caller.caller_id for w in engine.waiting("q")] == ["high", "mid", "low1", "low2"]
    order = []
    out = engine.agent_login("a1", now=4.0)
    for step in range(4):
        (offer,) = only(OfferCall, out)
        order.append(offer.caller_id)
        engine.offer_answered(offer.offer_id, now=5.0 + step)
        out = engine.call_ended(offer.caller_id, now=5.5 + step)
    assert order == ["high", "mid", "low1", "low2"]


def test_skills_and_membership_decide_who_may_take_a_queue() -> None:
    queue = Queue("fr", required_skills={"french": 5})
    engine = center(
        queue,
        agent("novice", queues=["fr"], skills={"french": 4}),
        agent("outsider", queues=["other"], skills={"french": 9}),
        agent("fluent", queues=["fr"], skills={"french": 8}),
    )
    out = engine.caller_arrives(Caller("c1", "s1"), "fr", now=0.0)
    assert offers(out) == [("c1", "fluent")]


def test_dtmf_exit_and_ignored_keys() -> None:
    queue = Queue("q", exit_keys={"0": ToRecording("vm")})
    engine = center(queue, agent("a1"), login=False)
    engine.caller_arrives(Caller("c1", "s1"), "q", now=0.0)
    assert engine.caller_leaves_by_dtmf("c1", "5", now=1.0) == []
    out = engine.caller_leaves_by_dtmf("c1", "0", now=2.0)
    assert only(Overflow, out) == [Overflow("c1", "s1", "q", ToRecording("vm"), LeaveReason.KEY)]
    assert engine.queue_stats("q", 2.0).overflowed == 1


def test_abandon_while_ringing_cancels_the_offer() -> None:
    engine = center(Queue("q"), agent("a1"))
    engine.caller_arrives(Caller("c1", "s1"), "q", now=0.0)
    out = engine.caller_abandons("c1", now=2.0)
    assert only(CancelOffer, out) == [CancelOffer("offer-1", "c1", "a1", CancelReason.CALLER_GONE)]
    assert engine.agent_state("a1") is AgentState.AVAILABLE
    assert engine.queue_stats("q", 2.0).abandoned == 1


def test_pause_and_logout_take_effect_after_the_call() -> None:
    engine = center(Queue("q", wrap_up_time=3.0), agent("a1"), agent("a2"))
    engine.caller_arrives(Caller("c1", "s1"), "q", now=0.0)
    engine.caller_arrives(Caller("c2", "s2"), "q", now=0.0)
    engine.offer_answered("offer-1", now=1.0)
    engine.offer_answered("offer-2", now=1.0)
    assert engine.agent_pause("a1", "coffee", now=2.0) == [
        AgentPauseChanged("a1", True, "coffee", 2.0)
    ]
    assert engine.agent_state("a1") is AgentState.ON_CALL
    engine.agent_logout("a2", now=2.0)
    assert engine.agent_state("a2") is AgentState.ON_CALL
    out = engine.call_ended("c1", now=5.0)
    assert engine.agent_state("a1") is AgentState.WRAP_UP
    out = run_until(engine, 8.0)
    assert out == [
        WrapUpEnded("a1", "c1", "q", 8.0),
        AgentStateChanged("a1", AgentState.WRAP_UP, AgentState.PAUSED, 8.0, "coffee"),
    ]
    out = engine.call_ended("c2", now=9.0)
    # logged out: no wrap-up, straight offline
    assert only(AgentStateChanged, out) == [
        AgentStateChanged("a2", AgentState.ON_CALL, AgentState.OFFLINE, 9.0)
    ]


def test_max_concurrent_allows_parallel_calls() -> None:
    engine = center(Queue("q"), agent("a1", max_concurrent=2))
    out = engine.caller_arrives(Caller("c1", "s1"), "q", now=0.0)
    out += engine.caller_arrives(Caller("c2", "s2"), "q", now=0.0)
    out += engine.caller_arrives(Caller("c3", "s3"), "q", now=0.0)
    assert offers(out) == [("c1", "a1"), ("c2", "a1")]
    engine.offer_answered("offer-1", now=1.0)
    assert engine.agent_state("a1") is AgentState.ON_CALL
    out = engine.offer_failed("offer-2", OfferFailure.NO_ANSWER, now=2.0)
    assert only(AgentStateChanged, out) == []  # still on a call
    assert offers(run_until(engine, 7.0)) == [("c2", "a1")]  # after the retry delay


def test_refused_inputs_raise_and_change_nothing() -> None:
    engine = center(Queue("q"), agent("a1"))
    with pytest.raises(CallCenterError):
        engine.agent_login("a1", now=1.0)
    with pytest.raises(CallCenterError):
        engine.agent_resume("a1", now=1.0)
    with pytest.raises(CallCenterError):
        engine.agent_pause("a1", "", now=1.0)
    with pytest.raises(CallCenterError):
        engine.agent_login("nobody", now=1.0)
    with pytest.raises(CallCenterError):
        engine.caller_arrives(Caller("c1", "s1"), "nowhere", now=1.0)
    engine.caller_arrives(Caller("c1", "s1"), "q", now=1.0)
    with pytest.raises(CallCenterError):
        engine.caller_arrives(Caller("c1", "s9"), "q", now=1.0)
    with pytest.raises(CallCenterError):
        engine.call_ended("c1", now=1.0)
    with pytest.raises(CallCenterError):
        engine.offer_failed("offer-1", "busy", now=1.0)  # type: ignore[arg-type]
    with pytest.raises(CallCenterError):
        engine.on_timer(0.5)  # time went backwards
    with pytest.raises(CallCenterError):
        engine.on_timer(float("nan"))
    engine.offer_answered("offer-1", now=2.0)
    with pytest.raises(CallCenterError):
        engine.caller_abandons("c1", now=2.0)  # bridged: its end is call_ended
    with pytest.raises(CallCenterError):
        engine.remove_agent("a1")
    with pytest.raises(CallCenterError):
        engine.add_queue(Queue("q"))
    assert engine.caller_state("c1") is CallerState.BRIDGED


def test_bad_definitions_raise() -> None:
    with pytest.raises(CallCenterError):
        Agent("a", "A", "a", skills={"en": 11})
    with pytest.raises(CallCenterError):
        Agent("a", "A", "a", max_concurrent=0)
    with pytest.raises(CallCenterError):
        Agent("a", "A", "a", queues="q")
    with pytest.raises(CallCenterError):
        Queue("q", ring_timeout=0)
    with pytest.raises(CallCenterError):
        Queue("q", strategy="ring-all")  # type: ignore[arg-type]
    with pytest.raises(CallCenterError):
        Queue("q", exit_keys={"11": ToRecording("vm")})
    with pytest.raises(CallCenterError):
        Caller("c", "s", priority=1.5)  # type: ignore[arg-type]


def test_state_tables() -> None:
    check_agent_transition(AgentState.OFFLINE, AgentState.AVAILABLE)
    with pytest.raises(CallCenterError):
        check_agent_transition(AgentState.OFFLINE, AgentState.WRAP_UP)
    with pytest.raises(CallCenterError):
        check_agent_transition(AgentState.PAUSED, AgentState.RINGING)
    check_caller_transition(None, CallerState.WAITING)
    with pytest.raises(CallCenterError):
        check_caller_transition(CallerState.WAITING, CallerState.BRIDGED)
    with pytest.raises(CallCenterError):
        check_caller_transition(CallerState.COMPLETED, CallerState.WAITING)


def test_admin_changes_at_runtime() -> None:
    queue = Queue("q", strategy=Strategy.LINEAR)
    engine = center(queue, agent("a1", order=1), agent("a2", order=2))
    engine.agent_pause("a1", "x", now=0.0)
    engine.agent_logout("a1", now=0.0)
    engine.remove_agent("a1")
    assert [a.agent_id for a in engine.agents()] == ["a2"]
    # a2 stops serving q: a waiting caller finds nobody; back in q, it is offered
    engine.update_agent(agent("a2", queues=["other"]), now=1.0)
    assert offers(engine.caller_arrives(Caller("c1", "s1"), "q", now=2.0)) == []
    assert offers(engine.update_agent(agent("a2"), now=3.0)) == [("c1", "a2")]
    out = engine.update_queue(Queue("q", ring_timeout=1.0), now=4.0)
    assert out == []
    with pytest.raises(CallCenterError):
        engine.remove_queue("q")
    engine.caller_abandons("c1", now=5.0)
    engine.remove_queue("q")
    assert engine.queues() == []


def test_logout_cuts_wrap_up_short() -> None:
    engine = center(Queue("q", wrap_up_time=30.0), agent("a1"))
    engine.caller_arrives(Caller("c1", "s1"), "q", now=0.0)
    engine.offer_answered("offer-1", now=1.0)
    engine.call_ended("c1", now=2.0)
    out = engine.agent_logout("a1", now=5.0)
    assert out[:2] == [
        WrapUpEnded("a1", "c1", "q", 5.0, cut_short=True),
        AgentStateChanged("a1", AgentState.WRAP_UP, AgentState.OFFLINE, 5.0),
    ]
    assert engine.next_deadline() is None


def test_a_new_tier_escalates_callers_already_waiting() -> None:
    engine = center(Queue("q", tier_wait=10.0), agent("t0"))
    engine.agent_pause("t0", "busy", now=0.0)
    engine.caller_arrives(Caller("c1", "s1"), "q", now=1.0)
    assert engine.next_deadline() is None  # no higher tier to wait for
    engine.add_agent(agent("t2", tier=2))
    engine.agent_login("t2", now=2.0)
    assert engine.next_deadline() == 21.0
    assert offers(run_until(engine, 21.0)) == [("c1", "t2")]


def test_overflow_into_a_removed_queue_is_refused_with_503() -> None:
    main = Queue("q", max_wait=5.0, overflow=ToQueue("gone"))
    engine = center(main, agent("a1"), login=False, extra=[Queue("gone")])
    engine.remove_queue("gone")
    engine.caller_arrives(Caller("c1", "s1"), "q", now=0.0)
    out = run_until(engine, 5.0)
    assert only(Reject, out) == [Reject("c1", "s1", "gone", 503, LeaveReason.UNKNOWN_QUEUE)]
    assert engine.caller_state("c1") is None


def test_a_shorter_tier_wait_applies_to_callers_already_waiting() -> None:
    engine = center(Queue("q", tier_wait=60.0), agent("t1", tier=1))
    engine.caller_arrives(Caller("c1", "s1"), "q", now=0.0)
    assert engine.next_deadline() == 60.0
    engine.update_queue(Queue("q", tier_wait=10.0), now=1.0)
    assert engine.next_deadline() == 10.0
    assert offers(run_until(engine, 10.0)) == [("c1", "t1")]


def serve(engine: CallCenter, caller_id: str, now: float, talk: float) -> str:
    """A caller arrives, the offered agent answers at once and talks for ``talk`` seconds."""
    out = engine.caller_arrives(Caller(caller_id, f"s-{caller_id}"), "q", now=now)
    (offer,) = only(OfferCall, out)
    engine.offer_answered(offer.offer_id, now=now)
    engine.call_ended(caller_id, now=now + talk)
    return offer.agent_id


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        # a: 1 call of 100 s ending at 100; b: 2 calls of 10 s, the last ending at 220
        (Strategy.LONGEST_IDLE, "a"),
        (Strategy.FEWEST_CALLS, "a"),
        (Strategy.LEAST_TALK_TIME, "b"),
        (Strategy.LINEAR, "a"),
    ],
)
def test_engine_feeds_strategies_the_agents_history(strategy: Strategy, expected: str) -> None:
    engine = center(Queue("q", strategy=Strategy.LINEAR), agent("a", order=0), agent("b", order=1))
    assert serve(engine, "c1", 0.0, 100.0) == "a"
    engine.agent_pause("a", "hold on", now=100.0)
    assert serve(engine, "c2", 200.0, 10.0) == "b"
    assert serve(engine, "c3", 210.0, 10.0) == "b"
    engine.agent_resume("a", now=230.0)
    engine.update_queue(Queue("q", strategy=strategy), now=230.0)
    stats = {a: engine.agent_stats(a, 230.0) for a in "ab"}
    assert (stats["a"].answered, stats["a"].talk_time) == (1, 100.0)
    assert (stats["b"].answered, stats["b"].talk_time) == (2, 20.0)
    assert serve(engine, "c4", 240.0, 1.0) == expected


def test_skill_based_routing_in_the_engine() -> None:
    queue = Queue("q", strategy=Strategy.SKILL_BASED, required_skills={"de": 1, "billing": 1})
    engine = center(
        queue,
        agent("generalist", skills={"de": 4, "billing": 4}),
        agent("expert", skills={"de": 9, "billing": 7}),
        agent("monolingual", skills={"billing": 10}),
    )
    assert serve(engine, "c1", 0.0, 5.0) == "expert"


def test_random_strategies_are_reproducible_with_a_seed() -> None:
    def picks(seed: int, strategy: Strategy) -> list[str]:
        engine = CallCenter(seed=seed)
        engine.add_queue(Queue("q", strategy=strategy))
        for name, weight in (("a", 1.0), ("b", 2.0), ("c", 4.0)):
            engine.add_agent(agent(name, weight=weight))
            engine.agent_login(name, now=0.0)
        return [serve(engine, f"c{n}", float(n), 0.5) for n in range(12)]

    for strategy in (Strategy.RANDOM, Strategy.WEIGHTED_RANDOM):
        assert picks(7, strategy) == picks(7, strategy)
        assert len(set(picks(7, strategy))) > 1


def test_calls_elsewhere_keep_an_agent_from_queue_calls() -> None:
    """An agent on an extension call is ON_CALL and is offered nothing beyond its limit; when
    the call ends it is free again and counts as idle only from then (longest-idle)."""
    queue = Queue("q", strategy=Strategy.LONGEST_IDLE)
    engine = center(queue, agent("a1"), agent("a2", max_concurrent=2))
    engine.agent_calls_elsewhere("a1", 1, now=1.0)
    assert engine.agent_state("a1") is AgentState.ON_CALL
    assert engine.agent_elsewhere("a1") == engine.agent_status("a1").elsewhere == 1
    # a1 was idle longest, but it is busy: a2 (limit 2) takes both callers
    assert offers(engine.caller_arrives(Caller("c1", "s1"), "q", now=2.0)) == [("c1", "a2")]
    engine.agent_calls_elsewhere("a2", 1, now=3.0)
    assert offers(engine.caller_arrives(Caller("c2", "s2"), "q", now=4.0)) == []
    # a1's call ends: it takes c2 at once
    assert offers(engine.agent_calls_elsewhere("a1", 0, now=5.0)) == [("c2", "a1")]
    assert engine.agent_status("a1").idle_since == 5.0
    with pytest.raises(CallCenterError):
        engine.agent_calls_elsewhere("a1", -1, now=6.0)
    with pytest.raises(CallCenterError):
        engine.agent_calls_elsewhere("nobody", 1, now=6.0)
