import struct

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_voip.errors import RtpError, RtpParseError
from trio_voip.testing.rtp_strategies import compounds, rtp_packets, u16, u32
from trio_voip.rtp.packet import (
    AppPacket,
    Goodbye,
    ReceiverReport,
    ReportBlock,
    RtcpUnknown,
    RtpHeaderExtension,
    RtpPacket,
    SdesChunk,
    SdesItem,
    SenderReport,
    SourceDescription,
    SDES_CNAME,
    SDES_NOTE,
    is_rtcp,
    parse_rtcp_compound,
    parse_rtp,
    rtp_header_fields,
    rewrite_rtp_header,
    rtp_payload_bounds,
    serialize_rtcp_compound,
)

# A real G.711 packet from a softphone: PT 0, seq 0x1234, ts 0xA0, SSRC 0xDEADBEEF, 160 bytes.
WIRE = bytes.fromhex("80001234000000a0deadbeef") + b"\xff" * 160


def test_parse_known_packet() -> None:
    packet = parse_rtp(WIRE)
    assert packet == RtpPacket(0, 0x1234, 0xA0, 0xDEADBEEF, b"\xff" * 160)
    assert packet.to_bytes() == WIRE


def test_marker_and_payload_type_share_an_octet() -> None:
    packet = parse_rtp(bytes.fromhex("80e50001000000010000000a") + b"\x00\x00\x00\x00")
    assert packet.marker and packet.payload_type == 101


@given(rtp_packets)
def test_rtp_round_trip(packet: RtpPacket) -> None:
    wire = packet.to_bytes()
    assert parse_rtp(wire) == packet
    assert rtp_header_fields(wire, len(wire)) == (
        packet.ssrc,
        packet.sequence,
        packet.timestamp,
        packet.payload_type,
    )
    start, end = rtp_payload_bounds(wire, len(wire))
    assert wire[start:end] == packet.payload


@given(rtp_packets, st.binary(max_size=32))
def test_fast_path_reads_only_nbytes_of_a_reused_buffer(packet: RtpPacket, junk: bytes) -> None:
    wire = packet.to_bytes()
    buf = bytearray(wire + junk)
    start, end = rtp_payload_bounds(buf, len(wire))
    assert buf[start:end] == packet.payload
    assert rtp_header_fields(memoryview(buf), len(wire))[1] == packet.sequence


@given(rtp_packets, u16, u32, u32, st.none() | st.booleans())
def test_rewrite_header_in_place(
    packet: RtpPacket, seq: int, ts: int, ssrc: int, marker: bool | None
) -> None:
    buf = bytearray(packet.to_bytes())
    rewrite_rtp_header(memoryview(buf), sequence=seq, timestamp=ts, ssrc=ssrc, marker=marker)
    expected = attrs.evolve(
        packet,
        sequence=seq,
        timestamp=ts,
        ssrc=ssrc,
        marker=packet.marker if marker is None else marker,
    )
    assert parse_rtp(bytes(buf)) == expected


def test_memoryview_input_gives_zero_copy_payload() -> None:
    buf = bytearray(WIRE)
    packet = parse_rtp(memoryview(buf))
    assert isinstance(packet.payload, memoryview)
    buf[12] = 0x00
    assert packet.payload[0] == 0x00


@given(st.binary(max_size=80))
def test_random_bytes_only_raise_parse_error(data: bytes) -> None:
    try:
        packet = parse_rtp(data)
    except RtpParseError:
        return
    # Padding octets other than the count are not kept, so compare after one more round trip.
    assert parse_rtp(packet.to_bytes()) == packet


@pytest.mark.parametrize(
    "wire, message",
    [
        (b"\x80\x00\x00", "shorter"),
        (bytes.fromhex("40001234000000a0deadbeef"), "version 1"),
        (bytes.fromhex("81001234000000a0deadbeef"), "past the end"),  # CC=1, no CSRC
        (bytes.fromhex("90001234000000a0deadbeefbede"), "extension"),
        (bytes.fromhex("90001234000000a0deadbeefbede0002abcd"), "past the end"),
        (bytes.fromhex("a0001234000000a0deadbeef0100"), "padding count 0"),
        (bytes.fromhex("a0001234000000a0deadbeef0105"), "padding count 5"),
    ],
)
def test_malformed_rtp(wire: bytes, message: str) -> None:
    with pytest.raises(RtpParseError, match=message):
        parse_rtp(wire)


def test_fast_path_rejects_short_and_wrong_version() -> None:
    with pytest.raises(RtpParseError):
        rtp_header_fields(WIRE, 11)
    with pytest.raises(RtpParseError):
        rtp_header_fields(WIRE[:20], 30)  # nbytes beyond the buffer
    with pytest.raises(RtpParseError, match="buffer of 20"):
        rtp_payload_bounds(WIRE[:20], 30)
    with pytest.raises(RtpParseError, match="version 0"):
        rtp_header_fields(b"\x00" * 12, 12)


def test_constructor_rejects_out_of_range_values() -> None:
    with pytest.raises(RtpError):
        RtpPacket(128, 0, 0, 0)
    with pytest.raises(RtpError):
        RtpPacket(0, 0x10000, 0, 0)
    with pytest.raises(RtpError):
        RtpPacket(0, 0, 0, 0, csrcs=tuple(range(16)))
    with pytest.raises(RtpError):
        RtpHeaderExtension(0, b"abc")


