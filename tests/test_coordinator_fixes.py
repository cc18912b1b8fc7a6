"""Nothing left behind: a BYE waits for the ACK of our 2xx, an outgoing call is bounded after
its provisional responses (Timer C) and after its CANCEL (RFC 3261 9.1), and a cancelled
make_call still cancels the INVITE it sent. Also the small pieces of the SIP layers these
need: abandoning an INVITE client transaction, ``DialogLayer.awaiting_ack``.

Calls run on the in-memory network in virtual time (MockClock, autojump).
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

from test_coordinator_lossy import (
    A,
    B,
    BOB,
    PATIENCE,
    SETTLE,
    Answering,
    builder,
    counts,
)
from test_coordinator import Scripted, pair
from test_dialog_support import in_dialog, invite
from test_transaction_stack import ALICE, BOB as BOB_ADDRESS, new_request, start
from trio_voip import CallDecision, CallHandler, CallSession, CallState, EndKind
from trio_voip.session.events import CallEnded
from trio_voip.errors import TransactionError, TrioVoipError
from trio_voip.session.builder import SessionManagerBuilder
from trio_voip.session.state import EndReason
from trio_voip.sip import make_response
from trio_voip.sip import session_timer as st
from trio_voip.sip.dialog import (
    AckTimeout,
    DialogLayer,
    DialogTerminated,
    OutOfDialog,
    RequestReceived,
    Retransmit,
    SendBye,
    SessionExpired,
)
from trio_voip.sip.transaction import (
    InviteClientTransaction,
    TimerConfig,
    TransactionLayer,
    TransactionState,
    TransactionTerminated,
    client_key,
)
from trio_voip.sip.uri import parse_uri
from trio_voip.testing.network import MemoryNetwork, Packet

T1 = 0.5


# --- abandoning an INVITE client transaction (sans-IO) -------------------------------------------


def invite_client() -> InviteClientTransaction:
    request = new_request("INVITE", branch=True)
    txn = InviteClientTransaction(
        request=request, destination=BOB_ADDRESS, reliable=False, key=client_key(request)
    )
    txn.start(0.0)
    return txn


@pytest.mark.parametrize("provisional", [False, True])
def test_an_invite_waiting_for_its_final_response_can_be_abandoned(provisional: bool) -> None:
    txn = invite_client()
    if provisional:
        txn.receive(make_response(txn.request, 180, to_tag="b"), 0.1)
        assert txn.state is TransactionState.PROCEEDING
    assert txn.abandon(40.0) == [TransactionTerminated(txn.key)]
    assert txn.state is TransactionState.TERMINATED
    assert txn.next_deadline() is None  # Timers A and B went with it


@pytest.mark.parametrize("status", [200, 487])
def test_an_invite_with_its_final_response_is_not_abandoned(status: int) -> None:
    txn = invite_client()
    txn.receive(make_response(txn.request, status, to_tag="b"), 0.1)
    with pytest.raises(TransactionError):
        txn.abandon(1.0)


def test_the_layer_abandons_only_live_invite_client_transactions() -> None:
    layer = TransactionLayer(TimerConfig())
    key, _ = layer.send_request(new_request("INVITE"), BOB_ADDRESS, 0.0, reliable=False)
    options, _ = layer.send_request(new_request("OPTIONS"), BOB_ADDRESS, 0.0, reliable=False)
    assert layer.abandon(key, 1.0) == [TransactionTerminated(key)]
    assert key not in layer and len(layer) == 1
    with pytest.raises(TransactionError):
        layer.abandon(key, 1.0)  # gone
    with pytest.raises(TransactionError):
        layer.abandon(options, 1.0)


async def test_an_abandoned_handle_stops_iteration_and_frees_its_transaction(
    autojump_clock: trio.testing.MockClock,
) -> None:
    network = MemoryNetwork()
    async with trio.open_nursery() as nursery:
        alice = await start(nursery, network, ALICE)
        bob = await start(nursery, network, BOB_ADDRESS)

        async def ring_only() -> None:
            async for handle in bob.incoming:
                if handle.request.method == "INVITE":
                    await handle.respond(make_response(handle.request, 180, to_tag="b1"))
                else:  # the CANCEL: answered, but no 487 follows
                    await handle.respond(make_response(handle.request, 200))

        nursery.start_soon(ring_only)
        handle = await alice.request(new_request("INVITE"), *BOB_ADDRESS)
        assert (await handle.__anext__()).status == 180
        assert not handle.cancel_sent
        await handle.cancel()
        assert handle.cancel_sent
        await trio.sleep(64 * T1)
        assert handle.key in alice.layer  # no final response: it would wait for good
        await handle.abandon()
        await handle.abandon()  # once is enough
        assert handle.key not in alice.layer
        with pytest.raises(TransactionError, match="abandoned"):
            await handle.final_response()
        with pytest.raises(TransactionError):
            await (await alice.request(new_request("OPTIONS"), *BOB_ADDRESS)).abandon()
        nursery.cancel_scope.cancel()


# --- the dialog layer: no BYE before the ACK of our 2xx ------------------------------------------

SESSION = st.SessionTimerConfig(min_se=90, session_expires=90)
BOB_CONTACT = parse_uri("sip:bob@192.0.2.4")


def unacked_uas_dialog() -> tuple[DialogLayer, object]:
    """A 2xx of ours with session timers (90 s, the caller refreshes) and a T1 so long that
    the session expires (after 90 - 32 s) while the 2xx still waits for its ACK (128 s)."""
    layer = DialogLayer(t1=2.0, session_timers=SESSION)
    request = invite(extra=["Supported: timer", "Session-Expires: 90;refresher=uac"])
    assert [type(e) for e in layer.on_request(request, 0.0)] == [OutOfDialog]
    dialog = layer.create_uas(request, "bobtag", BOB_CONTACT)
    layer.respond(request, 200, now=0.0, dialog_id=dialog.id)
    assert layer.awaiting_ack(dialog.id)
    return layer, dialog.id


def run_timers_until(layer: DialogLayer, until: float) -> list[object]:
    events: list[object] = []
    while (deadline := layer.next_deadline()) is not None and deadline <= until:
        events += layer.on_timer(deadline)
    return events


def test_a_session_expiring_before_the_ack_sends_its_bye_after_it() -> None:
    layer, dialog_id = unacked_uas_dialog()
    events = run_timers_until(layer, 100.0)
    assert SessionExpired(dialog_id) in events
    assert not any(isinstance(e, SendBye | DialogTerminated) for e in events)
    assert any(isinstance(e, Retransmit) for e in events)
    assert layer.count == 1 and layer.awaiting_ack(dialog_id)
    acked = layer.on_request(in_dialog("ACK", 314159), 100.0)
    assert [type(e) for e in acked] == [RequestReceived, SendBye, DialogTerminated]
    assert acked[2] == DialogTerminated(dialog_id, "session expired")
    assert layer.count == 0 and layer.next_deadline() is None


def test_a_session_expiring_before_an_ack_that_never_comes_ends_at_the_ack_timeout() -> None:
    layer, dialog_id = unacked_uas_dialog()
    events = run_timers_until(layer, 1000.0)
    kinds = [type(e) for e in events if not isinstance(e, Retransmit)]
    assert kinds == [SessionExpired, AckTimeout, SendBye, DialogTerminated]
    assert layer.count == 0 and not layer.awaiting_ack(dialog_id)


# --- the coordinator ------------------------------------------------------------------------------


def acks_from_b(packet: Packet) -> bool:
    return packet.source == B and packet.first_line.startswith("ACK")


async def held_call(
    network: MemoryNetwork, a: object, handler: Answering
) -> tuple[CallSession, CallSession]:
    """An answered call from A that B then puts on hold, losing its ACKs while ``network.drop``
    says so: A's 200 to the re-INVITE waits for its ACK."""
    call = await a.make_call(BOB)  # type: ignore[attr-defined]
    assert await call.wait_state(CallState.ACTIVE, timeout=5) is CallState.ACTIVE
    incoming = handler.calls[call.call_id]
    assert await incoming.wait_state(CallState.ACTIVE, timeout=5) is CallState.ACTIVE
    network.drop = acks_from_b
    await incoming.hold()
    return call, incoming


