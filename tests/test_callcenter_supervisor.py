"""What a supervisor gets from the call engine: its events (every agent and caller state change
of a call through a queue, in order, with the engine's timestamps, on a channel that ends with
the driver), and its numbers over past intervals rebuilt from the store, which must agree
with the live ones."""

from __future__ import annotations

import time

import pytest
import trio

from test_callcenter_driver import QUEUE, call_center, clean
from test_softswitch_app import Phone, dial, phone, until
from trio_voip.softswitch import SupervisorServer
from trio_voip import CallDecision, CallState
from trio_voip.callcenter import AgentState, CallerState
from trio_voip.callcenter.actions import (
    AgentPauseChanged,
    AgentStateChanged,
    CallerStateChanged,
    QueueMetricsChanged,
    WrapUpEnded,
)


async def test_a_queued_call_is_reported_step_by_step():
    seen: list[object] = []
    async with call_center(wrap_up_time=0.2) as center:
        events = center.driver.subscribe_to_events()
        bob = Phone(lambda call: CallDecision.defer())
        async with phone("1002", center.port, bob, register=False) as bob_phone:
            await center.register(bob_phone, "1002")
            center.driver.pause("a1002", "coffee")
            center.driver.resume("a1002")
            async with phone("1003", center.port, register=False) as customer_phone:
                call = await dial(customer_phone, "1003", QUEUE, center.port)
                with trio.fail_after(5):
                    await bob.arrived.wait()
                await bob.incoming[0].answer()
                await until(lambda: center.state("a1002") is AgentState.ON_CALL)
                await call.hangup()
                await until(lambda: center.state("a1002") is AgentState.AVAILABLE)
                await clean(center)
        # everything so far is in the channel (nothing dropped)
        while True:
            try:
                seen.append(events.receive_nowait())
            except trio.WouldBlock:
                break
        assert center.driver.events_dropped == 0
    agent = [(e.old, e.new) for e in seen if isinstance(e, AgentStateChanged)
             and e.agent_id == "a1002"]
    a = AgentState
    assert agent == [(a.OFFLINE, a.AVAILABLE), (a.AVAILABLE, a.PAUSED), (a.PAUSED, a.AVAILABLE),
                     (a.AVAILABLE, a.RINGING), (a.RINGING, a.ON_CALL), (a.ON_CALL, a.WRAP_UP),
                     (a.WRAP_UP, a.AVAILABLE)]
    pauses = [(e.paused, e.reason) for e in seen if isinstance(e, AgentPauseChanged)]
    assert pauses == [(True, "coffee"), (False, None)]
    caller = [e.new for e in seen if isinstance(e, CallerStateChanged)]
    c = CallerState
    assert caller == [c.WAITING, c.RINGING, c.BRIDGED, c.COMPLETED]
    assert len([e for e in seen if isinstance(e, WrapUpEnded)]) == 1
    (last,) = [e for e in seen if isinstance(e, QueueMetricsChanged)][-1:]
    assert (last.stats.offered, last.stats.answered, last.stats.waiting) == (1, 1, 0)
    times = [e.at for e in seen]  # type: ignore[attr-defined]
    assert times == sorted(times)
    # the driver stopped: the channel is at its end
    with trio.fail_after(1):
        assert [e async for e in events] == []


async def test_numbers_over_an_interval_from_the_store_agree_with_the_live_ones():
    """One agent, three customers: the first answered, the second hangs up while waiting
    (abandoned), the third answered after the first's wrap-up. The store's rebuilt numbers
    over the whole run equal the engine's live ones; an interval before it holds nothing."""
    async with call_center(wrap_up_time=0.2) as center:
        start = time.time()
        bob = Phone()
        async with phone("1002", center.port, bob, register=False) as bob_phone:
            await center.register(bob_phone, "1002")
            async with phone("1003", center.port, register=False) as customers:
                first = await dial(customers, "1003", QUEUE, center.port)
                await until(lambda: len(center.engine.live_calls()) == 1)
                second = await dial(customers, "1003", QUEUE, center.port)
                await second.wait_state(CallState.ACTIVE, timeout=5)
                await trio.sleep(0.3)
                await second.hangup()  # abandoned
                third = await dial(customers, "1003", QUEUE, center.port)
                await trio.sleep(0.3)
                await first.hangup()
                await until(lambda: len(bob.incoming) == 2)  # after the wrap-up
                await bob.incoming[1].wait_state(CallState.ACTIVE, timeout=5)
                await trio.sleep(0.2)
                await third.hangup()
                await until(lambda: center.state("a1002") is AgentState.AVAILABLE)
                await clean(center)
        now, wall = trio.current_time(), time.time()
        live_queue = center.engine.queue_stats(QUEUE, now)
        live_agent = center.engine.agent_stats("a1002", now)
        queues, agents = await center.driver.interval_metrics(start - 1, wall)
        stored_queue, stored_agent = queues[QUEUE], agents["a1002"]
        counts = ("offered", "answered", "abandoned", "overflowed", "rejected", "waiting",
                  "answered_within_threshold")
        assert [getattr(stored_queue, n) for n in counts] == [
            getattr(live_queue, n) for n in counts] == [3, 2, 1, 0, 0, 0, 2]
        for name in ("average_speed_of_answer", "average_handle_time"):
            assert getattr(stored_queue, name) == pytest.approx(getattr(live_queue, name),
                                                                abs=0.05)
        assert (stored_agent.offered, stored_agent.answered) == (
            live_agent.offered, live_agent.answered) == (2, 2)
        for name in ("talk_time", "busy_time", "logged_in_time"):
            assert getattr(stored_agent, name) == pytest.approx(getattr(live_agent, name),
                                                                abs=0.1)
        before = (await center.driver.interval_metrics(start - 100, start - 50))[0]
        assert QUEUE not in before or before[QUEUE].offered == 0
        # the same over the supervisor's HTTP API, and its refusals
        server = SupervisorServer(center.switch)
        status, body = await server.metrics({"from": str(start - 1), "to": str(wall)})
        assert status == 200 and body["queues"][QUEUE]["abandoned"] == 1
        assert body["agents"]["a1002"]["answered"] == 2
        assert body["agents"]["a1002"]["state"] == "available"
        assert (await server.metrics({"from": "yesterday"}))[0] == 400
        assert (await server.metrics({"from": "10", "to": "5"}))[0] == 400
        assert (await server.metrics({"to": "nan"}))[0] == 400
