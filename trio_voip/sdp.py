"""SDP (RFC 8866) as frozen values, with a parser and a serialiser.

A :class:`SessionDescription` is immutable: change one with :func:`attrs.evolve` (or the
``with_*`` helpers). ``str(sdp)`` / ``bytes(sdp)`` write CRLF lines in the order of RFC 8866
section 5, and ``parse_sdp(bytes(sdp)) == sdp`` for every valid value.

The parser accepts LF-only line ends and lines in any order *within* a section (some deployed
UAs put ``a=`` before ``c=``), but is strict on structure: ``v=0``, ``o=``, ``s=`` must be the
first three lines, a session needs a ``t=`` line, every line is ``<lowercase letter>=<value>``,
single-instance lines appear once, numbers are numbers. Anything else raises
:class:`~trio_voip.errors.SdpError` naming the line. Unknown type letters are rejected, which
RFC 8866 section 5 allows ("ignore or reject"); we could not put them back in the right place.
Only one ``c=`` line per media description is supported (several are for layered multicast).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Iterator
from typing import Any

import attrs

from .errors import SdpError

__all__ = [
    "Attribute",
    "Bandwidth",
    "Connection",
    "Direction",
    "MediaDescription",
    "Origin",
    "Rtcp",
    "RtpMap",
    "SessionDescription",
    "Timing",
    "parse_sdp",
]

# RFC 8866 section 9 token-char: %x21 / %x23-27 / %x2A-2B / %x2D-2E / %x30-39 / %x41-5A / %x5E-7E
_TOKEN = re.compile(r"[!#-'*+\-.0-9A-Z^-~]+")
# proto = token *("/" token), e.g. RTP/AVP, UDP/TLS/RTP/SAVPF
_PROTO = re.compile(r"[!#-'*+\-.0-9A-Z^-~]+(?:/[!#-'*+\-.0-9A-Z^-~]+)*")
# non-ws-string = 1*(VCHAR / %x80-FF); used for addresses and the o= username
_NON_WS = re.compile(r"[^\x00-\x20\x7f]+")
_DIGITS = re.compile(r"[0-9]+")
_TEXT_FORBIDDEN = re.compile(r"[\x00\r\n]")
# Bounds the size of numbers we convert (64-bit NTP values have 20 digits).
_MAX_DIGITS = 20


def _validator(pattern: re.Pattern[str], what: str) -> Any:
    def check(_instance: object, _attribute: object, value: object) -> None:
        if not isinstance(value, str) or pattern.fullmatch(value) is None:
            raise SdpError(f"invalid {what}: {value!r}")

    return check


def _optional(check: Any) -> Any:
    def optional_check(instance: object, attribute: object, value: object) -> None:
        if value is not None:
            check(instance, attribute, value)

    return optional_check


def _check_text(_instance: object, attribute: Any, value: object) -> None:
    if not isinstance(value, str) or _TEXT_FORBIDDEN.search(value) is not None:
        raise SdpError(f"invalid {attribute.name}: {value!r} (text without NUL, CR or LF)")


def _check_texts(_instance: object, attribute: Any, value: tuple[object, ...]) -> None:
    for item in value:
        _check_text(_instance, attribute, item)


def _int_range(low: int, high: int | None, what: str) -> Any:
    def check(_instance: object, _attribute: object, value: object) -> None:
        if (
            not isinstance(value, int)
            or isinstance(value, bool)
            or value < low
            or (high is not None and value > high)
        ):
            raise SdpError(f"invalid {what}: {value!r}")

    return check


def _fields(value: str) -> list[str]:
    """Space-separated fields, tolerating runs of spaces (str.split() would also split on
    non-ASCII whitespace, which non-ws-string allows)."""
    return [field for field in value.split(" ") if field]


def _strings(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(items)


def _to_int(text: str, what: str, high: int | None = None) -> int:
    if _DIGITS.fullmatch(text) is None or len(text) > _MAX_DIGITS:
        raise SdpError(f"invalid {what}: {text!r}")
    value = int(text)
    if high is not None and value > high:
        raise SdpError(f"invalid {what}: {text!r} (more than {high})")
    return value


class Direction(enum.Enum):
    """Media direction attribute (RFC 8866 6.7, RFC 3264 5.1) from the describing side's view."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    @classmethod
    def from_flags(cls, *, send: bool, receive: bool) -> Direction:
        if send:
            return cls.SENDRECV if receive else cls.SENDONLY
        return cls.RECVONLY if receive else cls.INACTIVE

    @property
    def sends(self) -> bool:
        return self in (Direction.SENDRECV, Direction.SENDONLY)

    @property
    def receives(self) -> bool:
        return self in (Direction.SENDRECV, Direction.RECVONLY)

    def reversed(self) -> Direction:
        """The same stream seen from the other end (sendonly <-> recvonly)."""
        return Direction.from_flags(send=self.receives, receive=self.sends)

    def intersect(self, other: Direction) -> Direction:
        """What both directions allow."""
        return Direction.from_flags(
            send=self.sends and other.sends, receive=self.receives and other.receives
        )


