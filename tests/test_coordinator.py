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
    CallError,
    CallHandler,
    CallSession,
    CallState,
    CallStateChanged,
    CallStateError,
    DtmfReceived,
    EndKind,
    RegistrationChanged,
    SessionCoordinator,
    SessionManagerBuilder,
    TransferProgress,
    TrioVoipError,
)
from trio_voip.session.coordinator import CoordinatorStats
from trio_voip.sip.headers import Headers
from trio_voip.sip.message import Request
from trio_voip.sip.session_timer import SessionTimerConfig
from trio_voip.sip.transaction import TimerConfig, new_branch
from trio_voip.sip.uri import SipUri, parse_uri
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

    def __init__(
        self,
        decide: CallDecision | Callable[[CallSession], CallDecision] | None = None,
        delay: float = 0.0,
    ) -> None:
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


def builder(
    network: MemoryNetwork, address: tuple[str, int], handler: CallHandler | None = None
) -> SessionManagerBuilder:
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


async def settle_and_check_empty(*coordinators: SessionCoordinator) -> None:
    await trio.sleep(SETTLE)
    for coordinator in coordinators:
        stats = coordinator.stats()
        assert stats == CoordinatorStats(
            0, 0, 0, 0, stats.registrations, stats.events_dropped
        ), coordinator


async def test_callee_hangs_up(clock: trio.testing.MockClock) -> None:
    handler = Scripted()
    async with pair(callee=handler) as (a, b):
        call = await a.make_call(BOB)
        await call.wait_state(CallState.ACTIVE, timeout=5)
        (incoming,) = handler.incoming
        await incoming.wait_state(CallState.ACTIVE, timeout=5)
        await incoming.hangup()
        assert incoming.end_reason is not None and incoming.end_reason.kind is EndKind.LOCAL_HANGUP
        assert (await call.wait_ended()).kind is EndKind.REMOTE_HANGUP
        await settle_and_check_empty(a, b)


@pytest.mark.parametrize(
    ("status", "kind"),
    [(486, EndKind.REJECTED), (603, EndKind.REJECTED), (480, EndKind.NO_ANSWER)],
)
async def test_rejected_call(clock: trio.testing.MockClock, status: int, kind: EndKind) -> None:
    handler = Scripted(CallDecision.reject(status))
    async with pair(callee=handler) as (a, b):
        call = await a.make_call(BOB)
        reason = await call.wait_ended()
        assert (reason.kind, reason.status) == (kind, status)
        (incoming,) = handler.incoming
        assert incoming.end_reason is not None and incoming.end_reason.status == status
        await settle_and_check_empty(a, b)


async def test_forward_answers_302_with_contact(clock: trio.testing.MockClock) -> None:
    network = MemoryNetwork()
    handler = Scripted(CallDecision.forward("sip:carol@127.0.0.1:5080"))
    async with pair(network, callee=handler) as (a, b):
        call = await a.make_call(BOB)
        reason = await call.wait_ended()
        assert (reason.kind, reason.status) == (EndKind.REDIRECTED, 302)
        (redirect,) = network.sent("SIP/2.0 302")
        assert b"Contact: <sip:carol@127.0.0.1:5080>" in redirect.data
        await settle_and_check_empty(a, b)


async def test_deferred_call_rings_then_app_answers(clock: trio.testing.MockClock) -> None:
    handler = Scripted(CallDecision.defer())
    async with pair(callee=handler) as (a, b):
        call = await a.make_call(BOB)
        assert await call.wait_state(CallState.RINGING, timeout=5) is CallState.RINGING
        (incoming,) = handler.incoming
        assert incoming.state is CallState.RINGING
        await trio.sleep(3)
        assert call.state is CallState.RINGING
        await incoming.answer()
        assert await call.wait_state(CallState.ACTIVE, timeout=5) is CallState.ACTIVE
        assert await incoming.wait_state(CallState.ACTIVE, timeout=5) is CallState.ACTIVE
        await call.hangup()
        await incoming.wait_ended()
        await settle_and_check_empty(a, b)


