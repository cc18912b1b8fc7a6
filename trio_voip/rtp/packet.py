"""RTP and RTCP packets (RFC 3550 sections 5.1 and 6.4-6.6), parsed and serialised without I/O.

Two ways in for RTP:

* :func:`rtp_header_fields` / :func:`rtp_payload_bounds` for the relay's hot path: they read a
  reused receive buffer through ``struct.unpack_from`` and return plain ints, building no objects.
* :func:`parse_rtp` for everything else: a frozen :class:`RtpPacket`.

RTCP always comes as a compound packet (RFC 3550 6.1); :func:`parse_rtcp_compound` validates it as
in appendix A.2 and returns one value per packet. :func:`is_rtcp` tells the two apart on a port
shared by RTP and RTCP (RFC 5761 section 4).

Every malformed input raises :class:`~trio_voip.errors.RtpParseError`, never ``IndexError`` or
``struct.error``, so the relay can catch one exception, count it and drop the datagram.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from typing import TypeAlias

import attrs

from trio_voip.errors import RtpError, RtpParseError

__all__ = [
    "Buffer",
    "RTP_VERSION",
    "RTP_HEADER_SIZE",
    "RtpHeaderExtension",
    "RtpPacket",
    "parse_rtp",
    "rtp_header_fields",
    "rtp_payload_bounds",
    "rewrite_rtp_header",
    "is_rtcp",
    "RTCP_SR",
    "RTCP_RR",
    "RTCP_SDES",
    "RTCP_BYE",
    "RTCP_APP",
    "SDES_END",
    "SDES_CNAME",
    "SDES_NAME",
    "SDES_EMAIL",
    "SDES_PHONE",
    "SDES_LOC",
    "SDES_TOOL",
    "SDES_NOTE",
    "SDES_PRIV",
    "ReportBlock",
    "SenderReport",
    "ReceiverReport",
    "SdesItem",
    "SdesChunk",
    "SourceDescription",
    "Goodbye",
    "AppPacket",
    "RtcpUnknown",
    "RtcpPacket",
    "parse_rtcp_compound",
    "serialize_rtcp_compound",
]

Buffer: TypeAlias = bytes | bytearray | memoryview

RTP_VERSION = 2
RTP_HEADER_SIZE = 12

_RTP_FIXED = struct.Struct("!BBHII")
_EXT_HEADER = struct.Struct("!HH")
_SEQ_TS_SSRC = struct.Struct("!HII")
_U32 = struct.Struct("!I")
_RTCP_HEADER = struct.Struct("!BBH")
_REPORT_BLOCK = struct.Struct("!IIIIII")
_SR_INFO = struct.Struct("!IIIIII")

_U8 = 0xFF
_U16 = 0xFFFF
_U32_MAX = 0xFFFFFFFF


def _check(name: str, value: int, maximum: int, minimum: int = 0) -> None:
    if not minimum <= value <= maximum:
        raise RtpError(f"{name}={value} outside {minimum}..{maximum}")


# ---------------------------------------------------------------------------------------------
# RTP
# ---------------------------------------------------------------------------------------------


@attrs.frozen
class RtpHeaderExtension:
    """The one header extension an RTP packet may carry (RFC 3550 5.3.1).

    ``data`` is the extension body without its 4-byte header; its length is a whole number of
    32-bit words because the wire format counts it in words.
    """

    profile: int
    data: bytes

    def __attrs_post_init__(self) -> None:
        _check("extension profile", self.profile, _U16)
        if len(self.data) % 4 or len(self.data) > 4 * _U16:
            raise RtpError(f"extension data length {len(self.data)} is not a count of 32-bit words")


@attrs.frozen
class RtpPacket:
    """One RTP data packet.

    ``payload`` is whatever the parser was given a slice of: ``bytes`` when parsing ``bytes``, a
    zero-copy ``memoryview`` when parsing a ``memoryview`` (which then must not be reused while the
    packet is alive). ``padding`` is the number of padding octets (including the count octet) that
    :meth:`to_bytes` appends; the parser strips them and records their number.
    """

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: Buffer = b""
    marker: bool = False
    csrcs: tuple[int, ...] = ()
    extension: RtpHeaderExtension | None = None
    padding: int = 0

    def __attrs_post_init__(self) -> None:
        _check("payload_type", self.payload_type, 127)
        _check("sequence", self.sequence, _U16)
        _check("timestamp", self.timestamp, _U32_MAX)
        _check("ssrc", self.ssrc, _U32_MAX)
        _check("padding", self.padding, _U8)
        if len(self.csrcs) > 15:
            raise RtpError(f"{len(self.csrcs)} CSRCs, at most 15 fit the CC field")
        for csrc in self.csrcs:
            _check("csrc", csrc, _U32_MAX)

    def to_bytes(self) -> bytes:
        first = (
            (RTP_VERSION << 6)
            | (0x20 if self.padding else 0)
            | (0x10 if self.extension is not None else 0)
            | len(self.csrcs)
        )
        second = (0x80 if self.marker else 0) | self.payload_type
        parts: list[Buffer] = [
            _RTP_FIXED.pack(first, second, self.sequence, self.timestamp, self.ssrc)
        ]
        parts.extend(_U32.pack(csrc) for csrc in self.csrcs)
        if self.extension is not None:
            ext = self.extension
            parts.append(_EXT_HEADER.pack(ext.profile, len(ext.data) // 4))
            parts.append(ext.data)
        parts.append(self.payload)
        if self.padding:
            parts.append(bytes(self.padding - 1) + bytes((self.padding,)))
        return b"".join(parts)


def _check_size(buf: Buffer, nbytes: int) -> None:
    if nbytes < RTP_HEADER_SIZE:
        raise RtpParseError(f"RTP packet of {nbytes} bytes is shorter than the 12-byte header")
    if len(buf) < nbytes:
        raise RtpParseError(f"{nbytes} bytes claimed in a buffer of {len(buf)}")


def rtp_header_fields(buf: Buffer, nbytes: int) -> tuple[int, int, int, int]:
    """Validate the fixed RTP header in ``buf[:nbytes]``; return ``(ssrc, seq, timestamp, pt)``.

    The relay's fast path: no objects beyond the tuple, no copy of the buffer. It checks the size
    and version only; CSRC list, extension and padding are left to :func:`rtp_payload_bounds`.
    The marker bit is not part of ``pt``. It does not tell RTP from RTCP: ask :func:`is_rtcp`.
    """
    _check_size(buf, nbytes)
    first, second, seq, timestamp, ssrc = _RTP_FIXED.unpack_from(buf)
    if first >> 6 != RTP_VERSION:
        raise RtpParseError(f"RTP version {first >> 6}, expected 2")
    return ssrc, seq, timestamp, second & 0x7F


def rtp_payload_bounds(buf: Buffer, nbytes: int) -> tuple[int, int]:
    """Return ``(start, end)`` of the payload in ``buf[:nbytes]``, past CSRCs, extension, padding."""
    _check_size(buf, nbytes)
    first = buf[0]
    if first >> 6 != RTP_VERSION:
        raise RtpParseError(f"RTP version {first >> 6}, expected 2")
    start = RTP_HEADER_SIZE + 4 * (first & 0x0F)
    if first & 0x10:
        if start + 4 > nbytes:
            raise RtpParseError("RTP header extension runs past the end of the packet")
        _profile, words = _EXT_HEADER.unpack_from(buf, start)
        start += 4 + 4 * words
    if start > nbytes:
        raise RtpParseError("RTP header (CSRCs/extension) runs past the end of the packet")
    end = nbytes
    if first & 0x20:
        pad = buf[nbytes - 1]
        # RFC 3550 5.1: the count includes itself, so 0 is invalid, and it cannot eat the header.
        if pad == 0 or pad > nbytes - start:
            raise RtpParseError(f"RTP padding count {pad} does not fit a {nbytes}-byte packet")
        end -= pad
    return start, end


def parse_rtp(data: Buffer) -> RtpPacket:
    """Parse one RTP packet. A ``memoryview`` input gives a zero-copy ``memoryview`` payload."""
    nbytes = len(data)
    start, end = rtp_payload_bounds(data, nbytes)
    first, second, seq, timestamp, ssrc = _RTP_FIXED.unpack_from(data)
    cc = first & 0x0F
    csrcs = struct.unpack_from(f"!{cc}I", data, RTP_HEADER_SIZE) if cc else ()
    extension = None
    if first & 0x10:
        offset = RTP_HEADER_SIZE + 4 * cc
        profile, words = _EXT_HEADER.unpack_from(data, offset)
        extension = RtpHeaderExtension(profile, bytes(data[offset + 4 : offset + 4 + 4 * words]))
    return RtpPacket(
        payload_type=second & 0x7F,
        sequence=seq,
        timestamp=timestamp,
        ssrc=ssrc,
        payload=data[start:end],
        marker=bool(second & 0x80),
        csrcs=csrcs,
        extension=extension,
        padding=nbytes - end,
    )


def rewrite_rtp_header(
    buf: bytearray | memoryview,
    *,
    sequence: int,
    timestamp: int,
    ssrc: int,
    marker: bool | None = None,
) -> None:
    """Overwrite sequence, timestamp, SSRC (and optionally the marker) of the RTP packet in ``buf``.

    For a relay that re-stamps packets in place (one continuous outgoing stream while the source
    behind it changes) without parsing or copying them. ``buf`` must hold a validated header.
    """
    _SEQ_TS_SSRC.pack_into(buf, 2, sequence & _U16, timestamp & _U32_MAX, ssrc & _U32_MAX)
    if marker is not None:
        buf[1] = (buf[1] & 0x7F) | (0x80 if marker else 0)


def is_rtcp(data: Buffer) -> bool:
    """Whether a datagram on an rtcp-mux port is RTCP (RFC 5761 section 4).

    RTCP packet types 192-223 occupy the second octet where RTP has marker + payload type; that is
    why RTP payload types 64-95 must not be used with rtcp-mux.
    """
    return len(data) >= 2 and 192 <= data[1] <= 223


# ---------------------------------------------------------------------------------------------
# RTCP
# ---------------------------------------------------------------------------------------------

RTCP_SR = 200
RTCP_RR = 201
RTCP_SDES = 202
RTCP_BYE = 203
RTCP_APP = 204

SDES_END = 0
SDES_CNAME = 1
SDES_NAME = 2
SDES_EMAIL = 3
SDES_PHONE = 4
SDES_LOC = 5
SDES_TOOL = 6
SDES_NOTE = 7
SDES_PRIV = 8

_LOST_MAX = 0x7FFFFF
_LOST_MIN = -0x800000


@attrs.frozen
class ReportBlock:
    """One reception report (RFC 3550 6.4.1): what we heard from source ``ssrc``.

    ``cumulative_lost`` is signed (duplicates can make it negative) and 24 bits on the wire.
    ``last_sr`` / ``delay_since_last_sr`` are the LSR and DLSR fields (1/65536 s units).
    """

    ssrc: int
    fraction_lost: int
    cumulative_lost: int
    highest_sequence: int
    jitter: int
    last_sr: int = 0
    delay_since_last_sr: int = 0

    def __attrs_post_init__(self) -> None:
        _check("ssrc", self.ssrc, _U32_MAX)
        _check("fraction_lost", self.fraction_lost, _U8)
        _check("cumulative_lost", self.cumulative_lost, _LOST_MAX, _LOST_MIN)
        _check("highest_sequence", self.highest_sequence, _U32_MAX)
        _check("jitter", self.jitter, _U32_MAX)
        _check("last_sr", self.last_sr, _U32_MAX)
        _check("delay_since_last_sr", self.delay_since_last_sr, _U32_MAX)

    def to_bytes(self) -> bytes:
        return _REPORT_BLOCK.pack(
            self.ssrc,
            (self.fraction_lost << 24) | (self.cumulative_lost & 0xFFFFFF),
            self.highest_sequence,
            self.jitter,
            self.last_sr,
            self.delay_since_last_sr,
        )


def _parse_report_blocks(body: Buffer, offset: int, count: int) -> tuple[ReportBlock, ...]:
    if offset + 24 * count > len(body):
        raise RtpParseError(f"RTCP report count {count} runs past the end of the packet")
    blocks = []
    for index in range(count):
        ssrc, lost_word, highest, jitter, lsr, dlsr = _REPORT_BLOCK.unpack_from(
            body, offset + 24 * index
        )
        lost = lost_word & 0xFFFFFF
        if lost & 0x800000:
            lost -= 0x1000000
        blocks.append(ReportBlock(ssrc, lost_word >> 24, lost, highest, jitter, lsr, dlsr))
    return tuple(blocks)


def _check_reports(reports: tuple[ReportBlock, ...], extension: bytes) -> None:
    if len(reports) > 31:
        raise RtpError(f"{len(reports)} report blocks, at most 31 fit the RC field")
    if len(extension) % 4:
        raise RtpError("profile-specific extension must be a whole number of 32-bit words")


def _header(count: int, packet_type: int, body_len: int) -> bytes:
    # The length field counts 32-bit words minus one, header included.
    return _RTCP_HEADER.pack((RTP_VERSION << 6) | count, packet_type, body_len // 4)


@attrs.frozen
class SenderReport:
    """RTCP SR (RFC 3550 6.4.1). ``ntp_timestamp`` is the 64-bit NTP time (seconds << 32 | frac)."""

    ssrc: int
    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()
    extension: bytes = b""

    def __attrs_post_init__(self) -> None:
        _check("ssrc", self.ssrc, _U32_MAX)
        _check("ntp_timestamp", self.ntp_timestamp, (1 << 64) - 1)
        _check("rtp_timestamp", self.rtp_timestamp, _U32_MAX)
        _check("packet_count", self.packet_count, _U32_MAX)
        _check("octet_count", self.octet_count, _U32_MAX)
        _check_reports(self.reports, self.extension)

    @property
    def ntp_middle(self) -> int:
        """The middle 32 bits of the NTP timestamp: what a receiver echoes as LSR."""
        return (self.ntp_timestamp >> 16) & _U32_MAX

    def to_bytes(self) -> bytes:
        body = b"".join(
            [
                _SR_INFO.pack(
                    self.ssrc,
                    self.ntp_timestamp >> 32,
                    self.ntp_timestamp & _U32_MAX,
                    self.rtp_timestamp,
                    self.packet_count,
                    self.octet_count,
                ),
                *(block.to_bytes() for block in self.reports),
                self.extension,
            ]
        )
        return _header(len(self.reports), RTCP_SR, len(body)) + body

    @classmethod
    def _parse(cls, count: int, body: Buffer) -> SenderReport:
        if len(body) < 24:
            raise RtpParseError("RTCP SR shorter than its sender info")
        ssrc, ntp_hi, ntp_lo, rtp_ts, packets, octets = _SR_INFO.unpack_from(body)
        reports = _parse_report_blocks(body, 24, count)
        extension = bytes(body[24 + 24 * count :])
        return cls(ssrc, (ntp_hi << 32) | ntp_lo, rtp_ts, packets, octets, reports, extension)


@attrs.frozen
class ReceiverReport:
    """RTCP RR (RFC 3550 6.4.2)."""

    ssrc: int
    reports: tuple[ReportBlock, ...] = ()
    extension: bytes = b""

    def __attrs_post_init__(self) -> None:
        _check("ssrc", self.ssrc, _U32_MAX)
        _check_reports(self.reports, self.extension)

    def to_bytes(self) -> bytes:
        body = b"".join(
            [_U32.pack(self.ssrc), *(block.to_bytes() for block in self.reports), self.extension]
        )
        return _header(len(self.reports), RTCP_RR, len(body)) + body

    @classmethod
    def _parse(cls, count: int, body: Buffer) -> ReceiverReport:
        if len(body) < 4:
            raise RtpParseError("RTCP RR shorter than its SSRC")
        (ssrc,) = _U32.unpack_from(body)
        reports = _parse_report_blocks(body, 4, count)
        return cls(ssrc, reports, bytes(body[4 + 24 * count :]))


@attrs.frozen
class SdesItem:
    """One SDES item (RFC 3550 6.5): ``kind`` is SDES_CNAME etc., ``value`` the raw octets.

    Values stay bytes: they are meant to be UTF-8, but a peer's bad encoding must not make the
    whole compound packet unparseable.
    """

    kind: int
    value: bytes

    def __attrs_post_init__(self) -> None:
        _check("SDES item type", self.kind, _U8, 1)
        _check("SDES item length", len(self.value), _U8)


@attrs.frozen
class SdesChunk:
    """The SDES items describing one source."""

    ssrc: int
    items: tuple[SdesItem, ...] = ()

    def __attrs_post_init__(self) -> None:
        _check("ssrc", self.ssrc, _U32_MAX)

    @property
    def cname(self) -> bytes | None:
        for item in self.items:
            if item.kind == SDES_CNAME:
                return item.value
        return None

    def to_bytes(self) -> bytes:
        parts = [_U32.pack(self.ssrc)]
        for item in self.items:
            parts.append(bytes((item.kind, len(item.value))))
            parts.append(item.value)
        raw = b"".join(parts)
        # At least one null octet ends the item list, then pad to the next 32-bit boundary.
        return raw + bytes(4 - len(raw) % 4)


@attrs.frozen
class SourceDescription:
    """RTCP SDES (RFC 3550 6.5)."""

    chunks: tuple[SdesChunk, ...] = ()

    def __attrs_post_init__(self) -> None:
        if len(self.chunks) > 31:
            raise RtpError(f"{len(self.chunks)} SDES chunks, at most 31 fit the SC field")

    def to_bytes(self) -> bytes:
        body = b"".join(chunk.to_bytes() for chunk in self.chunks)
        return _header(len(self.chunks), RTCP_SDES, len(body)) + body

    @classmethod
    def _parse(cls, count: int, body: Buffer) -> SourceDescription:
        chunks = []
        offset = 0
        end = len(body)
        for _ in range(count):
            if offset + 4 > end:
                raise RtpParseError("RTCP SDES chunk runs past the end of the packet")
            (ssrc,) = _U32.unpack_from(body, offset)
            offset += 4
            items = []
            while True:
                if offset >= end:
                    raise RtpParseError("RTCP SDES chunk lacks its terminating null item")
                kind = body[offset]
                if kind == SDES_END:
                    break
                if offset + 2 > end or offset + 2 + body[offset + 1] > end:
                    raise RtpParseError("RTCP SDES item runs past the end of the packet")
                length = body[offset + 1]
                items.append(SdesItem(kind, bytes(body[offset + 2 : offset + 2 + length])))
                offset += 2 + length
            # Skip the null terminator and the padding up to the next 32-bit boundary.
            offset = (offset + 4) & ~3
            chunks.append(SdesChunk(ssrc, tuple(items)))
        if offset > end:
            raise RtpParseError("RTCP SDES chunk padding runs past the end of the packet")
        return cls(tuple(chunks))


@attrs.frozen
class Goodbye:
    """RTCP BYE (RFC 3550 6.6): the sources leaving, and an optional reason."""

    ssrcs: tuple[int, ...] = ()
    reason: bytes | None = None

    def __attrs_post_init__(self) -> None:
        if len(self.ssrcs) > 31:
            raise RtpError(f"{len(self.ssrcs)} BYE sources, at most 31 fit the SC field")
        for ssrc in self.ssrcs:
            _check("ssrc", ssrc, _U32_MAX)
        if self.reason is not None:
            _check("BYE reason length", len(self.reason), _U8)

    def to_bytes(self) -> bytes:
        body = b"".join(_U32.pack(ssrc) for ssrc in self.ssrcs)
        if self.reason is not None:
            reason = bytes((len(self.reason),)) + self.reason
            body += reason + bytes(-len(reason) % 4)
        return _header(len(self.ssrcs), RTCP_BYE, len(body)) + body

    @classmethod
    def _parse(cls, count: int, body: Buffer) -> Goodbye:
        if 4 * count > len(body):
            raise RtpParseError(f"RTCP BYE source count {count} runs past the end of the packet")
        ssrcs = struct.unpack_from(f"!{count}I", body)
        offset = 4 * count
        reason = None
        if offset < len(body):
            length = body[offset]
            if offset + 1 + length > len(body):
                raise RtpParseError("RTCP BYE reason runs past the end of the packet")
            reason = bytes(body[offset + 1 : offset + 1 + length])
        return cls(ssrcs, reason)


@attrs.frozen
class AppPacket:
    """RTCP APP (RFC 3550 6.7), passed through: ``subtype``, 4-octet ``name``, opaque ``data``."""

    subtype: int
    ssrc: int
    name: bytes
    data: bytes = b""

    def __attrs_post_init__(self) -> None:
        _check("APP subtype", self.subtype, 31)
        _check("ssrc", self.ssrc, _U32_MAX)
        if len(self.name) != 4:
            raise RtpError("APP name must be exactly 4 octets")
        if len(self.data) % 4:
            raise RtpError("APP data must be a whole number of 32-bit words")

    def to_bytes(self) -> bytes:
        body = _U32.pack(self.ssrc) + self.name + self.data
        return _header(self.subtype, RTCP_APP, len(body)) + body

    @classmethod
    def _parse(cls, count: int, body: Buffer) -> AppPacket:
        if len(body) < 8:
            raise RtpParseError("RTCP APP shorter than its SSRC and name")
        (ssrc,) = _U32.unpack_from(body)
        return cls(count, ssrc, bytes(body[4:8]), bytes(body[8:]))


@attrs.frozen
class RtcpUnknown:
    """An RTCP packet type we do not interpret (XR, feedback, ...), kept so it can be relayed."""

    packet_type: int
    count: int
    body: bytes

    def __attrs_post_init__(self) -> None:
        _check("RTCP packet type", self.packet_type, _U8)
        _check("RTCP count", self.count, 31)
        if len(self.body) % 4:
            raise RtpError("RTCP body must be a whole number of 32-bit words")

    def to_bytes(self) -> bytes:
        return _header(self.count, self.packet_type, len(self.body)) + self.body


RtcpPacket: TypeAlias = (
    SenderReport | ReceiverReport | SourceDescription | Goodbye | AppPacket | RtcpUnknown
)

_PARSERS: dict[int, Callable[[int, Buffer], RtcpPacket]] = {
    RTCP_SR: SenderReport._parse,
    RTCP_RR: ReceiverReport._parse,
    RTCP_SDES: SourceDescription._parse,
    RTCP_BYE: Goodbye._parse,
    RTCP_APP: AppPacket._parse,
}


def parse_rtcp_compound(data: Buffer, *, reduced_size: bool = False) -> list[RtcpPacket]:
    """Parse and validate a compound RTCP packet (RFC 3550 6.1 and appendix A.2).

    Checks: version 2 in every packet; the first is an SR or RR without padding; only the last
    packet may be padded; the length fields add up to exactly the datagram. ``reduced_size=True``
    accepts a non-compound first packet (RFC 5506, e.g. a lone feedback message).
    """
    end = len(data)
    if end < 4:
        raise RtpParseError(f"RTCP packet of {end} bytes is shorter than its 4-byte header")
    packets: list[RtcpPacket] = []
    offset = 0
    while offset < end:
        if offset + 4 > end:
            raise RtpParseError("RTCP compound packet ends inside a packet header")
        first, packet_type, words = _RTCP_HEADER.unpack_from(data, offset)
        if first >> 6 != RTP_VERSION:
            raise RtpParseError(f"RTCP version {first >> 6}, expected 2")
        if not packets and not reduced_size and packet_type not in (RTCP_SR, RTCP_RR):
            raise RtpParseError(f"compound RTCP starts with packet type {packet_type}, not SR/RR")
        packet_end = offset + 4 + 4 * words
        if packet_end > end:
            raise RtpParseError("RTCP length field runs past the end of the datagram")
        body_end = packet_end
        if first & 0x20:
            if packet_end != end:
                raise RtpParseError("RTCP padding on a packet that is not the last one")
            pad = data[packet_end - 1]
            if pad == 0 or pad % 4 or pad > packet_end - offset - 4:
                raise RtpParseError(f"RTCP padding count {pad} is invalid")
            body_end -= pad
        body = memoryview(data)[offset + 4 : body_end]
        count = first & 0x1F
        parser = _PARSERS.get(packet_type)
        if parser is None:
            packets.append(RtcpUnknown(packet_type, count, bytes(body)))
        else:
            packets.append(parser(count, body))
        offset = packet_end
    return packets


def serialize_rtcp_compound(packets: Iterable[RtcpPacket]) -> bytes:
    """Concatenate RTCP packets into one compound packet (the caller chooses a valid order)."""
    return b"".join(packet.to_bytes() for packet in packets)
