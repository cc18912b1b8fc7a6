"""RtpRelay on real UDP sockets over 127.0.0.1: forwarding, latching, drops, ports, shutdown."""

from __future__ import annotations

import random
import socket
from collections.abc import AsyncIterator

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from trio_voip.errors import RtpError
from trio_voip.rtp.packet import (
    ReceiverReport,
    RtpPacket,
    parse_rtp,
    serialize_rtcp_compound,
)
from trio_voip.rtp.ports import PortAllocator
from trio_voip.rtp.relay import MediaEndpoint, RtpRelay, SourceLatch

HOST = "127.0.0.1"
RANGE = (41000, 41999)


def rtp(seq: int, pt: int = 0, ssrc: int = 0x1234, payload: bytes = b"\xd5" * 160) -> bytes:
    return RtpPacket(pt, seq & 0xFFFF, seq * 160, ssrc, payload).to_bytes()


RTCP = serialize_rtcp_compound([ReceiverReport(ssrc=0x55)])


SOURCES = [("10.0.0.1", 4000), ("10.0.0.1", 4002), ("203.0.113.9", 4000)]
packets = st.lists(
    st.tuples(
        st.sampled_from(SOURCES),
        st.floats(0, 0.5, allow_nan=False),  # time since the previous packet
        st.one_of(st.none(), st.sampled_from([0, 8, 101])),  # None: RTCP
    ),
    max_size=30,
)


@given(packets, st.sampled_from([None, *SOURCES]), st.none() | st.just(frozenset({8})))
def test_latch_never_moves_after_it_fixes(
    events: list[tuple[tuple[str, int], float, int | None]],
    sdp: tuple[str, int] | None,
    payload_types: frozenset[int] | None,
) -> None:
    window = 1.0
    latch = SourceLatch(window, payload_types=payload_types)
    latch.rearm(0.0, sdp)
    now = 0.0
    accepted: list[tuple[str, int]] = []
    for addr, step, pt in events:
        now += step
        ok = latch.accept(addr, now, pt)
        if ok:
            accepted.append(addr)
            assert latch.fixed and latch.address == addr
        if now > window and not accepted:
            # Past the window with nothing latched only the SDP address gets in.
            assert ok == (addr == sdp)
        if ok and now <= window and pt is not None and payload_types and not accepted[:-1]:
            assert pt in payload_types
    # One source per arming, ever: nobody else is forwarded once it is chosen.
    assert len(set(accepted)) <= 1
    assert latch.latches == (1 if accepted and accepted[0] != sdp else 0)


def test_latch_rearm_allows_a_new_source() -> None:
    latch = SourceLatch(2.0)
    latch.rearm(0.0, SOURCES[0])
    assert latch.accept(SOURCES[1], 1.0, 0) and latch.address == SOURCES[1]
    assert not latch.accept(SOURCES[2], 1.5, 0) and not latch.accept(SOURCES[0], 3.0, 0)
    latch.rearm(10.0, SOURCES[0])
    assert not latch.fixed and latch.address == SOURCES[0]
    assert latch.accept(SOURCES[2], 11.0, 0) and latch.latches == 2


class Phone:
    """A plain UDP socket standing for a SIP phone's media port."""

    def __init__(self) -> None:
        self.sock = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    async def bind(self, port: int = 0) -> Phone:
        await self.sock.bind((HOST, port))
        return self

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    @property
    def addr(self) -> tuple[str, int]:
        return (HOST, self.port)

    async def send(self, data: bytes, port: int) -> None:
        await self.sock.sendto(data, (HOST, port))

    async def recv(self, timeout: float = 2.0) -> tuple[bytes, tuple[str, int]]:
        with trio.fail_after(timeout):
            return await self.sock.recvfrom(4096)

    async def nothing(self, timeout: float = 0.1) -> bool:
        with trio.move_on_after(timeout):
            await self.sock.recvfrom(4096)
            return False
        return True

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
async def phones() -> AsyncIterator[list[Phone]]:
    made: list[Phone] = []

    async def make() -> Phone:
        phone = await Phone().bind()
        made.append(phone)
        return phone

    phones_list = [await make() for _ in range(3)]
    yield phones_list
    for phone in made:
        phone.close()


@pytest.fixture
async def relay(nursery: trio.Nursery) -> RtpRelay:
    relay = RtpRelay(PortAllocator(*RANGE), latch_window=5.0)
    await nursery.start(relay.run)
    return relay