async def test_deferred_call_rejected_later_and_ring_timeout(clock: trio.testing.MockClock) -> None:
    handler = Scripted(CallDecision.defer())
    async with pair(callee=handler, callee_setup=lambda b: b.limits(ring_timeout=30)) as (a, b):
        first = await a.make_call(BOB)
        await first.wait_state(CallState.RINGING, timeout=5)
        await handler.incoming[0].reject(603, "Decline")
        assert (await first.wait_ended()).status == 603
        second = await a.make_call(BOB)
        reason = await second.wait_ended()
        assert (reason.kind, reason.status) == (EndKind.NO_ANSWER, 480)
        assert handler.incoming[1].end_reason is not None
        assert handler.incoming[1].end_reason.kind is EndKind.NO_ANSWER
        await settle_and_check_empty(a, b)


async def test_caller_cancels_while_ringing(clock: trio.testing.MockClock) -> None:
    handler = Scripted(CallDecision.defer())
    async with pair(callee=handler) as (a, b):
        call = await a.make_call(BOB)
        await call.wait_state(CallState.RINGING, timeout=5)
        await call.hangup()
        assert call.end_reason is not None
        assert (call.end_reason.kind, call.end_reason.status) == (EndKind.CANCELLED, 487)
        (incoming,) = handler.incoming
        assert (await incoming.wait_ended()).kind is EndKind.CANCELLED
        await settle_and_check_empty(a, b)


async def test_cancel_while_the_handler_is_still_deciding(clock: trio.testing.MockClock) -> None:
    handler = Scripted(CallDecision.accept(), delay=10)
    async with pair(callee=handler) as (a, b):
        call = await a.make_call(BOB)
        await trio.sleep(1)  # 100 Trying has come: the CANCEL goes at once
        await call.hangup()
        assert call.end_reason is not None and call.end_reason.kind is EndKind.CANCELLED
        (incoming,) = handler.incoming
        assert (await incoming.wait_ended()).kind is EndKind.CANCELLED
        await trio.sleep(15)  # the handler's late decision finds the call over
        assert incoming.state is CallState.TERMINATED
        await settle_and_check_empty(a, b)


async def test_hold_and_resume(clock: trio.testing.MockClock) -> None:
    handler = Scripted()
    async with pair(callee=handler) as (a, b):
        call = await a.make_call(BOB)
        await call.wait_state(CallState.ACTIVE, timeout=5)
        (incoming,) = handler.incoming
        await incoming.wait_state(CallState.ACTIVE, timeout=5)
        await call.hold()
        assert call.state is CallState.ON_HOLD and call.local_hold
        assert incoming.state is CallState.ON_HOLD and incoming.remote_hold
        assert call.media is not None and not call.media.direction.receives
        await call.resume()
        assert call.state is CallState.ACTIVE and incoming.state is CallState.ACTIVE
        assert call.media is not None and call.media.direction.receives
        await call.hangup()
        await settle_and_check_empty(a, b)


async def test_dtmf_by_info(clock: trio.testing.MockClock) -> None:
    handler = Scripted()
    async with pair(callee=handler) as (a, b):
        call = await a.make_call(BOB)
        await call.wait_state(CallState.ACTIVE, timeout=5)
        (incoming,) = handler.incoming
        await incoming.wait_state(CallState.ACTIVE, timeout=5)
        events = incoming.events()
        await call.send_dtmf("12#")
        digits = []
        with trio.fail_after(5):
            async for event in events:
                if isinstance(event, DtmfReceived):
                    digits.append((event.digit, event.duration))
                    if len(digits) == 3:
                        break
        assert digits == [("1", 160), ("2", 160), ("#", 160)]
        await call.hangup()
        await settle_and_check_empty(a, b)


async def test_subscriber_that_never_reads_does_not_block_calls(
    clock: trio.testing.MockClock,
) -> None:
    async with pair(callee_setup=lambda b: b.limits(event_buffer=2)) as (a, b):
        stuck = b.subscribe_to_session_events()  # never read
        for _ in range(3):
            call = await a.make_call(BOB)
            await call.wait_state(CallState.ACTIVE, timeout=5)
            await call.hangup()
        await settle_and_check_empty(a, b)
        assert b.stats().events_dropped > 0
        assert len([stuck.receive_nowait() for _ in range(2)]) == 2