_DIRECTIONS = frozenset(d.value for d in Direction)


@attrs.frozen
class Origin:
    """The ``o=`` line. ``session_id`` is kept as text: we never compute with it, and some UAs
    send ids that are not pure digits. ``session_version`` is a number (RFC 3264 section 8)."""

    username: str = attrs.field(validator=_validator(_NON_WS, "o= username"))
    session_id: str = attrs.field(validator=_validator(_NON_WS, "o= sess-id"))
    session_version: int = attrs.field(
        validator=_int_range(0, 10**_MAX_DIGITS - 1, "o= sess-version")
    )
    nettype: str = attrs.field(validator=_validator(_TOKEN, "o= nettype"))
    addrtype: str = attrs.field(validator=_validator(_TOKEN, "o= addrtype"))
    address: str = attrs.field(validator=_validator(_NON_WS, "o= address"))

    def __str__(self) -> str:
        return (
            f"{self.username} {self.session_id} {self.session_version} "
            f"{self.nettype} {self.addrtype} {self.address}"
        )

    def next_version(self) -> Origin:
        return attrs.evolve(self, session_version=self.session_version + 1)


@attrs.frozen
class Connection:
    """A ``c=`` line. ``address`` keeps any multicast ``/ttl/count`` suffix as written."""

    nettype: str = attrs.field(validator=_validator(_TOKEN, "c= nettype"))
    addrtype: str = attrs.field(validator=_validator(_TOKEN, "c= addrtype"))
    address: str = attrs.field(validator=_validator(_NON_WS, "c= address"))

    @classmethod
    def for_address(cls, address: str) -> Connection:
        """``IN IP4 address`` or, for an address with a colon, ``IN IP6 address``."""
        return cls("IN", "IP6" if ":" in address else "IP4", address)

    @property
    def host(self) -> str:
        """The address without a multicast ``/ttl/count`` suffix."""
        return self.address.split("/", 1)[0]

    @property
    def is_null(self) -> bool:
        """``c=IN IP4 0.0.0.0``: RFC 2543 style hold (or an ICE placeholder)."""
        return self.addrtype == "IP4" and self.host == "0.0.0.0"

    def __str__(self) -> str:
        return f"{self.nettype} {self.addrtype} {self.address}"


@attrs.frozen
class Bandwidth:
    """A ``b=<bwtype>:<bandwidth>`` line (kbit/s for AS/CT, bit/s for TIAS)."""

    bwtype: str = attrs.field(validator=_validator(_TOKEN, "b= bwtype"))
    value: int = attrs.field(validator=_int_range(0, 10**_MAX_DIGITS - 1, "b= bandwidth"))

    def __str__(self) -> str:
        return f"{self.bwtype}:{self.value}"


