"""The sans-IO conference mixer and RTP packetizer."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_voip.errors import RtpError
from trio_voip.rtp.g711 import G711Law, alaw_to_linear, ulaw_to_linear
from trio_voip.rtp.mixer import FRAME_SAMPLES, Mixer, RtpPacketizer
from trio_voip.rtp.packet import parse_rtp

laws = st.sampled_from(list(G711Law))
codes = st.integers(0, 255)


def linear(law: G711Law, code: int) -> int:
    return ulaw_to_linear(code) if law is G711Law.PCMU else alaw_to_linear(code)


def clip(value: int) -> int:
    return max(-32768, min(32767, value))


def constant(law: G711Law, code: int) -> bytes:
    return bytes((code,)) * FRAME_SAMPLES


@given(st.lists(st.tuples(laws, codes), min_size=3, max_size=5), st.data())
def test_each_hears_exactly_the_clipped_sum_of_the_others(
    people: list[tuple[G711Law, int]], data: st.DataObject
) -> None:
    mixer = Mixer()
    for key, (law, code) in enumerate(people):
        mixer.add(key, law)
        mixer.feed(key, constant(law, code))
    out = dict(mixer.tick())
    assert sorted(out) == list(range(len(people)))
    values = [linear(law, code) for law, code in people]
    for key, (law, _code) in enumerate(people):
        others = clip(sum(values) - values[key])
        # What the participant gets is exactly that sum, encoded in its own law.
        assert out[key] == law.encode([others] * FRAME_SAMPLES)
        assert all(s == linear(law, out[key][0]) for s in law.decode(out[key]))
    assert all(p.frames_in == 1 and p.missing == 0 for p in mixer)


def test_distinct_samples_and_codec_conversion() -> None:
    # A talks A-law, B and C mu-law; each sample position carries a different value.
    mixer = Mixer()
    mixer.add("a", G711Law.PCMA)
    mixer.add("b", G711Law.PCMU)
    mixer.add("c", G711Law.PCMU)
    a = [(i * 97) % 8000 - 2000 for i in range(FRAME_SAMPLES)]
    b = [(i * 31) % 6000 - 3000 for i in range(FRAME_SAMPLES)]
    c = [30000] * FRAME_SAMPLES
    fa, fb, fc = G711Law.PCMA.encode(a), G711Law.PCMU.encode(b), G711Law.PCMU.encode(c)
    mixer.feed("a", fa)
    mixer.feed("b", fb)
    mixer.feed("c", fc)
    # what each one's codec actually delivered
    la, lb, lc = G711Law.PCMA.decode(fa), G711Law.PCMU.decode(fb), G711Law.PCMU.decode(fc)
    out = dict(mixer.tick())
    assert out["a"] == G711Law.PCMA.encode([clip(x + y) for x, y in zip(lb, lc)])
    assert out["b"] == G711Law.PCMU.encode([clip(x + y) for x, y in zip(la, lc)])
    assert out["c"] == G711Law.PCMU.encode([clip(x + y) for x, y in zip(la, lb)])
    assert any(clip(x + y) == 32767 for x, y in zip(la, lc))  # the clipping was exercised


def test_missing_frames_are_silence_and_silent_mix_is_comfort_silence() -> None:
    mixer = Mixer()
    for key, law in (("a", G711Law.PCMU), ("b", G711Law.PCMA), ("c", G711Law.PCMU)):
        mixer.add(key, law)
    out = dict(mixer.tick())
    assert out == {
        "a": b"\xff" * FRAME_SAMPLES,
        "b": b"\xd5" * FRAME_SAMPLES,
        "c": b"\xff" * FRAME_SAMPLES,
    }
    tone = G711Law.PCMU.encode([1000] * FRAME_SAMPLES)
    mixer.feed("a", tone)
    out = dict(mixer.tick())
    assert out["a"] == b"\xff" * FRAME_SAMPLES  # hears nobody: silence, not its own voice
    level = G711Law.PCMU.decode(tone)[0]
    assert out["b"] == G711Law.PCMA.encode([level] * FRAME_SAMPLES)
    assert out["c"] == tone
    assert [p.missing for p in mixer] == [1, 2, 2]


def test_bounded_buffer_drops_oldest_and_partial_payloads_join() -> None:
    mixer = Mixer(depth=3)
    mixer.add("a", G711Law.PCMU)
    mixer.add("b", G711Law.PCMU)
    frames = [bytes((0x80 + i,)) * FRAME_SAMPLES for i in range(5)]
    for frame in frames:
        mixer.feed("a", frame)
    a = mixer.participant("a")
    assert a.dropped == 2 and a.buffered == 3 * FRAME_SAMPLES
    heard = [dict(mixer.tick())["b"] for _ in range(4)]
    assert heard[:3] == frames[2:]  # the newest three, in order
    assert heard[3] == b"\xff" * FRAME_SAMPLES
    # 10 ms packets: two make one frame; half a frame waits
    mixer.feed("a", frames[0][:80])
    assert dict(mixer.tick())["b"] == b"\xff" * FRAME_SAMPLES
    mixer.feed("a", frames[0][:80])
    assert dict(mixer.tick())["b"] == frames[0]


def test_membership() -> None:
    mixer = Mixer()
    mixer.add("a", G711Law.PCMU)
    mixer.feed("ghost", b"\x00" * FRAME_SAMPLES)  # not a participant: ignored
    mixer.feed("a", b"\x00" * 80)
    mixer.add("a", G711Law.PCMA)  # law changed: bytes in the old law are dropped
    assert mixer.participant("a").buffered == 0 and len(mixer) == 1
    mixer.remove("a")
    mixer.remove("a")
    assert "a" not in mixer and mixer.tick() == []
    with pytest.raises(RtpError):
        mixer.participant("a")
    with pytest.raises(RtpError):
        Mixer(depth=0)


@given(
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFFFFFF),
    st.integers(0, 0xFFFFFFFF),
    st.lists(st.integers(0, 3), min_size=1, max_size=20),
)
def test_packetizer_continuity(seq: int, ts: int, ssrc: int, gaps: list[int]) -> None:
    packetizer = RtpPacketizer(8, ssrc=ssrc, sequence=seq, timestamp=ts)
    expected_ts = ts
    for n, gap in enumerate(gaps):
        packetizer.skip(gap)
        expected_ts += gap * FRAME_SAMPLES
        payload = bytes((n,)) * FRAME_SAMPLES
        packet = parse_rtp(packetizer.packet(payload))
        assert packet.payload_type == 8 and packet.ssrc == ssrc
        assert packet.sequence == (seq + n) & 0xFFFF  # skipped frames take no sequence number
        assert packet.timestamp == expected_ts & 0xFFFFFFFF
        assert packet.marker == (n == 0)
        assert packet.payload == payload
        expected_ts += FRAME_SAMPLES
    assert packetizer.packets == len(gaps)


def test_packetizer_random_start_and_validation() -> None:
    a, b = RtpPacketizer(0), RtpPacketizer(0)
    assert (a.ssrc, a.sequence, a.timestamp) != (b.ssrc, b.sequence, b.timestamp)
    with pytest.raises(RtpError):
        RtpPacketizer(128)
    with pytest.raises(RtpError):
        RtpPacketizer(0, samples_per_frame=0)