async def test_no_ack_ends_the_call_with_bye(clock: trio.testing.MockClock) -> None:
    # Every ACK the caller sends is lost: the callee gives up after 64*T1 and sends BYE.
    network = MemoryNetwork(drop=lambda p: p.first_line.startswith("ACK"))
    handler = Scripted()
    async with pair(network, callee=handler) as (a, b):
        call = await a.make_call(BOB)
        await call.wait_state(CallState.ACTIVE, timeout=5)
        (incoming,) = handler.incoming
        start = trio.current_time()
        reason = await incoming.wait_ended()
        assert reason.kind is EndKind.NO_ACK
        assert trio.current_time() - start == pytest.approx(64 * 0.5, abs=1)
        assert (await call.wait_ended()).kind is EndKind.REMOTE_HANGUP
        assert network.sent("BYE")
        await settle_and_check_empty(a, b)


async def test_malformed_sdp_is_refused_and_other_calls_go_on(
    clock: trio.testing.MockClock,
) -> None:
    network = MemoryNetwork()
    handler = Scripted()
    async with pair(network, callee=handler) as (a, b):
        bad = await a.make_call(BOB, sdp=b"v=0\r\nthis is not sdp\r\n")
        reason = await bad.wait_ended()
        assert reason.status == 400 and reason.kind is EndKind.REJECTED
        assert handler.incoming == []
        good = await a.make_call(BOB)
        assert await good.wait_state(CallState.ACTIVE, timeout=5) is CallState.ACTIVE
        await good.hangup()
        await settle_and_check_empty(a, b)


def secured(b: SessionManagerBuilder) -> None:
    b.user("alice", "wonderland").require_auth(invite=True, register=True)


async def test_digest_auth_on_invite(clock: trio.testing.MockClock) -> None:
    network = MemoryNetwork()
    handler = Scripted()
    async with pair(
        network,
        callee=handler,
        caller_setup=lambda b: b.credentials("alice", "wonderland"),
        callee_setup=secured,
    ) as (a, b):
        call = await a.make_call(BOB, from_user="alice")
        assert await call.wait_state(CallState.ACTIVE, timeout=5) is CallState.ACTIVE
        assert len(network.sent("SIP/2.0 401")) == 1
        (authorized,) = [p for p in network.sent("INVITE") if b"Authorization: Digest" in p.data]
        assert b'username="alice"' in authorized.data
        await call.hangup()
        await settle_and_check_empty(a, b)


async def test_wrong_or_missing_credentials_are_refused(clock: trio.testing.MockClock) -> None:
    handler = Scripted()
    async with pair(callee=handler, callee_setup=secured) as (a, b):
        anonymous = await a.make_call(BOB)
        assert (await anonymous.wait_ended()).status == 401
        wrong = await a.make_call(BOB, credentials=("alice", "looking-glass"))
        assert (await wrong.wait_ended()).status == 401
        assert handler.incoming == []
        right = await a.make_call(BOB, credentials=("alice", "wonderland"))
        assert await right.wait_state(CallState.ACTIVE, timeout=5) is CallState.ACTIVE
        await right.hangup()
        await settle_and_check_empty(a, b)


