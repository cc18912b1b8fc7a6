"""SipEndpoint (the Trio driver) on the in-memory network, in virtual time (MockClock).

Every test asks for ``autojump_clock`` itself: pytest-trio only picks up a clock fixture the
test function requests directly.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing

from trio_voip.errors import TransactionError, TransactionTimeout, TransportError
from trio_voip.sip import Request, Response, make_response, parse_message
from trio_voip.sip.stack import ServerTransactionHandle, SipEndpoint
from trio_voip.sip.transaction import (
    ResponseReceived,
    StrayAck,
    StrayResponse,
    TransactionState,
    make_ack,
)
from trio_voip.testing.network import MemoryNetwork, Packet

ALICE = ("10.0.0.1", 5060)
BOB = ("10.0.0.2", 5060)


def new_request(method: str, *, branch: bool = False, to: str = "sip:bob@10.0.0.2") -> Request:
    via = "SIP/2.0/UDP 0.0.0.0" + (";branch=z9hG4bKfixed" if branch else "")
    text = (
        f"{method} {to} SIP/2.0\r\n"
        f"Via: {via}\r\n"
        "Max-Forwards: 70\r\n"
        f"To: <{to}>\r\n"
        "From: <sip:alice@10.0.0.1>;tag=a1\r\n"
        f"Call-ID: {method.lower()}-call@10.0.0.1\r\n"
        f"CSeq: 1 {method}\r\n"
        "Contact: <sip:alice@10.0.0.1>\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    message = parse_message(text.encode())
    assert isinstance(message, Request)
    return message


async def start(nursery: trio.Nursery, network: MemoryNetwork, address, **kw) -> SipEndpoint:
    endpoint = SipEndpoint(network.transport(*address), **kw)
    await nursery.start(endpoint.run)
    return endpoint


async def answer_all(endpoint: SipEndpoint, status: int, *, provisional: int | None = None):
    async for handle in endpoint.incoming:
        if provisional is not None:
            await handle.respond(make_response(handle.request, provisional, to_tag="b1"))
        await handle.respond(make_response(handle.request, status, to_tag="b1"))


def times(packets: list[Packet], t0: float) -> list[float]:
    return [round(p.time - t0, 6) for p in packets]


@pytest.fixture
async def pair() -> AsyncIterator[tuple[MemoryNetwork, SipEndpoint, SipEndpoint]]:
    network = MemoryNetwork()
    async with trio.open_nursery() as nursery:
        alice = await start(nursery, network, ALICE)
        bob = await start(nursery, network, BOB)
        yield network, alice, bob
        nursery.cancel_scope.cancel()


async def test_options_round_trip_and_drain(pair, autojump_clock) -> None:
    network, alice, bob = pair
    async with trio.open_nursery() as nursery:
        nursery.start_soon(answer_all, bob, 200)
        handle = await alice.request(new_request("OPTIONS"), *BOB)
        responses = [r async for r in handle]
        assert [r.status for r in responses] == [200]
        assert handle.key.branch.startswith("z9hG4bK")
        # the UDP transaction lingers for Timer K (client) and J (server), then is gone
        assert len(alice.layer) == 1 and len(bob.layer) == 1
        await trio.sleep(64 * 0.5 + 0.01)
        assert len(alice.layer) == 0 and len(bob.layer) == 0
        nursery.cancel_scope.cancel()
    assert [p.first_line for p in network.log] == [
        "OPTIONS sip:bob@10.0.0.2 SIP/2.0",
        "SIP/2.0 200 OK",
    ]


async def test_timer_a_and_b_through_the_driver(pair, autojump_clock) -> None:
    network, alice, _ = pair
    network.drop = lambda packet: packet.first_line.startswith("INVITE")
    t0 = trio.current_time()
    handle = await alice.request(new_request("INVITE"), *BOB)
    with pytest.raises(TransactionTimeout, match="Timer B"):
        await handle.final_response()
    assert trio.current_time() - t0 == 32.0
    assert times(network.sent("INVITE"), t0) == [0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert len(alice.layer) == 0


async def test_timer_e_caps_at_t2_through_the_driver(pair, autojump_clock) -> None:
    network, alice, _ = pair
    network.drop = lambda packet: packet.first_line.startswith("MESSAGE")
    t0 = trio.current_time()
    handle = await alice.request(new_request("MESSAGE"), *BOB)
    with pytest.raises(TransactionTimeout, match="Timer F"):
        async for _ in handle:
            pass
    assert trio.current_time() - t0 == 32.0
    assert times(network.sent("MESSAGE"), t0) == [
        0,
        0.5,
        1.5,
        3.5,
        7.5,
        11.5,
        15.5,
        19.5,
        23.5,
        27.5,
        31.5,
    ]


async def test_invite_server_100_then_g_retransmits_until_ack(pair, autojump_clock) -> None:
    network, alice, bob = pair
    acks_to_drop = 2
    retransmitted: list[float] = []

    def drop(packet: Packet) -> bool:
        nonlocal acks_to_drop
        if packet.first_line.startswith("ACK") and acks_to_drop:
            acks_to_drop -= 1
            return True
        return False

    network.drop = drop
    t0 = trio.current_time()
    async with trio.open_nursery() as nursery:

        async def bob_tu() -> None:
            handle = await bob.incoming.receive()
            await trio.sleep(1.0)  # slower than 200 ms: the transaction sends 100 itself
            await handle.respond(make_response(handle.request, 486, to_tag="b1"))
            await handle.terminated.wait()
            retransmitted.append(trio.current_time() - t0)

        nursery.start_soon(bob_tu)
        handle = await alice.request(new_request("INVITE"), *BOB)
        statuses = [r.status async for r in handle]
        assert statuses == [100, 486]
        await trio.sleep(40)
    first_lines = [(round(p.time - t0, 6), p.first_line) for p in network.log]
    assert first_lines[:2] == [(0, "INVITE sip:bob@10.0.0.2 SIP/2.0"), (0.2, "SIP/2.0 100 Trying")]
    # 486 at 1.0; ACK lost twice; G: 1.5, then 2.5 -> the third ACK confirms
    assert times(network.sent("SIP/2.0 486"), t0) == [1.0, 1.5, 2.5]
    assert times(network.sent("ACK"), t0) == [1.0, 1.5, 2.5]
    # Timer I (T4) after the ACK at 2.5
    assert retransmitted == [7.5]
    assert len(alice.layer) == 0 and len(bob.layer) == 0


async def test_retransmitted_request_absorbed_and_answered_again(pair, autojump_clock) -> None:
    network, alice, bob = pair
    dropped = []

    def drop_first_200(packet: Packet) -> bool:
        if packet.first_line.startswith("SIP/2.0 200") and not dropped:
            dropped.append(packet)
            return True
        return False

    network.drop = drop_first_200
    seen = []
    async with trio.open_nursery() as nursery:

        async def bob_tu() -> None:
            async for handle in bob.incoming:
                seen.append(handle.request.method)
                await handle.respond(make_response(handle.request, 200, to_tag="b1"))

        nursery.start_soon(bob_tu)
        t0 = trio.current_time()
        response = await (await alice.request(new_request("OPTIONS"), *BOB)).final_response()
        assert response.status == 200
        assert trio.current_time() - t0 == 0.5  # Timer E retransmission got the 200 resent
        nursery.cancel_scope.cancel()
    assert seen == ["OPTIONS"]  # the TU saw the request once
    assert [p.delivered for p in network.sent("SIP/2.0 200")] == [False, True]


async def test_transport_error_is_reported(pair, autojump_clock) -> None:
    _, alice, _ = pair
    handle = await alice.request(new_request("OPTIONS"), "10.9.9.9", 5060, "TCP")
    with pytest.raises(TransportError):
        await handle.final_response()
    assert alice.stats.send_errors == 1
    assert len(alice.layer) == 0


async def test_server_send_failure_reaches_the_handle(autojump_clock) -> None:
    network = MemoryNetwork()
    async with trio.open_nursery() as nursery:
        bob = await start(nursery, network, BOB)
        raw = network.transport(*ALICE)
        await nursery.start(raw.run)
        request = new_request("OPTIONS", branch=True)
        await raw.send_request(request, *BOB, "TCP")
        handle = await bob.incoming.receive()
        network.unreachable.add(ALICE)
        await handle.respond(make_response(handle.request, 100))
        await handle.terminated.wait()
        assert handle.failure is not None
        assert handle.state is TransactionState.TERMINATED
        with pytest.raises(TransactionError):
            await handle.respond(make_response(handle.request, 200))
        assert len(bob.layer) == 0
        nursery.cancel_scope.cancel()


async def test_cancel_after_provisional(pair, autojump_clock) -> None:
    network, alice, bob = pair
    async with trio.open_nursery() as nursery:

        async def bob_tu() -> None:
            invite = await bob.incoming.receive()
            await invite.respond(make_response(invite.request, 180, to_tag="b1"))
            cancel = await bob.incoming.receive()
            assert cancel.request.method == "CANCEL"
            assert cancel.cancel_target is invite
            await cancel.respond(make_response(cancel.request, 200))
            await invite.respond(make_response(invite.request, 487, to_tag="b1"))

        nursery.start_soon(bob_tu)
        handle = await alice.request(new_request("INVITE"), *BOB)
        statuses = []
        async for response in handle:
            statuses.append(response.status)
            if response.status == 180:
                await handle.cancel()
                await handle.cancel()  # once is enough
        assert statuses == [180, 487]
    await trio.sleep(40)
    assert len(alice.layer) == 0 and len(bob.layer) == 0
    assert [p.first_line.split()[0] for p in network.log if not p.first_line.startswith("SIP")] == [
        "INVITE",
        "CANCEL",
        "ACK",
    ]


async def test_cancel_waits_for_a_provisional(pair, autojump_clock) -> None:
    network, alice, bob = pair
    async with trio.open_nursery() as nursery:

        async def bob_tu() -> None:
            invite = await bob.incoming.receive()  # never answers itself: 100 at 200 ms
            cancel = await bob.incoming.receive()
            assert cancel.cancel_target is invite
            await cancel.respond(make_response(cancel.request, 200))
            await invite.respond(make_response(invite.request, 487, to_tag="b1"))

        nursery.start_soon(bob_tu)
        t0 = trio.current_time()
        handle = await alice.request(new_request("INVITE"), *BOB)
        await handle.cancel()
        assert network.sent("CANCEL") == []  # 9.1: not before a provisional response
        assert (await handle.final_response()).status == 487
    assert times(network.sent("CANCEL"), t0) == [0.2]
    with pytest.raises(TransactionError):
        await (await alice.request(new_request("OPTIONS"), *BOB)).cancel()


async def test_rfc2543_peer(pair, autojump_clock) -> None:
    network, _, bob = pair
    raw = network.transport("10.0.0.3", 5060)
    async with trio.open_nursery() as nursery:
        await nursery.start(raw.run)
        invite = new_request("INVITE")  # no branch: RFC 2543 matching
        await raw.send_request(invite, *BOB)
        handle = await bob.incoming.receive()
        assert handle.key.legacy
        await raw.send_request(parse_message(bytes(invite)), *BOB)  # retransmission
        await trio.testing.wait_all_tasks_blocked()
        busy = make_response(handle.request, 486, to_tag="b1")
        await handle.respond(busy)
        await raw.send_request(make_ack(invite, busy), *BOB)
        await trio.testing.wait_all_tasks_blocked()
        assert handle.state is TransactionState.CONFIRMED
        await trio.sleep(10)
        assert len(bob.layer) == 0
        nursery.cancel_scope.cancel()
    # the retransmission got the 100 again; the 486 was not retransmitted after the ACK
    assert [p.first_line for p in network.log if p.source == BOB] == [
        "SIP/2.0 100 Trying",
        "SIP/2.0 486 Busy Here",
    ]


async def test_full_incoming_channel_answers_503(autojump_clock) -> None:
    network = MemoryNetwork()
    async with trio.open_nursery() as nursery:
        alice = await start(nursery, network, ALICE)
        bob = await start(nursery, network, BOB, incoming_capacity=1)
        first = await alice.request(new_request("OPTIONS"), *BOB)
        second = await alice.request(new_request("MESSAGE"), *BOB)
        assert (await second.final_response()).status == 503
        assert bob.stats.busy_rejections == 1
        queued = await bob.incoming.receive()
        await queued.respond(make_response(queued.request, 200))
        assert (await first.final_response()).status == 200
        nursery.cancel_scope.cancel()


async def test_2xx_retransmissions_and_acks_go_to_stray(pair, autojump_clock) -> None:
    _, alice, bob = pair
    async with trio.open_nursery() as nursery:

        async def bob_tu() -> None:
            handle = await bob.incoming.receive()
            ok = make_response(handle.request, 200, to_tag="b1")
            await handle.respond(ok)
            await trio.sleep(0.5)
            await handle.respond(ok)  # the UAS core retransmits its 2xx (13.3.1.4)
            stray = await bob.stray.receive()
            assert isinstance(stray, StrayAck)
            assert stray.request.method == "ACK"

        nursery.start_soon(bob_tu)
        invite = new_request("INVITE")
        handle = await alice.request(invite, *BOB)
        ok = await handle.final_response()
        assert ok.status == 200
        again = await alice.stray.receive()
        assert isinstance(again, ResponseReceived) and again.key == handle.key
        assert again.response.status == 200
        ack = make_ack(invite, ok)
        ack.headers.set("Via", "SIP/2.0/UDP 0.0.0.0")  # a 2xx ACK is a new request (13.2.2.4)
        await alice.send_ack(ack, *BOB)
        assert ack.top_via.branch.startswith("z9hG4bK")
        assert ack.top_via.branch != invite.top_via.branch
    with pytest.raises(TransactionError):
        await alice.send_ack(new_request("BYE"), *BOB)
    await trio.sleep(40)
    assert len(alice.layer) == 0 and len(bob.layer) == 0


async def test_server_handle_context_answers_500_on_error(pair, autojump_clock) -> None:
    _, alice, bob = pair

    async def bob_tu() -> None:
        handle: ServerTransactionHandle = await bob.incoming.receive()
        async with handle:
            raise RuntimeError("TU bug")

    async with trio.open_nursery() as nursery:
        handle = await alice.request(new_request("INVITE"), *BOB)
        with pytest.raises(RuntimeError):
            await bob_tu()
        assert (await handle.final_response()).status == 500
        nursery.cancel_scope.cancel()


async def test_stopping_fails_pending_handles(autojump_clock) -> None:
    network = MemoryNetwork()
    async with trio.open_nursery() as nursery:
        alice = await start(nursery, network, ALICE)
        handle = await alice.request(new_request("INVITE"), *BOB)
        await alice.aclose()
    with pytest.raises(TransactionError, match="stopped"):
        await handle.final_response()
    with pytest.raises(TransactionError, match="not running"):
        await alice.request(new_request("OPTIONS"), *BOB)
    with pytest.raises(TransactionError, match="once"):
        await alice.run()


async def test_lossy_network_many_transactions_drain(autojump_clock) -> None:
    network = MemoryNetwork(loss=0.3, seed=7)
    outcomes: list[object] = []
    async with trio.open_nursery() as nursery:
        alice = await start(nursery, network, ALICE)
        bob = await start(nursery, network, BOB)
        nursery.start_soon(answer_all, bob, 200)

        async def one(i: int) -> None:
            request = new_request("OPTIONS")
            request.headers.set("Call-ID", f"call-{i}")
            handle = await alice.request(request, *BOB)
            try:
                outcomes.append((await handle.final_response()).status)
            except TransactionTimeout:
                outcomes.append("timeout")

        async with trio.open_nursery() as calls:
            for i in range(40):
                calls.start_soon(one, i)
        await trio.sleep(64 * 0.5 + 1)
        assert len(alice.layer) == 0 and len(bob.layer) == 0
        nursery.cancel_scope.cancel()
    assert len(outcomes) == 40
    assert outcomes.count(200) >= 35  # ten tries at 30% loss each way: nearly all succeed
    assert any(not p.delivered for p in network.log)


async def test_response_type_is_checked(pair, autojump_clock) -> None:
    _, alice, bob = pair
    async with trio.open_nursery() as nursery:
        nursery.start_soon(functools.partial(answer_all, bob, 200, provisional=180))
        handle = await alice.request(new_request("MESSAGE"), *BOB)
        responses: list[Response] = [r async for r in handle]
        assert [r.status for r in responses] == [180, 200]
        assert [r async for r in handle] == []  # iteration is over for good
        assert (await handle.final_response()).status == 200
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("passed", [False, True])
async def test_responses_matching_nothing(passed: bool, autojump_clock) -> None:
    network = MemoryNetwork()
    async with trio.open_nursery() as nursery:
        alice = await start(nursery, network, ALICE, stray_responses=passed)
        raw = network.transport(*BOB)
        await nursery.start(raw.run)
        request = new_request("OPTIONS", branch=True)
        request.headers.set("Via", "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKnobody")
        await raw.send_response(make_response(request, 200))
        await trio.testing.wait_all_tasks_blocked()
        assert alice.stats.stray_responses == 1
        if passed:
            stray = alice.stray.receive_nowait()
            assert isinstance(stray, StrayResponse) and stray.response.status == 200
        else:
            with pytest.raises(trio.WouldBlock):
                alice.stray.receive_nowait()
        nursery.cancel_scope.cancel()
