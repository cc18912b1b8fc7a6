import attrs
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from trio_voip.errors import SdpError, TrioVoipError
from trio_voip.sdp import (
    Attribute,
    Bandwidth,
    Connection,
    Direction,
    MediaDescription,
    Origin,
    Rtcp,
    RtpMap,
    SessionDescription,
    Timing,
    parse_sdp,
)
from trio_voip.testing.sdp_strategies import (
    SIPP_SDP,
    SOFTPHONE_SDP,
    WEBRTC_SDP,
    mutated_sdp_bytes,
    session_descriptions,
)


def crlf(text: str) -> str:
    return "".join(f"{line}\r\n" for line in text.strip("\n").split("\n"))


SIPP, SOFTPHONE, WEBRTC = (data.decode() for data in (SIPP_SDP, SOFTPHONE_SDP, WEBRTC_SDP))


# Every session-level line type RFC 8866 has, in its order.
FULL = crlf("""
v=0
o=jdoe 2890844526 2890842807 IN IP4 10.47.16.5
s=SDP Seminar
i=A Seminar on the session description protocol
u=http://www.example.com/seminars/sdp.pdf
e=j.doe@example.com (Jane Doe)
p=+1 617 555-6011
c=IN IP4 224.2.17.12/127
b=CT:128
t=2873397496 2873404696
r=7d 1h 0 25h
t=0 0
z=2882844526 -1h 2898848070 0
k=prompt
a=recvonly
m=audio 49170/2 RTP/AVP 0
i=the audio
k=clear:abc
m=video 51372 RTP/AVP 99
a=rtpmap:99 h263-1998/90000
""")


@pytest.mark.parametrize(
    "text", [SIPP, SOFTPHONE, WEBRTC, FULL], ids=["sipp", "softphone", "webrtc", "full"]
)
def test_real_world_sdp_round_trips_byte_exact(text: str) -> None:
    sdp = parse_sdp(text.encode())
    assert str(sdp) == text
    assert bytes(sdp) == text.encode()
    assert parse_sdp(bytes(sdp)) == sdp


def test_sipp_fields() -> None:
    sdp = parse_sdp(SIPP)
    assert sdp.origin == Origin("user1", "53655765", 2353687637, "IN", "IP4", "127.0.0.1")
    assert sdp.session_name == "-"
    assert sdp.connection == Connection("IN", "IP4", "127.0.0.1")
    assert sdp.timings == (Timing(0, 0),)
    (audio,) = sdp.media
    assert (audio.media, audio.port, audio.proto, audio.formats) == (
        "audio",
        6000,
        "RTP/AVP",
        ("0",),
    )
    assert audio.payload_types == (0,)
    assert audio.rtpmap(0) == RtpMap(0, "PCMU", 8000)
    assert audio.direction is None
    assert sdp.declared_direction(audio) is Direction.SENDRECV


def test_softphone_helpers() -> None:
    sdp = parse_sdp(SOFTPHONE)
    assert sdp.bandwidths == (Bandwidth("AS", 84),)
    assert sdp.attribute("X-nat") == "0"
    (audio,) = sdp.media
    assert audio.connection == Connection.for_address("192.168.1.20")
    assert audio.bandwidths == (Bandwidth("AS", 64000), Bandwidth("TIAS", 64000))
    assert audio.payload_types == (96, 9, 8, 0, 101, 102)
    assert audio.rtpmap(96) == RtpMap(96, "opus", 48000, "2")
    assert audio.rtpmap(96).channels == 2
    assert audio.rtpmap(102) == RtpMap(102, "telephone-event", 8000)
    assert audio.rtpmap(3) is None
    assert audio.fmtp(96) == "useinbandfec=1"
    assert audio.fmtp("102") == "0-16"
    assert audio.fmtp(0) is None
    assert audio.rtcp == Rtcp(4001, Connection("IN", "IP4", "192.168.1.20"))
    assert not audio.rtcp_mux
    assert audio.direction is Direction.SENDRECV
    assert audio.attribute_values("ssrc") == ("1925306395 cname:5a8b0d5a4f8a6e09",)


def test_webrtc_helpers() -> None:
    sdp = parse_sdp(WEBRTC)
    assert sdp.attribute("msid-semantic") == " WMS stream1"
    assert sdp.has_attribute("extmap-allow-mixed")
    assert sdp.attribute("extmap-allow-mixed") is None
    (audio,) = sdp.media
    assert audio.proto == "UDP/TLS/RTP/SAVPF"
    assert audio.rtcp_mux
    assert audio.rtcp == Rtcp(9, Connection("IN", "IP4", "0.0.0.0"))
    assert audio.attribute("fingerprint").startswith("sha-256 D2:FA")
    # c=0.0.0.0 is an ICE placeholder here, not RFC 2543 hold.
    assert sdp.effective_direction(audio) is Direction.SENDRECV


