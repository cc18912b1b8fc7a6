"""The call engine's supervisor events: every agent and caller state change of a call through
a queue, in order, with the engine's timestamps, on a channel that ends with the driver."""

from __future__ import annotations

import trio

from test_callcenter_driver import QUEUE, call_center, clean
from test_softswitch_app import Phone, dial, phone, until
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
