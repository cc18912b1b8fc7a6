"""TransportLayer on real loopback sockets: RFC 3261 section 18 and RFC 3581 behaviour."""

from __future__ import annotations

import socket

import pytest
import trio

from trio_voip.errors import SipParseError, TransportError
from trio_voip.sip import Request, make_response, parse_message
from trio_voip.sip.transport import UDP_SIZE_LIMIT, BindSpec, Inbound, TransportLayer

LOOP = "127.0.0.1"
TIMEOUT = 5


def _request(
    via: str, *, method: str = "OPTIONS", call_id: str = "c1", body: bytes = b"", extra: str = ""
) -> bytes:
    return (
        f"{method} sip:bob@127.0.0.1 SIP/2.0\r\n"
        f"Via: {via}\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:alice@example.com>;tag=a1\r\n"
        "To: <sip:bob@example.com>\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: 1 {method}\r\n"
        f"{extra}"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    ).encode() + body


def _port(layer: TransportLayer, transport: str) -> int:
    return next(a.port for a in layer.local_addresses if a.transport == transport)


async def _start(nursery: trio.Nursery, **options: object) -> TransportLayer:
    binds = [("UDP", LOOP, 0), BindSpec("TCP", LOOP, 0)]
    layer = TransportLayer(binds, **options)  # type: ignore[arg-type]
    await nursery.start(layer.run)
    return layer


async def _udp_peer() -> trio.socket.SocketType:
    peer = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    await peer.bind((LOOP, 0))
    return peer


async def _read_message(stream: trio.SocketStream, buffer: bytearray) -> bytes:
    """Read one Content-Length framed message from a test client stream."""
    while True:
        end = buffer.find(b"\r\n\r\n")
        if end >= 0:
            head = bytes(buffer[:end]).lower()
            length = int(head.split(b"content-length:")[1].split(b"\r\n")[0])
            total = end + 4 + length
            if len(buffer) >= total:
                message = bytes(buffer[:total])
                del buffer[:total]
                return message
        data = await stream.receive_some(65536)
        if not data:
            raise EOFError
        buffer += data


async def _wait_for(predicate) -> None:
    while not predicate():
        await trio.sleep(0.005)


# -- UDP ---------------------------------------------------------------------------------------


async def test_udp_request_gets_received_and_rport_and_response_follows_rport(nursery):
    with trio.fail_after(TIMEOUT):
        layer = await _start(nursery)
        peer = await _udp_peer()
        peer_port = peer.getsockname()[1]
        # A client behind NAT: sent-by names an address we cannot reach.
        await peer.sendto(
            _request("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKa;rport"),
            (LOOP, _port(layer, "UDP")),
        )
        inbound = await layer.inbound.receive()
        assert isinstance(inbound, Inbound)
        via = inbound.message.top_via
        assert via.received == LOOP
        assert via.rport == peer_port
        assert (inbound.source.transport, inbound.source.host, inbound.source.port) == (
            "UDP",
            LOOP,
            peer_port,
        )
        assert inbound.source.connection is None

        response = make_response(inbound.message, 200)
        await layer.send_response(response, inbound.source)
        data, address = await peer.recvfrom(65535)
        assert address == (LOOP, _port(layer, "UDP"))  # RFC 3581: from the socket it arrived on
        reply = parse_message(data)
        assert reply.status == 200
        assert reply.top_via.rport == peer_port

        # Without the source, the Via alone routes it (received + rport).
        await layer.send_response(response)
        data, _ = await peer.recvfrom(65535)
        assert parse_message(data).status == 200
        assert layer.stats.received == 1
        assert layer.stats.sent == 2
        peer.close()


