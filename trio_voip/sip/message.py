"""SIP requests and responses: parse from bytes, serialise to bytes, typed header access.

``parse_message`` takes one whole message (a UDP datagram, or one message a stream framer has
cut out) and checks at parse time everything RFC 4475 expects a parser to reject: the start
line, the headers a transaction needs (Via, From, To, Call-ID, CSeq, Max-Forwards, Contact,
Content-Length, Expires, Date) and duplicates of single-valued headers. Other headers are kept
as text and parsed when read.
"""

from __future__ import annotations

import re
from typing import Any

import attrs

from trio_voip.errors import SipParseError
from trio_voip.sip import grammar as g
from trio_voip.sip.headers import (
    CANONICAL_NAMES,
    SINGLE_HEADERS,
    AuthValue,
    Contact,
    CSeq,
    Headers,
    NameAddr,
    Via,
    _lookup,
    parse_call_id,
    parse_contacts,
    parse_content_length,
    parse_cseq,
    parse_date,
    parse_delta_seconds,
    parse_max_forwards,
    parse_media_type,
    parse_name_addr,
    parse_name_addrs,
    parse_auth,
    parse_vias,
)
from trio_voip.sip.uri import SipUri, Uri, parse_uri

__all__ = [
    "MAX_MESSAGE_SIZE",
    "MAX_HEADER_LINES",
    "SIP_VERSION",
    "REASON_PHRASES",
    "Request",
    "Response",
    "Message",
    "parse_message",
    "make_response",
]

MAX_MESSAGE_SIZE = 65535
"""Default largest message ``parse_message`` accepts (larger: SipParseError, status 413)."""
MAX_HEADER_LINES = 256
"""Default largest number of header lines (more: SipParseError, status 400)."""
SIP_VERSION = "SIP/2.0"

REASON_PHRASES = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 199: "Early Dialog Terminated",
    200: "OK", 202: "Accepted", 204: "No Notification",
    300: "Multiple Choices", 301: "Moved Permanently", 302: "Moved Temporarily",
    305: "Use Proxy", 380: "Alternative Service",
    400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable",
    407: "Proxy Authentication Required", 408: "Request Timeout", 410: "Gone",
    412: "Conditional Request Failed", 413: "Request Entity Too Large",
    414: "Request-URI Too Long", 415: "Unsupported Media Type",
    416: "Unsupported URI Scheme", 417: "Unknown Resource-Priority", 420: "Bad Extension",
    421: "Extension Required", 422: "Session Interval Too Small", 423: "Interval Too Brief",
    428: "Use Identity Header", 429: "Provide Referrer Identity", 433: "Anonymity Disallowed",
    436: "Bad Identity-Info", 437: "Unsupported Certificate", 438: "Invalid Identity Header",
    439: "First Hop Lacks Outbound Support", 440: "Max-Breadth Exceeded",
    469: "Bad Info Package", 470: "Consent Needed", 480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist", 482: "Loop Detected", 483: "Too Many Hops",
    484: "Address Incomplete", 485: "Ambiguous", 486: "Busy Here", 487: "Request Terminated",
    488: "Not Acceptable Here", 489: "Bad Event", 491: "Request Pending",
    493: "Undecipherable", 494: "Security Agreement Required",
    500: "Server Internal Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Server Time-out", 505: "Version Not Supported",
    513: "Message Too Large", 580: "Precondition Failure",
    600: "Busy Everywhere", 603: "Decline", 604: "Does Not Exist Anywhere",
    606: "Not Acceptable", 607: "Unwanted",
}  # fmt: skip


def _one(values: list[str], parse: Any) -> Any:
    return parse(values[0]) if values else None