@attrs.frozen
class Timing:
    """A ``t=`` line and the ``r=`` lines (kept as text) that follow it."""

    start: int = attrs.field(default=0, validator=_int_range(0, 10**_MAX_DIGITS - 1, "t= start"))
    stop: int = attrs.field(default=0, validator=_int_range(0, 10**_MAX_DIGITS - 1, "t= stop"))
    repeats: tuple[str, ...] = attrs.field(default=(), converter=_strings, validator=_check_texts)


@attrs.frozen
class Attribute:
    """An ``a=`` line: ``a=name`` (``value`` None) or ``a=name:value`` (value may be empty)."""

    name: str = attrs.field(validator=_validator(_TOKEN, "attribute name"))
    value: str | None = attrs.field(default=None, validator=_optional(_check_text))

    def __str__(self) -> str:
        return self.name if self.value is None else f"{self.name}:{self.value}"


@attrs.frozen
class RtpMap:
    """``a=rtpmap:<payload type> <encoding name>/<clock rate>[/<encoding parameters>]``."""

    payload_type: int = attrs.field(validator=_int_range(0, 127, "payload type"))
    encoding_name: str = attrs.field(validator=_validator(_TOKEN, "encoding name"))
    clock_rate: int = attrs.field(validator=_int_range(1, 10**9, "clock rate"))
    encoding_params: str | None = attrs.field(
        default=None, validator=_optional(_validator(_TOKEN, "encoding parameters"))
    )

    @classmethod
    def parse(cls, value: str) -> RtpMap:
        pt_text, _, encoding = value.strip(" ").partition(" ")
        parts = encoding.strip(" ").split("/")
        if len(parts) not in (2, 3):
            raise SdpError(f"invalid rtpmap: {value!r}")
        return cls(
            _to_int(pt_text, "rtpmap payload type", 127),
            parts[0],
            _to_int(parts[1], "rtpmap clock rate", 10**9),
            parts[2] if len(parts) == 3 else None,
        )

    @property
    def channels(self) -> int:
        """Audio channel count: the encoding parameters, 1 when absent (RFC 8866 6.6)."""
        if self.encoding_params is None:
            return 1
        return _to_int(self.encoding_params, "rtpmap channel count")

    def attribute(self) -> Attribute:
        params = "" if self.encoding_params is None else f"/{self.encoding_params}"
        return Attribute(
            "rtpmap", f"{self.payload_type} {self.encoding_name}/{self.clock_rate}{params}"
        )


@attrs.frozen
class Rtcp:
    """``a=rtcp:<port> [<nettype> <addrtype> <address>]`` (RFC 3605)."""

    port: int = attrs.field(validator=_int_range(0, 65535, "rtcp port"))
    connection: Connection | None = None

    @classmethod
    def parse(cls, value: str) -> Rtcp:
        fields = _fields(value)
        if len(fields) not in (1, 4):
            raise SdpError(f"invalid rtcp attribute: {value!r}")
        port = _to_int(fields[0], "rtcp port", 65535)
        return cls(port, Connection(*fields[1:]) if len(fields) == 4 else None)


def _attributes(items: Iterable[Attribute]) -> tuple[Attribute, ...]:
    return tuple(items)


def _bandwidths(items: Iterable[Bandwidth]) -> tuple[Bandwidth, ...]:
    return tuple(items)


def _timings(items: Iterable[Timing]) -> tuple[Timing, ...]:
    return tuple(items)


class _Attributes:
    """Lookup helpers shared by the session and media levels (which hold ``attributes``)."""

    __slots__ = ()
    attributes: tuple[Attribute, ...]

    def attribute(self, name: str) -> str | None:
        """The value of the first ``a=name`` line (None if absent or valueless)."""
        for attribute in self.attributes:
            if attribute.name == name:
                return attribute.value
        return None

    def attribute_values(self, name: str) -> tuple[str | None, ...]:
        return tuple(a.value for a in self.attributes if a.name == name)

    def has_attribute(self, name: str) -> bool:
        return any(a.name == name for a in self.attributes)

    @property
    def direction(self) -> Direction | None:
        """The direction attribute written at this level, None if there is none."""
        for attribute in self.attributes:
            if attribute.name in _DIRECTIONS and attribute.value is None:
                return Direction(attribute.name)
        return None


