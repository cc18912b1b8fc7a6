"""Hypothesis strategies for SDP: valid session descriptions, realistic audio offers, and the
damaged bytes a parser must survive (``SdpError`` and nothing else)."""

from __future__ import annotations

import attrs
from hypothesis import strategies as st

from ..offer_answer import PCMA, PCMU, TELEPHONE_EVENT, Codec, build_offer
from ..sdp import (
    Attribute,
    Bandwidth,
    Connection,
    Direction,
    MediaDescription,
    Origin,
    SessionDescription,
    Timing,
)

__all__ = [
    "SIPP_SDP",
    "SOFTPHONE_SDP",
    "WEBRTC_SDP",
    "audio_offers",
    "media_descriptions",
    "mutated_sdp_bytes",
    "sdp_bytes",
    "session_descriptions",
]

# RFC 8866 token-char: visible ASCII except " ( ) , / : ; < = > ? @ [ \ ]
_TOKEN_ALPHABET = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"(),/:;<=>?@[\\]')
_tokens = st.text(_TOKEN_ALPHABET, min_size=1, max_size=8)
_non_ws = st.text(
    st.characters(min_codepoint=0x21, exclude_categories=["Cs"], exclude_characters="\x7f"),
    min_size=1,
    max_size=12,
)
_text = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\x00\r\n"), max_size=16
)
_numbers = st.integers(0, 10**20 - 1)
_addresses = st.sampled_from(
    ["127.0.0.1", "192.0.2.10", "0.0.0.0", "::1", "2001:db8::5", "host.example"]
)

_connections = st.one_of(
    st.builds(Connection.for_address, _addresses), st.builds(Connection, _tokens, _tokens, _non_ws)
)
_bandwidths = st.builds(Bandwidth, _tokens, _numbers)
_attributes = st.one_of(
    st.builds(Attribute, _tokens, st.none() | _text),
    st.sampled_from(
        [
            Attribute("rtpmap", "0 PCMU/8000"),
            Attribute("rtpmap", "101 telephone-event/8000"),
            Attribute("fmtp", "101 0-16"),
            Attribute("ptime", "20"),
            Attribute("rtcp", "4001 IN IP4 192.0.2.10"),
            Attribute("rtcp-mux"),
        ]
        + [Attribute(d.value) for d in Direction]
    ),
)


@st.composite
def media_descriptions(draw: st.DrawFn) -> MediaDescription:
    """Any valid media description (not necessarily a sensible one)."""
    port = draw(st.integers(0, 65535))
    formats = draw(st.lists(_tokens, min_size=0 if port == 0 else 1, max_size=6))
    return MediaDescription(
        media=draw(st.sampled_from(["audio", "video", "image"]) | _tokens),
        port=port,
        proto=draw(
            st.sampled_from(["RTP/AVP", "RTP/SAVP", "udptl"])
            | st.lists(_tokens, min_size=1, max_size=3).map("/".join)
        ),
        formats=formats,
        port_count=draw(st.none() | st.integers(1, 65535)),
        title=draw(st.none() | _text),
        connection=draw(st.none() | _connections),
        bandwidths=draw(st.lists(_bandwidths, max_size=2)),
        key=draw(st.none() | _text),
        attributes=draw(st.lists(_attributes, max_size=6)),
    )


@st.composite
def session_descriptions(draw: st.DrawFn) -> SessionDescription:
    """Any valid session description: what :func:`trio_voip.sdp.parse_sdp` must round-trip."""
    connection = draw(st.none() | _connections)
    media = draw(st.lists(media_descriptions(), max_size=4))
    if connection is None:
        # RFC 8866 5.7: without a session c= line, every active stream needs its own.
        fallback = draw(_connections)
        media = [
            m if m.connection is not None or m.is_rejected else attrs.evolve(m, connection=fallback)
            for m in media
        ]
    return SessionDescription(
        origin=draw(st.builds(Origin, _non_ws, _non_ws, _numbers, _tokens, _tokens, _non_ws)),
        session_name=draw(_text),
        info=draw(st.none() | _text),
        uri=draw(st.none() | _text),
        emails=draw(st.lists(_text, max_size=2)),
        phones=draw(st.lists(_text, max_size=2)),
        connection=connection,
        bandwidths=draw(st.lists(_bandwidths, max_size=2)),
        timings=draw(
            st.lists(
                st.builds(Timing, _numbers, _numbers, st.lists(_text, max_size=2)),
                min_size=1,
                max_size=3,
            )
        ),
        time_zones=draw(st.none() | _text),
        key=draw(st.none() | _text),
        attributes=draw(st.lists(_attributes, max_size=5)),
        media=media,
    )