async def test_received_only_when_sent_by_differs(nursery):
    with trio.fail_after(TIMEOUT):
        layer = await _start(nursery)
        peer = await _udp_peer()
        peer_port = peer.getsockname()[1]
        target = (LOOP, _port(layer, "UDP"))
        await peer.sendto(_request(f"SIP/2.0/UDP {LOOP}:{peer_port};branch=z9hG4bKb"), target)
        via = (await layer.inbound.receive()).message.top_via
        assert via.received is None and not via.has_rport
        # A domain name in sent-by always gets received (18.2.1).
        await peer.sendto(
            _request("SIP/2.0/UDP client.example.com;branch=z9hG4bKc", call_id="c2"), target
        )
        via = (await layer.inbound.receive()).message.top_via
        assert via.received == LOOP
        # Without rport, the response goes to received and the sent-by port.
        response = make_response(
            parse_message(
                _request(f"SIP/2.0/UDP 10.0.0.1:{peer_port};branch=z9hG4bKd;received={LOOP}")
            ),
            486,
        )
        await layer.send_response(response)
        data, _ = await peer.recvfrom(65535)
        assert parse_message(data).status == 486
        peer.close()


async def test_via_list_order_is_kept_when_stamping(nursery):
    with trio.fail_after(TIMEOUT):
        layer = await _start(nursery)
        peer = await _udp_peer()
        message = _request(
            "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1;rport, SIP/2.0/UDP 192.0.2.2;branch=z9hG4bK2",
            extra="Via: SIP/2.0/TCP 192.0.2.3;branch=z9hG4bK3\r\n",
        )
        await peer.sendto(message, (LOOP, _port(layer, "UDP")))
        vias = (await layer.inbound.receive()).message.vias
        assert [v.branch for v in vias] == ["z9hG4bK1", "z9hG4bK2", "z9hG4bK3"]
        assert vias[0].received == LOOP and vias[1].received is None
        peer.close()


async def test_malformed_request_datagram_gets_400_with_reason(nursery):
    with trio.fail_after(TIMEOUT):
        layer = await _start(nursery)
        peer = await _udp_peer()
        bad = _request("SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKe").replace(
            b"CSeq: 1 OPTIONS", b"CSeq: one OPTIONS"
        )
        with pytest.raises(SipParseError) as info:
            parse_message(bad)
        await peer.sendto(bad, (LOOP, _port(layer, "UDP")))
        data, _ = await peer.recvfrom(65535)
        assert data.startswith(b"SIP/2.0 400 ")
        reply = parse_message(data)
        assert reply.reason == info.value.reason
        assert reply.top_via.branch == "z9hG4bKe"
        assert reply.to.tag  # a final response carries a To tag
        assert layer.stats.parse_errors == 1
        assert layer.stats.rejected == 1
        assert layer.inbound.statistics().current_buffer_used == 0
        peer.close()


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x00\x01\x02 not sip at all",
        b"SIP/2.0 200 OK\r\nVia: broken\r\n\r\n",  # a response is never answered
        b"INVITE sip:a@b SIP/2.0\r\nCSeq: x\r\n\r\n",  # a request without Via cannot be answered
        # ACK is never answered.
        b"ACK sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\nCSeq: 1 INVITE\r\n\r\n",
    ],
)
async def test_garbage_is_counted_and_dropped(nursery, garbage):
    with trio.fail_after(TIMEOUT):
        layer = await _start(nursery)
        peer = await _udp_peer()
        target = (LOOP, _port(layer, "UDP"))
        await peer.sendto(garbage, target)
        # Datagrams are handled in order: once this one is delivered, the garbage was handled.
        await peer.sendto(_request("SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKf"), target)
        inbound = await layer.inbound.receive()
        assert inbound.message.call_id == "c1"
        assert layer.stats.parse_errors == 1
        assert layer.stats.dropped == 1
        assert layer.stats.received == 2
        with trio.move_on_after(0.05) as scope:
            await peer.recvfrom(65535)
        assert scope.cancelled_caught, "nothing is sent back for garbage"
        peer.close()


