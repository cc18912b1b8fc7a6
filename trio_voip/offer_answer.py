"""The SDP offer/answer model (RFC 3264) for plain RTP audio, as pure functions on SDP values.

- :func:`build_offer` writes our offer; :func:`answer_offer` answers a remote offer from our
  :class:`LocalCapabilities`; :func:`negotiated` checks an answer against its offer and sums up
  what to send where (:class:`NegotiatedMedia`).
- :func:`hold_offer` / :func:`resume_offer` turn our last SDP into a re-offer, and
  :func:`next_version` keeps the ``o=`` line right across a session (RFC 3264 section 8: same
  origin, version +1 when anything changed, unchanged otherwise).

Choices: the answer lists common codecs in the *offerer's* order, as RFC 3264 6.1 recommends
(the offerer ranked them; we are the one adapting), and keeps the offer's payload type numbers.
Only the first acceptable stream of each media type is accepted; later ones are rejected, since
we run one RTP session per media type. ``telephone-event`` is answered only when it was offered
at a rate we support, with the events both sides know.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType

import attrs

from .errors import OfferAnswerError, SdpError, TrioVoipError
from .sdp import (
    Attribute,
    Connection,
    Direction,
    MediaDescription,
    Origin,
    RtpMap,
    SessionDescription,
)

__all__ = [
    "offers_codec",
    "DEFAULT_CODECS",
    "PCMA",
    "PCMU",
    "STATIC_PAYLOAD_TYPES",
    "TELEPHONE_EVENT",
    "Codec",
    "LocalCapabilities",
    "NegotiatedMedia",
    "answer_direction",
    "answer_offer",
    "build_offer",
    "check_answer",
    "codec_of",
    "hold_offer",
    "is_hold",
    "negotiated",
    "next_version",
    "resume_offer",
]

_FIRST_DYNAMIC_PT = 96
_TELEPHONE_EVENT = "telephone-event"
# RFC 4733 2.4.1: no fmtp means events 0-15 (the DTMF digits).
_DEFAULT_EVENTS = frozenset(range(16))
_EVENT_RANGE = re.compile(r"([0-9]{1,3})(?:-([0-9]{1,3}))?")


@attrs.frozen
class Codec:
    """An RTP payload format: encoding name, clock rate, channels and fmtp parameters.

    ``payload_type`` is the static number (< 96), or the number we prefer when we offer a
    dynamic format (which the offer's numbering overrides when we answer).
    """

    name: str
    clock_rate: int
    payload_type: int | None = None
    channels: int = 1
    fmtp: str | None = None

    def matches(self, other: Codec) -> bool:
        """Same format: encoding names compare case-insensitively (RFC 4855 3)."""
        return (
            self.name.casefold() == other.name.casefold()
            and self.clock_rate == other.clock_rate
            and self.channels == other.channels
        )

    @property
    def is_telephone_event(self) -> bool:
        return self.name.casefold() == _TELEPHONE_EVENT

    def rtpmap(self, payload_type: int) -> RtpMap:
        channels = None if self.channels == 1 else str(self.channels)
        return RtpMap(payload_type, self.name, self.clock_rate, channels)


PCMU = Codec("PCMU", 8000, 0)
PCMA = Codec("PCMA", 8000, 8)
TELEPHONE_EVENT = Codec(_TELEPHONE_EVENT, 8000, 101, fmtp="0-16")
DEFAULT_CODECS: tuple[Codec, ...] = (PCMU, PCMA, TELEPHONE_EVENT)

# RFC 3551 tables 4 and 5: formats usable without an rtpmap line.
STATIC_PAYLOAD_TYPES: Mapping[int, Codec] = MappingProxyType(
    {
        codec.payload_type: codec
        for codec in (
            PCMU,
            Codec("GSM", 8000, 3),
            Codec("G723", 8000, 4),
            Codec("DVI4", 8000, 5),
            Codec("DVI4", 16000, 6),
            Codec("LPC", 8000, 7),
            PCMA,
            Codec("G722", 8000, 9),
            Codec("L16", 44100, 10, channels=2),
            Codec("L16", 44100, 11),
            Codec("QCELP", 8000, 12),
            Codec("CN", 8000, 13),
            Codec("MPA", 90000, 14),
            Codec("G728", 8000, 15),
            Codec("DVI4", 11025, 16),
            Codec("DVI4", 22050, 17),
            Codec("G729", 8000, 18),
            Codec("CelB", 90000, 25),
            Codec("JPEG", 90000, 26),
            Codec("nv", 90000, 28),
            Codec("H261", 90000, 31),
            Codec("MPV", 90000, 32),
            Codec("MP2T", 90000, 33),
            Codec("H263", 90000, 34),
        )
        if codec.payload_type is not None
    }
)


def _is_rtp(media: MediaDescription) -> bool:
    return "RTP/" in media.proto


def codec_of(media: MediaDescription, payload_type: int) -> Codec | None:
    """The codec ``payload_type`` means in ``media``: its rtpmap, else the static table."""
    rtpmap = media.rtpmap(payload_type)
    fmtp = media.fmtp(payload_type)
    if rtpmap is not None:
        return Codec(rtpmap.encoding_name, rtpmap.clock_rate, payload_type, rtpmap.channels, fmtp)
    static = STATIC_PAYLOAD_TYPES.get(payload_type)
    return None if static is None else attrs.evolve(static, fmtp=fmtp)


def offers_codec(offer: SessionDescription | None, codec: Codec) -> bool:
    """Whether ``offer`` lists ``codec`` on an active audio stream: what a relay that does not
    transcode checks before joining two legs."""
    if offer is None:
        return False
    for media in offer.media:
        if media.media != "audio" or media.port == 0:
            continue
        for fmt in media.formats:
            if not (fmt.isascii() and fmt.isdigit() and int(fmt) <= 127):
                continue
            try:
                offered = codec_of(media, int(fmt))
            except TrioVoipError:  # a broken rtpmap costs that format only
                continue
            if offered is not None and offered.matches(codec):
                return True
    return False


def _codecs(media: MediaDescription) -> list[tuple[int, Codec | None]]:
    return [(pt, codec_of(media, pt)) for pt in media.payload_types]


def _readable_codecs(media: MediaDescription) -> list[tuple[int, Codec]]:
    """The formats of an offer we can make sense of; one broken rtpmap (or a format that is
    not a number) should cost that format, not the call."""
    codecs = []
    for fmt in media.formats:
        if not (len(fmt) <= 3 and fmt.isascii() and fmt.isdigit() and int(fmt) <= 127):
            continue
        try:
            codec = codec_of(media, int(fmt))
        except SdpError:
            continue
        if codec is not None:
            codecs.append((int(fmt), codec))
    return codecs


def _events(fmtp: str | None) -> frozenset[int]:
    """The event numbers of a telephone-event fmtp such as ``0-15,66,70-72``."""
    if fmtp is None:
        return _DEFAULT_EVENTS
    events: set[int] = set()
    for item in fmtp.replace(" ", "").split(","):
        match = _EVENT_RANGE.fullmatch(item)
        if match is None:
            return frozenset()  # malformed: treat as "no events we understand"
        first = int(match[1])
        last = first if match[2] is None else int(match[2])
        if first > last or last > 255:
            return frozenset()
        events.update(range(first, last + 1))
    return frozenset(events)


def _format_events(events: Iterable[int]) -> str:
    ranges: list[list[int]] = []
    for event in sorted(events):
        if ranges and ranges[-1][1] == event - 1:
            ranges[-1][1] = event
        else:
            ranges.append([event, event])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in ranges)


def answer_direction(offered: Direction, wish: Direction) -> Direction:
    """RFC 3264 6.1: the answer may only do the reverse of what the offer allows, narrowed to
    what we want (sendonly -> recvonly, recvonly -> sendonly, inactive -> inactive, sendrecv ->
    our wish)."""
    return offered.reversed().intersect(wish)


def next_version(
    previous: SessionDescription | None, candidate: SessionDescription
) -> SessionDescription:
    """``candidate`` as the successor of ``previous`` in one session (RFC 3264 section 8).

    The ``o=`` line stays ``previous``'s; its version goes up by one if anything else changed
    and stays the same if nothing did. With no ``previous``, ``candidate`` is returned as is.
    """
    if previous is None:
        return candidate
    same_origin = attrs.evolve(candidate, origin=previous.origin)
    if same_origin == previous:
        return previous
    return attrs.evolve(same_origin, origin=previous.origin.next_version())


def _origin_for(
    previous: SessionDescription | None,
    session_id: int | str | None,
    session_version: int | None,
    username: str,
    address: str,
) -> Origin:
    if previous is not None:
        if session_id is not None or session_version is not None:
            raise TypeError("pass previous or session_id/session_version, not both")
        return previous.origin
    if session_id is None:
        raise TypeError("session_id is required for the first SDP of a session")
    connection = Connection.for_address(address)
    return Origin(
        username,
        str(session_id),
        session_version or 0,
        connection.nettype,
        connection.addrtype,
        address,
    )


def _payload_numbers(codecs: Sequence[Codec]) -> list[int]:
    """Payload type numbers for our offer: static ones as they are, dynamic ones as preferred
    when free, else the lowest free number from 96."""
    numbers: list[int | None] = []
    for codec in codecs:
        number = codec.payload_type
        if number is None:
            # A static format named without its number, e.g. Codec("G722", 8000).
            number = next((pt for pt, s in STATIC_PAYLOAD_TYPES.items() if s.matches(codec)), None)
        numbers.append(number if number is not None and number not in numbers else None)
    free = (pt for pt in range(_FIRST_DYNAMIC_PT, 128) if pt not in numbers)
    try:
        return [pt if pt is not None else next(free) for pt in numbers]
    except StopIteration:
        raise SdpError("more than 32 dynamic payload formats") from None


def _codec_attributes(payload_type: int, codec: Codec) -> list[Attribute]:
    attributes = [codec.rtpmap(payload_type).attribute()]
    if codec.fmtp is not None:
        attributes.append(Attribute("fmtp", f"{payload_type} {codec.fmtp}"))
    return attributes


def build_offer(
    *,
    address: str,
    port: int,
    codecs: Sequence[Codec] = DEFAULT_CODECS,
    direction: Direction = Direction.SENDRECV,
    rtcp_mux: bool = False,
    ptime: int | None = None,
    session_id: int | str | None = None,
    session_version: int | None = None,
    previous: SessionDescription | None = None,
    username: str = "-",
    proto: str = "RTP/AVP",
) -> SessionDescription:
    """Our offer: one audio stream at ``address``:``port`` listing ``codecs`` in order.

    For a new session give ``session_id`` (and optionally ``session_version``, default 0); for
    a re-offer give ``previous`` (our last SDP) and the ``o=`` line continues from it.
    """
    if not codecs:
        raise SdpError("an offer needs at least one codec")
    origin = _origin_for(previous, session_id, session_version, username, address)
    numbers = _payload_numbers(codecs)
    attributes: list[Attribute] = []
    for number, codec in zip(numbers, codecs, strict=True):
        attributes.extend(_codec_attributes(number, codec))
    if ptime is not None:
        attributes.append(Attribute("ptime", str(ptime)))
    attributes.append(Attribute(direction.value))
    if rtcp_mux:
        attributes.append(Attribute("rtcp-mux"))
    media = MediaDescription("audio", port, proto, [str(n) for n in numbers], attributes=attributes)
    offer = SessionDescription(
        origin=origin, connection=Connection.for_address(address), media=[media]
    )
    return next_version(previous, offer)


def _frozen_ports(ports: Mapping[str, int]) -> Mapping[str, int]:
    return MappingProxyType(dict(ports))


def _codec_tuple(codecs: Iterable[Codec]) -> tuple[Codec, ...]:
    return tuple(codecs)


def _str_tuple(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(items)


def _check_ports(_instance: object, _attribute: object, value: Mapping[str, int]) -> None:
    for media, port in value.items():
        if not isinstance(port, int) or not 0 < port <= 65535:
            raise SdpError(f"invalid local port for {media}: {port!r}")


@attrs.frozen
class LocalCapabilities:
    """What we can do, for answering offers.

    ``ports`` maps media type to our RTP port for it; other media types are rejected.
    ``direction`` is what we want (sendonly while we hold the call; change it with
    :func:`attrs.evolve`). ``single_codec`` answers one codec (plus telephone-event) instead
    of every common one, for peers that switch codecs mid-call and a relay that cannot follow.
    """

    address: str
    ports: Mapping[str, int] = attrs.field(
        converter=_frozen_ports, validator=_check_ports, hash=False
    )
    codecs: tuple[Codec, ...] = attrs.field(default=DEFAULT_CODECS, converter=_codec_tuple)
    rtcp_mux: bool = True
    direction: Direction = Direction.SENDRECV
    protos: tuple[str, ...] = attrs.field(default=("RTP/AVP",), converter=_str_tuple)
    ptime: int | None = None
    single_codec: bool = False
    username: str = "-"


def _rejected(media: MediaDescription) -> MediaDescription:
    # RFC 3264 6: port 0, formats are ignored but at least one must be present.
    return MediaDescription(media.media, 0, media.proto, media.formats)


def _answer_formats(offered: MediaDescription, local: LocalCapabilities) -> list[tuple[int, Codec]]:
    chosen: list[tuple[int, Codec]] = []
    events: list[tuple[int, Codec]] = []
    for pt, codec in _readable_codecs(offered):
        mine = next((c for c in local.codecs if c.matches(codec)), None)
        if mine is None:
            continue
        if codec.is_telephone_event:
            common = _events(codec.fmtp) & _events(mine.fmtp)
            if common:
                events.append((pt, attrs.evolve(codec, fmtp=_format_events(common))))
        elif not (local.single_codec and chosen):
            fmtp = mine.fmtp if mine.fmtp is not None else codec.fmtp
            chosen.append((pt, attrs.evolve(codec, fmtp=fmtp)))
    if not chosen:
        return []  # telephone-event alone carries no audio
    # Events run at the clock rate of the audio they go with (RFC 4733 2.1): one event
    # format per rate among the chosen codecs.
    by_rate: dict[int, tuple[int, Codec]] = {}
    rates = {codec.clock_rate for _, codec in chosen}
    for pt, event in events:
        if event.clock_rate in rates:
            by_rate.setdefault(event.clock_rate, (pt, event))
    return [*chosen, *by_rate.values()]


def _answer_stream(
    offer: SessionDescription,
    offered: MediaDescription,
    local: LocalCapabilities,
    taken: set[str],
) -> MediaDescription:
    port = local.ports.get(offered.media)
    if (
        offered.is_rejected
        or port is None
        or offered.media in taken
        or offered.proto not in local.protos
        or not _is_rtp(offered)
    ):
        return _rejected(offered)
    formats = _answer_formats(offered, local)
    if not formats:
        return _rejected(offered)
    taken.add(offered.media)
    attributes: list[Attribute] = []
    for pt, codec in formats:
        attributes.extend(_codec_attributes(pt, codec))
    if local.ptime is not None:
        attributes.append(Attribute("ptime", str(local.ptime)))
    direction = answer_direction(offer.effective_direction(offered), local.direction)
    attributes.append(Attribute(direction.value))
    if offered.rtcp_mux and local.rtcp_mux:
        attributes.append(Attribute("rtcp-mux"))
    return MediaDescription(
        offered.media, port, offered.proto, [str(pt) for pt, _ in formats], attributes=attributes
    )


def answer_offer(
    offer: SessionDescription,
    local: LocalCapabilities,
    *,
    session_id: int | str | None = None,
    session_version: int | None = None,
    previous: SessionDescription | None = None,
) -> SessionDescription:
    """Our answer to ``offer``: one m= line per offered one, in order; streams we cannot use
    are rejected with port 0. ``session_id``/``previous`` work as in :func:`build_offer`.

    Raises :class:`OfferAnswerError` (status 488) if no stream could be accepted.
    """
    origin = _origin_for(previous, session_id, session_version, local.username, local.address)
    taken: set[str] = set()
    media = [_answer_stream(offer, offered, local, taken) for offered in offer.media]
    if all(m.is_rejected for m in media):
        raise OfferAnswerError("no acceptable media stream in the offer")
    answer = SessionDescription(
        origin=origin,
        connection=Connection.for_address(local.address),
        # RFC 3264 6: the t= line of the answer equals the offer's.
        timings=offer.timings,
        media=media,
    )
    return next_version(previous, answer)


def _in_offer(codec: Codec | None, pt: int, offered: list[tuple[int, Codec | None]]) -> int | None:
    """The offer's payload type for the answer's ``pt``/``codec`` (matched by format, or by
    number when the answer does not say what the number means)."""
    for offered_pt, offered_codec in offered:
        if codec is None or offered_codec is None:
            if offered_pt == pt:
                return offered_pt
        elif codec.matches(offered_codec):
            return offered_pt
    return None


def check_answer(offer: SessionDescription, answer: SessionDescription) -> None:
    """Raise :class:`OfferAnswerError` unless ``answer`` is a valid answer to ``offer``."""
    if len(answer.media) != len(offer.media):
        raise OfferAnswerError(
            f"answer has {len(answer.media)} m= lines, the offer has {len(offer.media)}"
        )
    for number, (offered, answered) in enumerate(
        zip(offer.media, answer.media, strict=True), start=1
    ):
        if answered.media != offered.media:
            raise OfferAnswerError(
                f"m= line {number}: answer has {answered.media!r}, offer has {offered.media!r}"
            )
        if answered.is_rejected:
            continue
        if offered.is_rejected:
            raise OfferAnswerError(f"m= line {number}: answer accepts a stream the offer disabled")
        if answered.proto != offered.proto:
            raise OfferAnswerError(
                f"m= line {number}: answer uses {answered.proto}, offer {offered.proto}"
            )
        allowed = offer.declared_direction(offered).reversed()
        direction = answer.declared_direction(answered)
        if direction.intersect(allowed) != direction:
            raise OfferAnswerError(
                f"m= line {number}: {direction.value} does not answer "
                f"{offer.declared_direction(offered).value}"
            )
        if _is_rtp(offered):
            offered_codecs = _codecs(offered)
            if all(_in_offer(c, pt, offered_codecs) is None for pt, c in _codecs(answered)):
                raise OfferAnswerError(f"m= line {number}: answer has no codec from the offer")
        elif not set(answered.formats) & set(offered.formats):
            raise OfferAnswerError(f"m= line {number}: answer has no format from the offer")


def is_hold(sdp: SessionDescription) -> bool:
    """True if ``sdp`` asks its peer not to send: every active stream is sendonly or inactive,
    or uses the RFC 2543 ``c=0.0.0.0`` form."""
    active = [m for m in sdp.media if not m.is_rejected]
    return bool(active) and not any(sdp.effective_direction(m).receives for m in active)


def _redirect(local: SessionDescription, direction_of: list[Direction]) -> SessionDescription:
    media = [
        m if m.is_rejected else m.with_direction(direction)
        for m, direction in zip(local.media, direction_of, strict=True)
    ]
    return next_version(local, attrs.evolve(local, media=media))


def hold_offer(
    local: SessionDescription, remote: SessionDescription | None = None
) -> SessionDescription:
    """A re-offer putting the call on hold (RFC 3264 8.4), from our last SDP ``local``.

    Streams become sendonly, or inactive where ``remote`` (the peer's last SDP) already does
    not receive (it holds us too). The version goes up only if something changed.
    """
    directions = []
    for index in range(len(local.media)):
        direction = Direction.SENDONLY
        if (
            remote is not None
            and index < len(remote.media)
            and not remote.effective_direction(remote.media[index]).receives
        ):
            direction = Direction.INACTIVE
        directions.append(direction)
    return _redirect(local, directions)


def resume_offer(local: SessionDescription) -> SessionDescription:
    """A re-offer taking the call off hold: every active stream sendrecv again."""
    return _redirect(local, [Direction.SENDRECV] * len(local.media))


@attrs.frozen
class NegotiatedMedia:
    """The outcome of one offer/answer exchange for one stream, from our side.

    ``payload_type`` and ``telephone_event_pt`` are the numbers to *send* with (the peer's
    numbering; with our answers they equal the offer's). ``direction`` is what we may do:
    ``direction.sends`` means send media, ``direction.receives`` expect it.
    """

    index: int
    media: str
    local_port: int
    remote_address: str
    remote_port: int
    remote_rtcp_address: str
    remote_rtcp_port: int
    payload_type: int
    codec: Codec
    telephone_event_pt: int | None
    direction: Direction
    rtcp_mux: bool


def negotiated(
    offer: SessionDescription,
    answer: SessionDescription,
    *,
    we_offered: bool,
    media_type: str = "audio",
) -> NegotiatedMedia:
    """Check ``answer`` against ``offer`` and sum up the first accepted ``media_type`` stream.

    The codec is the first one in the answer that was also offered (RFC 3264 section 7); comfort
    noise and telephone-event are not candidates. Raises :class:`OfferAnswerError` if the answer
    does not fit the offer or accepted no such stream.
    """
    check_answer(offer, answer)
    ours, theirs = (offer, answer) if we_offered else (answer, offer)
    for index, (offered, answered) in enumerate(zip(offer.media, answer.media, strict=True)):
        if answered.media != media_type or answered.is_rejected or not _is_rtp(answered):
            continue
        local, remote = (offered, answered) if we_offered else (answered, offered)
        offered_codecs = _codecs(offered)
        # (payload type the peer receives with, codec) for each answered format also offered
        common: list[tuple[int, Codec]] = []
        for pt, codec in _codecs(answered):
            offered_pt = None if codec is None else _in_offer(codec, pt, offered_codecs)
            if codec is not None and offered_pt is not None:
                common.append((pt if we_offered else offered_pt, codec))
        media = [
            (pt, c) for pt, c in common if not c.is_telephone_event and c.name.casefold() != "cn"
        ]
        if not media:
            raise OfferAnswerError(f"m= line {index + 1}: no codec in common")
        payload_type, codec = media[0]
        codec = codec_of(remote, payload_type) or codec
        events = [
            pt for pt, c in common if c.is_telephone_event and c.clock_rate == codec.clock_rate
        ]
        connection = theirs.connection_of(remote)
        assert connection is not None  # SessionDescription requires one for active streams
        rtcp_mux = offered.rtcp_mux and answered.rtcp_mux
        rtcp = remote.rtcp
        if rtcp_mux:
            rtcp_address, rtcp_port = connection.host, remote.port
        elif rtcp is not None:
            rtcp_address = connection.host if rtcp.connection is None else rtcp.connection.host
            rtcp_port = rtcp.port
        elif remote.port < 65535:
            rtcp_address, rtcp_port = connection.host, remote.port + 1
        else:
            raise OfferAnswerError(f"m= line {index + 1}: RTP port 65535 leaves no RTCP port")
        direction = ours.declared_direction(local).intersect(
            theirs.effective_direction(remote).reversed()
        )
        return NegotiatedMedia(
            index=index,
            media=media_type,
            local_port=local.port,
            remote_address=connection.host,
            remote_port=remote.port,
            remote_rtcp_address=rtcp_address,
            remote_rtcp_port=rtcp_port,
            payload_type=payload_type,
            codec=codec,
            telephone_event_pt=events[0] if events else None,
            direction=direction,
            rtcp_mux=rtcp_mux,
        )
    raise OfferAnswerError(f"no {media_type} stream was accepted")
