"""SessionCoordinator end to end: two coordinators on the in-memory network, virtual time."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing

from trio_voip import (
    CallDecision,
    CallEnded,
    CallHandler,
    CallSession,
    CallState,
    CallStateChanged,
    DtmfReceived,
    EndKind,
    SessionCoordinator,
    SessionManagerBuilder,
)
from trio_voip.session.coordinator import CoordinatorStats
from trio_voip.testing.network import MemoryNetwork

A = ("127.0.0.1", 5060)
B = ("127.0.0.1", 5070)
BOB = "sip:bob@127.0.0.1:5070"
# Long enough for every transaction timer (64*T1, Timer K/I/D) to run out.
SETTLE = 40.0


@pytest.fixture
def clock(autojump_clock: trio.testing.MockClock) -> trio.testing.MockClock:
    return autojump_clock


class Scripted(CallHandler):
    """Answers with a fixed decision (or a function of the call) and records what happens."""

    def __init__(self, decide: CallDecision | Callable[[CallSession], CallDecision] | None = None, delay: float = 0.0) -> None:
        self.decide = decide or CallDecision.accept()
        self.delay = delay
        self.incoming: list[CallSession] = []
        self.established: list[CallSession] = []
        self.ended: list[tuple[CallSession, object]] = []

    async def on_incoming_call(self, call: CallSession) -> CallDecision:
        self.incoming.append(call)
        await trio.sleep(self.delay)
        return self.decide(call) if callable(self.decide) else self.decide

    async def on_call_established(self, call: CallSession) -> None:
        self.established.append(call)

    async def on_call_ended(self, call: CallSession, reason: object) -> None:
        self.ended.append((call, reason))


def builder(network: MemoryNetwork, address: tuple[str, int], handler: CallHandler | None = None) -> SessionManagerBuilder:
    b = SessionManagerBuilder().listen(*address).transport_factory(network.transport)
    b.rtp_ports(address[1] * 4, address[1] * 4 + 99)
    return b.handler(handler) if handler is not None else b


@asynccontextmanager
async def pair(
    network: MemoryNetwork | None = None,
    callee: CallHandler | None = None,
    *,
    caller_setup: Callable[[SessionManagerBuilder], object] = lambda b: None,
    callee_setup: Callable[[SessionManagerBuilder], object] = lambda b: None,
) -> AsyncIterator[tuple[SessionCoordinator, SessionCoordinator]]:
    network = network or MemoryNetwork()
    a_builder = builder(network, A)
    b_builder = builder(network, B, callee or Scripted())
    caller_setup(a_builder)
    callee_setup(b_builder)
    async with a_builder.build() as a, b_builder.build() as b:
        yield a, b


def empty(coordinator: SessionCoordinator) -> bool:
    s = coordinator.stats()
    return (s.calls, s.dialogs, s.transactions, s.rtp_ports) == (0, 0, 0, 0)


async def test_call_answered_and_hung_up_by_caller(clock: trio.testing.MockClock) -> None:
    handler = Scripted()
    async with pair(callee=handler) as (a, b):
        events = a.subscribe_to_session_events()
        call = await a.make_call(BOB, from_user="alice")
        assert call.state is CallState.INITIATING
        assert await call.wait_state(CallState.ACTIVE, timeout=5) is CallState.ACTIVE
        (incoming,) = handler.incoming
        assert await incoming.wait_state(CallState.ACTIVE, timeout=5) is CallState.ACTIVE
        await trio.testing.wait_all_tasks_blocked()
        assert handler.established == [incoming]
        # media negotiated both ways, on the ports each side advertised
        assert call.media is not None and incoming.media is not None
        assert call.media.remote_port == incoming.rtp_port
        assert incoming.media.remote_port == call.rtp_port
        assert a.stats().rtp_ports == 1 and b.stats().rtp_ports == 1
        await call.hangup()
        assert call.state is CallState.TERMINATED
        assert call.end_reason is not None and call.end_reason.kind is EndKind.LOCAL_HANGUP
        reason = await incoming.wait_ended()
        assert reason.kind is EndKind.REMOTE_HANGUP
        await trio.sleep(SETTLE)
        assert empty(a) and empty(b)
        seen = []
        while True:
            try:
                seen.append(events.receive_nowait())
            except trio.WouldBlock:
                break
        states = [(e.old, e.new) for e in seen if isinstance(e, CallStateChanged)]
        assert states == [
            (CallState.INITIATING, CallState.ACTIVE),
            (CallState.ACTIVE, CallState.TERMINATING),
            (CallState.TERMINATING, CallState.TERMINATED),
        ]
        assert isinstance(seen[-1], CallEnded) and seen[-1].reason.kind is EndKind.LOCAL_HANGUP