def bridge(relay: RtpRelay, a: Phone, b: Phone, **kw: object) -> tuple[MediaEndpoint, MediaEndpoint]:
    ea = relay.open_endpoint(a.addr, **kw)  # type: ignore[arg-type]
    eb = relay.open_endpoint(b.addr, **kw)  # type: ignore[arg-type]
    relay.connect(ea, eb)
    return ea, eb


async def test_two_phones_exchange_rtp_both_ways(relay: RtpRelay, phones: list[Phone]) -> None:
    a, b, _ = phones
    ea, eb = bridge(relay, a, b)
    assert ea.local_port % 2 == 0 and ea.rtcp_port == ea.local_port + 1
    for seq in range(5):
        await a.send(rtp(seq), ea.local_port)
        data, src = await b.recv()
        assert data == rtp(seq) and src == (HOST, eb.local_port)
        await b.send(rtp(seq, ssrc=9), eb.local_port)
        data, src = await a.recv()
        assert data == rtp(seq, ssrc=9) and src == (HOST, ea.local_port)
    assert ea.stats.packets_in == 5 and eb.stats.packets_out == 5
    assert eb.stats.bytes_out == 5 * len(rtp(0))
    assert ea.stats.packets_out == 5 and eb.stats.packets_in == 5
    assert relay.endpoint_count == 2 and relay.socket_count == 4


async def test_latches_to_real_source_port(relay: RtpRelay, phones: list[Phone]) -> None:
    a, b, _ = phones
    # The SDP claims a port nobody listens on (the phone is behind a NAT).
    ea = relay.open_endpoint((HOST, 9))
    eb = relay.open_endpoint(b.addr)
    relay.connect(ea, eb)
    await a.send(rtp(1), ea.local_port)
    assert (await b.recv())[0] == rtp(1)
    assert ea.remote == a.addr and ea.latched and ea.latches == 1
    await b.send(rtp(2), eb.local_port)
    assert (await a.recv())[0] == rtp(2)


async def test_only_first_source_latches_in_window(relay: RtpRelay, phones: list[Phone]) -> None:
    a, b, attacker = phones
    ea, eb = bridge(relay, a, b)
    await a.send(rtp(1), ea.local_port)
    await b.recv()
    await attacker.send(rtp(2, ssrc=666), ea.local_port)
    await a.send(rtp(3), ea.local_port)
    assert (await b.recv())[0] == rtp(3)  # the attacker's packet never came through
    assert ea.stats.foreign_dropped == 1 and ea.remote == a.addr
    await b.send(rtp(4), eb.local_port)
    assert (await a.recv())[0] == rtp(4)
    assert await attacker.nothing()


async def test_foreign_source_after_window_dropped(nursery: trio.Nursery, phones: list[Phone]) -> None:
    a, b, attacker = phones
    relay = RtpRelay(PortAllocator(*RANGE), latch_window=0.05)
    await nursery.start(relay.run)
    # The SDP for a is wrong and nothing arrives before the window closes: a stays unlatched.
    ea = relay.open_endpoint((HOST, 9))
    eb = relay.open_endpoint(b.addr)
    relay.connect(ea, eb)
    await trio.sleep(0.1)
    await attacker.send(rtp(1), ea.local_port)
    await a.send(rtp(2), ea.local_port)
    # b's traffic is not latched either (b never sent); b's SDP address is fixed.
    await b.send(rtp(3), eb.local_port)
    assert await b.nothing()
    assert ea.stats.foreign_dropped == 2 and ea.remote == (HOST, 9)
    # A new offer/answer re-arms the window: now the real source can latch.
    ea.set_remote(HOST, 11)
    await a.send(rtp(4), ea.local_port)
    assert (await b.recv())[0] == rtp(4)
    assert ea.remote == a.addr
    await trio.sleep(0.1)
    await attacker.send(rtp(5), ea.local_port)
    await a.send(rtp(6), ea.local_port)
    assert (await b.recv())[0] == rtp(6)
    assert ea.stats.foreign_dropped == 3


async def test_payload_types_restrict_latching(relay: RtpRelay, phones: list[Phone]) -> None:
    a, b, attacker = phones
    ea = relay.open_endpoint((HOST, 9), payload_types={8, 101})
    eb = relay.open_endpoint(b.addr)
    relay.connect(ea, eb)
    await attacker.send(rtp(1, pt=0), ea.local_port)  # not a negotiated payload type
    await a.send(rtp(2, pt=8), ea.local_port)
    assert (await b.recv())[0] == rtp(2, pt=8)
    assert ea.remote == a.addr and ea.stats.foreign_dropped == 1


