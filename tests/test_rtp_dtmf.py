import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_voip.errors import RtpError, RtpParseError
from trio_voip.rtp.dtmf import (
    DtmfDetector,
    DtmfDigit,
    TelephoneEvent,
    dtmf_packets,
    parse_telephone_event,
)
from trio_voip.rtp.packet import RtpPacket, parse_rtp

events = st.builds(
    TelephoneEvent,
    event=st.integers(0, 255),
    end=st.booleans(),
    volume=st.integers(0, 63),
    duration=st.integers(0, 0xFFFF),
)


@given(events)
def test_payload_round_trip(event: TelephoneEvent) -> None:
    assert parse_telephone_event(event.to_bytes()) == event


def test_payload_layout() -> None:
    # '#' (11), end bit, volume 10, duration 800 samples
    assert TelephoneEvent(11, True, 10, 800).to_bytes() == bytes([11, 0x8A, 0x03, 0x20])
    parsed = parse_telephone_event(bytes([5, 0x4A, 0x00, 0xA0]))  # reserved R bit is ignored
    assert parsed == TelephoneEvent(5, False, 10, 160)
    assert parsed.digit == "5"
    assert TelephoneEvent(16).digit is None  # flash


@given(st.binary(max_size=8))
def test_short_payloads_raise_parse_error(data: bytes) -> None:
    try:
        parse_telephone_event(data)
    except RtpParseError:
        assert len(data) < 4


def test_constructor_validates() -> None:
    with pytest.raises(RtpError):
        TelephoneEvent(1, volume=64)
    with pytest.raises(RtpError):
        TelephoneEvent(256)


def run(detector: DtmfDetector, scheduled, t0: float = 0.0) -> list[DtmfDigit]:
    out: list[DtmfDigit] = []
    for offset, packet in scheduled:
        out.extend(detector.feed(packet, t0 + offset))
    return out


def test_generated_press_is_detected_once() -> None:
    packets = dtmf_packets("7", payload_type=101, ssrc=5, sequence=100, timestamp=8000)
    detector = DtmfDetector()
    assert run(detector, packets) == [DtmfDigit("7", 0.1, 8000, 10)]
    assert detector.next_deadline() is None


def test_generated_sequence_follows_rfc_4733() -> None:
    packets = dtmf_packets(
        "#", payload_type=101, ssrc=5, sequence=65534, timestamp=1234, duration=0.16
    )
    offsets = [offset for offset, _ in packets]
    assert offsets == [0.0, 0.05, 0.1, 0.15, 0.16, 0.16, 0.16]
    assert [p.sequence for _, p in packets] == [65534, 65535, 0, 1, 2, 3, 4]
    assert [p.marker for _, p in packets] == [True] + [False] * 6
    assert {p.timestamp for _, p in packets} == {1234}
    payloads = [parse_telephone_event(p.payload) for _, p in packets]
    assert [e.duration for e in payloads] == [400, 800, 1200, 1280, 1280, 1280, 1280]
    assert [e.end for e in payloads] == [False] * 4 + [True] * 3
    assert {e.event for e in payloads} == {11}
    # They survive the wire.
    assert parse_rtp(packets[0][1].to_bytes()) == packets[0][1]


def test_bad_digits_and_durations() -> None:
    for digit in ("", "x", "12"):
        with pytest.raises(RtpError):
            dtmf_packets(digit, payload_type=101, ssrc=1, sequence=0, timestamp=0)
    with pytest.raises(RtpError):
        dtmf_packets("1", payload_type=101, ssrc=1, sequence=0, timestamp=0, duration=0)
    with pytest.raises(RtpError):
        dtmf_packets("1", payload_type=101, ssrc=1, sequence=0, timestamp=0, duration=9)


def test_lowercase_letters_are_accepted() -> None:
    (_, first), *_ = dtmf_packets("d", payload_type=101, ssrc=1, sequence=0, timestamp=0)
    assert parse_telephone_event(first.payload).digit == "D"