async def test_register_then_call_the_user_by_name(clock: trio.testing.MockClock) -> None:
    """Bob's phone (coordinator B) registers with A; A calls "bob" and reaches B."""

    handler = Scripted()
    async with pair(callee=handler) as (a, b):
        events = a.subscribe_to_session_events()
        h = Headers()
        h.add("Via", f"SIP/2.0/UDP 127.0.0.1:5070;branch={new_branch()}")
        h.add("Max-Forwards", "70")
        h.add("From", "<sip:bob@127.0.0.1>;tag=r1")
        h.add("To", "<sip:bob@127.0.0.1>")
        h.add("Call-ID", "reg-1@127.0.0.1")
        h.add("CSeq", "1 REGISTER")
        h.add("Contact", "<sip:bob@127.0.0.1:5070>")
        h.add("Expires", "600")
        register = Request("REGISTER", parse_uri("sip:127.0.0.1"), h)
        handle = await b.endpoint.request(register, *A)
        assert (await handle.final_response()).status == 200
        assert a.stats().registrations == 1
        call = await a.make_call("bob")
        assert await call.wait_state(CallState.ACTIVE, timeout=5) is CallState.ACTIVE
        assert len(handler.incoming) == 1
        await call.hangup()
        with pytest.raises(TrioVoipError):
            await a.make_call("nobody")
        await settle_and_check_empty(a, b)
        # registrations are events too: accepted, then dropped by an admin; another binding
        # expiring (Expires: 60, no refresh) is reported when it runs out
        assert a.drop_registrations("bob") == 1 and a.stats().registrations == 0
        assert a.drop_registrations("bob") == 0
        h.set("CSeq", "2 REGISTER")
        h.set("Expires", "60")
        h.set("Via", f"SIP/2.0/UDP 127.0.0.1:5070;branch={new_branch()}")
        handle = await b.endpoint.request(Request("REGISTER", parse_uri("sip:127.0.0.1"), h), *A)
        assert (await handle.final_response()).status == 200
        await trio.sleep(61)
        assert a.stats().registrations == 0
        seen = []
        while True:
            try:
                event = events.receive_nowait()
            except trio.WouldBlock:
                break
            if isinstance(event, RegistrationChanged):
                seen.append((event.aor, event.contacts))
        assert seen == [("sip:bob@127.0.0.1", 1), ("sip:bob@127.0.0.1", 0),
                        ("sip:bob@127.0.0.1", 1), ("sip:bob@127.0.0.1", 0)]


async def test_options_and_unknown_dialog(clock: trio.testing.MockClock) -> None:

    def request(method: str, to_tag: str | None = None) -> Request:
        h = Headers()
        h.add("Via", f"SIP/2.0/UDP 127.0.0.1:5060;branch={new_branch()}")
        h.add("Max-Forwards", "70")
        h.add("From", "<sip:a@127.0.0.1>;tag=f1")
        h.add("To", "<sip:bob@127.0.0.1>" + (f";tag={to_tag}" if to_tag else ""))
        h.add("Call-ID", f"{method}-x@127.0.0.1")
        h.add("CSeq", f"1 {method}")
        return Request(method, parse_uri(BOB), h)

    async with pair() as (a, b):
        ok = await (await a.endpoint.request(request("OPTIONS"), *B)).final_response()
        assert ok.status == 200 and "INVITE" in (ok.headers.get("Allow") or "")
        assert "application/sdp" in (ok.headers.get("Accept") or "")
        unknown = await (await a.endpoint.request(request("BYE", "nope"), *B)).final_response()
        assert unknown.status == 481
        odd = await (await a.endpoint.request(request("SUBSCRIBE"), *B)).final_response()
        assert odd.status == 405


async def test_shutdown_hangs_up_live_calls(clock: trio.testing.MockClock) -> None:
    network = MemoryNetwork()
    handler = Scripted()
    a_builder = builder(network, A)
    async with builder(network, B, handler).build() as b:
        async with a_builder.build() as a:
            call = await a.make_call(BOB)
            await call.wait_state(CallState.ACTIVE, timeout=5)
        assert call.end_reason is not None and call.end_reason.kind is EndKind.LOCAL_HANGUP
        assert (await handler.incoming[0].wait_ended()).kind is EndKind.REMOTE_HANGUP
        assert network.sent("BYE")
        await settle_and_check_empty(b)
        assert a.stats().rtp_ports == 0 and a.stats().calls == 0


async def test_session_timer_expiry_ends_the_call(clock: trio.testing.MockClock) -> None:
    """Both ask for 90 s session timers; the refreshes never arrive: the call ends after
    the interval (RFC 4028 10) with BYE."""

    network = MemoryNetwork(drop=lambda p: p.first_line.startswith(("UPDATE", "INVITE sip:trio")))
    config = SessionTimerConfig(min_se=90, session_expires=90, refresher="uac")
    handler = Scripted()
    async with pair(
        network,
        callee=handler,
        caller_setup=lambda b: b.session_timers(config=config),
        callee_setup=lambda b: b.session_timers(config=config),
    ) as (a, b):
        call = await a.make_call(BOB)
        await call.wait_state(CallState.ACTIVE, timeout=5)
        (incoming,) = handler.incoming
        start = trio.current_time()
        reason = await incoming.wait_ended()
        assert reason.kind is EndKind.SESSION_EXPIRED
        assert 60 <= trio.current_time() - start <= 90
        # The refresher also sees its refreshes go unanswered, and ends too.
        assert (await call.wait_ended()).kind is not EndKind.LOCAL_HANGUP
        await settle_and_check_empty(a, b)


