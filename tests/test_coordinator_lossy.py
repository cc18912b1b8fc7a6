"""Whole calls between two SessionCoordinators over a lossy, duplicating, reordering network.

Everything runs in virtual time (MockClock, autojump), so fifty thirty-second calls with their
retransmissions and timers take well under a second of real time.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable

import attrs
import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_voip import (
    CallDecision,
    CallHandler,
    CallSession,
    CallState,
    DtmfReceived,
    EndKind,
    SessionCoordinator,
    SessionManagerBuilder,
)
from trio_voip.session.state import EndReason
from trio_voip.sip.session_timer import SessionTimerConfig
from trio_voip.testing.network import Impairments, MemoryNetwork, NetworkStats, Packet

A = ("127.0.0.1", 5060)
B = ("127.0.0.1", 5070)
BOB = "sip:bob@127.0.0.1:5070"
# Every transaction timer (64*T1, Timer K/I/D) and 2xx retransmission runs out in this time.
SETTLE = 40.0
# Enough for a request that needs every retransmission (Timer B/F: 64*T1).
PATIENCE = 40.0

BAD = Impairments(loss=0.10, duplicate=0.05, reorder=0.05, delay=0.02, jitter=0.06)


class Answering(CallHandler):
    """Answers every call after ``delay`` and keeps the sessions by Call-ID."""

    def __init__(self, delay: float = 0.5) -> None:
        self.delay = delay
        self.calls: dict[str, CallSession] = {}
        self.established: list[str] = []
        self.ended: list[str] = []

    async def on_incoming_call(self, call: CallSession) -> CallDecision:
        self.calls[call.call_id] = call
        await trio.sleep(self.delay)
        return CallDecision.accept()

    async def on_call_established(self, call: CallSession) -> None:
        self.established.append(call.call_id)

    async def on_call_ended(self, call: CallSession, reason: EndReason) -> None:
        self.ended.append(call.call_id)


def builder(network: MemoryNetwork, address: tuple[str, int]) -> SessionManagerBuilder:
    b = SessionManagerBuilder().listen(*address).transport_factory(network.transport)
    return b.rtp_ports(address[1] * 4, address[1] * 4 + 199)


def counts(coordinator: SessionCoordinator) -> tuple[int, int, int, int]:
    s = coordinator.stats()
    return (s.calls, s.dialogs, s.transactions, s.rtp_ports)


@attrs.frozen
class Outcome:
    caller_hung_up: bool
    caller: EndReason
    callee: EndReason
    talked: float  # seconds the caller's side was established
    scenario: str = "answer, talk, BYE"


async def one_call(
    a: SessionCoordinator, handler: Answering, n: int, talk: float
) -> Outcome:
    call = await a.make_call(BOB, from_user=f"u{n}")
    assert await call.wait_state(CallState.ACTIVE, timeout=PATIENCE) is CallState.ACTIVE
    incoming = handler.calls[call.call_id]
    assert await incoming.wait_state(CallState.ACTIVE, timeout=PATIENCE) is CallState.ACTIVE
    await trio.sleep(talk)
    caller_hangs_up = n % 2 == 0
    await (call if caller_hangs_up else incoming).hangup()
    with trio.fail_after(PATIENCE):
        caller_reason, callee_reason = await call.wait_ended(), await incoming.wait_ended()
    return Outcome(caller_hangs_up, caller_reason, callee_reason, call.duration)


@attrs.frozen
class Run:
    outcomes: list[Outcome]
    handler: CallHandler
    caller_counts: tuple[int, int, int, int]
    callee_counts: tuple[int, int, int, int]
    network: MemoryNetwork


async def run_calls(
    network: MemoryNetwork,
    calls: int,
    *,
    talk: float = 30.0,
    spacing: float = 0.1,
    handler: CallHandler | None = None,
    place: Callable[[SessionCoordinator, int], Awaitable[Outcome]] | None = None,
    setup: Callable[[SessionManagerBuilder], SessionManagerBuilder] = lambda b: b,
) -> Run:
    """``calls`` calls from A to B, started ``spacing`` apart, then SETTLE seconds of quiet.

    By default each is answered (by ``handler``, an :class:`Answering` by default), lasts
    ``talk`` seconds and is hung up by the caller (even numbers) or the callee (odd);
    ``place(a, n)`` runs call ``n`` some other way.
    """
    callee = handler or Answering()
    outcomes: list[Outcome] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(network.run)
        async with setup(builder(network, A)).build() as a, setup(
            builder(network, B).handler(callee)
        ).build() as b:

            async def record(n: int) -> None:
                if place is None:
                    assert isinstance(callee, Answering)
                    outcomes.append(await one_call(a, callee, n, talk))
                else:
                    outcomes.append(await place(a, n))

            async with trio.open_nursery() as callers:
                for n in range(calls):
                    callers.start_soon(record, n)
                    await trio.sleep(spacing)
            await trio.sleep(SETTLE)
            run = Run(outcomes, callee, counts(a), counts(b), network)
        nursery.cancel_scope.cancel()
    return run


def check_run(run: Run, calls: int) -> None:
    assert len(run.outcomes) == calls
    for outcome in run.outcomes:
        hanger, other = (
            (outcome.caller, outcome.callee)
            if outcome.caller_hung_up
            else (outcome.callee, outcome.caller)
        )
        assert hanger.kind is EndKind.LOCAL_HANGUP, outcome
        assert other.kind is EndKind.REMOTE_HANGUP, outcome
    assert isinstance(run.handler, Answering)
    assert sorted(run.handler.established) == sorted(run.handler.ended)
    assert len(run.handler.established) == calls
    assert run.caller_counts == (0, 0, 0, 0)
    assert run.callee_counts == (0, 0, 0, 0)
    assert run.network.in_flight == 0


async def test_fifty_calls_over_a_bad_network(autojump_clock: trio.testing.MockClock) -> None:
    network = MemoryNetwork(seed=2024, **attrs.asdict(BAD))
    started = time.perf_counter()
    run = await run_calls(network, 50)
    elapsed = time.perf_counter() - started
    check_run(run, 50)
    assert all(o.talked >= 30.0 for o in run.outcomes)
    stats = network.stats
    # the network really was bad, and the SIP layers rode it out
    assert stats.lost > 15 and stats.duplicated > 5 and stats.reordered > 5
    assert elapsed < 5.0, f"{elapsed:.2f} s of real time"


async def test_calls_over_a_link_that_loses_half_one_way(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # only B -> A is bad: 200s, BYEs from the callee and the responses to them get lost (not
    # all eleven copies of a 200, though: see the tests at the end)
    network = MemoryNetwork(delay=0.01, seed=5)
    network.links[(B, A)] = Impairments(loss=0.3, duplicate=0.2, reorder=0.2, delay=0.03)
    run = await run_calls(network, 10, talk=5.0)
    check_run(run, 10)


async def test_calls_over_tcp_are_only_delayed(autojump_clock: trio.testing.MockClock) -> None:
    handler = Answering()
    network = MemoryNetwork(seed=3, **attrs.asdict(BAD))

    async def over_tcp(a: SessionCoordinator, n: int) -> Outcome:
        call = await a.make_call(BOB + ";transport=tcp", from_user=f"u{n}")
        assert await call.wait_state(CallState.ACTIVE, timeout=PATIENCE) is CallState.ACTIVE
        incoming = handler.calls[call.call_id]
        assert await incoming.wait_state(CallState.ACTIVE, timeout=PATIENCE) is CallState.ACTIVE
        await trio.sleep(10)
        await (call if n % 2 == 0 else incoming).hangup()
        with trio.fail_after(PATIENCE):
            caller_reason, callee_reason = await call.wait_ended(), await incoming.wait_ended()
        return Outcome(n % 2 == 0, caller_reason, callee_reason, call.duration)

    run = await run_calls(network, 20, handler=handler, place=over_tcp)
    check_run(run, 20)
    # six messages a call (INVITE, 100, 200, ACK, BYE, 200), each once: TCP is reliable
    assert {p.transport for p in network.log} == {"TCP"}
    assert network.stats == NetworkStats(sent=120, delivered=120)


@settings(max_examples=10, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    impairments=st.builds(
        Impairments,
        loss=st.floats(0, 0.15),
        duplicate=st.floats(0, 0.2),
        reorder=st.floats(0, 0.2),
        delay=st.floats(0, 0.1),
        jitter=st.floats(0, 0.1),
        reorder_hold=st.floats(0, 0.2),
    ),
    answer_delay=st.sampled_from([0.0, 0.1, 2.0]),  # 0: no 100 Trying before the 200
    talk=st.floats(0, 40),
)
def test_any_bad_network_leaves_nothing_behind(
    seed: int, impairments: Impairments, answer_delay: float, talk: float
) -> None:
    async def main() -> Run:
        network = MemoryNetwork(seed=seed, **attrs.asdict(impairments))
        handler = Answering(delay=answer_delay)
        return await run_calls(network, 6, talk=talk, spacing=0.05, handler=handler)

    run = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    check_run(run, 6)


# A mix of call flows over the bad network: each must end the way its flow says.

# scenario -> (caller's end kinds, callee's end kinds) allowed
FLOWS: dict[str, tuple[set[EndKind], set[EndKind]]] = {
    "caller BYE": ({EndKind.LOCAL_HANGUP}, {EndKind.REMOTE_HANGUP}),
    "callee BYE": ({EndKind.REMOTE_HANGUP}, {EndKind.LOCAL_HANGUP}),
    "rejected": ({EndKind.REJECTED}, {EndKind.REJECTED}),
    "cancelled": ({EndKind.CANCELLED}, {EndKind.CANCELLED}),
    "hold and resume": ({EndKind.LOCAL_HANGUP}, {EndKind.REMOTE_HANGUP}),
    # the callee hangs up as soon as it has answered: it waits for the ACK, then BYE
    "callee BYE at once": ({EndKind.REMOTE_HANGUP}, {EndKind.LOCAL_HANGUP}),
    "DTMF by INFO": ({EndKind.LOCAL_HANGUP}, {EndKind.REMOTE_HANGUP}),
    # both hang up at once: each side's BYE may or may not cross the other's
    "BYE glare": (
        {EndKind.LOCAL_HANGUP, EndKind.REMOTE_HANGUP},
        {EndKind.LOCAL_HANGUP, EndKind.REMOTE_HANGUP},
    ),
}
FLOW_NAMES = list(FLOWS)


class Mixed(CallHandler):
    """Decides by the caller's user part (``<flow number>-<call number>``)."""

    def __init__(self) -> None:
        self.calls: dict[str, CallSession] = {}

    async def on_incoming_call(self, call: CallSession) -> CallDecision:
        self.calls[call.call_id] = call
        flow = FLOW_NAMES[int(call.remote_party.uri.user.split("-")[0])]
        await trio.sleep(0.3)
        if flow == "rejected":
            return CallDecision.reject(486)
        if flow == "cancelled":
            return CallDecision.defer()
        return CallDecision.accept()