def _check_media_formats(
    instance: MediaDescription, _attribute: object, value: tuple[str, ...]
) -> None:
    for fmt in value:
        if not isinstance(fmt, str) or _TOKEN.fullmatch(fmt) is None:
            raise SdpError(f"invalid media format: {fmt!r}")
    # RFC 8866 requires a format; rejected streams (port 0) without one are common enough.
    if not value and instance.port != 0:
        raise SdpError("m= line has no media formats")


@attrs.frozen
class MediaDescription(_Attributes):
    """One ``m=`` section: the m= line, then its i=, c=, b=, k= and a= lines."""

    media: str = attrs.field(validator=_validator(_TOKEN, "media type"))
    port: int = attrs.field(validator=_int_range(0, 65535, "port"))
    proto: str = attrs.field(validator=_validator(_PROTO, "transport protocol"))
    formats: tuple[str, ...] = attrs.field(converter=_strings, validator=_check_media_formats)
    port_count: int | None = attrs.field(
        default=None, validator=_optional(_int_range(1, 65535, "number of ports"))
    )
    title: str | None = attrs.field(default=None, validator=_optional(_check_text))
    connection: Connection | None = None
    bandwidths: tuple[Bandwidth, ...] = attrs.field(default=(), converter=_bandwidths)
    key: str | None = attrs.field(default=None, validator=_optional(_check_text))
    attributes: tuple[Attribute, ...] = attrs.field(default=(), converter=_attributes)

    @property
    def is_rejected(self) -> bool:
        """Port 0: a rejected or disabled stream (RFC 3264 sections 6 and 8.2)."""
        return self.port == 0

    @property
    def payload_types(self) -> tuple[int, ...]:
        """The formats as RTP payload type numbers (only meaningful for RTP protocols)."""
        return tuple(_to_int(fmt, "RTP payload type", 127) for fmt in self.formats)

    def rtpmaps(self) -> dict[int, RtpMap]:
        """All ``a=rtpmap`` lines by payload type (the first wins on duplicates)."""
        maps: dict[int, RtpMap] = {}
        for value in self.attribute_values("rtpmap"):
            if value is None:
                raise SdpError("rtpmap attribute without a value")
            rtpmap = RtpMap.parse(value)
            maps.setdefault(rtpmap.payload_type, rtpmap)
        return maps

    def rtpmap(self, payload_type: int) -> RtpMap | None:
        """The first ``a=rtpmap`` for ``payload_type``; only that line has to be well formed."""
        wanted = str(payload_type)
        for value in self.attribute_values("rtpmap"):
            if value is not None and value.strip(" ").partition(" ")[0] == wanted:
                return RtpMap.parse(value)
        return None

    def fmtp(self, fmt: int | str) -> str | None:
        """The parameters of ``a=fmtp:<fmt> <parameters>``, None if there is no such line."""
        wanted = str(fmt)
        for value in self.attribute_values("fmtp"):
            if value is None:
                continue
            head, _, params = value.partition(" ")
            if head == wanted:
                return params.strip()
        return None

    @property
    def ptime(self) -> int | None:
        """``a=ptime`` in milliseconds (fractions rounded down), None if absent."""
        value = self.attribute("ptime")
        if value is None:
            return None
        whole, _, fraction = value.strip().partition(".")
        if fraction and _DIGITS.fullmatch(fraction) is None:
            raise SdpError(f"invalid ptime: {value!r}")
        return _to_int(whole, "ptime")

    @property
    def rtcp(self) -> Rtcp | None:
        value = self.attribute("rtcp")
        return None if value is None else Rtcp.parse(value)

    @property
    def rtcp_mux(self) -> bool:
        return self.has_attribute("rtcp-mux")

    def with_direction(self, direction: Direction) -> MediaDescription:
        """A copy whose only direction attribute is ``direction`` (where the old one was)."""
        new = Attribute(direction.value)
        attributes: list[Attribute] = []
        for attribute in self.attributes:
            if attribute.name in _DIRECTIONS and attribute.value is None:
                if new not in attributes:
                    attributes.append(new)
            else:
                attributes.append(attribute)
        if new not in attributes:
            attributes.append(new)
        return attrs.evolve(self, attributes=attributes)

    def lines(self) -> Iterator[str]:
        count = "" if self.port_count is None else f"/{self.port_count}"
        formats = "".join(f" {fmt}" for fmt in self.formats)
        yield f"m={self.media} {self.port}{count} {self.proto}{formats}"
        if self.title is not None:
            yield f"i={self.title}"
        if self.connection is not None:
            yield f"c={self.connection}"
        for bandwidth in self.bandwidths:
            yield f"b={bandwidth}"
        if self.key is not None:
            yield f"k={self.key}"
        for attribute in self.attributes:
            yield f"a={attribute}"