# Typed views: header key -> parser of the list of that header's field values.
_TYPED: dict[str, Any] = {
    "via": parse_vias,
    "from": lambda vs: _one(vs, parse_name_addr),
    "to": lambda vs: _one(vs, parse_name_addr),
    "call-id": lambda vs: _one(vs, parse_call_id),
    "cseq": lambda vs: _one(vs, parse_cseq),
    "max-forwards": lambda vs: _one(vs, parse_max_forwards),
    "contact": parse_contacts,
    "content-length": lambda vs: _one(vs, parse_content_length),
    "expires": lambda vs: _one(vs, parse_delta_seconds),
    "date": lambda vs: [parse_date(v) for v in vs],
    "route": parse_name_addrs,
    "record-route": parse_name_addrs,
    "content-type": lambda vs: _one(vs, parse_media_type),
    "www-authenticate": lambda vs: tuple(parse_auth(v) for v in vs),
    "proxy-authenticate": lambda vs: tuple(parse_auth(v) for v in vs),
    "authorization": lambda vs: tuple(parse_auth(v) for v in vs),
    "proxy-authorization": lambda vs: tuple(parse_auth(v) for v in vs),
}
# header name as commonly written, lower-cased -> (key, display name)
_KNOWN_NAMES = {lname: (name.lower(), name) for lname, name in CANONICAL_NAMES.items()}
# What parse_message checks eagerly (RFC 4475 3.1.2 wants these rejected up front).
_EAGER = frozenset(
    {"via", "from", "to", "call-id", "cseq", "max-forwards", "contact", "content-length",
     "expires", "date"}
)  # fmt: skip


class _Typed:
    """Typed header accessors shared by Request and Response."""

    headers: Headers

    def _typed(self, key: str) -> Any:
        return self.headers._get_typed(key, _TYPED[key])

    def _required(self, key: str) -> Any:
        value = self._typed(key)
        if value is None or value == ():
            raise SipParseError(f"missing {_lookup(key)[1]} header")
        return value

    @property
    def vias(self) -> list[Via]:
        return list(self._required("via"))

    @property
    def top_via(self) -> Via:
        return self._required("via")[0]  # type: ignore[no-any-return]

    @property
    def call_id(self) -> str:
        return self._required("call-id")  # type: ignore[no-any-return]

    @property
    def cseq(self) -> CSeq:
        return self._required("cseq")  # type: ignore[no-any-return]

    @property
    def from_(self) -> NameAddr:
        return self._required("from")  # type: ignore[no-any-return]

    @property
    def to(self) -> NameAddr:
        return self._required("to")  # type: ignore[no-any-return]

    @property
    def contacts(self) -> list[Contact]:
        return list(self._typed("contact"))

    @property
    def max_forwards(self) -> int | None:
        return self._typed("max-forwards")  # type: ignore[no-any-return]

    @property
    def routes(self) -> list[NameAddr]:
        return list(self._typed("route"))

    @property
    def record_routes(self) -> list[NameAddr]:
        return list(self._typed("record-route"))

    @property
    def content_type(self) -> str | None:
        """The media type (``type/subtype``, lower-cased); parameters via ``headers.get``."""
        return self._typed("content-type")  # type: ignore[no-any-return]

    @property
    def expires(self) -> int | None:
        return self._typed("expires")  # type: ignore[no-any-return]

    @property
    def content_length(self) -> int | None:
        """The Content-Length header as received (``bytes()`` always writes the real one)."""
        return self._typed("content-length")  # type: ignore[no-any-return]

    @property
    def allow(self) -> list[str]:
        return self.headers.get_all("Allow")

    @property
    def supported(self) -> list[str]:
        return self.headers.get_all("Supported")

    @property
    def require(self) -> list[str]:
        return self.headers.get_all("Require")

    @property
    def proxy_require(self) -> list[str]:
        return self.headers.get_all("Proxy-Require")

    @property
    def www_authenticate(self) -> list[AuthValue]:
        return list(self._typed("www-authenticate"))

    @property
    def proxy_authenticate(self) -> list[AuthValue]:
        return list(self._typed("proxy-authenticate"))

    @property
    def authorization(self) -> list[AuthValue]:
        return list(self._typed("authorization"))

    @property
    def proxy_authorization(self) -> list[AuthValue]:
        return list(self._typed("proxy-authorization"))

    def _serialise(self, start_line: str, body: bytes) -> bytes:
        out = [start_line]
        self.headers._serialise_into(out, len(body))
        out.append("\r\n")
        head = "".join(out).encode("utf-8")
        return head + body if body else head