async def test_a_bye_waiting_for_an_ack_that_never_comes_is_bounded(
    autojump_clock: trio.testing.MockClock,
) -> None:
    network = MemoryNetwork()
    handler = Answering(delay=0.0)
    async with builder(network, A).build() as a, builder(network, B).handler(handler).build() as b:
        call, incoming = await held_call(network, a, handler)
        started = trio.current_time()
        await call.hangup()
        # 64*T1 after our 200 the dialog layer gives up on its ACK and hangs up itself
        assert trio.current_time() - started == pytest.approx(64 * T1, abs=0.1)
        assert call.end_reason is not None and call.end_reason.kind is EndKind.NO_ACK
        with trio.fail_after(5):
            reason = await incoming.wait_ended()
        assert reason.kind is EndKind.REMOTE_HANGUP
        assert len(network.sent("BYE")) == 1
        await trio.sleep(SETTLE)
        assert counts(a) == counts(b) == (0, 0, 0, 0)


async def test_shutdown_byes_a_call_whose_2xx_awaits_its_ack(
    autojump_clock: trio.testing.MockClock,
) -> None:
    network = MemoryNetwork()
    handler = Answering(delay=0.0)
    async with builder(network, B).handler(handler).build() as b:
        async with builder(network, A).build() as a:
            call, incoming = await held_call(network, a, handler)
            network.drop = None  # the retransmitted 200 gets its ACK within the shutdown bound
        assert call.end_reason is not None and call.end_reason.kind is EndKind.LOCAL_HANGUP
        assert network.sent("BYE")
        with trio.fail_after(5):
            reason = await incoming.wait_ended()
        assert reason.kind is EndKind.REMOTE_HANGUP
        await trio.sleep(SETTLE)
        assert counts(b) == (0, 0, 0, 0)