@given(
    digits=st.text(alphabet="0123456789*#ABCD", min_size=1, max_size=6),
    lost=st.sets(st.integers(0, 60)),
    duplicated=st.sets(st.integers(0, 60)),
)
def test_a_dialled_string_survives_loss_and_duplication(
    digits: str, lost: set[int], duplicated: set[int]
) -> None:
    stream: list[tuple[float, RtpPacket]] = []
    timestamp, sequence, t = 0, 0, 0.0
    for digit in digits:
        packets = dtmf_packets(digit, payload_type=101, ssrc=9, sequence=sequence, timestamp=timestamp)
        stream.extend((t + offset, packet) for offset, packet in packets)
        sequence += len(packets)
        timestamp += 800 + 800  # the press plus 100 ms of audio before the next one
        t += 0.2
    received = []
    for index, item in enumerate(stream):
        # Any packet but the last end packet of a press may be lost; some arrive twice.
        last_of_press = index + 1 == len(stream) or stream[index + 1][1].marker
        if index in lost and not last_of_press:
            continue
        received.append(item)
        if index in duplicated:
            received.append(item)
    detector = DtmfDetector()
    got = run(detector, received)
    assert "".join(d.digit for d in got) == digits
    assert all(d.ended and d.duration == pytest.approx(0.1) for d in got)


def test_lost_end_packets_are_closed_by_the_timer() -> None:
    packets = dtmf_packets("3", payload_type=101, ssrc=1, sequence=0, timestamp=0)[:2]
    detector = DtmfDetector(timeout=0.25)
    assert run(detector, packets) == []
    assert detector.next_deadline() == pytest.approx(0.3)
    assert detector.on_timer(0.29) == []
    (digit,) = detector.on_timer(0.31)
    assert digit == DtmfDigit("3", 0.1, 0, 10, ended=False)
    assert detector.on_timer(1.0) == []
    # A late end packet of the closed press is not a second press.
    late = dtmf_packets("3", payload_type=101, ssrc=1, sequence=0, timestamp=0)[-1][1]
    assert detector.feed(late, 1.0) == []


def test_lost_end_packets_are_closed_by_the_next_press() -> None:
    first = dtmf_packets("1", payload_type=101, ssrc=1, sequence=0, timestamp=0)[:2]
    second = dtmf_packets("2", payload_type=101, ssrc=1, sequence=2, timestamp=1600)
    shifted = [(0.12 + offset, packet) for offset, packet in second]
    got = run(DtmfDetector(), first + shifted)
    assert [(d.digit, d.ended) for d in got] == [("1", False), ("2", True)]


def test_non_digit_events_are_not_reported() -> None:
    flash = RtpPacket(101, 1, 0, 1, TelephoneEvent(16, True, 10, 800).to_bytes(), marker=True)
    detector = DtmfDetector()
    assert detector.feed(flash, 0.0) == []
    assert detector.next_deadline() is None


def test_long_event_segments_add_up() -> None:
    # RFC 4733 2.5.1.3: past 0xFFFF samples the event continues with a new timestamp, no marker.
    def packet(seq: int, ts: int, duration: int, *, end: bool = False, marker: bool = False):
        return RtpPacket(101, seq, ts, 1, TelephoneEvent(0, end, 10, duration).to_bytes(), marker=marker)

    detector = DtmfDetector()
    assert detector.feed(packet(0, 1000, 400, marker=True), 0.0) == []
    assert detector.feed(packet(1, 1000, 0xFFFF), 0.05) == []
    assert detector.feed(packet(2, 1000 + 0xFFFF, 400), 0.1) == []
    (digit,) = detector.feed(packet(3, 1000 + 0xFFFF, 800, end=True), 0.15)
    assert digit.timestamp == 1000
    assert digit.duration == pytest.approx((0xFFFF + 800) / 8000)