async def test_crlf_keepalive_datagrams_are_ignored(nursery):
    with trio.fail_after(TIMEOUT):
        layer = await _start(nursery)
        peer = await _udp_peer()
        target = (LOOP, _port(layer, "UDP"))
        await peer.sendto(b"\r\n\r\n", target)
        await peer.sendto(_request("SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKg"), target)
        await layer.inbound.receive()
        assert (layer.stats.received, layer.stats.parse_errors, layer.stats.dropped) == (1, 0, 0)
        peer.close()


async def test_responses_not_for_us_are_dropped(nursery):
    with trio.fail_after(TIMEOUT):
        layer = await _start(nursery)
        peer = await _udp_peer()
        udp_port = _port(layer, "UDP")
        foreign = (
            b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bKh\r\n"
            b"From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n"
            b"Content-Length: 0\r\n\r\n"
        )
        ours = foreign.replace(b"192.0.2.9:5060", f"{LOOP}:{udp_port}".encode())
        await peer.sendto(foreign, (LOOP, udp_port))
        await peer.sendto(ours, (LOOP, udp_port))
        inbound = await layer.inbound.receive()
        assert inbound.message.status == 200
        assert inbound.message.top_via.port == udp_port
        assert layer.stats.foreign_responses == 1
        assert layer.stats.dropped == 1
        peer.close()


async def test_full_inbound_channel_drops_udp_without_blocking(nursery):
    with trio.fail_after(TIMEOUT):
        layer = await _start(nursery, inbound_capacity=1)
        peer = await _udp_peer()
        for i in range(3):
            await peer.sendto(
                _request(f"SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK{i}", call_id=f"q{i}"),
                (LOOP, _port(layer, "UDP")),
            )
        await _wait_for(lambda: layer.stats.received == 3)
        assert layer.stats.queue_full == 2
        assert (await layer.inbound.receive()).message.call_id == "q0"
        peer.close()


async def test_send_request_udp_fills_via(nursery):
    with trio.fail_after(TIMEOUT):
        layer = await _start(nursery)
        peer = await _udp_peer()
        request = parse_message(_request("SIP/2.0/TCP placeholder;branch=z9hG4bKi;rport"))
        assert isinstance(request, Request)
        flow = await layer.send_request(request, LOOP, peer.getsockname()[1])
        assert flow.transport == "UDP" and flow.port == peer.getsockname()[1]
        data, address = await peer.recvfrom(65535)
        assert address == (LOOP, _port(layer, "UDP"))
        via = parse_message(data).top_via
        assert (via.transport, via.host, via.port) == ("UDP", LOOP, _port(layer, "UDP"))
        assert via.branch == "z9hG4bKi" and via.has_rport
        assert request.top_via == via  # changed in place, so a retransmission is identical
        peer.close()


async def test_send_request_without_via_is_a_transport_error(nursery):
    with trio.fail_after(TIMEOUT):
        layer = await _start(nursery)
        request = parse_message(_request("SIP/2.0/UDP h;branch=z9hG4bKj"))
        request.headers.remove("Via")
        with pytest.raises(TransportError):
            await layer.send_request(request, LOOP, 5060)
        with pytest.raises(TransportError):
            await layer.send_request(
                parse_message(_request("SIP/2.0/UDP h;branch=z9hG4bKj")), LOOP, 5060, "SCTP"
            )


async def test_large_udp_request_moves_to_tcp_only_when_allowed(nursery):
    with trio.fail_after(TIMEOUT):
        peer_udp = await _udp_peer()
        peer_listener = (await trio.open_tcp_listeners(peer_udp.getsockname()[1], host=LOOP))[0]
        peer_port = peer_udp.getsockname()[1]
        big = _request("SIP/2.0/UDP h;branch=z9hG4bKk", body=b"x" * UDP_SIZE_LIMIT)

        stays = await _start(nursery)
        await stays.send_request(parse_message(big), LOOP, peer_port)
        data, _ = await peer_udp.recvfrom(65535)
        assert parse_message(data).top_via.transport == "UDP"

        moves = await _start(nursery, large_requests_over_tcp=True)
        flow = await moves.send_request(parse_message(big), LOOP, peer_port)
        assert flow.transport == "TCP"
        stream = await peer_listener.accept()
        message = parse_message(await _read_message(stream, bytearray()))
        assert message.top_via.transport == "TCP"
        assert message.top_via.port == _port(moves, "TCP")
        await stream.aclose()
        await peer_listener.aclose()
        peer_udp.close()