class Ringing(CallHandler):
    """Rings (180 at once, then again every ``every`` seconds) and answers after ``answer``
    seconds, or never."""

    def __init__(self, every: float = 1000.0, answer: float = 1000.0) -> None:
        self.every = every
        self.answer = answer
        self.calls: list[CallSession] = []

    async def on_incoming_call(self, call: CallSession) -> CallDecision:
        self.calls.append(call)
        rung = 0.0
        while rung + self.every < self.answer:
            await call.ring()
            await trio.sleep(self.every)
            rung += self.every
        await call.ring()
        await trio.sleep(self.answer - rung)
        return CallDecision.accept()


@pytest.mark.parametrize(
    ("setup", "bound"),
    [
        (lambda b: b, 180.0),  # the default
        (lambda b: b.limits(answer_timeout=50.0), 50.0),
        (lambda b: b.timers(TimerConfig(timer_c=40.0)).limits(answer_timeout=50.0), 40.0),
    ],
)
async def test_a_call_nobody_answers_is_cancelled_at_the_answer_timeout(
    setup, bound: float, autojump_clock: trio.testing.MockClock
) -> None:
    network = MemoryNetwork()
    handler = Ringing()
    b_setup = builder(network, B).handler(handler).limits(ring_timeout=1000.0)
    async with setup(builder(network, A)).build() as a, b_setup.build() as b:
        started = trio.current_time()
        call = await a.make_call(BOB)
        with trio.fail_after(bound + PATIENCE):
            reason = await call.wait_ended()
        assert reason == EndReason(EndKind.NO_ANSWER, 408, "no final response in time")
        # from the 180 (it came at once): a CANCEL, answered 487
        assert trio.current_time() - started == pytest.approx(bound, abs=0.1)
        assert len(network.sent("CANCEL")) == 1
        (incoming,) = handler.calls
        assert (await incoming.wait_ended()).kind is EndKind.CANCELLED
        await trio.sleep(SETTLE)
        assert counts(a) == counts(b) == (0, 0, 0, 0)


async def test_each_provisional_response_restarts_the_answer_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    network = MemoryNetwork()
    handler = Ringing(every=30.0, answer=100.0)
    b_setup = builder(network, B).handler(handler).limits(ring_timeout=1000.0)
    async with builder(network, A).limits(answer_timeout=50.0).build() as a, b_setup.build():
        call = await a.make_call(BOB)
        assert await call.wait_state(CallState.ACTIVE, timeout=200) is CallState.ACTIVE
        assert not network.sent("CANCEL")
        await call.hangup()


def lose_487s_from_b(packet: Packet) -> bool:
    return packet.source == B and packet.first_line.startswith("SIP/2.0 487")


