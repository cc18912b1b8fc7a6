"""Frame sources, the tick schedule and the media ticker (MockClock), and playback on a real
relay over 127.0.0.1."""

from __future__ import annotations

import io
from typing import Any, cast

import attrs
import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from trio_voip.errors import MediaFormatError, RtpError
from trio_voip.rtp.g711 import G711Law
from trio_voip.rtp.mixer import FRAME_SAMPLES
from trio_voip.rtp.packet import RtpPacket, parse_rtp
from trio_voip.rtp.playback import (
    FrameListSource,
    FrameSource,
    ToneSource,
    WavSource,
    convert_frame,
)
from trio_voip.rtp.ports import PortAllocator
from trio_voip.rtp.relay import MediaEndpoint, RtpRelay
from trio_voip.rtp.ticker import MediaTicker, PlaybackEnd, StreamFormat, TickSchedule
from trio_voip.rtp.tones import busy_frames, ringback_frames
from trio_voip.rtp.wav import wav_to_frames, write_wav

PERIOD = 0.020


def frames(n: int, start: int = 0) -> list[bytes]:
    return [bytes(((start + i) % 256,)) * FRAME_SAMPLES for i in range(n)]


# -- sources --


def test_tone_sources_loop_the_tone_tables() -> None:
    ring = ToneSource.named("ringback", G711Law.PCMA)
    assert ring.frames == tuple(ringback_frames(law=G711Law.PCMA)) and ring.duration == 6.0
    busy = ToneSource.named("busy")
    assert list(busy.frames) == busy_frames()
    got = [busy.next_frame() for _ in range(len(busy.frames) + 1)]
    assert got[-1] is None
    busy.rewind()
    assert busy.next_frame() == busy.frames[0]
    with pytest.raises(MediaFormatError):
        ToneSource.named("dial")
    assert isinstance(busy, FrameSource)


def test_wav_source(tmp_path: Any) -> None:
    samples = [(i * 37) % 2000 - 1000 for i in range(1000)]  # 125 ms: 7 frames, last padded
    path = tmp_path / "prompt.wav"
    write_wav(str(path), samples)
    source = WavSource.read(path, G711Law.PCMA)
    assert list(source.frames) == wav_to_frames(str(path), G711Law.PCMA)
    assert len(source.frames) == 7 and source.law is G711Law.PCMA
    assert G711Law.PCMA.decode(b"".join(source.frames))[:1000] == G711Law.PCMA.decode(
        G711Law.PCMA.encode(samples)
    )
    with pytest.raises(MediaFormatError):
        WavSource.read(tmp_path / "missing.wav")
    empty = io.BytesIO()
    write_wav(empty, [])
    empty.seek(0)
    with pytest.raises(MediaFormatError):
        WavSource.read(empty)


def test_frame_list_validation() -> None:
    with pytest.raises(MediaFormatError):
        FrameListSource([b"\x00" * 159])
    with pytest.raises(MediaFormatError):
        FrameListSource([])


@given(st.binary(min_size=1, max_size=320), st.sampled_from(list(G711Law)))
def test_convert_frame_is_decode_then_encode(data: bytes, source: G711Law) -> None:
    target = G711Law.PCMA if source is G711Law.PCMU else G711Law.PCMU
    assert convert_frame(data, source, target) == target.encode(source.decode(data))
    assert convert_frame(data, source, source) is data


def test_converted_source() -> None:
    source = FrameListSource(frames(3, 0x80), G711Law.PCMU)
    alaw = source.converted(G711Law.PCMA)
    assert alaw.law is G711Law.PCMA and source.converted(G711Law.PCMU) is source
    converted = tuple(convert_frame(f, G711Law.PCMU, G711Law.PCMA) for f in source.frames)
    assert alaw.frames == converted


# -- the schedule, sans-IO --


@given(st.floats(0, 1e6), st.lists(st.floats(0, 0.1), max_size=50))
def test_schedule_stays_on_its_grid(origin: float, delays: list[float]) -> None:
    schedule = TickSchedule()
    schedule.start(origin)
    skipped = 0
    for delay in delays:
        index = schedule.index
        now = schedule.deadline + delay
        missed = schedule.advance(now)
        skipped += missed
        # the next deadline is the first grid slot after now (within float error): no
        # catch-up burst, and only slots already past were skipped
        assert schedule.index == index + 1 + missed
        assert schedule.deadline == origin + schedule.index * PERIOD
        assert schedule.deadline - PERIOD <= now + 1e-6 < schedule.deadline + 2e-6
    assert schedule.skipped == skipped and schedule.ticks == len(delays)


