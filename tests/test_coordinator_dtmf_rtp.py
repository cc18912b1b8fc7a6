"""RFC 4733 DTMF on relayed coordinator calls: SIP on the in-memory network, RTP on real
127.0.0.1 sockets (a "phone" bound on the callee's advertised RTP port), real time."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_voip import CallError, CallSession, CallState, DtmfReceived, SessionCoordinator
from trio_voip.rtp.dtmf import DtmfDetector, TelephoneEvent, dtmf_packets, parse_telephone_event
from trio_voip.rtp.packet import RtpPacket, parse_rtp
from trio_voip.rtp.playback import FrameListSource
from trio_voip.session.dtmf import DtmfService

from test_coordinator import Scripted, pair
from test_coordinator_bridges import calls, phone

RELAY = lambda b: b.media_relay().rtp_ports(31200, 31299)  # noqa: E731
# The callee's ports are where the test's phones bind: out of other tests' way.
PHONES = lambda b: b.rtp_ports(31300, 31399)  # noqa: E731
AUDIO = RtpPacket(payload_type=0, sequence=1, timestamp=160, ssrc=0xAB, payload=b"\xff" * 160)


async def next_events(
    channel: trio.MemoryReceiveChannel[object], kind: type, count: int, wait: float = 3.0
) -> list[object]:
    out: list[object] = []
    with trio.move_on_after(wait):
        async for event in channel:
            if isinstance(event, kind):
                out.append(event)
                if len(out) == count:
                    break
    return out


async def one_call(
    a: SessionCoordinator, handler: Scripted
) -> tuple[CallSession, CallSession, trio.socket.SocketType]:
    ((call, far),) = await calls(a, handler, 1)
    assert call.rtp_port is not None and far.rtp_port is not None
    return call, far, await phone(far.rtp_port)


async def test_phone_presses_1_and_hash() -> None:
    handler = Scripted()
    async with pair(callee=handler, caller_setup=RELAY, callee_setup=PHONES) as (a, b):
        events = a.subscribe_to_session_events()
        call, _far, sock = await one_call(a, handler)
        assert call.media is not None and call.media.telephone_event_pt == 101
        to = ("127.0.0.1", call.rtp_port)
        with sock:
            timestamp, sequence = 1000, 7
            for digit in "1#":
                for _offset, packet in dtmf_packets(
                    digit, payload_type=101, ssrc=0xAB, sequence=sequence, timestamp=timestamp
                ):
                    await sock.sendto(packet.to_bytes(), to)
                    await sock.sendto(AUDIO.to_bytes(), to)  # audio in between: not DTMF
                    sequence += 1
                timestamp += 800 + 400
            got = await next_events(events, DtmfReceived, 2)
            assert got == [
                DtmfReceived(call.id, "1", 100, method="rfc4733"),
                DtmfReceived(call.id, "#", 100, method="rfc4733"),
            ]
            # the end packets' retransmissions and the audio reported nothing more
            assert await next_events(events, DtmfReceived, 1, wait=0.4) == []
            assert a.dtmf.stats.malformed == 0
            await call.hangup()
        assert len(a.dtmf) == 0


async def test_press_without_end_packets_is_closed_by_the_timer() -> None:
    handler = Scripted()
    async with pair(callee=handler, caller_setup=RELAY, callee_setup=PHONES) as (a, b):
        call, _far, sock = await one_call(a, handler)
        events = a.subscribe_to_session_events()
        call_events = call.events()
        to = ("127.0.0.1", call.rtp_port)
        with sock:
            schedule = dtmf_packets("5", payload_type=101, ssrc=1, sequence=1, timestamp=5)
            started = trio.current_time()
            for _offset, packet in schedule[:2]:  # the end packets are all lost
                await sock.sendto(packet.to_bytes(), to)
            # a malformed telephone-event packet (2-byte payload) is counted, not fatal
            await sock.sendto(RtpPacket(101, 9, 99, 1, b"\x05\x0a").to_bytes(), to)
            (event,) = await next_events(events, DtmfReceived, 1)
            assert event == DtmfReceived(call.id, "5", 100, method="rfc4733")
            # reported by the coordinator's timer, once the detector's 0.25 s timeout ran out
            assert trio.current_time() - started >= 0.25
            assert await next_events(call_events, DtmfReceived, 1) == [event]
            assert a.dtmf.stats.malformed == 1
            assert a.dtmf.next_deadline() is None
            await call.hangup()


async def received_packets(
    sock: trio.socket.SocketType, wait: float = 1.0
) -> list[tuple[float, RtpPacket]]:
    out = []
    with trio.move_on_after(wait):
        while True:
            data, _ = await sock.recvfrom(2048)
            out.append((trio.current_time(), parse_rtp(data)))
    return out


async def test_send_dtmf_reaches_the_phone_as_rfc4733_packets() -> None:
    handler = Scripted()
    async with pair(callee=handler, caller_setup=RELAY, callee_setup=PHONES) as (a, b):
        call, far, sock = await one_call(a, handler)
        far_events = far.events()
        with sock:
            got: list[tuple[float, RtpPacket]] = []

            async def listen() -> None:
                got.extend(await received_packets(sock, 0.6))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(listen)
                started = trio.current_time()
                await call.send_dtmf("1#", duration=100)  # RFC 4733 by default: negotiated
                assert trio.current_time() - started >= 0.2  # two tones and two gaps
            packets = [packet for _, packet in got]
            assert len(packets) == 10
            assert {p.payload_type for p in packets} == {101}
            assert len({p.ssrc for p in packets}) == 1
            first_seq = packets[0].sequence
            assert [p.sequence for p in packets] == [(first_seq + i) & 0xFFFF for i in range(10)]
            assert [p.marker for p in packets] == [True, *[False] * 4, True, *[False] * 4]
            events = [parse_telephone_event(p.payload) for p in packets]
            assert events == [
                TelephoneEvent(1, False, 10, 400),
                TelephoneEvent(1, False, 10, 800),
                *[TelephoneEvent(1, True, 10, 800)] * 3,
                TelephoneEvent(11, False, 10, 400),
                TelephoneEvent(11, False, 10, 800),
                *[TelephoneEvent(11, True, 10, 800)] * 3,
            ]
            # one timestamp per press, the second press at least 0.1 s of samples later
            assert len({p.timestamp for p in packets[:5]}) == 1
            assert len({p.timestamp for p in packets[5:]}) == 1
            assert (packets[5].timestamp - packets[0].timestamp) & 0xFFFFFFFF >= 800
            # paced: the end of each press goes out ~duration after its start
            assert got[2][0] - got[0][0] >= 0.08 and got[5][0] - got[0][0] >= 0.18
            detector = DtmfDetector()
            digits = [d for t, p in got for d in detector.feed(p, t)]
            assert [(d.digit, d.duration, d.ended) for d in digits] == [
                ("1", 0.1, True),
                ("#", 0.1, True),
            ]
            # the callee has no relay: its phone got them as RTP, not as INFO
            assert await next_events(far_events, DtmfReceived, 1, wait=0.2) == []
            assert a.dtmf.stats.sent == 10
            # INFO still on request, and then the callee's coordinator reports it
            await call.send_dtmf("7", method="info")
            assert await next_events(far_events, DtmfReceived, 1) == [
                DtmfReceived(far.id, "7", 160, method="info")
            ]
            assert await received_packets(sock, 0.1) == []
            with pytest.raises(CallError):
                await call.send_dtmf("1", method="carrier-pigeon")
            with pytest.raises(CallError):
                await call.send_dtmf("1", duration=10_000, method="rfc4733")
            await call.hangup()


async def test_events_join_the_audio_stream_the_relay_generates() -> None:
    """While a prompt plays into the call, the events go out in the prompt's RTP stream: one
    SSRC, one run of sequence numbers, the press stamped with the stream's clock."""
    handler = Scripted()
    async with pair(callee=handler, caller_setup=RELAY, callee_setup=PHONES) as (a, b):
        call, _far, sock = await one_call(a, handler)
        assert a.relay is not None
        endpoint = a._endpoints[call.id]
        with sock:
            a.relay.ticker.play(endpoint, FrameListSource([b"\xff" * 160]), loop=True)
            got: list[tuple[float, RtpPacket]] = []

            async def listen() -> None:
                got.extend(await received_packets(sock, 0.5))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(listen)
                await trio.sleep(0.1)
                await call.send_dtmf("5", duration=100)
            a.relay.ticker.stop_playback(endpoint)
            packets = [packet for _, packet in got]
            audio = [p for p in packets if p.payload_type == 0]
            events = [p for p in packets if p.payload_type == 101]
            assert len(events) == 5 and len(audio) > 10
            assert {p.ssrc for p in packets} == {audio[0].ssrc}
            # one run of sequence numbers, in the order sent (loopback keeps it)
            steps = [(q.sequence - p.sequence) & 0xFFFF for p, q in zip(packets, packets[1:])]
            assert steps == [1] * (len(packets) - 1)
            # the press starts at the audio clock: just after the frame sent before it
            first_event = packets.index(events[0])
            previous = packets[first_event - 1]
            assert previous.payload_type == 0
            assert 0 < (events[0].timestamp - previous.timestamp) & 0xFFFFFFFF <= 2 * 160
            await call.hangup()


