import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_voip.errors import OfferAnswerError, SdpError
from trio_voip.offer_answer import (
    PCMA,
    PCMU,
    STATIC_PAYLOAD_TYPES,
    TELEPHONE_EVENT,
    Codec,
    LocalCapabilities,
    answer_direction,
    answer_offer,
    build_offer,
    check_answer,
    codec_of,
    hold_offer,
    is_hold,
    negotiated,
    next_version,
    offers_codec,
    resume_offer,
)
from trio_voip.sdp import (
    Attribute,
    Direction,
    MediaDescription,
    SessionDescription,
    Timing,
    parse_sdp,
)
from trio_voip.testing.sdp_strategies import SIPP_SDP, SOFTPHONE_SDP, WEBRTC_SDP, audio_offers

SIPP, SOFTPHONE, WEBRTC = (data.decode() for data in (SIPP_SDP, SOFTPHONE_SDP, WEBRTC_SDP))


def crlf(text: str) -> str:
    return "".join(f"{line}\r\n" for line in text.strip("\n").split("\n"))


LOCAL = LocalCapabilities(address="10.0.0.2", ports={"audio": 50000})


def offer_text(media_lines: str, session: str = "") -> SessionDescription:
    return parse_sdp(
        crlf(
            "v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\n"
            + session
            + media_lines
        )
    )


# --- build_offer -------------------------------------------------------------------------------


def test_build_offer_default() -> None:
    offer = build_offer(address="192.0.2.1", port=40000, session_id=42, session_version=7)
    assert str(offer) == crlf("""
v=0
o=- 42 7 IN IP4 192.0.2.1
s=-
c=IN IP4 192.0.2.1
t=0 0
m=audio 40000 RTP/AVP 0 8 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=sendrecv
""")


def test_build_offer_options() -> None:
    opus = Codec("opus", 48000, None, channels=2, fmtp="useinbandfec=1")
    offer = build_offer(
        address="2001:db8::1",
        port=4000,
        codecs=[PCMA, opus, Codec("G722", 8000), TELEPHONE_EVENT],
        direction=Direction.SENDONLY,
        rtcp_mux=True,
        ptime=30,
        session_id="99",
        username="alice",
        proto="RTP/AVPF",
    )
    assert offer.origin.addrtype == "IP6" and offer.origin.username == "alice"
    assert offer.connection.addrtype == "IP6"
    (audio,) = offer.media
    assert audio.proto == "RTP/AVPF"
    # Static numbers are kept (G722 found by name), dynamic ones allocated from 96.
    assert audio.payload_types == (8, 96, 9, 101)
    assert audio.rtpmap(96).encoding_params == "2"
    assert audio.fmtp(96) == "useinbandfec=1"
    assert audio.ptime == 30
    assert audio.direction is Direction.SENDONLY
    assert audio.rtcp_mux


def test_build_offer_resolves_payload_type_clashes() -> None:
    other_event = Codec("telephone-event", 16000, 101)
    offer = build_offer(
        address="192.0.2.1", port=4000, codecs=[TELEPHONE_EVENT, other_event], session_id=1
    )
    assert offer.media[0].payload_types == (101, 96)
    many = [Codec(f"x{i}", 8000) for i in range(33)]
    with pytest.raises(SdpError, match="dynamic"):
        build_offer(address="192.0.2.1", port=4000, codecs=many, session_id=1)
    with pytest.raises(SdpError):
        build_offer(address="192.0.2.1", port=4000, codecs=[], session_id=1)


def test_build_offer_session_identity_arguments() -> None:
    with pytest.raises(TypeError):
        build_offer(address="192.0.2.1", port=4000)
    first = build_offer(address="192.0.2.1", port=4000, session_id=5)
    with pytest.raises(TypeError):
        build_offer(address="192.0.2.1", port=4000, session_id=5, previous=first)
    # Same content again: same version (RFC 3264 8); a change: version + 1, same origin.
    assert build_offer(address="192.0.2.1", port=4000, previous=first) == first
    moved = build_offer(address="192.0.2.1", port=4002, previous=first)
    assert moved.origin == attrs.evolve(first.origin, session_version=1)
    assert moved.media[0].port == 4002