def test_schedule_rejects_bad_period() -> None:
    with pytest.raises(RtpError):
        TickSchedule(period=0)


# -- the ticker, under MockClock, with stand-in endpoints --


@pytest.fixture
def clock(autojump_clock: trio.testing.MockClock) -> trio.testing.MockClock:
    # pytest-trio takes the clock from the test's own arguments: every ticker test names it.
    return autojump_clock


@attrs.define(eq=False)
class FakeEndpoint:
    local_port: int = 0
    closed: bool = False
    playing: bool = False
    sent: list[tuple[float, bytes]] = attrs.Factory(list)
    taps: list[Any] = attrs.Factory(list)

    def add_tap(self, tap: Any) -> None:
        self.taps.append(tap)

    def remove_tap(self, tap: Any) -> None:
        self.taps.remove(tap)

    def send_rtp(self, packet: bytes) -> bool:
        self.sent.append((trio.current_time(), packet))
        return True

    def hear(self, packet: bytes) -> None:
        view = memoryview(packet)
        for tap in list(self.taps):
            tap(view, False)


def ep(fake: FakeEndpoint) -> MediaEndpoint:
    return cast(MediaEndpoint, fake)


@pytest.fixture
async def ticker() -> Any:
    ticker = MediaTicker()
    async with trio.open_nursery() as nursery:
        await nursery.start(ticker.run)
        yield ticker
        nursery.cancel_scope.cancel()


async def test_idle_ticker_does_not_tick(
    ticker: MediaTicker, clock: trio.testing.MockClock
) -> None:
    await trio.sleep(10)
    assert ticker.idle and ticker.schedule.ticks == 0


async def test_frames_on_exact_20ms_multiples_without_drift(
    ticker: MediaTicker, clock: trio.testing.MockClock
) -> None:
    phone = FakeEndpoint()
    start = trio.current_time()
    playback = ticker.play(ep(phone), FrameListSource(frames(7)), loop=True)
    assert phone.playing
    await trio.sleep(1000 * PERIOD - PERIOD / 2)
    assert len(phone.sent) == 1000
    for k, (when, _) in enumerate(phone.sent):
        assert when == pytest.approx(start + k * PERIOD, abs=1e-9)
    packets = [parse_rtp(packet) for _, packet in phone.sent]
    assert [p.payload for p in packets[:8]] == [*frames(7), frames(1)[0]]  # looped
    first = packets[0]
    for k, p in enumerate(packets):
        assert p.sequence == (first.sequence + k) & 0xFFFF
        assert p.timestamp == (first.timestamp + k * FRAME_SAMPLES) & 0xFFFFFFFF
        assert p.ssrc == first.ssrc and p.marker == (k == 0)
    assert ticker.schedule.skipped == 0 and playback.frames_sent == 1000
    playback.stop()
    assert await playback.wait() is PlaybackEnd.STOPPED and not phone.playing
    ticks = ticker.schedule.ticks
    await trio.sleep(1)
    assert ticker.idle and ticker.schedule.ticks == ticks and ticker.stream_count == 0


@attrs.define(eq=False)
class SlowSource:
    """Frames whose 11th takes 50 ms to produce (the clock jumps inside the tick)."""

    clock: trio.testing.MockClock
    law: G711Law = G711Law.PCMU
    n: int = 0

    def next_frame(self) -> bytes | None:
        self.n += 1
        if self.n == 11:
            self.clock.jump(0.05)
        return b"\xff" * FRAME_SAMPLES if self.n <= 30 else None

    def rewind(self) -> None:
        self.n = 0