async def test_malformed_counted_not_forwarded(relay: RtpRelay, phones: list[Phone]) -> None:
    a, b, _ = phones
    ea, eb = bridge(relay, a, b)
    bad = [b"", b"\x80", b"\x80\x00\x00\x01\x00\x00", b"\x00" * 172, b"\x40" + b"\x00" * 20]
    bad.append(b"\x80\x00" + b"\x00" * 8)  # version 2 but shorter than the 12-byte header
    for datagram in bad:
        await a.send(datagram, ea.local_port)
    await a.send(b"\x80\x00\x00\x00", ea.rtcp_port)  # RTCP shorter than its header
    await a.send(rtp(1), ea.rtcp_port)  # RTP on the RTCP port: not RTCP
    await a.send(rtp(7), ea.local_port)
    assert (await b.recv())[0] == rtp(7)
    assert ea.stats.malformed == len(bad) + 2
    assert ea.stats.packets_in == 1


async def test_random_datagrams_never_break_the_relay(relay: RtpRelay, phones: list[Phone]) -> None:
    a, b, _ = phones
    ea, eb = bridge(relay, a, b)
    rng = random.Random(4)
    sent = 300
    for _ in range(sent):
        await a.send(rng.randbytes(rng.randrange(0, 200)), ea.local_port)
    await a.send(rtp(1), ea.local_port)
    forwarded = 0
    while (await b.recv())[0] != rtp(1):
        forwarded += 1
    s = ea.stats
    assert s.malformed + s.packets_in + s.foreign_dropped == sent + 1
    assert s.packets_in == forwarded + 1


async def test_rtcp_forwarded_port_plus_one(relay: RtpRelay, phones: list[Phone]) -> None:
    a, b, _ = phones
    b_rtcp = await Phone().bind()
    try:
        ea = relay.open_endpoint(a.addr)
        eb = relay.open_endpoint(b.addr, rtcp_port=b_rtcp.port)  # a=rtcp from b's SDP
        relay.connect(ea, eb)
        await a.send(RTCP, ea.rtcp_port)
        data, src = await b_rtcp.recv()
        assert data == RTCP and src == (HOST, eb.rtcp_port)
        assert ea.stats.rtcp_in == 1 and eb.stats.rtcp_out == 1
        # RTCP latches on its own: a sent its report from its RTP port, not port + 1 as SDP
        # implied, so b's reports go back there.
        assert ea.rtcp_remote == a.addr and ea.remote == a.addr
        await b_rtcp.send(RTCP, eb.rtcp_port)
        assert (await a.recv()) == (RTCP, (HOST, ea.rtcp_port))
        assert await b.nothing()
    finally:
        b_rtcp.close()


async def test_rtcp_mux(relay: RtpRelay, phones: list[Phone]) -> None:
    a, b, c = phones
    ea, eb = bridge(relay, a, b, rtcp_mux=True)
    assert ea.rtcp_port == ea.local_port and relay.socket_count == 2
    await a.send(RTCP, ea.local_port)
    assert (await b.recv()) == (RTCP, (HOST, eb.local_port))
    await a.send(rtp(1), ea.local_port)
    assert (await b.recv())[0] == rtp(1)
    assert ea.stats.rtcp_in == 1 and ea.stats.packets_in == 2
    # mux on one side only: RTCP from the mux side goes to the other's RTCP port.
    ec = relay.open_endpoint(c.addr)
    relay.disconnect(ea)
    relay.connect(ea, ec)
    c_rtcp = await Phone().bind()
    try:
        ec.set_remote(HOST, c.port, rtcp_port=c_rtcp.port)
        await a.send(RTCP, ea.local_port)
        assert (await c_rtcp.recv()) == (RTCP, (HOST, ec.rtcp_port))
        await c_rtcp.send(RTCP, ec.rtcp_port)
        assert (await a.recv()) == (RTCP, (HOST, ea.local_port))
    finally:
        c_rtcp.close()


