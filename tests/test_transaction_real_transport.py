"""SipEndpoint on the real TransportLayer, over UDP and TCP on 127.0.0.1."""

from __future__ import annotations

import functools

import pytest
import trio
from test_transaction_stack import answer_all, new_request

from trio_voip.errors import TransactionTimeout, TransportError
from trio_voip.sip.stack import SipEndpoint
from trio_voip.sip.transaction import TimerConfig
from trio_voip.sip.transport import TransportLayer

# the same machines, with real time kept short
FAST = TimerConfig(t1=0.01, t2=0.04, t4=0.05, timer_d_unreliable=0.3)


@pytest.mark.parametrize("transport", ["UDP", "TCP"])
async def test_round_trip_over_loopback(transport: str) -> None:
    async with trio.open_nursery() as nursery:
        alice = SipEndpoint(TransportLayer([(transport, "127.0.0.1", 0)]), config=FAST)
        bob = SipEndpoint(TransportLayer([(transport, "127.0.0.1", 0)]), config=FAST)
        await nursery.start(alice.run)
        [bob_address] = await nursery.start(bob.run)
        nursery.start_soon(functools.partial(answer_all, bob, 486, provisional=180))
        with trio.fail_after(5):
            handle = await alice.request(
                new_request("INVITE"), "127.0.0.1", bob_address.port, transport
            )
            statuses = [r.status async for r in handle]
            assert statuses == [180, 486]
            assert handle.request.top_via.transport == transport
            # the ACK reaches bob's transaction; everything drains (64*T1 = 0.64 s at most)
            while len(alice.layer) or len(bob.layer):
                await trio.sleep(0.05)
        nursery.cancel_scope.cancel()


async def test_invite_to_a_closed_tcp_port_fails() -> None:
    with trio.socket.socket() as probe:
        await probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, not listening: connection refused
        async with trio.open_nursery() as nursery:
            alice = SipEndpoint(TransportLayer([("TCP", "127.0.0.1", 0)]), config=FAST)
            await nursery.start(alice.run)
            with trio.fail_after(5):
                handle = await alice.request(new_request("INVITE"), "127.0.0.1", port, "TCP")
                with pytest.raises(TransportError):
                    await handle.final_response()
            assert len(alice.layer) == 0
            nursery.cancel_scope.cancel()


async def test_retransmissions_over_udp_reach_a_silent_peer() -> None:
    with trio.socket.socket(type=trio.socket.SOCK_DGRAM) as silent:
        await silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        async with trio.open_nursery() as nursery:
            alice = SipEndpoint(TransportLayer([("UDP", "127.0.0.1", 0)]), config=FAST)
            await nursery.start(alice.run)
            handle = await alice.request(new_request("OPTIONS"), "127.0.0.1", port)
            with trio.fail_after(5), pytest.raises(TransactionTimeout, match="Timer F"):
                await handle.final_response()
            nursery.cancel_scope.cancel()
        datagrams = 0
        while True:
            with trio.move_on_after(0.05) as scope:
                await silent.recv(65535)
            if scope.cancelled_caught:
                break
            datagrams += 1
    # sends at 0, T1, 3T1, 7T1, then every T2 (4T1) until 64*T1: 18 at most; a late
    # scheduler only ever makes it fewer
    assert 10 <= datagrams <= 18