# --- answer_offer ------------------------------------------------------------------------------


def test_answer_sipp_offer() -> None:
    answer = answer_offer(parse_sdp(SIPP), LOCAL, session_id=7)
    assert str(answer) == crlf("""
v=0
o=- 7 0 IN IP4 10.0.0.2
s=-
c=IN IP4 10.0.0.2
t=0 0
m=audio 50000 RTP/AVP 0
a=rtpmap:0 PCMU/8000
a=sendrecv
""")


def test_answer_keeps_offer_order_and_offer_payload_numbers() -> None:
    local = attrs.evolve(LOCAL, codecs=[PCMA, PCMU, TELEPHONE_EVENT])
    answer = answer_offer(parse_sdp(SOFTPHONE), local, session_id=7)
    (audio,) = answer.media
    # Offer order (PCMA before PCMU), and telephone-event/8000 keeps the offer's 102.
    assert audio.payload_types == (8, 0, 102)
    assert audio.rtpmap(102).clock_rate == 8000
    assert audio.fmtp(102) == "0-16"
    assert audio.port == 50000


def test_answer_static_payload_type_without_rtpmap() -> None:
    offer = offer_text("m=audio 4000 RTP/AVP 8\n")
    (audio,) = answer_offer(offer, LOCAL, session_id=1).media
    assert audio.payload_types == (8,)
    assert audio.rtpmap(8).encoding_name == "PCMA"


def test_codec_names_match_case_insensitively() -> None:
    offer = offer_text("m=audio 4000 RTP/AVP 97\na=rtpmap:97 pcmu/8000\n")
    assert answer_offer(offer, LOCAL, session_id=1).media[0].payload_types == (97,)


def test_telephone_event_only_if_offered() -> None:
    offer = offer_text("m=audio 4000 RTP/AVP 0\n")
    (audio,) = answer_offer(offer, LOCAL, session_id=1).media
    assert audio.payload_types == (0,)
    assert not any("telephone-event" in (a.value or "") for a in audio.attributes)


def test_telephone_event_at_other_rate_is_not_answered() -> None:
    offer = offer_text("m=audio 4000 RTP/AVP 0 110\na=rtpmap:110 telephone-event/48000\n")
    assert answer_offer(offer, LOCAL, session_id=1).media[0].payload_types == (0,)


@pytest.mark.parametrize(
    ("offered", "ours", "answered"),
    [
        ("a=fmtp:101 0-15\n", "0-16", "0-15"),
        ("", "0-16", "0-15"),  # RFC 4733: no fmtp means 0-15
        ("a=fmtp:101 0-11,16,32-40\n", "0-16", "0-11,16"),
        ("a=fmtp:101 0-16\n", None, "0-15"),
        ("a=fmtp:101 32-40\n", "0-16", None),
        ("a=fmtp:101 junk\n", "0-16", None),
    ],
)
def test_telephone_event_fmtp_is_the_common_events(
    offered: str, ours: str | None, answered: str | None
) -> None:
    offer = offer_text("m=audio 4000 RTP/AVP 0 101\na=rtpmap:101 telephone-event/8000\n" + offered)
    local = attrs.evolve(LOCAL, codecs=[PCMU, attrs.evolve(TELEPHONE_EVENT, fmtp=ours)])
    (audio,) = answer_offer(offer, local, session_id=1).media
    if answered is None:
        assert audio.payload_types == (0,)
    else:
        assert audio.payload_types == (0, 101)
        assert audio.fmtp(101) == answered


def test_telephone_event_alone_is_no_common_codec() -> None:
    offer = offer_text(
        "m=audio 4000 RTP/AVP 18 101\na=rtpmap:101 telephone-event/8000\nm=audio 4002 RTP/AVP 0\n"
    )
    first, second = answer_offer(offer, LOCAL, session_id=1).media
    assert first.is_rejected
    assert second.payload_types == (0,)


