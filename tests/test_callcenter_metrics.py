"""Metrics as a fold over the engine's reports: by hand on a known day, and as properties of
random traffic (intervals add up, the live numbers equal the whole-stream interval)."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_voip.callcenter import (
    Action,
    Agent,
    AgentState,
    AgentStateChanged,
    CallCenter,
    Caller,
    CallerState,
    CallerStateChanged,
    MetricsFold,
    OfferCall,
    OfferFailure,
    Queue,
    Strategy,
    interval_stats,
)
from trio_voip.callcenter.metrics import stored_reports
from trio_voip.callcenter.store import AgentStateChange, CallOutcome, CallRecord, Offer

W, R, B, C = CallerState.WAITING, CallerState.RINGING, CallerState.BRIDGED, CallerState.COMPLETED


def joined(caller: str, at: float) -> CallerStateChanged:
    return CallerStateChanged(caller, "q", None, W, at, at)


def day() -> list[Action]:
    """c1 waits 5 s, talks 60 s (wrap-up 10); c3 abandons after 40 s; c2 waits 30 s, talks
    20 s (wrap-up 10); c4 joins at 100 and is still waiting. Agent a1 logs in at 0."""
    a1 = "a1"
    return [
        AgentStateChanged(a1, AgentState.OFFLINE, AgentState.AVAILABLE, 0.0),
        joined("c1", 10.0),
        CallerStateChanged("c1", "q", W, R, 10.0, 10.0),
        OfferCall("o1", "c1", "s1", "q", a1, "a1", 15.0, 10.0),
        AgentStateChanged(a1, AgentState.AVAILABLE, AgentState.RINGING, 10.0),
        CallerStateChanged("c1", "q", R, B, 15.0, 10.0, a1, 15.0),
        AgentStateChanged(a1, AgentState.RINGING, AgentState.ON_CALL, 15.0),
        joined("c3", 30.0),
        joined("c2", 60.0),
        CallerStateChanged("c3", "q", W, CallerState.ABANDONED, 70.0, 30.0),
        CallerStateChanged("c1", "q", B, C, 75.0, 10.0, a1, 15.0, 10.0),
        AgentStateChanged(a1, AgentState.ON_CALL, AgentState.WRAP_UP, 75.0),
        AgentStateChanged(a1, AgentState.WRAP_UP, AgentState.AVAILABLE, 85.0),
        CallerStateChanged("c2", "q", W, R, 85.0, 60.0),
        OfferCall("o2", "c2", "s2", "q", a1, "a1", 15.0, 85.0),
        AgentStateChanged(a1, AgentState.AVAILABLE, AgentState.RINGING, 85.0),
        CallerStateChanged("c2", "q", R, B, 90.0, 60.0, a1, 90.0),
        AgentStateChanged(a1, AgentState.RINGING, AgentState.ON_CALL, 90.0),
        joined("c4", 100.0),
        CallerStateChanged("c2", "q", B, C, 110.0, 60.0, a1, 90.0, 10.0),
        AgentStateChanged(a1, AgentState.ON_CALL, AgentState.WRAP_UP, 110.0),
        AgentStateChanged(a1, AgentState.WRAP_UP, AgentState.AVAILABLE, 120.0),
    ]


def test_a_known_day() -> None:
    fold = MetricsFold({"q": 20.0})
    fold.apply_all(day())
    q = fold.queue_stats("q", 200.0)
    assert (q.offered, q.answered, q.abandoned, q.overflowed, q.waiting) == (4, 2, 1, 0, 1)
    # waits 5 and 30: one within 20 s, of the 3 callers that left the queue
    assert q.answered_within_threshold == 1
    assert q.service_level == pytest.approx(1 / 3)
    assert q.average_speed_of_answer == pytest.approx(17.5)
    assert q.average_handle_time == pytest.approx((60 + 10 + 20 + 10) / 2)
    assert q.longest_current_wait == 100.0  # c4
    a = fold.agent_stats("a1", 200.0)
    assert (a.offered, a.answered, a.state) == (2, 2, AgentState.AVAILABLE)
    assert a.talk_time == 80.0
    assert a.logged_in_time == 200.0
    # on call 15-75 and 90-110, wrap-up 75-85 and 110-120
    assert a.busy_time == 100.0
    assert a.occupancy == 0.5
    assert a.average_handle_time == 50.0


def test_an_interval_counts_what_happened_inside_it() -> None:
    queues, agents = interval_stats(day(), 60.0, 100.0, {"q": 20.0})
    q = queues["q"]
    # inside [60, 100): c2 joins (60) and is answered after 30 s (90), c3 abandons (70),
    # c1's call ends (75); c4 joins only at 100
    assert (q.offered, q.answered, q.abandoned, q.waiting) == (1, 1, 1, 0)
    assert (q.answered_within_threshold, q.service_level) == (0, 0.0)
    assert q.average_handle_time == 70.0
    assert q.longest_current_wait == 0.0
    a = agents["a1"]
    assert (a.offered, a.answered, a.talk_time) == (1, 1, 60.0)
    assert a.logged_in_time == 40.0
    # on call 60-75, wrap-up 75-85, ringing 85-90 (not busy), on call 90-100
    assert a.busy_time == 35.0
    # at 90 the interval knows c2 waits 30 s
    assert interval_stats(day(), 60.0, 85.0)[0]["q"].longest_current_wait == 25.0


@pytest.fixture
def traffic() -> list[Action]:
    return simulate(random.Random(5), 300)


def simulate(rng: random.Random, steps: int) -> list[Action]:
    """A random but legal day on a real engine: the report stream it publishes."""
    engine = CallCenter(seed=rng.randrange(1000))
    engine.add_queue(Queue("q", strategy=Strategy.LONGEST_IDLE, wrap_up_time=3.0, max_wait=60.0,
                           ring_timeout=8.0))
    engine.add_queue(Queue("r", strategy=Strategy.RING_ALL, max_length=3))
    for i in range(4):
        engine.add_agent(Agent(f"a{i}", f"A{i}", f"a{i}", queues={"q", "r"} if i % 2 else {"q"}))
    log: list[Action] = []
    now = 0.0
    callers = 0
    offers: set[str] = set()
    bridged: set[str] = set()
    logged: set[str] = set()
    for _ in range(steps):
        now += rng.choice([0.0, 0.5, 2.0, 7.0])
        out: list[Action] = []
        deadline = engine.next_deadline()
        while deadline is not None and deadline <= now:
            out += engine.on_timer(deadline)
            deadline = engine.next_deadline()
        offers = {o for o in offers if engine.offer_open(o)}
        choice = rng.randrange(6)
        agent_id = f"a{rng.randrange(4)}"
        if choice == 0:
            callers += 1
            out += engine.caller_arrives(Caller(f"c{callers}", "s"), rng.choice("qr"), now=now)
        elif choice == 1 and offers:
            out += engine.offer_answered(rng.choice(sorted(offers)), now=now)
        elif choice == 2 and offers:
            out += engine.offer_failed(rng.choice(sorted(offers)), OfferFailure.BUSY, now=now)
        elif choice == 3 and bridged:
            out += engine.call_ended(rng.choice(sorted(bridged)), now=now)
        elif choice == 4:
            if agent_id in logged:
                out += engine.agent_logout(agent_id, now=now)
                logged.discard(agent_id)
            else:
                out += engine.agent_login(agent_id, now=now)
                logged.add(agent_id)
        else:
            waiting = [w.caller.caller_id for q in "qr" for w in engine.waiting(q)]
            if waiting:
                out += engine.caller_abandons(rng.choice(waiting), now=now)
        for action in out:
            if isinstance(action, OfferCall):
                offers.add(action.offer_id)
            elif isinstance(action, CallerStateChanged) and action.new is B:
                bridged.add(action.caller_id)
            elif isinstance(action, CallerStateChanged) and action.new is C:
                bridged.discard(action.caller_id)
        log += out
    return log


COUNTS = ("offered", "answered", "abandoned", "overflowed", "rejected", "answered_within_threshold")


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10**6), cut=st.floats(0, 1))
def test_intervals_add_up(seed: int, cut: float) -> None:
    log = simulate(random.Random(seed), 120)
    end = max((getattr(a, "at", 0.0) for a in log), default=0.0) + 1.0
    split = cut * end
    whole_q, whole_a = interval_stats(log, -math.inf, end)
    first_q, first_a = interval_stats(log, -math.inf, split)
    second_q, second_a = interval_stats(log, split, end)
    for queue_id, whole in whole_q.items():
        first, second = first_q.get(queue_id), second_q[queue_id]
        for name in COUNTS:
            before = getattr(first, name) if first is not None else 0
            assert before + getattr(second, name) == getattr(whole, name), name
        assert whole.offered == whole.answered + whole.abandoned + whole.overflowed + whole.waiting
    for agent_id, whole in whole_a.items():
        first, second = first_a.get(agent_id), second_a[agent_id]
        for name in ("logged_in_time", "busy_time", "talk_time"):
            before = getattr(first, name) if first is not None else 0.0
            assert before + getattr(second, name) == pytest.approx(getattr(whole, name)), name
        for name in ("offered", "answered"):
            before = getattr(first, name) if first is not None else 0
            assert before + getattr(second, name) == getattr(whole, name), name
        if whole.occupancy is not None:
            assert 0.0 <= whole.occupancy <= 1.0 + 1e-9


def test_live_numbers_equal_the_whole_stream(traffic: list[Action]) -> None:
    end = max(getattr(a, "at", 0.0) for a in traffic) + 1.0
    live = MetricsFold()
    live.apply_all(traffic)
    queues, agents = interval_stats(traffic, -math.inf, end)
    assert set(queues) == set(live.queue_ids()) and set(agents) == set(live.agent_ids())
    for queue_id, stats in queues.items():
        assert live.queue_stats(queue_id, end) == stats
    for agent_id, stats in agents.items():
        assert live.agent_stats(agent_id, end) == stats


def test_stored_reports_rebuild_each_outcome_for_interval_stats():
    """Records as the store keeps them: answered (with wrap-up), abandoned, overflowed,
    rejected at the door; plus an agent's history with a state name it does not know."""
    answered = CallRecord("r1", "s1", "q", "sip:a@x", 0, 10.0,
                          offers=(Offer("a1", 11.0),), answered_at=12.0, bridged_at=12.0,
                          ended_at=20.0, wrapup_ended_at=23.0,
                          outcome=CallOutcome.ANSWERED, agent_id="a1")
    abandoned = CallRecord("r2", "s2", "q", "sip:b@x", 0, 13.0, abandoned_at=15.0,
                           outcome=CallOutcome.ABANDONED)
    overflowed = CallRecord("r3", "s3", "q", "sip:c@x", 0, 14.0, overflowed_at=30.0,
                            outcome=CallOutcome.OVERFLOWED)
    rejected = CallRecord("r4", "s4", "q", "sip:d@x", 0, 16.0, rejected_at=16.0,
                          outcome=CallOutcome.REJECTED)
    history = [AgentStateChange("a1", "available", 5.0), AgentStateChange("a1", "ringing", 11.0),
               AgentStateChange("a1", "on-call", 12.0), AgentStateChange("a1", "wrap-up", 20.0),
               AgentStateChange("a1", "dancing", 21.0), AgentStateChange("a1", "available", 23.0)]
    reports = stored_reports([answered, abandoned, overflowed, rejected], history)
    assert [r.at for r in reports] == sorted(r.at for r in reports)  # type: ignore[union-attr]
    queues, agents = interval_stats(reports, 0.0, 40.0, {"q": 5.0})
    q = queues["q"]
    assert (q.offered, q.answered, q.abandoned, q.overflowed, q.rejected, q.waiting) == (
        3, 1, 1, 1, 1, 0)
    assert (q.average_speed_of_answer, q.average_handle_time, q.service_level) == (
        2.0, 11.0, 1 / 3)
    a1 = agents["a1"]
    assert (a1.offered, a1.answered, a1.talk_time, a1.busy_time) == (1, 1, 8.0, 11.0)
    assert a1.logged_in_time == 35.0 and a1.occupancy == 11.0 / 35.0
    # only what falls in [14, 16): r3 is waiting at 16, r2 abandoned inside
    q = interval_stats(reports, 14.0, 16.0)[0]["q"]
    assert (q.offered, q.abandoned, q.waiting) == (1, 1, 1)