# -- TCP ---------------------------------------------------------------------------------------


async def test_tcp_framing_and_response_on_same_connection(nursery):
    with trio.fail_after(TIMEOUT):
        layer = await _start(nursery)
        client = await trio.open_tcp_stream(LOOP, _port(layer, "TCP"))
        first = _request("SIP/2.0/TCP 192.0.2.1;branch=z9hG4bK1", call_id="t1", body=b"hello")
        second = _request("SIP/2.0/TCP 192.0.2.1;branch=z9hG4bK2", call_id="t2")
        await client.send_all(first + second)  # two messages in one segment
        a = await layer.inbound.receive()
        b = await layer.inbound.receive()
        assert (a.message.call_id, a.message.body, b.message.call_id) == ("t1", b"hello", "t2")
        assert a.source.transport == "TCP" and a.source.connection is not None
        assert a.message.top_via.received == LOOP

        third = _request("SIP/2.0/TCP 192.0.2.1;branch=z9hG4bK3", call_id="t3", body=b"split body")
        for i in range(0, len(third), 7):  # one message over many segments
            await client.send_all(third[i : i + 7])
            await trio.sleep(0)
        c = await layer.inbound.receive()
        assert (c.message.call_id, c.message.body) == ("t3", b"split body")

        # sent-by 192.0.2.1:5060 is unreachable: only the connection gets it there.
        await layer.send_response(make_response(c.message, 200), c.source)
        reply = parse_message(await _read_message(client, bytearray()))
        assert reply.status == 200 and reply.call_id == "t3"
        assert layer.open_connections == 1
        await client.aclose()
        await _wait_for(lambda: layer.open_connections == 0)


async def test_tcp_ping_gets_pong(nursery):
    with trio.fail_after(TIMEOUT):
        layer = await _start(nursery)
        client = await trio.open_tcp_stream(LOOP, _port(layer, "TCP"))
        await client.send_all(b"\r\n\r\n")
        assert await client.receive_some(100) == b"\r\n"
        await client.aclose()


async def test_tcp_connection_reuse_for_requests(nursery):
    with trio.fail_after(TIMEOUT):
        layer = await _start(nursery)
        listener = (await trio.open_tcp_listeners(0, host=LOOP))[0]
        peer_port = listener.socket.getsockname()[1]
        for branch in ("z9hG4bKr1", "z9hG4bKr2"):
            request = parse_message(_request(f"SIP/2.0/UDP x;branch={branch}"))
            flow = await layer.send_request(request, LOOP, peer_port, "TCP")
            assert flow.transport == "TCP"
        stream = await listener.accept()
        buffer = bytearray()
        first = parse_message(await _read_message(stream, buffer))
        second = parse_message(await _read_message(stream, buffer))
        assert [first.top_via.branch, second.top_via.branch] == ["z9hG4bKr1", "z9hG4bKr2"]
        # Sent-by names our listener, where the peer would connect for a response.
        assert (first.top_via.transport, first.top_via.port) == ("TCP", _port(layer, "TCP"))
        assert layer.stats.connections_opened == 1
        assert layer.open_connections == 1
        # The peer answers on that connection; its response matches our sent-by.
        await stream.send_all(bytes(make_response(first, 200)))
        inbound = await layer.inbound.receive()
        assert inbound.message.status == 200
        await stream.aclose()
        await listener.aclose()