def _media_list(items: Iterable[MediaDescription]) -> tuple[MediaDescription, ...]:
    return tuple(items)


def _check_timings(_instance: object, _attribute: object, value: tuple[Timing, ...]) -> None:
    if not value:
        raise SdpError("a session description needs at least one t= line")


@attrs.frozen
class SessionDescription(_Attributes):
    """A whole session description. Field order follows RFC 8866 section 5."""

    origin: Origin
    session_name: str = attrs.field(default="-", validator=_check_text)
    version: int = attrs.field(default=0, validator=_int_range(0, 0, "protocol version (v=)"))
    info: str | None = attrs.field(default=None, validator=_optional(_check_text))
    uri: str | None = attrs.field(default=None, validator=_optional(_check_text))
    emails: tuple[str, ...] = attrs.field(default=(), converter=_strings, validator=_check_texts)
    phones: tuple[str, ...] = attrs.field(default=(), converter=_strings, validator=_check_texts)
    connection: Connection | None = None
    bandwidths: tuple[Bandwidth, ...] = attrs.field(default=(), converter=_bandwidths)
    timings: tuple[Timing, ...] = attrs.field(
        default=(Timing(),), converter=_timings, validator=_check_timings
    )
    time_zones: str | None = attrs.field(default=None, validator=_optional(_check_text))
    key: str | None = attrs.field(default=None, validator=_optional(_check_text))
    attributes: tuple[Attribute, ...] = attrs.field(default=(), converter=_attributes)
    media: tuple[MediaDescription, ...] = attrs.field(default=(), converter=_media_list)

    def __attrs_post_init__(self) -> None:
        if self.connection is None:
            for index, media in enumerate(self.media):
                # RFC 8866 5.7: a c= line at session level or in every media description.
                if media.connection is None and not media.is_rejected:
                    raise SdpError(f"media description {index + 1} has no connection (c=) line")

    def connection_of(self, media: MediaDescription) -> Connection | None:
        """The c= line that applies to ``media`` (its own, else the session's)."""
        return media.connection if media.connection is not None else self.connection

    def declared_direction(self, media: MediaDescription) -> Direction:
        """Direction attribute of ``media``, else of the session, else sendrecv (RFC 3264 5.1)."""
        return media.direction or self.direction or Direction.SENDRECV

    def effective_direction(self, media: MediaDescription) -> Direction:
        """:meth:`declared_direction`, counting RFC 2543 hold (``c=0.0.0.0``) as "do not send
        to me". ICE offers (``a=ice-ufrag``) use 0.0.0.0 as a placeholder, not as hold."""
        direction = self.declared_direction(media)
        connection = self.connection_of(media)
        if (
            connection is not None
            and connection.is_null
            and not media.has_attribute("ice-ufrag")
            and not self.has_attribute("ice-ufrag")
        ):
            return direction.intersect(Direction.SENDONLY)
        return direction

    def lines(self) -> Iterator[str]:
        yield f"v={self.version}"
        yield f"o={self.origin}"
        yield f"s={self.session_name}"
        if self.info is not None:
            yield f"i={self.info}"
        if self.uri is not None:
            yield f"u={self.uri}"
        for email in self.emails:
            yield f"e={email}"
        for phone in self.phones:
            yield f"p={phone}"
        if self.connection is not None:
            yield f"c={self.connection}"
        for bandwidth in self.bandwidths:
            yield f"b={bandwidth}"
        for timing in self.timings:
            yield f"t={timing.start} {timing.stop}"
            for repeat in timing.repeats:
                yield f"r={repeat}"
        if self.time_zones is not None:
            yield f"z={self.time_zones}"
        if self.key is not None:
            yield f"k={self.key}"
        for attribute in self.attributes:
            yield f"a={attribute}"
        for media in self.media:
            yield from media.lines()

    def __str__(self) -> str:
        return "".join(f"{line}\r\n" for line in self.lines())

    def __bytes__(self) -> bytes:
        return str(self).encode("utf-8")