async def place_mixed(a: SessionCoordinator, handler: Mixed, n: int) -> Outcome:
    """Call ``n`` follows flow ``n % len(FLOWS)``; checks its own details on the way."""
    flow = FLOW_NAMES[n % len(FLOWS)]
    caller_hangs_up = not flow.startswith("callee")
    call = await a.make_call(BOB, from_user=f"{n % len(FLOWS)}-{n}")
    if flow in ("rejected", "cancelled"):
        if flow == "cancelled":
            await trio.sleep(2)  # ringing (the 180 itself may be lost: it is not retransmitted)
            await call.hangup()
        with trio.fail_after(PATIENCE):
            caller_reason = await call.wait_ended()
            callee_reason = await handler.calls[call.call_id].wait_ended()
        if flow == "rejected":
            assert caller_reason.status == 486
        return Outcome(True, caller_reason, callee_reason, call.duration, flow)
    assert await call.wait_state(CallState.ACTIVE, timeout=PATIENCE) is CallState.ACTIVE
    incoming = handler.calls[call.call_id]
    if flow != "callee BYE at once":
        assert await incoming.wait_state(CallState.ACTIVE, timeout=PATIENCE) is CallState.ACTIVE
        await trio.sleep(5)
    if flow == "hold and resume":
        await call.hold()
        await incoming.hold()
        await incoming.resume()
        await call.resume()
        assert not (call.local_hold or call.remote_hold)
        assert not (incoming.local_hold or incoming.remote_hold)
    if flow == "DTMF by INFO":
        events = incoming.events()
        await call.send_dtmf("19#", method="info")
        digits = []
        with trio.move_on_after(PATIENCE):
            async for event in events:
                if isinstance(event, DtmfReceived):
                    digits.append(event.digit)
                    if len(digits) == 3:
                        break
        assert digits == ["1", "9", "#"]  # each INFO reaches the application once, in order
    if flow == "BYE glare":
        async with trio.open_nursery() as both:
            both.start_soon(call.hangup)
            both.start_soon(incoming.hangup)
    else:
        await (call if caller_hangs_up else incoming).hangup()
    with trio.fail_after(PATIENCE):
        caller_reason, callee_reason = await call.wait_ended(), await incoming.wait_ended()
    return Outcome(caller_hangs_up, caller_reason, callee_reason, call.duration, flow)