def test_full_session_fields() -> None:
    sdp = parse_sdp(FULL)
    assert sdp.info == "A Seminar on the session description protocol"
    assert sdp.uri == "http://www.example.com/seminars/sdp.pdf"
    assert sdp.emails == ("j.doe@example.com (Jane Doe)",)
    assert sdp.phones == ("+1 617 555-6011",)
    assert sdp.connection.host == "224.2.17.12"
    assert sdp.timings == (Timing(2873397496, 2873404696, ["7d 1h 0 25h"]), Timing(0, 0))
    assert sdp.time_zones == "2882844526 -1h 2898848070 0"
    assert sdp.key == "prompt"
    audio, video = sdp.media
    assert audio.port_count == 2 and audio.title == "the audio" and audio.key == "clear:abc"
    # Media without a direction inherits the session's.
    assert sdp.declared_direction(video) is Direction.RECVONLY


def test_lf_only_and_missing_final_line_end() -> None:
    lf = SIPP.replace("\r\n", "\n")
    assert parse_sdp(lf) == parse_sdp(SIPP)
    assert parse_sdp(lf.rstrip("\n")) == parse_sdp(SIPP)
    assert parse_sdp(SIPP + "\r\n\r\n") == parse_sdp(SIPP)
    assert str(parse_sdp(lf)) == SIPP


def test_lines_out_of_order_within_a_section_are_accepted_and_written_in_rfc_order() -> None:
    text = crlf("""
v=0
o=- 1 1 IN IP4 192.0.2.1
s=-
a=tool:x
t=0 0
c=IN IP4 192.0.2.1
m=audio 4000 RTP/AVP 0
a=sendonly
c=IN IP4 192.0.2.2
b=AS:64
""")
    sdp = parse_sdp(text)
    assert sdp.media[0].connection.address == "192.0.2.2"
    assert str(sdp).splitlines()[3:] == [
        "c=IN IP4 192.0.2.1",
        "t=0 0",
        "a=tool:x",
        "m=audio 4000 RTP/AVP 0",
        "c=IN IP4 192.0.2.2",
        "b=AS:64",
        "a=sendonly",
    ]


def test_runs_of_spaces_between_fields_are_tolerated() -> None:
    sdp = parse_sdp(SIPP.replace("m=audio 6000", "m=audio  6000").replace("t=0 0", "t=0   0"))
    assert sdp == parse_sdp(SIPP)


def test_rejected_stream_without_formats_is_accepted() -> None:
    sdp = parse_sdp(SIPP + "m=video 0 RTP/AVP\r\n")
    assert sdp.media[1].formats == ()
    assert sdp.media[1].is_rejected


