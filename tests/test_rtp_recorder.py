"""MixRecorder: RTP packets and time in, 8 kHz 16-bit PCM out (no I/O)."""

from __future__ import annotations

from array import array

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_voip.errors import RtpError
from trio_voip.rtp.g711 import G711Law
from trio_voip.rtp.packet import RtpPacket
from trio_voip.rtp.recorder import MixRecorder

FRAME = 160  # samples in 20 ms


def frame(value: int, law: G711Law = G711Law.PCMU) -> bytes:
    """One 20 ms G.711 frame of a constant sample."""
    return law.encode([value] * FRAME)


def decoded(value: int, law: G711Law = G711Law.PCMU) -> int:
    return law.decode(law.encode([value]))[0]


def packet(
    index: int,
    payload: bytes,
    *,
    ssrc: int = 0x1234,
    ts0: int = 90000,
    seq0: int = 65530,
    pt: int = 0,
) -> bytes:
    return RtpPacket(
        payload_type=pt,
        sequence=(seq0 + index) & 0xFFFF,
        timestamp=(ts0 + FRAME * index) & 0xFFFFFFFF,
        ssrc=ssrc,
        payload=payload,
    ).to_bytes()


def pcm(data: bytes) -> array[int]:
    out = array("h", data)
    assert out.itemsize == 2
    return out


def test_stream_with_a_lost_packet_keeps_real_time() -> None:
    rec = MixRecorder(start=10.0)
    # 10 frames of value 1000 every 20 ms from t=10.1, frame 4 lost; sequence numbers and
    # timestamps wrap on the way.
    for i in range(10):
        if i != 4:
            rec.feed("a", packet(i, frame(1000), ts0=0xFFFFFF00), 10.1 + 0.02 * i)
    out = pcm(rec.finish(10.4))
    assert len(out) == round(0.4 * 8000)  # from start to the time of finish
    tone = decoded(1000)
    lead = 800  # the first packet arrived 0.1 s in
    assert set(out[:lead]) == {0}
    for i in range(10):
        chunk = out[lead + i * FRAME : lead + (i + 1) * FRAME]
        assert set(chunk) == ({0} if i == 4 else {tone}), i
    assert set(out[lead + 10 * FRAME :]) == {0}
    assert (rec.stats.packets, rec.stats.late, rec.stats.resyncs) == (9, 0, 1)
    assert rec.duration == 0.4


def test_burst_ahead_of_time_is_kept_whole() -> None:
    rec = MixRecorder(start=0.0)
    for i in range(50):  # one second of audio arriving at once
        rec.feed("a", packet(i, frame(-2000)), 0.0)
    first = pcm(rec.advance(0.5))  # up to the jitter delay before 0.5 s
    rest = pcm(rec.finish(0.5))  # the rest of the second, though it is still in the future
    assert (len(first), len(rest)) == (2400, 8000 - 2400)
    assert set(first + rest) == {decoded(-2000)}


@given(
    order=st.permutations(range(12)),
    jitter=st.lists(st.floats(0, 0.15), min_size=12, max_size=12),
    cuts=st.lists(st.floats(0, 0.6), max_size=6),
)
def test_reordering_and_chunking_do_not_change_the_result(
    order: list[int], jitter: list[float], cuts: list[float]
) -> None:
    """Packets reordered within the jitter allowance land where their timestamps say, and the
    PCM does not depend on when it is taken out."""
    reference = MixRecorder(start=0.0)
    for i in range(12):
        reference.feed("a", packet(i, frame(100 * i - 500)), 0.05 + 0.02 * i)
    expected = reference.finish(0.6)

    rec = MixRecorder(start=0.0)
    # packet 0 first (it anchors the stream), the others in any order, each delayed by jitter
    arrivals = sorted(
        (0.05 if i == 0 else 0.05 + 0.02 * i + jitter[i], i) for i in [0, *(i for i in order if i)]
    )
    events = sorted([*((t, "packet", i) for t, i in arrivals), *((t, "cut", 0) for t in cuts)])
    out = bytearray()
    for t, kind, i in events:
        if kind == "packet":
            rec.feed("a", packet(i, frame(100 * i - 500)), t)
        else:
            out += rec.advance(t)
    out += rec.finish(max(0.6, *(t for t, _, _ in events)))
    assert bytes(out[: len(expected)]) == expected
    assert set(out[len(expected) :]) <= {0}
    assert rec.stats.late == 0 and rec.stats.packets == 12


def test_too_late_packets_are_dropped_and_counted() -> None:
    rec = MixRecorder(start=0.0, delay=0.1)
    rec.feed("a", packet(0, frame(1000)), 0.0)
    assert len(rec.advance(0.5)) == 2 * 3200  # written out up to 0.4 s
    rec.feed("a", packet(1, frame(1000)), 0.5)  # belongs at 0.02 s: too late
    assert rec.stats.late == 1 and rec.stats.packets == 1