async def test_accepted_connection_is_reused_for_requests_to_its_peer(nursery):
    with trio.fail_after(TIMEOUT):
        layer = await _start(nursery)
        client = await trio.open_tcp_stream(LOOP, _port(layer, "TCP"))
        await client.send_all(_request("SIP/2.0/TCP 192.0.2.1;branch=z9hG4bKs"))
        inbound = await layer.inbound.receive()
        request = parse_message(_request("SIP/2.0/UDP x;branch=z9hG4bKback", method="BYE"))
        flow = await layer.send_request(request, inbound.source.host, inbound.source.port, "TCP")
        assert flow.connection is inbound.source.connection
        message = parse_message(await _read_message(client, bytearray()))
        assert message.method == "BYE"
        assert layer.stats.connections_opened == 0 and layer.open_connections == 1
        await client.aclose()


async def test_response_over_new_connection_when_original_is_gone(nursery):
    with trio.fail_after(TIMEOUT):
        layer = await _start(nursery)
        listener = (await trio.open_tcp_listeners(0, host=LOOP))[0]
        peer_port = listener.socket.getsockname()[1]
        client = await trio.open_tcp_stream(LOOP, _port(layer, "TCP"))
        await client.send_all(_request(f"SIP/2.0/TCP {LOOP}:{peer_port};branch=z9hG4bKt"))
        inbound = await layer.inbound.receive()
        await client.aclose()
        await _wait_for(lambda: layer.open_connections == 0)
        # 18.2.2: the connection is gone, so connect to sent-by (received, sent-by port).
        await layer.send_response(make_response(inbound.message, 180), inbound.source)
        stream = await listener.accept()
        assert parse_message(await _read_message(stream, bytearray())).status == 180
        await stream.aclose()
        await listener.aclose()


async def test_oversized_tcp_message_closes_only_that_connection(nursery):
    with trio.fail_after(TIMEOUT):
        layer = await _start(nursery, max_message_size=4096)
        good = await trio.open_tcp_stream(LOOP, _port(layer, "TCP"))
        bad = await trio.open_tcp_stream(LOOP, _port(layer, "TCP"))
        await _wait_for(lambda: layer.open_connections == 2)
        await bad.send_all(
            _request("SIP/2.0/TCP 192.0.2.1;branch=z9hG4bKu").replace(
                b"Content-Length: 0", b"Content-Length: 100000"
            )
        )
        buffer = bytearray()
        reply = parse_message(await _read_message(bad, buffer))
        assert reply.status == 413
        assert await bad.receive_some(100) == b""  # then closed
        await _wait_for(lambda: layer.open_connections == 1)
        assert layer.stats.framing_errors == 1

        await good.send_all(_request("SIP/2.0/TCP 192.0.2.1;branch=z9hG4bKv", call_id="still-here"))
        assert (await layer.inbound.receive()).message.call_id == "still-here"
        await good.aclose()
        await bad.aclose()


async def test_tcp_without_content_length_gets_400_and_close(nursery):
    with trio.fail_after(TIMEOUT):
        layer = await _start(nursery)
        client = await trio.open_tcp_stream(LOOP, _port(layer, "TCP"))
        await client.send_all(
            _request("SIP/2.0/TCP 192.0.2.1;branch=z9hG4bKw").replace(b"Content-Length: 0\r\n", b"")
        )
        reply = parse_message(await _read_message(client, bytearray()))
        assert (reply.status, reply.reason) == (400, "Missing Content-Length")
        assert await client.receive_some(100) == b""
        await client.aclose()


async def test_endless_tcp_header_section_is_cut_off(nursery):
    with trio.fail_after(TIMEOUT):
        layer = await _start(nursery, max_header_bytes=2048)
        client = await trio.open_tcp_stream(LOOP, _port(layer, "TCP"))
        try:
            await client.send_all(b"INVITE sip:a@b SIP/2.0\r\n" + b"X-Filler: yyyyyyyyyy\r\n" * 200)
        except trio.BrokenResourceError:
            pass  # the layer may close before we finish writing
        try:
            assert await client.receive_some(100) == b""  # no header section to answer: just closed
        except trio.BrokenResourceError:
            pass
        await _wait_for(lambda: layer.open_connections == 0)
        assert layer.stats.framing_errors == 1
        await client.aclose()