async def test_offerless_invite_is_answered_in_the_ack(clock: trio.testing.MockClock) -> None:
    handler = Scripted()
    async with pair(callee=handler) as (a, b):
        call = await a.make_call(BOB, sdp=b"")
        await call.wait_state(CallState.ACTIVE, timeout=5)
        (incoming,) = handler.incoming
        await incoming.wait_state(CallState.ACTIVE, timeout=5)
        assert incoming.media is not None and call.media is not None
        assert incoming.media.remote_port == call.rtp_port
        await call.hangup()
        await settle_and_check_empty(a, b)


async def test_blind_transfer(clock: trio.testing.MockClock) -> None:
    """A calls B; A transfers B to C; B calls C, reports progress, and the A-B call ends."""
    network = MemoryNetwork()
    b_handler, c_handler = Scripted(), Scripted()
    async with (
        builder(network, A).build() as a,
        builder(network, B, b_handler).build() as b,
        builder(network, ("127.0.0.1", 5080), c_handler).build() as c,
    ):
        events = a.subscribe_to_session_events()
        call = await a.make_call(BOB)
        await call.wait_state(CallState.ACTIVE, timeout=5)
        await b_handler.incoming[0].wait_state(CallState.ACTIVE, timeout=5)
        await call.transfer("sip:carol@127.0.0.1:5080")
        reason = await call.wait_ended()
        assert reason.kind is EndKind.TRANSFERRED
        assert (await b_handler.incoming[0].wait_ended()).kind is EndKind.TRANSFERRED
        (to_carol,) = c_handler.incoming
        assert await to_carol.wait_state(CallState.ACTIVE, timeout=5) is CallState.ACTIVE
        progress = []
        while True:
            try:
                event = events.receive_nowait()
            except trio.WouldBlock:
                break
            if isinstance(event, TransferProgress):
                progress.append(event.status)
        assert progress[-1] == 200
        await to_carol.hangup()
        await settle_and_check_empty(a, b, c)


async def test_real_sockets_port_zero() -> None:
    """Two coordinators on 127.0.0.1 with real UDP/TCP sockets on ephemeral ports."""

    fast = TimerConfig(t1=0.01, t2=0.1, t4=0.1, timer_d_unreliable=0.2)
    handler = Scripted()
    callee = SessionManagerBuilder().listen("127.0.0.1", 0).timers(fast).handler(handler)
    caller = SessionManagerBuilder().listen("127.0.0.1", 0).timers(fast)
    with trio.fail_after(10):
        async with callee.build() as b, caller.build() as a:
            assert b.port("UDP") != 0 and b.port("TCP") != 0
            for transport in ("UDP", "TCP"):
                call = await a.make_call(
                    f"sip:bob@127.0.0.1:{b.port(transport)};transport={transport.lower()}"
                )
                assert await call.wait_state(CallState.ACTIVE, timeout=5) is CallState.ACTIVE
                await call.hangup()
                await handler.incoming[-1].wait_ended()
            with trio.fail_after(64 * 0.01 + 1):  # the INVITE server's Timer L at most
                while not (empty(a) and empty(b)):
                    await trio.sleep(0.02)