def test_unsupported_and_codecless_streams_are_rejected_in_place() -> None:
    offer = offer_text(
        "m=video 5000 RTP/AVP 99\na=rtpmap:99 H264/90000\n"
        "m=audio 4000 RTP/AVP 18\n"
        "m=audio 4002 RTP/SAVP 0\n"
        "m=audio 0 RTP/AVP 0\n"
        "m=audio 4004 RTP/AVP 0 8\n"
        "m=audio 4006 RTP/AVP 0\n"
        "m=image 6000 udptl t38\n"
    )
    answer = answer_offer(offer, LOCAL, session_id=1)
    assert [m.media for m in answer.media] == [m.media for m in offer.media]
    assert [m.port for m in answer.media] == [0, 0, 0, 0, 50000, 0, 0]
    # Rejected lines keep the offered formats (at least one is required) and proto.
    assert answer.media[0] == MediaDescription("video", 0, "RTP/AVP", ["99"])
    assert answer.media[6] == MediaDescription("image", 0, "udptl", ["t38"])
    check_answer(offer, answer)


def test_nothing_acceptable_is_488() -> None:
    offer = offer_text("m=audio 4000 RTP/AVP 18\nm=video 5000 RTP/AVP 31\n")
    with pytest.raises(OfferAnswerError) as info:
        answer_offer(offer, LOCAL, session_id=1)
    assert info.value.status == 488
    with pytest.raises(OfferAnswerError):
        answer_offer(parse_sdp(WEBRTC), LOCAL, session_id=1)


def test_webrtc_offer_answered_when_its_proto_is_allowed() -> None:
    local = attrs.evolve(LOCAL, protos=["UDP/TLS/RTP/SAVPF"])
    (audio,) = answer_offer(parse_sdp(WEBRTC), local, session_id=1).media
    assert audio.payload_types == (0, 8, 126)
    assert audio.rtcp_mux


@pytest.mark.parametrize(
    ("offered", "wish", "answered"),
    [
        (Direction.SENDRECV, Direction.SENDRECV, Direction.SENDRECV),
        (Direction.SENDRECV, Direction.SENDONLY, Direction.SENDONLY),
        (Direction.SENDRECV, Direction.RECVONLY, Direction.RECVONLY),
        (Direction.SENDRECV, Direction.INACTIVE, Direction.INACTIVE),
        (Direction.SENDONLY, Direction.SENDRECV, Direction.RECVONLY),
        (Direction.SENDONLY, Direction.SENDONLY, Direction.INACTIVE),
        (Direction.RECVONLY, Direction.SENDRECV, Direction.SENDONLY),
        (Direction.RECVONLY, Direction.RECVONLY, Direction.INACTIVE),
        (Direction.INACTIVE, Direction.SENDRECV, Direction.INACTIVE),
    ],
)
def test_answer_direction_rules(offered: Direction, wish: Direction, answered: Direction) -> None:
    assert answer_direction(offered, wish) is answered
    offer = build_offer(address="192.0.2.1", port=4000, direction=offered, session_id=1)
    answer = answer_offer(offer, attrs.evolve(LOCAL, direction=wish), session_id=2)
    assert answer.media[0].direction is answered
    check_answer(offer, answer)


def test_session_level_direction_applies_to_the_offer() -> None:
    offer = offer_text("m=audio 4000 RTP/AVP 0\n", session="a=sendonly\n")
    assert answer_offer(offer, LOCAL, session_id=1).media[0].direction is Direction.RECVONLY


