"""Hypothesis strategies for RTP and RTCP (RFC 3550) values, for users' property tests.

``rtp_packets`` builds any valid :class:`~trio_voip.rtp.packet.RtpPacket` (CSRCs, header
extension, padding); ``compounds`` builds valid RTCP compound packets (an SR or RR first, then
SDES, BYE, APP, RR and unknown feedback types), as ``parse_rtcp_compound`` returns them.
"""

from __future__ import annotations

from hypothesis import strategies as st

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
)

__all__ = [
    "u16",
    "u32",
    "words",
    "rtp_packets",
    "report_blocks",
    "sender_reports",
    "receiver_reports",
    "sdes_items",
    "sdes",
    "byes",
    "apps",
    "unknowns",
    "compounds",
]

u32 = st.integers(0, 0xFFFFFFFF)
u16 = st.integers(0, 0xFFFF)


def words(max_words: int = 8) -> st.SearchStrategy[bytes]:
    return st.integers(0, max_words).flatmap(lambda n: st.binary(min_size=4 * n, max_size=4 * n))


rtp_packets = st.builds(
    RtpPacket,
    payload_type=st.integers(0, 127),
    sequence=u16,
    timestamp=u32,
    ssrc=u32,
    payload=st.binary(max_size=64),
    marker=st.booleans(),
    csrcs=st.lists(u32, max_size=15).map(tuple),
    extension=st.none() | st.builds(RtpHeaderExtension, profile=u16, data=words()),
    padding=st.integers(0, 255),
)

report_blocks = st.builds(
    ReportBlock,
    ssrc=u32,
    fraction_lost=st.integers(0, 255),
    cumulative_lost=st.integers(-0x800000, 0x7FFFFF),
    highest_sequence=u32,
    jitter=u32,
    last_sr=u32,
    delay_since_last_sr=u32,
)
sender_reports = st.builds(
    SenderReport,
    ssrc=u32,
    ntp_timestamp=st.integers(0, (1 << 64) - 1),
    rtp_timestamp=u32,
    packet_count=u32,
    octet_count=u32,
    reports=st.lists(report_blocks, max_size=3).map(tuple),
    extension=words(2),
)
receiver_reports = st.builds(
    ReceiverReport,
    ssrc=u32,
    reports=st.lists(report_blocks, max_size=3).map(tuple),
    extension=words(2),
)
sdes_items = st.builds(SdesItem, kind=st.integers(1, 255), value=st.binary(max_size=20))
sdes = st.builds(
    SourceDescription,
    chunks=st.lists(
        st.builds(SdesChunk, ssrc=u32, items=st.lists(sdes_items, max_size=3).map(tuple)),
        max_size=3,
    ).map(tuple),
)
byes = st.builds(
    Goodbye,
    ssrcs=st.lists(u32, max_size=4).map(tuple),
    reason=st.none() | st.binary(min_size=1, max_size=30),
)
apps = st.builds(
    AppPacket, subtype=st.integers(0, 31), ssrc=u32, name=st.binary(min_size=4, max_size=4),
    data=words(),
)
unknowns = st.builds(
    RtcpUnknown, packet_type=st.sampled_from([205, 206, 207]), count=st.integers(0, 31),
    body=words(),
)
compounds = st.tuples(
    sender_reports | receiver_reports,
    st.lists(sdes | byes | apps | unknowns | receiver_reports, max_size=4),
).map(lambda t: [t[0], *t[1]])