async def test_a_cancelled_invite_without_final_response_ends_64_t1_after_the_cancel(
    autojump_clock: trio.testing.MockClock,
) -> None:
    network = MemoryNetwork(drop=lose_487s_from_b)
    handler = Ringing()
    b_setup = builder(network, B).handler(handler).limits(ring_timeout=1000.0)
    async with builder(network, A).build() as a, b_setup.build() as b:
        call = await a.make_call(BOB)
        assert await call.wait_state(CallState.RINGING, timeout=5) is CallState.RINGING
        await trio.sleep(1)
        started = trio.current_time()
        with trio.move_on_after(64 * T1 + 5):
            await call.hangup()
        assert trio.current_time() - started == pytest.approx(64 * T1, abs=0.1)
        assert call.end_reason == EndReason(
            EndKind.CANCELLED, detail="no final response after CANCEL"
        )
        await trio.sleep(SETTLE)
        assert counts(a) == counts(b) == (0, 0, 0, 0)


@pytest.mark.parametrize(
    ("answer_delay", "ending"),
    [(0.5, "CANCEL"), (0.0, "BYE")],  # 100 Trying first / a 200 at once
)
async def test_a_cancelled_make_call_still_ends_the_call_it_started(
    answer_delay: float, ending: str, autojump_clock: trio.testing.MockClock
) -> None:
    network = MemoryNetwork()
    handler = Answering(delay=answer_delay)
    async with builder(network, A).build() as a, builder(network, B).handler(handler).build() as b:
        with trio.CancelScope() as scope:

            def cancel_on_invite(packet: Packet) -> bool:
                if packet.first_line.startswith("INVITE"):
                    scope.cancel()  # the caller gives up just as the INVITE goes out
                return False

            network.drop = cancel_on_invite
            await a.make_call(BOB)
            pytest.fail("make_call returned after it was cancelled")
        network.drop = None
        assert scope.cancelled_caught
        await trio.sleep(PATIENCE)
        (incoming,) = handler.calls.values()
        assert incoming.end_reason is not None
        assert incoming.end_reason.kind in (EndKind.CANCELLED, EndKind.REMOTE_HANGUP)
        assert network.sent(ending)
        await trio.sleep(SETTLE)
        assert counts(a) == counts(b) == (0, 0, 0, 0)


def test_answer_timeout_must_be_positive() -> None:
    with pytest.raises(TrioVoipError):
        SessionManagerBuilder().limits(answer_timeout=0).config()
    assert SessionManagerBuilder().config().answer_timeout == 180.0


async def test_an_invite_that_cannot_be_sent_fails_make_call_and_frees_the_call(
    autojump_clock: trio.testing.MockClock,
) -> None:
    network = MemoryNetwork()
    async with builder(network, A).build() as a:
        a.endpoint.layer.max_transactions = 0
        events = a.subscribe_to_session_events()
        with pytest.raises(TransactionError, match="transaction limit"):
            await a.make_call(BOB)
        assert counts(a) == (0, 0, 0, 0) and not network.log
        while not isinstance(event := events.receive_nowait(), CallEnded):
            pass
        assert event.reason == EndReason(EndKind.FAILED, detail="could not send the INVITE")


class HangsUpOnAck(Scripted):
    """A callee that sends BYE the moment the caller's ACK is in."""

    async def on_call_established(self, call: CallSession) -> None:
        await super().on_call_established(call)
        await call.hangup()


async def test_a_bye_right_after_our_ack_finds_the_call_active(autojump_clock, monkeypatch):
    """Our ACK of a 2xx goes out only once the call is ACTIVE: even when sending it lets other
    tasks run for a while (a loaded loop: here 0.5 s after each ACK), a BYE sent the moment it
    arrives ends an established call (with a duration), never one still ringing."""
    ended = []
    async with pair(callee=HangsUpOnAck()) as (a, b):
        send_ack = a._send_ack

        async def slow_send_ack(*args: object) -> None:
            await send_ack(*args)
            await trio.sleep(0.5)

        monkeypatch.setattr(a, "_send_ack", slow_send_ack)
        async with trio.open_nursery() as nursery:
            async def one() -> None:
                call = await a.make_call(BOB, from_user="alice")
                await call.wait_ended()
                ended.append(call)

            for _ in range(5):
                nursery.start_soon(one)
        assert len(ended) == 5
        assert all(c.end_reason.kind is EndKind.REMOTE_HANGUP for c in ended)
        assert all(c.established_at is not None for c in ended)
