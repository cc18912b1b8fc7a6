"""Generated audio end to end: SIP on the in-memory network, RTP on real 127.0.0.1 sockets.

Coordinator A relays media (``builder.media_relay()``); the "phones" are plain UDP sockets
bound on the ports B's call legs advertised, so A's relay sends them what each call hears.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import trio

from trio_voip import CallSession, SessionCoordinator, SessionManagerBuilder
from trio_voip.errors import CallError, CallStateError, MediaFormatError, TrioVoipError
from trio_voip.rtp.g711 import G711Law
from trio_voip.rtp.packet import RtpPacket, parse_rtp
from trio_voip.rtp.playback import FrameListSource
from trio_voip.rtp.ticker import PlaybackEnd
from trio_voip.rtp.wav import wav_to_frames, write_wav

from test_coordinator import Scripted, pair
from test_coordinator_bridges import calls

ULAW = G711Law.PCMU
HOST = "127.0.0.1"
# The callee's ports are where the test's phones bind: a range of our own, out of the way of
# other tests and of anything using the default 20000-20999.
PHONES = lambda b: b.rtp_ports(31600, 31699)  # noqa: E731


def relay_setup(
    first_port: int, moh: str | None = None
) -> Callable[[SessionManagerBuilder], object]:
    def setup(builder: SessionManagerBuilder) -> None:
        builder.media_relay().rtp_ports(first_port, first_port + 99)
        if moh is not None:
            builder.music_on_hold(moh)

    return setup


class Phone:
    """A UDP socket on the port a far call leg advertised: what the relay sends that leg."""

    def __init__(self, sock: trio.socket.SocketType, relay_port: int) -> None:
        self.sock = sock
        self.relay_port = relay_port
        self.seq = 0

    @classmethod
    async def open(cls, far: CallSession, near: CallSession) -> Phone:
        sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        assert far.rtp_port is not None and near.rtp_port is not None
        await sock.bind((HOST, far.rtp_port))
        return cls(sock, near.rtp_port)

    async def send(self, payload: bytes, pt: int = 0) -> bytes:
        self.seq += 1
        ssrc = 0xABCD0000 + self.sock.getsockname()[1]
        packet = RtpPacket(pt, self.seq, self.seq * 160, ssrc, payload).to_bytes()
        await self.sock.sendto(packet, (HOST, self.relay_port))
        return packet

    async def recv(self, wait: float = 2.0) -> bytes | None:
        with trio.move_on_after(wait):
            data, _ = await self.sock.recvfrom(2048)
            return data
        return None

    async def drain(self) -> None:
        while await self.recv(0.1) is not None:
            pass

    async def talk(self, payload: bytes, frames: int) -> None:
        """Send ``payload`` every 20 ms on an absolute schedule, as a phone would."""
        start = trio.current_time()
        for n in range(frames):
            await self.send(payload)
            await trio.sleep_until(start + (n + 1) * 0.020)

    def close(self) -> None:
        self.sock.close()


def constant(value: int) -> tuple[bytes, int]:
    """A mu-law frame of one sample value, and the linear value the codec really carries."""
    frame = ULAW.encode([value] * 160)
    return frame, ULAW.decode(frame)[0]


def released(a: SessionCoordinator) -> bool:
    assert a.relay is not None
    ticker = a.relay.ticker
    return (
        a.relay.endpoint_count == 0
        and a.relay.socket_count == 0
        and a.stats().rtp_ports == 0
        and ticker.idle
        and ticker.stream_count == 0
    )


async def test_three_party_conference_each_hears_the_other_two() -> None:
    handler = Scripted()
    setup = relay_setup(33000)
    async with pair(callee=handler, caller_setup=setup, callee_setup=PHONES) as (a, b):
        legs = await calls(a, handler, 3)
        phones = [await Phone.open(far, near) for near, far in legs]
        (x, _), (y, _), (z, _) = legs
        try:
            bridge = a.create_bridge()
            for call in (x, y, z):
                a.add_session_to_bridge(bridge, call.id)
            assert a.relay is not None and set(a.relay.ticker.mixes()[bridge]) == {
                a._endpoints[c.id] for c in (x, y, z)
            }
            voices = [constant(v) for v in (1000, -3000, 7000)]
            levels = [level for _, level in voices]
            heard: list[list[bytes]] = [[], [], []]

            async def listen(i: int) -> None:
                while True:  # the mix never stops: comfort silence when nobody talks
                    data, _ = await phones[i].sock.recvfrom(2048)
                    heard[i].append(data)

            async with trio.open_nursery() as nursery:
                for i in range(3):
                    nursery.start_soon(listen, i)
                async with trio.open_nursery() as talkers:
                    for i in range(3):
                        talkers.start_soon(phones[i].talk, voices[i][0], 40)
                nursery.cancel_scope.cancel()
            for i in range(3):
                others = sum(levels) - levels[i]
                expected = ULAW.encode([others] * 160)
                packets = [parse_rtp(data) for data in heard[i]]
                assert len(packets) >= 30
                payloads = Counter(bytes(p.payload) for p in packets)
                # Steady state: the mix of exactly the other two. A frame now and then can
                # miss a talker (phone and ticker clocks drift apart): never anything else.
                assert payloads.most_common(1)[0][0] == expected
                assert payloads[expected] >= len(packets) // 2
                partial = {
                    ULAW.encode([v] * 160)
                    for v in (0, *(levels[j] for j in range(3) if j != i))
                }
                assert set(payloads) <= {expected} | partial
                # one stream per phone from the mixer: continuous sequence, 160 per frame
                ssrcs = {p.ssrc for p in packets}
                assert len(ssrcs) == 1
                seqs = [p.sequence for p in packets]
                assert all((b2 - b1) % 65536 == 1 for b1, b2 in zip(seqs, seqs[1:]))
                stamps = [p.timestamp for p in packets]
                steps = [(t2 - t1) % 2**32 for t1, t2 in zip(stamps, stamps[1:])]
                assert all(step and step % 160 == 0 for step in steps)
            # back to two: the direct relay again, packets passed through untouched
            a.remove_session_from_bridge(bridge, z.id)
            assert a.relay.ticker.idle
            for phone in phones:
                await phone.drain()
            sent = await phones[0].send(voices[0][0])
            assert await phones[1].recv() == sent
            assert await phones[2].recv(0.2) is None
            for call in (x, y, z):
                await call.hangup()
        finally:
            for phone in phones:
                phone.close()
        assert released(a)


async def test_wav_prompt_reaches_the_phone_with_timing_and_content(tmp_path: Any) -> None:
    handler = Scripted()
    path = tmp_path / "prompt.wav"
    samples = [((i * 53) % 3000) - 1500 for i in range(160 * 10)]
    write_wav(str(path), samples)
    expected = wav_to_frames(str(path), ULAW)
    setup = relay_setup(33100)
    async with pair(callee=handler, caller_setup=setup, callee_setup=PHONES) as (a, b):
        ((x, x_far),) = await calls(a, handler, 1)
        phone = await Phone.open(x_far, x)
        try:
            got: list[tuple[float, RtpPacket]] = []

            async def listen() -> None:
                while (data := await phone.recv(0.5)) is not None:
                    got.append((trio.current_time(), parse_rtp(data)))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(listen)
                assert await x.play_wav(path) is PlaybackEnd.COMPLETED
            assert [bytes(p.payload) for _, p in got] == expected
            first = got[0][1]
            assert first.marker and first.payload_type == 0
            for k, (_, p) in enumerate(got):
                assert p.sequence == (first.sequence + k) % 65536
                assert p.timestamp == (first.timestamp + 160 * k) % 2**32
                assert p.ssrc == first.ssrc and p.marker == (k == 0)
            # paced 20 ms apart, not a burst (exact timing: test_rtp_playback.py, MockClock)
            span = got[-1][0] - got[0][0]
            assert 9 * 0.020 - 0.04 < span < 1.0
            # a tone loops until stopped; a new playback replaces it
            tone = x.play_tone("busy")
            assert a.media is not None and a.media.playback(x.id) is tone
            assert await phone.recv() is not None
            x.stop_playback()
            assert await tone.wait() is PlaybackEnd.STOPPED
            looped = x.start_playback(FrameListSource([b"\x01" * 160]), loop=True)
            replacing = x.start_playback(FrameListSource([b"\x02" * 160]))
            assert await looped.wait() is PlaybackEnd.REPLACED
            assert await replacing.wait() is PlaybackEnd.COMPLETED
            # the call ending ends what plays
            endless = x.start_playback(FrameListSource([b"\x03" * 160]), loop=True)
            with pytest.raises(MediaFormatError):
                x.play_tone("dial")
            with pytest.raises(MediaFormatError):
                await x.play_wav(tmp_path / "missing.wav")
            await x.hangup()
            assert await endless.wait() is PlaybackEnd.CLOSED
            with pytest.raises(CallStateError):
                x.play_tone("busy")
        finally:
            phone.close()
        assert released(a)
        # B has no relay: its calls cannot be played into
        with pytest.raises(CallError, match="relayed media"):
            x_far.play_tone("ringback")
        with pytest.raises(CallError, match="relayed media"):
            await x_far.play(FrameListSource([b"\xff" * 160]))


async def test_music_on_hold_replaces_the_bridge_while_held(tmp_path: Any) -> None:
    handler = Scripted()
    path = tmp_path / "moh.wav"
    write_wav(str(path), [(i * 7) % 4000 - 2000 for i in range(160 * 3)])
    music = wav_to_frames(str(path), ULAW)
    setup = relay_setup(33200, str(path))
    async with pair(callee=handler, caller_setup=setup, callee_setup=PHONES) as (a, b):
        (x, x_far), (y, y_far) = await calls(a, handler, 2)
        phone_x, phone_y = await Phone.open(x_far, x), await Phone.open(y_far, y)
        try:
            a.bridge_sessions(x.id, y.id)
            sent = await phone_y.send(b"\x55" * 160)
            assert await phone_x.recv() == sent
            await x.hold()
            heard = []
            for _ in range(7):
                data = await phone_x.recv()
                assert data is not None
                heard.append(bytes(parse_rtp(data).payload))
                await phone_y.send(b"\x55" * 160)  # y talks on: x must not hear it
            start = heard.index(music[0])
            assert heard[start : start + 4] == [*music, music[0]][: len(heard[start : start + 4])]
            assert set(heard) == set(music)
            stats_x = a.media_stats(x.id)
            assert stats_x is not None and stats_x.suppressed >= 5 and stats_x.packets_out >= 7
            await x.resume()
            await phone_x.drain()
            sent = await phone_y.send(b"\x66" * 160)
            assert await phone_x.recv() == sent  # relayed again
            assert a.relay is not None and a.relay.ticker.idle
            # holding again plays the music again; hanging up ends it
            await x.hold()
            assert await phone_x.recv() is not None
            for call in (x, y):
                await call.hangup()
            assert a.media_stats(x.id) is None  # ended: no endpoint left
        finally:
            phone_x.close()
            phone_y.close()
        assert released(a)


def test_music_on_hold_needs_the_relay() -> None:
    with pytest.raises(TrioVoipError, match="relayed media"):
        SessionManagerBuilder().music_on_hold("/tmp/moh.wav").config()