async def test_tcp_applies_backpressure_instead_of_dropping(nursery):
    with trio.fail_after(TIMEOUT):
        layer = await _start(nursery, inbound_capacity=1)
        client = await trio.open_tcp_stream(LOOP, _port(layer, "TCP"))
        await client.send_all(
            b"".join(
                _request(f"SIP/2.0/TCP 192.0.2.1;branch=z9hG4bK{i}", call_id=f"b{i}")
                for i in range(5)
            )
        )
        received = [(await layer.inbound.receive()).message.call_id for _ in range(5)]
        assert received == [f"b{i}" for i in range(5)]
        assert layer.stats.dropped == 0
        await client.aclose()


# -- lifecycle ---------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["cancel", "aclose"])
async def test_shutdown_closes_every_socket_and_task(how):
    with trio.fail_after(TIMEOUT):
        layer = TransportLayer([("UDP", LOOP, 0), ("TCP", LOOP, 0)])
        async with trio.open_nursery() as nursery:
            await nursery.start(layer.run)
            udp_port, tcp_port = _port(layer, "UDP"), _port(layer, "TCP")
            client = await trio.open_tcp_stream(LOOP, tcp_port)
            listener = (await trio.open_tcp_listeners(0, host=LOOP))[0]
            await layer.send_request(
                parse_message(_request("SIP/2.0/UDP x;branch=z9hG4bKz")),
                LOOP,
                listener.socket.getsockname()[1],
                "TCP",
            )
            accepted = await listener.accept()
            assert parse_message(await _read_message(accepted, bytearray())).method == "OPTIONS"
            await _wait_for(lambda: layer.open_connections == 2)
            if how == "cancel":
                nursery.cancel_scope.cancel()
            else:
                await layer.aclose()
        # The nursery exited, so every task of the layer has ended.
        assert layer.open_connections == 0
        assert await client.receive_some(100) == b""
        assert await accepted.receive_some(100) == b""
        with pytest.raises(trio.EndOfChannel):
            await layer.inbound.receive()
        with pytest.raises(OSError):
            await trio.open_tcp_stream(LOOP, tcp_port)
        rebind = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await rebind.bind((LOOP, udp_port))  # free again
        rebind.close()
        for stream in (client, accepted, listener):
            await stream.aclose()
        with pytest.raises(TransportError):
            await layer.run()


async def test_bind_failure_is_a_transport_error(nursery):
    with trio.fail_after(TIMEOUT):
        taken = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await taken.bind((LOOP, 0))
        layer = TransportLayer([("TCP", LOOP, 0), ("UDP", LOOP, taken.getsockname()[1])])
        with pytest.raises(TransportError):
            await nursery.start(layer.run)
        taken.close()
    with pytest.raises(TransportError):
        TransportLayer([("SCTP", LOOP, 0)])


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback")
async def test_ipv6_udp_round_trip(nursery):
    with trio.fail_after(TIMEOUT):
        layer = TransportLayer([("UDP", "::1", 0)])
        await nursery.start(layer.run)
        peer = trio.socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        await peer.bind(("::1", 0))
        await peer.sendto(
            _request("SIP/2.0/UDP [2001:db8::1];branch=z9hG4bK6;rport"),
            ("::1", _port(layer, "UDP")),
        )
        inbound = await layer.inbound.receive()
        via = inbound.message.top_via
        assert via.received == "::1" and via.rport == peer.getsockname()[1]
        await layer.send_response(make_response(inbound.message, 200), inbound.source)
        data, _ = await peer.recvfrom(65535)
        assert parse_message(data).status == 200
        peer.close()