def sdp_bytes() -> st.SearchStrategy[bytes]:
    """Serialised valid session descriptions."""
    return session_descriptions().map(bytes)


@st.composite
def mutated_sdp_bytes(draw: st.DrawFn) -> bytes:
    """Valid SDP with a few random edits: deleted, inserted or replaced bytes, swapped lines."""
    data = bytearray(draw(sdp_bytes() | st.builds(bytes, audio_offers())))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["delete", "insert", "replace", "swap-lines"]))
        at = draw(st.integers(0, len(data)))
        if kind == "delete":
            del data[at : at + draw(st.integers(1, 20))]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "replace" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif kind == "swap-lines":
            lines = bytes(data).split(b"\r\n")
            i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
            data = bytearray(b"\r\n".join(lines))
    return bytes(data)


_KNOWN_CODECS = (
    PCMU,
    PCMA,
    TELEPHONE_EVENT,
    Codec("G722", 8000, 9),
    Codec("opus", 48000, 111, channels=2, fmtp="useinbandfec=1"),
    Codec("telephone-event", 48000, 110),
    Codec("speex", 16000, None),
)


@st.composite
def audio_offers(draw: st.DrawFn) -> SessionDescription:
    """Realistic single-stream audio offers, as :func:`build_offer` writes them."""
    codecs = draw(st.lists(st.sampled_from(_KNOWN_CODECS), min_size=1, max_size=5, unique=True))
    return build_offer(
        address=draw(st.sampled_from(["127.0.0.1", "192.0.2.7", "2001:db8::7"])),
        port=draw(st.integers(1, 65534)),
        codecs=codecs,
        direction=draw(st.sampled_from(Direction)),
        rtcp_mux=draw(st.booleans()),
        ptime=draw(st.none() | st.sampled_from([10, 20, 30])),
        session_id=draw(st.integers(0, 2**63)),
        session_version=draw(st.integers(0, 2**32)),
    )


# --- real-world samples (CRLF bytes) -----------------------------------------------------------


def _crlf(text: str) -> bytes:
    return "".join(f"{line}\r\n" for line in text.strip("\n").split("\n")).encode()


# What SIPp's built-in uac scenario sends.
SIPP_SDP = _crlf("""
v=0
o=user1 53655765 2353687637 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 6000 RTP/AVP 0
a=rtpmap:0 PCMU/8000
""")

# A pjsip-based softphone: several codecs, telephone-event at two rates, a=rtcp, b= lines.
SOFTPHONE_SDP = _crlf("""
v=0
o=- 3868340372 3868340372 IN IP4 192.168.1.20
s=pjmedia
b=AS:84
t=0 0
a=X-nat:0
m=audio 4000 RTP/AVP 96 9 8 0 101 102
c=IN IP4 192.168.1.20
b=AS:64000
b=TIAS:64000
a=rtcp:4001 IN IP4 192.168.1.20
a=sendrecv
a=rtpmap:96 opus/48000/2
a=fmtp:96 useinbandfec=1
a=rtpmap:9 G722/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/48000
a=fmtp:101 0-16
a=rtpmap:102 telephone-event/8000
a=fmtp:102 0-16
a=ssrc:1925306395 cname:5a8b0d5a4f8a6e09
""")

# Browser-style: ICE, DTLS, BUNDLE, rtcp-mux, rtcp-fb, extmap, a value starting with a space.
WEBRTC_SDP = _crlf("""
v=0
o=- 4611731400430051336 2 IN IP4 127.0.0.1
s=-
t=0 0
a=group:BUNDLE 0
a=extmap-allow-mixed
a=msid-semantic: WMS stream1
m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126
c=IN IP4 0.0.0.0
a=rtcp:9 IN IP4 0.0.0.0
a=ice-ufrag:EsAw
a=ice-pwd:bP+XJMM09aR8AiX1jdukzR6Y
a=ice-options:trickle
a=fingerprint:sha-256 D2:FA:0E:C3:22:59:5E:14:95:69:92:3D:13:B4:84:24:2C:C2:A2:C0:3E:FD:34:8E:5E:EA:6F:AF:52:CE:E6:0F
a=setup:actpass
a=mid:0
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level
a=sendrecv
a=msid:stream1 track1
a=rtcp-mux
a=rtpmap:111 opus/48000/2
a=rtcp-fb:111 transport-cc
a=fmtp:111 minptime=10;useinbandfec=1
a=rtpmap:63 red/48000/2
a=fmtp:63 111/111
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:13 CN/8000
a=rtpmap:110 telephone-event/48000
a=rtpmap:126 telephone-event/8000
a=ssrc:3735928559 cname:4TOk42mSjXCkVIa6
a=candidate:1467250027 1 udp 2122260223 192.168.0.196 46243 typ host generation 0
""")