# --- parsing ---------------------------------------------------------------------------------

_SESSION_LETTERS = frozenset("iuepcbtrzkam")
_MEDIA_LETTERS = frozenset("icbkam")
_KNOWN_LETTERS = frozenset("vos") | _SESSION_LETTERS


def _split_lines(data: bytes | bytearray | memoryview | str) -> list[str]:
    if isinstance(data, str):
        text = data
    elif isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw.count(b"\n", 0, exc.start) + 1
            raise SdpError(f"not UTF-8 (bad byte at offset {exc.start})", line=line) from None
    else:
        raise TypeError(f"parse_sdp() takes bytes or str, not {type(data).__name__}")
    lines = text.split("\n")
    # One line end after the last line is normal; tolerate stray blank lines there too.
    while lines and lines[-1] in ("", "\r"):
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _origin(value: str) -> Origin:
    fields = _fields(value)
    if len(fields) != 6:
        raise SdpError(f"o= needs 6 fields, got {len(fields)}")
    username, session_id, version, nettype, addrtype, address = fields
    return Origin(
        username, session_id, _to_int(version, "o= sess-version"), nettype, addrtype, address
    )


def _connection(value: str) -> Connection:
    fields = _fields(value)
    if len(fields) != 3:
        raise SdpError(f"c= needs 3 fields, got {len(fields)}")
    return Connection(*fields)


def _bandwidth(value: str) -> Bandwidth:
    bwtype, colon, amount = value.partition(":")
    if not colon:
        raise SdpError(f"b= needs <bwtype>:<bandwidth>, got {value!r}")
    return Bandwidth(bwtype, _to_int(amount.strip(), "bandwidth"))


def _timing(value: str) -> Timing:
    fields = _fields(value)
    if len(fields) != 2:
        raise SdpError(f"t= needs 2 fields, got {len(fields)}")
    return Timing(_to_int(fields[0], "t= start time"), _to_int(fields[1], "t= stop time"))


def _attribute(value: str) -> Attribute:
    name, colon, attribute_value = value.partition(":")
    return Attribute(name, attribute_value if colon else None)


def _media_fields(value: str) -> dict[str, Any]:
    fields = _fields(value)
    if len(fields) < 3:
        raise SdpError("m= needs <media> <port> <proto> <fmt>...")
    media, port_text, proto = fields[:3]
    port_text, slash, count_text = port_text.partition("/")
    port = _to_int(port_text, "m= port", 65535)
    port_count = _to_int(count_text, "m= number of ports") if slash else None
    # Built once here so a bad m= line is reported on its own line, not at the section's end.
    MediaDescription(media, port, proto, fields[3:], port_count)
    return {
        "media": media,
        "port": port,
        "port_count": port_count,
        "proto": proto,
        "formats": fields[3:],
        "attributes": [],
        "bandwidths": [],
    }