def check_mixed(run: Run, calls: int) -> None:
    assert len(run.outcomes) == calls
    assert Counter(o.scenario for o in run.outcomes) == Counter(
        FLOW_NAMES[n % len(FLOWS)] for n in range(calls)
    )
    for outcome in run.outcomes:
        caller_kinds, callee_kinds = FLOWS[outcome.scenario]
        assert outcome.caller.kind in caller_kinds, outcome
        assert outcome.callee.kind in callee_kinds, outcome
    assert run.caller_counts == (0, 0, 0, 0)
    assert run.callee_counts == (0, 0, 0, 0)
    assert run.network.in_flight == 0


async def run_mixed(network: MemoryNetwork, calls: int) -> Run:
    handler = Mixed()
    return await run_calls(
        network, calls, handler=handler, place=lambda a, n: place_mixed(a, handler, n)
    )


async def test_every_call_flow_over_a_bad_network(autojump_clock: trio.testing.MockClock) -> None:
    network = MemoryNetwork(seed=7, **attrs.asdict(BAD))
    run = await run_mixed(network, 6 * len(FLOWS))
    check_mixed(run, 6 * len(FLOWS))



def session_timers(expires: int) -> Callable[[SessionManagerBuilder], SessionManagerBuilder]:
    return lambda b: b.session_timers(config=SessionTimerConfig(session_expires=expires))