async def test_call_limit_and_failing_handler(clock: trio.testing.MockClock) -> None:
    class Broken(Scripted):
        async def on_incoming_call(self, call: CallSession) -> CallDecision:
            uri = call.invite.uri if call.invite is not None else None
            if isinstance(uri, SipUri) and uri.user == "boom":
                raise RuntimeError("handler bug")
            return await super().on_incoming_call(call)

    handler = Broken()
    async with pair(callee=handler, callee_setup=lambda b: b.limits(max_calls=1)) as (a, b):
        boom = await a.make_call("sip:boom@127.0.0.1:5070")
        assert (await boom.wait_ended()).status == 500
        first = await a.make_call(BOB)
        await first.wait_state(CallState.ACTIVE, timeout=5)
        second = await a.make_call(BOB)
        assert (await second.wait_ended()).status == 503
        assert first.state is CallState.ACTIVE
        await first.hangup()
        await settle_and_check_empty(a, b)


async def test_out_of_order_cseq_is_refused_and_the_call_goes_on(
    clock: trio.testing.MockClock,
) -> None:
    handler = Scripted()
    async with pair(callee=handler) as (a, b):
        call = await a.make_call(BOB)
        await call.wait_state(CallState.ACTIVE, timeout=5)
        await call.send_dtmf("5")
        (dialog,) = list(a.dialogs)
        stale = a.dialogs.new_request(dialog.id, "INFO")
        stale.headers.set("CSeq", f"{stale.cseq.seq - 5} INFO")
        response = await (await a.endpoint.request(stale, *B)).final_response()
        assert response.status == 500
        await call.send_dtmf("6")  # the dialog still works
        assert handler.incoming[0].state is CallState.ACTIVE
        await call.hangup()
        await settle_and_check_empty(a, b)


async def test_b2bua_passes_sdp_through(clock: trio.testing.MockClock) -> None:
    """B answers A only once C answers B, with C's SDP; A's offer reaches C unchanged."""
    network = MemoryNetwork()
    c_handler = Scripted()

    class Bridge(CallHandler):
        def __init__(self) -> None:
            self.outgoing: list[CallSession] = []

        async def on_incoming_call(self, call: CallSession) -> CallDecision:
            assert call.remote_sdp is not None
            out = await b.make_call("sip:carol@127.0.0.1:5080", sdp=call.remote_sdp)
            self.outgoing.append(out)
            if await out.wait_state(CallState.ACTIVE) is CallState.ACTIVE:
                return CallDecision.accept(sdp=out.remote_sdp)
            assert out.end_reason is not None
            return CallDecision.reject(out.end_reason.status or 480)

    bridge = Bridge()
    async with (
        builder(network, A).build() as a,
        builder(network, B, bridge).build() as b,
        builder(network, ("127.0.0.1", 5080), c_handler).build() as c,
    ):
        call = await a.make_call(BOB)
        await call.wait_state(CallState.ACTIVE, timeout=5)
        (at_carol,) = c_handler.incoming
        await at_carol.wait_state(CallState.ACTIVE, timeout=5)
        assert call.media is not None and at_carol.media is not None
        # media flows A <-> C directly: each side sees the other's RTP port
        assert call.media.remote_port == at_carol.rtp_port
        assert at_carol.media.remote_port == call.rtp_port
        assert b.stats().rtp_ports == 0  # B advertised nothing of its own
        await call.hangup()
        await bridge.outgoing[0].hangup()
        await settle_and_check_empty(a, b, c)


async def test_handler_hears_about_calls_ended_by_shutdown(clock: trio.testing.MockClock) -> None:
    network = MemoryNetwork()
    handler = Scripted()
    async with builder(network, A).build() as a:
        async with builder(network, B, handler).build():
            call = await a.make_call(BOB)
            await call.wait_state(CallState.ACTIVE, timeout=5)
        assert [c for c, _ in handler.ended] == handler.incoming
        assert (await call.wait_ended()).kind is EndKind.REMOTE_HANGUP