async def test_taps_in_order_and_broken_tap_removed(relay: RtpRelay, phones: list[Phone]) -> None:
    a, b, _ = phones
    ea, eb = bridge(relay, a, b)
    seen: list[tuple[str, int, bool]] = []

    def first(view: memoryview, is_rtcp: bool) -> None:
        seen.append(("first", parse_rtp(view).sequence, is_rtcp))

    def second(view: memoryview, is_rtcp: bool) -> None:
        seen.append(("second", parse_rtp(view).sequence, is_rtcp))

    ea.add_tap(first)
    ea.add_tap(second)
    with pytest.raises(RtpError):
        ea.add_tap(first)
    await a.send(rtp(42), ea.local_port)
    await b.recv()
    assert seen == [("first", 42, False), ("second", 42, False)]

    def broken(view: memoryview, is_rtcp: bool) -> None:
        raise ValueError("consumer bug")

    ea.remove_tap(first)
    ea.add_tap(broken)
    await a.send(rtp(43), ea.local_port)
    assert (await b.recv())[0] == rtp(43)
    assert ea.stats.hook_errors == 1 and ea.taps == (second,)
    assert seen[-1] == ("second", 43, False)
    ea.remove_tap(broken)  # already gone: no-op
    ea.remove_tap(second)
    await a.send(rtp(44), ea.local_port)
    assert (await b.recv())[0] == rtp(44)
    assert len(seen) == 3 and ea.taps == ()


async def test_unconnected_and_disconnected_count_no_peer(relay: RtpRelay, phones: list[Phone]) -> None:
    a, b, _ = phones
    ea, eb = bridge(relay, a, b)
    relay.disconnect(eb)
    assert ea.peer is None
    await a.send(rtp(1), ea.local_port)
    assert await b.nothing()
    assert ea.stats.no_peer == 1
    with pytest.raises(RtpError):
        relay.connect(ea, ea)
    relay.connect(ea, eb)
    ec = relay.open_endpoint(None)
    with pytest.raises(RtpError):
        relay.connect(ea, ec)


async def test_ports_released_on_close(relay: RtpRelay, phones: list[Phone]) -> None:
    a, b, _ = phones
    ea, eb = bridge(relay, a, b)
    ports = [ea.local_port, ea.rtcp_port, eb.local_port, eb.rtcp_port]
    assert relay.allocator.in_use == 4
    await relay.close_endpoint(ea)
    eb.close()
    eb.close()
    assert relay.allocator.in_use == 0 and relay.endpoint_count == 0 and relay.socket_count == 0
    assert ea.closed and eb.peer is None
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((HOST, port))
    with pytest.raises(RtpError):
        relay.connect(ea, eb)


async def test_ports_released_on_relay_cancel(phones: list[Phone]) -> None:
    a, b, _ = phones
    allocator = PortAllocator(*RANGE)
    relay = RtpRelay(allocator)
    async with trio.open_nursery() as nursery:
        await nursery.start(relay.run)
        ea, eb = bridge(relay, a, b)
        ec = relay.open_endpoint(None, rtcp_mux=True)
        await a.send(rtp(1), ea.local_port)
        await b.recv()
        ports = [ea.local_port, ea.rtcp_port, eb.local_port, eb.rtcp_port, ec.local_port]
        nursery.cancel_scope.cancel()
    assert allocator.in_use == 0 and relay.endpoint_count == 0 and relay.socket_count == 0
    assert all(e.closed for e in (ea, eb, ec))
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((HOST, port))
    with pytest.raises(RtpError):
        relay.open_endpoint(None)


async def test_port_in_use_is_skipped(nursery: trio.Nursery) -> None:
    first = 42000
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        try:
            squatter.bind((HOST, first + 1))  # someone holds the RTCP port of the first pair
        except OSError:
            pytest.skip("port already taken by something else")
        allocator = PortAllocator(first, first + 5)
        other = RtpRelay(allocator)
        await nursery.start(other.run)
        endpoint = other.open_endpoint(None)
        assert endpoint.local_port == first + 2
        assert allocator.in_use == 2
        await other.close_endpoint(endpoint)
        assert allocator.in_use == 0


async def test_bad_addresses_rejected(relay: RtpRelay) -> None:
    with pytest.raises(RtpError):
        relay.open_endpoint(("example.com", 4000))
    with pytest.raises(RtpError):
        relay.open_endpoint((HOST, 70000))
    assert relay.allocator.in_use == 0 and relay.endpoint_count == 0


async def test_receiver_stats_tracked(nursery: trio.Nursery, phones: list[Phone]) -> None:
    a, b, _ = phones
    relay = RtpRelay(PortAllocator(*RANGE), track_receiver_stats=True)
    await nursery.start(relay.run)
    ea, eb = bridge(relay, a, b)
    for seq in (1, 2, 3, 5):
        await a.send(rtp(seq), ea.local_port)
        await b.recv()
    rs = ea.receiver_stats
    assert rs is not None and rs.ssrc == 0x1234 and rs.valid
    assert rs.cumulative_lost == 1 and rs.extended_highest_sequence == 5