def test_two_sources_are_mixed_and_clipped_and_duplicates_do_not_add_up() -> None:
    rec = MixRecorder(start=0.0)
    for i in range(5):
        rec.feed("caller", packet(i, frame(3000), ssrc=1), 0.02 * i)
        rec.feed("caller", packet(i, frame(3000), ssrc=1), 0.02 * i + 0.001)  # duplicate
        rec.feed("callee", packet(i, frame(30000), ssrc=2, ts0=7), 0.02 * i)
        rec.feed("third", packet(i, frame(800), ssrc=3, ts0=1 << 31), 0.02 * i)
    out = pcm(rec.finish(0.1))
    assert len(out) == 800
    total = decoded(3000) + decoded(30000) + decoded(800)
    assert total > 32767
    assert set(out) == {32767}
    rec2 = MixRecorder(start=0.0)
    for i in range(5):
        rec2.feed("caller", packet(i, frame(3000), ssrc=1), 0.02 * i)
        rec2.feed("caller", packet(i, frame(3000), ssrc=1), 0.02 * i)
        rec2.feed("callee", packet(i, frame(-1000), ssrc=2), 0.02 * i)
    assert set(pcm(rec2.finish(0.1))) == {decoded(3000) + decoded(-1000)}


def test_new_ssrc_and_timestamp_jump_reanchor_at_arrival() -> None:
    rec = MixRecorder(start=0.0, resync=1.0)
    rec.feed("a", packet(0, frame(1000), ssrc=1), 0.0)
    rec.feed("a", packet(0, frame(2000), ssrc=2, ts0=5), 0.1)  # new stream at 0.1 s
    rec.feed("a", packet(1, frame(3000), ssrc=2, ts0=5 + 8000 * 60), 0.12)  # jumped 60 s
    out = pcm(rec.finish(0.2))
    assert set(out[0:160]) == {decoded(1000)}
    assert set(out[800:960]) == {decoded(2000)}
    assert set(out[960:1120]) == {decoded(3000)}
    assert rec.stats.resyncs == 3


def test_other_payloads_and_garbage_are_counted_not_recorded() -> None:
    rec = MixRecorder(start=0.0)
    rec.feed("a", packet(0, b"\x01\x0a\x00\xa0", pt=101), 0.0)  # telephone-event
    rec.feed("a", b"\x80\x00\x01", 0.0)
    rec.feed("a", b"\x00" * 20, 0.0)  # version 0
    rec.feed("a", packet(1, frame(500, G711Law.PCMA), pt=8), 0.0)
    out = pcm(rec.finish(0.02))
    assert set(out) == {decoded(500, G711Law.PCMA)}
    assert (rec.stats.ignored, rec.stats.malformed, rec.stats.packets) == (1, 2, 1)


def test_memoryview_input_is_copied() -> None:
    rec = MixRecorder(start=0.0)
    buffer = bytearray(packet(0, frame(1000)))
    rec.feed("a", memoryview(buffer), 0.0)
    buffer[12:] = frame(-1000)
    assert set(pcm(rec.finish(0.02))) == {decoded(1000)}


def test_settings_are_checked() -> None:
    with pytest.raises(RtpError):
        MixRecorder(start=0.0, delay=-1)
    with pytest.raises(RtpError):
        MixRecorder(start=0.0, resync=0)


@given(
    received=st.lists(st.booleans(), min_size=1, max_size=40),
    ts0=st.integers(0, 0xFFFFFFFF),
    seq0=st.integers(0, 0xFFFF),
    lead=st.floats(0, 1),
)
def test_every_packet_lands_at_its_timestamp_and_losses_are_silence(
    received: list[bool], ts0: int, seq0: int, lead: float
) -> None:
    rec = MixRecorder(start=0.0)
    arrived = [i for i, got in enumerate(received) if got]
    for i in arrived:
        # each frame carries its index as its sample value, so misplacement shows
        rec.feed("a", packet(i, frame(100 * (i + 1)), ts0=ts0, seq0=seq0), lead + 0.02 * i)
    end = lead + 0.02 * len(received) + 0.5
    out = pcm(rec.finish(end))
    assert len(out) == rec.position(end) == rec.written
    if not arrived:
        assert set(out) == {0}
        return
    origin = rec.position(lead + 0.02 * arrived[0]) - FRAME * arrived[0]
    for i, got in enumerate(received):
        chunk = out[origin + FRAME * i : origin + FRAME * (i + 1)]
        if origin + FRAME * i >= 0:
            assert set(chunk) == ({decoded(100 * (i + 1))} if got else {0}), i
    assert set(out[: max(origin, 0)]) <= {0}
    assert set(out[origin + FRAME * len(received) :]) == {0}
    assert rec.stats.packets == len(arrived) and rec.stats.resyncs == 1