async def test_session_refreshes_survive_a_bad_network(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # 1000 s a call, a refresh every 150 s (the BYE does not cross one: a refresh answered
    # 481 would end the call as FAILED). The refresher gives up 300/3 s before the end, so
    # each refresh has 50 s, more than its whole transaction (64*T1). (With the minimum
    # 90 s it would have only 15 s: 6 tries, lost about once in 20000 at 10%.)
    network = MemoryNetwork(seed=9, **attrs.asdict(BAD))
    run = await run_calls(network, 10, talk=1000.0, setup=session_timers(300))
    check_run(run, 10)
    assert len(network.sent("UPDATE")) >= 10 * 1000 // 150


async def test_a_partition_ends_calls_by_session_expiry(
    autojump_clock: trio.testing.MockClock,
) -> None:
    handler = Answering()
    network = MemoryNetwork(seed=10, **attrs.asdict(BAD))

    async def cut_off(a: SessionCoordinator, n: int) -> Outcome:
        call = await a.make_call(BOB, from_user=f"u{n}")
        assert await call.wait_state(CallState.ACTIVE, timeout=PATIENCE) is CallState.ACTIVE
        incoming = handler.calls[call.call_id]
        assert await incoming.wait_state(CallState.ACTIVE, timeout=PATIENCE) is CallState.ACTIVE
        await trio.sleep(PATIENCE)  # past every 2xx retransmission
        network.unreachable.update({A, B})  # nothing gets through from now on
        with trio.fail_after(200):
            caller_reason, callee_reason = await call.wait_ended(), await incoming.wait_ended()
        return Outcome(False, caller_reason, callee_reason, call.duration, "partition")

    run = await run_calls(
        network, 5, handler=handler, place=cut_off, setup=session_timers(90), spacing=0.0
    )
    assert len(run.outcomes) == 5
    for outcome in run.outcomes:
        # RFC 4028 10: both give up max(32, 90/3) s before the 90 s run out
        assert outcome.caller.kind is outcome.callee.kind is EndKind.SESSION_EXPIRED, outcome
        assert outcome.talked == pytest.approx(60.0, abs=1.0)
    assert run.caller_counts == run.callee_counts == (0, 0, 0, 0)


async def test_hangup_while_our_2xx_to_a_reinvite_is_unacked(
    autojump_clock: trio.testing.MockClock,
) -> None:
    network = MemoryNetwork()
    handler = Answering(delay=0.0)
    async with builder(network, A).build() as a, builder(network, B).handler(handler).build() as b:
        call = await a.make_call(BOB)
        assert await call.wait_state(CallState.ACTIVE, timeout=5) is CallState.ACTIVE
        incoming = handler.calls[call.call_id]
        assert await incoming.wait_state(CallState.ACTIVE, timeout=5) is CallState.ACTIVE
        # the callee puts the call on hold; its ACK for our 200 is lost once
        network.drop = lambda packet: packet.source == B and packet.first_line.startswith("ACK")
        await incoming.hold()
        network.drop = None
        await call.hangup()  # before our 200 is retransmitted (T1 = 0.5 s)
        assert call.end_reason is not None and call.end_reason.kind is EndKind.LOCAL_HANGUP
        with trio.move_on_after(PATIENCE):
            await incoming.wait_ended()
        assert network.sent("BYE"), "no BYE was ever sent"
        assert incoming.end_reason is not None
        assert incoming.end_reason.kind is EndKind.REMOTE_HANGUP
        await trio.sleep(SETTLE)
        assert counts(a) == counts(b) == (0, 0, 0, 0)


def lose_every_200_from_b(packet: Packet) -> bool:
    return packet.source == B and packet.first_line.startswith("SIP/2.0 200")


async def test_a_call_whose_answer_is_lost_ends(autojump_clock: trio.testing.MockClock) -> None:
    handler = Answering(delay=0.5)  # 100 Trying goes first: the INVITE is in Proceeding
    network = MemoryNetwork(drop=lose_every_200_from_b)
    async with builder(network, A).build() as a, builder(network, B).handler(handler).build() as b:
        call = await a.make_call(BOB)
        await trio.sleep(PATIENCE)
        (incoming,) = handler.calls.values()
        assert incoming.end_reason is not None and incoming.end_reason.kind is EndKind.NO_ACK
        assert counts(b) == (0, 0, 0, 0)
        await trio.sleep(600)  # ten minutes: longer than any sane ring limit
        assert call.state is CallState.TERMINATED, call.state
        assert counts(a) == (0, 0, 0, 0)


async def test_cancel_of_an_invite_nobody_answers_any_more_ends(
    autojump_clock: trio.testing.MockClock,
) -> None:
    handler = Answering(delay=0.5)
    network = MemoryNetwork(drop=lose_every_200_from_b)
    async with builder(network, A).build() as a, builder(network, B).handler(handler).build() as b:
        call = await a.make_call(BOB)
        await trio.sleep(PATIENCE)  # the callee has given up
        with trio.move_on_after(64 * 0.5 + 5):
            await call.hangup()
        assert network.sent("CANCEL")
        assert call.state is CallState.TERMINATED, call.state
        assert call.end_reason is not None and call.end_reason.kind is EndKind.CANCELLED
        await trio.sleep(SETTLE)
        assert counts(a) == counts(b) == (0, 0, 0, 0)