async def test_burst_of_5000_without_loss(relay: RtpRelay, phones: list[Phone]) -> None:
    _, b, _ = phones
    b.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    total = 5000
    got: set[int] = set()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        sender.bind((HOST, 0))
        ea = relay.open_endpoint(sender.getsockname())
        eb = relay.open_endpoint(b.addr)
        relay.connect(ea, eb)

        async def receive() -> None:
            while len(got) < total:
                data, _ = await b.sock.recvfrom(4096)
                got.add(parse_rtp(data).sequence)

        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(receive)
                # Bursts of 50 back to back, yielding between them so the relay can drain.
                for start in range(0, total, 50):
                    for seq in range(start, start + 50):
                        sender.sendto(rtp(seq), (HOST, ea.local_port))
                    await trio.sleep(0)
    assert len(got) == total
    assert ea.stats.packets_in == total and eb.stats.packets_out == total
    assert eb.stats.send_dropped == 0


async def test_a_flooded_endpoint_does_not_starve_another(
    relay: RtpRelay, phones: list[Phone]
) -> None:
    sink, _, _ = phones
    sink.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    flood_total = 250  # what fits in a default socket buffer (about 256 such packets)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as flooder, socket.socket(
        socket.AF_INET, socket.SOCK_DGRAM
    ) as quiet:
        flooder.bind((HOST, 0))
        quiet.bind((HOST, 0))
        # Both calls send to the same phone, so its arrival order is the relay's order.
        ea = relay.open_endpoint(flooder.getsockname())
        ea_out = relay.open_endpoint(sink.addr)
        eb = relay.open_endpoint(quiet.getsockname())
        eb_out = relay.open_endpoint(sink.addr)
        relay.connect(ea, ea_out)
        relay.connect(eb, eb_out)
        # Queue everything before the relay runs again: one wake-up sees both sockets ready.
        for seq in range(flood_total):
            flooder.sendto(rtp(seq, ssrc=1), (HOST, ea.local_port))
        quiet.sendto(rtp(0, ssrc=2), (HOST, eb.local_port))
        order: list[int] = []
        with trio.fail_after(5):
            while len(order) < flood_total + 1:
                data, _ = await sink.sock.recvfrom(4096)
                order.append(parse_rtp(data).ssrc)
    # Sockets take turns, a datagram each: the quiet call's packet waits for one round, not
    # for the flood.
    assert order.index(2) < 10
    assert ea.stats.packets_in == flood_total and eb.stats.packets_in == 1
    assert ea.stats.bytes_in == flood_total * len(rtp(0))


async def test_tap_closing_endpoints_mid_round(relay: RtpRelay, phones: list[Phone]) -> None:
    b, _, _ = phones
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a, socket.socket(
        socket.AF_INET, socket.SOCK_DGRAM
    ) as c:
        a.bind((HOST, 0))
        c.bind((HOST, 0))
        ea = relay.open_endpoint(a.getsockname())
        eb = relay.open_endpoint(b.addr)
        relay.connect(ea, eb)
        ec = relay.open_endpoint(c.getsockname())
        ed = relay.open_endpoint(b.addr)
        relay.connect(ec, ed)
        reopened: list[MediaEndpoint] = []

        def closer(view: memoryview, is_rtcp: bool) -> None:
            ec.close()  # its socket is ready in this same round, after ea's
            reopened.append(relay.open_endpoint(c.getsockname()))  # may reuse its fd
            ea.close()  # the packets still queued on it go nowhere

        ea.add_tap(closer)
        # Queued before the relay runs again, so one round sees both sockets ready.
        for seq in range(1, 5):
            a.sendto(rtp(seq), (HOST, ea.local_port))
        c.sendto(rtp(9, ssrc=9), (HOST, ec.local_port))
        assert await b.nothing()
        assert ea.closed and ec.closed and ea.stats.packets_in == 1
        assert ec.stats.packets_in == 0
        assert relay.endpoint_count == 3 and relay.socket_count == 6
        # The relay goes on serving what is left, including the endpoint the tap opened.
        (new,) = reopened
        relay.connect(new, eb)
        c.sendto(rtp(10, ssrc=9), (HOST, new.local_port))
        assert (await b.recv())[0] == rtp(10, ssrc=9)