@attrs.define(eq=True)
class Request(_Typed):
    method: str
    uri: Uri
    headers: Headers = attrs.Factory(Headers)
    body: bytes = b""

    def __bytes__(self) -> bytes:
        return self._serialise(f"{self.method} {self.uri} {SIP_VERSION}\r\n", self.body)


@attrs.define(eq=True)
class Response(_Typed):
    status: int
    reason: str
    headers: Headers = attrs.Factory(Headers)
    body: bytes = b""

    def __bytes__(self) -> bytes:
        return self._serialise(f"{SIP_VERSION} {self.status} {self.reason}\r\n", self.body)


Message = Request | Response

# Control characters that may not appear raw in a header section (HT, CR, LF are handled
# separately); a quoted-pair may carry them, so a hit is checked for a preceding backslash.
_CTL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_VERSION = re.compile(r"SIP/[0-9]+\.[0-9]+")


def parse_message(
    data: bytes,
    *,
    max_size: int = MAX_MESSAGE_SIZE,
    max_header_lines: int = MAX_HEADER_LINES,
) -> Request | Response:
    """Parse one SIP message; raise SipParseError (with the status to answer) on any defect.

    Leading CRLFs are skipped (RFC 3261 7.5). The body is Content-Length octets; octets after
    it are ignored (RFC 3261 18.3). Without Content-Length the body is the rest of ``data``.
    """
    if type(data) is not bytes:
        data = bytes(data)  # a bytearray/memoryview from a socket buffer; the body is kept
    if len(data) > max_size:
        raise SipParseError(
            f"message of {len(data)} bytes exceeds {max_size}",
            status=413,
            reason="Request Entity Too Large",
        )
    start = 0
    while data.startswith(b"\r\n", start):
        start += 2
    end = data.find(b"\r\n\r\n", start)
    if end < 0:
        raise SipParseError("no empty line ends the header section")
    try:
        head = data[start:end].decode("utf-8")
    except UnicodeDecodeError:
        raise SipParseError("header section is not UTF-8") from None
    lines = head.split("\r\n")
    nlines = len(lines)
    if nlines > max_header_lines + 1:
        raise SipParseError(f"more than {max_header_lines} header lines")
    if head.count("\n") != nlines - 1 or head.count("\r") != nlines - 1:
        raise SipParseError("bare CR or LF in header section")
    ctl = _CTL.search(head)
    if ctl is not None:
        _check_controls(head, ctl.start())

    items, grouped = _parse_fields(lines)
    headers = Headers._from_parsed(items)
    message: Request | Response
    start_line = lines[0]
    if start_line.startswith("SIP/"):
        status, reason = _parse_status_line(start_line)
        message = Response(status, reason, headers)
    else:
        method, uri = _parse_request_line(start_line)
        message = Request(method, uri, headers)

    typed = headers._typed
    for key, values in grouped.items():
        if len(values) > 1 and key in SINGLE_HEADERS:
            raise SipParseError(f"more than one {_lookup(key)[1]} header")
        if key in _EAGER:
            typed[key] = _TYPED[key](values)
    content_length = typed.get("content-length")
    if isinstance(message, Request) and "cseq" in typed:
        cseq_method = typed["cseq"].method
        if cseq_method != message.method:
            raise SipParseError(
                f"CSeq method {g.snip(cseq_method)} does not match {g.snip(message.method)}"
            )

    body_start = end + 4
    if content_length is None:
        message.body = data[body_start:]
    else:
        if body_start + content_length > len(data):
            raise SipParseError(
                f"Content-Length {content_length} exceeds the {len(data) - body_start} "
                "octets of body received"
            )
        message.body = data[body_start : body_start + content_length]
    return message