async def test_rfc4733_needs_relayed_media_and_negotiated_events() -> None:
    handler = Scripted()
    async with pair(callee=handler) as (a, b):
        ((call, _far),) = await calls(a, handler, 1)
        with pytest.raises(CallError):
            await call.send_dtmf("1", method="rfc4733")
        await call.hangup()
        assert call.state is CallState.TERMINATED


class FakeEndpoint:
    """What DtmfService uses of a relay endpoint."""

    def __init__(self) -> None:
        self.taps: list[object] = []
        self.sent: list[tuple[float, bytes]] = []
        self.remote = ("127.0.0.1", 9)
        self.closed = False

    def add_tap(self, tap: object) -> None:
        self.taps.append(tap)

    def send_rtp(self, data: bytes) -> bool:
        self.sent.append((trio.current_time(), data))
        return True


@settings(max_examples=40, deadline=None)
@given(
    digits=st.text(alphabet="0123456789*#ABCDabcd", min_size=1, max_size=6),
    lose_end=st.lists(st.booleans(), min_size=6, max_size=6),
)
def test_service_sends_what_it_detects_even_without_end_packets(
    digits: str, lose_end: list[bool]
) -> None:
    """One service sends; its packets (the end packets of some presses lost) go to another
    service's tap at the times they were sent; every press comes out once, in order."""

    async def main() -> list[DtmfReceived]:
        media = SimpleNamespace(telephone_event_pt=101)
        published: list[DtmfReceived] = []
        sender = DtmfService(lambda _id, _event: None, lambda: None)
        receiver = DtmfService(lambda _id, event: published.append(event), lambda: None)
        out, into = FakeEndpoint(), FakeEndpoint()
        sender.attach("s", out, lambda: media)  # type: ignore[arg-type]
        receiver.attach("r", into, lambda: media)  # type: ignore[arg-type]
        (tap,) = into.taps
        await sender.send("s", out, digits.upper(), 100)  # type: ignore[arg-type]

        async def run_timers(until: float) -> None:
            # what the coordinator's timer task does
            while (deadline := receiver.next_deadline()) is not None and deadline <= until:
                await trio.sleep_until(deadline)
                receiver.on_timer(trio.current_time())

        start = out.sent[0][0]
        await trio.sleep_until(start + 100)  # replay later, on the same relative schedule
        sequence = [parse_rtp(data) for _, data in out.sent]
        press = -1
        for (at, data), packet in zip(out.sent, sequence):
            press += packet.marker
            if lose_end[press] and parse_telephone_event(packet.payload).end:
                continue
            await run_timers(at + 100)
            await trio.sleep_until(at + 100)
            tap(memoryview(data), False)  # type: ignore[operator]
        await run_timers(float("inf"))
        assert receiver.next_deadline() is None
        return published

    published = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert [(e.session_id, e.digit, e.duration, e.method) for e in published] == [
        ("r", digit, 100, "rfc4733") for digit in digits.upper()
    ]