async def test_late_tick_skips_and_counts(
    ticker: MediaTicker, clock: trio.testing.MockClock
) -> None:
    phone = FakeEndpoint()
    start = trio.current_time()
    playback = ticker.play(ep(phone), SlowSource(clock))
    assert await playback.wait() is PlaybackEnd.COMPLETED
    assert len(phone.sent) == 30 and ticker.schedule.skipped == 1
    times = [when for when, _ in phone.sent]
    # tick 10 ran 50 ms long (until 0.25): tick 11 (due 0.22) is skipped and the latest due
    # one, tick 12 (due 0.24), runs at once; tick 13 is on the grid again
    slots = [*range(11), *range(12, 31)]
    late = {10: 0.05, 12: 0.01}
    for when, k in zip(times, slots):
        assert when == pytest.approx(start + k * PERIOD + late.get(k, 0), abs=1e-9)
    stamps = [parse_rtp(packet).timestamp for _, packet in phone.sent]
    steps = [(b - a) % 2**32 for a, b in zip(stamps, stamps[1:])]
    assert steps == [160] * 10 + [320] + [160] * 18  # the gap is a gap, not squeezed out


async def test_one_shot_replace_close_and_law(
    ticker: MediaTicker, clock: trio.testing.MockClock
) -> None:
    phone = FakeEndpoint()
    prompt = FrameListSource(frames(5, 0x90), G711Law.PCMU)
    first = ticker.play(ep(phone), prompt, StreamFormat(G711Law.PCMA, 8))
    await trio.sleep(2 * PERIOD + 0.001)
    second = ticker.play(ep(phone), FrameListSource(frames(5)))
    assert await first.wait() is PlaybackEnd.REPLACED and first.frames_sent == 3
    sent = [parse_rtp(p) for _, p in phone.sent]
    assert [p.payload_type for p in sent] == [8, 8, 8]
    assert [p.payload for p in sent] == [
        convert_frame(f, G711Law.PCMU, G711Law.PCMA) for f in frames(3, 0x90)
    ]
    await trio.sleep(PERIOD)
    ticker.forget(ep(phone))  # the endpoint closed
    assert await second.wait() is PlaybackEnd.CLOSED and not phone.playing
    assert ticker.idle and ticker.stream_count == 0
    # a closed endpoint and a non-source are refused
    phone.closed = True
    with pytest.raises(RtpError):
        ticker.play(ep(phone), prompt)
    with pytest.raises(RtpError):
        ticker.play(ep(FakeEndpoint()), cast(FrameSource, object()))


async def test_broken_source_fails_the_playback_only(
    ticker: MediaTicker, clock: trio.testing.MockClock
) -> None:
    class Broken:
        law = G711Law.PCMU

        def next_frame(self) -> bytes | None:
            raise ValueError("bug")

        def rewind(self) -> None:
            pass

    class Short(Broken):
        def next_frame(self) -> bytes | None:
            return b"\x00" * 10

    short = Short()
    a, b, c = FakeEndpoint(), FakeEndpoint(), FakeEndpoint()
    pa = ticker.play(ep(a), Broken())
    pb = ticker.play(ep(b), short)
    pc = ticker.play(ep(c), FrameListSource(frames(2)))
    assert await pa.wait() is PlaybackEnd.FAILED
    assert await pb.wait() is PlaybackEnd.FAILED
    assert await pc.wait() is PlaybackEnd.COMPLETED and len(c.sent) == 2


def rtp(payload: bytes, pt: int = 0, seq: int = 1) -> bytes:
    return RtpPacket(pt, seq, seq * 160, 0x42, payload).to_bytes()


