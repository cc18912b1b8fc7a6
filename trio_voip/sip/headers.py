"""The header store and typed header values (Via, CSeq, name-addr, Contact, auth).

``Headers`` keeps header fields in order with their (canonical) names and raw values. Typed
values are parsed from the raw text when asked for; the parser of each typed value lives here
as ``parse_<thing>`` so it can be used on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import attrs

from trio_voip.errors import SipParseError
from trio_voip.sip import grammar as g
from trio_voip.sip.uri import Uri, format_host, parse_host, parse_hostport, parse_uri

__all__ = [
    "COMPACT_FORMS",
    "CANONICAL_NAMES",
    "LIST_HEADERS",
    "SINGLE_HEADERS",
    "canonical_name",
    "Headers",
    "Via",
    "CSeq",
    "NameAddr",
    "Contact",
    "AuthValue",
    "parse_via",
    "parse_vias",
    "parse_cseq",
    "parse_name_addr",
    "parse_name_addrs",
    "parse_contact",
    "parse_contacts",
    "parse_call_id",
    "parse_uint",
    "parse_max_forwards",
    "parse_delta_seconds",
    "parse_content_length",
    "parse_date",
    "parse_media_type",
    "parse_auth",
]

Params = tuple[tuple[str, "str | None"], ...]

# RFC 3261 7.3.3 and the registrations that followed it.
COMPACT_FORMS = {
    "v": "Via",
    "i": "Call-ID",
    "m": "Contact",
    "f": "From",
    "t": "To",
    "l": "Content-Length",
    "c": "Content-Type",
    "e": "Content-Encoding",
    "s": "Subject",
    "k": "Supported",
    "o": "Event",
    "r": "Refer-To",
    "b": "Referred-By",
    "u": "Allow-Events",
    "x": "Session-Expires",
    "a": "Accept-Contact",
    "j": "Reject-Contact",
    "d": "Request-Disposition",
    "y": "Identity",
    "n": "Identity-Info",
}

_KNOWN = [
    "Accept", "Accept-Contact", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow",
    "Allow-Events", "Authentication-Info", "Authorization", "Call-ID", "Call-Info", "Contact",
    "Content-Disposition", "Content-Encoding", "Content-Language", "Content-Length",
    "Content-Type", "CSeq", "Date", "Error-Info", "Event", "Expires", "From", "History-Info",
    "Identity", "Identity-Info", "In-Reply-To", "Max-Forwards", "MIME-Version", "Min-Expires",
    "Min-SE", "Organization", "P-Asserted-Identity", "P-Preferred-Identity", "Path",
    "Priority", "Privacy", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Require",
    "RAck", "Reason", "Record-Route", "Refer-To", "Referred-By", "Reject-Contact", "Replaces",
    "Reply-To", "Request-Disposition", "Require", "Retry-After", "Route", "RSeq", "Server",
    "Service-Route", "Session-Expires", "SIP-ETag", "SIP-If-Match", "Subject",
    "Subscription-State", "Supported", "Timestamp", "To", "Unsupported", "User-Agent", "Via",
    "Warning", "WWW-Authenticate",
]  # fmt: skip

CANONICAL_NAMES = {name.lower(): name for name in _KNOWN}
for _short, _long in COMPACT_FORMS.items():
    CANONICAL_NAMES[_short] = _long

# Headers whose values are comma-separated lists (RFC 3261 7.3.1), split by get_all().
LIST_HEADERS = frozenset(
    {
        "accept", "accept-contact", "accept-encoding", "accept-language", "alert-info",
        "allow", "allow-events", "call-info", "contact", "content-encoding",
        "content-language", "error-info", "history-info", "in-reply-to",
        "p-asserted-identity", "p-preferred-identity", "path", "proxy-require", "reason",
        "record-route", "reject-contact", "request-disposition", "require", "route",
        "service-route", "supported", "unsupported", "via", "warning",
    }
)  # fmt: skip

# Headers that may appear at most once (RFC 4475 3.3.8, 3.3.9 want duplicates rejected).
SINGLE_HEADERS = frozenset(
    {"from", "to", "call-id", "cseq", "max-forwards", "content-length", "content-type",
     "expires"}
)  # fmt: skip


def _lookup(name: str) -> tuple[str, str]:
    """(key, display name) of a header name as written: compact forms expand, case folds."""
    lname = name.lower()
    canon = CANONICAL_NAMES.get(lname)
    if canon is not None:
        return canon.lower(), canon
    if not g.is_token(name):
        raise SipParseError(f"bad header name {g.snip(name)}")
    return lname, name


def canonical_name(name: str) -> str:
    """``"v"`` -> ``"Via"``, ``"call-id"`` -> ``"Call-ID"``; unknown names stay as written."""
    return _lookup(name)[1]


class Headers:
    """Ordered, case-insensitive, multi-valued header fields.

    Each entry is one header field line (a value may itself be a comma-separated list);
    ``get_all`` splits list headers into their elements. Typed values parsed from this store
    are cached until the next change.
    """

    __slots__ = ("_items", "_typed")

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        # (key, display name, value) with key the lower-cased canonical name.
        self._items: list[tuple[str, str, str]] = []
        self._typed: dict[str, Any] = {}
        for name, value in items:
            self.add(name, value)

    @classmethod
    def _from_parsed(cls, items: list[tuple[str, str, str]]) -> Headers:
        self = cls.__new__(cls)
        self._items = items
        self._typed = {}
        return self

    def _changed(self) -> None:
        if self._typed:
            self._typed.clear()

    def _get_typed(self, key: str, parse: Callable[[list[str]], Any]) -> Any:
        """``parse(values)`` of every field named ``key``, computed once per content."""
        try:
            return self._typed[key]
        except KeyError:
            pass
        result = parse([v for k, _, v in self._items if k == key])
        self._typed[key] = result
        return result

    def get(self, name: str, default: str | None = None) -> str | None:
        key = _lookup(name)[0]
        for k, _, v in self._items:
            if k == key:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        key = _lookup(name)[0]
        values = [v for k, _, v in self._items if k == key]
        if key not in LIST_HEADERS:
            return values
        out = []
        for value in values:
            out.extend(s for part in g.split_list(value, ",") if (s := part.strip(" \t")))
        return out

    def add(self, name: str, value: str) -> None:
        key, display = _lookup(name)
        self._items.append((key, display, _check_value(value)))
        self._changed()

    def prepend(self, name: str, value: str) -> None:
        key, display = _lookup(name)
        value = _check_value(value)
        for i, (k, _, _) in enumerate(self._items):
            if k == key:
                self._items.insert(i, (key, display, value))
                break
        else:
            self._items.insert(0, (key, display, value))
        self._changed()

    def set(self, name: str, value: str) -> None:
        key, display = _lookup(name)
        value = _check_value(value)
        out = []
        placed = False
        for item in self._items:
            if item[0] == key:
                if not placed:
                    out.append((key, display, value))
                    placed = True
            else:
                out.append(item)
        if not placed:
            out.append((key, display, value))
        self._items = out
        self._changed()

    def remove(self, name: str) -> None:
        key = _lookup(name)[0]
        self._items = [item for item in self._items if item[0] != key]
        self._changed()

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = _lookup(name)[0]
        return any(k == key for k, _, _ in self._items)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return ((name, value) for _, name, value in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        mine = self._items
        theirs = other._items
        return len(mine) == len(theirs) and all(
            a[0] == b[0] and a[2] == b[2] for a, b in zip(mine, theirs)
        )

    __hash__ = None  # type: ignore[assignment]

    def copy(self) -> Headers:
        return Headers._from_parsed(list(self._items))

    def __repr__(self) -> str:
        return f"Headers({[(n, v) for _, n, v in self._items]!r})"

    def _serialise_into(self, out: list[str], content_length: int) -> None:
        wrote_length = False
        for key, name, value in self._items:
            if key == "content-length":
                if wrote_length:
                    continue
                value = str(content_length)
                wrote_length = True
            out.append(f"{name}: {value}\r\n")
        if not wrote_length:
            out.append(f"Content-Length: {content_length}\r\n")


def _check_value(value: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"header values are str, not {type(value).__name__}")
    if "\r" in value or "\n" in value:
        raise SipParseError(f"CR/LF in header value {g.snip(value)}")
    return value.strip(" \t")


# --- Via -----------------------------------------------------------------------------------------


@attrs.frozen
class Via:
    """One via-parm: ``SIP/2.0/<transport> <host>[:<port>];params``."""

    transport: str
    host: str
    port: int | None = None
    params: Params = ()

    def param(self, name: str) -> str | None:
        name = name.lower()
        for n, v in self.params:
            if n == name:
                return v
        return None

    def has_param(self, name: str) -> bool:
        name = name.lower()
        return any(n == name for n, _ in self.params)

    def with_param(self, name: str, value: str | None = None) -> Via:
        name = name.lower()
        out = []
        replaced = False
        for n, v in self.params:
            if n == name:
                if not replaced:
                    out.append((n, value))
                    replaced = True
            else:
                out.append((n, v))
        if not replaced:
            out.append((name, value))
        return attrs.evolve(self, params=tuple(out))

    @property
    def branch(self) -> str | None:
        return self.param("branch")

    @property
    def received(self) -> str | None:
        return self.param("received")

    @property
    def maddr(self) -> str | None:
        return self.param("maddr")

    @property
    def ttl(self) -> int | None:
        ttl = self.param("ttl")
        return None if ttl is None else int(ttl)

    @property
    def has_rport(self) -> bool:
        return self.has_param("rport")

    @property
    def rport(self) -> int | None:
        """The rport value; None when absent or present without a value (see has_rport)."""
        rport = self.param("rport")
        return None if rport is None else int(rport)

    @property
    def sent_by(self) -> str:
        host = format_host(self.host)
        return host if self.port is None else f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"SIP/2.0/{self.transport} {self.sent_by}{g.format_params(self.params)}"


def parse_via(value: str) -> Via:
    """One via-parm (not a comma list; see ``parse_vias``)."""
    first, semi, rest = value.partition(";")
    proto, s1, rest1 = first.partition("/")
    version, s2, rest2 = rest1.partition("/")
    if not s2:
        raise SipParseError(f"bad Via {g.snip(value)}")
    if proto.strip(" \t").upper() != "SIP" or version.strip(" \t") != "2.0":
        raise SipParseError(f"bad Via protocol {g.snip(value)}")
    parts = rest2.split(None, 1)
    if len(parts) != 2 or not g.is_token(parts[0]):
        raise SipParseError(f"bad Via transport or sent-by {g.snip(value)}")
    sent_by = parts[1].rstrip(" \t")
    if (" " in sent_by or "\t" in sent_by) and sent_by[-1] != "]":
        # COLON = SWS ":" SWS
        host, colon, port = sent_by.rpartition(":")
        if colon:
            sent_by = host.rstrip(" \t") + ":" + port.lstrip(" \t")
    host, port = parse_hostport(sent_by)
    params: Params = ()
    if semi:
        params = g.parse_params(rest)
        for name, v in params:
            if name in _VIA_PARAM_CHECKS:
                _VIA_PARAM_CHECKS[name](v, value)
    return Via(parts[0].upper(), host, port, params)


def _check_ttl(v: str | None, via: str) -> None:
    if v is None or not (v.isascii() and v.isdigit()) or len(v) > 3 or int(v) > 255:
        raise SipParseError(f"bad Via ttl {g.snip(via)}")


def _check_host_param(v: str | None, via: str) -> None:
    if v is None:
        raise SipParseError(f"Via parameter without value {g.snip(via)}")
    parse_host(v)


def _check_rport(v: str | None, via: str) -> None:
    if v is not None and (not (v.isascii() and v.isdigit()) or len(v) > 5 or int(v) > 65535):
        raise SipParseError(f"bad Via rport {g.snip(via)}")


def _check_branch(v: str | None, via: str) -> None:
    if v is None or not g.is_token(v):
        raise SipParseError(f"bad Via branch {g.snip(via)}")


_VIA_PARAM_CHECKS: dict[str, Callable[[str | None, str], None]] = {
    "ttl": _check_ttl,
    "maddr": _check_host_param,
    "received": _check_host_param,
    "rport": _check_rport,
    "branch": _check_branch,
}


def parse_vias(values: list[str]) -> tuple[Via, ...]:
    """Every via-parm of the given Via field values, top first."""
    return tuple(parse_via(v) for value in values for v in _list_elements(value, "Via"))


def _list_elements(value: str, what: str) -> list[str]:
    parts = g.split_list(value, ",")
    if len(parts) == 1:
        return parts
    for part in parts:
        if not part.strip(" \t"):
            raise SipParseError(f"empty element in {what} {g.snip(value)}")
    return parts


# --- CSeq, Call-ID, numbers, Date ------------------------------------------------------------


@attrs.frozen
class CSeq:
    seq: int
    method: str

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


def parse_cseq(value: str) -> CSeq:
    parts = value.split()
    if len(parts) != 2 or not g.is_token(parts[1]):
        raise SipParseError(f"bad CSeq {g.snip(value)}")
    # RFC 3261 8.1.1.5: the sequence number is a 32-bit unsigned integer less than 2**31.
    return CSeq(parse_uint(parts[0], 2**31 - 1, "CSeq"), parts[1])


def parse_uint(text: str, limit: int, what: str) -> int:
    text = text.strip(" \t")
    # isascii() first: str.isdigit() accepts non-ASCII digits.
    if not (text.isascii() and text.isdigit()) or len(text) > 20 or int(text) > limit:
        raise SipParseError(f"bad {what} {g.snip(text)}")
    return int(text)


def parse_max_forwards(value: str) -> int:
    return parse_uint(value, 255, "Max-Forwards")


def parse_delta_seconds(value: str, what: str = "Expires") -> int:
    return parse_uint(value, 2**32 - 1, what)


def parse_content_length(value: str) -> int:
    return parse_uint(value, 2**31 - 1, "Content-Length")


def parse_call_id(value: str) -> str:
    if g.CALLID.fullmatch(value) is None:
        raise SipParseError(f"bad Call-ID {g.snip(value)}")
    return value


def parse_date(value: str) -> str:
    if g.RFC1123_DATE.fullmatch(value) is None:
        raise SipParseError(f"bad Date (must be an RFC 1123 date in GMT) {g.snip(value)}")
    return value


def parse_media_type(value: str) -> str:
    """``type/subtype`` of a Content-Type value, lower-cased, parameters dropped."""
    media, _, _ = value.partition(";")
    mtype, slash, subtype = media.partition("/")
    mtype = mtype.strip(" \t")
    subtype = subtype.strip(" \t")
    if not slash or not g.is_token(mtype) or not g.is_token(subtype):
        raise SipParseError(f"bad media type {g.snip(value)}")
    return f"{mtype}/{subtype}".lower()


# --- name-addr / addr-spec -------------------------------------------------------------------


def _param_value(params: Params, name: str) -> str | None:
    name = name.lower()
    for n, v in params:
        if n == name:
            if v is not None and v[:1] == '"':
                return g.unquote_string(v)
            return v
    return None


def _params_with(params: Params, name: str, value: str | None) -> Params:
    name = name.lower()
    if value is not None and g.GEN_VALUE.fullmatch(value) is None:
        value = g.quote_string(value)
    out = [(n, v) for n, v in params if n != name]
    out.append((name, value))
    return tuple(out)


@attrs.frozen
class NameAddr:
    """``"Display" <uri>;params`` (From, To, Route, Record-Route, Refer-To, ...).

    ``params`` are the header parameters (after ``>``), names lower-cased, values as written
    (a quoted value keeps its quotes; ``param()`` unquotes).
    """

    uri: Uri
    params: Params = ()
    display_name: str | None = attrs.field(default=None, kw_only=True)

    def param(self, name: str) -> str | None:
        return _param_value(self.params, name)

    def has_param(self, name: str) -> bool:
        name = name.lower()
        return any(n == name for n, _ in self.params)

    def with_param(self, name: str, value: str | None = None) -> NameAddr:
        return attrs.evolve(self, params=_params_with(self.params, name, value))

    @property
    def tag(self) -> str | None:
        return self.param("tag")

    def with_tag(self, tag: str) -> NameAddr:
        if not g.is_token(tag):
            raise SipParseError(f"a tag must be a token: {g.snip(tag)}")
        return self.with_param("tag", tag)

    def __str__(self) -> str:
        params = g.format_params(self.params)
        if self.display_name is None:
            return f"<{self.uri}>{params}"
        return f"{g.quote_string(self.display_name)} <{self.uri}>{params}"


@attrs.frozen
class Contact(NameAddr):
    """A Contact value: a name-addr, or the wildcard ``*`` (``star=True``, ``uri`` None)."""

    star: bool = attrs.field(default=False, kw_only=True)

    @property
    def expires(self) -> int | None:
        expires = self.param("expires")
        return None if expires is None else int(expires)

    @property
    def q(self) -> float | None:
        q = self.param("q")
        return None if q is None else float(q)

    def __str__(self) -> str:
        return "*" if self.star else super().__str__()


def _split_name_addr(value: str) -> tuple[str | None, str, str]:
    """(display name, URI text, text after it) of a name-addr or addr-spec."""
    s = value.strip(" \t")
    if not s:
        raise SipParseError("empty name-addr")
    display: str | None
    if s[0] == '"':
        m = g.QUOTED_STRING.match(s)
        if m is None:
            raise SipParseError(f"unterminated quoted display name {g.snip(value)}")
        display = g.unquote_string(m.group())
        rest = s[m.end() :].lstrip(" \t")
        if rest[:1] != "<":
            raise SipParseError(f"quoted display name not followed by <URI> {g.snip(value)}")
    else:
        lt = s.find("<")
        if lt < 0:
            # addr-spec: the URI ends at the first ';' (what follows are header params).
            uri, semi, tail = s.partition(";")
            uri = uri.rstrip(" \t")
            # RFC 3261 20: a URI with ',', '?' or ';' must be enclosed in <>.
            if "," in uri or "?" in uri or " " in uri or "\t" in uri:
                raise SipParseError(f"URI with ',', '?' or spaces must be in <> {g.snip(value)}")
            return None, uri, semi + tail
        words = s[:lt].split()
        for word in words:
            if not g.is_token(word):
                raise SipParseError(f"display name must be tokens or quoted {g.snip(value)}")
        display = " ".join(words) if words else None
        rest = s[lt:]
    gt = rest.find(">")
    if gt < 0:
        raise SipParseError(f"missing '>' in {g.snip(value)}")
    return display, rest[1:gt], rest[gt + 1 :]


def _header_params(tail: str, value: str) -> Params:
    tail = tail.lstrip(" \t")
    if not tail:
        return ()
    if tail[0] != ";":
        raise SipParseError(f"unexpected text after URI {g.snip(value)}")
    return g.parse_params(tail[1:])


def parse_name_addr(value: str) -> NameAddr:
    display, uri, tail = _split_name_addr(value)
    return NameAddr(parse_uri(uri), _header_params(tail, value), display_name=display)


def parse_name_addrs(values: list[str]) -> tuple[NameAddr, ...]:
    """Every element of comma-list name-addr headers (Route, Record-Route, ...)."""
    return tuple(
        parse_name_addr(v) for value in values for v in _list_elements(value, "header")
    )


def parse_contact(value: str) -> Contact:
    if value.strip(" \t") == "*":
        return Contact(None, star=True)  # type: ignore[arg-type]
    display, uri, tail = _split_name_addr(value)
    params = _header_params(tail, value)
    for name, v in params:
        if name == "expires":
            if v is None:
                raise SipParseError(f"Contact expires without value {g.snip(value)}")
            parse_delta_seconds(v, "Contact expires")
        elif name == "q" and not _is_qvalue(v):
            raise SipParseError(f"bad Contact q {g.snip(value)}")
    return Contact(parse_uri(uri), params, display_name=display)


def _is_qvalue(v: str | None) -> bool:
    # qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
    if not v or len(v) > 5 or not v.isascii():
        return False
    whole, _, frac = v.partition(".")
    if whole == "0":
        return not frac or frac.isdigit()
    return whole == "1" and set(frac) <= {"0"}


def parse_contacts(values: list[str]) -> tuple[Contact, ...]:
    return tuple(parse_contact(v) for value in values for v in _list_elements(value, "Contact"))


# --- WWW-Authenticate / Authorization ----------------------------------------------------------

# Parameters RFC 2617/3261 always send as quoted-strings. qop is quoted in a challenge
# (a list of options) but a bare token in credentials.
_QUOTED_AUTH_PARAMS = frozenset({"realm", "nonce", "opaque", "username", "uri", "response",
                                 "cnonce", "domain"})  # fmt: skip


@attrs.frozen
class AuthValue:
    """A challenge or credentials: ``scheme`` and its auth-params in order, values unquoted."""

    scheme: str
    params: tuple[tuple[str, str], ...] = ()

    def param(self, name: str) -> str | None:
        name = name.lower()
        for n, v in self.params:
            if n == name:
                return v
        return None

    def __str__(self) -> str:
        credentials = any(n == "response" for n, _ in self.params)
        parts = []
        for name, value in self.params:
            quoted = name in _QUOTED_AUTH_PARAMS or (name == "qop" and not credentials)
            if quoted or not g.is_token(value):
                value = g.quote_string(value)
            parts.append(f"{name}={value}")
        return f"{self.scheme} {', '.join(parts)}" if parts else self.scheme


def parse_auth(value: str) -> AuthValue:
    """Parse a WWW-Authenticate/Proxy-Authenticate/Authorization/Proxy-Authorization value."""
    value = value.strip(" \t")
    parts = value.split(None, 1)
    if not parts or not g.is_token(parts[0]):
        raise SipParseError(f"bad auth scheme {g.snip(value)}")
    params = []
    if len(parts) == 2:
        for piece in g.split_list(parts[1], ","):
            name, eq, val = piece.partition("=")
            name = name.strip(" \t")
            val = val.strip(" \t")
            if not eq or not g.is_token(name) or not val:
                raise SipParseError(f"bad auth-param {g.snip(piece)}")
            if val[0] == '"':
                if g.QUOTED_STRING.fullmatch(val) is None:
                    raise SipParseError(f"bad quoted auth-param {g.snip(piece)}")
                val = g.unquote_string(val)
            elif not g.is_token(val):
                raise SipParseError(f"bad auth-param value {g.snip(piece)}")
            params.append((name.lower(), val))
    return AuthValue(parts[0], tuple(params))