@pytest.mark.parametrize(
    "second, expected",
    [(200, True), (201, True), (192, True), (223, True), (0, False), (0x80 | 8, False),
     (96, False), (0x80 | 101, False), (224, False)],
)
def test_rtcp_mux_demultiplexing(second: int, expected: bool) -> None:
    assert is_rtcp(bytes([0x80, second, 0, 0])) is expected


def test_is_rtcp_on_tiny_datagram() -> None:
    assert not is_rtcp(b"\x80")


# --- RTCP -----------------------------------------------------------------------------------

@given(compounds)
def test_rtcp_compound_round_trip(packets: list) -> None:
    wire = serialize_rtcp_compound(packets)
    assert len(wire) % 4 == 0
    assert parse_rtcp_compound(wire) == packets


@given(st.binary(max_size=120))
def test_random_bytes_only_raise_parse_error_rtcp(data: bytes) -> None:
    for reduced in (False, True):
        try:
            parse_rtcp_compound(data, reduced_size=reduced)
        except RtpParseError:
            pass


@given(compounds, st.integers(0, 200), st.integers(0, 255))
def test_corrupted_compound_only_raises_parse_error(packets: list, index: int, value: int) -> None:
    wire = bytearray(serialize_rtcp_compound(packets))
    wire[index % len(wire)] = value
    try:
        parse_rtcp_compound(bytes(wire))
    except RtpParseError:
        pass


def test_sender_report_fields_on_the_wire() -> None:
    block = ReportBlock(0x11111111, 12, -3, 0x10005, 42, 0x22222222, 0x10000)
    sr = SenderReport(0xCAFEBABE, 0xE1234567_89ABCDEF, 160, 10, 1600, (block,))
    wire = sr.to_bytes()
    header = struct.unpack("!BBH", wire[:4])
    assert header == (0x81, 200, 12)  # one report block; 13 words minus one
    assert wire[28 + 4 : 28 + 8] == bytes([12, 0xFF, 0xFF, 0xFD])  # fraction, signed 24-bit lost
    assert sr.ntp_middle == 0x456789AB
    assert parse_rtcp_compound(wire) == [sr]


def test_sdes_cname_and_padding() -> None:
    chunk = SdesChunk(7, (SdesItem(SDES_CNAME, b"alice@example.com"), SdesItem(SDES_NOTE, b"hi")))
    wire = SourceDescription((chunk,)).to_bytes()
    # 4 ssrc + 19 cname + 4 note = 27 octets, plus a null and padding to 28
    assert len(wire) == 4 + 28 and wire.endswith(b"hi\x00")
    rr = ReceiverReport(7)
    (_, parsed) = parse_rtcp_compound(rr.to_bytes() + wire)
    assert isinstance(parsed, SourceDescription)
    assert parsed.chunks[0].cname == b"alice@example.com"
    assert SdesChunk(1).cname is None


def test_bye_with_reason() -> None:
    wire = ReceiverReport(1).to_bytes() + Goodbye((1, 2), b"call ended").to_bytes()
    assert parse_rtcp_compound(wire)[1] == Goodbye((1, 2), b"call ended")


def test_padding_on_last_packet_is_stripped() -> None:
    rr = ReceiverReport(5).to_bytes()
    bye = bytearray(Goodbye((5,)).to_bytes() + b"\x00\x00\x00\x04")
    bye[0] |= 0x20
    bye[3] += 1
    assert parse_rtcp_compound(rr + bytes(bye)) == [ReceiverReport(5), Goodbye((5,))]


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda w: w[:3], "shorter"),
        (lambda w: bytes([0x40]) + w[1:], "version 1"),
        (lambda w: Goodbye((1,)).to_bytes() + w, "not SR/RR"),
        (lambda w: w + b"\x81\xcb", "inside a packet header"),
        (lambda w: w[:-4], "past the end"),
        (lambda w: w + b"\x00\x00\x00\x00", "version 0"),
        (lambda w: bytes([0xA0]) + w[1:], "padding on a packet that is not the last"),
    ],
)
def test_compound_validation(mutate, message: str) -> None:
    wire = ReceiverReport(1).to_bytes() + Goodbye((1,)).to_bytes()
    with pytest.raises(RtpParseError, match=message):
        parse_rtcp_compound(mutate(wire))


def test_reduced_size_rtcp_allows_a_lone_feedback_packet() -> None:
    pli = RtcpUnknown(206, 1, struct.pack("!II", 1, 2))
    with pytest.raises(RtpParseError):
        parse_rtcp_compound(pli.to_bytes())
    assert parse_rtcp_compound(pli.to_bytes(), reduced_size=True) == [pli]


def test_rtcp_constructors_validate() -> None:
    with pytest.raises(RtpError):
        ReportBlock(1, 256, 0, 0, 0)
    with pytest.raises(RtpError):
        ReportBlock(1, 0, 0x800000, 0, 0)
    with pytest.raises(RtpError):
        AppPacket(0, 1, b"abc")
    with pytest.raises(RtpError):
        SdesItem(SDES_CNAME, b"x" * 256)
    with pytest.raises(RtpError):
        Goodbye(tuple(range(32)))