async def test_mix_through_taps_and_playback_overrides_mix(
    ticker: MediaTicker, clock: trio.testing.MockClock
) -> None:
    a, b, c = FakeEndpoint(1), FakeEndpoint(2), FakeEndpoint(3)
    ticker.set_mix(
        "room",
        {ep(a): StreamFormat(), ep(b): StreamFormat(), ep(c): StreamFormat(G711Law.PCMA)},
    )
    assert a.taps and ticker.mixes() == {"room": (a, b, c)}
    with pytest.raises(RtpError):
        ticker.set_mix("other", {ep(a): StreamFormat()})
    tone = G711Law.PCMU.encode([800] * FRAME_SAMPLES)
    a.hear(rtp(tone))
    a.hear(rtp(b"\x01" * 4, pt=101))  # a DTMF event: not audio
    await trio.sleep(PERIOD / 2)  # first tick ran at once
    level = G711Law.PCMU.decode(tone)[0]
    assert parse_rtp(b.sent[-1][1]).payload == tone
    c_heard = parse_rtp(c.sent[-1][1])
    assert c_heard.payload_type == 8 and c_heard.payload == G711Law.PCMA.encode([level] * 160)
    assert parse_rtp(a.sent[-1][1]).payload == b"\xff" * FRAME_SAMPLES
    mixer = ticker.mixer("room")
    assert mixer is not None and mixer.participant(a).frames_in == 1
    assert mixer.participant(b).missing == 1 and ticker.mixer("nowhere") is None
    # a prompt into b replaces b's mix; b's own voice still reaches the others
    playback = ticker.play(ep(b), FrameListSource(frames(2, 0x20)))
    b.hear(rtp(tone))
    await trio.sleep(PERIOD)
    assert parse_rtp(b.sent[-1][1]).payload == frames(1, 0x20)[0]
    assert parse_rtp(a.sent[-1][1]).payload == tone
    await playback.wait()
    before = parse_rtp(b.sent[-1][1])
    await trio.sleep(PERIOD * 1.5)  # off the tick grid: no same-instant race with the ticker
    after = parse_rtp(b.sent[-1][1])
    # back to the mix on the same stream: sequence continues, same SSRC
    assert after.ssrc == before.ssrc and after.sequence == (before.sequence + 1) & 0xFFFF
    ticker.set_mix("room", {ep(a): StreamFormat(), ep(b): StreamFormat()})
    assert not c.taps and c.sent and ticker.stream(ep(c)) is None
    ticker.set_mix("room", {})
    assert ticker.idle and not a.taps and not b.taps and ticker.stream_count == 0


async def test_cancelled_ticker_closes_playbacks(clock: trio.testing.MockClock) -> None:
    ticker = MediaTicker()
    phone, member = FakeEndpoint(), FakeEndpoint()
    async with trio.open_nursery() as nursery:
        await nursery.start(ticker.run)
        with pytest.raises(RtpError):
            await nursery.start(ticker.run)
        playback = ticker.play(ep(phone), FrameListSource(frames(1)), loop=True)
        ticker.set_mix("room", {ep(member): StreamFormat()})
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert playback.result is PlaybackEnd.CLOSED and ticker.idle and not member.taps


# -- a real relay over 127.0.0.1 --


async def udp(port: int = 0) -> trio.socket.SocketType:
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    await sock.bind(("127.0.0.1", port))
    return sock


async def recv(sock: trio.socket.SocketType, wait: float = 2.0) -> bytes | None:
    with trio.move_on_after(wait):
        data, _ = await sock.recvfrom(2048)
        return data
    return None


async def test_playback_replaces_relayed_media_on_a_real_relay() -> None:
    relay = RtpRelay(PortAllocator(42000, 42099), latch_window=0)
    async with trio.open_nursery() as nursery:
        await nursery.start(relay.run)
        phone_a, phone_b = await udp(), await udp()
        with phone_a, phone_b:
            ea = relay.open_endpoint(phone_a.getsockname())
            eb = relay.open_endpoint(phone_b.getsockname())
            relay.connect(ea, eb)
            voice = rtp(b"\x11" * 160)
            await phone_a.sendto(voice, ("127.0.0.1", ea.local_port))
            assert await recv(phone_b) == voice
            prompt = FrameListSource(frames(3, 0x40))
            start = trio.current_time()
            playback = relay.ticker.play(eb, prompt)
            got = []
            for _ in range(3):
                data = await recv(phone_b)
                assert data is not None
                got.append((trio.current_time() - start, parse_rtp(data)))
                await phone_a.sendto(voice, ("127.0.0.1", ea.local_port))
            assert [p.payload for _, p in got] == frames(3, 0x40)
            assert got[-1][0] == pytest.approx(2 * PERIOD, abs=0.015)
            assert await playback.wait() is PlaybackEnd.COMPLETED
            assert eb.stats.generated == 3 and eb.stats.suppressed >= 2
            # the prompt is over: a's voice reaches b again
            while (data := await recv(phone_b, 0.05)) is not None:
                assert data != voice  # nothing from a leaked through during the prompt
            await phone_a.sendto(voice, ("127.0.0.1", ea.local_port))
            assert await recv(phone_b) == voice
            # closing the endpoint ends its playback and frees everything
            looped = relay.ticker.play(eb, prompt, loop=True)
            await relay.close_endpoint(eb)
            assert await looped.wait() is PlaybackEnd.CLOSED
            assert relay.ticker.idle and relay.ticker.stream_count == 0
        nursery.cancel_scope.cancel()