async def test_tcp_response_without_source_finds_the_connection_by_rport(nursery):
    with trio.fail_after(TIMEOUT):
        layer = await _start(nursery)
        client = await trio.open_tcp_stream(LOOP, _port(layer, "TCP"))
        await client.send_all(_request("SIP/2.0/TCP 192.0.2.1:5070;branch=z9hG4bKp;rport"))
        inbound = await layer.inbound.receive()
        assert inbound.message.top_via.rport == client.socket.getsockname()[1]
        await layer.send_response(make_response(inbound.message, 202))  # no source: Via only
        assert parse_message(await _read_message(client, bytearray())).status == 202
        assert layer.stats.connections_opened == 0
        await client.aclose()


async def test_wildcard_bind_advertises_a_routable_address(nursery):
    with trio.fail_after(TIMEOUT):
        layer = TransportLayer(
            [("UDP", "0.0.0.0", 0), BindSpec("TCP", "0.0.0.0", 0, "sip.example")]
        )
        await nursery.start(layer.run)
        peer = await _udp_peer()
        request = parse_message(_request("SIP/2.0/UDP x;branch=z9hG4bKw1"))
        await layer.send_request(request, LOOP, peer.getsockname()[1])
        data, _ = await peer.recvfrom(65535)
        via = parse_message(data).top_via
        assert (via.host, via.port) == (LOOP, _port(layer, "UDP"))
        # The response to it names an address we wrote, so it is ours.
        await peer.sendto(bytes(make_response(parse_message(data), 200)), (LOOP, via.port))
        assert (await layer.inbound.receive()).message.status == 200

        listener = (await trio.open_tcp_listeners(0, host=LOOP))[0]
        request = parse_message(_request("SIP/2.0/UDP x;branch=z9hG4bKw2"))
        await layer.send_request(request, LOOP, listener.socket.getsockname()[1], "TCP")
        stream = await listener.accept()
        via = parse_message(await _read_message(stream, bytearray())).top_via
        assert (via.host, via.port) == ("sip.example", _port(layer, "TCP"))
        await stream.aclose()
        await listener.aclose()
        peer.close()


async def test_sending_needs_a_running_layer():
    layer = TransportLayer([("UDP", LOOP, 0)])
    request = parse_message(_request("SIP/2.0/UDP x;branch=z9hG4bKn"))
    with pytest.raises(TransportError):
        await layer.send_request(request, LOOP, 5060)
    with pytest.raises(TransportError):
        await layer.send_response(make_response(request, 200))
    await layer.aclose()
    with pytest.raises(trio.EndOfChannel):
        await layer.inbound.receive()


async def test_concurrent_sends_share_one_new_connection(nursery):
    with trio.fail_after(TIMEOUT):
        layer = await _start(nursery)
        listener = (await trio.open_tcp_listeners(0, host=LOOP))[0]
        peer_port = listener.socket.getsockname()[1]

        async def send(branch: str) -> None:
            request = parse_message(_request(f"SIP/2.0/UDP x;branch={branch}"))
            await layer.send_request(request, LOOP, peer_port, "TCP")

        async with trio.open_nursery() as senders:
            for i in range(3):
                senders.start_soon(send, f"z9hG4bKc{i}")
        stream = await listener.accept()
        buffer = bytearray()
        branches = {
            parse_message(await _read_message(stream, buffer)).top_via.branch for _ in range(3)
        }
        assert branches == {"z9hG4bKc0", "z9hG4bKc1", "z9hG4bKc2"}
        assert layer.stats.connections_opened == 1
        assert layer.open_connections == 1
        await stream.aclose()
        await listener.aclose()


async def test_connect_failure_is_a_transport_error(nursery):
    with trio.fail_after(TIMEOUT):
        layer = await _start(nursery)
        closed = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        await closed.bind((LOOP, 0))  # bound, not listening: connecting is refused
        request = parse_message(_request("SIP/2.0/UDP x;branch=z9hG4bKrefused"))
        with pytest.raises(TransportError):
            await layer.send_request(request, LOOP, closed.getsockname()[1], "TCP")
        assert layer.open_connections == 0
        closed.close()