HEAD = "v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\n"


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("", 1, "truncated"),
        ("v=0\n", 2, "truncated"),
        ("o=- 1 1 IN IP4 x\n", 1, "expected v="),
        ("v=1\n", 1, "version"),
        ("v=0\ns=-\n", 2, "expected o="),
        ("v=0\no=- 1 1 IN IP4\ns=-\nt=0 0\n", 2, "6 fields"),
        ("v=0\no=- 1 x IN IP4 a\ns=-\nt=0 0\n", 2, "sess-version"),
        ("v=0\no=- 1 1 IN IP4 a\nt=0 0\n", 3, "expected s="),
        ("v=0\no=- 1 1 IN IP4 a\ns=-\n", 4, "no t= line"),
        ("v=0\no=- 1 1 IN IP4 a\ns=-\nm=audio 1 RTP/AVP 0\n", 4, "before any t="),
        ("v=0\no=- 1 1 IN IP4 a\ns=-\nt=0\n", 4, "t= needs 2 fields"),
        ("v=0\no=- 1 1 IN IP4 a\ns=-\nt=now 0\n", 4, "t= start"),
        ("v=0\no=- 1 1 IN IP4 a\ns=-\nr=1d 1h 0\nt=0 0\n", 4, "before any t="),
        (HEAD + "m=audio 65536 RTP/AVP 0\n", 6, "port"),
        (HEAD + "m=audio -1 RTP/AVP 0\n", 6, "port"),
        (HEAD + "m=audio 4000/0 RTP/AVP 0\n", 6, "number of ports"),
        (HEAD + "m=audio 4000 RTP/AVP\n", 6, "no media formats"),
        (HEAD + "m=audio 4000\n", 6, "m= needs"),
        (HEAD + "m=audio 4000 RTP//AVP 0\n", 6, "transport protocol"),
        (HEAD + "X=1\n", 6, "not a lowercase letter"),
        (HEAD + "x=1\n", 6, "unknown line type"),
        (HEAD + "a\n", 6, "<type>=<value>"),
        (HEAD + "\na=x\n", 6, "<type>=<value>"),
        (HEAD + "a=\n", 6, "attribute name"),
        (HEAD + "a=bad name:1\n", 6, "attribute name"),
        (HEAD + "a=x\x00\n", 6, "NUL"),
        (HEAD + "a=x\ry\n", 6, "stray CR"),
        (HEAD + "c=IN IP4 192.0.2.9\n", 6, "more than one c="),
        (HEAD + "b=AS\n", 6, "<bwtype>:<bandwidth>"),
        (HEAD + "b=AS:x\n", 6, "bandwidth"),
        (HEAD + "m=audio 4000 RTP/AVP 0\nc=IN IP4\n", 7, "c= needs 3 fields"),
        (HEAD + "v=0\n", 6, "out of place"),
        (HEAD + "m=audio 4000 RTP/AVP 0\nt=0 0\n", 7, "not allowed in a media"),
        (HEAD + "m=audio 4000 RTP/AVP 0\ni=a\ni=b\n", 8, "more than one i="),
        (HEAD + "u=a\nu=b\n", 7, "more than one u="),
        (HEAD.replace("c=IN IP4 192.0.2.1\n", "") + "m=audio 4000 RTP/AVP 0\n", 6, "no connection"),
        (HEAD + "m=audio 4000 RTP/AVP 0\nb=AS:1" + "0" * 30 + "\n", 7, "bandwidth"),
    ],
)
def test_bad_sdp_raises_sdp_error_naming_the_line(text: str, line: int, problem: str) -> None:
    with pytest.raises(SdpError) as info:
        parse_sdp(text)
    assert info.value.line == line
    assert problem in str(info.value)
    assert str(info.value).startswith(f"line {line}: ")
    assert info.value.status == 400


def test_bad_utf8_is_an_sdp_error() -> None:
    with pytest.raises(SdpError, match="UTF-8") as info:
        parse_sdp(SIPP.encode().replace(b"s=-", b"s=\xff"))
    assert info.value.line == 3


def test_non_text_input_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        parse_sdp(42)  # type: ignore[arg-type]


def test_sdp_error_is_a_trio_voip_error() -> None:
    assert issubclass(SdpError, TrioVoipError)


@pytest.mark.parametrize(
    "build",
    [
        lambda: MediaDescription("audio", 70000, "RTP/AVP", ["0"]),
        lambda: MediaDescription("audio", 4000, "RTP/AVP", []),
        lambda: MediaDescription("au dio", 4000, "RTP/AVP", ["0"]),
        lambda: MediaDescription("audio", 4000, "RTP/AVP", ["0 8"]),
        lambda: Origin("a b", "1", 1, "IN", "IP4", "x"),
        lambda: Origin("-", "1", -1, "IN", "IP4", "x"),
        lambda: Attribute("rtpmap", "0 PCMU\r\n/8000"),
        lambda: SessionDescription(Origin("-", "1", 1, "IN", "IP4", "x"), session_name="a\nb"),
        lambda: SessionDescription(Origin("-", "1", 1, "IN", "IP4", "x"), timings=[]),
        lambda: SessionDescription(Origin("-", "1", 1, "IN", "IP4", "x"), version=1),
        lambda: RtpMap.parse("x PCMU/8000"),
        lambda: RtpMap.parse("0 PCMU"),
        lambda: RtpMap.parse("200 PCMU/8000"),
        lambda: Rtcp.parse("4001 IN IP4"),
    ],
)
def test_invalid_values_cannot_be_built(build) -> None:
    with pytest.raises(SdpError):
        build()


def test_media_attribute_helpers_raise_sdp_error_on_bad_values() -> None:
    media = MediaDescription("audio", 4000, "udptl", ["t38"], attributes=[Attribute("ptime", "x")])
    with pytest.raises(SdpError):
        _ = media.payload_types
    with pytest.raises(SdpError):
        _ = media.ptime
    with pytest.raises(SdpError):
        MediaDescription("audio", 1, "RTP/AVP", ["0"], attributes=[Attribute("rtpmap")]).rtpmaps()