def test_legacy_hold_offer_is_answered_recvonly() -> None:
    offer = parse_sdp(SIPP.replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0"))
    assert is_hold(offer)
    assert answer_offer(offer, LOCAL, session_id=1).media[0].direction is Direction.RECVONLY


@pytest.mark.parametrize(
    ("offered", "supported", "muxed"),
    [(True, True, True), (True, False, False), (False, True, False), (False, False, False)],
)
def test_rtcp_mux_only_when_both_support_it(offered: bool, supported: bool, muxed: bool) -> None:
    offer = build_offer(address="192.0.2.1", port=4000, rtcp_mux=offered, session_id=1)
    answer = answer_offer(offer, attrs.evolve(LOCAL, rtcp_mux=supported), session_id=2)
    assert answer.media[0].rtcp_mux is muxed
    assert negotiated(offer, answer, we_offered=True).rtcp_mux is muxed


def test_answer_copies_timing_and_adds_ptime() -> None:
    offer = attrs.evolve(parse_sdp(SIPP), timings=[Timing(3000000000, 3000003600)])
    answer = answer_offer(offer, attrs.evolve(LOCAL, ptime=20), session_id=1)
    assert answer.timings == offer.timings
    assert answer.media[0].ptime == 20


def test_single_codec_answer() -> None:
    local = attrs.evolve(LOCAL, single_codec=True)
    (audio,) = answer_offer(parse_sdp(SOFTPHONE), local, session_id=1).media
    assert audio.payload_types == (8, 102)


def test_answer_fmtp_ours_else_offered() -> None:
    offer = offer_text("m=audio 4000 RTP/AVP 18\na=fmtp:18 annexb=no\n")
    g729 = Codec("G729", 8000, 18)
    (audio,) = answer_offer(offer, attrs.evolve(LOCAL, codecs=[g729]), session_id=1).media
    assert audio.fmtp(18) == "annexb=no"
    ours = attrs.evolve(g729, fmtp="annexb=yes")
    (audio,) = answer_offer(offer, attrs.evolve(LOCAL, codecs=[ours]), session_id=1).media
    assert audio.fmtp(18) == "annexb=yes"


def test_re_answer_keeps_origin_and_bumps_version_only_on_change() -> None:
    offer = parse_sdp(SIPP)
    first = answer_offer(offer, LOCAL, session_id=77, session_version=3)
    assert answer_offer(offer, LOCAL, previous=first) == first
    held = answer_offer(hold_offer(offer), LOCAL, previous=first)
    assert held.origin == attrs.evolve(first.origin, session_version=4)
    assert held.media[0].direction is Direction.RECVONLY


def test_local_capabilities_validate_ports() -> None:
    with pytest.raises(SdpError):
        LocalCapabilities(address="10.0.0.2", ports={"audio": 0})
    assert LOCAL.ports["audio"] == 50000


def test_codec_of_and_static_table() -> None:
    audio = parse_sdp(SOFTPHONE).media[0]
    assert codec_of(audio, 96) == Codec("opus", 48000, 96, channels=2, fmtp="useinbandfec=1")
    assert codec_of(audio, 0) == PCMU
    assert codec_of(audio, 3) == STATIC_PAYLOAD_TYPES[3]
    assert codec_of(audio, 97) is None
    assert STATIC_PAYLOAD_TYPES[18].name == "G729"


# --- check_answer / negotiated -----------------------------------------------------------------


def test_negotiated_as_offerer_and_as_answerer() -> None:
    offer = build_offer(address="192.0.2.1", port=40000, session_id=1)
    answer = answer_offer(offer, attrs.evolve(LOCAL, codecs=[PCMA, TELEPHONE_EVENT]), session_id=2)
    ours = negotiated(offer, answer, we_offered=True)
    assert (ours.remote_address, ours.remote_port) == ("10.0.0.2", 50000)
    assert (ours.remote_rtcp_address, ours.remote_rtcp_port) == ("10.0.0.2", 50001)
    assert ours.local_port == 40000
    assert (ours.payload_type, ours.codec.name, ours.telephone_event_pt) == (8, "PCMA", 101)
    assert ours.direction is Direction.SENDRECV
    assert (ours.index, ours.media, ours.rtcp_mux) == (0, "audio", False)
    theirs = negotiated(offer, answer, we_offered=False)
    assert (theirs.remote_address, theirs.remote_port, theirs.local_port) == (
        "192.0.2.1",
        40000,
        50000,
    )


def test_negotiated_uses_the_peers_payload_numbers() -> None:
    offer = build_offer(address="192.0.2.1", port=40000, session_id=1)
    answer = offer_text(
        "m=audio 6000 RTP/AVP 8 100\n"
        "a=rtpmap:100 telephone-event/8000\n"
        "a=rtcp:7000 IN IP4 192.0.2.99\n"
    )
    result = negotiated(offer, answer, we_offered=True)
    assert (result.payload_type, result.telephone_event_pt) == (8, 100)
    assert (result.remote_rtcp_address, result.remote_rtcp_port) == ("192.0.2.99", 7000)
    # Reversed roles: we answered with 100, so we send events with the offer's 101.
    assert negotiated(offer, answer, we_offered=False).telephone_event_pt == 101


def test_negotiated_first_answer_codec_skips_comfort_noise_and_events() -> None:
    offer = offer_text("m=audio 4000 RTP/AVP 13 101 0 8\na=rtpmap:101 telephone-event/8000\n")
    answer = offer_text("m=audio 6000 RTP/AVP 13 101 8 0\na=rtpmap:101 telephone-event/8000\n")
    result = negotiated(offer, answer, we_offered=True)
    assert (result.payload_type, result.codec) == (8, PCMA)


def test_negotiated_direction_for_us() -> None:
    offer = build_offer(address="192.0.2.1", port=40000, session_id=1)
    answer = answer_offer(offer, attrs.evolve(LOCAL, direction=Direction.RECVONLY), session_id=2)
    assert negotiated(offer, answer, we_offered=True).direction is Direction.SENDONLY
    assert negotiated(offer, answer, we_offered=False).direction is Direction.RECVONLY
    legacy = attrs.evolve(answer, connection=attrs.evolve(answer.connection, address="0.0.0.0"))
    held = attrs.evolve(legacy, media=[answer.media[0].with_direction(Direction.SENDRECV)])
    assert negotiated(offer, held, we_offered=True).direction is Direction.RECVONLY


def test_negotiated_rtcp_mux_uses_the_rtp_port() -> None:
    offer = build_offer(address="192.0.2.1", port=40000, rtcp_mux=True, session_id=1)
    answer = answer_offer(offer, LOCAL, session_id=2)
    result = negotiated(offer, answer, we_offered=True)
    assert (result.remote_rtcp_address, result.remote_rtcp_port) == ("10.0.0.2", 50000)


@pytest.mark.parametrize(
    ("offer_media", "answer_media", "problem"),
    [
        ("m=audio 4000 RTP/AVP 0\n", "m=audio 6000 RTP/AVP 0\nm=video 0 RTP/AVP 31\n", "m= lines"),
        ("m=audio 4000 RTP/AVP 0\n", "m=video 6000 RTP/AVP 0\n", "'video'"),
        ("m=audio 4000 RTP/AVP 0\n", "m=audio 6000 RTP/AVP 8\n", "no codec from the offer"),
        (
            "m=audio 4000 RTP/AVP 0\n",
            "m=audio 6000 RTP/AVP 97\na=rtpmap:97 PCMU/16000\n",
            "no codec",
        ),
        ("m=audio 4000 RTP/AVP 0\n", "m=audio 6000 RTP/SAVP 0\n", "RTP/SAVP"),
        ("m=audio 0 RTP/AVP 0\n", "m=audio 6000 RTP/AVP 0\n", "disabled"),
        (
            "m=audio 4000 RTP/AVP 0\na=sendonly\n",
            "m=audio 6000 RTP/AVP 0\n",
            "sendrecv does not answer sendonly",
        ),
        (
            "m=audio 4000 RTP/AVP 0\na=recvonly\n",
            "m=audio 6000 RTP/AVP 0\na=recvonly\n",
            "recvonly",
        ),
        (
            "m=audio 4000 RTP/AVP 0\na=inactive\n",
            "m=audio 6000 RTP/AVP 0\na=sendonly\n",
            "inactive",
        ),
        ("m=image 4000 udptl t38\n", "m=image 6000 udptl t37\n", "no format"),
    ],
)
def test_answers_that_do_not_fit_the_offer(
    offer_media: str, answer_media: str, problem: str
) -> None:
    with pytest.raises(OfferAnswerError, match=problem) as info:
        check_answer(offer_text(offer_media), offer_text(answer_media))
    assert info.value.status == 488
    with pytest.raises(OfferAnswerError):
        negotiated(offer_text(offer_media), offer_text(answer_media), we_offered=True)


def test_answer_may_add_formats_and_rename_dynamic_ones() -> None:
    offer = offer_text("m=audio 4000 RTP/AVP 0 96\na=rtpmap:96 opus/48000/2\n")
    answer = offer_text("m=audio 6000 RTP/AVP 97 0 9\na=rtpmap:97 OPUS/48000/2\n")
    check_answer(offer, answer)
    result = negotiated(offer, answer, we_offered=True)
    assert (result.payload_type, result.codec.name) == (97, "OPUS")


def test_negotiated_errors_without_an_accepted_audio_stream() -> None:
    offer = offer_text("m=audio 4000 RTP/AVP 0\nm=video 5000 RTP/AVP 31\n")
    answer = offer_text("m=audio 0 RTP/AVP 0\nm=video 6000 RTP/AVP 31\n")
    with pytest.raises(OfferAnswerError, match="no audio stream"):
        negotiated(offer, answer, we_offered=True)
    assert negotiated(offer, answer, we_offered=True, media_type="video").index == 1
    only_events = offer_text("m=audio 4000 RTP/AVP 101\na=rtpmap:101 telephone-event/8000\n")
    with pytest.raises(OfferAnswerError, match="no codec in common"):
        negotiated(only_events, only_events, we_offered=True)


def test_rtp_port_65535_without_rtcp_information() -> None:
    offer = offer_text("m=audio 4000 RTP/AVP 0\n")
    answer = offer_text("m=audio 65535 RTP/AVP 0\n")
    with pytest.raises(OfferAnswerError, match="RTCP"):
        negotiated(offer, answer, we_offered=True)


# --- hold / resume -----------------------------------------------------------------------------


def test_hold_and_resume_versions() -> None:
    offer = build_offer(address="192.0.2.1", port=4000, session_id=9, session_version=5)
    held = hold_offer(offer)
    assert held.media[0].direction is Direction.SENDONLY
    assert held.origin.session_version == 6
    assert is_hold(held)
    assert hold_offer(held) == held  # nothing changed: same version
    resumed = resume_offer(held)
    assert resumed.media[0].direction is Direction.SENDRECV
    assert resumed.origin.session_version == 7
    assert not is_hold(resumed)
    assert resumed.origin.session_id == offer.origin.session_id


def test_hold_when_the_peer_already_holds_us_is_inactive() -> None:
    ours = build_offer(address="192.0.2.1", port=4000, session_id=9)
    their_hold = answer_offer(ours, attrs.evolve(LOCAL, direction=Direction.SENDONLY), session_id=2)
    assert their_hold.media[0].direction is Direction.SENDONLY
    assert hold_offer(ours, their_hold).media[0].direction is Direction.INACTIVE
    normal = answer_offer(ours, LOCAL, session_id=2)
    assert hold_offer(ours, normal).media[0].direction is Direction.SENDONLY


def test_hold_leaves_rejected_streams_alone() -> None:
    sdp = offer_text("m=audio 4000 RTP/AVP 0\nm=video 0 RTP/AVP 31\n")
    held = hold_offer(sdp)
    assert held.media[1] == sdp.media[1]
    assert held.media[0].direction is Direction.SENDONLY


def test_is_hold() -> None:
    assert not is_hold(parse_sdp(SIPP))
    assert is_hold(offer_text("m=audio 4000 RTP/AVP 0\na=inactive\n"))
    assert is_hold(offer_text("m=audio 4000 RTP/AVP 0\n", session="a=sendonly\n"))
    assert not is_hold(offer_text("m=audio 4000 RTP/AVP 0\na=recvonly\n"))
    assert not is_hold(parse_sdp(WEBRTC))  # ICE 0.0.0.0 is not hold
    assert not is_hold(offer_text("m=audio 0 RTP/AVP 0\n"))  # no active stream


def test_next_version() -> None:
    sdp = parse_sdp(SIPP)
    assert next_version(None, sdp) is sdp
    assert next_version(sdp, sdp) is sdp
    renamed = attrs.evolve(sdp, origin=attrs.evolve(sdp.origin, username="other"))
    assert next_version(sdp, renamed) is sdp  # the o= line itself is not content
    changed = attrs.evolve(sdp, attributes=[Attribute("tool", "x")])
    assert next_version(sdp, changed).origin.session_version == sdp.origin.session_version + 1


# --- properties --------------------------------------------------------------------------------

_codec_lists = st.lists(
    st.sampled_from(
        [PCMU, PCMA, TELEPHONE_EVENT, Codec("G722", 8000, 9), Codec("opus", 48000, 111, channels=2)]
    ),
    min_size=1,
    max_size=4,
    unique=True,
)


@given(audio_offers(), _codec_lists, st.sampled_from(Direction), st.booleans(), st.booleans())
@settings(max_examples=150)
def test_any_answer_we_build_fits_its_offer(
    offer: SessionDescription, codecs: list[Codec], wish: Direction, mux: bool, single: bool
) -> None:
    local = LocalCapabilities(
        address="10.0.0.2",
        ports={"audio": 50000},
        codecs=codecs,
        direction=wish,
        rtcp_mux=mux,
        single_codec=single,
    )
    try:
        answer = answer_offer(offer, local, session_id=1)
    except OfferAnswerError:
        offered = {
            (c.name.casefold(), c.clock_rate)
            for pt in offer.media[0].payload_types
            if (c := codec_of(offer.media[0], pt))
        }
        ours = {(c.name.casefold(), c.clock_rate) for c in codecs if not c.is_telephone_event}
        assert not offered & ours
        return
    check_answer(offer, answer)
    assert parse_sdp(bytes(answer)) == answer
    as_offerer = negotiated(offer, answer, we_offered=True)
    as_answerer = negotiated(offer, answer, we_offered=False)
    for result in (as_offerer, as_answerer):
        assert any(result.codec.matches(c) for c in codecs)
        assert result.rtcp_mux == (mux and offer.media[0].rtcp_mux)
    # Each side only gets what it asked for, and one side sends what the other receives.
    assert as_answerer.direction.intersect(wish) is as_answerer.direction
    offered = offer.declared_direction(offer.media[0])
    assert as_offerer.direction.intersect(offered) is as_offerer.direction
    assert as_offerer.direction is as_answerer.direction.reversed()


def test_unreadable_offered_formats_cost_only_themselves() -> None:
    offer = offer_text(
        "m=audio 4000 RTP/AVP 96 x 0 97\na=rtpmap:96 opus/fast/2\na=rtpmap:97 speex/16000/mono\n"
    )
    assert answer_offer(offer, LOCAL, session_id=1).media[0].payload_types == (0,)
    # Checking an answer is strict, though: the same junk there is an error.
    with pytest.raises(SdpError):
        check_answer(offer, offer)


def test_telephone_event_follows_the_rate_of_the_chosen_codec() -> None:
    offer = offer_text(
        "m=audio 4000 RTP/AVP 111 0 110 101\n"
        "a=rtpmap:111 opus/48000/2\n"
        "a=rtpmap:110 telephone-event/48000\n"
        "a=rtpmap:101 telephone-event/8000\n"
    )
    event48 = Codec("telephone-event", 48000, 110)
    opus = Codec("opus", 48000, 111, channels=2)
    both = attrs.evolve(LOCAL, codecs=[PCMU, TELEPHONE_EVENT, event48])
    assert answer_offer(offer, both, session_id=1).media[0].payload_types == (0, 101)
    with_opus = attrs.evolve(both, codecs=[opus, *both.codecs])
    assert answer_offer(offer, with_opus, session_id=1).media[0].payload_types == (111, 0, 110, 101)
    result = negotiated(offer, answer_offer(offer, with_opus, session_id=1), we_offered=True)
    assert (result.payload_type, result.telephone_event_pt) == (111, 110)


def test_offers_codec_checks_active_audio_streams_only() -> None:
    sipp, softphone = parse_sdp(SIPP), parse_sdp(SOFTPHONE)
    assert offers_codec(sipp, PCMU) and not offers_codec(sipp, PCMA)
    assert offers_codec(softphone, PCMA) and offers_codec(softphone, PCMU)
    assert not offers_codec(None, PCMU)
    # A rejected stream (port 0) offers nothing.
    rejected = attrs.evolve(sipp, media=[attrs.evolve(sipp.media[0], port=0)])
    assert not offers_codec(rejected, PCMU)