class _Parser:
    """Collects one section's fields at a time; structure errors name the current line."""

    def __init__(self) -> None:
        self.session: dict[str, Any] = {
            "emails": [],
            "phones": [],
            "bandwidths": [],
            "timings": [],
            "attributes": [],
        }
        self.media: list[MediaDescription] = []
        self.current: dict[str, Any] | None = None

    def line(self, letter: str, value: str) -> None:
        section = self.session if self.current is None else self.current
        if letter == "m":
            self.finish_media()
            if not self.session["timings"]:
                raise SdpError("m= line before any t= line")
            self.current = _media_fields(value)
        elif letter == "a":
            section["attributes"].append(_attribute(value))
        elif letter == "b":
            section["bandwidths"].append(_bandwidth(value))
        elif letter in ("c", "i", "k"):
            name = {
                "c": "connection",
                "i": "title" if self.current is not None else "info",
                "k": "key",
            }[letter]
            if name in section:
                raise SdpError(f"more than one {letter}= line in this section")
            section[name] = _connection(value) if letter == "c" else value
        elif self.current is not None:
            raise SdpError(f"{letter}= line not allowed in a media description")
        elif letter == "t":
            self.session["timings"].append(_timing(value))
        elif letter == "r":
            if not self.session["timings"]:
                raise SdpError("r= line before any t= line")
            last = self.session["timings"][-1]
            self.session["timings"][-1] = attrs.evolve(last, repeats=(*last.repeats, value))
        elif letter == "e":
            self.session["emails"].append(value)
        elif letter == "p":
            self.session["phones"].append(value)
        elif letter in ("u", "z"):
            name = "uri" if letter == "u" else "time_zones"
            if name in self.session:
                raise SdpError(f"more than one {letter}= line")
            self.session[name] = value
        else:
            raise SdpError(f"{letter}= line out of place (v=, o=, s= are the first three lines)")

    def finish_media(self) -> None:
        if self.current is not None:
            self.media.append(MediaDescription(**self.current))
            self.current = None


def parse_sdp(data: bytes | bytearray | memoryview | str) -> SessionDescription:
    """Parse a session description; raise :class:`SdpError` (with ``.line``) if it is invalid."""
    lines = _split_lines(data)
    parser = _Parser()
    origin: Origin | None = None
    session_name: str | None = None
    number = 0
    try:
        for number, line in enumerate(lines, start=1):
            if len(line) < 2 or line[1] != "=":
                raise SdpError("expected <type>=<value>")
            letter, value = line[0], line[2:]
            if _TEXT_FORBIDDEN.search(value) is not None:
                raise SdpError("NUL or stray CR in line")
            if letter not in _KNOWN_LETTERS:
                if "a" <= letter <= "z":
                    raise SdpError(f"unknown line type {letter!r}")
                raise SdpError(f"line type {letter!r} is not a lowercase letter")
            if number > 3:
                parser.line(letter, value)
            elif letter != "vos"[number - 1]:
                raise SdpError(f"expected {'vos'[number - 1]}= line, got {letter}=")
            elif letter == "v":
                if value != "0":
                    raise SdpError(f"unsupported SDP version {value!r} (only v=0)")
            elif letter == "o":
                origin = _origin(value)
            else:
                session_name = value
        number += 1  # errors below are about what is missing at the end
        if origin is None or session_name is None:
            raise SdpError("truncated: v=, o= and s= lines are required")
        parser.finish_media()
        if not parser.session["timings"]:
            raise SdpError("no t= line")
        return SessionDescription(
            origin=origin, session_name=session_name, media=parser.media, **parser.session
        )
    except SdpError as exc:
        if exc.line is not None:
            raise
        raise SdpError(str(exc), line=number) from None