class QuietEndpoint(FakeEndpoint):
    def send_rtp(self, packet: bytes) -> bool:
        self.sent.append((0.0, packet))
        return True


operations = st.lists(
    st.one_of(
        st.tuples(st.just("mix"), st.sampled_from("AB"), st.sets(st.integers(0, 4))),
        st.tuples(st.just("play"), st.integers(0, 4), st.booleans()),
        st.tuples(st.just("stop"), st.integers(0, 4), st.none()),
        st.tuples(st.just("close"), st.integers(0, 4), st.none()),
        st.tuples(st.just("tick"), st.none(), st.none()),
    ),
    max_size=40,
)


@given(operations)
def test_ticker_bookkeeping_never_leaks(ops: list[tuple[str, Any, Any]]) -> None:
    ticker = MediaTicker()
    phones = [QuietEndpoint(port) for port in range(5)]
    mixes: dict[str, set[int]] = {"A": set(), "B": set()}
    playing: set[int] = set()
    for op, arg, extra in ops:
        if op == "mix":
            wanted = {i for i in extra if not phones[i].closed}
            other = mixes["B" if arg == "A" else "A"]
            if wanted & other:
                with pytest.raises(RtpError):
                    ticker.set_mix(arg, {ep(phones[i]): StreamFormat() for i in wanted})
                continue
            ticker.set_mix(arg, {ep(phones[i]): StreamFormat() for i in wanted})
            mixes[arg] = wanted
        elif op == "play":
            if phones[arg].closed:
                with pytest.raises(RtpError):
                    ticker.play(ep(phones[arg]), FrameListSource(frames(2)))
                continue
            ticker.play(ep(phones[arg]), FrameListSource(frames(2)), loop=extra)
            playing.add(arg)
        elif op == "stop":
            ticker.stop_playback(ep(phones[arg]))
            playing.discard(arg)
        elif op == "close":
            phones[arg].closed = True
            ticker.forget(ep(phones[arg]))
            playing.discard(arg)
            for members in mixes.values():
                members.discard(arg)
        else:
            before = [len(phone.sent) for phone in phones]
            ticker.tick()
            playing = {i for i in playing if ticker.playback(ep(phones[i])) is not None}
            for i, phone in enumerate(phones):
                # one frame per tick to every mix member and every phone still playing
                if i in playing or any(i in members for members in mixes.values()):
                    assert len(phone.sent) == before[i] + 1
        # the bookkeeping matches the model: taps, playing flags, streams, idleness
        for i, phone in enumerate(phones):
            in_mix = any(i in members for members in mixes.values())
            assert len(phone.taps) == (1 if in_mix else 0)
            assert phone.playing == (i in playing)
            assert (ticker.stream(ep(phone)) is not None) == (in_mix or i in playing)
        assert ticker.idle == (not playing and not any(mixes.values()))
        assert {k: set(v) for k, v in ticker.mixes().items()} == {
            k: {phones[i] for i in v} for k, v in mixes.items() if v
        }


async def test_mix_tap_reads_past_csrcs_and_padding_and_drops_garbage(
    ticker: MediaTicker, clock: trio.testing.MockClock
) -> None:
    a, b = FakeEndpoint(1), FakeEndpoint(2)
    ticker.set_mix("room", {ep(a): StreamFormat(), ep(b): StreamFormat()})
    await trio.sleep(PERIOD / 2)  # between ticks
    tone = G711Law.PCMU.encode([500] * FRAME_SAMPLES)
    fancy = RtpPacket(0, 1, 160, 0x42, tone, csrcs=(7, 8), padding=4).to_bytes()
    a.hear(fancy)
    bad = bytearray(rtp(tone))
    bad[0] |= 0x20  # padding flag ...
    bad[-1] = 255  # ... with a count larger than the packet
    a.hear(bytes(bad))
    await trio.sleep(PERIOD)
    assert parse_rtp(b.sent[-1][1]).payload == tone
    mixer = ticker.mixer("room")
    assert mixer is not None and mixer.participant(a).buffered == 0  # garbage never queued
    assert len(a.taps) == 1  # and the tap is still there