def test_ptime_and_direction_helpers() -> None:
    media = MediaDescription(
        "audio",
        4000,
        "RTP/AVP",
        ["0"],
        attributes=[Attribute("ptime", "20"), Attribute("inactive")],
    )
    assert media.ptime == 20
    assert attrs.evolve(media, attributes=[Attribute("ptime", "22.5")]).ptime == 22
    assert media.direction is Direction.INACTIVE
    assert MediaDescription("audio", 4000, "RTP/AVP", ["0"]).ptime is None


def test_with_direction_replaces_in_place_and_drops_duplicates() -> None:
    media = MediaDescription(
        "audio",
        4000,
        "RTP/AVP",
        ["0"],
        attributes=[
            Attribute("rtpmap", "0 PCMU/8000"),
            Attribute("sendrecv"),
            Attribute("ptime", "20"),
            Attribute("sendrecv"),
        ],
    )
    held = media.with_direction(Direction.SENDONLY)
    assert held.attributes == (
        Attribute("rtpmap", "0 PCMU/8000"),
        Attribute("sendonly"),
        Attribute("ptime", "20"),
    )
    bare = MediaDescription("audio", 4000, "RTP/AVP", ["0"]).with_direction(Direction.INACTIVE)
    assert bare.attributes == (Attribute("inactive"),)
    assert media == parse_sdp(HEAD + "\n".join(media.lines())).media[0]


def test_legacy_hold_connection_counts_as_do_not_send_to_me() -> None:
    held = parse_sdp(SIPP.replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0"))
    audio = held.media[0]
    assert held.declared_direction(audio) is Direction.SENDRECV
    assert held.effective_direction(audio) is Direction.SENDONLY
    recvonly = attrs.evolve(held, media=[audio.with_direction(Direction.RECVONLY)])
    assert recvonly.effective_direction(recvonly.media[0]) is Direction.INACTIVE


@pytest.mark.parametrize(
    ("direction", "reversed_", "sends", "receives"),
    [
        (Direction.SENDRECV, Direction.SENDRECV, True, True),
        (Direction.SENDONLY, Direction.RECVONLY, True, False),
        (Direction.RECVONLY, Direction.SENDONLY, False, True),
        (Direction.INACTIVE, Direction.INACTIVE, False, False),
    ],
)
def test_direction_algebra(
    direction: Direction, reversed_: Direction, sends: bool, receives: bool
) -> None:
    assert direction.reversed() is reversed_
    assert (direction.sends, direction.receives) == (sends, receives)
    assert direction.intersect(Direction.SENDRECV) is direction
    assert direction.intersect(Direction.INACTIVE) is Direction.INACTIVE


def test_connection_for_address() -> None:
    assert str(Connection.for_address("192.0.2.1")) == "IN IP4 192.0.2.1"
    assert str(Connection.for_address("2001:db8::1")) == "IN IP6 2001:db8::1"
    assert Connection.for_address("0.0.0.0").is_null
    assert not Connection.for_address("::").is_null


@given(session_descriptions())
@settings(max_examples=150)
def test_generated_descriptions_round_trip(sdp: SessionDescription) -> None:
    data = bytes(sdp)
    lines = data.split(b"\r\n")
    assert lines[-1] == b""
    assert all(line[1:2] == b"=" and line[:1].islower() for line in lines[:-1])
    assert parse_sdp(data) == sdp
    assert parse_sdp(data.replace(b"\r\n", b"\n")) == sdp
    assert bytes(parse_sdp(data)) == data


@given(st.binary(max_size=300) | st.text(max_size=300))
@example(b"v=0\r\no=- 1 " + b"9" * 5000 + b" IN IP4 a\r\ns=-\r\nt=0 0\r\n")
@example(b"v=0\r\no=- " + b"9" * 5000 + b" 1 IN IP4 a\r\ns=-\r\nt=0 0\r\n")
@example("v=0\no=\xa0 1 1 IN IP4 a\ns=-\nt=0 0\n")
@settings(max_examples=300)
def test_random_input_only_raises_sdp_error(data: bytes | str) -> None:
    try:
        sdp = parse_sdp(data)
    except SdpError:
        return
    assert parse_sdp(bytes(sdp)) == sdp


@given(mutated_sdp_bytes())
@settings(max_examples=150)
def test_mutated_sdp_only_raises_sdp_error_and_what_parses_round_trips(data: bytes) -> None:
    try:
        sdp = parse_sdp(data)
    except SdpError as exc:
        assert exc.line is not None
        return
    assert parse_sdp(bytes(sdp)) == sdp