async def test_attended_transfer_with_replaces(clock: trio.testing.MockClock) -> None:
    """A talks to B and to C; A transfers B to C replacing A-C: B and C end up talking."""
    network = MemoryNetwork()
    b_handler, c_handler = Scripted(), Scripted()
    async with (
        builder(network, A).build() as a,
        builder(network, B, b_handler).build() as b,
        builder(network, ("127.0.0.1", 5080), c_handler).build() as c,
    ):
        to_bob = await a.make_call(BOB)
        to_carol = await a.make_call("sip:carol@127.0.0.1:5080")
        for call in (to_bob, to_carol):
            await call.wait_state(CallState.ACTIVE, timeout=5)
        (carol_leg,) = c_handler.incoming
        await carol_leg.wait_state(CallState.ACTIVE, timeout=5)
        await to_bob.transfer("sip:carol@127.0.0.1:5080", replaces=to_carol)
        assert (await to_bob.wait_ended()).kind is EndKind.TRANSFERRED
        assert (await to_carol.wait_ended()).kind is EndKind.TRANSFERRED
        assert (await carol_leg.wait_ended()).kind is EndKind.TRANSFERRED
        assert c_handler.incoming == [carol_leg]  # not asked about the replacing call
        live = c.calls
        assert len(live) == 1 and live[0].replaces == carol_leg.id
        assert live[0].state is CallState.ACTIVE
        (bob_side,) = [x for x in b.calls if x.direction.value == "outgoing"]
        assert bob_side.state is CallState.ACTIVE
        await bob_side.hangup()
        await settle_and_check_empty(a, b, c)


async def test_replaces_naming_no_call_is_refused(clock: trio.testing.MockClock) -> None:
    async with pair() as (a, b):
        call = await a.make_call(BOB, headers=[("Replaces", "nope@x;to-tag=1;from-tag=2")])
        assert (await call.wait_ended()).status == 481
        await settle_and_check_empty(a, b)


async def test_unreachable_targets(clock: trio.testing.MockClock) -> None:
    async with pair() as (a, b):
        lost = await a.make_call("sip:nobody@127.0.0.1:5999")  # UDP into the void
        start = trio.current_time()
        reason = await lost.wait_ended()
        assert (reason.kind, reason.status) == (EndKind.NO_ANSWER, 408)
        assert trio.current_time() - start == pytest.approx(64 * 0.5, abs=1)
        refused = await a.make_call("sip:nobody@127.0.0.1:5999;transport=tcp")
        assert (await refused.wait_ended()).kind is EndKind.FAILED
        await settle_and_check_empty(a, b)


async def test_actions_the_state_does_not_allow(clock: trio.testing.MockClock) -> None:
    handler = Scripted(CallDecision.defer())
    async with pair(callee=handler) as (a, b):
        call = await a.make_call(BOB)
        await call.wait_state(CallState.RINGING, timeout=5)
        (incoming,) = handler.incoming
        with pytest.raises(CallStateError):
            await call.answer()  # our own outgoing call
        with pytest.raises(CallStateError):
            await incoming.hold()  # not established
        with pytest.raises(CallStateError):
            await incoming.send_dtmf("1")
        await incoming.answer()
        await call.wait_state(CallState.ACTIVE, timeout=5)
        with pytest.raises(CallStateError):
            await incoming.answer()  # answered already
        with pytest.raises(CallError):
            await call.send_dtmf("x")
        await call.hangup()
        await call.hangup()  # ending an ended call does nothing
        await settle_and_check_empty(a, b)


def test_builder_checks_its_settings() -> None:
    with pytest.raises(TrioVoipError):
        SessionManagerBuilder().require_auth(invite=True).config()
    with pytest.raises(TrioVoipError):
        SessionManagerBuilder().rtp_ports(3000, 2000).config()
    with pytest.raises(TrioVoipError):
        SessionManagerBuilder(no_such_setting=1).config()
    config = SessionManagerBuilder().listen("0.0.0.0", 5062).advertise("sip.example").config()
    assert (config.port, config.public_host) == (5062, "sip.example")


async def test_md5_only_challenges(clock: trio.testing.MockClock) -> None:
    network = MemoryNetwork()
    async with pair(
        network,
        caller_setup=lambda b: b.credentials("alice", "wonderland"),
        callee_setup=lambda b: secured(b.digest_algorithms("MD5")),
    ) as (a, b):
        call = await a.make_call(BOB)
        await call.wait_state(CallState.ACTIVE, timeout=5)
        (challenge,) = network.sent("SIP/2.0 401")
        assert challenge.data.count(b"WWW-Authenticate") == 1 and b"algorithm=MD5" in challenge.data
        await call.hangup()
        await settle_and_check_empty(a, b)