def _check_controls(head: str, pos: int) -> None:
    while pos >= 0:
        if head[pos - 1 : pos] != "\\":
            raise SipParseError(f"control character {head[pos]!r} in header section")
        m = _CTL.search(head, pos + 1)
        pos = m.start() if m is not None else -1


def _parse_fields(
    lines: list[str],
) -> tuple[list[tuple[str, str, str]], dict[str, list[str]]]:
    """Header items (key, display name, value) in order, and the values grouped by key."""
    fields = lines[1:]
    for line in fields:
        if line[:1] in (" ", "\t"):
            fields = _unfold(fields)
            break
    items = []
    grouped: dict[str, list[str]] = {}
    known = _KNOWN_NAMES
    for field in fields:
        name, colon, value = field.partition(":")
        if not colon:
            raise SipParseError(f"header line without ':' {g.snip(field)}")
        try:
            key, display = known[name.lower()]
        except KeyError:
            key, display = _lookup(name.rstrip(" \t"))
        value = value.strip(" \t")
        items.append((key, display, value))
        try:
            grouped[key].append(value)
        except KeyError:
            grouped[key] = [value]
    return items, grouped


def _unfold(lines: list[str]) -> list[str]:
    # A line starting with SP/HT continues the previous one (RFC 3261 7.3.1).
    fields: list[str] = []
    for line in lines:
        if line[:1] in (" ", "\t"):
            if not fields:
                raise SipParseError("continuation line before the first header")
            fields[-1] = fields[-1] + " " + line.lstrip(" \t")
        else:
            fields.append(line)
    return fields


def _parse_request_line(line: str) -> tuple[str, Uri]:
    parts = line.split(" ")
    if len(parts) != 3 or not parts[1]:
        raise SipParseError(f"bad Request-Line {g.snip(line)}")
    method, uri_text, version = parts
    if version != SIP_VERSION:
        _bad_version(version)
    if not g.is_token(method):
        raise SipParseError(f"bad method {g.snip(method)}")
    uri = parse_uri(uri_text)
    if isinstance(uri, SipUri) and uri.headers:
        raise SipParseError(f"headers are not allowed in a Request-URI {g.snip(uri_text)}")
    return method, uri


def _parse_status_line(line: str) -> tuple[int, str]:
    parts = line.split(" ", 2)
    version = parts[0]
    if version != SIP_VERSION:
        _bad_version(version)
    if len(parts) < 2:
        raise SipParseError(f"bad Status-Line {g.snip(line)}")
    code = parts[1]
    if len(code) != 3 or not (code.isascii() and code.isdigit()) or not "1" <= code[0] <= "6":
        raise SipParseError(f"bad status code {g.snip(code)}")
    return int(code), parts[2] if len(parts) == 3 else ""


def _bad_version(version: str) -> None:
    if _VERSION.fullmatch(version) is not None:
        raise SipParseError(
            f"unsupported SIP version {g.snip(version)}", status=505, reason="Version Not Supported"
        )
    raise SipParseError(f"bad SIP version {g.snip(version)}")


def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    body: bytes = b"",
    content_type: str | None = None,
) -> Response:
    """A response to ``request`` per RFC 3261 8.2.6.2: Via, From, To, Call-ID, CSeq copied.

    ``to_tag`` is added to To unless it already has a tag. A 100 also copies Timestamp
    (RFC 3261 8.2.6.1).
    """
    if not 100 <= status <= 699:
        raise SipParseError(f"status code {status} out of range", status=500)
    headers = Headers()
    items = headers._items
    for key, name, value in request.headers._items:
        if key == "via" or key == "from" or key == "call-id" or key == "cseq":
            items.append((key, name, value))
        elif key == "to":
            if to_tag is not None and request.to.tag is None:
                value = str(request.to.with_tag(to_tag))
            items.append((key, name, value))
        elif key == "timestamp" and status == 100:
            items.append((key, name, value))
    if content_type is not None:
        headers.add("Content-Type", content_type)
    items.append(("content-length", "Content-Length", str(len(body))))
    if reason is None:
        reason = REASON_PHRASES.get(status, "Unknown")
    return Response(status, reason, headers, body)