async def test_session_refreshes_keep_the_call_alive(clock: trio.testing.MockClock) -> None:
    network = MemoryNetwork()
    config = SessionTimerConfig(min_se=90, session_expires=90, refresher="uac")
    handler = Scripted()
    async with pair(
        network,
        callee=handler,
        caller_setup=lambda b: b.session_timers(config=config),
        callee_setup=lambda b: b.session_timers(config=config),
    ) as (a, b):
        call = await a.make_call(BOB)
        await call.wait_state(CallState.ACTIVE, timeout=5)
        await trio.sleep(400)
        assert call.state is CallState.ACTIVE and handler.incoming[0].state is CallState.ACTIVE
        assert len(network.sent("UPDATE")) >= 400 // 45 - 1
        await call.hangup()
        await settle_and_check_empty(a, b)


async def test_shutdown_cancels_a_ringing_outgoing_call(clock: trio.testing.MockClock) -> None:
    network = MemoryNetwork()
    handler = Scripted(CallDecision.defer())
    async with builder(network, B, handler).build() as b:
        async with builder(network, A).build() as a:
            call = await a.make_call(BOB)
            await call.wait_state(CallState.RINGING, timeout=5)
        assert call.end_reason is not None and call.end_reason.kind is EndKind.CANCELLED
        assert network.sent("CANCEL")
        assert (await handler.incoming[0].wait_ended()).kind is EndKind.CANCELLED
        await settle_and_check_empty(b)


async def test_a_coordinator_runs_once(clock: trio.testing.MockClock) -> None:
    coordinator = builder(MemoryNetwork(), A).build()
    with pytest.raises(TrioVoipError):
        await coordinator.make_call(BOB)  # not started
    async with coordinator:
        pass
    with pytest.raises(TrioVoipError):
        await coordinator.make_call(BOB)  # stopped
    with pytest.raises(TrioVoipError):
        async with coordinator:
            pass


async def test_hold_glare_is_retried(clock: trio.testing.MockClock) -> None:
    """Both sides put the call on hold at the same moment: both re-INVITEs get 491, each
    side retries after its back-off, and the call ends up held both ways."""
    network = MemoryNetwork()
    handler = Scripted()
    async with pair(network, callee=handler) as (a, b):
        call = await a.make_call(BOB)
        await call.wait_state(CallState.ACTIVE, timeout=5)
        (incoming,) = handler.incoming
        await incoming.wait_state(CallState.ACTIVE, timeout=5)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(call.hold)
            nursery.start_soon(incoming.hold)
        assert len(network.sent("SIP/2.0 491")) == 2
        assert call.state is incoming.state is CallState.ON_HOLD
        assert call.local_hold and call.remote_hold and incoming.local_hold and incoming.remote_hold
        assert call.media is not None and call.media.direction.value == "inactive"
        await call.hangup()
        await settle_and_check_empty(a, b)


async def test_early_media_183_then_answer(clock: trio.testing.MockClock) -> None:
    """The callee sends 183 with its SDP before answering: the caller has the early media's
    remote address while RINGING, then the 2xx's answer."""
    network = MemoryNetwork()

    class Progress(Scripted):
        async def on_incoming_call(self, call: CallSession) -> CallDecision:
            self.incoming.append(call)
            assert call.remote_sdp is not None
            await call.ring(sdp=call.remote_sdp)  # any SDP will do for the test: echo
            return CallDecision.defer()

    handler = Progress()
    async with pair(network, callee=handler) as (a, b):
        call = await a.make_call(BOB)
        await call.wait_state(CallState.RINGING, timeout=5)
        assert len(network.sent("SIP/2.0 183")) == 1
        assert call.remote_sdp is not None and call.media is not None
        assert call.media.remote_port == call.rtp_port  # the echoed offer
        (incoming,) = handler.incoming
        assert incoming.state is CallState.RINGING
        await incoming.answer()
        await call.wait_state(CallState.ACTIVE, timeout=5)
        assert call.media is not None and call.media.remote_port == incoming.rtp_port
        await call.hangup()
        await settle_and_check_empty(a, b)
